"""Adversarial review of the issue-12 change, bulk and CLI side: each test is a defect found
by attacking the journal, the job, the report and the CLI's option and path checks, reproduced
as it was found (before the fix, the test failed as its docstring says).

The CLI commands call asyncio.run(), so their tests are plain (sync) functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import tango_async as ta
from tango_async._validation import (
    MAX_CUSTOM_FIELDS_VALUES,
    check_custom_fields,
    prepare_order,
)
from tango_async.bulk._job import BulkJob, plan_rows
from tango_async.bulk._journal import Journal, JournalError, RowState
from tango_async.cli._app import cli
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY, order_request
from .journal_support import downgrade_to_schema_1

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs flock and POSIX names")

HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"


def write_csv(path: Path, n: int = 3) -> Path:
    rows = [f"cust-12345,acct-12345,U561593,{i}.00,p{i}@example.com,Ann" for i in range(1, n + 1)]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def invoke(*args: str | Path) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    # every outcome is an exit code, never an exception escaping the command
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


def submit(file: Path, *extra: str | Path) -> Result:
    return invoke("--sandbox", "local", "submit", file, "--order-rate", "100", *extra)


def make(path: Path, n: int = 4) -> Journal:
    return Journal.create(
        path,
        job_id="tjadv",
        input_path="orders.csv",
        input_digest="d",
        rows=[(i, f"ref-{i}", b'{"amount":%d}' % i) for i in range(1, n + 1)],
    )


# --- 1. a journal upgraded by another job while this Journal was open ----------------------


def test_a_journal_upgraded_by_another_job_keeps_its_checksums(tmp_path: Path) -> None:
    """Before: two processes opened a 0.1 (schema-1) journal; the first took the lock,
    upgraded it to schema 3 and ran; the second took the lock after it and kept writing
    without checksums (its ``_digests`` was read at open), so the next open said the whole
    journal was damaged: "row(s) 2 do not match their checksum"."""
    path = tmp_path / "j"
    make(path).close()
    downgrade_to_schema_1(path)
    first, second = Journal.open(path), Journal.open(path)
    first.lock()  # upgrades
    first.mark_sending(1)
    first.mark_done(1, reference_order_id="RA1", created=True, order_status="COMPLETE")
    first.close()
    second.lock()  # already schema 3: nothing to upgrade, but checksums from now on
    second.mark_sending(2)
    second.mark_unknown(2, http_status=None, i18n_key=None, message="timed out")
    second.close()
    with Journal.open(path) as j:  # not damaged
        assert [r.state for r in j.rows()] == [
            RowState.DONE, RowState.UNKNOWN, RowState.PENDING, RowState.PENDING
        ]  # fmt: skip


# --- 2. texts SQLite cannot store: a file name that is not UTF-8, a JSON key --------------


@posix_only
def test_an_input_file_whose_name_is_not_utf8_is_submitted(tmp_path: Path) -> None:
    """Before: ``submit`` of ``ord\\xff.csv`` printed a UnicodeEncodeError traceback from
    Journal.create (the input path, with a lone surrogate, cannot be stored in SQLite)."""
    raw = os.fsencode(tmp_path) + b"/ord\xff.csv"
    write_csv(Path(os.fsdecode(raw)))
    file = Path(os.fsdecode(raw))
    res = submit(file)
    assert res.exit_code == 0, res.output
    journal = file.with_name(file.name + ".journal")
    with Journal.open(journal) as j:
        assert j.counts()[RowState.DONE] == 3
        assert "\\xff" in j.input_path  # the bytes, shown escaped
    status = invoke("status", journal)
    assert status.exit_code == 0, status.output
    assert "ord\\xff.csv" in status.output


def test_a_jsonl_key_with_a_lone_surrogate_is_an_invalid_row(tmp_path: Path) -> None:
    """Before: with --skip-invalid, a JSONL row with an unknown key holding a lone
    surrogate (JSON's ``"\\udcff"``) made Journal.create raise UnicodeEncodeError (the row
    error's field was the raw key): a traceback, nothing sent for the valid rows."""
    good = {
        "customerIdentifier": "cust-12345",
        "accountIdentifier": "acct-12345",
        "utid": "U561593",
        "amount": 5,
        "recipient": {"email": "ann@example.com", "firstName": "Ann"},
    }
    hostile = json.dumps({**good, "amount": 6}).replace(
        '"utid"', '"\\udcff\\n\\u001b[31m": 1, "utid"', 1
    )
    file = tmp_path / "o.jsonl"
    file.write_text(json.dumps(good) + "\n" + hostile + "\n", encoding="utf-8")
    res = submit(file, "--skip-invalid")
    assert res.exit_code == 1, res.output  # one invalid row
    with Journal.open(tmp_path / "o.jsonl.journal") as j:
        rows = list(j.rows())
    assert [r.state for r in rows] == [RowState.DONE, RowState.INVALID]
    assert "\\udcff" in (rows[1].message or "")  # escaped, not raw
    assert "\n" not in (rows[1].message or "") and "\x1b" not in (rows[1].message or "")


def test_journal_texts_that_sqlite_cannot_store_are_a_journal_error(tmp_path: Path) -> None:
    """Before: UnicodeEncodeError escaped Journal.create and mark_failed (only TangoError
    subclasses should escape); now JournalError, and nothing is left behind or changed."""
    path = tmp_path / "j"
    with pytest.raises(JournalError, match="not valid Unicode"):
        Journal.create(path, job_id="tj1", input_path="in\udcff.csv", input_digest="d", rows=[])
    with pytest.raises(JournalError, match="not valid Unicode"):
        Journal.create(
            path, job_id="tj1", input_path="", input_digest="d", rows=[], invalid=[(1, "\ud800")]
        )
    assert sorted(os.listdir(tmp_path)) == []  # no journal, no build, no lock file
    with make(path) as j:
        j.mark_sending(1)
        with pytest.raises(JournalError, match="cannot record mark_failed of row 1"):
            j.mark_failed(1, http_status=400, i18n_key=None, message="\udcff", retriable=False)
        assert j.get(1).state is RowState.SENDING  # unchanged


# --- 3. the report written over the journal's own files --------------------------------------


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal", ".lock", ".creating"])
def test_the_report_never_overwrites_a_file_of_the_journal(tmp_path: Path, suffix: str) -> None:
    """Before: ``--report FILE.journal-wal`` was accepted: the report overwrote the WAL
    while the journal was open, and every DONE row of the job was lost (40 orders sent,
    ``status`` then said 40 pending, not even "damaged"); ``--report FILE.journal-shm``
    crashed the process with SIGBUS after the job."""
    file = write_csv(tmp_path / "o.csv")
    journal = tmp_path / "o.csv.journal"
    res = submit(file, "--report", tmp_path / f"o.csv.journal{suffix}")
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--report'" in res.stderr
    assert not journal.exists()  # nothing started
    own = tmp_path / "own"
    res = submit(file, "--journal", own, "--report", tmp_path / f"own{suffix}")
    assert res.exit_code == 2 and not own.exists(), res.output
    assert submit(file).exit_code == 0
    before = journal.read_bytes()
    res = invoke("--sandbox", "local", "resume", journal, "--report", f"{journal}{suffix}")
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--report'" in res.stderr
    assert journal.read_bytes() == before


@posix_only
def test_the_report_never_overwrites_the_wal_of_a_symlinked_journal(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "o.csv")
    real = tmp_path / "real.journal"
    link = tmp_path / "link.journal"
    link.symlink_to(real.name)
    assert submit(file, "--journal", real).exit_code == 0
    res = invoke("--sandbox", "local", "resume", link, "--report", f"{real}-wal")
    assert res.exit_code == 2, res.output


@posix_only
def test_a_symlink_loop_as_a_path_is_a_usage_error(tmp_path: Path) -> None:
    """Before: ``--report loop`` (a symlink to itself) printed a RuntimeError traceback
    ("Symlink loop") from Path.resolve(), and so did ``--journal loop``."""
    file = write_csv(tmp_path / "o.csv")
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    res = submit(file, "--report", loop)
    assert res.exit_code == 2, res.output
    res = submit(file, "--journal", loop)
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "o.csv.journal").exists()


