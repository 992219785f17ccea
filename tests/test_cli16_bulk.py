"""Issue 16, point 3, the bulk commands: ``status`` tells a running job (pid, host, rate,
progress, ETA) from an interrupted one (the resume command); ``resume`` of a running job
is one line and exit 2; every bad field of every row, by file line; every summary names
the journal and the report; RFC 3339 times and plain amounts; every usage or input error
one line and exit 2, never a traceback (Ctrl-C: one line, exit 130). Each test first
reproduced what the issue (or a careless user) found."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import shutil
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tango_async.bulk import _inputs
from tango_async.bulk._inputs import read_orders
from tango_async.bulk._job import plan_rows
from tango_async.bulk._journal import Journal
from tango_async.cli import _bulk
from tango_async.cli._app import cli

ROOT = Path(__file__).resolve().parent.parent
HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def good_row(n: int) -> str:
    return f"cust-12345,acct-12345,U561593,{n}.00,person{n}@example.com,Ann"


def write_csv(tmp_path: Path, *rows: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def submit(file: Path, *extra: str | Path) -> Result:
    return invoke("--sandbox", "local", "submit", file, "--order-rate", "50", *extra)


def one_line_error(result: Result, code: int = 2, *needles: str) -> str:
    """The command failed with ``code`` and one line on stderr holding every needle."""
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- status: running or interrupted -----------------------------------------------------


def test_status_of_a_running_job_shows_pid_rate_progress_and_eta(tmp_path: Path) -> None:
    """Before: status suggested ``resume`` (which then failed: "in use by another running
    job") and did not say the job was running."""
    file = write_csv(tmp_path, *(good_row(i) for i in range(1, 6)))
    assert submit(file, "--dry-run").exit_code == 0
    path = tmp_path / "orders.csv.journal"
    plan = plan_rows(read_orders(file))
    running = Journal.create(  # holds the lock, as a running job does
        path,
        job_id=plan.job_id,
        input_path=str(file),
        input_digest="d",
        rows=plan.rows,
        identity=plan.identity,
        settings={"order_rate": 1.0},
    )
    try:
        for row in (2, 3):
            running.mark_sending(row)
            running.mark_done(row, reference_order_id=f"RA-{row}", created=True, order_status="X")
        status = invoke("status", path)
        assert status.exit_code == 0, status.output
        out = status.stdout
        host = socket.gethostname()
        assert re.search(
            rf"^running now \(pid {os.getpid()} on {re.escape(host)}, since ", out, re.M
        )
        assert re.search(r"^progress: 2 of 5 row\(s\) settled \(2 done\), 3 left; ", out, re.M)
        assert re.search(r"\d+\.\d\d orders/s over the last \d+ s; ETA \d", out)
        assert f"kill {os.getpid()}" in out
        assert "resume" not in out.replace("then resume it", "").replace("Do not resume", "")
        assert "not finished" not in out

        again = invoke("--sandbox", "local", "resume", path)
        line = one_line_error(again, 2, "in use by another running job", f"pid {os.getpid()}")
        assert line.startswith("error: journal ") and "tango-async status" in line
        assert "local sandbox" not in again.output  # refused before connecting
        also = submit(file)  # the same orders: submit would resume it
        assert also.exit_code == 2 and f"pid {os.getpid()}" in also.stderr
        assert "resuming its job" not in also.stderr
    finally:
        running.close()
    after = invoke("status", path)
    assert "running now" not in after.stdout
    assert re.search(
        r"^not running: interrupted or stopped .*\(last run: pid \d+", after.stdout, re.M
    )
    assert f"not finished: tango-async resume {path}" in after.stdout


def test_a_killed_job_is_not_running_and_status_gives_the_resume(tmp_path: Path) -> None:
    import subprocess
    import sys

    file = write_csv(tmp_path, good_row(1), good_row(2))
    path = tmp_path / "orders.csv.journal"
    Journal.create(
        path, job_id="tj1", input_path=str(file), input_digest="d", rows=[(2, "r2", b"{}")]
    ).close()
    code = (
        "import os, sys; from tango_async.bulk._journal import Journal\n"
        "j = Journal.open(sys.argv[1]); j.lock(); print(os.getpid(), flush=True); os._exit(9)\n"
    )
    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    pid = int(child.stdout)
    status = invoke("status", path)
    assert status.exit_code == 0
    assert "running now" not in status.stdout  # its record stays; the lock says it is gone
    assert f"(last run: pid {pid} on" in status.stdout
    assert f"not finished: tango-async resume {path}" in status.stdout


# --- the summary names the journal and the report ---------------------------------------


def test_the_readme_command_twice_names_the_journal_each_time(tmp_path: Path) -> None:
    """Before: the second run sent nothing (right) but never said where its journal was;
    the first run's summary named only the report."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "tango-async --sandbox local submit examples/orders.csv" in readme
    file = tmp_path / "orders.csv"
    shutil.copy(ROOT / "examples" / "orders.csv", file)
    journal, report = tmp_path / "orders.csv.journal", tmp_path / "orders.results.csv"

    first = submit(file)
    assert first.exit_code == 0, first.output
    assert f"journal: {journal}" in first.stdout and f"report: {report}" in first.stdout

    report.unlink()  # gone: the second run writes it again from the journal
    second = submit(file)
    assert second.exit_code == 0, second.output
    (head, *_) = second.stdout.splitlines()
    assert head.startswith("nothing to send: all 25 row(s) of ")
    assert f"already settled in journal {journal} (25 done); report {report}; nothing sent" in head
    assert re.search(rf"started {RFC3339} settled them", second.stdout)
    assert "local sandbox" not in second.stderr  # nothing sent, not even connected
    with report.open(newline="", encoding="utf-8") as f:
        assert {r["outcome"] for r in csv.DictReader(f)} == {"created"}


def test_resume_and_reconcile_summaries_name_the_journal_and_report(tmp_path: Path) -> None:
    file = write_csv(tmp_path, good_row(1), good_row(2))
    journal = tmp_path / "orders.csv.journal"
    assert submit(file).exit_code == 0
    resumed = invoke("--sandbox", "local", "resume", journal, "--report", tmp_path / "r.csv")
    assert resumed.exit_code == 0, resumed.output
    assert f"journal: {journal}" in resumed.stdout
    assert f"report: {tmp_path / 'r.csv'}" in resumed.stdout
    reconciled = invoke("--sandbox", "local", "reconcile", journal)
    assert f"journal {journal}" in reconciled.stdout
    assert f"report: {tmp_path / 'orders.csv.reconciled.csv'}" in reconciled.stdout


def test_status_times_are_rfc3339(tmp_path: Path) -> None:
    file = write_csv(tmp_path, good_row(1))
    assert submit(file).exit_code == 0
    out = invoke("status", tmp_path / "orders.csv.journal").stdout
    assert re.search(rf"^started {RFC3339}, 1 row\(s\)$", out, re.M)
    assert re.search(rf"^balance check {RFC3339}: ", out, re.M)
    assert re.search(rf"^finished: not running \(last activity {RFC3339}\)$", out, re.M)
    assert "UTC" not in out and "+00:00" not in out


def test_bulk_json_lines_write_plain_numbers_and_z_times() -> None:
    from datetime import UTC, datetime, timedelta, timezone
    from decimal import Decimal

    from tango_async.bulk._format import format_amount, format_time, json_line

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(when) == "2026-01-02T01:04:05Z"
    assert format_time(when.replace(microsecond=5), seconds=True) == "2026-01-02T01:04:05Z"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 250000)) == "2026-01-02T03:04:05.250000Z"
    assert format_amount(Decimal("1E+3")) == "1000" and format_amount(Decimal("10.50")) == "10.50"
    line = json_line(
        {"amount": Decimal("1E+3"), "fee": Decimal("0.50"), "at": when.astimezone(UTC)}
    )
    assert line == '{"amount":1000,"fee":0.50,"at":"2026-01-02T01:04:05Z"}'


# --- every bad field of every row, by file line -----------------------------------------


def test_submit_lists_every_bad_field_by_file_line(tmp_path: Path) -> None:
    """Before: one error per CSV row (the first rule broken), numbered by data row."""
    file = tmp_path / "o.csv"
    file.write_text(
        f"{HEADER},message\n"
        f"{good_row(1)},hi\n"
        'x,acct-12345,X1,10.001,nope,Ann,"two\nlines"\n'  # lines 3-4
        f"{good_row(5)},\n",  # line 5
        encoding="utf-8",
    )
    result = submit(file)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("row ")]
    assert [e.split(":")[0] for e in errors] == [
        "row 3, customer_identifier",
        "row 3, utid",
        "row 3, amount",
        "row 3, recipient.email",
    ]
    assert "the header is line 1" in result.stderr
    skipped = submit(file, "--skip-invalid")
    assert skipped.exit_code == 1
    with (tmp_path / "o.results.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["row"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["2", "3", "5"]
    assert rows["3"]["outcome"] == "invalid"
    assert rows["3"]["message"].count(";") == 3  # all four, in the invalid row's report


# --- usage and input errors: one line, exit 2 -------------------------------------------


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe not utf-8\n", "not UTF-8"),
        (b"customer_identifier,utid\nx,U1\n", "no 'account_identifier', 'amount' columns"),
        (b"customer_identifier,account_identifier,utid,amount,bogus\n", "unknown column"),
        (b"", "no orders"),
        (HEADER.encode() + b'\n"unclosed\n', "is not valid CSV"),
        (b"a,b\x00c\n", ""),
    ],
)
def test_bad_input_files_are_one_line(tmp_path: Path, content: bytes, needle: str) -> None:
    file = tmp_path / "o.csv"
    file.write_bytes(content)
    one_line_error(submit(file), 2, needle)
    assert not (tmp_path / "o.csv.journal").exists()


def test_paths_that_cannot_be_are_one_line(tmp_path: Path) -> None:
    file = write_csv(tmp_path, good_row(1))
    (tmp_path / "dir").mkdir()
    for result in (
        submit(tmp_path / "dir"),  # the input is a directory
        submit(tmp_path / "nope.csv"),
        submit(file, "--report", tmp_path / "no" / "r.csv"),
        submit(file, "--report", tmp_path / "dir"),
        submit(file, "--journal", tmp_path / "dir"),
        submit(file, "--report", tmp_path / "orders.csv.journal"),
        invoke("status", tmp_path / "dir"),
        invoke("status", file),  # not a journal
        invoke("status", tmp_path / "none.journal"),
        invoke("--sandbox", "local", "resume", tmp_path / "dir"),
        invoke("--sandbox", "local", "reconcile", file),
    ):
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        errors = [line for line in result.stderr.splitlines() if "rror" in line]
        assert errors, result.output


def test_an_edited_journal_is_one_line(tmp_path: Path) -> None:
    file = write_csv(tmp_path, good_row(1), good_row(2))
    assert submit(file).exit_code == 0
    journal = tmp_path / "orders.csv.journal"
    data = bytearray(journal.read_bytes())
    at = data.rfind(b"DONE")
    data[at : at + 4] = b"FAIL"  # a hand edit of a row: its checksum no longer matches
    journal.write_bytes(bytes(data))
    for result in (
        invoke("status", journal),
        invoke("--sandbox", "local", "resume", journal),
        submit(file),
    ):
        one_line_error(result, 2, "is damaged")


def test_ctrl_c_outside_a_running_job_is_one_line_and_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C while the file is read (or the pre-flight runs): before, "Aborted!" or a
    traceback and exit 1; nothing is being sent then."""
    file = write_csv(tmp_path, good_row(1))

    def cancelled(*args: object, **kwargs: object) -> None:
        raise asyncio.CancelledError  # the first Ctrl-C: asyncio cancels the command

    monkeypatch.setattr(_bulk, "read_orders", cancelled)
    one_line_error(submit(file), 130, "interrupted (Ctrl-C); nothing more was sent")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the second Ctrl-C, at once

    monkeypatch.setattr(_bulk, "read_orders", interrupted)
    one_line_error(submit(file), 130, "interrupted (Ctrl-C)")
    assert not (tmp_path / "orders.csv.journal").exists()
    assert _inputs.read_orders is not interrupted


def test_every_option_of_the_bulk_commands_has_help() -> None:
    for name in ("submit", "resume", "status", "reconcile"):
        command = cli.commands[name]
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help text"


def test_a_wrong_format_is_one_line_naming_the_option(tmp_path: Path) -> None:
    """Before: a CSV read as JSON Lines listed every line as "not valid JSON" (exit 1);
    an unknown suffix named the library's ``format=`` argument."""
    file = write_csv(tmp_path, good_row(1), good_row(2))
    one_line_error(submit(file, "--input-format", "jsonl"), 2, "is not JSON Lines")
    txt = tmp_path / "orders.txt"
    shutil.copy(file, txt)
    one_line_error(submit(txt), 2, "--input-format csv")
