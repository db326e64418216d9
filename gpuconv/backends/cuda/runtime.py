"""Load and launch kernels through CuPy: the layer between the planners and the driver.

A backend describes a launch with device arrays (passed by address), `ByValue` parameter
blocks and numpy scalars. `launch_arguments` turns that into the one tuple CuPy's
`Function.__call__` marshals (cupy/cuda/function.pyx: `_pointer`, then `_scalar.CScalar`):
each device array as its address (a numpy uintp scalar), each block as its one-element
numpy array (copied by value), each numpy scalar as itself. The CPU emulator
(tests/cuda_emu) takes the very same tuple, and the tests pass every tuple it launches
through CuPy's real marshalling, so what CI checks is what a GPU receives.

CupyRuntime compiles through gpuconv.backends.cuda.compiler (cached cubins for the device's
arch), loads them with `cupy.cuda.function.Module`, keeps one function per device and
instance, and launches on CuPy's current stream without waiting for the device.
"""
from __future__ import annotations

import numpy as np

from .blocks import ByValue
from .compiler import KernelCache


def launch_arguments(args, address) -> tuple:
    """The argument tuple handed to the driver for `args`: ByValue blocks as their
    one-element arrays, numpy scalars as they are, anything else as a device array whose
    address `address(a)` gives (passed as a numpy uintp; `address` refuses what is not a
    device array). Python numbers are refused: their width in the launch would be CuPy's
    guess, not the kernel's parameter type.

    Examples
    --------
    >>> block = ByValue(np.zeros((), [("a", np.int64), ("b", np.float32)]))
    >>> launch_arguments((block, np.float32(0.5)), id)[1]
    np.float32(0.5)
    """
    out = []
    for i, a in enumerate(args):
        if isinstance(a, ByValue):
            out.append(a.array)
        elif isinstance(a, np.generic):
            out.append(a)
        elif isinstance(a, (int, float, complex)):   # bool is an int
            raise TypeError(f"launch argument {i} is a {type(a).__name__}; pass device arrays, ByValue blocks "
                            "or numpy scalars of the kernel's parameter type")
        else:
            out.append(np.uintp(address(a)))
    return tuple(out)


def argument_sizes(final: tuple) -> tuple:
    """Bytes each final argument puts in the kernel's parameter space."""
    return tuple(int(a.nbytes) for a in final)


class _StreamHandle:
    """A bare stream handle speaking the CUDA stream protocol (version 0)."""

    def __init__(self, ptr: int):
        self.ptr = ptr

    def __cuda_stream__(self):
        return (0, self.ptr)


class CupyRuntime:
    """Compiles (compiler.KernelCache: NVRTC with the project's options, cubins cached on
    disk), loads one module per device and instance, and launches through CuPy."""

    def __init__(self, cache: KernelCache | None = None):
        import cupy

        self.xp = cupy
        self.cache = cache if cache is not None else KernelCache()
        self._functions: dict = {}

    # ---- devices ----------------------------------------------------------------------------
    def device_id(self, a) -> int | None:
        """The CUDA device holding array `a`; None for a host array."""
        return int(a.device.id) if isinstance(a, self.xp.ndarray) else None

    def device(self, device_id: int):
        """Context manager making `device_id` current (allocations, plans, launches)."""
        return self.xp.cuda.Device(device_id)

    def external_stream(self, ptr: int, device_id: int):
        """A CuPy stream (use it as a context manager) wrapping another library's stream
        handle `ptr` created on `device_id`, such as torch's current stream."""
        stream_cls = self.xp.cuda.Stream
        if hasattr(stream_cls, "from_external"):  # CuPy 14: the CUDA stream protocol
            return stream_cls.from_external(_StreamHandle(int(ptr)))
        return self.xp.cuda.ExternalStream(int(ptr), device_id)  # CuPy 13

    def arch(self) -> str:
        """sm_XY of the current device."""
        return "sm_" + self.xp.cuda.Device().compute_capability

    def tensor_cores(self) -> bool:
        """Whether the current device runs mma.sync with tf32 and float16 (sm_80 and newer)."""
        return int(self.xp.cuda.Device().compute_capability) >= 80

    # ---- streams and transfers (the pipeline's staging) ----------------------------------------
    def new_stream(self):
        """A stream of its own, not synchronising with the default stream."""
        return self.xp.cuda.Stream(non_blocking=True)

    @staticmethod
    def use_stream(stream):
        """Context manager making `stream` CuPy's current stream."""
        return stream

    @staticmethod
    def pinned_empty(shape, dtype) -> np.ndarray:
        """Page-locked host memory (uploads and downloads from it run asynchronously)."""
        import cupyx

        return cupyx.empty_pinned(shape, dtype=dtype)

    def upload(self, host: np.ndarray):
        """A device copy of `host`, queued on the current stream."""
        device = self.xp.empty(host.shape, dtype=host.dtype)
        device.set(host, stream=self.xp.cuda.get_current_stream())
        return device

    def download(self, device, out: np.ndarray) -> None:
        """Queue the copy of `device` into host array `out` on the current stream."""
        device.get(stream=self.xp.cuda.get_current_stream(), out=out)

    def record_event(self):
        """An event recorded on the current stream (its synchronize() waits for the work so far)."""
        event = self.xp.cuda.Event(block=False, disable_timing=True)
        event.record(self.xp.cuda.get_current_stream())
        return event

    # ---- kernels ----------------------------------------------------------------------------
    def function(self, filename: str, name: str):
        """The loaded kernel `name` of `filename` on the current device (compiled or read from
        the cache on first use)."""
        device = self.xp.cuda.Device().id
        key = (device, filename, name)
        fn = self._functions.get(key)
        if fn is None:
            kernel = self.cache.get(filename, name, self.arch())
            module = self.xp.cuda.function.Module()
            module.load(kernel.image)
            fn = self._functions[key] = module.get_function(kernel.lowered)  # holds the module
        return fn

    def address(self, a) -> int:
        """Device address of a CuPy array (TypeError for anything else: a host array here is
        a bug that would otherwise hand the kernel a host pointer)."""
        if not isinstance(a, self.xp.ndarray):
            raise TypeError(f"a kernel argument is a {type(a).__name__}, not a CUDA array")
        return int(a.data.ptr)

    def launch(self, filename: str, name: str, grid: tuple, block: tuple, args: tuple) -> None:
        """Launch on CuPy's current stream; returns at once (no host synchronisation)."""
        self.function(filename, name)(tuple(grid), tuple(block), launch_arguments(args, self.address))
