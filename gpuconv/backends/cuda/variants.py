"""The kernel variants to compile ahead of time: (source file, template instance) pairs that
together use every value of every template argument the planners (correlate_plan,
conv_plan) can produce. `gpuconv build-kernels` compiles them into the cache and `gpuconv
doctor` reports their registers, shared memory and spills.

The full product (kernel sizes x folds x dtypes x boundaries) runs to tens of thousands of
instances; this set covers each argument's code path, so a compile error in any of them
shows, and holds the instances of the canonical workloads (BENCH.md). Any other instance
compiles on its first use (about a second) and is cached on disk from then on.
"""
from __future__ import annotations

import numpy as np

from ...dtypes import compute_dtype, default_result_dtype
from .blocks import BOUNDARY_IDS, NATIVE_INPUTS, cpp_types, instance
from .conv_plan import TC_PREC_IDS, depthwise_instance, fma_instance, tc_instance
from .correlate_plan import SEPARABLE_MAX_RANK, TILED_MAX_FOLD, tiled_rows

F32, F64, U8 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8)
RESULTS = [np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                                 "float16", "float32", "float64")]
NATIVES = sorted(NATIVE_INPUTS, key=str)


def correlate_variants() -> list:
    """The correlate kernels' variants (tiled, separable, rows, generic).

    Examples
    --------
    >>> names = [n for _, n in correlate_variants()]
    >>> "correlate_tiled<unsigned char, unsigned char, float, 3, 3, 3, 1, 8, int>" in names
    True
    """
    out = set()

    def generic(tin, tout, bid, idx="int"):
        out.add(("correlate_generic.cu",
                 instance("correlate_generic", cpp_types(tin, tout, compute_dtype(tin)), bid, idx)))

    def rows(tin, tout, bid, idx="int"):
        out.add(("correlate_rows.cu", instance("correlate_rows", cpp_types(tin, tout, compute_dtype(tin)), bid, idx)))

    def tiled(tin, tout, kh, kw, fold, bid, idx="int"):
        acc = compute_dtype(tin)
        ry = tiled_rows(acc, kh, kw, fold)
        if ry is not None:
            out.add(("correlate_tiled.cu",
                     instance("correlate_tiled", cpp_types(tin, tout, acc), kh, kw, fold, bid, ry, idx)))

    def separable(tin, tout, kh, kw, fold, bid, rank, idx="int"):
        acc = compute_dtype(tin)
        ry = tiled_rows(acc, kh, kw, fold, separable=True)
        if ry is not None:
            out.add(("correlate_separable.cu", instance("correlate_separable", cpp_types(tin, tout, acc), kh, kw,
                                                        fold, bid, ry, rank, idx)))

    for tin in NATIVES:                      # every input x result dtype
        for tout in RESULTS:
            generic(tin, tout, 0)
    for bid in BOUNDARY_IDS.values():        # every boundary, both index types
        for idx in ("int", "long long"):
            generic(F32, F32, bid, idx)
            tiled(F32, F32, 3, 3, 1, bid, idx)
            tiled(U8, U8, 3, 3, 3, bid, idx)
            rows(F32, F32, bid, idx)
            separable(F32, F32, 11, 11, 1, bid, 1, idx)
    for tin in NATIVES:                      # every input dtype, smallest and a large size
        for k in (3, 11):
            tiled(tin, default_result_dtype(tin), k, k, 1, 0)
        rows(tin, default_result_dtype(tin), 0)
        separable(tin, default_result_dtype(tin), 5, 5, 1, 1, 1)
    for k in (5, 7, 15):                     # the other benchmarked sizes, and the largest
        tiled(F32, F32, k, k, 1, 0)
    for tout in RESULTS:                     # every result dtype
        tiled(F32, tout, 3, 3, 1, 1)
    for fold in range(2, TILED_MAX_FOLD + 1):  # every channel fold
        tiled(U8, U8, 5, 5, fold, 1)
    for kh, kw in ((1, 2), (1, 7), (7, 1), (2, 4), (4, 2), (1, 15), (15, 1)):  # odd shapes, 1-D rows
        tiled(F32, F32, kh, kw, 1, 0)
    rows(F32, U8, 1)
    for k in (3, 7, 15, 31):                 # separable: Gaussian sizes, ranks, folds
        separable(F32, F32, k, k, 1, 0, 1)
    for rank in range(2, SEPARABLE_MAX_RANK + 1):
        separable(F32, F32, 7, 7, 1, 2, rank)
    for fold in (3, 4):
        separable(U8, U8, 5, 5, fold, 1, 1)
    separable(F32, np.dtype(np.int16), 9, 3, 1, 3, 2)
    return sorted(out)


def conv_variants() -> list:
    """The kernel-bank kernels' variants (FMA and tensor-core implicit GEMM, depthwise).

    Examples
    --------
    >>> sorted({f for f, _ in conv_variants()})
    ['conv_depthwise.cu', 'conv_igemm.cu', 'conv_igemm_tc.cu']
    """
    out = set()

    def fma(tin, tout, og, cl, flat, bid):
        out.add(("conv_igemm.cu", fma_instance(tin, tout, compute_dtype(tin), og, cl, flat, bid)))

    def tc(tin, tout, how, og, cl, flat, bid):
        out.add(("conv_igemm_tc.cu", tc_instance(tin, tout, how, og, cl, flat, bid)))

    def depthwise(tin, tout, cl, bid):
        out.add(("conv_depthwise.cu", depthwise_instance(tin, tout, compute_dtype(tin), cl, bid)))

    for tin in NATIVES:                                 # every input dtype, both layouts
        for cl in (False, True):
            fma(tin, default_result_dtype(tin), 64, cl, False, 0)
            depthwise(tin, default_result_dtype(tin), cl, 0)
    for tout in RESULTS:                                # every result dtype
        fma(F32, tout, 64, False, False, 1)
        tc(F32, tout, "tf32", 64, True, False, 1)
    for og in (128, 64, 32, 16):                        # every configuration, both arithmetics
        for dt in (F32, F64):
            for flat in (False, True):
                fma(dt, dt, og, False, flat, 0)
        for cl in (False, True):
            for how in TC_PREC_IDS:
                tc(F32, F32, how, og, cl, False, 0)
            tc(np.dtype(np.float16), np.dtype(np.float16), "float16", og, cl, True, 0)
    for bid in BOUNDARY_IDS.values():                   # every boundary, flat and chunked K
        for flat in (False, True):
            fma(F32, F32, 16, True, flat, bid)
            tc(F32, F32, "tf32", 16, False, flat, bid)
        depthwise(F32, F32, False, bid)
    return sorted(out)


def variants() -> list:
    """Every kernel's variants: correlate_variants() + conv_variants()."""
    return correlate_variants() + conv_variants()
