"""The layer between the CUDA planners and the GPU, checked without a GPU: launch arguments
through CuPy's real marshalling, parameter-block layouts against NVRTC, the one compile path
(options, cache, parallel build), the device of the input, and the CuPy functions the
backend relies on.

The emulated tests (test_cuda_*_emulated.py) pass every launch they make through CuPy's
marshalling and through the emulator's check of each argument's size against the kernel's
parameter types (tests/cuda_emu/emulator.py); the tests here check that those checks are on
and that they catch what they are meant to catch.
"""
import ast
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cuda_emu import harness, marshal
from gpuconv.backends.cuda import blocks, compiler, correlate_plan, runtime
from gpuconv.backends.cuda.blocks import ArrayView, ByValue
from gpuconv.backends.numpy.backend import NumpyBackend
from gpuconv.plan import correlate_plan as make_plan

ROOT = Path(__file__).resolve().parents[1]
# Where the test extra installs cupy-cuda13x (and NVRTC): there these checks must run, not skip.
CUPY_PLATFORM = sys.platform in ("linux", "win32") and platform.machine().lower() in ("x86_64", "amd64", "aarch64")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")
needs_cupy = pytest.mark.skipif(not marshal.AVAILABLE and not CUPY_PLATFORM,
                                reason="no CuPy wheel for this platform")


def nvrtc_available() -> bool:
    try:
        compiler.nvrtc()
        return True
    except compiler.CompilerUnavailableError:
        return False


needs_nvrtc = pytest.mark.skipif(not nvrtc_available() and not CUPY_PLATFORM, reason="no NVRTC for this platform")


# --- launch arguments and CuPy's marshalling -----------------------------------------------------

@needs_cupy
@needs_gxx
def test_every_emulated_launch_goes_through_cupys_marshalling(emu, rng):
    runtime_, _ = emu
    assert runtime_.check_marshalling, "CuPy is installed by the test extra: the marshalling check must be on"
    before = runtime_.marshalled
    x = rng.standard_normal((2, 40, 50)).astype(np.float32)
    harness.run(emu, x, rng.standard_normal((3, 3)).astype(np.float32), "same")            # tiled, by value
    harness.run(emu, x, rng.standard_normal((3, 5)).astype(np.float32), "same", stride=2)  # generic, device taps
    harness.run_conv(emu, rng.standard_normal((1, 4, 9, 9)).astype(np.float32),
                     rng.standard_normal((8, 4, 3, 3)).astype(np.float32))
    assert runtime_.marshalled - before == 3


@needs_cupy
def test_marshalling_check_catches_what_cupy_refuses():
    geometry = np.zeros((), blocks.GEOMETRY_DTYPE)
    good = runtime.launch_arguments((np.zeros(4), ByValue(geometry), np.float32(1.5)), lambda a: 4096)
    assert marshal.marshal_error(good) is None
    # the defect this layer had: ByValue objects handed to CuPy unwrapped
    assert isinstance(marshal.marshal_error((ByValue(geometry),)), TypeError)
    # and a host array where a device pointer belongs
    assert isinstance(marshal.marshal_error((np.zeros(4),)), TypeError)


def test_launch_arguments_are_what_cupy_copies():
    geometry = np.zeros((), blocks.GEOMETRY_DTYPE)
    final = runtime.launch_arguments((np.zeros(4), ByValue(geometry), np.float64(2.0)), lambda a: 123456)
    assert final[0] == np.uintp(123456) and final[0].dtype == np.uintp
    assert final[1].shape == (1,) and final[1].dtype == blocks.GEOMETRY_DTYPE and final[1].flags.c_contiguous
    assert runtime.argument_sizes(final) == (8, blocks.GEOMETRY_DTYPE.itemsize, 8)
    for number in (3, 2.5, True):
        with pytest.raises(TypeError, match="numpy scalars"):
            runtime.launch_arguments((number,), id)


