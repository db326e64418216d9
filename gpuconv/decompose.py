"""Separable decomposition of kernels: a sum of rank-1 terms (outer products of 1-D taps).

Backend-independent math on the small kernel; the numpy backend runs each term as 1-D
passes, and the CUDA backend will do the same with its fused row/column kernel.
"""
from __future__ import annotations

import functools

import numpy as np


def rank_tolerance(kernel_shape: tuple, dtype) -> float:
    """Relative singular-value cut-off: terms below it change results by less than the
    compute dtype's rounding (numpy.linalg.matrix_rank's rule, in the compute precision)."""
    return float(max(kernel_shape) * np.finfo(np.dtype(dtype)).eps)


# The SVD of an m x n unfolding costs about m * n * min(m, n) flops; above this budget (a
# 512 x 512 kernel, ~0.1 s) it would cost more than the filtering it could save (a 4000 x
# 4000 kernel took 77 s), so such kernels are not split.
SVD_BUDGET = 512**3


def splittable(kernel: np.ndarray) -> bool:
    """Whether separable_terms will look for rank-1 terms: every value finite (LAPACK's SVD
    hangs or fails on inf and NaN; direct summation keeps them local) and the unfolding
    within SVD_BUDGET.

    Examples
    --------
    >>> splittable(np.ones((3, 3))), splittable(np.array([[1.0, np.inf], [1.0, 1.0]]))
    (True, False)
    """
    if kernel.ndim < 2 or not np.isfinite(kernel).all():
        return False
    m, n = kernel.shape[0], kernel.size // kernel.shape[0]
    return m * n * min(m, n) <= SVD_BUDGET


def separable_terms(kernel: np.ndarray, rtol: float):
    """Split an N-D kernel into terms [t_0, ..., t_{n-1}] (1-D tap vectors, one per axis)
    whose outer products sum to `kernel` within `rtol` relative to its largest singular value;
    None when the kernel is not splittable() (non-finite values, or too large to pay off).

    A 2-D kernel of rank r gives r terms. A 3-D kernel unfolds its first axis against the
    rest, and each right factor is split again, so it gives up to r1*r2 terms.

    Results are cached per kernel (kernels are small and usually reused across calls).

    Examples
    --------
    >>> g = np.array([1.0, 2.0, 1.0])
    >>> terms = separable_terms(np.outer(g, [1.0, 0.0, -1.0]), 1e-12)
    >>> len(terms), np.allclose(np.outer(*terms[0]), np.outer(g, [1.0, 0.0, -1.0]))
    (1, True)
    >>> separable_terms(np.array([[np.nan, 1.0], [1.0, 1.0]]), 1e-12) is None
    True
    """
    kernel = np.ascontiguousarray(kernel, dtype=np.float64)
    if not splittable(kernel):
        return None
    terms = _cached_terms(kernel.tobytes(), kernel.shape, float(rtol))
    return [[t.copy() for t in term] for term in terms]


@functools.lru_cache(maxsize=256)
def _cached_terms(data: bytes, shape: tuple, rtol: float) -> list:
    return _separable_terms(np.frombuffer(data, dtype=np.float64).reshape(shape), rtol)


def _separable_terms(kernel: np.ndarray, rtol: float) -> list:
    """The recursion behind separable_terms (uncached)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim == 1:
        return [[kernel.copy()]]
    u, s, vt = np.linalg.svd(kernel.reshape(kernel.shape[0], -1), full_matrices=False)
    if s[0] == 0.0:  # all-zero kernel: one term of zeros keeps the shapes
        return [[np.zeros(n) for n in kernel.shape]]
    kept = np.flatnonzero(s > rtol * s[0])
    if kernel.ndim == 2 and len(kept) == 1:
        exact = _exact_rank_one(kernel)
        if exact is not None:
            return [exact]
    terms = []
    for r in kept:
        for sub in _separable_terms(vt[r].reshape(kernel.shape[1:]), rtol):
            terms.append([u[:, r] * s[r]] + sub)
    return terms


def _exact_rank_one(kernel: np.ndarray):
    """[col, row] with outer(col, row) equal to `kernel` bit for bit (col = the pivot's column
    over the pivot, row = the pivot's row), or None. Sobel, box and binomial kernels split
    this way into dyadic factors, so integer images give integer results exactly; the SVD's
    factors carry irrational scalings (8.000000000000007 for a Sobel response of 8)."""
    i, j = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    col, row = kernel[:, j] / kernel[i, j], kernel[i, :].copy()
    return [col, row] if np.array_equal(np.outer(col, row), kernel) else None
