"""Bulk order jobs against the in-process sandbox: results, externalRefIDs, validation,
the journal and resume, lost replies and chaos, failures, pacing, progress, reports."""

from __future__ import annotations

import asyncio
import csv
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import tango_async as ta
from tango_async._auth import Credential
from tango_async.bulk._inputs import InputRow, RowError
from tango_async.bulk._job import (
    BulkJob,
    BulkValidationError,
    Progress,
    RowResult,
    derive_job_id,
)
from tango_async.bulk._journal import Journal, JournalError, RowState
from tango_async.bulk._report import REPORT_FIELDS, summary, write_report
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY, order_request

REF = re.compile(r"^tb[0-9a-f]{40}$")  # derived from the row's content
ACCOUNT = "acct-12345"  # order_request()'s account


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None) as server:
        yield server


@pytest.fixture
async def client(sb: Sandbox) -> AsyncIterator[ta.TangoClient]:
    async with sb.client(retry=FAST_RETRY) as tango:
        yield tango


def requests_for(n: int, **kw: Any) -> list[ta.CreateOrderRequest]:
    """``n`` distinct valid orders (amounts 1..n unless ``amount`` is given)."""
    return [order_request(**{"amount": i, **kw}) for i in range(1, n + 1)]


async def run(job: BulkJob) -> list[RowResult]:
    return [r async for r in job]


def refs_on(sb: Sandbox) -> Counter[str]:
    """How many orders the sandbox holds per externalRefID."""
    return Counter(o["externalRefID"] for o in sb.orders.values())


def posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.method == "POST" and r.path.endswith("/orders")]


def assert_one_order_per_row(sb: Sandbox, refs: Sequence[str]) -> None:
    held = refs_on(sb)
    assert set(held) == set(refs), "an order is missing, or one has an unknown externalRefID"
    assert set(held.values()) == {1}, f"duplicates: {[r for r, n in held.items() if n > 1]}"


# --- submit_many: results, externalRefIDs, idempotence ------------------------------------------


async def test_submit_many_one_result_per_row_all_created(
    sb: Sandbox, client: ta.TangoClient
) -> None:
    job = client.orders.submit_many(requests_for(6), concurrency=2)
    results: list[RowResult] = []
    async for result in job:
        assert isinstance(result, RowResult)
        results.append(result)
    assert sorted(r.row for r in results) == [1, 2, 3, 4, 5, 6]
    assert job.results == results  # in completion order, as yielded
    assert {r.outcome for r in results} == {"created"}
    assert all(r.reference_order_id in sb.orders for r in results)
    assert all(r.status == "COMPLETE" for r in results)
    for r in results:
        assert REF.match(r.external_ref_id), r.external_ref_id
    assert len({r.external_ref_id for r in results}) == 6
    assert_one_order_per_row(sb, [r.external_ref_id for r in results])
    # the order the sandbox holds for a row is the row's own
    for r in results:
        assert Decimal(str(sb.orders[r.reference_order_id]["denomination"]["value"])) == r.row
    assert not job.stopped


async def test_same_input_same_job_id_and_no_second_order(
    sb: Sandbox, client: ta.TangoClient
) -> None:
    first = await run(client.orders.submit_many(requests_for(5)))
    again = await run(client.orders.submit_many(requests_for(5)))  # equal requests, new objects
    by_row = {r.row: r for r in first}
    assert {r.outcome for r in again} == {"existing"}
    for r in again:
        assert r.external_ref_id == by_row[r.row].external_ref_id
        assert r.reference_order_id == by_row[r.row].reference_order_id
    assert len(sb.orders) == 5
    assert_one_order_per_row(sb, [r.external_ref_id for r in first])
    assert len(posts(sb)) == 10
    assert [r.status for r in posts(sb)].count(200) == 5

    # other content -> other refs, new orders
    other = await run(client.orders.submit_many(requests_for(5, utid="U666425")))
    assert {r.outcome for r in other} == {"created"}
    assert not {r.external_ref_id for r in other} & {r.external_ref_id for r in first}
    assert len(sb.orders) == 10


