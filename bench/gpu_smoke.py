"""One small call per CUDA kernel family and method, each checked against the numpy backend:
the first thing to run on a GPU (and under compute-sanitizer), and rehearsed on the CPU
emulator (--emulate) before a GPU is at hand.

Every case runs even when others fail; the exit status is the number of failed cases (0: all
passed). One line per case on stdout, and a JSON list with --json.

    PYTHONPATH=$PWD python bench/gpu_smoke.py                 # on the GPU (CuPy)
    PYTHONPATH=$PWD python bench/gpu_smoke.py --emulate       # on tests/cuda_emu, no GPU
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import gpuconv

ROOT = Path(__file__).resolve().parents[1]


def _rgb(rng, shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _normal(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# (name, kernel family exercised, function of rng -> (x, kernel/weights, keyword arguments), api)
CASES = [
    ("tiled 3x3 float32 same reflect", "correlate_tiled",
     lambda r: (_normal(r, (2, 40, 70)), _normal(r, (3, 3)), dict(mode="same", boundary="reflect", method="direct")),
     "correlate"),
    ("tiled 5x5 uint8 RGB edge -> uint8 (fold 3)", "correlate_tiled",
     lambda r: (_rgb(r, (2, 30, 40, 3)), _normal(r, (5, 5)),
                dict(mode="same", boundary="edge", axes=(1, 2), out_dtype=np.uint8, method="direct")), "correlate"),
    ("tiled float16 wrap full", "correlate_tiled",
     lambda r: (_normal(r, (1, 33, 50), np.float16), _normal(r, (4, 2)), dict(mode="full", boundary="wrap",
                                                                               method="direct")), "correlate"),
    ("generic stride 2 dilation 2 float64", "correlate_generic",
     lambda r: (_normal(r, (2, 31, 45), np.float64), _normal(r, (3, 4)),
                dict(mode="same", stride=2, dilation=2, boundary="symmetric", method="direct")), "correlate"),
    ("generic 3-D kernel", "correlate_generic",
     lambda r: (_normal(r, (2, 9, 20, 21)), _normal(r, (3, 3, 3)), dict(mode="valid", method="direct")), "correlate"),
    ("rows 1-D k=101 wrap", "correlate_rows",
     lambda r: (_normal(r, (5000,)), _normal(r, (101,)), dict(mode="same", boundary="wrap", method="direct")),
     "correlate"),
    ("rows stereo (n, 2) channels-last", "correlate_rows",
     lambda r: (_normal(r, (3000, 2)), _normal(r, (31,)), dict(mode="same", axes=0, method="direct")), "correlate"),
    ("separable fused gaussian 11 constant cval", "correlate_separable",
     lambda r: (_normal(r, (2, 40, 70)), gpuconv.kernels.gaussian(11, 2.0),
                dict(mode="same", boundary="constant", cval=0.5, method="separable")), "correlate"),
    ("separable passes with stride", "correlate_rows/tiled passes",
     lambda r: (_normal(r, (2, 40, 70)), gpuconv.kernels.gaussian(5, 1.0),
                dict(mode="same", stride=2, method="separable")), "correlate"),
    ("fft 31x31 reflect", "cuFFT + finish",
     lambda r: (_normal(r, (1, 90, 100)), _normal(r, (31, 31)), dict(mode="same", boundary="reflect", method="fft")),
     "correlate"),
    ("auto convolve", "auto",
     lambda r: (_normal(r, (2, 40, 50)), _normal(r, (3, 3)), dict(mode="full")), "convolve"),
    ("conv2d FMA float32 NCHW + bias + relu", "conv_igemm",
     lambda r: (_normal(r, (2, 8, 12, 12)), _normal(r, (16, 8, 3, 3)),
                dict(padding=1, activation="relu")), "conv2d"),
    ("conv2d FMA NHWC first layer (C=3)", "conv_igemm flat K",
     lambda r: (_normal(r, (2, 12, 12, 3)), _normal(r, (16, 3, 3, 3)), dict(padding="same", layout="NHWC")),
     "conv2d"),
    ("conv2d tf32", "conv_igemm_tc tf32",
     lambda r: (_normal(r, (2, 16, 10, 10)), _normal(r, (32, 16, 3, 3)), dict(padding=1, precision="tf32")),
     "conv2d"),
    ("conv2d float16", "conv_igemm_tc float16",
     lambda r: (_normal(r, (2, 16, 10, 10), np.float16), _normal(r, (32, 16, 3, 3), np.float16), dict(padding=1)),
     "conv2d"),
    ("conv2d depthwise", "conv_depthwise",
     lambda r: (_normal(r, (2, 8, 12, 12)), _normal(r, (8, 1, 3, 3)), dict(padding=1, groups=8)), "conv2d"),
    ("conv1d float64 stride 2", "conv_igemm float64",
     lambda r: (_normal(r, (2, 6, 50), np.float64), _normal(r, (10, 6, 5), np.float64), dict(padding=2, stride=2)),
     "conv1d"),
]


def tolerance(x, k, kw, api) -> float:
    """Allowed max |gpu - numpy| for a case: rounding of the compute dtype over the taps,
    the tensor cores' stated bound, one unit for integer results."""
    if kw.get("out_dtype") is not None and np.dtype(kw["out_dtype"]).kind in "iu":
        return 1.0
    kk = np.abs(np.asarray(k, dtype=np.float64))
    per_output = kk.reshape(kk.shape[0], -1).sum(axis=1).max() if api.startswith("conv") else kk.sum()
    mag = float(np.abs(x.astype(np.float64)).max()) * float(per_output)
    if api.startswith("conv") and (kw.get("precision") in ("tf32", "float16") or x.dtype == np.float16):
        return 2.0**-9 * mag
    eps = np.finfo(np.float64 if x.dtype == np.float64 else np.float32).eps
    return 64 * eps * mag + (1e-3 * mag if x.dtype == np.float16 else 0)


