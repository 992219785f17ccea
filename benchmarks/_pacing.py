"""Pacing: orders at order_rate R against a Sandbox that refuses (429) any order arriving
sooner than 1/R after the previous one, over several trials. Utilisation, the minimum gap
at arrival and 429s, in one process and in four processes sharing
tango_async.redis.RedisRateLimiter; on loopback, and under production network conditions
(TLS, slow connection set-up, idle connections closed by the server)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import tango_async as ta

from ._config import ROOT, Config
from ._pacing_worker import create_all, ssl_context, warm_up
from ._procs import Child
from ._report import EN_DASH, Result, Row

NAME = "pacing"
TARGET = 0.95
PROCESSES = 4
DEFAULT_MARGIN = 0.05
TRIALS, QUICK_TRIALS = 5, 1
WORKER_TIMEOUT = 180.0  # seconds for one burst of one trial


@dataclass(frozen=True, slots=True)
class Network:
    """The sandbox's network conditions (the flags of benchmarks/_pacing_sandbox.py, the
    same as ``python -m tango_async.testing``'s)."""

    tls: bool = False
    connect_delay: float = 0.0
    keepalive_timeout: float | None = None

    @property
    def loopback(self) -> bool:
        return self == LOOPBACK

    def flags(self, ca_file: str | None) -> list[str]:
        out: list[str] = []
        if self.tls:
            out += ["--tls", "--ca-file", str(ca_file)]
        if self.connect_delay:
            out += ["--connect-delay", f"{self.connect_delay:g}"]
        if self.keepalive_timeout is not None:
            out += ["--keepalive-timeout", f"{self.keepalive_timeout:g}"]
        return out


LOOPBACK = Network()
#: a distant production server: HTTPS, 150 ms to set up every new connection (before its
#: TLS handshake), idle keep-alive connections closed by the server after 2 s
PRODUCTION = Network(tls=True, connect_delay=0.15, keepalive_timeout=2.0)


@dataclass(frozen=True, slots=True)
class Case:
    rate: float
    bursts: tuple[int, ...]  # orders per burst; bursts are ``idle`` seconds apart
    processes: int
    trials: int
    margin: float = DEFAULT_MARGIN
    network: Network = LOOPBACK
    idle: float = 0.0
    warm: bool = True  # a GET opens each client's connection before the first order
    util_target: bool = True  # judged on utilisation too, not only on 429s

    @property
    def count(self) -> int:
        return sum(self.bursts)

    @property
    def label(self) -> str:
        who = "1 process" if self.processes == 1 else f"{self.processes} processes (Redis)"
        extra = "" if self.margin == DEFAULT_MARGIN else f", rate_margin={self.margin:g} (extra)"
        if self.network.loopback:
            return f"pacing {self.rate:g}/s, N={self.count}, {who}{extra}"
        if len(self.bursts) > 1:
            n = " + ".join(str(b) for b in self.bursts)
            what = f"N={n} ({self.idle:g} s idle between)"
        else:
            what = f"N={self.count}"
        start = "cold start" if not self.warm else "warm"
        return f"pacing {self.rate:g}/s, production, {start}, {what}, {who}{extra}"

    @property
    def target(self) -> str:
        return f"util >= {TARGET:g}, no 429" if self.util_target else "no 429"


