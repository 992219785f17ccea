"""The bulk job's journal: states, transitions, crash safety, concurrent readers, speed.

The journal guards money: each row is committed (fsynced) as SENDING before its order is sent,
so a resumed job re-sends in-flight rows with the same externalRefID and never under a new one.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tango_async import TangoError
from tango_async.bulk._journal import (
    SCHEMA_VERSION,
    Journal,
    JournalDamagedError,
    JournalError,
    JournalMismatchError,
    JournalRow,
    RowState,
)

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL / POSIX fsync")


def body(row: int) -> bytes:
    return (
        '{"customerIdentifier":"cust-12345","accountIdentifier":"acct-12345","utid":"U561593",'
        f'"amount":10.00,"externalRefID":"job1-{row:06d}","note":"caf\u00e9 \\u00e9"}}'
    ).encode()


def ref(row: int) -> str:
    return f"job1-{row:06d}"


def rows_(*numbers: int) -> list[tuple[int, str, bytes]]:
    return [(n, ref(n), body(n)) for n in numbers]


def make(path: Path, n: int = 5, **kw: object) -> Journal:
    args: dict[str, object] = {
        "job_id": "job1",
        "input_path": "orders.csv",
        "input_digest": DIGEST,
        "rows": rows_(*range(1, n + 1)),
    }
    args.update(kw)
    return Journal.create(path, **args)  # type: ignore[arg-type]


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "job1.journal"


@pytest.fixture
def journal(jpath: Path) -> Iterator[Journal]:
    j = make(jpath, 5, invalid=[(7, "amount: must be > 0; utid: required")])
    yield j
    j.close()


def run_child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- create / open ------------------------------------------------------------------------


def test_create_stores_rows_meta_and_settings(jpath: Path) -> None:
    before = datetime.now(UTC)
    settings = {"order_rate": 1.0, "base_url": "https://api.tangocard.com/raas/v2", "n": [1, 2]}
    with make(jpath, 3, invalid=[(9, "amount: must be > 0")], settings=settings) as j:
        assert j.job_id == "job1"
        assert j.input_path == "orders.csv"
        assert j.input_digest == DIGEST
        assert j.settings == settings
        assert j.path == jpath
        assert j.created_at.tzinfo is not None and j.created_at.utcoffset() == UTC.utcoffset(None)
        assert before <= j.created_at <= datetime.now(UTC)
        r1 = j.get(1)
        assert r1 == JournalRow(
            row=1,
            external_ref_id=ref(1),
            state=RowState.PENDING,
            attempt=0,
            sent_at=None,
            reference_order_id=None,
            created=None,
            order_status=None,
            http_status=None,
            i18n_key=None,
            message=None,
            retriable=None,
            request=body(1),
            updated_at=r1.updated_at,
        )
        assert r1.request == body(1)  # the exact bytes, non-ASCII included
        bad = j.get(9)
        assert bad.state is RowState.INVALID
        assert bad.message == "amount: must be > 0"
        assert bad.i18n_key is None and bad.http_status is None and bad.retriable is False
        assert bad.external_ref_id == "" and bad.request == b""
    with Journal.open(jpath) as j:
        assert (j.job_id, j.input_path, j.input_digest) == ("job1", "orders.csv", DIGEST)
        assert j.settings == settings
        assert j.get(1).request == body(1)
        assert [r.row for r in j.rows()] == [1, 2, 3, 9]


def test_counts_include_every_state(journal: Journal) -> None:
    assert journal.counts() == {
        RowState.PENDING: 5,
        RowState.SENDING: 0,
        RowState.DONE: 0,
        RowState.FAILED: 0,
        RowState.UNKNOWN: 0,
        RowState.INVALID: 1,
    }
    journal.mark_sending(1)
    journal.mark_sending(2)
    journal.mark_done(2, reference_order_id="RA1", created=True, order_status="COMPLETE")
    journal.mark_sending(3)
    journal.mark_failed(3, http_status=400, i18n_key="400.1", message="bad", retriable=False)
    assert journal.counts() == {
        RowState.PENDING: 2,
        RowState.SENDING: 1,
        RowState.DONE: 1,
        RowState.FAILED: 1,
        RowState.UNKNOWN: 0,
        RowState.INVALID: 1,
    }


def test_rows_are_by_row_number_and_stream_in_batches(jpath: Path) -> None:
    numbers = list(range(2500, 0, -1))  # given out of order; more than one batch
    with Journal.create(
        jpath,
        job_id="j",
        input_path="x",
        input_digest=DIGEST,
        rows=rows_(*numbers[::2]),
        invalid=[(n, "bad") for n in numbers[1::2]],
    ) as j:
        got = [r.row for r in j.rows()]
        assert got == list(range(1, 2501))
        # Marking rows while iterating is fine (the lock is not held between batches).
        it = j.rows()
        first = next(it)
        if first.state is RowState.INVALID:
            first = next(it)
        j.mark_sending(first.row)
        assert sum(1 for _ in it) > 2000


def test_create_refuses_an_existing_file(jpath: Path) -> None:
    make(jpath).close()
    stamp = jpath.read_bytes()
    with pytest.raises(JournalError, match="exists"):
        make(jpath)
    assert jpath.read_bytes() == stamp  # untouched
    other = jpath.with_name("plain.txt")
    other.write_text("hello")
    with pytest.raises(JournalError, match="exists"):
        make(other)
    assert other.read_text() == "hello"


def test_create_refuses_a_stale_wal_of_another_journal(jpath: Path) -> None:
    jpath.with_name(jpath.name + "-wal").write_bytes(b"stale")
    with pytest.raises(JournalError, match="-wal exists"):
        make(jpath)
    assert not jpath.exists()


def test_duplicate_external_ref_id_names_both_rows(jpath: Path) -> None:
    rows = [*rows_(1, 2, 3), (4, ref(2), body(4))]
    with pytest.raises(JournalError, match=r"rows 2 and 4 .*'job1-000002'"):
        make(jpath, rows=rows)
    assert not jpath.exists()  # nothing left behind: the job can be started again


def test_unique_constraint_backs_up_the_check(journal: Journal) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        journal._db().execute(
            "INSERT INTO rows (row, external_ref_id, state, request, updated_at) "
            "VALUES (99, ?, 'PENDING', x'00', 'now')",
            (ref(1),),
        )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rows": [*rows_(1, 2), (2, "other", b"{}")]}, "row 2 appears twice"),
        ({"invalid": [(3, "bad")]}, "row 3 appears twice"),
        ({"rows": [(1, "", b"{}")]}, "external_ref_id must be a non-empty str"),
        ({"rows": [(1, "r", "{}")]}, "request must be the wire JSON bytes"),
        ({"rows": [(1, "r", b"")]}, "request is empty"),
        ({"rows": [("1", "r", b"{}")]}, "row numbers must be ints"),
        ({"rows": [(-1, "r", b"{}")]}, "row numbers must be ints from 0"),
        ({"invalid": [(2**63, "bad")]}, "row numbers must be ints from 0"),
        ({"rows": [(1, "r")]}, "must be .row, external_ref_id, request. tuples"),
        ({"invalid": [(9, "")]}, "message must be a non-empty str"),
        ({"job_id": ""}, "job_id must not be empty"),
        ({"settings": {"when": datetime.now(UTC)}}, "JSON-serialisable"),
        ({"settings": {"rate": float("nan")}}, "JSON-serialisable"),
    ],
)
def test_create_refuses_bad_input_and_leaves_no_file(
    jpath: Path, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(JournalError, match=message):
        make(jpath, 3, **kw)
    assert list(jpath.parent.iterdir()) == []


@pytest.mark.parametrize(
    "settings",
    [
        {"platform_key": "sup3r-s3cret"},
        {"platform_name": "acme"},
        {"client": {"api_key": "x"}},
        {"Authorization": "x"},
        {"password": "x"},
        {"secret": "x"},
        {"access_token": "x"},
        {"key": "x"},
        {"headers": [{"X-Auth": "x"}]},
        {"base_url": "https://acme:sup3r-s3cret@api.tangocard.com/raas/v2"},
        {"header": "Basic YWNtZTpzZWNyZXQ="},
    ],
)
def test_settings_never_hold_credentials(jpath: Path, settings: dict[str, object]) -> None:
    with pytest.raises(JournalError, match=r"credential|Authorization"):
        make(jpath, settings=settings)
    assert not jpath.exists()


def test_settings_are_stored_as_json_without_secrets(jpath: Path) -> None:
    make(jpath, settings={"order_rate": 2, "base_url": "https://x.test/raas/v2"}).close()
    with sqlite3.connect(jpath) as db:
        raw = dict(db.execute("SELECT key, value FROM meta").fetchall())
    db.close()
    assert json.loads(raw["settings"]) == {"order_rate": 2, "base_url": "https://x.test/raas/v2"}


def test_open_missing_file(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        Journal.open(tmp_path / "nope.journal")
    assert not (tmp_path / "nope.journal").exists()  # not created by trying


def test_open_directory(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="directory"):
        Journal.open(tmp_path)


def test_open_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    p = tmp_path / "orders.csv"
    p.write_text("utid,amount\nU1,10\n" * 500)
    with pytest.raises(JournalError, match="not a journal"):
        Journal.open(p)
    assert p.read_text().startswith("utid,amount")


def test_open_another_sqlite_database(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    db = sqlite3.connect(p)
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="not a tango_async bulk journal"):
        Journal.open(p)


def test_open_an_empty_file_is_a_damaged_journal(tmp_path: Path) -> None:
    p = tmp_path / "half.journal"
    p.write_bytes(b"")  # a truncated journal looks the same: never "nothing was sent"
    with pytest.raises(JournalDamagedError, match=r"damaged: it is empty") as caught:
        Journal.open(p)
    assert "nothing was sent" not in str(caught.value)
    assert p.exists()


def test_open_refuses_a_newer_schema(jpath: Path) -> None:
    make(jpath).close()
    db = sqlite3.connect(jpath)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    newer = rf"newer tango_async \(journal schema {SCHEMA_VERSION + 1}\).*upgrade"
    with pytest.raises(JournalError, match=newer):
        Journal.open(jpath)


def test_errors_are_tango_errors() -> None:
    assert issubclass(JournalError, TangoError)
    assert issubclass(JournalMismatchError, JournalError)
    assert issubclass(JournalMismatchError, ValueError)


# --- pragmas ------------------------------------------------------------------------------


def test_wal_and_synchronous_full_are_in_effect(jpath: Path) -> None:
    for j in (make(jpath), Journal.open(jpath)):
        with j:
            conn = j._db()
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db = sqlite3.connect(jpath)  # WAL is a property of the file, not only of our connection
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


# --- transitions --------------------------------------------------------------------------


def test_mark_sending_commits_attempt_and_time(journal: Journal, jpath: Path) -> None:
    before = datetime.now(UTC)
    r = journal.mark_sending(1)
    assert r.state is RowState.SENDING and r.attempt == 1
    assert r.external_ref_id == ref(1) and r.request == body(1)
    assert r.sent_at is not None and r.sent_at.tzinfo is not None
    assert before <= r.sent_at <= datetime.now(UTC)
    assert r.updated_at == r.sent_at
    # Committed when it returns: another connection sees it at once.
    db = sqlite3.connect(jpath)
    assert db.execute("SELECT state, attempt FROM rows WHERE row = 1").fetchone() == (
        "SENDING",
        1,
    )
    db.close()
    again = journal.mark_sending(1)  # resumed while in flight: same ref, attempt 2
    assert again.attempt == 2 and again.external_ref_id == ref(1)
    assert again.sent_at is not None and again.sent_at >= r.sent_at


def test_done_and_failed(journal: Journal) -> None:
    journal.mark_sending(1)
    journal.mark_done(1, reference_order_id="RA1-1", created=True, order_status="COMPLETE")
    d = journal.get(1)
    assert (d.state, d.reference_order_id, d.created, d.order_status) == (
        RowState.DONE,
        "RA1-1",
        True,
        "COMPLETE",
    )
    journal.mark_sending(2)
    journal.mark_done(2, reference_order_id="RA1-2", created=False, order_status=None)
    assert journal.get(2).created is False and journal.get(2).order_status is None
    journal.mark_sending(3)
    journal.mark_failed(3, http_status=503, i18n_key=None, message="unavailable", retriable=True)
    f = journal.get(3)
    assert (f.state, f.http_status, f.i18n_key, f.message, f.retriable) == (
        RowState.FAILED,
        503,
        None,
        "unavailable",
        True,
    )
    # A retry clears the failure; success afterwards.
    s = journal.mark_sending(3)
    assert s.attempt == 2 and s.http_status is None and s.message is None and s.retriable is None
    journal.mark_done(3, reference_order_id="RA1-3", created=True, order_status="PENDING")
    assert journal.get(3).state is RowState.DONE and journal.get(3).attempt == 2


def test_mark_done_twice_with_the_same_order_is_a_no_op(journal: Journal) -> None:
    journal.mark_sending(1)
    journal.mark_done(1, reference_order_id="RA1", created=True, order_status="COMPLETE")
    first = journal.get(1)
    journal.mark_done(1, reference_order_id="RA1", created=True, order_status="COMPLETE")
    assert journal.get(1) == first
    with pytest.raises(JournalError, match="already DONE with order RA1, not RA2"):
        journal.mark_done(1, reference_order_id="RA2", created=True, order_status="COMPLETE")
    assert journal.get(1) == first


@pytest.mark.parametrize(
    ("setup", "action", "message"),
    [
        ([], "done", "row 1 is PENDING"),
        ([], "failed", "row 1 is PENDING"),
        (["sending", "done"], "sending", "could pay twice"),
        (["sending", "done"], "failed", "row 1 is DONE"),
        (["sending", "failed"], "done", "row 1 is FAILED"),
        (["sending", "failed"], "failed", "row 1 is FAILED"),
    ],
)
def test_invalid_transitions_are_refused_and_change_nothing(
    journal: Journal, setup: list[str], action: str, message: str
) -> None:
    def do(what: str) -> None:
        if what == "sending":
            journal.mark_sending(1)
        elif what == "done":
            journal.mark_done(1, reference_order_id="RA9", created=True, order_status="COMPLETE")
        else:
            journal.mark_failed(1, http_status=400, i18n_key="x", message="m", retriable=False)

    for step in setup:
        do(step)
    before = journal.get(1)
    with pytest.raises(JournalError, match=message):
        if action == "done":  # a different order id, so a DONE row is not a repeat
            journal.mark_done(1, reference_order_id="RA-other", created=True, order_status=None)
        else:
            do(action)
    assert journal.get(1) == before


def test_invalid_rows_are_never_sent(journal: Journal) -> None:
    with pytest.raises(JournalError, match=r"row 7 is INVALID: it was refused before sending"):
        journal.mark_sending(7)
    assert journal.get(7).state is RowState.INVALID


def test_unknown_rows(journal: Journal) -> None:
    with pytest.raises(JournalError, match="has no row"):
        journal.get(2**64)
    with pytest.raises(JournalError, match="has no row"):
        journal.mark_sending(-5)
    for call in (
        lambda: journal.get(42),
        lambda: journal.mark_sending(42),
        lambda: journal.mark_done(42, reference_order_id="R", created=True, order_status=None),
        lambda: journal.mark_failed(
            42, http_status=None, i18n_key=None, message="m", retriable=True
        ),
    ):
        with pytest.raises(JournalError, match="has no row 42"):
            call()


def test_argument_types_are_checked(journal: Journal) -> None:
    journal.mark_sending(1)
    with pytest.raises(JournalError, match="reference_order_id"):
        journal.mark_done(1, reference_order_id="", created=True, order_status=None)
    with pytest.raises(JournalError, match="created must be a bool"):
        journal.mark_done(1, reference_order_id="R", created=1, order_status=None)  # type: ignore[arg-type]
    with pytest.raises(JournalError, match="retriable must be a bool"):
        journal.mark_failed(1, http_status=None, i18n_key=None, message="m", retriable=None)  # type: ignore[arg-type]
    with pytest.raises(JournalError, match="http_status must be an HTTP status"):
        journal.mark_failed(1, http_status=10**30, i18n_key=None, message="m", retriable=True)
    with pytest.raises(JournalError, match="row must be an int"):
        journal.mark_sending(True)
    assert journal.get(1).state is RowState.SENDING


# --- to_send ------------------------------------------------------------------------------


def test_to_send(jpath: Path) -> None:
    with make(jpath, 6, invalid=[(7, "bad")]) as j:
        j.mark_sending(1)
        j.mark_done(1, reference_order_id="RA1", created=True, order_status="COMPLETE")
        j.mark_sending(2)  # in flight when the job died
        j.mark_sending(3)
        j.mark_failed(3, http_status=None, i18n_key=None, message="reset", retriable=True)
        j.mark_sending(4)
        j.mark_failed(4, http_status=400, i18n_key="400.2", message="bad", retriable=False)
        assert [r.row for r in j.to_send()] == [2, 3, 5, 6]
        assert [r.row for r in j.to_send(retry_failed=True)] == [2, 3, 4, 5, 6]
        sending = j.to_send()[0]
        assert sending.state is RowState.SENDING and sending.external_ref_id == ref(2)
        assert sending.request == body(2)


# --- closing and threads ------------------------------------------------------------------


def test_close_is_idempotent_and_closed_journals_refuse(jpath: Path) -> None:
    j = make(jpath)
    with j:
        pass
    j.close()
    for call in (
        lambda: j.get(1),
        j.counts,
        j.to_send,
        lambda: j.mark_sending(1),
        lambda: list(j.rows()),
    ):
        with pytest.raises(JournalError, match="closed"):
            call()
    assert "closed" in repr(j)


def test_used_from_a_worker_thread_and_readers_in_others(jpath: Path) -> None:
    n = 200
    j = make(jpath, n)
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        try:
            for i in range(1, n + 1):
                j.mark_sending(i)
                j.mark_done(i, reference_order_id=f"RA{i}", created=True, order_status=None)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def read() -> None:
        try:
            while not stop.is_set():
                assert sum(j.counts().values()) == n
                j.get(n // 2)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    writer = threading.Thread(target=write)
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in (writer, *readers):
        t.start()
    writer.join(60)
    stop.set()
    for t in readers:
        t.join(60)
    assert errors == []
    assert j.counts()[RowState.DONE] == n
    j.close()


def test_two_opens_in_one_process(jpath: Path) -> None:
    make(jpath).close()
    a = Journal.open(jpath)
    b = Journal.open(jpath)
    try:
        a.mark_sending(1)
        assert b.get(1).state is RowState.SENDING
        b.mark_done(1, reference_order_id="RA1", created=True, order_status="COMPLETE")
        assert a.get(1).reference_order_id == "RA1"
        assert a.counts() == b.counts()
    finally:
        a.close()
        b.close()


# --- crash safety -------------------------------------------------------------------------

CRASH_CHILD = """
    import os, signal, sys
    from tango_async.bulk._journal import Journal

    path, how = sys.argv[1], sys.argv[2]
    rows = [(i, f"job1-{i:06d}", b'{"row": %d}' % i) for i in range(1, 11)]
    j = Journal.create(path, job_id="job1", input_path="in.csv", input_digest="d", rows=rows)
    j.mark_sending(1)
    j.mark_done(1, reference_order_id="RA1", created=True, order_status="COMPLETE")
    j.mark_sending(2)
    j.mark_failed(2, http_status=503, i18n_key=None, message="down", retriable=True)
    j.mark_sending(3)  # the request "goes out" now; the process dies before the answer
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(0)
"""


@posix_only
@pytest.mark.parametrize("how", ["kill", "exit"])
def test_committed_transitions_survive_a_crash(jpath: Path, how: str) -> None:
    done = run_child(CRASH_CHILD, str(jpath), how)
    assert done.returncode == (-signal.SIGKILL if how == "kill" else 0), done.stderr
    with Journal.open(jpath) as j:
        assert j.get(1).state is RowState.DONE and j.get(1).reference_order_id == "RA1"
        assert j.get(2).state is RowState.FAILED and j.get(2).retriable is True
        three = j.get(3)
        assert three.state is RowState.SENDING and three.attempt == 1
        assert three.sent_at is not None
        assert j.counts()[RowState.PENDING] == 7
        resend = j.to_send()
        # the in-flight row first (its outcome is unknown), then the rest by row number
        assert [r.row for r in resend] == [3, 2, 4, 5, 6, 7, 8, 9, 10]
        # The in-flight row is re-sent with the SAME externalRefID and bytes.
        assert (resend[0].external_ref_id, resend[0].request) == ("job1-000003", b'{"row": 3}')
        assert j.mark_sending(3).attempt == 2


KILLED_WRITER = """
    import sys
    from tango_async.bulk._journal import Journal

    j = Journal.open(sys.argv[1])
    for r in j.to_send():
        j.mark_sending(r.row)
        print("S", r.row, flush=True)
        j.mark_done(r.row, reference_order_id=f"RA{r.row}", created=True, order_status=None)
        print("D", r.row, flush=True)