@needs_gxx
def test_emulator_refuses_arguments_the_kernel_does_not_take(emu, rng):
    runtime_, _ = emu
    x = runtime_.xp.asarray(rng.standard_normal((1, 30, 40)).astype(np.float32))
    y = runtime_.xp.empty((1, 30, 40), np.float32)
    plan = make_plan(x.shape, x.dtype, np.ones((3, 3), np.float32), "same", "constant", 0.0, 1, 1, None, None, None,
                     "direct")
    launch = correlate_plan.plan_launch(ArrayView.of(x.shape, x.strides, x.dtype, x.ctypes.data),
                                        ArrayView.of(y.shape, y.strides, y.dtype, y.ctypes.data),
                                        np.ones((3, 3), np.float32), plan)
    args = [x, y, ByValue(launch.geometry), ByValue(launch.weights), ByValue(launch.epilogue), launch.cval]
    runtime_.launch(launch.filename, launch.name, launch.grid, launch.block, tuple(args))  # as planned: runs
    wrong_epilogue = ByValue(blocks.epilogue_block(np.dtype(np.float64), None, np.float32))
    with pytest.raises(RuntimeError, match="parameter 4 is 16 bytes in the kernel but the launch passed 32"):
        runtime_.launch(launch.filename, launch.name, launch.grid, launch.block, tuple(args[:4] + [wrong_epilogue] + args[5:]))
    with pytest.raises(RuntimeError, match="takes 6 parameters but the launch passed 5"):
        runtime_.launch(launch.filename, launch.name, launch.grid, launch.block, tuple(args[:5]))


# --- parameter blocks against the compiler's layout ----------------------------------------------

@needs_nvrtc
def test_parameter_blocks_have_nvrtcs_layout():
    compiler.compile_source(blocks.layout_probe(), "layout_probe.cu")   # raises with the log on any mismatch
    drifted = blocks.layout_probe().replace(f"== {blocks.GEOMETRY_DTYPE.fields['fold'][1]},",
                                            f"== {blocks.GEOMETRY_DTYPE.fields['fold'][1] + 8},")
    with pytest.raises(compiler.KernelCompileError, match="GcGeometry.fold"):
        compiler.compile_source(drifted, "layout_probe.cu")


def test_layout_probe_covers_every_field():
    probe = blocks.layout_probe()
    for ctype, dt in blocks.probe_blocks():
        assert f"sizeof({ctype}) differs" in probe
        for field in dt.names:
            assert f"{ctype}.{field} is not at offset" in probe


# --- one compile path: options, cache, parallel build --------------------------------------------

def test_compile_options_keep_ieee_semantics():
    opts = compiler.COMPILE_OPTIONS
    assert not set(opts) & set(compiler.FAST_MATH_FLAGS)
    assert "-ftz=false" in opts and "-prec-div=true" in opts and "-prec-sqrt=true" in opts


@needs_nvrtc
def test_compile_options_of_every_target():
    for arch in ("sm_80", "sm_90"):
        opts = compiler.options_for(arch)
        assert not set(opts) & set(compiler.FAST_MATH_FLAGS)
        assert f"-arch={arch}" in opts
    assert compiler.target("sm_999") == (f"-arch=compute_{max(compiler.nvrtc().getSupportedArchs())}", "ptx")
    with pytest.raises(ValueError, match="arch='gfx90a'"):
        compiler.target("gfx90a")


@needs_gxx
def test_float32_subnormals_are_kept(emu):
    # 1e-39 is a float32 subnormal: a flush-to-zero build would return zeros
    x = np.full(64, 1e-39, dtype=np.float32)
    k = np.ones(3, dtype=np.float32)
    y, names = harness.run(emu, x, k, "valid")
    plan = make_plan(x.shape, x.dtype, k, "valid", "constant", 0.0, 1, 1, None, None, None, "direct")
    expect = NumpyBackend().correlate(x, k, plan)
    assert names[-1].startswith("correlate_rows<float")
    assert (expect > 0).all() and np.array_equal(y, expect)


SMALL_BUILD = [("correlate_generic.cu", "correlate_generic<float, float, float, 0, int>"),
               ("correlate_generic.cu", "correlate_generic<double, double, double, 1, int>"),
               ("correlate_rows.cu", "correlate_rows<float, float, float, 0, int>"),
               ("correlate_tiled.cu", "correlate_tiled<float, float, float, 3, 3, 1, 0, 8, int>")]