async def test_job_id_keeps_the_0_1_scheme(sb: Sandbox, client: ta.TangoClient) -> None:
    """0.1 documented ``job_id=`` as giving ``{job_id}r{row}``: a job it started finishes
    with the same refs (nothing paid twice across the upgrade)."""
    results = await run(client.orders.submit_many(requests_for(3), job_id="batch7"))
    assert sorted(r.external_ref_id for r in results) == ["batch7r1", "batch7r2", "batch7r3"]
    again = await run(client.orders.submit_many(requests_for(3), job_id="batch7"))
    assert {r.outcome for r in again} == {"existing"}
    assert set(refs_on(sb)) == {"batch7r1", "batch7r2", "batch7r3"}
    with pytest.raises(ta.ValidationError, match="job_id"):
        client.orders.submit_many(requests_for(1), job_id="not valid!")


async def test_run_label_sends_again_once(sb: Sandbox, client: ta.TangoClient) -> None:
    plain = await run(client.orders.submit_many(requests_for(3)))
    labelled = await run(client.orders.submit_many(requests_for(3), run_label="batch7"))
    twice = await run(client.orders.submit_many(requests_for(3), run_label="batch7"))
    assert {r.outcome for r in plain} == {r.outcome for r in labelled} == {"created"}
    assert {r.outcome for r in twice} == {"existing"}
    assert len(sb.orders) == 6


def test_derive_job_id_is_deterministic() -> None:
    assert derive_job_id("abc") == derive_job_id("abc")
    assert derive_job_id("abc") != derive_job_id("abd")
    assert re.fullmatch(r"tj[0-9a-f]{12}", derive_job_id("abc"))


async def test_own_external_ref_id_is_kept(sb: Sandbox, client: ta.TangoClient) -> None:
    reqs = [order_request(amount=1), order_request(amount=2, external_ref_id="mine-0042")]
    results = {r.row: r for r in await run(client.orders.submit_many(reqs))}
    assert results[2].external_ref_id == "mine-0042"
    assert REF.match(results[1].external_ref_id)
    assert sb.orders[results[2].reference_order_id]["externalRefID"] == "mine-0042"
    assert_one_order_per_row(sb, [r.external_ref_id for r in results.values()])


async def test_duplicate_external_ref_ids_name_both_rows(
    sb: Sandbox, client: ta.TangoClient
) -> None:
    reqs = [
        order_request(external_ref_id="dup-0001"),
        order_request(amount=2),
        order_request(external_ref_id="dup-0001", amount=3),
    ]
    with pytest.raises(BulkValidationError) as info:
        client.orders.submit_many(reqs)
    (error,) = info.value.errors
    assert error.row == 3 and error.field == "external_ref_id"
    assert "row 1" in error.rule and "dup-0001" in error.rule
    assert "row 3" in str(info.value) and "row 1" in str(info.value)
    assert sb.requests == []


async def test_a_generated_ref_cannot_collide_with_a_given_one(
    sb: Sandbox, client: ta.TangoClient
) -> None:
    # row 2 names the ref row 1 would be given: refused before anything is sent
    from tango_async.bulk._job import plan_rows

    generated = plan_rows([order_request()], run_label="jobx").rows[0][1]
    reqs = [order_request(), order_request(external_ref_id=generated, amount=2)]
    with pytest.raises(BulkValidationError) as info:
        client.orders.submit_many(reqs, run_label="jobx")
    assert [(e.row, e.field) for e in info.value.errors] == [(2, "external_ref_id")]
    assert sb.requests == []


# --- validation before sending ---------------------------------------------------------------


def bad_requests() -> list[ta.CreateOrderRequest | InputRow]:
    return [
        order_request(amount=1),
        order_request(amount=-5),  # row 2: amount
        order_request(amount=3),
        order_request(recipient=ta.Recipient(email="nope", first_name="A")),  # row 4
        order_request(customer_identifier="x"),  # row 5: customer_identifier
        order_request(amount=6),
        InputRow(7, None, (RowError(7, "utid", "is required"), RowError(7, "amount", "bad"))),
    ]


