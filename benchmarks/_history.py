"""History export: every order of a seeded date range through ``orders.list()`` (the
range is split into windows past the API's result window), from a sandbox in another
process, by a client in a fresh process: orders per second and client memory growth."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from ._config import ROOT, Config
from ._procs import Child, pin, split_cpus
from ._report import Result, Row, fmt_rate

NAME = "history export"
RATE_TARGET = 20_000.0
MEMORY_TARGET_MB = 50.0
CLIENT_TIMEOUT = 300.0


def run(cfg: Config) -> Result:
    count = cfg.pick(100_000, 5_000)
    window = cfg.pick(10_000, 1_000)  # quick: a smaller window, so splitting still happens
    client_cpus, server_cpus = split_cpus()
    t0 = time.perf_counter()
    with Child("_seeded_sandbox", [str(count), str(window)], cpu_set=server_cpus) as sandbox:
        seeded = time.perf_counter() - t0
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks._history_client",
                json.dumps(sandbox.ready),
                str(window),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        pin(proc.pid, client_cpus)
        try:
            out, err = proc.communicate(timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"history client failed: {err.decode()[-2000:]}")
    figures = json.loads(out.splitlines()[-1])
    if figures["count"] != count or figures["traced_count"] != count:
        raise RuntimeError(f"exported {figures['count']} orders of {count}")
    rate = count / figures["seconds"]
    rss_mb = figures["rss_growth"] / 1e6
    traced_mb = figures["tracemalloc_peak"] / 1e6
    result = Result(NAME)
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
        "(benchmarks/_history_client.py), so the range is split into windows transparently",
        f"memory: peak RSS growth of the client process during the timed pass, "
        f"{figures['rss_method']} (RSS before: {figures['rss_before'] / 1e6:.0f} MB); "
        "tracemalloc peak (Python heap) from a second, untimed pass",
    ]
    return result