"""


@posix_only
def test_kill_at_a_random_point_loses_no_committed_transition(jpath: Path) -> None:
    n = 2000
    make(jpath, n).close()
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(jpath)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported: list[tuple[str, int]] = []
    try:
        for line in child.stdout:
            kind, row_text = line.split()
            reported.append((kind, int(row_text)))
            if len(reported) >= 60:
                break
        child.send_signal(signal.SIGKILL)  # mid-way: between or during transactions
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()
        assert child.stderr is not None
        err = child.stderr.read()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL, err
    assert len(reported) == 60
    with Journal.open(jpath) as j:
        for what, number in reported:  # every transition reported as committed is there
            r = j.get(number)
            if what == "D":
                assert r.state is RowState.DONE and r.reference_order_id == f"RA{number}"
            else:
                assert r.state in (RowState.SENDING, RowState.DONE) and r.attempt == 1
        # And the file is consistent: a prefix of DONE rows, at most one SENDING, then PENDING.
        states = [r.state for r in j.rows()]
        done = states.count(RowState.DONE)
        assert done >= 30
        assert all(s is RowState.DONE for s in states[:done])
        rest = states[done:]
        assert rest[0] in (RowState.SENDING, RowState.PENDING)
        assert all(s is RowState.PENDING for s in rest[1:])
        assert sum(j.counts().values()) == n


# --- readers in other processes -----------------------------------------------------------

WRITER = """
    import sys
    from tango_async.bulk._journal import Journal

    with Journal.open(sys.argv[1]) as j:
        for r in j.to_send():
            j.mark_sending(r.row)
            j.mark_done(r.row, reference_order_id=f"RA{r.row}", created=True, order_status=None)
