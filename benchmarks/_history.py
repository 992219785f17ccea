"""History export: every order of a seeded date range through ``orders.list()`` (the
range is split into windows past the API's result window), from a sandbox in another
process, by a client in a fresh process: orders per second and client memory growth;
then, against a sandbox answering after a realistic latency, the sequential export and
the concurrent one (``concurrency=N``) side by side, in paired rounds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from ._config import ROOT, Config
from ._procs import Child, pin, split_cpus
from ._report import Result, Row, fmt_rate
from ._stats import paired

NAME = "history export"
RATE_TARGET = 20_000.0
MEMORY_TARGET_MB = 50.0
CLIENT_TIMEOUT = 300.0
LATENCY = 0.05  # seconds before each GET /orders is answered, as a distant server's
CONCURRENCY = 4
SPEEDUP_TARGET = 2.5  # sequential time / concurrent time at CONCURRENCY 4 (below 4x: see the notes)


def _client(args: list[str], cpu_set: set[int] | None) -> dict[str, Any]:
    """Run ``benchmarks._history_client`` with ``args`` in a fresh process; its figures."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._history_client", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pin(proc.pid, cpu_set)
    try:
        out, err = proc.communicate(timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"history client failed: {err.decode()[-2000:]}")
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    return figures


def run(cfg: Config) -> Result:
    result = Result(NAME)
    _throughput(cfg, result)
    _latency(cfg, result)
    return result


def _throughput(cfg: Config, result: Result) -> None:
    count = cfg.pick(100_000, 5_000)
    window = cfg.pick(10_000, 1_000)  # quick: a smaller window, so splitting still happens
    client_cpus, server_cpus = split_cpus()
    t0 = time.perf_counter()
    with Child("_seeded_sandbox", [str(count), str(window)], cpu_set=server_cpus) as sandbox:
        seeded = time.perf_counter() - t0
        figures = _client([json.dumps(sandbox.ready), str(window)], client_cpus)
    if figures["count"] != count or figures["traced_count"] != count:
        raise RuntimeError(f"exported {figures['count']} orders of {count}")
    rate = count / figures["seconds"]
    rss_mb = figures["rss_growth"] / 1e6
    traced_mb = figures["tracemalloc_peak"] / 1e6
    result.rows += [
        Row(
            f"history export, {count:,} orders (orders.list, date range)",
            fmt_rate(rate, "orders/s"),
            f"{figures['seconds']:.2f} s",
            target=f">= {RATE_TARGET:,.0f} orders/s",
            met=rate >= RATE_TARGET,
        ),
        Row(
            f"history export, {count:,} orders: client memory growth",
            f"{rss_mb:.1f} MB peak RSS growth",
            f"tracemalloc peak: {traced_mb:.1f} MB",
            target=f"< {MEMORY_TARGET_MB:g} MB",
            met=rss_mb < MEMORY_TARGET_MB,
        ),
    ]
    result.notes += [
        f"a Sandbox seeded with {count:,} orders (one every 30 s; seeding took {seeded:.1f} s) "
        f"serves from its own process (benchmarks/_seeded_sandbox.py) with a {window:,}-result "
        "window; the client iterates orders.list(start_date, end_date) in a fresh process "
        "(benchmarks/_history_client.py), so the range is split into windows transparently "
        "(sequential: the default concurrency=1)",
        f"memory: peak RSS growth of the client process during the timed pass, "
        f"{figures['rss_method']} (RSS before: {figures['rss_before'] / 1e6:.0f} MB); "
        "tracemalloc peak (Python heap) from a second, untimed pass",
    ]


def _latency(cfg: Config, result: Result) -> None:
    # The windows have 20 pages each (as the real API's have 50, with 10,000-result
    # windows halved): long enough that their first page, which alone tells how many
    # follow, is not the whole story; small enough for a minute.
    count = cfg.pick(6_000, 600)
    window = cfg.pick(4_000, 400)
    rounds = 5
    client_cpus, server_cpus = split_cpus()
    args = [str(count), str(window), "--latency", str(LATENCY)]
    with Child("_seeded_sandbox", args, cpu_set=server_cpus) as sandbox:
        figures = _client(
            [
                json.dumps(sandbox.ready),
                str(window),
                "--paired",
                str(rounds),
                "--concurrency",
                str(CONCURRENCY),
            ],
            client_cpus,
        )
    if figures["count"] != count:
        raise RuntimeError(f"exported {figures['count']} orders of {count}")
    sequential, concurrent = figures["sequential"], figures["concurrent"]
    speedup = paired(sequential, concurrent)
    ms = LATENCY * 1000
    requests = figures["requests"]
    median_seq = sorted(sequential)[len(sequential) // 2]
    median_conc = sorted(concurrent)[len(concurrent) // 2]
    result.rows.append(
        Row(
            f"history export with {ms:.0f} ms latency, {count:,} orders: concurrent "
            f"(concurrency={CONCURRENCY}) vs sequential",
            f"{median_conc:.2f} s ({fmt_rate(count / median_conc, 'orders/s')})",
            f"sequential: {median_seq:.2f} s ({fmt_rate(count / median_seq, 'orders/s')})",
            ratio=speedup.text(),
            target=f">= {SPEEDUP_TARGET:g}x",
            met=speedup.median >= SPEEDUP_TARGET,
        )
    )
    result.notes += [
        f"latency: a second sandbox process, {count:,} orders with a {window:,}-result window, "
        f"holds every GET /orders {ms:.0f} ms before answering (benchmarks/_seeded_sandbox.py "
        f"--latency; requests wait side by side); one export takes {requests} requests, so the "
        f"sequential one needs at least {requests * LATENCY:.2f} s",
        f"latency: {rounds} paired rounds in one fresh client process, after one untimed "
        "concurrent export (connections opened, the reference order list): each round runs "
        f"orders.list(concurrency=1) and orders.list(concurrency={CONCURRENCY}) over the same "
        "range back to back, alternating which goes first; every export must yield the "
        "reference orders in the reference order; ratio = sequential time / concurrent time "
        "per round, median (min to max); the time columns are medians",
        f"latency: the ceiling is below {CONCURRENCY}x: each window's first page is fetched "
        "alone (it alone tells how many pages follow), and the range's first page too (it "
        "tells how to split the range)",
    ]
