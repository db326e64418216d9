"""The CUDA backend's methods beyond the direct kernels, on the CPU emulator (tests/cuda_emu):
the fused separable kernel and its unfused passes, the long-row kernel, the cuFFT path
(written against an array module, run here with numpy.fft), and the "auto" cost model.
Each is checked against the float64 reference; GPU runs are in tests/test_cuda_gpu.py."""
import shutil

import numpy as np
import pytest

from cuda_emu.harness import check, run
from gpuconv import kernels
from gpuconv.plan import correlate_plan
from gpuconv.backends.cuda import cost as cuda_cost
from gpuconv.backends.cuda import fft as cuda_fft
from reference import correlate as ref_correlate

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")
BOUNDARIES = ["constant", "edge", "reflect", "symmetric", "wrap"]


def low_rank(rng, shape, rank):
    """A random kernel that is exactly a sum of `rank` outer products."""
    return sum(np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1])) for _ in range(rank))


# --- the fused separable kernel ----------------------------------------------------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_separable_gaussian_every_boundary(emu, rng, boundary):
    x = rng.standard_normal((2, 70, 150)).astype(np.float32)
    k = kernels.gaussian(11, 2.0)
    y, names = run(emu, x, k, "same", boundary=boundary, cval=0.3, method="separable")
    assert names == ["correlate_separable<float, float, float, 11, 11, 1, %d, 4, 1, int>"
                     % ["constant", "edge", "reflect", "symmetric", "wrap"].index(boundary)]
    check(y, x, k, mode="same", boundary=boundary, cval=0.3)


@pytest.mark.parametrize("mode", ["full", "valid"])
@pytest.mark.parametrize("rank", [2, 4])
def test_separable_low_rank_sums_terms(emu, rng, mode, rank):
    x = rng.standard_normal((1, 45, 140)).astype(np.float32)
    k = low_rank(rng, (5, 7), rank).astype(np.float32)
    y, names = run(emu, x, k, mode, boundary="reflect", method="separable")
    assert names[-1].startswith("correlate_separable<float, float, float, 5, 7, 1, 2,")
    assert names[-1].endswith(f", {rank}, int>")
    check(y, x, k, mode=mode, boundary="reflect")


def test_separable_rgb_uint8_saturates(emu, rng):
    # channels-last uint8: the row pass steps whole pixels; out uint8 saturates
    x = rng.integers(0, 256, (40, 133, 3), dtype=np.uint8)
    k = np.outer([1.0, 2.0, 1.0], [-1.0, 3.0, -1.0]).astype(np.float32)
    y, names = run(emu, x, k, "same", boundary="edge", axes=(0, 1), out_dtype=np.uint8, method="separable")
    assert names == ["correlate_separable<unsigned char, unsigned char, float, 3, 3, 3, 1, 4, 1, int>"]
    ref = ref_correlate(x, k, "same", "edge", axes=(0, 1))
    np.testing.assert_array_equal(y, np.clip(np.rint(ref), 0, 255).astype(np.uint8))


def test_separable_float64(emu, rng):
    x = rng.standard_normal((3, 33, 129))
    k = np.outer(rng.standard_normal(9), rng.standard_normal(4))
    y, names = run(emu, x, k, "same", boundary="symmetric", method="separable")
    assert names[-1].startswith("correlate_separable<double, double, double, 9, 4,")
    check(y, x, k, np.float64, mode="same", boundary="symmetric")


# --- separable as 1-D passes (where the fused kernel does not apply) ----------------------------

@pytest.mark.parametrize("boundary", ["constant", "wrap"])
def test_separable_passes_with_stride_and_dilation(emu, rng, boundary):
    x = rng.standard_normal((2, 41, 57)).astype(np.float32)
    k = np.outer(rng.standard_normal(4), rng.standard_normal(5)).astype(np.float32)
    kw = dict(boundary=boundary, cval=1.25, stride=(2, 3), dilation=(2, 1))
    y, names = run(emu, x, k, "full", method="separable", **kw)
    assert not any(n.startswith("correlate_separable") for n in names) and len(names) == 2
    check(y, x, k, mode="full", **kw)


