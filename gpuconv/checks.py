"""Every argument check of the public API, in one place (DESIGN.md section 3).

Each check raises ValueError or TypeError whose message names the argument, what came and
what is accepted. The API runs them all before any allocation or backend call, so every
backend sees only valid arguments and raises the same errors for the same bad input.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

from .dtypes import ACCEPTED_INPUT_DTYPES, ACCEPTED_OUTPUT_DTYPES

MODES = ("full", "same", "valid")
BOUNDARIES = ("constant", "edge", "reflect", "symmetric", "wrap")
METHODS = ("auto", "direct", "separable", "fft")
ACTIVATIONS = (None, "relu", "leaky_relu", "tanh", "sigmoid")
PRECISIONS = (None, "float32", "tf32", "float16")
BACKENDS = (None, "numpy", "cuda")

# Other libraries' names for the numpy.pad modes, with the numpy name to use instead.
_FOREIGN_BOUNDARIES = {
    "nearest": "edge (scipy.ndimage's 'nearest')",
    "replicate": "edge (OpenCV/torch 'replicate')",
    "border_replicate": "edge (OpenCV BORDER_REPLICATE)",
    "mirror": "reflect (scipy.ndimage's 'mirror' is numpy's 'reflect')",
    "reflect_101": "reflect (OpenCV REFLECT_101)",
    "reflect101": "reflect (OpenCV REFLECT_101)",
    "border_reflect_101": "reflect (OpenCV BORDER_REFLECT_101)",
    "border_reflect": "symmetric (OpenCV BORDER_REFLECT)",
    "grid-mirror": "symmetric (scipy.ndimage's 'grid-mirror')",
    "circular": "wrap (torch 'circular')",
    "grid-wrap": "wrap (scipy.ndimage's 'grid-wrap')",
    "periodic": "wrap",
    "zeros": "constant (torch 'zeros'; cval=0)",
    "zero": "constant (cval=0)",
    "fill": "constant (scipy.signal's 'fill'; the fill value is cval)",
    "grid-constant": "constant (scipy.ndimage's 'grid-constant')",
    "border_constant": "constant (OpenCV BORDER_CONSTANT)",
}


def check_choice(name: str, value, allowed) -> None:
    """Raise ValueError unless `value` is one of `allowed`, naming the argument and the set."""
    try:
        ok = value in allowed
    except TypeError:  # unhashable or incomparable values
        ok = False
    if not ok or (value is not None and not isinstance(value, str)):
        raise ValueError(f"{name}={value!r} is not accepted; expected one of {list(allowed)}")


def check_boundary(boundary) -> str:
    """Accept a numpy.pad mode name; reject other libraries' names with the numpy equivalent.

    scipy.ndimage's 'reflect' is our 'symmetric', but a bare 'reflect' is numpy's name and is
    taken in numpy's meaning (d c b | a b c d), as DESIGN.md specifies.
    """
    if isinstance(boundary, str) and boundary.lower() in _FOREIGN_BOUNDARIES:
        raise ValueError(
            f"boundary={boundary!r} is not a numpy.pad mode; use "
            f"'{_FOREIGN_BOUNDARIES[boundary.lower()]}. Accepted: {list(BOUNDARIES)}"
        )
    check_choice("boundary", boundary, BOUNDARIES)
    return boundary


def check_real_scalar(name: str, value) -> float:
    """A real number (int, float, numpy scalar, 0-d array); bool and complex are rejected."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name}={value!r} must be a real number, got {type(value).__name__}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a real number, got {type(value).__name__}")
    return float(value)


def _as_int(name: str, whole, item, what: str) -> int:
    """`item` (part of argument `name` = `whole`) as an int; bools and floats are refused."""
    if isinstance(item, (bool, np.bool_)):
        raise TypeError(f"{name}={whole!r} must hold ints, got a bool")
    try:
        return operator.index(item)
    except TypeError:
        raise TypeError(f"{name}={whole!r} must be {what}, got {type(item).__name__}") from None


def check_int_tuple(name: str, value, length: int, minimum: int) -> tuple:
    """An int, or a sequence of `length` ints, each >= minimum; returns a tuple of `length`."""
    items = value if isinstance(value, (tuple, list)) else [value] * length
    if len(items) != length:
        raise ValueError(f"{name}={value!r} must be an int or {length} ints (one per sliding axis), got {len(items)}")
    out = []
    for item in items:
        item = _as_int(name, value, item, "an int or a sequence of ints")
        if item < minimum:
            raise ValueError(f"{name}={value!r} must be >= {minimum} on every axis")
        out.append(item)
    return tuple(out)


