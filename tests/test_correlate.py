"""correlate / convolve against the float64 reference, scipy, numpy and the seed examples."""

import numpy as np
import pytest

import gpuconv
from conftest import host, on
from reference import correlate as ref_correlate
from reference import tolerance

MODES = ["full", "same", "valid"]
BOUNDARIES = ["constant", "edge", "reflect", "symmetric", "wrap"]
METHODS = ["direct", "separable", "fft", "auto"]


def check(y, x, k, dtype=np.float32, **kw):
    ref = ref_correlate(x, k, **kw)
    y = host(y)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=0, atol=tolerance(dtype, x, k))


# --- the seed documents' worked examples, exact -------------------------------------------------

def test_seed_farmer_convolution_1d(backend):
    y = gpuconv.convolve(on(backend, [1, 2, 3, 4, 5]), on(backend, [2, 3, 4]))
    assert host(y).tolist() == [2, 7, 16, 25, 34, 31, 20]


def test_seed_5x5_valid_correlation(backend):
    img = [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]]
    y = gpuconv.correlate(on(backend, np.array(img)), on(backend, np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]])), "valid")
    assert host(y).tolist() == [[12, 12, 17], [10, 17, 19], [9, 6, 14]]


def test_seed_stride_two_gives_1x2(backend, rng):
    x = rng.standard_normal((4, 5))
    k = rng.standard_normal((3, 3))
    y = gpuconv.correlate(on(backend, x), on(backend, k), "valid", stride=2)
    assert host(y).shape == (1, 2)
    check(y, x, k, np.float64, mode="valid", stride=2)


# --- the reference, over modes, boundaries, sizes --------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("kshape", [(3, 3), (4, 2), (1, 5), (6, 7)])
def test_2d_every_mode_boundary_odd_even(backend, rng, mode, boundary, kshape):
    x = rng.standard_normal((2, 11, 13)).astype(np.float32)
    k = rng.standard_normal(kshape).astype(np.float32)
    y = gpuconv.correlate(on(backend, x), on(backend, k), mode, boundary=boundary, cval=0.75)
    check(y, x, k, mode=mode, boundary=boundary, cval=0.75)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same"])
def test_pad_wider_than_input(backend, rng, boundary, mode):
    x = rng.standard_normal((3, 2, 3))
    k = rng.standard_normal((9, 11))
    y = gpuconv.correlate(on(backend, x), on(backend, k), mode, boundary=boundary, cval=-2.0, dilation=(1, 2))
    check(y, x, k, np.float64, mode=mode, boundary=boundary, cval=-2.0, dilation=(1, 2))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 3), ((3, 2), (2, 1))])
@pytest.mark.parametrize("mode", MODES)
def test_methods_with_stride_and_dilation(backend, rng, method, stride, dilation, mode):
    x = rng.standard_normal((3, 23, 19)).astype(np.float32)
    k = rng.standard_normal((4, 5)).astype(np.float32)
    y = gpuconv.correlate(on(backend, x), on(backend, k), mode, boundary="reflect", stride=stride,
                          dilation=dilation, method=method)
    check(y, x, k, mode=mode, boundary="reflect", stride=stride, dilation=dilation)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kshape", [(7,), (3, 4), (2, 3, 4)])
def test_methods_1d_2d_3d_kernels(backend, rng, method, kshape):
    x = rng.standard_normal((2,) + tuple(n + 6 for n in kshape))
    k = rng.standard_normal(kshape)
    y = gpuconv.correlate(on(backend, x), on(backend, k), "same", boundary="symmetric", method=method)
    check(y, x, k, np.float64, mode="same", boundary="symmetric")


@pytest.mark.parametrize("method", METHODS)
def test_methods_agree_on_low_rank_kernel(backend, rng, method):
    # rank 2: separable runs two pairs of passes
    k = (np.outer(rng.standard_normal(5), rng.standard_normal(7))
         + np.outer(rng.standard_normal(5), rng.standard_normal(7))).astype(np.float32)
    x = rng.standard_normal((4, 40, 37)).astype(np.float32)
    y = gpuconv.correlate(on(backend, x), on(backend, k), "same", boundary="edge", method=method)
    check(y, x, k, mode="same", boundary="edge")


