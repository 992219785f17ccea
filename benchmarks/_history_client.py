"""The client side of the history benchmark, in a fresh process so its memory is its own.

``python -m benchmarks._history_client READY_JSON RESULT_WINDOW`` iterates
``orders.list(start_date, end_date)`` over the seeded range twice: once timed, measuring
the peak RSS growth, once under tracemalloc (Python heap peak; slower, not timed). Prints
the figures as one JSON line.

``python -m benchmarks._history_client READY_JSON RESULT_WINDOW --paired ROUNDS
--concurrency N`` times the sequential export (``concurrency=1``) and the concurrent one
(``concurrency=N``) back to back over the same range, ROUNDS times, alternating which goes
first, after one untimed concurrent export that opens the connections both reuse. Every
export must yield the same orders in the same order. Prints both lists of seconds (and
the requests one export sends) as one JSON line.

Peak RSS: on Linux the kernel's high-water mark VmHWM (/proc/self/status), reset just
before the pass by writing 5 to /proc/self/clear_refs, minus VmRSS before the pass.
(getrusage's ru_maxrss would not do: Linux carries the parent's peak across fork and
exec.) Elsewhere ru_maxrss is the fallback, and the method is reported."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence
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


async def _ids(
    tango: ta.TangoClient, start: datetime, end: datetime, concurrency: int
) -> list[str]:
    history = tango.orders.list(start_date=start, end_date=end, concurrency=concurrency)
    return [order.reference_order_id async for order in history]


async def _counted(coro_fn: Any, transport: Any) -> tuple[Any, int]:
    """Run ``coro_fn()`` counting the requests ``transport`` sends meanwhile (untimed)."""
    real = transport.request
    sent = 0

    async def request(*args: Any, **kwargs: Any) -> Any:
        nonlocal sent
        sent += 1
        return await real(*args, **kwargs)

    transport.request = request
    try:
        return await coro_fn(), sent
    finally:
        del transport.request  # the class's method again


def _client(ready: dict[str, Any], result_window: int) -> ta.TangoClient:
    return ta.TangoClient(
        ready["platform_name"],
        ready["platform_key"],
        base_url=ready["base_url"],
        result_window=result_window,
    )


async def paired(
    ready: dict[str, Any], result_window: int, rounds: int, concurrency: int
) -> dict[str, Any]:
    if concurrency < 2:
        raise ValueError("--concurrency must be at least 2 (1 is the sequential export)")
    start, end = datetime.fromisoformat(ready["start"]), datetime.fromisoformat(ready["end"])
    async with _client(ready, result_window) as tango:
        # warm-up, untimed: opens the connections both exports reuse; its orders are the
        # reference every timed export must match
        reference, requests = await _counted(
            lambda: _ids(tango, start, end, concurrency), tango._transport
        )
        if len(reference) != ready["count"] or len(set(reference)) != len(reference):
            raise RuntimeError(f"exported {len(reference)} orders of {ready['count']}")
        seconds: dict[int, list[float]] = {1: [], concurrency: []}
        for i in range(rounds):
            for c in (1, concurrency) if i % 2 == 0 else (concurrency, 1):
                t0 = time.perf_counter()
                got = await _ids(tango, start, end, c)
                seconds[c].append(time.perf_counter() - t0)
                if got != reference:
                    raise RuntimeError(f"concurrency={c} yielded other orders, or in another order")
    return {
        "count": len(reference),
        "requests": requests,
        "sequential": seconds[1],
        "concurrent": seconds[concurrency],
    }


async def main(ready: dict[str, Any], result_window: int) -> dict[str, Any]:
    start, end = datetime.fromisoformat(ready["start"]), datetime.fromisoformat(ready["end"])
    async with _client(ready, result_window) as tango:
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


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks._history_client")
    p.add_argument("ready", type=json.loads, metavar="READY_JSON")
    p.add_argument("result_window", type=int)
    p.add_argument("--paired", type=int, default=0, metavar="ROUNDS")
    p.add_argument("--concurrency", type=int, default=4)
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse(sys.argv[1:])
    if args.paired:
        out = asyncio.run(paired(args.ready, args.result_window, args.paired, args.concurrency))
    else:
        out = asyncio.run(main(args.ready, args.result_window))
    sys.stdout.write(json.dumps(out) + "\n")
