"""Issue 12, point 7: journals are never deleted or misread under a race.

A journal being created is locked from its first byte (and is never at its path before it
is complete); a second creator, a resumer, ``discard_unfinished`` or ``status`` that finds it
locked gets a JournalError and changes nothing. A journal that is empty, truncated or
malformed is a JournalDamagedError (exit 2 in the CLI) that says what could be recovered,
never "nothing was sent", and nothing deletes it.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tango_async as ta
from tango_async.bulk import BulkJob
from tango_async.bulk._journal import (
    Journal,
    JournalDamagedError,
    JournalError,
    JournalRow,
    RowState,
)

from .test_cli import invoke

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs flock and SIGKILL")

HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"
WAIT = 60.0  # a bounded wait for another thread or process, never a sleep

PROPERTY = settings(
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    deadline=None,
    print_blob=False,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def write_csv(path: Path, n: int) -> Path:
    rows = [
        f"cust-12345,acct-12345,U561593,{i % 50 + 1}.00,person{i}@example.com,Ann"
        for i in range(1, n + 1)
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def submit(file: Path, *extra: str | Path) -> Result:
    return invoke("--sandbox", "local", "submit", file, "--order-rate", "100", *extra)


def body(n: int) -> bytes:
    return b'{"utid":"U561593","amount":10.00,"externalRefID":"tb-%06d"}' % n


def make(path: Path, n: int = 8, rows: Any = None) -> Journal:
    return Journal.create(
        path,
        job_id="tj1",
        input_path="orders.csv",
        input_digest="sha256:" + "ab" * 32,
        rows=rows if rows is not None else [(i, f"tb-{i:06d}", body(i)) for i in range(1, n + 1)],
        invalid=[(n + 1, "amount: must be > 0")],
        settings={"order_rate": 1.0},
        identity="id1",
    )


def sent_journal(path: Path) -> list[JournalRow]:
    """A closed journal of 8 rows + 1 invalid, 4 of them sent: DONE, DONE, FAILED, UNKNOWN,
    one SENDING (in flight), the rest PENDING; its rows as committed."""
    with make(path) as j:
        for i in (1, 2, 3, 4, 5):
            j.mark_sending(i)
        j.mark_done(1, reference_order_id="RA-1", created=True, order_status="COMPLETE")
        j.mark_done(2, reference_order_id="RA-2", created=False, order_status="COMPLETE")
        j.mark_failed(3, http_status=400, i18n_key="x", message="bad utid", retriable=False)
        j.mark_unknown(4, http_status=None, i18n_key=None, message="answer cut")
        return list(j.rows())


def snapshot(j: Journal) -> tuple[Any, ...]:
    return (
        j.job_id,
        j.input_path,
        j.input_digest,
        j.settings,
        j.created_at,
        j.identity,
        j.run_label,
        j.ref_scheme,
        list(j.rows()),
        j.counts(),
        j.to_send(),
    )


def assert_damaged_well(err: JournalDamagedError, expected: list[JournalRow]) -> None:
    """A damaged-journal error never says "nothing was sent", and what it recovered is true."""
    assert "nothing was sent" not in str(err).lower()
    assert "damaged" in str(err)
    by_row = {r.row: r for r in expected}
    for row in err.rows:  # rows read intact are exactly as committed
        assert by_row.get(row.row) == row, row


class PausedCreate:
    """Journal.create in a thread, paused (a rows generator waiting on an event) after
    ``pause_at`` rows: the journal is half-written, in its build file."""

    def __init__(self, path: Path, n: int, pause_at: int) -> None:
        self.paused, self.go = threading.Event(), threading.Event()
        self.result: Journal | BaseException | None = None

        def rows() -> Iterator[tuple[int, str, bytes]]:
            for i in range(1, n + 1):
                if i == pause_at:
                    self.paused.set()
                    assert self.go.wait(WAIT)
                yield i, f"tb-{i:06d}", body(i)

        def run() -> None:
            try:
                self.result = make(path, n, rows=rows())
            except BaseException as e:  # reported by finish()
                self.result = e

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.paused.wait(WAIT)

    def finish(self) -> Journal:
        self.go.set()
        self.thread.join(WAIT)
        assert isinstance(self.result, Journal), self.result
        return self.result


# --- locked from the first byte ----------------------------------------------------------------


@posix_only
def test_everyone_else_is_refused_while_a_journal_is_being_created(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv.journal"
    creating = PausedCreate(path, 3000, pause_at=2000)
    try:
        assert not path.exists()  # half a journal is never at the journal's path
        assert path.with_name(path.name + ".creating").exists()
        with pytest.raises(JournalError, match="being created by another process"):
            make(path)
        assert Journal.discard_unfinished(path) is False  # locked: touches nothing
        with pytest.raises(JournalError, match="being created by another process"):
            Journal.open(path)
        assert path.with_name(path.name + ".creating").exists()
    finally:
        journal = creating.finish()
    with journal:
        assert journal.counts()[RowState.PENDING] == 3000
        with pytest.raises(JournalError, match="in use by another running job"):
            Journal.open(path).lock()  # the lock went on to the job
    assert not path.with_name(path.name + ".creating").exists()
    with Journal.open(path) as again:
        again.lock()  # released with the creator's journal
        assert again.counts()[RowState.PENDING] == 3000


CREATOR = """
    import os, sys
    from tango_async.bulk import _journal
    from tango_async.bulk._inputs import file_digest, read_orders
    from tango_async.bulk._job import plan_rows

    path, file, pause_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real = _journal._check_row_number

    def hook(number, seen):  # the first submit, paused while it writes its journal
        if len(seen) == pause_at:
            print("paused", flush=True)
            if sys.stdin.readline() != "go\\n":
                os._exit(3)
        real(number, seen)

    _journal._check_row_number = hook
    plan = plan_rows(read_orders(file))
    j = _journal.Journal.create(
        path, job_id=plan.job_id, input_path=file, input_digest=file_digest(file),
        rows=plan.rows, identity=plan.identity, settings={"order_rate": 100},
    )
    for number, ref, _ in plan.rows[:10]:  # ten orders sent
        j.mark_sending(number)
        j.mark_done(number, reference_order_id=f"RA{number}", created=True, order_status=None)
    j.close()
    print("done", flush=True)
