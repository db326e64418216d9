"""Sliding-window correlation as BLAS matrix products (the numpy backend's direct engine).

Why GEMM: on the 2-core development machine numpy's per-tap ufunc accumulation runs at about
1.8 G taps/s, while OpenBLAS sgemm reaches about 170 GFLOP/s. Correlation along the last axis
is a product with a banded Toeplitz matrix; cutting the output into blocks of `Bw` samples
makes each block a small dense product whose wasted work is only (Bw+kw-1)/kw, far cheaper
than the per-tap passes (bench/NOTES.md has the measurements).

All functions take an already padded input `xp` of shape (batch, *padded_sliding) in the
compute dtype and return the correlation over its trailing axes (a "valid" correlation with
stride and dilation): y[i] = sum_j k[j] * xp[i*s + j*d] along every sliding axis.
"""
from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .pad import grow
from .threads import run_chunks

# Gathered-patch chunk size (elements): a few MB, so a chunk's copy and its GEMM stay
# near the L2/L3 caches instead of streaming a whole im2col buffer through memory.
_CHUNK_ELEMS = 1 << 20


def block_width(kw: int, stride: int, dilation: int) -> int:
    """Outputs per Toeplitz block along the last axis.

    The cost per output is about (Bw + e - 1) multiply-adds in the GEMM plus (Bw + e - 1)/Bw
    gathered inputs per kernel row. Measured on the development machine with one BLAS thread
    per worker (bench/NOTES.md, v5): Bw = 16 is best up to a span of 5, 24 up to 15; longer
    kernels (1-D filters of ~100 taps) balance near sqrt(80 (e - 1)), rounded up to a
    multiple of 8, at most 256.

    >>> block_width(3, 1, 1), block_width(11, 1, 1), block_width(101, 1, 1)
    (16, 24, 96)
    """
    e = dilation * (kw - 1) + 1
    if e <= 5:
        return 16
    if e <= 15:
        return 24
    guess = math.sqrt(80.0 * (e - 1)) / max(stride, 1) ** 0.5
    return int(min(256, max(24, 8 * math.ceil(guess / 8))))


def toeplitz_blocks(kernel: np.ndarray, bw: int, stride: int, dilation: int) -> np.ndarray:
    """Banded matrices T with T[a, p*s + j*d, p] = kernel[a, j], shape (K*Lw, bw).

    `a` runs over all leading kernel indices (flattened to K), `j` over the last axis.
    """
    kw = kernel.shape[-1]
    k2 = kernel.reshape(-1, kw)
    lw = (bw - 1) * stride + (kw - 1) * dilation + 1
    t = np.zeros((k2.shape[0], lw, bw), dtype=kernel.dtype)
    p = np.arange(bw)
    rows = p[None, :] * stride + np.arange(kw)[:, None] * dilation  # (kw, bw)
    t[:, rows, p[None, :]] = k2[:, :, None]
    return t.reshape(-1, bw)


