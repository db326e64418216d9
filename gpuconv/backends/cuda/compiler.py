"""Compile kernel instances with NVRTC, with the project's own options, into a disk cache.

One compile path for everything: the runs on a GPU (runtime.py loads what this makes), the
ahead-of-time build (`gpuconv build-kernels`) and `gpuconv doctor`'s report, so the
registers and spills the doctor prints are those of the code that runs.

Why not `cupy.RawModule(code=...)`: CuPy adds `-ftz=true` to every NVRTC compile it makes, so
float32 subnormals would flush to zero on the GPU while the numpy backend keeps them. Here
NVRTC is called directly (CuPy's thin NVRTC binding, the same library CuPy loads) with
COMPILE_OPTIONS, the lowered names of the template instances are taken from NVRTC, and the
result is a cubin for the device's arch (or PTX for the newest arch this NVRTC knows, when
the device is newer).

The cache holds one entry per instance, keyed by a hash of the whole source text (includes
inlined), the instance, the options, the arch and the NVRTC version; it lives in
$GPUCONV_CACHE_DIR, else $XDG_CACHE_HOME/gpuconv/kernels, else ~/.cache/gpuconv/kernels.
A second process finds every instance there and compiles nothing.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .sources import kernel_source

# The options of every compile. No flush-to-zero, IEEE division and square root, and FMA
# contraction as NVRTC's default: NaN/inf and subnormals behave as in the numpy backend and
# results agree with it to rounding. Nothing here may enable fast math (tested).
COMPILE_OPTIONS = ("-std=c++17", "-ftz=false", "-prec-div=true", "-prec-sqrt=true", "-fmad=true")
# ptxas reports registers, shared memory and spills of each kernel (cubin targets only).
REPORT_OPTION = "--ptxas-options=-v"
FAST_MATH_FLAGS = ("-ftz=true", "--ftz=true", "-use_fast_math", "--use_fast_math", "-prec-div=false",
                   "--prec-div=false", "-prec-sqrt=false", "--prec-sqrt=false")
CACHE_FORMAT = 1


class KernelCompileError(RuntimeError):
    """NVRTC rejected a kernel instance; the message holds the compiler's log."""


class CompilerUnavailableError(RuntimeError):
    """No NVRTC here (CuPy's NVRTC binding or the NVRTC library is missing)."""


def nvrtc():
    """CuPy's binding of NVRTC (cupy_backends.cuda.libs.nvrtc), which needs no GPU."""
    try:
        from cupy_backends.cuda.libs import nvrtc as binding

        binding.getVersion()
    except Exception as exc:  # ImportError, or the NVRTC library not found
        raise CompilerUnavailableError(
            f"cannot compile CUDA kernels: NVRTC is not available ({exc}); install gpuconv[cuda12] or "
            "gpuconv[cuda13] (CuPy with the CUDA toolkit's NVRTC)") from None
    return binding


@functools.lru_cache(maxsize=None)
def nvrtc_version() -> str:
    """'major.minor' of the NVRTC library in use."""
    major, minor = nvrtc().getVersion()
    return f"{major}.{minor}"


def arch_number(arch: str) -> int:
    """The compute capability in `arch` ("sm_90", "compute_90a" -> 90); ValueError for a
    name that is not a CUDA architecture. Needs no NVRTC.

    Examples
    --------
    >>> arch_number("sm_90a")
    90
    """
    m = re.fullmatch(r"(?:sm|compute)_(\d+)[a-z]?", str(arch))
    if m is None:
        raise ValueError(f"arch={arch!r} is not a CUDA architecture; expected one like 'sm_90'")
    return int(m.group(1))


