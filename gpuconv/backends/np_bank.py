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
    # Chunk over images, and over rows of the first spatial axis when one image is too big.
    per_row = kk * n_out // max(out_spatial[0], 1) * groups * xp.itemsize
    rows = _chunk_rows(per_row, out_spatial[0])
    imgs = _chunk_rows(per_row * out_spatial[0], n) if rows == out_spatial[0] else 1
    row_len = n_out // max(out_spatial[0], 1)
    for i0 in range(0, n, imgs):
        for r0 in range(0, out_spatial[0], rows):
            r1 = min(r0 + rows, out_spatial[0])
            sub = view[(slice(i0, i0 + imgs),) + (slice(None),) * (2 + nd) + (slice(r0, r1),)]
            cols = np.ascontiguousarray(sub).reshape(sub.shape[0], groups, kk, -1)
            y[i0:i0 + imgs, :, :, r0 * row_len:r1 * row_len] = np.matmul(w, cols)
    return y.reshape((n, o) + tuple(out_spatial))


def conv_channels_last(xp: np.ndarray, weight: np.ndarray, groups: int, out_spatial: tuple,
                       stride: tuple, dilation: tuple) -> np.ndarray:
    """xp (N, *P, C) padded, weight (O, *k, C/groups) -> (N, *out_spatial, O)."""
    n, c = xp.shape[0], xp.shape[-1]
    o = weight.shape[0]
    cg, og = c // groups, o // groups
    ks = weight.shape[1:-1]
    nd = len(ks)
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
    per_row = kk * groups * xp.itemsize * (m_img // max(out_spatial[0], 1))
    rows = _chunk_rows(per_row, out_spatial[0])
    imgs = _chunk_rows(per_row * out_spatial[0], n) if rows == out_spatial[0] else 1
    row_len = m_img // max(out_spatial[0], 1)
    for i0 in range(0, n, imgs):
        for r0 in range(0, out_spatial[0], rows):
            r1 = min(r0 + rows, out_spatial[0])
            sub = view[i0:i0 + imgs, r0:r1]
            cols = np.ascontiguousarray(sub).reshape(-1, groups, kk)
            if groups == 1:
                res = cols[:, 0, :] @ wt[0]
            else:
                res = np.matmul(cols.transpose(1, 0, 2), wt).transpose(1, 0, 2).reshape(-1, o)
            y[i0:i0 + imgs, r0 * row_len:r1 * row_len] = res.reshape(sub.shape[0], -1, o)
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
        # 0.5 * (1 + tanh(y/2)) equals 1/(1+exp(-y)) without overflow for large |y|.
        np.multiply(y, 0.5, out=y)
        np.tanh(y, out=y)
        np.add(y, 1, out=y)
        np.multiply(y, 0.5, out=y)
    return y
