"""The CPU bench: BENCH.md rows C1-C6, gpuconv's numpy backend against scipy, OpenCV and
torch-cpu (each skipped, and said so, when not installed), interleaved in one process.

Every row first checks gpuconv's output against a peer or a float64 reference, then times all
contenders round-robin (median of the rounds) and reports ms, GB/s of compulsory traffic
(inputs read once, output written once), GFLOP/s of useful work (2 per tap per output) and
the ratio best-peer-time / gpuconv-time (> 1: gpuconv is faster).

    python -m bench.run_cpu --out bench/results [--rows C1,C4] [--rounds 5]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import gpuconv
from gpuconv import kernels

TARGETS = {  # BENCH.md since 2026-11-29 (OpenCV an engine of the CPU backend)
    "C1.3": "≤1.15x OpenCV time; ≥8x scipy", "C1.5": "≤1.15x OpenCV time; ≥8x scipy",
    "C1.11": "≤1.15x OpenCV time; ≥8x scipy", "C2": "≤1.15x OpenCV time; ≥8x scipy",
    "C3": "≤1.15x OpenCV time; ≥8x scipy", "C4": "≤1.5x torch-cpu time",
    "C5.31": "≤ min(OpenCV, scipy fftconvolve)", "C5.63": "≤ min(OpenCV, scipy fftconvolve)",
    "C6.3": "≤ best peer", "C6.101": "≤ best peer",
}


def optional(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def rows(rng, wanted):
    """Yield (id, description, bytes, flops, gpuconv fn, {peer: fn}, check fn)."""
    nd = optional("scipy.ndimage")
    sig = optional("scipy.signal")
    cv2 = optional("cv2")
    torch = optional("torch")
    x = rng.standard_normal((8, 3, 512, 512)).astype(np.float32)
    planes = x.reshape(-1, 512, 512)

    for k in (3, 5, 11):
        rid = f"C1.{k}"
        if rid.split(".")[0] not in wanted and rid not in wanted:
            continue
        w = rng.standard_normal((k, k)).astype(np.float32)
        peers = {}
        if nd:
            peers["scipy.ndimage.correlate"] = lambda w=w: nd.correlate(x, w[None, None], mode="constant")
        if cv2:
            peers["cv2.filter2D"] = lambda w=w: [cv2.filter2D(p, -1, w, borderType=cv2.BORDER_CONSTANT) for p in planes]
        ours = lambda w=w: gpuconv.correlate(x, w, "same")
        ref = (lambda w=w: nd.correlate(x[:1, :1], w[None, None], mode="constant")) if nd else None
        yield rid, f"(8,3,512,512) f32 same {k}x{k}", 2 * x.nbytes, 2 * k * k * x.size, ours, peers, (ref, lambda y: y[:1, :1])

    if "C2" in wanted:
        g = kernels.gaussian(11, 2.0)
        peers = {}
        if nd:
            peers["scipy.ndimage.gaussian_filter"] = lambda: nd.gaussian_filter(x, (0, 0, 2, 2), truncate=2.5, mode="constant")
        if cv2:
            peers["cv2.GaussianBlur"] = lambda: [cv2.GaussianBlur(p, (11, 11), 2.0, borderType=cv2.BORDER_CONSTANT) for p in planes]
        ref = (lambda: nd.gaussian_filter(x[:1, :1].astype(np.float64), (0, 0, 2, 2), truncate=2.5, mode="constant")) if nd else None
        yield "C2", "gaussian 11x11 s=2 on C1's x", 2 * x.nbytes, 2 * 121 * x.size, lambda: gpuconv.correlate(x, g, "same"), peers, (ref, lambda y: y[:1, :1])

    if "C3" in wanted:
        u8 = rng.integers(0, 256, (4, 1024, 1024, 3), dtype=np.uint8)
        s = kernels.sharpen()
        peers = {}
        if nd:
            peers["scipy float+clip"] = lambda: np.clip(nd.correlate(u8.astype(np.float32), s[None, :, :, None], mode="nearest"), 0, 255).astype(np.uint8)
        if cv2:
            peers["cv2.filter2D"] = lambda: [cv2.filter2D(im, -1, s, borderType=cv2.BORDER_REPLICATE) for im in u8]
        ours = lambda: gpuconv.correlate(u8, s, "same", axes=(1, 2), boundary="edge", out_dtype=np.uint8)
        ref = (lambda: np.clip(np.rint(nd.correlate(u8[:1].astype(np.float64), s[None, :, :, None].astype(np.float64), mode="nearest")), 0, 255)) if nd else None
        yield "C3", "uint8 (4,1024,1024,3) sharpen edge -> uint8", 2 * u8.nbytes, 2 * 9 * u8.size, ours, peers, (ref, lambda y: y[:1])

    if "C4" in wanted:
        xb = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)
        wb = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
        peers = {}
        if torch:
            tx, tw = torch.from_numpy(xb), torch.from_numpy(wb)
            peers["torch-cpu conv2d"] = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)
        xpad = np.pad(xb, ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(xpad, (3, 3), axis=(2, 3))
        peers["numpy einsum"] = lambda: np.einsum("nchwij,ocij->nohw", win, wb, optimize=True)
        ref = lambda: np.einsum("nchwij,ocij->nohw", win[:1].astype(np.float64), wb.astype(np.float64), optimize=True)
        out_elems = 4 * 32 * 64 * 64
        yield "C4", "bank (4,16,64,64)->32 3x3 pad 1", xb.nbytes + wb.nbytes + 4 * out_elems, 2 * 16 * 9 * out_elems, \
            lambda: gpuconv.conv2d(xb, wb, padding=1), peers, (ref, lambda y: y[:1])

    img = rng.standard_normal((1024, 1024)).astype(np.float32)
    for k in (31, 63):
        rid = f"C5.{k}"
        if "C5" not in wanted and rid not in wanted:
            continue
        w = rng.standard_normal((k, k)).astype(np.float32)
        peers = {}
        if sig:
            peers["scipy.signal.fftconvolve"] = lambda w=w: sig.fftconvolve(img, w[::-1, ::-1], mode="same")
        if cv2:
            peers["cv2.filter2D"] = lambda w=w: cv2.filter2D(img, -1, w, borderType=cv2.BORDER_CONSTANT)
        ref = (lambda w=w: sig.fftconvolve(img.astype(np.float64), w[::-1, ::-1].astype(np.float64), mode="same")) if sig else None
        yield rid, f"(1024,1024) same {k}x{k}", 2 * img.nbytes, 2 * k * k * img.size, lambda w=w: gpuconv.correlate(img, w, "same"), peers, (ref, lambda y: y)

    sig1 = rng.standard_normal(1 << 23).astype(np.float32)
    for k in (3, 101):
        rid = f"C6.{k}"
        if "C6" not in wanted and rid not in wanted:
            continue
        w = rng.standard_normal(k).astype(np.float32)
        peers = {"numpy.convolve": lambda w=w: np.convolve(sig1, w, "same")}
        if sig:
            peers["scipy.signal.oaconvolve"] = lambda w=w: sig.oaconvolve(sig1, w, mode="same")
        ref = lambda w=w: np.convolve(sig1.astype(np.float64), w.astype(np.float64), "same")
        yield rid, f"1-D 2**23 same k={k}", 2 * sig1.nbytes, 2 * k * sig1.size, lambda w=w: gpuconv.convolve(sig1, w, "same"), peers, (ref, lambda y: y)


def check(ours, ref_pair):
    ref_fn, crop = ref_pair
    if ref_fn is None:
        return None
    y = np.asarray(crop(np.asarray(ours())), dtype=np.float64)
    r = np.asarray(ref_fn(), dtype=np.float64)
    scale = max(np.abs(r).max(), 1.0)
    return float(np.abs(y - r).max() / scale)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--rows", default="C1,C2,C3,C4,C5,C6")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    wanted = set(args.rows.split(","))
    rng = np.random.default_rng(0)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, {platform.python_version()}"
    missing = [m for m in ("scipy", "cv2", "torch") if optional(m) is None]
    print("machine:", machine)
    if missing:
        print("peers not installed (rows run without them):", ", ".join(missing))
    results = []
    for rid, desc, nbytes, flops, ours, peers, ref in rows(rng, wanted):
        err = check(ours, ref)
        contenders = {"gpuconv": ours, **peers}
        times = {name: [] for name in contenders}
        for fn in contenders.values():
            fn()  # warm-up
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(t)) for name, t in times.items()}
        best_peer = min((n for n in med if n != "gpuconv"), key=med.get, default=None)
        cv_peer = next((n for n in med if n.startswith("cv2")), None)
        sp_peer = next((n for n in med if n.startswith("scipy")), None)
        row = {"id": rid, "workload": desc, "gpuconv_ms": med["gpuconv"] * 1e3,
               "time_vs_opencv": med["gpuconv"] / med[cv_peer] if cv_peer else None,
               "speedup_vs_scipy": med[sp_peer] / med["gpuconv"] if sp_peer else None,
               "peers_ms": {n: med[n] * 1e3 for n in peers}, "best_peer": best_peer,
               "speedup_vs_best_peer": (med[best_peer] / med["gpuconv"]) if best_peer else None,
               "gb_s": nbytes / med["gpuconv"] / 1e9, "gflop_s": flops / med["gpuconv"] / 1e9,
               "max_rel_err": err, "target": TARGETS.get(rid, "")}
        results.append(row)
        peer_txt = ", ".join(f"{n} {v:.1f}" for n, v in row["peers_ms"].items())
        print(f"{rid:6} {desc:38} gpuconv {row['gpuconv_ms']:8.2f} ms | {peer_txt} | err {err:.1e}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu.json").write_text(json.dumps({"machine": machine, "rows": results}, indent=1))
    lines = [f"Machine: {machine}. Median of {args.rounds} interleaved rounds; ratio = best peer time / gpuconv time.", "",
             "| id | workload | gpuconv ms | peers ms | ratio vs best peer | time vs OpenCV | vs scipy | GB/s | GFLOP/s | "
             "target |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        peers = "; ".join(f"{n} {v:.1f}" for n, v in r["peers_ms"].items()) or "none installed"
        ratio = f"{r['speedup_vs_best_peer']:.2f}x ({r['best_peer']})" if r["best_peer"] else "-"
        vs_cv = f"{r['time_vs_opencv']:.2f}x" if r["time_vs_opencv"] else "-"
        vs_sp = f"{r['speedup_vs_scipy']:.1f}x faster" if r["speedup_vs_scipy"] else "-"
        lines.append(f"| {r['id']} | {r['workload']} | {r['gpuconv_ms']:.2f} | {peers} | {ratio} | {vs_cv} | {vs_sp} | "
                     f"{r['gb_s']:.1f} | {r['gflop_s']:.1f} | {r['target']} |")
    (out / "cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
