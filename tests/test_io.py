"""Pillow I/O round trips, the float-to-uint8 rule, grayscale as Pillow computes it."""
import numpy as np
import pytest
from PIL import Image

from gpuconv.io import read_image, sample_image_path, to_gray, to_uint8, write_image


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 3), (9, 7, 4)])
@pytest.mark.parametrize("ext", [".png", ".tiff", ".webp"])
def test_uint8_round_trip(tmp_path, rng, shape, ext):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / f"a{ext}"
    write_image(path, img)
    back = read_image(path)
    if ext == ".webp" and len(shape) == 2:  # WebP has no grayscale mode
        back = back[..., 0]
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, img)


def test_uint16_grayscale_round_trip(tmp_path, rng):
    img = rng.integers(0, 65536, (6, 5), dtype=np.uint16)
    write_image(tmp_path / "a.png", img)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img)


def test_jpeg_is_written_and_read(tmp_path, rng):
    ramp = np.linspace(0, 255, 32)
    img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (32, 1)), np.full((32, 32), 90.0)], -1).astype(np.uint8)
    write_image(tmp_path / "a.jpg", img)
    back = read_image(tmp_path / "a.jpg")
    assert back.shape == (32, 32, 3) and np.abs(back.astype(int) - img).mean() < 4
    with pytest.raises(ValueError, match="JPEG cannot store an alpha"):
        write_image(tmp_path / "b.jpg", np.zeros((4, 4, 4), np.uint8))


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((4, 6, 3), np.uint8)
    img[0, 0] = 255
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    back = read_image(tmp_path / "r.jpg")
    assert back.shape == (6, 4, 3)


def test_float_rule_and_errors():
    assert to_uint8(np.array([-1.0, 0.0, 0.5, 1.0, 7.0, np.nan])).tolist() == [0, 0, 128, 255, 255, 0]
    with pytest.raises(ValueError, match="int32"):
        to_uint8(np.array([1, 2], dtype=np.int32))
    with pytest.raises(ValueError, match=r"shape \(4, 4, 5\)"):
        write_image("x.png", np.zeros((4, 4, 5), np.uint8))


def test_palette_image_becomes_rgb(tmp_path):
    Image.new("P", (5, 4)).save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (4, 5, 3)


def test_gray_equals_pillow(rng):
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_gray(img), np.asarray(Image.fromarray(img).convert("L")))
    f = img.astype(np.float64) / 255
    np.testing.assert_allclose(to_gray(f), f @ [0.299, 0.587, 0.114])


def test_sample_photograph_ships():
    img = read_image(sample_image_path())
    assert img.shape == (256, 384, 3) and img.std() > 20