def test_a_report_in_a_directory_we_cannot_write_is_refused_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: only a missing directory was refused; in a read-only one the job sent every
    order, then failed to write the report (exit 2). (Simulated: this suite may run as
    root, for whom every directory is writable.)"""
    file = write_csv(tmp_path / "o.csv")
    locked = tmp_path / "ro"
    locked.mkdir()
    real_access = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:
        if Path(path) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    res = submit(file, "--report", locked / "r.csv")
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--report'" in res.stderr and "not writable" in res.stderr
    assert not (tmp_path / "o.csv.journal").exists()  # nothing sent
    res = submit(file, "--journal", locked / "j")
    assert res.exit_code == 2 and "Invalid value for '--journal'" in res.stderr


# --- 4. the job lock: symlinks, a lock file removed while a job runs -------------------------


@posix_only
def test_a_symlink_to_a_journal_shares_its_lock(tmp_path: Path) -> None:
    """Before: ``PATH.lock`` was named after the path given, so a journal opened through a
    symbolic link took ``link.lock``: two jobs ran the same journal at once."""
    path = tmp_path / "j"
    link = tmp_path / "link"
    link.symlink_to(path.name)
    with (
        make(path),  # holds the lock
        Journal.open(link) as other,
        pytest.raises(JournalError, match="in use by another running job"),
    ):
        other.lock()
    with Journal.open(link) as other:
        other.lock()  # free now
        with Journal.open(path) as third, pytest.raises(JournalError, match="in use"):
            third.lock()


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_job_whose_lock_file_was_removed_sends_no_more(tmp_path: Path, how: str) -> None:
    """Before: with ``PATH.lock`` removed (or replaced) while a job ran, a second job took a
    new lock file and both sent the same rows at once; the first never noticed. Now the
    first refuses to mark (and so to send) any more row."""
    path = tmp_path / "j"
    lock = tmp_path / "j.lock"
    with make(path) as first:
        first.mark_sending(1)
        lock.unlink()
        if how == "replaced":
            lock.write_bytes(b"")
        with Journal.open(path) as second:
            second.lock()  # the new lock file is free: it cannot know about the first
            with pytest.raises(JournalError, match="removed or replaced"):
                first.mark_sending(2)
            assert first.get(2).state is RowState.PENDING  # unchanged
            # the first still records the answers of what it had sent
            first.mark_done(1, reference_order_id="RA1", created=True, order_status="COMPLETE")
            second.mark_sending(2)  # the job that holds the lock file goes on


async def test_a_bulk_job_stops_when_its_lock_file_is_removed(tmp_path: Path) -> None:
    """Through the job engine: the lock file removed after the first result, the job
    stops with a JournalError before sending another row; a resume finishes the rest with
    the same externalRefIDs, one order per row."""
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as client:
        requests = [order_request(amount=i) for i in range(1, 6)]
        job = BulkJob.prepare(client, requests, journal=tmp_path / "j", concurrency=1)
        seen = 0
        with pytest.raises(JournalError, match="removed or replaced"):
            async for _ in job:
                seen += 1
                if seen == 1:
                    (tmp_path / "j.lock").unlink()
        assert job.journal is not None
        job.journal.close()
        sent = [o["externalRefID"] for o in sb.orders.values()]
        assert len(sent) <= 2  # the first, and at most the one already marked
        with Journal.open(tmp_path / "j") as j:
            rest = BulkJob.resume(client, j)
            results = [r async for r in rest]
            assert all(r.outcome in ("created", "existing") for r in results)
            refs = {r.external_ref_id for r in j.rows()}
        held = [o["externalRefID"] for o in sb.orders.values()]
        assert sorted(held) == sorted(refs)  # exactly one order per row


# --- 5. custom_fields: wide, not deep ------------------------------------------------------------


class _NeverWalked(list[Any]):
    def __iter__(self) -> Any:
        raise AssertionError("a list over the bound was walked")


class _NeverWalkedDict(dict[str, Any]):
    def items(self) -> Any:
        raise AssertionError("a mapping over the bound was walked")


def test_a_wide_custom_fields_list_is_refused_without_walking_it() -> None:
    """Before: a list of 5,000,000 values was copied, element by element, onto the walk's
    stack before the 10,000-value bound was checked: 21 s and 784 MB, for a refusal."""
    wide = _NeverWalked([None] * (MAX_CUSTOM_FIELDS_VALUES + 1))
    with pytest.raises(ta.ValidationError, match="at most 10000 values"):
        check_custom_fields({"a": wide})
    with pytest.raises(ta.ValidationError, match="at most 10000 values"):
        check_custom_fields({"a": [1, {"b": wide}]})
    keys = _NeverWalkedDict({str(i): None for i in range(MAX_CUSTOM_FIELDS_VALUES)})
    with pytest.raises(ta.ValidationError, match="at most 10000 values"):
        check_custom_fields(keys)
    # the bound itself is where it was: 10,000 values in all (the top mapping and the list
    # count as one each)
    check_custom_fields({"a": [None] * (MAX_CUSTOM_FIELDS_VALUES - 2)})
    with pytest.raises(ta.ValidationError, match="at most 10000 values"):
        check_custom_fields({"a": [None] * (MAX_CUSTOM_FIELDS_VALUES - 1)})
    with pytest.raises(ta.ValidationError, match="at most 10000 values"):
        prepare_order(order_request(custom_fields={"a": [0] * 10**6}))  # behind every order


# --- 6. settings a journal written through the library may hold ------------------------------


@pytest.mark.parametrize(
    "settings", [{"report": 5}, {"report": ["r.csv"]}, {"report": {"path": "r.csv"}}]
)
def test_resume_with_a_saved_report_that_is_not_text_is_exit_2(
    tmp_path: Path, settings: dict[str, Any]
) -> None:
    """Before: ``resume`` of a journal whose saved ``report`` is not a str (``settings`` is
    free-form JSON for library users) printed a TypeError traceback from Path(5)."""
    plan = plan_rows([order_request(amount=1)])
    journal = tmp_path / "j"
    Journal.create(
        journal,
        job_id=plan.job_id,
        input_path="",
        input_digest="",
        rows=plan.rows,
        settings=settings,
        identity=plan.identity,
    ).close()
    res = invoke("--sandbox", "local", "resume", journal)
    assert res.exit_code == 2, res.output
    assert "the report saved in the journal" in res.stderr and "pass --report" in res.stderr
    with Journal.open(journal) as j:
        assert j.counts()[RowState.PENDING] == 1  # nothing sent
    res = invoke("--sandbox", "local", "resume", journal, "--report", tmp_path / "r.csv")
    assert res.exit_code == 0, res.output


# --- 7. a journal path that is not a regular file ----------------------------------------------


def _within(fifo: Path, fn: Any) -> Any:
    """``fn()``, failing (not hanging) if it is still blocked on ``fifo`` after 10 s; only a
    failing run waits."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        with contextlib.suppress(OSError):  # a writer that closes at once: the reader sees EOF
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail(f"blocked on the FIFO {fifo}")
    return out[0] if out else None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_as_the_journal_is_refused_not_a_hang(tmp_path: Path) -> None:
    """Before: ``status FIFO`` (and ``resume``, ``submit --journal FIFO``) hung forever:
    Journal.open read the file's first bytes, and opening a FIFO waits for a writer."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def open_it() -> str:
        try:
            Journal.open(fifo)
        except JournalError as e:
            return str(e)
        return "opened"

    assert "not a regular file" in _within(fifo, open_it)
    res = _within(fifo, lambda: invoke("status", fifo))
    assert res.exit_code == 2 and "not a regular file" in res.stderr, res.output
    file = write_csv(tmp_path / "o.csv")
    res = _within(fifo, lambda: submit(file, "--journal", fifo))
    assert res.exit_code == 2 and "not a regular file" in res.stderr, res.output
