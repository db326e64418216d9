"""Every bad input raises ValueError/TypeError naming the argument, before any work."""
import numpy as np
import pytest

import gpuconv
from conftest import CUDA

X = np.ones((6, 7), dtype=np.float32)
K = np.ones((3, 3), dtype=np.float32)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"mode": "bogus"}, ValueError, r"mode='bogus'.*\['full', 'same', 'valid'\]"),
    ({"boundary": "nearest"}, ValueError, r"boundary='nearest' is not a numpy.pad mode; use 'edge"),
    ({"boundary": "replicate"}, ValueError, r"use 'edge"),
    ({"boundary": "circular"}, ValueError, r"use 'wrap"),
    ({"boundary": "reflect_101"}, ValueError, r"use 'reflect"),
    ({"boundary": "mirror"}, ValueError, r"use 'reflect"),
    ({"boundary": "grid-mirror"}, ValueError, r"use 'symmetric"),
    ({"boundary": "zeros"}, ValueError, r"use 'constant"),
    ({"boundary": "clamp"}, ValueError, r"boundary='clamp'.*'constant', 'edge'"),
    ({"method": "winograd"}, ValueError, r"method='winograd'.*'auto'"),
    ({"stride": 0}, ValueError, r"stride=0 must be >= 1"),
    ({"stride": (1, 2, 3)}, ValueError, r"stride=\(1, 2, 3\) must be an int or 2 ints"),
    ({"stride": 1.5}, TypeError, r"stride=1.5 must be an int"),
    ({"dilation": -1}, ValueError, r"dilation=-1 must be >= 1"),
    ({"dilation": True}, TypeError, r"dilation=True must hold ints"),
    ({"axes": (0, 0)}, ValueError, r"axes=\(0, 0\) names the same axis twice"),
    ({"axes": (0, 5)}, ValueError, r"axis 5 is out of range"),
    ({"axes": (1,)}, ValueError, r"axes=\(1,\) must name 2 axes"),
    ({"cval": "x"}, TypeError, r"cval='x' must be a real number"),
    ({"cval": 1j}, TypeError, r"cval=1j must be a real number"),
    ({"out_dtype": np.complex64}, TypeError, r"out_dtype=complex64 is not accepted"),
    ({"out_dtype": "not-a-dtype"}, TypeError, r"out_dtype='not-a-dtype' is not a dtype"),
    ({"clip": (3, 1)}, ValueError, r"clip=\(3, 1\) needs lo <= hi"),
    ({"clip": 5}, ValueError, r"clip=5 must be None or a pair"),
    ({"clip": (None, None)}, ValueError, r"clamps nothing"),
    ({"backend": "gpu"}, ValueError, r"backend='gpu'.*'numpy', 'cuda'"),
])
def test_correlate_argument_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gpuconv.correlate(X, K, **kwargs)


