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

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Gathered-patch chunk size (elements): a few MB, so a chunk's copy and its GEMM stay
# near the L2/L3 caches instead of streaming a whole im2col buffer through memory.
_CHUNK_ELEMS = 1 << 20


def block_width(kw: int, stride: int, dilation: int) -> int:
    """Outputs per Toeplitz block along the last axis.

    The cost per output is about (Bw + e - 1) multiply-adds in the GEMM plus (Bw + e - 1)/Bw
    gathered inputs per kernel row; their balance on this machine's BLAS-to-copy speed ratio
    is near sqrt(80 * (e - 1)), rounded to a multiple of 8, at least 32 (BLAS loses efficiency
    on narrower products) and at most 256.
    """
    e = dilation * (kw - 1) + 1
    guess = math.sqrt(80.0 * max(e - 1, 1)) / max(stride, 1) ** 0.5
    return int(min(256, max(32, 8 * math.ceil(guess / 8))))


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


def _pad_last(xp: np.ndarray, axis_len: int, axis: int) -> np.ndarray:
    """Extend `axis` with zeros to `axis_len`: the extra samples only feed outputs we drop."""
    extra = axis_len - xp.shape[axis]
    if extra <= 0:
        return xp
    widths = [(0, 0)] * xp.ndim
    widths[axis] = (0, extra)
    return np.pad(xp, widths)


def direct_correlate(xp: np.ndarray, kernel: np.ndarray, out_sliding: tuple, stride: tuple,
                     dilation: tuple) -> np.ndarray:
    """Valid correlation of `xp` (batch, *P) with an N-D `kernel` over the trailing axes.

    The last axis is blocked into Toeplitz products; every other sliding axis is gathered
    (one row per kernel tap along it) into the contraction. The batch is merged into the
    first sliding axis so that one strided view covers the whole input: padding that axis to
    a multiple of its stride makes output rows equally spaced across images, and the few
    outputs that straddle two images are computed and dropped.

    Returns an array of shape (batch, *out_sliding) (a view into a larger buffer).
    """
    nd = kernel.ndim
    bt, padded = xp.shape[0], xp.shape[1:]
    kw, s_w, d_w = kernel.shape[-1], stride[-1], dilation[-1]
    o_w = out_sliding[-1]
    bw = block_width(kw, s_w, d_w)
    lw = (bw - 1) * s_w + (kw - 1) * d_w + 1
    nb = -(-o_w // bw)
    t2 = toeplitz_blocks(kernel, bw, s_w, d_w)
    it = xp.dtype.itemsize

    if nd == 1:
        # Each row holds a whole number of blocks, so block q starts at q*bw*s in the flat
        # buffer; one trailing zero block keeps the last window in bounds.
        nbr = max(nb, -(-padded[0] // (bw * s_w)))
        row = nbr * bw * s_w
        buf = np.zeros(bt * row + lw, dtype=xp.dtype)
        buf[: bt * row].reshape(bt, row)[:, : padded[0]] = xp
        n_rows = bt * nbr
        view = as_strided(buf, shape=(n_rows, lw), strides=(bw * s_w * it, it), writeable=False)
        y = np.empty((n_rows, bw), dtype=xp.dtype)
        _chunked_gemm(view, t2, y, n_rows, n_rows)
        return y.reshape(bt, nbr * bw)[:, :o_w]

    s0, d0 = stride[0], dilation[0]
    p0 = -(-padded[0] // s0) * s0
    m0 = p0 // s0
    w_need = (nb - 1) * bw * s_w + lw
    buf = _pad_last(_pad_last(np.ascontiguousarray(xp), p0, 1), max(w_need, padded[-1]), xp.ndim - 1)
    buf = np.ascontiguousarray(buf)
    st = buf.strides  # (batch, axis0, inner..., last)
    inner_out = tuple(out_sliding[1:-1])
    inner_k = tuple(kernel.shape[:-1])
    shape = (bt * m0,) + inner_out + (nb,) + inner_k + (lw,)
    strides = ((s0 * st[1],)
               + tuple(s * st[2 + i] for i, s in enumerate(stride[1:-1]))
               + (bw * s_w * it,)
               + (d0 * st[1],)
               + tuple(d * st[2 + i] for i, d in enumerate(dilation[1:-1]))
               + (it,))
    n_rows = (bt - 1) * m0 + out_sliding[0]  # rows past this would read beyond the buffer
    view = as_strided(buf, shape=(n_rows,) + shape[1:], strides=strides, writeable=False)
    y = np.empty((bt * m0,) + inner_out + (nb * bw,), dtype=xp.dtype)
    _chunked_gemm(view, t2, y, n_rows, bt * m0)
    y = y.reshape((bt, m0) + inner_out + (nb * bw,))
    return y[(slice(None), slice(0, out_sliding[0])) + tuple(slice(0, o) for o in inner_out) + (slice(0, o_w),)]


def _chunked_gemm(view: np.ndarray, t2: np.ndarray, y: np.ndarray, n_rows: int, y_rows: int) -> None:
    """y[:n_rows] = gather(view) @ t2, a chunk of leading rows at a time."""
    per_row = int(np.prod(view.shape[1:], dtype=np.int64))
    rows = max(1, _CHUNK_ELEMS // max(per_row, 1))
    k_len, bw = t2.shape
    y2 = y.reshape(y_rows, -1)
    scratch = np.empty((min(rows, n_rows),) + view.shape[1:], dtype=view.dtype)
    for r0 in range(0, n_rows, rows):
        r1 = min(r0 + rows, n_rows)
        z = scratch[: r1 - r0]
        np.copyto(z, view[r0:r1])
        np.matmul(z.reshape(-1, k_len), t2, out=y2[r0:r1].reshape(-1, bw))


def axis_pass(x: np.ndarray, taps: np.ndarray, axis: int, out_len: int, stride: int, dilation: int) -> np.ndarray:
    """Valid 1-D correlation of `x` along `axis` with `taps`, as banded left products.

    For a non-last axis the data after it is contiguous, so a block of `bh` outputs is
    T (bh, Lh) @ x[rows] with x's rows used in place (no gather): one GEMM per block whose
    long dimension is everything after `axis`. The last axis goes to direct_correlate.
    """
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        lead = x.shape[:-1]
        y = direct_correlate(x.reshape(-1, x.shape[-1]), taps, (out_len,), (stride,), (dilation,))
        return y.reshape(lead + (out_len,))
    x = np.ascontiguousarray(x)
    pre = int(np.prod(x.shape[:axis], dtype=np.int64))
    n = x.shape[axis]
    post = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    x3 = x.reshape(pre, n, post)
    k = taps.shape[0]
    bh = block_width(k, stride, dilation)
    y = np.empty((pre, out_len, post), dtype=x.dtype)
    it = x.dtype.itemsize
    full = out_len // bh
    if full:
        lh = (bh - 1) * stride + (k - 1) * dilation + 1
        t = toeplitz_blocks(taps, bh, stride, dilation).T  # (bh, lh)
        view = as_strided(x3, shape=(pre, full, lh, post),
                          strides=(n * post * it, bh * stride * post * it, post * it, it), writeable=False)
        y[:, : full * bh] = np.matmul(t, view).reshape(pre, full * bh, post)
    rem = out_len - full * bh
    if rem:
        start = full * bh * stride
        lr = (rem - 1) * stride + (k - 1) * dilation + 1
        t = toeplitz_blocks(taps, rem, stride, dilation).T  # (rem, lr)
        y[:, full * bh:] = np.matmul(t, x3[:, start:start + lr])
    return y.reshape(x.shape[:axis] + (out_len,) + x.shape[axis + 1:])
