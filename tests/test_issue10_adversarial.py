"""Adversarial checks of issue 10 (never pay twice, never lose one): cancellation at the
awaits of create(), stores that stall or fail, hostile 2xx bodies, money edge values,
bulk identity, systemic stops, journal failures and schema-1 journals. Each test pins
behaviour that holds; nothing here sleeps for long (events and polled deadlines)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses

import tango_async as ta
from tango_async.bulk._inputs import read_orders
from tango_async.bulk._job import BulkJob, BulkValidationError, plan_rows
from tango_async.bulk._journal import Journal, JournalError, RowState
from tango_async.testing import Sandbox

from .conftest import BASE, FAST_RETRY, order_request
from .journal_support import downgrade_to_schema_1
from .test_cli import invoke

ORDERS_URL = BASE + "/orders"


def _posts(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests if r.method == "POST" and r.path.endswith("/orders"))


async def _until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


class GatedStore(ta.LocalUnresolvedStore):
    """An in-memory store whose chosen calls stall (a slow disk, a Redis far away) until
    the test lets them go; a cancelled stalled call changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: tuple[str, str | None] | None = None  # (method, entry state or None)
        self.entered = asyncio.Event()

    async def _stall(self, method: str, state: str | None = None) -> None:
        if self.gate is not None and self.gate[0] == method and self.gate[1] in (None, state):
            self.gate = None
            self.entered.set()
            await asyncio.Event().wait()  # until cancelled

    async def find(self, content_key: str) -> list[ta.UnresolvedOrder]:
        await self._stall("find")
        return await super().find(content_key)

    async def put(self, entry: ta.UnresolvedOrder) -> None:
        await self._stall("put", entry.state)
        await super().put(entry)

    async def remove(self, external_ref_id: str) -> None:
        await self._stall("remove")
        await super().remove(external_ref_id)


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- cancellation at each await of create() ----------------------------------------------


@pytest.mark.parametrize("gate", [("find", None), ("put", "sending")])
async def test_cancel_before_sending_leaves_nothing(gate: tuple[str, str | None]) -> None:
    store = GatedStore()
    async with Sandbox(order_rate=None) as sb, sb.client(unresolved_store=store) as tango:
        store.gate = gate
        task = asyncio.create_task(tango.orders.create(order_request()))
        await store.entered.wait()
        await _cancelled(task)
        assert _posts(sb) == 0 and await store.list() == []
        again = await tango.orders.create(order_request())
        assert again.created and len(sb.orders) == 1


async def test_cancel_while_waiting_for_a_rate_slot_sends_nothing() -> None:
    class Gate:
        def __init__(self) -> None:
            self.entered = asyncio.Event()

        async def acquire(self) -> None:
            self.entered.set()
            await asyncio.Event().wait()

        async def penalize(self, delay: float) -> None:
            pass

    limiter = Gate()
    async with Sandbox(order_rate=None) as sb, sb.client(rate_limiter=limiter) as tango:
        task = asyncio.create_task(tango.orders.create(order_request()))
        await limiter.entered.wait()
        await _cancelled(task)
        assert _posts(sb) == 0
        assert await tango.orders.unresolved() == []
        assert await tango.unresolved_store.list() == []


async def test_cancel_during_the_request_then_the_same_request_is_one_order() -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as tango:
        sb.inject("POST /orders", "slow", delay=0.2)
        req = order_request()
        task = asyncio.create_task(tango.orders.create(req))
        await _until(lambda: _posts(sb) == 1)
        await _cancelled(task)
        [entry] = await tango.orders.unresolved()
        assert entry.state == "unknown" and req.external_ref_id is None
        await _until(lambda: len(sb.orders) == 1)  # the server commits meanwhile
        again = await tango.orders.create(req)
        assert again.external_ref_id == entry.external_ref_id and again.existing
        assert len(sb.orders) == 1 and await tango.orders.unresolved() == []


