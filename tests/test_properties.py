"""Property tests: random shapes, modes, boundaries, strides, dilations, dtypes and methods,
every result against the float64 reference."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuconv
from reference import conv_nchw
from reference import correlate as ref_correlate
from reference import tolerance


@st.composite
def correlate_case(draw):
    nd = draw(st.integers(1, 3))
    kshape = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
    n_batch = draw(st.integers(0, 2 if nd < 3 else 1))
    max_len = {1: 40, 2: 14, 3: 7}[nd]
    sliding = tuple(draw(st.lists(st.integers(1, max_len), min_size=nd, max_size=nd)))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=n_batch, max_size=n_batch)))
    return dict(
        shape=batch + sliding, kshape=kshape,
        mode=draw(st.sampled_from(["full", "same", "valid"])),
        boundary=draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"])),
        stride=tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))),
        dilation=tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))),
        dtype=draw(st.sampled_from([np.float32, np.float64, np.uint8, np.int16])),
        method=draw(st.sampled_from(["auto", "direct", "separable", "fft"])),
        cval=draw(st.floats(-3, 3)),
        seed=draw(st.integers(0, 2 ** 32 - 1)),
        flip=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None)
@given(correlate_case())
def test_correlate_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    raw = rng.standard_normal(case["shape"]) * 50
    x = np.clip(raw, np.iinfo(case["dtype"]).min, np.iinfo(case["dtype"]).max) if np.dtype(case["dtype"]).kind in "iu" else raw
    x = x.astype(case["dtype"])
    k = rng.standard_normal(case["kshape"])
    fn = gpuconv.convolve if case["flip"] else gpuconv.correlate
    y = fn(x, k, case["mode"], boundary=case["boundary"], cval=case["cval"], stride=case["stride"],
           dilation=case["dilation"], method=case["method"])
    kref = k[(slice(None, None, -1),) * k.ndim] if case["flip"] else k
    ref = ref_correlate(x, kref, case["mode"], case["boundary"], case["cval"], case["stride"], case["dilation"])
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=0, atol=tolerance(x.dtype, x, k) * 4)


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    return dict(
        n=draw(st.integers(1, 2)), cg=draw(st.integers(1, 3)), og=draw(st.integers(1, 3)), groups=groups,
        h=draw(st.integers(3, 12)), w=draw(st.integers(3, 12)), kh=draw(st.integers(1, 4)), kw=draw(st.integers(1, 4)),
        stride=draw(st.integers(1, 3)), dilation=draw(st.integers(1, 2)), padding=draw(st.integers(0, 3)),
        layout=draw(st.sampled_from(["NCHW", "NHWC"])), seed=draw(st.integers(0, 2 ** 32 - 1)),
    )


@settings(max_examples=60, deadline=None)
@given(conv_case())
def test_conv2d_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    g = case["groups"]
    x = rng.standard_normal((case["n"], case["cg"] * g, case["h"], case["w"]))
    w = rng.standard_normal((case["og"] * g, case["cg"], case["kh"], case["kw"]))
    ref = conv_nchw(x, w, None, case["stride"], case["padding"], case["dilation"], g)
    if case["layout"] == "NHWC":
        y = gpuconv.conv2d(x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1), stride=case["stride"],
                           padding=case["padding"], dilation=case["dilation"], groups=g, layout="NHWC")
        y = y.transpose(0, 3, 1, 2)
    else:
        y = gpuconv.conv2d(x, w, stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=g)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-10)
