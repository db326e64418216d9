"""GPU bench rows for the methods of issue 4: BENCH.md G2 (Gaussian 11x11 sigma 2 on G1's x),
G5 (one 4096^2 image, "same", k = 31/63/127), G6 (one 2**26-sample signal, "same",
k = 3/101/1001), against cupyx.scipy.ndimage (gaussian_filter, convolve1d),
cupyx.scipy.signal (fftconvolve, oaconvolve) and torch, in the same process as the G1/G3 rows
(bench/run_gpu.py calls these).

Every row also times each of gpuconv's methods forced (direct / separable / fft) next to
"auto", and records what auto chose and how far it is from the fastest method measured in
the same run (the issue asks for within 10%).
"""
from __future__ import annotations

import numpy as np

import gpuconv
from gpuconv.plan import correlate_plan
from gpuconv.backends import get_backend


def auto_choice(x, kernel, mode, **kw) -> str:
    """The method gpuconv's "auto" picks for correlate(x, kernel, mode, **kw) on the GPU."""
    kernel = np.asarray(kernel)
    plan = correlate_plan(x.shape, x.dtype, kernel, mode, kw.get("boundary", "constant"), 0.0, 1, 1,
                          kw.get("axes"), None, None, "auto")
    return get_backend("cuda").resolve_method(plan, kernel, x.dtype)[0]


def time_methods(cp, event_ms, fn, methods, repeat) -> dict:
    """ms of fn(method) for "auto" and every forced method."""
    out = {}
    for m in ("auto",) + tuple(methods):
        out[m] = event_ms(cp, lambda m=m: fn(m), repeat=repeat, warmup=2)
    return out


def with_methods(r: dict, times: dict, choice: str) -> dict:
    """Add the per-method times, auto's choice and its distance from the fastest."""
    forced = {m: t for m, t in times.items() if m != "auto"}
    fastest = min(forced, key=forced.get)
    r.update(methods=times, auto_choice=choice, fastest_method=fastest,
             auto_vs_fastest=times["auto"] / forced[fastest], auto_within_10pct=times["auto"] <= 1.1 * forced[fastest])
    return r


def bench_g2(cp, torch, rng, bw, helpers) -> dict:
    event_ms, check_crop, row = helpers
    from cupyx.scipy import ndimage

    x_host = rng.standard_normal((32, 3, 1024, 1024), dtype=np.float32)
    x = cp.asarray(x_host)
    kern = gpuconv.kernels.gaussian(11, 2.0)
    kw = dict(mode="same", boundary="constant", axes=(2, 3))
    check_crop(gpuconv.correlate(x, kern, **kw), x_host, kern, **kw)
    methods = time_methods(cp, event_ms, lambda m: gpuconv.correlate(x, kern, method=m, **kw),
                           ("direct", "separable", "fft"), repeat=10)
    times = {"gpuconv": methods["auto"]}
    # truncate 2.5 gives radius int(2.5 * 2 + 0.5) = 5: the same 11 taps
    times["cupyx.ndimage.gaussian_filter"] = event_ms(
        cp, lambda: ndimage.gaussian_filter(x, (0, 0, 2.0, 2.0), mode="constant", truncate=2.5), repeat=10)
    if torch:
        xt = torch.from_dlpack(x)
        g = np.asarray(np.exp(-((np.arange(11) - 5.0) ** 2) / 8.0), np.float32)
        g /= g.sum()
        wr = torch.from_numpy(np.repeat(g[None, None, None, :], 3, 0)).cuda()
        wc = torch.from_numpy(np.repeat(g[None, None, :, None], 3, 0)).cuda()
        f = torch.nn.functional.conv2d
        times["torch 2 x 1-D"] = event_ms(cp, lambda: f(f(xt, wr, padding=(0, 5), groups=3), wc, padding=(5, 0),
                                                         groups=3), repeat=10)
    taps = 121
    return with_methods(row("G2", times, 2 * x.nbytes, 2 * taps * x.size, bw), methods, auto_choice(x, kern, **kw))


