"""Adversarial review of issue 16's CLI, bulk and order-history changes: each test is a
reproduction (of a careless user or of an attacker) kept as a regression test.

- Order history: orders created during a walk (a page of orders already seen because new
  ones pushed the list down is not "the API answered the same page again"), a server
  clock ahead of the client's by more than the margin, orders outside the history's
  span (a warning, not a silent loss), more than the window in one millisecond.
- Bulk: journals numbered by the previous code (data-record ordinals) and 0.1's row-number
  refs resumed by the new code without sending a row twice; files edited between submit
  and resume; kill -9 of a running submit; the job lock against ``status`` probes and a
  cut-short clean-up.
- Input files: devices, pipes and endless lines; thousands of bad rows (bounded output);
  line numbers with CR, CRLF, a BOM, blank lines and quoted line breaks; NUL.
- Bad invocations: one line, exit 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import tango_async as ta
from tango_async.bulk import _inputs
from tango_async.bulk._inputs import InputFileError, read_orders
from tango_async.bulk._job import BulkJob, plan_rows
from tango_async.bulk._journal import Journal, JournalError, RowState, _lock_held
from tango_async.cli import _bulk
from tango_async.cli._app import cli
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY, order_request
from .reconcile_support import threaded_sandbox

HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"
NOW = datetime.now(UTC)


def good_row(n: int, message: str = "") -> str:
    row = f"cust-12345,acct-12345,U561593,{n}.00,person{n}@example.com,Ann"
    return row + ("," + message if message else "")


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def one_line(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# --- order history: nothing lost, nothing twice -------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_orders_created_during_the_walk_do_not_end_it_as_a_repeated_page(
    concurrency: int,
) -> None:
    """Before: 10 orders created while a 10-a-page walk read a page pushed the next page
    down onto the one just read; the walk took it for the API repeating a page and
    stopped: 10 of 300 orders yielded (a warning), the other 290 silently missing. Within
    the window or past it (the whole history windowed by date), with or without
    prefetching."""
    for n, window in ((300, 500), (600, 500)):
        async with Sandbox(order_rate=None, max_window=window) as server:
            ids = server.seed_orders(n, start=NOW - timedelta(days=1), step=timedelta(seconds=1))
            async with server.client(retry=FAST_RETRY, result_window=window) as tango:
                got: list[str] = []
                pages = 0
                walk = tango.orders.list(elements_per_block=10, concurrency=concurrency)
                async for page in walk.pages():
                    got += [o.reference_order_id for o in page.orders]
                    pages += 1
                    if pages <= 20:  # a bulk job creating orders meanwhile
                        server.seed_orders(10, start=datetime.now(UTC), step=timedelta(0))
            assert len(got) == len(set(got))  # none twice
            assert set(ids) <= set(got), (n, len(set(ids) - set(got)))  # none lost


async def test_a_server_clock_ahead_by_more_than_the_margin_loses_no_order() -> None:
    """Before: the whole history was split from 2000 to the CLIENT's clock + 1 day:
    orders the server stamped 3 days ahead (its clock, or a client clock behind) fell
    past the last window and were never yielded, without a word."""
    async with Sandbox(order_rate=None, max_window=500) as server:
        ids = server.seed_orders(600, start=NOW - timedelta(days=30), step=timedelta(minutes=1))
        ids += server.seed_orders(50, start=NOW + timedelta(days=3), step=timedelta(seconds=1))
        async with server.client(retry=FAST_RETRY, result_window=500) as tango:
            got = [o.reference_order_id async for o in tango.orders.list()]
    assert sorted(got) == sorted(ids)


async def test_orders_outside_the_history_span_are_a_warning_not_silence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Orders the API counts but no date window of the history holds (created before
    2000-01-01, which no RaaS order is) were dropped without a word; now a warning names
    the shortfall (the API's count against what the windows held)."""
    async with Sandbox(order_rate=None, max_window=500) as server:
        server.seed_orders(600, start=datetime(1999, 12, 31, 23, tzinfo=UTC), step=10)
        async with server.client(retry=FAST_RETRY, result_window=500) as tango:
            with caplog.at_level(logging.WARNING, logger="tango_async"):
                got = [o.reference_order_id async for o in tango.orders.list()]
    assert len(got) == len(set(got)) < 600
    assert any("counted 600 orders" in r.getMessage() for r in caplog.records)


