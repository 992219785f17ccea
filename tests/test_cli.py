"""The ``tango-async`` command line, through click's CliRunner, against ``--sandbox local``
(an in-process sandbox started inside each command).

The commands call asyncio.run(), so these tests are plain (sync) functions.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import tango_async as ta
from tango_async.bulk._inputs import file_digest, read_orders
from tango_async.bulk._job import BulkJob, plan_rows
from tango_async.bulk._journal import Journal, RowState
from tango_async.bulk._report import REPORT_FIELDS
from tango_async.cli._app import cli

HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"
REF = re.compile(r"^tb[0-9a-f]{40}$")  # from each row's content


def good_row(n: int) -> str:
    return f"cust-12345,acct-12345,U561593,{n}.00,person{n}@example.com,Ann"


def write_csv(tmp_path: Path, *rows: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def good_csv(tmp_path: Path, n: int = 5, name: str = "orders.csv") -> Path:
    return write_csv(tmp_path, *(good_row(i) for i in range(1, n + 1)), name=name)


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    # every outcome is an exit code, never an exception escaping the command
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def submit(file: Path, *extra: str | Path) -> Result:
    return invoke("--sandbox", "local", "submit", file, "--order-rate", "50", *extra)


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == REPORT_FIELDS
        return list(reader)


def journal_counts(path: Path) -> dict[RowState, int]:
    with Journal.open(path) as journal:
        return journal.counts()


# --- submit, status, resume ----------------------------------------------------------------------


def test_submit_a_small_csv(tmp_path: Path) -> None:
    file = good_csv(tmp_path)
    result = submit(file)
    assert result.exit_code == 0, result.output
    assert "local sandbox: http://127.0.0.1:" in result.stderr
    assert "progress: done 5, failed 0, remaining 0 of 5" in result.stderr
    assert "5 row(s): 5 created" in result.stdout
    assert "resume" not in result.output

    report = tmp_path / "orders.results.csv"
    assert f"report: {report}" in result.stdout
    rows = read_report(report)
    assert [r["row"] for r in rows] == ["2", "3", "4", "5", "6"]  # file lines (issue 16)
    assert {r["outcome"] for r in rows} == {"created"}
    assert {r["status"] for r in rows} == {"COMPLETE"}
    assert all(REF.match(r["externalRefID"]) for r in rows)
    assert len({r["referenceOrderID"] for r in rows}) == 5
    # the refs come from the rows' content, not from the file's bytes
    plan = plan_rows(read_orders(file))
    assert [r["externalRefID"] for r in rows] == [ref for _, ref, _ in plan.rows]

    journal = tmp_path / "orders.csv.journal"
    assert journal.exists()
    assert journal_counts(journal)[RowState.DONE] == 5
    with Journal.open(journal) as opened:
        assert opened.input_path == str(file.absolute())
        assert opened.settings["order_rate"] == 50.0
        assert opened.settings["sandbox"] == "local"

    status = invoke("status", journal)
    assert status.exit_code == 0, status.output
    assert re.search(r"^\s*done\s+5$", status.stdout, re.MULTILINE)
    assert re.search(r"^\s*pending\s+0$", status.stdout, re.MULTILINE)
    assert f"input {file.absolute()}" in status.stdout
    assert "5 row(s)" in status.stdout
    assert "not finished" not in status.stdout


def test_submit_again_resumes_with_nothing_left(tmp_path: Path) -> None:
    file = good_csv(tmp_path)
    first = submit(file)
    assert first.exit_code == 0, first.output
    report = tmp_path / "orders.results.csv"
    before = read_report(report)

    again = submit(file)
    assert again.exit_code == 0, again.output
    assert "nothing to send" in again.stdout and "5 done" in again.stdout
    assert "--run-label" in again.stdout  # how to send them again on purpose
    assert "local sandbox" not in again.stderr  # not even connected
    assert read_report(report) == before  # the same orders: none sent again
    assert journal_counts(tmp_path / "orders.csv.journal")[RowState.DONE] == 5


def test_bad_rows_are_listed_and_nothing_is_sent(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path,
        good_row(1),
        "cust-12345,acct-12345,U561593,abc,p2@example.com,Ann",  # line 3: amount
        good_row(3),
        "cust-12345,acct-12345,U561593,4.00,nope,Ann",  # line 5: recipient.email
        "cust-12345,acct-12345,X1,5.00,p5@example.com,Ann",  # line 6: utid
    )
    result = submit(file)
    assert result.exit_code == 1, result.output
    err = result.stderr
    # rows are numbered by the file's lines (issue 16): the header is line 1
    assert re.search(r"^row 3, amount: .+", err, re.MULTILINE)
    assert re.search(r"^row 5, recipient\.email: .+", err, re.MULTILINE)
    assert re.search(r"^row 6, utid: .+", err, re.MULTILINE)
    assert "row 2" not in err and "row 4" not in err
    assert "3 invalid row(s)" in err and "nothing sent" in err and "--skip-invalid" in err
    assert not (tmp_path / "orders.csv.journal").exists()
    assert not (tmp_path / "orders.results.csv").exists()


def test_skip_invalid_sends_the_valid_rows(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path,
        good_row(1),
        "cust-12345,acct-12345,U561593,abc,p2@example.com,Ann",
        good_row(3),
        "cust-12345,acct-12345,U561593,4.00,nope,Ann",
        good_row(5),
    )
    result = submit(file, "--skip-invalid")
    assert result.exit_code == 1, result.output  # some rows were invalid
    assert "skipping 2 invalid row(s)" in result.stderr
    assert "3 created" in result.stdout and "2 invalid" in result.stdout
    rows = {r["row"]: r for r in read_report(tmp_path / "orders.results.csv")}
    assert sorted(rows) == ["2", "3", "4", "5", "6"]  # file lines (issue 16)
    assert [rows[n]["outcome"] for n in ("2", "4", "6")] == ["created"] * 3
    assert all(rows[n]["referenceOrderID"] for n in ("2", "4", "6"))
    assert rows["3"]["outcome"] == rows["5"]["outcome"] == "invalid"
    assert rows["3"]["message"].startswith("amount:")
    assert rows["5"]["message"].startswith("recipient.email:")
    counts = journal_counts(tmp_path / "orders.csv.journal")
    assert counts[RowState.DONE] == 3 and counts[RowState.INVALID] == 2


def test_unknown_column_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "orders.csv"
    file.write_text(HEADER + ",bogus_col\n" + good_row(1) + ",x\n", encoding="utf-8")
    result = submit(file)
    assert result.exit_code == 2, result.output
    assert "unknown column 'bogus_col'" in result.stderr
    assert not (tmp_path / "orders.csv.journal").exists()


def test_empty_file_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "orders.csv"
    file.write_text("", encoding="utf-8")
    result = submit(file)
    assert result.exit_code == 2, result.output
    assert "no orders" in result.stderr
    assert not (tmp_path / "orders.csv.journal").exists()


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = submit(tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert "nope.csv" in result.stderr


def test_a_journal_of_another_file_is_refused(tmp_path: Path) -> None:
    first = good_csv(tmp_path, 3, name="first.csv")
    assert submit(first, "--journal", tmp_path / "first.journal").exit_code == 0
    other = good_csv(tmp_path, 4, name="other.csv")
    result = submit(other, "--journal", tmp_path / "first.journal")
    assert result.exit_code == 2, result.output
    assert "holds other orders than" in result.stderr and str(other) in result.stderr
    assert "1 row(s) of the file are new or changed" in result.stderr
    assert "new journal" in result.stderr and "not paid again" in result.stderr
    assert not (tmp_path / "other.results.csv").exists()
    assert journal_counts(tmp_path / "first.journal")[RowState.DONE] == 3


def test_jsonl_input(tmp_path: Path) -> None:
    file = tmp_path / "orders.jsonl"
    lines = [
        {
            "customerIdentifier": "cust-12345",
            "accountIdentifier": "acct-12345",
            "utid": "U561593",
            "amount": n,
            "recipient": {"email": f"p{n}@example.com", "firstName": "Ann"},
        }
        for n in (1, 2, 3)
    ]
    lines[1]["externalRefID"] = "own-ref-0002"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = submit(file, "--report", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert "3 row(s): 3 created" in result.stdout
    report = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["row"] for r in report] == [1, 2, 3]
    assert {r["outcome"] for r in report} == {"created"}
    assert report[1]["externalRefID"] == "own-ref-0002"
    assert (tmp_path / "orders.jsonl.journal").exists()


def test_resume_command_finishes_a_journaled_job(tmp_path: Path) -> None:
    # a job whose journal was made but nothing sent (as if killed right after starting)
    file = good_csv(tmp_path, 4)
    journal = tmp_path / "orders.csv.journal"
    digest = file_digest(file)
    client = ta.TangoClient("name", "key", base_url="http://127.0.0.1:9/raas/v2")
    job = BulkJob.prepare(
        client,
        read_orders(file),
        journal=journal,
        input_path=str(file.absolute()),
        input_digest=digest,
        settings={"order_rate": 50.0, "concurrency": 2, "report": str(tmp_path / "r.csv")},
    )
    assert job.journal is not None
    job.journal.close()

    status = invoke("status", journal)
    assert status.exit_code == 0
    assert re.search(r"^\s*pending\s+4$", status.stdout, re.MULTILINE)
    assert f"not finished: tango-async resume {shlex.quote(str(journal))}" in status.stdout

    result = invoke("--sandbox", "local", "resume", journal, "--input", file)
    assert result.exit_code == 0, result.output
    assert "4 row(s): 4 created" in result.stdout
    assert {r["outcome"] for r in read_report(tmp_path / "r.csv")} == {"created"}
    assert journal_counts(journal)[RowState.DONE] == 4

    # the input is checked against the journal
    other = good_csv(tmp_path, 2, name="other.csv")
    refused = invoke("--sandbox", "local", "resume", journal, "--input", other)
    assert refused.exit_code == 2
    assert "holds other orders than" in refused.stderr


# --- orders --------------------------------------------------------------------------------------


def test_orders_list_csv_of_an_empty_sandbox() -> None:
    result = invoke("--sandbox", "local", "orders", "list", "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("referenceOrderID,externalRefID,createdAt,status")
    assert "0 order(s)" in result.stderr


def test_orders_list_jsonl_of_an_empty_sandbox() -> None:
    result = invoke("--sandbox", "local", "orders", "list", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "0 order(s)" in result.stderr


def test_orders_get_unknown_is_a_404() -> None:
    result = invoke("--sandbox", "local", "orders", "get", "RA-NOPE")
    assert result.exit_code == 1
    assert "404" in result.output
    assert "RA-NOPE" in result.stderr


@pytest.mark.parametrize(
    "args",
    [("orders", "list"), ("orders", "get", "RA123"), ("submit", "FILE")],
    ids=["orders-list", "orders-get", "submit"],
)
def test_missing_credentials_without_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    for name in ("TANGO_PLATFORM_NAME", "TANGO_PLATFORM_KEY", "TANGO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    file = good_csv(tmp_path)
    result = invoke(*(file if a == "FILE" else a for a in args))
    assert result.exit_code == 2, result.output
    assert "TANGO_PLATFORM_NAME" in result.stderr
    assert not (tmp_path / "orders.csv.journal").exists()


# --- help ----------------------------------------------------------------------------------------


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMANDS = list(command_paths(cli))


def test_every_command_is_covered() -> None:
    expected = {
        ("submit",),
        ("resume",),
        ("status",),
        ("orders", "list"),
        ("orders", "get"),
        ("orders", "resend"),
        ("line-items", "resend"),
        ("sandbox",),
    }
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "cli")
def test_help(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    # argparse (the sandbox's own options, shared with python -m tango_async.testing)
    # says "usage:", click says "Usage:"
    assert "usage:" in result.stdout.lower()
    assert result.stderr == ""


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert ta.__version__ in result.stdout


def test_a_journal_whose_creation_never_finished_is_started_over(tmp_path: Path) -> None:
    source = good_csv(tmp_path)
    # a kill -9 during Journal.create leaves only its build file, never a journal at the path
    (tmp_path / "orders.csv.journal.creating").write_bytes(b"SQLite format 3\x00")
    result = submit(source)
    assert result.exit_code == 0, result.output + result.stderr
    assert "creation never finished" in result.stderr
    assert journal_counts(tmp_path / "orders.csv.journal")[RowState.DONE] == 5


def test_orders_list_takes_every_filter_of_the_library() -> None:
    import inspect

    from tango_async.resources.orders import Orders

    names = set(inspect.signature(Orders.list).parameters) - {"self", "elements_per_block", "page"}
    help_text = invoke("orders", "list", "--help").stdout
    assert all(f"--{n.replace('_', '-')}" in help_text for n in names)
    result = invoke(
        "--sandbox",
        "local",
        "orders",
        "list",
        "--min-amount",
        "1.50",
        "--max-amount",
        "20",
        "--send-email",
        "true",
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output + result.stderr
    bad = invoke("--sandbox", "local", "orders", "list", "--min-amount", "lots")
    assert bad.exit_code == 2 and "not a number" in bad.stderr
