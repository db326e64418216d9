"""`gpuconv apply` on real photo and scan collections: nothing lost (bit depth, float-ness,
frames, metadata), nothing half-written, every refusal one clear line. Each test failed on the
pipeline before this issue's fixes."""
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpuconv import cli, filters, imagefile, pipeline
from gpuconv.imagefile import ImageFile, read_file, write_file

ROOT = Path(__file__).resolve().parents[1]
needs_cv2 = pytest.mark.skipif(not imagefile.opencv_available(), reason="OpenCV (the opencv extra) is not installed")


def apply(*args) -> int:
    return cli.main(["apply", *map(str, args), "-q"])


def files(folder) -> list:
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture
def gray_tif(tmp_path, rng):
    src = tmp_path / "scan.tif"
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(src)
    return src


# --- 1, 2, 10: float results and dtypes the format cannot hold --------------------------------------

def test_float_result_into_png_is_refused_up_front_naming_formats_that_hold_it(tmp_path, rng, capsys, monkeypatch):
    src = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(src)
    monkeypatch.setattr(pipeline, "read_file", lambda p: pytest.fail("decoded before the format check"))
    assert apply("sobel:left", src, "-o", tmp_path / "out", "--out-dtype", "float32") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.png" in err and ".npy" in err and "PNG cannot hold float32" in err
    assert files(tmp_path / "out") == []       # was: a PNG of 0s and 255s, exit 0


def test_float_result_kept_exactly_in_tiff_and_npy(tmp_path, gray_tif):
    k = np.array([[1.0, 0.0, -1.0]]) / 3
    np.save(tmp_path / "k.npy", k)
    out = tmp_path / "out"
    assert apply(tmp_path / "k.npy", gray_tif, "-o", out, "--boundary", "reflect", "--out-dtype", "float32") == 0
    expect = filters.apply(np.asarray(Image.open(gray_tif)), k, boundary="reflect", out_dtype=np.float32)
    got = read_file(out / "scan_k.tif").frames[0]
    assert got.dtype == np.float32 and np.array_equal(got, expect) and expect.min() < 0   # negatives kept
    assert apply(tmp_path / "k.npy", gray_tif, "-o", out, "--out-dtype", "float32", "--format", "npy",
                 "--boundary", "reflect") == 0
    assert np.array_equal(np.load(out / "scan_k.npy"), expect)


@needs_cv2
def test_rgb_float_tiff_through_opencv_and_refused_without_it(tmp_path, rng, capsys, monkeypatch):
    src = tmp_path / "rgb.tif"
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(src)
    assert apply("sobel:left", src, "-o", tmp_path / "out", "--out-dtype", "float32") == 0
    expect = filters.apply(np.asarray(Image.open(src)), "sobel:left", out_dtype=np.float32)
    assert np.array_equal(read_file(tmp_path / "out" / "rgb_sobel_left.tif").frames[0], expect)
    monkeypatch.setattr(imagefile, "opencv_available", lambda: False)
    assert apply("sobel:left", src, "-o", tmp_path / "out2", "--out-dtype", "float32") == 2
    assert "needs OpenCV" in capsys.readouterr().err


def test_float_tiff_input_stays_float(tmp_path, rng):
    src = tmp_path / "f.tif"
    values = (rng.random((16, 16)) * 255).astype(np.float32)
    Image.fromarray(values, "F").save(src)
    assert apply("identity", src, "-o", tmp_path / "out") == 0
    got = read_file(tmp_path / "out" / "f_identity.tif").frames[0]
    assert got.dtype == np.float32 and np.array_equal(got, values)   # was 8-bit, 98.9% at 255


