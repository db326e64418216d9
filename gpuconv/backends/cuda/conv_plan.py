"""Host-side planning for the kernel-bank kernels (conv2d / conv1d on the GPU): which kernel
and configuration, the launch shape and the GcConvGeometry block, whose layout mirrors
kernels_cuda/gpuconv_igemm.cuh field by field (gpuconv.backends.cuda.blocks).

Three kernels:
  conv_igemm.cu       implicit GEMM with exact FMA arithmetic (float32 or float64)
  conv_igemm_tc.cu    the same GEMM on tensor cores (tf32 or float16 operands, float32 sums)
  conv_depthwise.cu   one input channel per group (groups == C), a direct sliding window

Pure numpy, no CuPy: it takes shapes, strides and dtypes, so it is tested everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...plan import ConvPlan
from .blocks import ACTIVATION_IDS, BOUNDARY_IDS, CONV_GEOMETRY_DTYPE, ArrayView, cpp_types, epilogue_block, instance
from .correlate_plan import GRID_YZ_MAX

# conv_igemm (BM, BN, TM, TN), 256 threads each, by the output channels of a group: the
# block covers a group's channels where it can, so each input tile is gathered once.
FMA_CONFIGS = ((64, (128, 128, 8, 8)), (32, (128, 64, 8, 4)), (16, (256, 32, 8, 4)), (0, (256, 16, 8, 2)))
FMA_BK = 8
# conv_igemm_tc: BN by the output channels of a group (BM = 128); K step per operand type
TC_BN = ((64, 128), (32, 64), (16, 32), (0, 16))
TC_BK = {"tf32": 8, "float16": 16}
TC_PREC_IDS = {"tf32": 0, "float16": 1}
THREADS = 256
GRID_X_MAX = 2**31 - 1


def arithmetic(precision: str | None, in_dtype, tensor_cores: bool) -> str:
    """How a bank computes: "fma" (exact in the compute dtype), "tf32" or "float16" (tensor
    cores, float32 sums). float16 inputs use tensor cores unless precision="float32";
    float32 inputs only when precision asks. Without tensor cores (before sm_80) every call
    is "fma", which meets every precision's bound.

    Examples
    --------
    >>> arithmetic(None, np.float16, True), arithmetic(None, np.float32, True), arithmetic("tf32", np.float32, True)
    ('float16', 'fma', 'tf32')
    >>> arithmetic("tf32", np.float32, False), arithmetic("tf32", np.float64, True)
    ('fma', 'fma')
    """
    dt = np.dtype(in_dtype)
    if not tensor_cores or dt not in (np.dtype(np.float16), np.dtype(np.float32)) or precision == "float32":
        return "fma"
    if dt == np.float16:
        return "float16"
    return precision if precision in ("tf32", "float16") else "fma"


def _dims(strides: tuple, nd: int, channels_last: bool) -> tuple:
    """(n, c, h, w) element strides of an x or y array in its layout (conv1d: h = 0)."""
    if nd == 2:
        n, a, b, c = strides
        return (n, c, a, b) if channels_last else (n, a, b, c)
    n, a, b = strides
    return (n, b, 0, a) if channels_last else (n, a, 0, b)


def conv_geometry(x: ArrayView, y: ArrayView, plan: ConvPlan) -> np.ndarray:
    """The GcConvGeometry block for batched x and y (the result of plan, any strides)."""
    nd = len(plan.in_spatial)
    ks = (1,) * (2 - nd) + tuple(plan.weight_spatial)
    hw = (1,) * (2 - nd) + tuple(plan.in_spatial)
    out = (1,) * (2 - nd) + tuple(plan.out_spatial)
    pad = (0,) * (2 - nd) + tuple(plan.pad_lo)
    step = (1,) * (2 - nd) + tuple(plan.stride)
    dil = (1,) * (2 - nd) + tuple(plan.dilation)
    cg, og = plan.channels // plan.groups, plan.out_channels // plan.groups
    taps = ks[0] * ks[1]
    g = np.zeros((), CONV_GEOMETRY_DTYPE)
    g["m_total"] = plan.batch * out[0] * out[1]
    g["n"], g["c"], g["h"], g["w"] = plan.batch, plan.channels, hw[0], hw[1]
    g["o"], g["groups"], g["cg"], g["og"] = plan.out_channels, plan.groups, cg, og
    g["kh"], g["kw"], g["ho"], g["wo"] = ks[0], ks[1], out[0], out[1]
    g["step"], g["pad"], g["dil"] = step, pad, dil
    g["x_stride"] = _dims(x.strides, nd, plan.channels_last)
    g["y_stride"] = _dims(y.strides, nd, plan.channels_last)
    # the weight array is C-ordered (O, C/groups, *k) or (O, *k, C/groups): strides of o, c, tap
    g["w_stride"] = (cg * taps, 1, cg) if plan.channels_last else (cg * taps, taps, 1)
    g["has_bias"] = int(plan.has_bias)
    g["activation"] = ACTIVATION_IDS[plan.activation]
    return g


@dataclass(frozen=True)
class ConvLaunch:
    """One kernel-bank launch: source, template instance, grid, block, parameter blocks."""

    filename: str
    name: str
    grid: tuple
    block: tuple
    geometry: np.ndarray      # CONV_GEOMETRY_DTYPE scalar
    epilogue: np.ndarray      # GcEpilogue<Acc>
    weight_dtype: np.dtype    # the weights and bias go to the kernel in this dtype (Acc)


def _pick(table, og):
    return next(cfg for lo, cfg in table if og > lo)


def _flag(b: bool) -> str:
    return "true" if b else "false"


def fma_instance(tin, tout, acc, og: int, cl: bool, flat: bool, bid: int) -> str:
    """conv_igemm's template instance: the tile configuration for `og` output channels per
    group, 3 pipeline stages (2 for float64, whose tiles are twice the bytes)."""
    bm, bn, tm, tn = _pick(FMA_CONFIGS, og)
    stages = 3 if np.dtype(acc).itemsize == 4 else 2
    return instance("conv_igemm", cpp_types(tin, tout, acc), bm, bn, tm, tn, stages, _flag(cl), _flag(flat), bid)


def tc_instance(tin, tout, how: str, og: int, cl: bool, flat: bool, bid: int) -> str:
    """conv_igemm_tc's template instance for arithmetic `how` and `og` output channels per group."""
    return instance("conv_igemm_tc", cpp_types(tin, tout), TC_PREC_IDS[how], _pick(TC_BN, og), _flag(cl), _flag(flat),
                    bid)


