"""Host-side planning for the CUDA correlation kernels: which kernel, which template
specialisation, the launch shape, and the filled parameter blocks (gpuconv.backends.cuda.blocks).

Pure numpy, no CuPy: it takes shapes, strides and addresses, so it is tested everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...plan import CorrelatePlan
from .blocks import (BOUNDARY_IDS, GEOMETRY_DTYPE, MAX_BATCH_DIMS, ArrayView, cpp_types, epilogue_block, instance,
                     separable_taps_dtype, taps_dtype)

# correlate_tiled's fixed shape (GC_TILED_*): 32 x 8 threads, 4 columns per thread.
TILED_BLOCK = (32, 8)
TILED_RX = 4
TILED_RY_CHOICES = (8, 4, 2, 1)
TILED_MAX_TAPS = 225          # up to 15 x 15: the taps stay a small by-value block
TILED_MAX_FOLD = 8
STATIC_SMEM = 48 * 1024
GENERIC_BLOCK = 256
ROWS_THREADS, ROWS_RX = 256, 8   # correlate_rows: 2048 outputs of one row per block
# correlate_separable: up to 31 x 31 taps and 4 rank-1 terms by value
SEPARABLE_MAX_SIZE = 31
SEPARABLE_MAX_RANK = 4
GRID_YZ_MAX = 65535


class BatchAxesError(ValueError):
    """More batch axes than the kernels index (GC_MAX_BATCH_DIMS) remain after merging."""


@dataclass(frozen=True)
class Launch:
    """One kernel launch: source file, template instance, grid, block and parameter blocks."""

    filename: str
    name: str
    grid: tuple
    block: tuple
    geometry: np.ndarray    # GEOMETRY_DTYPE scalar
    weights: np.ndarray     # taps struct (by value) or a flat weight array to put on the device
    epilogue: np.ndarray
    cval: np.generic
    by_value: bool          # weights is a by-value block (tiled, separable), else a device array


def _axis(n_in, n_out, s_in, s_out, pad=0, step=1, dil=1, k=1):
    return dict(n_in=n_in, n_out=n_out, s_in=s_in, s_out=s_out, pad=pad, step=step, dil=dil, k=k)


def fold_channels(x: ArrayView, plan: CorrelatePlan) -> int:
    """C > 1 when the axes after the last sliding axis are batch axes of C contiguous
    elements (a channels-last image) and the x stride is 1: rows of W*C elements then
    hold every channel, filtered with taps C elements apart. Otherwise 1."""
    last = plan.axes[-1]
    trailing = range(last + 1, len(x.shape))
    if plan.stride[-1] != 1 or not trailing:
        return 1
    c, expect = 1, 1
    for a in reversed(trailing):
        if x.shape[a] != 1 and x.strides[a] != expect:
            return 1
        expect *= x.shape[a]
        c *= x.shape[a]
    if c <= 1 or x.strides[last] != c:
        return 1
    return c


def _coalesce(dims: list) -> list:
    """Merge neighbouring batch axes (outer, inner) that step through memory as one axis in
    both the input and the result; drop axes of length 1."""
    dims = [d for d in dims if d[0] != 1]
    merged = []
    for n, si, so in dims:
        if merged:
            pn, psi, pso = merged[-1]
            if psi == si * n and pso == so * n:
                merged[-1] = (pn * n, si, so)
                continue
        merged.append((n, si, so))
    return merged


def _index_type(axes: list, fold: int) -> str:
    """"int" when every per-image offset the kernels form fits in 32 bits, else "long long"."""
    reach_in = sum(abs(a["s_in"]) * (a["n_in"] + 2 * (a["pad"] + a["dil"] * a["k"] + a["step"] * 64))
                   for a in axes) + 64 * fold
    reach_out = sum(abs(a["s_out"]) * (a["n_out"] + 256) for a in axes)
    return "int" if max(reach_in, reach_out) < 2**31 - 1 else "long long"


def tiled_rows(acc: np.dtype, kh: int, kw: int, fold: int, separable: bool = False):
    """The largest RY whose tile fits static shared memory (None: the tile never fits).
    The separable kernel also holds the row-pass result, TILE_W values per tile row.

    Examples
    --------
    >>> tiled_rows(np.dtype(np.float32), 3, 3, 1), tiled_rows(np.dtype(np.float32), 11, 11, 1, separable=True)
    (8, 4)
    """
    va = 16 // acc.itemsize
    tile_w = TILED_BLOCK[0] * TILED_RX
    span = TILED_RX + (kw - 1) * fold
    pitch = tile_w - TILED_RX + -(-span // va) * va + (tile_w if separable else 0)
    for ry in TILED_RY_CHOICES:
        if (TILED_BLOCK[1] * ry + kh - 1) * pitch * acc.itemsize <= STATIC_SMEM:
            return ry
    return None


@dataclass(frozen=True)
class Layout:
    """A call mapped onto the kernels' geometry: the GcGeometry block, the epilogue block, the
    fill value, the C++ type list "Tin, Tout, Acc", the boundary id and the index type."""

    geometry: np.ndarray
    epilogue: np.ndarray
    cval: np.generic
    types: str
    boundary: int
    index: str
    acc: np.dtype

    def dim(self, field: str, i: int) -> int:
        return int(self.geometry[field][i])

    @property
    def unit_steps(self) -> bool:
        """Unit stride on every axis, unit dilation along y, and taps one pixel apart along x."""
        g = self.geometry
        return (all(int(s) == 1 for s in g["step"]) and int(g["dilation"][1]) == 1
                and int(g["dilation"][2]) == int(g["fold"]))


def layout(x: ArrayView, y: ArrayView, plan: CorrelatePlan, fold_ok: bool = True) -> Layout:
    """Map a checked plan and its arrays onto GcGeometry: batch axes merged where memory
    allows (at most MAX_BATCH_DIMS remain, else BatchAxesError), a channels-last image folded
    into its rows (unless `fold_ok` is False: the channels are then batch axes), a 1-D
    kernel's rows made the y axis, unused sliding axes of length 1.
    x must have a native dtype (NATIVE_INPUTS); y has plan.result_shape, any strides."""
    acc = np.dtype(plan.compute_dtype)
    fold = fold_channels(x, plan) if fold_ok else 1
    sliding = []
    for i, a in enumerate(plan.axes):
        sliding.append(_axis(plan.in_sliding[i], plan.out_sliding[i], x.strides[a], y.strides[a], plan.pad_lo[i],
                             plan.stride[i], plan.dilation[i], plan.kernel_shape[i]))
    folded = set(range(plan.axes[-1] + 1, len(x.shape))) if fold > 1 else set()
    if fold > 1:  # the x axis becomes W*C elements of unit stride
        ax = sliding[-1]
        ax.update(n_in=ax["n_in"] * fold, n_out=ax["n_out"] * fold, s_in=1, s_out=1, pad=ax["pad"] * fold,
                  dil=ax["dil"] * fold)
    batch = [(x.shape[a], x.strides[a], y.strides[a]) for a in range(len(x.shape))
             if a not in plan.axes and a not in folded]
    batch = _coalesce(batch)
    if plan.ndim == 1 and batch:
        # 1-D kernels over many rows: the innermost batch axis becomes the tiles' y axis
        n, si, so = batch.pop()
        sliding.insert(0, _axis(n, n, si, so))
    if len(batch) > MAX_BATCH_DIMS:
        raise BatchAxesError(f"{len(batch)} batch axes remain after merging; the kernels index {MAX_BATCH_DIMS}")
    while len(sliding) < 3:
        sliding.insert(0, _axis(1, 1, 0, 0))
    while len(batch) < MAX_BATCH_DIMS:
        batch.insert(0, (1, 0, 0))

    geom = np.zeros((), GEOMETRY_DTYPE)
    geom["in_batch_stride"] = [b[1] for b in batch]
    geom["out_batch_stride"] = [b[2] for b in batch]
    geom["batch_shape"] = [b[0] for b in batch]
    geom["n_batch"] = math.prod(b[0] for b in batch)
    for field, key in (("in_shape", "n_in"), ("out_shape", "n_out"), ("in_stride", "s_in"), ("out_stride", "s_out"),
                       ("pad_lo", "pad"), ("step", "step"), ("dilation", "dil"), ("ksize", "k")):
        geom[field] = [a[key] for a in sliding]
    geom["fold"] = fold
    isz = x.dtype.itemsize
    geom["vec_ok"] = int(sliding[2]["s_in"] == 1 and x.address % 16 == 0 and (sliding[1]["s_in"] * isz) % 16 == 0
                         and all((b[1] * isz) % 16 == 0 for b in batch if b[0] > 1))

    ep = epilogue_block(acc, plan.clip, plan.result_dtype)
    rd = np.dtype(plan.result_dtype)
    return Layout(geom, ep, acc.type(plan.cval), cpp_types(x.dtype, rd, acc),
                  BOUNDARY_IDS[plan.boundary], _index_type(sliding, fold), acc)


def _tile_grid(lay: Layout, ry: int) -> tuple:
    tile_w, tile_h = TILED_BLOCK[0] * TILED_RX, TILED_BLOCK[1] * ry
    return (-(-lay.dim("out_shape", 2) // tile_w), min(-(-lay.dim("out_shape", 1) // tile_h), GRID_YZ_MAX),
            min(int(lay.geometry["n_batch"]), GRID_YZ_MAX))


def _wants_rows(lay: Layout) -> bool:
    """A 1-D kernel at unit steps that is longer than the tiles take, or runs along fewer rows
    than one tile's height (the tiles would leave most threads idle): correlate_rows."""
    one_d = lay.dim("ksize", 0) == 1 and lay.dim("ksize", 1) == 1
    return (one_d and lay.unit_steps
            and (lay.dim("ksize", 2) > 15 or lay.dim("out_shape", 1) < TILED_BLOCK[1] * TILED_RY_CHOICES[0]))