async def test_cancel_again_while_marking_unknown_keeps_the_ref() -> None:
    store = GatedStore()
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "slow", delay=0.2)
        async with sb.client(retry=FAST_RETRY, unresolved_store=store) as tango:
            task = asyncio.create_task(tango.orders.create(order_request()))
            await _until(lambda: _posts(sb) == 1)
            store.gate = ("put", "unknown")
            task.cancel()  # the caller's deadline: cancelled after sending...
            await store.entered.wait()
            await _cancelled(task)  # ...and again while the outcome is being recorded
            [entry] = await store.list()
            assert entry.state == "sending"  # still remembered, as written before sending
            await _until(lambda: len(sb.orders) == 1)
            again = await tango.orders.create(order_request())
            assert again.external_ref_id == entry.external_ref_id and again.existing
            assert len(sb.orders) == 1


async def test_cancel_during_removal_in_a_store_that_stops_keeps_the_ref() -> None:
    """The answer came, the entry could not be removed before the caller gave up: the
    caller never saw the order, so equal content must get it back, not a second one."""
    store = GatedStore()
    async with Sandbox(order_rate=None) as sb, sb.client(unresolved_store=store) as tango:
        store.gate = ("remove", None)
        task = asyncio.create_task(tango.orders.create(order_request()))
        await store.entered.wait()
        await _cancelled(task)
        assert len(sb.orders) == 1
        again = await tango.orders.create(order_request())
        assert again.existing and len(sb.orders) == 1


async def test_resolve_while_the_original_call_is_in_flight() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "slow", delay=0.3, hold=True)
        async with sb.client(retry=FAST_RETRY) as tango:
            task = asyncio.create_task(tango.orders.create(order_request()))
            await _until(lambda: _posts(sb) == 1)
            [entry] = await tango.unresolved_store.list()
            assert await tango.orders.unresolved() == []  # in flight: not listed
            assert await tango.orders.resolve(entry.external_ref_id) is None
            order = await task
            assert order.created and order.external_ref_id == entry.external_ref_id
            assert await tango.unresolved_store.list() == [] and len(sb.orders) == 1


async def test_equal_creates_one_in_flight_one_cut_short() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "slow", delay=0.3, hold=True)
        policy = FAST_RETRY.with_options(max_retries=8, conflict_delay=0.05)
        async with sb.client(retry=policy) as tango:
            first = asyncio.create_task(tango.orders.create(order_request()))
            await _until(lambda: _posts(sb) == 1)
            [slow] = await tango.unresolved_store.list()
            other = await tango.orders.create(order_request())  # a second, distinct order
            assert other.created and other.external_ref_id != slow.external_ref_id
            await _cancelled(first)
            again = await tango.orders.create(order_request())  # the retry of the first
            assert again.external_ref_id == slow.external_ref_id
            await _until(lambda: len(sb.orders) == 2)
            assert len({o["externalRefID"] for o in sb.orders.values()}) == 2


# --- stores that fail ---------------------------------------------------------------------


async def test_store_failing_after_the_answer_still_returns_the_order() -> None:
    class NoRemove(ta.LocalUnresolvedStore):
        async def remove(self, external_ref_id: str) -> None:
            raise ta.UnresolvedStoreError("disk full")

    async with Sandbox(order_rate=None) as sb, sb.client(unresolved_store=NoRemove()) as tango:
        order = await tango.orders.create(order_request())
        assert order.created and order.reference_order_id in sb.orders


async def test_sqlite_store_after_close_refuses_before_sending(tmp_path: Path) -> None:
    store = ta.SqliteUnresolvedStore(tmp_path / "u.sqlite")
    async with Sandbox(order_rate=None) as sb, sb.client(unresolved_store=store) as tango:
        await tango.orders.create(order_request())
        store.close()
        store.close()  # idempotent
        with pytest.raises(ta.UnresolvedStoreError, match="closed"):
            await tango.orders.create(order_request(amount=11))
        assert _posts(sb) == 1
        with pytest.raises(ta.UnresolvedStoreError):
            await tango.orders.unresolved()


# --- hostile 2xx answers ----------------------------------------------------------------


def _echo(status: int, extra: dict[str, Any] | None = None, raw: str | None = None) -> Any:
    def answer(url: Any, **kw: Any) -> CallbackResult:
        if raw is not None:
            return CallbackResult(status=status, body=raw)
        ref = json.loads(kw["data"])["externalRefID"]
        body = {"referenceOrderID": "RA250101-1111-01", "externalRefID": ref, **(extra or {})}
        return CallbackResult(status=status, body=json.dumps(body))

    return answer


