"""Bulk reconciliation (issue 14, point 6): what became of every row's order after the
job. Against the in-process sandbox on its frozen clock (orders PENDING for a minute,
then COMPLETE, or FAILED after ``fail_next``); the CLI through CliRunner, against a
sandbox served from another thread so that its orders outlive each command."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import tango_async as ta
from tango_async.bulk import (
    RECONCILE_FIELDS,
    Journal,
    JournalDamagedError,
    JournalError,
    ReconcileProgress,
    Reconciler,
    reconcile,
    write_reconcile_report,
    write_report,
)
from tango_async.bulk._journal import FINAL_STATUSES
from tango_async.cli._app import cli
from tango_async.testing import Sandbox, SandboxClock

from .conftest import FAST_RETRY
from .journal_support import downgrade_to_schema_1
from .reconcile_support import (
    COMPLETES,
    FAILS,
    INVALID,
    PENDING_FOR,
    REFUSED,
    STAYS_PENDING,
    ThreadedSandbox,
    mixed_job,
    reward_status,
    simple_job,
    threaded_sandbox,
)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(
        order_rate=None, pending_for=PENDING_FOR, clock=SandboxClock(frozen=True)
    ) as server:
        yield server


@pytest.fixture
async def client(sb: Sandbox) -> AsyncIterator[ta.TangoClient]:
    async with sb.client(retry=FAST_RETRY) as tango:
        yield tango


@pytest.fixture
async def mixed(sb: Sandbox, client: ta.TangoClient, tmp_path: Path) -> Path:
    path = tmp_path / "job.journal"
    await mixed_job(sb, client, path)
    return path


def lookups(sb: Sandbox) -> list[str]:
    """The order IDs looked up so far (GET /orders/{id})."""
    return [
        r.path.rsplit("/", 1)[1]
        for r in sb.requests
        if r.method == "GET" and re.search(r"/orders/[^/]+$", r.path)
    ]


def spending(sb: Sandbox) -> list[Any]:
    """Requests that create or resend something."""
    return [r for r in sb.requests if r.method != "GET"]


# --- polling ------------------------------------------------------------------------------


async def test_reconcile_records_complete_failed_and_pending(
    sb: Sandbox, client: ta.TangoClient, mixed: Path
) -> None:
    posts_before = len(spending(sb))
    report = await reconcile(client, mixed)
    assert len(spending(sb)) == posts_before  # reconciliation sends nothing that spends money
    by_row = {r.row: r for r in report.rows}
    assert by_row[FAILS].category == "failed" and by_row[FAILS].status == "FAILED"
    assert by_row[COMPLETES].category == "delivered" and by_row[COMPLETES].status == "COMPLETE"
    assert by_row[STAYS_PENDING].category == "pending"
    assert by_row[STAYS_PENDING].status == "PENDING"
    assert "reconcile again" in by_row[STAYS_PENDING].reason
    assert by_row[REFUSED].category == "needs_action"
    assert "refused when created (400 400.004" in by_row[REFUSED].reason
    assert "recipient rejected" in by_row[REFUSED].reason
    assert by_row[INVALID].category == "needs_action"
    assert by_row[INVALID].reason.startswith("invalid, never sent: amount")
    assert report.counts == {"delivered": 1, "failed": 1, "pending": 1, "needs_action": 2}
    assert report.amounts == {
        "delivered": Decimal(2),
        "failed": Decimal(1),
        "pending": Decimal(3),
        "needs_action": Decimal(4),  # row 4; the invalid row has no amount
    }
    assert (report.looked_up, report.changed, report.lookup_errors) == (3, 3, 0)
    assert not (report.interrupted or report.timed_out or report.stopped_by)
    assert not report.all_delivered
    assert sorted(lookups(sb)) == sorted(r.reference_order_id or "" for r in report.rows[:3])

    # recorded in the journal: status, source, when, the line item
    with Journal.open(mixed) as journal:
        records = journal.reconciliation()
        rows = {r.row: r for r in journal.rows()}
        last = journal.last_reconciled()
    assert set(records) == {FAILS, COMPLETES, STAYS_PENDING}
    for number, record in records.items():
        assert record.source == "poll"
        assert record.reference_order_id == rows[number].reference_order_id
        order = sb.orders[record.reference_order_id or ""]
        assert record.reference_line_item_id == order["referenceLineItemID"]
        assert record.seen_at.tzinfo is not None
    assert records[FAILS].status == "FAILED" and records[FAILS].final
    assert records[STAYS_PENDING].status == "PENDING" and not records[STAYS_PENDING].final
    assert last is not None and last[1] == "poll"

    summary = report.summary()
    assert "delivered" in summary and "needs action (no order)" in summary
    assert "row 4: refused when created" in summary
    assert "looked up 3 order(s), 3 changed" in summary


async def test_reconcile_again_after_the_clock_moves_on(
    sb: Sandbox, client: ta.TangoClient, mixed: Path
) -> None:
    first = await reconcile(client, mixed)
    pending_order = first.pending[0].reference_order_id
    sb.clock.advance(PENDING_FOR + 1)
    seen = len(lookups(sb))
    second = await reconcile(client, mixed)
    # only the row not final was looked up again: final ones are not asked twice
    assert lookups(sb)[seen:] == [pending_order]
    assert (second.looked_up, second.changed) == (1, 1)
    assert {r.row: r.category for r in second.rows} == {
        FAILS: "failed",
        COMPLETES: "delivered",
        STAYS_PENDING: "delivered",
        REFUSED: "needs_action",
        INVALID: "needs_action",
    }
    # recheck looks every ordered row up again, and changes nothing final
    third = await reconcile(client, mixed, recheck=True)
    assert (third.looked_up, third.changed) == (3, 0)


async def test_running_it_twice_is_idempotent(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "done.journal"
    sb.pending_for = 0  # every order final at once
    await simple_job(client, path, 4)
    first = await reconcile(client, path)
    assert first.all_delivered and first.looked_up == 4
    with Journal.open(path) as journal:
        records, last = journal.reconciliation(), journal.last_reconciled()
    seen = len(sb.requests)
    again = await reconcile(client, path)
    assert again.all_delivered and (again.looked_up, again.changed) == (0, 0)
    assert len(sb.requests) == seen  # nothing asked
    with Journal.open(path) as journal:
        assert journal.reconciliation() == records
        assert journal.last_reconciled() == last
    assert again.rows == first.rows


async def test_wait_polls_until_every_order_is_final(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "w.journal"
    await simple_job(client, path, 3)  # all PENDING for a minute of the sandbox clock
    rounds: list[ReconcileProgress] = []
    t0 = sb.clock.monotonic()
    report = await reconcile(
        client, path, wait=True, poll=5.0, max_poll=20.0, progress=rounds.append
    )
    assert report.all_delivered and not report.timed_out
    waited = sb.clock.monotonic() - t0
    assert PENDING_FOR - 1 <= waited < PENDING_FOR + 25  # pauses 5, 10, 20, 20...
    assert max(p.round for p in rounds) >= 3
    assert rounds[-1].pending == 0 and rounds[0].total == 3
    assert all(p.checked <= p.total for p in rounds)
    assert len(lookups(sb)) == 3 * max(p.round for p in rounds)


async def test_wait_gives_up_at_the_timeout(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "t.journal"
    sb.pending_for = 3600
    await simple_job(client, path, 2)
    t0 = sb.clock.monotonic()
    report = await reconcile(client, path, wait=True, timeout=30, poll=4.0)
    assert report.timed_out and not report.interrupted
    assert report.counts["pending"] == 2
    assert 30 <= sb.clock.monotonic() - t0 < 31  # pauses 4, 8, 16, then what is left: 2
    assert len(lookups(sb)) == 2 * 5  # the first pass, and a round after each pause
    assert "timed out waiting: 2 row(s) still not final" in report.summary()


async def test_a_lookup_that_fails_leaves_the_row_as_recorded(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "e.journal"
    sb.pending_for = 0
    await simple_job(client, path, 2)
    sb.inject("GET /orders/*", "404", times=1)
    report = await reconcile(client, path, concurrency=1)
    assert report.lookup_errors == 1 and report.looked_up == 1
    failed = report.pending[0]
    assert "not looked up yet" in failed.reason and "the last lookup failed" in failed.reason
    assert report.counts["delivered"] == 1
    again = await reconcile(client, path)
    assert again.all_delivered and again.lookup_errors == 0


async def test_wrong_credentials_stop_the_lookups(sb: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "k.journal"
    async with sb.client(retry=FAST_RETRY) as good:
        await simple_job(good, path, 6)
    seen = len(sb.requests)
    async with ta.TangoClient(
        sb.platform_name, "wrong-key", base_url=sb.base_url, clock=sb.clock, retry=FAST_RETRY
    ) as bad:
        report = await reconcile(bad, path, concurrency=2)
    assert report.stopped_by is not None and "401" in report.stopped_by
    assert not report.interrupted
    assert len(sb.requests) - seen <= 2  # the first answer, and the one beside it
    with Journal.open(path) as journal:
        assert journal.reconciliation() == {}


async def test_an_interrupted_run_loses_nothing(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "i.journal"
    sb.pending_for = 0
    await simple_job(client, path, 6)
    async with await Reconciler.open(path, client, concurrency=1) as reconciler:

        def stop_after_two(p: ReconcileProgress) -> None:
            if p.checked == 2:
                reconciler.stop()

        report = await reconciler.run(progress=stop_after_two)
    assert report.interrupted and report.looked_up == 2
    assert report.counts == {"delivered": 2, "failed": 0, "pending": 4, "needs_action": 0}
    assert "interrupted" in report.summary()

    # cancelled outright in the middle: every record committed before stays, the journal
    # is whole
    task: asyncio.Task[Any] | None = None

    def cancel_after_one(p: ReconcileProgress) -> None:
        if p.checked == 1 and task is not None:
            task.cancel()

    task = asyncio.ensure_future(reconcile(client, path, concurrency=1, progress=cancel_after_one))
    with pytest.raises(asyncio.CancelledError):
        await task
    with Journal.open(path) as journal:
        assert len(journal.reconciliation()) == 3

    seen = len(lookups(sb))
    rest = await reconcile(client, path)
    assert rest.all_delivered and rest.looked_up == 3
    assert len(lookups(sb)) - seen == 3  # only the rows not recorded before
    # in all, no row looked up twice but the one in flight when the task was cancelled
    assert len(lookups(sb)) in (6, 7)


async def test_reconcile_needs_no_job_lock(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    """A job running on the journal (its lock held) does not stop a reconciliation, nor
    does a reconciliation stop a resume: they write different tables."""
    path = tmp_path / "l.journal"
    sb.pending_for = 0
    await simple_job(client, path, 2)
    with Journal.open(path) as running:
        running.lock()
        report = await reconcile(client, path)
        assert report.all_delivered
        assert len(running.reconciliation()) == 2  # seen by the job's own connection


# --- webhook events -----------------------------------------------------------------------


async def test_events_are_applied_without_a_network_call(
    sb: Sandbox, client: ta.TangoClient, mixed: Path
) -> None:
    await reconcile(client, mixed)  # records the line items of rows 1-3
    with Journal.open(mixed) as journal:
        records = journal.reconciliation()
        refs = {r.row: r.external_ref_id for r in journal.rows()}
    line_item = records[STAYS_PENDING].reference_line_item_id
    seen = len(sb.requests)
    t = datetime.now(UTC)
    events = [
        reward_status("COMPLETE", line_item=line_item, event_id="e1", revision=5, at=t),
        reward_status("COMPLETE", line_item=line_item, event_id="e1", revision=5, at=t),
        reward_status("PENDING", line_item=line_item, event_id="e0", revision=4, at=t),
        reward_status("CANCELLED", ref=refs[COMPLETES], event_id="e2", action="CANCEL"),
        reward_status("COMPLETE", line_item="U-not-ours", event_id="e3"),
        reward_status("", line_item=line_item, event_id="e4"),
    ]
    other = reward_status("COMPLETE", line_item=line_item, event_id="e5")
    other.event_type = "LineItemDeliveryStatus"
    report = await reconcile(None, mixed, events=[*events, other])
    assert len(sb.requests) == seen  # nothing asked of the API
    assert report.events == {
        "applied": 2,
        "duplicate": 1,
        "stale": 1,
        "unmatched": 1,
        "ignored": 2,
    }
    by_row = {r.row: r for r in report.rows}
    assert by_row[STAYS_PENDING].category == "delivered"
    assert by_row[STAYS_PENDING].source == "webhook"
    assert by_row[COMPLETES].category == "failed" and by_row[COMPLETES].status == "CANCELLED"
    with Journal.open(mixed) as journal:
        records = journal.reconciliation()
        assert journal.last_reconciled() is not None
    assert records[STAYS_PENDING].event_id == "e1" and records[STAYS_PENDING].revision == 5
    assert records[COMPLETES].detail == "action CANCEL"
    assert records[COMPLETES].reference_line_item_id is not None  # kept from the poll
    # a later poll of a final row does not look it up; a recheck replaces old news
    again = await reconcile(client, mixed)
    assert again.looked_up == 0


async def test_a_webhook_handler_records_events_as_they_come(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    """From a webhook receiver's callback, while nothing else reconciles: the events find
    their rows by externalRefID (no lookup recorded their line items yet)."""
    path = tmp_path / "h.journal"
    await simple_job(client, path, 5)
    with Journal.open(path) as journal:
        refs = [r.external_ref_id for r in journal.rows()]
    seen = len(sb.requests)
    async with await Reconciler.open(path) as reconciler:  # no client at all

        async def on_event(event: Any) -> None:
            await reconciler.apply(event)

        await asyncio.gather(
            *(
                on_event(reward_status("COMPLETE", ref=ref, line_item=f"U{i}", event_id=f"e{i}"))
                for i, ref in enumerate(refs)
            )
        )
        # out of order: revision 2 (CANCELLED) came before revision 1 (COMPLETE)
        late = datetime.now(UTC)
        first = await reconciler.apply(
            reward_status("CANCELLED", line_item="U0", event_id="r2", revision=2, at=late)
        )
        second = await reconciler.apply(
            reward_status("COMPLETE", line_item="U0", event_id="r1", revision=1, at=late)
        )
        assert (first.outcome, second.outcome) == ("applied", "stale")
        assert second.status == "CANCELLED" and second.row == 1
        report = await reconciler.report()
    assert len(sb.requests) == seen
    assert report.counts == {"delivered": 4, "failed": 1, "pending": 0, "needs_action": 0}
    assert report.events["applied"] == 6


async def test_pending_never_follows_a_final_status_and_later_news_wins(
    client: ta.TangoClient, sb: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "o.journal"
    await simple_job(client, path, 1)
    with Journal.open(path) as journal:
        ref = next(journal.rows()).external_ref_id
    t = datetime.now(UTC) - timedelta(minutes=1)  # (events dated later than now count as now)
    results = [
        (await reconcile(None, path, events=[e])).rows[0].status
        for e in (
            reward_status("COMPLETE", ref=ref, event_id="a", at=t),
            reward_status("PENDING", ref=ref, event_id="b", at=t + timedelta(seconds=5)),
            reward_status("FROZEN", ref=ref, event_id="c", at=t + timedelta(seconds=9)),
            reward_status("COMPLETE", ref=ref, event_id="d", at=t + timedelta(seconds=1)),
            reward_status("COMPLETE", ref=ref, event_id="e", at=t + timedelta(seconds=10)),
        )
    ]
    # PENDING after COMPLETE: a stale read, ignored; FROZEN (later) applies; an event that
    # occurred before it does not; a later one does
    assert results == ["COMPLETE", "COMPLETE", "FROZEN", "FROZEN", "COMPLETE"]


async def test_events_for_rows_without_an_order_yet(tmp_path: Path) -> None:
    """A webhook can arrive before the job records its order (the row still SENDING):
    recorded, and reported with the row, which still needs a resume."""
    path = tmp_path / "s.journal"
    with Journal.create(
        path, job_id="j", input_path="", input_digest="", rows=[(1, "ref-1", b'{"amount":5}')]
    ) as journal:
        journal.mark_sending(1)
    report = await reconcile(None, path, events=[reward_status("COMPLETE", ref="ref-1")])
    (row,) = report.rows
    assert report.events == {"applied": 1}
    assert row.category == "needs_action" and row.status == "COMPLETE"
    assert "the job stopped before the answer" in row.reason
    assert "a webhook reported its line item" in row.reason


def test_real_webhook_event_model_is_accepted(tmp_path: Path) -> None:
    """The SDK's own event model (issue 14, point 4) is what a handler hands over."""
    event_type = getattr(ta, "WebhookEvent", None)
    data_type = getattr(ta, "RewardStatusEventData", None)
    if event_type is None or data_type is None:
        pytest.skip("ta.WebhookEvent not built yet")
    path = tmp_path / "m.journal"
    with Journal.create(
        path, job_id="j", input_path="", input_digest="", rows=[(1, "ref-1", b'{"amount":5}')]
    ) as journal:
        journal.mark_sending(1)
        journal.mark_done(1, reference_order_id="RA-1", created=True, order_status="PENDING")
    event = event_type(
        event_id="0b7c1c9e-0000-4000-8000-000000000001",
        revision=7,
        event_type="RewardStatus",
        event_occurred_at=datetime.now(UTC),
        event_data=data_type(reference_line_item_id="U1", external_ref_id="ref-1", status="FAILED"),
    )
    report = asyncio.run(reconcile(None, path, events=[event]))
    assert report.rows[0].category == "failed" and report.rows[0].source == "webhook"
    assert report.rows[0].reference_line_item_id == "U1"


