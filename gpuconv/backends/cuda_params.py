"""Host-side planning for the CUDA correlation kernels: which kernel, which template
specialisation, the launch shape, and the by-value parameter blocks whose layouts mirror
kernels_cuda/gpuconv_common.cuh and correlate_tiled.cu.

Pure numpy, no CuPy: it takes shapes, strides and addresses, so it is tested everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..dtypes import integer_bounds
from ..plan import CorrelatePlan

BOUNDARY_IDS = {"constant": 0, "edge": 1, "reflect": 2, "symmetric": 3, "wrap": 4}
# numpy dtype -> C++ type in the kernels (gc_half carries binary16 bits).
CTYPES = {
    np.dtype(np.uint8): "unsigned char", np.dtype(np.int8): "signed char",
    np.dtype(np.uint16): "unsigned short", np.dtype(np.int16): "short",
    np.dtype(np.uint32): "unsigned int", np.dtype(np.int32): "int",
    np.dtype(np.uint64): "unsigned long long", np.dtype(np.int64): "long long",
    np.dtype(np.float16): "gc_half", np.dtype(np.float32): "float", np.dtype(np.float64): "double",
}
# Inputs the kernels read directly; other input dtypes are converted to the compute dtype first.
NATIVE_INPUTS = {np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "float16", "float32", "float64")}
MAX_BATCH_DIMS = 3  # GC_MAX_BATCH_DIMS

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

_I8 = np.int64
GEOMETRY_DTYPE = np.dtype([
    ("in_batch_stride", _I8, (MAX_BATCH_DIMS,)), ("out_batch_stride", _I8, (MAX_BATCH_DIMS,)),
    ("batch_shape", _I8, (MAX_BATCH_DIMS,)), ("n_batch", _I8),
    ("in_shape", _I8, (3,)), ("out_shape", _I8, (3,)), ("in_stride", _I8, (3,)), ("out_stride", _I8, (3,)),
    ("pad_lo", _I8, (3,)), ("step", _I8, (3,)), ("dilation", _I8, (3,)), ("ksize", _I8, (3,)),
    ("fold", _I8), ("vec_ok", _I8),
])


def epilogue_dtype(acc: np.dtype) -> np.dtype:
    """numpy twin of GcEpilogue<Acc>."""
    return np.dtype([("clip_lo", acc), ("clip_hi", acc), ("int_lo", acc), ("int_hi", acc)])


def epilogue_block(acc: np.dtype, clip, result_dtype) -> np.ndarray:
    """The GcEpilogue<Acc> block: clip bounds (infinite when not clipping) and, for integer
    results, the saturation bounds."""
    ep = np.zeros((), epilogue_dtype(acc))
    lo, hi = (None, None) if clip is None else clip
    ep["clip_lo"] = -np.inf if lo is None else lo
    ep["clip_hi"] = np.inf if hi is None else hi
    rd = np.dtype(result_dtype)
    if rd.kind in "iu":
        ep["int_lo"], ep["int_hi"] = integer_bounds(rd, acc)
    return ep


def taps_dtype(acc: np.dtype, n: int) -> np.dtype:
    """numpy twin of GcTaps<Acc, n>."""
    return np.dtype([("w", acc, (n,))])


class BatchAxesError(ValueError):
    """More batch axes than the kernels index (GC_MAX_BATCH_DIMS) remain after merging."""


class ByValue:
    """A parameter block passed to a kernel by value (its bytes are copied into the launch),
    as opposed to a device array passed by address."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array).reshape(1)


