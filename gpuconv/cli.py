"""The `gpuconv` command.

    gpuconv apply KERNEL INPUT... -o OUTDIR   filter image files (see gpuconv.pipeline)
    gpuconv kernels                           list the named kernels with their values
    gpuconv demo [--out DIR]                  the seed examples and a gallery of every kernel
    gpuconv doctor [--arch sm_XY] [-v]        backends, GPU, and a compile of every CUDA kernel variant
    gpuconv build-kernels [--arch sm_XY]      compile the CUDA kernel variants into the cache ahead of time

Exit status: 0 when every file was written, 1 when some were skipped (each is named on
stderr), 2 for a usage error (bad kernel, unknown option, device not available).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import warnings
from pathlib import Path

import numpy as np

from . import checks, kernels, pipeline
from .dispatch import BackendUnavailableError

KERNEL_FILE_EXTENSIONS = (".npy", ".txt", ".csv")


def load_kernel(spec: str) -> tuple:
    """(kernel, label) from a name/spec ("gaussian:11:2") or a .npy/.txt/.csv file; a
    ValueError naming the file for anything else (empty, not numbers, complex, not 2-D,
    sides over gpuconv.kernels.MAX_SIZE).

    Examples
    --------
    >>> k, label = load_kernel("sobel:left"); label, k.shape
    ('sobel_left', (3, 3))
    """
    path = Path(spec)
    if path.suffix.lower() not in KERNEL_FILE_EXTENSIONS:
        return kernels.get(spec), re.sub(r"[^A-Za-z0-9.]+", "_", spec).strip("_")
    if not path.is_file():
        raise ValueError(f"kernel file {spec} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # loadtxt's "no data" warning: the size check below says it
            if path.suffix.lower() == ".npy":
                k = np.load(path, allow_pickle=False)
            else:
                k = np.loadtxt(path, delimiter="," if path.suffix.lower() == ".csv" else None, ndmin=2)
    except EOFError:
        raise ValueError(f"kernel file {spec} is empty") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"kernel file {spec} could not be read: {exc}") from None
    if k.dtype.kind == "c":
        raise ValueError(f"kernel file {spec} holds complex values ({k.dtype}); kernels are real")
    if k.dtype.kind not in "biuf":
        raise ValueError(f"kernel file {spec} holds {k.dtype} values, not numbers")
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 1:
        k = k[None, :]
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"kernel file {spec} holds shape {k.shape}; a non-empty 2-D kernel is needed")
    if max(k.shape) > kernels.MAX_SIZE:
        raise ValueError(f"kernel file {spec} holds a {k.shape[0]}x{k.shape[1]} kernel; the limit is "
                         f"{kernels.MAX_SIZE} per side")
    return k, path.stem


def _backend_for(device: str):
    """Backend name for --device; 'gpu' must be usable, 'auto' falls back to the CPU."""
    if device == "cpu":
        return "numpy"
    from .backends import get_backend

    try:
        get_backend("cuda")
        return "cuda"
    except BackendUnavailableError:
        if device == "gpu":
            raise
        return "numpy"


def _progress(total: int, quiet: bool):
    """A tqdm bar on a terminal (when tqdm is installed), timed lines otherwise, None if quiet."""
    if quiet:
        return None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm  # optional: the bench extra installs it
        except ImportError:
            pass
        else:
            bar = tqdm(total=total, unit="img", file=sys.stderr)
            return _TqdmProgress(bar)
    return pipeline.LineProgress(total)


class _TqdmProgress:
    def __init__(self, bar):
        self.bar = bar

    def __call__(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: writes in flight finish or clean up, nothing partial stays."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _usage(message: str) -> int:
    print(f"gpuconv apply: {message}", file=sys.stderr)
    return 2


def _check_apply_args(args):
    """Usage errors of `apply` found before any file is touched: (kernel, label, backend,
    out_dtype). Raises ValueError/TypeError with the one-line message."""
    kernel, label = load_kernel(args.kernel)
    backend = _backend_for(args.device)
    out_dtype = None if args.out_dtype is None else checks.check_out_dtype("--out-dtype", args.out_dtype)
    if args.suffix is not None and (any(sep in args.suffix for sep in ("/", "\\", os.sep, os.altsep or "/"))
                                    or args.suffix in (".", "..")):
        raise ValueError(f"--suffix {args.suffix!r} holds a path separator; outputs stay in -o's folder")
    for name, value, lo, hi in (("--max-pixels", args.max_pixels, 1, None), ("--quality", args.quality, 1, 100),
                                ("--png-compression", args.png_compression, 0, 9)):
        if value is not None and (value < lo or (hi is not None and value > hi)):
            raise ValueError(f"{name} {value} is out of range; accepted: {lo}..{hi if hi is not None else 'any'}")
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"-o {outdir} is a file; -o names a folder (created if missing)")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe_file = outdir / f".gpuconv-write-check-{os.getpid()}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as exc:
        raise ValueError(f"cannot write into -o {outdir}: {exc.strerror or exc}") from None
    return kernel, label, backend, out_dtype


def cmd_apply(args) -> int:
    """`gpuconv apply`: filter files; 0 all written, 1 some skipped, 2 usage error,
    130 interrupted (143 terminated)."""
    try:
        kernel, label, backend, out_dtype = _check_apply_args(args)
    except (ValueError, TypeError) as exc:
        return _usage(str(exc))
    if args.max_pixels:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = args.max_pixels  # process-wide: this command's own limit
    files, problems = pipeline.expand_inputs(args.inputs, recursive=args.recursive)
    for name, why in problems:
        print(f"gpuconv apply: {name}: {why}", file=sys.stderr)
    suffix = args.suffix if args.suffix is not None else f"_{label}"
    report = pipeline.Report()
    try:
        jobs = pipeline.plan(files, Path(args.outdir), suffix, args.overwrite, report, fmt=args.format,
                             out_dtype=out_dtype, kernel_shape=kernel.shape, mode=args.mode)
    except (pipeline.FormatError, ValueError) as exc:
        return _usage(str(exc))
    progress = _progress(len(jobs), args.quiet)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if hasattr(signal, "SIGTERM") else None
    try:
        done = pipeline.run(kernel, files, args.outdir, boundary=args.boundary, mode=args.mode, out_dtype=out_dtype,
                            batch_size=args.batch_size, workers=args.workers, overwrite=args.overwrite,
                            backend=backend, progress=progress, quality=args.quality,
                            png_compression=args.png_compression if args.png_compression is not None
                            else pipeline.DEFAULT_PNG_COMPRESSION, jobs=jobs)
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"gpuconv apply: {what}; finished outputs are complete, no partial files were left", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if progress is not None:
            progress.close()
    report.written += done.written
    report.failed += done.failed
    for name, why in report.failed:
        print(f"gpuconv apply: skipped {name}: {why}", file=sys.stderr)
    if not args.quiet:
        rate = len(report.written) / max(done.seconds, 1e-9)
        print(f"gpuconv apply: wrote {len(report.written)} of {len(files)} images to {args.outdir} "
              f"in {done.seconds:.2f} s ({rate:.1f} images/s); {len(report.failed) + len(problems)} problem(s)",
              file=sys.stderr)
    return 0 if report.ok and not problems else 1


def cmd_kernels(args) -> int:
    """`gpuconv kernels`: every named kernel with its values."""
    for name in kernels.names():
        k = kernels.get(name)
        print(f"{name} ({k.shape[0]}x{k.shape[1]})")
        for row in k:
            print("   " + " ".join(f"{v:6.3g}" for v in row))
    print("sized: box:N, gaussian:N[:SIGMA], identity:N   e.g. gpuconv apply gaussian:11:2 photo.png -o out/")
    return 0


def cmd_demo(args) -> int:
    """`gpuconv demo`: the seed examples, the gallery and the sample folder."""
    from . import demo

    return demo.main(["--out", args.out])


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `gpuconv` command."""
    parser = argparse.ArgumentParser(prog="gpuconv", description="Sliding-window convolution of images.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("apply", help="filter image files with a kernel")
    p.add_argument("kernel", help="a name (sharpen), a spec (gaussian:11:2, sobel:left) or a .npy/.txt/.csv file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--out", dest="outdir", required=True, help="output folder (created if missing)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    p.add_argument("--boundary", choices=checks.BOUNDARIES, default="edge")
    p.add_argument("--mode", choices=checks.MODES, default="same")
    p.add_argument("--out-dtype", default=None,
                   help="result dtype (default: integer images keep theirs, float images stay float)")
    p.add_argument("--format", choices=sorted(ext.lstrip(".") for ext in pipeline.FORMATS), default=None,
                   help="output format (default: each input's own); npy holds any result")
    p.add_argument("--quality", type=int, default=None,
                   help="JPEG quality 1-100 (default: a JPEG input's own tables, else 95)")
    p.add_argument("--png-compression", type=int, default=None,
                   help=f"PNG zlib level 0-9 (default {pipeline.DEFAULT_PNG_COMPRESSION}; 1 encodes ~3x faster, "
                        "files ~15%% larger)")
    p.add_argument("-r", "--recursive", action="store_true", help="also take the images in subfolders of folders")
    p.add_argument("--suffix", default=None, help="added to each output's file name (default: _KERNEL)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="same-size frames filtered per call (default: 1 on the CPU, 8 on a GPU)")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="threads decoding and encoding files")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="Pillow's decompression-bomb limit in pixels (default 89478485)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=cmd_apply)
    p = sub.add_parser("kernels", help="list the named kernels")
    p.set_defaults(func=cmd_kernels)
    p = sub.add_parser("demo", help="seed examples and a gallery of every kernel")
    p.add_argument("--out", default="demo_out")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("doctor", help="backends, GPU, and an NVRTC compile of every CUDA kernel variant")
    p.add_argument("--arch", help="target such as sm_90 (default: this GPU's, else sm_90)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per variant")
    p.add_argument("-j", "--jobs", type=int, default=None, help="compile threads (default: every core)")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("build-kernels", help="compile the CUDA kernel variants into the cache (first calls then load)")
    p.add_argument("--arch", help="target such as sm_90 (default: this GPU's, else sm_90)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="compile threads (default: every core)")
    p.set_defaults(func=cmd_build_kernels)
    return parser


def _bad_arch(command: str, arch) -> bool:
    """Print a usage error for an --arch that names no CUDA architecture."""
    from .backends.cuda.compiler import arch_number

    if arch is None:
        return False
    try:
        arch_number(arch)
    except ValueError:
        print(f"gpuconv {command}: --arch {arch!r} is not a CUDA architecture; expected one like sm_90",
              file=sys.stderr)
        return True
    return False


def cmd_doctor(args) -> int:
    from . import doctor

    if _bad_arch("doctor", args.arch):
        return 2
    return doctor.run(args.arch, args.verbose, args.jobs)


def cmd_build_kernels(args) -> int:
    """Exit 0 when every variant is in the cache, 1 when some failed to compile, 2 without
    NVRTC or for a bad --arch."""
    from . import doctor

    if _bad_arch("build-kernels", args.arch):
        return 2
    report = doctor.build(args.arch, args.jobs)
    if report is None:
        return 2
    for failure in report.failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if report.failures else 0


def main(argv=None) -> int:
    """Entry point of the `gpuconv` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        print(f"gpuconv {args.command}: --jobs must be >= 1", file=sys.stderr)
        return 2
    if (getattr(args, "batch_size", None) is not None and args.batch_size < 1) or (getattr(args, "workers", 1) or 1) < 1:
        print("gpuconv apply: --batch-size and --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # `gpuconv kernels | head`: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
