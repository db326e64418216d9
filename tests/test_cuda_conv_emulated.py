"""Kernel banks on the CUDA backend (conv_igemm, conv_igemm_tc, conv_depthwise) on the CPU
emulator (tests/cuda_emu), against the float64 reference conv_nchw.

The tensor-core kernel runs here through gpuconv_mma.cuh's host twin of mma.sync, which
rebuilds each warp's operands from the PTX fragment tables; the GPU runs
(tests/test_cuda_gpu.py) check the same kernels against torch and cuDNN on the device.
"""
import shutil

import numpy as np
import pytest

from cuda_emu.harness import run_conv
from gpuconv.backends.cuda import conv_plan as cuda_conv
from reference import conv_nchw

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")
BOUNDARIES = ["constant", "edge", "reflect", "symmetric", "wrap"]
ACTIVATIONS = {
    None: lambda y: y,
    "relu": lambda y: np.maximum(y, 0),
    "leaky_relu": lambda y: np.where(y < 0, 0.01 * y, y),
    "tanh": np.tanh,
    "sigmoid": lambda y: 1 / (1 + np.exp(-y)),
}


def torch_pads(padding, k, dilation):
    """conv_nchw's explicit (lo, hi) pairs for an int or "same"/"valid" padding (2-D)."""
    k, d = np.broadcast_to(k, 2), np.broadcast_to(dilation, 2)
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":
        return [(dd * (kk - 1) // 2, dd * (kk - 1) - dd * (kk - 1) // 2) for kk, dd in zip(k, d)]
    p = np.broadcast_to(padding, 2)
    return [(int(p[0]), int(p[0])), (int(p[1]), int(p[1]))]


def reference(x, w, bias=None, *, layout="NCHW", padding=0, activation=None, **kw):
    """(float64 result, sum |w x| per output) in the layout of x; 2-D banks."""
    cl = layout == "NHWC"
    xc = np.moveaxis(x, -1, 1) if cl else x
    wc = np.moveaxis(w, -1, 1) if cl else w
    pads = torch_pads(padding, wc.shape[2:], kw.get("dilation", 1))
    y = ACTIVATIONS[activation](conv_nchw(xc, wc, bias, padding=pads, **kw))
    mag = conv_nchw(np.abs(xc.astype(np.float64)), np.abs(wc.astype(np.float64)), None, padding=pads, **kw)
    if cl:
        y, mag = np.moveaxis(y, 1, -1), np.moveaxis(mag, 1, -1)
    return y, mag


def check_exact(y, x, w, bias=None, **kw):
    """Exact FMA arithmetic: within a few float32 (or float64) roundings of sum |w x|."""
    ref, mag = reference(x, w, bias, **kw)
    eps = np.finfo(np.float64 if y.dtype == np.float64 else np.float32).eps
    assert y.shape == ref.shape
    assert not np.isnan(y).any()
    err = np.abs(y.astype(np.float64) - ref)
    bound = 16 * eps * (mag + np.abs(0 if bias is None else bias).max() + 1)
    assert (err <= bound).all(), f"max error {err.max():.3g} over bound {bound.max():.3g}"


def tc_bound(mag, k_total, ref, out_dtype=np.float32):
    """The tensor-core bound of conv2d's docstring, plus the result's own rounding."""
    return (2.0**-10 + (k_total + 2) * 2.0**-23) * mag + np.finfo(out_dtype).eps * np.abs(ref) + 1e-30


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# --- exact FMA implicit GEMM ---------------------------------------------------------------------

@pytest.mark.parametrize("o", [8, 24, 48, 72])                 # every block configuration
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_fma_configurations(emu, rng, o, layout):
    c = 16                                                      # chunked K: 2 channel chunks per tap
    x = rand(rng, 2, 11, 13, c) if layout == "NHWC" else rand(rng, 2, c, 11, 13)
    w = rand(rng, o, 3, 3, c) if layout == "NHWC" else rand(rng, o, c, 3, 3)
    y, names = run_conv(emu, x, w, padding=1, layout=layout)
    bm, bn, tm, tn = cuda_conv._pick(cuda_conv.FMA_CONFIGS, o)
    assert names == [f"conv_igemm<float, float, float, {bm}, {bn}, {tm}, {tn}, 3, {str(layout == 'NHWC').lower()}, "
                     "false, 0>"]
    check_exact(y, x, w, padding=1, layout=layout)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_fma_every_boundary(emu, rng, boundary, layout):
    # pads of 3 on a 5-wide image: the remap folds more than once for reflect/symmetric/wrap
    x = rand(rng, 2, 5, 9, 3) if layout == "NHWC" else rand(rng, 2, 3, 5, 9)
    w = rand(rng, 5, 4, 3, 3) if layout == "NHWC" else rand(rng, 5, 3, 4, 3)
    y, names = run_conv(emu, x, w, padding=3, boundary=boundary, layout=layout)
    assert names[0].endswith(f", true, {BOUNDARIES.index(boundary)}>")          # C = 3: flat K
    check_exact(y, x, w, padding=3, boundary=boundary, layout=layout)


@pytest.mark.parametrize("stride,padding,dilation", [(2, 1, 1), ((2, 3), (0, 2), (2, 1)), (1, "same", 2),
                                                     (3, "same", 1), (1, "valid", (1, 3))])
def test_fma_strides_pads_dilations(emu, rng, stride, padding, dilation):
    x = rand(rng, 3, 10, 17, 14)
    w = rand(rng, 20, 10, 3, 4)
    y, _ = run_conv(emu, x, w, stride=stride, padding=padding, dilation=dilation)
    check_exact(y, x, w, stride=stride, padding=padding, dilation=dilation)


@pytest.mark.parametrize("groups", [2, 4])
def test_fma_groups(emu, rng, groups):
    x = rand(rng, 2, 8 * groups // 2, 9, 9)
    w = rand(rng, 6 * groups, 8 * groups // 2 // groups, 3, 3)
    y, names = run_conv(emu, x, w, padding=1, groups=groups)
    assert names[0].startswith("conv_igemm<")
    check_exact(y, x, w, padding=1, groups=groups)


def test_first_layer_reads_input_once_for_all_outputs(emu, rng):
    # C = 3 (RGB): flat K (27 taps x channels, no rounding to chunks); 16 outputs = one block column
    x = rand(rng, 2, 3, 20, 23)
    w = rand(rng, 16, 3, 3, 3)
    bias = rand(rng, 16)
    y, names = run_conv(emu, x, w, bias, padding=(1, 2), dilation=(1, 2))
    assert names == ["conv_igemm<float, float, float, 256, 16, 8, 2, 3, false, true, 0>"]
    check_exact(y, x, w, bias, padding=(1, 2), dilation=(1, 2))


def test_flat_k_longer_than_its_table(emu, rng):
    # C = 2 with an 11x13 kernel: 286 flat K entries, more than the 256 decoded per block
    x = rand(rng, 1, 2, 15, 17)
    w = rand(rng, 9, 2, 11, 13)
    y, names = run_conv(emu, x, w, padding=(5, 6), boundary="edge")
    assert names[0].endswith("true, 1>")
    check_exact(y, x, w, padding=(5, 6), boundary="edge")


def test_depthwise_and_channel_multiplier(emu, rng):
    for layout in ("NCHW", "NHWC"):
        x = rand(rng, 2, 9, 8, 6) if layout == "NHWC" else rand(rng, 2, 6, 9, 8)
        w = rand(rng, 12, 3, 5, 1) if layout == "NHWC" else rand(rng, 12, 1, 3, 5)   # multiplier 2
        bias = rand(rng, 12)
        y, names = run_conv(emu, x, w, bias, padding=(1, 2), groups=6, layout=layout, boundary="reflect",
                            stride=(1, 2))
        assert names[0].startswith("conv_depthwise<")
        check_exact(y, x, w, bias, padding=(1, 2), groups=6, layout=layout, boundary="reflect", stride=(1, 2))


def test_cuboid_kernel_of_seed_000(emu, rng):
    # a (kh, kw, C) kernel over an (H, W, C) image is conv2d(x[None], k[None], layout="NHWC")[0, ..., 0]
    img = rand(rng, 12, 15, 3)
    k = rand(rng, 3, 3, 3)
    y, _ = run_conv(emu, img[None], k[None], layout="NHWC")
    ref, _ = reference(img[None], k[None], layout="NHWC")
    np.testing.assert_allclose(y[0, ..., 0], ref[0, ..., 0], atol=1e-5)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_bias_and_activations(emu, rng, activation):
    x = rand(rng, 2, 8, 7, 9)
    w = rand(rng, 10, 8, 3, 3)
    bias = rand(rng, 10)
    y, _ = run_conv(emu, x, w, bias, padding=1, activation=activation)
    check_exact(y, x, w, bias, padding=1, activation=activation)


def test_uint8_saturating_and_clip(emu, rng):
    x = rng.integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    w = rand(rng, 4, 3, 3, 3)
    y, names = run_conv(emu, x, w, padding=1, layout="NHWC", out_dtype=np.uint8)
    assert names[0].startswith("conv_igemm<unsigned char, unsigned char, float,")
    ref, _ = reference(x, w, padding=1, layout="NHWC")
    expect = np.clip(np.rint(ref), 0, 255)
    assert np.abs(y.astype(np.int64) - expect).max() <= 1         # ties may round either way
    assert y.dtype == np.uint8 and (y == 0).any() and (y == 255).any()
    y, _ = run_conv(emu, x, w, padding=1, layout="NHWC", clip=(-5.0, 5.0))
    np.testing.assert_allclose(y, np.clip(ref, -5, 5), atol=1e-3)


def test_float64_and_int16_result(emu, rng):
    x = rng.standard_normal((2, 5, 8, 8))
    w = rng.standard_normal((40, 5, 3, 3))
    y, names = run_conv(emu, x, w, padding=1, stride=2)
    assert names[0].startswith("conv_igemm<double, double, double, 128, 64, 8, 4, 2,")
    check_exact(y, x, w, padding=1, stride=2)
    y16, _ = run_conv(emu, (x * 1000).astype(np.float64), w, padding=1, out_dtype=np.int16)
    ref, _ = reference(x * 1000, w, padding=1)
    assert y16.dtype == np.int16
    assert np.abs(y16 - np.clip(np.rint(ref), -32768, 32767)).max() <= 1


@pytest.mark.parametrize("layout", ["NCL", "NLC"])
def test_conv1d(emu, rng, layout):
    x = rand(rng, 3, 50, 12) if layout == "NLC" else rand(rng, 3, 12, 50)
    w = rand(rng, 20, 5, 12) if layout == "NLC" else rand(rng, 20, 12, 5)
    y, _ = run_conv(emu, x, w, nd=1, layout=layout, padding="same", dilation=2, boundary="wrap")
    # the 1-D reference directly: pad d*(k-1) = 8 total, 4 before, wrapped
    xc = np.moveaxis(x, -1, 1) if layout == "NLC" else x
    wc = np.moveaxis(w, -1, 1) if layout == "NLC" else w
    ref = conv_nchw(xc, wc, padding=[(4, 4)], dilation=2, boundary="wrap")
    if layout == "NLC":
        ref = np.moveaxis(ref, 1, -1)
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_strided_input_and_poisoned_strided_out(emu, rng):
    runtime, _ = emu
    base = rand(rng, 2, 16, 12, 20)
    x = base[:, ::2, :, ::2]                                    # not contiguous
    w = rand(rng, 12, 8, 3, 3)
    big = runtime.xp.empty((2, 12, 12, 20), np.float32)         # NaN-poisoned
    out = big[..., ::2]
    y, _ = run_conv(emu, x, w, padding=1, out=out)
    assert y is out
    check_exact(out, np.ascontiguousarray(x), w, padding=1)
    assert np.isnan(big[..., 1::2]).all()                       # the gaps are untouched


def test_nan_stays_in_its_windows(emu, rng):
    x = rand(rng, 1, 8, 12, 12)
    x[0, 3, 6, 6] = np.nan
    w = rand(rng, 16, 8, 3, 3)
    y, _ = run_conv(emu, x, w, padding=1)
    bad = np.isnan(y[0, 0])
    assert bad[5:8, 5:8].all() and bad.sum() == 9


def test_unbatched_input(emu, rng):
    x = rand(rng, 4, 9, 9)
    w = rand(rng, 8, 4, 3, 3)
    y, _ = run_conv(emu, x, w, padding=1)
    assert y.shape == (8, 9, 9)
    check_exact(y[None], x[None], w, padding=1)


# --- tensor cores ---------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["tf32", "float16"])
@pytest.mark.parametrize("o,layout", [(16, "NCHW"), (40, "NHWC"), (64, "NCHW"), (130, "NHWC")])
def test_tensor_cores_within_stated_bound(emu, rng, precision, o, layout):
    c = 20                                                      # chunked (tf32) or flat (fp16) K
    x = rand(rng, 1, 9, 10, c) if layout == "NHWC" else rand(rng, 1, c, 9, 10)
    w = rand(rng, o, 3, 3, c) if layout == "NHWC" else rand(rng, o, c, 3, 3)
    bias = rand(rng, o)
    y, names = run_conv(emu, x, w, bias, padding=1, layout=layout, precision=precision, activation="relu",
                        boundary="symmetric")
    bn = cuda_conv._pick(cuda_conv.TC_BN, o)
    assert names[0].startswith(f"conv_igemm_tc<float, float, {cuda_conv.TC_PREC_IDS[precision]}, {bn},")
    ref, mag = reference(x, w, bias, padding=1, layout=layout, activation="relu", boundary="symmetric")
    err = np.abs(y - ref)
    assert (err <= tc_bound(mag, 9 * c, ref)).all()
    # the operands really were rounded: the error is far above float32 FMA arithmetic's
    assert (err / (mag + 1e-30)).max() > 2.0**-16


def test_float16_input_uses_tensor_cores_by_default(emu, rng):
    x = rand(rng, 2, 6, 8, 8, dtype=np.float16)
    w = rand(rng, 32, 6, 3, 3, dtype=np.float16)
    y, names = run_conv(emu, x, w, padding=1, stride=2, dilation=1)
    assert names[0].startswith("conv_igemm_tc<gc_half, gc_half, 1, 32, false, true,")
    assert y.dtype == np.float16
    ref, mag = reference(x, w, padding=1, stride=2)
    assert (np.abs(y.astype(np.float64) - ref) <= tc_bound(mag, 54, ref, np.float16)).all()
    y32, names = run_conv(emu, x, w, padding=1, stride=2, precision="float32")
    assert names[0].startswith("conv_igemm<gc_half, gc_half, float,")


def test_tensor_core_float16_overflow_is_inf(emu, rng):
    # float32 values past binary16's range become inf under precision="float16" (documented)
    x = rand(rng, 1, 8, 4, 4) * 1e5
    w = np.abs(rand(rng, 16, 8, 1, 1))
    y, _ = run_conv(emu, x, w, precision="float16")
    assert np.isinf(y).any()
    y, _ = run_conv(emu, x, w, precision="tf32")
    assert np.isfinite(y).all()


def test_launch_limits_are_explained():
    from gpuconv.plan import conv_plan
    from gpuconv.backends.cuda.blocks import ArrayView

    p = conv_plan(2, (1, 1, 8, 8), np.float32, np.broadcast_to(np.float32(1), (2**24, 1, 1, 1)), None, 1, 0, 1, 1,
                  "constant", None, "NCHW", None, None, None)
    v = ArrayView.of((1, 1, 8, 8), (256, 256, 32, 4), np.float32, 0)
    yv = ArrayView.of((1, 2**24, 8, 8), (2**30, 64, 8, 1), np.float32, 0)
    with pytest.raises(ValueError, match="channels per group"):
        cuda_conv.plan_conv_launch(v, yv, p, "fma")


# --- the public API's CUDA leg (compute._conv_cuda) over the emulated backend -------------------


def test_api_cuda_leg_out_unbatched_and_empty(cuda_api, emu, rng):
    x = rand(rng, 6, 10, 10)
    w = rand(rng, 20, 6, 3, 3)
    b = rand(rng, 20)
    out = emu[0].xp.empty((20, 5, 5), np.float32)               # NaN-poisoned, unbatched
    assert cuda_api.conv2d(x, w, b, stride=2, padding="same", out=out, backend="cuda") is out
    check_exact(out[None], x[None], w, b, stride=2, padding=1)   # "same": 1 before, 1 after
    y = cuda_api.conv1d(rand(rng, 0, 4, 9), rand(rng, 3, 4, 2), backend="cuda")
    assert y.shape == (0, 3, 8)
    with pytest.raises(ValueError, match="groups=3 does not divide"):
        cuda_api.conv2d(x, w, groups=3, backend="cuda")