"""

READER = """
    import sys, time
    from tango_async.bulk._journal import Journal, RowState

    path, n = sys.argv[1], int(sys.argv[2])
    last, reads, deadline = -1, 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        with Journal.open(path) as j:  # a `status` command: open, read, close
            counts = j.counts()
            assert sum(counts.values()) == n, counts
            assert counts[RowState.DONE] >= last, (counts, last)
            last = counts[RowState.DONE]
            assert len(list(j.rows())) == n
            reads += 1
        if last == n:
            break
    print(reads, last)
"""


def test_status_from_another_process_while_the_job_writes(jpath: Path) -> None:
    n = 300
    make(jpath, n).close()
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(jpath)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reads, last = 0, -1
    try:
        while writer.poll() is None:
            with Journal.open(jpath) as j:
                counts = j.counts()
                assert sum(counts.values()) == n
                assert counts[RowState.DONE] >= last
                last = counts[RowState.DONE]
                reads += 1
    finally:
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert reads > 0
    with Journal.open(jpath) as j:
        assert j.counts()[RowState.DONE] == n


def test_reader_process_while_this_process_writes(jpath: Path) -> None:
    n = 300
    with make(jpath, n) as j:
        reader = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(READER), str(jpath), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for i in range(1, n + 1):
                j.mark_sending(i)
                j.mark_done(i, reference_order_id=f"RA{i}", created=True, order_status=None)
        finally:
            out, err = reader.communicate(timeout=90)
    assert reader.returncode == 0, err
    reads, last = map(int, out.split())
    assert reads >= 1 and last == n


# --- size ---------------------------------------------------------------------------------


def test_100k_rows_create_in_one_transaction(jpath: Path) -> None:
    n = 100_000
    t0 = time.perf_counter()
    j = Journal.create(
        jpath,
        job_id="big",
        input_path="big.csv",
        input_digest=DIGEST,
        rows=((i, ref(i), body(i)) for i in range(1, n + 1)),
        settings={"order_rate": 1},
    )
    created = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        to_send = j.to_send()
        loaded = time.perf_counter() - t1
        t2 = time.perf_counter()
        streamed = sum(1 for _ in j.rows())
        walked = time.perf_counter() - t2
        t3 = time.perf_counter()
        for i in range(1, 51):
            j.mark_sending(i)
            j.mark_done(i, reference_order_id=f"RA{i}", created=True, order_status=None)
        marked = (time.perf_counter() - t3) / 100
        assert len(to_send) == n and streamed == n
        assert j.counts()[RowState.DONE] == 50
    finally:
        j.close()
    print(
        f"\n100k rows: create {created:.2f} s, to_send {loaded:.2f} s, rows() {walked:.2f} s, "
        f"one committed transition {marked * 1000:.2f} ms, file {jpath.stat().st_size / 1e6:.1f} MB"
    )
    assert created < 30  # generous: measured well under a second on a laptop SSD


def test_discard_unfinished_and_the_job_lock(tmp_path: Path) -> None:
    empty = tmp_path / "empty.journal"
    empty.write_bytes(b"")
    assert Journal.discard_unfinished(empty) is False  # it may record sent orders: kept
    assert empty.exists()
    path = tmp_path / "real.journal"
    Journal.create(
        path, job_id="j1", input_path="in.csv", input_digest="d", rows=[(1, "ref-1", b"{}")]
    ).close()
    assert Journal.discard_unfinished(path) is False
    assert path.exists()
    first, second = Journal.open(path), Journal.open(path)
    first.lock()
    with pytest.raises(JournalError, match="in use by another running job"):
        second.lock()
    first.close()
    second.lock()  # released with the first journal
    second.close()


# --- schema 2: UNKNOWN, back to PENDING, the identity, the upgrade of schema-1 journals -------


def test_unknown_rows_are_resent_first_and_keep_their_answer(journal: Journal) -> None:
    journal.mark_sending(4)
    journal.mark_unknown(4, http_status=201, i18n_key=None, message="answer cut")
    row = journal.get(4)
    assert row.state is RowState.UNKNOWN and row.http_status == 201 and row.retriable
    assert [r.row for r in journal.to_send()] == [4, 1, 2, 3, 5]
    with pytest.raises(JournalError, match="mark_done"):
        journal.mark_done(4, reference_order_id="RA4", created=True, order_status=None)
    assert journal.mark_sending(4).attempt == 2
    journal.mark_done(4, reference_order_id="RA4", created=False, order_status="COMPLETE")
    assert journal.get(4).state is RowState.DONE


def test_mark_pending_puts_a_refused_row_back(journal: Journal) -> None:
    journal.mark_sending(2)
    journal.mark_pending(2, http_status=401, i18n_key="401.001", message="wrong key")
    row = journal.get(2)
    assert row.state is RowState.PENDING and row.http_status == 401 and row.attempt == 1
    with pytest.raises(JournalError):
        journal.mark_pending(2, http_status=None, i18n_key=None, message="again")
    with pytest.raises(JournalError, match="http_status"):
        journal.mark_sending(3)
        journal.mark_unknown(3, http_status=True, i18n_key=None, message="x")  # type: ignore[arg-type]


def test_identity_and_run_label_are_kept(jpath: Path) -> None:
    make(jpath, 2, identity="abc123", run_label="december").close()
    with Journal.open(jpath) as j:
        assert (j.identity, j.run_label, j.ref_scheme) == ("abc123", "december", "content-v1")


def test_a_schema_1_journal_is_upgraded_when_a_job_takes_it(jpath: Path) -> None:
    from .journal_support import downgrade_to_schema_1

    make(jpath, 3).close()
    downgrade_to_schema_1(jpath)
    with Journal.open(jpath) as j:
        assert j.ref_scheme is None and j.identity is None  # 0.1's refs: from the file
        j.mark_sending(1)
        j.lock()
        j.mark_sending(2)
        j.mark_unknown(2, http_status=None, i18n_key=None, message="cut")  # schema 2 now
        assert j.get(1).state is RowState.SENDING and j.get(1).external_ref_id == ref(1)
    db = sqlite3.connect(jpath)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
