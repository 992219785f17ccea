"""Closed-loop load: ``concurrency`` tasks share ``total`` calls; per-call latencies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

ORDER_ID = "RA250101-00001-37"


@dataclass(slots=True)
class Run:
    calls: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


async def drive(call: Callable[[str], Awaitable[object]], total: int, concurrency: int) -> Run:
    remaining = total
    latencies: list[float] = []
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = clock()
            await call(ORDER_ID)
            latencies.append(clock() - t0)

    start = clock()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    return Run(total, clock() - start, latencies)
