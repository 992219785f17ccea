"""Client overhead: GET /orders/{id} against one minimal aiohttp server in another process,
TangoClient vs raw aiohttp doing the same work (same connector limit, read the body,
msgspec-decode it into the same Order type), at concurrency 1 and 64."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec

import tango_async as ta
from tango_async._constants import DEFAULT_CONNECTOR_LIMIT

from ._config import Config
from ._drive import Run, drive
from ._procs import Child, pinned, split_cpus
from ._report import Result, Row, fmt_rate, fmt_ratio, fmt_us
from ._timing import median

NAME = "client overhead"
NAME_KEY = ("bench-platform", "bench-key")
THROUGHPUT_TARGET = 0.85
OVERHEAD_TARGET_US = 100.0
ROUNDS, CALLS_C1, CALLS_C64 = 12, 1500, 5000  # full run; --quick: 1 round of 200 and 1,000

Call = Callable[[str], Awaitable[Any]]


class RawAiohttp:
    """What a hand-written client does for the same call, and nothing more."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.headers = {
            "Authorization": aiohttp.encode_basic_auth(*NAME_KEY),
            "Accept": "application/json",
            "User-Agent": "raw-aiohttp",
        }
        self.decoder = msgspec.json.Decoder(ta.Order)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RawAiohttp:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=DEFAULT_CONNECTOR_LIMIT, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=30.0),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def get(self, order_id: str) -> ta.Order:
        assert self.session is not None
        async with self.session.get(
            self.base_url + "/orders/" + order_id, headers=self.headers
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            return self.decoder.decode(body)


async def _measure(cfg: Config, base_url: str) -> dict[tuple[str, int], list[Run]]:
    rounds = cfg.pick(ROUNDS, 1)
    totals = {1: cfg.pick(CALLS_C1, 200), 64: cfg.pick(CALLS_C64, 1000)}
    runs: dict[tuple[str, int], list[Run]] = {}
    async with ta.TangoClient(*NAME_KEY, base_url=base_url) as tango, RawAiohttp(base_url) as raw:
        calls: dict[str, Call] = {"tango-async": tango.orders.get, "raw aiohttp": raw.get}
        for call in calls.values():  # warm up: connections, caches
            await drive(call, cfg.pick(500, 100), 64)
        for _ in range(rounds):
            for conc, total in totals.items():
                for name, call in calls.items():
                    runs.setdefault((name, conc), []).append(await drive(call, total, conc))
    return runs


def run(cfg: Config) -> Result:
    client_cpus, server_cpus = split_cpus()
    with Child("_server", [], cpu_set=server_cpus) as server, pinned(client_cpus):
        runs = asyncio.run(_measure(cfg, server.ready["base_url"]))
    result = Result(NAME)
    best = {k: max(r.rate for r in v) for k, v in runs.items()}
    for conc in (1, 64):
        ours, theirs = best[("tango-async", conc)], best[("raw aiohttp", conc)]
        ratio = ours / theirs
        target = THROUGHPUT_TARGET if conc == 64 else None
        result.rows.append(
            Row(
                f"GET /orders/{{id}} throughput, concurrency {conc}",
                fmt_rate(ours),
                f"raw aiohttp: {fmt_rate(theirs)}",
                fmt_ratio(ratio),
                f">= {target:g}x raw" if target else "— (reference)",
                ratio >= target if target else None,
            )
        )
    med = {
        name: median([lat for r in runs[(name, 1)] for lat in r.latencies])
        for name in ("tango-async", "raw aiohttp")
    }
    extra = med["tango-async"] - med["raw aiohttp"]
    result.rows.append(
        Row(
            "per-call overhead (median latency, concurrency 1)",
            fmt_us(med["tango-async"]),
            f"raw aiohttp: {fmt_us(med['raw aiohttp'])}",
            f"{extra * 1e6:+.1f} µs",
            f"< {OVERHEAD_TARGET_US:g} µs",
            extra * 1e6 < OVERHEAD_TARGET_US,
        )
    )
    n = len(runs[("tango-async", 1)])
    paired = sorted(
        a.rate / b.rate
        for a, b in zip(runs[("tango-async", 64)], runs[("raw aiohttp", 64)], strict=True)
    )
    pinning = (
        f"client pinned to CPU {sorted(client_cpus)[0]}, server to CPU {sorted(server_cpus)[0]}"
        if client_cpus and server_cpus
        else "no CPU pinning (fewer than 2 CPUs)"
    )
    result.notes += [
        "one minimal aiohttp.web server in a separate process answering a fixed verbose order "
        f"({pinning}); TangoClient (TCPConnector(limit=100)) vs raw aiohttp with the same "
        "connector limit, the same headers, resp.read() and msgspec.json.decode into "
        "tango_async.Order",
        f"best of {n} alternating rounds of {cfg.pick(CALLS_C1, 200):,} calls at concurrency 1 "
        f"and {cfg.pick(CALLS_C64, 1000):,} at concurrency 64, after a warm-up; overhead = "
        "difference of the median per-call latencies at concurrency 1 over all rounds",
        f"spread at concurrency 64: the ratio of each round to its paired round ranged "
        f"{paired[0]:.2f} to {paired[-1]:.2f} (median {median(paired):.2f}); best-of-rounds is "
        "the figure judged, as the least disturbed by other work on the machine",
    ]
    return result
