"""Image files as `gpuconv apply` reads and writes them: every frame, the bit depth and
float-ness of the pixels, and what a user expects kept (ICC profile, resolution, EXIF, the
JPEG quantisation tables, animation timing), or a refusal that names the file and a format
that can hold the result. Nothing is dropped, clipped or narrowed silently.

Codecs: Pillow for everything it holds exactly; OpenCV (the optional `opencv` extra) for
16-bit colour, which Pillow reads as 8-bit, for multi-channel float or 16-bit TIFF, which
Pillow cannot write, and for PNG encoding where there is no metadata to keep (30% faster at
the same zlib level). OpenCV keeps the pixels but not the metadata. Without OpenCV 16-bit
colour and multi-channel float are refused by name. `.npy` (numpy's own format) holds any
result, every frame stacked.

Pixel arrays: (F, H, W) for one channel, (F, H, W, C) otherwise, F frames (1 for a still):
uint8 for 8-bit, uint16 for 16-bit, int32 for Pillow's 32-bit integer images, float32 for
float TIFFs.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence

from .optional import opencv_available

# file extension -> format (Pillow's name, and NPY for numpy's)
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
           ".bmp": "BMP", ".gif": "GIF", ".ppm": "PPM", ".pgm": "PPM", ".pbm": "PPM", ".npy": "NPY"}
# what each format holds: dtype -> channel counts, by Pillow ("pil") or OpenCV ("cv2")
_HOLDS = {
    "PNG": {"uint8": {"pil": {1, 2, 3, 4}}, "uint16": {"pil": {1}, "cv2": {3, 4}}},
    "JPEG": {"uint8": {"pil": {1, 3}}},
    "TIFF": {"uint8": {"pil": {1, 2, 3, 4}}, "uint16": {"pil": {1}, "cv2": {3, 4}},
             "float32": {"pil": {1}, "cv2": {3, 4}}, "int32": {"pil": {1}}},
    "WEBP": {"uint8": {"pil": {1, 2, 3, 4}}},
    "BMP": {"uint8": {"pil": {1, 3}}},
    "GIF": {"uint8": {"pil": {1, 3, 4}}},
    "PPM": {"uint8": {"pil": {1, 3}}, "uint16": {"pil": {1}}},
}
MULTI_FRAME = {"PNG", "TIFF", "GIF", "WEBP", "NPY"}
DEFAULT_JPEG_QUALITY = 95
DEFAULT_PNG_COMPRESSION = 6   # zlib's and Pillow's default; 1 encodes ~3x faster, files ~15% larger
CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}   # channel count -> Pillow mode


class ImageReadError(ValueError):
    """A file that cannot be read as an image: missing, corrupt, truncated, not an image,
    too large, or held in a form this installation cannot read exactly. `path` and `reason`
    are kept apart so messages name the file once."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def format_of(path, explicit: str | None = None) -> str:
    """The format for a path's extension, or for `explicit` ("png", "tif", "npy", ...).

    Examples
    --------
    >>> format_of("a/b.JPG"), format_of("x.png", "npy")
    ('JPEG', 'NPY')
    """
    ext = "." + explicit.lower().lstrip(".") if explicit else Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{'--format ' + explicit if explicit else Path(path).name}: no writer for {ext!r}; "
                         f"accepted: {sorted(set(FORMATS))}")
    return FORMATS[ext]


def writable(fmt: str, dtype, channels: int, frames: int = 1) -> str | None:
    """None when `fmt` holds frames of `dtype` with `channels` here, else why not and what can.

    Examples
    --------
    >>> writable("PNG", np.uint8, 3) is None, writable("TIFF", np.float32, 1) is None
    (True, True)
    >>> print(writable("PNG", np.float32, 1))
    PNG cannot hold float32 with 1 channel(s) (it holds uint8 with 1, 2, 3 or 4 channels; uint16 with 1 channel, 3 or 4 with OpenCV); write .tif or .npy (--format)
    """
    if fmt == "NPY":
        return None
    dt = np.dtype(dtype).name
    if frames > 1 and fmt not in MULTI_FRAME:
        return f"{fmt} holds one frame, not {frames}; write .tif, .gif, .png (animated) or .npy (--format)"
    holds = _HOLDS[fmt].get(dt, {})
    if channels in holds.get("pil", set()):
        return None
    if channels in holds.get("cv2", set()):
        if frames > 1 and fmt != "TIFF":
            return f"{fmt} with {channels}-channel {dt} and {frames} frames is not written here; write .tif or .npy"
        if opencv_available():
            return None
        return f"{channels}-channel {dt} {fmt} needs OpenCV here (pip install 'gpuconv[opencv]'), or write .npy"
    others = [ext for f, ext in _SUGGESTED_EXTENSION.items() if f != fmt and _holds(f, dt, channels)]
    return (f"{fmt} cannot hold {dt} with {channels} channel(s) (it holds {_describe(fmt)}); write "
            f"{' or '.join(others + ['.npy'])} (--format)")


