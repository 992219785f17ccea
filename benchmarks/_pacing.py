"""Pacing: N orders at order_rate R against a Sandbox that refuses (429) any order arriving
sooner than 1/R after the previous one. Achieved spacing at arrival, utilisation and 429s,
in one process and in four processes sharing tango_async.redis.RedisRateLimiter."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import tango_async as ta

from ._config import ROOT, Config
from ._pacing_worker import create_all, warm_up
from ._procs import Child
from ._report import Result, Row

NAME = "pacing"
TARGET = 0.95
PROCESSES = 4
DEFAULT_MARGIN = 0.05
WORKER_TIMEOUT = 180.0


@dataclass(frozen=True, slots=True)
class Case:
    rate: float
    count: int
    processes: int
    margin: float = DEFAULT_MARGIN

    @property
    def label(self) -> str:
        who = "1 process" if self.processes == 1 else f"{self.processes} processes (Redis)"
        extra = "" if self.margin == DEFAULT_MARGIN else f", rate_margin={self.margin:g} (extra)"
        return f"pacing {self.rate:g}/s, N={self.count}, {who}{extra}"


@dataclass(slots=True)
class Outcome:
    arrivals: list[float]
    statuses: list[int]
    failures: list[str]

    @property
    def refused(self) -> int:
        return self.statuses.count(429)


async def _one_process(sb: dict[str, Any], case: Case) -> list[str]:
    async with ta.TangoClient(
        sb["platform_name"],
        sb["platform_key"],
        base_url=sb["base_url"],
        order_rate=case.rate,
        rate_margin=case.margin,
    ) as tango:
        await warm_up(tango)
        return await create_all(tango, case.count)


async def _worker_processes(sb: dict[str, Any], case: Case, redis_url: str) -> list[str]:
    namespace = f"tango-bench-{uuid.uuid4().hex[:12]}"  # fresh keys for every run
    shares = [
        case.count // case.processes + (i < case.count % case.processes)
        for i in range(case.processes)
    ]
    procs = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "benchmarks._pacing_worker", sb["base_url"]),
            *(sb["platform_name"], sb["platform_key"], redis_url, namespace),
            *(str(case.rate), str(case.margin), str(n)),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in shares
    ]
    try:
        for p in procs:  # all ready (imports done, Redis connected) before any starts
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 60)
            if not line:
                err = await p.stderr.read() if p.stderr else b""
                raise RuntimeError(f"pacing worker did not start: {err.decode()[-2000:]}")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), WORKER_TIMEOUT
        )
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    outcomes: list[str] = []
    for (out, err), p in zip(outputs, procs, strict=True):
        if p.returncode != 0 or not out.strip():
            raise RuntimeError(f"pacing worker failed: {err.decode()[-2000:]}")
        outcomes += json.loads(out.splitlines()[-1])["outcomes"]
    return outcomes


def _measure(case: Case, redis_url: str) -> Outcome:
    with Child("_pacing_sandbox", [str(case.rate)]) as sandbox:
        if case.processes == 1:
            outcomes = asyncio.run(_one_process(sandbox.ready, case))
        else:
            outcomes = asyncio.run(_worker_processes(sandbox.ready, case, redis_url))
        seen = sandbox.finish()
    return Outcome(seen["arrivals"], seen["statuses"], [o for o in outcomes if o != "ok"])


def _row(case: Case, o: Outcome) -> Row:
    gaps = [b - a for a, b in pairwise(o.arrivals)]
    if not gaps:
        return Row(case.label, "no orders arrived", target=_target(), met=False)
    ideal = (len(o.arrivals) - 1) / case.rate
    utilisation = ideal / (o.arrivals[-1] - o.arrivals[0])
    failed = f", {len(o.failures)} failed" if o.failures else ""
    return Row(
        case.label,
        f"429s: {o.refused}{failed}",
        f"gap mean {sum(gaps) / len(gaps) * 1e3:.1f} ms, min {min(gaps) * 1e3:.1f}, "
        f"max {max(gaps) * 1e3:.0f} (1/R = {1e3 / case.rate:g} ms)",
        f"util {utilisation:.3f}",
        _target(),
        utilisation >= TARGET and o.refused == 0 and not o.failures,
    )


def _target() -> str:
    return f"util >= {TARGET:g}, no 429"


def _redis_problem(url: str) -> str | None:
    """Why the Redis rows cannot run, or None."""
    try:
        import redis
    except ImportError:
        return "redis (the package) not installed"
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as e:
        return f"no Redis at {url} ({type(e).__name__})"
    finally:
        client.close()
    return None


def cases(cfg: Config) -> list[Case]:
    fast = Case(20.0, cfg.pick(100, 20), 1)
    out = [fast, Case(20.0, fast.count, PROCESSES)]
    if not cfg.quick:
        out += [Case(1.0, 30, 1), Case(1.0, 30, PROCESSES)]
    out += [Case(20.0, fast.count, 1, 0.02), Case(20.0, fast.count, PROCESSES, 0.02)]
    return out


def run(cfg: Config) -> Result:
    result = Result(NAME)
    problem = _redis_problem(cfg.redis_url)
    for case in cases(cfg):
        if case.processes > 1 and problem:
            result.rows.append(Row(case.label, f"skipped: {problem}", target=_target()))
            continue
        result.rows.append(_row(case, _measure(case, cfg.redis_url)))
    if cfg.quick:
        result.rows.append(
            Row("pacing 1/s, N=30 (1 and 4 processes)", "skipped (--quick)", target=_target())
        )
    result.notes += [
        "a Sandbox(order_rate=R) in its own process (benchmarks/_pacing_sandbox.py, so nothing "
        "else runs in the loop that stamps arrivals) answers 429 to any order arriving sooner "
        "than 1/R after the previous one; 1 process: one TangoClient in the benchmark process; "
        "each client first opens its keep-alive connection (a GET, which takes no rate slot), as "
        "a running service has; then all N orders are submitted at once (asyncio.gather) and "
        "queue in the limiter",
        f"utilisation = ideal (N-1)/R over the actual first-to-last arrival span; {PROCESSES} "
        "processes: worker subprocesses, each with its own TangoClient and a RedisRateLimiter "
        "on one namespace unique to the run, started together once all are connected",
        "the default rate_margin (5%) spaces slots (1/R)·1.05 apart, which caps utilisation "
        "at 1/1.05 = 0.952; the rate_margin=0.02 rows (cap 0.980) are an extra, not the "
        "library's default",
    ]
    return result
