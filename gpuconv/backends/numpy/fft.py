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

from .pad import grow
from .threads import run_chunks

# Per-axis block lengths below _MIN_BLOCK cost more in numpy calls than they save; a block's
# fixed cost is counted as _BLOCK_OVERHEAD samples per axis (the minimum length already
# keeps blocks from being tiny; a larger charge per axis compounds across axes).
_MIN_BLOCK = 32
_BLOCK_OVERHEAD = 64


def next_fast_len(n: int, primes: tuple = (2, 3, 5)) -> int:
    """Smallest number >= n whose prime factors are all in `primes` (which include 2).

    Examples
    --------
    >>> next_fast_len(1054), next_fast_len(522), next_fast_len(1), next_fast_len(4126, (2, 3, 5, 7))
    (1080, 540, 1, 4200)
    """
    smooth = _smooth_numbers(primes=tuple(primes))
    if n <= smooth[-1]:
        return smooth[bisect.bisect_left(smooth, n)]
    return 1 << max(n - 1, 0).bit_length()  # beyond the table: a power of two


def block_plan(out_len: int, span: int, stride: int, primes: tuple = (2, 3, 5), overhead: int | None = None,
               min_block: int | None = None) -> tuple:
    """(L, B, n): transform length, stride-1 outputs per block, number of blocks along one
    axis, minimising the transformed samples n*L (times log L) over `primes`-smooth L, with
    a fixed cost of `overhead` samples per block and blocks of at least `min_block` (the
    numpy tuning, _BLOCK_OVERHEAD and _MIN_BLOCK, when not given).

    `out_len` is the number of strided outputs; B is a multiple of `stride` so every block's
    outputs start on the strided grid.

    Examples
    --------
    >>> block_plan(100, 5, 2)   # 4 blocks of 54 samples, 50 stride-1 outputs (25 strided) each
    (54, 50, 4)
    """
    overhead = _BLOCK_OVERHEAD if overhead is None else overhead
    min_block = _MIN_BLOCK if min_block is None else min_block
    needed = (out_len - 1) * stride + 1  # stride-1 outputs that must be computed
    whole = next_fast_len(needed + span - 1, primes)

    def cost(n, length):
        # transform work plus a fixed cost per block (calls, copies), in samples
        return n * (length * math.log2(max(length, 2)) + overhead)

    best = (cost(1, whole), whole, -(-needed // stride) * stride, 1)
    # Blocks much longer than the kernel save nothing more; only lengths up to 32 spans
    # (and the single whole block above) are worth comparing.
    lo = max(span + stride, min_block)
    hi = min(whole - 1, max(32 * (span + stride), 4096))
    smooth = _smooth_numbers(primes=tuple(primes))
    for length in smooth[bisect.bisect_left(smooth, lo):bisect.bisect_right(smooth, hi)]:
        step = (length - span + 1) // stride * stride
        if step >= stride:
            n = -(-needed // step)
            if cost(n, length) < best[0]:
                best = (cost(n, length), length, step, n)
    return best[1:]


@functools.lru_cache(maxsize=None)
def _smooth_numbers(limit: int = 1 << 24, primes: tuple = (2, 3, 5)) -> tuple:
    """All numbers up to `limit` whose prime factors are in `primes`, sorted."""
    out = [1]
    for p in primes:
        grown = []
        for v in out:
            while v <= limit:
                grown.append(v)
                v *= p
        out = grown
    return tuple(sorted(out))


def fft_geometry(padded: tuple, kernel_shape: tuple, out_sliding: tuple, stride: tuple, dilation: tuple,
                 **tuning) -> list:
    """block_plan for every sliding axis (`tuning`: block_plan's primes, overhead, min_block)."""
    spans = [d * (k - 1) + 1 for k, d in zip(kernel_shape, dilation)]
    return [block_plan(o, e, s, **tuning) for o, e, s in zip(out_sliding, spans, stride)]


def dilated_kernel(kernel: np.ndarray, dilation: tuple, dtype=None) -> np.ndarray:
    """The kernel with its taps spread `dilation` apart and zeros between (span d*(k-1)+1).

    Examples
    --------
    >>> dilated_kernel(np.array([1.0, 2.0, 3.0]), (2,))
    array([1., 0., 2., 0., 3.])
    """
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel.shape, dilation))
    kd = np.zeros(span, dtype=kernel.dtype if dtype is None else dtype)
    kd[tuple(slice(None, None, d) for d in dilation)] = kernel
    return kd


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
    kf = np.conj(np.fft.rfftn(dilated_kernel(kernel, dilation), s=lengths, axes=tuple(range(nd))))
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
