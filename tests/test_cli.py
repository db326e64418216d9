"""`gpuconv` end to end in a temporary folder: globs, folders, kernel files, corrupt input,
existing outputs, atomic writes, exit codes."""
import os

import numpy as np
import pytest
from conftest import CUDA
from PIL import Image

from gpuconv import cli, filters, pipeline
from gpuconv.imagefile import ImageFile
from gpuconv.io import ImageReadError, read_image, write_image


@pytest.fixture
def photos(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    images = {}
    for name, shape in [("a.png", (20, 30, 3)), ("b.png", (20, 30, 3)), ("c.png", (16, 18)), ("d.tif", (20, 30, 3))]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        write_image(src / name, img)
        images[name] = img
    return src, images


def test_apply_folder_writes_every_image_filtered(tmp_path, photos):
    src, images = photos
    out = tmp_path / "out" / "deeper"
    assert cli.main(["apply", "sharpen", str(src), "-o", str(out), "--device", "cpu", "-q", "--batch-size", "2"]) == 0
    for name, img in images.items():
        stem, ext = os.path.splitext(name)
        np.testing.assert_array_equal(read_image(out / f"{stem}_sharpen{ext}"), filters.sharpen(img))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_globs_and_kernel_files(tmp_path, photos):
    src, images = photos
    k = np.array([[0.0, 1.0], [2.0, -1.0]])
    np.save(tmp_path / "k.npy", k)
    np.savetxt(tmp_path / "k.csv", k, delimiter=",")
    np.savetxt(tmp_path / "k.txt", k)
    for kfile in ("k.npy", "k.csv", "k.txt"):
        out = tmp_path / f"out_{kfile}"
        assert cli.main(["apply", str(tmp_path / kfile), str(src / "*.png"), "-o", str(out), "-q"]) == 0
        written = sorted(p.name for p in out.iterdir())
        assert written == ["a_k.png", "b_k.png", "c_k.png"]
        np.testing.assert_array_equal(read_image(out / "a_k.png"), filters.apply(images["a.png"], k))


def test_corrupt_file_is_named_skipped_and_fails_the_run(tmp_path, photos, capsys):
    src, _ = photos
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (src / "truncated.png").write_bytes((src / "a.png").read_bytes()[:60])
    out = tmp_path / "out"
    assert cli.main(["apply", "box", str(src), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "truncated.png" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_box.png", "b_box.png", "c_box.png", "d_box.tif"]


def test_existing_output_kept_unless_overwrite(tmp_path, photos, capsys):
    src, images = photos
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_box.png").write_bytes(b"keep me")
    assert cli.main(["apply", "box", str(src / "a.png"), "-o", str(out), "-q"]) == 1
    assert (out / "a_box.png").read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["apply", "box", str(src / "a.png"), "-o", str(out), "-q", "--overwrite"]) == 0
    np.testing.assert_array_equal(read_image(out / "a_box.png"), filters.box_blur(images["a.png"]))


def test_never_writes_over_an_input(tmp_path, photos, capsys):
    src, _ = photos
    before = (src / "a.png").read_bytes()
    assert cli.main(["apply", "box", str(src / "a.png"), "-o", str(src), "--suffix", "", "-q", "--overwrite"]) == 1
    assert (src / "a.png").read_bytes() == before
    assert "would replace an input" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, photos, capsys):
    src, _ = photos
    assert cli.main(["apply", "nosuchkernel", str(src), "-o", str(tmp_path / "o")]) == 2
    assert "unknown kernel 'nosuchkernel'" in capsys.readouterr().err
    if not CUDA:
        assert cli.main(["apply", "box", str(src), "-o", str(tmp_path / "o"), "--device", "gpu"]) == 2
        assert "backend='cuda'" in capsys.readouterr().err
    assert cli.main(["apply", "box", str(src), "-o", str(tmp_path / "o"), "--out-dtype", "complex64"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["apply", "box", str(src), "-o", str(tmp_path / "o"), "--boundary", "nearest"])


def test_decompression_bomb_limit_is_named(tmp_path, monkeypatch):
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageReadError, match=r"big.png: 10000 pixels, over the decompression-bomb limit of 1000 pixels.*--max-pixels"):
        read_image(tmp_path / "big.png")
    out = tmp_path / "out"
    assert cli.main(["apply", "box", str(tmp_path / "big.png"), "-o", str(out), "-q", "--max-pixels", "20000"]) == 0


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def failing_write(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_file", failing_write)
    with pytest.raises(KeyboardInterrupt):
        pipeline.write_atomic(tmp_path / "x.png", ImageFile(np.zeros((1, 4, 4), np.uint8), "PNG"), overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_kernels_and_demo_commands(tmp_path, capsys):
    assert cli.main(["kernels"]) == 0
    listing = capsys.readouterr().out
    assert "sobel_left (3x3)" in listing and "gaussian:N" in listing
    assert cli.main(["demo", "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "gallery.png").is_file() and len(list((tmp_path / "d" / "inputs").iterdir())) == 4


def test_python_m_gpuconv(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gpuconv", "kernels"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "sharpen" in done.stdout
