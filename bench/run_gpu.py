"""GPU bench, BENCH.md rows G1 (per-channel k x k on (32,3,1024,1024) float32, "same", zeros)
and G3 (uint8 RGB (32,1024,1024,3) NHWC sharpen, edge boundary, uint8 out), against
cupyx.scipy.ndimage and torch (NCHW and channels_last; cudnn.benchmark on, tf32 off), G4
(bench/gpu_banks.py: kernel banks against cuDNN at float32, tf32 and float16), and
G2, G5, G6 (bench/gpu_methods.py: Gaussian, large kernels, long signals, each with every
gpuconv method timed next to "auto"), in one process, timed with CUDA events (median of
many after warm-up).

Per row it prints and writes (--out): median ms per peer, the ratio to the best peer, GB/s of
compulsory traffic, GFLOP/s, and the fraction of the roofline
max(bytes / copy bandwidth, flops / 66.9 TFLOP/s) / time, with the copy bandwidth measured
in the same run. Every output is checked against the numpy backend on a crop before timing.

    PYTHONPATH=$PWD python -m bench.run_gpu --out $OUT
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

import gpuconv
from bench import gpu_banks, gpu_methods

FMA_PEAK = 66.9e12  # H100 SXM float32, BENCH.md


def event_ms(cp, fn, repeat=30, warmup=3) -> float:
    """Median milliseconds of fn() between CUDA events on the current stream."""
    for _ in range(warmup):
        fn()
    cp.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


def copy_bandwidth(cp) -> float:
    """Bytes/s of a 2 GiB device-to-device copy (bytes read + written)."""
    a = cp.random.random(2**28, dtype=cp.float32)  # 1 GiB
    b = cp.empty_like(a)
    ms = event_ms(cp, lambda: b.__setitem__(Ellipsis, a), repeat=10)
    return 2 * a.nbytes / (ms / 1e3)


def check_crop(y, x_host, k, **kw):
    """y (device) agrees with the numpy backend on a crop of the first image."""
    import cupy as cp

    crop = x_host[:1]
    ref = gpuconv.correlate(crop, k, backend="numpy", **kw)
    got = cp.asnumpy(y[:1])
    if ref.dtype.kind in "iu":
        assert np.abs(got.astype(np.int64) - ref.astype(np.int64)).max() <= 1, "integer result off by more than 1"
    else:
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert err < 1e-5, f"relative error {err:.2e}"


def row(name, times: dict, nbytes, flops, bw) -> dict:
    ours = times["gpuconv"]
    peers = {k: v for k, v in times.items() if k != "gpuconv" and v is not None}
    best = min(peers.items(), key=lambda kv: kv[1]) if peers else (None, None)
    floor = max(nbytes / bw, flops / FMA_PEAK) * 1e3
    return {"row": name, "ms": times, "best_peer": best[0], "best_peer_ms": best[1],
            "speedup_vs_best": None if best[1] is None else best[1] / ours,
            "GBps": nbytes / (ours / 1e3) / 1e9, "GFLOPs": flops / (ours / 1e3) / 1e9,
            "floor_ms": floor, "roofline_fraction": floor / ours}


def bench_g1(cp, torch, rng, bw, sizes) -> list:
    from cupyx.scipy import ndimage

    x_host = rng.standard_normal((32, 3, 1024, 1024), dtype=np.float32)
    x = cp.asarray(x_host)
    xt = torch.from_dlpack(x) if torch else None
    xt_cl = xt.contiguous(memory_format=torch.channels_last) if torch else None
    rows = []
    for k in sizes:
        kern = rng.standard_normal((k, k)).astype(np.float32)
        y = gpuconv.correlate(x, kern, "same")
        check_crop(y, x_host, kern, mode="same")
        methods = gpu_methods.time_methods(cp, event_ms, lambda m: gpuconv.correlate(x, kern, "same", method=m),
                                           ("direct", "separable", "fft"), repeat=10)
        times = {"gpuconv": event_ms(cp, lambda: gpuconv.correlate(x, kern, "same"))}
        k4 = cp.asarray(kern)[None, None]
        times["cupyx.ndimage.correlate"] = event_ms(cp, lambda: ndimage.correlate(x, k4, mode="constant"), repeat=10)
        if torch:
            w = torch.from_numpy(np.repeat(kern[None, None], 3, 0)).cuda()
            f = torch.nn.functional.conv2d
            times["torch NCHW"] = event_ms(cp, lambda: f(xt, w, padding=k // 2, groups=3))
            times["torch channels_last"] = event_ms(cp, lambda: f(xt_cl, w, padding=k // 2, groups=3))
        nbytes = 2 * x.nbytes
        r = row(f"G1.{k}", times, nbytes, 2 * k * k * x.size, bw)
        rows.append(gpu_methods.with_methods(r, methods, gpu_methods.auto_choice(x, kern, "same")))
    return rows


def bench_g3(cp, torch, rng, bw) -> dict:
    from cupyx.scipy import ndimage

    x_host = rng.integers(0, 256, (32, 1024, 1024, 3), dtype=np.uint8)
    x = cp.asarray(x_host)
    kern = gpuconv.kernels.get("sharpen")
    kw = dict(mode="same", boundary="edge", axes=(1, 2), out_dtype=np.uint8)
    check_crop(gpuconv.correlate(x, kern, **kw), x_host, kern, **kw)
    times = {"gpuconv": event_ms(cp, lambda: gpuconv.correlate(x, kern, **kw))}
    k4 = cp.asarray(kern)[None, :, :, None]

    def cupyx_run():
        return cp.clip(cp.rint(ndimage.correlate(x.astype(cp.float32), k4, mode="nearest")), 0, 255).astype(cp.uint8)

    times["cupyx (float + clip)"] = event_ms(cp, cupyx_run, repeat=10)
    if torch:
        xt = torch.from_dlpack(x)
        w = torch.from_numpy(np.repeat(kern[None, None], 3, 0)).cuda()
        f = torch.nn.functional

        def torch_run():
            xf = xt.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
            yf = f.conv2d(f.pad(xf, (1, 1, 1, 1), mode="replicate"), w, groups=3)
            return yf.round_().clamp_(0, 255).to(torch.uint8)

        times["torch channels_last"] = event_ms(cp, torch_run, repeat=10)
    return row("G3", times, 2 * x.nbytes, 2 * 9 * x.size, bw)


def write_results(out: Path, device: str, bw: float, rows: list, banks: list) -> list:
    """gpu_results.json and gpu_results.md in `out`; returns the Markdown lines."""
    (out / "gpu_results.json").write_text(json.dumps({"device": device, "copy_bandwidth": bw, "rows": rows,
                                                      "banks": banks}, indent=1))
    lines = [f"device: {device}, copy bandwidth {bw / 1e12:.2f} TB/s", "",
             "| row | gpuconv ms | best peer | peer ms | speedup | GB/s | roofline | auto chose | fastest method |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        auto = (f"{r['auto_choice']} | {r['fastest_method']} ({r['auto_vs_fastest']:.2f}x)" if "auto_choice" in r
                else "- | -")
        lines.append(f"| {r['row']} | {r['ms']['gpuconv']:.3f} | {r['best_peer']} | {r['best_peer_ms']:.3f} | "
                     f"{r['speedup_vs_best']:.2f}x | {r['GBps']:.0f} | {r['roofline_fraction']:.0%} | {auto} |")
    if banks:
        lines += ["", "Kernel banks (G4), gpuconv vs cuDNN at the same precision:", ""] + gpu_banks.table(banks)
    (out / "gpu_results.md").write_text("\n".join(lines) + "\n")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--sizes", default="3,5,7,11")
    ap.add_argument("--rows", default="G1,G2,G3,G4,G5,G6", help="which BENCH.md row groups to run")
    args = ap.parse_args(argv)
    import cupy as cp

    try:
        import torch

        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    except ImportError:
        torch = None
        print("torch not installed: its columns are skipped")
    rng = np.random.default_rng(0)
    bw = copy_bandwidth(cp)
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    device = props["name"].decode()
    print(f"device {device}; copy bandwidth {bw / 1e12:.2f} TB/s")
    helpers = (event_ms, check_crop, row)
    groups = args.rows.split(",")
    unknown = set(groups) - {"G1", "G2", "G3", "G4", "G5", "G6"}
    if unknown:
        raise SystemExit(f"--rows: unknown group(s) {sorted(unknown)}; expected G1..G6")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, banks = [], []
    for group in groups:      # results are written after every group: a run cut short keeps them
        if group == "G1":
            rows += bench_g1(cp, torch, rng, bw, [int(s) for s in args.sizes.split(",")])
        elif group == "G3":
            rows.append(bench_g3(cp, torch, rng, bw))
        elif group == "G2":
            rows.append(gpu_methods.bench_g2(cp, torch, rng, bw, helpers))
        elif group == "G5":
            rows += gpu_methods.bench_g5(cp, torch, rng, bw, helpers)
        elif group == "G6":
            rows += gpu_methods.bench_g6(cp, torch, rng, bw, helpers)
        else:
            banks = gpu_banks.bench_g4(cp, torch, rng, bw, helpers)
        lines = write_results(out, device, bw, rows, banks)
    print("\n".join(lines))
    print(json.dumps([{r["row"]: r["ms"]} for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