# the extension suggested for each format: its first in FORMATS (.npy is named apart)
_SUGGESTED_EXTENSION = {fmt: next(ext for ext, f in FORMATS.items() if f == fmt) for fmt in FORMATS.values()
                        if fmt != "NPY"}


def _holds(fmt: str, dt: str, channels: int) -> bool:
    h = _HOLDS[fmt].get(dt, {})
    return channels in h.get("pil", set()) or (channels in h.get("cv2", set()) and opencv_available())


def _describe(fmt: str) -> str:
    """What a format holds, in words."""
    def counts(c):
        c = sorted(c)
        return str(c[0]) if len(c) == 1 else ", ".join(map(str, c[:-1])) + f" or {c[-1]}"

    parts = []
    for dt, h in _HOLDS[fmt].items():
        text = f"{dt} with {counts(h['pil'])} channel{'s' if len(h['pil']) > 1 else ''}"
        if h.get("cv2"):
            text += f", {counts(h['cv2'])} with OpenCV"
        parts.append(text)
    return "; ".join(parts)


@dataclass
class Header:
    """What a file holds, from its header alone (no pixels decoded)."""

    format: str
    frames: int
    width: int
    height: int
    dtype: np.dtype
    channels: int

    @classmethod
    def of_frames(cls, fmt: str, frames: np.ndarray) -> "Header":
        """The header of decoded frames, (F, H, W) or (F, H, W, C)."""
        f, h, w = (int(n) for n in frames.shape[:3])
        return cls(fmt, f, w, h, frames.dtype, 1 if frames.ndim == 3 else int(frames.shape[3]))


@dataclass
class ImageFile:
    """Every frame of a file and what writing it back keeps."""

    frames: np.ndarray              # (F, H, W) or (F, H, W, C)
    format: str
    info: dict = field(default_factory=dict)   # icc_profile, dpi, exif, qtables, subsampling, duration, loop

    @property
    def channels(self) -> int:
        return 1 if self.frames.ndim == 3 else self.frames.shape[3]


def _limit_text(exc) -> str:
    m = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(m.group(1))} pixels" if m else "more pixels than allowed"
    return (f"{size}, over the decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels; if you trust the file, "
            "raise it with --max-pixels N (or PIL.Image.MAX_IMAGE_PIXELS in Python)")


def _why(exc: Exception, path) -> str:
    """An exception's message without the file name (the message names the file once)."""
    text = str(exc).replace(f"'{path}'", "").replace(str(path), "").replace("  ", " ").strip(" :")
    return text or type(exc).__name__


