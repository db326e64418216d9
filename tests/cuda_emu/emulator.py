"""A runtime for gpuconv's CudaBackend that runs the real kernels_cuda/ sources on the CPU.

The .cu text (includes inlined by the same gpuconv.backends.cuda.sources the GPU path uses)
is compiled with g++ after emu.h, which maps CUDA's keywords onto C++ and runs each block's
threads as fibers (see emu.h for what this does and does not check). Device arrays are
numpy arrays; every array the backend allocates sits between guard zones of NaN (or 0x5A
bytes), so a kernel that reads or writes outside an array shows up in the results or the
guards.

Every launch takes the very tuple the CuPy runtime would hand to CuPy
(gpuconv.backends.cuda.runtime.launch_arguments), and before emulating it:
- passes it through CuPy's real marshalling (cuda_emu.marshal) where CuPy is installed;
- checks the count and byte size of every argument against the kernel's parameter types
  as the C++ compiler sees them (emu.h);
- checks that every device array lives on the current device (arrays carry the device
  that was current when they were allocated; `device(i)` switches it, as CuPy's Device).
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gpuconv.backends.cuda.runtime import argument_sizes, launch_arguments
from gpuconv.backends.cuda.sources import kernel_source

from . import marshal

HERE = Path(__file__).resolve().parent
GUARD = 256  # elements before and after every allocation


class GuardedNumpy:
    """numpy with `empty` handing out arrays fenced by poisoned guard zones (checked by
    EmulatedRuntime.check_guards after every launch); everything else is numpy."""

    def __init__(self):
        self.fences = []
        self.current_device = 0
        self.devices: dict = {}   # id(owning buffer) -> device it was allocated on

    def __getattr__(self, name):
        return getattr(np, name)

    @property
    def __name__(self):
        return "numpy"

    def empty(self, shape, dtype=float, order="C"):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        raw = np.empty(n + 2 * GUARD, dtype=dtype)
        poison(raw)
        body = raw[GUARD:GUARD + n].reshape(shape)
        self.fences.append((raw, raw.copy()))
        self.devices[id(raw)] = self.current_device
        return body

    @staticmethod
    def asnumpy(a):
        return np.asarray(a)

    def allocated(self, a) -> bool:
        """Whether `a` views memory this module allocated (an emulated device array)."""
        return isinstance(a, np.ndarray) and id(a if a.base is None else a.base) in self.devices

    def asarray(self, a, dtype=None):
        """As cupy.asarray: a device array of that dtype comes back as it is (on whatever
        device it lives); anything else is copied into a new array on the current device."""
        if self.allocated(a) and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        a = np.asarray(a, dtype=dtype)
        out = self.empty(a.shape, a.dtype)
        out[...] = a
        return out


def poison(a: np.ndarray) -> None:
    """Fill with NaN (floats) or 0x5A bytes: values no correct kernel writes by chance."""
    if a.dtype.kind == "f":
        a[...] = np.nan
    else:
        a.view(np.uint8)[...] = 0x5A


class _DoneEvent:
    """The emulator finishes every launch before returning: its events are always done."""

    @staticmethod
    def synchronize():
        pass


class EmulatedRuntime:
    """Compiles kernel instances into shared libraries (cached on disk by content) and
    launches them on numpy arrays."""

    def __init__(self, cache_dir: str | None = None, check_marshalling: bool = marshal.AVAILABLE):
        self.xp = GuardedNumpy()
        self.cache = Path(cache_dir or os.path.join(tempfile.gettempdir(), "gpuconv_emu"))
        self.cache.mkdir(parents=True, exist_ok=True)
        self._entries: dict = {}   # (filename, name) -> ctypes function
        self.launched: list = []   # names, in launch order (tests read which kernel ran)
        self.launch_devices: list = []  # the current device of each launch
        self.check_marshalling = check_marshalling
        self.marshalled = 0        # launches whose arguments went through CuPy's marshalling
        self.streams_made = 0
        self.current_stream = None
        self.uploads: list = []    # the stream current at each upload (tests check the staging)

    @staticmethod
    def address(a) -> int:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"a kernel argument is a {type(a).__name__}, not a (emulated) device array")
        return a.ctypes.data

    # ---- streams and transfers, in order (no concurrency to emulate) ----------------------------
    def new_stream(self):
        self.streams_made += 1
        return f"stream {self.streams_made}"

    @contextlib.contextmanager
    def use_stream(self, stream):
        self.current_stream, previous = stream, self.current_stream
        try:
            yield
        finally:
            self.current_stream = previous

    @staticmethod
    def pinned_empty(shape, dtype):
        return np.empty(shape, dtype=dtype)

    def upload(self, host):
        self.uploads.append(self.current_stream)
        return self.xp.asarray(host.copy())

    @staticmethod
    def download(device, out):
        out[...] = device

    @staticmethod
    def record_event():
        return _DoneEvent()

    # ---- devices, as CupyRuntime has them ----------------------------------------------------
    def device_id(self, a) -> int:
        """The device `a` was allocated on. Arrays that numpy made rather than this runtime
        (the tests' inputs, temporaries of astype or ascontiguousarray, which CuPy would make
        on the current device) count as on the current device."""
        if not isinstance(a, np.ndarray):
            return None
        owner = a if a.base is None else a.base
        return self.xp.devices.get(id(owner), self.xp.current_device)

    @contextlib.contextmanager
    def device(self, device_id: int):
        """Make `device_id` current for allocations and launches, as cupy.cuda.Device does."""
        previous, self.xp.current_device = self.xp.current_device, int(device_id)
        try:
            yield
        finally:
            self.xp.current_device = previous

    @staticmethod
    def tensor_cores() -> bool:
        """The emulator runs mma.sync's host twin (gpuconv_mma.cuh)."""
        return True

    def prepare(self, pairs) -> None:
        """Compile every (filename, name) pair not compiled yet, one library per file."""
        by_file: dict = {}
        for filename, name in pairs:
            if (filename, name) not in self._entries:
                by_file.setdefault(filename, []).append(name)
        for filename, names in by_file.items():
            lib = self._build(filename, sorted(set(names)))
            for i, name in enumerate(sorted(set(names))):
                fn = getattr(lib, f"gc_emu_launch_{i}")
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                               ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t), ctypes.c_int]
                self._entries[(filename, name)] = (fn, lib)

    def _build(self, filename: str, names: list):
        source = kernel_source(filename)
        stubs = "\n".join(
            f'extern "C" int gc_emu_launch_{i}(const unsigned* g, const unsigned* b, void** a, const size_t* s, int n) '
            f"{{ return gc_emu::launch(&{name}, g, b, a, s, n); }}" for i, name in enumerate(names))
        text = f'#include "emu.h"\n{source}\n{stubs}\n'
        flags = ["-std=c++17", "-O1", "-shared", "-fPIC", "-w", f"-I{HERE}"]
        key = hashlib.sha1((text + (HERE / "emu.h").read_text() + " ".join(flags)).encode()).hexdigest()[:20]
        so = self.cache / f"{key}.so"
        if not so.exists():
            src = self.cache / f"{key}.cpp"
            src.write_text(text)
            tmp = self.cache / f"{key}.{os.getpid()}.so"
            proc = subprocess.run(["g++", *flags, str(src), "-o", str(tmp)], capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"g++ could not build {filename} for emulation:\n{proc.stderr[-4000:]}")
            os.replace(tmp, so)
        lib = ctypes.CDLL(str(so))
        lib.gc_emu_error.restype = ctypes.c_char_p
        return lib

    def launch(self, filename, name, grid, block, args) -> None:
        final = launch_arguments(args, self.address)      # exactly what CupyRuntime hands CuPy
        if self.check_marshalling:
            error = marshal.marshal_error(final)
            if error is not None:
                raise AssertionError(f"{name}: CuPy's launch marshalling refuses the arguments: {error!r}")
            self.marshalled += 1
        for a in args:
            device = self.device_id(a)
            if device is not None and device != self.xp.current_device:
                raise AssertionError(f"{name}: an argument lives on device {device} but device "
                                     f"{self.xp.current_device} is current (a GPU cannot read it)")
        self.prepare([(filename, name)])
        fn, lib = self._entries[(filename, name)]
        keep = [np.array(a) for a in final]  # private copies, as a launch copies its parameters
        ptrs = [buf.ctypes.data for buf in keep]
        sizes = argument_sizes(final)
        grid_c = (ctypes.c_uint * 3)(*grid)
        block_c = (ctypes.c_uint * 3)(*block)
        argv = (ctypes.c_void_p * len(ptrs))(*ptrs)
        sizes_c = (ctypes.c_size_t * len(sizes))(*sizes)
        if fn(grid_c, block_c, argv, sizes_c, len(sizes)):
            raise RuntimeError(f"{name}: {lib.gc_emu_error().decode()}")
        self.launched.append(name)
        self.launch_devices.append(self.xp.current_device)
        self.check_guards()

    def check_guards(self) -> None:
        """Raise if any allocation's guard zones changed (a write outside an array)."""
        for raw, ref in self.xp.fences:
            for zone in (slice(0, GUARD), slice(raw.size - GUARD, raw.size)):
                if raw[zone].tobytes() != ref[zone].tobytes():
                    raise AssertionError("a kernel wrote outside its output array (guard zone changed)")