def test_separable_passes_for_high_rank_sum_then_finish(emu, rng):
    # rank 6 > 4 terms: 12 passes into float32, summed, then one finishing pass to int16
    x = (rng.standard_normal((1, 30, 40)) * 50).astype(np.float32)
    k = low_rank(rng, (6, 6), 6).astype(np.float32)
    y, names = run(emu, x, k, "same", boundary="edge", out_dtype=np.int16, clip=(-300, 300), method="separable")
    assert len(names) == 13
    ref = np.clip(ref_correlate(x, k, "same", "edge"), -300, 300)
    assert np.abs(y.astype(np.float64) - ref).max() <= 1.0


def test_separable_passes_three_d_constant_fill(emu, rng):
    # the fill value, filtered by the passes already done, must be scaled by their tap sums
    x = rng.standard_normal((2, 9, 10, 11)).astype(np.float32)
    k = np.einsum("i,j,k->ijk", rng.standard_normal(3), rng.standard_normal(4), rng.standard_normal(2))
    y, names = run(emu, x, k, "full", boundary="constant", cval=-2.0, method="separable")
    assert len(names) == 3
    check(y, x, k, mode="full", boundary="constant", cval=-2.0)


# --- long rows ------------------------------------------------------------------------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_rows_kernel_every_boundary(emu, rng, boundary):
    x = rng.standard_normal(5000).astype(np.float32)
    k = rng.standard_normal(3).astype(np.float32)
    y, names = run(emu, x, k, "same", boundary=boundary, cval=2.0)
    assert names == [f"correlate_rows<float, float, float, {BOUNDARIES.index(boundary)}, int>"]
    check(y, x, k, mode="same", boundary=boundary, cval=2.0)


@pytest.mark.parametrize("ksize", [8, 101, 513, 1001])
def test_rows_kernel_long_kernels_in_chunks(emu, rng, ksize):
    # 513 and 1001 taps take two chunks of 512; 101 ends mid-group of 8
    x = rng.standard_normal((2, 4500)).astype(np.float32)
    k = rng.standard_normal(ksize).astype(np.float32)
    for mode in ("full", "valid"):
        y, names = run(emu, x, k, mode, boundary="reflect")
        assert names[-1].startswith("correlate_rows<float, float, float, 2,")
        check(y, x, k, mode=mode, boundary="reflect")


def test_rows_kernel_dtypes_and_strided_out(emu, rng):
    x = rng.integers(0, 256, 3000, dtype=np.uint8)
    k = np.array([0.25, 0.5, 0.25, 0.125], np.float32)
    out = np.full(6000, 77, dtype=np.uint8)[::2]
    y, names = run(emu, x, k, "same", boundary="edge", out=out)
    assert names[-1].startswith("correlate_rows<unsigned char, unsigned char, float, 1,")
    assert y is out and np.all(np.full(6000, 77, np.uint8)[1::2] == 77)
    ref = ref_correlate(x, k, "same", "edge")
    np.testing.assert_array_equal(y, np.clip(np.rint(ref), 0, 255).astype(np.uint8))
    xd = rng.standard_normal(2500)
    yd, names = run(emu, xd, rng.standard_normal(40), "full", boundary="wrap")
    assert names[-1].startswith("correlate_rows<double, double, double, 4,")


def test_rows_kernel_keeps_nan_local(emu, rng):
    x = rng.standard_normal(4096).astype(np.float32)
    x[1000] = np.nan
    x[3000] = np.inf
    k = rng.standard_normal(21).astype(np.float32)
    y, _ = run(emu, x, k, "same")
    ref = ref_correlate(x, k, "same")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(y[finite], ref[finite], atol=1e-4)


# --- FFT ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_fft_every_boundary_and_mode(emu, rng, boundary, mode):
    x = rng.standard_normal((3, 40, 90)).astype(np.float32)
    k = rng.standard_normal((13, 9)).astype(np.float32)
    y, names = run(emu, x, k, mode, boundary=boundary, cval=-0.5, method="fft")
    assert len(names) == 1  # only the finishing pass is a kernel launch
    check(y, x, k, mode=mode, boundary=boundary, cval=-0.5)


def test_fft_strides_dilation_axes_three_d(emu, rng):
    x = rng.standard_normal((7, 12, 3, 14, 15))
    k = rng.standard_normal((3, 4, 5))
    kw = dict(stride=(1, 2, 3), dilation=(2, 1, 2), axes=(1, 3, 4), boundary="symmetric")
    y, _ = run(emu, x, k, "full", method="fft", **kw)
    check(y, x, k, np.float64, mode="full", **kw)


