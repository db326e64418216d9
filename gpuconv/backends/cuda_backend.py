"""The CUDA backend: correlate on CuPy arrays (and other CUDA arrays through DLPack) with the
kernels of kernels_cuda/, chosen and parameterised by gpuconv.backends.cuda_params.

Everything runs on the current stream (CuPy's, or torch's for torch tensors) and nothing
waits for the device: results come back as soon as the kernel is queued. A kernel given as
a device array is the one exception: its few values are read back to the host (one small
synchronous copy) because the fast kernels take the taps by value.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys

import numpy as np

from ..dispatch import BackendUnavailableError
from ..plan import ConvPlan, CorrelatePlan
from .cuda_params import NATIVE_INPUTS, ArrayView, BatchAxesError, ByValue, plan_launch


def _default_runtime():
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend='cuda' needs CuPy ({exc}); install gpuconv[cuda12] or gpuconv[cuda13] to match your "
            "driver's CUDA version (nvidia-smi shows it)") from None
    if not cupy.is_available():
        raise BackendUnavailableError("backend='cuda' found CuPy but no usable CUDA device; use numpy arrays")
    from .cuda_loader import CupyRuntime

    return CupyRuntime()


class CudaBackend:
    """Backend over CUDA device arrays. `runtime` compiles and launches kernels; the default
    is CuPy's (cuda_loader.CupyRuntime)."""

    name = "cuda"

    def __init__(self, runtime=None):
        self.runtime = runtime if runtime is not None else _default_runtime()
        self.xp = self.runtime.xp

    # ---- arrays in and out ----------------------------------------------------------------
    def device_array(self, name: str, obj):
        """A runtime array viewing `obj` with no copy (CuPy arrays, __cuda_array_interface__,
        CUDA DLPack producers such as torch tensors)."""
        xp = self.xp
        if isinstance(obj, xp.ndarray):
            return obj
        if hasattr(obj, "__dlpack__") and xp.__name__ == "cupy":
            try:
                return xp.from_dlpack(obj)
            except (TypeError, BufferError, RuntimeError, ValueError):
                pass  # e.g. a tensor that requires grad: try the array interface next
        try:
            return xp.asarray(obj)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be read as a CUDA array: {exc}") from None

    def host_kernel(self, kernel) -> np.ndarray:
        """The kernel's values on the host (a synchronous read-back when it is on the device)."""
        xp = self.xp
        if isinstance(kernel, np.ndarray) or xp is np:
            return np.asarray(kernel)
        from ..dispatch import array_kind, to_numpy

        if array_kind(kernel) == "cuda":
            return xp.asnumpy(self.device_array("kernel", kernel))
        return to_numpy("kernel", kernel)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def wrap_like(self, template, result):
        """`result` as the caller's kind: torch tensors get a torch tensor (zero copy); host
        inputs sent here with backend="cuda" get a host array back."""
        from ..dispatch import array_kind, wrap_like

        if array_kind(template) in ("numpy", "dlpack-cpu") and self.xp is not np:
            return wrap_like(template, self.xp.asnumpy(result))
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(template, torch.Tensor):
            return torch.from_dlpack(result)
        return result

    @contextlib.contextmanager
    def stream_of(self, template):
        """Run on torch's current stream for torch tensors, CuPy's current stream otherwise."""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(template, torch.Tensor) and self.xp.__name__ == "cupy":
            with self.xp.cuda.ExternalStream(torch.cuda.current_stream(template.device).cuda_stream):
                yield
        else:
            yield

    def check_out(self, out, shape: tuple, x, requested) -> np.dtype:
        """`out=` for a CUDA call: a CUDA array of the right shape and dtype, on x's device,
        not overlapping x. Returns its dtype."""
        from .. import checks

        if not isinstance(out, self.xp.ndarray):
            raise TypeError(f"out must be a CUDA array (cupy.ndarray) for CUDA input, got {type(out).__name__}")
        if self.xp.__name__ == "cupy" and out.device.id != x.device.id:
            raise ValueError(f"out is on GPU {out.device.id} but x is on GPU {x.device.id}; pass both on one device")
        dtype = checks.check_out_shape_dtype(out, shape, requested)
        if self.xp.may_share_memory(out, x):
            raise ValueError("out overlaps x; pass a separate array (inputs are never modified)")
        return dtype

    def _view(self, a) -> ArrayView:
        return ArrayView.of(a.shape, a.strides, a.dtype, self.runtime.address(a))

    # ---- correlate --------------------------------------------------------------------------
    def correlate(self, x, kernel: np.ndarray, plan: CorrelatePlan, out=None):
        """Correlate device array x with the host kernel over plan.axes into `out` (any strides,
        the result dtype) or a new C-ordered array of plan.result_shape."""
        xp = self.xp
        if np.dtype(x.dtype) not in NATIVE_INPUTS:  # bool, 32/64-bit ints: one conversion pass
            x = x.astype(plan.compute_dtype)
        y = out if out is not None else xp.empty(plan.result_shape, dtype=plan.result_dtype)
        try:
            self._launch(x, y, kernel, plan)
        except BatchAxesError:
            self._correlate_moved(x, y, kernel, plan)
        return y

    def _launch(self, x, y, kernel, plan) -> None:
        launch = plan_launch(self._view(x), self._view(y), kernel, plan)
        # tiled kernels take their taps by value; the generic kernel reads any number from memory
        weights = ByValue(launch.weights) if launch.tiled else self.xp.asarray(launch.weights)
        self.runtime.launch(launch.filename, launch.name, launch.grid, launch.block,
                            (x, y, ByValue(launch.geometry), weights, ByValue(launch.epilogue), launch.cval))

    def _correlate_moved(self, x, y, kernel, plan) -> None:
        """Batch axes interleaved with the sliding axes beyond what the kernels index: move
        the sliding axes last in a copy, correlate that, and move the result back."""
        xp, nd = self.xp, plan.ndim
        trailing = tuple(range(x.ndim - nd, x.ndim))
        xt = xp.ascontiguousarray(xp.moveaxis(x, plan.axes, trailing))
        moved = dataclasses.replace(plan, axes=trailing, in_shape=tuple(xt.shape))
        yt = xp.empty(moved.result_shape, dtype=plan.result_dtype)
        self._launch(xt, yt, kernel, moved)
        y[...] = xp.moveaxis(yt, trailing, plan.axes)

    def conv(self, x, weight, bias, plan: ConvPlan):
        raise BackendUnavailableError(
            "conv2d/conv1d on CUDA arrays is not built yet (kernel banks on the GPU come next); "
            "copy x to the host (cupy.asnumpy(x)) to run it on the numpy backend")

