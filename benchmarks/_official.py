"""Against the official SDK: GET-order calls through tango-async at concurrency 32 vs the
synchronous, requests-based ``raas`` 2.2.0 SDK, sequentially and from a 32-thread pool,
all against the same minimal local server (another process)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tango_async as ta

from . import _optional
from ._config import Config
from ._drive import ORDER_ID, drive
from ._procs import Child, pinned, split_cpus
from ._report import Result, Row, fmt_paired, fmt_rate, skipped
from ._stats import paired
from ._timing import median

NAME = "official SDK"
NAME_KEY = ("bench-platform", "bench-key")
CONCURRENCY = 32
TARGET = 5.0
ROUNDS, QUICK_ROUNDS = 5, 2


async def _tango(base_url: str, calls: int) -> float:
    async with ta.TangoClient(*NAME_KEY, base_url=base_url) as tango:
        await drive(tango.orders.get, min(calls, 200), CONCURRENCY)  # warm-up
        return (await drive(tango.orders.get, calls, CONCURRENCY)).rate


class Raas:
    """The raas SDK configured for the local server: its (class-level) configuration points
    at it; its shared requests session gets a pool of 32 keep-alive connections (requests
    keeps 10 by default, and would reconnect for the rest of the pool's threads)."""

    def __init__(self, base_url: str, modules: list[Any]) -> None:
        configuration, client, base = modules
        from requests.adapters import HTTPAdapter

        conf = configuration.Configuration
        conf.environment = conf.Environment.SANDBOX
        conf.environments[conf.Environment.SANDBOX][conf.Server.DEFAULT] = base_url
        self.orders: Any = client.RaasClient(*NAME_KEY).orders
        session = base.BaseController.http_client.session
        session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=CONCURRENCY))

    def one(self, _: int = 0) -> None:
        order = self.orders.get_order(ORDER_ID)
        if order is None or order.reference_order_id != ORDER_ID:
            raise RuntimeError("raas get_order returned no order")

    def sequential(self, calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            self.one()
        return calls / (time.perf_counter() - start)

    def pooled(self, pool: ThreadPoolExecutor, calls: int) -> float:
        start = time.perf_counter()
        for _ in pool.map(self.one, range(calls)):
            pass
        return calls / (time.perf_counter() - start)


def run(cfg: Config) -> Result:
    modules = _optional.raas(
        "raas.configuration", "raas.raas_client", "raas.controllers.base_controller"
    )
    calls, rounds = cfg.pick(1000, 50), cfg.pick(ROUNDS, QUICK_ROUNDS)
    if modules is None:
        return skipped(
            NAME,
            f"{calls:,} GET-order calls vs raas 2.2.0",
            "raas not installed",
            f">= {TARGET:g}x raas (32 threads)",
        )
    client_cpus, server_cpus = split_cpus()
    # per alternative: (our rates, their rates), one pair per round
    pairs: dict[str, tuple[list[float], list[float]]] = {"pool": ([], []), "seq": ([], [])}
    with Child("_server", [], cpu_set=server_cpus) as server, pinned(client_cpus):
        base_url = server.ready["base_url"]
        raas = Raas(base_url, modules)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            raas.pooled(pool, min(calls, 200))  # warm-up: threads, connections
            theirs = {
                "pool": lambda: raas.pooled(pool, calls),
                "seq": lambda: raas.sequential(calls),
            }
            for r in range(rounds):
                for j, (key, measure) in enumerate(theirs.items()):
                    mine, alt = pairs[key]
                    if (r + j) % 2 == 0:
                        mine.append(asyncio.run(_tango(base_url, calls)))
                        alt.append(measure())
                    else:
                        alt.append(measure())
                        mine.append(asyncio.run(_tango(base_url, calls)))
    label = f"{calls:,} GET-order calls"
    ours = median(pairs["pool"][0] + pairs["seq"][0])
    pool_ratio, seq_ratio = (paired(*pairs[k]) for k in ("pool", "seq"))  # ours / theirs
    result = Result(NAME)
    result.rows += [
        Row(
            f"{label}: tango-async (c={CONCURRENCY}) vs raas, {CONCURRENCY} threads",
            fmt_rate(ours),
            f"raas 2.2.0 ({CONCURRENCY} threads): {fmt_rate(median(pairs['pool'][1]))}",
            fmt_paired(pool_ratio),
            f">= {TARGET:g}x",
            pool_ratio.median >= TARGET,
        ),
        Row(
            f"{label}: tango-async (c={CONCURRENCY}) vs raas, sequential",
            fmt_rate(ours),
            f"raas 2.2.0 (sequential): {fmt_rate(median(pairs['seq'][1]))}",
            fmt_paired(seq_ratio),
            "— (reference)",
        ),
    ]
    result.notes += [
        f"the same minimal server as the overhead benchmark; {rounds} paired rounds: in each "
        f"round, {calls:,} calls through tango-async and {calls:,} through raas, back to back, "
        "for each of the two raas modes (32 threads, sequential), who goes first alternating "
        "from round to round; ratio = ours / theirs in the same round, shown as the median "
        "over rounds with its minimum and maximum, the target judged on the median; req/s "
        "figures are medians (ours: over every pair); a fresh TangoClient for every run of "
        f"ours, warmed up with {min(calls, 200)} calls first",
        "raas 2.2.0 (APIMATIC-generated, requests): Configuration pointed at the local server, "
        "its shared session given a pool of 32 keep-alive connections, its INFO logging to "
        "stdout silenced (its best case); each call builds the request, applies Basic auth, "
        "and decodes with jsonpickle + OrderModel.from_dictionary (dateutil for createdAt)",
    ]
    return result
