"""Dask arrays give the in-memory results, lazily, for every chunking; also on a real
two-process dask.distributed cluster on loopback."""
import cloudpickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuconv

da = pytest.importorskip("dask.array")
gdask = pytest.importorskip("gpuconv.dask")


@st.composite
def dask_case(draw):
    nd = draw(st.integers(1, 2))
    kshape = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
    sliding = tuple(draw(st.lists(st.integers(1, 30 if nd == 1 else 14), min_size=nd, max_size=nd)))
    channels_last = nd == 2 and draw(st.booleans())
    shape = (draw(st.integers(1, 3)),) + sliding + ((3,) if channels_last else ())
    # chunks from 1 (smaller than any halo) up to the whole axis
    chunks = tuple(draw(st.integers(1, max(1, n))) for n in shape)
    return dict(shape=shape, kshape=kshape, chunks=chunks, axes=tuple(range(1, 1 + nd)),
                mode=draw(st.sampled_from(["full", "same", "valid"])),
                boundary=draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"])),
                stride=tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))),
                dilation=tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))),
                method=draw(st.sampled_from(["auto", "direct", "fft"])), flip=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 32 - 1)))


@settings(max_examples=120, deadline=None)
@given(dask_case())
def test_correlate_equals_in_memory(c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal(c["shape"])
    k = rng.standard_normal(c["kshape"])
    fn = gpuconv.convolve if c["flip"] else gpuconv.correlate
    kw = dict(boundary=c["boundary"], cval=0.5, stride=c["stride"], dilation=c["dilation"], axes=c["axes"],
              method=c["method"])
    expect = fn(x, k, c["mode"], **kw)
    y = fn(da.from_array(x, chunks=c["chunks"]), k, c["mode"], **kw)
    assert isinstance(y, da.Array) and y.shape == expect.shape and y.dtype == expect.dtype
    np.testing.assert_allclose(y.compute(scheduler="threads"), expect, atol=1e-9)


def test_uint8_out_dtype_and_chunks_smaller_than_kernel(rng):
    x = rng.integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    k = gpuconv.kernels.get("gaussian:7:2")
    expect = gpuconv.correlate(x, k, "same", axes=(1, 2), boundary="reflect", out_dtype=np.uint8)
    y = gpuconv.correlate(da.from_array(x, chunks=(1, 3, 5, 3)), k, "same", axes=(1, 2), boundary="reflect",
                          out_dtype=np.uint8)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y.compute(), expect)


def test_fill_value_outside_the_input_dtype(rng):
    """cval=300.5 does not fit uint8: the padding happens in the compute dtype, as in memory."""
    x = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    expect = gpuconv.correlate(x, np.ones((3, 3)), "same", cval=300.5)
    y = gpuconv.correlate(da.from_array(x, chunks=3), np.ones((3, 3)), "same", cval=300.5)
    np.testing.assert_allclose(y.compute(), expect)


def test_pad_wider_than_the_array_matches_numpy_pad(rng):
    x = rng.standard_normal(3)
    for mode in ("edge", "reflect", "symmetric", "wrap"):
        got = gdask.pad_axis(da.from_array(x, chunks=2), 0, 7, 9, mode, 0.0).compute()
        np.testing.assert_array_equal(got, np.pad(x, (7, 9), mode=mode))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, "same", 1, 2), ((1, 2), (2, 0), 2, 1)])
def test_conv2d_equals_in_memory(rng, layout, stride, padding, dilation, groups):
    x = rng.standard_normal((3, 4, 17, 13))
    w = rng.standard_normal((6, 4 // groups, 3, 3))
    b = rng.standard_normal(6)
    if layout == "NHWC":
        x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(0, 2, 3, 1).copy()
        chunks = (2, 5, 4, 2)  # channels split too: gathered into one chunk
    else:
        chunks = (2, 2, 5, 4)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, activation="relu", layout=layout,
              boundary="symmetric")
    expect = gpuconv.conv2d(x, w, b, **kw)
    y = gpuconv.conv2d(da.from_array(x, chunks=chunks), w, b, **kw)
    assert isinstance(y, da.Array) and y.shape == expect.shape
    np.testing.assert_allclose(y.compute(), expect, atol=1e-9)


def test_conv1d_unbatched(rng):
    x = rng.standard_normal((2, 50))
    w = rng.standard_normal((3, 2, 5))
    y = gpuconv.conv1d(da.from_array(x, chunks=(2, 7)), w, padding="same")
    np.testing.assert_allclose(y.compute(), gpuconv.conv1d(x, w, padding="same"), atol=1e-10)


def test_weights_enter_the_graph_once(rng):
    """A 1 MiB weight tensor over 32 chunks: the scheduler ships tasks one by one, and the
    weights travel in one of them, not in each (weights captured by every task's function
    measured 35.7 MB here against 3.5 MB)."""
    w = rng.standard_normal((64, 64, 8, 8)).astype(np.float32)  # 1 MiB
    x = da.from_array(rng.standard_normal((8, 64, 32, 32)).astype(np.float32), chunks=(1, 64, 16, 16))
    y = gpuconv.conv2d(x, w, padding="same")
    shipped = sum(len(cloudpickle.dumps(task)) for task in dict(y.__dask_graph__()).values())
    assert shipped < 3 * w.nbytes + x.nbytes, shipped


def test_empty_results_and_errors():
    x = da.ones((4, 2), chunks=2)
    assert gpuconv.correlate(x, np.ones((3, 3)), "valid").shape == (2, 0)
    with pytest.raises(ValueError, match="out= is not supported for dask arrays"):
        gpuconv.correlate(x, np.ones((2, 2)), out=np.empty((5, 3)))
    with pytest.raises(ValueError, match="boundary='nearest' is not a numpy.pad mode"):
        gpuconv.correlate(x, np.ones((2, 2)), boundary="nearest")


def test_two_process_local_cluster(rng):
    distributed = pytest.importorskip("distributed")
    x = rng.standard_normal((4, 60, 70)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster, timeout="60s") as client:
        xd = da.from_array(x, chunks=(2, 25, 30))
        y1 = gpuconv.correlate(xd, k, "same", boundary="wrap", stride=2)
        y2 = gpuconv.conv2d(xd[None], w, padding=1)
        r1, r2 = client.compute([y1, y2], sync=True)
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_allclose(r1, gpuconv.correlate(x, k, "same", boundary="wrap", stride=2), atol=1e-4)
    np.testing.assert_allclose(r2, gpuconv.conv2d(x[None], w, padding=1), atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("conftest").CUDA, reason="no CUDA device / CuPy")
def test_cupy_backed_chunks_equal_numpy(rng):
    import cupy

    x = rng.standard_normal((3, 70, 50)).astype(np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    xd = da.from_array(x, chunks=(1, 30, 20)).map_blocks(cupy.asarray)
    y = gpuconv.correlate(xd, k, "same", boundary="reflect", stride=(1, 2))
    assert isinstance(y._meta, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(y.compute()), gpuconv.correlate(x, k, "same", boundary="reflect",
                                                                            stride=(1, 2)), atol=1e-4)
