"""CUDA backend on a real GPU: randomized differential tests against the numpy backend,
torch tensors through DLPack, out= poisoning, and an array over 2**31 elements. Skipped
without CuPy and a device (the CPU emulator in test_cuda_emulated.py covers the kernels'
logic everywhere)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuconv
from conftest import CUDA

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA device / CuPy")]
DTYPES = ["uint8", "uint16", "int16", "float16", "float32", "float64"]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_cuda_matches_numpy_backend(data):
    import cupy as cp

    nd = data.draw(st.integers(1, 3), label="nd")
    kshape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=nd, max_size=nd), label="kshape"))
    shape = (data.draw(st.integers(1, 3), label="batch"),) + tuple(
        data.draw(st.lists(st.integers(1, 40), min_size=nd, max_size=nd), label="shape"))
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    kw = dict(mode=data.draw(st.sampled_from(["full", "same", "valid"]), label="mode"),
              boundary=data.draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]), label="b"),
              stride=data.draw(st.sampled_from([1, 1, 2]), label="stride"),
              dilation=data.draw(st.sampled_from([1, 1, 2]), label="dilation"), cval=0.5)
    method = data.draw(st.sampled_from(["auto", "direct", "separable", "fft"]), label="method")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    x = (rng.standard_normal(shape) * 40).astype(dtype)
    k = rng.standard_normal(kshape).astype(np.float32)
    if method == "separable" and nd > 1 and data.draw(st.booleans(), label="rank 1"):
        k = np.einsum(",".join("ijk"[:nd]) + "->" + "ijk"[:nd], *[rng.standard_normal(n) for n in kshape])
        k = k.astype(np.float32)
    expect = gpuconv.correlate(x, k, **kw)
    got = gpuconv.correlate(cp.asarray(x), k, method=method, **kw)
    assert isinstance(got, cp.ndarray) and got.dtype == expect.dtype and got.shape == expect.shape
    tol = 2e-2 if dtype == "float16" else 1e-9 if expect.dtype == np.float64 else 1e-4
    np.testing.assert_allclose(cp.asnumpy(got).astype(np.float64), expect.astype(np.float64), rtol=tol,
                               atol=tol * max(1.0, np.abs(expect.astype(np.float64)).max()))


@pytest.mark.parametrize("boundary", ["constant", "reflect"])
def test_fused_separable_and_fft_on_large_images(boundary):
    import cupy as cp

    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 700, 900)).astype(np.float32)
    xd = cp.asarray(x)
    g = gpuconv.kernels.gaussian(11, 2.0)
    expect = gpuconv.correlate(x, g, "same", boundary=boundary, axes=(2, 3))
    for method in ("separable", "fft", "auto"):
        out = cp.full(x.shape, cp.nan, dtype=cp.float32)
        gpuconv.correlate(xd, g, "same", boundary=boundary, axes=(2, 3), method=method, out=out)
        np.testing.assert_allclose(cp.asnumpy(out), expect, rtol=0, atol=2e-5)


@pytest.mark.parametrize("k", [3, 101, 1001])
def test_long_signal_rows_kernel_and_fft(k):
    import cupy as cp

    rng = np.random.default_rng(k)
    x = rng.standard_normal(3_000_001).astype(np.float32)
    kern = rng.standard_normal(k).astype(np.float32)
    expect = gpuconv.convolve(x, kern, "same", boundary="wrap")
    scale = np.abs(kern).sum() * 5
    for method in ("direct", "fft", "auto"):
        got = cp.asnumpy(gpuconv.convolve(cp.asarray(x), kern, "same", boundary="wrap", method=method))
        np.testing.assert_allclose(got, expect, rtol=0, atol=1e-5 * scale)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["G2", "G5.63", "G6.3", "G6.1001"])
def test_auto_is_within_10_percent_of_the_fastest_method(case):
    """BENCH.md's rule for auto, on the workloads themselves (CUDA event timings)."""
    import cupy as cp

    from bench.run_gpu import event_ms

    rng = np.random.default_rng(0)
    if case == "G2":
        x, k, methods, kw = (rng.standard_normal((32, 3, 1024, 1024), dtype=np.float32),
                             gpuconv.kernels.gaussian(11, 2.0), ("direct", "separable", "fft"), {"axes": (2, 3)})
    elif case == "G5.63":
        x, k, methods, kw = (rng.standard_normal((4096, 4096), dtype=np.float32),
                             rng.standard_normal((63, 63)).astype(np.float32), ("direct", "fft"), {})
    else:
        n = int(case.split(".")[1])
        x, k, methods, kw = (rng.standard_normal(2**26, dtype=np.float32), rng.standard_normal(n).astype(np.float32),
                             ("direct", "fft"), {})
    xd = cp.asarray(x)
    times = {m: event_ms(cp, lambda m=m: gpuconv.correlate(xd, k, "same", method=m, **kw), repeat=5)
             for m in ("auto",) + methods}
    fastest = min(times[m] for m in methods)
    assert times["auto"] <= 1.1 * fastest, times


def test_out_is_poisoned_then_fully_written():
    import cupy as cp

    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 200, 300)).astype(np.float32)
    out = cp.full((4, 3, 200, 300), cp.nan, dtype=cp.float32)
    gpuconv.correlate(cp.asarray(x), np.ones((5, 5), np.float32) / 25, "same", boundary="reflect", out=out)
    np.testing.assert_allclose(cp.asnumpy(out), gpuconv.correlate(x, np.ones((5, 5)) / 25, "same",
                                                                  boundary="reflect"), rtol=1e-5, atol=1e-6)


def test_torch_tensor_in_torch_tensor_out():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 64, 80, device="cuda")
    y = gpuconv.correlate(x, np.ones((3, 3), np.float32), "same")
    assert isinstance(y, torch.Tensor) and y.is_cuda
    np.testing.assert_allclose(y.cpu().numpy(), gpuconv.correlate(x.cpu().numpy(), np.ones((3, 3)), "same"),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_more_than_2_31_elements():
    import cupy as cp

    n = 2**31 // (128 * 128) + 2          # (131074, 128, 128): 2**31 + 32768 elements, 8 GiB
    x = cp.random.standard_normal((n, 128, 128), dtype=cp.float32)
    k = np.random.default_rng(2).standard_normal((3, 3)).astype(np.float32)
    y = gpuconv.correlate(x, k, "same", boundary="edge")
    for i in (0, n // 2, n - 1):            # images past the 2**31-th element included
        np.testing.assert_allclose(cp.asnumpy(y[i]), gpuconv.correlate(cp.asnumpy(x[i]), k, "same",
                                                                       boundary="edge"), rtol=1e-5, atol=1e-5)
