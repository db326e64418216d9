"""CUDA backend on a real GPU: randomized differential tests against the numpy backend,
torch tensors through DLPack, out= poisoning, and an array over 2**31 elements. Skipped
without CuPy and a device (the CPU emulator in test_cuda_emulated.py covers the kernels'
logic everywhere)."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuconv
from conftest import CUDA

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA device / CuPy")]
DTYPES = ["uint8", "uint16", "int16", "float16", "float32", "float64"]
# examples per hypothesis test; bench/gpu_session.sh lowers it to fit the GPU machine's window
EXAMPLES = int(os.environ.get("GPUCONV_GPU_EXAMPLES", "60"))


@settings(max_examples=EXAMPLES, deadline=None)
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


def test_float32_subnormals_are_kept_on_the_gpu():
    """The kernels are compiled without flush-to-zero (CuPy's RawModule would add -ftz=true)."""
    import cupy as cp

    from gpuconv.backends import get_backend

    for shape, k in (((64,), np.ones(3)), ((2, 40, 40), np.ones((3, 3)))):
        x = np.full(shape, 1e-39, dtype=np.float32)            # 1e-39 and 9e-39: float32 subnormals
        got = cp.asnumpy(gpuconv.correlate(cp.asarray(x), k, "valid", method="direct"))
        expect = gpuconv.correlate(x, k, "valid", method="direct")
        assert (expect > 0).all() and np.array_equal(got, expect)
    cache = get_backend("cuda").runtime.cache
    assert cache.compiled + cache.loaded > 0          # the kernels came through gpuconv's compiler


def test_torch_tensors_on_a_side_stream():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 3, 256, 256, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = gpuconv.correlate(x, np.ones((5, 5), np.float32), "same")
        z = y * 2                                       # queued after gpuconv's kernel on the same stream
    stream.synchronize()
    expect = gpuconv.correlate(x.cpu().numpy(), np.ones((5, 5)), "same") * 2
    np.testing.assert_allclose(z.cpu().numpy(), expect, rtol=1e-5, atol=1e-4)


def test_arrays_on_a_second_gpu():
    import cupy as cp

    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("one GPU: the device tests run on the emulator (test_cuda_runtime.py)")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    with cp.cuda.Device(1):
        xd = cp.asarray(x)
    wd = cp.asarray(w)                                   # on device 0: conv2d moves it
    y = gpuconv.conv2d(xd, wd, padding=1)
    assert y.device.id == 1
    np.testing.assert_allclose(cp.asnumpy(y), gpuconv.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)
    y = gpuconv.correlate(xd, np.ones((3, 3)), "same", method="fft")
    assert y.device.id == 1


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


# --- kernel banks (conv2d / conv1d) -----------------------------------------------------------

def _conv_bound(x, w, groups, precision, dtype):
    """Exact FMA: 64 float32 roundings of sum |w x|; tensor cores: conv2d's stated bound."""
    import torch

    F = torch.nn.functional
    mag = F.conv2d(torch.from_numpy(np.abs(x).astype(np.float64)), torch.from_numpy(np.abs(w).astype(np.float64)),
                   groups=groups).max().item() if x.ndim == 4 else None
    k = w[0].size
    if precision in ("tf32", "float16") or dtype == "float16":
        return (2.0**-10 + (k + 2) * 2.0**-23) * mag + 2.0**-11 * mag
    return 64 * np.finfo(np.float32).eps * mag


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_conv2d_matches_torch_and_numpy(data):
    """conv2d on the GPU against torch.nn.functional.conv2d in float64 (cuDNN) and the numpy
    backend, over shapes, strides, paddings, dilations, groups, layouts, precisions, activations."""
    import cupy as cp
    torch = pytest.importorskip("torch")

    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    groups = data.draw(st.sampled_from([1, 1, 2, 4]), label="groups")
    cg = data.draw(st.sampled_from([1, 3, 8, 17, 32]), label="cg")
    og = data.draw(st.sampled_from([1, 5, 16, 40, 64, 130]), label="og")
    kh, kw = data.draw(st.integers(1, 5), label="kh"), data.draw(st.integers(1, 5), label="kw")
    n = data.draw(st.integers(1, 3), label="n")
    h, w_ = data.draw(st.integers(kh, 40), label="h"), data.draw(st.integers(kw, 40), label="w")
    stride = data.draw(st.sampled_from([1, 1, 2, (1, 3)]), label="stride")
    dilation = data.draw(st.sampled_from([1, 1, 2]), label="dilation")
    padding = data.draw(st.sampled_from([0, 1, 2, "valid", (2, 0)]), label="padding")
    layout = data.draw(st.sampled_from(["NCHW", "NHWC"]), label="layout")
    dtype = data.draw(st.sampled_from(["float32", "float32", "float16"]), label="dtype")
    precision = data.draw(st.sampled_from([None, None, "tf32", "float16"]), label="precision")
    activation = data.draw(st.sampled_from([None, "relu", "leaky_relu", "tanh", "sigmoid"]), label="act")
    if groups > 1 and data.draw(st.booleans(), label="depthwise"):
        cg = 1
    c, o = cg * groups, og * groups
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    wt = rng.standard_normal((o, cg, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    F = torch.nn.functional
    pad = (padding, padding) if isinstance(padding, int) else padding
    d = (dilation, dilation)
    if not isinstance(padding, str) and any(d[i] * ((kh, kw)[i] - 1) + 1 > (h, w_)[i] + 2 * pad[i] for i in range(2)):
        return
    if padding == "valid" and any(d[i] * ((kh, kw)[i] - 1) + 1 > (h, w_)[i] for i in range(2)):
        return
    act = {None: lambda t: t, "relu": F.relu, "leaky_relu": F.leaky_relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    ref = act[activation](F.conv2d(torch.from_numpy(x.astype(np.float64)).cuda(),
                                   torch.from_numpy(wt.astype(np.float64)).cuda(),
                                   torch.from_numpy(b.astype(np.float64)).cuda(), stride=stride, padding=padding,
                                   dilation=dilation, groups=groups)).cpu().numpy()
    xin, win = (x.transpose(0, 2, 3, 1), wt.transpose(0, 2, 3, 1)) if layout == "NHWC" else (x, wt)
    kw_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, activation=activation,
                   layout=layout, precision=precision)
    y = cp.asnumpy(gpuconv.conv2d(cp.asarray(xin), cp.asarray(win), cp.asarray(b), **kw_args)).astype(np.float64)
    y_np = gpuconv.conv2d(xin, win, b, **kw_args).astype(np.float64)
    if layout == "NHWC":
        y, y_np = y.transpose(0, 3, 1, 2), y_np.transpose(0, 3, 1, 2)
    bound = _conv_bound(x, wt, groups, precision, dtype) + (2.0**-11 * np.abs(ref).max() if dtype == "float16" else 0)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=bound + 1e-6, rtol=0)
    np.testing.assert_allclose(y, y_np, atol=2 * bound + 1e-6, rtol=0)


def test_conv2d_float32_equals_cudnn_without_tf32():
    """Exact float32 arithmetic: as close to cuDNN (tf32 off) as two float32 summation orders."""
    import cupy as cp
    torch = pytest.importorskip("torch")

    torch.backends.cudnn.allow_tf32 = False
    rng = np.random.default_rng(5)
    for (n, c, h, o, k) in [(4, 64, 32, 64, 3), (2, 3, 64, 16, 3), (2, 32, 40, 32, 5), (2, 128, 16, 256, 3)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((o, c, k, k)).astype(np.float32)
        ref = torch.nn.functional.conv2d(torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda(),
                                         padding=k // 2).cpu().numpy()
        y = cp.asnumpy(gpuconv.conv2d(cp.asarray(x), cp.asarray(w), padding=k // 2))
        np.testing.assert_allclose(y, ref, atol=64 * np.finfo(np.float32).eps * np.abs(x).max() * np.abs(w).sum() / o,
                                   rtol=0)


def test_conv2d_torch_tensors_and_poisoned_out():
    import cupy as cp
    torch = pytest.importorskip("torch")

    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.standard_normal((2, 16, 20, 20)).astype(np.float32)).cuda()
    w = torch.from_numpy(rng.standard_normal((24, 16, 3, 3)).astype(np.float32)).cuda()
    y = gpuconv.conv2d(x, w, padding=1, activation="relu")
    assert isinstance(y, torch.Tensor) and y.is_cuda
    ref = torch.relu(torch.nn.functional.conv2d(x.double(), w.double(), padding=1)).float()
    assert torch.allclose(y, ref, atol=1e-3)
    out = cp.full((2, 24, 20, 20), cp.nan, cp.float32)
    assert gpuconv.conv2d(cp.asarray(x), cp.asarray(w), padding=1, out=out) is out
    assert not cp.isnan(out).any()


def test_conv1d_on_gpu():
    import cupy as cp
    torch = pytest.importorskip("torch")

    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 12, 300)).astype(np.float32)
    w = rng.standard_normal((20, 12, 7)).astype(np.float32)
    ref = torch.nn.functional.conv1d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), padding=3,
                                     stride=2).numpy()
    y = cp.asnumpy(gpuconv.conv1d(cp.asarray(x), cp.asarray(w), padding=3, stride=2))
    np.testing.assert_allclose(y, ref, atol=1e-3)
    y = cp.asnumpy(gpuconv.conv1d(cp.asarray(x.transpose(0, 2, 1)), cp.asarray(w.transpose(0, 2, 1)), padding=3,
                                  stride=2, layout="NLC"))
    np.testing.assert_allclose(y.transpose(0, 2, 1), ref, atol=1e-3)