def test_fft_blocks_many_and_chunks_the_batch(emu, rng, monkeypatch):
    # a long signal cut into overlap-save blocks, and a batch processed in several chunks
    x = rng.standard_normal((5, 20000)).astype(np.float32)
    k = rng.standard_normal(300).astype(np.float32)
    geo = cuda_fft.fft_blocks(correlate_plan(x.shape, x.dtype, k, "same", "constant", 0.0, 1, 1, None, None, None,
                                             "fft"))
    assert geo[0][2] > 1
    monkeypatch.setattr(cuda_fft, "default_workspace", lambda xp: 200_000)
    y, _ = run(emu, x, k, "same", boundary="wrap", method="fft")
    check(y, x, k, mode="same", boundary="wrap")


def test_fft_integer_out_and_half_input(emu, rng):
    x = (rng.standard_normal((2, 30, 31)) * 40).astype(np.float16)
    k = rng.standard_normal((6, 6)).astype(np.float32)
    y, _ = run(emu, x, k, "same", boundary="edge", out_dtype=np.int8, method="fft")
    ref = ref_correlate(x.astype(np.float64), k, "same", "edge")
    assert y.dtype == np.int8
    assert np.abs(y.astype(np.float64) - np.clip(np.rint(ref), -128, 127)).max() <= 1.0


def test_fft_recomputes_images_with_nan_directly(emu, rng):
    # a transform would spread the NaN over its whole block; the image is redone directly
    x = rng.standard_normal((3, 40, 50)).astype(np.float32)
    x[1, 20, 25] = np.nan
    k = rng.standard_normal((5, 5)).astype(np.float32)
    y, names = run(emu, x, k, "same", method="fft")
    assert any(n.startswith("correlate_tiled") for n in names)
    ref = ref_correlate(x, k, "same")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert np.isnan(y[1]).sum() == 25
    np.testing.assert_allclose(y[np.isfinite(ref)], ref[np.isfinite(ref)], atol=1e-4)


# --- auto: the cost model's choices on the BENCH workloads ------------------------------------------

def _plan(shape, kernel, mode="same", dtype=np.float32):
    return correlate_plan(shape, dtype, np.asarray(kernel), mode, "constant", 0.0, 1, 1, None, None, None, "auto")


def test_auto_choices_on_bench_workloads(rng):
    g1 = (32, 3, 1024, 1024)
    for k in (3, 5, 7, 11):  # G1: random (full rank) kernels
        assert cuda_cost.choose_cuda(_plan(g1, np.ones((k, k))), np.dtype(np.float32), k) == "direct"
    assert cuda_cost.choose_cuda(_plan(g1, kernels.gaussian(11, 2.0)), np.dtype(np.float32), 1) == "separable"
    for k in (63, 127):  # G5: one 4096^2 image, random kernels
        assert cuda_cost.choose_cuda(_plan((4096, 4096), np.ones((k, k))), np.dtype(np.float32), k) == "fft"
    g6 = (2**26,)  # G6: one long signal
    assert cuda_cost.choose_cuda(_plan(g6, np.ones(3)), np.dtype(np.float32), None) == "direct"
    assert cuda_cost.choose_cuda(_plan(g6, np.ones(1001)), np.dtype(np.float32), None) == "fft"


def test_auto_runs_the_chosen_method(emu, rng, monkeypatch):
    # a problem small enough to emulate is all launch overhead; without it the model's
    # choice for an 11 x 11 Gaussian is the separable kernel, as on large images
    constants = dict(cuda_cost.cuda_constants(), launch=0.0)
    monkeypatch.setattr(cuda_cost, "cuda_constants", lambda: constants)
    cuda_cost.choose_cuda.cache_clear()
    try:
        x = rng.standard_normal((2, 64, 200)).astype(np.float32)
        k = kernels.gaussian(11, 2.0)
        y, names = run(emu, x, k, "same", boundary="reflect", method="auto")
        assert names[-1].startswith("correlate_separable")
        check(y, x, k, mode="same", boundary="reflect")
    finally:
        cuda_cost.choose_cuda.cache_clear()


def test_cost_model_constants_say_where_they_come_from():
    c = cuda_cost.cuda_constants()
    assert {"device", "measured", "source", "bandwidth", "launch", "flop_rate"} <= set(c)
    assert set(c["flop_rate"]) == {"tiled", "separable", "rows", "generic"}