def test_kernel_errors():
    with pytest.raises(ValueError, match=r"kernel has 3 dimensions but x has only 2"):
        gpuconv.correlate(X, np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"zero-size kernel"):
        gpuconv.correlate(X, np.ones((0, 3)))
    with pytest.raises(ValueError, match=r"kernel has 4 dimensions.*accepted: 1, 2 or 3"):
        gpuconv.correlate(np.ones((2, 2, 2, 2, 2)), np.ones((1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"0-d kernel is accepted with a 0-d x only"):
        gpuconv.correlate(np.ones(3), np.array(2.0))


def test_dtype_errors():
    with pytest.raises(TypeError, match=r"x has complex dtype complex128; complex inputs are not supported"):
        gpuconv.correlate(X.astype(complex), K)
    with pytest.raises(TypeError, match=r"kernel has complex dtype"):
        gpuconv.convolve(X, K.astype(np.complex64))
    with pytest.raises(TypeError, match=r"x has dtype <U1"):
        gpuconv.correlate(np.array([["a", "b"]]), [[1]])
    with pytest.raises(ValueError, match=r"x could not be read as an array"):
        gpuconv.correlate([[1, 2], [3]], [1])


def test_out_errors():
    with pytest.raises(ValueError, match=r"out has shape \(6, 7\); this call's result has shape \(8, 9\)"):
        gpuconv.correlate(X, K, out=np.empty((6, 7), np.float32))
    with pytest.raises(ValueError, match=r"out overlaps x"):
        x = np.ones((8, 9))
        gpuconv.correlate(x[1:-1, 1:-1], K, "same", out=x[:6, :7])
    with pytest.raises(ValueError, match=r"out is read-only"):
        o = np.empty((6, 7), np.float32)
        o.flags.writeable = False
        gpuconv.correlate(X, K, "same", out=o)
    with pytest.raises(ValueError, match=r"out_dtype=float64 disagrees with out.dtype=float32"):
        gpuconv.correlate(X, K, "same", out=np.empty((6, 7), np.float32), out_dtype=np.float64)
    with pytest.raises(TypeError, match=r"out must be a numpy.ndarray"):
        gpuconv.correlate(X, K, "same", out=[[0] * 7] * 6)


@pytest.mark.skipif(CUDA, reason="a CUDA device is present")
def test_cuda_backend_unavailable_is_explained():
    with pytest.raises(gpuconv.BackendUnavailableError, match=r"backend='cuda' (needs CuPy|found CuPy but no usable)"):
        gpuconv.correlate(X, K, backend="cuda")


def test_cuda_array_detected_without_cupy_and_routed_to_cuda():
    class FakeCudaArray:  # only the interface CUDA libraries expose
        __cuda_array_interface__ = {"shape": (2, 2), "typestr": "<f4", "data": (0, False), "version": 3}

    from gpuconv.dispatch import array_kind
    assert array_kind(FakeCudaArray()) == "cuda"
    with pytest.raises(gpuconv.BackendUnavailableError, match=r"backend='cuda'"):
        gpuconv.correlate(FakeCudaArray(), K)
    with pytest.raises(gpuconv.BackendUnavailableError, match=r"backend='numpy' was given a CUDA array"):
        gpuconv.correlate(FakeCudaArray(), K, backend="numpy")


XB = np.ones((2, 4, 8, 8), dtype=np.float32)
WB = np.ones((6, 4, 3, 3), dtype=np.float32)


@pytest.mark.parametrize("args,kwargs,exc,match", [
    ((XB, np.ones((6, 3, 3, 3))), {}, ValueError, r"weight has 3 input channels per group but x has C=4 channels with groups=1 \(expected 4\)"),
    ((XB, WB), {"groups": 3}, ValueError, r"groups=3 does not divide the 4 input channels"),
    ((XB, np.ones((6, 2, 3, 3))), {"groups": 4}, ValueError, r"groups=4 does not divide the 6 output channels"),
    ((XB, WB), {"groups": 0}, ValueError, r"groups=0 must be an int >= 1"),
    ((XB, WB), {"activation": "gelu"}, ValueError, r"activation='gelu'.*'relu'"),
    ((XB, WB), {"layout": "CHWN"}, ValueError, r"layout='CHWN'.*'NCHW', 'NHWC'"),
    ((XB, WB), {"precision": "bf16"}, ValueError, r"precision='bf16'"),
    ((XB, WB), {"padding": "full"}, ValueError, r"padding='full'.*'same', 'valid'"),
    ((XB, WB), {"padding": -1}, ValueError, r"padding=-1 must be >= 0"),
    ((XB, WB), {"stride": 0}, ValueError, r"stride=0 must be >= 1"),
    ((XB, WB), {"boundary": "replicate"}, ValueError, r"use 'edge"),
    ((XB, WB, np.ones(5)), {}, ValueError, r"bias has shape \(5,\); expected \(6,\)"),
    ((XB[0, 0], WB), {}, ValueError, r"x has shape \(8, 8\); layout='NCHW' expects \(N, C, H, W\) or \(C, H, W\)"),
    ((XB, WB[0]), {}, ValueError, r"weight has shape \(4, 3, 3\); layout='NCHW' expects \(O, C/groups, H, W\)"),
    ((XB, np.ones((6, 4, 0, 3))), {}, ValueError, r"zero-size kernel bank"),
    ((XB.astype(complex), WB), {}, TypeError, r"x has complex dtype"),
])
def test_conv2d_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gpuconv.conv2d(*args, **kwargs)


def test_conv1d_layout_error():
    with pytest.raises(ValueError, match=r"layout='NCHW'.*'NCL', 'NLC'"):
        gpuconv.conv1d(np.ones((1, 2, 5)), np.ones((1, 2, 3)), layout="NCHW")
