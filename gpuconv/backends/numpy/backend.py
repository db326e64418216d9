"""The numpy backend: the CPU fallback, and the reference the other backends are tested on.

It receives checked plans (gpuconv.plan) and x in its own layout. It picks an engine
(Toeplitz GEMM, taps, separable passes, FFT, and OpenCV's filter2D/sepFilter2D where OpenCV
is installed; gpuconv.backends.numpy.cost for "auto"), folds
channels-last batches into the last axis when that avoids transposes, pads once with
numpy.pad's meaning (gpuconv.backends.numpy.pad), runs the engine and applies the shared epilogue
(NaN/inf check, then gpuconv.dtypes.finish) chunk by chunk.
"""
from __future__ import annotations

import math

import numpy as np

from . import cost, opencv
from ...decompose import rank_tolerance, separable_terms
from ...dtypes import finish, representable
from ...plan import ConvPlan, CorrelatePlan
from .bank import apply_activation, conv_channels_first, conv_channels_last
from .fft import fft_correlate
from .gather import gather_correlate, sparse_windows
from .fft import padded_extent as fft_extent
from .pad import pad_into
from .taps import taps_correlate
from .threads import run_chunks
from .toeplitz import axis_pass, direct_correlate, padded_extent


# Channels-last folding pays while the kernel span stretched by C stays short (image
# channels); wider feature maps take the transposing path.
_MAX_FOLD = 8
# Padded input per group of a large batch (see NumpyBackend._correlate).
_GROUP_BYTES = 64 << 20


