"""A runtime for gpuconv's CudaBackend that runs the real kernels_cuda/ sources on the CPU.

The .cu text (includes inlined by the same cuda_loader the GPU path uses) is compiled with
g++ after emu.h, which maps CUDA's keywords onto C++ and runs each block's threads as fibers
(see emu.h for what this does and does not check). Device arrays are numpy arrays; every
array the backend allocates sits between guard zones of NaN (or 0x5A bytes), so a kernel
that reads or writes outside an array shows up in the results or the guards.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gpuconv.backends.cuda_loader import kernel_source
from gpuconv.backends.cuda_params import ByValue

HERE = Path(__file__).resolve().parent
GUARD = 256  # elements before and after every allocation


class GuardedNumpy:
    """numpy with `empty` handing out arrays fenced by poisoned guard zones (checked by
    EmulatedRuntime.check_guards after every launch); everything else is numpy."""

    def __init__(self):
        self.fences = []

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
        return body

    @staticmethod
    def asnumpy(a):
        return np.asarray(a)

    def asarray(self, a, dtype=None):
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


class EmulatedRuntime:
    """Compiles kernel instances into shared libraries (cached on disk by content) and
    launches them on numpy arrays."""

    def __init__(self, cache_dir: str | None = None):
        self.xp = GuardedNumpy()
        self.cache = Path(cache_dir or os.path.join(tempfile.gettempdir(), "gpuconv_emu"))
        self.cache.mkdir(parents=True, exist_ok=True)
        self._entries: dict = {}   # (filename, name) -> ctypes function
        self.launched: list = []   # names, in launch order (tests read which kernel ran)

    @staticmethod
    def address(a) -> int:
        return a.ctypes.data

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
                               ctypes.POINTER(ctypes.c_void_p)]
                self._entries[(filename, name)] = (fn, lib)

    def _build(self, filename: str, names: list):
        source = kernel_source(filename)
        stubs = "\n".join(
            f'extern "C" int gc_emu_launch_{i}(const unsigned* g, const unsigned* b, void** a) '
            f"{{ return gc_emu::launch(&{name}, g, b, a); }}" for i, name in enumerate(names))
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
        self.prepare([(filename, name)])
        fn, lib = self._entries[(filename, name)]
        keep, ptrs = [], []
        for a in args:
            if isinstance(a, ByValue):
                buf = np.array(a.array)           # a private copy, as a launch copies its parameters
            elif isinstance(a, np.ndarray):
                buf = np.array([a.ctypes.data], dtype=np.uintp)  # a device pointer, by value
            elif isinstance(a, np.generic):
                buf = np.array(a)
            else:
                raise TypeError(f"emulated launch got an argument of type {type(a).__name__}")
            keep.append(buf)
            ptrs.append(buf.ctypes.data)
        grid_c = (ctypes.c_uint * 3)(*grid)
        block_c = (ctypes.c_uint * 3)(*block)
        argv = (ctypes.c_void_p * len(ptrs))(*ptrs)
        if fn(grid_c, block_c, argv):
            raise RuntimeError(f"{name}: {lib.gc_emu_error().decode()}")
        self.launched.append(name)
        self.check_guards()

    def check_guards(self) -> None:
        """Raise if any allocation's guard zones changed (a write outside an array)."""
        for raw, ref in self.xp.fences:
            for zone in (slice(0, GUARD), slice(raw.size - GUARD, raw.size)):
                if raw[zone].tobytes() != ref[zone].tobytes():
                    raise AssertionError("a kernel wrote outside its output array (guard zone changed)")
