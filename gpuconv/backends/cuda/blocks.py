"""The kernels' parameters as the host builds them: numpy twins of the C++ parameter blocks
(kernels_cuda/gpuconv_common.cuh and gpuconv_igemm.cuh), the C++ names of dtypes, boundaries
and activations, and the two kinds of launch argument besides device arrays: `ByValue`
blocks and numpy scalars.

Every block's layout is checked against the C++ compiler's: tests/test_cuda_runtime.py
compiles `layout_probe()` with NVRTC, a static_assert for the size of each block and the
offset of each of its fields, so a drift between this file and the headers fails CI.

Pure numpy, no CuPy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...dtypes import integer_bounds

BOUNDARY_IDS = {"constant": 0, "edge": 1, "reflect": 2, "symmetric": 3, "wrap": 4}
ACTIVATION_IDS = {None: 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}
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



def cpp_types(*dtypes) -> str:
    """The C++ names of numpy dtypes, comma separated (a template argument list).

    Examples
    --------
    >>> cpp_types(np.uint8, np.float16, np.float32)
    'unsigned char, gc_half, float'
    """
    return ", ".join(CTYPES[np.dtype(d)] for d in dtypes)


def instance(kernel: str, *args) -> str:
    """A kernel template's instance name as NVRTC and the profiles spell it.

    Examples
    --------
    >>> instance("correlate_rows", cpp_types(np.float32, np.float32, np.float32), 0, "int")
    'correlate_rows<float, float, float, 0, int>'
    """
    return f"{kernel}<{', '.join(str(a) for a in args)}>"


_I8 = np.int64
# GcGeometry (gpuconv_common.cuh)
GEOMETRY_DTYPE = np.dtype([
    ("in_batch_stride", _I8, (MAX_BATCH_DIMS,)), ("out_batch_stride", _I8, (MAX_BATCH_DIMS,)),
    ("batch_shape", _I8, (MAX_BATCH_DIMS,)), ("n_batch", _I8),
    ("in_shape", _I8, (3,)), ("out_shape", _I8, (3,)), ("in_stride", _I8, (3,)), ("out_stride", _I8, (3,)),
    ("pad_lo", _I8, (3,)), ("step", _I8, (3,)), ("dilation", _I8, (3,)), ("ksize", _I8, (3,)),
    ("fold", _I8), ("vec_ok", _I8),
])
# GcConvGeometry (gpuconv_igemm.cuh)
CONV_GEOMETRY_DTYPE = np.dtype([
    ("m_total", _I8), ("n", _I8), ("c", _I8), ("h", _I8), ("w", _I8),
    ("o", _I8), ("groups", _I8), ("cg", _I8), ("og", _I8),
    ("kh", _I8), ("kw", _I8), ("ho", _I8), ("wo", _I8),
    ("step", _I8, (2,)), ("pad", _I8, (2,)), ("dil", _I8, (2,)),
    ("x_stride", _I8, (4,)), ("y_stride", _I8, (4,)), ("w_stride", _I8, (3,)),
    ("has_bias", _I8), ("activation", _I8),
])


def epilogue_dtype(acc: np.dtype) -> np.dtype:
    """numpy twin of GcEpilogue<Acc>."""
    return np.dtype([("clip_lo", acc), ("clip_hi", acc), ("int_lo", acc), ("int_hi", acc)])


def taps_dtype(acc: np.dtype, n: int) -> np.dtype:
    """numpy twin of GcTaps<Acc, n>."""
    return np.dtype([("w", acc, (n,))])


def separable_taps_dtype(acc: np.dtype, rank: int, kh: int, kw: int) -> np.dtype:
    """numpy twin of GcSeparableTaps<Acc, RANK, KH, KW>."""
    return np.dtype([("col", acc, (rank, kh)), ("row", acc, (rank, kw))])


def epilogue_block(acc: np.dtype, clip, result_dtype) -> np.ndarray:
    """The GcEpilogue<Acc> block: clip bounds (infinite when not clipping) and, for integer
    results, the saturation bounds.

    Examples
    --------
    >>> ep = epilogue_block(np.dtype(np.float32), (0, 300), np.uint8)
    >>> [float(ep[f]) for f in ("clip_lo", "clip_hi", "int_lo", "int_hi")]
    [0.0, 300.0, 0.0, 255.0]
    """
    ep = np.zeros((), epilogue_dtype(acc))
    lo, hi = (None, None) if clip is None else clip
    ep["clip_lo"] = -np.inf if lo is None else lo
    ep["clip_hi"] = np.inf if hi is None else hi
    rd = np.dtype(result_dtype)
    if rd.kind in "iu":
        ep["int_lo"], ep["int_hi"] = integer_bounds(rd, acc)
    return ep


class ByValue:
    """A parameter block passed to a kernel by value (its bytes are copied into the launch),
    as opposed to a device array passed by address. `array` is a C-contiguous one-element
    numpy array: the form CuPy's launch marshalling copies by value (see runtime.py)."""

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


def probe_blocks() -> list:
    """(C++ type, numpy dtype) for every parameter block the kernels take, at the
    instantiations that cover each shape of template argument (both accumulator types,
    the smallest and largest tap counts, odd ranks): what layout_probe() checks."""
    rows = [("GcGeometry", GEOMETRY_DTYPE), ("GcConvGeometry", CONV_GEOMETRY_DTYPE)]
    for acc in (np.dtype(np.float32), np.dtype(np.float64)):
        c = CTYPES[acc]
        rows.append((f"GcEpilogue<{c}>", epilogue_dtype(acc)))
        for n in (1, 2, 9, 25, 121, 225):
            rows.append((f"GcTaps<{c}, {n}>", taps_dtype(acc, n)))
        for rank, kh, kw in ((1, 3, 3), (1, 11, 11), (2, 9, 3), (3, 1, 7), (4, 31, 31)):
            rows.append((f"GcSeparableTaps<{c}, {rank}, {kh}, {kw}>", separable_taps_dtype(acc, rank, kh, kw)))
    return rows


def layout_probe() -> str:
    """CUDA C++ that compiles only if every block of probe_blocks() has, in the compiler's
    layout, the size of its numpy twin and every field at its numpy offset.

    Examples
    --------
    >>> 'sizeof(GcGeometry) differs from the 288 bytes' in layout_probe()
    True
    """
    lines = ['#include "gpuconv_igemm.cuh"']
    for i, (ctype, dt) in enumerate(probe_blocks()):
        alias = f"GcProbe{i}"
        lines.append(f"typedef {ctype} {alias};")
        lines.append(f'static_assert(sizeof({alias}) == {dt.itemsize}, "sizeof({ctype}) differs from the '
                     f'{dt.itemsize} bytes of its numpy twin");')
        for field, (sub, offset) in dt.fields.items():
            lines.append(f"static_assert(__builtin_offsetof({alias}, {field}) == {offset}, "
                         f'"{ctype}.{field} is not at offset {offset}, where its numpy twin has it");')
    return "\n".join(lines) + "\n"