class Epilogue:
    """The end of every correlation, applied chunk by chunk: check, recompute, clip, cast.

    The GEMM and FFT engines multiply every input of a block (or plane) by the zeros of the
    band, so one NaN/inf input would poison outputs it does not reach. A finite chunk sum
    proves no such input was touched; a chunk whose sum is not finite is recomputed tap by
    tap, which gives the IEEE result of direct summation. Then `finish` (clip, round,
    saturate) writes the chunk into the result.
    """

    def __init__(self, out, compute_dtype, result_dtype, clip, xp, kernel, args, exact: bool):
        self.out = out  # (batch, *out_sliding) in the result dtype, written chunk by chunk
        self.same_dtype = np.dtype(result_dtype) == np.dtype(compute_dtype)
        self.result_dtype, self.clip = result_dtype, clip
        self.xp, self.kernel, self.args = xp, kernel, args
        self.exact = exact  # the engine already sums each window exactly (taps)
        self.redo = {}

    def __call__(self, values: np.ndarray, sel: tuple) -> None:
        """Finish the engine's `values` (any view) for out[sel].

        With the compute dtype as result dtype the values are copied once, into the result,
        and finished there (not at all if `values` already is that part of the result);
        otherwise they go through one compute-dtype copy and the casting write.
        """
        if self.same_dtype:
            part = self.out[sel]
            if not _same_view(values, part):
                np.copyto(part, values)
        else:
            part = np.array(values, dtype=values.dtype)
        finite = bool(np.isfinite(np.sum(part)))
        if not finite and not self.exact:
            b = sel[0]
            if b not in self.redo:
                self.redo[b] = taps_correlate(self.xp[b:b + 1], self.kernel, *self.args)[0]
            part[...] = self.redo[b][sel[1:]]
        if self.same_dtype:
            finish(part, self.result_dtype, self.clip, finite=finite)
        else:
            finish(part, self.result_dtype, self.clip, out=self.out[sel], finite=finite)


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b are the same elements (same start, shape and strides)."""
    return (a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def finish_chunks(y: np.ndarray, epilogue: Epilogue) -> np.ndarray:
    """Run `epilogue` over an engine's result view in chunks of about 64K values
    (image, band of rows), on all workers, so its passes run in cache."""
    rows = y.shape[1] if y.ndim > 1 else 1
    per_row = max(1, y[0].size // rows) if y.ndim > 1 else y.shape[-1]
    band = max(1, min(rows, (1 << 16) // per_row))
    jobs = [(b, r) for b in range(y.shape[0]) for r in range(0, rows, band)]

    def work(job):
        b, r = job
        sel = (b, slice(r, r + band)) if y.ndim > 1 else (b,)
        epilogue(y[sel], sel)

    run_chunks(jobs, work, size=y.size)
    return epilogue.out


def separable_correlate(xp: np.ndarray, terms: list, out_sliding: tuple, stride: tuple,
                        dilation: tuple) -> np.ndarray:
    """Sum over terms of 1-D passes along each sliding axis (last axis first)."""
    nd = len(out_sliding)
    total = None
    for taps in terms:
        y = xp
        for i in reversed(range(nd)):
            y = axis_pass(y, taps[i], 1 + i, out_sliding[i], stride[i], dilation[i])
        if total is None:
            # the next term adds into it, and y may be a view into a pass's scratch
            total = np.array(y) if len(terms) > 1 else y
        else:
            total += y
    return total


class NumpyBackend:
    """Backend over numpy arrays (see module docstring)."""

    name = "numpy"

    def resolve_method(self, plan: CorrelatePlan, kernel: np.ndarray) -> tuple:
        """(engine, separable terms or None): "auto" asks the cost model among all engines,
        "direct" between its two (Toeplitz GEMM, taps); 1-D kernels are never "separable".
        A kernel with NaN or inf runs direct whatever the method asks (no SVD, and an FFT
        would spread it over the whole image); "separable" on a kernel too large to split
        runs as "auto" without it."""
        if not np.isfinite(kernel).all() and plan.method in ("auto", "separable"):
            # exact direct sums only: OpenCV's DFT would spread the kernel's NaN/inf
            return cost.choose_numpy(plan, None, ("toeplitz", "taps")), None
        terms = None
        if plan.method in ("separable", "auto") and plan.ndim > 1:
            terms = separable_terms(kernel, rank_tolerance(kernel.shape, plan.compute_dtype))
        rank = len(terms) if terms else None
        if plan.method == "auto" or (plan.method == "separable" and plan.ndim > 1 and terms is None):
            return cost.choose_numpy(plan, rank), terms
        if plan.method == "direct" or (plan.method == "separable" and plan.ndim == 1):
            return cost.choose_numpy(plan, None, cost.DIRECT), None
        if plan.method == "separable":  # the numpy passes, or OpenCV's sepFilter2D for rank 1
            return cost.choose_numpy(plan, rank, ("separable", "opencv") if rank == 1 else ("separable",)), terms
        if plan.method in cost.ENGINES:  # "fft", or an engine named directly (tests, calibration)
            if cost.usable(plan, plan.method, rank):
                return plan.method, terms
            return cost.choose_numpy(plan, rank), terms
        raise ValueError(f"method={plan.method!r} is not a numpy engine")

    def correlate(self, x: np.ndarray, kernel: np.ndarray, plan: CorrelatePlan, out: np.ndarray | None = None):
        """Correlate x with kernel over plan.axes; returns plan.result_shape in plan.result_dtype.
        `out` (that shape and dtype) may be written and returned instead of a new array (the
        OpenCV engine writes C-contiguous `out` directly); the caller copies otherwise."""
        with np.errstate(invalid="ignore", over="ignore"):  # IEEE results are the contract
            return self._correlate(x, kernel, plan, out)

    @staticmethod
    def channels_fold(x: np.ndarray, plan: CorrelatePlan, method: str) -> int:
        """C > 1 when x is (..., *sliding, *trailing batch) in C order with trailing batch
        size C <= _MAX_FOLD and stride 1 on the last sliding axis: the last sliding axis and
        the trailing axes then form one axis of length W*C that a kernel dilated by C
        filters channel by channel, with no transposes. Otherwise 1."""
        axes, nd = plan.axes, plan.ndim
        if method not in ("toeplitz", "taps", "separable") or plan.stride[-1] != 1 or not x.flags.c_contiguous:
            return 1
        if axes != tuple(range(axes[0], axes[0] + nd)) or axes[-1] == x.ndim - 1:
            return 1
        c = int(np.prod(x.shape[axes[-1] + 1:]))
        return c if 1 < c <= _MAX_FOLD else 1

    def _correlate(self, x: np.ndarray, kernel: np.ndarray, plan: CorrelatePlan, out=None) -> np.ndarray:
        cd = plan.compute_dtype
        if sparse_windows(plan):  # taps mostly in the padding: gather, never pad
            nd = plan.ndim
            y = gather_correlate(np, x, kernel, plan).reshape(plan.out_shape)
            return finish(np.moveaxis(y, tuple(range(y.ndim - nd, y.ndim)), plan.axes), plan.result_dtype, plan.clip)
        k = np.asarray(kernel, dtype=cd)
        method, terms = self.resolve_method(plan, kernel)
        if method == "opencv":
            return opencv.correlate(x, kernel, plan, terms, out=out)
        fold = self.channels_fold(x, plan, method)
        nd = plan.ndim
        if fold > 1:
            xb = x.reshape((-1,) + tuple(plan.in_sliding) + (fold,))
        else:
            xb = np.moveaxis(x, plan.axes, tuple(range(x.ndim - nd, x.ndim)))  # a view
        # Engine geometry on the (possibly folded) problem: the last axis is W*C long and
        # the kernel steps C elements per tap along it.
        padded = list(plan.padded_sliding)
        dilation = plan.dilation[:-1] + (plan.dilation[-1] * fold,)
        out_sliding = plan.out_sliding[:-1] + (plan.out_sliding[-1] * fold,)
        args = (out_sliding, plan.stride, dilation)
        merged = padded[:-1] + [padded[-1] * fold]
        if method == "toeplitz":
            extent = padded_extent(tuple(merged), plan.kernel_shape, *args)
        elif method == "separable":
            last = padded_extent(tuple(merged[-1:]), plan.kernel_shape[-1:], out_sliding[-1:], plan.stride[-1:], dilation[-1:])
            extent = tuple(merged[:-1]) + last
        elif method == "fft":
            extent = fft_extent(tuple(merged), plan.kernel_shape, *args)
        else:
            extent = tuple(merged)
        # pad straight to the engine's working extent (in whole pixels): one copy in all
        hi = tuple(h + e - p for h, e, p in zip(plan.pad_hi[:-1], extent[:-1], merged[:-1]))
        hi += (plan.pad_hi[-1] + -(-(extent[-1] - merged[-1]) // fold),)
        # The direct engines convert as they read, so they can take the input in its own
        # dtype (a uint8 image pads at a quarter of the float32 cost), as long as the fill
        # value of a constant boundary is representable there.
        pad_dtype = cd
        if method in ("toeplitz", "taps") and (plan.boundary != "constant" or representable(plan.cval, x.dtype)):
            pad_dtype = x.dtype
        lo = plan.pad_lo + ((0,) if fold > 1 else ())
        hi = hi + ((0,) if fold > 1 else ())
        taps = None if terms is None else [[t.astype(cd) for t in term] for term in terms]
        # Large batches go in groups along the first batch axis (about _GROUP_BYTES of padded
        # input each), so memory stays near input + output + one group and each group's
        # passes stay closer to the caches. A lone image is one group.
        if xb.ndim == len(lo):
            xb = xb[None]
        per_item = math.prod(xb.shape[1:len(xb.shape) - len(lo)]) * math.prod(
            n + a + b for n, a, b in zip(xb.shape[len(xb.shape) - len(lo):], lo, hi)) * np.dtype(cd).itemsize
        group = max(1, _GROUP_BYTES // max(per_item, 1))
        # xb's leading axes are the batch (with a channels-last fold, C is in the last axis).
        # One group: the engine's own buffer may become the result; several: one result array.
        starts = list(range(0, xb.shape[0], group))
        n_flat = math.prod(xb.shape[:xb.ndim - len(lo)])
        y = None if len(starts) == 1 else np.empty((n_flat,) + tuple(out_sliding), dtype=plan.result_dtype)
        rows_per_item = n_flat // xb.shape[0]
        for g0 in starts:
            xp = pad_into(xb[g0:g0 + group], lo, hi, plan.boundary, plan.cval, dtype=pad_dtype)
            if fold > 1:
                xp = xp.reshape(xp.shape[:-2] + (xp.shape[-2] * fold,))
            xp = xp.reshape((-1,) + xp.shape[xp.ndim - nd:])  # contiguous: a view
            out = None if y is None else y[g0 * rows_per_item:g0 * rows_per_item + xp.shape[0]]
            result = self._run_engine(method, xp, k, taps, args, plan, out)
            y = result if y is None else y
        if fold > 1:
            return y.reshape(plan.result_shape)
        y = y.reshape(plan.out_shape)
        trailing = tuple(range(y.ndim - nd, y.ndim))
        return np.ascontiguousarray(np.moveaxis(y, trailing, plan.axes))

    @staticmethod
    def _run_engine(method: str, xp: np.ndarray, k: np.ndarray, taps, args: tuple, plan: CorrelatePlan,
                    out: np.ndarray | None) -> np.ndarray:
        """Correlate one padded group with `method` and finish it into `out` (allocated when
        None, or the engine's own result buffer when that is compact and of the result
        dtype). Returns the finished result."""
        shape = (xp.shape[0],) + tuple(args[0])
        cd, rd = plan.compute_dtype, plan.result_dtype

        def epilogue_into(buffer):
            return Epilogue(buffer, cd, rd, plan.clip, xp, k, args, exact=method == "taps")

        if method in ("taps", "toeplitz"):
            epilogue = epilogue_into(np.empty(shape, dtype=rd) if out is None else out)
            if method == "taps":
                # sums each window exactly; the epilogue is fused into its chunks, and with the
                # compute dtype as result dtype the engine writes the result buffer itself
                taps_correlate(xp, k, *args, epilogue=epilogue, out=epilogue.out if epilogue.same_dtype else None)
            else:  # runs the epilogue on each chunk while it is hot
                direct_correlate(xp, k, *args, epilogue=epilogue)
            return epilogue.out
        y = fft_correlate(xp, k, *args) if method == "fft" else separable_correlate(xp, taps, *args)
        if out is None:
            own = np.dtype(rd) == np.dtype(cd) and y.flags.c_contiguous and y.shape == shape
            out = y if own else np.empty(shape, dtype=rd)  # finished in place when it is its own
        return finish_chunks(y, epilogue_into(out))

    def conv(self, x: np.ndarray, weight: np.ndarray, bias, plan: ConvPlan) -> np.ndarray:
        """Kernel bank: x (N, C, *S) or (N, *S, C) -> plan.out_shape (batched form)."""
        with np.errstate(invalid="ignore", over="ignore"):
            return self._conv(x, weight, bias, plan)

    def _conv(self, x: np.ndarray, weight: np.ndarray, bias, plan: ConvPlan) -> np.ndarray:
        cd = plan.compute_dtype
        x = np.asarray(x).astype(cd, copy=False)
        w = np.asarray(weight, dtype=cd)
        nd = len(plan.in_spatial)
        if plan.channels_last:
            widths = [(0, 0)] + list(zip(plan.pad_lo, plan.pad_hi)) + [(0, 0)]
        else:
            widths = [(0, 0), (0, 0)] + list(zip(plan.pad_lo, plan.pad_hi))
        if plan.channels == 0:  # no input channels: every sum is empty, as in torch (bias only)
            y = np.zeros(plan.batched_out_shape, dtype=cd)
        else:
            xp = np.pad(x, widths, mode=plan.boundary) if plan.boundary != "constant" else np.pad(x, widths)
            engine = conv_channels_last if plan.channels_last else conv_channels_first
            y = engine(xp, w, plan.groups, plan.out_spatial, plan.stride, plan.dilation)
        if bias is not None:
            b = np.asarray(bias, dtype=cd)
            y += b if plan.channels_last else b.reshape((-1,) + (1,) * nd)
        y = apply_activation(y, plan.activation)
        return finish(y, plan.result_dtype, plan.clip)
