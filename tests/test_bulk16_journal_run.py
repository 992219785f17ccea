"""Issue 16: the journal records who runs its job (pid, host, start) without a schema
change, ``Journal.job_run()`` tells a running job from an interrupted one by the lock
itself (a stale record of a dead process never reads as running), and a BulkJob releases
its journal's lock when it ends, however it ends (stopped, finished, cancelled, a
systemic refusal, ``async with`` after a ``break``), so a second job on the same journal
in the same process works without ``journal.close()``."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tango_async as ta
from tango_async._auth import Credential
from tango_async.bulk import _journal
from tango_async.bulk._job import BulkJob
from tango_async.bulk._journal import Journal, JournalBusyError, JournalError, RowState
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY, order_request


def make(path: Path, n: int = 3) -> Journal:
    return Journal.create(
        path,
        job_id="j1",
        input_path="in.csv",
        input_digest="d",
        rows=[(i, f"ref-{i}", b'{"amount":1}') for i in range(1, n + 1)],
    )


def test_a_new_journal_records_this_process_as_running_it(tmp_path: Path) -> None:
    with make(tmp_path / "a.journal") as j:
        run = j.job_run()
        assert run.running and j.locked
        assert run.pid == os.getpid() and run.host == socket.gethostname() and run.local
        assert run.started_at is not None and run.settled == 0 and run.rate == 0.0
    with Journal.open(tmp_path / "a.journal") as again:  # checksums hold: no schema change
        assert again.schema == 3
        run = again.job_run()
        assert not run.running  # the record stays, but nobody holds the lock
        assert run.pid == os.getpid()


def test_another_journal_of_this_process_sees_the_lock(tmp_path: Path) -> None:
    with make(tmp_path / "a.journal"), Journal.open(tmp_path / "a.journal") as reader:
        assert reader.job_run().running and not reader.locked
        with pytest.raises(JournalBusyError) as e:
            reader.lock()
        assert e.value.pid == os.getpid()
        text = str(e.value)
        assert "in use by another running job" in text and f"pid {os.getpid()}" in text
        assert "\n" not in text


def test_a_stale_record_of_a_dead_process_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    make(path).close()
    code = (
        "import sys; from tango_async.bulk._journal import Journal\n"
        "j = Journal.open(sys.argv[1]); j.lock(); print(j.job_run().pid, flush=True)\n"
        "import os; os._exit(0)  # dies holding it: the kernel releases the lock\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    child = int(out.stdout.strip())
    assert child != os.getpid()
    with Journal.open(path) as j:
        run = j.job_run()
        assert run.pid == child and not run.running  # the lock, not the pid, decides
        j.lock()  # and it can be taken
        assert j.job_run().pid == os.getpid()


def test_the_rate_counts_rows_settled_in_the_last_minute(tmp_path: Path) -> None:
    with make(tmp_path / "a.journal", 4) as j:
        for row in (1, 2):
            j.mark_sending(row)
            j.mark_done(row, reference_order_id=f"RA-{row}", created=True, order_status="X")
        j.mark_sending(3)  # in flight: not settled
        run = j.job_run()
        assert run.settled == 2 and run.rate > 0 and run.window >= 1.0
        assert run.last_activity is not None


def test_an_old_journal_without_a_record_gets_one_when_locked(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    make(path).close()
    conn = sqlite3.connect(path)  # as a journal of a tango_async that records none
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    for key in ("run_pid", "run_host", "run_started_at"):
        del meta[key]
    conn.execute("DELETE FROM meta WHERE key IN ('run_pid', 'run_host', 'run_started_at')")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'digest'", (_journal._meta_digest(meta),))
    conn.commit()
    conn.close()
    with Journal.open(path) as j:
        run = j.job_run()
        assert run.pid is None and run.host is None and not run.running
        j.lock()
        assert j.job_run().pid == os.getpid()
    Journal.open(path).close()  # still whole: the checksum covers the new keys


def test_a_lock_held_for_an_instant_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``status`` tries the lock (shared, for an instant): a job starting then must not be
    refused as "in use"."""
    import fcntl

    path = tmp_path / "a.journal"
    make(path).close()
    monkeypatch.setattr(_journal, "_LOCK_TRIES", 1000)
    monkeypatch.setattr(_journal, "_LOCK_PAUSE", 0.001)
    fd = os.open(_journal._lock_path(path), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    tried = threading.Event()
    real_sleep = _journal.time.sleep

    def sleep(seconds: float) -> None:
        tried.set()
        real_sleep(seconds)

    monkeypatch.setattr(_journal.time, "sleep", sleep)

    def let_go() -> None:
        tried.wait(5)
        os.close(fd)  # releases the shared lock

    helper = threading.Thread(target=let_go)
    helper.start()
    with Journal.open(path) as j:
        j.lock()
        assert j.locked
    helper.join()


def test_job_run_of_a_closed_journal_is_a_journal_error(tmp_path: Path) -> None:
    j = make(tmp_path / "a.journal")
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.job_run()


# --- a BulkJob releases its journal when it ends ------------------------------------------


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None) as server:
        yield server


