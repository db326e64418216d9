"""The CUDA backend: correlate on CuPy arrays (and other CUDA arrays through DLPack) with the
kernels of kernels_cuda/, chosen and parameterised by correlate_plan.

Kernel banks (conv2d / conv1d): CudaBackend.conv, with conv_plan.

Methods: "direct" (correlate_tiled / correlate_rows / correlate_generic), "separable" (the
fused correlate_separable kernel, or 1-D passes where it does not apply), "fft" (cuFFT
through cupy.fft, fft.py); "auto" asks cost.py.

Everything runs on the device that holds x (allocations, FFT plans, launches) and on the
current stream of that device (CuPy's, or torch's for torch tensors); nothing waits for
the device: results come back as soon as the kernel is queued. Two exceptions, each one
small synchronous copy: a kernel given as a device array is read back to the host (the
fast kernels take the taps by value), and method "fft" reads back one finiteness flag per
image (see CudaBackend._fft).
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys

import numpy as np

from ...decompose import rank_tolerance, separable_terms
from ...dispatch import BackendUnavailableError
from ...plan import ConvPlan, CorrelatePlan
from .blocks import NATIVE_INPUTS, ArrayView, ByValue
from .conv_plan import arithmetic, plan_conv_launch
from .correlate_plan import BatchAxesError, plan_launch, plan_separable_launch
from .cost import finish_plan, pass_plan
from .fft import fft_correlate
from ..numpy.gather import gather_correlate, sparse_windows


def _default_runtime():
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend='cuda' needs CuPy ({exc}); install gpuconv[cuda12] or gpuconv[cuda13] to match your "
            "driver's CUDA version (nvidia-smi shows it)") from None
    if not cupy.is_available():
        raise BackendUnavailableError("backend='cuda' found CuPy but no usable CUDA device; use numpy arrays")
    from .runtime import CupyRuntime

    return CupyRuntime()


class CudaBackend:
    """Backend over CUDA device arrays. `runtime` compiles and launches kernels; the default
    is CuPy's (runtime.CupyRuntime); the tests pass the CPU emulator's."""

    name = "cuda"

    def __init__(self, runtime=None):
        self.runtime = runtime if runtime is not None else _default_runtime()
        self.xp = self.runtime.xp

    # ---- arrays in and out ----------------------------------------------------------------
    def device_array(self, name: str, obj):
        """A runtime array viewing `obj` with no copy (CuPy arrays, __cuda_array_interface__,
        CUDA DLPack producers such as torch tensors; one that requires grad is detached:
        gpuconv does not track gradients)."""
        from ...dispatch import detached

        xp = self.xp
        if isinstance(obj, xp.ndarray):
            return obj
        obj = detached(obj)
        if hasattr(obj, "__dlpack__") and xp.__name__ == "cupy":
            try:
                return xp.from_dlpack(obj)
            except (TypeError, BufferError, RuntimeError, ValueError):
                pass  # a producer that cannot export: try the array interface next
        try:
            return xp.asarray(obj)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be read as a CUDA array: {exc}") from None

    def host_kernel(self, kernel) -> np.ndarray:
        """The kernel's values on the host (a synchronous read-back when it is on the device)."""
        xp = self.xp
        if isinstance(kernel, np.ndarray) or xp is np:
            return np.asarray(kernel)
        from ...dispatch import array_kind, to_numpy

        if array_kind(kernel) == "cuda":
            return self.to_host(self.device_array("kernel", kernel))
        return to_numpy("kernel", kernel)

    def to_host(self, a) -> np.ndarray:
        """A device array's values on the host (synchronous)."""
        return self.xp.asnumpy(a) if hasattr(self.xp, "asnumpy") else np.asarray(a)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def wrap_like(self, template, result):
        """`result` as the caller's kind: torch tensors get a torch tensor (zero copy); host
        inputs sent here with backend="cuda" get a host array back."""
        from ...dispatch import array_kind, wrap_like

        if array_kind(template) in ("numpy", "dlpack-cpu") and self.xp is not np:
            return wrap_like(template, self.xp.asnumpy(result))
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(template, torch.Tensor):
            return torch.from_dlpack(result)
        return result

    @contextlib.contextmanager
    def placed(self, template, xa):
        """Run on the device holding `xa` (the caller's x as a device array), never on
        whatever device happens to be current, and on that device's current stream: torch's
        for torch tensors (`template`, the caller's x), CuPy's otherwise."""
        device = self.runtime.device_id(xa)
        with self.runtime.device(device):
            torch = sys.modules.get("torch")
            if torch is not None and isinstance(template, torch.Tensor) and self.xp.__name__ == "cupy":
                with self.runtime.external_stream(torch.cuda.current_stream(template.device).cuda_stream, device):
                    yield
            else:
                yield

    def check_out(self, out, shape: tuple, x, requested) -> np.dtype:
        """`out=` for a CUDA call: a CUDA array of the right shape and dtype, on x's device,
        not overlapping x. Returns its dtype."""
        from ... import checks

        if not isinstance(out, self.xp.ndarray):
            raise TypeError(f"out must be a CUDA array (cupy.ndarray) for CUDA input, got {type(out).__name__}")
        if self.runtime.device_id(out) != self.runtime.device_id(x):
            raise ValueError(f"out is on GPU {self.runtime.device_id(out)} but x is on GPU {self.runtime.device_id(x)}; "
                             "pass both on one device")
        dtype = checks.check_out_shape_dtype(out, shape, requested)
        if self.xp.may_share_memory(out, x):
            raise ValueError("out overlaps x; pass a separate array (inputs are never modified)")
        return dtype

    def _view(self, a) -> ArrayView:
        return ArrayView.of(a.shape, a.strides, a.dtype, self.runtime.address(a))

    # ---- correlate ----------------------------------------------------------------------------
    def correlate(self, x, kernel: np.ndarray, plan: CorrelatePlan, out=None):
        """Correlate device array x with the host kernel over plan.axes into `out` (any strides,
        the result dtype) or a new C-ordered array of plan.result_shape, by the method
        resolve_method picks. Runs on x's device."""
        with self.runtime.device(self.runtime.device_id(x)):
            return self._correlate(x, kernel, plan, out)

    def _correlate(self, x, kernel: np.ndarray, plan: CorrelatePlan, out):
        xp = self.xp
        if np.dtype(x.dtype) not in NATIVE_INPUTS:  # bool, 32/64-bit ints: one conversion pass
            x = x.astype(plan.compute_dtype)
        y = out if out is not None else xp.empty(plan.result_shape, dtype=plan.result_dtype)
        if sparse_windows(plan):  # taps mostly in the padding, or offsets past 64-bit indexing
            trailing = tuple(range(x.ndim - plan.ndim, x.ndim))
            r = gather_correlate(xp, x, kernel, plan).reshape(plan.out_shape)
            self._finish(r, xp.moveaxis(y, plan.axes, trailing), plan)
            return y
        method, terms = self.resolve_method(plan, kernel, x.dtype)
        if method == "fft":
            self._fft(x, y, kernel, plan)
        elif method == "separable":
            self._separable(x, y, terms, plan)
        else:
            self._direct(x, y, kernel, plan)
        return y

    @staticmethod
    def resolve_method(plan: CorrelatePlan, kernel: np.ndarray, in_dtype) -> tuple:
        """(method, separable terms or None) for plan.method: "auto" asks the GPU cost model
        (gpuconv.backends.cuda.cost); "separable" on a 1-D kernel is "direct". As in the
        numpy backend, a kernel with NaN or inf runs direct under "auto" and "separable", and
        "separable" on a kernel too large to split runs as "auto" without it."""
        from .cost import choose_cuda

        if not np.isfinite(kernel).all() and plan.method in ("auto", "separable"):
            return "direct", None
        terms = None
        if plan.method in ("separable", "auto") and plan.ndim > 1:
            terms = separable_terms(kernel, rank_tolerance(kernel.shape, plan.compute_dtype))
        if plan.method == "auto" or (plan.method == "separable" and plan.ndim > 1 and terms is None):
            return choose_cuda(plan, np.dtype(in_dtype), None if terms is None else len(terms)), terms
        if plan.method == "separable" and terms is None:
            return "direct", None
        return plan.method, terms

    def _run(self, launch, x, y) -> None:
        # tiled and separable kernels take their taps by value; the others read them from memory
        weights = ByValue(launch.weights) if launch.by_value else self.xp.asarray(launch.weights)
        self.runtime.launch(launch.filename, launch.name, launch.grid, launch.block,
                            (x, y, ByValue(launch.geometry), weights, ByValue(launch.epilogue), launch.cval))

    def _direct(self, x, y, kernel, plan) -> None:
        """One direct launch (tiled, rows or generic kernel)."""
        try:
            self._run(plan_launch(self._view(x), self._view(y), kernel, plan), x, y)
        except BatchAxesError:
            self._moved(x, y, plan, lambda xt, yt, p: self._direct(xt, yt, kernel, p))

    def _moved(self, x, y, plan, run) -> None:
        """Batch axes interleaved with the sliding axes beyond what the kernels index: move
        the sliding axes last in a copy, `run` on that, and move the result back."""
        xp, nd = self.xp, plan.ndim
        trailing = tuple(range(x.ndim - nd, x.ndim))
        xt = xp.ascontiguousarray(xp.moveaxis(x, plan.axes, trailing))
        moved = dataclasses.replace(plan, axes=trailing, in_shape=tuple(xt.shape))
        yt = xp.empty(moved.result_shape, dtype=plan.result_dtype)
        run(xt, yt, moved)
        y[...] = xp.moveaxis(yt, trailing, plan.axes)

    def _finish(self, src, dst, plan) -> None:
        """dst = plan's epilogue (clip, round, saturating cast) of src, a compute-dtype array of
        dst's shape: one pass of a 1-tap kernel, so any strides of dst are written in place."""
        self._direct(src, dst, np.ones(1, src.dtype), finish_plan(plan, src.shape))

    # ---- separable ------------------------------------------------------------------------------
    def _separable(self, x, y, terms: list, plan) -> None:
        """The fused separable kernel where it applies (2-D, unit steps, rank <= 4, sides <= 31);
        otherwise 1-D passes through compute-dtype intermediates, summed over the terms."""
        try:
            fused = plan_separable_launch(self._view(x), self._view(y), terms, plan)
        except BatchAxesError:
            return self._moved(x, y, plan, lambda xt, yt, p: self._separable(xt, yt, terms, p))
        if fused is not None:
            return self._run(fused, x, y)
        xp, acc = self.xp, np.dtype(plan.compute_dtype)
        total = None
        for term in terms:
            src, scale = x, 1.0
            for i in reversed(range(plan.ndim)):
                last = len(terms) == 1 and i == 0   # one term: its last pass writes the result
                p = pass_plan(plan, i, tuple(src.shape), last)
                # a constant border, filtered along the axes done so far, is cval times their tap sums
                p = dataclasses.replace(p, cval=plan.cval * scale)
                dst = y if last else xp.empty(p.result_shape, dtype=acc)
                self._direct(src, dst, np.asarray(term[i], dtype=acc), p)
                scale *= float(np.sum(term[i]))
                src = dst
            if len(terms) == 1:
                return
            if total is None:
                total = src
            else:
                total += src
        self._finish(total, y, plan)

    # ---- FFT ----------------------------------------------------------------------------------
    def _fft(self, x, y, kernel, plan) -> None:
        """cuFFT overlap-save (gpuconv.backends.cuda.fft), then the epilogue into y.

        A transform spreads one NaN or inf over its whole block, where direct summation keeps
        it local. So each image's result sum is checked (one small read-back to the host, the
        one synchronisation of this method) and images that are not finite are recomputed by
        the direct kernels.
        """
        xp, nd = self.xp, plan.ndim
        trailing = tuple(range(x.ndim - nd, x.ndim))             # y has x's number of axes
        r = fft_correlate(xp, x, kernel, plan)                    # (images, *out_sliding)
        bad = ~xp.isfinite(r.sum(axis=tuple(range(1, nd + 1))))
        redo = np.flatnonzero(self.to_host(bad))
        if redo.size:
            images = xp.moveaxis(x, plan.axes, trailing).reshape((-1,) + tuple(plan.in_sliding))
            redo_d = xp.asarray(redo)
            sub = xp.ascontiguousarray(images[redo_d])
            sub_plan = dataclasses.replace(plan, batch_shape=(redo.size,), in_shape=tuple(sub.shape),
                                           axes=tuple(range(1, nd + 1)), result_dtype=plan.compute_dtype, clip=None)
            fixed = xp.empty(sub_plan.result_shape, dtype=plan.compute_dtype)
            self._direct(sub, fixed, kernel, sub_plan)
            r[redo_d] = fixed
        self._finish(r.reshape(tuple(plan.batch_shape) + tuple(plan.out_sliding)),
                     xp.moveaxis(y, plan.axes, trailing), plan)

    # ---- kernel banks ---------------------------------------------------------------------------
    def bank_operand(self, name: str, obj):
        """weight or bias of a CUDA conv: a device array as it is (no read-back to the host),
        anything else as a host array (uploaded by conv, after the plan has checked it)."""
        from ...dispatch import array_kind, to_numpy

        return self.device_array(name, obj) if array_kind(obj) == "cuda" else to_numpy(name, obj)

    def conv(self, x, weight, bias, plan: ConvPlan, out=None):
        """Kernel bank (conv2d / conv1d) of batched device array x into `out` (the batched
        result, any strides) or a new C-ordered array: implicit GEMM on tensor cores or with
        exact FMAs (conv_plan.arithmetic decides from plan.precision), the depthwise kernel
        where each group has one input channel. Runs on x's device; weight and bias (host or
        device arrays) are moved there if they are elsewhere."""
        with self.runtime.device(self.runtime.device_id(x)):
            xp = self.xp
            if np.dtype(x.dtype) not in NATIVE_INPUTS:  # bool, 32/64-bit ints: one conversion pass
                x = x.astype(plan.compute_dtype)
            y = out if out is not None else xp.empty(plan.batched_out_shape, dtype=plan.result_dtype)
            how = arithmetic(plan.precision, x.dtype, self.runtime.tensor_cores())
            launch = plan_conv_launch(self._view(x), self._view(y), plan, how)
            w = self._operand(weight, x, launch.weight_dtype)
            b = w if bias is None else self._operand(bias, x, launch.weight_dtype)
            self.runtime.launch(launch.filename, launch.name, launch.grid, launch.block,
                                (x, y, ByValue(launch.geometry), w, b, ByValue(launch.epilogue)))
            return y

    def _operand(self, a, x, dtype):
        """A weight or bias (host array, or device array on any GPU) as a C-contiguous device
        array of `dtype` on x's device, which is current."""
        device = self.runtime.device_id(a)
        if device is not None and device != self.runtime.device_id(x):
            a = a.copy()  # CuPy copies onto the current device (x's)
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))
