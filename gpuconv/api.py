"""The public functions: correlate, convolve, conv2d, conv1d.

Each is a thin shell over one private worker that checks every argument (gpuconv.checks),
builds the plan (gpuconv.plan), and hands arrays to the backend chosen by gpuconv.dispatch.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import checks
from .backends import get_backend
from .dispatch import array_kind, resolve_backend, to_numpy, wrap_like
from .dtypes import compute_dtype, default_result_dtype
from .plan import ConvPlan, CorrelatePlan, effective_length, mode_pads


def _inputs(x, kernel, backend):
    """Backend name, x (a host array, or a device array for the CUDA backend) and the kernel
    on the host. A CUDA kernel with host x is rejected; a CUDA kernel with CUDA x is read back."""
    checks.check_choice("backend", backend, checks.BACKENDS)
    name = resolve_backend(backend, array_kind(x))
    if name == "cuda":
        be = get_backend("cuda")  # raises BackendUnavailableError with the reason
        return name, be.device_array("x", x), be.host_kernel(kernel)
    if array_kind(kernel) == "cuda":
        raise ValueError("kernel is a CUDA array but x is on the host; pass both on the same device")
    return name, to_numpy("x", x), to_numpy("kernel", kernel)


def correlate_plan(shape: tuple, dtype, kernel: np.ndarray, mode, boundary, cval, stride, dilation, axes,
                   out_dtype, clip, method) -> CorrelatePlan:
    """Check every argument of correlate/convolve (all but `out`, `backend`) for an input of
    `shape` and `dtype`, and return the plan. Shared by the in-memory and Dask paths."""
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
    for ax in axes:
        if shape[ax] == 0:
            raise ValueError(f"x has length 0 along sliding axis {ax} (shape {shape}); each sliding axis needs at least one sample")
    in_sliding = tuple(shape[a] for a in axes)
    pads = [mode_pads(n, k, mode, s, d) for n, k, s, d in zip(in_sliding, kernel.shape, stride, dilation)]
    return CorrelatePlan(
        batch_shape=tuple(shape[a] for a in range(len(shape)) if a not in axes), in_sliding=in_sliding, axes=axes,
        in_shape=shape, kernel_shape=kernel.shape, out_sliding=tuple(p[2] for p in pads),
        pad_lo=tuple(p[0] for p in pads), pad_hi=tuple(p[1] for p in pads), stride=stride, dilation=dilation,
        boundary=boundary, cval=cval, compute_dtype=compute_dtype(dtype),
        result_dtype=requested if requested is not None else default_result_dtype(dtype), clip=clip, method=method)


def _correlate(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip, method,
               backend, flip):
    if array_kind(x) == "dask":
        from . import dask as gpuconv_dask  # only when dask arrays are in use

        if out is not None:
            raise ValueError("out= is not supported for dask arrays; store the lazy result with dask.array.store")
        fn = gpuconv_dask.convolve if flip else gpuconv_dask.correlate
        return fn(x, kernel, mode, boundary=boundary, cval=cval, stride=stride, dilation=dilation, axes=axes,
                  out_dtype=out_dtype, clip=clip, method=method, backend=backend)
    name, xa, ka = _inputs(x, kernel, backend)
    plan = correlate_plan(xa.shape, xa.dtype, ka, mode, boundary, cval, stride, dilation, axes, out_dtype, clip,
                          method)
    if flip:
        ka = ka[(slice(None, None, -1),) * ka.ndim]
    be = get_backend(name)
    if name == "cuda":
        return _correlate_cuda(be, x, xa, ka, plan, out, out_dtype)
    if out is not None:
        requested = None if out_dtype is None else plan.result_dtype
        plan = dataclasses.replace(plan, result_dtype=checks.check_out_array(out, plan.result_shape, xa, requested))
    if plan.n_outputs == 0:
        y = np.empty(plan.result_shape, dtype=plan.result_dtype)
    else:
        y = be.correlate(xa, ka, plan)
    if out is not None:
        out[...] = y
        return out
    return wrap_like(x, y)


def _correlate_cuda(be, x, xa, ka, plan, out, out_dtype):
    """The CUDA leg of _correlate: the result (or `out`) is written by the kernel itself, on
    the caller's stream, and returned as the caller's kind."""
    out_dev = None
    if out is not None:
        out_dev = be.device_array("out", out)
        requested = None if out_dtype is None else plan.result_dtype
        plan = dataclasses.replace(plan, result_dtype=be.check_out(out_dev, plan.result_shape, xa, requested))
    with be.stream_of(x):
        if plan.n_outputs == 0:
            y = out_dev if out_dev is not None else be.empty(plan.result_shape, plan.result_dtype)
        else:
            y = be.correlate(xa, ka, plan, out=out_dev)
    if out is not None:
        return out
    return be.wrap_like(x, y)


def correlate(x, kernel, mode="full", *, boundary="constant", cval=0.0, stride=1, dilation=1, axes=None,
              out=None, out_dtype=None, clip=None, method="auto", backend=None):
    """Sliding-window cross-correlation of `x` with `kernel` over `axes`.

    ``y[i] = sum_j kernel[j] * xp[i*stride + j*dilation]`` along each sliding axis, where
    ``xp = numpy.pad(x, (lo, hi), mode=boundary)`` and (lo, hi) follow `mode`. Every axis
    not in `axes` is a batch axis, filtered independently.

    Parameters
    ----------
    x : array_like
        Input of any dimension >= kernel.ndim: numpy array, nested list, or a CPU DLPack
        producer such as a torch tensor (returned as the same kind).
    kernel : array_like
        1-, 2- or 3-D weights; cast to the compute dtype of `x`.
    mode : {"full", "same", "valid"}
        Output extent as in scipy.signal.correlate (default "full"). With effective kernel
        length e = dilation*(k-1)+1: full pads e-1 on both sides, same pads e//2 before and
        e-1-e//2 after (output ceil(n/stride)), valid pads nothing (empty if n < e).
    boundary : {"constant", "edge", "reflect", "symmetric", "wrap"}
        numpy.pad's modes, also for pads wider than the input::

            constant   k k k | a b c d | k k k     (k = cval)
            edge       a a a | a b c d | d d d
            reflect    d c b | a b c d | c b a
            symmetric  c b a | a b c d | d c b
            wrap       b c d | a b c d | a b c
    cval : float
        Fill value for boundary="constant".
    stride, dilation : int or tuple of int
        Per sliding axis, >= 1. The strided result is the stride-1 result taken every
        `stride` samples starting at 0.
    axes : int or tuple of int, optional
        The sliding axes of `x`, one per kernel axis (default: the last kernel.ndim axes).
    out : numpy.ndarray, optional
        Preallocated result; its dtype acts as `out_dtype`. Must not overlap `x`.
    out_dtype : dtype, optional
        Result dtype. Integer types round half to even and saturate (never wrap).
    clip : (lo, hi), optional
        Clamp the result before the cast.
    method : {"auto", "direct", "separable", "fft"}
        Algorithm; all agree within float rounding. "auto" picks by a measured cost model.
    backend : {None, "numpy", "cuda"}
        Override the dispatcher's choice from the array type.

    Returns
    -------
    ndarray
        float32 for float32/float16-compute inputs (float16 stays float16), float64 for
        float64 and 32/64-bit integer inputs, or `out_dtype`.

    Examples
    --------
    A single bright pixel reproduces the kernel (correlation does not flip it):

    >>> import numpy as np, gpuconv
    >>> img = np.zeros((3, 3)); img[1, 1] = 1
    >>> gpuconv.correlate(img, [[1, 2, 3], [4, 5, 6], [7, 8, 9]], mode="same")
    array([[9., 8., 7.],
           [6., 5., 4.],
           [3., 2., 1.]])
    """
    return _correlate(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip, method,
                      backend, flip=False)


def convolve(x, kernel, mode="full", *, boundary="constant", cval=0.0, stride=1, dilation=1, axes=None,
             out=None, out_dtype=None, clip=None, method="auto", backend=None):
    """Convolution: ``convolve(x, k) == correlate(x, flip(k))`` in every mode.

    Same parameters as :func:`correlate`. Without stride and dilation, with zero boundary,
    the result equals scipy.signal.convolve (and numpy.convolve in 1-D).

    Examples
    --------
    >>> import gpuconv
    >>> gpuconv.convolve([1, 2, 3, 4, 5], [2, 3, 4])
    array([ 2.,  7., 16., 25., 34., 31., 20.])
    """
    return _correlate(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip, method,
                      backend, flip=True)


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


def _conv(nd, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out, out_dtype,
          clip, precision, backend):
    args = (stride, padding, dilation, groups, boundary, activation, layout, out_dtype, clip, precision)
    if array_kind(x) == "dask":
        from . import dask as gpuconv_dask  # only when dask arrays are in use

        if out is not None:
            raise ValueError("out= is not supported for dask arrays; store the lazy result with dask.array.store")
        return gpuconv_dask.conv(nd, x, weight, bias, *args, backend=backend)
    checks.check_choice("backend", backend, checks.BACKENDS)
    if resolve_backend(backend, array_kind(x)) == "cuda":
        return _conv_cuda(nd, x, weight, bias, args, out, out_dtype)
    name, xa, wa = _inputs(x, weight, backend)
    if bias is not None and array_kind(bias) == "cuda":
        raise ValueError("bias is a CUDA array but x is on the host; pass both on the same device")
    ba = None if bias is None else to_numpy("bias", bias)
    plan = conv_plan(nd, xa.shape, xa.dtype, wa, ba, *args)
    if plan.unbatched:
        xa = xa[None]
    if out is not None:
        requested = None if out_dtype is None else plan.result_dtype
        plan = dataclasses.replace(plan, result_dtype=checks.check_out_array(out, plan.out_shape, xa, requested))
    if 0 in plan.batched_out_shape:
        y = np.empty(plan.batched_out_shape, dtype=plan.result_dtype)
    else:
        y = get_backend(name).conv(xa, wa, ba, plan)
    if plan.unbatched:
        y = y[0]
    if out is not None:
        out[...] = y
        return out
    return wrap_like(x, y)


def _conv_cuda(nd, x, weight, bias, args, out, out_dtype):
    """The CUDA leg of _conv: weight and bias stay where they are (device arrays are not read
    back), the result (or `out`) is written by the kernel on the caller's stream."""
    be = get_backend("cuda")  # raises BackendUnavailableError with the reason
    xa = be.device_array("x", x)
    wa = be.bank_operand("weight", weight)
    ba = None if bias is None else be.bank_operand("bias", bias)
    plan = conv_plan(nd, xa.shape, xa.dtype, wa, ba, *args)
    out_dev = None
    if out is not None:
        out_dev = be.device_array("out", out)
        requested = None if out_dtype is None else plan.result_dtype
        plan = dataclasses.replace(plan, result_dtype=be.check_out(out_dev, plan.out_shape, xa, requested))
    if plan.unbatched:
        xa = xa[None]
        out_dev = None if out_dev is None else out_dev[None]
    with be.stream_of(x):
        if 0 in plan.batched_out_shape:
            y = out_dev if out_dev is not None else be.empty(plan.batched_out_shape, plan.result_dtype)
        else:
            y = be.conv(xa, wa, ba, plan, out=out_dev)
    if out is not None:
        return out
    return be.wrap_like(x, y[0] if plan.unbatched else y)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, boundary="constant",
           activation=None, layout="NCHW", out=None, out_dtype=None, clip=None, precision=None, backend=None):
    """Kernel-bank convolution layer (cross-correlation), equal to torch.nn.functional.conv2d.

    Parameters
    ----------
    x : array_like
        (N, C, H, W) or (C, H, W) with layout="NCHW"; (N, H, W, C) or (H, W, C) with "NHWC".
    weight : array_like
        (O, C/groups, kh, kw) for NCHW, (O, kh, kw, C/groups) for NHWC.
    bias : array_like, optional
        (O,), added before the activation.
    stride, dilation : int or (int, int)
    padding : int, (int, int), "same" or "valid"
        "same" pads d*(k-1) in total with floor half before (torch's alignment); with
        stride s the output is ceil(H/s).
    groups : int
        Divides C and O; each group of O/groups outputs sees C/groups inputs.
    boundary : str
        numpy.pad mode of the padded border (default zeros), as in :func:`correlate`.
    activation : {None, "relu", "leaky_relu", "tanh", "sigmoid"}
        Fused after the bias; leaky_relu has slope 0.01.
    layout : {"NCHW", "NHWC"}
        Storage order of x, weight and the result.
    out, out_dtype, clip
        As in :func:`correlate`.
    precision : {None, "float32", "tf32", "float16"}
        How float32/float16 inputs are computed on GPUs (other dtypes ignore it):

        - "float32": exact float32 FMA arithmetic, within float32 rounding of the exact sum.
          The default for float32 input.
        - "tf32": tensor cores (sm_80+) with float32 input rounded to tf32 (10-bit mantissa).
        - "float16": tensor cores with operands rounded to binary16 (float32 values beyond
          65504 become inf). The default for float16 input.

        With tensor cores the sums are float32 and, for K = (C/groups)*kh*kw products per
        output, ``|y - exact| <= (2**-10 + (K + 2) * 2**-23) * sum|w * x|`` before the final
        cast to the result dtype (tested). Before sm_80 every precision runs the exact float32
        kernel, which meets every bound; so does the numpy backend, which always computes
        exactly in the compute dtype.

    Returns
    -------
    ndarray
        (N, O, Ho, Wo) for NCHW, (N, Ho, Wo, O) for NHWC (batch axis dropped if x had none).

    Examples
    --------
    One output channel reducing a 3-channel image (a 3-D "cuboid" kernel), on a bright pixel:

    >>> import numpy as np, gpuconv
    >>> x = np.zeros((1, 3, 3, 3)); x[0, :, 1, 1] = 1
    >>> w = np.ones((1, 3, 3, 3))
    >>> gpuconv.conv2d(x, w, padding=1)[0, 0]
    array([[3., 3., 3.],
           [3., 3., 3.],
           [3., 3., 3.]])
    """
    return _conv(2, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out, out_dtype,
                 clip, precision, backend)


def conv1d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, boundary="constant",
           activation=None, layout="NCL", out=None, out_dtype=None, clip=None, precision=None, backend=None):
    """Kernel-bank 1-D convolution layer, equal to torch.nn.functional.conv1d.

    Same parameters as :func:`conv2d` with one spatial axis: x (N, C, L) or (C, L) for
    layout="NCL", (N, L, C) or (L, C) for "NLC"; weight (O, C/groups, k) or (O, k, C/groups).

    Examples
    --------
    >>> import numpy as np, gpuconv
    >>> gpuconv.conv1d(np.array([[[1.0, 2, 3, 4, 5]]]), np.array([[[4.0, 3, 2]]]))
    array([[[16., 25., 34.]]])
    """
    return _conv(1, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out, out_dtype,
                 clip, precision, backend)
