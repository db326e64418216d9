"""Batch-pipeline throughput (issue 6): `gpuconv apply` on N generated 1024x1024 RGB PNGs,
against decode + encode alone (the same thread pool, no filter: the floor) and a plain loop
(Pillow decode, scipy.ndimage.correlate per channel, Pillow encode, one image at a time).

The images are crops of the shipped photograph, resized and jittered so each file differs
and compresses like a photograph. All three write their outputs to fresh folders.

    python -m bench.run_pipeline --n 200 --kernel gaussian:5:1 --out bench/results
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from gpuconv import pipeline
from gpuconv.cli import load_kernel
from gpuconv.io import read_image, sample_image_path, write_image


def make_images(folder: Path, n: int) -> list:
    base = Image.open(sample_image_path()).convert("RGB")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        x0, y0 = rng.integers(0, 64, 2)
        im = base.crop((int(x0), int(y0), int(x0) + 320, int(y0) + 192)).resize((1024, 1024), Image.BILINEAR)
        arr = np.asarray(im).astype(np.int16) + rng.integers(-3, 4, (1024, 1024, 3))
        path = folder / f"img{i:04d}.png"
        write_image(path, np.clip(arr, 0, 255).astype(np.uint8))
        paths.append(path)
    return paths


def copy_only(paths, out: Path, workers: int) -> None:
    def one(p):
        write_image(out / p.name, read_image(p))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))


def plain_loop(paths, out: Path, kernel: np.ndarray) -> None:
    from scipy import ndimage

    k3 = kernel[:, :, None].astype(np.float32)
    for p in paths:
        img = np.asarray(Image.open(p)).astype(np.float32)
        y = ndimage.correlate(img, k3, mode="nearest")
        Image.fromarray(np.clip(np.rint(y), 0, 255).astype(np.uint8)).save(out / p.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--kernel", default="gaussian:5:1")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    kernel, _ = load_kernel(args.kernel)
    tmp = Path(tempfile.mkdtemp(prefix="gpuconv-pipeline-"))
    try:
        src = tmp / "in"
        src.mkdir()
        paths = make_images(src, args.n)
        rows = {}
        for name, fn in [("decode+encode only", lambda o: copy_only(paths, o, args.workers)),
                         ("gpuconv apply (pipeline)", lambda o: pipeline.run(kernel, paths, o, suffix="",
                                                                              workers=args.workers, backend="numpy")),
                         ("plain loop (Pillow + scipy)", lambda o: plain_loop(paths, o, kernel))]:
            out = tmp / name.split()[0]
            out.mkdir()
            t0 = time.perf_counter()
            fn(out)
            seconds = time.perf_counter() - t0
            rows[name] = args.n / seconds
            print(f"{name:30} {args.n / seconds:7.1f} images/s  ({seconds:.1f} s)", flush=True)
    finally:
        shutil.rmtree(tmp)
    floor = rows["decode+encode only"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, CPU only (numpy backend)"
    lines = [f"{args.n} PNGs of 1024x1024 RGB, kernel {args.kernel}, {args.workers} I/O threads; {machine}.", "",
             "| run | images/s | time vs decode+encode alone |", "|---|---|---|"]
    lines += [f"| {k} | {v:.1f} | {floor / v:.2f}x |" for k, v in rows.items()]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pipeline.md").write_text("\n".join(lines) + "\n")
    (out_dir / "pipeline.json").write_text(json.dumps({"machine": machine, "n": args.n, "kernel": args.kernel,
                                                       "images_per_s": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