class Device:
    """Moves arrays to and from the CUDA backend: CuPy on a GPU, or the emulator."""

    def __init__(self, emulate: bool):
        self.emulate = emulate
        if emulate:
            sys.path.insert(0, str(ROOT / "tests"))
            from cuda_emu.emulator import EmulatedRuntime

            import gpuconv.compute as compute
            from gpuconv.backends.cuda.backend import CudaBackend

            self.runtime = EmulatedRuntime()
            backend = CudaBackend(self.runtime)
            real = compute.get_backend
            compute.get_backend = lambda name: backend if name == "cuda" else real(name)
        else:
            import cupy

            self.cupy = cupy

    def put(self, a):
        return self.runtime.xp.asarray(a) if self.emulate else self.cupy.asarray(a)

    def get(self, a):
        return np.asarray(a) if self.emulate else self.cupy.asnumpy(a)

    def sync(self):
        if not self.emulate:
            self.cupy.cuda.get_current_stream().synchronize()


def run_case(device: Device, case, seed: int) -> dict:
    name, family, make, api = case
    rng = np.random.default_rng(seed)
    x, k, kw = make(rng)
    fn = getattr(gpuconv, api)
    start = time.perf_counter()
    try:
        expect = fn(x, k, backend="numpy", **kw)
        got = device.get(fn(device.put(x), k if api in ("correlate", "convolve") else device.put(k),
                            backend="cuda", **kw))
        device.sync()
        assert got.shape == expect.shape and got.dtype == expect.dtype, \
            f"shape/dtype {got.shape} {got.dtype}, expected {expect.shape} {expect.dtype}"
        err = float(np.abs(got.astype(np.float64) - expect.astype(np.float64)).max()) if got.size else 0.0
        tol = tolerance(x, k, kw, api)
        ok = bool(np.isfinite(err) and err <= tol)
        detail = f"max error {err:.3g} (allowed {tol:.3g})"
    except Exception as exc:  # report every case; one broken kernel must not hide the others
        ok, detail = False, f"{type(exc).__name__}: {exc}"[:2000]
        traceback.print_exc(file=sys.stderr)
    return {"case": name, "family": family, "ok": ok, "detail": detail, "seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emulate", action="store_true", help="run the kernels on the CPU emulator (no GPU)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    args = ap.parse_args(argv)
    device = Device(args.emulate)
    results = []
    for i, case in enumerate(CASES):
        if args.k in case[0]:
            r = run_case(device, case, seed=i)
            results.append(r)
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['case']:<45} {r['family']:<26} {r['detail']} "
                  f"({r['seconds']:.2f} s)", flush=True)
    failed = sum(not r["ok"] for r in results)
    print(f"smoke: {len(results) - failed} passed, {failed} failed")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return min(failed, 100)


if __name__ == "__main__":
    raise SystemExit(main())
