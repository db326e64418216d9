"""Timing helpers shared by the benches: warm-up, then the median of repeated runs."""
from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeat: int = 5, warmup: int = 1, budget_s: float = 20.0) -> float:
    """Median wall time of fn() over `repeat` runs after `warmup` runs (fewer if slow)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and len(times) >= 1:
            break
    return statistics.median(times)
