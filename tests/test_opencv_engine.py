"""The OpenCV engine of the numpy backend, forced on (against the float64 reference, every
boundary, mode, dtype and layout it takes), and hidden (the numpy engines serve alone)."""
import numpy as np
import pytest

import gpuconv
from gpuconv import filters
from gpuconv.backends.numpy import cost, opencv
from gpuconv.backends.numpy.backend import NumpyBackend
from gpuconv.dtypes import finish
from gpuconv.plan import correlate_plan
from reference import correlate as ref_correlate
from reference import tolerance

needs_cv2 = pytest.mark.skipif(not opencv.available(), reason="OpenCV (the opencv extra) is not installed")
BOUNDARIES = ["constant", "edge", "reflect", "symmetric", "wrap"]


def forced(x, k, mode="same", boundary="constant", cval=0.0, axes=None, out_dtype=None, clip=None, method="direct"):
    """The opencv engine on this call (asserting it takes it), and the plan."""
    plan = correlate_plan(x.shape, x.dtype, np.asarray(k), mode, boundary, cval, 1, 1, axes, out_dtype, clip, method)
    assert opencv.supports(plan)
    terms = None
    if method == "separable":
        from gpuconv.decompose import separable_terms

        terms = separable_terms(np.asarray(k, np.float64), 1e-12)
    return opencv.correlate(x, np.asarray(k), plan, terms), plan


@needs_cv2
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("kshape", [(3, 3), (4, 2), (1, 7), (15, 15)])
def test_every_boundary_mode_and_even_kernel(rng, boundary, mode, kshape):
    x = rng.standard_normal((2, 23, 31)).astype(np.float32)
    k = rng.standard_normal(kshape)
    for cval in (0.0, -1.25):
        y, _ = forced(x, k, mode, boundary, cval)
        ref = ref_correlate(x, k, mode, boundary, cval)
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=0, atol=tolerance(np.float32, x, k))


@needs_cv2
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_borders_wider_than_the_image(rng, boundary):
    x = rng.standard_normal((3, 4, 5)).astype(np.float64)
    k = rng.standard_normal((9, 11))
    y, _ = forced(x, k, "same", boundary, 0.5)
    np.testing.assert_allclose(y, ref_correlate(x, k, "same", boundary, 0.5), rtol=0, atol=1e-12)


@needs_cv2
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float16", "int8", "int32", "float64"])
def test_input_dtypes_and_channels_last(rng, dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    x = rng.standard_normal((2, 20, 30, 3)) * 50 + 60
    x = np.clip(x, info.min, info.max).astype(dtype) if info else x.astype(dtype)
    k = rng.standard_normal((5, 3))
    y, plan = forced(x, k, "same", "reflect", axes=(1, 2))
    ref = ref_correlate(x, k, "same", "reflect", axes=(1, 2))
    assert y.dtype == plan.result_dtype
    rtol = 2**-10 if dtype == "float16" else 0
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=rtol, atol=tolerance(dtype, x, k) * 4)


@needs_cv2
def test_one_d_signals_rows_and_stereo(rng):
    rows = rng.standard_normal((6, 500)).astype(np.float32)
    k = rng.standard_normal(31)
    y, _ = forced(rows, k, "full", "symmetric")
    np.testing.assert_allclose(y, ref_correlate(rows, k, "full", "symmetric"), rtol=0, atol=tolerance(np.float32, rows, k))
    stereo = rng.standard_normal((800, 2)).astype(np.float32)
    y, _ = forced(stereo, k, "same", "wrap", axes=0)
    np.testing.assert_allclose(y, ref_correlate(stereo, k, "same", "wrap", axes=0), rtol=0,
                               atol=tolerance(np.float32, stereo, k))


@needs_cv2
def test_uint8_out_clip_and_saturation(rng):
    x = rng.integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    k = rng.standard_normal((3, 3)) * 2
    y, _ = forced(x, k, "same", "edge", axes=(1, 2), out_dtype=np.uint8, clip=(10, 240))
    ref = np.clip(np.rint(np.clip(ref_correlate(x, k, "same", "edge", axes=(1, 2)), 10, 240)), 0, 255)
    assert y.dtype == np.uint8 and np.abs(y.astype(int) - ref).max() <= 1   # float32 vs float64 at .5


