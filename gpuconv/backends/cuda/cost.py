"""Method choice for method="auto" on the CUDA backend: the predicted time of direct,
separable and FFT from a roofline cost model whose constants live in
gpuconv/data/cuda_cost.json (bench/calibrate_cuda.py measures them on a GPU and rewrites
the file; the file says whether its numbers were measured).

Each method is broken into the launches it makes, and each launch is charged
``launch + max(bytes / bandwidth, flops / rate)``, the rate being that of the kernel that
runs (tiled, separable, rows, generic; float64 at `float64_factor` of it). The FFT is
charged its transforms, ``fft_sample_log2`` seconds per sample and log2 of the block size,
plus `fft_passes` trips of its blocks through memory and a fixed cost (plan lookups, the
one flag read back for the NaN/inf check).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from importlib import resources

import numpy as np

from ...plan import CorrelatePlan
from .fft import block_samples, fft_blocks
from .blocks import ArrayView
from .correlate_plan import TILED_BLOCK, plan_launch, plan_separable_launch, tiled_rows

METHODS = ("direct", "separable", "fft")
# A separable plan must beat direct by this margin: both are often memory-bound, and the
# direct result is the more accurate one (no factorisation error).
SEPARABLE_MARGIN = 0.9


@functools.lru_cache(maxsize=None)
def cuda_constants() -> dict:
    """The cost constants, from gpuconv/data/cuda_cost.json."""
    return json.loads(resources.files("gpuconv").joinpath("data/cuda_cost.json").read_text())


def _views(plan: CorrelatePlan, in_dtype, out_shape=None) -> tuple:
    """C-ordered ArrayViews of x and the result (addresses 16-byte aligned) for planning."""
    def view(shape, dtype):
        dtype = np.dtype(dtype)
        strides = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) * dtype.itemsize for i in range(len(shape)))
        return ArrayView.of(shape, strides, dtype, 0)
    return view(plan.in_shape, in_dtype), view(out_shape or plan.result_shape, plan.result_dtype)


def _kernel_kind(filename: str) -> str:
    return filename.split("_", 1)[1].split(".")[0]  # correlate_tiled.cu -> tiled


def launch_features(plan: CorrelatePlan, in_dtype, kind: str, fma_per_output: float) -> dict:
    """Features of one correlation launch: compulsory bytes, useful flops, kernel kind."""
    n_in = plan.batch_size * math.prod(plan.in_sliding)
    bytes_ = n_in * np.dtype(in_dtype).itemsize + plan.n_outputs * np.dtype(plan.result_dtype).itemsize
    return {"kind": kind, "bytes": float(bytes_), "flops": 2.0 * fma_per_output * plan.n_outputs,
            "float64": np.dtype(plan.compute_dtype) == np.float64}


def pass_plan(plan: CorrelatePlan, i: int, shape: tuple, last: bool) -> CorrelatePlan:
    """The 1-D pass along sliding axis i of an array of `shape` (unfused separable passes,
    last axis first): plan's pads, stride and dilation on that axis; the compute dtype and
    no clip unless it is the `last` pass, which writes the result."""
    a = plan.axes[i]
    out_shape = list(shape)
    out_shape[a] = plan.out_sliding[i]
    acc = np.dtype(plan.compute_dtype)
    return dataclasses.replace(
        plan, batch_shape=tuple(n for j, n in enumerate(shape) if j != a), in_sliding=(shape[a],), axes=(a,),
        in_shape=tuple(shape), kernel_shape=(plan.kernel_shape[i],), out_sliding=(plan.out_sliding[i],),
        pad_lo=(plan.pad_lo[i],), pad_hi=(plan.pad_hi[i],), stride=(plan.stride[i],), dilation=(plan.dilation[i],),
        result_dtype=plan.result_dtype if last else acc, clip=plan.clip if last else None, method="direct")


def finish_plan(plan: CorrelatePlan, shape: tuple) -> CorrelatePlan:
    """The pass that applies plan's epilogue (clip, round, saturating cast) to a compute-dtype
    result of `shape` (any axis order): a 1-tap kernel along the last axis, no padding."""
    shape = tuple(shape)
    return dataclasses.replace(plan, batch_shape=shape[:-1], in_sliding=shape[-1:], in_shape=shape, kernel_shape=(1,),
                               out_sliding=shape[-1:], axes=(len(shape) - 1,), pad_lo=(0,), pad_hi=(0,), stride=(1,),
                               dilation=(1,), boundary="constant", cval=0.0, method="direct")


def method_launches(plan: CorrelatePlan, in_dtype, method: str, rank: int | None = None) -> list:
    """The launches (features) `method` makes for `plan`; for "fft" one pseudo-launch
    with the transform features."""
    kernel = np.ones(plan.kernel_shape, dtype=plan.compute_dtype)
    xv, yv = _views(plan, in_dtype)
    if method == "direct":
        launch = plan_launch(xv, yv, kernel, plan)
        return [launch_features(plan, in_dtype, _kernel_kind(launch.filename), math.prod(plan.kernel_shape))]
    if method == "separable":
        rank = rank or 1
        terms = [[np.ones(k) for k in plan.kernel_shape]] * rank
        fused = plan_separable_launch(xv, yv, terms, plan)
        if fused is not None:
            kh, kw = plan.kernel_shape
            ry = tiled_rows(np.dtype(plan.compute_dtype), kh, kw, int(fused.geometry["fold"]), separable=True)
            tile_h = TILED_BLOCK[1] * ry
            fma = rank * (kw * (tile_h + kh - 1) / tile_h + kh)
            return [launch_features(plan, in_dtype, "separable", fma)]
        out = []
        for _ in range(rank):
            shape, dtype = tuple(plan.in_shape), in_dtype
            for i in reversed(range(plan.ndim)):
                p = pass_plan(plan, i, shape, last=rank == 1 and i == 0)
                out += method_launches(p, dtype, "direct")
                shape, dtype = p.result_shape, plan.compute_dtype
        if rank > 1:  # the terms are summed in the compute dtype, then one finishing pass
            out += method_launches(finish_plan(plan, plan.result_shape), plan.compute_dtype, "direct")
        return out
    if method == "fft":
        acc = np.dtype(plan.compute_dtype).itemsize
        samples = float(plan.batch_size * block_samples(plan))
        log_l = math.log2(max(2, math.prod(g[0] for g in fft_blocks(plan))))
        n_in = plan.batch_size * math.prod(plan.in_sliding)
        moved = n_in * np.dtype(in_dtype).itemsize + plan.n_outputs * (np.dtype(plan.result_dtype).itemsize + 2 * acc)
        return [{"kind": "fft", "samples_log2": 2.0 * samples * log_l, "block_bytes": samples * acc,
                 "bytes": float(moved)}]
    raise ValueError(f"method={method!r} is not a CUDA method; expected one of {METHODS}")


def launch_seconds(f: dict, c: dict) -> float:
    """Predicted seconds of one launch's features under constants `c`."""
    if f["kind"] == "fft":
        return (c["fft_fixed"] + f["samples_log2"] * c["fft_sample_log2"]
                + (f["bytes"] + c["fft_passes"] * f["block_bytes"]) / c["bandwidth"])
    rate = c["flop_rate"][f["kind"]] * (c["float64_factor"] if f["float64"] else 1.0)
    return c["launch"] + max(f["bytes"] / c["bandwidth"], f["flops"] / rate)