async def test_a_full_walk_of_a_small_history_warns_about_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Sandbox(order_rate=None, max_window=500) as server:
        ids = server.seed_orders(1_200, start=NOW - timedelta(days=5), step=timedelta(minutes=1))
        async with server.client(retry=FAST_RETRY, result_window=500) as tango:
            with caplog.at_level(logging.WARNING, logger="tango_async"):
                got = [o.reference_order_id async for o in tango.orders.list(concurrency=3)]
    assert sorted(got) == sorted(ids)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_more_than_the_window_in_one_millisecond_is_an_error_not_a_loss() -> None:
    async with Sandbox(order_rate=None, max_window=500) as server:
        server.seed_orders(600, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(0))
        async with server.client(retry=FAST_RETRY, result_window=500) as tango:
            got: list[str] = []
            with pytest.raises(ta.ResultWindowError, match="within one millisecond"):
                async for order in tango.orders.list():
                    got.append(order.reference_order_id)
    assert len(got) == len(set(got))


async def test_page_given_past_the_window_is_an_error_after_no_duplicate() -> None:
    async with Sandbox(order_rate=None, max_window=500) as server:
        server.seed_orders(600, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(minutes=1))
        async with server.client(retry=FAST_RETRY, result_window=500) as tango:
            got: list[str] = []
            with pytest.raises(ta.ResultWindowError, match="page=1"):
                async for order in tango.orders.list(page=1, elements_per_block=100):
                    got.append(order.reference_order_id)
    assert len(got) == len(set(got)) == 400


# --- bulk: journals of the previous code, edited files ---------------------------------------


def quoted_file(tmp_path: Path) -> Path:
    """Four orders over nine lines: a quoted line break in rows 1 and 3, a blank line."""
    path = tmp_path / "o.csv"
    path.write_text(
        HEADER + ",message\n"
        f"{good_row(1, chr(34) + 'hello' + chr(10) + 'there' + chr(34))}\n"
        "\n"
        f"{good_row(2, 'plain')}\n"
        f"{good_row(3, chr(34) + 'multi' + chr(10) + 'line' + chr(10) + 'msg' + chr(34))}\n"
        f"{good_row(4, 'x')}\n",
        encoding="utf-8",
    )
    return path


def test_rows_are_file_lines_and_records_are_0_1_ordinals(tmp_path: Path) -> None:
    rows = read_orders(quoted_file(tmp_path))
    assert [(r.row, r.record) for r in rows] == [(2, 1), (5, 3), (6, 4), (9, 5)]
    # 0.1's row-number refs, as the previous code (git HEAD before issue 16) made them
    plan = plan_rows(rows, job_id="tjabc")
    assert [ref for _, ref, _ in plan.rows] == ["tjabcr1", "tjabcr3", "tjabcr4", "tjabcr5"]
    # content refs are the same as the previous code's for the same file
    assert [ref for _, ref, _ in plan_rows(rows).rows] == [
        "tb864c867917fc8b1ab39ecb9fe8104bbfd9ca318f",
        "tb82e7b56bede010fb88bcce81212b262d5881ce31",
        "tbeb81d86e33cfa921d67e77dd0d1feee8cff09149",
        "tbc64ec4ae4c6562a56ef30d116847023ac8617fb5",
    ]


def _old_journal(file: Path, path: Path) -> list[str]:
    """A journal as the previous code made it for ``file``: rows numbered by record."""
    rows = read_orders(file)
    plan = plan_rows(rows)
    by_line = {r.row: r.record for r in rows}
    Journal.create(
        path,
        job_id=plan.job_id,
        input_path=str(file.absolute()),
        input_digest="old",
        rows=[(by_line[n] or n, ref, body) for n, ref, body in plan.rows],
        identity=plan.identity,
    ).close()
    return [ref for _, ref, _ in plan.rows]


def _sent_per_ref(server: Sandbox) -> Counter[str]:
    return Counter(o["externalRefID"] for o in server.orders.values())


