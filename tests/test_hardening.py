"""Regression tests for the API hardening issue: hangs, crashes from inside, and edges that
departed from the documented behaviour. Each failed (or hung) before its fix; see the issue's
note for what changed. The fuzz test at the end keeps looking for more, against the float64
reference (GPUCONV_FUZZ_EXAMPLES raises its budget)."""
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpuconv
from reference import correlate as ref_correlate
from reference import tolerance

ROOT = Path(__file__).resolve().parents[1]
BOUNDARIES = ["constant", "edge", "reflect", "symmetric", "wrap"]
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")


def run_python(code: str, timeout: float) -> str:
    """Run `code` in a fresh interpreter (gpuconv importable); its stdout. A hang fails the
    test at the timeout instead of stalling the suite."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# --- 1, 3: non-finite kernels never reach the SVD ------------------------------------------------

def test_every_single_infinite_tap_returns_at_once():
    # LAPACK's SVD hung on 14 of these 106 placements (method "auto" and "separable")
    out = run_python("""
        import numpy as np, gpuconv
        done = 0
        for shape in [(2, 2), (2, 3), (3, 3), (3, 4), (4, 4), (2, 2, 2)]:
            for flat in range(int(np.prod(shape))):
                for value in (np.inf, -np.inf):
                    k = np.ones(shape); k.flat[flat] = value
                    x = np.ones((6, 6, 6))[(0,) * (3 - len(shape))]
                    expect = gpuconv.correlate(x, k, method="direct")
                    for method in ("auto", "separable"):
                        y = gpuconv.correlate(x, k, method=method)
                        assert np.array_equal(np.isnan(y), np.isnan(expect)), (shape, flat, method)
                        assert np.array_equal(y[np.isfinite(y)], expect[np.isfinite(expect)]), (shape, flat, method)
                    done += 1
        print(done)
    """, timeout=120)
    assert out.split() == ["110"]


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 2)])
@pytest.mark.parametrize("method", ["auto", "separable"])
def test_nan_kernels_follow_direct_summation(rng, shape, method):
    x = rng.standard_normal((5, 7, 8))
    for flat in range(int(np.prod(shape))):
        k = rng.standard_normal(shape)
        k.flat[flat] = np.nan
        y = gpuconv.correlate(x, k, "same", method=method, boundary="reflect")
        np.testing.assert_array_equal(y, gpuconv.correlate(x, k, "same", method="direct", boundary="reflect"))


def test_separable_on_an_infinite_kernel_is_the_direct_result():
    # raised AttributeError: 'NoneType' object has no attribute 'flags'
    y = gpuconv.correlate(np.ones((4, 4)), [[1, np.inf], [1, 1]], "valid", method="separable")
    assert np.array_equal(y, np.full((3, 3), np.inf))


def test_separable_on_a_huge_kernel_does_not_run_the_svd():
    # a 4000 x 4000 kernel spent 77 s in the SVD; now such kernels are not split
    from gpuconv.decompose import separable_terms, splittable

    k = np.ones((4000, 4000))
    assert not splittable(k) and separable_terms(k, 1e-6) is None
    assert splittable(np.ones((31, 31))) and splittable(np.ones((9, 9, 9)))


# --- 2: fork --------------------------------------------------------------------------------------

def _child(conn):
    y = gpuconv.correlate(np.ones((1024, 1024), np.float32), [[1, 2, 1]], "same")
    conn.send(float(y.sum()))


@pytest.mark.skipif(sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
                    reason="no fork here")
def test_gpuconv_works_in_a_forked_child():
    expect = float(gpuconv.correlate(np.ones((1024, 1024), np.float32), [[1, 2, 1]], "same").sum())  # pool started
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=_child, args=(child_end,))
    p.start()
    p.join(60)
    if p.is_alive():        # hung in the dead thread pool before the fix
        p.kill()
        pytest.fail("the forked child hung")
    assert p.exitcode == 0 and parent_end.poll(1) and parent_end.recv() == expect


# --- 4: saturation to the integer type's true limits ----------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", pytest.param("emulator", marks=needs_gxx)])
def test_positive_overflow_saturates_to_the_true_maximum(backend, emu):
    x = np.array([np.inf, 3e9, 1e30, -np.inf, 2147483520.0, np.nan, -3e9], dtype=np.float32)
    cases = {np.int32: [2**31 - 1, 2**31 - 1, 2**31 - 1, -2**31, 2147483520, 0, -2**31],
             np.uint32: [2**32 - 1, 3000000000, 2**32 - 1, 0, 2147483520, 0, 0],
             np.int64: [2**63 - 1, 3000000000, 2**63 - 1, -2**63, 2147483520, 0, -3000000000],
             np.uint64: [2**64 - 1, 3000000000, 2**64 - 1, 0, 2147483520, 0, 0]}
    for dtype, expect in cases.items():
        if backend == "numpy":
            y = gpuconv.correlate(x, [1.0], out_dtype=dtype)
        else:
            from cuda_emu import harness

            y, _ = harness.run(emu, x, np.ones(1, np.float32), "full", out_dtype=dtype)
        assert y.dtype == dtype and y.tolist() == expect, (dtype, y.tolist())
    y = gpuconv.correlate(np.array([np.inf, 1e300]), [1.0], out_dtype=np.int64)
    assert y.tolist() == [2**63 - 1] * 2


# --- 5: sigmoid accurate on both sides -------------------------------------------------------------

def _sigmoid_errors(y, dtype):
    ref = 1 / (1 + np.exp(-np.linspace(-100, 100, 2001).astype(dtype).astype(np.float64)))
    normal = ref > np.finfo(dtype).tiny
    rel = np.abs(y[normal] - ref[normal]) / ref[normal]
    return rel.max(), np.abs(y[~normal] - ref[~normal]).max(initial=0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["numpy", pytest.param("emulator", marks=needs_gxx)])
def test_sigmoid_is_accurate_for_negative_inputs(dtype, backend, emu):
    x = np.linspace(-100, 100, 2001).astype(dtype).reshape(1, 1, 1, -1)
    w = np.ones((1, 1, 1, 1), dtype)
    if backend == "numpy":
        y = gpuconv.conv2d(x, w, activation="sigmoid")
    else:
        from cuda_emu.harness import run_conv

        y, _ = run_conv(emu, x, w, activation="sigmoid")
    rel, subnormal_abs = _sigmoid_errors(y.ravel().astype(np.float64), dtype)
    assert rel <= (4e-7 if dtype == np.float32 else 1e-15)     # was 1.0 (exactly 0) below -17 in float32
    assert subnormal_abs <= 2 * np.finfo(dtype).smallest_subnormal


# --- 6: non-native byte order ----------------------------------------------------------------------

def test_big_endian_arrays_are_read_in_one_conversion(rng):
    x = rng.standard_normal((2, 9, 9))
    k = rng.standard_normal((3, 3))
    expect = gpuconv.correlate(x.astype(np.float32), k.astype(np.float32), "same")
    y = gpuconv.correlate(x.astype(">f4"), k.astype(">f8"), "same")
    assert y.dtype == np.float32 and np.array_equal(y, expect)
    out = np.empty(expect.shape, ">f4")
    assert gpuconv.correlate(x.astype(">f4"), k, "same", out=out) is out and np.array_equal(out, expect)
    assert gpuconv.correlate(x.astype(">i2"), k, "same", out_dtype=">u1").dtype == np.uint8
    w, b = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    expect = gpuconv.conv2d(x[None].astype(np.float32), w.astype(np.float32), b.astype(np.float32), padding=1)
    y = gpuconv.conv2d(x[None].astype(">f4"), w.astype(">f4"), b.astype(">f2"), padding=1)
    np.testing.assert_allclose(y, expect, rtol=1e-3, atol=1e-3)   # bias went through float16


# --- 7: clip ---------------------------------------------------------------------------------------

def test_clip_bounds_must_be_numbers_in_order():
    for clip in [(np.nan, 1), (0, np.nan), (float("nan"), None)]:
        with pytest.raises(ValueError, match=r"clip=.*NaN bound"):
            gpuconv.correlate(np.ones(5), [1.0], clip=clip, out_dtype=np.uint8)
    with pytest.raises(ValueError, match=r"clip=\(2, 1\) needs lo <= hi"):
        gpuconv.correlate(np.ones(5), [1.0], clip=(2, 1))
    assert gpuconv.correlate(np.ones(3), [5.0], clip=(-np.inf, 2)).tolist() == [2.0, 2.0, 2.0]


# --- 8: huge strides and dilations -----------------------------------------------------------------

@pytest.mark.parametrize("dilation", [10**8, 10**9, 2**40, 2**70])
def test_huge_dilation_in_same_mode_allocates_nothing_large(dilation):
    tracemalloc.start()
    try:
        y = gpuconv.correlate(np.array([1.0, 2.0, 3.0]), [1.0, 10.0, 100.0], "same", dilation=dilation, cval=0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.tolist() == [60.5, 70.5, 80.5]         # the centre tap reads x, the others cval
    assert peak < 1 << 20                            # was 0.8 GB at 10**8, 8 TiB (MemoryError) at 2**40


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_sparse_windows_equal_the_padded_reference(rng, boundary):
    # dilation 600001 along the last axis: 1.2 M padded samples for 4 outputs of 3 taps
    x = rng.standard_normal((2, 5, 7))
    k = rng.standard_normal((2, 3))
    kw = dict(mode="same", boundary=boundary, cval=0.3, dilation=(3, 600001), stride=(1, 2))
    np.testing.assert_allclose(gpuconv.correlate(x, k, **kw), ref_correlate(x, k, **kw), rtol=0, atol=1e-12)
    kw["stride"] = (2, 10**12)                       # a huge stride too: one output per row
    np.testing.assert_allclose(gpuconv.correlate(x, k, **kw), ref_correlate(x, k, **kw), rtol=0, atol=1e-12)


@needs_gxx
@pytest.mark.parametrize("boundary", ["constant", "symmetric"])
def test_sparse_windows_on_the_cuda_backend(emu, rng, boundary):
    from cuda_emu import harness

    x = rng.standard_normal((2, 5, 7)).astype(np.float32)
    k = rng.standard_normal((2, 3)).astype(np.float32)
    kw = dict(boundary=boundary, cval=0.3, dilation=(3, 2**40), stride=(1, 2))
    y, names = harness.run(emu, x, k, "same", out_dtype=np.float64, **kw)
    ref = gpuconv.correlate(x, k, "same", **kw)
    assert len(names) == 1 and names[0].startswith("correlate_rows<float, double, float")  # the epilogue pass
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)


def test_results_no_array_can_hold_are_refused_by_name():
    for dilation in (2**62, 2**70):
        with pytest.raises(ValueError, match=r"more than any array holds.*dilation=\(\d+,\)"):
            gpuconv.correlate(np.ones(3), [1.0, 1.0, 1.0], "full", dilation=dilation)
    with pytest.raises(ValueError, match=r"more than any array holds"):
        gpuconv.correlate(np.ones((2, 2)), np.ones((2, 2)), "full", dilation=(2**40, 2**40))


# --- 9: zero input channels ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", pytest.param("emulator", marks=needs_gxx)])
def test_zero_input_channels_give_the_bias(backend, emu):
    x, w, b = np.ones((2, 0, 8, 8), np.float32), np.ones((6, 0, 3, 3), np.float32), np.arange(-2, 4, dtype=np.float32)
    if backend == "numpy":
        y = gpuconv.conv2d(x, w, b, activation="relu")
    else:
        from cuda_emu.harness import run_conv

        y, _ = run_conv(emu, x, w, b, activation="relu")
    assert y.shape == (2, 6, 6, 6)
    assert np.array_equal(y, np.broadcast_to(np.maximum(b, 0)[None, :, None, None], y.shape))


# --- 10: tensors that require grad -------------------------------------------------------------------

def test_tensors_that_require_grad_are_read_detached():
    torch = pytest.importorskip("torch")
    x = torch.ones(1, 2, 6, 6, requires_grad=True)
    w = torch.ones(3, 2, 3, 3, requires_grad=True)
    y = gpuconv.conv2d(x, w, padding=1)
    assert isinstance(y, torch.Tensor) and not y.requires_grad and float(y[0, 0, 2, 2]) == 18.0
    y = gpuconv.correlate(x, torch.ones(3, 3, requires_grad=True), "same")
    assert float(y[0, 0, 2, 2]) == 9.0


# --- 11: bit-identical runs ----------------------------------------------------------------------------

def test_repeated_calls_are_bit_identical_across_runs():
    code = """
        import hashlib, numpy as np, gpuconv
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 300, 300)).astype(np.float32)
        k = rng.standard_normal((19, 19)).astype(np.float32)
        print(len({hashlib.sha1(gpuconv.correlate(x, k, "same", method="direct").tobytes()).hexdigest()
                   for _ in range(30)}),
              hashlib.sha1(gpuconv.correlate(x, k, "same", method="direct").tobytes()).hexdigest())
    """
    runs = [run_python(code, timeout=120).split() for _ in range(2)]
    assert runs[0][0] == "1" and runs[1][0] == "1"     # one bit pattern in each process (was 2 of 30)
    assert runs[0][1] == runs[1][1]                     # and the same in both


# --- 12-15: where gpuconv departs from scipy, as documented --------------------------------------------

def test_valid_with_a_kernel_longer_than_x_is_empty_and_documented():
    assert gpuconv.correlate([1.0, 2.0], [1.0, 1.0, 1.0], "valid").shape == (0,)
    assert "swap the operands" in gpuconv.correlate.__doc__ and "swap the operands" in gpuconv.convolve.__doc__


def test_axes_are_positional_and_documented():
    x = np.arange(20.0).reshape(4, 5)
    w = np.array([[0.0, 0, 0], [0, 0, 1]])
    y = gpuconv.correlate(x, w, "same", axes=(1, 0))
    assert y[0].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]     # scipy.ndimage gives [1, 2, 3, 4, 0]
    assert np.array_equal(y, gpuconv.correlate(x, w.T, "same", axes=(0, 1)))
    assert "sorted order" in gpuconv.correlate.__doc__


def test_even_kernels_are_centred_as_in_scipy_signal():
    assert gpuconv.convolve([1.0, 2.0], [1.0, 1.0], "same").tolist() == [1.0, 3.0]   # ndimage: [3, 4]
    assert "[3, 4] in" in gpuconv.correlate.__doc__


def test_zero_d_and_empty_inputs_as_scipy():
    y = gpuconv.convolve(np.array(1289.0), np.array(4567.0))
    assert y.shape == () and float(y) == 5886863.0
    out = np.empty((), np.int32)
    assert gpuconv.correlate(np.array(2.5), np.array(3.0), out=out) is out and int(out) == 8
    for mode, rows in (("full", 4), ("same", 3), ("valid", 2)):
        assert gpuconv.correlate(np.zeros(0), [1.0, 2.0], mode).shape == (0,)
        assert gpuconv.correlate(np.zeros((3, 0)), np.ones((2, 2)), mode).shape == (rows, 0)
    with pytest.raises(ValueError, match=r"zero-size kernel.*scipy.signal returns an empty array"):
        gpuconv.convolve([5.0, 6.0], [])


# --- the fuzz test ---------------------------------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("GPUCONV_FUZZ_EXAMPLES", "300"))


@st.composite
def fuzz_case(draw):
    nd = draw(st.integers(1, 2))
    kshape = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    sliding = tuple(draw(st.lists(st.integers(0, 9), min_size=nd, max_size=nd)))
    huge = draw(st.sampled_from([None, None, None, "dilation", "stride"]))
    dilation = list(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    stride = list(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    if huge == "dilation":   # one axis dilated past 2**20 padded samples: the gathering path
        dilation[-1] = draw(st.integers(600_000, 700_000))
    elif huge == "stride":
        stride[-1] = draw(st.sampled_from([10**6, 2**62, 10**30]))
    return dict(
        shape=(draw(st.integers(1, 2)),) + sliding, kshape=kshape, dilation=tuple(dilation), stride=tuple(stride),
        mode=draw(st.sampled_from(["full", "same", "valid"]) if huge != "dilation" else st.sampled_from(["same", "valid"])),
        boundary=draw(st.sampled_from(BOUNDARIES)),
        dtype=draw(st.sampled_from(["<f4", ">f4", "<f8", ">f8"])),
        method=draw(st.sampled_from(["auto", "direct", "separable", "fft"])),
        bad_kernel=draw(st.sampled_from([None, None, np.nan, np.inf, -np.inf])),
        bad_x=draw(st.sampled_from([None, None, np.nan, np.inf])),
        cval=draw(st.sampled_from([0.0, 1.5])), seed=draw(st.integers(0, 2**32 - 1)), flip=draw(st.booleans()),
    )


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_case())
def test_fuzz_against_the_float64_reference(case):
    """Shapes with empty axes, big-endian data, non-finite kernels and inputs, huge strides
    and dilations, every method and boundary: equal to the float64 reference, NaN and inf in
    the same places."""
    rng = np.random.default_rng(case["seed"])
    x = (rng.standard_normal(case["shape"]) * 10).astype(case["dtype"])
    k = rng.standard_normal(case["kshape"])
    if case["bad_kernel"] is not None:
        k.flat[rng.integers(k.size)] = case["bad_kernel"]
    if case["bad_x"] is not None and x.size:
        x.flat[rng.integers(x.size)] = case["bad_x"]
    fn = gpuconv.convolve if case["flip"] else gpuconv.correlate
    kw = dict(boundary=case["boundary"], cval=case["cval"], stride=case["stride"], dilation=case["dilation"])
    y = fn(x, k, case["mode"], method=case["method"], **kw)
    kref = k[(slice(None, None, -1),) * k.ndim] if case["flip"] else k
    if 0 in case["shape"]:
        assert y.size == 0
        return
    with np.errstate(invalid="ignore"):   # inf * 0 in the reference's own sums
        ref = ref_correlate(x.astype(np.float64), kref, case["mode"], **kw)
    assert y.shape == ref.shape and y.dtype == np.dtype(case["dtype"]).newbyteorder("=")
    y = y.astype(np.float64)
    assert np.array_equal(np.isnan(y), np.isnan(ref)), "NaN in other places than direct summation puts them"
    assert np.array_equal(np.isposinf(y), np.isposinf(ref)) and np.array_equal(np.isneginf(y), np.isneginf(ref))
    finite = np.isfinite(ref)
    atol = tolerance(np.dtype(case["dtype"]).newbyteorder("="), np.nan_to_num(x, nan=0, posinf=0, neginf=0),
                     np.nan_to_num(k, nan=0, posinf=0, neginf=0)) * 4
    np.testing.assert_allclose(y[finite], ref[finite], rtol=0, atol=atol)

