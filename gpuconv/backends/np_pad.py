"""Padding into a preallocated buffer, with the engines' spare room in the same allocation.

Equivalent to numpy.pad (tests check it), but it (a) pads a few extra samples after `hi`
that the GEMM engines need to run whole blocks (their values only feed discarded outputs)
and (b) copies the interior on all workers, so the whole input is copied once, in parallel.
"""
from __future__ import annotations

import numpy as np

from ..boundary import boundary_index
from .np_threads import run_chunks


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
    interior = tuple(slice(a, a + n) for a, n in zip(lo, sizes))
    # Copy (and convert) the interior in chunks of the first axis, on all workers; x may be
    # any strided view, so no reshape (which could copy) is needed.
    x1, b1 = (x, buf) if x.ndim > nd else (x[None], buf[None])
    inner = (slice(None),) * (x1.ndim - nd - 1) + interior
    step = max(1, -(-x1.shape[0] // 8))
    run_chunks(list(range(0, x1.shape[0], step)),
               lambda b0: np.copyto(b1[(slice(b0, b0 + step),) + inner], x1[b0:b0 + step], casting="unsafe"), size=x.size)
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
