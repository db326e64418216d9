"""CuPy's real launch-argument marshalling, driven without a GPU.

`cupy.cuda.function.Function.__call__` converts every argument (`_pointer`, then
`_scalar.CScalar`; cupy/cuda/function.pyx) before its first driver call. A Function made
without a module (`Function.__new__`) and called with a dummy stream therefore converts the
whole tuple and then stops at the driver: a CUDARuntimeError or CUDADriverError means every
argument was accepted; a TypeError (or anything else) means CuPy would refuse the launch on a
real GPU too. cupy-cuda13x imports without a GPU, so this runs in CI.
"""
from __future__ import annotations

import importlib.util

AVAILABLE = importlib.util.find_spec("cupy") is not None


class _NoStream:
    ptr = 0  # what _get_stream reads; never reached by a driver call here


def marshal_error(final_args: tuple):
    """None when CuPy's marshalling accepts every argument of `final_args` (the call then
    fails at the driver, as it must without a GPU); otherwise the exception it raised."""
    from cupy.cuda import function
    from cupy_backends.cuda.api.driver import CUDADriverError
    from cupy_backends.cuda.api.runtime import CUDARuntimeError

    fn = function.Function.__new__(function.Function)
    try:
        fn((1, 1, 1), (1, 1, 1), final_args, stream=_NoStream())
    except (CUDARuntimeError, CUDADriverError):
        return None
    except Exception as exc:  # TypeError from _pointer / CScalar, or anything unexpected
        return exc
    return RuntimeError("the launch went through; a driver error was expected without a GPU")