@dataclass(slots=True)
class Trial:
    """What the sandbox saw in one trial: every POST /orders, and when each burst began
    (on the same system-wide monotonic clock), so arrivals split into bursts."""

    arrivals: list[float]
    statuses: list[int]
    starts: list[float]
    failures: list[str]
    connections: int | None = None

    @property
    def refused(self) -> int:
        return self.statuses.count(429)

    def bursts(self) -> list[list[tuple[float, int]]]:
        out: list[list[tuple[float, int]]] = [[] for _ in self.starts]
        for arrived, status in sorted(zip(self.arrivals, self.statuses, strict=True)):
            b = max((i for i, s in enumerate(self.starts) if s <= arrived), default=0)
            out[b].append((arrived, status))
        return out

    def utilisation(self, rate: float) -> float | None:
        """Ideal (N-1)/R over the first-to-last arrival span, burst by burst (N: the orders
        accepted in the burst; the idle time between bursts is not counted)."""
        ideal = span = 0.0
        for burst in self.bursts():
            if len(burst) < 2:
                continue
            accepted = sum(1 for _, s in burst if s != 429)
            ideal += max(accepted - 1, 0) / rate
            span += burst[-1][0] - burst[0][0]
        return ideal / span if span > 0 else None

    def gaps(self) -> list[float]:
        """Gaps between consecutive arrivals within each burst."""
        return [b[0] - a[0] for burst in self.bursts() for a, b in pairwise(burst)]


@dataclass(slots=True)
class Outcome:
    case: Case
    trials: list[Trial] = field(default_factory=list)

    def row(self) -> Row:
        case = self.case
        utils = [u for t in self.trials if (u := t.utilisation(case.rate)) is not None]
        gaps = [g for t in self.trials for g in t.gaps()]
        if not utils or not gaps:
            return Row(case.label, "no orders arrived", target=case.target, met=False)
        refused = sum(t.refused for t in self.trials)
        failed = sum(len(t.failures) for t in self.trials)
        util = statistics.median(utils)
        n = len(self.trials)
        met = refused == 0 and not failed and (util >= TARGET or not case.util_target)
        return Row(
            case.label,
            f"429s: {refused} in {n} trial{'s' if n != 1 else ''}"
            + (f", {failed} failed" if failed else ""),
            f"gap min {min(gaps) * 1e3:.1f} ms, max {max(gaps) * 1e3:.0f} "
            f"(1/R = {1e3 / case.rate:g} ms)",
            f"util {util:.3f} ({min(utils):.3f}{EN_DASH}{max(utils):.3f})",
            case.target,
            met,
        )


async def _one_process(sb: dict[str, Any], case: Case, ca_file: str | None) -> Trial:
    starts: list[float] = []
    outcomes: list[str] = []
    async with ta.TangoClient(
        sb["platform_name"],
        sb["platform_key"],
        base_url=sb["base_url"],
        order_rate=case.rate,
        rate_margin=case.margin,
        ssl_context=ssl_context(ca_file),
    ) as tango:
        if case.warm:
            await warm_up(tango)
        for i, n in enumerate(case.bursts):
            if i:
                await asyncio.sleep(case.idle)
            starts.append(time.monotonic())
            outcomes += await create_all(tango, n, i * 100_000)
    return Trial([], [], starts, [o for o in outcomes if o != "ok"])