def test_convolve_is_correlate_of_flipped_kernel(backend, rng):
    x = rng.standard_normal((9, 14))
    k = rng.standard_normal((4, 3))
    for mode in MODES:
        for boundary in BOUNDARIES:
            a = gpuconv.convolve(on(backend, x), on(backend, k), mode, boundary=boundary, dilation=2, stride=(1, 2))
            b = gpuconv.correlate(on(backend, x), on(backend, k[::-1, ::-1].copy()), mode, boundary=boundary,
                                  dilation=2, stride=(1, 2))
            np.testing.assert_allclose(host(a), host(b), rtol=1e-12, atol=1e-12)


# --- axes, batches, layouts -------------------------------------------------------------------

def test_channels_last_batch_axis(backend, rng):
    x = rng.standard_normal((2, 12, 10, 3)).astype(np.float32)  # (N, H, W, C)
    k = rng.standard_normal((3, 5)).astype(np.float32)
    y = gpuconv.correlate(on(backend, x), on(backend, k), "same", axes=(1, 2))
    assert host(y).shape == (2, 12, 10, 3)
    check(y, x, k, mode="same", axes=(1, 2))


def test_axes_in_any_order(backend, rng):
    x = rng.standard_normal((6, 5, 7))
    k = rng.standard_normal((3, 2))
    y = gpuconv.correlate(on(backend, x), on(backend, k), "full", axes=(2, 0))
    check(y, x, k, np.float64, mode="full", axes=(2, 0))


def test_1d_kernel_on_chosen_axis(backend, rng):
    x = rng.standard_normal((8, 9))
    k = rng.standard_normal(4)
    y = gpuconv.correlate(on(backend, x), on(backend, k), "valid", axes=0)
    check(y, x, k, np.float64, mode="valid", axes=(0,))


def test_empty_batch_and_short_valid_give_empty_results(backend, rng):
    k = rng.standard_normal((3, 3))
    assert host(gpuconv.correlate(on(backend, np.ones((0, 5, 5))), on(backend, k))).shape == (0, 7, 7)
    assert host(gpuconv.correlate(on(backend, np.ones((2, 2))), on(backend, k), "valid")).shape == (0, 0)


# --- scipy and numpy as extra references ----------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kshape", [(3, 3), (4, 6), (5, 2)])
def test_equals_scipy_signal(backend, rng, mode, kshape):
    signal = pytest.importorskip("scipy.signal")
    x = rng.standard_normal((17, 15))
    k = rng.standard_normal(kshape)
    np.testing.assert_allclose(host(gpuconv.correlate(on(backend, x), on(backend, k), mode)),
                               signal.correlate(x, k, mode), atol=1e-12)
    np.testing.assert_allclose(host(gpuconv.convolve(on(backend, x), on(backend, k), mode)),
                               signal.convolve(x, k, mode), atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [2, 3, 4, 7])
def test_equals_numpy_convolve_1d(backend, rng, mode, k):
    x = rng.standard_normal(20)
    w = rng.standard_normal(k)
    np.testing.assert_allclose(host(gpuconv.convolve(on(backend, x), on(backend, w), mode)),
                               np.convolve(x, w, mode), atol=1e-12)


