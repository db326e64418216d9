"""BENCH.md row P1, the `gpuconv apply` pipeline: N generated 1024x1024 RGB PNGs filtered with
gaussian:5:1 into PNGs at one zlib level, against

- decode + encode alone: the same codec (gpuconv.imagefile) and settings on the same thread
  pool, no filter: the floor BENCH.md names;
- decode + encode of the same outputs: the inputs decoded and the filtered images (computed
  beforehand) encoded, the codec work this job cannot avoid (smoother images encode slower);
- a plain loop: Pillow decode, scipy.ndimage.correlate per channel, Pillow encode, one image at
  a time;
- an OpenCV loop: cv2.imread, cv2.filter2D (replicate border), cv2.imwrite at the same zlib
  level, one image at a time;

all in one process, interleaved over rounds (median), every output checked against gpuconv's
for the first image. It also times each codec alone per image (Pillow and OpenCV decode and
encode), which is how the pipeline's codec was chosen.

    python -m bench.run_pipeline --n 60 --rounds 2 --out bench/results
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from gpuconv import filters, pipeline
from gpuconv.cli import load_kernel
from gpuconv.imagefile import DEFAULT_PNG_COMPRESSION, read_file, write_file
from gpuconv.io import sample_image_path
from gpuconv.optional import opencv_available


def make_images(folder: Path, n: int) -> list:
    """n photograph-like PNGs: crops of the shipped photograph, resized and jittered."""
    base = Image.open(sample_image_path()).convert("RGB")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        x0, y0 = rng.integers(0, 64, 2)
        im = base.crop((int(x0), int(y0), int(x0) + 320, int(y0) + 192)).resize((1024, 1024), Image.BILINEAR)
        arr = np.asarray(im).astype(np.int16) + rng.integers(-3, 4, (1024, 1024, 3))
        path = folder / f"img{i:04d}.png"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, compress_level=1)
        paths.append(path)
    return paths


def codec_only(paths, out: Path, workers: int, level: int) -> None:
    """Decode and encode every file with the pipeline's codec and settings, no filter."""
    def one(p):
        write_file(out / p.name, read_file(p), png_compression=level)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))


def codec_same_outputs(paths, results, out: Path, workers: int, level: int) -> None:
    """Decode every input and encode the very image the pipeline writes (filtered beforehand,
    held in memory): the codec work of this job, whose smoother outputs encode ~20% slower at
    zlib level 6 than the inputs."""
    def one(i):
        read_file(paths[i])
        write_file(out / paths[i].name, results[i], png_compression=level)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(paths))))


def pillow_scipy_loop(paths, out: Path, kernel: np.ndarray, level: int) -> None:
    from scipy import ndimage

    k3 = kernel[:, :, None].astype(np.float32)
    for p in paths:
        img = np.asarray(Image.open(p)).astype(np.float32)
        y = ndimage.correlate(img, k3, mode="nearest")
        Image.fromarray(np.clip(np.rint(y), 0, 255).astype(np.uint8)).save(out / p.name, compress_level=level)


def opencv_loop(paths, out: Path, kernel: np.ndarray, level: int) -> None:
    import cv2

    k = kernel.astype(np.float32)
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(out / p.name), cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REPLICATE),
                    [cv2.IMWRITE_PNG_COMPRESSION, level])


def per_image_codecs(path: Path, level: int) -> dict:
    """Milliseconds per 1024x1024 RGB image for each codec step (median of 5)."""
    def ms(fn):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(times)

    data = path.read_bytes()
    arr = np.asarray(Image.open(path))
    rows = {"Pillow decode": ms(lambda: np.asarray(Image.open(io.BytesIO(data)))),
            f"Pillow encode (level {level})": ms(lambda: Image.fromarray(arr).save(io.BytesIO(), format="PNG",
                                                                                   compress_level=level))}
    try:
        import cv2
    except ImportError:
        return rows
    rows["OpenCV decode"] = ms(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))
    rows[f"OpenCV encode (level {level})"] = ms(lambda: cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, level]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kernel", default="gaussian:5:1")
    ap.add_argument("--png-compression", type=int, default=DEFAULT_PNG_COMPRESSION)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    kernel, _ = load_kernel(args.kernel)
    level = args.png_compression
    tmp = Path(tempfile.mkdtemp(prefix="gpuconv-pipeline-"))
    runs = {"decode+encode alone (same codec)": lambda o: codec_only(paths, o, args.workers, level),
            "decode+encode of the same outputs": lambda o: codec_same_outputs(paths, filtered, o, args.workers, level),
            "gpuconv apply (pipeline)": lambda o: pipeline.run(kernel, paths, o, workers=args.workers,
                                                               backend="numpy", png_compression=level),
            "plain loop (Pillow + scipy)": lambda o: pillow_scipy_loop(paths, o, kernel, level)}
    if opencv_available():
        runs["OpenCV loop (imread, filter2D, imwrite)"] = lambda o: opencv_loop(paths, o, kernel, level)
    else:
        print("OpenCV not installed: its loop is skipped")
    try:
        src = tmp / "in"
        src.mkdir()
        paths = make_images(src, args.n)
        filtered = []
        for p in paths:
            f = read_file(p)
            filtered.append(type(f)(filters.apply(f.frames, kernel), f.format, f.info))
        expect = filtered[0].frames[0]
        times = {name: [] for name in runs}
        sizes = {}
        for r in range(args.rounds):
            for name, fn in runs.items():
                out = tmp / f"out{r}-{len(sizes)}-{abs(hash(name))}"
                out.mkdir()
                t0 = time.perf_counter()
                fn(out)
                times[name].append(time.perf_counter() - t0)
                first = out / paths[0].name
                if not name.startswith("decode+encode"):
                    err = np.abs(read_file(first).frames[0].astype(int) - expect.astype(int)).max()
                    assert err <= 1, f"{name}: output differs from gpuconv's by {err}"
                sizes[name] = sum(p.stat().st_size for p in out.iterdir()) / args.n / 1024
                shutil.rmtree(out)
                print(f"round {r + 1}: {name:42} {args.n / times[name][-1]:6.2f} images/s", flush=True)
        codecs = per_image_codecs(paths[0], level)
    finally:
        shutil.rmtree(tmp)
    rate = {k: args.n / statistics.median(v) for k, v in times.items()}
    floor = rate["decode+encode alone (same codec)"]
    same = rate["decode+encode of the same outputs"]
    loop = rate["plain loop (Pillow + scipy)"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, CPU only (numpy backend)"
    lines = [f"P1: {args.n} PNGs of 1024x1024 RGB, kernel {args.kernel}, PNG zlib level {level}, {args.workers} I/O "
             f"threads, median of {args.rounds} interleaved rounds; {machine}.", "",
             "| run | images/s | vs decode+encode alone | vs decode+encode of the same outputs | vs Pillow+scipy loop "
             "| output KB/image |", "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {v / floor:.0%} | {v / same:.0%} | {v / loop:.2f}x | {sizes[k]:.0f} |"
              for k, v in rate.items()]
    lines += ["", "Per image, one thread: " + ", ".join(f"{k} {v:.0f} ms" for k, v in codecs.items())]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pipeline.md").write_text("\n".join(lines) + "\n")
    (out_dir / "pipeline.json").write_text(json.dumps({"machine": machine, "n": args.n, "kernel": args.kernel,
                                                       "png_compression": level, "images_per_s": rate,
                                                       "kb_per_image": sizes, "codec_ms": codecs}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