def plan_launch(x: ArrayView, y: ArrayView, kernel: np.ndarray, plan: CorrelatePlan) -> Launch:
    """The direct-method launch that correlates `x` into the result `y` (plan.result_shape,
    C order or any strides) for a checked plan: correlate_tiled for kernels up to 15 x 15 at
    unit steps, correlate_rows for 1-D kernels along few or long rows (any length; the
    channels of a channels-last signal such as stereo audio (n, 2) are its rows),
    correlate_generic for everything else. x must have a native dtype (NATIVE_INPUTS).

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> p = correlate_plan((4, 64, 64), np.float32, np.ones((3, 3), np.float32), "same", "edge", 0.0, 1, 1,
    ...                    None, None, None, "direct")
    >>> xv = ArrayView.of((4, 64, 64), (16384, 256, 4), np.float32, 0)
    >>> yv = ArrayView.of((4, 64, 64), (16384, 256, 4), np.float32, 0)
    >>> plan_launch(xv, yv, np.ones((3, 3), np.float32), p).name
    'correlate_tiled<float, float, float, 3, 3, 1, 1, 8, int>'
    """
    lay = layout(x, y, plan)
    if int(lay.geometry["fold"]) > 1 and _wants_rows(lay):
        # a 1-D kernel along a channels-last signal: each channel is a row of stride C
        lay = layout(x, y, plan, fold_ok=False)
    g, fold = lay.geometry, int(lay.geometry["fold"])
    k3 = np.ascontiguousarray(kernel, dtype=lay.acc).reshape([int(k) for k in g["ksize"]])
    kh, kw = lay.dim("ksize", 1), lay.dim("ksize", 2)
    if fold == 1 and _wants_rows(lay):
        # rows along grid x, fastest: the channels of one stretch of a channels-last signal
        # are read by neighbouring blocks, so their shared sectors come from L2
        tiles = -(-lay.dim("out_shape", 2) // (ROWS_THREADS * ROWS_RX))
        grid = (min(lay.dim("out_shape", 1), 2**31 - 1), min(tiles, GRID_YZ_MAX), min(int(g["n_batch"]), GRID_YZ_MAX))
        name = instance("correlate_rows", lay.types, lay.boundary, lay.index)
        return Launch("correlate_rows.cu", name, grid, (ROWS_THREADS, 1, 1), g, k3.ravel(), lay.epilogue, lay.cval,
                      False)
    ry = tiled_rows(lay.acc, kh, kw, fold)
    if (lay.dim("ksize", 0) == 1 and lay.unit_steps and kh * kw <= TILED_MAX_TAPS and fold <= TILED_MAX_FOLD
            and ry is not None and lay.dim("in_shape", 0) == 1):
        taps = np.zeros((), taps_dtype(lay.acc, kh * kw))
        taps["w"] = k3.ravel()
        name = instance("correlate_tiled", lay.types, kh, kw, fold, lay.boundary, ry, lay.index)
        return Launch("correlate_tiled.cu", name, _tile_grid(lay, ry), TILED_BLOCK + (1,), g, taps, lay.epilogue,
                      lay.cval, True)
    planes = lay.dim("out_shape", 0) * lay.dim("out_shape", 1)
    grid = (-(-lay.dim("out_shape", 2) // GENERIC_BLOCK), min(planes, GRID_YZ_MAX), min(int(g["n_batch"]), GRID_YZ_MAX))
    name = instance("correlate_generic", lay.types, lay.boundary, lay.index)
    return Launch("correlate_generic.cu", name, grid, (GENERIC_BLOCK, 1, 1), g, k3.ravel(), lay.epilogue, lay.cval,
                  False)


def plan_separable_launch(x: ArrayView, y: ArrayView, terms: list, plan: CorrelatePlan):
    """The fused separable launch (correlate_separable) for a 2-D plan whose kernel is the sum
    of the outer products in `terms` ([col, row] pairs), or None where that kernel does not
    apply: strides or dilations, more than SEPARABLE_MAX_RANK terms, sides over
    SEPARABLE_MAX_SIZE, or a tile that does not fit shared memory.

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> g = np.array([1.0, 2.0, 1.0])
    >>> p = correlate_plan((64, 64), np.float32, np.outer(g, g), "same", "edge", 0.0, 1, 1,
    ...                    None, None, None, "separable")
    >>> v = ArrayView.of((64, 64), (256, 4), np.float32, 0)
    >>> plan_separable_launch(v, v, [[g, g]], p).name
    'correlate_separable<float, float, float, 3, 3, 1, 1, 4, 1, int>'
    """
    if plan.ndim != 2 or not 1 <= len(terms) <= SEPARABLE_MAX_RANK:
        return None
    lay = layout(x, y, plan)
    g, fold = lay.geometry, int(lay.geometry["fold"])
    kh, kw = lay.dim("ksize", 1), lay.dim("ksize", 2)
    ry = tiled_rows(lay.acc, kh, kw, fold, separable=True)
    if (not lay.unit_steps or max(kh, kw) > SEPARABLE_MAX_SIZE or fold > TILED_MAX_FOLD or ry is None
            or lay.dim("in_shape", 0) != 1):
        return None
    rank = len(terms)
    taps = np.zeros((), separable_taps_dtype(lay.acc, rank, kh, kw))
    taps["col"] = [t[0] for t in terms]
    taps["row"] = [t[1] for t in terms]
    name = instance("correlate_separable", lay.types, kh, kw, fold, lay.boundary, ry, rank, lay.index)
    return Launch("correlate_separable.cu", name, _tile_grid(lay, ry), TILED_BLOCK + (1,), g, taps, lay.epilogue,
                  lay.cval, True)
