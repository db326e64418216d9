"""The normalised problem a backend receives: shapes, pads, strides, dilations and dtypes,
all checked and resolved, so a backend needs no validation of its own."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def effective_length(k: int, dilation: int) -> int:
    """Span of a dilated kernel: d*(k-1)+1."""
    return dilation * (k - 1) + 1


def mode_pads(n: int, k: int, mode: str, stride: int, dilation: int) -> tuple:
    """(lo, hi, output length) along one sliding axis for mode full/same/valid (DESIGN.md 2.1).

    Examples
    --------
    >>> mode_pads(5, 3, "full", 1, 1), mode_pads(5, 4, "same", 1, 1), mode_pads(4, 3, "valid", 2, 1)
    ((2, 2, 7), (2, 1, 5), (0, 0, 1))
    """
    e = effective_length(k, dilation)
    if mode == "valid":
        lo = hi = 0
        length = (n - e) // stride + 1 if n >= e else 0
    elif mode == "same":
        lo = e // 2
        hi = e - 1 - lo
        length = -(-n // stride)
    else:  # full
        lo = hi = e - 1
        length = (n + e - 2) // stride + 1
    return lo, hi, length


@dataclass(frozen=True)
class CorrelatePlan:
    """A checked correlate/convolve call over the trailing sliding axes of a batch.

    `axes` are x's sliding axes in kernel order; `in_sliding` their lengths and
    `batch_shape` the lengths of the other axes, in order. A backend returns the result in
    x's axis order (`result_shape`); `out_shape` is the same result with the sliding axes
    moved to the end.
    """

    batch_shape: tuple
    in_sliding: tuple
    axes: tuple
    in_shape: tuple
    kernel_shape: tuple
    out_sliding: tuple
    pad_lo: tuple
    pad_hi: tuple
    stride: tuple
    dilation: tuple
    boundary: str
    cval: float
    compute_dtype: np.dtype
    result_dtype: np.dtype
    clip: tuple | None
    method: str

    @property
    def ndim(self) -> int:
        return len(self.kernel_shape)

    @property
    def result_shape(self) -> tuple:
        """The result in x's own axis order (sliding axes where they were in x)."""
        shape = list(self.in_shape)
        for a, o in zip(self.axes, self.out_sliding):
            shape[a] = o
        return tuple(shape)

    @property
    def out_shape(self) -> tuple:
        return tuple(self.batch_shape) + tuple(self.out_sliding)

    @property
    def padded_sliding(self) -> tuple:
        return tuple(n + lo + hi for n, lo, hi in zip(self.in_sliding, self.pad_lo, self.pad_hi))

    @property
    def batch_size(self) -> int:
        return int(np.prod(self.batch_shape, dtype=np.int64))

    @property
    def n_outputs(self) -> int:
        return self.batch_size * int(np.prod(self.out_sliding, dtype=np.int64))


@dataclass(frozen=True)
class ConvPlan:
    """A checked conv1d/conv2d call (kernel banks), spatial dims 1 or 2.

    Shapes are channels-first here whatever the layout: `in_spatial` (H, W) or (L,),
    `weight_spatial` (kh, kw) or (k,). `layout` says how x, weight and the result are stored.
    """

    batch: int
    channels: int
    out_channels: int
    groups: int
    in_spatial: tuple
    weight_spatial: tuple
    out_spatial: tuple
    pad_lo: tuple
    pad_hi: tuple
    stride: tuple
    dilation: tuple
    boundary: str
    channels_last: bool
    unbatched: bool
    has_bias: bool
    activation: str | None
    compute_dtype: np.dtype
    result_dtype: np.dtype
    clip: tuple | None
    precision: str | None

    @property
    def out_shape(self) -> tuple:
        if self.channels_last:
            shape = (self.batch,) + tuple(self.out_spatial) + (self.out_channels,)
        else:
            shape = (self.batch, self.out_channels) + tuple(self.out_spatial)
        return shape[1:] if self.unbatched else shape

    @property
    def batched_out_shape(self) -> tuple:
        """out_shape with the batch axis, also for unbatched x (what backends produce)."""
        return (1,) + self.out_shape if self.unbatched else self.out_shape