def _relative_error(got, ref) -> float:
    import cupy as cp

    return float(cp.linalg.norm(got - ref) / cp.linalg.norm(ref))


def bench_g5(cp, torch, rng, bw, helpers, sizes=(31, 63, 127)) -> list:
    event_ms, _, row = helpers
    from cupyx.scipy import signal

    x = cp.asarray(rng.standard_normal((4096, 4096), dtype=np.float32))
    rows = []
    for k in sizes:
        kern = rng.standard_normal((k, k)).astype(np.float32)
        kd = cp.asarray(kern)
        ref = signal.fftconvolve(x, kd, mode="same")
        err = _relative_error(gpuconv.convolve(x, kern, "same"), ref)
        assert err < 1e-4, f"G5 k={k}: relative error {err:.2e} against fftconvolve"
        # direct at k = 127 runs the generic kernel for ~0.5 TFLOP: few repeats
        methods = time_methods(cp, event_ms, lambda m: gpuconv.convolve(x, kern, "same", method=m), ("direct", "fft"),
                               repeat=5 if k > 31 else 10)
        times = {"gpuconv": methods["auto"],
                 "cupyx.signal.fftconvolve": event_ms(cp, lambda: signal.fftconvolve(x, kd, mode="same"), repeat=10),
                 "cupyx.signal.oaconvolve": event_ms(cp, lambda: signal.oaconvolve(x, kd, mode="same"), repeat=10)}
        if torch:
            xt = torch.from_dlpack(x)[None, None]
            wt = torch.from_numpy(kern[::-1, ::-1].copy())[None, None].cuda()
            times["torch conv2d"] = event_ms(cp, lambda: torch.nn.functional.conv2d(xt, wt, padding="same"), repeat=5)
        r = row(f"G5.{k}", times, 2 * x.nbytes, 2 * k * k * x.size, bw)
        rows.append(with_methods(r, methods, auto_choice(x, kern, "same")))
    return rows


def bench_g6(cp, torch, rng, bw, helpers, sizes=(3, 101, 1001)) -> list:
    event_ms, _, row = helpers
    from cupyx.scipy import ndimage, signal

    x = cp.asarray(rng.standard_normal(2**26, dtype=np.float32))
    rows = []
    for k in sizes:
        kern = rng.standard_normal(k).astype(np.float32)
        kd = cp.asarray(kern)
        ref = signal.oaconvolve(x, kd, mode="same")
        err = _relative_error(gpuconv.convolve(x, kern, "same"), ref)
        assert err < 1e-4, f"G6 k={k}: relative error {err:.2e} against oaconvolve"
        methods = time_methods(cp, event_ms, lambda m: gpuconv.convolve(x, kern, "same", method=m), ("direct", "fft"),
                               repeat=10)
        times = {"gpuconv": methods["auto"],
                 "cupyx.signal.oaconvolve": event_ms(cp, lambda: signal.oaconvolve(x, kd, mode="same"), repeat=10),
                 "cupyx.signal.fftconvolve": event_ms(cp, lambda: signal.fftconvolve(x, kd, mode="same"), repeat=5)}
        if k <= 101:  # scipy.ndimage's direct 1-D filter (its origin differs for even k; k is odd here)
            times["cupyx.ndimage.convolve1d"] = event_ms(
                cp, lambda: ndimage.convolve1d(x, kd, mode="constant"), repeat=10)
        if torch:
            xt = torch.from_dlpack(x)[None, None]
            wt = torch.from_numpy(kern[::-1].copy())[None, None].cuda()
            times["torch conv1d"] = event_ms(cp, lambda: torch.nn.functional.conv1d(xt, wt, padding="same"), repeat=5)
        r = row(f"G6.{k}", times, 2 * x.nbytes, 2 * k * x.size, bw)
        rows.append(with_methods(r, methods, auto_choice(x, kern, "same")))
    return rows