def test_a_journal_numbered_by_records_is_finished_by_the_new_submit_once(
    tmp_path: Path,
) -> None:
    """A job the previous code started (rows numbered 1, 3, 4, 5), two rows ordered, one
    sent without an answer: ``submit FILE`` again finds the journal by its content refs,
    orders only the rest, every row once, and reconcile matches every row of it."""
    file = quoted_file(tmp_path)
    path = tmp_path / "o.csv.journal"
    refs = _old_journal(file, path)
    with threaded_sandbox(order_rate=None) as sb:

        async def first_two(client: ta.TangoClient, journal_path: Path) -> None:
            job = BulkJob.resume(client, Journal.open(journal_path), concurrency=1)
            async with job:
                async for _ in job:
                    if len(job.results) == 2:
                        job.stop()
            assert job.journal is not None
            job.journal.mark_sending(4)  # sent when the old process died
            job.journal.close()

        sb.job(first_two, path)
        assert len(_sent_per_ref(sb.sandbox)) == 2
        res = invoke(*sb.args, "submit", file, "--order-rate", "100")
        assert res.exit_code == 0, res.output
        held = _sent_per_ref(sb.sandbox)
        assert set(held) == set(refs) and set(held.values()) == {1}
        with Journal.open(path) as j:
            assert [r.row for r in j.rows()] == [1, 3, 4, 5]  # its own numbering kept
            assert j.counts()[RowState.DONE] == 4
        again = invoke(*sb.args, "submit", file, "--order-rate", "100")
        assert again.exit_code == 0 and "nothing to send" in again.stdout
        rec = invoke(*sb.args, "reconcile", path)
        assert rec.exit_code in (0, 1), rec.output
        assert "looked up 4 order(s)" in rec.stdout
        assert set(_sent_per_ref(sb.sandbox).values()) == {1}


def test_a_file_edited_between_submit_and_resume(tmp_path: Path) -> None:
    """Blank lines and a quoted line break moving rows down change no row's identity:
    ``submit`` resumes and sends nothing twice. A row inserted above, or a quoted message
    changed, is another order: refused (exit 2), nothing sent."""
    file = quoted_file(tmp_path)
    path = tmp_path / "o.csv.journal"
    with threaded_sandbox(order_rate=None) as sb:
        assert invoke(*sb.args, "submit", file, "--order-rate", "100").exit_code == 0
        before = _sent_per_ref(sb.sandbox)
        lines = file.read_text(encoding="utf-8").split("\n")
        moved = tmp_path / "moved.csv"  # blank lines above and between: rows move down
        moved.write_text("\n".join([lines[0], "", "", *lines[1:3], "", *lines[3:]]), "utf-8")
        assert [r.row for r in read_orders(moved)] != [r.row for r in read_orders(file)]
        res = invoke(*sb.args, "submit", moved, "--journal", path, "--order-rate", "100")
        assert res.exit_code == 0 and "nothing to send" in res.stdout, res.output
        inserted = tmp_path / "inserted.csv"
        inserted.write_text("\n".join([lines[0], good_row(9, "new"), *lines[1:]]), "utf-8")
        res = invoke(*sb.args, "submit", inserted, "--journal", path, "--order-rate", "100")
        assert res.exit_code == 2 and "holds other orders" in res.stderr, res.output
        changed = tmp_path / "changed.csv"
        changed.write_text(file.read_text("utf-8").replace("hello\nthere", "hello\n\nthere"))
        res = invoke(*sb.args, "submit", changed, "--journal", path, "--order-rate", "100")
        assert res.exit_code == 2 and "holds other orders" in res.stderr, res.output
        res = invoke(*sb.args, "resume", path, "--input", changed)
        assert res.exit_code == 2 and "holds other orders" in res.stderr, res.output
        assert _sent_per_ref(sb.sandbox) == before


# --- kill -9 of a running submit; the lock ----------------------------------------------------


def test_kill_9_of_a_running_submit_then_status_and_resume_send_nothing_twice(
    tmp_path: Path,
) -> None:
    file = tmp_path / "o.csv"
    file.write_text("\n".join([HEADER, *(good_row(i) for i in range(1, 7))]) + "\n", "utf-8")
    path = tmp_path / "o.csv.journal"
    with threaded_sandbox(order_rate=None) as sb:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "tango_async.cli", *sb.args, "submit", str(file)]
        command += ["--order-rate", "4", "--concurrency", "1"]
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 30
            while len(sb.sandbox.orders) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(sb.sandbox.orders) >= 2
            running = invoke("status", path)
            assert running.exit_code == 0
            assert f"running now (pid {child.pid}" in running.stdout, running.stdout
            busy = invoke(*sb.args, "resume", path)  # refused in one line naming the pid
            assert f"pid {child.pid}" in one_line(busy)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        status = invoke("status", path)
        assert "running now" not in status.stdout
        assert "not running: interrupted" in status.stdout, status.stdout
        res = invoke(*sb.args, "resume", path, "--order-rate", "100")
        assert res.exit_code == 0, res.output
        held = _sent_per_ref(sb.sandbox)
        assert len(held) == 6 and set(held.values()) == {1}
        with Journal.open(path) as j:
            assert j.counts()[RowState.DONE] == 6
            assert not j.job_run().running


