"""Correlation by real FFTs (numpy.fft), overlap-save in blocks, for large kernels.

Circular cross-correlation over a transform length L needs no extra padding for the "valid"
outputs of a block of L samples: its first L-e+1 outputs only reach inside the block. So the
padded input is cut into overlapping blocks of L (stepping by B = L-e+1 outputs) on every
sliding axis, each block is transformed, multiplied by the kernel's spectrum (computed once)
and transformed back. Small blocks stay in cache and spread over the workers; one block
covering the whole input is the plain FFT method. Lengths are 5-smooth (2^a 3^b 5^c), where
pocketfft runs about 1.5x faster than at awkward sizes.

Memory is bounded by one block row (all blocks sharing a first-axis index) per worker: the
whole batch's spectra never exist at once.
"""
from __future__ import annotations

import bisect
import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .np_pad import grow
from .np_threads import run_chunks

# Per-axis block lengths below _MIN_BLOCK cost more in numpy calls than they save; a block's
# fixed cost is counted as _BLOCK_OVERHEAD samples per axis (the minimum length already
# keeps blocks from being tiny; a larger charge per axis compounds across axes).
_MIN_BLOCK = 32
_BLOCK_OVERHEAD = 64


def next_fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n.

    Examples
    --------
    >>> next_fast_len(1054), next_fast_len(522), next_fast_len(1)
    (1080, 540, 1)
    """
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = -(-n // p35)  # smallest power of two times p35 reaching n
            cand = p35 * (1 << max(q - 1, 0).bit_length())
            best = min(best, cand)
            p35 *= 3
        p5 *= 5
    return best


def block_plan(out_len: int, span: int, stride: int) -> tuple:
    """(L, B, n): transform length, stride-1 outputs per block, number of blocks along one
    axis, minimising the transformed samples n*L (times log L) over 5-smooth L.

    `out_len` is the number of strided outputs; B is a multiple of `stride` so every block's
    outputs start on the strided grid.
    """
    needed = (out_len - 1) * stride + 1  # stride-1 outputs that must be computed
    whole = next_fast_len(needed + span - 1)

    def cost(n, length):
        # transform work plus a fixed cost per block (numpy calls, copies), in samples
        return n * (length * math.log2(max(length, 2)) + _BLOCK_OVERHEAD)

    best = (cost(1, whole), whole, -(-needed // stride) * stride, 1)
    # Blocks much longer than the kernel save nothing more; only lengths up to 32 spans
    # (and the single whole block above) are worth comparing.
    lo = max(span + stride, _MIN_BLOCK)
    hi = min(whole - 1, max(32 * (span + stride), 4096))
    for length in _smooth_numbers()[bisect.bisect_left(_smooth_numbers(), lo):bisect.bisect_right(_smooth_numbers(), hi)]:
        step = (length - span + 1) // stride * stride
        if step >= stride:
            n = -(-needed // step)
            if cost(n, length) < best[0]:
                best = (cost(n, length), length, step, n)
    return best[1:]


@functools.lru_cache(maxsize=None)
def _smooth_numbers(limit: int = 1 << 24) -> tuple:
    """All 2^a 3^b 5^c up to `limit`, sorted."""
    out = []
    p5 = 1
    while p5 <= limit:
        p35 = p5
        while p35 <= limit:
            p = p35
            while p <= limit:
                out.append(p)
                p *= 2
            p35 *= 3
        p5 *= 5
    return tuple(sorted(out))


def fft_geometry(padded: tuple, kernel_shape: tuple, out_sliding: tuple, stride: tuple, dilation: tuple) -> list:
    """block_plan for every sliding axis."""
    spans = [d * (k - 1) + 1 for k, d in zip(kernel_shape, dilation)]
    return [block_plan(o, e, s) for o, e, s in zip(out_sliding, spans, stride)]


def padded_extent(padded: tuple, kernel_shape: tuple, out_sliding: tuple, stride: tuple, dilation: tuple) -> tuple:
    """The padded size fft_correlate reads: whole blocks on every axis (extra samples only
    feed discarded outputs)."""
    geo = fft_geometry(padded, kernel_shape, out_sliding, stride, dilation)
    return tuple(max(p, (n - 1) * b + length) for p, (length, b, n) in zip(padded, geo))


def fft_lengths(padded: tuple, kernel_shape: tuple, out_sliding: tuple, stride: tuple, dilation: tuple) -> list:
    """(L, n) per axis, for the cost model."""
    return [(length, n) for length, _, n in fft_geometry(padded, kernel_shape, out_sliding, stride, dilation)]


def fft_correlate(xp: np.ndarray, kernel: np.ndarray, out_sliding: tuple, stride: tuple,
                  dilation: tuple) -> np.ndarray:
    """Valid correlation of `xp` (batch, *P) with `kernel` over the trailing axes via FFT."""
    nd = kernel.ndim
    geo = fft_geometry(xp.shape[1:], kernel.shape, out_sliding, stride, dilation)
    lengths = tuple(g[0] for g in geo)
    steps = tuple(g[1] for g in geo)
    counts = tuple(g[2] for g in geo)
    xp = np.ascontiguousarray(grow(xp, tuple((n - 1) * b + length for length, b, n in geo)))
    dtype = xp.dtype if xp.dtype.kind == "f" else kernel.dtype
    # dilated kernel: taps spread d apart; its conjugate spectrum turns the product into a
    # cross-correlation
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel.shape, dilation))
    kd = np.zeros(span, dtype=kernel.dtype)
    kd[tuple(slice(None, None, d) for d in dilation)] = kernel
    kf = np.conj(np.fft.rfftn(kd, s=lengths, axes=tuple(range(nd))))
    st = xp.strides
    view = as_strided(xp, shape=(xp.shape[0],) + counts + lengths,
                      strides=(st[0],) + tuple(b * s for b, s in zip(steps, st[1:])) + st[1:], writeable=False)
    per_block = tuple(b // s for b, s in zip(steps, stride))  # strided outputs per block
    y = np.empty((xp.shape[0],) + tuple(n * p for n, p in zip(counts, per_block)), dtype=dtype)
    axes = tuple(range(nd - 1, 2 * nd - 1))  # block sample axes after the n_1.. axes
    keep = tuple(slice(0, b, s) for b, s in zip(steps, stride))
    # r has axes (n_1..n_{nd-1}, b_0..b_{nd-1}); the output wants (b_0, n_1, b_1, ...)
    order = (nd - 1,) + tuple(x for i in range(1, nd) for x in (i - 1, nd - 1 + i))
    group = 1 if nd > 1 else max(1, (1 << 18) // lengths[0])  # 1-D: many blocks per job

    def work(job):
        b, j0 = job
        if nd == 1:
            blocks = view[b, j0:j0 + group]  # (m, L)
            r = np.fft.irfft(np.fft.rfft(blocks, axis=-1) * kf, n=lengths[0], axis=-1)[:, keep[0]]
            y[b, j0 * per_block[0]:(j0 + r.shape[0]) * per_block[0]] = r.reshape(-1)
            return
        spec = np.fft.rfftn(view[b, j0], axes=axes)  # (n_1.., L_0.., L_last//2+1)
        spec *= kf
        r = np.fft.irfftn(spec, s=lengths, axes=axes)[(Ellipsis,) + keep]
        rows = slice(j0 * per_block[0], (j0 + 1) * per_block[0])
        y[b, rows] = r.transpose(order).reshape((per_block[0],) + y.shape[2:])

    first = counts[0]
    run_chunks([(b, j) for b in range(xp.shape[0]) for j in range(0, first, group)], work, size=xp.size)
    return y[(slice(None),) + tuple(slice(0, o) for o in out_sliding)]
