"""Kernel banks (conv1d / conv2d) on the CPU: im2col in bounded chunks, then one BLAS GEMM per
chunk and group.

A bank reuses every input patch for all output channels, so the patch matrix (K = C/groups *
kh * kw rows) is worth materialising: its cost is one copy per tap while the GEMM does O
multiply-adds per copied element. Chunks keep the patch buffer near the caches and the memory
bounded for large inputs.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

_PATCH_BYTES = 32 << 20


def _chunk_rows(per_item_bytes: int, n_items: int) -> int:
    return int(max(1, min(n_items, _PATCH_BYTES // max(per_item_bytes, 1))))


def _patch_chunks(n: int, rows_total: int, row_bytes: int):
    """(i0, i1, r0, r1): images i0..i1 and first-axis output rows r0..r1 whose patch matrix
    stays within _PATCH_BYTES (several images per chunk, or bands of one image's rows)."""
    rows = _chunk_rows(row_bytes, rows_total)
    imgs = _chunk_rows(row_bytes * rows_total, n) if rows == rows_total else 1
    for i0 in range(0, n, imgs):
        for r0 in range(0, rows_total, rows):
            yield i0, min(i0 + imgs, n), r0, min(r0 + rows, rows_total)


def conv_channels_first(xp: np.ndarray, weight: np.ndarray, groups: int, out_spatial: tuple,
                        stride: tuple, dilation: tuple) -> np.ndarray:
    """xp (N, C, *P) padded, weight (O, C/groups, *k) -> (N, O, *out_spatial)."""
    n, c = xp.shape[:2]
    o = weight.shape[0]
    cg, og = c // groups, o // groups
    ks = weight.shape[2:]
    nd = len(ks)
    kk = cg * int(np.prod(ks))
    st = xp.strides
    shape = (n, groups, cg) + ks + tuple(out_spatial)
    strides = ((st[0], cg * st[1], st[1])
               + tuple(d * st[2 + i] for i, d in enumerate(dilation))
               + tuple(s * st[2 + i] for i, s in enumerate(stride)))
    view = as_strided(xp, shape=shape, strides=strides, writeable=False)
    w = weight.reshape(groups, og, kk)
    n_out = int(np.prod(out_spatial))
    y = np.empty((n, groups, og, n_out), dtype=xp.dtype)
    row_len = n_out // max(out_spatial[0], 1)
    for i0, i1, r0, r1 in _patch_chunks(n, out_spatial[0], kk * row_len * groups * xp.itemsize):
        sub = view[(slice(i0, i1),) + (slice(None),) * (2 + nd) + (slice(r0, r1),)]
        cols = np.ascontiguousarray(sub).reshape(i1 - i0, groups, kk, -1)
        y[i0:i1, :, :, r0 * row_len:r1 * row_len] = np.matmul(w, cols)
    return y.reshape((n, o) + tuple(out_spatial))


def conv_channels_last(xp: np.ndarray, weight: np.ndarray, groups: int, out_spatial: tuple,
                       stride: tuple, dilation: tuple) -> np.ndarray:
    """xp (N, *P, C) padded, weight (O, *k, C/groups) -> (N, *out_spatial, O)."""
    n, c = xp.shape[0], xp.shape[-1]
    o = weight.shape[0]
    cg, og = c // groups, o // groups
    ks = weight.shape[1:-1]
    kk = int(np.prod(ks)) * cg
    st = xp.strides
    shape = (n,) + tuple(out_spatial) + (groups,) + ks + (cg,)
    strides = ((st[0],) + tuple(s * st[1 + i] for i, s in enumerate(stride))
               + (cg * st[-1],) + tuple(d * st[1 + i] for i, d in enumerate(dilation)) + (st[-1],))
    view = as_strided(xp, shape=shape, strides=strides, writeable=False)
    # weight (O, *k, Cg) -> (groups, K, Og), K ordered (*k, Cg) like the patches.
    wt = weight.reshape(groups, og, kk).transpose(0, 2, 1)
    m_img = int(np.prod(out_spatial))
    y = np.empty((n, m_img, o), dtype=xp.dtype)
    row_len = m_img // max(out_spatial[0], 1)
    for i0, i1, r0, r1 in _patch_chunks(n, out_spatial[0], kk * groups * xp.itemsize * row_len):
        cols = np.ascontiguousarray(view[i0:i1, r0:r1]).reshape(-1, groups, kk)
        if groups == 1:
            res = cols[:, 0, :] @ wt[0]
        else:
            res = np.matmul(cols.transpose(1, 0, 2), wt).transpose(1, 0, 2).reshape(-1, o)
        y[i0:i1, r0 * row_len:r1 * row_len] = res.reshape(i1 - i0, -1, o)
    return y.reshape((n,) + tuple(out_spatial) + (o,))


def apply_activation(y: np.ndarray, activation: str | None) -> np.ndarray:
    """The fused activations of conv2d, in place where possible; NaN propagates."""
    if activation == "relu":
        np.maximum(y, 0, out=y)
    elif activation == "leaky_relu":
        np.multiply(y, np.where(y < 0, y.dtype.type(0.01), y.dtype.type(1)), out=y)
    elif activation == "tanh":
        np.tanh(y, out=y)
    elif activation == "sigmoid":
        # 1/(1+e) for y >= 0 and e/(1+e) for y < 0 with e = exp(-|y|) <= 1: accurate to a few
        # ulps on both sides (0.5*(1+tanh(y/2)) cancels to 0 below y = -17 in float32) and no
        # overflow; NaN stays NaN
        negative = y < 0
        e = np.exp(-np.abs(y))
        np.divide(np.where(negative, e, y.dtype.type(1)), 1 + e, out=y)
    return y