def test_status_probing_the_lock_never_makes_a_starting_job_fail(tmp_path: Path) -> None:
    """A ``status`` tries the lock (a shared flock for an instant): a job taking it at
    that instant waits the instant out instead of failing with "in use"."""
    path = tmp_path / "p.journal"
    Journal.create(
        path, job_id="j", input_path="i.csv", input_digest="d", rows=[(2, "r2", b"{}")]
    ).close()
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            _lock_held(path)

    probes = [threading.Thread(target=probe) for _ in range(3)]
    for t in probes:
        t.start()
    try:
        with Journal.open(path) as j:
            for _ in range(150):
                j.lock()
                j.release()
    finally:
        stop.set()
        for t in probes:
            t.join()


@pytest.fixture
async def slow_sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None, latency=0.05) as server:
        yield server


async def test_a_cut_short_clean_up_keeps_the_lock_until_nothing_is_in_flight(
    slow_sb: Sandbox, tmp_path: Path
) -> None:
    """Cancelled again while the iteration waited for its senders, the iteration's
    clean-up stops short of shutting its journal thread down; ``aclose()`` then gave the
    lock away at once, with a journal write of a sender possibly still pending (another
    job could resume rows whose state was still being written). Now aclose() waits for
    the senders and the journal thread first."""
    path = tmp_path / "c.journal"
    async with slow_sb.client(retry=FAST_RETRY) as client:
        job = client.orders.submit_many(
            [order_request(amount=i) for i in range(1, 9)], journal=path, concurrency=4
        )
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in job:
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        await asyncio.sleep(0)  # the iteration's clean-up starts: it waits for its senders
        await asyncio.sleep(0)
        task.cancel()  # and is cancelled again
        with pytest.raises(asyncio.CancelledError):
            await task
        assert job.journal is not None and job.journal.locked  # clean-up cut short
        await job.aclose()
        assert all(w.done() for w in job._workers) and job._executor_done
        assert job.journal is not None and not job.journal.locked
        rest = BulkJob.resume(client, Journal.open(path))
        assert {r.outcome async for r in rest} <= {"created", "existing"}
        held = _sent_per_ref(slow_sb)
        assert len(held) == 8 and set(held.values()) == {1}
        job.journal.close()
        assert rest.journal is not None
        rest.journal.close()


# --- hostile input files -----------------------------------------------------------------


def test_a_device_or_a_pipe_as_input_is_one_line_not_a_hang(tmp_path: Path) -> None:
    """Before: ``submit /dev/zero --input-format csv`` read forever (one endless line)."""
    line = one_line(invoke("--sandbox", "local", "submit", "/dev/zero", "--input-format", "csv"))
    assert "not a regular file" in line
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "in.csv"
        os.mkfifo(fifo)
        with pytest.raises(InputFileError, match="not a regular file"):
            read_orders(fifo)


def test_an_endless_line_is_refused_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inputs, "MAX_LINE", 1000)
    file = tmp_path / "big.csv"
    file.write_text(HEADER + "\n" + good_row(1) + "\n" + "x" * 5000 + "\n", "utf-8")
    with pytest.raises(InputFileError, match="line 3 is longer than 1,000 characters"):
        read_orders(file)
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_text("{}\n" + "x" * 5000, "utf-8")
    with pytest.raises(InputFileError, match="line 2 is longer"):
        read_orders(jsonl)


def test_thousands_of_bad_rows_are_bounded_output_and_nothing_sent(tmp_path: Path) -> None:
    """Before: 20,000 bad rows, six bad fields each, printed 120,001 lines (8.7 MB); 2,000 here."""
    file = tmp_path / "bad.csv"
    file.write_text(HEADER + "\n" + "\n".join("x,y,z,abc,bad,\a" for _ in range(2_000)), "utf-8")
    res = invoke("--sandbox", "local", "submit", file)
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert len(lines) <= _bulk.SHOWN_INVALID_ROWS * 6 + 2
    assert lines[0].startswith("row 2, ") and any(line.startswith("row 101, ") for line in lines)
    assert "more invalid row(s), not shown" in lines[-2]
    assert "2000 invalid row(s)" in lines[-1] and "nothing sent" in lines[-1]
    assert not (tmp_path / "bad.csv.journal").exists()