def _open(path):
    """Image.open with Pillow's decompression-bomb limit kept on and its errors named."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, _limit_text(exc)) from None
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image") from None
    except Exception as exc:  # UnidentifiedImageError (an OSError), struct.error, ...: corrupt headers
        raise ImageReadError(path, f"cannot be read as an image ({_why(exc, path)})") from None


def _sixteen_bit_colour(im) -> bool:
    """Pillow opens 16-bit RGB(A) as 8-bit RGB(A); its raw mode tells."""
    return im.mode in ("RGB", "RGBA") and any(";16" in str(t[3]) for t in (im.tile or []) if len(t) > 3)


def _mode_layout(im) -> tuple:
    """(dtype, channels) a Pillow image decodes to."""
    mode = im.mode
    if _sixteen_bit_colour(im):
        return np.dtype(np.uint16), 3 if mode == "RGB" else 4
    if mode.startswith("I;16"):
        return np.dtype(np.uint16), 1
    if mode == "I":
        return np.dtype(np.uint16 if im.format in ("PNG", "PPM") else np.int32), 1
    if mode == "F":
        return np.dtype(np.float32), 1
    if mode == "L" or (mode == "1" and not _has_alpha(im)):
        return np.dtype(np.uint8), 1
    if mode == "LA":
        return np.dtype(np.uint8), 2
    return np.dtype(np.uint8), 4 if _has_alpha(im) else 3


def _has_alpha(im) -> bool:
    """Whether a Pillow image decodes with an alpha channel: modes with alpha, and modes that
    are converted (P, 1, CMYK, ...) with a transparency entry. L and RGB keep their mode."""
    return im.mode in ("RGBA", "PA", "La", "RGBa") or (im.mode not in ("L", "LA", "RGB") and "transparency" in im.info)


def probe(path) -> Header:
    """The file's format, frame count, size and pixel layout, from its header.

    Examples
    --------
    >>> from gpuconv.io import sample_image_path
    >>> h = probe(sample_image_path()); (h.format, h.frames, h.dtype.name, h.channels)
    ('PNG', 1, 'uint8', 3)
    """
    if Path(path).suffix.lower() == ".npy":
        return Header.of_frames("NPY", _npy_frames(path, mmap=True))   # the header only: memory-mapped
    try:
        im = _open(path)
    except ImageReadError:
        if _opencv_only_tiff(path):
            return Header.of_frames("TIFF", _read_opencv(path))   # rare (multi-channel float): read it whole
        raise
    with im:
        try:
            dtype, channels = _mode_layout(im)
            width, height = im.size
            # JPEG, TIFF and WebP keep EXIF in the header; a PNG's eXIf chunk may follow the pixel
            # data, and reading it would decode the whole image: its (rare) rotation is left out
            orientation = im.getexif().get(0x0112, 1) if im.format in ("JPEG", "TIFF", "WEBP", "MPO") else 1
            frames = getattr(im, "n_frames", 1)
        except Exception as exc:   # a header Pillow opened but cannot finish reading
            raise ImageReadError(path, f"cannot be read as an image ({_why(exc, path)})") from None
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        return Header(im.format, frames, width, height, dtype, channels)


def _npy_frames(path, mmap: bool = False) -> np.ndarray:
    """A .npy image as frames: (H, W) and (H, W, C <= 4) are one frame, (F, H, W) and
    (F, H, W, C) several. `mmap`: memory-mapped, nothing read but the header."""
    try:
        a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"cannot be read as a .npy array ({exc})") from None
    if a.dtype.kind not in "biuf" or a.ndim not in (2, 3, 4):
        raise ImageReadError(path, f"holds a {a.dtype} array of shape {a.shape}; images are real (H, W), (H, W, C), "
                                   "(F, H, W) or (F, H, W, C)")
    return a[None] if a.ndim == 2 or (a.ndim == 3 and a.shape[2] <= 4) else a


# EXIF orientation -> the numpy operation that makes the pixels upright (ImageOps.exif_transpose)
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}


def _decode(im, fmt: str) -> np.ndarray:
    """One Pillow frame (of a `fmt` file) as an array, its mode kept: L, LA, RGB, RGBA,
    16-bit gray, int32, float."""
    if im.mode.startswith("I;16"):
        return np.asarray(im, dtype=np.uint16).copy()
    if im.mode == "I":   # Pillow's 32-bit mode, which 16-bit PNG and PGM files also load as
        arr = np.asarray(im)
        return arr.astype(np.uint16) if fmt in ("PNG", "PPM") else arr.astype(np.int32)
    if im.mode == "F":
        return np.asarray(im, dtype=np.float32).copy()
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if _has_alpha(im) else ("L" if im.mode == "1" else "RGB"))
    return np.asarray(im).copy()


def _swap_red_blue(a: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) order to RGB(A), and back (gray frames as they are)."""
    return a[..., [2, 1, 0, 3][:a.shape[2]]] if a.ndim == 3 else a


def _opencv_only_tiff(path) -> bool:
    """A TIFF Pillow cannot open may still be one OpenCV reads (multi-channel float)."""
    return Path(path).suffix.lower() in (".tif", ".tiff") and opencv_available()


def _read_opencv(path, n_frames: int | None = None, orientation: int = 1) -> np.ndarray:
    """Every page through OpenCV, upright, in RGB(A) order: 16-bit colour (`n_frames` and
    `orientation` from Pillow's header), or a TIFF only OpenCV reads (n_frames None)."""
    import cv2

    if n_frames == 1:
        page = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if page is None:
            raise ImageReadError(path, "OpenCV could not read it")
        pages = [page]
    else:
        ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
        if not ok or not pages:
            raise ImageReadError(path, "OpenCV could not read its pages" if n_frames else
                                 "cannot be read as an image (neither Pillow nor OpenCV reads it)")
    upright = _ORIENT.get(orientation, lambda a: a)
    return np.stack([np.ascontiguousarray(upright(_swap_red_blue(p))) for p in pages])


