"""The OpenCV engine of the numpy backend (the optional `opencv` extra): cv2.filter2D, and
cv2.sepFilter2D for kernels with a rank-1 split, on every image of a batch.

Where it applies (`supports`): 1-D and 2-D kernels at unit stride and dilation whose sliding
axes are adjacent in x, with at most 4 interleaved channels after them (an RGB(A) image is
one OpenCV call), any batch axes before them. Everything else stays with the numpy engines.

How the contract is kept:

- Extents and boundaries. "same" with a zero, edge, reflect or symmetric border narrower than
  the image runs on the image itself with OpenCV's border (BORDER_CONSTANT, REPLICATE,
  REFLECT_101, REFLECT) and its default anchor, which is the kernel's e//2 (also for even
  kernels); "valid" needs no border; everything else (a fill value other than 0, wrap, "full",
  borders wider than the image) is padded first with numpy.pad's meaning
  (gpuconv.backends.numpy.pad) and filtered with the anchor at the origin, cropping the
  outputs that would read OpenCV's own border.
- Arithmetic. Sums in the compute dtype (float32, or float64 for float64 and wide integers),
  then gpuconv's epilogue (clip, round half to even, saturate). OpenCV's own saturating 8/16-bit
  output is taken only where it is bit-identical to that: integer taps and sums below 2**24,
  where every order of float32 additions is exact (tests/test_opencv_engine.py proves it);
  elsewhere OpenCV's native integer output differs from rounding its float sums in 1-2 LSB.
- NaN and inf. OpenCV skips a kernel's zero taps, filters by DFT above 11x11 taps and runs
  sums along rows in sepFilter2D; each can move NaN/inf away from where direct summation puts
  them. There, a float image holding any (its min or max is not finite) is recomputed by the
  taps engine (exact direct sums). filter2D's direct sums without zero taps need no check.
- Threads. One call per image. Float images are split over the backend's workers
  (threads.py): 1.5-1.7x faster than a loop leaning on OpenCV's own threads; 8/16-bit images
  go in one loop, OpenCV threading each call itself as well as a split would.
  cv2.setNumThreads is respected, never changed.
"""
from __future__ import annotations

import math

import numpy as np

from ...dtypes import finish, representable
from ...optional import opencv_available as available
from ...plan import CorrelatePlan
from .pad import pad_into
from .taps import taps_correlate
from .threads import run_chunks

# OpenCV's border for each numpy.pad mode it computes exactly (wrap: filter2D refuses it)
_BORDERS = {"constant": "BORDER_CONSTANT", "edge": "BORDER_REPLICATE", "reflect": "BORDER_REFLECT_101",
            "symmetric": "BORDER_REFLECT"}
NATIVE = {np.dtype(t) for t in ("uint8", "uint16", "int16", "float32", "float64")}
MAX_CHANNELS = 4
# filter2D sums directly up to this many taps and by DFT above (measured: 11x11 direct, 13x13 DFT)
DFT_ABOVE = 121


def _cv2():
    import cv2

    return cv2


def supports(plan: CorrelatePlan) -> bool:
    """Whether this engine computes `plan`: OpenCV present, 1-D or 2-D, unit steps, adjacent
    sliding axes followed by at most MAX_CHANNELS interleaved channels.

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> p = correlate_plan((2, 64, 64, 3), np.uint8, np.ones((3, 3)), "same", "edge", 0, 1, 1, (1, 2), None, None, "auto")
    >>> supports(p) == available()
    True
    """
    if not available() or plan.ndim not in (1, 2) or any(s != 1 for s in plan.stride):
        return False
    if any(d != 1 for d in plan.dilation) or (plan.ndim == 2 and plan.axes[1] != plan.axes[0] + 1):
        return False
    return math.prod(plan.in_shape[plan.axes[-1] + 1:]) <= MAX_CHANNELS and 0 not in plan.out_sliding


def layout(shape: tuple, plan: CorrelatePlan) -> tuple:
    """(B, H, W, C): x as B images of H x W pixels and C interleaved channels (1-D kernels:
    one image whose rows are the batch)."""
    first, last = plan.axes[0], plan.axes[-1]
    c = math.prod(shape[last + 1:])
    if plan.ndim == 2:
        return math.prod(shape[:first]), shape[first], shape[last], c
    return 1, math.prod(shape[:first]), shape[first], c


