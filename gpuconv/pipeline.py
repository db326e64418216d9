"""Filtering many image files: the engine behind `gpuconv apply`.

Decoding and encoding run in a thread pool (Pillow releases the GIL while it works), a bounded
number of images ahead of the filter, so memory stays bounded however many files there are.
Images of the same shape and dtype are stacked into batches and filtered in one call. Every
output is written atomically: to a temporary file beside it, then renamed, so an interrupted
run leaves no partial files. Outputs never replace an input, nor an existing file unless
`overwrite` is set. A file that cannot be read or written is reported by name and skipped; the
rest are processed.
"""
from __future__ import annotations

import glob
import os
import sys
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import filters
from .io import ImageReadError, read_image, write_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".ppm", ".pgm")


@dataclass
class Report:
    """What a run did: outputs written, and (file, reason) for everything skipped."""

    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def expand_inputs(patterns) -> tuple:
    """(files, problems): files named directly, image files in named folders (not recursive)
    and glob matches (for patterns the shell left unexpanded), sorted, each once.

    Examples
    --------
    >>> expand_inputs(["/no/such/file.png"])[1]
    [('/no/such/file.png', 'no such file, folder or match')]
    """
    files, problems, seen = [], [], set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
        if not found:
            problems.append((pattern, "no such file, folder or match" if not path.is_dir() else "no image files in folder"))
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    return files, problems


def output_path(src: Path, outdir: Path, suffix: str) -> Path:
    """outdir / (src's stem + suffix + src's extension)."""
    return outdir / f"{src.stem}{suffix}{src.suffix}"


def write_atomic(path: Path, image: np.ndarray, overwrite: bool) -> None:
    """Write to a temporary file in the same folder, then rename it into place; the temporary
    file is removed on any failure (an interrupted run leaves no partial outputs)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write_image(tmp, image)
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _plan(files, outdir: Path, suffix: str, overwrite: bool, report: Report) -> list:
    """(src, dst) pairs, with refusals recorded: an output that would replace an input, two
    inputs mapping to one output, or an existing output without overwrite."""
    inputs = {f.resolve() for f in files}
    jobs, targets = [], set()
    for src in files:
        dst = output_path(src, outdir, suffix)
        key = dst.resolve()
        if key in inputs:
            report.failed.append((str(src), f"its output {dst} would replace an input file; use another -o or --suffix"))
        elif key in targets:
            report.failed.append((str(src), f"its output {dst} is also another input's output; use --suffix"))
        elif dst.exists() and not overwrite:
            report.failed.append((str(src), f"{dst} exists (pass --overwrite to replace it)"))
        else:
            targets.add(key)
            jobs.append((src, dst))
    return jobs


def run(kernel, files, outdir, *, suffix: str = "", boundary: str = "edge", mode: str = "same", out_dtype=None,
        batch_size: int = 8, workers: int | None = None, overwrite: bool = False, backend: str | None = None,
        progress=None) -> Report:
    """Filter `files` with `kernel` (a name, spec or 2-D array) into `outdir`.

    Channels are filtered independently (gpuconv.filters.apply); integer images keep their
    dtype, saturated, unless `out_dtype` says otherwise. `progress(n)` is called as images
    finish. Returns a Report; nothing is raised for a single bad file.
    """
    start = time.perf_counter()
    report = Report()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    jobs = _plan([Path(f) for f in files], outdir, suffix, overwrite, report)
    workers = max(1, workers or os.cpu_count() or 1)
    ahead = 2 * batch_size + workers  # decodes in flight: bounds memory

    def decode(src):
        return read_image(src)

    def encode(dst, image):
        write_atomic(dst, image, overwrite)
        return dst

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpuconv-io") as pool:
        pending = deque()   # (src, dst, future of the decoded image), in input order
        writes = []         # (src, future of the write)
        batch = []          # (src, dst, image) of one shape and dtype
        todo = iter(jobs)

        def flush():
            if not batch:
                return
            stack = np.stack([img for _, _, img in batch])
            result = filters.apply(stack, kernel, channel_axis=-1 if stack.ndim == 4 else None, mode=mode,
                                   boundary=boundary, out_dtype=out_dtype, backend=backend)
            for (src, dst, _), out in zip(batch, result):
                writes.append((src, pool.submit(encode, dst, out)))
            batch.clear()

        try:
            while True:
                while len(pending) < ahead:
                    job = next(todo, None)
                    if job is None:
                        break
                    pending.append((job[0], job[1], pool.submit(decode, job[0])))
                if not pending:
                    break
                src, dst, future = pending.popleft()
                try:
                    image = future.result()
                except ImageReadError as exc:
                    report.failed.append((str(src), str(exc)))
                    if progress:
                        progress(1)
                    continue
                if batch and (image.shape != batch[0][2].shape or image.dtype != batch[0][2].dtype):
                    flush()
                batch.append((src, dst, image))
                if len(batch) >= batch_size:
                    flush()
                _collect(writes, report, progress, wait=False)
            flush()
            _collect(writes, report, progress, wait=True)
        except BaseException:
            for _, _, future in pending:
                future.cancel()
            raise  # the pool's exit waits for running writes; each cleans up after itself
    report.seconds = time.perf_counter() - start
    return report


def _collect(writes: list, report: Report, progress, wait: bool) -> None:
    """Move finished writes (all of them if `wait`) from `writes` into the report."""
    keep = []
    for src, future in writes:
        if not wait and not future.done():
            keep.append((src, future))
            continue
        try:
            report.written.append(str(future.result()))
        except (OSError, ValueError) as exc:
            report.failed.append((src if isinstance(src, str) else str(src), f"cannot write output: {exc}"))
        if progress:
            progress(1)
    writes[:] = keep


class LineProgress:
    """Progress for logs and pipes: a line every `every` seconds and one at the end."""

    def __init__(self, total: int, stream=sys.stderr, every: float = 5.0):
        self.total, self.done, self.stream, self.every = total, 0, stream, every
        self.start = self.last = time.perf_counter()

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            print(f"gpuconv: {self.done}/{self.total} images, {rate:.1f} images/s", file=self.stream, flush=True)

    def close(self) -> None:
        pass
