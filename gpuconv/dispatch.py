"""Array kind -> backend, and the conversions that return results of the caller's kind.

CuPy is detected without importing it (STYLE.md 8): a CuPy array can only exist if the
module `cupy` is already in sys.modules. CUDA arrays of other libraries are recognised by
`__cuda_array_interface__` or a DLPack device of type CUDA. CPU DLPack producers (torch CPU
tensors) are viewed as numpy arrays with no copy and the result is handed back as their kind.
"""
from __future__ import annotations

import sys

import numpy as np

# DLPack device types (dlpack.h): kDLCPU=1, kDLCUDA=2, kDLCUDAHost=3, kDLCUDAManaged=13.
_DLPACK_CPU = 1
_DLPACK_CUDA = (2, 3, 13)


class BackendUnavailableError(ValueError):
    """The requested or implied backend cannot run here (message says why and what to do)."""


def is_cupy_array(obj) -> bool:
    """True for cupy.ndarray, without importing CuPy."""
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(obj, cupy.ndarray)


def is_dask_array(obj) -> bool:
    """True for dask.array.Array, without importing Dask."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(obj, dask_array.Array)


def array_kind(obj) -> str:
    """'dask' for Dask arrays (any chunk type), 'cuda' for arrays on a CUDA device,
    'dlpack-cpu' for CPU DLPack producers that are not numpy arrays (torch CPU tensors),
    'numpy' for everything else (arrays, lists, scalars).

    Examples
    --------
    >>> array_kind([[1, 2], [3, 4]]), array_kind(np.zeros(3))
    ('numpy', 'numpy')
    """
    if isinstance(obj, np.ndarray):
        return "numpy"
    if is_dask_array(obj):
        return "dask"
    if is_cupy_array(obj) or hasattr(obj, "__cuda_array_interface__"):
        return "cuda"
    device = getattr(obj, "__dlpack_device__", None)
    if device is not None:
        try:
            dev_type = int(device()[0])
        except Exception:  # a producer that cannot say: treat it as a plain array-like
            return "numpy"
        if dev_type in _DLPACK_CUDA:
            return "cuda"
        if dev_type == _DLPACK_CPU:
            return "dlpack-cpu"
    return "numpy"


def resolve_backend(backend, kind: str) -> str:
    """The backend name for an input of `kind`, honouring an explicit `backend=`."""
    if backend is None:
        return "cuda" if kind == "cuda" else "numpy"
    if backend == "numpy" and kind == "cuda":
        raise BackendUnavailableError(
            "backend='numpy' was given a CUDA array; copy it to the host first (cupy.asnumpy(x)) "
            "or let the dispatcher use backend='cuda'")
    return backend


def detached(obj):
    """A torch tensor that requires grad, detached (gpuconv does not track gradients); any
    other object as it is."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor) and obj.requires_grad:
        return obj.detach()
    return obj


def native_order(a: np.ndarray) -> np.ndarray:
    """`a` in the machine's byte order: itself, or one converted copy of big-endian data."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def to_numpy(name: str, obj) -> np.ndarray:
    """A host array view of `obj` in native byte order (no copy for numpy arrays and CPU
    DLPack producers already in native order)."""
    if isinstance(obj, np.ndarray):
        return native_order(obj)
    obj = detached(obj)
    if array_kind(obj) == "dlpack-cpu":
        try:
            return native_order(np.from_dlpack(obj))
        except (TypeError, BufferError, RuntimeError):
            pass  # a producer that cannot export: fall back to the array protocol
    try:
        return native_order(np.asarray(obj))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None


def wrap_like(template, result: np.ndarray):
    """Return `result` as the kind of `template`: torch CPU tensors get a tensor back."""
    if array_kind(template) == "dlpack-cpu":
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(template, torch.Tensor):
            return torch.from_numpy(np.ascontiguousarray(result))
    return result