@needs_cv2
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_opencv_integer_output_is_taken_only_where_bit_identical(rng, dtype):
    """Integer taps with sums below 2**24: OpenCV's own saturating output equals gpuconv's
    epilogue on the float sums, bit for bit; anything else goes through the float path."""
    import cv2

    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, (3, 64, 80, 3), dtype=dtype, endpoint=True)
    for k in [gpuconv.kernels.sharpen(), gpuconv.kernels.get("sobel:left"), gpuconv.kernels.laplacian(),
              gpuconv.kernels.emboss(), rng.integers(-3, 4, (5, 5)).astype(np.float32)]:
        native = opencv._exact_integer(np.asarray(k, np.float32), np.dtype(dtype))
        for img in x:
            float_path = finish(cv2.filter2D(img, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT_101), np.dtype(dtype))
            if native:
                assert np.array_equal(cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT_101), float_path)
        y, _ = forced(x, k, "same", "reflect", axes=(1, 2), out_dtype=dtype)
        assert np.array_equal(y, np.stack([finish(cv2.filter2D(i, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT_101),
                                                  np.dtype(dtype)) for i in x]))
    assert not opencv._exact_integer(np.full((3, 3), 0.5, np.float32), np.dtype(np.uint8))


@needs_cv2
@pytest.mark.parametrize("kshape, method", [((3, 3), "direct"), ((15, 15), "direct"), ((5, 5), "separable")])
def test_nan_and_inf_stay_where_direct_summation_puts_them(kshape, method):
    # a 15x15 kernel filters by DFT, the 3x3 has zero taps, sepFilter2D runs sums along rows
    x = np.ones((40, 70), np.float32)
    x[20, 35] = np.nan
    x[0, 69] = np.inf
    k = np.ones(kshape)
    if method == "direct":
        k[0, 0] = 0.0
    y, _ = forced(x, k, "same", method=method)
    ref = ref_correlate(x, k, "same")
    assert np.array_equal(np.isnan(y), np.isnan(ref)) and np.array_equal(np.isinf(y), np.isinf(ref))


@needs_cv2
def test_direct_filter2d_without_zero_taps_places_nan_and_inf_exactly(rng, monkeypatch):
    """Why the engine skips its finiteness check there: filter2D's direct sums (up to 11x11
    taps, none zero) put NaN and inf exactly where direct summation does."""
    monkeypatch.setattr(opencv, "_direct", lambda *a: pytest.fail("recomputed where no check is needed"))
    for k in (1, 2, 3, 5, 8, 11):
        for boundary in ("constant", "edge", "reflect", "symmetric"):
            x = rng.standard_normal((2, 30, 41)).astype(np.float32)
            for _ in range(4):
                x[rng.integers(2), rng.integers(30), rng.integers(41)] = rng.choice([np.nan, np.inf, -np.inf])
            w = rng.standard_normal((k, max(1, k - 1)))
            w[w == 0] = 0.5
            y, _ = forced(x, w, "same", boundary)
            with np.errstate(invalid="ignore"):
                ref = ref_correlate(x, w, "same", boundary)
            for test in (np.isnan, np.isposinf, np.isneginf):
                assert np.array_equal(test(y), test(ref)), (k, boundary)


@needs_cv2
def test_auto_takes_opencv_on_images_and_keeps_separable_kernels_exact():
    x = np.random.default_rng(0).standard_normal((24, 512, 512)).astype(np.float32)
    plan = correlate_plan(x.shape, x.dtype, np.ones((5, 5)), "same", "constant", 0.0, 1, 1, None, None, None, "auto")
    assert NumpyBackend().resolve_method(plan, np.random.default_rng(1).standard_normal((5, 5)))[0] == "opencv"
    ramp = np.tile(np.arange(5.0), (5, 1))
    assert float(filters.sobel(ramp, "right")[2, 2]) == 8.0     # dyadic factors: exact


def test_without_opencv_the_numpy_engines_serve(rng, monkeypatch):
    monkeypatch.setattr(opencv, "available", lambda: False)
    cost.choose_numpy.cache_clear()
    try:
        x = rng.standard_normal((4, 64, 64)).astype(np.float32)
        k = rng.standard_normal((5, 5))
        for method in ("auto", "direct"):
            plan = correlate_plan(x.shape, x.dtype, k, "same", "reflect", 0.0, 1, 1, None, None, None, method)
            assert NumpyBackend().resolve_method(plan, k)[0] != "opencv"
            y = gpuconv.correlate(x, k, "same", boundary="reflect", method=method)
            np.testing.assert_allclose(y, ref_correlate(x, k, "same", "reflect"), rtol=0, atol=tolerance(np.float32, x, k))
        from gpuconv import doctor

        assert dict(doctor.environment())["cpu engines"].startswith("toeplitz, taps, separable, fft (OpenCV not")
    finally:
        cost.choose_numpy.cache_clear()