def target(arch: str) -> tuple:
    """(NVRTC -arch option, "cubin" or "ptx") for a device of compute capability `arch`
    ("sm_90"): a cubin where this NVRTC knows the arch, else PTX for the newest arch it
    knows below it, which the driver compiles when loading.

    Examples
    --------
    >>> target("sm_90")
    ('-arch=sm_90', 'cubin')
    """
    cc = arch_number(arch)
    supported = tuple(int(a) for a in nvrtc().getSupportedArchs())
    if cc in supported:
        return f"-arch=sm_{cc}", "cubin"
    older = [a for a in supported if a <= cc]
    if not older:
        raise ValueError(f"arch={arch!r} is older than every arch NVRTC {nvrtc_version()} supports "
                         f"({', '.join(f'sm_{a}' for a in supported)})")
    return f"-arch=compute_{max(older)}", "ptx"


def options_for(arch: str) -> tuple:
    """Every option of a compile for `arch`."""
    arch_option, kind = target(arch)
    return COMPILE_OPTIONS + (arch_option,) + ((REPORT_OPTION,) if kind == "cubin" else ())


@dataclass(frozen=True)
class CompiledKernel:
    """One compiled template instance: the image the driver loads and what NVRTC said."""

    filename: str
    name: str          # the instance as written, e.g. "correlate_rows<float, float, float, 0, int>"
    lowered: str       # its mangled symbol in the image
    arch: str
    kind: str          # "cubin" or "ptx"
    image: bytes
    log: str

    def resources(self) -> dict:
        """Registers, shared memory, stack and spill bytes (cubin only; {} for PTX)."""
        rows = parse_ptxas_log(self.log, {self.lowered: self.name})
        return rows[0] if rows else {}


@contextlib.contextmanager
def _program(text: str, filename: str, options, what: str, name_expression: str | None = None):
    """(NVRTC binding, program) compiled from `text` with `options`, destroyed on leaving;
    KernelCompileError naming `what`, with the log, when NVRTC rejects it."""
    lib = nvrtc()
    prog = lib.createProgram(text, filename, [], [])
    try:
        if name_expression is not None:
            lib.addNameExpression(prog, name_expression)
        try:
            lib.compileProgram(prog, list(options))
        except lib.NVRTCError as exc:
            raise KernelCompileError(f"{what} does not compile: {exc}\n{_log(lib, prog)}") from None
        yield lib, prog
    finally:
        lib.destroyProgram(prog)


def compile_kernel(filename: str, name: str, arch: str) -> CompiledKernel:
    """Compile one template instance of kernels_cuda/`filename` for `arch` (no cache).
    Raises KernelCompileError with the log when NVRTC rejects it."""
    kind = target(arch)[1]
    what = f"{name} ({filename}) for {arch} with NVRTC {nvrtc_version()}"
    with _program(kernel_source(filename), filename, options_for(arch), what, name) as (lib, prog):
        image = lib.getCUBIN(prog) if kind == "cubin" else lib.getPTX(prog)
        return CompiledKernel(filename, name, lib.getLoweredName(prog, name), arch, kind, image, _log(lib, prog))


def compile_source(text: str, name: str, arch: str = "compute_90") -> str:
    """Compile a free-standing source `text` (its local includes inlined from kernels_cuda/)
    and return NVRTC's log; KernelCompileError with the log if it does not compile. Used for
    probes such as blocks.layout_probe()."""
    from .sources import inline_includes, kernel_dir

    options = COMPILE_OPTIONS + (target(arch)[0],)
    with _program(inline_includes(text, kernel_dir()), name, options, name) as (lib, prog):
        return _log(lib, prog)


def _log(lib, prog) -> str:
    try:
        return lib.getProgramLog(prog).replace("\x00", "")
    except Exception:  # the log itself failed: say so rather than hide the real error
        return "(no NVRTC log)"