def _geometry(padded: tuple, kernel_shape: tuple, out_sliding: tuple, stride: tuple, dilation: tuple) -> dict:
    """Block sizes of direct_correlate and the padded extent it needs (see padded_extent)."""
    kw, s_w, d_w = kernel_shape[-1], stride[-1], dilation[-1]
    bw = block_width(kw, s_w, d_w)
    lw = (bw - 1) * s_w + (kw - 1) * d_w + 1
    nb = -(-out_sliding[-1] // bw)
    w_need = max(padded[-1], (nb - 1) * bw * s_w + lw)
    if len(kernel_shape) == 1:
        # each row a whole number of blocks, so block q of the flattened batch starts at q*bw*s
        row = -(-w_need // (bw * s_w)) * bw * s_w
        return dict(bw=bw, lw=lw, nb=nb, extent=(row,))
    s0 = stride[0]
    return dict(bw=bw, lw=lw, nb=nb, extent=(-(-padded[0] // s0) * s0,) + tuple(padded[1:-1]) + (w_need,))


def padded_extent(padded: tuple, kernel_shape: tuple, out_sliding: tuple, stride: tuple, dilation: tuple) -> tuple:
    """The sliding shape direct_correlate works on without copying its input: `padded`
    grown at the end of the first axis (to a multiple of its stride) and of the last axis
    (to whole blocks). Callers that pad anyway can pad to this directly."""
    return _geometry(padded, kernel_shape, out_sliding, stride, dilation)["extent"]


def direct_correlate(xp: np.ndarray, kernel: np.ndarray, out_sliding: tuple, stride: tuple,
                     dilation: tuple, epilogue=None) -> np.ndarray:
    """Valid correlation of `xp` (batch, *P) with an N-D `kernel` over the trailing axes.

    The last axis is blocked into Toeplitz products; every other sliding axis is gathered
    (one row per kernel tap along it) into the contraction. The batch is merged into the
    first sliding axis (the blocks, for 1-D kernels) so that one strided view covers the
    whole input: padding that axis to a multiple of its stride makes outputs equally spaced
    across images, and the few outputs that straddle two images are computed and dropped.
    `xp` may already be extended to padded_extent(...); otherwise it is copied once. It may
    hold any real dtype (uint8 images, say): the gather converts to the kernel's dtype as it
    copies, so no separate converted copy of the input is made.

    Returns an array of shape (batch, *out_sliding) in the kernel's dtype (a view into a
    larger buffer). `epilogue(values, (b, rows))`, if given, is called for every finished
    chunk of valid outputs (a view of image b's `rows` along the first output axis) while it
    is still in cache.
    """
    nd = kernel.ndim
    bt = xp.shape[0]
    g = _geometry(xp.shape[1:], kernel.shape, out_sliding, stride, dilation)
    bw, lw, nb, extent = g["bw"], g["lw"], g["nb"], g["extent"]
    buf = np.ascontiguousarray(grow(xp, extent))
    t2 = toeplitz_blocks(kernel, bw, stride[-1], dilation[-1])
    it = buf.dtype.itemsize
    s_w = stride[-1]

    if nd == 1:
        nbr = extent[0] // (bw * s_w)
        n_rows = (bt - 1) * nbr + nb  # blocks past this would read beyond the buffer
        view = as_strided(buf, shape=(n_rows, lw), strides=(bw * s_w * it, it), writeable=False)
        y = np.empty((bt * nbr, bw), dtype=kernel.dtype)
        o = out_sliding[0]

        def finish_blocks(q0, q1):  # blocks q0..q1 of the merged rows -> images' outputs
            for b in range(q0 // nbr, (q1 - 1) // nbr + 1):
                first, last = max(q0, b * nbr) * bw - b * nbr * bw, min(q1, (b + 1) * nbr) * bw - b * nbr * bw
                last = min(last, o)
                if first < last:
                    flat = y[b * nbr:(b + 1) * nbr].reshape(-1)
                    epilogue(flat[first:last], (b, slice(first, last)))

        _chunked_gemm(view, t2, y, n_rows, bt * nbr, finish_blocks if epilogue else None)
        return y.reshape(bt, nbr * bw)[:, :o]

    s0, d0 = stride[0], dilation[0]
    m0 = extent[0] // s0
    st = buf.strides  # (batch, axis0, inner..., last)
    inner_out = tuple(out_sliding[1:-1])
    inner_k = tuple(kernel.shape[:-1])
    strides = ((s0 * st[1],)
               + tuple(s * st[2 + i] for i, s in enumerate(stride[1:-1]))
               + (bw * s_w * it,)
               + (d0 * st[1],)
               + tuple(d * st[2 + i] for i, d in enumerate(dilation[1:-1]))
               + (it,))
    n_rows = (bt - 1) * m0 + out_sliding[0]  # rows past this would read beyond the buffer
    view = as_strided(buf, shape=(n_rows,) + inner_out + (nb,) + inner_k + (lw,), strides=strides, writeable=False)
    y = np.empty((bt * m0,) + inner_out + (nb * bw,), dtype=kernel.dtype)
    crop = tuple(slice(0, o) for o in inner_out) + (slice(0, out_sliding[-1]),)

    def finish_rows(r0, r1):  # merged rows r0..r1 -> the valid rows of each image
        for b in range(r0 // m0, (r1 - 1) // m0 + 1):
            first, last = max(r0, b * m0), min(r1, b * m0 + out_sliding[0])
            if first < last:
                epilogue(y[(slice(first, last),) + crop], (b, slice(first - b * m0, last - b * m0)))

    _chunked_gemm(view, t2, y, n_rows, bt * m0, finish_rows if epilogue else None)
    y = y.reshape((bt, m0) + inner_out + (nb * bw,))
    return y[(slice(None), slice(0, out_sliding[0])) + tuple(slice(0, o) for o in inner_out) + (slice(0, out_sliding[-1]),)]


def _chunked_gemm(view: np.ndarray, t2: np.ndarray, y: np.ndarray, n_rows: int, y_rows: int,
                  on_rows=None) -> None:
    """y[:n_rows] = gather(view) @ t2, a chunk of leading rows at a time; on_rows(r0, r1)
    runs after each chunk, on the same worker."""
    per_row = int(np.prod(view.shape[1:], dtype=np.int64))
    rows = max(1, _CHUNK_ELEMS // max(per_row, 1))
    k_len, bw = t2.shape
    y2 = y.reshape(y_rows, -1)
    local = threading.local()  # one scratch buffer per worker thread

    def work(r0):
        r1 = min(r0 + rows, n_rows)
        if getattr(local, "scratch", None) is None:
            local.scratch = np.empty((min(rows, n_rows),) + view.shape[1:], dtype=t2.dtype)
        z = local.scratch[: r1 - r0]
        np.copyto(z, view[r0:r1], casting="unsafe")  # gathers and converts in one copy
        np.matmul(z.reshape(-1, k_len), t2, out=y2[r0:r1].reshape(-1, bw))
        if on_rows is not None:
            on_rows(r0, r1)

    run_chunks(list(range(0, n_rows, rows)), work, size=y.size)


def axis_pass(x: np.ndarray, taps: np.ndarray, axis: int, out_len: int, stride: int, dilation: int) -> np.ndarray:
    """Valid 1-D correlation of `x` along `axis` with `taps`, as banded left products.

    For a non-last axis the data after it is a row with unit stride, so a block of `bh`
    outputs is T (bh, Lh) @ x[rows] with x's rows read in place (no gather): one GEMM per
    block, written straight into the result, blocks spread over the workers. The last axis
    goes to direct_correlate.
    """
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        lead = x.shape[:-1]
        y = direct_correlate(x.reshape(-1, x.shape[-1]), taps, (out_len,), (stride,), (dilation,))
        return y.reshape(lead + (out_len,))
    pre = int(np.prod(x.shape[:axis], dtype=np.int64))
    n = x.shape[axis]
    post = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    try:  # a view when x's rows after `axis` are one unit-stride run (the usual case)
        x3 = x.reshape(pre, n, post) if x.strides[-1] == x.itemsize else None
    except ValueError:
        x3 = None
    if x3 is None or x3.strides[-1] != x.itemsize:
        x3 = np.ascontiguousarray(x).reshape(pre, n, post)
    k = taps.shape[0]
    bh = block_width(k, stride, dilation)
    y = np.empty((pre, out_len, post), dtype=x.dtype)
    full = out_len // bh
    rem = out_len - full * bh
    bands = {bh: toeplitz_blocks(taps, bh, stride, dilation).T}  # (bh, lh)
    if rem:
        bands[rem] = toeplitz_blocks(taps, rem, stride, dilation).T

    def work(job):
        p, b = divmod(job, full + (1 if rem else 0))
        rows = bh if b < full else rem
        t = bands[rows]
        start = b * bh * stride
        np.matmul(t, x3[p, start:start + t.shape[1]], out=y[p, b * bh:b * bh + rows])

    run_chunks(list(range(pre * (full + (1 if rem else 0)))), work, size=y.size)
    return y.reshape(x.shape[:axis] + (out_len,) + x.shape[axis + 1:])
