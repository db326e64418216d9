"""Named kernels: the seed documents' values, and the spec parser."""
import numpy as np
import pytest

from gpuconv import kernels


def test_values_from_the_seeds():
    assert kernels.identity().tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert kernels.sharpen().tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert kernels.outline().tolist() == [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]
    assert kernels.get("edge").tolist() == kernels.outline().tolist()
    assert kernels.laplacian().tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    assert kernels.sobel("left").tolist() == [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    assert kernels.sobel("right").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert kernels.sobel("top").tolist() == [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
    assert kernels.sobel("bottom").tolist() == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
    assert kernels.emboss().tolist() == [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]
    assert kernels.line_vertical().tolist() == [[-1, 2, -1]] * 3
    assert kernels.line_horizontal().tolist() == [[-1, -1, -1], [2, 2, 2], [-1, -1, -1]]
    np.testing.assert_allclose(kernels.box(5), np.full((5, 5), 1 / 25), rtol=1e-7)


def test_gaussian_formula():
    size, sigma = 11, 2.0
    i = np.arange(size)
    g = np.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
    ref = np.outer(g, g) / np.outer(g, g).sum()
    k = kernels.get("gaussian:11:2")
    assert k.dtype == np.float32 and k.shape == (11, 11)
    np.testing.assert_allclose(k, ref, rtol=1e-6)
    np.testing.assert_allclose(kernels.gaussian(5), kernels.gaussian(5, 1.1), rtol=1e-6)  # OpenCV's default sigma


@pytest.mark.parametrize("name", kernels.names())
def test_every_name_parses_to_float32(name):
    k = kernels.get(name)
    assert k.dtype == np.float32 and k.ndim == 2


@pytest.mark.parametrize("spec,match", [
    ("blur", r"unknown kernel 'blur'"), ("sobel:diagonal", r"direction='diagonal'"), ("sobel", r"sobel:DIR"),
    ("box:x", r"parameters must be numbers"), ("sharpen:3", r"takes at most 0 parameter"),
    ("gaussian:5:-1", r"sigma=-1.0 must be"), ("box:0", r"size=0 must be an int >= 1"), ("", r"non-empty string"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        kernels.get(spec)