"""


def start_creator(path: Path, file: Path, pause_at: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CREATOR), str(path), str(file), str(pause_at)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], WAIT)
    assert ready and child.stdout.readline() == "paused\n", child.stderr
    return child


@posix_only
def test_repro_second_submit_while_the_first_creates_its_journal(tmp_path: Path) -> None:
    """Issue 12's reproduction: a second ``submit`` of the file whose first ``submit`` was
    still creating its 60k-row journal deleted that journal (discard_unfinished)."""
    file = write_csv(tmp_path / "orders.csv", 60_000)
    path = tmp_path / "orders.csv.journal"
    first = start_creator(path, file, pause_at=30_000)
    try:
        second = submit(file)
        assert second.exit_code == 2, second.output
        assert "being created by another process" in second.stderr
        assert "created" not in second.stdout  # no order, no summary
        for command in ("status", "resume"):  # no journal there yet: it is being created
            refused = invoke("--sandbox", "local", command, path)
            assert refused.exit_code == 2, refused.output
            assert "being created by another process" in refused.stderr
        assert first.poll() is None  # the first submit is still at work, undisturbed
        out, err = first.communicate("go\n", timeout=WAIT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0 and out == "done\n", err
    with Journal.open(path) as j:  # whole: every row, the ten sent ones recorded
        counts = j.counts()
    assert counts[RowState.DONE] == 10 and counts[RowState.PENDING] == 59_990


@posix_only
def test_a_creator_killed_mid_way_leaves_no_journal_and_the_next_starts_over(
    tmp_path: Path,
) -> None:
    file = write_csv(tmp_path / "orders.csv", 30)
    path = tmp_path / "orders.csv.journal"
    child = start_creator(path, file, pause_at=20)
    child.send_signal(signal.SIGKILL)
    child.wait(WAIT)
    build = path.with_name(path.name + ".creating")
    assert not path.exists() and build.exists()
    with pytest.raises(JournalError, match="being created by another process, or its creation"):
        Journal.open(path)
    done = submit(file)  # nothing was ever sent from the build file: it starts over
    assert done.exit_code == 0, done.stderr
    assert "creation never finished" in done.stderr
    assert not build.exists()
    with Journal.open(path) as j:
        assert j.counts()[RowState.DONE] == 30


@posix_only
def test_discard_unfinished_removes_only_an_unlocked_build(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    build = path.with_name(path.name + ".creating")
    build.write_bytes(b"SQLite format 3\x00half")
    assert Journal.discard_unfinished(path) is True and not build.exists()
    sent_journal(path)
    shutil.copy(path, build)  # a build file in WAL mode was used as a journal: kept
    with pytest.raises(JournalError, match="looks like a journal that was used"):
        Journal.discard_unfinished(path)
    assert build.exists()
    os.link(path, tmp_path / "x")
    build.unlink()
    os.link(path, build)  # killed between linking the journal in and removing its build name
    assert Journal.discard_unfinished(path) is True
    assert path.exists() and not build.exists()
    with Journal.open(path) as j:
        assert j.counts()[RowState.DONE] == 2


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\x00" + b"\x00" * 84, b"garbage"])
def test_discard_unfinished_never_deletes_the_journal(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "j.journal"
    path.write_bytes(content)
    assert Journal.discard_unfinished(path) is False
    assert path.read_bytes() == content


def test_a_resume_while_the_job_runs_is_refused_and_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    sent_journal(path)
    running = Journal.open(path)
    running.lock()  # the job of another process

    async def resume() -> None:
        async with ta.TangoClient(
            platform_name="p", platform_key="k", base_url="http://127.0.0.1:9/raas/v2"
        ) as client:
            with (
                Journal.open(path) as second,  # reading is fine while the job runs
                pytest.raises(JournalError, match="in use by another running job"),
            ):
                BulkJob.resume(client, second)

    try:
        asyncio.run(resume())
        assert invoke("status", path).exit_code == 0  # status: safe while it runs
        report = tmp_path / "r.csv"
        refused = invoke("--sandbox", "local", "resume", path, "--report", report)
        assert refused.exit_code == 2 and "in use by another running job" in refused.stderr
        assert not report.exists()  # touched nothing
        assert running.counts()[RowState.PENDING] == 3
    finally:
        running.close()


# --- damaged journals ----------------------------------------------------------------------------


def test_repro_a_journal_truncated_to_zero_bytes_after_ten_orders(tmp_path: Path) -> None:
    """Issue 12's reproduction: a journal truncated to 0 bytes was reported as "creation
    never finished (nothing was sent)" although 10 orders had been sent."""
    file = write_csv(tmp_path / "orders.csv", 10)
    assert submit(file).exit_code == 0
    path = tmp_path / "orders.csv.journal"
    path.write_bytes(b"")
    for result in (submit(file), invoke("status", path), invoke("resume", path)):
        assert result.exit_code == 2, result.output
        err = " ".join(result.stderr.split())
        assert "is damaged: it is empty" in err, err
        assert "nothing was sent" not in err and "never finished" not in err
        assert "NEW journal" in err
    assert path.exists() and path.read_bytes() == b""


