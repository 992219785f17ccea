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
from ._report import Result, Row, fmt_paired, fmt_rate, fmt_us
from ._stats import paired
from ._timing import median

NAME = "client overhead"
NAME_KEY = ("bench-platform", "bench-key")
THROUGHPUT_TARGET = 0.85
OVERHEAD_TARGET_US = 100.0
ROUNDS, CALLS_C1, CALLS_C64 = 12, 1500, 5000  # full run; --quick: 2 rounds of 200 and 1,000
QUICK_ROUNDS = 2

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
    """Paired rounds: in each round, at each concurrency, the two clients run back to back,
    who goes first alternating from round to round."""
    rounds = cfg.pick(ROUNDS, QUICK_ROUNDS)
    totals = _totals(cfg)
    runs: dict[tuple[str, int], list[Run]] = {}
    async with ta.TangoClient(*NAME_KEY, base_url=base_url) as tango, RawAiohttp(base_url) as raw:
        calls: dict[str, Call] = {"tango-async": tango.orders.get, "raw aiohttp": raw.get}
        for call in calls.values():  # warm up: connections, caches
            await drive(call, cfg.pick(500, 100), 64)
        for r in range(rounds):
            for j, (conc, total) in enumerate(totals.items()):
                order = list(calls.items())
                if (r + j) % 2:
                    order.reverse()
                for name, call in order:
                    runs.setdefault((name, conc), []).append(await drive(call, total, conc))
    return runs


def _totals(cfg: Config) -> dict[int, int]:
    return {1: cfg.pick(CALLS_C1, 200), 64: cfg.pick(CALLS_C64, 1000)}


def run(cfg: Config) -> Result:
    client_cpus, server_cpus = split_cpus()
    with Child("_server", [], cpu_set=server_cpus) as server, pinned(client_cpus):
        runs = asyncio.run(_measure(cfg, server.ready["base_url"]))
    result = Result(NAME)
    for conc in (1, 64):
        mine, theirs = runs[("tango-async", conc)], runs[("raw aiohttp", conc)]
        ratio = paired([a.rate for a in mine], [b.rate for b in theirs])  # ours / raw
        target = THROUGHPUT_TARGET if conc == 64 else None
        result.rows.append(
            Row(
                f"GET /orders/{{id}} throughput, concurrency {conc}",
                fmt_rate(median([a.rate for a in mine])),
                f"raw aiohttp: {fmt_rate(median([b.rate for b in theirs]))}",
                fmt_paired(ratio),
                f">= {target:g}x raw" if target else "— (reference)",
                ratio.median >= target if target else None,
            )
        )
    # per round: the median latency of ours minus that of its partner round
    lat = {
        name: [median(r.latencies) for r in runs[(name, 1)]]
        for name in ("tango-async", "raw aiohttp")
    }
    extra = sorted(
        (a - b) * 1e6 for a, b in zip(lat["tango-async"], lat["raw aiohttp"], strict=True)
    )
    med_extra = median(extra)
    result.rows.append(
        Row(
            "per-call overhead (median latency, concurrency 1)",
            fmt_us(median(lat["tango-async"])),
            f"raw aiohttp: {fmt_us(median(lat['raw aiohttp']))}",
            f"{med_extra:+.1f} µs ({extra[0]:+.1f} to {extra[-1]:+.1f})",
            f"< {OVERHEAD_TARGET_US:g} µs",
            med_extra < OVERHEAD_TARGET_US,
        )
    )
    n = len(runs[("tango-async", 1)])
    totals = _totals(cfg)
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
        f"{n} paired rounds after a warm-up: in each round, {totals[1]:,} calls at "
        f"concurrency 1 and {totals[64]:,} at concurrency 64 through each client, the two "
        "clients back to back at each concurrency, who goes first alternating from round to "
        "round; throughput ratio = ours / raw aiohttp in the same round, shown as the median "
        "over rounds with its minimum and maximum, the target judged on the median; req/s "
        "figures are the medians of the rounds",
        "per-call overhead: in each round, the median per-call latency of ours at concurrency 1 "
        "minus that of raw aiohttp in the same round; the median of those differences, with "
        "their minimum and maximum, judged against the target",
    ]
    return result