def predict(plan: CorrelatePlan, in_dtype, method: str, rank: int | None = None, constants: dict | None = None) -> float:
    """Predicted seconds of `method` on the GPU for `plan` with input dtype `in_dtype`.

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> p = correlate_plan((4096, 4096), np.float32, np.ones((127, 127)), "same", "constant", 0.0, 1, 1,
    ...                    None, None, None, "auto")
    >>> predict(p, np.float32, "fft") < predict(p, np.float32, "direct")
    True
    """
    c = constants or cuda_constants()
    return sum(launch_seconds(f, c) for f in method_launches(plan, in_dtype, method, rank))


@functools.lru_cache(maxsize=4096)
def choose_cuda(plan: CorrelatePlan, in_dtype: np.dtype, rank: int | None) -> str:
    """The method with the least predicted time; separable only for 2-D/3-D kernels of
    known rank, and only when it beats direct by SEPARABLE_MARGIN."""
    times = {"direct": predict(plan, in_dtype, "direct")}
    if rank is not None and plan.ndim > 1:
        sep = predict(plan, in_dtype, "separable", rank)
        if sep < SEPARABLE_MARGIN * times["direct"]:
            times["separable"] = sep
    times["fft"] = predict(plan, in_dtype, "fft")
    return min(times, key=times.get)
