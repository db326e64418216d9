"""Method choice for method="auto": predicted time of each engine from a cost model whose
constants were measured on the machine named in the data file (bench/calibrate_numpy.py
re-measures them and rewrites gpuconv/data/numpy_cost.json).

Each engine has its own features, following what it does (gpuconv.backends.numpy.*): its
arithmetic (GEMM multiply-adds including the Toeplitz band's zeros, tap updates, or the FFT's
n log n), the memory it moves (gathers, copies between passes, padding in and result out),
and a count of fixed costs (numpy calls per chunk or block). Its predicted time is the dot
product of those features with its own fitted constants, so no engine's constants are bent
to fit another's.
"""
from __future__ import annotations

import functools
import json
import math
from importlib import resources


from .fft import fft_lengths
from .toeplitz import block_width
from ...plan import CorrelatePlan

# Engines behind the public methods: "direct" runs as "toeplitz" (GEMM) or "taps".
# "opencv" (cv2.filter2D / sepFilter2D) takes part where OpenCV is installed and computes the
# plan (gpuconv.backends.numpy.opencv.supports).
ENGINES = ("toeplitz", "taps", "separable", "fft", "opencv")
DIRECT = ("toeplitz", "taps", "opencv")
# "fixed" is each engine's cost per call (validation aside), measured on a tiny problem;
# the other constants are fitted on what remains.
FEATURES = {
    "toeplitz": ("fixed", "flops", "moved", "calls"),
    "taps": ("fixed", "updates", "rows", "moved", "calls"),
    "separable": ("fixed", "flops", "moved", "calls"),
    "fft": ("fixed", "nlogn", "moved", "calls"),
    "opencv": ("fixed", "updates", "thin", "nlogn", "moved", "calls"),
}


@functools.lru_cache(maxsize=None)
def numpy_constants() -> dict:
    """Seconds per feature unit for the numpy backend, from gpuconv/data/numpy_cost.json."""
    text = resources.files("gpuconv").joinpath("data/numpy_cost.json").read_text()
    return json.loads(text)


def _row_pass(n_rows: int, n_out: int, k: int, s: int, d: int, taps_lead: int = 1) -> dict:
    """Last-axis Toeplitz pass: n_rows rows of n_out outputs, contraction over taps_lead rows."""
    bw = block_width(k, s, d)
    lw = (bw - 1) * s + (k - 1) * d + 1
    blocks = n_rows * -(-n_out // bw)
    return {"flops": 2.0 * blocks * bw * lw * taps_lead, "moved": blocks * (lw * taps_lead + bw),
            "calls": blocks * bw * lw * taps_lead / 2 ** 20 + 1}


def _column_pass(pre: int, n_out: int, post: int, k: int, s: int, d: int) -> dict:
    """Non-last-axis banded pass: one GEMM T(bh, lh) @ x[rows] per block."""
    bh = block_width(k, s, d)
    lh = (bh - 1) * s + (k - 1) * d + 1
    blocks = pre * -(-n_out // bh)
    return {"flops": 2.0 * blocks * bh * lh * post, "moved": 2.0 * pre * n_out * post, "calls": float(blocks)}


def _add(a: dict, b: dict, scale: float = 1.0) -> dict:
    return {f: a.get(f, 0.0) + scale * b.get(f, 0.0) for f in set(a) | set(b)}


def features(plan: CorrelatePlan, engine: str, rank: int | None = None) -> dict:
    """The cost features of running `plan` with `engine` (rank: separable terms)."""
    bt = plan.batch_size
    padded, out = plan.padded_sliding, plan.out_sliding
    k, s, d = plan.kernel_shape, plan.stride, plan.dilation
    n_out = float(bt) * float(math.prod(out))
    io = {"moved": float(bt) * float(math.prod(padded)) + n_out, "fixed": 1.0}
    if engine == "fft":
        geo = fft_lengths(padded, k, out, s, d)
        per_block = float(math.prod([length for length, _ in geo]))
        blocks = float(bt) * float(math.prod([n for _, n in geo]))
        return _add(io, {"nlogn": 2.0 * blocks * per_block * math.log2(max(per_block, 2.0)),
                         "moved": 3.0 * blocks * per_block, "calls": 20.0 + 3.0 * bt * geo[0][1]})
    if engine == "taps":
        n_taps = float(math.prod(k))
        # numpy walks a 2-D/3-D slice row by row: each row of each tap costs a little extra
        rows = float(bt) * float(math.prod(out[:-1])) * n_taps
        return _add(io, {"updates": n_out * n_taps, "rows": rows, "calls": 2.0 * n_taps * max(1.0, n_out / 2 ** 18)})
    if engine == "separable":
        shape, term = list(padded), {}
        for i in reversed(range(plan.ndim)):
            if i == plan.ndim - 1:
                term = _add(term, _row_pass(bt * math.prod(shape[:-1]), out[i], k[i], s[i], d[i]))
            else:
                term = _add(term, _column_pass(bt * math.prod(shape[:i]), out[i], math.prod(shape[i + 1:]),
                                               k[i], s[i], d[i]))
            shape[i] = out[i]
        return _add(_add(io, {"moved": float(rank or 1) * n_out}), term, float(rank or 1))
    if engine == "opencv":
        from . import opencv

        images, height, width, channels = opencv.layout(plan.in_shape, plan)
        taps = float(math.prod(k))
        # images of very few rows (1-D signals) run ~30x slower per tap than 2-D images
        per_tap = "thin" if height < 8 else "updates"
        if rank == 1 and plan.ndim == 2:   # sepFilter2D: a row pass and a column pass
            work = {per_tap: n_out * float(sum(k))}
        elif taps <= opencv.DFT_ABOVE:     # filter2D sums directly
            work = {per_tap: n_out * taps}
        else:                              # filter2D by DFT
            work = {"nlogn": n_out * math.log2(max(2.0, float(height) * float(width)))}
        return _add(io, dict(work, calls=float(images)))
    rows = bt * math.prod(out[:-1])
    return _add(io, _row_pass(rows, out[-1], k[-1], s[-1], d[-1], math.prod(k[:-1])))


def predict(plan: CorrelatePlan, engine: str, rank: int | None = None) -> float:
    """Predicted seconds for `engine` on the numpy backend."""
    c = numpy_constants()[engine]
    f = features(plan, engine, rank)
    return sum(c[name] * f.get(name, 0.0) for name in FEATURES[engine])


def usable(plan: CorrelatePlan, engine: str, rank: int | None = None) -> bool:
    """Whether `engine` can run `plan`: separable needs a known rank and 2-D/3-D kernels;
    opencv needs OpenCV and a plan it computes."""
    if engine == "separable":
        return rank is not None and plan.ndim > 1
    if engine == "opencv":
        from . import opencv

        return opencv.supports(plan)
    return True


@functools.lru_cache(maxsize=4096)
def choose_numpy(plan: CorrelatePlan, rank: int | None, allowed=ENGINES) -> str:
    """The engine with the least predicted time among the `allowed` ones usable for `plan`
    (and measured: an engine without constants in the data file is not chosen)."""
    options = [e for e in allowed if usable(plan, e, rank) and e in numpy_constants()]
    return min(options, key=lambda m: predict(plan, m, rank))
