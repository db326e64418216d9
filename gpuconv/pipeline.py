"""Filtering many image files: the engine behind `gpuconv apply`.

Before any work, every input's header is read (no pixels) and its result checked against the
output format: a result the format cannot hold (a float result for PNG, int16 anywhere but
.npy, 16-bit colour without OpenCV) stops the run with a FormatError naming the file and a
format that can hold it; nothing is ever clipped or narrowed to fit.

Decoding and encoding run in a thread pool (Pillow and OpenCV release the GIL while they
work), a bounded number of files ahead of the filter, so memory stays bounded however many
files there are. Frames of the same shape and dtype, from one file or several, are stacked
and filtered in one call while the pool decodes and encodes others; on the GPU each batch
goes through pinned memory on its own stream, so the next batch uploads while one filters
(gpuconv.backends.cuda.staging). Every frame of an
animation or a multi-page TIFF is filtered and written, with its timing and the file's
metadata (gpuconv.imagefile).

Every output is written atomically: to a temporary file beside it, named
`.NAME.gpuconv-PID-RANDOM.tmp` (never taken as an input: no image extension), then renamed,
so an interrupted run leaves no partial files; a later run removes temporary files whose
process is gone. Outputs never replace an input, nor an existing file unless `overwrite` is
set. A file that cannot be read, decoded, filtered (out of memory) or written is reported by
name and skipped; the rest are processed.
"""
from __future__ import annotations

import glob
import os
import re
import sys
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import filters
from .dtypes import default_result_dtype
from .imagefile import (DEFAULT_PNG_COMPRESSION, FORMATS, ImageFile, ImageReadError, format_of, probe, read_file,
                        writable, write_file)

# what a folder or glob picks up: every image format gpuconv reads (.npy only when named)
IMAGE_EXTENSIONS = tuple(ext for ext, fmt in FORMATS.items() if fmt != "NPY")
_TEMP = re.compile(r"^\..+\.gpuconv-(\d+)-[0-9a-f]{8}\.tmp$")


class FormatError(ValueError):
    """A result that the output format cannot hold (found before any work)."""


@dataclass
class Report:
    """What a run did: outputs written, and (file, reason) for everything skipped."""

    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Job:
    """One input file and where its result goes."""

    src: Path
    dst: Path
    fmt: str          # the output's format
    dtype: np.dtype   # the result's dtype


def is_temporary(path) -> bool:
    """Whether `path` is a temporary output of a gpuconv run (never an input).

    Examples
    --------
    >>> is_temporary(".a.png.gpuconv-123-0123abcd.tmp"), is_temporary("a.png")
    (True, False)
    """
    return _TEMP.match(Path(path).name) is not None


def expand_inputs(patterns, recursive: bool = False) -> tuple:
    """(files, problems): files named directly, image files in named folders (and their
    subfolders with `recursive`) and glob matches (`**` matches any depth), sorted, each
    once; gpuconv's own temporary files are never inputs.

    Examples
    --------
    >>> expand_inputs(["/no/such/file.png"])[1]
    [('/no/such/file.png', 'no such file, folder or match')]
    """
    files, problems, seen = [], [], set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in walk if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        found = [p for p in found if not is_temporary(p)]
        if not found:
            problems.append((pattern, "no such file, folder or match" if not path.is_dir() else "no image files in folder"))
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    return files, problems


def output_path(src: Path, outdir: Path, suffix: str, fmt: str | None = None) -> Path:
    """outdir / (src's stem + suffix + src's extension, or `fmt`'s)."""
    ext = src.suffix if fmt is None else "." + fmt.lower().lstrip(".")
    return outdir / f"{src.stem}{suffix}{ext}"


def result_dtype(dtype, out_dtype=None) -> np.dtype:
    """The dtype a filtered file is written in: `out_dtype`, else integers keep theirs and
    floats their compute dtype (float16 stays float16)."""
    if out_dtype is not None:
        return np.dtype(out_dtype)
    dtype = np.dtype(dtype)
    return dtype if dtype.kind in "iu" else default_result_dtype(dtype)


def remove_stale_temporaries(outdir: Path) -> int:
    """Remove temporary files left in `outdir` by gpuconv runs that are no longer running
    (killed with SIGKILL, say); returns how many."""
    removed = 0
    for p in outdir.glob(".*.gpuconv-*.tmp"):
        m = _TEMP.match(p.name)
        if m is None or _process_alive(int(m.group(1))):
            continue
        try:
            p.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True   # someone else's process, or cannot tell: keep its files
    return True