def _exact_integer(kernel: np.ndarray, dtype: np.dtype) -> bool:
    """Integer taps whose sums stay below 2**24 for every input of `dtype`: every float32 sum
    of them is exact, so OpenCV's saturating integer output equals gpuconv's epilogue."""
    if not np.array_equal(kernel, np.round(kernel)):
        return False
    info = np.iinfo(dtype)
    return float(np.abs(kernel).sum()) * max(abs(int(info.min)), int(info.max)) < 2**24


def correlate(x: np.ndarray, kernel: np.ndarray, plan: CorrelatePlan, terms=None, out=None) -> np.ndarray:
    """Correlate x (x's own layout, any real dtype) with `kernel` over plan.axes; returns
    plan.result_shape in plan.result_dtype: `out` itself when it is a C-contiguous array of
    that shape and dtype (written in place, no new result array), else a new array.
    `terms`: a rank-1 split ([col, row]) to run as cv2.sepFilter2D, or None for
    cv2.filter2D. The plan must be supported()."""
    cv2 = _cv2()
    acc = np.dtype(plan.compute_dtype)
    rd = np.dtype(plan.result_dtype)
    b, h, w, c = layout(x.shape, plan)
    src_all = np.ascontiguousarray(x).reshape((b, h, w) + ((c,) if c > 1 else ()))
    if src_all.dtype not in NATIVE or (acc == np.float64 and src_all.dtype != np.float64):
        src_all = src_all.astype(acc)                      # one conversion (float16, int8, int32, ...)
    k2 = np.asarray(kernel, dtype=acc).reshape(plan.kernel_shape if plan.ndim == 2 else (1,) + plan.kernel_shape)
    sep = None
    if terms is not None and len(terms) == 1 and plan.ndim == 2:
        sep = (np.asarray(terms[0][1], dtype=acc), np.asarray(terms[0][0], dtype=acc))   # along x, along y
    ho, wo = (plan.out_sliding if plan.ndim == 2 else (h,) + plan.out_sliding)
    lo = plan.pad_lo if plan.ndim == 2 else (0,) + plan.pad_lo
    hi = plan.pad_hi if plan.ndim == 2 else (0,) + plan.pad_hi
    mode = _call_mode(plan, k2.shape, h, w, lo, hi) if (ho, wo) == (h, w) or not any(lo + hi) else "pad"
    fill_ok = plan.boundary != "constant" or representable(plan.cval, src_all.dtype)
    native = (rd == src_all.dtype and rd.kind in "iu" and plan.clip is None and sep is None
              and (mode != "pad" or fill_ok) and _exact_integer(k2, rd))
    depth = _depth(cv2, rd if native else acc)
    # OpenCV may move NaN/inf: it skips zero taps, filters by DFT above 11x11 taps, and runs
    # sums along rows in sepFilter2D (an inf 3 columns from a 3x3 window reached it). There,
    # float images holding any are recomputed by exact direct sums; without zero taps every
    # NaN/inf of an image reaches its output, so the output (just written) is checked, else
    # the input. filter2D's direct sums with no zero tap put them where direct summation does
    # (tested on random placements), and skip the check: a pass over memory as long as the
    # filter itself for small kernels.
    zero_taps = not all(np.all(f) for f in ([k2] if sep is None else sep))
    check = src_all.dtype.kind == "f" and (zero_taps or sep is not None or k2.size > DFT_ABOVE)
    extra = (0,) if c > 1 else ()          # the channel axis is not padded
    shape = (b, ho, wo) + ((c,) if c > 1 else ())
    given = out if (out is not None and out.flags.c_contiguous and out.dtype == rd
                    and out.shape == tuple(plan.result_shape)) else None
    into_given = given is not None and (native or rd == acc)
    out = given.reshape(shape) if into_given else np.empty(shape, dtype=rd if native else acc)

    def one(i):
        img = src_all[i]
        if mode == "border":
            _filter(cv2, img, depth, k2, sep, getattr(cv2, _BORDERS[plan.boundary]), out[i], None)
        elif mode == "valid":
            _filter(cv2, img, depth, k2, sep, cv2.BORDER_REPLICATE, None, out[i])
        else:
            padded = pad_into(img[None], lo + extra, hi + extra, plan.boundary, plan.cval,
                              dtype=img.dtype if fill_ok else acc)[0]
            _filter(cv2, padded, depth, k2, sep, cv2.BORDER_REPLICATE, None, out[i])
        if check and not _finite(img if zero_taps else out[i]):
            out[i] = _direct(img, k2, lo, hi, plan, acc, ho, wo)

    # Float images are split over the backend's workers: OpenCV's float filters ran 1.5-1.7x
    # faster so than in one loop leaning on its own threads (512x512 planes, k = 3, 5, 11),
    # while its 8/16-bit filters thread themselves as well as that (bench/NOTES.md)
    if src_all.dtype.kind == "f":
        run_chunks(list(range(b)), one, size=out.size)
    else:
        for i in range(b):
            one(i)
    if not native:
        out = finish(out, rd, plan.clip, out=given) if given is not None and not into_given \
            else finish(out, rd, plan.clip)
    return given if given is not None else out.reshape(plan.result_shape)