@pytest.mark.parametrize(("status", "sent", "created"), [(201, False, True), (200, True, False)])
async def test_the_sentinel_key_in_a_body_does_not_decide_created(
    mocked_client: ta.TangoClient, status: int, sent: bool, created: bool
) -> None:
    with aioresponses() as m:
        m.post(ORDERS_URL, callback=_echo(status, {"__tango_async_created__": sent}))
        order = await mocked_client.orders.create(order_request())
    assert order.created is created


@pytest.mark.parametrize(
    ("status", "extra", "raw"),
    [
        (201, None, "null"),
        (201, None, '"RA1"'),
        (201, None, "12"),
        (201, None, "\x00\xff"),
        (204, None, ""),
        (201, {"referenceOrderID": 7}, None),
        (201, {"createdAt": "2025-01-01T00:00:00"}, None),  # no timezone
    ],
)
async def test_hostile_2xx_is_asked_again_then_stays_unknown(
    mocked_client: ta.TangoClient, status: int, extra: dict[str, Any] | None, raw: str | None
) -> None:
    with aioresponses() as m:
        m.post(ORDERS_URL, callback=_echo(status, extra, raw), repeat=True)
        with pytest.raises(ta.APIResponseValidationError) as info:
            await mocked_client.orders.create(order_request())
        posts = sum(len(v) for k, v in m.requests.items() if k[0] == "POST")
    assert posts > 1  # asked again with the same externalRefID
    assert info.value.outcome_unknown and info.value.external_ref_id
    [entry] = await mocked_client.orders.unresolved()
    assert entry.external_ref_id == info.value.external_ref_id and entry.state == "unknown"


# --- money ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        Decimal("1E+1000"),
        Decimal("-0"),
        Decimal("0.005"),
        Decimal("sNaN"),
        Decimal("1E-1000000"),
        Decimal("1." + "0" * 38 + "1"),
        Decimal("9" * 40),
        10**5000,
        -(10**5000),
        float("nan"),
        float("-inf"),
        1e-320,
        5e-324,
        0.1 + 0.2,
        True,
        "10",
        None,
        0,
        Decimal("1000000.01"),
    ],
    ids=lambda a: type(a).__name__ + (repr(a)[:20] if not isinstance(a, int) else ""),
)
async def test_refused_amounts_are_validation_errors_and_send_nothing(amount: object) -> None:
    async with Sandbox(order_rate=None) as sb, sb.client() as tango:
        with pytest.raises(ta.ValidationError) as info:
            await tango.orders.create(order_request(amount=amount))
        assert info.value.field == "amount"
        assert _posts(sb) == 0 and await tango.unresolved_store.list() == []


# --- bulk identity ------------------------------------------------------------------------

HEADER = [
    "customer_identifier",
    "account_identifier",
    "utid",
    "amount",
    "recipient.email",
    "recipient.first_name",
]
ROWS = [
    ["cust-12345", "acct-12345", "U561593", "10.00", "a@example.com", "Ann"],
    ["cust-12345", "acct-12345", "U561593", "5", "b@example.com", "Bob"],
    ["cust-12345", "acct-12345", "U561593", "10.00", "a@example.com", "Ann"],
]


def _refs(path: Path, text: str, **kw: Any) -> list[str]:
    path.write_bytes(text.encode("utf-8"))
    plan = plan_rows(read_orders(path), **kw)
    assert plan.errors == []
    return [ref for _, ref, _ in plan.rows]


def _csv(
    rows: list[list[str]],
    sep: str = "\n",
    header: list[str] = HEADER,
    cell: Callable[[str], str] = str,
) -> str:
    return sep.join(",".join(map(cell, r)) for r in [header, *rows]) + sep