async def test_invalid_rows_are_all_listed_and_nothing_is_sent(
    sb: Sandbox, client: ta.TangoClient
) -> None:
    with pytest.raises(BulkValidationError) as info:
        client.orders.submit_many(bad_requests())
    found = [(e.row, e.field) for e in info.value.errors]
    assert found == [
        (2, "amount"),
        (4, "recipient.email"),
        (5, "customer_identifier"),
        (7, "utid"),
        (7, "amount"),
    ]
    assert all(e.rule for e in info.value.errors)
    text = str(info.value)
    assert text.startswith("4 invalid row(s), nothing sent")
    assert "row 2, amount: must be greater than 0" in text
    assert "row 4, recipient.email:" in text and "row 7, utid: is required" in text
    assert isinstance(info.value, ValueError) and isinstance(info.value, ta.TangoError)
    assert sb.requests == []


async def test_invalid_rows_refused_before_a_journal_is_made(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "job.journal"
    with pytest.raises(BulkValidationError):
        client.orders.submit_many(bad_requests(), journal=path)
    assert not path.exists()
    assert sb.requests == []


async def test_skip_invalid_sends_the_valid_rows(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "job.journal"
    job = client.orders.submit_many(bad_requests(), skip_invalid=True, journal=path)
    results = {r.row: r for r in await run(job)}
    assert sorted(results) == [1, 2, 3, 4, 5, 6, 7]
    assert {n for n, r in results.items() if r.outcome == "created"} == {1, 3, 6}
    invalid = {n: r for n, r in results.items() if r.outcome == "invalid"}
    assert sorted(invalid) == [2, 4, 5, 7]
    assert invalid[2].message is not None and invalid[2].message.startswith("amount:")
    assert invalid[4].message is not None and "recipient.email" in invalid[4].message
    assert all(r.external_ref_id == "" and r.reference_order_id is None for r in invalid.values())
    assert len(posts(sb)) == 3 and len(sb.orders) == 3
    counts = Journal.open(path).counts()
    assert counts[RowState.DONE] == 3 and counts[RowState.INVALID] == 4
    assert sum(counts.values()) == 7
    p = job.progress()
    assert (p.total, p.done, p.failed, p.remaining) == (7, 3, 4, 0)


async def test_a_job_runs_once(client: ta.TangoClient) -> None:
    job = client.orders.submit_many(requests_for(1))
    await run(job)
    with pytest.raises(RuntimeError):
        await run(job)


async def test_concurrency_must_be_positive(client: ta.TangoClient) -> None:
    with pytest.raises(ta.ValidationError):
        client.orders.submit_many(requests_for(2), concurrency=0)


async def test_journal_refuses_an_existing_file(client: ta.TangoClient, tmp_path: Path) -> None:
    path = tmp_path / "job.journal"
    path.write_bytes(b"something")
    with pytest.raises(JournalError):
        client.orders.submit_many(requests_for(2), journal=path)
    assert path.read_bytes() == b"something"


# --- the journal: stop, resume ------------------------------------------------------------------


async def stop_after(job: BulkJob, n: int) -> list[RowResult]:
    seen: list[RowResult] = []
    async for result in job:
        seen.append(result)
        if len(seen) == n:
            job.stop()
    return seen


async def test_stop_then_resume_finishes_with_one_order_per_row(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "job.journal"
    job = client.orders.submit_many(requests_for(10), journal=path, concurrency=1)
    seen = await stop_after(job, 3)
    assert job.stopped
    assert job.journal is not None
    job.journal.close()
    # every result the job yielded is DONE in the journal; nothing else was sent
    journal = Journal.open(path)
    counts = journal.counts()
    done = counts[RowState.DONE]
    assert done == len(seen) == len(sb.orders) == len(posts(sb))
    assert 3 <= done <= 4  # stop() lets the request in flight finish
    assert counts[RowState.PENDING] == 10 - done
    assert counts[RowState.SENDING] == counts[RowState.FAILED] == 0
    p = job.progress()
    assert (p.total, p.done, p.remaining) == (10, done, 10 - done)

    rest = BulkJob.resume(client, journal)
    assert rest.progress().done == done and rest.progress().remaining == 10 - done
    finished = await run(rest)
    assert sorted(r.row for r in finished) == list(range(done + 1, 11))
    assert {r.outcome for r in finished} == {"created"}
    assert journal.counts()[RowState.DONE] == 10
    refs = [r.external_ref_id for r in journal.rows()]
    assert len(set(refs)) == 10
    assert_one_order_per_row(sb, refs)
    sent = Counter(r.json["externalRefID"] for r in posts(sb))
    assert set(sent.values()) == {1}  # no externalRefID sent twice
    journal.close()


async def test_stop_after_three_results_with_concurrency_one_sends_three(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "job.journal"
    job = client.orders.submit_many(requests_for(10), journal=path, concurrency=1)
    await stop_after(job, 3)
    assert job.journal is not None
    counts = job.journal.counts()
    job.journal.close()
    assert counts[RowState.DONE] == 3
    assert counts[RowState.PENDING] == 7
    assert len(posts(sb)) == 3


async def test_a_sending_row_is_resent_on_resume_and_comes_back_existing(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "job.journal"
    # no pre-flight: the journal is made at once (with one, after it: job.preflight())
    job = client.orders.submit_many(requests_for(4), journal=path, preflight=False)
    assert job.journal is not None
    job.journal.mark_sending(2)  # the job died with row 2 in flight...
    row2 = job.journal.get(2)
    job.journal.close()
    sent = await client.orders.send_encoded(row2.external_ref_id, row2.request)  # ...after it
    assert sent.created  # reached the API

    journal = Journal.open(path)
    assert journal.counts()[RowState.SENDING] == 1
    results = {r.row: r for r in await run(BulkJob.resume(client, journal))}
    assert sorted(results) == [1, 2, 3, 4]
    assert results[2].outcome == "existing"
    assert results[2].reference_order_id == sent.reference_order_id
    assert {results[n].outcome for n in (1, 3, 4)} == {"created"}
    assert len(sb.orders) == 4
    assert_one_order_per_row(sb, [r.external_ref_id for r in results.values()])
    again = journal.get(2)
    assert again.state is RowState.DONE and again.attempt == 2 and again.created is False
    journal.close()


async def test_resume_of_a_finished_job_sends_nothing(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "job.journal"
    job = client.orders.submit_many(requests_for(3), journal=path)
    await run(job)
    assert job.journal is not None
    job.journal.close()
    before = len(sb.requests)
    with Journal.open(path) as journal:
        rest = BulkJob.resume(client, journal)
        assert await run(rest) == []
        p = rest.progress()
    assert (p.total, p.done, p.failed, p.remaining) == (3, 3, 0, 0)
    assert len(sb.requests) == before


# --- lost replies, chaos -----------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["drop-after-commit", "500-after-commit"])
async def test_lost_replies_never_make_a_second_order(
    sb: Sandbox, client: ta.TangoClient, fault: str
) -> None:
    sb.inject("POST /orders", fault, times=3)
    results = await run(client.orders.submit_many(requests_for(8), concurrency=2))
    assert {r.outcome for r in results} == {"created", "existing"}
    assert_one_order_per_row(sb, [r.external_ref_id for r in results])
    assert len(sb.orders) == 8
    faulted = [r.json["externalRefID"] for r in posts(sb) if r.fault == fault]
    assert len(faulted) == 3  # (a retry may meet the next fault too)
    # a row whose reply was lost comes back "existing": its retry found the order
    assert {r.external_ref_id for r in results if r.outcome == "existing"} == set(faulted)
    assert len(posts(sb)) == 8 + 3


async def test_chaos_zero_duplicates_zero_lost(sb: Sandbox, tmp_path: Path) -> None:
    sb.chaos(
        0.3,
        seed=3,
        faults=("500", "503", "500-after-commit", "drop-after-commit", "429"),
        retry_after=0,  # the 429s' Retry-After: keep the test fast
    )
    path = tmp_path / "job.journal"
    async with sb.client(retry=FAST_RETRY, max_retries=8) as client:
        job = client.orders.submit_many(requests_for(40), journal=path, concurrency=4)
        results = await run(job)
    assert sorted(r.row for r in results) == list(range(1, 41))
    assert {r.outcome for r in results} <= {"created", "existing"}
    assert_one_order_per_row(sb, [r.external_ref_id for r in results])
    assert len(sb.orders) == 40
    assert any(r.fault for r in posts(sb))  # the chaos did happen
    assert job.journal is not None
    assert job.journal.counts()[RowState.DONE] == 40
    for row in job.journal.rows():
        assert sb.orders[row.reference_order_id or ""]["externalRefID"] == row.external_ref_id
    job.journal.close()


# --- failures that are not retried --------------------------------------------------------------


async def test_insufficient_funds_stops_the_job_and_resume_continues(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    """402 is systemic: every later row would get it. The job stops at the first one,
    nothing more is sent, the rows not ordered stay pending; funded, a resume finishes."""
    sb.set_balance(ACCOUNT, 25)  # two orders of 10
    path = tmp_path / "job.journal"
    # balance_check=False: past the pre-flight's refusal (tests/test_preflight*.py), to the API
    job = client.orders.submit_many(
        requests_for(6, amount=10), journal=path, concurrency=1, balance_check=False
    )
    results = {r.row: r for r in await run(job)}
    assert [results[n].outcome for n in sorted(results)] == ["created", "created", "pending"]
    refused = results[3]
    assert refused.http_status == 402 and refused.i18n_key == "402.001" and refused.message
    assert job.stopped and job.stopped_by is not None
    assert job.stopped_by.row == 3 and "fund" in job.stopped_by.reason
    assert isinstance(job.stopped_by.error, ta.InsufficientFundsError)
    assert len(posts(sb)) == 3  # nothing after the first 402
    p = job.progress()
    assert (p.total, p.done, p.failed, p.remaining) == (6, 2, 0, 4)
    assert job.journal is not None
    job.journal.close()

    with Journal.open(path) as journal:
        counts = journal.counts()
        assert counts[RowState.DONE] == 2 and counts[RowState.PENDING] == 4
        assert journal.get(3).http_status == 402  # why it is pending
        sb.set_balance(ACCOUNT, 100)
        rest = {r.row: r for r in await run(BulkJob.resume(client, journal))}
        assert sorted(rest) == [3, 4, 5, 6]
        assert {r.outcome for r in rest.values()} == {"created"}
        assert rest[3].external_ref_id == refused.external_ref_id
        assert journal.counts()[RowState.DONE] == 6
    assert len(sb.orders) == 6


@pytest.mark.parametrize("cause", ["401", "403", "frozen"])
async def test_systemic_refusals_stop_at_once(sb: Sandbox, tmp_path: Path, cause: str) -> None:
    path = tmp_path / "job.journal"
    if cause == "401":
        tango = sb.client(retry=FAST_RETRY)
        tango._transport._credential = Credential(b"Basic d3Jvbmc6a2V5")  # a wrong key
    else:
        tango = sb.client(retry=FAST_RETRY)
        if cause == "403":
            sb.inject(
                "POST /orders",
                "legacy-error-body",
                times=50,
                status=403,
                i18nKey="403.001",
                message="Forbidden",
            )
        else:
            sb.freeze(ACCOUNT)
    async with tango:
        job = tango.orders.submit_many(requests_for(20), journal=path, concurrency=2)
        results = await run(job)
    assert job.stopped_by is not None
    assert len(posts(sb)) <= 2  # the first answer, and the one in flight beside it
    assert {r.outcome for r in results} == {"pending"}
    assert job.journal is not None
    assert job.journal.counts()[RowState.PENDING] == 20
    job.journal.close()


async def test_per_row_4xx_stays_a_row_failure(sb: Sandbox, client: ta.TangoClient) -> None:
    sb.inject(
        "POST /orders",
        "legacy-error-body",
        times=1,
        status=400,
        i18nKey="400.004",
        message="recipient rejected",
        when={"amount": 2},
    )
    results = {r.row: r for r in await run(client.orders.submit_many(requests_for(4)))}
    assert [results[n].outcome for n in range(1, 5)] == ["created", "failed", "created", "created"]


async def test_retriable_failures_are_resent_on_resume(sb: Sandbox, tmp_path: Path) -> None:
    """A 503 may have been processed: the row's outcome is unknown, never 'failed';
    resume re-sends it first, with its externalRefID."""
    sb.inject("POST /orders", "503", times=2)
    path = tmp_path / "job.journal"
    async with sb.client(retry=FAST_RETRY, max_retries=0) as client:
        job = client.orders.submit_many(requests_for(3), journal=path, concurrency=1)
        results = {r.row: r for r in await run(job)}
        assert results[1].outcome == results[2].outcome == "unknown"
        assert results[1].retriable is True and results[1].http_status == 503
        assert results[3].outcome == "created"
        assert job.journal is not None
        assert job.journal.get(1).state is RowState.UNKNOWN
        job.journal.close()
        with Journal.open(path) as journal:
            assert [r.row for r in journal.to_send()] == [1, 2]
            again = {r.row: r for r in await run(BulkJob.resume(client, journal))}
    assert sorted(again) == [1, 2]
    assert {r.outcome for r in again.values()} == {"created"}
    assert_one_order_per_row(sb, [r.external_ref_id for r in results.values()])


async def test_unreadable_201_is_never_a_failure(sb: Sandbox, tmp_path: Path) -> None:
    """The server commits and answers a truncated 201: the row ends created (asked again
    with its ref), or stays unknown with its ref; resume settles it."""
    path = tmp_path / "job.journal"
    async with sb.client(retry=FAST_RETRY) as patient:
        sb.inject("POST /orders", "truncated-200", times=1)
        first = await run(patient.orders.submit_many(requests_for(2), concurrency=1))
        assert {r.outcome for r in first} == {"created"}
    async with sb.client(retry=FAST_RETRY, max_retries=0) as client:
        sb.inject("POST /orders", "truncated-200", times=1)
        job = client.orders.submit_many(
            requests_for(2, utid="U666425"), journal=path, concurrency=1
        )
        results = {r.row: r for r in await run(job)}
        assert results[1].outcome == "unknown" and results[2].outcome == "created"
        assert job.journal is not None
        job.journal.close()
        with Journal.open(path) as journal:
            again = {r.row: r for r in await run(BulkJob.resume(client, journal))}
            assert again[1].outcome == "existing"
            assert again[1].external_ref_id == results[1].external_ref_id
    assert len(sb.orders) == 4


# --- pacing, progress --------------------------------------------------------------------------


async def test_concurrency_never_beats_the_rate_limit() -> None:
    rate = 20.0
    async with (
        Sandbox(order_rate=rate) as server,
        server.client(retry=FAST_RETRY, order_rate=rate, rate_margin=0.25) as client,
    ):
        results = await run(client.orders.submit_many(requests_for(12), concurrency=4))
        arrivals = server.arrivals("POST", "/orders", exact=True)
    assert {r.outcome for r in results} == {"created"}
    assert all(r.status != 429 for r in server.requests)
    assert len(arrivals) == 12  # no retries
    assert min(b - a for a, b in pairwise(arrivals)) >= 1 / rate


async def test_progress_is_consistent(sb: Sandbox, client: ta.TangoClient) -> None:
    job = client.orders.submit_many(requests_for(5), concurrency=1)
    before = job.progress()
    assert isinstance(before, Progress)
    assert (before.total, before.done, before.failed, before.remaining) == (5, 0, 0, 5)
    assert before.elapsed == 0.0 and before.rate == 0.0
    spacing = client.rate_limiter.spacing  # type: ignore[attr-defined]
    assert before.eta == pytest.approx(5 * spacing)
    async for _ in job:
        p = job.progress()
        assert p.done + p.failed + p.remaining == p.total == 5
        assert p.eta == pytest.approx(p.remaining * spacing)
    end = job.progress()
    assert (end.total, end.done, end.failed, end.remaining, end.eta) == (5, 5, 0, 0, 0.0)
    assert end.elapsed > 0 and end.rate > 0


async def test_progress_of_a_stopped_job(sb: Sandbox, tmp_path: Path) -> None:
    async with sb.client(retry=FAST_RETRY, order_rate=100.0) as client:
        job = client.orders.submit_many(
            requests_for(8), journal=tmp_path / "job.journal", concurrency=1
        )
        seen = await stop_after(job, 2)
        p = job.progress()
        spacing = client.rate_limiter.spacing  # type: ignore[attr-defined]
    assert job.stopped
    assert p.done == len(seen) and p.remaining == 8 - len(seen) > 0
    assert p.eta == pytest.approx(p.remaining * spacing)
    assert p.eta > 0
    assert job.journal is not None
    job.journal.close()


# --- reports -----------------------------------------------------------------------------------


async def mixed_job(sb: Sandbox, client: ta.TangoClient, path: Path) -> BulkJob:
    """Rows 1-2 created, 3 invalid, 4-5 failed (a per-row 400), via a journal at ``path``."""
    bounce = ta.Recipient(email="bounce@example.com", first_name="Bo", last_name="Unce")
    sb.inject(
        "POST /orders",
        "legacy-error-body",
        times=2,
        status=400,
        i18nKey="400.004",
        message="recipient rejected",
        when={"recipient.email": "bounce@example.com"},
    )
    reqs: list[ta.CreateOrderRequest | InputRow] = [
        order_request(amount=10),
        order_request(amount=10, external_ref_id="own-00002"),
        order_request(amount=-1),
        order_request(amount=10, recipient=bounce),
        order_request(amount=11, recipient=bounce),
    ]
    job = client.orders.submit_many(reqs, journal=path, skip_invalid=True, concurrency=1)
    await run(job)
    return job


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == REPORT_FIELDS
        return list(reader)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_report_fields() -> None:
    assert REPORT_FIELDS == (
        "row",
        "externalRefID",
        "referenceOrderID",
        "outcome",
        "status",
        "i18nKey",
        "message",
    )


@pytest.mark.parametrize("source", ["journal", "results"])
async def test_write_report_csv_and_jsonl(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path, source: str
) -> None:
    job = await mixed_job(sb, client, tmp_path / "job.journal")
    assert job.journal is not None
    src: Journal | list[RowResult] = job.journal if source == "journal" else job.results

    out_csv = write_report(src, tmp_path / "report.csv")
    rows = read_csv(out_csv)
    assert [r["row"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r["outcome"] for r in rows] == ["created", "created", "invalid", "failed", "failed"]
    assert rows[1]["externalRefID"] == "own-00002"
    assert REF.match(rows[0]["externalRefID"])
    assert rows[0]["referenceOrderID"] in sb.orders and rows[0]["status"] == "COMPLETE"
    assert rows[2]["externalRefID"] == "" and rows[2]["referenceOrderID"] == ""
    assert rows[2]["message"].startswith("amount:")
    assert rows[3]["status"] == "400" and rows[3]["i18nKey"] == "400.004"
    assert rows[3]["referenceOrderID"] == "" and rows[3]["message"]

    out_jsonl = write_report(src, tmp_path / "report.jsonl")
    lines = read_jsonl(out_jsonl)
    assert [tuple(line) for line in lines] == [REPORT_FIELDS] * 5
    assert [line["row"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["outcome"] for line in lines] == [r["outcome"] for r in rows]
    assert lines[3]["status"] == 400 and lines[3]["i18nKey"] == "400.004"
    assert lines[0]["status"] == "COMPLETE" and lines[0]["i18nKey"] is None
    assert not lines[2]["externalRefID"] and lines[2]["referenceOrderID"] is None

    # the format can be forced whatever the suffix
    forced = write_report(src, tmp_path / "report.txt", format="jsonl")
    assert read_jsonl(forced) == lines
    job.journal.close()


async def test_reports_from_journal_and_results_agree(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    job = await mixed_job(sb, client, tmp_path / "job.journal")
    assert job.journal is not None
    from_journal = read_csv(write_report(job.journal, tmp_path / "a.csv"))
    from_results = read_csv(write_report(job.results, tmp_path / "b.csv"))
    for a, b in zip(from_journal, from_results, strict=True):
        assert {k: a[k] for k in REPORT_FIELDS if k != "message"} == {
            k: b[k] for k in REPORT_FIELDS if k != "message"
        }
    job.journal.close()


async def test_summary_mentions_counts_and_the_resume_command(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    job = await mixed_job(sb, client, tmp_path / "job.journal")
    assert job.journal is not None
    text = summary(
        job.journal,
        job.progress(),
        report_path=tmp_path / "report.csv",
        resume_command="tango-async resume job.journal",
    )
    first = text.splitlines()[0]
    assert first.startswith("5 row(s):")
    assert "2 created" in first and "2 failed" in first and "1 invalid" in first
    assert "400.004" in text
    assert f"report: {tmp_path / 'report.csv'}" in text
    assert "resume with: tango-async resume job.journal" in text
    assert "elapsed" in text

    plain = summary(job.results)
    assert plain.splitlines()[0].startswith("5 row(s):")
    assert "resume" not in plain and "report:" not in plain
    job.journal.close()


async def test_invalid_result_message_names_every_error_of_the_row(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    reqs: list[ta.CreateOrderRequest | InputRow] = [
        order_request(),
        InputRow(2, None, (RowError(2, "utid", "is required"), RowError(2, "amount", "bad"))),
        InputRow(3, None, (RowError(3, "", "is not valid JSON"),)),
    ]
    job = client.orders.submit_many(reqs, journal=tmp_path / "job.journal", skip_invalid=True)
    results = {r.row: r for r in await run(job)}
    assert job.journal is not None
    journaled = {r.row: r.message for r in job.journal.rows()}
    job.journal.close()
    assert journaled[2] == "utid: is required; amount: bad"
    assert journaled[3] == "row: is not valid JSON"
    assert results[2].message == journaled[2]  # got 'amount: bad'
    assert results[3].message == journaled[3]  # got ': is not valid JSON'


async def test_jsonl_report_of_an_invalid_row_is_the_same_from_journal_and_results(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    job = await mixed_job(sb, client, tmp_path / "job.journal")
    assert job.journal is not None
    from_journal = read_jsonl(write_report(job.journal, tmp_path / "a.jsonl"))
    job.journal.close()
    from_results = read_jsonl(write_report(job.results, tmp_path / "b.jsonl"))
    assert from_journal[2]["externalRefID"] == from_results[2]["externalRefID"]


# --- cancellation --------------------------------------------------------------------------------


async def test_cancelling_the_iterating_task_leaves_no_task_and_a_consistent_journal(
    sb: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "job.journal"
    before = asyncio.all_tasks()
    async with sb.client(retry=FAST_RETRY, order_rate=50.0) as client:
        job = client.orders.submit_many(requests_for(20), journal=path, concurrency=3)
        seen: list[RowResult] = []
        three = asyncio.Event()

        async def consume() -> None:
            async for result in job:
                seen.append(result)
                if len(seen) == 3:
                    three.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(three.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        workers = [
            t for t in asyncio.all_tasks() if "_worker" in getattr(t.get_coro(), "__qualname__", "")
        ]
        assert workers == []
        await asyncio.sleep(0.05)  # the sandbox finishes answering what was in flight
        left = {
            t
            for t in asyncio.all_tasks() - before - {asyncio.current_task()}
            # (the sandbox's idle keep-alive connections wait in their handler)
            if not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
        }
        assert left == set()
        assert job.journal is not None
        job.journal.close()

    with Journal.open(path) as journal:
        rows = list(journal.rows())
        counts = journal.counts()
        assert {r.state for r in rows} <= {RowState.PENDING, RowState.SENDING, RowState.DONE}
        assert counts[RowState.DONE] >= len(seen) >= 3
        assert counts[RowState.PENDING] > 0  # cancelled mid-way
        for r in rows:
            if r.state is RowState.DONE:
                assert sb.orders[r.reference_order_id or ""]["externalRefID"] == r.external_ref_id
        # and the job can be finished from there, one order per row
        async with sb.client(retry=FAST_RETRY) as client:
            await run(BulkJob.resume(client, journal))
        assert journal.counts()[RowState.DONE] == 20
        assert_one_order_per_row(sb, [r.external_ref_id for r in journal.rows()])


async def test_a_stopped_resume_keeps_unknown_rows_unknown(sb: Sandbox, tmp_path: Path) -> None:
    """Rows whose outcome is unknown, skipped because the resumed job stopped first, stay
    unknown: never relabelled 'pending / not sent' (their orders may exist)."""
    path = tmp_path / "job.journal"
    sb.inject("POST /orders", "500-after-commit", times=3)
    async with sb.client(retry=FAST_RETRY, max_retries=0) as client:
        job = client.orders.submit_many(requests_for(3), journal=path, concurrency=1)
        assert {r.outcome for r in await run(job)} == {"unknown"}
        assert job.journal is not None
        job.journal.close()
    async with sb.client(retry=FAST_RETRY, order_rate=5.0) as client:
        with Journal.open(path) as journal:
            resumed = BulkJob.resume(client, journal, concurrency=3)
            async for _ in resumed:
                resumed.stop()
            states = {r.row: r.state for r in journal.rows()}
    assert sorted(states.values()) == [RowState.DONE, RowState.UNKNOWN, RowState.UNKNOWN]
    assert len(sb.orders) == 3