@pytest.mark.parametrize("dtype", ["int16", "int64"])
def test_dtypes_no_image_format_holds_are_refused_before_any_work(tmp_path, rng, capsys, dtype, monkeypatch):
    src = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(src)
    monkeypatch.setattr(pipeline, "read_file", lambda p: pytest.fail("decoded before the format check"))
    assert apply("box", src, "-o", tmp_path / "out", "--out-dtype", dtype) == 2
    assert f"PNG cannot hold {dtype}" in capsys.readouterr().err
    monkeypatch.undo()
    assert apply("box", src, "-o", tmp_path / "out", "--out-dtype", dtype, "--format", "npy") == 0
    assert np.load(tmp_path / "out" / "a_box.npy").dtype == dtype


# --- 3: every frame ----------------------------------------------------------------------------------

def test_animated_gif_every_frame_with_its_timing(tmp_path, rng):
    frames = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(tmp_path / "anim.gif", save_all=True, append_images=ims[1:], duration=[80, 120, 200], loop=2)
    assert apply("box", tmp_path / "anim.gif", "-o", tmp_path / "out") == 0
    out = Image.open(tmp_path / "out" / "anim_box.gif")
    assert out.n_frames == 3 and out.info["loop"] == 2      # was: one frame
    durations = []
    for i in range(3):
        out.seek(i)
        durations.append(out.info["duration"])
    assert durations == [80, 120, 200]


def test_multipage_tiff_every_page_filtered(tmp_path, rng):
    pages = [rng.integers(0, 256, (12, 16), dtype=np.uint8) for _ in range(4)]
    Image.fromarray(pages[0]).save(tmp_path / "doc.tif", save_all=True, append_images=[Image.fromarray(p) for p in pages[1:]])
    assert apply("sharpen", tmp_path / "doc.tif", "-o", tmp_path / "out") == 0
    got = read_file(tmp_path / "out" / "doc_sharpen.tif").frames
    assert got.shape == (4, 12, 16)
    for g, p in zip(got, pages):
        assert np.array_equal(g, filters.sharpen(p))


# --- 4: 16-bit colour --------------------------------------------------------------------------------

@needs_cv2
def test_sixteen_bit_rgb_png_keeps_sixteen_bits(tmp_path, rng):
    import cv2

    img = rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), img[:, :, ::-1])
    assert Image.open(tmp_path / "deep.png").mode == "RGB"              # what Pillow alone sees: 8 bits
    assert apply("box", tmp_path / "deep.png", "-o", tmp_path / "out") == 0
    got = read_file(tmp_path / "out" / "deep_box.png").frames[0]
    assert got.dtype == np.uint16 and np.array_equal(got, filters.box_blur(img))


