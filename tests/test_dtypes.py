"""The dtype policy: compute dtypes, result dtypes, rounding half to even, saturation, clip."""
import numpy as np
import pytest

import gpuconv
from conftest import host, on
from gpuconv.dtypes import finish, integer_bounds
from reference import correlate as ref_correlate


@pytest.mark.parametrize("dtype,result", [
    (np.float16, np.float16), (np.float32, np.float32), (np.float64, np.float64), (np.uint8, np.float32),
    (np.int16, np.float32), (np.uint16, np.float32), (np.bool_, np.float32), (np.int32, np.float64),
    (np.int64, np.float64), (np.uint64, np.float64),
])
def test_result_dtype(backend, dtype, result):
    x = (np.arange(30) % 7).reshape(5, 6).astype(dtype)
    y = gpuconv.correlate(on(backend, x), on(backend, np.ones((2, 2))), "same")
    assert host(y).dtype == result
    np.testing.assert_allclose(host(y), ref_correlate(x.astype(np.float64), np.ones((2, 2)), "same"), rtol=1e-3)


def test_float64_kernel_does_not_promote_float32_images(rng):
    y = gpuconv.correlate(rng.random((5, 5)).astype(np.float32), [[0.1, 0.2], [0.3, 0.4]])
    assert y.dtype == np.float32


def test_rounding_half_to_even_and_saturation():
    y = finish(np.array([-1.5, -0.5, 0.5, 1.5, 2.5, 254.5, 255.5, 1e9, -1e9, np.inf, -np.inf, np.nan]),
               np.dtype(np.uint8))
    assert y.tolist() == [0, 0, 0, 2, 2, 254, 255, 255, 0, 255, 0, 0]
    y = finish(np.array([-129.0, -128.5, 127.5, 1e30], dtype=np.float32), np.dtype(np.int8))
    assert y.tolist() == [-128, -128, 127, 127]


@pytest.mark.parametrize("int_type", [np.int32, np.uint32, np.int64, np.uint64])
@pytest.mark.parametrize("float_type", [np.float32, np.float64])
def test_wide_integer_saturation_never_wraps(int_type, float_type):
    info = np.iinfo(int_type)
    lo, hi = integer_bounds(np.dtype(int_type), np.dtype(float_type))
    assert int(hi) <= info.max and int(lo) >= info.min
    y = finish(np.array([1e30, -1e30], dtype=float_type), np.dtype(int_type))
    assert int(y[0]) > info.max // 2 and int(y[1]) == info.min


def test_uint8_image_sharpen_saturates(backend, rng):
    x = rng.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    y = host(gpuconv.correlate(on(backend, x), on(backend, gpuconv.kernels.sharpen()), "same", axes=(1, 2),
                               boundary="edge", out_dtype=np.uint8))
    ref = ref_correlate(x, gpuconv.kernels.sharpen(), "same", "edge", axes=(1, 2))
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, np.clip(np.rint(ref), 0, 255).astype(np.uint8))


def test_clip_before_cast(backend, rng):
    x = rng.standard_normal((10, 10)).astype(np.float32)
    y = host(gpuconv.correlate(on(backend, x), on(backend, np.ones((3, 3))), "same", clip=(-0.5, 1.0)))
    ref = np.clip(ref_correlate(x, np.ones((3, 3)), "same"), -0.5, 1.0)
    assert y.min() >= -0.5 and y.max() <= 1.0
    np.testing.assert_allclose(y, ref, atol=1e-5)
    y = host(gpuconv.correlate(on(backend, x * 100), on(backend, np.ones((3, 3))), "same", clip=(0, None),
                               out_dtype=np.int16))
    np.testing.assert_array_equal(y, np.clip(np.rint(np.clip(ref_correlate(x * 100, np.ones((3, 3)), "same"), 0, None)),
                                             -32768, 32767))


def test_float16_computes_in_float32(rng):
    x = rng.standard_normal((16, 16)).astype(np.float16)
    k = rng.standard_normal((5, 5)).astype(np.float16)
    y = gpuconv.correlate(x, k, "same")
    ref = ref_correlate(x, k, "same")
    assert y.dtype == np.float16
    # float32 arithmetic then one rounding to float16: within float16's half-ulp of the reference
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=2 ** -10, atol=1e-3)
