"""Every numpy engine, forced, against the float64 reference (the public methods choose
among them by the cost model, so each must be right on its own)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuconv.backends.numpy import opencv
from gpuconv.backends.numpy.backend import NumpyBackend
from gpuconv.backends.numpy.cost import ENGINES, choose_numpy
from gpuconv.dtypes import compute_dtype
from gpuconv.plan import CorrelatePlan, mode_pads
from reference import correlate as ref_correlate
from reference import tolerance


def make_plan(x, k, mode, boundary, stride, dilation, axes, method, out_dtype=None, clip=None):
    pads = [mode_pads(x.shape[a], kk, mode, s, d) for a, kk, s, d in zip(axes, k.shape, stride, dilation)]
    batch_axes = [a for a in range(x.ndim) if a not in axes]
    return CorrelatePlan(batch_shape=tuple(x.shape[a] for a in batch_axes), in_sliding=tuple(x.shape[a] for a in axes),
                         axes=tuple(axes), in_shape=x.shape, kernel_shape=k.shape, out_sliding=tuple(p[2] for p in pads),
                         pad_lo=tuple(p[0] for p in pads), pad_hi=tuple(p[1] for p in pads), stride=tuple(stride),
                         dilation=tuple(dilation), boundary=boundary, cval=1.5 if x.dtype.kind == "f" else 3.0,
                         compute_dtype=compute_dtype(x.dtype),
                         result_dtype=np.dtype(out_dtype or compute_dtype(x.dtype)), clip=clip, method=method)


@st.composite
def case(draw):
    nd = draw(st.integers(1, 3))
    kshape = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
    lens = {1: 60, 2: 16, 3: 8}[nd]
    sliding = tuple(draw(st.lists(st.integers(1, lens), min_size=nd, max_size=nd)))
    channels_last = draw(st.booleans()) and nd >= 2
    batch = (draw(st.integers(1, 3)),)
    shape = batch + sliding + ((draw(st.integers(2, 4)),) if channels_last else ())
    axes = tuple(range(1, 1 + nd))
    return dict(shape=shape, kshape=kshape, axes=axes,
                mode=draw(st.sampled_from(["full", "same", "valid"])),
                boundary=draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"])),
                stride=tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))),
                dilation=tuple(draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd))),
                dtype=draw(st.sampled_from([np.float32, np.float64, np.uint8])),
                engine=draw(st.sampled_from(ENGINES)), seed=draw(st.integers(0, 2 ** 32 - 1)))


@settings(max_examples=200, deadline=None)
@given(case())
def test_engine_matches_reference(c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal(c["shape"]) * 40
    x = np.clip(x + 100, 0, 255).astype(np.uint8) if c["dtype"] == np.uint8 else x.astype(c["dtype"])
    k = rng.standard_normal(c["kshape"])
    plan = make_plan(x, k, c["mode"], c["boundary"], c["stride"], c["dilation"], c["axes"], c["engine"])
    if 0 in plan.out_sliding:
        return
    y = NumpyBackend().correlate(x, k, plan)
    ref = ref_correlate(x, k, c["mode"], c["boundary"], plan.cval, c["stride"], c["dilation"], c["axes"])
    assert y.shape == ref.shape and y.dtype == plan.result_dtype
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=0, atol=4 * tolerance(x.dtype, x, k))


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_uint8_out_and_nan_locality(engine, rng):
    x = rng.standard_normal((2, 30, 40, 3)) * 60 + 100
    x[1, 15, 20, 1] = np.nan
    k = rng.standard_normal((3, 4))
    plan = make_plan(x.astype(np.float32), k, "same", "reflect", (1, 1), (1, 1), (1, 2), engine, out_dtype=np.uint8,
                     clip=(5, 250))
    y = NumpyBackend().correlate(x.astype(np.float32), k, plan)
    ref = ref_correlate(x, k, "same", "reflect", axes=(1, 2))
    expect = np.clip(np.rint(np.clip(np.nan_to_num(ref, nan=0.0), 5, 250)), 0, 255)
    expect[np.isnan(ref)] = 0  # NaN -> 0 (clip keeps NaN, the cast makes it 0)
    assert y.dtype == np.uint8
    assert np.abs(y.astype(int) - expect).max() <= 1  # float32 vs float64 rounding at .5
    assert (y[np.isnan(ref)] == 0).all() and (y[~np.isnan(ref)] >= 5).all()


def test_auto_choices_on_the_bench_workloads():
    """The shipped constants pick the engines the measurements favoured (bench/NOTES.md)."""
    def pick(shape, kshape, rank=None):
        x = np.empty(shape, np.float32)
        k = np.empty(kshape, np.float32)
        return choose_numpy(make_plan(x, k, "same", "constant", (1,) * k.ndim, (1,) * k.ndim,
                                      tuple(range(x.ndim - k.ndim, x.ndim)), "auto"), rank)
    cv = ("opencv",) if opencv.available() else ()   # OpenCV's filter2D, where installed, wins on images
    assert pick((1, 1024, 1024), (63, 63), 63) in ("fft",) + cv
    assert pick((24, 512, 512), (11, 11), 1) in ("separable",) + cv  # Gaussian: rank 1
    assert pick((24, 512, 512), (3, 3), 3) in ("toeplitz", "taps") + cv
    assert pick((24, 512, 512), (11, 11), 11) in ("toeplitz", "fft") + cv
    assert pick((1, 1 << 23), (3,)) in ("taps", "toeplitz") + cv
    assert pick((1, 1 << 23), (101,)) in ("toeplitz",) + cv
    if cv:
        assert pick((24, 512, 512), (5, 5), 5) == "opencv"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape,axes", [((3, 2, 20, 21), (2, 3)), ((4, 18, 20, 3), (1, 2)), ((5, 16, 3, 17), (3, 1))])
def test_batches_processed_in_groups(monkeypatch, rng, engine, shape, axes):
    """One image per group (as for a batch of large images) gives the same result."""
    from gpuconv.backends.numpy import backend as numpy_backend

    monkeypatch.setattr(numpy_backend, "_GROUP_BYTES", 1)
    x = rng.standard_normal(shape).astype(np.float32)
    k = rng.standard_normal((3, 4))
    plan = make_plan(x, k, "same", "symmetric", (1, 1), (1, 2), axes, engine)
    y = NumpyBackend().correlate(x, k, plan)
    ref = ref_correlate(x, k, "same", "symmetric", plan.cval, (1, 1), (1, 2), axes)
    np.testing.assert_allclose(y, ref, atol=4 * tolerance(x.dtype, x, k))


def test_nan_recompute_inside_workers_does_not_deadlock(tmp_path):
    """The Toeplitz engine's epilogue runs on pool workers and recomputes a non-finite chunk
    tap by tap; with images big enough to split, that recompute must not wait on the pool
    from its own workers (it hung before the fix). Run in a subprocess with a timeout."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "nan_recompute.py"
    script.write_text(
        "import sys; sys.path.insert(0, %r)\n"
        "import numpy as np\n"
        "from test_engines import make_plan\n"
        "from gpuconv.backends.numpy.backend import NumpyBackend\n"
        "x = np.ones((2, 1200, 1000), np.float32); x[0, 100, 100] = np.nan; x[1, 900, 500] = np.nan\n"
        "k = np.ones((5, 5), np.float32)\n"
        "plan = make_plan(x, k, 'same', 'constant', (1, 1), (1, 1), (1, 2), 'toeplitz')\n"
        "y = NumpyBackend().correlate(x, k, plan)\n"
        "assert int(np.isnan(y).sum()) == 50 and np.isnan(y[0, 98:103, 98:103]).all()\n" % str(Path(__file__).parent))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