# --- the journal ------------------------------------------------------------------------------


def _journal_of_every_state(path: Path) -> Journal:
    rows = [(n, f"ref-{n}", b'{"amount":%d.50}' % n) for n in range(1, 8)]
    j = Journal.create(
        path,
        job_id="j",
        input_path="",
        input_digest="",
        rows=rows,
        invalid=[(9, "utid: required")],
    )
    for n in range(2, 8):
        j.mark_sending(n)
    j.mark_unknown(3, http_status=None, i18n_key=None, message="timed out")
    j.mark_failed(4, http_status=503, i18n_key=None, message="busy", retriable=True)
    j.mark_failed(5, http_status=400, i18n_key="400.004", message="bad email", retriable=False)
    j.mark_done(6, reference_order_id="RA-6", created=True, order_status="PENDING")
    j.mark_done(7, reference_order_id="RA-7", created=False, order_status="COMPLETE")
    return j


async def test_every_row_without_an_order_is_reported_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "all.journal"
    _journal_of_every_state(path).close()
    report = await reconcile(None, path)
    reasons = {r.row: (r.category, r.reason) for r in report.rows}
    assert (
        reasons[1][0] == "needs_action" and "not sent: tango-async resume sends it" in reasons[1][1]
    )
    assert "stopped before the answer" in reasons[2][1] and "resume settles" in reasons[2][1]
    assert "without a definite answer (timed out)" in reasons[3][1]
    assert "503" in reasons[4][1] and "resume sends it again" in reasons[4][1]
    assert "400 400.004: bad email" in reasons[5][1] and "--retry-failed" in reasons[5][1]
    assert reasons[6] == (
        "pending",
        "ordered, not looked up yet (the create call answered PENDING)",
    )
    assert reasons[7][0] == "pending"
    assert reasons[9][0] == "needs_action" and "invalid, never sent: utid" in reasons[9][1]
    assert report.amounts["needs_action"] == Decimal("17.50")  # rows 1-5
    assert report.amounts["pending"] == Decimal("14.00")  # rows 6 and 7


