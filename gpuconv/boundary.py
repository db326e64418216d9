"""numpy.pad's boundary modes as index maps: padded position -> source index.

numpy.pad extends an axis of length n periodically for every mode, also when the pad is wider
than the input, so each mode is a closed-form map (checked against numpy.pad in the tests).
Backends use it to pad in place of numpy.pad, and CUDA kernels implement the same formulas.
"""
from __future__ import annotations

import numpy as np


def boundary_index(i, n: int, boundary: str):
    """Source index in [0, n) for position(s) `i` (may be negative or >= n) of a padded axis.

    Not for "constant", whose outside positions have no source.

    Examples
    --------
    >>> boundary_index(np.arange(-3, 7), 4, "reflect")
    array([3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
    >>> boundary_index(np.arange(-3, 7), 4, "symmetric")
    array([2, 1, 0, 0, 1, 2, 3, 3, 2, 1])
    """
    i = np.asarray(i)
    if boundary == "edge":
        return np.clip(i, 0, n - 1)
    if boundary == "wrap":
        return np.mod(i, n)
    if boundary == "symmetric":  # c b a | a b c d | d c b: period 2n
        m = np.mod(i, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if boundary == "reflect":  # d c b | a b c d | c b a: period 2n-2
        if n == 1:
            return np.zeros_like(i)
        m = np.mod(i, 2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    raise ValueError(f"boundary={boundary!r} has no index map; expected 'edge', 'wrap', 'symmetric' or 'reflect'")