@needs_nvrtc
def test_parallel_build_fills_the_cache_and_a_second_process_compiles_nothing(tmp_path):
    cache = compiler.KernelCache(tmp_path)
    report = compiler.build(SMALL_BUILD, "sm_90", jobs=2, cache=cache)
    assert (report.compiled, report.cached, report.failures) == (4, 0, [])
    assert [k.name for k in report.kernels] == sorted(n for _, n in SMALL_BUILD)
    for k in report.kernels:
        assert k.kind == "cubin" and k.image[:4] == b"\x7fELF" and k.lowered.startswith("_Z")
        assert k.resources()["registers"] > 0
    code = ("import sys; from gpuconv.backends.cuda import compiler; "
            f"r = compiler.build({SMALL_BUILD!r}, 'sm_90'); print(r.compiled, r.cached)")
    env = dict(os.environ, GPUCONV_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "4"]


@needs_nvrtc
def test_cache_recompiles_a_damaged_entry_and_keys_on_the_source(tmp_path, monkeypatch):
    cache = compiler.KernelCache(tmp_path)
    filename, name = SMALL_BUILD[0]
    first = cache.get(filename, name, "sm_90")
    key = cache.key(filename, name, "sm_90")
    (tmp_path / f"{key}.cubin").write_bytes(b"truncated")
    again = compiler.KernelCache(tmp_path)
    assert again.get(filename, name, "sm_90").image == first.image and again.compiled == 1
    # a different source text is a different entry
    original = compiler.kernel_source
    monkeypatch.setattr(compiler, "kernel_source", lambda f: "// edited\n" + original(f))
    assert cache.key(filename, name, "sm_90") != key


@needs_nvrtc
def test_compile_error_names_the_instance_and_keeps_the_log(tmp_path):
    with pytest.raises(compiler.KernelCompileError, match=r"(?s)correlate_tiled<float, float, float, 99, 99.*error: static assertion"):
        compiler.KernelCache(tmp_path).get("correlate_tiled.cu",
                                           "correlate_tiled<float, float, float, 99, 99, 1, 0, 8, int>", "sm_90")


