"""``tango-async submit`` with its pre-flight (issue 15, point 4) against a sandbox served
from another thread: the dry run that shows a cost above the balance, the refused submit
that sends nothing (exit 2), ``--no-balance-check``, catalog-invalid rows, an unreadable
balance, and ``status`` / ``resume`` showing the recorded check."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tango_async.bulk._journal import Journal, RowState

from .reconcile_support import ThreadedSandbox
from .test_cli import invoke

HEADER = [
    "customer_identifier",
    "account_identifier",
    "utid",
    "amount",
    "recipient.email",
    "recipient.first_name",
]


@pytest.fixture
def tsb() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(contract=True) as sb:
        yield sb


def add_account(tsb: ThreadedSandbox, aid: str, balance: str, **kw: Any) -> None:
    async def add() -> None:
        tsb.sandbox.add_account(aid, balance=Decimal(balance), **kw)

    tsb.call(add())


def write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A CSV of (account, utid, amount) rows."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for n, (aid, utid, amount) in enumerate(rows, 1):
            out.writerow(["cust-12345", aid, utid, amount, f"p{n}@example.com", f"P{n}"])
    return path


def posts(tsb: ThreadedSandbox) -> int:
    return sum(1 for r in tsb.sandbox.requests if r.method == "POST" and r.path.endswith("/orders"))


def submit(tsb: ThreadedSandbox, file: Path, *extra: str) -> Any:
    return invoke(*tsb.args, "submit", str(file), "--order-rate", "50", *extra)


def test_dry_run_over_the_balance_then_the_refused_submit_sends_nothing(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    add_account(tsb, "acct-small", "25")
    file = write(
        tmp_path / "o.csv",
        [("acct-small", "U561593", "10")] * 2 + [("acct-small", "U561593", "15")],
    )

    dry = submit(tsb, file, "--dry-run")
    assert dry.exit_code == 2, dry.output
    out = dry.stdout
    assert "dry run: 3 order(s)" in out and "nothing sent" in out
    assert (
        "account acct-small: 3 row(s), estimated cost 35 USD, balance 25 USD: SHORT by 10 USD"
        in out
    )
    assert "would be refused" in out and "--no-balance-check" in out
    assert posts(tsb) == 0 and not (tmp_path / "o.csv.journal").exists()

    real = submit(tsb, file)
    assert real.exit_code == 2, real.output
    err = real.stderr
    assert "error: balance check refused the job, nothing sent" in err
    assert "account acct-small: balance 25 USD, estimated cost of its 3 row(s) 35 USD" in err
    assert "short by 10 USD" in err and "pass --no-balance-check to send anyway" in err
    assert posts(tsb) == 0  # the sandbox's requests hold no POST /orders
    assert not (tmp_path / "o.csv.journal").exists()
    assert tsb.sandbox.balance("acct-small") == Decimal("25")
    assert tsb.sandbox.contract_violations == []


def test_no_balance_check_sends_and_402_stops_the_job_then_status_shows_skipped(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    add_account(tsb, "acct-small", "25")
    file = write(tmp_path / "o.csv", [("acct-small", "U561593", "10")] * 3)
    res = submit(tsb, file, "--no-balance-check", "--concurrency", "1")
    assert res.exit_code == 2, res.output  # a systemic stop (402), as ever
    assert "SHORT by 5 USD" in res.stderr and "sending anyway (--no-balance-check)" in res.stderr
    assert "402" in res.stdout and "resume" in res.stdout
    assert posts(tsb) == 3  # two orders, then the 402
    journal = tmp_path / "o.csv.journal"
    with Journal.open(journal) as opened:
        counts = opened.counts()
        assert counts[RowState.DONE] == 2 and counts[RowState.PENDING] == 1
        assert opened.preflight is not None and opened.preflight["result"] == "skipped"
    status = invoke("status", str(journal))
    assert status.exit_code == 0, status.output
    assert "balance check " in status.stdout and "skipped" in status.stdout
    assert "balance 25 USD: SHORT by 5 USD" in status.stdout

    # funded, a resume finishes; it does not run the check again, but shows the recorded one
    async def fund() -> None:
        tsb.sandbox.fund("acct-small", Decimal("100"))

    tsb.call(fund())
    before = len(tsb.sandbox.requests)
    again = invoke(*tsb.args, "resume", str(journal), "--order-rate", "50")
    assert again.exit_code == 0, again.output
    assert "a resume does not repeat it" in again.stderr and "skipped" in again.stderr
    assert all(r.method == "POST" for r in tsb.sandbox.requests[before:])
    assert tsb.sandbox.contract_violations == []


def test_status_shows_the_check_the_job_started_with(tsb: ThreadedSandbox, tmp_path: Path) -> None:
    add_account(tsb, "acct-rich", "500")
    file = write(
        tmp_path / "o.csv", [("acct-rich", "U561593", "10"), ("acct-rich", "U300100", "20")]
    )
    res = submit(tsb, file)
    assert res.exit_code == 0, res.output
    assert "covered" in res.stderr and "20 EUR = " in res.stderr  # printed either way
    status = invoke("status", str(tmp_path / "o.csv.journal"))
    assert status.exit_code == 0, status.output
    text = status.stdout
    assert "ok: every balance covers its rows" in text
    assert (
        "account acct-rich: 2 row(s), estimated cost " in text
        and "balance 500 USD: covered" in text
    )
    assert "1 row(s) of face value 20 EUR = " in text
    assert tsb.sandbox.contract_violations == []


def test_a_catalog_invalid_amount_is_refused_before_sending(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    file = write(
        tmp_path / "o.csv",
        [("acct-12345", "U561593", "10"), ("acct-12345", "U100025", "20")],  # U100025: 25 only
    )
    dry = submit(tsb, file, "--dry-run")
    assert dry.exit_code == 1, dry.output
    assert "1 row(s) break the catalog's rules" in dry.stdout
    assert "row 3, amount: must be 25 USD for U100025" in dry.stdout  # line 3 of the file
    assert "dry run: 1 order(s)" in dry.stdout

    real = submit(tsb, file)
    assert real.exit_code == 1, real.output
    assert "row 3, amount: must be 25 USD" in real.stderr and "nothing sent" in real.stderr
    assert posts(tsb) == 0 and not (tmp_path / "o.csv.journal").exists()

    skipped = submit(tsb, file, "--skip-invalid")
    assert skipped.exit_code == 1, skipped.output  # a row was invalid
    assert posts(tsb) == 1
    with Journal.open(tmp_path / "o.csv.journal") as opened:
        assert opened.counts()[RowState.INVALID] == 1
        assert "must be 25 USD" in (opened.get(3).message or "")  # line 3 of the file
    # the same file again finds its journal: nothing is sent twice
    again = submit(tsb, file, "--skip-invalid")
    assert again.exit_code == 1 and "nothing to send" in again.stdout
    assert posts(tsb) == 1


def test_an_unreadable_balance_is_a_warning_and_the_job_runs(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    add_account(tsb, "acct-hidden", "1")

    async def forbid() -> None:
        tsb.sandbox.inject(
            "GET /accounts/*",
            "legacy-error-body",
            status=403,
            i18nKey="403.001",
            message="not permitted",
        )

    tsb.call(forbid())
    file = write(tmp_path / "o.csv", [("acct-hidden", "U561593", "0.50")])
    res = submit(tsb, file)
    assert res.exit_code == 0, res.output
    assert "balance not readable (403 PermissionDeniedError): not checked" in res.stderr
    assert "warning" in res.stderr
    assert posts(tsb) == 1
    with Journal.open(tmp_path / "o.csv.journal") as opened:
        assert opened.preflight is not None and opened.preflight["result"] == "warning"


def test_unreachable_catalog_is_said_and_the_balance_still_checked(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    add_account(tsb, "acct-small", "5")

    async def fail() -> None:
        tsb.sandbox.inject("GET /catalogs", "404", times=5)

    tsb.call(fail())
    file = write(tmp_path / "o.csv", [("acct-small", "U561593", "10")])
    dry = submit(tsb, file, "--dry-run")
    assert dry.exit_code == 2, dry.output
    assert "catalog not reachable (404 NotFoundError): catalog rules not checked" in dry.stdout
    assert "SHORT by 5 USD" in dry.stdout


def test_dry_run_without_credentials_still_checks_the_format(tmp_path: Path) -> None:
    file = write(tmp_path / "o.csv", [("acct-12345", "U561593", "10")])
    res = invoke("--base-url", "http://127.0.0.1:9/raas/v2", "submit", str(file), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "pre-flight not run" in res.stdout and "dry run: 1 order(s)" in res.stdout


def test_dry_run_of_a_finished_job_counts_no_cost_for_rows_already_ordered(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    add_account(tsb, "acct-once", "30")
    file = write(tmp_path / "o.csv", [("acct-once", "U561593", "20")])
    assert submit(tsb, file).exit_code == 0
    assert tsb.sandbox.balance("acct-once") == Decimal("10")
    # the balance no longer covers the row, but the row is ordered already: not refused
    dry = submit(tsb, file, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "1 of them are already ordered" in dry.stdout
    assert "0 row(s) to send" in dry.stdout and "SHORT" not in dry.stdout
