"""The Dask bench (issue 7): a (64, 3, 4096, 4096) float32 array filtered out of core on one
machine, against the in-memory call where that fits.

Each measurement runs in a fresh subprocess, so its peak resident memory (ru_maxrss) is its
own. The input is generated chunk by chunk (dask.array.random) and the filtered result is
reduced to its sum, so neither is ever whole in memory; the in-memory runs generate the same
values with numpy first (generation not timed) and time the gpuconv call alone.

    python -m bench.run_dask --out bench/results [--big 64] [--small 8]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def measure(kind: str, n: int, chunk_n: int, chunk_hw: int) -> dict:
    """One run in this process (called in the subprocess)."""
    import dask
    import dask.array as da

    import gpuconv

    kernel = gpuconv.kernels.get("gaussian:5:1")
    shape = (n, 3, 4096, 4096)
    if kind == "memory":
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        t0 = time.perf_counter()
        y = gpuconv.correlate(x, kernel, "same", boundary="reflect")
        total = float(y.sum(dtype=np.float64))
    else:
        x = da.random.default_rng(0).random(shape, dtype=np.float32, chunks=(chunk_n, 3, chunk_hw, chunk_hw))
        y = gpuconv.correlate(x, kernel, "same", boundary="reflect")
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=os.cpu_count()):
            total = float(y.sum(dtype=np.float64).compute())
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"kind": kind, "shape": shape, "chunks": None if kind == "memory" else (chunk_n, 3, chunk_hw, chunk_hw),
            "seconds": seconds, "peak_rss_gb": peak / 2 ** 30, "input_gb": np.prod(shape) * 4 / 2 ** 30,
            "checksum": total}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--big", type=int, default=64, help="batch of the out-of-core run")
    ap.add_argument("--small", type=int, default=8, help="batch of the run compared with the in-memory call")
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # kind n chunk_n chunk_hw: run one measurement
    args = ap.parse_args()
    if args.one:
        kind, n, cn, chw = args.one
        print(json.dumps(measure(kind, int(n), int(cn), int(chw))))
        return
    runs = [("memory", args.small, 0, 0), ("dask", args.small, 1, 1024), ("dask", args.big, 1, 1024)]
    rows = []
    for kind, n, cn, chw in runs:
        out = subprocess.run([sys.executable, "-m", "bench.run_dask", "--one", kind, str(n), str(cn), str(chw)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{kind:6} {str(tuple(row['shape'])):22} input {row['input_gb']:5.1f} GB  {row['seconds']:7.1f} s  "
              f"peak RSS {row['peak_rss_gb']:5.2f} GB  checksum {row['checksum']:.6e}", flush=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "dask.json").write_text(json.dumps(rows, indent=1))
    lines = ["| run | shape | chunks | input GB | time s | GB/s (in+out) | peak RSS GB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        gbs = 2 * r["input_gb"] * 2 ** 30 / 1e9 / r["seconds"]
        lines.append(f"| {r['kind']} | {tuple(r['shape'])} | {tuple(r['chunks']) if r['chunks'] else 'whole'} | "
                     f"{r['input_gb']:.1f} | {r['seconds']:.1f} | {gbs:.2f} | {r['peak_rss_gb']:.2f} |")
    (out_dir / "dask.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