def default_cache_dir() -> Path:
    """$GPUCONV_CACHE_DIR, else $XDG_CACHE_HOME/gpuconv/kernels, else ~/.cache/gpuconv/kernels."""
    if os.environ.get("GPUCONV_CACHE_DIR"):
        return Path(os.environ["GPUCONV_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpuconv" / "kernels"


@dataclass
class KernelCache:
    """Compiled instances on disk (one image and one JSON file per instance) and in memory.
    Safe for several threads and processes: files are written under unique names and renamed
    into place, and a half-written or unreadable entry is compiled again."""

    root: Path = field(default_factory=default_cache_dir)
    compiled: int = 0        # instances this object compiled (cache misses)
    loaded: int = 0          # instances read from disk

    def __post_init__(self):
        self.root = Path(self.root)
        self._memory: dict = {}
        self._lock = threading.Lock()

    def key(self, filename: str, name: str, arch: str) -> str:
        """Hash of everything the compiled image depends on."""
        text = "\0".join([str(CACHE_FORMAT), kernel_source(filename), name, " ".join(options_for(arch)), arch,
                          nvrtc_version()])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, filename: str, name: str, arch: str) -> CompiledKernel:
        """The compiled instance, from memory, disk, or a fresh compile (then stored)."""
        key = self.key(filename, name, arch)
        kernel = self._memory.get(key)
        if kernel is None:
            kernel = self._read(key)
            if kernel is None:
                kernel = compile_kernel(filename, name, arch)
                self._write(key, kernel)
                with self._lock:
                    self.compiled += 1
            else:
                with self._lock:
                    self.loaded += 1
            self._memory[key] = kernel
        return kernel

    def _read(self, key: str):
        try:
            meta = json.loads((self.root / f"{key}.json").read_text())
            image = (self.root / f"{key}.{meta['kind']}").read_bytes()
            if len(image) != meta["size"]:
                return None
            return CompiledKernel(meta["filename"], meta["name"], meta["lowered"], meta["arch"], meta["kind"], image,
                                  meta["log"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write(self, key: str, kernel: CompiledKernel) -> None:
        """Image first, then the JSON that makes the entry visible; each renamed into place."""
        meta = {"filename": kernel.filename, "name": kernel.name, "lowered": kernel.lowered, "arch": kernel.arch,
                "kind": kernel.kind, "size": len(kernel.image), "log": kernel.log, "nvrtc": nvrtc_version(),
                "options": list(options_for(kernel.arch))}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for suffix, data in ((kernel.kind, kernel.image), ("json", json.dumps(meta).encode())):
                tmp = self.root / f".{key}.{suffix}.{os.getpid()}.{threading.get_ident()}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, self.root / f"{key}.{suffix}")
        except OSError:
            pass  # a read-only or full cache only costs a compile next time


@dataclass
class BuildReport:
    """What build() did: the kernels, how many were compiled or found cached, the failures
    (one line each) and the wall time."""

    kernels: list
    compiled: int
    cached: int
    failures: list
    seconds: float


def build(pairs, arch: str, jobs: int | None = None, cache: KernelCache | None = None) -> BuildReport:
    """Compile every (filename, instance) of `pairs` for `arch` into `cache` on `jobs`
    threads (default: every core; NVRTC runs without the GIL). Instances already cached are
    only read."""
    cache = cache if cache is not None else KernelCache()
    # the implicit-GEMM kernels take 2-3x longer than the rest: start them first, so the
    # last thread does not finish alone on a long one
    pairs = sorted(dict.fromkeys(pairs), key=lambda p: not p[0].startswith("conv_igemm"))
    jobs = max(1, jobs or os.cpu_count() or 1)
    compiled0, loaded0 = cache.compiled, cache.loaded
    start = time.perf_counter()
    kernels, failures = [], []
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(cache.get, f, n, arch): (f, n) for f, n in pairs}
        for fut in concurrent.futures.as_completed(futures):
            try:
                kernels.append(fut.result())
            except KernelCompileError as exc:
                failures.append(str(exc))
    kernels.sort(key=lambda k: (k.filename, k.name))
    return BuildReport(kernels, cache.compiled - compiled0, cache.loaded - loaded0, failures,
                       time.perf_counter() - start)


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
