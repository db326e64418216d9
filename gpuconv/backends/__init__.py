"""Backends: one small interface (correlate over trailing sliding axes, conv for kernel banks)
over checked plans. `get_backend(name)` returns one, or explains why it cannot run here."""
from __future__ import annotations

import functools

from ..dispatch import BackendUnavailableError


@functools.lru_cache(maxsize=None)
def get_backend(name: str):
    """The backend object for 'numpy' or 'cuda'.

    Examples
    --------
    >>> get_backend("numpy").name
    'numpy'
    """
    if name == "numpy":
        from .numpy.backend import NumpyBackend

        return NumpyBackend()
    if name == "cuda":
        try:
            from .cuda.backend import CudaBackend
        except ImportError as exc:
            raise BackendUnavailableError(
                f"backend='cuda' is not available in this installation ({exc}); use numpy arrays "
                "(backend='numpy') or install gpuconv with its CUDA backend and the cuda12/cuda13 extra") from None
        return CudaBackend()
    raise ValueError(f"backend={name!r} is not accepted; expected one of [None, 'numpy', 'cuda']")