def test_resaved_files_keep_every_ref(tmp_path: Path) -> None:
    base = _refs(tmp_path / "a.csv", _csv(ROWS, "\r\n"))
    assert len(set(base)) == 3  # identical rows 1 and 3 are two orders
    order = [5, 3, 0, 4, 1, 2]
    variants = {
        "lf": _csv(ROWS),
        "cr": _csv(ROWS, "\r"),
        "bom": "\ufeff" + _csv(ROWS),
        "blank lines": _csv(ROWS, "\n\n") + "\n\n",
        "no final newline": _csv(ROWS).rstrip("\n"),
        "quoted": _csv(ROWS, cell=lambda c: f'"{c}"'),
        "columns reordered": _csv(
            [[r[i] for i in order] for r in ROWS], header=[HEADER[i] for i in order]
        ),
        "amounts respelled": _csv(
            [[*r[:3], {"10.00": "1E1", "5": "+5.0"}[r[3]], *r[4:]] for r in ROWS]
        ),
    }
    for name, text in variants.items():
        assert _refs(tmp_path / "v.csv", text) == base, name
    jsonl = (
        "\n".join(
            json.dumps(
                {
                    "customerIdentifier": r[0],
                    "accountIdentifier": r[1],
                    "utid": r[2],
                    "amount": float(r[3]),
                    "recipient": {"email": r[4], "firstName": r[5]},
                }
            )
            for r in ROWS
        )
        + "\n"
    )
    assert _refs(tmp_path / "v.jsonl", jsonl) == base


def test_inserted_rows_shift_no_ref_and_labels_make_new_ones(tmp_path: Path) -> None:
    base = _refs(tmp_path / "a.csv", _csv(ROWS))
    new = ["cust-12345", "acct-12345", "U561593", "7", "c@example.com", "Cy"]
    grown = _refs(tmp_path / "b.csv", _csv([new, ROWS[0], new, *ROWS[1:]]))
    assert [grown[1], *grown[3:]] == base
    labelled = _refs(tmp_path / "a.csv", _csv(ROWS), run_label="again.2026-06_x")
    assert not set(labelled) & set(base)
    assert _refs(tmp_path / "a.csv", _csv(ROWS), run_label="again.2026-06_x") == labelled


@pytest.mark.parametrize("label", ["", " ", "a b", "../x", "a/b", "é", "-a", "a\n", "x" * 65])
def test_odd_run_labels_are_refused(tmp_path: Path, label: str) -> None:
    with pytest.raises(ta.ValidationError, match="run_label"):
        plan_rows([order_request()], run_label=label)
    file = tmp_path / "o.csv"
    file.write_text(_csv(ROWS[:1]), encoding="utf-8")
    result = invoke("--sandbox", "local", "submit", file, "--run-label", label)
    assert result.exit_code == 2
    assert not list(tmp_path.glob("*.journal*"))


@pytest.mark.parametrize("own_first", [True, False])
async def test_own_ref_equal_to_a_derived_ref_is_refused(own_first: bool) -> None:
    derived = plan_rows([order_request()]).rows[0][1]
    rows = [order_request(), order_request(amount=20, external_ref_id=derived)]
    async with Sandbox(order_rate=None) as sb, sb.client() as tango:
        with pytest.raises(BulkValidationError, match="duplicates row 1"):
            tango.orders.submit_many(rows[::-1] if own_first else rows)
        assert _posts(sb) == 0


async def test_dry_run_writes_no_journal_and_plans_the_refs_it_sends(tmp_path: Path) -> None:
    reqs = [order_request(amount=a) for a in (1, 2, 1)]
    path = tmp_path / "j.journal"
    async with Sandbox(order_rate=None) as sb, sb.client() as tango:
        planned = [r async for r in tango.orders.submit_many(reqs, journal=path, dry_run=True)]
        assert {r.outcome for r in planned} == {"planned"} and not path.exists()
        # only the pre-flight's reads (catalog, account): nothing sent
        assert _posts(sb) == 0 and all(r.method == "GET" for r in sb.requests)
        sent = [r async for r in tango.orders.submit_many(reqs, journal=path)]
        assert sorted(r.external_ref_id for r in sent) == sorted(r.external_ref_id for r in planned)
        assert {r.outcome for r in sent} == {"created"}


# --- bulk stops and journal failures --------------------------------------------------------


@pytest.mark.parametrize(("status", "key"), [(401, "401.001"), (403, "403.001"), (402, "402.001")])
async def test_systemic_refusal_with_concurrency_4(tmp_path: Path, status: int, key: str) -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as tango:
        sb.inject(
            "POST /orders",
            "legacy-error-body",
            times=100,
            status=status,
            i18nKey=key,
            message="refused",
        )
        reqs = [order_request(amount=i) for i in range(1, 41)]
        job = tango.orders.submit_many(reqs, journal=tmp_path / "j.journal", concurrency=4)
        results = [r async for r in job]
        assert job.stopped_by is not None and job.stopped_by.error.status_code == status
        assert _posts(sb) <= 4  # the first answer and those already in flight beside it
        assert {r.outcome for r in results} == {"pending"}
        assert job.journal is not None
        assert job.journal.counts()[RowState.PENDING] == 40
        job.journal.close()


