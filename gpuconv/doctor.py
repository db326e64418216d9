"""`gpuconv doctor`: what this machine can run, and a compile of every CUDA kernel variant
the dispatcher can request (gpuconv.backends.cuda_params.variants) with its registers,
shared memory and spills. It needs no GPU: NVRTC comes from the cuda-bindings and
nvidia-cuda-nvrtc packages (the test extra), so CI catches CUDA compile errors.
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
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
             ("numpy backend", "available")]
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


def device_arch() -> str | None:
    """sm_XY of the current GPU, or None without one."""
    try:
        import cupy

        if cupy.is_available():
            return "sm_" + cupy.cuda.Device().compute_capability
    except Exception:
        pass
    return None


def compile_variants(arch: str, jobs: int | None = None) -> tuple:
    """Compile every variant for `arch` with NVRTC; returns (rows, failures). Each file's
    instances are split over `jobs` threads (NVRTC releases the GIL)."""
    from .backends.cuda_loader import nvrtc_report
    from .backends.cuda_params import variants

    jobs = jobs or max(1, min(8, os.cpu_count() or 1))
    by_file = collections.defaultdict(list)
    for filename, name in variants():
        by_file[filename].append(name)
    rows, failures = [], []
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(nvrtc_report, f, names[i::jobs], arch): f
                   for f, names in by_file.items() for i in range(jobs) if names[i::jobs]}
        for fut in concurrent.futures.as_completed(futures):
            try:
                rows += [dict(r, file=futures[fut]) for r in fut.result()]
            except Exception as exc:
                failures.append(f"{futures[fut]}: {exc}")
    return sorted(rows, key=lambda r: (r["file"], r["name"])), failures


def run(arch: str | None = None, verbose: bool = False, out=sys.stdout) -> int:
    """Print the report; 0 when every variant compiled, 1 otherwise."""
    for label, value in environment():
        print(f"{label:>14}: {value}", file=out)
    arch = arch or device_arch() or "sm_90"
    try:
        import cuda.bindings.nvrtc  # noqa: F401
    except ImportError as exc:
        print(f"\ncannot compile the CUDA kernels: NVRTC bindings missing ({exc}); "
              "pip install 'gpuconv[test]' (cuda-bindings, nvidia-cuda-nvrtc)", file=out)
        return 1
    print(f"\ncompiling every kernel variant for {arch} with NVRTC ...", file=out, flush=True)
    rows, failures = compile_variants(arch)
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
    for failure in failures:
        print(f"FAILED {failure}", file=out)
    print("doctor: " + ("all variants compiled" if not failures else f"{len(failures)} compile job(s) failed"), file=out)
    return 1 if failures else 0
