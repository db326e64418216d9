"""Windows whose taps land mostly in the padding: correlate by gathering each tap's samples
through numpy.pad's index maps, without ever building the padded array.

A huge dilation or stride makes the padded extent enormous while each output still reads only
k samples: dilation=10**8 on 3 samples in "same" mode pads 2*10**8 samples on each side
(0.8 GB) for 3 outputs of 3 taps. Here each sliding axis gets a table of source indices (one
row per output, one column per tap; the constant boundary's outside positions point at one
extra slot holding cval), computed with Python integers where offsets pass int64, and the
result is summed tap by tap from gathered copies of x: memory is x plus the result, work is
outputs x taps, and the sum is the direct one (NaN and inf stay where direct summation puts
them).

Written against an array module `xp` (numpy here; CuPy in the CUDA backend), like the CUDA
FFT path.
"""
from __future__ import annotations

import math

import numpy as np

from ...boundary import boundary_index
from ...plan import CorrelatePlan

# Padding is "wasteful" when it holds SPARSE_FACTOR times more samples than the windows read
# and at least SPARSE_MIN samples per image (below that, padding is cheap whatever the ratio).
SPARSE_FACTOR = 16
SPARSE_MIN = 1 << 20
# Offsets past this need more than the kernels' 64-bit index arithmetic can hold safely.
SAFE_OFFSET = 2**61


def sparse_windows(plan: CorrelatePlan) -> bool:
    """Whether `plan` should run here rather than pad: the padded extent dwarfs what the
    windows read, or its offsets pass SAFE_OFFSET.

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> p = correlate_plan((3,), np.float64, np.ones(3), "same", "constant", 0.0, 1, 10**8, None, None, None, "auto")
    >>> sparse_windows(p)
    True
    """
    if any(n >= SAFE_OFFSET for n in plan.padded_sliding):
        return True
    padded = math.prod(plan.padded_sliding)
    read = math.prod(plan.in_sliding) + math.prod(plan.out_sliding) * math.prod(plan.kernel_shape)
    return padded > SPARSE_MIN and padded > SPARSE_FACTOR * read


def source_index(n_in: int, n_out: int, k: int, step: int, dilation: int, pad_lo: int, boundary: str) -> np.ndarray:
    """(n_out, k) int64: the sample of an axis of n_in that output i reads at tap j, i.e.
    numpy.pad's source of padded position i*step + j*dilation - pad_lo; n_in (the fill slot)
    where the constant boundary reads cval.

    Examples
    --------
    >>> source_index(3, 3, 3, 1, 10**8, 10**8, "constant").tolist()
    [[3, 0, 3], [3, 1, 3], [3, 2, 3]]
    >>> source_index(3, 3, 3, 1, 10**20, 10**20, "wrap").tolist()
    [[2, 0, 1], [0, 1, 2], [1, 2, 0]]
    """
    top = (n_out - 1) * step + (k - 1) * dilation + pad_lo
    kind = np.int64 if top < SAFE_OFFSET else object   # Python integers beyond int64's reach
    pos = (np.arange(n_out, dtype=np.int64).astype(kind) * step)[:, None] \
        + (np.arange(k, dtype=np.int64).astype(kind) * dilation)[None, :] - pad_lo
    if boundary == "constant":
        src = np.where((pos >= 0) & (pos < n_in), pos, n_in)
    else:
        src = boundary_index(pos, n_in, boundary)
    return np.asarray(src).astype(np.int64)


def gather_correlate(xp, x, kernel: np.ndarray, plan: CorrelatePlan):
    """Correlate x (in its own axis order, any dtype) with the host `kernel` over plan.axes
    by gathering; returns (images, *out_sliding) in the compute dtype, images being the
    batch axes flattened in order (no clip or cast applied).

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> p = correlate_plan((3,), np.float64, np.ones(3), "same", "constant", 0.5, 1, 10**8, None, None, None, "auto")
    >>> gather_correlate(np, np.array([1.0, 2.0, 3.0]), np.ones(3), p).tolist()
    [[2.0, 3.0, 4.0]]
    """
    nd = plan.ndim
    acc = np.dtype(plan.compute_dtype)
    trailing = tuple(range(x.ndim - nd, x.ndim))
    xm = xp.moveaxis(x, plan.axes, trailing).reshape((-1,) + tuple(plan.in_sliding)).astype(acc)
    if plan.boundary == "constant":   # one slot of cval after each sliding axis
        xm = xp.pad(xm, [(0, 0)] + [(0, 1)] * nd, mode="constant", constant_values=acc.type(plan.cval))
    tables = [source_index(n, o, k, s, d, lo, plan.boundary) for n, o, k, s, d, lo in
              zip(plan.in_sliding, plan.out_sliding, plan.kernel_shape, plan.stride, plan.dilation, plan.pad_lo)]
    k = np.asarray(kernel, dtype=acc)
    y = xp.zeros((xm.shape[0],) + tuple(plan.out_sliding), dtype=acc)
    for tap in np.ndindex(k.shape):   # direct summation, tap by tap
        index = tuple(xp.asarray(t[:, j].reshape((-1,) + (1,) * (nd - 1 - a))) for a, (t, j) in
                      enumerate(zip(tables, tap)))
        y += k[tap] * xm[(slice(None),) + index]
    return y
