"""timeit-style timing: best of N repeats of a batch sized to last at least ``min_time``."""

from __future__ import annotations

import gc
import statistics
import timeit
from collections.abc import Callable, Sequence
from typing import Any


def race(
    fns: dict[str, Callable[[], Any]], *, repeat: int, min_time: float, gc_on: bool = False
) -> dict[str, float]:
    """Seconds per call of each function: the best of ``repeat`` batches of at least
    ``min_time`` (GC off, as in timeit, unless ``gc_on``). The contenders take turns, batch
    by batch, so a burst of other work on the machine hits them all alike."""
    setup = "gc.enable()" if gc_on else "pass"
    timers = {k: timeit.Timer(fn, setup=setup, globals={"gc": gc}) for k, fn in fns.items()}
    numbers = {k: _batch(t, min_time) for k, t in timers.items()}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for k, t in timers.items():
            best[k] = min(best[k], t.timeit(numbers[k]) / numbers[k])
    return best


def _batch(timer: timeit.Timer, min_time: float) -> int:
    """How many calls make a batch of at least ``min_time`` seconds."""
    number = 1
    while True:
        took = timer.timeit(number)
        if took >= min_time:
            return number
        number *= 2 if took == 0 else max(2, min(10, int(min_time / took) + 1))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