def _carried_info(im, frame) -> dict:
    """What writing keeps of a file `im` whose first frame is `frame`: its EXIF (TIFF tags
    too) without the orientation, which the pixels now have."""
    info = {k: frame.info[k] for k in ("icc_profile", "dpi") if frame.info.get(k) is not None}
    exif = frame.getexif()
    if len(exif):
        kept = Image.Exif()
        kept.load(exif.tobytes())   # a copy: the frame's own tags still steer exif_transpose
        kept.pop(0x0112, None)
        if len(kept):
            info["exif"] = kept.tobytes()
    if im.info.get("loop") is not None:
        info["loop"] = im.info["loop"]
    if im.format == "JPEG":
        from PIL import JpegImagePlugin

        info["qtables"] = im.quantization
        info["subsampling"] = JpegImagePlugin.get_sampling(im)
    return info


def read_file(path) -> ImageFile:
    """Every frame of an image file (or a .npy array), upright (EXIF orientation applied),
    in its own bit depth, with the metadata to write back.

    Raises ImageReadError naming the file for anything that cannot be read exactly.

    Examples
    --------
    >>> from gpuconv.io import sample_image_path
    >>> f = read_file(sample_image_path()); f.frames.shape, f.format
    ((1, 256, 384, 3), 'PNG')
    """
    if Path(path).suffix.lower() == ".npy":
        return ImageFile(np.ascontiguousarray(_npy_frames(path)), "NPY")
    try:
        im = _open(path)
    except ImageReadError:
        if _opencv_only_tiff(path):
            return ImageFile(_read_opencv(path), "TIFF")   # multi-channel float TIFF: pixels only
        raise
    with im:
        try:
            fmt, n = im.format, getattr(im, "n_frames", 1)
            if _sixteen_bit_colour(im):   # before anything loads the pixels and drops the tile
                if not opencv_available():
                    raise ImageReadError(path, f"is 16-bit {im.mode}, which Pillow reads as 8-bit; install OpenCV "
                                               "(pip install 'gpuconv[opencv]') to keep its 16 bits")
                orientation = im.getexif().get(0x0112, 1)
                return ImageFile(_read_opencv(path, n, orientation), fmt, _carried_info(im, im))
            frames, durations, first = [], [], None
            for frame in ImageSequence.Iterator(im):
                if first is None:
                    first = _carried_info(im, frame)
                upright = ImageOps.exif_transpose(frame)
                durations.append(frame.info.get("duration"))
                frames.append(_decode(upright, fmt))
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(path, "does not fit in memory") from None
        except Exception as exc:  # truncated or corrupt pixel data shows only here (OSError, struct.error, ...)
            raise ImageReadError(path, f"cannot be decoded ({_why(exc, path)})") from None
    if len({f.shape for f in frames}) > 1:   # frames of mixed modes (GIF): all with alpha if any has it
        frames = [np.dstack([f, np.full(f.shape[:2], 255, np.uint8)]) if f.ndim == 3 and f.shape[2] == 3 else f
                  for f in frames]
        if len({f.shape for f in frames}) > 1:
            raise ImageReadError(path, f"has frames of different sizes {sorted({f.shape for f in frames})}")
    info = dict(first)
    if n > 1 and any(d is not None for d in durations):
        info["duration"] = [d or 0 for d in durations]
    return ImageFile(np.stack(frames), fmt, info)


def write_file(path, image: ImageFile, fmt: str | None = None, *, quality: int | None = None,
               png_compression: int = DEFAULT_PNG_COMPRESSION) -> None:
    """Write every frame of `image` to `path` in `fmt` (default: the extension's format),
    keeping its metadata where the format holds it. JPEG keeps the input's quantisation
    tables when it came from a JPEG and no `quality` is given (else `quality`, default 95).
    Raises ValueError (format cannot hold the pixels: see `writable`) or OSError.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.tif"
    >>> write_file(p, ImageFile(np.full((1, 2, 3), 300.25, np.float32), "TIFF"))
    >>> read_file(p).frames.tolist()
    [[[300.25, 300.25, 300.25], [300.25, 300.25, 300.25]]]
    """
    fmt = fmt or format_of(path)
    frames = image.frames
    if fmt == "NPY":
        with open(path, "wb") as f:
            np.save(f, frames[0] if len(frames) == 1 else frames, allow_pickle=False)
        return
    reason = writable(fmt, frames.dtype, image.channels, len(frames))
    if reason:
        raise ValueError(reason)
    dt = frames.dtype.name
    if image.channels not in _HOLDS[fmt][dt].get("pil", set()) or _opencv_png(fmt, image):
        return _write_opencv(path, frames, fmt, png_compression)
    pils = [_to_pil(f, fmt) for f in frames]
    options = _save_options(fmt, image.info, quality, png_compression)
    if fmt == "GIF" and image.channels == 4:
        options.update(transparency=GIF_TRANSPARENT, disposal=2)
    if len(pils) > 1:
        options.update(save_all=True, append_images=pils[1:])
    pils[0].save(path, format=fmt, **options)