def test_record_status_refusals(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with _journal_of_every_state(tmp_path / "r.journal") as j:
        with pytest.raises(JournalError, match="refused before sending"):
            j.record_status(9, status="COMPLETE", source="webhook", as_of=now)
        with pytest.raises(JournalError, match="no order of it to look up"):
            j.record_status(3, status="COMPLETE", source="poll", as_of=now)
        with pytest.raises(JournalError, match="row 6's order is RA-6, not RA-9"):
            j.record_status(
                6, status="COMPLETE", source="poll", as_of=now, reference_order_id="RA-9"
            )
        with pytest.raises(JournalError, match="no row 99"):
            j.record_status(99, status="COMPLETE", source="poll", as_of=now)
        for bad in (
            {"status": ""},
            {"status": "X" * 65},
            {"source": "guess"},
            {"as_of": now.replace(tzinfo=None)},
            {"detail": 5},
            {"revision": True},
        ):
            args: dict[str, Any] = {"status": "COMPLETE", "source": "poll", "as_of": now, **bad}
            with pytest.raises(JournalError):
                j.record_status(6, **args)
        assert j.reconciliation() == {}
        applied, record = j.record_status(6, status="COMPLETE", source="poll", as_of=now)
        assert applied and record.reference_order_id == "RA-6" and record.final
        assert j.record_status(6, status="PENDING", source="poll", as_of=now)[0] is False
    assert "COMPLETE" in FINAL_STATUSES and "PENDING" not in FINAL_STATUSES


def _reconciled_copy(tmp_path: Path, name: str) -> Path:
    source = tmp_path / "source.journal"
    if not source.exists():
        with _journal_of_every_state(source) as j:
            now = datetime.now(UTC)
            j.record_status(
                6, status="PENDING", source="poll", as_of=now, reference_line_item_id="U6"
            )
            j.record_status(7, status="COMPLETE", source="poll", as_of=now)
    path = tmp_path / name
    shutil.copy(source, path)
    return path


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE reconciled SET status = 'COMPLETE' WHERE row = 6",
        "UPDATE reconciled SET reference_order_id = 'RA-9' WHERE row = 7",
        "DELETE FROM reconciled WHERE row = 6",
        "DROP TABLE reconciled",
        "UPDATE meta SET value = '5' WHERE key = 'reconciled'",
        "DELETE FROM meta WHERE key = 'reconciled_at'",
    ],
)
def test_an_edited_reconciliation_is_damage(tmp_path: Path, edit: str) -> None:
    path = _reconciled_copy(tmp_path, "edited.journal")
    with Journal.open(path) as j:  # whole before the edit
        assert set(j.reconciliation()) == {6, 7}
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(edit)
    db.close()
    data = path.read_bytes()
    with pytest.raises(JournalDamagedError) as caught:
        Journal.open(path)
    assert "reconcil" in caught.value.reason or "checksum" in caught.value.reason
    assert {r.row for r in caught.value.sent} >= {2, 3, 4, 5}  # the rows are recovered
    assert path.read_bytes() == data  # left as it was
    with pytest.raises(JournalDamagedError):
        asyncio.run(reconcile(None, path))


