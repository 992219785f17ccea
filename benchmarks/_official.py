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
from ._report import Result, Row, fmt_rate, fmt_ratio, skipped

NAME = "official SDK"
NAME_KEY = ("bench-platform", "bench-key")
CONCURRENCY = 32
TARGET = 5.0


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
    calls, rounds = cfg.pick(1000, 50), cfg.pick(3, 1)
    if modules is None:
        return skipped(
            NAME,
            f"{calls:,} GET-order calls vs raas 2.2.0",
            "raas not installed",
            f">= {TARGET:g}x raas (32 threads)",
        )
    client_cpus, server_cpus = split_cpus()
    rates: dict[str, list[float]] = {}
    with Child("_server", [], cpu_set=server_cpus) as server, pinned(client_cpus):
        base_url = server.ready["base_url"]
        raas = Raas(base_url, modules)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            raas.pooled(pool, min(calls, 200))  # warm-up: threads, connections
            for _ in range(rounds):
                rates.setdefault("tango", []).append(asyncio.run(_tango(base_url, calls)))
                rates.setdefault("pool", []).append(raas.pooled(pool, calls))
                rates.setdefault("seq", []).append(raas.sequential(calls))
    ours, pool_rate, seq_rate = (max(rates[k]) for k in ("tango", "pool", "seq"))
    label = f"{calls:,} GET-order calls"
    result = Result(NAME)
    result.rows += [
        Row(
            f"{label}: tango-async (c={CONCURRENCY}) vs raas, {CONCURRENCY} threads",
            fmt_rate(ours),
            f"raas 2.2.0 ({CONCURRENCY} threads): {fmt_rate(pool_rate)}",
            fmt_ratio(ours / pool_rate),
            f">= {TARGET:g}x",
            ours / pool_rate >= TARGET,
        ),
        Row(
            f"{label}: tango-async (c={CONCURRENCY}) vs raas, sequential",
            fmt_rate(ours),
            f"raas 2.2.0 (sequential): {fmt_rate(seq_rate)}",
            fmt_ratio(ours / seq_rate),
            "— (reference)",
        ),
    ]
    result.notes += [
        f"the same minimal server as the overhead benchmark; best of {rounds} round(s) of "
        f"{calls:,} calls each; a fresh TangoClient per round, warmed up with "
        f"{min(calls, 200)} calls first",
        "raas 2.2.0 (APIMATIC-generated, requests): Configuration pointed at the local server, "
        "its shared session given a pool of 32 keep-alive connections, its INFO logging to "
        "stdout silenced (its best case); each call builds the request, applies Basic auth, "
        "and decodes with jsonpickle + OrderModel.from_dictionary (dateutil for createdAt)",
    ]
    return result
