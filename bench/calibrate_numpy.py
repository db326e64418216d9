"""Re-measure the numpy backend's cost-model constants and rewrite gpuconv/data/numpy_cost.json.

Runs each method on a spread of problems (1-D to 3-D, small to large kernels, strides), fits
seconds = sum(constant[f] * feature[f]) by non-negative least squares on relative error,
prints the fit quality and how often the fitted model picks the truly fastest method.

    python -m bench.calibrate_numpy            # writes the constants
    python -m bench.calibrate_numpy --dry-run  # only reports
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

import gpuconv
from gpuconv.backends.numpy import cost as costmodel
from gpuconv.backends.numpy import opencv
from gpuconv.backends.numpy.backend import NumpyBackend
from gpuconv.backends.numpy.cost import ENGINES
from gpuconv.plan import CorrelatePlan, mode_pads
from bench.timing import median_seconds

DATA = Path(gpuconv.__file__).parent / "data" / "numpy_cost.json"

# (batch shape, sliding shape, kernel shape, stride)
CASES = [
    ((8,), (256, 256), (3, 3), 1), ((8,), (256, 256), (5, 5), 1), ((4,), (256, 256), (11, 11), 1),
    ((2,), (256, 256), (21, 21), 1), ((1,), (512, 512), (31, 31), 1), ((1,), (512, 512), (63, 63), 1),
    ((16,), (64, 64), (3, 3), 1), ((1,), (32, 32), (5, 5), 1), ((1,), (16,), (3,), 1), ((4,), (128, 128), (7, 7), 2),
    ((1,), (1 << 18,), (3,), 1), ((1,), (1 << 18,), (101,), 1), ((1,), (1 << 16,), (1001,), 1),
    ((1,), (1 << 21,), (3,), 1), ((1,), (1 << 21,), (101,), 1), ((1,), (1 << 20,), (1001,), 1),
    ((24,), (512, 512), (3, 3), 1), ((4,), (1024, 1024), (1, 5), 1), ((1,), (1024, 1024), (31, 31), 1),
    # small problems, where fixed costs decide (and where exact direct sums matter most)
    ((1,), (64,), (5,), 1), ((1,), (16, 16), (3, 3), 1), ((2,), (32, 32), (5, 5), 1), ((1,), (8, 8, 8), (3, 3, 3), 1),
    ((1,), (4096,), (31,), 1), ((1,), (64, 64), (9, 9), 1),
    ((2,), (32, 32, 32), (3, 3, 3), 1), ((1,), (24, 24, 24), (7, 7, 7), 1), ((3,), (200, 300), (1, 15), 1),
]


def make_plan(batch, sliding, kshape, stride, method):
    pads = [mode_pads(n, k, "same", stride, 1) for n, k in zip(sliding, kshape)]
    nd = len(kshape)
    return CorrelatePlan(batch_shape=batch, in_sliding=sliding, axes=tuple(range(len(batch), len(batch) + nd)),
                         in_shape=batch + sliding, kernel_shape=kshape, out_sliding=tuple(p[2] for p in pads),
                         pad_lo=tuple(p[0] for p in pads), pad_hi=tuple(p[1] for p in pads), stride=(stride,) * nd,
                         dilation=(1,) * nd, boundary="constant", cval=0.0, compute_dtype=np.dtype(np.float32),
                         result_dtype=np.dtype(np.float32), clip=None, method=method)


def measure(rng):
    rows = []
    backend = NumpyBackend()
    warm = rng.standard_normal((8, 256, 256)).astype(np.float32)
    for method in ENGINES:  # wake BLAS threads and FFT caches first
        plan = make_plan((8,), (256, 256), (3, 3), 1, method)
        if method == "opencv" and not opencv.supports(plan):
            continue
        median_seconds(lambda: backend.correlate(warm, np.ones((3, 3), np.float32), plan), repeat=3)
    for batch, sliding, kshape, stride in CASES:
        x = rng.standard_normal(batch + sliding).astype(np.float32)
        # full-rank kernels so separable's cost (rank terms) is exercised honestly
        k = rng.standard_normal(kshape).astype(np.float32)
        rank = min(kshape) if len(kshape) == 2 else (kshape[0] * min(kshape[1:]) if len(kshape) == 3 else None)
        for method in ENGINES:
            if method == "separable" and rank is None:
                continue
            if method == "opencv" and not opencv.supports(make_plan(batch, sliding, kshape, stride, method)):
                continue  # not installed, or a plan it does not compute (3-D, strides)
            if method == "taps" and np.prod(kshape) > 125:
                continue  # hopeless there, and slow to time
            plan = make_plan(batch, sliding, kshape, stride, method)
            t = median_seconds(lambda: backend.correlate(x, k, plan), repeat=5)
            rows.append((batch, sliding, kshape, stride, method, rank, t, costmodel.features(plan, method, rank)))
            print(f"{str(batch + sliding):>18} k={str(kshape):<12} s={stride} {method:<9} {t * 1e3:9.2f} ms", flush=True)
    return rows


FIXED_CASE = ((1,), (16, 16), (3, 3), 1)  # tiny: its time is each engine's fixed cost


def fit(rows):
    """Per engine: `fixed` is its time on FIXED_CASE; the other constants come from
    non-negative least squares of the remaining time on its features, in relative error."""
    from scipy.optimize import nnls  # bench extra

    consts = {}
    for engine, names in costmodel.FEATURES.items():
        sub = [r for r in rows if r[4] == engine]
        if not sub:   # OpenCV not installed: keep its shipped constants
            if engine in costmodel.numpy_constants():
                consts[engine] = costmodel.numpy_constants()[engine]
            continue
        fixed = next(r[6] for r in sub if (r[0], r[1], r[2], r[3]) == FIXED_CASE)
        rest = [n for n in names if n != "fixed"]
        a = np.array([[r[7].get(f, 0.0) for f in rest] for r in sub])
        t = np.array([r[6] for r in sub])
        scale = a.max(axis=0) + 1e-300
        sol, _ = nnls((a / scale) / t[:, None], np.maximum(t - fixed, 0.1 * t) / t)
        consts[engine] = {"fixed": fixed, **dict(zip(rest, (sol / scale).tolist()))}
    return consts


def predicted(consts, row):
    engine, feats = row[4], row[7]
    return sum(consts[engine][f] * feats.get(f, 0.0) for f in costmodel.FEATURES[engine])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    rows = measure(np.random.default_rng(0))
    consts = fit(rows)
    pred = {(str(r[0] + r[1]), r[2], r[3], r[4]): predicted(consts, r) for r in rows}
    errs = [abs(pred[(str(r[0] + r[1]), r[2], r[3], r[4])] / r[6] - 1) for r in rows]
    print(f"median relative error {np.median(errs):.2f}, max {max(errs):.2f}")
    right, total, regret = 0, 0, []
    for case in CASES:
        sub = [r for r in rows if (r[0], r[1], r[2], r[3]) == case]
        best = min(sub, key=lambda r: r[6])
        chosen = min(sub, key=lambda r: pred[(str(r[0] + r[1]), r[2], r[3], r[4])])
        right += best is chosen
        total += 1
        regret.append(chosen[6] / best[6])
        if best is not chosen:
            detail = ", ".join(f"{r[4]} {r[6] * 1e3:.1f}/{pred[(str(r[0] + r[1]), r[2], r[3], r[4])] * 1e3:.1f}" for r in sub)
            print(f"  miss {case}: measured/predicted ms: {detail}")
    print(f"model picks the fastest method in {right}/{total} cases; worst slowdown of its pick {max(regret):.2f}x")
    consts["machine"] = f"{platform.machine()} {platform.processor() or ''} {__import__('os').cpu_count()} cores".strip()
    if not args.dry_run:
        DATA.write_text(json.dumps(consts, indent=1) + "\n")
        print("wrote", DATA)


if __name__ == "__main__":
    main()