KILLED = """
    import os, signal, sys
    from tango_async.bulk._journal import Journal
    rows = [(i, f"tb-{i:06d}", b'{"externalRefID":"tb-%06d"}' % i) for i in range(1, 21)]
    j = Journal.create(sys.argv[1], job_id="tj1", input_path="in.csv", input_digest="d",
                       rows=rows)
    for i in range(1, 11):
        j.mark_sending(i)
        j.mark_done(i, reference_order_id=f"RA{i}", created=True, order_status=None)
    os.kill(os.getpid(), signal.SIGKILL)  # the sends are in the -wal, not checkpointed
"""


@posix_only
def test_an_empty_journal_with_a_wal_keeps_its_wal_and_names_its_refs(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    wal = path.with_name(path.name + "-wal")
    saved = wal.read_bytes()
    assert saved
    path.write_bytes(b"")
    with pytest.raises(JournalDamagedError, match="is damaged: it is empty") as caught:
        Journal.open(path)  # SQLite itself would delete the -wal of an empty database
    assert wal.read_bytes() == saved
    assert {f"tb-{i:06d}" for i in range(1, 11)} <= caught.value.external_ref_ids
    assert Journal.discard_unfinished(path) is False and path.exists()


def test_truncation_at_every_byte_is_damage(tmp_path: Path) -> None:
    source = tmp_path / "whole.journal"
    expected = sent_journal(source)
    data = source.read_bytes()
    path = tmp_path / "cut.journal"
    path.write_bytes(data)
    reached_sqlite = 0
    for size in reversed(range(len(data))):  # every byte offset, cut in place
        os.truncate(path, size)
        with pytest.raises(JournalDamagedError) as caught:
            Journal.open(path)
        assert_damaged_well(caught.value, expected)
        assert path.stat().st_size == size  # never deleted, never written
        reached_sqlite += size % 4096 == 0 and size > 0
    assert reached_sqlite >= 1  # whole pages cut off: caught by the header's page count
    path.write_bytes(data)
    with Journal.open(path) as j:
        assert list(j.rows()) == expected


@posix_only
def test_truncating_the_file_of_a_journal_left_with_a_wal(tmp_path: Path) -> None:
    """After kill -9 the last transactions are in the -wal: cutting the main file short
    is damage too, or (the cut pages are all in the -wal) a correct load."""
    source = tmp_path / "k.journal"
    subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED), str(source)], timeout=WAIT)
    data = source.read_bytes()
    wal = source.with_name(source.name + "-wal").read_bytes()
    page = 4096
    for size in range(0, len(data), page // 8):
        path = tmp_path / f"cut{size}.journal"
        path.write_bytes(data[:size])
        path.with_name(path.name + "-wal").write_bytes(wal)
        try:
            with Journal.open(path) as j:
                counts = j.counts()
            assert counts[RowState.DONE] == 10 and counts[RowState.PENDING] == 10
        except JournalDamagedError as e:
            assert "nothing was sent" not in str(e)
            assert path.exists()


CORRUPTIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20), st.integers(1, 255)),
    st.tuples(st.just("header"), st.integers(0, 99), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 2**20), st.just(0)),
    st.tuples(st.just("zero"), st.integers(0, 2**20), st.integers(1, 4096)),
    st.tuples(st.just("swap"), st.integers(0, 2**20), st.integers(0, 2**20)),
    st.tuples(st.just("page-swap"), st.integers(0, 64), st.integers(0, 64)),
)


