"""The dtype policy of DESIGN.md 2.1: which dtype a call computes in, which it returns, and
the final cast (clip, round half to even, saturate) that every backend applies the same way."""
from __future__ import annotations

import numpy as np

# Input kinds that compute in float32: small integers and bool are exact in float32's
# 24-bit mantissa; wider integers need float64 to stay exact.
_FLOAT32_COMPUTE = {np.dtype(t) for t in ("bool", "int8", "uint8", "int16", "uint16", "float16", "float32")}
_FLOAT64_COMPUTE = {np.dtype(t) for t in ("int32", "uint32", "int64", "uint64", "float64")}
ACCEPTED_INPUT_DTYPES = "bool, int8-64, uint8-64, float16, float32, float64"
ACCEPTED_OUTPUT_DTYPES = "int8-64, uint8-64, float16, float32, float64"


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The arithmetic dtype for an input dtype: float32, or float64 for 32/64-bit ints and float64.

    Examples
    --------
    >>> compute_dtype(np.dtype("uint8")), compute_dtype(np.dtype("int32"))
    (dtype('float32'), dtype('float64'))
    """
    dtype = np.dtype(dtype).newbyteorder("=")
    if dtype in _FLOAT32_COMPUTE:
        return np.dtype(np.float32)
    if dtype in _FLOAT64_COMPUTE:
        return np.dtype(np.float64)
    raise TypeError(f"dtype {dtype} is not supported; accepted: {ACCEPTED_INPUT_DTYPES}")


def default_result_dtype(dtype: np.dtype) -> np.dtype:
    """The result dtype without `out_dtype`: the compute dtype, except float16 stays float16."""
    dtype = np.dtype(dtype).newbyteorder("=")
    return dtype if dtype == np.float16 else compute_dtype(dtype)


def integer_bounds(int_dtype: np.dtype, float_dtype: np.dtype) -> tuple:
    """The widest [lo, hi] in `float_dtype` whose values all convert into `int_dtype` exactly.

    float(2**31 - 1) rounds up to 2**31 in float32, which would overflow on conversion, so the
    upper bound steps down to the largest representable value that still fits.
    """
    info = np.iinfo(int_dtype)
    ftype = np.dtype(float_dtype).type
    lo, hi = ftype(info.min), ftype(info.max)
    while int(hi) > info.max:
        hi = np.nextafter(hi, ftype(-np.inf))
    while int(lo) < info.min:
        lo = np.nextafter(lo, ftype(np.inf))
    return lo, hi


def finish(y: np.ndarray, result_dtype: np.dtype, clip=None, out=None, finite: bool = False) -> np.ndarray:
    """Apply the output epilogue to a compute-dtype result `y` (may modify `y` in place).

    `clip=(lo, hi)` clamps first (either side may be None). An integer `result_dtype` then
    rounds half to even and saturates to the type's range (OpenCV's saturate_cast): +inf and
    everything above the type's maximum go to the maximum (2**31 - 1 for int32, also from
    float32), -inf to the minimum and NaN to 0. Float results are a plain cast.
    With `out`, the result is written there; `finite=True` promises y holds no NaN/inf.

    Examples
    --------
    >>> finish(np.array([-3.0, 2.5, 3.5, 300.0]), np.dtype("uint8"))
    array([  0,   2,   4, 255], dtype=uint8)
    """
    result_dtype = np.dtype(result_dtype)
    if clip is not None:
        np.clip(y, clip[0], clip[1], out=y)
    above = None
    if result_dtype.kind in "iu":
        lo, hi = integer_bounds(result_dtype, y.dtype)
        np.rint(y, out=y)
        if int(hi) < np.iinfo(result_dtype).max:
            # the type's maximum has no exact float value (2**31 - 1 in float32): values past
            # the widest exact one, +inf included, get it after the cast
            above = y > hi
            if not above.any():
                above = None
        if not finite:  # callers that know there is no NaN/inf skip this pass
            np.nan_to_num(y, copy=False, nan=0.0, posinf=hi, neginf=lo)
        np.clip(y, lo, hi, out=y)
    if out is None:
        out = y.astype(result_dtype, copy=False)
    else:
        np.copyto(out, y, casting="unsafe")
    if above is not None:
        out[above] = np.iinfo(result_dtype).max
    return out


def representable(value: float, dtype) -> bool:
    """True when `value` survives a round trip through `dtype` unchanged (no overflow, no
    rounding): the test for padding with a fill value in the input's own dtype.

    Examples
    --------
    >>> representable(3.0, np.uint8), representable(300.0, np.uint8), representable(0.5, np.float16)
    (True, False, True)
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return value in (0.0, 1.0)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return float(np.array(value, dtype=dtype)) == value