def test_cache_dir_is_overridable(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUCONV_CACHE_DIR", str(tmp_path / "k"))
    assert compiler.default_cache_dir() == tmp_path / "k"
    monkeypatch.delenv("GPUCONV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiler.default_cache_dir() == tmp_path / "gpuconv" / "kernels"


# --- the device of the input -----------------------------------------------------------------------

@needs_gxx
@pytest.mark.parametrize("method", ["direct", "separable", "fft"])
def test_correlate_runs_on_the_device_holding_x(emu, rng, method):
    runtime_, backend = emu
    x = rng.standard_normal((2, 30, 40)).astype(np.float32)
    k = np.outer([1.0, 2.0, 1.0], [1.0, 0.5, -1.0]).astype(np.float32)
    with runtime_.device(1):
        xd = runtime_.xp.asarray(x)
    before = len(runtime_.launch_devices)
    plan = make_plan(x.shape, x.dtype, k, "same", "reflect", 0.0, 1, 1, None, None, None, method)
    y = backend.correlate(xd, k, plan)          # device 0 is current; x lives on device 1
    assert runtime_.device_id(y) == 1
    assert set(runtime_.launch_devices[before:]) == {1}
    harness.check(y, x, k, mode="same", boundary="reflect")


@needs_gxx
def test_conv_moves_weights_to_the_device_of_x(emu, rng):
    runtime_, backend = emu
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    with runtime_.device(1):
        xd = runtime_.xp.asarray(x)
    wd, bd = runtime_.xp.asarray(w), runtime_.xp.asarray(b)      # on device 0
    from gpuconv.plan import conv_plan

    plan = conv_plan(2, x.shape, x.dtype, w, b, 1, 1, 1, 1, "constant", None, "NCHW", None, None, None)
    before = len(runtime_.launch_devices)
    y = backend.conv(xd, wd, bd, plan)          # the emulator refuses a launch reading device 0 memory
    assert runtime_.launch_devices[before:] == [1] and runtime_.device_id(y) == 1
    from test_cuda_conv_emulated import check_exact

    check_exact(y, x, w, b, padding=1)


@needs_gxx
def test_api_allocates_on_the_device_of_x(emu, cuda_api):
    runtime_, _ = emu
    with runtime_.device(1):
        xd = runtime_.xp.asarray(np.ones((0, 5, 5), np.float32))   # an empty batch: no launch at all
    y = cuda_api.correlate(xd, np.ones((3, 3)), "same", backend="cuda")
    assert y.shape == (0, 5, 5) and runtime_.device_id(y) == 1


@needs_gxx
def test_out_on_another_device_is_refused(emu, cuda_api, rng):
    runtime_, _ = emu
    with runtime_.device(1):
        xd = runtime_.xp.asarray(rng.standard_normal((8, 8)).astype(np.float32))
    out = runtime_.xp.empty((8, 8), np.float32)
    with pytest.raises(ValueError, match="out is on GPU 0 but x is on GPU 1"):
        cuda_api.correlate(xd, np.ones((3, 3)), "same", out=out, backend="cuda")


# --- channels-last 1-D signals ----------------------------------------------------------------------

def test_stereo_signal_is_planned_on_the_rows_kernel():
    # the example: (2**20, 2) with 101 taps along axis 0 used 1 of 64 tile rows
    n = 2**20
    plan = make_plan((n, 2), np.float32, np.ones(101), "same", "constant", 0.0, 1, 1, 0, None, None, "direct")
    xv = ArrayView.of((n, 2), (8, 4), np.float32, 0)
    launch = correlate_plan.plan_launch(xv, xv, np.ones(101, np.float32), plan)
    assert launch.name == "correlate_rows<float, float, float, 0, int>"
    assert launch.grid == (2, n // 2048, 1)          # one row per channel, rows fastest
    g = launch.geometry
    assert int(g["fold"]) == 1 and list(g["in_stride"][1:]) == [1, 2] and list(g["out_shape"][1:]) == [2, n]


@needs_gxx
@pytest.mark.parametrize("k", [5, 101])
@pytest.mark.parametrize("boundary", ["constant", "symmetric"])
def test_channels_last_signals_on_the_rows_kernel(emu, rng, k, boundary):
    x = rng.standard_normal((3000, 2)).astype(np.float32)       # stereo, channels last
    kern = rng.standard_normal(k).astype(np.float32)
    y, names = harness.run(emu, x, kern, "same", axes=0, boundary=boundary, cval=0.25)
    assert names == ["correlate_rows<float, float, float, %d, int>" % {"constant": 0, "symmetric": 3}[boundary]]
    harness.check(y, x, kern, mode="same", axes=0, boundary=boundary, cval=0.25)
    xb = rng.standard_normal((2, 700, 4)).astype(np.float32)     # a batch of 4-channel signals
    y, names = harness.run(emu, xb, kern, "full", axes=1, boundary=boundary)
    assert names[0].startswith("correlate_rows<")
    harness.check(y, xb, kern, mode="full", axes=1, boundary=boundary)


# --- the CuPy functions the backend calls ----------------------------------------------------------

CUPY_USERS = ["gpuconv/backends/cuda/backend.py", "gpuconv/backends/cuda/fft.py", "gpuconv/backends/cuda/runtime.py"]


def _xp_uses(path: Path) -> tuple:
    """(attribute chains after `xp.` / `self.xp.`, names of methods called) in a source."""
    chains, methods = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            parts, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            names = ([inner.id] if isinstance(inner, ast.Name) else []) + list(reversed(parts))
            if "xp" in names[:-1]:
                last = len(names) - 1 - names[::-1].index("xp")
                chains.add(".".join(names[last + 1:]))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            methods.add(node.func.attr)
    return chains, methods


@needs_cupy
def test_every_cupy_function_the_backend_calls_exists():
    import cupy

    chains, methods = set(), set()
    for rel in CUPY_USERS:
        c, m = _xp_uses(ROOT / rel)
        chains |= c
        methods |= m
    assert {"fft.rfftn", "fft.irfftn", "take", "where", "moveaxis", "may_share_memory", "from_dlpack"} <= chains
    for chain in sorted(chains - {"__name__"}):
        obj = cupy
        for part in chain.split("."):
            assert hasattr(obj, part), f"cupy has no {chain} (used by the CUDA backend as xp.{chain})"
            obj = getattr(obj, part)
    array_methods = {m for m in methods if hasattr(np.ndarray, m)}
    assert {"astype", "reshape", "sum", "transpose", "copy"} <= array_methods
    missing = sorted(m for m in array_methods if not hasattr(cupy.ndarray, m))
    assert not missing, f"cupy.ndarray lacks methods the CUDA backend calls: {missing}"
