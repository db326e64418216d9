"""Shared fixtures: the backends available here (GPU cases marked `gpu` and skipped without
one), array conversion per backend, and a per-test random generator."""
import importlib.util
import zlib

import numpy as np
import pytest


def _cuda_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return bool(cupy.is_available())
    except Exception:
        return False


CUDA = _cuda_available()
BACKENDS = ["numpy", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA device / CuPy")])]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Name of a backend; inputs are put on its device with `on(backend, a)`."""
    return request.param


def on(backend, a):
    """The array `a` on `backend`'s device."""
    if backend == "cuda":
        import cupy

        return cupy.asarray(a)
    return np.asarray(a)


def host(a):
    """A numpy copy of a result from any backend."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy.asnumpy(a)
    return np.asarray(a)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id, so failures reproduce and cases differ."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def emu():
    """(EmulatedRuntime, CudaBackend over it): the CUDA backend with the real kernels run on
    the CPU by tests/cuda_emu (compiled libraries cached on disk and in this session)."""
    from cuda_emu.emulator import EmulatedRuntime
    from gpuconv.backends.cuda.backend import CudaBackend

    runtime = EmulatedRuntime()
    return runtime, CudaBackend(runtime)


@pytest.fixture
def cuda_api(emu, monkeypatch):
    """gpuconv.api with backend="cuda" running on the emulated CUDA backend (the API's CUDA
    leg in gpuconv.compute, end to end)."""
    import gpuconv.api as api
    import gpuconv.compute as compute

    real = compute.get_backend
    monkeypatch.setattr(compute, "get_backend", lambda name: emu[1] if name == "cuda" else real(name))
    return api
