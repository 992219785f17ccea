"""Adversarial pass over the bulk pre-flight (issue 15), on money: hostile figures from
the API never crash it, and a dry run never predicts what the real submit will not do
(an existing journal is resumed, with no pre-flight)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import tango_async as ta
from tango_async.bulk import BalanceCheckError, BulkJob, JournalError, Preflight, run_preflight
from tango_async.bulk._journal import Journal, RowState
from tango_async.testing import Sandbox
from tango_async.types.catalog import Brand, Catalog, CostAdjustment
from tango_async.types.exchange_rates import ExchangeRate, ExchangeRates

from .conftest import FAST_RETRY, order_request
from .reconcile_support import ThreadedSandbox
from .test_preflight import FakeClient, account, item, rows
from .test_preflight_cli import add_account, posts, submit, tsb, write

__all__ = ["tsb"]  # the fixture, imported


def one_item_catalog(**kw: object) -> Catalog:
    return Catalog(
        catalog_name="c",
        brands=[
            Brand(brand_key="B", brand_name="b", status="active", items=[item("U1", "x", **kw)])
        ],
    )


# --- hostile figures: a note, never a crash ---------------------------------------------------


async def test_a_huge_fee_is_not_counted_and_does_not_overflow() -> None:
    for kind in ("PERCENTAGE", "FLAT"):
        fee = CostAdjustment(type=kind, value=Decimal("1E+999999999"))
        client = FakeClient(
            {"acct-aaaa": account("acct-aaaa", "100")}, catalog=one_item_catalog(fee=fee)
        )
        pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10)))  # was decimal.Overflow
        (a,) = pf.accounts
        assert a.cost == Decimal("10") and a.ok is True
        assert any("is not counted" in note for note in pf.unchecked)


async def test_a_huge_exchange_rate_leaves_the_cost_unknown_not_a_crash() -> None:
    rates = ExchangeRates(
        disclaimer="",
        exchange_rates=[
            ExchangeRate(reward_currency="USD", base_currency="EUR", base_fx=Decimal("1E+999999"))
        ],
    )
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "100", currency="EUR")}, rates=rates)
    pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10)))  # was decimal.Overflow
    (a,) = pf.accounts
    assert a.cost is None and a.ok is None and pf.result() == "warning"  # never refused
    assert "cost not estimated" in (a.lines[0].note or "")


async def test_an_account_read_without_a_currency_is_not_said_unread() -> None:
    acct = ta.Account(account_identifier="acct-aaaa", current_balance=Decimal("5"))
    pf = await run_preflight(FakeClient({"acct-aaaa": acct}), rows(("acct-aaaa", "U1", 10)))
    (a,) = pf.accounts
    assert a.ok is None and a.balance == Decimal("5")
    note = a.lines[0].note or ""
    assert "the API gave no currency" in note and "not read" not in note


@pytest.mark.parametrize("currency", ["Bearer abc", "HTTP://u:p@example.com", "U S D"])
async def test_a_hostile_account_currency_is_a_warning_not_a_refusal(
    tmp_path: Path, currency: str
) -> None:
    """Such a code was stored in the journal's pre-flight record, which refuses texts that
    look like credentials: the job was refused (JournalError) after its pre-flight."""
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "100", currency=currency)})

    async def hook(planned: Any, invalid: Any) -> Preflight:
        return await run_preflight(client, planned, invalid=invalid)

    sender = SimpleNamespace(max_amount=Decimal(10**6))
    orders = [order_request(account_identifier="acct-aaaa", utid="U1", amount=10)]
    job = BulkJob.prepare(sender, orders, journal=tmp_path / "j", preflight=hook)  # type: ignore[arg-type]
    checked = await job.preflight()
    assert checked is not None and checked.result() == "warning"
    (a,) = checked.accounts
    assert a.currency_code is None and a.ok is None
    assert any("is not a currency code" in note for note in a.notes)
    assert job.journal is not None and job.journal.preflight is not None
    job.journal.close()


# --- a dry run over an existing journal predicts the resume -----------------------------------


def test_dry_run_over_a_journal_does_not_predict_a_refusal_the_resume_skips(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    add_account(tsb, "acct-small", "25")
    file = write(tmp_path / "o.csv", [("acct-small", "U561593", "10")] * 3)
    first = submit(tsb, file, "--no-balance-check", "--concurrency", "1")
    assert first.exit_code == 2 and posts(tsb) == 3  # two orders, then the 402
    with Journal.open(tmp_path / "o.csv.journal") as opened:
        assert opened.counts()[RowState.PENDING] == 1

    dry = submit(tsb, file, "--dry-run")
    # The real submit resumes the journal's job with no pre-flight: it is not refused (it
    # sends the row, and the API's 402 answers). The dry run must say so, not "refused".
    assert "would be refused" not in dry.stdout, dry.output
    assert "resumes" in dry.stdout and "not repeated" in dry.stdout
    assert dry.exit_code == 0, dry.output
    assert posts(tsb) == 3  # the dry run sent nothing

    real = submit(tsb, file)
    assert "resuming its job" in real.stderr
    assert posts(tsb) == 4  # it did send (the dry run was right not to predict a refusal)
    assert tsb.sandbox.contract_violations == []


# --- the journal made after the pre-flight: races, cancellation, resume -----------------------


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None) as server:
        yield server


def post_count(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests if r.method == "POST" and r.path.endswith("/orders"))


def to(aid: str, *amounts: int, utid: str = "U561593") -> list[ta.CreateOrderRequest]:
    return [order_request(account_identifier=aid, utid=utid, amount=a) for a in amounts]


async def test_two_jobs_of_one_journal_at_once_send_each_order_once(
    sb: Sandbox, tmp_path: Path
) -> None:
    """Both pass the pre-flight (the journal does not exist yet); one makes the journal and
    sends, the other is refused (JournalError) with nothing sent."""
    sb.add_account("acct-race", balance=Decimal("1000"))
    path = tmp_path / "j.journal"
    orders = to("acct-race", 10, 11, 12)
    async with sb.client(retry=FAST_RETRY) as a, sb.client(retry=FAST_RETRY) as b:
        jobs = [c.orders.submit_many(orders, journal=path) for c in (a, b)]

        async def run(job: BulkJob) -> list[str] | BaseException:
            try:
                return [r.outcome async for r in job]
            except JournalError as e:
                return e

        got = await asyncio.gather(*(run(j) for j in jobs))
        for job in jobs:
            if job.journal is not None:
                job.journal.close()
    refused = [g for g in got if isinstance(g, BaseException)]
    sent = [g for g in got if not isinstance(g, BaseException)]
    assert len(refused) == 1 and sent == [["created"] * 3]
    assert post_count(sb) == 3 and sb.balance("acct-race") == Decimal("967")
    with Journal.open(path) as opened:
        assert opened.counts()[RowState.DONE] == 3


@pytest.mark.parametrize("how", ["cancelled", "raises"])
async def test_a_pre_flight_cut_short_leaves_no_journal_and_the_job_can_start_again(
    sb: Sandbox, tmp_path: Path, how: str
) -> None:
    path = tmp_path / "j.journal"
    entered = asyncio.Event()

    async def hook(rows: object, invalid: object) -> Preflight:
        entered.set()
        if how == "raises":
            raise RuntimeError("boom in the pre-flight")
        await asyncio.Event().wait()  # a read that never ends: Ctrl-C cancels it
        raise AssertionError("unreachable")

    async with sb.client(retry=FAST_RETRY) as tango:
        job = BulkJob.prepare(tango, to("acct-12345", 10, 20), journal=path, preflight=hook)
        task = asyncio.ensure_future(job.preflight())
        await entered.wait()
        if how == "cancelled":
            task.cancel()
        with pytest.raises((asyncio.CancelledError, RuntimeError)):
            await task
        assert job.journal is None and not path.exists() and post_count(sb) == 0
        Journal.check_new(path)  # nothing left behind: a new start is not refused
        again = tango.orders.submit_many(to("acct-12345", 10, 20), journal=path)
        assert [r.outcome async for r in again] == ["created", "created"]
        assert again.journal is not None
        again.journal.close()
    assert post_count(sb) == 2


async def test_resume_resends_an_unknown_row_the_catalog_now_refuses(
    sb: Sandbox, tmp_path: Path
) -> None:
    """A row sent with an unknown outcome must be sent again (same externalRefID) to be
    settled, even if the catalog no longer allows it; a never-sent row is refused."""
    path = tmp_path / "j.journal"
    async with sb.client(retry=FAST_RETRY) as tango:
        job = tango.orders.submit_many(to("acct-12345", 10, 20), journal=path)
        await job.preflight()
        journal = job.journal
        assert journal is not None
        journal.mark_sending(1)
        journal.mark_unknown(1, http_status=None, i18n_key=None, message="connection lost")
        journal.close()
    sb.catalog = {
        **sb.catalog,
        "U561593": dataclasses.replace(sb.catalog["U561593"], status="inactive"),
    }
    async with sb.client(retry=FAST_RETRY, check_catalog=True) as tango:
        with Journal.open(path) as opened:
            resumed = BulkJob.resume(tango, opened)
            outcomes = {r.row: r.outcome async for r in resumed}
            assert outcomes == {1: "created", 2: "failed"}
            assert opened.get(1).state is RowState.DONE
            assert opened.get(2).state is RowState.FAILED
    assert post_count(sb) == 1  # the unknown row only; the never-sent one stayed unsent


async def test_dry_run_sends_nothing_and_writes_no_journal(sb: Sandbox, tmp_path: Path) -> None:
    sb.add_account("acct-dry", balance=Decimal("5"))
    path = tmp_path / "j.journal"
    async with sb.client(retry=FAST_RETRY) as tango:
        for check in (True, False):
            job = tango.orders.submit_many(
                to("acct-dry", 10, 20), journal=path, dry_run=True, balance_check=check
            )
            assert [r.outcome async for r in job] == ["planned", "planned"]
            assert job.checked is not None and job.checked.short
            assert job.journal is None
    assert post_count(sb) == 0 and not path.exists()
    assert os.listdir(tmp_path) == []  # no build file, no lock file either


async def test_iterating_while_the_pre_flight_runs_waits_for_it(
    sb: Sandbox, tmp_path: Path
) -> None:
    """A second caller of preflight() (the iteration) got None while the first one's reads
    were in flight, and sent every row: no balance check, and no journal yet."""
    sb.add_account("acct-short", balance=Decimal("15"))
    path = tmp_path / "j.journal"
    async with sb.client(retry=FAST_RETRY) as tango:
        job = tango.orders.submit_many(to("acct-short", 10, 10), journal=path)
        first = asyncio.ensure_future(job.preflight())
        await asyncio.sleep(0)  # its reads are in flight
        with pytest.raises(BalanceCheckError):
            [r async for r in job]
        with pytest.raises(BalanceCheckError):
            await first
    assert post_count(sb) == 0 and not path.exists()
