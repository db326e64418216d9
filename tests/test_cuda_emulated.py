"""The CUDA backend end to end (planning, launch parameters, the real kernels_cuda/ sources)
on the CPU through the fiber emulator in tests/cuda_emu, against the float64 reference.

This runs everywhere g++ does, so CI checks the kernels' indexing, tiling, boundaries,
folds, dtypes and epilogues without a GPU. It does not replace the GPU runs (tests marked
gpu): speed, the memory model and real compilation for the device are checked only there.
"""
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cuda_emu import harness
from cuda_emu.harness import check
from gpuconv.plan import correlate_plan
from gpuconv.backends.cuda import correlate_plan as cuda_params
from gpuconv.backends.numpy.backend import NumpyBackend
from reference import correlate as ref_correlate

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")
BOUNDARIES = ["constant", "edge", "reflect", "symmetric", "wrap"]


def run(emu, x, k, mode="same", **kw):
    """(result, name of the last kernel launched) of the direct method on the emulator."""
    y, names = harness.run(emu, x, k, mode, **kw)
    return y, names[-1]


# --- the tiled fast path -----------------------------------------------------------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_tiled_every_boundary_and_mode(emu, rng, boundary, mode):
    # 150 x 300: interior tiles (16-byte loads) and border tiles on every side
    x = rng.standard_normal((2, 150, 300)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    y, name = run(emu, x, k, mode, boundary=boundary, cval=0.75)
    assert name.startswith("correlate_tiled<float, float, float, 3, 3, 1,")
    check(y, x, k, mode=mode, boundary=boundary, cval=0.75)


@pytest.mark.parametrize("kshape", [(4, 2), (1, 5), (5, 1), (7, 7), (11, 11)])
def test_tiled_kernel_shapes(emu, rng, kshape):
    x = rng.standard_normal((1, 70, 133)).astype(np.float32)
    k = rng.standard_normal(kshape).astype(np.float32)
    y, name = run(emu, x, k, "same", boundary="symmetric")
    assert name.startswith(f"correlate_tiled<float, float, float, {kshape[0]}, {kshape[1]},")
    check(y, x, k, mode="same", boundary="symmetric")


def test_pad_wider_than_image(emu, rng):
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    k = rng.standard_normal((7, 7)).astype(np.float32)
    for boundary in BOUNDARIES:
        y, _ = run(emu, x, k, "full", boundary=boundary, cval=-1.5)
        check(y, x, k, mode="full", boundary=boundary, cval=-1.5)


def test_convolve_flips(emu, rng):
    x = rng.standard_normal((40, 50)).astype(np.float32)
    k = rng.standard_normal((3, 4)).astype(np.float32)
    y, _ = run(emu, x, k, "full", flip=True)
    check(y, x, k[::-1, ::-1], mode="full")


def test_one_d_rows_use_the_tiles(emu, rng):
    # 150 rows of the merged batch: enough rows for 64-row tiles
    x = rng.standard_normal((5, 30, 301)).astype(np.float32)
    k = rng.standard_normal(7).astype(np.float32)
    y, name = run(emu, x, k, "full", boundary="wrap")
    assert name.startswith("correlate_tiled<float, float, float, 1, 7,")
    check(y, x, k, mode="full", boundary="wrap")


# --- channels-last images: folded rows ---------------------------------------------------------

def test_rgb_uint8_sharpen_saturates_like_opencv(emu, rng):
    x = rng.integers(0, 256, (2, 40, 256, 3), dtype=np.uint8)
    k = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    y, name = run(emu, x, k, "same", boundary="edge", axes=(1, 2), out_dtype="uint8")
    assert name == "correlate_tiled<unsigned char, unsigned char, float, 3, 3, 3, 1, 8, int>"
    assert y.dtype == np.uint8
    ref = ref_correlate(x, k, "same", "edge", axes=(1, 2))
    np.testing.assert_array_equal(y, np.clip(np.rint(ref), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("channels", [2, 4])
def test_channels_last_float_reflect(emu, rng, channels):
    x = rng.standard_normal((2, 33, 45, channels)).astype(np.float32)
    k = rng.standard_normal((5, 3)).astype(np.float32)
    y, name = run(emu, x, k, "same", boundary="reflect", axes=(1, 2))
    assert f", 5, 3, {channels}, 2," in name
    check(y, x, k, mode="same", boundary="reflect", axes=(1, 2))


def test_channels_last_strided_goes_generic(emu, rng):
    x = rng.standard_normal((1, 30, 31, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    y, name = run(emu, x, k, "same", boundary="edge", stride=2, axes=(1, 2))
    assert name.startswith("correlate_generic<")
    check(y, x, k, mode="same", boundary="edge", stride=2, axes=(1, 2))


# --- the generic kernel ------------------------------------------------------------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_generic_stride_dilation(emu, rng, boundary):
    x = rng.standard_normal((2, 29, 41)).astype(np.float32)
    k = rng.standard_normal((3, 4)).astype(np.float32)
    y, name = run(emu, x, k, "full", boundary=boundary, cval=2.0, stride=(2, 3), dilation=(2, 1))
    assert name.startswith("correlate_generic<float, float, float,")
    check(y, x, k, mode="full", boundary=boundary, cval=2.0, stride=(2, 3), dilation=(2, 1))


def test_generic_three_d_kernel(emu, rng):
    x = rng.standard_normal((2, 7, 9, 11)).astype(np.float32)
    k = rng.standard_normal((3, 2, 4)).astype(np.float32)
    for mode in ("full", "same", "valid"):
        y, _ = run(emu, x, k, mode, boundary="wrap")
        check(y, x, k, mode=mode, boundary="wrap")


def test_generic_large_kernel(emu, rng):
    x = rng.standard_normal((40, 45)).astype(np.float32)
    k = rng.standard_normal((17, 17)).astype(np.float32)  # beyond the tiled taps
    y, name = run(emu, x, k, "same", boundary="reflect")
    assert name.startswith("correlate_generic<")
    check(y, x, k, mode="same", boundary="reflect")


# --- dtypes and the epilogue -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "float16", "float64", "int32", "bool"])
def test_input_dtypes_match_numpy_backend(emu, rng, dtype):
    x = (rng.standard_normal((2, 20, 37)) * 50).astype(dtype)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    y, _ = run(emu, x, k, "same", boundary="edge")
    plan = correlate_plan(x.shape, x.dtype, k, "same", "edge", 0.0, 1, 1, None, None, None, "direct")
    expect = NumpyBackend().correlate(x, k, plan)
    assert y.dtype == expect.dtype
    tol = 1e-2 if dtype == "float16" else 1e-9 if expect.dtype == np.float64 else 1e-4
    np.testing.assert_allclose(y.astype(np.float64), expect.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("out_dtype", ["uint8", "int16", "uint64", "int64", "float16"])
def test_out_dtypes_round_half_even_and_saturate(emu, rng, out_dtype):
    x = rng.standard_normal((1, 19, 23)).astype(np.float32) * 3e4
    x[0, 5, 5], x[0, 9, 9] = np.inf, -np.inf
    x[0, 0, 0] = np.nan
    k = np.array([[0.5, 0.5]], np.float32)          # halves: exercises round half to even
    y, _ = run(emu, x, k, "same", out_dtype=out_dtype, clip=(-1e4, None))
    plan = correlate_plan(x.shape, x.dtype, k, "same", "constant", 0.0, 1, 1, None, out_dtype, (-1e4, None),
                          "direct")
    with np.errstate(invalid="ignore"):
        expect = NumpyBackend().correlate(x, k, plan)
    np.testing.assert_array_equal(y, expect)


def test_nan_stays_in_its_window(emu, rng):
    x = rng.standard_normal((1, 80, 200)).astype(np.float32)
    x[0, 40, 100] = np.nan
    y, _ = run(emu, x, np.ones((3, 3), np.float32), "same")
    nan = np.isnan(y[0])
    assert nan[39:42, 99:102].all() and nan.sum() == 9


# --- layouts, strides, out= -----------------------------------------------------------------------

def test_negative_and_gapped_strides(emu, rng):
    base = rng.standard_normal((3, 60, 90)).astype(np.float32)
    x = base[:, ::-1, ::2]  # negative y stride, x stride 2: read in place, no copy
    k = rng.standard_normal((3, 5)).astype(np.float32)
    y, _ = run(emu, x, k, "same", boundary="edge")
    check(y, np.ascontiguousarray(x), k, mode="same", boundary="edge")


def test_axes_in_the_middle_and_many_batch_axes(emu, rng):
    x = rng.standard_normal((2, 3, 17, 2, 19, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    y, _ = run(emu, x, k, "same", boundary="symmetric", axes=(2, 4))
    check(y, x, k, mode="same", boundary="symmetric", axes=(2, 4))
    x4 = rng.standard_normal((2, 3, 2, 9, 3, 2, 10)).astype(np.float32)  # 4 batch axes: moved path
    y, _ = run(emu, x4, k, "same", boundary="wrap", axes=(3, 6))
    check(y, x4, k, mode="same", boundary="wrap", axes=(3, 6))


def test_out_with_strides_is_written_in_place(emu, rng):
    runtime, _ = emu
    x = rng.standard_normal((2, 30, 40)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    holder = runtime.xp.empty((2, 40, 30), np.float32)   # poisoned; the result goes in transposed
    out = holder.transpose(0, 2, 1)
    y, _ = run(emu, x, k, "same", out=out)
    assert y is out
    check(holder.transpose(0, 2, 1), x, k, mode="same")


def test_64_bit_index_instances(emu, rng, monkeypatch):
    # the Idx = long long instances, forced on a small problem (the > 2**31 case runs on a GPU)
    monkeypatch.setattr(cuda_params, "_index_type", lambda axes, fold: "long long")
    x = rng.standard_normal((2, 70, 140)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    y, name = run(emu, x, k, "same", boundary="reflect")
    assert name.endswith("long long>")
    check(y, x, k, mode="same", boundary="reflect")
    y, name = run(emu, x, k, "same", boundary="reflect", stride=2)
    assert name.startswith("correlate_generic<") and name.endswith("long long>")
    check(y, x, k, mode="same", boundary="reflect", stride=2)


# --- randomized differential test -------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_problems_match_reference(emu, data):
    h = data.draw(st.integers(1, 40), label="h")
    w = data.draw(st.integers(1, 70), label="w")
    kshape = data.draw(st.sampled_from([(3, 3), (2, 4), (1, 3)]), label="kshape")
    mode = data.draw(st.sampled_from(["full", "same", "valid"]), label="mode")
    boundary = data.draw(st.sampled_from(["constant", "reflect", "wrap"]), label="boundary")
    stride = data.draw(st.sampled_from([1, 1, 2, (1, 3)]), label="stride")
    dilation = data.draw(st.sampled_from([1, 1, 2]), label="dilation")
    seed = data.draw(st.integers(0, 2**31), label="seed")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, h, w)).astype(np.float32)
    k = rng.standard_normal(kshape).astype(np.float32)
    y, _ = run(emu, x, k, mode, boundary=boundary, cval=0.5, stride=stride, dilation=dilation)
    check(y, x, k, mode=mode, boundary=boundary, cval=0.5, stride=stride, dilation=dilation)