def test_equals_scipy_ndimage_correlate_same(backend, rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = rng.standard_normal((3, 20, 21)).astype(np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    for ours, theirs in [("edge", "nearest"), ("symmetric", "reflect"), ("reflect", "mirror"), ("wrap", "wrap")]:
        y = gpuconv.correlate(on(backend, x), on(backend, k), "same", boundary=ours)
        ref = ndimage.correlate(x, k[None], mode=theirs)
        np.testing.assert_allclose(host(y), ref, atol=1e-4)


# --- values on a single bright pixel --------------------------------------------------------

def test_bright_pixel_reproduces_kernel(backend, rng):
    k = rng.standard_normal((3, 5))
    img = np.zeros((9, 9))
    img[4, 4] = 1.0
    y = host(gpuconv.convolve(on(backend, img), on(backend, k), "same"))
    np.testing.assert_allclose(y[3:6, 2:7], k, atol=1e-15)
    y = host(gpuconv.correlate(on(backend, img), on(backend, k), "same"))
    np.testing.assert_allclose(y[3:6, 2:7], k[::-1, ::-1], atol=1e-15)


# --- memory layouts and inputs that must not change -----------------------------------------

def test_noncontiguous_fortran_negative_strides(backend, rng):
    base = rng.standard_normal((20, 30))
    k = rng.standard_normal((3, 4))
    for x in (base[::2, 1::3], np.asfortranarray(base), base[::-1, ::-1], base.T):
        y = gpuconv.correlate(on(backend, x), on(backend, k), "same", boundary="wrap")
        check(y, np.array(x), k, np.float64, mode="same", boundary="wrap")


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((10, 10)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    x0, k0 = x.copy(), k.copy()
    for method in METHODS:
        gpuconv.correlate(x, k, "same", method=method, boundary="reflect")
    assert np.array_equal(x, x0) and np.array_equal(k, k0)


def test_nested_lists_are_numpy(rng):
    y = gpuconv.correlate([[1, 2], [3, 4]], [[1, 0], [0, 1]], "valid")
    assert isinstance(y, np.ndarray) and y.tolist() == [[5.0]]


def test_torch_cpu_tensor_in_torch_tensor_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rng.standard_normal((2, 8, 8)).astype(np.float32))
    k = rng.standard_normal((3, 3)).astype(np.float32)
    y = gpuconv.correlate(x, k, "same")
    assert isinstance(y, torch.Tensor)
    check(y.numpy(), x.numpy(), k, mode="same")


# --- out= ------------------------------------------------------------------------------------

def test_out_is_written_completely_and_returned(rng):
    x = rng.standard_normal((3, 16, 16)).astype(np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    out = np.full((3, 16, 16), np.nan, dtype=np.float32)  # poison
    y = gpuconv.correlate(x, k, "same", out=out)
    assert y is out and not np.isnan(out).any()
    check(out, x, k, mode="same")


def test_out_dtype_taken_from_out(rng):
    x = (rng.random((8, 8)) * 255).astype(np.uint8)
    out = np.full((8, 8), 77, dtype=np.uint8)
    gpuconv.correlate(x, gpuconv.kernels.sharpen(), "same", boundary="edge", out=out)
    ref = np.clip(np.rint(ref_correlate(x, gpuconv.kernels.sharpen(), "same", "edge")), 0, 255)
    np.testing.assert_array_equal(out, ref.astype(np.uint8))


def test_bad_out_leaves_out_untouched(rng):
    x = rng.standard_normal((6, 6))
    out = np.full((6, 6), 5.0)
    with pytest.raises(ValueError, match="mode"):
        gpuconv.correlate(x, np.ones((3, 3)), "bogus", out=out)
    assert (out == 5.0).all()


# --- NaN / inf -------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_nan_and_inf_stay_local(backend, method):
    """Only outputs whose window holds the NaN/inf are non-finite, whatever the method."""
    x = np.ones((40, 70))
    x[20, 35] = np.nan
    x[0, 69] = np.inf
    y = host(gpuconv.correlate(on(backend, x), on(backend, np.ones((3, 3))), "same", method=method))
    expect_nan = np.zeros_like(y, dtype=bool)
    expect_nan[19:22, 34:37] = True
    assert (np.isnan(y) == expect_nan).all()
    assert np.isposinf(y[0:2, 68:70]).all()
    finite = ~expect_nan
    finite[0:2, 68:70] = False
    assert np.isfinite(y[finite]).all() and y[10, 10] == 9.0


# --- FFT in overlap-save blocks ----------------------------------------------------------------

@pytest.mark.parametrize("shape,kshape,stride,dilation", [
    ((2, 300, 260), (7, 9), (2, 3), (1, 2)),
    ((1, 5000), (15,), 3, 2),
    ((1, 40, 50, 60), (3, 5, 4), 1, (2, 1, 1)),
])
def test_fft_blocks_match_reference(rng, monkeypatch, shape, kshape, stride, dilation):
    from gpuconv.backends.numpy import fft as np_fft
    from gpuconv.backends.numpy.fft import fft_geometry
    from gpuconv.plan import mode_pads

    # small blocks regardless of the tuning, so these small inputs really use many blocks
    monkeypatch.setattr(np_fft, "_BLOCK_OVERHEAD", 0)
    monkeypatch.setattr(np_fft, "_MIN_BLOCK", 8)

    x = rng.standard_normal(shape)
    k = rng.standard_normal(kshape)
    nd = len(kshape)
    s = stride if isinstance(stride, tuple) else (stride,) * nd
    d = dilation if isinstance(dilation, tuple) else (dilation,) * nd
    pads = [mode_pads(n, kk, "same", ss, dd) for n, kk, ss, dd in zip(shape[-nd:], kshape, s, d)]
    geo = fft_geometry(None, kshape, tuple(p[2] for p in pads), s, d)
    assert max(n for _, _, n in geo) > 1  # really several blocks
    y = gpuconv.correlate(x, k, "same", boundary="wrap", stride=stride, dilation=dilation, method="fft")
    check(y, x, k, np.float64, mode="same", boundary="wrap", stride=stride, dilation=dilation)