def write_atomic(path: Path, image: ImageFile, overwrite: bool, fmt: str | None = None, **options) -> None:
    """Write to a temporary file in the same folder, then rename it into place; the temporary
    file is removed on any failure (an interrupted run leaves no partial outputs)."""
    tmp = path.with_name(f".{path.name}.gpuconv-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write_file(tmp, image, fmt or format_of(path), **options)
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def plan(files, outdir: Path, suffix: str, overwrite: bool, report: Report, *, fmt: str | None = None,
         out_dtype=None, kernel_shape: tuple = (), mode: str = "same") -> list:
    """The jobs, from every input's header: refusals that concern one file are recorded in
    `report` (unreadable, would replace an input, output exists, kernel larger than the
    image in "valid" mode); a result the output format cannot hold raises FormatError."""
    inputs = {f.resolve() for f in files}
    jobs, targets = [], set()
    for src in files:
        dst = output_path(src, outdir, suffix, fmt)
        key = dst.resolve()
        if key in inputs:
            report.failed.append((str(src), f"its output {dst} would replace an input file; use another -o or --suffix"))
            continue
        if key in targets:
            report.failed.append((str(src), f"its output {dst} is also another input's output; use --suffix"))
            continue
        if dst.exists() and not overwrite:
            report.failed.append((str(src), f"{dst} exists (pass --overwrite to replace it)"))
            continue
        try:
            header = probe(src)
        except ImageReadError as exc:
            report.failed.append((str(src), exc.reason))
            continue
        out_fmt = format_of(dst)
        dtype = result_dtype(header.dtype, out_dtype)
        reason = writable(out_fmt, dtype, header.channels, header.frames)
        if reason:
            raise FormatError(f"{src}: its result ({dtype}, {header.channels} channel(s)"
                              f"{f', {header.frames} frames' if header.frames > 1 else ''}) cannot be written as "
                              f"{dst.name}: {reason}")
        if mode == "valid" and kernel_shape and (header.height < kernel_shape[0] or header.width < kernel_shape[1]):
            report.failed.append((str(src), f"the {kernel_shape[0]}x{kernel_shape[1]} kernel is larger than the "
                                            f"{header.height}x{header.width} image; mode 'valid' leaves no pixels"))
            continue
        targets.add(key)
        jobs.append(Job(src, dst, out_fmt, dtype))
    return jobs


def run(kernel, files, outdir, *, suffix: str = "", boundary: str = "edge", mode: str = "same", out_dtype=None,
        batch_size: int | None = None, workers: int | None = None, overwrite: bool = False, backend: str | None = None,
        progress=None, fmt: str | None = None, quality: int | None = None,
        png_compression: int = DEFAULT_PNG_COMPRESSION, jobs: list | None = None) -> Report:
    """Filter `files` with `kernel` (a name, spec or 2-D array) into `outdir`.

    Channels are filtered independently (gpuconv.filters.apply), every frame of every file;
    integer images keep their dtype, saturated, and float images stay float, unless
    `out_dtype` says otherwise. `fmt` changes the output format ("tif", "npy", ...);
    `quality` (JPEG) and `png_compression` (0-9) set the encoders. `progress(n)` is called
    as files finish. `batch_size` frames are filtered per call (default: 1 on the CPU, 8 on
    the GPU). Returns a Report; nothing is raised for a single bad file (FormatError
    is raised, before any work, for results the output format cannot hold).
    """
    start = time.perf_counter()
    report = Report()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(outdir)
    k = filters.as_kernel(kernel)
    if jobs is None:
        jobs = plan([Path(f) for f in files], outdir, suffix, overwrite, report, fmt=fmt, out_dtype=out_dtype,
                    kernel_shape=k.shape, mode=mode)
    workers = max(1, workers or os.cpu_count() or 1)
    if batch_size is None:
        # the CPU filters one image at a time as fast as a batch (the numpy backend spreads
        # each call over the cores), and one image flushes at once, so encoding starts early and
        # the last batch leaves no bubble; a GPU wants several images per launch
        batch_size = 8 if backend == "cuda" else 1
    ahead = 2 * batch_size + workers  # files decoding at once: bounds memory
    options = dict(quality=quality, png_compression=png_compression)

    def filter_frames(frames, dtype):
        return filters.apply(frames, k, channel_axis=-1 if frames.ndim == 4 else None, mode=mode,
                             boundary=boundary, out_dtype=dtype, backend=backend)

    staging = _staging(backend)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpuconv-io") as pool:
        pending = deque()   # (job, future of the decoded file), in input order
        writes = []         # (src, future of the write)
        batch = []          # (job, decoded file) whose frames share one shape and dtype
        inflight = deque()  # (batch, Pending or None): batches the GPU may still be filtering
        todo = iter(jobs)

        def skip(job: Job, reason: str):
            report.failed.append((str(job.src), reason))
            if progress:
                progress(1)

        def encode(job: Job, image: ImageFile):
            write_atomic(job.dst, image, overwrite, job.fmt, **options)
            return job.dst

        def filtered(frames, dtype):
            """The filtered frames of one file, or None when they do not fit in memory."""
            try:
                return staging.submit(frames, lambda f: filter_frames(f, dtype)).result()
            except MemoryError:
                return None

        def flush():
            """Hand the batch to the filter; finish the oldest batches beyond the staging depth."""
            if not batch:
                return
            items = list(batch)
            batch.clear()
            dtype = items[0][0].dtype
            try:
                handle = staging.submit(np.concatenate([f.frames for _, f in items]),
                                        lambda f: filter_frames(f, dtype))
            except MemoryError:
                handle = None
            inflight.append((items, handle))
            while len(inflight) >= staging.depth:
                finish_oldest()

        def finish_oldest():
            items, handle = inflight.popleft()
            try:
                frames = None if handle is None else handle.result()
            except MemoryError:
                frames = None
            if frames is None:   # the whole batch did not fit: file by file, skipping what still fails
                results = [filtered(f.frames, job.dtype) for job, f in items]
            else:
                results = np.split(frames, np.cumsum([len(f.frames) for _, f in items])[:-1])
            for (job, f), frames in zip(items, results):
                if frames is None:
                    skip(job, "filtering it needs more memory than is free")
                    continue
                writes.append((job.src, pool.submit(encode, job, ImageFile(frames, job.fmt, f.info))))

        try:
            while True:
                while len(pending) < ahead:
                    job = next(todo, None)
                    if job is None:
                        break
                    pending.append((job, pool.submit(read_file, job.src)))
                if not pending:
                    break
                job, future = pending.popleft()
                try:
                    decoded = future.result()
                except ImageReadError as exc:
                    skip(job, exc.reason)
                    continue
                except MemoryError:
                    skip(job, "does not fit in memory")
                    continue
                head = batch[0] if batch else None
                if head and (decoded.frames.shape[1:] != head[1].frames.shape[1:]
                             or decoded.frames.dtype != head[1].frames.dtype or job.dtype != head[0].dtype):
                    flush()
                batch.append((job, decoded))
                if sum(len(f.frames) for _, f in batch) >= batch_size:
                    flush()
                _collect(writes, report, progress, wait=False)
            flush()
            while inflight:
                finish_oldest()
            _collect(writes, report, progress, wait=True)
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise  # the pool's exit waits for running writes; each cleans up after itself
    report.seconds = time.perf_counter() - start
    return report


def _staging(backend):
    """How batches reach the filter: through pinned memory and streams on the GPU, directly
    on the CPU."""
    from .backends.cuda.staging import DeviceStaging, HostStaging

    if backend == "cuda":
        from .backends import get_backend

        return DeviceStaging(get_backend("cuda"))
    return HostStaging()


def _collect(writes: list, report: Report, progress, wait: bool) -> None:
    """Move finished writes (all of them if `wait`) from `writes` into the report."""
    keep = []
    for src, future in writes:
        if not wait and not future.done():
            keep.append((src, future))
            continue
        try:
            report.written.append(str(future.result()))
        except (OSError, ValueError, MemoryError) as exc:
            report.failed.append((str(src), f"cannot write its output: {exc}"))
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


__all__ = ["FORMATS", "FormatError", "Job", "Report", "expand_inputs", "is_temporary", "output_path", "plan",
           "remove_stale_temporaries", "result_dtype", "run", "write_atomic"]
