"""Adaptive read pacing: a history export against a server that allows N reads per second
(429 for any GET sooner than 1/N after the last one it accepted), fetched 4 pages at a
time. Reads are unpaced by default; after the first 429 the route is paced and adapts
(AIMD, ``tango_async._pacing``). Reported: the 429s the export met and its throughput as
a share of N, adaptive vs not (``PacingPolicy(adaptive=False)``: every 429 retried after
its delay), in paired rounds."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

import aiohttp

import tango_async as ta

from ._config import Config
from ._procs import Child, split_cpus
from ._report import Result, Row

NAME = "adaptive reads"
READ_RATE = 20.0  # reads per second the server allows
CONCURRENCY = 4
SHARE_TARGET = 0.8
STEP = timedelta(seconds=30)  # the seeded sandbox's spacing of createdAt stamps


async def _export(ready: dict[str, Any], adaptive: bool, count: int) -> tuple[int, int, float]:
    """(requests, 429s, seconds) of one export of the first ``count`` orders."""
    end = datetime.fromisoformat(ready["start"]) + STEP * count - timedelta(milliseconds=1)
    statuses: list[int] = []
    trace = aiohttp.TraceConfig()

    async def on_end(session: Any, ctx: Any, params: Any) -> None:
        statuses.append(params.response.status)

    trace.on_request_end.append(on_end)
    session = aiohttp.ClientSession(trace_configs=[trace])
    policy = ta.PacingPolicy(adaptive=adaptive)
    retry = ta.RetryPolicy(max_retries=50, max_delay=2.0)
    try:
        async with ta.TangoClient(
            ready["platform_name"],
            ready["platform_key"],
            base_url=ready["base_url"],
            session=session,
            pacing=policy,
            retry=retry,
        ) as tango:
            t0 = time.perf_counter()
            n = 0
            history = tango.orders.list(
                start_date=ready["start"], end_date=end, concurrency=CONCURRENCY
            )
            async for _ in history:
                n += 1
            seconds = time.perf_counter() - t0
    finally:
        await session.close()
    if n != count:
        raise RuntimeError(f"exported {n} orders of {count}")
    return len(statuses), statuses.count(429), seconds


def run(cfg: Config) -> Result:
    count = cfg.pick(48_000, 1_000)  # 100 per page: 480 pages, 24 s at exactly 20/s
    control_count = cfg.pick(3_000, 200)  # the control is slow: a smaller range, once
    rounds = cfg.pick(3, 1)
    _, server_cpus = split_cpus()
    result = Result(NAME)
    rows: dict[bool, list[tuple[int, int, float]]] = {True: [], False: []}
    with Child(
        "_seeded_sandbox",
        [str(count), "100000", "--read-rate", str(READ_RATE)],
        cpu_set=server_cpus,
    ) as sandbox:
        for _ in range(rounds):
            time.sleep(cfg.pick_float(1.1, 0.1))  # a fresh start for the server's window
            rows[True].append(asyncio.run(_export(sandbox.ready, True, count)))
        time.sleep(cfg.pick_float(1.1, 0.1))
        rows[False].append(asyncio.run(_export(sandbox.ready, False, control_count)))
    for adaptive in (True, False):
        runs = rows[adaptive]
        accepted = [(req - refused) / secs for req, refused, secs in runs]
        share = statistics.median(a / READ_RATE for a in accepted)
        low = min(a / READ_RATE for a in accepted)
        high = max(a / READ_RATE for a in accepted)
        refused_total = sum(r for _, r, _ in runs)
        label = "adaptive (default)" if adaptive else "not adaptive (control)"
        size = count if adaptive else control_count
        result.rows.append(
            Row(
                f"history export at a {READ_RATE:g} reads/s server, {size:,} orders, "
                f"concurrency {CONCURRENCY}: {label}",
                f"429s: {refused_total} in {len(runs)} exports",
                f"{statistics.median(req for req, _, _ in runs):.0f} requests per export",
                f"{share:.2f} of N ({low:.2f}-{high:.2f})",
                target=f">= {SHARE_TARGET:g} of N, few 429s" if adaptive else "— (control)",
                met=(share >= SHARE_TARGET) if adaptive else None,
            )
        )
    result.notes.append(
        f"a seeded sandbox in its own process with read_rate={READ_RATE:g} "
        "(429.001 for a GET sooner than 1/N after the last accepted one); "
        f"orders.list(start_date, end_date, concurrency={CONCURRENCY}) by a client in this "
        f"process: {rounds} adaptive export(s) of {count:,} orders, then one control export of "
        f"{control_count:,} (without adaptation every 429 is retried after its delay, so it "
        "is slow); "
        "share of N = accepted requests per second / N over the whole export (429s "
        "excluded), median with min-max; 429s counted at the client (aiohttp trace)"
    )
    return result
