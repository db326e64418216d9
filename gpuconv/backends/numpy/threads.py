"""Run independent chunks of BLAS work on all cores, one BLAS thread per worker.

Why: the numpy engines alternate a single-threaded gather (np.copyto) with a GEMM. Left to
itself OpenBLAS parallelises only the GEMM, so one core idles during every gather. Workers
that each copy and multiply their own chunks, with BLAS held to one thread, ran the C1
workloads about 2x faster on the 2-core development machine (bench/NOTES.md).

Why one BLAS thread exactly: OpenBLAS rounds a GEMM differently depending on how it splits
the matrix over threads, and when two workers call it at once, whether a call gets the thread
server depends on timing; results then changed from one run to the next (2 bit patterns in
30 identical calls). While chunks run, OpenBLAS's thread count is set to 1 (its global
setting: the per-thread `openblas_set_num_threads_local` did not stop the variation) and put
back when the last concurrent gpuconv call leaves, so results are bit-identical run to run.
Where the BLAS is not OpenBLAS, or its controls cannot be found, the chunks run serially and
BLAS keeps its own threads, which is what plain numpy would do.

Fork safety: a child process forked while the pool exists gets the pool object but none of
its threads, so jobs would wait forever; the pool and the locks are made anew in the child.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_")
_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_")


@functools.lru_cache(maxsize=None)
def blas_thread_controls():
    """(get, set) of the global thread count of the OpenBLAS numpy loaded, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        get = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        set_ = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        if get is not None and set_ is not None:
            get.restype, get.argtypes = ctypes.c_int, []
            set_.restype, set_.argtypes = None, [ctypes.c_int]
            return get, set_
    return None


_pool_lock = threading.Lock()
_pin_lock = threading.Lock()
_pin_depth = 0          # gpuconv calls inside one_blas_thread() now
_pin_saved = None       # OpenBLAS's thread count before the first of them
_in_worker = threading.local()  # set while a pool thread runs a job
_pool = None


def _after_fork_in_child() -> None:
    global _pool, _pool_lock, _pin_lock, _pin_depth
    _pool = None                       # its threads did not survive the fork
    _pool_lock = threading.Lock()      # another thread may have held them at the fork
    _pin_lock = threading.Lock()
    _pin_depth = 0
    _in_worker.flag = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def one_blas_thread():
    """OpenBLAS runs single-threaded inside (see the module notes); nested and concurrent
    uses share one pin, undone when the last leaves."""
    global _pin_depth, _pin_saved
    controls = blas_thread_controls()
    if controls is None:
        yield
        return
    get, set_ = controls
    with _pin_lock:
        if _pin_depth == 0:
            _pin_saved = get()
            set_(1)
        _pin_depth += 1
    try:
        yield
    finally:
        with _pin_lock:
            _pin_depth -= 1
            if _pin_depth == 0:
                set_(_pin_saved)


@functools.lru_cache(maxsize=None)
def workers() -> int:
    """How many chunk workers run at once: the cores, if BLAS can be held to one thread."""
    if blas_thread_controls() is None:
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
    with one_blas_thread():
        if n <= 1:
            for s in starts:
                work(s)
            return
        errors = np.geterr()  # np.errstate is per thread: workers follow the caller's

        def job(i):
            _in_worker.flag = True
            try:
                with np.errstate(**errors):
                    for s in starts[i::n]:
                        work(s)
            finally:
                _in_worker.flag = False

        for future in [_get_pool(n).submit(job, i) for i in range(n)]:
            future.result()  # re-raises a worker's exception here