def test_a_reconciled_journal_still_resumes_and_reports(tmp_path: Path) -> None:
    """The rows table is unchanged: the job's own code paths read it as before, and its
    results file shows the reconciled status."""
    path = _reconciled_copy(tmp_path, "ok.journal")
    with Journal.open(path) as j:
        assert j.schema == 3
        assert len(j.to_send()) == 4  # PENDING, SENDING, UNKNOWN, the retriable FAILED
        out = write_report(j, tmp_path / "results.csv")
    rows = {r["row"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["6"]["status"] == "PENDING" and rows["7"]["status"] == "COMPLETE"


async def test_a_schema_1_journal_is_upgraded_before_its_first_record(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "old.journal"
    sb.pending_for = 0
    await simple_job(client, path, 2)
    downgrade_to_schema_1(path)
    report = await reconcile(client, path)
    assert report.all_delivered
    with Journal.open(path) as j:
        assert j.schema == 3 and len(j.reconciliation()) == 2


async def test_the_results_file(sb: Sandbox, client: ta.TangoClient, mixed: Path) -> None:
    report = await reconcile(client, mixed)
    out = write_reconcile_report(report, mixed.with_name("r.csv"))
    with out.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == RECONCILE_FIELDS
        rows = {r["row"]: r for r in reader}
    assert rows["1"]["result"] == "failed" and rows["1"]["status"] == "FAILED"
    assert rows["2"]["result"] == "delivered" and rows["2"]["amount"] == "2"
    assert rows["3"]["referenceLineItemID"].startswith("U")
    assert rows["5"]["result"] == "needs_action" and rows["5"]["amount"] == ""
    jsonl = write_reconcile_report(report, mixed.with_name("r.jsonl"))
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert [line["row"] for line in lines] == [1, 2, 3, 4, 5]
    # issue 16: an amount is a JSON number in plain decimal notation, never a string
    assert lines[2]["result"] == "pending" and lines[1]["amount"] == 2
    assert '"amount":2,' in jsonl.read_text(encoding="utf-8").splitlines()[1]
    with pytest.raises(ta.ValidationError):
        write_reconcile_report(report, mixed.with_name("r.x"), format="xml")


async def test_bad_arguments(client: ta.TangoClient, tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    await simple_job(client, path, 1)
    for options in ({"concurrency": 0}, {"poll": 0}, {"poll": 10, "max_poll": 5}):
        with pytest.raises(ta.ValidationError):
            await reconcile(client, path, **options)
    with pytest.raises(ta.ValidationError, match="timeout"):
        await reconcile(client, path, wait=True, timeout=float("nan"))
    async with await Reconciler.open(path) as reconciler:
        with pytest.raises(ta.ValidationError, match="client"):
            await reconciler.run()
    with pytest.raises(JournalError, match="no journal"):
        await reconcile(client, tmp_path / "missing.journal")


# --- the command line ---------------------------------------------------------------------


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def tsb() -> Iterator[ThreadedSandbox]:
    with threaded_sandbox() as server:
        yield server


def test_cli_reconcile_then_status(tsb: ThreadedSandbox, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv.journal"
    tsb.job(mixed_job, path)
    result = invoke(*tsb.args, "reconcile", path)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert re.search(r"delivered\s+1\s+amount 2$", out, re.MULTILINE), out
    assert re.search(r"failed \(not delivered; refunded\)\s+1\s+amount 1$", out, re.MULTILINE)
    assert re.search(r"pending \(ordered, not final yet\)\s+1\s+amount 3$", out, re.MULTILINE)
    assert re.search(r"needs action \(no order\)\s+2\s+amount 4$", out, re.MULTILINE)
    assert "looked up 3 order(s), 3 changed" in out
    report = tmp_path / "orders.csv.reconciled.csv"
    assert f"report: {report}" in out
    assert f"1 row(s) have no order yet: tango-async resume {path}" in out
    assert f"not final yet: tango-async reconcile {path} again later" in out
    assert "progress: round 1, looked up 3 of 3" in result.stderr
    with report.open(newline="", encoding="utf-8") as f:
        assert [r["result"] for r in csv.DictReader(f)] == [
            "failed",
            "delivered",
            "pending",
            "needs_action",
            "needs_action",
        ]

    status = invoke("status", path)
    assert status.exit_code == 0, status.output
    assert re.search(
        r"^reconciled \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(last record by poll\)$", status.stdout, re.M
    )
    assert re.search(r"^  delivered\s+1  amount 2$", status.stdout, re.MULTILINE)
    assert re.search(r"^  pending\s+1  amount 3$", status.stdout, re.MULTILINE)
    assert re.search(r"^  needs action\s+2  amount 4$", status.stdout, re.MULTILINE)
    assert f"1 order(s) not final yet: tango-async reconcile {path}" in status.stdout

    tsb.advance(PENDING_FOR + 1)
    again = invoke(*tsb.args, "reconcile", path)
    assert again.exit_code == 1, again.output  # a row failed, two have no order
    assert "looked up 1 order(s), 1 changed" in again.stdout
    assert re.search(r"delivered\s+2\s+amount 5$", again.stdout, re.MULTILINE)
    assert "again later" not in again.stdout


def test_cli_exit_0_when_every_row_was_delivered(tsb: ThreadedSandbox, tmp_path: Path) -> None:
    path = tmp_path / "all.journal"
    tsb.job(simple_job, path, 3)
    before = invoke("status", path)
    assert f"not reconciled yet: tango-async reconcile {path}" in before.stdout
    tsb.advance(PENDING_FOR + 1)
    report = tmp_path / "out.jsonl"
    result = invoke(*tsb.args, "reconcile", path, "--report", report, "--concurrency", "3")
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["result"] for x in report.read_text().splitlines()] == ["delivered"] * 3
    again = invoke(*tsb.args, "reconcile", path)
    assert again.exit_code == 0 and "looked up 0 order(s), 0 changed" in again.stdout


def test_cli_wait_with_a_timeout(tsb: ThreadedSandbox, tmp_path: Path) -> None:
    """The CLI's client runs on real time: a wait of a few hundredths of a second."""
    path = tmp_path / "w.journal"
    tsb.job(simple_job, path, 2)
    result = invoke(
        *tsb.args, "reconcile", path, "--wait", "--timeout", "0.05", "--poll-interval", "0.01"
    )
    assert result.exit_code == 1, result.output
    assert "timed out waiting: 2 row(s) still not final" in result.stdout
    refused = invoke(*tsb.args, "reconcile", path, "--timeout", "5")
    assert refused.exit_code == 2 and "--wait" in refused.output


def test_cli_bad_credentials_journal_and_usage_are_exit_2(
    tsb: ThreadedSandbox, tmp_path: Path
) -> None:
    path = tmp_path / "c.journal"
    tsb.job(simple_job, path, 2)
    args = [*tsb.args[:-1], "wrong-key"]
    wrong = invoke(*args, "reconcile", path)
    assert wrong.exit_code == 2, wrong.output
    assert "stopped: the API refused the lookups (401)" in wrong.stdout
    assert invoke(*tsb.args, "reconcile", tmp_path / "nope.journal").exit_code == 2
    assert invoke(*tsb.args, "reconcile", path, "--concurrency", "0").exit_code == 2
    assert invoke(*tsb.args, "reconcile", path, "--report", path).exit_code == 2  # the journal

    assert invoke(*tsb.args, "reconcile", path).exit_code == 1
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE reconciled SET status = 'COMPLETE'")  # "delivered", by hand
    db.close()
    for result in (invoke(*tsb.args, "reconcile", path), invoke("status", path)):
        assert result.exit_code == 2, result.output
        assert "is damaged" in result.stderr and "do not match their checksum" in result.stderr


def test_cli_ctrl_c_is_exit_130_and_keeps_what_was_recorded(
    tsb: ThreadedSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "i.journal"
    tsb.job(simple_job, path, 8)
    tsb.advance(PENDING_FOR + 1)
    record = Journal.record_status
    calls = 0

    def interrupting(self: Journal, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, once the first status is recorded
        return record(self, *args, **kwargs)

    monkeypatch.setattr(Journal, "record_status", interrupting)
    result = invoke(*tsb.args, "reconcile", path, "--concurrency", "1")
    assert result.exit_code == 130, result.output
    assert "stopping after the lookups in flight" in result.stderr
    assert f"interrupted; continue with: tango-async reconcile {path}" in result.stdout
    with Journal.open(path) as j:
        done = len(j.reconciliation())
    assert 1 <= done < 8
    monkeypatch.setattr(Journal, "record_status", record)
    rest = invoke(*tsb.args, "reconcile", path)
    assert rest.exit_code == 0, rest.output
    assert f"looked up {8 - done} order(s)" in rest.stdout


@pytest.mark.parametrize(
    ("option", "values"),
    [
        ("--timeout", ["-1", "nan", "inf", "86401", "1e999", "x"]),
        ("--poll-interval", ["0", "-1", "nan", "inf", "86401", "x"]),
        ("--concurrency", ["0", "65", "1.5", "10**30", "x"]),
        ("--progress-interval", ["-1", "nan", "inf", "x"]),
    ],
)
def test_cli_numeric_options_are_usage_errors(
    tmp_path: Path, option: str, values: list[str]
) -> None:
    """Each refused when the command line is parsed (exit 2, naming the option), before
    a journal is opened or a file written."""
    for value in values:
        res = invoke("reconcile", tmp_path / "j.journal", "--wait", option, value)
        assert res.exit_code == 2, (option, value, res.output)
        assert option in res.stderr
    assert list(tmp_path.iterdir()) == []
