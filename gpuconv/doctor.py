"""`gpuconv doctor` and `gpuconv build-kernels`: what this machine can run, and the
ahead-of-time build of the CUDA kernel variants (gpuconv.backends.cuda.variants) into the
kernel cache, with each variant's registers, shared memory and spills.

Both go through gpuconv.backends.cuda.compiler, the compile path the GPU runs use (same
options, same cache), so the report describes the code that runs. Neither needs a GPU:
NVRTC comes with CuPy's CUDA extras (and the test extra), so CI catches compile errors.
"""
from __future__ import annotations

import collections
import platform
import sys

import numpy as np


def environment() -> list:
    """(label, value) lines: versions, backends, the GPU if there is one.

    Examples
    --------
    >>> dict(environment())["numpy backend"]
    'available'
    """
    from . import __version__

    lines = [("gpuconv", __version__), ("python", platform.python_version()), ("numpy", np.__version__),
             ("numpy backend", "available"), ("cpu engines", cpu_engines())]
    try:
        import cupy
    except ImportError:
        lines += [("cupy", "not installed"), ("cuda backend", "unavailable (install gpuconv[cuda12] or [cuda13])")]
        return lines
    lines.append(("cupy", cupy.__version__))
    try:
        if not cupy.is_available():
            raise RuntimeError("no CUDA device visible")
        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        drv = cupy.cuda.runtime.driverGetVersion()
        rt = cupy.cuda.runtime.runtimeGetVersion()
        lines += [("gpu", f"{props['name'].decode()} (sm_{props['major']}{props['minor']}, "
                          f"{props['totalGlobalMem'] / 2**30:.0f} GiB)"),
                  ("cuda driver", f"{drv // 1000}.{drv % 1000 // 10}"), ("cuda runtime", f"{rt // 1000}.{rt % 1000 // 10}"),
                  ("cuda backend", "available")]
    except Exception as exc:  # CuPy present but no usable device / driver
        lines.append(("cuda backend", f"unavailable ({exc})"))
    return lines


def cpu_engines() -> str:
    """The numpy backend's engines here: OpenCV's only where the `opencv` extra is installed.

    Examples
    --------
    >>> cpu_engines().startswith("toeplitz, taps, separable, fft")
    True
    """
    from .backends.numpy import opencv

    names = "toeplitz, taps, separable, fft"
    if not opencv.available():
        return names + " (OpenCV not installed: pip install 'gpuconv[opencv]')"
    import cv2

    return f"{names}, opencv (OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads)"


def device_arch() -> str | None:
    """sm_XY of the current GPU, or None without one."""
    try:
        import cupy

        if cupy.is_available():
            return "sm_" + cupy.cuda.Device().compute_capability
    except Exception:
        pass
    return None


def build(arch: str | None = None, jobs: int | None = None, out=sys.stdout):
    """Build every variant for `arch` (default: this GPU's, else sm_90) into the kernel cache
    on `jobs` threads; prints one summary line and returns the compiler's BuildReport, or
    None when NVRTC is missing (the reason printed)."""
    from .backends.cuda import compiler
    from .backends.cuda.variants import variants

    arch = arch or device_arch() or "sm_90"
    try:
        compiler.nvrtc()
        compiler.target(arch)
    except (compiler.CompilerUnavailableError, ValueError) as exc:
        print(f"\n{exc}", file=out)
        return None
    cache = compiler.KernelCache()
    pairs = variants()
    print(f"\nbuilding {len(pairs)} kernel variants for {arch} with NVRTC {compiler.nvrtc_version()} "
          f"into {cache.root} ...", file=out, flush=True)
    report = compiler.build(pairs, arch, jobs, cache)
    print(f"built in {report.seconds:.1f} s: {report.compiled} compiled, {report.cached} already cached, "
          f"{len(report.failures)} failed", file=out)
    return report


def run(arch: str | None = None, verbose: bool = False, jobs: int | None = None, out=sys.stdout) -> int:
    """Print the environment and the build report; 0 when every variant compiled, 1 otherwise."""
    for label, value in environment():
        print(f"{label:>14}: {value}", file=out)
    report = build(arch, jobs, out)
    if report is None:
        return 1
    rows = [dict(k.resources(), file=k.filename, name=k.name) for k in report.kernels]
    rows = [r for r in rows if r.get("registers") is not None]   # PTX targets report nothing
    if verbose:
        print(f"{'regs':>5} {'smem':>6} {'spill':>6}  variant", file=out)
        for r in rows:
            print(f"{r['registers']:>5} {r['smem']:>6} {r['spill_stores'] + r['spill_loads']:>6}  {r['name']}", file=out)
    by_file = collections.defaultdict(list)
    for r in rows:
        by_file[r["file"]].append(r)
    for f, rs in sorted(by_file.items()):
        spills = [r for r in rs if r["spill_stores"] or r["spill_loads"]]
        print(f"{f}: {len(rs)} variants, registers {min(r['registers'] for r in rs)}-"
              f"{max(r['registers'] for r in rs)}, shared memory up to {max(r['smem'] for r in rs)} B, "
              f"{len(spills)} with spills (max {max((r['spill_stores'] for r in spills), default=0)} B)", file=out)
    for failure in report.failures:
        print(f"FAILED {failure}", file=out)
    print("doctor: " + ("all variants compiled" if not report.failures else f"{len(report.failures)} variant(s) failed"),
          file=out)
    return 1 if report.failures else 0