@pytest.fixture
async def client(sb: Sandbox) -> AsyncIterator[ta.TangoClient]:
    async with sb.client(retry=FAST_RETRY) as tango:
        yield tango


def requests_for(n: int) -> list[ta.CreateOrderRequest]:
    return [order_request(amount=i) for i in range(1, n + 1)]


def one_order_per_row(sb: Sandbox, n: int) -> None:
    held = Counter(o["externalRefID"] for o in sb.orders.values())
    assert len(held) == n and set(held.values()) == {1}


async def test_a_stopped_job_can_be_resumed_in_the_same_process(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    """Before: the stopped job kept its journal locked until ``job.journal.close()``, so
    the resume failed with "in use by another running job"."""
    path = tmp_path / "r.journal"
    job = client.orders.submit_many(requests_for(4), journal=path, concurrency=1)
    async for _ in job:
        job.stop()
    assert job.stopped and job.journal is not None and not job.journal.locked
    again = BulkJob.resume(client, Journal.open(path))  # no close() of the first
    assert [r.outcome async for r in again] == ["created"] * 3
    # the first job's journal, still open, reads the finished job
    assert job.journal.counts()[RowState.DONE] == 4
    resumed_again = BulkJob.resume(client, job.journal)  # the same Journal object, too
    assert [r async for r in resumed_again] == []
    one_order_per_row(sb, 4)
    job.journal.close()
    assert again.journal is not None
    again.journal.close()


async def test_a_finished_job_releases_its_journal(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "f.journal"
    job = client.orders.submit_many(requests_for(2), journal=path)
    assert len([r async for r in job]) == 2
    assert job.journal is not None and not job.journal.locked
    with Journal.open(path) as other:
        assert not other.job_run().running
        other.lock()
    job.journal.close()


async def test_a_job_cancelled_while_it_waits_releases_its_journal(
    sb: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "c.journal"
    async with sb.client(retry=FAST_RETRY, order_rate=0.05) as slow:  # 20 s between orders
        job = slow.orders.submit_many(requests_for(5), journal=path, concurrency=1)
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in job:  # then waits for the next (its rate slot is 20 s away)
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()  # lands inside the job: waiting for its next result
        with pytest.raises(asyncio.CancelledError):
            await task
        assert job.journal is not None and not job.journal.locked
    async with sb.client(retry=FAST_RETRY) as fast:
        rest = BulkJob.resume(fast, Journal.open(path))
        assert {r.outcome async for r in rest} <= {"created", "existing"}
    one_order_per_row(sb, 5)
    job.journal.close()
    assert rest.journal is not None
    rest.journal.close()


async def test_a_job_cancelled_in_the_loop_body_releases_on_aclose(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "c.journal"
    job = client.orders.submit_many(requests_for(5), journal=path, concurrency=1)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in job:
            first.set()
            await asyncio.Event().wait()  # stuck in the loop's body until cancelled

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await job.aclose()
    await job.aclose()  # idempotent
    assert job.journal is not None and not job.journal.locked
    rest = BulkJob.resume(client, Journal.open(path))
    assert {r.outcome async for r in rest} <= {"created", "existing"}
    one_order_per_row(sb, 5)
    job.journal.close()
    assert rest.journal is not None
    rest.journal.close()


async def test_a_systemic_stop_releases_its_journal(sb: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "s.journal"
    async with sb.client(retry=FAST_RETRY) as bad:
        bad._transport._credential = Credential(b"Basic d3Jvbmc6a2V5")  # a wrong key: 401
        job = bad.orders.submit_many(requests_for(2), journal=path, preflight=False)
        outcomes = [r.outcome async for r in job]
    assert job.stopped_by is not None and "pending" in outcomes
    assert job.journal is not None and not job.journal.locked
    async with sb.client(retry=FAST_RETRY) as good:
        rest = BulkJob.resume(good, Journal.open(path))
        assert {r.outcome async for r in rest} == {"created"}
    one_order_per_row(sb, 2)
    job.journal.close()
    assert rest.journal is not None
    rest.journal.close()


async def test_async_with_releases_a_job_left_by_break(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "b.journal"
    async with client.orders.submit_many(requests_for(4), journal=path, concurrency=1) as job:
        async for _ in job:
            break
    assert job.journal is not None and not job.journal.locked
    rest = BulkJob.resume(client, Journal.open(path))
    assert {r.outcome async for r in rest} <= {"created", "existing"}
    one_order_per_row(sb, 4)
    job.journal.close()
    assert rest.journal is not None
    rest.journal.close()


async def test_async_with_releases_a_job_never_iterated(
    client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "n.journal"
    async with client.orders.submit_many(requests_for(2), journal=path, preflight=False) as job:
        assert job.journal is not None and job.journal.locked
    assert not job.journal.locked
    with Journal.open(path) as other:
        other.lock()
    job.journal.close()
