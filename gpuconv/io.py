"""Reading and writing images with Pillow, and grayscale conversion.

Arrays are (H, W) for one channel and (H, W, C) otherwise: uint8 for 8-bit images, uint16 for
16-bit grayscale. Writing takes uint8 (L, RGB, RGBA), uint16 (H, W) (16-bit grayscale), or
floats, which are clipped to [0, 1] and scaled to 0..255 (rounded half to even).
"""
from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

_CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def sample_image_path() -> Path:
    """Path of the photograph shipped with gpuconv (CC0, see gpuconv/data/LICENSES.txt).

    >>> sample_image_path().name
    'coffee.png'
    """
    return Path(str(resources.files("gpuconv").joinpath("data/coffee.png")))


class ImageReadError(ValueError):
    """An image file that cannot be read: missing, corrupt, not an image, or too large."""


def _open(path):
    """Image.open with Pillow's decompression-bomb limit kept on and its errors named.

    Pillow warns above PIL.Image.MAX_IMAGE_PIXELS and refuses above twice that; both become an
    ImageReadError that names the file and how to raise the limit for a trusted file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageReadError(
            f"{path}: larger than Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels ({exc}); "
            "if you trust the file, raise the limit with `gpuconv apply --max-pixels N` or "
            "PIL.Image.MAX_IMAGE_PIXELS = N") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise ImageReadError(f"{path}: cannot be read as an image ({exc})") from None


def read_image(path) -> np.ndarray:
    """Read an image file into an array, with its EXIF orientation applied.

    L -> (H, W) uint8; 16-bit grayscale -> (H, W) uint16; RGB -> (H, W, 3) uint8;
    RGBA and palette images with transparency -> (H, W, 4) uint8; other modes (P, CMYK,
    YCbCr, 1, LA) are converted to RGB, RGBA or L first. Files that cannot be read (missing,
    corrupt, truncated, not an image, over Pillow's decompression-bomb limit) raise
    ImageReadError, which names the file.

    Examples
    --------
    >>> read_image(sample_image_path()).shape
    (256, 384, 3)
    """
    with _open(path) as im:
        try:
            return _decode(ImageOps.exif_transpose(im))
        except OSError as exc:  # truncated or corrupt pixel data shows only when decoding
            raise ImageReadError(f"{path}: cannot be decoded ({exc})") from None


def _decode(im) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im, dtype=np.uint16).copy()
    if im.mode == "I":  # Pillow's 32-bit integer mode, which 16-bit PNGs often load as
        arr = np.asarray(im)
        return arr.astype(np.uint16) if arr.min() >= 0 and arr.max() <= 65535 else arr.astype(np.int32)
    if im.mode == "F":
        return np.asarray(im, dtype=np.float32).copy()
    if im.mode not in ("L", "RGB", "RGBA"):
        has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else ("L" if im.mode == "1" else "RGB"))
    return np.asarray(im).copy()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 as written to files: uint8 unchanged; floats clipped to [0, 1] and scaled to
    0..255, rounded half to even; other dtypes raise (convert them explicitly).

    >>> to_uint8(np.array([-0.5, 0.5, 2.0])).tolist()
    [0, 128, 255]
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f":
        return np.rint(np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"image has dtype {image.dtype}; write uint8, uint16 (grayscale) or floats in [0, 1] "
                     f"(for other integers, convert first, e.g. with out_dtype=np.uint8)")


def write_image(path, image) -> None:
    """Write an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array; the format follows the
    file extension (PNG, JPEG, TIFF, WebP, ...).

    uint16 (H, W) arrays are written as 16-bit grayscale (PNG, TIFF). Floats follow
    `to_uint8`. JPEG has no alpha: RGBA arrays are refused for .jpg/.jpeg. WebP is written
    lossless (and keeps the colour under transparent pixels); it has no grayscale mode, so
    (H, W) images read back as three equal channels.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ramp.png"
    >>> write_image(path, np.linspace(0.0, 1.0, 12).reshape(3, 4))
    >>> read_image(path)[0].tolist()
    [0, 23, 46, 70]
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in _CHANNEL_MODES):
        raise ValueError(f"image has shape {image.shape}; accepted: (H, W), (H, W, 1), (H, W, 3), (H, W, 4)")
    path = Path(path)
    if image.dtype == np.uint16 and image.ndim == 2:
        Image.fromarray(image).save(path)
        return
    image = to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 4 and path.suffix.lower() in (".jpg", ".jpeg"):
        raise ValueError(f"{path.name}: JPEG cannot store an alpha channel; write PNG/TIFF/WebP or drop the alpha")
    options = {"lossless": True, "exact": True} if path.suffix.lower() == ".webp" else {}
    Image.fromarray(image).save(path, **options)


def to_gray(image) -> np.ndarray:
    """Grayscale by ITU-R 601-2 luma, L = R*299/1000 + G*587/1000 + B*114/1000 (Pillow's "L").

    uint8 RGB(A) gives uint8 rounded as Pillow does; float RGB gives float. Alpha is ignored;
    (H, W) images are returned unchanged.

    >>> to_gray(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)).tolist()
    [[76, 150, 29]]
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image has shape {image.shape}; to_gray takes (H, W), (H, W, 3) or (H, W, 4)")
    rgb = image[:, :, :3]
    if image.dtype == np.uint8:
        # Pillow: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
        acc = rgb[..., 0].astype(np.uint32) * 19595 + rgb[..., 1].astype(np.uint32) * 38470 + rgb[..., 2].astype(np.uint32) * 7471
        return ((acc + 0x8000) >> 16).astype(np.uint8)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