def _shares(count: int, processes: int) -> list[int]:
    return [count // processes + (i < count % processes) for i in range(processes)]


class Workers:
    """The worker processes of the multi-process cases, started once for all their trials
    (each trial gets fresh clients and a fresh limiter namespace in them: see
    _pacing_worker)."""

    def __init__(self, processes: int, redis_url: str) -> None:
        self.processes = processes
        self.redis_url = redis_url
        self.procs: list[asyncio.subprocess.Process] = []
        self._stack = contextlib.ExitStack()
        self._errs: list[IO[bytes]] = []

    async def __aenter__(self) -> Workers:
        argv = (sys.executable, "-m", "benchmarks._pacing_worker")
        try:
            for _ in range(self.processes):
                err = self._stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
                self._errs.append(err)
                self.procs.append(
                    await asyncio.create_subprocess_exec(
                        *argv,
                        cwd=ROOT,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=err,
                    )
                )
            await self._all(None, within=60)  # {"started": true}: imports done
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
                await p.wait()
        self._stack.close()

    def _failed(self, i: int, what: str) -> RuntimeError:
        self._errs[i].seek(0)
        return RuntimeError(f"pacing worker {what}: {self._errs[i].read().decode()[-2000:]}")

    async def _all(
        self, commands: list[dict[str, Any]] | None, *, within: float
    ) -> list[dict[str, Any]]:
        """Send each worker its command (None: none), and read one answer from each."""
        if commands is not None:
            for p, cmd in zip(self.procs, commands, strict=True):
                assert p.stdin is not None
                p.stdin.write(json.dumps(cmd).encode() + b"\n")
                await p.stdin.drain()

        async def answer(i: int) -> dict[str, Any]:
            out = self.procs[i].stdout
            assert out is not None
            raw = await out.readline()
            if not raw:
                raise self._failed(i, "stopped")
            message: dict[str, Any] = json.loads(raw)
            return message

        return await asyncio.wait_for(
            asyncio.gather(*(answer(i) for i in range(len(self.procs)))), within
        )

    async def trial(self, case: Case, sb: dict[str, Any], ca_file: str | None) -> Trial:
        assert case.processes == self.processes
        opening = {
            "op": "open",
            "base_url": sb["base_url"],
            "name": sb["platform_name"],
            "key": sb["platform_key"],
            "redis_url": self.redis_url,
            "ns": f"tango-bench-{uuid.uuid4().hex[:12]}",  # fresh keys for every trial
            "rate": case.rate,
            "margin": case.margin,
            "ca_file": ca_file,
            "warm": case.warm,
        }
        # all ready (client built, warmed up unless cold) before any starts
        await self._all([opening] * len(self.procs), within=60)
        starts: list[float] = []
        outcomes: list[str] = []
        for b, n in enumerate(case.bursts):
            if b:
                await asyncio.sleep(case.idle)
            starts.append(time.monotonic())
            shares = _shares(n, case.processes)
            done = await self._all([{"op": "burst", "n": k} for k in shares], within=WORKER_TIMEOUT)
            outcomes += [o for d in done for o in d["outcomes"]]
        await self._all([{"op": "close"}] * len(self.procs), within=30)
        return Trial([], [], starts, [o for o in outcomes if o != "ok"])


async def _trials(case: Case, workers: Workers | None) -> list[Trial]:
    """Every trial of a case, each against a fresh sandbox process, with fresh clients."""
    trials: list[Trial] = []
    for _ in range(case.trials):
        with tempfile.TemporaryDirectory(prefix="tango-bench-") as tmp:
            ca_file = str(Path(tmp, "ca.pem")) if case.network.tls else None
            args = [str(case.rate), *case.network.flags(ca_file)]
            with Child("_pacing_sandbox", args) as sandbox:
                if case.processes == 1:
                    trial = await _one_process(sandbox.ready, case, ca_file)
                else:
                    assert workers is not None
                    trial = await workers.trial(case, sandbox.ready, ca_file)
                seen = sandbox.finish()
        trial.arrivals, trial.statuses = seen["arrivals"], seen["statuses"]
        trial.connections = seen.get("connections")
        trials.append(trial)
    return trials


async def _run(cfg: Config, result: Result) -> None:
    redis_problem = _redis_problem(cfg.redis_url)
    network_problem = _network_problem()
    async with contextlib.AsyncExitStack() as stack:
        workers: Workers | None = None
        for case in cases(cfg):
            problem = (redis_problem if case.processes > 1 else None) or (
                network_problem if not case.network.loopback else None
            )
            if problem:
                result.rows.append(Row(case.label, f"skipped: {problem}", target=case.target))
                continue
            if case.processes > 1 and workers is None:  # started once, for every case
                workers = await stack.enter_async_context(Workers(case.processes, cfg.redis_url))
            result.rows.append(Outcome(case, await _trials(case, workers)).row())


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


def _network_problem() -> str | None:
    """Why the production-network rows cannot run, or None."""
    from tango_async.testing import Sandbox

    wanted = ("tls", "connect_delay", "keepalive_timeout")
    missing = [p for p in wanted if p not in inspect.signature(Sandbox).parameters]
    if missing:
        return f"Sandbox has no {', '.join(missing)} (yet)"
    if importlib.util.find_spec("trustme") is None:
        return "trustme (for Sandbox(tls=True)) not installed"
    return None


def cases(cfg: Config) -> list[Case]:
    """The sizes the issue names: 30 orders at 1/s from a cold start with an idle gap
    longer than the keep-alive in the middle (15 + 15: 1/s utilisation is judged on each
    burst), 200 at 20/s over TLS; at 1/s an order costs a second, so the full run takes
    several minutes. --quick runs one trial of three small cases, one of each kind."""
    trials = cfg.pick(TRIALS, QUICK_TRIALS)
    fast = cfg.pick(100, 10)
    burst = cfg.pick(15, 2)
    both = (1, PROCESSES)

    def cold(p: int) -> Case:  # an idle gap longer than the server's keep-alive
        return Case(1.0, (burst, burst), p, trials, network=PRODUCTION, idle=3.0, warm=False)

    def high(p: int) -> Case:  # a high rate over TLS, judged on 429s only
        return Case(20.0, (cfg.pick(200, 10),), p, trials, network=PRODUCTION, util_target=False)

    if cfg.quick:
        return [Case(20.0, (fast,), 1, trials), cold(1), high(PROCESSES)]
    return [
        *(Case(20.0, (fast,), p, trials) for p in both),
        *(cold(p) for p in both),
        *(high(p) for p in both),
    ]


def run(cfg: Config) -> Result:
    result = Result(NAME)
    asyncio.run(_run(cfg, result))
    if cfg.quick:
        result.rows.append(
            Row(
                "pacing: 4 processes on loopback and from a cold start, 20/s over TLS in 1 process",
                "skipped (--quick)",
            )
        )
    trials = cfg.pick(TRIALS, QUICK_TRIALS)
    p = PRODUCTION
    result.notes += [
        "a Sandbox(order_rate=R) in its own process (benchmarks/_pacing_sandbox.py, so nothing "
        "else runs in the loop that stamps arrivals) answers 429 to any order arriving sooner "
        f"than 1/R after the previous one; every case runs {trials} trial(s), each with a fresh "
        "sandbox process and fresh clients; 1 process: one TangoClient in the benchmark "
        f"process; {PROCESSES} processes: worker subprocesses (started once for all cases), each "
        "with its own TangoClient and a RedisRateLimiter on one namespace unique to the trial, "
        "started together once all are ready; in each burst all its orders are submitted at "
        "once (asyncio.gather) and queue in the limiter",
        "utilisation = ideal (N-1)/R over the actual first-to-last arrival span (N: orders "
        "accepted); shown as the median over the trials with its minimum and maximum, judged "
        "on the median; 'gap min/max': over every pair of consecutive arrivals in every trial; "
        "429s: the total over all trials; 'warm' and the loopback rows: each client first opens "
        "its keep-alive connection (a GET, which takes no rate slot), as a running service has",
        f"production: HTTPS (a trustme certificate; the client verifies it with "
        f"ssl.create_default_context(cafile=...)), {p.connect_delay * 1e3:g} ms added to the "
        "set-up of every new connection before its TLS handshake (the sandbox's proxy), idle "
        f"keep-alive connections closed by the server after {p.keepalive_timeout:g} s; "
        "'cold start': no warm-up request, the first order opens the first connection; with "
        "bursts, the bursts are the given seconds apart (longer than the keep-alive, so the "
        "server has closed the connections) and utilisation is taken over each burst's own "
        "span, the idle gap excluded; at 20/s only 429s are judged",
        "the default rate_margin (5%) spaces slots (1/R)·1.05 apart, which caps utilisation "
        "at 1/1.05 = 0.952",
    ]
    return result