def _finite(a: np.ndarray) -> bool:
    """No NaN or inf in `a` (max and min: two fast passes, no temporary)."""
    return bool(np.isfinite(a.max()) and np.isfinite(a.min()))


def _depth(cv2, dtype: np.dtype) -> int:
    return {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U, np.dtype(np.int16): cv2.CV_16S,
            np.dtype(np.float32): cv2.CV_32F, np.dtype(np.float64): cv2.CV_64F}[np.dtype(dtype)]


def _call_mode(plan: CorrelatePlan, kshape: tuple, h: int, w: int, lo: tuple, hi: tuple) -> str:
    """"border": OpenCV's own border and default anchor (k//2 on each axis) give numpy.pad's
    result ("same" mode, a border it has, narrower than the image); "valid": no border is
    read; "pad": pad first (fill values other than 0, wrap, "full", wide borders)."""
    if all(p == 0 for p in lo + hi):
        return "valid"
    centred = all(l == k // 2 and l + r == k - 1 for l, r, k in zip(lo, hi, kshape))
    narrow = max(lo[0], hi[0]) < h and max(lo[1], hi[1]) < w
    border = plan.boundary in _BORDERS and (plan.boundary != "constant" or plan.cval == 0.0)
    return "border" if centred and narrow and border else "pad"


def _filter(cv2, src, depth, k2, sep, border, dst, cropped_into) -> None:
    """One OpenCV call: into `dst` (same size as src, default anchor), or with the anchor at
    the origin into `cropped_into` (the top-left outputs, which read no border)."""
    if cropped_into is None:
        if sep is None:
            got = cv2.filter2D(src, depth, k2, dst=dst, borderType=border)
        else:
            got = cv2.sepFilter2D(src, depth, sep[0], sep[1], dst=dst, borderType=border)
        if got.__array_interface__["data"][0] != dst.__array_interface__["data"][0]:
            dst[...] = got   # OpenCV made its own array after all
        return
    if sep is None:
        full = cv2.filter2D(src, depth, k2, anchor=(0, 0), borderType=border)
    else:
        full = cv2.sepFilter2D(src, depth, sep[0], sep[1], anchor=(0, 0), borderType=border)
    ho, wo = cropped_into.shape[:2]
    cropped_into[...] = full[:ho, :wo]


def _direct(img, k2, lo, hi, plan, acc, ho, wo) -> np.ndarray:
    """Exact direct sums of one image (NaN/inf where direct summation puts them)."""
    extra = (0,) if img.ndim == 3 else ()
    padded = pad_into(img[None], lo + extra, hi + extra, plan.boundary, plan.cval, dtype=acc)
    if img.ndim == 3:   # channels last: taps one pixel (C elements) apart along x
        c = img.shape[2]
        padded = padded.reshape(padded.shape[:2] + (padded.shape[2] * c,))
        y = taps_correlate(padded, k2, (ho, wo * c), (1, 1), (1, c))
        return y[0].reshape(ho, wo, c)
    return taps_correlate(padded, k2, (ho, wo), (1, 1), (1, 1))[0]
