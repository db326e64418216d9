"""Find the CUDA sources, and compile them: through CuPy for running kernels, through NVRTC
directly (cuda-bindings) for `gpuconv doctor`'s compile report, which needs no GPU.

The sources live in kernels_cuda/ (a checkout) or gpuconv/kernels_cuda/ (an installed
wheel). Local `#include "x.cuh"` lines are inlined here, so the text CuPy hashes for its
on-disk cache is the whole program: editing a header recompiles what uses it.
"""
from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

# The options every compile uses, for the GPU runs and the doctor's report alike. No fast
# math: NaN/inf must propagate and results must match the numpy backend to rounding.
COMPILE_OPTIONS = ("-std=c++17",)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def kernel_dir() -> Path:
    """The folder holding the .cu/.cuh sources.

    Examples
    --------
    >>> (kernel_dir() / "correlate_tiled.cu").is_file()
    True
    """
    checkout = Path(__file__).resolve().parents[2] / "kernels_cuda"
    if checkout.is_dir():
        return checkout
    installed = Path(str(resources.files("gpuconv"))) / "kernels_cuda"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"CUDA sources not found in {checkout} or {installed}; reinstall gpuconv")


@functools.lru_cache(maxsize=None)
def kernel_source(filename: str) -> str:
    """The text of kernels_cuda/`filename` with its local includes inlined (each once).

    Examples
    --------
    >>> "struct GcGeometry" in kernel_source("correlate_generic.cu")
    True
    """
    root = kernel_dir()
    seen: set = set()

    def expand(name: str) -> str:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{name} is included but not in {root}")
        lines = []
        for line in path.read_text().splitlines():
            m = _INCLUDE.match(line)
            if m:
                if m.group(1) not in seen:
                    seen.add(m.group(1))
                    lines.append(expand(m.group(1)))
                continue
            lines.append(line)
        return "\n".join(lines)

    return expand(filename)


class CupyRuntime:
    """Compiles kernels with cupy.RawModule (NVRTC for the current device; CuPy's on-disk
    cache keeps them across processes) and keeps one function per device and template
    instance in memory."""

    def __init__(self):
        import cupy

        self.xp = cupy
        self._functions: dict = {}

    def function(self, filename: str, name: str):
        device = self.xp.cuda.Device().id
        key = (device, filename, name)
        fn = self._functions.get(key)
        if fn is None:
            module = self.xp.RawModule(code=kernel_source(filename), options=COMPILE_OPTIONS, name_expressions=[name])
            fn = self._functions[key] = module.get_function(name)
        return fn

    @staticmethod
    def address(a) -> int:
        return a.data.ptr

    def tensor_cores(self) -> bool:
        """Whether the current device runs mma.sync with tf32 and float16 (sm_80 and newer)."""
        return int(self.xp.cuda.Device().compute_capability) >= 80

    def launch(self, filename: str, name: str, grid: tuple, block: tuple, args: tuple) -> None:
        """Launch on CuPy's current stream; returns at once (no host synchronisation)."""
        self.function(filename, name)(grid, block, args)


def nvrtc_report(filename: str, names: list, arch: str = "sm_90") -> list:
    """Compile `names` (template instances) of `filename` with NVRTC for `arch` and return one
    dict per instance: name, registers, shared memory, spill bytes, stack frame. Needs the
    cuda-bindings and nvidia-cuda-nvrtc packages, not a GPU. Raises RuntimeError with the
    compiler log on any error.
    """
    from cuda.bindings import nvrtc

    def check(result, what):
        err = result[0]
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError(f"NVRTC {what} failed: {err}")
        return result[1] if len(result) > 1 else None  # the one value the call returns, if any

    src = kernel_source(filename).encode()
    prog = check(nvrtc.nvrtcCreateProgram(src, filename.encode(), 0, [], []), "create")
    try:
        for n in names:
            check(nvrtc.nvrtcAddNameExpression(prog, n.encode()), f"name {n}")
        opts = [o.encode() for o in COMPILE_OPTIONS] + [f"-arch={arch}".encode(), b"--ptxas-options=-v"]
        err = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)[0]
        size = check(nvrtc.nvrtcGetProgramLogSize(prog), "log size")
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        log = log.decode(errors="replace").replace("\x00", "")
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError(f"{filename} does not compile for {arch}:\n{log}")
        lowered = {check(nvrtc.nvrtcGetLoweredName(prog, n.encode()), f"lowered {n}").decode(): n for n in names}
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return parse_ptxas_log(log, lowered)


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def parse_ptxas_log(log: str, lowered: dict) -> list:
    """Per-function resource lines of a `ptxas -v` log, keyed back to template instances.

    Examples
    --------
    >>> log = ("ptxas info : Compiling entry function '_Z1fv' for 'sm_90'\\n"
    ...        "ptxas . 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\\n"
    ...        "ptxas info : Used 14 registers, used 1 barriers, 2048 bytes smem\\n")
    >>> parse_ptxas_log(log, {"_Z1fv": "f"})
    [{'name': 'f', 'registers': 14, 'smem': 2048, 'stack': 0, 'spill_stores': 0, 'spill_loads': 0}]
    """
    rows, current = [], None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            current = {"name": lowered.get(m.group(1), m.group(1)), "registers": None, "smem": 0, "stack": 0,
                       "spill_stores": 0, "spill_loads": 0}
            rows.append(current)
            continue
        if current is None:
            continue
        m = _PROPS.search(line)
        if m:
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        m = _USED.search(line)
        if m:
            current["registers"] = int(m.group(1))
            current["smem"] = int(m.group(2) or 0)
    return rows
