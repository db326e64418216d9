"""Measure the constants of the CUDA cost model (gpuconv/backends/cuda/cost.py) on this GPU and
write them as JSON (the format of gpuconv/data/cuda_cost.json).

- bandwidth: a 1 GiB device-to-device copy (bytes read + written per second);
- launch: the device time of a call on a tiny problem (per-call fixed cost);
- flop_rate[kind]: useful flops per second of each kernel on a compute-bound problem,
  its launch cost taken off;
- fft_sample_log2, fft_fixed: least squares over method="fft" calls of several sizes,
  after the modelled memory traffic;
- float64_factor: the tiled kernel's float64 rate over its float32 rate.

    PYTHONPATH=$PWD python bench/calibrate_cuda.py --out $OUT/cuda_cost.json

Copy the file over gpuconv/data/cuda_cost.json to ship it.
"""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

import gpuconv
from gpuconv.plan import correlate_plan
from gpuconv.backends.cuda import cost as cuda_cost

# (kind, x shape, kernel shape, dtype, method): compute-bound for that kernel
RATE_PROBLEMS = [
    ("tiled", (8, 2048, 2048), (15, 15), np.float32, "direct"),
    ("separable", (8, 2048, 2048), (31, 31), np.float32, "separable"),
    ("rows", (2**24,), (1001,), np.float32, "direct"),
    ("generic", (4, 1024, 1024), (17, 17), np.float32, "direct"),
]
FFT_PROBLEMS = [((1, 2048, 2048), (63, 63)), ((1, 4096, 4096), (127, 127)), ((8, 1024, 1024), (41, 41)),
                ((2**24,), (4001,)), ((2**26,), (1001,))]


def _plan(shape, kshape, dtype, method):
    return correlate_plan(shape, dtype, np.ones(kshape, dtype), "same", "constant", 0.0, 1, 1, None, None, None,
                          method)


def measure(cp, event_ms) -> dict:
    """Every constant of cuda_cost.json, measured on the current device."""
    from bench.run_gpu import copy_bandwidth

    rng = np.random.default_rng(0)
    c = dict(cuda_cost.cuda_constants())
    c["bandwidth"] = copy_bandwidth(cp)
    tiny = cp.asarray(rng.standard_normal((8, 8), dtype=np.float32))
    c["launch"] = event_ms(cp, lambda: gpuconv.correlate(tiny, np.ones((3, 3), np.float32), "same"), repeat=50) / 1e3
    rates = {}
    for kind, shape, kshape, dtype, method in RATE_PROBLEMS:
        x = cp.asarray(rng.standard_normal(shape).astype(dtype))
        k = np.ones(kshape, dtype) if method == "separable" else rng.standard_normal(kshape).astype(dtype)
        ms = event_ms(cp, lambda: gpuconv.correlate(x, k, "same", method=method), repeat=10)
        (f,) = cuda_cost.method_launches(_plan(shape, kshape, dtype, method), dtype, method, 1)
        rates[kind] = f["flops"] / max(ms / 1e3 - c["launch"], 1e-7)
    c["flop_rate"] = rates
    x64 = cp.asarray(rng.standard_normal(RATE_PROBLEMS[0][1]))
    k64 = rng.standard_normal(RATE_PROBLEMS[0][2])
    ms64 = event_ms(cp, lambda: gpuconv.correlate(x64, k64, "same", method="direct"), repeat=10)
    (f64,) = cuda_cost.method_launches(_plan(x64.shape, k64.shape, np.float64, "direct"), np.float64, "direct")
    c["float64_factor"] = f64["flops"] / max(ms64 / 1e3 - c["launch"], 1e-7) / rates["tiled"]
    rows, times = [], []
    for shape, kshape in FFT_PROBLEMS:
        x = cp.asarray(rng.standard_normal(shape, dtype=np.float32))
        k = rng.standard_normal(kshape).astype(np.float32)
        ms = event_ms(cp, lambda: gpuconv.correlate(x, k, "same", method="fft"), repeat=5)
        (f,) = cuda_cost.method_launches(_plan(shape, kshape, np.float32, "fft"), np.float32, "fft")
        moved = (f["bytes"] + c["fft_passes"] * f["block_bytes"]) / c["bandwidth"]
        rows.append([1.0, f["samples_log2"]])
        times.append(ms / 1e3 - moved)
    (fixed, per_sample), *_ = np.linalg.lstsq(np.array(rows), np.array(times), rcond=None)
    c["fft_fixed"], c["fft_sample_log2"] = max(float(fixed), 0.0), max(float(per_sample), 1e-15)
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    c.update(device=props["name"].decode(), measured=True,
             source=f"bench/calibrate_cuda.py on {datetime.date.today().isoformat()}")
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/cuda_cost.json")
    args = ap.parse_args(argv)
    import cupy as cp

    from bench.run_gpu import event_ms

    constants = measure(cp, event_ms)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(constants, indent=2) + "\n")
    print(json.dumps(constants, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