def depthwise_instance(tin, tout, acc, cl: bool, bid: int) -> str:
    """conv_depthwise's template instance."""
    return instance("conv_depthwise", cpp_types(tin, tout, acc), _flag(cl), bid)


def plan_conv_launch(x: ArrayView, y: ArrayView, plan: ConvPlan, how: str) -> ConvLaunch:
    """The launch that computes a checked kernel-bank plan from batched `x` (a native dtype)
    into batched `y` with arithmetic `how` (see :func:`arithmetic`).

    Examples
    --------
    >>> from gpuconv.plan import conv_plan
    >>> p = conv_plan(2, (16, 64, 128, 128), np.float32, np.ones((64, 64, 3, 3), np.float32), None,
    ...               1, 1, 1, 1, "constant", None, "NCHW", None, None, None)
    >>> v = ArrayView.of((16, 64, 128, 128), (4194304, 65536, 512, 4), np.float32, 0)
    >>> yv = ArrayView.of((16, 64, 128, 128), (4194304, 65536, 512, 4), np.float32, 0)
    >>> plan_conv_launch(v, yv, p, "fma").name
    'conv_igemm<float, float, float, 128, 64, 8, 4, 3, false, false, 0>'
    >>> plan_conv_launch(v, yv, p, "tf32").name
    'conv_igemm_tc<float, float, 0, 64, false, false, 0>'
    """
    geom = conv_geometry(x, y, plan)
    acc = np.dtype(np.float32) if how != "fma" else np.dtype(plan.compute_dtype)
    ep = epilogue_block(acc, plan.clip, plan.result_dtype)
    tin, tout = np.dtype(x.dtype), np.dtype(plan.result_dtype)
    cl, bid = plan.channels_last, BOUNDARY_IDS[plan.boundary]
    cg, og = int(geom["cg"]), int(geom["og"])
    m = int(geom["m_total"])
    if int(geom["kh"]) * int(geom["kw"]) * cg >= 2**31:   # the kernels index K in 32 bits
        raise ValueError(f"weight has {int(geom['kh']) * int(geom['kw']) * cg} taps x channels per group; the GPU "
                         "kernels take fewer than 2**31")
    if cg == 1 and plan.groups > 1:                     # depthwise / channel multiplier
        total = m * plan.out_channels
        grid = (max(1, min(-(-total // THREADS), 65535 * 32)), 1, 1)
        return ConvLaunch("conv_depthwise.cu", depthwise_instance(tin, tout, acc, cl, bid), grid, (THREADS, 1, 1),
                          geom, ep, acc)
    if how == "fma":
        bm, bn = _pick(FMA_CONFIGS, og)[:2]
        name, filename = fma_instance(tin, tout, acc, og, cl, cg < FMA_BK, bid), "conv_igemm.cu"
    else:
        bm, bn = 128, _pick(TC_BN, og)
        name, filename = tc_instance(tin, tout, how, og, cl, cg < TC_BK[how], bid), "conv_igemm_tc.cu"
    grid = (min(-(-m // bm), GRID_X_MAX), -(-og // bn), min(plan.groups, GRID_YZ_MAX))
    if grid[0] * bm < m or grid[1] > GRID_YZ_MAX:
        raise ValueError(f"conv has {m} output pixels x {og} channels per group; the kernels take at most "
                         f"{GRID_X_MAX * bm} x {GRID_YZ_MAX * bn}")
    return ConvLaunch(filename, name, grid, (THREADS, 1, 1), geom, ep, acc)
