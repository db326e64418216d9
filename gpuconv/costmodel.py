"""Method choice for method="auto": predicted time of each method from a cost model whose
constants were measured on the machine named in the data file (bench/calibrate_numpy.py
re-measures them and rewrites gpuconv/data/numpy_cost.json).

The features follow what each engine does (gpuconv.backends.np_toeplitz / np_fft): GEMM
multiply-adds including the Toeplitz band's zeros, elements gathered or copied, and the
FFT's n log n. Each method's time is a dot product of its features with fitted constants.
"""
from __future__ import annotations

import functools
import json
import math
from importlib import resources

import numpy as np

from .backends.np_fft import fft_lengths
from .backends.np_toeplitz import block_width
from .plan import CorrelatePlan

FEATURES = ("flops", "copied", "fft", "calls")


@functools.lru_cache(maxsize=None)
def numpy_constants() -> dict:
    """Seconds per feature unit for the numpy backend, from gpuconv/data/numpy_cost.json."""
    text = resources.files("gpuconv").joinpath("data/numpy_cost.json").read_text()
    return json.loads(text)


def _row_pass(n_rows: int, n_out: int, k: int, s: int, d: int) -> dict:
    """Last-axis Toeplitz pass over n_rows rows producing n_out outputs each."""
    bw = block_width(k, s, d)
    lw = (bw - 1) * s + (k - 1) * d + 1
    blocks = n_rows * -(-n_out // bw)
    return {"flops": 2.0 * blocks * bw * lw, "copied": blocks * lw + blocks * bw, "fft": 0.0,
            "calls": blocks * bw * lw / 2 ** 20 + 1}


def _column_pass(pre: int, n_out: int, post: int, k: int, s: int, d: int) -> dict:
    """Non-last-axis banded pass: GEMMs T(bh, lh) @ x[rows] for each block."""
    bh = block_width(k, s, d)
    lh = (bh - 1) * s + (k - 1) * d + 1
    blocks = -(-n_out // bh)
    return {"flops": 2.0 * pre * blocks * bh * lh * post, "copied": 2.0 * pre * n_out * post, "fft": 0.0,
            "calls": pre * blocks}


def _add(a: dict, b: dict, scale: float = 1.0) -> dict:
    return {f: a.get(f, 0.0) + scale * b.get(f, 0.0) for f in FEATURES}


def features(plan: CorrelatePlan, method: str, rank: int | None = None) -> dict:
    """The cost features of running `plan` with `method` (rank: separable terms)."""
    bt = plan.batch_size
    padded = plan.padded_sliding
    out = plan.out_sliding
    k, s, d = plan.kernel_shape, plan.stride, plan.dilation
    base = {"flops": 0.0, "copied": float(bt * np.prod(padded)) + float(bt * np.prod(out)), "fft": 0.0, "calls": 1.0}
    if method == "fft":
        lengths = fft_lengths(padded)
        n = float(bt) * float(np.prod(lengths))
        # A transform pair, the spectrum product and unpacking; "calls" carries the fixed
        # cost of planning and of the numpy calls per chunk, which dominates tiny inputs.
        return _add(base, {"fft": 2.0 * n * math.log2(max(n / bt, 2.0)), "copied": 3.0 * n, "calls": 20.0})
    if method == "separable" and plan.ndim > 1:
        shape = list(padded)
        term = {}
        for i in reversed(range(plan.ndim)):
            if i == plan.ndim - 1:
                rows = bt * int(np.prod(shape[:-1]))
                term = _add(term, _row_pass(rows, out[i], k[i], s[i], d[i]))
            else:
                pre = bt * int(np.prod(shape[:i]))
                post = int(np.prod(shape[i + 1:]))
                term = _add(term, _column_pass(pre, out[i], post, k[i], s[i], d[i]))
            shape[i] = out[i]
        base = _add(base, {"copied": float(rank) * bt * np.prod(out)})
        return _add(base, term, float(rank))
    # direct: one Toeplitz pass whose contraction also spans the leading kernel axes
    taps_lead = int(np.prod(k[:-1]))
    rows = bt * int(np.prod(out[:-1]))
    return _add(base, _row_pass(rows, out[-1], k[-1], s[-1], d[-1]), float(taps_lead))


def predict(plan: CorrelatePlan, method: str, rank: int | None = None) -> float:
    """Predicted seconds for `method` on the numpy backend."""
    c = numpy_constants()
    f = features(plan, method, rank)
    return sum(c[name] * f[name] for name in FEATURES)


def choose_numpy(plan: CorrelatePlan, rank: int | None) -> str:
    """The method with the least predicted time; separable only when a rank is known."""
    options = ["direct", "fft"]
    if rank is not None and plan.ndim > 1:
        options.append("separable")
    return min(options, key=lambda m: predict(plan, m, rank))