def _opencv_png(fmt: str, image: ImageFile) -> bool:
    """PNG goes through OpenCV's encoder where that loses nothing: one frame of 1, 3 or 4
    channels and no metadata to carry. At the same zlib level it took 338 ms per 1024x1024 RGB
    photograph against Pillow's 483 ms (bench/run_pipeline.py), for files within 1-2% of the
    size and the same pixels."""
    return (fmt == "PNG" and len(image.frames) == 1 and image.channels in (1, 3, 4) and opencv_available()
            and not any(k in image.info for k in ("icc_profile", "dpi", "exif")))


def _to_pil(frame: np.ndarray, fmt: str):
    if frame.dtype != np.uint8:   # uint16 -> I;16, int32 -> I, float32 -> F
        return Image.fromarray(np.ascontiguousarray(frame))
    if fmt == "GIF" and frame.ndim == 3 and frame.shape[2] == 4:
        return _gif_with_alpha(frame)
    im = Image.fromarray(frame, CHANNEL_MODES[1 if frame.ndim == 2 else frame.shape[2]])
    if fmt == "WEBP" and im.mode in ("L", "LA"):   # WebP holds RGB(A) only: the same values, widened
        im = im.convert("RGBA" if im.mode == "LA" else "RGB")
    return im


GIF_TRANSPARENT = 255   # the palette index of transparent pixels in GIFs written with alpha


def _gif_with_alpha(frame: np.ndarray):
    """A GIF frame keeping its transparency: GIF alpha is one bit, so pixels with alpha below
    128 become the transparent index, the rest take one of 255 colours."""
    pal = Image.fromarray(np.ascontiguousarray(frame[..., :3]), "RGB").quantize(GIF_TRANSPARENT)
    index = np.asarray(pal).copy()
    index[frame[..., 3] < 128] = GIF_TRANSPARENT
    im = Image.fromarray(index, "P")
    im.putpalette(pal.getpalette()[:3 * GIF_TRANSPARENT] + [0, 0, 0])
    return im


def _save_options(fmt: str, info: dict, quality, png_compression: int) -> dict:
    carried = {k: info[k] for k in ("icc_profile", "dpi", "exif") if k in info}
    if fmt == "PNG":
        opts = dict(carried, compress_level=png_compression)
    elif fmt == "JPEG":
        opts = dict(carried)
        if quality is not None:
            opts["quality"] = quality
        elif "qtables" in info:   # the input's own tables: the same quality, about the same size
            opts.update(qtables=info["qtables"], subsampling=info.get("subsampling", -1))
        else:
            opts["quality"] = DEFAULT_JPEG_QUALITY
    elif fmt == "WEBP":
        opts = dict(carried, lossless=True, exact=True)
    elif fmt == "TIFF":
        opts = dict(carried)
    elif fmt in ("BMP",):
        opts = {k: carried[k] for k in ("dpi",) if k in carried}
    else:
        opts = {}
    if fmt in ("GIF", "PNG", "WEBP"):
        for key in ("duration", "loop"):
            if key in info:
                opts[key] = info[key]
    return opts


def _write_opencv(path, frames: np.ndarray, fmt: str, png_compression: int) -> None:
    """Through OpenCV (pixels only, no metadata): 16-bit colour, multi-channel float, and
    PNGs with nothing else to keep (the faster encoder)."""
    import cv2

    pages = [np.ascontiguousarray(_swap_red_blue(f)) for f in frames]
    ext = ".png" if fmt == "PNG" else ".tif"
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if fmt == "PNG" else []
    if len(pages) == 1:
        ok, data = cv2.imencode(ext, pages[0], params)
    else:
        ok, data = cv2.imencodemulti(ext, pages)
    if not ok:
        raise OSError(f"OpenCV could not encode {Path(path).name}")
    Path(path).write_bytes(np.asarray(data).tobytes())
