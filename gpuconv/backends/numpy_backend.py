"""The numpy backend: the CPU fallback, and the reference the other backends are tested on.

It receives checked plans (gpuconv.plan) and arrays whose sliding axes are trailing, pads
with numpy.pad (so every boundary means exactly what numpy.pad means, wide pads included),
runs one of the methods and applies the shared epilogue (gpuconv.dtypes.finish).
"""
from __future__ import annotations

import numpy as np

from .. import costmodel
from ..decompose import rank_tolerance, separable_terms
from ..dtypes import finish
from ..plan import ConvPlan, CorrelatePlan
from .np_bank import apply_activation, conv_channels_first, conv_channels_last
from .np_fft import fft_correlate
from .np_pad import pad_into
from .np_threads import run_chunks
from .np_toeplitz import axis_pass, direct_correlate, padded_extent


def compact(y: np.ndarray) -> tuple:
    """A C-contiguous copy of the engine's result view, made on all workers, and whether
    every value is finite (a sum per chunk: NaN or inf anywhere makes it non-finite)."""
    out = np.empty(y.shape, dtype=y.dtype)
    step = max(1, -(-y.shape[0] // 8))
    sums = {}

    def work(b0):
        np.copyto(out[b0:b0 + step], y[b0:b0 + step])
        sums[b0] = np.sum(out[b0:b0 + step])

    run_chunks(list(range(0, y.shape[0], step)), work)
    return out, bool(np.isfinite(sum(sums.values())))


def taps_correlate(xp: np.ndarray, kernel: np.ndarray, out_sliding: tuple, stride: tuple,
                   dilation: tuple) -> np.ndarray:
    """One strided multiply-add per kernel tap: slow, but each output sums exactly its own
    window, so NaN and inf stay where IEEE arithmetic puts them."""
    y = np.zeros((xp.shape[0],) + tuple(out_sliding), dtype=xp.dtype)
    for idx in np.ndindex(*kernel.shape):
        window = tuple(slice(j * d, j * d + (o - 1) * s + 1, s) for j, d, o, s in zip(idx, dilation, out_sliding, stride))
        y += kernel[idx] * xp[(slice(None),) + window]
    return y


def separable_correlate(xp: np.ndarray, terms: list, out_sliding: tuple, stride: tuple,
                        dilation: tuple) -> np.ndarray:
    """Sum over terms of 1-D passes along each sliding axis (last axis first)."""
    nd = len(out_sliding)
    total = None
    for taps in terms:
        y = xp
        for i in reversed(range(nd)):
            y = axis_pass(y, taps[i], 1 + i, out_sliding[i], stride[i], dilation[i])
        if total is None:
            total = np.array(y)  # own buffer: y may be a view into a pass's scratch
        else:
            total += y
    return total


class NumpyBackend:
    """Backend over numpy arrays (see module docstring)."""

    name = "numpy"

    def resolve_method(self, plan: CorrelatePlan, kernel: np.ndarray) -> tuple:
        """(method, separable terms or None) for this plan; 'auto' asks the cost model."""
        terms = None
        if plan.method in ("separable", "auto") and plan.ndim > 1:
            terms = separable_terms(kernel, rank_tolerance(kernel.shape, plan.compute_dtype))
        if plan.method != "auto":
            return plan.method, terms
        return costmodel.choose_numpy(plan, len(terms) if terms else None), terms

    def correlate(self, x: np.ndarray, kernel: np.ndarray, plan: CorrelatePlan) -> np.ndarray:
        """Correlate x (*batch, *sliding) with kernel; returns plan.out_shape in plan.result_dtype."""
        with np.errstate(invalid="ignore", over="ignore"):  # IEEE results are the contract
            return self._correlate(x, kernel, plan)

    def _correlate(self, x: np.ndarray, kernel: np.ndarray, plan: CorrelatePlan) -> np.ndarray:
        cd = plan.compute_dtype
        xb = np.asarray(x).reshape((-1,) + tuple(plan.in_sliding))
        k = np.asarray(kernel, dtype=cd)
        method, terms = self.resolve_method(plan, kernel)
        args = (plan.out_sliding, plan.stride, plan.dilation)
        hi = plan.pad_hi
        if method == "direct" or plan.ndim == 1 and method == "separable":
            method = "direct"
            # pad straight to the engine's working extent: one copy of the input in all
            extent = padded_extent(plan.padded_sliding, plan.kernel_shape, *args)
            hi = tuple(h + e - p for h, e, p in zip(hi, extent, plan.padded_sliding))
        elif method == "separable":
            # the first pass runs along the last axis: give it whole blocks the same way
            last = padded_extent(plan.padded_sliding[-1:], plan.kernel_shape[-1:], plan.out_sliding[-1:],
                                 plan.stride[-1:], plan.dilation[-1:])[0]
            hi = hi[:-1] + (hi[-1] + last - plan.padded_sliding[-1],)
        xp = pad_into(xb, plan.pad_lo, hi, plan.boundary, plan.cval, dtype=cd)
        if method == "fft":
            y = fft_correlate(xp, k, *args)
        elif method == "separable":
            y = separable_correlate(xp, [[t.astype(cd) for t in term] for term in terms], *args)
        else:
            y = direct_correlate(xp, k, *args)
        y, finite = compact(y)
        if not finite:
            # The GEMM and FFT paths multiply every input of a block (or plane) by the zeros
            # of the band, so one NaN/inf input would poison outputs it does not reach. A
            # finite sum proves no such input was touched; otherwise redo it tap by tap.
            y = taps_correlate(xp, k, *args)
        return finish(y.reshape(plan.out_shape), plan.result_dtype, plan.clip)

    def conv(self, x: np.ndarray, weight: np.ndarray, bias, plan: ConvPlan) -> np.ndarray:
        """Kernel bank: x (N, C, *S) or (N, *S, C) -> plan.out_shape (batched form)."""
        with np.errstate(invalid="ignore", over="ignore"):
            return self._conv(x, weight, bias, plan)

    def _conv(self, x: np.ndarray, weight: np.ndarray, bias, plan: ConvPlan) -> np.ndarray:
        cd = plan.compute_dtype
        x = np.asarray(x).astype(cd, copy=False)
        w = np.asarray(weight, dtype=cd)
        nd = len(plan.in_spatial)
        if plan.channels_last:
            widths = [(0, 0)] + list(zip(plan.pad_lo, plan.pad_hi)) + [(0, 0)]
        else:
            widths = [(0, 0), (0, 0)] + list(zip(plan.pad_lo, plan.pad_hi))
        xp = np.pad(x, widths, mode=plan.boundary) if plan.boundary != "constant" else np.pad(x, widths)
        engine = conv_channels_last if plan.channels_last else conv_channels_first
        y = engine(xp, w, plan.groups, plan.out_spatial, plan.stride, plan.dilation)
        if bias is not None:
            b = np.asarray(bias, dtype=cd)
            y += b if plan.channels_last else b.reshape((-1,) + (1,) * nd)
        y = apply_activation(y, plan.activation)
        return finish(y, plan.result_dtype, plan.clip)
