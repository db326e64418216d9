"""Correlation by real FFTs (numpy.fft) for large kernels.

Circular cross-correlation over a transform length L >= the padded length P needs no extra
padding for the "valid" outputs: y[i] = sum_m xp[i+m] k[m] only reaches index P-1 < L, so
nothing wraps. Lengths are rounded up to 5-smooth sizes (2^a 3^b 5^c), where pocketfft runs
about 1.5x faster than at awkward sizes.
"""
from __future__ import annotations

import numpy as np

# Complex workspace per batch chunk; the batch is processed in chunks so a large batch never
# needs all its spectra at once.
_WORKSPACE_BYTES = 256 << 20


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


def fft_lengths(padded: tuple) -> tuple:
    """The transform length used for each padded sliding length."""
    return tuple(next_fast_len(p) for p in padded)


def fft_correlate(xp: np.ndarray, kernel: np.ndarray, out_sliding: tuple, stride: tuple,
                  dilation: tuple) -> np.ndarray:
    """Valid correlation of `xp` (batch, *P) with `kernel` over the trailing axes via FFT."""
    nd = kernel.ndim
    axes = tuple(range(1, nd + 1))
    lengths = fft_lengths(xp.shape[1:])
    # Dilated kernel: taps spread d apart, zeros between.
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel.shape, dilation))
    kd = np.zeros(span, dtype=xp.dtype)
    kd[tuple(slice(None, None, d) for d in dilation)] = kernel
    kf = np.conj(np.fft.rfftn(kd, s=lengths, axes=tuple(range(nd))))
    spectrum_bytes = np.prod(lengths[:-1], dtype=np.int64) * (lengths[-1] // 2 + 1) * 2 * xp.itemsize
    chunk = max(1, int(_WORKSPACE_BYTES // max(3 * spectrum_bytes, 1)))
    take = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out_sliding, stride))
    y = np.empty((xp.shape[0],) + tuple(out_sliding), dtype=xp.dtype)
    for b0 in range(0, xp.shape[0], chunk):
        spec = np.fft.rfftn(xp[b0:b0 + chunk], s=lengths, axes=axes)
        spec *= kf
        full = np.fft.irfftn(spec, s=lengths, axes=axes)
        y[b0:b0 + chunk] = full[(slice(None),) + take]
    return y