@dataclass(frozen=True)
class ArrayView:
    """What planning needs of an array on the device: shape, element strides, dtype, address."""

    shape: tuple
    strides: tuple          # in elements
    dtype: np.dtype
    address: int

    @classmethod
    def of(cls, shape, byte_strides, dtype, address) -> "ArrayView":
        dtype = np.dtype(dtype)
        return cls(tuple(shape), tuple(s // dtype.itemsize for s in byte_strides), dtype, int(address))


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


def layout(x: ArrayView, y: ArrayView, plan: CorrelatePlan) -> Layout:
    """Map a checked plan and its arrays onto GcGeometry: batch axes merged where memory
    allows (at most MAX_BATCH_DIMS remain, else BatchAxesError), a channels-last image folded
    into its rows, a 1-D kernel's rows made the y axis, unused sliding axes of length 1.
    x must have a native dtype (NATIVE_INPUTS); y has plan.result_shape, any strides."""
    acc = np.dtype(plan.compute_dtype)
    fold = fold_channels(x, plan)
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
    return Layout(geom, ep, acc.type(plan.cval), f"{CTYPES[x.dtype]}, {CTYPES[rd]}, {CTYPES[acc]}",
                  BOUNDARY_IDS[plan.boundary], _index_type(sliding, fold), acc)


def _tile_grid(lay: Layout, ry: int) -> tuple:
    tile_w, tile_h = TILED_BLOCK[0] * TILED_RX, TILED_BLOCK[1] * ry
    return (-(-lay.dim("out_shape", 2) // tile_w), min(-(-lay.dim("out_shape", 1) // tile_h), GRID_YZ_MAX),
            min(int(lay.geometry["n_batch"]), GRID_YZ_MAX))


def plan_launch(x: ArrayView, y: ArrayView, kernel: np.ndarray, plan: CorrelatePlan) -> Launch:
    """The direct-method launch that correlates `x` into the result `y` (plan.result_shape,
    C order or any strides) for a checked plan: correlate_tiled for kernels up to 15 x 15 at
    unit steps, correlate_rows for 1-D kernels along few or long rows (any length),
    correlate_generic for everything else. x must have a native dtype (NATIVE_INPUTS).

    Examples
    --------
    >>> from gpuconv.api import correlate_plan
    >>> p = correlate_plan((4, 64, 64), np.float32, np.ones((3, 3), np.float32), "same", "edge", 0.0, 1, 1,
    ...                    None, None, None, "direct")
    >>> xv = ArrayView.of((4, 64, 64), (16384, 256, 4), np.float32, 0)
    >>> yv = ArrayView.of((4, 64, 64), (16384, 256, 4), np.float32, 0)
    >>> plan_launch(xv, yv, np.ones((3, 3), np.float32), p).name
    'correlate_tiled<float, float, float, 3, 3, 1, 1, 8, int>'
    """
    lay = layout(x, y, plan)
    g, fold = lay.geometry, int(lay.geometry["fold"])
    k3 = np.ascontiguousarray(kernel, dtype=lay.acc).reshape([int(k) for k in g["ksize"]])
    kh, kw = lay.dim("ksize", 1), lay.dim("ksize", 2)
    one_d = lay.dim("ksize", 0) == 1 and kh == 1
    if one_d and lay.unit_steps and fold == 1 and (kw > 15 or lay.dim("out_shape", 1) < TILED_BLOCK[1] * 8):
        tiles = -(-lay.dim("out_shape", 2) // (ROWS_THREADS * ROWS_RX))
        grid = (min(tiles, 2**31 - 1), min(lay.dim("out_shape", 1), GRID_YZ_MAX),
                min(int(g["n_batch"]), GRID_YZ_MAX))
        name = f"correlate_rows<{lay.types}, {lay.boundary}, {lay.index}>"
        return Launch("correlate_rows.cu", name, grid, (ROWS_THREADS, 1, 1), g, k3.ravel(), lay.epilogue, lay.cval,
                      False)
    ry = tiled_rows(lay.acc, kh, kw, fold)
    if (lay.dim("ksize", 0) == 1 and lay.unit_steps and kh * kw <= TILED_MAX_TAPS and fold <= TILED_MAX_FOLD
            and ry is not None and lay.dim("in_shape", 0) == 1):
        taps = np.zeros((), taps_dtype(lay.acc, kh * kw))
        taps["w"] = k3.ravel()
        name = f"correlate_tiled<{lay.types}, {kh}, {kw}, {fold}, {lay.boundary}, {ry}, {lay.index}>"
        return Launch("correlate_tiled.cu", name, _tile_grid(lay, ry), TILED_BLOCK + (1,), g, taps, lay.epilogue,
                      lay.cval, True)
    planes = lay.dim("out_shape", 0) * lay.dim("out_shape", 1)
    grid = (-(-lay.dim("out_shape", 2) // GENERIC_BLOCK), min(planes, GRID_YZ_MAX), min(int(g["n_batch"]), GRID_YZ_MAX))
    name = f"correlate_generic<{lay.types}, {lay.boundary}, {lay.index}>"
    return Launch("correlate_generic.cu", name, grid, (GENERIC_BLOCK, 1, 1), g, k3.ravel(), lay.epilogue, lay.cval,
                  False)


def separable_taps_dtype(acc: np.dtype, rank: int, kh: int, kw: int) -> np.dtype:
    """numpy twin of GcSeparableTaps<Acc, RANK, KH, KW>."""
    return np.dtype([("col", acc, (rank, kh)), ("row", acc, (rank, kw))])


def plan_separable_launch(x: ArrayView, y: ArrayView, terms: list, plan: CorrelatePlan):
    """The fused separable launch (correlate_separable) for a 2-D plan whose kernel is the sum
    of the outer products in `terms` ([col, row] pairs), or None where that kernel does not
    apply: strides or dilations, more than SEPARABLE_MAX_RANK terms, sides over
    SEPARABLE_MAX_SIZE, or a tile that does not fit shared memory.

    Examples
    --------
    >>> from gpuconv.api import correlate_plan
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
    name = f"correlate_separable<{lay.types}, {kh}, {kw}, {fold}, {lay.boundary}, {ry}, {rank}, {lay.index}>"
    return Launch("correlate_separable.cu", name, _tile_grid(lay, ry), TILED_BLOCK + (1,), g, taps, lay.epilogue,
                  lay.cval, True)


def variants() -> list:
    """(filename, template instance) pairs that together use every value of every template
    argument plan_launch can produce: what `gpuconv doctor` compiles. The full product
    (sizes x folds x dtypes x boundaries) is too large to compile in CI; each argument's
    code path is covered, so a compile error in any of them shows.

    Examples
    --------
    >>> names = [n for _, n in variants()]
    >>> "correlate_tiled<unsigned char, unsigned char, float, 3, 3, 3, 1, 8, int>" in names
    True
    """
    from ..dtypes import compute_dtype, default_result_dtype

    results = [np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                                     "float16", "float32", "float64")]
    f32 = np.dtype(np.float32)
    out = []

    def generic(tin, tout, bid, idx):
        acc = compute_dtype(tin)
        out.append(("correlate_generic.cu", f"correlate_generic<{CTYPES[tin]}, {CTYPES[tout]}, {CTYPES[acc]}, {bid}, {idx}>"))

    def tiled(tin, tout, kh, kw, fold, bid, idx="int"):
        acc = compute_dtype(tin)
        ry = tiled_rows(acc, kh, kw, fold)
        if ry is not None:
            out.append(("correlate_tiled.cu", f"correlate_tiled<{CTYPES[tin]}, {CTYPES[tout]}, {CTYPES[acc]}, "
                                              f"{kh}, {kw}, {fold}, {bid}, {ry}, {idx}>"))

    natives = sorted(NATIVE_INPUTS, key=str)
    for tin in natives:                      # every input x result dtype
        for tout in results:
            generic(tin, tout, 0, "int")
    for bid in BOUNDARY_IDS.values():        # every boundary, both index types
        for idx in ("int", "long long"):
            generic(f32, f32, bid, idx)
            tiled(f32, f32, 3, 3, 1, bid, idx)
            tiled(np.dtype(np.uint8), np.dtype(np.uint8), 3, 3, 3, bid, idx)
    for tin in natives:                      # every input dtype, smallest and a large size
        for k in (3, 11):
            tiled(tin, default_result_dtype(tin), k, k, 1, 0)
    for k in (5, 7, 15):                     # the other benchmarked sizes, and the largest
        tiled(f32, f32, k, k, 1, 0)
    for tout in results:                     # every result dtype
        tiled(f32, tout, 3, 3, 1, 1)
    for fold in range(2, TILED_MAX_FOLD + 1):  # every channel fold
        tiled(np.dtype(np.uint8), np.dtype(np.uint8), 5, 5, fold, 1)
    for kh, kw in ((1, 2), (1, 7), (7, 1), (2, 4), (4, 2), (1, 15), (15, 1)):  # odd shapes, 1-D rows
        tiled(f32, f32, kh, kw, 1, 0)

    def rows(tin, tout, bid, idx="int"):
        acc = compute_dtype(tin)
        out.append(("correlate_rows.cu", f"correlate_rows<{CTYPES[tin]}, {CTYPES[tout]}, {CTYPES[acc]}, {bid}, {idx}>"))

    def separable(tin, tout, kh, kw, fold, bid, rank, idx="int"):
        acc = compute_dtype(tin)
        ry = tiled_rows(acc, kh, kw, fold, separable=True)
        if ry is not None:
            out.append(("correlate_separable.cu", f"correlate_separable<{CTYPES[tin]}, {CTYPES[tout]}, {CTYPES[acc]}, "
                                                  f"{kh}, {kw}, {fold}, {bid}, {ry}, {rank}, {idx}>"))

    for tin in natives:                      # long rows: every input dtype and boundary, both indices
        rows(tin, default_result_dtype(tin), 0)
    for bid in BOUNDARY_IDS.values():
        for idx in ("int", "long long"):
            rows(f32, f32, bid, idx)
            separable(f32, f32, 11, 11, 1, bid, 1, idx)
    rows(f32, np.dtype(np.uint8), 1)
    for tin in natives:                      # separable: every input dtype, Gaussian sizes, ranks, folds
        separable(tin, default_result_dtype(tin), 5, 5, 1, 1, 1)
    for k in (3, 7, 15, 31):
        separable(f32, f32, k, k, 1, 0, 1)
    for rank in range(2, SEPARABLE_MAX_RANK + 1):
        separable(f32, f32, 7, 7, 1, 2, rank)
    for fold in (3, 4):
        separable(np.dtype(np.uint8), np.dtype(np.uint8), 5, 5, fold, 1, 1)
    separable(f32, np.dtype(np.int16), 9, 3, 1, 3, 2)
    from .cuda_conv import conv_variants  # the kernel-bank kernels

    return out + conv_variants()
