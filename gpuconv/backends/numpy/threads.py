"""Run independent chunks of BLAS work on all cores, one BLAS thread per worker.

Why: the numpy engines alternate a single-threaded gather (np.copyto) with a GEMM. Left to
itself OpenBLAS parallelises only the GEMM, so one core idles during every gather. Two
workers that each copy and multiply their own chunks, with BLAS held to one thread inside
each worker, ran the C1 workloads about 2x faster on the 2-core development machine
(bench/NOTES.md).

OpenBLAS 0.3.27+ exports `openblas_set_num_threads_local`, which limits only the calling
thread, so the user's BLAS settings are never touched. Where it cannot be found (another
BLAS, or a platform without /proc/self/maps) the chunks run serially and BLAS keeps its own
threads, which is what plain numpy would do.
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


@functools.lru_cache(maxsize=None)
def _local_thread_setter():
    """openblas_set_num_threads_local from the BLAS numpy loaded, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local")
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    return None


_pool_lock = threading.Lock()
_in_worker = threading.local()  # set while a pool thread runs a job
_pool = None


@functools.lru_cache(maxsize=None)
def workers() -> int:
    """How many chunk workers run at once: the cores, if BLAS can be held per thread."""
    if _local_thread_setter() is None:
        return 1
    return max(1, os.cpu_count() or 1)


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="gpuconv")
        return _pool


# Below this many elements of work a call runs serially: handing jobs to the pool costs more
# (tens of microseconds per job) than a second core saves.
SERIAL_BELOW = 1 << 16


def run_chunks(starts: list, work, size: int | None = None) -> None:
    """Call work(start) for every start, spread over the workers (each with one BLAS thread).

    `work` must only write its own part of the output; each worker calls it for the starts
    `starts[i::n]`, in order. `size` (elements of work in all) lets small calls run serially.
    """
    n = min(workers(), len(starts))
    if (size is not None and size < SERIAL_BELOW) or getattr(_in_worker, "flag", False):
        # small work; or called from inside a worker (an engine's epilogue recomputing a
        # chunk): waiting on the pool from its own workers could leave none free, so run here
        n = 1
    if n <= 1:
        for s in starts:
            work(s)
        return
    setter = _local_thread_setter()
    errors = np.geterr()  # np.errstate is per thread: workers follow the caller's

    def job(i):
        previous = setter(1)
        _in_worker.flag = True
        try:
            with np.errstate(**errors):
                for s in starts[i::n]:
                    work(s)
        finally:
            _in_worker.flag = False
            setter(previous)

    for future in [_get_pool(n).submit(job, i) for i in range(n)]:
        future.result()  # re-raises a worker's exception here
