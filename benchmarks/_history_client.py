"""The client side of the history benchmark, in a fresh process so its memory is its own.

``python -m benchmarks._history_client READY_JSON RESULT_WINDOW`` iterates
``orders.list(start_date, end_date)`` over the seeded range twice: once timed, measuring
the peak RSS growth, once under tracemalloc (Python heap peak; slower, not timed). Prints
the figures as one JSON line.

Peak RSS: on Linux the kernel's high-water mark VmHWM (/proc/self/status), reset just
before the pass by writing 5 to /proc/self/clear_refs, minus VmRSS before the pass.
(getrusage's ru_maxrss would not do: Linux carries the parent's peak across fork and
exec.) Elsewhere ru_maxrss is the fallback, and the method is reported."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import tracemalloc
from datetime import datetime
from typing import Any

import tango_async as ta


def _proc_status() -> dict[str, int] | None:
    """VmRSS and VmHWM in bytes, or None without /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
    except OSError:
        return None
    return {k: int(v.split()[0]) * 1024 for k, v in fields.items()}


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


class PeakRss:
    """Peak RSS growth over a block: VmHWM - VmRSS (Linux), else ru_maxrss growth."""

    def __init__(self) -> None:
        self.method = ""
        self.before = 0
        self.growth = 0

    def __enter__(self) -> PeakRss:
        status = _proc_status()
        if status is not None:
            reset = _reset_peak()
            status = _proc_status() or status
            self.before = status["VmRSS"]
            self.method = "VmHWM - VmRSS from /proc/self/status" + (
                " (VmHWM reset via /proc/self/clear_refs)" if reset else " (VmHWM not reset)"
            )
        else:
            self.before = _ru_maxrss()
            self.method = "getrusage ru_maxrss growth"
        return self

    def __exit__(self, *exc: object) -> None:
        status = _proc_status()
        peak = status["VmHWM"] if status is not None else _ru_maxrss()
        self.growth = max(0, peak - self.before)


def _ru_maxrss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB


async def _export(tango: ta.TangoClient, start: datetime, end: datetime) -> int:
    count = 0
    async for order in tango.orders.list(start_date=start, end_date=end):
        count += bool(order.reference_order_id)
    return count


async def main(ready: dict[str, Any], result_window: int) -> dict[str, Any]:
    start, end = datetime.fromisoformat(ready["start"]), datetime.fromisoformat(ready["end"])
    async with ta.TangoClient(
        ready["platform_name"],
        ready["platform_key"],
        base_url=ready["base_url"],
        result_window=result_window,
    ) as tango:
        with PeakRss() as rss:
            t0 = time.perf_counter()
            count = await _export(tango, start, end)
            seconds = time.perf_counter() - t0
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        traced_count = await _export(tango, start, end)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "count": count,
        "traced_count": traced_count,
        "seconds": seconds,
        "rss_before": rss.before,
        "rss_growth": rss.growth,
        "rss_method": rss.method,
        "tracemalloc_peak": peak - base,
    }


if __name__ == "__main__":
    out = asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2])))
    sys.stdout.write(json.dumps(out) + "\n")
