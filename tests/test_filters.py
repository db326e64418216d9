"""Image filters against the core functions and a float64 reference."""
import numpy as np
import pytest

from gpuconv import filters, kernels
from reference import correlate as ref_correlate


@pytest.mark.parametrize("shape,channel_axis,axes", [((20, 24), -1, (0, 1)), ((20, 24, 3), -1, (0, 1)),
                                                      ((2, 20, 24, 3), -1, (1, 2)), ((3, 20, 24), 0, (1, 2)),
                                                      ((2, 20, 24), None, (1, 2))])
def test_apply_layouts_and_uint8_saturation(rng, shape, channel_axis, axes):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    y = filters.apply(img, "sharpen", channel_axis=channel_axis)
    ref = ref_correlate(img, kernels.sharpen(), "same", "edge", axes=axes)
    assert y.dtype == np.uint8 and y.shape == img.shape
    np.testing.assert_array_equal(y, np.clip(np.rint(ref), 0, 255))


@pytest.mark.parametrize("fn,kernel", [(filters.box_blur, kernels.box(3)), (filters.sharpen, kernels.sharpen()),
                                       (filters.outline, kernels.outline()), (filters.emboss, kernels.emboss()),
                                       (filters.laplacian, kernels.laplacian()),
                                       (lambda im, **kw: filters.gaussian_blur(im, 7, 1.5, **kw), kernels.gaussian(7, 1.5)),
                                       (lambda im, **kw: filters.sobel(im, "bottom", **kw), kernels.sobel("bottom"))])
def test_named_filters_are_their_kernels(rng, fn, kernel):
    img = rng.standard_normal((15, 17, 3)).astype(np.float32)
    np.testing.assert_allclose(fn(img), ref_correlate(img, kernel, "same", "edge", axes=(0, 1)), atol=1e-4)
    np.testing.assert_allclose(fn(img, boundary="wrap"), ref_correlate(img, kernel, "same", "wrap", axes=(0, 1)),
                               atol=1e-4)


def test_sobel_magnitude_is_the_hypot_of_both_passes(rng):
    img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    gx = ref_correlate(img, kernels.sobel("left"), "same", "edge", axes=(0, 1))
    gy = ref_correlate(img, kernels.sobel("top"), "same", "edge", axes=(0, 1))
    y = filters.sobel_magnitude(img)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, np.clip(np.rint(np.hypot(gx, gy)), 0, 255))
    f = filters.sobel_magnitude(img.astype(np.float32) / 255)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, np.hypot(gx, gy) / 255, atol=1e-5)


def test_out_dtype_and_array_kernel(rng):
    img = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    y = filters.apply(img, [[1.0, -1.0]], out_dtype=np.float32)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref_correlate(img, [[1.0, -1.0]], "same", "edge"), atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"channel_axis=5 is out of range"):
        filters.apply(np.ones((4, 4, 3)), "box", channel_axis=5)
    with pytest.raises(ValueError, match=r"image filters take a 2-D kernel"):
        filters.apply(np.ones((4, 4)), np.ones(3))
    with pytest.raises(ValueError, match=r"unknown kernel 'blurr'"):
        filters.apply(np.ones((4, 4)), "blurr")
    with pytest.raises(ValueError, match=r"image has 1 dimension"):
        filters.apply(np.ones(4), "box")