def corrupt(data: bytes, how: tuple[str, int, int]) -> bytes:
    kind, a, b = how
    out = bytearray(data)
    n = len(out)
    if n < {"swap": 64, "page-swap": 4096}.get(kind, 1):
        return data  # nothing left to corrupt that way
    if kind in ("flip", "header"):
        out[a % n] ^= b
    elif kind == "truncate":
        del out[a % n :]
    elif kind == "zero":
        start = a % n
        out[start : start + b] = bytes(len(out[start : start + b]))
    elif kind == "swap":  # two lines of 64 bytes change places
        x, y = (a % (n // 64)) * 64, (b % (n // 64)) * 64
        out[x : x + 64], out[y : y + 64] = data[y : y + 64], data[x : x + 64]
    else:  # two pages change places
        pages = n // 4096
        x, y = (a % pages) * 4096, (b % pages) * 4096
        out[x : x + 4096], out[y : y + 4096] = data[y : y + 4096], data[x : x + 4096]
    return bytes(out)


class Whole:
    """A closed journal's bytes and what it reads as (a short repr for Hypothesis)."""

    def __init__(self, data: bytes, expected: tuple[Any, ...]) -> None:
        self.data, self.expected = data, expected

    def __repr__(self) -> str:
        return f"<journal of {len(self.data)} bytes>"


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Whole:
    path = tmp_path_factory.mktemp("whole") / "whole.journal"
    sent_journal(path)
    with Journal.open(path) as j:
        expected = snapshot(j)
    return Whole(path.read_bytes(), expected)


@given(hows=st.lists(CORRUPTIONS, min_size=1, max_size=3))
@PROPERTY
def test_any_corruption_is_a_correct_load_or_damage(
    hows: list[tuple[str, int, int]],
    whole: Whole,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data, expected = whole.data, whole.expected
    bad = data
    for how in hows:
        bad = corrupt(bad, how)
    path = tmp_path_factory.mktemp("bad") / "bad.journal"
    path.write_bytes(bad)
    try:
        with Journal.open(path) as j:
            got = snapshot(j)
    except JournalDamagedError as e:
        assert_damaged_well(e, expected[8])
        assert path.read_bytes() == bad  # left as it is
    except JournalError as e:  # refused, never misread: a "newer schema" header, or no
        # trace of a journal is left (header, schema and order JSON all overwritten)
        trace = b"external_ref_id    TEXT UNIQUE" in bad or b'"externalRefID":"' in bad
        assert "newer tango_async" in str(e) or ("not a journal" in str(e) and not trace), e
        assert path.read_bytes() == bad
    else:
        assert got == expected
    assert Journal.discard_unfinished(path) is False and path.exists()


def test_edited_rows_meta_and_schema_are_damage(tmp_path: Path) -> None:
    """Edits through SQLite itself (a valid file, changed values) fail their checksums."""
    import sqlite3

    source = tmp_path / "whole.journal"
    expected = sent_journal(source)
    edits = [
        "UPDATE rows SET state = 'PENDING' WHERE row = 5",  # SENDING -> PENDING: looks unsent
        "UPDATE rows SET reference_order_id = 'RA-9' WHERE row = 1",
        "DELETE FROM rows WHERE row = 2",
        "UPDATE meta SET value = 'other.csv' WHERE key = 'input_path'",
        "DELETE FROM meta WHERE key = 'digest'",
        "PRAGMA user_version = 2",
        "PRAGMA application_id = 0",
        "DROP INDEX rows_state",
    ]
    for i, edit in enumerate(edits):
        path = tmp_path / f"e{i}.journal"
        shutil.copy(source, path)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(edit)
        db.close()
        if edit.startswith("DROP INDEX"):
            with Journal.open(path) as j:  # not damage: the rows are whole, still read right
                assert list(j.rows()) == expected
            continue
        with pytest.raises(JournalDamagedError) as caught:
            Journal.open(path)
        assert_damaged_well(caught.value, expected)
        if "row = 5" in edit or "row = 1" in edit:
            assert len(caught.value.rows) == len(expected) - 1  # the others are recovered
            assert {r.row for r in caught.value.sent} >= {2, 3, 4} - {1}


def test_damaged_error_lists_what_was_sent(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    expected = sent_journal(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"answer cut")  # row 4's message: its checksum breaks
    data[at] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(JournalDamagedError, match="do not match their checksum") as caught:
        Journal.open(path)
    err = caught.value
    assert_damaged_well(err, expected)
    assert {r.row for r in err.sent} == {1, 2, 3, 5}  # row 4 is unreadable
    assert "tb-000004" in err.external_ref_ids  # but its externalRefID is in the bytes
    text = str(err)
    assert "row 1 tb-000001 = RA-1" in text and "row 5 tb-000005 SENDING" in text
    assert "2 ordered" in text
    assert isinstance(err, ta.TangoError)


def test_a_schema_only_a_writer_parses_is_damage(tmp_path: Path) -> None:
    """Found by fuzzing: a flipped byte in a CHECK constraint reads fine read-only (SQLite
    skips CHECKs there) but not read-write, and SQLite's error message is not UTF-8: a
    UnicodeDecodeError escaped. It is damage."""
    path = tmp_path / "j.journal"
    expected = sent_journal(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"CHECK (state != 'DONE'") + len(b"CHECK (s")
    data[at] ^= 0xFF  # "state" -> "s\x8bate"
    path.write_bytes(bytes(data))
    with pytest.raises(JournalDamagedError, match=r"not UTF-8|cannot read it") as caught:
        Journal.open(path)
    assert_damaged_well(caught.value, expected)
    assert path.read_bytes() == bytes(data)
