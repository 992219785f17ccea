"""Crash tests of bulk jobs: the job process is killed (SIGKILL, SIGINT) at random points and
resumed, against a sandbox in another process. Afterwards every row has exactly one order.

Sizes: TANGO_CRASH_JOBS jobs (default 4) x TANGO_CRASH_KILLS kills each (default 3): at
least 10 kill -9 runs per test session; raise them for a longer soak.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import tango_async as ta
from tango_async.bulk._journal import Journal, RowState

from .processes import cli_process, sandbox_process

JOBS = int(os.environ.get("TANGO_CRASH_JOBS", "4"))
KILLS = int(os.environ.get("TANGO_CRASH_KILLS", "3"))
ROWS = 30
RATE = 25.0  # orders per second, sandbox and job alike (the job's margin keeps it under)


@pytest.fixture(scope="module")
def sandbox_env() -> Iterator[dict[str, str]]:
    """The sandbox as its own process; yields the TANGO_* environment for it."""
    with sandbox_process(
        "--order-rate",
        str(RATE),
        "--platform-name",
        "crash-platform",
        "--platform-key",
        "crash-key",
    ) as env:
        yield env


def write_input(path: Path, customer: str) -> None:
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
            w.writerow(
                [
                    customer,
                    "crash-account",
                    "U561593",
                    f"{i}.00",
                    f"person{i}@example.com",
                    f"Person{i}",
                ]
            )


def wait_for_done(proc: subprocess.Popen[str], target: int, timeout: float = 30.0) -> None:
    """Read the job's progress lines until this run has sent ``target`` more orders."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    first: int | None = None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            return  # the run ended
        if line.startswith("progress: done "):
            done = int(line.split()[2].rstrip(","))
            first = done if first is None else first
            if done - first >= target:
                return


async def server_orders(env: dict[str, str], customer: str) -> list[ta.Order]:
    async with ta.TangoClient(
        env["TANGO_PLATFORM_NAME"], env["TANGO_PLATFORM_KEY"], base_url=env["TANGO_BASE_URL"]
    ) as tango:
        return [o async for o in tango.orders.list(customer_identifier=customer)]


def assert_exactly_one_order_per_row(env: dict[str, str], customer: str, journal: Path) -> None:
    with Journal.open(journal) as j:
        rows = list(j.rows())
        assert len(rows) == ROWS
        assert all(r.state is RowState.DONE for r in rows), Counter(r.state for r in rows)
        expected = {r.external_ref_id: r.reference_order_id for r in rows}
    orders = asyncio.run(server_orders(env, customer))
    refs = Counter(o.external_ref_id for o in orders)
    duplicates = {ref: n for ref, n in refs.items() if n > 1}
    lost = set(expected) - set(refs)
    assert duplicates == {}
    assert lost == set()
    assert set(refs) == set(expected)
    # the journal's referenceOrderIDs are the server's
    assert {o.external_ref_id: o.reference_order_id for o in orders} == expected


def test_kill_9_at_random_points_then_resume(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    rng = random.Random(20261124)
    kills = 0
    mid_job = 0  # kills that left some rows done and some not
    for job in range(JOBS):
        customer = f"crash-customer-{job}"
        workdir = tmp_path / f"job{job}"
        workdir.mkdir()
        source = workdir / "orders.csv"
        write_input(source, customer)
        args = [
            "submit",
            "orders.csv",
            "--order-rate",
            str(RATE),
            "--concurrency",
            "3",
            "--progress-interval",
            "0.02",
        ]
        for attempt in range(KILLS):
            proc = cli_process(args, sandbox_env, workdir)
            if attempt == 0 and job % 2 == 0:
                # early: interpreter start-up, reading the input, creating the journal
                time.sleep(rng.uniform(0.05, 0.8))
            else:
                # mid-send: after a random number of orders of this run
                wait_for_done(proc, rng.randint(1, 12))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate(timeout=30)
            journal = workdir / "orders.csv.journal"
            if journal.exists() and journal.stat().st_size:
                with Journal.open(journal) as j:
                    done = j.counts()[RowState.DONE]
                mid_job += 0 < done < ROWS
        proc = cli_process(args, sandbox_env, workdir)  # the same command resumes the job
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (out, err)
        assert f"{ROWS} row(s)" in out
        assert_exactly_one_order_per_row(sandbox_env, customer, workdir / "orders.csv.journal")
    assert kills >= min(10, JOBS * KILLS) * 0.8  # nearly every run was killed
    assert mid_job >= 3  # and several of them in the middle of sending


def test_ctrl_c_finishes_in_flight_and_prints_the_resume_command(
    sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    customer = "ctrl-c-customer"
    source = tmp_path / "orders.csv"
    write_input(source, customer)
    proc = cli_process(
        ["submit", "orders.csv", "--order-rate", "10", "--progress-interval", "0.1"],
        sandbox_env,
        tmp_path,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until sending has begun
        line = proc.stderr.readline()
        if line.startswith("progress:") and "done 0," not in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "stopping after the requests in flight" in err
    assert "resume with: tango-async resume orders.csv.journal" in out
    with Journal.open(tmp_path / "orders.csv.journal") as j:
        counts = j.counts()
    assert counts[RowState.SENDING] == 0  # the request in flight was finished and recorded
    assert 0 < counts[RowState.DONE] < ROWS
    proc = cli_process(
        ["resume", "orders.csv.journal", "--order-rate", str(RATE)], sandbox_env, tmp_path
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert_exactly_one_order_per_row(sandbox_env, customer, tmp_path / "orders.csv.journal")