@needs_cv2
def test_sixteen_bit_rgb_without_opencv_is_refused_by_name(tmp_path, rng, capsys, monkeypatch):
    import cv2

    cv2.imwrite(str(tmp_path / "deep.png"), rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16))
    monkeypatch.setattr(imagefile, "opencv_available", lambda: False)
    assert apply("box", tmp_path / "deep.png", "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "deep.png" in err and "OpenCV" in err


# --- 5: temporary files, SIGTERM, kill -9 ---------------------------------------------------------------

def test_temporary_files_are_never_inputs_and_stale_ones_are_removed(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(src / "a.png")
    done = subprocess.run([sys.executable, "-c", "pass"])             # a pid that no longer runs
    stale = src / f".b.png.gpuconv-{done.returncode + 999999}-0123abcd.tmp"
    stale.write_bytes(b"half a png")
    assert pipeline.is_temporary(stale)
    assert [p.name for p in pipeline.expand_inputs([str(src)])[0]] == ["a.png"]
    assert [p.name for p in pipeline.expand_inputs([str(src / "*")])[0]] == ["a.png"]
    assert apply("box", src, "-o", src, "--suffix", "_box") == 0       # the folder is also the output folder
    assert not stale.exists() and files(src) == ["a.png", "a_box.png"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_cleans_up_like_ctrl_c(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import time
        from gpuconv import cli, imagefile, pipeline
        real = imagefile.write_file
        def slow(path, *a, **k):
            real(path, *a, **k)
            time.sleep(3)            # the temporary file exists while this sleeps
        pipeline.write_file = slow
        raise SystemExit(cli.main(["apply", "box", {str(src)!r}, "-o", {str(out)!r}, "-q", "--workers", "2"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.is_dir() and any(pipeline.is_temporary(p) for p in out.iterdir())):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err
    assert not [p for p in out.iterdir() if pipeline.is_temporary(p)]       # was: truncated .tmp.png files
    for p in out.iterdir():
        assert read_file(p).frames.shape == (1, 32, 32, 3)                  # whatever was written is whole


# --- 6, 7, 11: kernels -------------------------------------------------------------------------------------

def test_nan_kernel_file_and_tiny_sigma_end_to_end(tmp_path, rng, capsys):
    src = tmp_path / "a.png"
    img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(img).save(src)
    k = np.ones((3, 3)) / 9
    k[1, 1] = np.nan
    np.save(tmp_path / "nan.npy", k)
    assert apply(tmp_path / "nan.npy", src, "-o", tmp_path / "out") == 0      # was: SVD did not converge
    assert apply("gaussian:3:1e-300", src, "-o", tmp_path / "out") == 0       # a NaN kernel before
    assert np.array_equal(read_file(tmp_path / "out" / "a_gaussian_3_1e_300.png").frames[0], img)   # identity


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (None, "complex"),
    ("strings", "holds <U1 values, not numbers"),
])
def test_bad_kernel_files_exit_2_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "k.npy"
    if content is None:
        np.save(path, np.ones((3, 3)) * (1 + 2j))
    elif content == "strings":
        np.save(path, np.array([["a", "b"], ["c", "d"]]))
    else:
        path.write_bytes(content)
    assert apply(path, tmp_path, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "k.npy" in err and message in err and "Traceback" not in err


def test_empty_csv_kernel_says_so_without_numpy_warnings(tmp_path, capsys):
    (tmp_path / "k.csv").write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert apply(tmp_path / "k.csv", tmp_path, "-o", tmp_path / "out") == 2
    assert "k.csv holds shape" in capsys.readouterr().err


def test_huge_kernels_are_refused_with_the_limit(tmp_path, capsys):
    assert apply("box:100000", tmp_path, "-o", tmp_path / "out") == 2          # was: out of memory
    assert "limit of 1025" in capsys.readouterr().err
    np.save(tmp_path / "big.npy", np.ones((2000, 2000), np.float32))
    assert apply(tmp_path / "big.npy", tmp_path, "-o", tmp_path / "out") == 2
    assert "the limit is 1025 per side" in capsys.readouterr().err


def test_kernel_larger_than_the_image_in_valid_mode_is_skipped_by_name(tmp_path, rng, capsys):
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(tmp_path / "large.png")
    assert apply("box:31", tmp_path, "-o", tmp_path / "out", "--mode", "valid") == 1
    err = capsys.readouterr().err
    assert "small.png: the 31x31 kernel is larger than the 16x16 image" in err
    assert files(tmp_path / "out") == ["large_box_31.png"]


# --- 8, 12, 14, 15: usage errors are one line, exit 2 ----------------------------------------------------

def test_output_folder_problems_exit_2_in_one_line(tmp_path, gray_tif, capsys):
    (tmp_path / "afile").write_text("x")
    assert apply("box", gray_tif, "-o", tmp_path / "afile") == 2
    assert apply("box", gray_tif, "-o", "/proc/gpuconv-cannot-write-here") == 2
    assert cli.main(["demo", "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "Traceback" not in err and "is a file" in err


@pytest.mark.parametrize("suffix", ["/../../escaped", "_a/b", "..", "x\\y"])
def test_suffixes_cannot_leave_the_output_folder(tmp_path, gray_tif, capsys, suffix):
    assert apply("box", gray_tif, "-o", tmp_path / "out", "--suffix", suffix) == 2
    assert "path separator" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*escaped*"))


@pytest.mark.parametrize("option, value", [("--max-pixels", "-5"), ("--max-pixels", "0"), ("--quality", "101"),
                                           ("--png-compression", "10")])
def test_numeric_options_are_validated(tmp_path, gray_tif, capsys, option, value):
    assert apply("box", gray_tif, "-o", tmp_path / "out", option, value) == 2
    assert f"{option} {value} is out of range" in capsys.readouterr().err


def test_skipped_files_are_named_once(tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n no")
    assert apply("box", tmp_path / "broken.png", "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.count("broken.png") == 1 and "Traceback" not in err


def test_doctor_rejects_a_bad_arch(capsys):
    assert cli.main(["doctor", "--arch", "sm_xx"]) == 2
    assert cli.main(["build-kernels", "--arch", "gfx90a"]) == 2
    assert "is not a CUDA architecture" in capsys.readouterr().err


def test_recursive_globs_and_folders(tmp_path, rng):
    for sub in ("a", "a/b"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / sub / "x.png")
    found, _ = pipeline.expand_inputs([str(tmp_path / "**" / "*.png")])
    assert len(found) == 2
    assert len(pipeline.expand_inputs([str(tmp_path / "a")])[0]) == 1
    assert len(pipeline.expand_inputs([str(tmp_path / "a")], recursive=True)[0]) == 2


# --- 9: memory ----------------------------------------------------------------------------------------------

def test_an_image_that_does_not_fit_in_memory_is_skipped_by_name(tmp_path, rng, capsys, monkeypatch):
    for name in ("a.png", "huge.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / name)
    real = pipeline.read_file

    def read(path):
        if Path(path).name == "huge.png":
            raise MemoryError
        return real(path)

    monkeypatch.setattr(pipeline, "read_file", read)
    assert apply("box", tmp_path, "-o", tmp_path / "out") == 1              # was: the whole run aborted
    assert "huge.png: does not fit in memory" in capsys.readouterr().err
    assert files(tmp_path / "out") == ["a_box.png", "c_box.png"]


# --- 13: metadata, quality, modes -------------------------------------------------------------------------------

def test_icc_profile_dpi_and_exif_are_kept(tmp_path, rng):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    exif = im.getexif()
    exif[0x010F] = "gpuconv camera"                 # Make
    for ext in (".jpg", ".png", ".tif"):
        im.save(tmp_path / f"m{ext}", icc_profile=icc, dpi=(300, 300), exif=exif.tobytes())
        assert apply("box", tmp_path / f"m{ext}", "-o", tmp_path / "out") == 0
        out = Image.open(tmp_path / "out" / f"m_box{ext}")
        assert out.info.get("icc_profile") == icc, ext
        assert tuple(round(v) for v in out.info["dpi"]) == (300, 300), ext
        assert out.getexif().get(0x010F) == "gpuconv camera", ext


def test_jpeg_keeps_its_quality_unless_told(tmp_path):
    from gpuconv.io import sample_image_path

    photo = np.asarray(Image.open(sample_image_path()).convert("RGB"))
    Image.fromarray(photo).save(tmp_path / "q95.jpg", quality=95)
    assert apply("identity", tmp_path / "q95.jpg", "-o", tmp_path / "out") == 0
    size_in, size_out = (tmp_path / "q95.jpg").stat().st_size, (tmp_path / "out" / "q95_identity.jpg").stat().st_size
    assert 0.85 < size_out / size_in < 1.15                  # was 4.4 KB -> 1.8 KB (quality 75)
    assert Image.open(tmp_path / "out" / "q95_identity.jpg").quantization == Image.open(tmp_path / "q95.jpg").quantization
    assert apply("identity", tmp_path / "q95.jpg", "-o", tmp_path / "out50", "--quality", "50") == 0
    assert (tmp_path / "out50" / "q95_identity.jpg").stat().st_size < 0.7 * size_in


def test_la_stays_la_and_png_compression_is_a_choice(tmp_path, rng):
    la = rng.integers(0, 256, (64, 64, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert apply("box", tmp_path / "la.png", "-o", tmp_path / "out") == 0
    out = Image.open(tmp_path / "out" / "la_box.png")
    assert out.mode == "LA" and np.array_equal(np.asarray(out), filters.box_blur(la))    # was RGBA
    assert apply("box", tmp_path / "la.png", "-o", tmp_path / "fast", "--png-compression", "0") == 0
    assert (tmp_path / "fast" / "la_box.png").stat().st_size > (tmp_path / "out" / "la_box.png").stat().st_size


def test_write_file_refuses_what_a_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="JPEG cannot hold uint8 with 4 channel"):
        write_file(tmp_path / "a.jpg", ImageFile(np.zeros((1, 4, 4, 4), np.uint8), "PNG"))
    with pytest.raises(ValueError, match="JPEG holds one frame, not 2"):
        write_file(tmp_path / "a.jpg", ImageFile(np.zeros((2, 4, 4), np.uint8), "GIF"))


# --- the GPU pipeline's staging, on the kernel emulator ---------------------------------------------------

@pytest.mark.skipif(__import__("shutil").which("g++") is None, reason="the emulator needs g++")
def test_gpu_staging_alternates_streams_and_matches_the_cpu(tmp_path, rng, emu, cuda_api, monkeypatch):
    import gpuconv.backends

    runtime, backend = emu
    monkeypatch.setattr(gpuconv.backends, "get_backend", lambda name: backend)
    src = tmp_path / "in"
    src.mkdir()
    images = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(5)]
    for i, img in enumerate(images):
        Image.fromarray(img).save(src / f"{i}.png")
    runtime.uploads = []
    report = pipeline.run("sharpen", sorted(src.iterdir()), tmp_path / "gpu", backend="cuda", batch_size=2)
    assert report.ok and len(report.written) == 5
    assert runtime.uploads == ["stream 1", "stream 2", "stream 1"]     # 3 batches, two streams in turn
    for i, img in enumerate(images):
        assert np.array_equal(read_file(tmp_path / "gpu" / f"{i}.png").frames[0], filters.sharpen(img))


def test_gif_transparency_survives(tmp_path, rng):
    frames = []
    for _ in range(2):
        f = rng.integers(0, 256, (16, 20, 4), dtype=np.uint8)
        f[..., 3] = 255
        f[:, :8, 3] = 0                                      # the left part transparent
        frames.append(f)
    write_file(tmp_path / "a.gif", ImageFile(np.stack(frames), "GIF", {"duration": [40, 40], "loop": 0}))
    back = read_file(tmp_path / "a.gif").frames
    assert back.shape == (2, 16, 20, 4)
    assert (back[:, :, :8, 3] == 0).all() and (back[:, :, 8:, 3] == 255).all()
    assert apply("box", tmp_path / "a.gif", "-o", tmp_path / "out") == 0
    out = read_file(tmp_path / "out" / "a_box.gif").frames
    assert out.shape == (2, 16, 20, 4) and (out[:, :, :6, 3] == 0).all() and (out[:, :, 10:, 3] == 255).all()


@pytest.mark.parametrize("mode, transparency", [("1", 0), ("P", 0), ("L", None), ("LA", None), ("RGB", (0, 0, 0)),
                                                ("RGBA", None), ("CMYK", None)])
def test_header_promises_the_channels_decoding_gives(tmp_path, rng, mode, transparency):
    # the format check before any work trusts probe(); a 1-bit PNG with a transparent
    # colour decoded to RGBA while its header said one channel
    src = tmp_path / ("a.tif" if mode == "CMYK" else "a.png")
    im = Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)).convert(mode)
    im.save(src, **({} if transparency is None else {"transparency": transparency}))
    header, frames = imagefile.probe(src), read_file(src).frames
    assert (header.channels, header.dtype) == (1 if frames.ndim == 3 else frames.shape[3], frames.dtype)
