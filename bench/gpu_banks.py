"""GPU bench rows for kernel banks (issue 5): BENCH.md G4a-G4d, gpuconv.conv2d against
torch.nn.functional.conv2d on cuDNN (cudnn.benchmark on) at three precisions, in the same
process as the other G rows (bench/run_gpu.py calls bench_g4):

  float32   gpuconv precision=None (exact FMA)      vs cuDNN with allow_tf32 = False
  tf32      gpuconv precision="tf32"                vs cuDNN with allow_tf32 = True
  float16   gpuconv on float16 x / w (tensor cores) vs cuDNN on float16

For every precision both layouts are timed (gpuconv NCHW / NHWC, torch NCHW /
channels_last) and the faster of each side is compared. Before timing, each gpuconv result
is checked against torch in float64 on the first image, within conv2d's stated bound.

Roofline per precision: max(compulsory bytes / copy bandwidth, flops / peak), with the
H100 SXM dense peaks float32 FMA 66.9, tf32 494.7 and float16 989.4 TFLOP/s.
"""
from __future__ import annotations

import numpy as np

import gpuconv

# (name, N, C, H, O, k, padding): BENCH.md G4a-G4d, square images, stride 1
WORKLOADS = (("G4a", 16, 64, 128, 64, 3, 1), ("G4b", 8, 128, 64, 256, 3, 1), ("G4c", 32, 3, 512, 16, 3, 1),
             ("G4d", 16, 32, 256, 32, 5, 2))
PEAKS = {"float32": 66.9e12, "tf32": 494.7e12, "float16": 989.4e12}
# BENCH.md targets: float32 at or below cuDNN (G4c: <= 0.30 ms), tf32 / float16 within 1.3x of cuDNN
TARGETS = {"float32": 1.0, "tf32": 1.3, "float16": 1.3}


def _check(torch, y, x, w, padding, precision, channels_last) -> float:
    """Max error on image 0 relative to sum |w x|; asserts conv2d's bound."""
    import cupy as cp

    xt = torch.from_dlpack(x[:1]).double()
    wt = torch.from_dlpack(w).double()
    if channels_last:
        xt, wt = xt.permute(0, 3, 1, 2), wt.permute(0, 3, 1, 2)
    f = torch.nn.functional.conv2d
    ref = f(xt, wt, padding=padding)
    mag = f(xt.abs(), wt.abs(), padding=padding)
    got = torch.from_dlpack(cp.ascontiguousarray(y[:1])).double()
    if channels_last:
        got = got.permute(0, 3, 1, 2)
    rel = float(((got - ref).abs() / (mag + 1e-30)).max())
    k = w[0].size
    bound = 64 * 2.0**-24 if precision == "float32" else 2.0**-10 + (k + 2) * 2.0**-23 + 2.0**-11
    assert rel <= bound, f"error {rel:.3g} x sum|w x| over the bound {bound:.3g}"
    return rel


def bench_g4(cp, torch, rng, bw, helpers) -> list:
    """One row per workload and precision: gpuconv and cuDNN in both layouts."""
    event_ms, _, _ = helpers
    rows = []
    for name, n, c, h, o, k, pad in WORKLOADS:
        x32 = cp.asarray(rng.standard_normal((n, c, h, h), dtype=np.float32))
        w32 = cp.asarray(rng.standard_normal((o, c, k, k), dtype=np.float32) / np.sqrt(c * k * k))
        flops = 2.0 * n * h * h * o * c * k * k
        for precision in ("float32", "tf32", "float16"):
            dt = cp.float16 if precision == "float16" else cp.float32
            x, w = x32.astype(dt), w32.astype(dt)
            x_cl, w_cl = cp.ascontiguousarray(x.transpose(0, 2, 3, 1)), cp.ascontiguousarray(w.transpose(0, 2, 3, 1))
            prec = "tf32" if precision == "tf32" else None
            times, errors = {}, {}
            for layout, xa, wa in (("NCHW", x, w), ("NHWC", x_cl, w_cl)):
                y = gpuconv.conv2d(xa, wa, padding=pad, layout=layout, precision=prec)
                errors[layout] = _check(torch, y, xa, wa, pad, precision, layout == "NHWC") if torch else None
                times[f"gpuconv {layout}"] = event_ms(
                    cp, lambda xa=xa, wa=wa, layout=layout: gpuconv.conv2d(xa, wa, padding=pad, layout=layout,
                                                                           precision=prec))
            if torch:
                torch.backends.cudnn.allow_tf32 = precision == "tf32"
                xt = torch.from_dlpack(x)
                wt = torch.from_dlpack(w)
                xt_cl = xt.contiguous(memory_format=torch.channels_last)
                wt_cl = wt.contiguous(memory_format=torch.channels_last)
                f = torch.nn.functional.conv2d
                times["cuDNN NCHW"] = event_ms(cp, lambda: f(xt, wt, padding=pad))
                times["cuDNN channels_last"] = event_ms(cp, lambda: f(xt_cl, wt_cl, padding=pad))
                torch.backends.cudnn.allow_tf32 = False
            ours = min((t, lay) for lay, t in times.items() if lay.startswith("gpuconv"))
            peers = [(t, lay) for lay, t in times.items() if lay.startswith("cuDNN")]
            best = min(peers) if peers else (None, None)
            nbytes = (x.nbytes + w.nbytes + n * o * h * h * x.itemsize)
            floor = max(nbytes / bw, flops / PEAKS[precision]) * 1e3
            target = 0.30 if (name == "G4c" and precision == "float32") else (
                None if best[0] is None else TARGETS[precision] * best[0])
            rows.append({"row": f"{name} {precision}", "ms": times, "gpuconv_ms": ours[0], "gpuconv_layout": ours[1],
                         "best_peer": best[1], "best_peer_ms": best[0],
                         "ratio_to_cudnn": None if best[0] is None else ours[0] / best[0],
                         "target_ms": target, "meets_target": None if target is None else ours[0] <= target,
                         "TFLOPs": flops / (ours[0] / 1e3) / 1e12, "floor_ms": floor,
                         "roofline_fraction": floor / ours[0], "max_rel_error": errors})
    return rows


def table(rows) -> list:
    """Markdown lines for the G4 rows."""
    lines = ["| row | gpuconv ms (layout) | cuDNN ms (layout) | ours / cuDNN | target ms | met | TFLOP/s | roofline |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = "-" if r["best_peer_ms"] is None else f"{r['best_peer_ms']:.3f} ({r['best_peer']})"
        ratio = "-" if r["ratio_to_cudnn"] is None else f"{r['ratio_to_cudnn']:.2f}"
        target = "-" if r["target_ms"] is None else f"{r['target_ms']:.3f}"
        lines.append(f"| {r['row']} | {r['gpuconv_ms']:.3f} ({r['gpuconv_layout']}) | {peer} | {ratio} | {target} | "
                     f"{r['meets_target']} | {r['TFLOPs']:.1f} | {r['roofline_fraction']:.0%} |")
    return lines