def check_dtype_input(name: str, dtype) -> np.dtype:
    """Input arrays: real numeric dtypes only; complex is a TypeError (DESIGN.md 2.1)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {dtype}; complex inputs are not supported (accepted: {ACCEPTED_INPUT_DTYPES})")
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise TypeError(f"{name} has dtype {dtype}; accepted: {ACCEPTED_INPUT_DTYPES}")
    return dtype


def check_out_dtype(name: str, dtype) -> np.dtype:
    """Result dtypes: integers (saturating) and float16/32/64."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}={dtype!r} is not a dtype; accepted: {ACCEPTED_OUTPUT_DTYPES}") from None
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise TypeError(f"{name}={dtype} is not accepted; accepted: {ACCEPTED_OUTPUT_DTYPES}")
    return dtype.newbyteorder("=") if name == "out_dtype" else dtype


def check_clip(clip):
    """clip=None or (lo, hi) with real numbers (either may be None), lo <= hi."""
    if clip is None:
        return None
    if not isinstance(clip, (tuple, list)) or len(clip) != 2:
        raise ValueError(f"clip={clip!r} must be None or a pair (lo, hi)")
    lo, hi = (None if c is None else check_real_scalar("clip", c) for c in clip)
    if lo is None and hi is None:
        raise ValueError("clip=(None, None) clamps nothing; pass clip=None")
    if (lo is not None and np.isnan(lo)) or (hi is not None and np.isnan(hi)):
        raise ValueError(f"clip={clip!r} has a NaN bound; bounds are real numbers, -inf/inf or None (no bound)")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clip={clip!r} needs lo <= hi")
    return (lo, hi)


def check_axes(axes, x_ndim: int, kernel_ndim: int) -> tuple:
    """The sliding axes: default the last kernel.ndim axes; ints, distinct, within x.ndim."""
    if axes is None:
        return tuple(range(x_ndim - kernel_ndim, x_ndim))
    items = list(axes) if isinstance(axes, (tuple, list)) else [axes]
    if len(items) != kernel_ndim:
        raise ValueError(f"axes={axes!r} must name {kernel_ndim} axes, one per kernel dimension")
    out = []
    for a in items:
        a = _as_int("axes", axes, a, "ints")
        if not -x_ndim <= a < x_ndim:
            raise ValueError(f"axes={axes!r}: axis {a} is out of range for x with {x_ndim} dimensions")
        out.append(a % x_ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axes={axes!r} names the same axis twice")
    return tuple(out)


def check_kernel_shape(kernel_shape: tuple, x_ndim: int, name: str = "kernel") -> None:
    """1, 2 or 3 dimensions, no more than x has, none of length zero."""
    if len(kernel_shape) not in (1, 2, 3):
        extra = " (a 0-d kernel is accepted with a 0-d x only: their product, as scipy.signal gives)" \
            if not kernel_shape else ""
        raise ValueError(f"{name} has {len(kernel_shape)} dimensions (shape {kernel_shape}); accepted: 1, 2 or 3"
                         + extra)
    if len(kernel_shape) > x_ndim:
        raise ValueError(f"{name} has {len(kernel_shape)} dimensions but x has only {x_ndim}; the kernel needs kernel.ndim <= x.ndim")
    if 0 in kernel_shape:
        raise ValueError(f"{name} has shape {kernel_shape}; a zero-size kernel is not accepted (scipy.signal "
                         "returns an empty array for one; here it is taken for the mistake it usually is)")


def check_out_shape_dtype(out, shape: tuple, result_dtype_requested) -> np.dtype:
    """`out=` of any device: the result's shape, an accepted dtype that agrees with
    `out_dtype` when both are given. Returns its dtype."""
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; this call's result has shape {tuple(shape)}")
    dtype = check_out_dtype("out.dtype", out.dtype).newbyteorder("=")  # written through numpy's cast
    if result_dtype_requested is not None and np.dtype(result_dtype_requested) != dtype:
        raise ValueError(f"out_dtype={np.dtype(result_dtype_requested)} disagrees with out.dtype={dtype}; give one")
    return dtype


def check_out_array(out, shape: tuple, x, result_dtype_requested) -> np.dtype:
    """`out=`: right type, shape and dtype, writeable, not overlapping x. Returns its dtype."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray for numpy input, got {type(out).__name__}")
    dtype = check_out_shape_dtype(out, shape, result_dtype_requested)
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writeable array")
    if isinstance(x, np.ndarray) and np.shares_memory(out, x):
        raise ValueError("out overlaps x; pass a separate array (inputs are never modified)")
    return dtype
