"""Chaos: orders sent through ~20% injected faults (500 and dropped connections after the
order was committed, 503, 429, replies slower than the client's timeout) are every one
accounted for afterwards: zero duplicates, zero lost.

CI runs a small version. The full size (RELIABILITY.md) on demand:
    TANGO_CHAOS_ORDERS=1000 TANGO_CHAOS_ROWS=1000 pytest tests/test_chaos.py
With TANGO_CHAOS_REPORT=path, each test appends its figures there as a JSON line.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import tango_async as ta
from tango_async.bulk._journal import Journal, RowState
from tango_async.testing import Sandbox

from .conftest import order_request
from .processes import cli_process, sandbox_process

ORDERS = int(os.environ.get("TANGO_CHAOS_ORDERS", "200"))
ROWS = int(os.environ.get("TANGO_CHAOS_ROWS", "60"))
KILLS = int(os.environ.get("TANGO_CHAOS_KILLS", "3"))
FAULTS = ("500-after-commit", "drop-after-commit", "503", "429", "slow")
TIMEOUT = 0.3  # the client's timeout; "slow" replies take longer
SLOW = 0.5


def report(name: str, figures: dict[str, Any]) -> None:
    path = os.environ.get("TANGO_CHAOS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": name, **figures}) + "\n")


async def test_concurrent_creates_through_chaos() -> None:
    policy = ta.RetryPolicy(
        initial_delay=0.01, max_delay=0.05, rate_limit_delay=0.01, conflict_delay=0.05
    )
    async with Sandbox(order_rate=None) as sb:
        sb.chaos(0.2, seed=2026, faults=FAULTS, delay=SLOW, retry_after=0)
        async with sb.client(
            order_rate=500.0, timeout=TIMEOUT, max_retries=12, retry=policy
        ) as tango:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(ORDERS):
                queue.put_nowait(i)
            outcomes: dict[int, ta.CreatedOrder | ta.TangoError] = {}

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    try:
                        outcomes[i] = await tango.orders.create(
                            order_request(external_ref_id=f"chaos-{i}")
                        )
                    except ta.TangoError as e:
                        outcomes[i] = e

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(50)))
            elapsed = time.monotonic() - started
        await asyncio.sleep(SLOW + 0.1)  # let slow handlers still running commit
        on_server = Counter(o["externalRefID"] for o in sb.orders.values())
        faults = Counter(r.fault for r in sb.requests if r.fault)
        attempts = len(sb.requests)
    failed = [i for i, o in outcomes.items() if isinstance(o, ta.TangoError)]
    duplicates = {ref: n for ref, n in on_server.items() if n > 1}
    lost = [
        i
        for i, o in outcomes.items()
        if isinstance(o, ta.CreatedOrder) and on_server[f"chaos-{i}"] != 1
    ]
    report(
        "concurrent_creates",
        {
            "orders": ORDERS,
            "tasks": 50,
            "requests": attempts,
            "faults": dict(faults),
            "fault_share": round(sum(faults.values()) / attempts, 3),
            "failed_calls": len(failed),
            "duplicates": len(duplicates),
            "lost": len(lost),
            "seconds": round(elapsed, 1),
        },
    )
    assert len(outcomes) == ORDERS
    assert duplicates == {}
    assert lost == []
    assert failed == []  # with 12 retries every call got through
    assert set(on_server) == {f"chaos-{i}" for i in range(ORDERS)}
    assert sum(faults.values()) >= 0.1 * attempts  # the chaos really happened
    assert set(faults) == set(FAULTS)


def _write_rows(path: Path, customer: str) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "customer_identifier",
                "account_identifier",
                "utid",
                "amount",
                "recipient.email",
                "recipient.first_name",
            ]
        )
        for i in range(1, ROWS + 1):
            w.writerow([customer, "chaos-account", "U561593", "3.00", f"c{i}@example.com", f"C{i}"])


def test_bulk_job_through_chaos_and_kill_9(tmp_path: Path) -> None:
    with sandbox_process(
        "--order-rate",
        "0",
        "--chaos",
        "0.2",
        "--chaos-seed",
        "7",
        "--chaos-faults",
        ",".join(FAULTS),
        "--chaos-delay",
        str(SLOW),
    ) as env:
        _write_rows(tmp_path / "orders.csv", "chaos-bulk")
        args = [
            "--timeout",
            str(TIMEOUT),
            "--max-retries",
            "8",
            "submit",
            "orders.csv",
            "--order-rate",
            "100",
            "--concurrency",
            "4",
            "--progress-interval",
            "0.05",
        ]
        rng = random.Random(11)
        kills = runs = 0
        for _ in range(KILLS):
            proc = cli_process(args, env, tmp_path)
            time.sleep(rng.uniform(0.6, 1.6))
            runs += 1
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate(timeout=60)
        for _ in range(5):  # resume until done (a row may fail through 9 faults in a row)
            proc = cli_process(args, env, tmp_path)
            out, err = proc.communicate(timeout=120)
            runs += 1
            if proc.returncode == 0:
                break
            assert proc.returncode == 1, (out, err)  # failed rows are retriable: resume
        assert proc.returncode == 0, (out, err)
        with Journal.open(tmp_path / "orders.csv.journal") as j:
            rows = list(j.rows())
        assert all(r.state is RowState.DONE for r in rows)

        async def server_refs() -> Counter[str | None]:
            async with ta.TangoClient(
                env["TANGO_PLATFORM_NAME"],
                env["TANGO_PLATFORM_KEY"],
                base_url=env["TANGO_BASE_URL"],
            ) as tango:
                return Counter(
                    [
                        o.external_ref_id
                        async for o in tango.orders.list(customer_identifier="chaos-bulk")
                    ]
                )

        refs = asyncio.run(server_refs())
        expected = {r.external_ref_id for r in rows}
        duplicates = {ref: n for ref, n in refs.items() if n > 1}
        lost = expected - set(refs)
        report(
            "bulk_job",
            {
                "rows": ROWS,
                "runs": runs,
                "kill9": kills,
                "duplicates": len(duplicates),
                "lost": len(lost),
            },
        )
        assert duplicates == {}
        assert lost == set()
        assert set(refs) == expected
