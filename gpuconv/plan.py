"""The normalised problem a backend receives: shapes, pads, strides, dilations and dtypes,
all checked and resolved, so a backend needs no validation of its own; and the builders
(correlate_plan, conv_plan) that check every argument and make one."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from . import checks
from .dtypes import compute_dtype, default_result_dtype


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


# ---- building plans: every argument checked once, for every backend and for Dask ----------------

# No array can hold more elements than this (numpy's intp, bytes included, with room to spare).
MAX_ELEMENTS = 2**60


def _check_result_size(shape, axes, out_sliding, mode, kshape, stride, dilation) -> None:
    """Refuse a result no array can hold (a huge dilation in "full" mode), naming the cause."""
    batch = math.prod(n for a, n in enumerate(shape) if a not in axes)
    total = batch * math.prod(out_sliding)
    if total > MAX_ELEMENTS or any(n > MAX_ELEMENTS for n in out_sliding):
        raise ValueError(f"the result would have shape {tuple(out_sliding)} along the sliding axes ({total} elements), "
                         f"more than any array holds: mode={mode!r} with kernel shape {tuple(kshape)}, "
                         f"dilation={dilation}, stride={stride}; use a smaller dilation or mode='same'/'valid'")


def correlate_plan(shape: tuple, dtype, kernel: np.ndarray, mode, boundary, cval, stride, dilation, axes,
                   out_dtype, clip, method) -> CorrelatePlan:
    """Check every argument of correlate/convolve (all but `out`, `backend`) for an input of
    `shape` and `dtype`, and return the plan. Shared by the in-memory
    (gpuconv.compute) and Dask paths."""
    shape = tuple(shape)
    checks.check_choice("mode", mode, checks.MODES)
    checks.check_boundary(boundary)
    checks.check_choice("method", method, checks.METHODS)
    cval = checks.check_real_scalar("cval", cval)
    checks.check_dtype_input("x", dtype)
    checks.check_dtype_input("kernel", kernel.dtype)
    checks.check_kernel_shape(kernel.shape, len(shape))
    nd = kernel.ndim
    axes = checks.check_axes(axes, len(shape), nd)
    stride = checks.check_int_tuple("stride", stride, nd, 1)
    dilation = checks.check_int_tuple("dilation", dilation, nd, 1)
    requested = None if out_dtype is None else checks.check_out_dtype("out_dtype", out_dtype)
    clip = checks.check_clip(clip)
    in_sliding = tuple(shape[a] for a in axes)
    pads = [mode_pads(n, k, mode, s, d) for n, k, s, d in zip(in_sliding, kernel.shape, stride, dilation)]
    # an empty sliding axis gives an empty result in every mode, as scipy does
    pads = [(lo, hi, 0 if n == 0 else length) for (lo, hi, length), n in zip(pads, in_sliding)]
    _check_result_size(shape, axes, [p[2] for p in pads], mode, kernel.shape, stride, dilation)
    return CorrelatePlan(
        batch_shape=tuple(shape[a] for a in range(len(shape)) if a not in axes), in_sliding=in_sliding, axes=axes,
        in_shape=shape, kernel_shape=kernel.shape, out_sliding=tuple(p[2] for p in pads),
        pad_lo=tuple(p[0] for p in pads), pad_hi=tuple(p[1] for p in pads), stride=stride, dilation=dilation,
        boundary=boundary, cval=cval, compute_dtype=compute_dtype(dtype),
        result_dtype=requested if requested is not None else default_result_dtype(dtype), clip=clip, method=method)


def without_idle_steps(plan: CorrelatePlan) -> CorrelatePlan:
    """The same problem with stride 1 along axes of one output and dilation 1 along one-tap
    axes, where they change nothing: so no engine sizes a buffer or a strided view by a
    stride of 2**62. For the backends only; a Dask block's own "valid" problem still needs
    the stride it was given.

    Examples
    --------
    >>> p = correlate_plan((1, 2), np.float64, np.ones(1), "full", "constant", 0.0, 2**62, 5, None, None, None, "auto")
    >>> without_idle_steps(p).stride, without_idle_steps(p).dilation
    ((1,), (1,))
    """
    stride = tuple(1 if o <= 1 else s for s, o in zip(plan.stride, plan.out_sliding))
    dilation = tuple(1 if k == 1 else d for d, k in zip(plan.dilation, plan.kernel_shape))
    return dataclasses.replace(plan, stride=stride, dilation=dilation)


_LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC")}
_SPATIAL_NAMES = {1: ("L",), 2: ("H", "W")}


def _conv_padding(padding, nd, k, dilation, spatial):
    """(lo, hi) per spatial axis for padding=int | ints | "same" | "valid" (torch's alignment)."""
    if isinstance(padding, str):
        checks.check_choice("padding", padding, ("same", "valid"))
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        total = [d * (kk - 1) for kk, d in zip(k, dilation)]
        lo = tuple(t // 2 for t in total)
        return lo, tuple(t - l for t, l in zip(total, lo))
    lo = checks.check_int_tuple("padding", padding, nd, 0)
    return lo, lo


def conv_plan(nd: int, shape: tuple, dtype, weight: np.ndarray, bias, stride, padding, dilation, groups, boundary,
              activation, layout, out_dtype, clip, precision) -> ConvPlan:
    """Check every argument of conv1d (nd=1) / conv2d (nd=2) but `out` and `backend` for an
    input of `shape` and `dtype`, and return the plan. Shared by the in-memory and Dask paths."""
    shape = tuple(shape)
    layouts = _LAYOUTS[nd]
    checks.check_choice("layout", layout, layouts)
    checks.check_boundary(boundary)
    checks.check_choice("activation", activation, checks.ACTIVATIONS)
    checks.check_choice("precision", precision, checks.PRECISIONS)
    checks.check_dtype_input("x", dtype)
    checks.check_dtype_input("weight", weight.dtype)
    channels_last = layout == layouts[1]
    dims = "".join(layout)
    if len(shape) not in (nd + 1, nd + 2):
        raise ValueError(f"x has shape {shape}; layout={layout!r} expects ({', '.join(dims)}) or ({', '.join(dims[1:])})")
    unbatched = len(shape) == nd + 1
    if unbatched:
        shape = (1,) + shape
    if weight.ndim != nd + 2:
        wdims = ("O",) + (tuple(_SPATIAL_NAMES[nd]) + ("C/groups",) if channels_last else ("C/groups",) + _SPATIAL_NAMES[nd])
        raise ValueError(f"weight has shape {weight.shape}; layout={layout!r} expects ({', '.join(wdims)})")
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups={groups!r} must be an int >= 1")
    groups = int(groups)
    c = shape[-1] if channels_last else shape[1]
    spatial = shape[1:-1] if channels_last else shape[2:]
    o = weight.shape[0]
    cg = weight.shape[-1] if channels_last else weight.shape[1]
    ks = weight.shape[1:-1] if channels_last else weight.shape[2:]
    if c % groups:
        raise ValueError(f"groups={groups} does not divide the {c} input channels of x")
    if o % groups:
        raise ValueError(f"groups={groups} does not divide the {o} output channels of weight")
    if cg != c // groups:
        raise ValueError(f"weight has {cg} input channels per group but x has C={c} channels with groups={groups} "
                         f"(expected {c // groups})")
    if 0 in ks or o == 0:
        raise ValueError(f"weight has shape {weight.shape}; a zero-size kernel bank is not accepted")
    for n_s, label in zip(spatial, _SPATIAL_NAMES[nd]):
        if n_s == 0:
            raise ValueError(f"x has {label}=0 (shape {shape}); spatial axes need at least one sample")
    if bias is not None:
        checks.check_dtype_input("bias", bias.dtype)
        if bias.shape != (o,):
            raise ValueError(f"bias has shape {bias.shape}; expected ({o},), one per output channel")
    stride = checks.check_int_tuple("stride", stride, nd, 1)
    dilation = checks.check_int_tuple("dilation", dilation, nd, 1)
    lo, hi = _conv_padding(padding, nd, ks, dilation, spatial)
    requested = None if out_dtype is None else checks.check_out_dtype("out_dtype", out_dtype)
    clip = checks.check_clip(clip)
    out_spatial = []
    for n_s, l, h, kk, s, d in zip(spatial, lo, hi, ks, stride, dilation):
        p, e = n_s + l + h, effective_length(kk, d)
        out_spatial.append((p - e) // s + 1 if p >= e else 0)
    return ConvPlan(batch=shape[0], channels=c, out_channels=o, groups=groups, in_spatial=tuple(spatial),
                    weight_spatial=tuple(ks), out_spatial=tuple(out_spatial), pad_lo=lo, pad_hi=hi, stride=stride,
                    dilation=dilation, boundary=boundary, channels_last=channels_last, unbatched=unbatched,
                    has_bias=bias is not None, activation=activation, compute_dtype=compute_dtype(dtype),
                    result_dtype=requested if requested is not None else default_result_dtype(dtype), clip=clip,
                    precision=precision)
