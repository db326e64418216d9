"""Images as arrays, for Python users: read_image, write_image (display-oriented: floats in
[0, 1] become 8-bit), grayscale conversion. `gpuconv apply` uses gpuconv.imagefile, which
keeps every frame, bit depth and float-ness, and the metadata.

Arrays are (H, W) for one channel and (H, W, C) otherwise: uint8 for 8-bit images, uint16 for
16-bit ones. Writing takes uint8 (L, LA, RGB, RGBA), uint16 (H, W) (16-bit grayscale), or
floats, which are clipped to [0, 1] and scaled to 0..255 (rounded half to even).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from .imagefile import CHANNEL_MODES, ImageReadError, read_file

__all__ = ["ImageReadError", "read_image", "sample_image_path", "to_gray", "to_uint8", "write_image"]


def sample_image_path() -> Path:
    """Path of the photograph shipped with gpuconv (CC0, see gpuconv/data/LICENSES.txt).

    >>> sample_image_path().name
    'coffee.png'
    """
    return Path(str(resources.files("gpuconv").joinpath("data/coffee.png")))


def read_image(path) -> np.ndarray:
    """Read an image file into an array, with its EXIF orientation applied.

    L -> (H, W) uint8; LA -> (H, W, 2); RGB -> (H, W, 3); RGBA and palette images with
    transparency -> (H, W, 4) uint8; 16-bit files keep 16 bits (uint16; 16-bit colour needs
    OpenCV, the `opencv` extra); float TIFFs stay float32; other modes (P, CMYK, YCbCr, 1)
    become RGB, RGBA or L. The first frame of an animation (gpuconv.imagefile.read_file
    gives every frame and the metadata). Files that cannot be read (missing, corrupt,
    truncated, not an image, over Pillow's decompression-bomb limit) raise ImageReadError,
    which names the file.

    Examples
    --------
    >>> read_image(sample_image_path()).shape
    (256, 384, 3)
    """
    return read_file(path).frames[0]


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
    """Write an (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) array; the format
    follows the file extension (PNG, JPEG, TIFF, WebP, ...).

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
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in CHANNEL_MODES):
        raise ValueError(f"image has shape {image.shape}; accepted: (H, W), (H, W, 1), (H, W, 2), (H, W, 3), (H, W, 4)")
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
