"""One call on in-memory arrays (numpy, or CUDA arrays for the CUDA backend): check every
argument, build the plan (gpuconv.plan), run the backend chosen by gpuconv.dispatch, and return
the result as the caller's kind. The public functions (gpuconv.api) call these for in-memory
arrays, and gpuconv.dask calls them once per block.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import checks
from .backends import get_backend
from .dispatch import array_kind, resolve_backend, to_numpy, wrap_like
from .plan import conv_plan, correlate_plan, without_idle_steps


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


def _writing_into(plan, check_out, out, shape: tuple, x, out_dtype):
    """`plan` with the result dtype of `out=` (checked by `check_out(out, shape, x, requested)`:
    checks.check_out_array on the host, the CUDA backend's check_out on a device), which must
    agree with `out_dtype` when both are given."""
    requested = None if out_dtype is None else plan.result_dtype
    return dataclasses.replace(plan, result_dtype=check_out(out, shape, x, requested))


def correlate_arrays(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip, method, backend,
                     flip):
    """correlate (flip=False) or convolve (flip=True) on in-memory arrays: every argument
    checked, the plan built, the backend run, the result returned as x's kind."""
    name, xa, ka = _inputs(x, kernel, backend)
    scalars = xa.ndim == 0 and ka.ndim == 0
    out_view = out
    if scalars:
        # scipy.signal convolves two 0-d arrays to their product: a one-sample call, 0-d result
        if axes not in (None, ()):
            raise ValueError(f"axes={axes!r} was given for 0-d x and kernel; there is no axis to slide along")
        xa, ka, axes = xa.reshape(1), ka.reshape(1), None
        out_view = None if out is None else out.reshape(1)
    plan = without_idle_steps(correlate_plan(xa.shape, xa.dtype, ka, mode, boundary, cval, stride, dilation, axes,
                                             out_dtype, clip, method))
    if flip:
        ka = ka[(slice(None, None, -1),) * ka.ndim]
    be = get_backend(name)
    if name == "cuda":
        y = _correlate_cuda(be, x, xa, ka, plan, out_view, out_dtype)
    else:
        if out is not None:
            plan = _writing_into(plan, checks.check_out_array, out_view, plan.result_shape, xa, out_dtype)
        if plan.n_outputs == 0:
            y = np.empty(plan.result_shape, dtype=plan.result_dtype)
        else:
            y = be.correlate(xa, ka, plan, out=out_view)
        if out is not None:
            if y is not out_view:
                out_view[...] = y
        else:
            y = wrap_like(x, y)
    if out is not None:
        return out
    return y.reshape(()) if scalars else y


def _correlate_cuda(be, x, xa, ka, plan, out, out_dtype):
    """The CUDA leg of _correlate: the result (or `out`) is written by the kernel itself, on
    the caller's stream, and returned as the caller's kind."""
    out_dev = None
    if out is not None:
        out_dev = be.device_array("out", out)
        plan = _writing_into(plan, be.check_out, out_dev, plan.result_shape, xa, out_dtype)
    with be.placed(x, xa):
        if plan.n_outputs == 0:
            y = out_dev if out_dev is not None else be.empty(plan.result_shape, plan.result_dtype)
        else:
            y = be.correlate(xa, ka, plan, out=out_dev)
    if out is not None:
        return out_dev
    return be.wrap_like(x, y)


def conv_arrays(nd, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out, out_dtype,
                clip, precision, backend):
    """conv1d (nd=1) / conv2d (nd=2) on in-memory arrays, as correlate_arrays."""
    args = (stride, padding, dilation, groups, boundary, activation, layout, out_dtype, clip, precision)
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
        plan = _writing_into(plan, checks.check_out_array, out, plan.out_shape, xa, out_dtype)
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
        plan = _writing_into(plan, be.check_out, out_dev, plan.out_shape, xa, out_dtype)
    if plan.unbatched:
        xa = xa[None]
        out_dev = None if out_dev is None else out_dev[None]
    with be.placed(x, xa):
        if 0 in plan.batched_out_shape:
            y = out_dev if out_dev is not None else be.empty(plan.batched_out_shape, plan.result_dtype)
        else:
            y = be.conv(xa, wa, ba, plan, out=out_dev)
    if out is not None:
        return out
    return be.wrap_like(x, y[0] if plan.unbatched else y)