@pytest.mark.parametrize(
    ("newline", "bom"), [("\n", False), ("\r\n", True), ("\r", False), ("\r\n", False)]
)
def test_line_numbers_whatever_the_line_endings(tmp_path: Path, newline: str, bom: bool) -> None:
    body = newline.join(
        [HEADER + ",message", good_row(1, '"a' + newline + 'b"'), "", good_row(2, "x"), "y"]
    )
    file = tmp_path / "o.csv"
    file.write_bytes(("\ufeff" if bom else "").encode() + body.encode())
    rows = read_orders(file)
    assert [r.row for r in rows] == [2, 5, 6]
    assert rows[2].errors and rows[2].errors[0].row == 6  # "y": a row of one cell
    assert [r.record for r in rows] == [1, 3, 4]


def test_a_nul_byte_is_a_row_error_by_line_and_nothing_is_sent(tmp_path: Path) -> None:
    file = tmp_path / "nul.csv"
    file.write_text(f"{HEADER}\n{good_row(1)}\n{good_row(2).replace('Ann', 'A' + chr(0))}\n")
    res = invoke("--sandbox", "local", "submit", file)
    assert res.exit_code == 1
    assert res.stderr.splitlines()[0].startswith("row 3, recipient.first_name")
    assert not (tmp_path / "nul.csv.journal").exists()


# --- bad invocations: one line, exit 2 ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "{dir}"],
        ["submit", "{dir}/o.csv", "--sandbox", "local", "--base-url", "http://x.test"],
        ["--sandbox", "local", "submit", "{dir}/o.csv", "--platform-key", "k"],
        ["--timeout", "5", "submit", "{dir}/o.csv", "--timeout", "6", "--sandbox", "local"],
        ["submit", "{dir}/o.csv", "--timeout", "nan", "--sandbox", "local"],
        ["submit", "{dir}/o.csv", "--timeout", "--", "--sandbox", "local"],
        ["submit", "--", "--base-url"],
        ["submit", "{dir}/o.csv", "--sandbox", "remote"],
        ["submit", "{dir}/o.csv", "--journal", "{dir}/o.csv", "--sandbox", "local"],
        ["submit", "{dir}/o.csv", "--report", "{dir}/o.csv", "--sandbox", "local"],
        ["submit", "{dir}/o.csv", "--journal", "{dir}/damaged.journal", "--sandbox", "local"],
        ["submit", "{dir}/latin1.csv", "--sandbox", "local"],
        ["submit", "{dir}/o.xml", "--sandbox", "local"],
        ["status", "{dir}/damaged.journal"],
        ["status", "{dir}/none.journal"],
        ["status", "/dev/null"],
        ["resume", "{dir}/damaged.journal", "--sandbox", "local"],
        ["reconcile", "{dir}/damaged.journal", "--sandbox", "local"],
        ["orders", "list", "--base-url", "not a url", "--platform-name", "n"],
    ],
)
def test_bad_invocations_are_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "o.csv").write_text(f"{HEADER}\n{good_row(1)}\n", "utf-8")
    (tmp_path / "o.xml").write_text(f"{HEADER}\n{good_row(1)}\n", "utf-8")
    (tmp_path / "latin1.csv").write_bytes(f"{HEADER}\n{good_row(1)}\n".encode() + b"\xe9\n")
    (tmp_path / "damaged.journal").write_bytes(b"x")
    line = one_line(invoke(*(a.format(dir=tmp_path) for a in args)))
    assert line.lower().startswith("error: ")
    assert not list(tmp_path.glob("o.csv.journal*"))  # nothing was started


def test_journal_error_of_a_busy_journal_names_its_pid(tmp_path: Path) -> None:
    path = tmp_path / "b.journal"
    running = Journal.create(
        path, job_id="j", input_path="i.csv", input_digest="d", rows=[(2, "r2", b"{}")]
    )
    with running, Journal.open(path) as other, pytest.raises(JournalError) as e:
        other.lock()
    assert f"pid {os.getpid()}" in str(e.value)
    assert json.dumps(str(e.value))  # one printable line
    assert "\n" not in str(e.value)


def test_where_a_file_is_not_utf8_is_found_without_reading_a_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binary file with no line break was read whole into memory to find its first
    byte that is not UTF-8; now in bounded reads, a character cut by one still whole."""
    monkeypatch.setattr(_inputs, "MAX_LINE", 3)
    file = tmp_path / "bin.csv"
    file.write_bytes(b"ab\xc3\xa9\xc3\xa9\xc3\xa9\xff" + b"x" * 100)
    with pytest.raises(InputFileError, match=r"line 1, byte offset 8: b'\\xff'"):
        read_orders(file)
    file.write_bytes(f"{HEADER}\n".encode() + b"\xc3\xa9x\n\xff\n")
    with pytest.raises(InputFileError, match=r"line 3, byte offset \d+: b'\\xff'"):
        read_orders(file)