async def test_mark_done_failure_is_fatal_and_resume_reuses_the_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Journal.mark_done
    calls = {"n": 0}

    def full_disk(self: Journal, row: int, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise JournalError(f"cannot record mark_done of row {row}: disk is full")
        real(self, row, **kw)

    monkeypatch.setattr(Journal, "mark_done", full_disk)
    path = tmp_path / "j.journal"
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as tango:
        job = tango.orders.submit_many(
            [order_request(amount=i) for i in range(1, 6)], journal=path, concurrency=1
        )
        with pytest.raises(JournalError, match="disk is full"):
            _ = [r async for r in job]
        assert job.journal is not None
        job.journal.close()
        assert len(sb.orders) == 2  # nothing sent after the failure
        monkeypatch.setattr(Journal, "mark_done", real)
        with Journal.open(path) as journal:
            [unsure] = [r for r in journal.rows() if r.state is RowState.SENDING]
            rest = {r.row: r async for r in BulkJob.resume(tango, journal)}
            assert rest[unsure.row].outcome == "existing"
            assert rest[unsure.row].external_ref_id == unsure.external_ref_id
            assert journal.counts()[RowState.DONE] == 5
        assert len(sb.orders) == 5


def _make_v1_journal(path: Path, reqs: list[ta.CreateOrderRequest]) -> list[str]:
    from tango_async.resources.orders import encode_order

    rows = [(n, *encode_order(r, f"tj0123456789abr{n}")) for n, r in enumerate(reqs, 1)]
    Journal.create(
        path, job_id="tj0123456789ab", input_path="x.csv", input_digest="d", rows=rows
    ).close()
    downgrade_to_schema_1(path)
    return [ref for _, ref, _ in rows]


async def test_schema_1_journal_with_an_unknown_row_is_upgraded_and_settled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.journal"
    reqs = [order_request(amount=i) for i in (1, 2, 3)]
    refs = _make_v1_journal(path, reqs)
    async with Sandbox(order_rate=None) as sb:
        with Journal.open(path) as journal:  # 0.1 died while row 1 was in flight
            journal.mark_sending(1)
        sb.inject("POST /orders", "500-after-commit", times=1)
        async with sb.client(retry=FAST_RETRY, max_retries=0) as tango:
            with Journal.open(path) as journal:
                first = {r.row: r async for r in BulkJob.resume(tango, journal, concurrency=1)}
                assert first[1].outcome == "unknown"  # the UNKNOWN state needs schema 2
                assert journal.get(1).state is RowState.UNKNOWN
            # upgraded in place to the current schema (3: row checksums, issue 12)
            assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3
            with Journal.open(path) as journal:
                again = {r.row: r async for r in BulkJob.resume(tango, journal)}
                assert again[1].outcome == "existing"
                assert journal.counts()[RowState.DONE] == 3
        assert sorted(o["externalRefID"] for o in sb.orders.values()) == sorted(refs)


def test_cli_journal_of_another_run_label_is_refused_untouched(tmp_path: Path) -> None:
    file = tmp_path / "o.csv"
    file.write_text(_csv(ROWS), encoding="utf-8")
    journal = tmp_path / "o.csv.journal"
    assert invoke("--sandbox", "local", "submit", file, "--order-rate", "200").exit_code == 0
    with Journal.open(journal) as j:
        before = [(r.row, r.external_ref_id, r.state) for r in j.rows()]
    refused = invoke(
        "--sandbox",
        "local",
        "submit",
        file,
        "--run-label",
        "again",
        "--journal",
        journal,
        "--order-rate",
        "200",
    )
    assert refused.exit_code == 2
    text = " ".join(refused.stderr.split())
    assert "run with no --run-label, this submit with --run-label again" in text
    assert "every row of the file would be ordered (and paid) again" in text
    assert "not paid again" not in text  # no reassurance that would be false here
    with Journal.open(journal) as j:
        assert [(r.row, r.external_ref_id, r.state) for r in j.rows()] == before
