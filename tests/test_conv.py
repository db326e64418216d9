"""conv2d / conv1d (kernel banks) against the float64 reference and torch."""
import numpy as np
import pytest

import gpuconv
from conftest import host, on  # the `backend` fixture (numpy, and cuda where a GPU is) is conftest's
from reference import conv_nchw

ACTS = {None: lambda y: y, "relu": lambda y: np.maximum(y, 0), "leaky_relu": lambda y: np.where(y < 0, 0.01 * y, y),
        "tanh": np.tanh, "sigmoid": lambda y: 1 / (1 + np.exp(-y))}


def _tol(x, w, dtype=np.float32):
    cg = w.shape[1]
    scale = np.abs(x).max() * np.abs(w).max() * cg * np.prod(w.shape[2:])
    return 64 * np.finfo(dtype).eps * max(scale, 1.0)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (1, 1, 1, 1), (2, 1, 1, 2), ((1, 2), (2, 0), (2, 1), 1), (1, "same", 2, 3), (3, "valid", 1, 6),
    (2, "same", 1, 1),
])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
def test_conv2d_matches_reference(backend, rng, layout, stride, padding, dilation, groups, activation):
    x = rng.standard_normal((2, 6, 13, 11)).astype(np.float32)
    w = rng.standard_normal((12, 6 // groups, 3, 4)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    if padding == "same":
        d = (dilation, dilation) if isinstance(dilation, int) else dilation
        tot = [d[0] * 2, d[1] * 3]
        pads = [(t // 2, t - t // 2) for t in tot]
    elif padding == "valid":
        pads = [(0, 0), (0, 0)]
    else:
        p = (padding, padding) if isinstance(padding, int) else padding
        pads = [(p[0], p[0]), (p[1], p[1])]
    ref = ACTS[activation](conv_nchw(x, w, b, stride, pads, dilation, groups))
    if layout == "NHWC":
        xin, win = x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1)
    else:
        xin, win = x, w
    y = host(gpuconv.conv2d(on(backend, xin), on(backend, win), on(backend, b), stride=stride, padding=padding,
                            dilation=dilation, groups=groups, activation=activation, layout=layout))
    if layout == "NHWC":
        y = y.transpose(0, 3, 1, 2)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=_tol(x, w), rtol=0)


@pytest.mark.parametrize("boundary", ["edge", "reflect", "symmetric", "wrap"])
def test_conv2d_boundary_applies_to_padding(backend, rng, boundary):
    x = rng.standard_normal((1, 2, 6, 7))
    w = rng.standard_normal((3, 2, 3, 3))
    y = host(gpuconv.conv2d(on(backend, x), on(backend, w), padding=2, boundary=boundary))
    np.testing.assert_allclose(y, conv_nchw(x, w, padding=2, boundary=boundary), atol=1e-12)


def test_conv2d_float64_unbatched_and_depthwise(backend, rng):
    x = rng.standard_normal((4, 9, 9))
    w = rng.standard_normal((8, 1, 3, 3))
    y = host(gpuconv.conv2d(on(backend, x), on(backend, w), padding=1, groups=4))
    assert y.dtype == np.float64 and y.shape == (8, 9, 9)
    np.testing.assert_allclose(y, conv_nchw(x[None], w, padding=1, groups=4)[0], atol=1e-12)


def test_cuboid_kernel_is_conv2d_nhwc(backend, rng):
    """Seed 000: a (kh, kw, C) kernel over an (H, W, C) image gives a 2-D map."""
    img = rng.standard_normal((12, 10, 3))
    k = rng.standard_normal((5, 5, 3))
    y = host(gpuconv.conv2d(on(backend, img[None]), on(backend, k[None]), layout="NHWC")[0, ..., 0])
    ref = sum(gpuconv.correlate(img[..., c], k[..., c], "valid") for c in range(3))
    np.testing.assert_allclose(y, ref, atol=1e-12)


@pytest.mark.parametrize("layout", ["NCL", "NLC"])
def test_conv1d_matches_reference(backend, rng, layout):
    x = rng.standard_normal((3, 4, 50))
    w = rng.standard_normal((6, 2, 5))
    b = rng.standard_normal(6)
    ref = np.tanh(conv_nchw(x, w, b, stride=2, padding=3, dilation=2, groups=2))
    xin, win = (x.transpose(0, 2, 1), w.transpose(0, 2, 1)) if layout == "NLC" else (x, w)
    y = host(gpuconv.conv1d(on(backend, xin), on(backend, win), on(backend, b), stride=2, padding=3, dilation=2,
                            groups=2, activation="tanh", layout=layout))
    if layout == "NLC":
        y = y.transpose(0, 2, 1)
    np.testing.assert_allclose(y, ref, atol=1e-12)


def test_conv2d_uint8_out_and_clip(backend, rng):
    x = rng.integers(0, 256, (1, 3, 8, 8), dtype=np.uint8)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    y = host(gpuconv.conv2d(on(backend, x), on(backend, w), padding=1, out_dtype=np.uint8, clip=(10, 200)))
    ref = np.clip(conv_nchw(x, w, padding=1), 10, 200)
    assert y.dtype == np.uint8
    assert np.abs(y.astype(np.int64) - np.rint(ref)).max() <= 1  # float32 rounding may flip a .5


def test_conv2d_out_poisoned(rng):
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = np.full((2, 4, 7, 7), np.nan, np.float32)
    assert gpuconv.conv2d(x, w, padding="same", out=out) is out
    np.testing.assert_allclose(out, conv_nchw(x, w, padding=1), atol=_tol(x, w))


def test_conv2d_empty_batch(backend):
    y = host(gpuconv.conv2d(on(backend, np.ones((0, 3, 5, 5))), on(backend, np.ones((2, 3, 3, 3)))))
    assert y.shape == (0, 2, 3, 3)


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, "same", 1, 2), (1, "valid", 2, 1), ((2, 1), (0, 2), 1, 4)])
@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu", "tanh", "sigmoid"])
def test_conv2d_equals_torch(rng, stride, padding, dilation, groups, activation):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 8, 17, 15)).astype(np.float32)
    w = rng.standard_normal((8, 8 // groups, 3, 5)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    if padding == "same" and stride != 1:  # torch refuses same with stride; pad by hand as our docs say
        tx = F.pad(torch.from_numpy(x), (2, 2, 1, 1))
        ref = F.conv2d(tx, torch.from_numpy(w), torch.from_numpy(b), stride=stride, dilation=dilation, groups=groups)
    else:
        ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=stride, padding=padding,
                       dilation=dilation, groups=groups)
    act = {None: lambda t: t, "relu": F.relu, "leaky_relu": F.leaky_relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    ref = act[activation](ref).numpy()
    y = gpuconv.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, activation=activation)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=_tol(x, w), rtol=0)


def test_conv1d_equals_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 40)).astype(np.float32)
    w = rng.standard_normal((5, 4, 7)).astype(np.float32)
    ref = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w), padding="same").numpy()
    np.testing.assert_allclose(gpuconv.conv1d(x, w, padding="same"), ref, atol=_tol(x, w))
