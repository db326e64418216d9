"""Padding into a preallocated buffer, with the engines' spare room in the same allocation.

Equivalent to numpy.pad (tests check it), but it (a) pads a few extra samples after `hi`
that the GEMM engines need to run whole blocks (their values only feed discarded outputs)
and (b) copies the interior on all workers, so the whole input is copied once, in parallel.
"""
from __future__ import annotations

import numpy as np

from ...boundary import boundary_index
from .threads import run_chunks


def pad_into(x: np.ndarray, lo: tuple, hi: tuple, boundary: str, cval: float = 0.0, dtype=None) -> np.ndarray:
    """Pad the trailing len(lo) axes of x by (lo, hi) with numpy.pad's `boundary` mode.

    Returns a new C-contiguous array of `dtype` (default x.dtype).
    """
    dtype = np.dtype(dtype or x.dtype)
    nd = len(lo)
    lead = x.ndim - nd
    sizes = x.shape[lead:]
    shape = x.shape[:lead] + tuple(n + a + b for n, a, b in zip(sizes, lo, hi))
    buf = np.empty(shape, dtype=dtype)
    # Copy (and convert) the interior in slabs on all workers, split along the first axis long
    # enough to share (a batch axis, or a sliding axis for one long signal or one big image);
    # x may be any strided view, so no reshape (which could copy) is needed.
    offsets = (0,) * lead + tuple(lo)
    split = next((a for a in range(x.ndim) if x.shape[a] >= 8), 0)
    step = max(1, -(-x.shape[split] // 8))

    def copy(i0):
        i1 = min(i0 + step, x.shape[split])
        dst = tuple(slice(o + i0, o + i1) if a == split else slice(o, o + x.shape[a])
                    for a, o in enumerate(offsets))
        src = (slice(None),) * split + (slice(i0, i1),)
        np.copyto(buf[dst], x[src], casting="unsafe")

    run_chunks(list(range(0, x.shape[split], step)), copy, size=x.size)
    for ax in range(nd):
        a, n, b = lo[ax], sizes[ax], hi[ax]
        if a == 0 and b == 0:
            continue
        axis = lead + ax
        before = (slice(None),) * axis
        if boundary == "constant":
            buf[before + (slice(0, a),)] = cval
            buf[before + (slice(a + n, a + n + b),)] = cval
            continue
        # Fill whole hyperplanes from the (already padded in earlier axes) interior, so the
        # corners come out as numpy.pad's sequential per-axis padding makes them.
        src_lo = a + boundary_index(np.arange(-a, 0), n, boundary)
        src_hi = a + boundary_index(np.arange(n, n + b), n, boundary)
        if a:
            buf[before + (slice(0, a),)] = np.take(buf, src_lo, axis=axis)
        if b:
            buf[before + (slice(a + n, a + n + b),)] = np.take(buf, src_hi, axis=axis)
    return buf


def grow(xp: np.ndarray, sizes: tuple) -> np.ndarray:
    """Extend the trailing len(sizes) axes of xp with zeros to at least `sizes` (no copy when
    they are long enough). The engines use it for whole blocks: the extra samples only feed
    outputs that are dropped.

    >>> grow(np.ones((2, 3)), (5,)).tolist()
    [[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0]]
    """
    lead = xp.ndim - len(sizes)
    extra = [max(0, n - have) for n, have in zip(sizes, xp.shape[lead:])]
    if not any(extra):
        return xp
    return np.pad(xp, [(0, 0)] * lead + [(0, e) for e in extra])
