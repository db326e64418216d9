"""Helpers for the emulated CUDA tests: run gpuconv's CUDA path on the emulator the way the
API would, and check a result against the float64 reference."""
from __future__ import annotations

import dataclasses

import numpy as np

from gpuconv.plan import correlate_plan
from reference import correlate as ref_correlate
from reference import tolerance


def run(emu, x, k, mode="same", *, boundary="constant", cval=0.0, stride=1, dilation=1, axes=None,
        out_dtype=None, clip=None, out=None, flip=False, method="direct"):
    """gpuconv's CUDA path on the emulator: plan as the API does, copy x into a guarded
    'device' array, run, and return (result, names of the kernels launched by this call)."""
    runtime, backend = emu
    k = np.asarray(k)
    plan = correlate_plan(x.shape, x.dtype, k, mode, boundary, cval, stride, dilation, axes, out_dtype, clip,
                          method)
    if out is not None:
        plan = dataclasses.replace(plan, result_dtype=out.dtype)
    xd = runtime.xp.asarray(x) if x.flags.c_contiguous else x
    before = len(runtime.launched)
    y = backend.correlate(xd, k[(slice(None, None, -1),) * k.ndim] if flip else k, plan, out=out)
    return y, runtime.launched[before:]


def check(y, x, k, dtype=np.float32, **kw):
    """y equals the float64 reference within the compute dtype's rounding."""
    ref = ref_correlate(x, k, **kw)
    assert y.shape == ref.shape
    assert not np.isnan(y.astype(np.float64)).any() or np.isnan(ref).any()
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=0, atol=tolerance(dtype, x, k))


def run_conv(emu, x, w, bias=None, *, nd=2, stride=1, padding=0, dilation=1, groups=1, boundary="constant",
             activation=None, layout=None, out_dtype=None, clip=None, precision=None, out=None):
    """gpuconv's CUDA kernel-bank path on the emulator, as gpuconv.compute._conv_cuda runs it: returns
    (result, names of the kernels launched by this call)."""
    from gpuconv.plan import conv_plan

    runtime, backend = emu
    layout = layout or ("NCHW" if nd == 2 else "NCL")
    plan = conv_plan(nd, x.shape, x.dtype, w, bias, stride, padding, dilation, groups, boundary, activation, layout,
                     out_dtype, clip, precision)
    if out is not None:
        plan = dataclasses.replace(plan, result_dtype=out.dtype)
    xd = runtime.xp.asarray(x) if x.flags.c_contiguous else x
    before = len(runtime.launched)
    if plan.unbatched:
        xd, out = xd[None], (None if out is None else out[None])
    y = backend.conv(xd, w, bias, plan, out=out)
    return (y[0] if plan.unbatched else y), runtime.launched[before:]
