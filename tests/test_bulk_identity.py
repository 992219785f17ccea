"""Bulk identity is the row's content (issue 10, points 2, 4 and 5), through the CLI.

The identity tests run ``tango-async`` as its own process against a sandbox in another
process (each command a fresh process, as a user runs them); the failure tests run the
command in-process (CliRunner, ``--sandbox local``) where faults are injected.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import tango_async as ta
from tango_async.bulk._journal import Journal, JournalError, RowState

from .journal_support import downgrade_to_schema_1
from .processes import cli_process, sandbox_process
from .test_cli import invoke

COLUMNS = [
    "customer_identifier",
    "account_identifier",
    "utid",
    "amount",
    "recipient.email",
    "recipient.first_name",
    "recipient.last_name",
    "campaign",
]


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    with sandbox_process(
        "--order-rate",
        "0",
        "--platform-name",
        "identity-platform",
        "--platform-key",
        "identity-key",
    ) as e:
        yield e


def rows_for(customer: str, n: int = 6) -> list[list[str]]:
    rows = [
        [
            customer,
            "acct-12345",
            "U561593",
            f"{i}.00",
            f"p{i}@example.com",
            f"Ann{i}",
            "Lee",
            "spring, 2026",
        ]
        for i in range(1, n + 1)
    ]
    rows.append(list(rows[0]))  # an identical row: a second, distinct order
    return rows


def write(
    path: Path,
    rows: list[list[str]],
    *,
    order: list[int] | None = None,
    lineterminator: str = "\r\n",
    quoting: int = csv.QUOTE_MINIMAL,
    blank_lines: bool = False,
    bom: bool = False,
) -> Path:
    idx = order or list(range(len(COLUMNS)))
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f, lineterminator=lineterminator, quoting=quoting)
        w.writerow([COLUMNS[i] for i in idx])
        for row in rows:
            w.writerow([row[i] for i in idx])
            if blank_lines:
                f.write(lineterminator)
    return path


def run_cli(env: dict[str, str], cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = cli_process(
        ["submit", *map(str, args), "--order-rate", "200", "--progress-interval", "60"], env, cwd
    )
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def _server_orders(env: dict[str, str], customer: str) -> list[ta.Order]:
    async with ta.TangoClient(
        env["TANGO_PLATFORM_NAME"], env["TANGO_PLATFORM_KEY"], base_url=env["TANGO_BASE_URL"]
    ) as tango:
        return [o async for o in tango.orders.list(customer_identifier=customer)]


def server_orders(env: dict[str, str], customer: str) -> list[ta.Order]:
    return asyncio.run(_server_orders(env, customer))


def customer() -> str:
    return "c" + uuid.uuid4().hex[:12]


def test_resaved_files_change_no_ref(env: dict[str, str], tmp_path: Path) -> None:
    who = customer()
    rows = rows_for(who)
    first = write(tmp_path / "a.csv", rows)
    done = run_cli(env, tmp_path, first)
    assert done.returncode == 0, done.stderr
    refs = [r["externalRefID"] for r in report(tmp_path / "a.results.csv")]
    assert len(set(refs)) == 7  # the identical row has its own order
    assert len(server_orders(env, who)) == 7
    variants = {
        "lf.csv": {"lineterminator": "\n"},
        "cols.csv": {"order": [7, 6, 5, 4, 3, 2, 1, 0]},
        "quoted.csv": {"quoting": csv.QUOTE_ALL},
        "blank.csv": {"blank_lines": True},
        "bom.csv": {"bom": True},
    }
    for name, how in variants.items():
        path = write(tmp_path / name, rows, **how)
        again = run_cli(env, tmp_path, path)
        assert again.returncode == 0, (name, again.stderr)
        got = report(tmp_path / name.replace(".csv", ".results.csv"))
        assert [r["externalRefID"] for r in got] == refs, name
        assert {r["outcome"] for r in got} == {"existing"}, name
        assert "had been ordered before" in again.stdout and "--run-label" in again.stdout
    # the same content as JSON Lines: the same refs too
    jsonl = tmp_path / "same.jsonl"
    with jsonl.open("w") as f:
        for r in rows:
            f.write(
                json.dumps(
                    {
                        "customerIdentifier": r[0],
                        "accountIdentifier": r[1],
                        "utid": r[2],
                        "amount": int(float(r[3])),
                        "recipient": {"email": r[4], "firstName": r[5], "lastName": r[6]},
                        "campaign": r[7],
                    }
                )
                + "\n"
            )
    again = run_cli(env, tmp_path, jsonl)
    assert again.returncode == 0, again.stderr
    assert [r["externalRefID"] for r in report(tmp_path / "same.results.csv")] == refs
    assert len(server_orders(env, who)) == 7


def test_a_corrected_row_is_the_only_one_sent(env: dict[str, str], tmp_path: Path) -> None:
    who = customer()
    rows = rows_for(who, 5)
    assert run_cli(env, tmp_path, write(tmp_path / "a.csv", rows)).returncode == 0
    rows[2][5] = "Annie"  # one name corrected
    fixed = write(tmp_path / "a.csv", rows)
    # the old journal is refused, and the message never advises paying twice
    refused = run_cli(env, tmp_path, fixed)
    assert refused.returncode == 2
    err = " ".join(refused.stderr.split())
    assert "holds other orders than" in err
    assert "1 row(s) of the file are new or changed" in err
    assert "a corrected version of such a row is a NEW order" in err
    assert "not paid again" in err
    # following its advice: a new journal sends only the corrected row
    done = run_cli(env, tmp_path, fixed, "--journal", tmp_path / "fixed.journal")
    assert done.returncode == 0, done.stderr
    outcomes = [r["outcome"] for r in report(tmp_path / "a.results.csv")]
    assert outcomes == ["existing", "existing", "created", "existing", "existing", "existing"]
    assert len(server_orders(env, who)) == 7  # 6 + the corrected one


def test_identical_file_again_says_so_and_run_labels(env: dict[str, str], tmp_path: Path) -> None:
    who = customer()
    file = write(tmp_path / "r.csv", rows_for(who, 3))
    assert run_cli(env, tmp_path, file).returncode == 0
    again = run_cli(env, tmp_path, file)
    assert again.returncode == 0, again.stderr
    out = " ".join(again.stdout.split())
    assert "nothing to send" in out and "4 done" in out and "no run label" in out
    assert f"tango-async submit {file} --run-label LABEL" in out
    assert len(server_orders(env, who)) == 4
    # on purpose: the same rewards again, as new orders
    labelled = run_cli(env, tmp_path, file, "--run-label", "december-2")
    assert labelled.returncode == 0, labelled.stderr
    assert "4 row(s): 4 created" in labelled.stdout
    assert (tmp_path / "r.csv.december-2.journal").exists()
    assert len(server_orders(env, who)) == 8
    # the same label twice is idempotent again, whatever the journal
    twice = run_cli(env, tmp_path, file, "--run-label", "december-2")
    assert "nothing to send" in twice.stdout and "run label december-2" in twice.stdout
    other = run_cli(
        env, tmp_path, file, "--run-label", "december-2", "--journal", tmp_path / "other.journal"
    )
    assert other.returncode == 0 and "4 row(s): 4 existing" in other.stdout
    assert len(server_orders(env, who)) == 8
    bad = run_cli(env, tmp_path, file, "--run-label", "no spaces!")
    assert bad.returncode == 2 and "--run-label" in bad.stderr


def test_dry_run_sends_nothing_and_makes_no_journal(env: dict[str, str], tmp_path: Path) -> None:
    who = customer()
    file = write(tmp_path / "d.csv", rows_for(who, 3))
    dry = run_cli(env, tmp_path, file, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 4 order(s)" in dry.stdout and "nothing sent" in dry.stdout
    assert re.search(r"row 2: externalRefID tb[0-9a-f]{40}", dry.stdout)  # line 2
    assert not (tmp_path / "d.csv.journal").exists()
    assert server_orders(env, who) == []


def test_old_scheme_journal_is_upgraded_or_refused(env: dict[str, str], tmp_path: Path) -> None:
    """A journal of 0.1 (schema 1, refs from the file's bytes): the same file resumes it
    with its old refs; an edited file is refused without advice that would pay twice."""
    who = customer()
    file = write(tmp_path / "o.csv", rows_for(who, 3))
    journal = tmp_path / "o.csv.journal"
    old_refs = make_v1_journal(journal, file)
    done = run_cli(env, tmp_path, file)
    assert done.returncode == 0, done.stderr
    assert "resuming its job" in done.stderr
    resumed = report(tmp_path / "o.results.csv")
    assert sorted(r["externalRefID"] for r in resumed) == sorted(old_refs)
    with Journal.open(journal) as j:
        assert j.counts()[RowState.DONE] == 4
        assert sqlite3.connect(journal).execute("PRAGMA user_version").fetchone()[0] == 3
    edited = write(tmp_path / "o.csv", rows_for(who, 4))
    refused = run_cli(env, tmp_path, edited)
    assert refused.returncode == 2
    err = " ".join(refused.stderr.split())
    assert "written by tango-async 0.1" in err and "pay them again" in err
    assert len(server_orders(env, who)) == 4


def make_v1_journal(path: Path, file: Path) -> list[str]:
    """A journal as tango-async 0.1 wrote it: user_version 1, no UNKNOWN state, no identity,
    refs ``tj<digest>r<row>``, every row still PENDING."""
    from tango_async.bulk._inputs import file_digest, read_orders
    from tango_async.resources.orders import encode_order

    digest = file_digest(file)
    job_id = "tj" + digest[:12]
    rows = []
    for item in read_orders(file):
        assert item.request is not None
        ref, body = encode_order(item.request, f"{job_id}r{item.row}")
        rows.append((item.row, ref, body))
    Journal.create(
        path, job_id=job_id, input_path=str(file.absolute()), input_digest=digest, rows=rows
    ).close()
    downgrade_to_schema_1(path)
    return [r[1] for r in rows]


def test_wrong_key_stops_at_once_and_resume_continues(env: dict[str, str], tmp_path: Path) -> None:
    who = customer()
    file = write(tmp_path / "k.csv", rows_for(who, 29))  # 30 rows
    wrong = {**env, "TANGO_PLATFORM_KEY": "not-the-key"}
    proc = cli_process(
        ["submit", str(file), "--order-rate", "5", "--concurrency", "2"], wrong, tmp_path
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    text = " ".join(out.split())
    assert "stopped: the API refused the credentials (401)" in text
    assert "Nothing more was sent" in text and "30 pending" in text
    assert "tango-async resume" in text
    with Journal.open(tmp_path / "k.csv.journal") as j:
        rows = list(j.rows())
        assert {r.state for r in rows} == {RowState.PENDING}
        assert sum(r.attempt for r in rows) <= 2  # the first answer, and one in flight
    proc = cli_process(["resume", str(tmp_path / "k.csv.journal")], env, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "30 row(s): 30 created" in out
    assert len(server_orders(env, who)) == 30


# --- journal and report errors are loud (in-process: faults are injected) --------------------


def local_submit(file: Path, *extra: str | Path) -> Result:
    return invoke("--sandbox", "local", "submit", file, "--order-rate", "100", *extra)


def test_journal_write_failure_stops_loudly_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path / "j.csv", rows_for(customer(), 11))  # 12 rows
    real = Journal.mark_done
    calls = {"n": 0}

    def full_disk(self: Journal, row: int, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise JournalError(
                f"cannot record mark_done of row {row} in journal {self.path}: "
                "database or disk is full"
            )
        real(self, row, **kw)

    monkeypatch.setattr(Journal, "mark_done", full_disk)
    result = local_submit(file, "--concurrency", "1")
    assert result.exit_code == 2, result.output
    assert "database or disk is full" in result.stderr
    assert str(tmp_path / "j.csv.journal") in result.stderr
    assert "resume re-sends row" in result.stderr and "never ordered twice" in result.stderr
    with Journal.open(tmp_path / "j.csv.journal") as j:
        counts = j.counts()
    assert counts[RowState.DONE] == 3 and counts[RowState.SENDING] == 1  # nothing lost
    assert counts[RowState.PENDING] == 8  # and nothing more sent


def test_read_only_journal_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write(tmp_path / "ro.csv", rows_for(customer(), 3))

    def read_only(self: Journal, row: int) -> None:
        raise JournalError(
            f"cannot record mark_sending of row {row} in journal {self.path}: "
            "attempt to write a readonly database"
        )

    monkeypatch.setattr(Journal, "mark_sending", read_only)
    result = local_submit(file)
    assert result.exit_code == 2, result.output
    assert "readonly database" in result.stderr
    assert "0 created" not in result.stdout  # no order was made
    with Journal.open(tmp_path / "ro.csv.journal") as j:
        assert j.counts()[RowState.PENDING] == 4


def test_report_on_a_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    file = write(tmp_path / "f.csv", rows_for(customer(), 2))
    result = local_submit(file, "--report", "/dev/full")
    assert result.exit_code == 2, result.output
    assert "cannot write the report /dev/full" in result.stderr
    assert "No space left on device" in result.stderr
    assert "keeps every row's state" in result.stderr
    assert "3 row(s): 3 created" in result.stdout  # the summary still comes
    with Journal.open(tmp_path / "f.csv.journal") as j:
        assert j.counts()[RowState.DONE] == 3


def test_unwritable_lock_file_is_a_journal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path / "l.csv", rows_for(customer(), 1))
    import builtins

    real_open = builtins.open

    def no_lock(path: Any, *a: Any, **kw: Any) -> Any:
        if str(path).endswith(".journal.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", no_lock)
    result = local_submit(file)
    assert result.exit_code == 2, result.output
    assert "lock file" in result.stderr and "Permission denied" in result.stderr
