"""`gpuconv demo` (and `make demo`): the seed documents' worked examples, then every named
kernel applied to the shipped photograph (Pillow in, Pillow out), written as PNGs with a
labelled gallery to an output folder, plus a folder of sample images (inputs/) for
`gpuconv apply`.

    gpuconv demo --out demo_out [--image PATH]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import gpuconv
from gpuconv import kernels
from gpuconv.dtypes import finish
from gpuconv.io import read_image, sample_image_path, to_gray, write_image

# Kernels whose output is a signed edge response: shown on a gray background (128 + value)
# so both signs are visible, as the seed documents' figures do.
_SIGNED = ("sobel", "outline", "edge", "laplacian", "line")


def seed_examples() -> list:
    """The worked examples of the seed documents, computed, with their expected values."""
    farmer = gpuconv.convolve([1, 2, 3, 4, 5], [2, 3, 4])
    image = [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]]
    valid = gpuconv.correlate(image, [[0, 1, 2], [2, 2, 0], [0, 1, 2]], "valid")
    strided = gpuconv.correlate(np.arange(20.0).reshape(4, 5), np.ones((3, 3)), "valid", stride=2)
    rgb = np.random.default_rng(0).random((28, 28, 3))
    cuboid = gpuconv.conv2d(rgb[None], np.ones((1, 3, 3, 3)), layout="NHWC")[0, ..., 0]
    return [
        ("convolve([1,2,3,4,5], [2,3,4])  (water per month)", farmer.tolist(), [2, 7, 16, 25, 34, 31, 20]),
        ("5x5 image correlated 'valid' with [[0,1,2],[2,2,0],[0,1,2]]", valid.tolist(), [[12, 12, 17], [10, 17, 19], [9, 6, 14]]),
        ("4x5 input, 3x3 kernel, stride 2, valid: output shape", list(strided.shape), [1, 2]),
        ("(11,11,3)-style cuboid kernel over (H,W,3): a 2-D map, shape", list(cuboid.shape), [26, 26]),
    ]


def gallery_kernels() -> list:
    """(label, kernel) for every named kernel, plus the seed's larger Gaussian."""
    return [(name, kernels.get(name)) for name in kernels.names()] + [("gaussian:11:2", kernels.get("gaussian:11:2"))]


def apply_named(image: np.ndarray, name: str, kernel: np.ndarray) -> np.ndarray:
    """Filter every channel of a uint8 image by correlation (OpenCV filter2D's convention),
    edge boundary, saturated back to uint8; signed responses are offset to mid-gray."""
    if not name.startswith(_SIGNED):
        return gpuconv.correlate(image, kernel, "same", axes=(0, 1), boundary="edge", out_dtype=np.uint8)
    y = gpuconv.correlate(image, kernel, "same", axes=(0, 1), boundary="edge")
    return finish(y + np.float32(128), np.dtype(np.uint8))


def make_gallery(tiles: list, path: Path, columns: int = 4) -> None:
    """A labelled grid of (label, image) tiles saved as one PNG."""
    h, w = tiles[0][1].shape[:2]
    pad, label_h = 6, 16
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, tile) in enumerate(tiles):
        x0 = pad + (i % columns) * (w + pad)
        y0 = pad + (i // columns) * (h + label_h + pad)
        tile = np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile
        sheet.paste(Image.fromarray(tile), (x0, y0 + label_h))
        draw.text((x0, y0 + 2), label, fill="black")
    sheet.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_out", help="output folder (created if missing)")
    ap.add_argument("--image", default=None, help="input image (default: the shipped photograph)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    try:
        if out.exists() and not out.is_dir():
            raise OSError(f"{out} is a file; --out names a folder")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"gpuconv demo: cannot write into --out {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    print("Seed examples")
    ok = True
    for label, got, expected in seed_examples():
        good = got == expected
        ok &= good
        print(f"  {'ok ' if good else 'BAD'} {label}: {got}")

    path = Path(args.image) if args.image else sample_image_path()
    image = read_image(path)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    gray = to_gray(image)
    print(f"\nImage {path.name} {image.shape} {image.dtype}; backend: numpy (CPU)")
    tiles = [("input", image)]
    write_image(out / "input.png", image)
    write_image(out / "input_gray.png", gray)
    # a small folder of sample images for `gpuconv apply` (make demo runs it next)
    inputs = out / "inputs"
    inputs.mkdir(exist_ok=True)
    write_image(inputs / "coffee.png", image)
    write_image(inputs / "coffee_gray.png", gray)
    write_image(inputs / "coffee_mirrored.jpg", np.ascontiguousarray(image[:, ::-1]))
    write_image(inputs / "coffee_crop.webp", np.ascontiguousarray(image[32:224, 64:320]))
    for name, kernel in gallery_kernels():
        t0 = time.perf_counter()
        result = apply_named(image, name, kernel)
        ms = (time.perf_counter() - t0) * 1e3
        file = out / f"{name.replace(':', '_')}.png"
        write_image(file, result)
        tiles.append((name, result))
        print(f"  {name:16} {kernel.shape[0]}x{kernel.shape[1]}  {ms:7.1f} ms  -> {file}")
    sobel_gray = apply_named(gray, "sobel_left", kernels.sobel("left"))
    write_image(out / "sobel_left_gray.png", sobel_gray)
    tiles.append(("sobel_left (gray)", np.repeat(sobel_gray[..., None], 3, axis=2)))
    make_gallery(tiles, out / "gallery.png")
    print(f"\nWrote {len(list(out.glob('*.png')))} PNGs (gallery.png among them) to {out}/")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
