"""Reconciliation of a bulk job: what became of every row's order after it was sent.

A job's journal says which rows were ordered; whether each reward then arrived is the
server's to say. An order is PENDING for a while (up to a business day) and ends COMPLETE
(delivered), FAILED (Tango returns the funds), CANCELLED, DELETED... :class:`Reconciler`
asks it, and records each answer in the journal
(:meth:`~tango_async.bulk.Journal.record_status`, one committed transaction per row):

- :meth:`Reconciler.run` looks up the order of every row the job recorded as ordered
  (``orders.get``, ``concurrency`` at a time, at the client's read pacing) and records its
  status, as of when it was seen, with source ``poll``. Rows whose recorded status is
  already final are not looked up again (``recheck=True`` does). With ``wait=True`` it
  looks the rows still not final up again, with a pause that doubles from ``poll`` to
  ``max_poll`` seconds of the client's clock, until every one is final, ``timeout``
  seconds after the run began (the last pause ends then, and one more round looks the
  rows up; a round in progress always finishes), or :meth:`Reconciler.stop`.
- :meth:`Reconciler.apply` records a webhook event (a ``RewardStatus``
  :class:`~tango_async.WebhookEvent`, or any object with ``event_type`` and
  ``event_data.reference_line_item_id`` / ``.external_ref_id`` / ``.status``) with source
  ``webhook``, without a network call: from a webhook handler's callback. The event finds
  its row by the line item ID (known once a lookup recorded it) or by its externalRefID
  (RewardStatus events carry it). The same event twice, and an older one than the news
  recorded (by revision, else by time), change nothing.

Nothing here creates, resends or changes an order: reconciliation never spends money.
Rows with no order (never sent, invalid, refused when created, or sent without a definite
answer) are reported as needing action, with the reason and what to do (``tango-async
resume`` settles or sends them). Every record is committed before the next row is looked
up, so an interrupted run loses nothing, and a second run changes nothing that is final.
No job lock is taken: a webhook handler may record events while the job still sends.

The :class:`ReconcileReport` counts the rows and sums their amounts (the ``amount`` each row
asked for) per result: ``delivered`` (COMPLETE), ``failed`` (FAILED, CANCELLED, DELETED,
RETURNED: not delivered), ``pending`` (ordered, not final yet, or not looked up) and
``needs_action`` (no order, or a PARTIAL one).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import math
import os
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol, TypeVar

from .._clock import Clock, SystemClock
from .._exceptions import AuthenticationError, PermissionDeniedError, TangoError, ValidationError
from .._logs import escape
from .._validation import plain_decimal
from ..types.enums import KNOWN_LINE_ITEM_STATUSES, KNOWN_ORDER_STATUSES
from ..types.orders import Order
from ._format import format_time, json_line
from ._journal import FINAL_STATUSES, Journal, JournalRow, RowState, StatusRecord
from ._report import ReportError, csv_cell, report_format

__all__ = [
    "CATEGORIES",
    "RECONCILE_FIELDS",
    "Category",
    "EventResult",
    "ReconcileClient",
    "ReconcileProgress",
    "ReconcileReport",
    "ReconciledRow",
    "Reconciler",
    "build_report",
    "reconcile",
    "write_reconcile_report",
]

log = logging.getLogger("tango_async")
T = TypeVar("T")

Category = Literal["delivered", "failed", "pending", "needs_action"]
#: The results of a reconciled row, in the order reports show them.
CATEGORIES: Final[tuple[Category, ...]] = ("delivered", "failed", "pending", "needs_action")
_DELIVERED: Final = frozenset({"COMPLETE"})
_NOT_DELIVERED: Final = frozenset({"FAILED", "CANCELLED", "DELETED", "RETURNED"})
# A record's detail that says its line item was reissued (an event's action REISSUE or
# newReferenceLineItemId, or a lookup that found reissuedToReferenceLineItemId).
_REISSUED: Final = re.compile(r"action REISSUE(?:.*?new line item (\S+))?|new line item (\S+)")
_KNOWN: Final = KNOWN_ORDER_STATUSES | KNOWN_LINE_ITEM_STATUSES
_MAX_STATUS: Final = 64
_MAX_ID: Final = 200
_MAX_DETAIL: Final = 1000
_MAX_CONCURRENCY: Final = 64
_MAX_SECONDS: Final = 366 * 86_400.0

EventOutcome = Literal["applied", "duplicate", "stale", "unmatched", "ignored"]


class OrderLookup(Protocol):
    """What reconciliation needs of ``client.orders``: ``get``."""

    async def get(self, reference_order_id: str, /) -> Order: ...


class ReconcileClient(Protocol):
    """What :class:`Reconciler` needs of a client (a :class:`~tango_async.TangoClient`
    has it): ``orders.get`` to look orders up, and the ``clock`` it sleeps on between the
    rounds of a wait."""

    @property
    def orders(self) -> OrderLookup: ...

    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True, slots=True)
class ReconciledRow:
    """One row of a job, reconciled: its ``category`` (delivered, failed, pending,
    needs_action) and ``reason`` (what it means and what to do; "" when delivered), the
    job's ``state`` of it, the order's ``status`` as last recorded (None: never looked up),
    its ``source`` (poll / webhook) and when it was recorded (``seen_at``), and the
    ``amount`` the row asked for (None for a row that could not be read)."""

    row: int
    external_ref_id: str
    category: Category
    reason: str
    state: RowState
    amount: Decimal | None
    reference_order_id: str | None
    reference_line_item_id: str | None
    status: str | None
    source: str | None
    seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReconcileProgress:
    """Where a run stands: in round ``round`` (1 is the first pass; the rounds of a wait
    follow), ``checked`` of its ``total`` rows looked up, ``final`` of them final, ``errors``
    lookups failed; ``pending`` rows of the job are still not final (their lookups this
    round included). ``elapsed`` seconds of the client's clock since the run began,
    ``rate`` lookups per second, ``eta`` seconds left in the round at that rate."""

    round: int
    total: int
    checked: int
    final: int
    errors: int
    pending: int
    elapsed: float
    rate: float
    eta: float


@dataclass(frozen=True, slots=True)
class EventResult:
    """What :meth:`Reconciler.apply` did with one event: ``applied`` (recorded),
    ``duplicate`` (that event was recorded before), ``stale`` (newer news was recorded),
    ``unmatched`` (no row of this job is its line item or externalRefID) or ``ignored``
    (not a RewardStatus event, or without a usable status); ``row`` and ``status`` as
    recorded, ``reason`` why not applied."""

    outcome: EventOutcome
    row: int | None = None
    status: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Every row of a job, reconciled, by row number, and what the run did.

    ``looked_up`` orders were looked up by this run, ``changed`` of them had a new status;
    ``lookup_errors`` lookups failed (the row stays as it was recorded); ``events`` counts
    the webhook events applied by outcome. ``interrupted``: the run was stopped before it
    looked every row up; ``timed_out``: a wait ended with rows still not final;
    ``stopped_by``: why the API refused every lookup (401, 403), if it did.
    ``reconciled_at`` / ``reconciled_by``: the journal's last record, when and by what."""

    journal: Path
    job_id: str
    rows: tuple[ReconciledRow, ...]
    reconciled_at: datetime | None = None
    reconciled_by: str | None = None
    looked_up: int = 0
    changed: int = 0
    lookup_errors: int = 0
    events: Mapping[str, int] = field(default_factory=dict)
    interrupted: bool = False
    timed_out: bool = False
    stopped_by: str | None = None

    @property
    def counts(self) -> dict[Category, int]:
        """Rows per category (every category, zeros included)."""
        found = Counter(r.category for r in self.rows)
        return {c: found[c] for c in CATEGORIES}

    @property
    def amounts(self) -> dict[Category, Decimal]:
        """The sum of the rows' amounts per category (rows without one count 0)."""
        sums: dict[Category, Decimal] = {c: Decimal(0) for c in CATEGORIES}
        for r in self.rows:
            if r.amount is not None:
                sums[r.category] += r.amount
        return sums

    def of(self, category: Category) -> tuple[ReconciledRow, ...]:
        """The rows of one category, by row number."""
        return tuple(r for r in self.rows if r.category == category)

    @property
    def delivered(self) -> tuple[ReconciledRow, ...]:
        return self.of("delivered")

    @property
    def failed(self) -> tuple[ReconciledRow, ...]:
        return self.of("failed")

    @property
    def pending(self) -> tuple[ReconciledRow, ...]:
        return self.of("pending")

    @property
    def needs_action(self) -> tuple[ReconciledRow, ...]:
        return self.of("needs_action")

    @property
    def all_delivered(self) -> bool:
        """True when every row of the job was delivered."""
        return all(r.category == "delivered" for r in self.rows)

    def summary(self, *, limit: int = 20) -> str:
        """A one-screen summary: counts and amounts per category, what the run did, and
        the rows that need action or are still pending (``limit`` of each, with why)."""
        counts, amounts = self.counts, self.amounts
        when = (
            f" (last record {format_time(self.reconciled_at, seconds=True)}, "
            f"by {self.reconciled_by})"
            if self.reconciled_at is not None
            else ""
        )
        lines = [f"journal {self.journal}: job {self.job_id}, {len(self.rows)} row(s){when}"]
        labels = {
            "delivered": "delivered",
            "failed": "failed (not delivered; refunded)",
            "pending": "pending (ordered, not final yet)",
            "needs_action": "needs action (no order)",
        }
        for c in CATEGORIES:
            lines.append(f"  {labels[c]:<34} {counts[c]:>6}  amount {plain_decimal(amounts[c])}")
        failed_by = Counter(r.status for r in self.failed)
        if failed_by:
            lines.append(
                "  failed by status: " + ", ".join(f"{s} {n}" for s, n in sorted(failed_by.items()))
            )
        done = f"looked up {self.looked_up} order(s), {self.changed} changed"
        if self.lookup_errors:
            done += f", {self.lookup_errors} lookup(s) failed"
        if self.events:
            done += "; events: " + ", ".join(f"{n} {k}" for k, n in sorted(self.events.items()))
        lines.append(done)
        if self.stopped_by:
            lines.append(f"stopped: {self.stopped_by}. Nothing more was looked up.")
        if self.interrupted:
            lines.append("interrupted: the statuses recorded so far are kept; run it again.")
        if self.timed_out:
            lines.append(f"timed out waiting: {counts['pending']} row(s) still not final.")
        for title, rows in (("needs action", self.needs_action), ("pending", self.pending)):
            if rows:
                lines.append(f"{title}:")
                for r in rows[:limit]:
                    lines.append(f"  row {r.row}: {_short(r.reason, 140)}")
                if len(rows) > limit:
                    lines.append(f"  ... and {len(rows) - limit} more")
        if self.failed:
            lines.append(
                f"{counts['failed']} order(s) were not delivered (the account is refunded): "
                "to send those rewards again, submit them with a new --run-label."
            )
        return "\n".join(lines)


# --- classification -------------------------------------------------------------------------


def _amount(request: bytes) -> Decimal | None:
    """The ``amount`` of a row's wire JSON, or None."""
    if not request:
        return None
    try:
        value = json.loads(request, parse_float=Decimal).get("amount")
    except (ValueError, AttributeError, InvalidOperation):
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    amount = Decimal(value)
    return amount if amount.is_finite() else None


def _short(message: object, limit: int = 200) -> str:
    text = "" if message is None else escape(str(message).replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SETTLE = (
    "the order may exist: tango-async resume settles it with its externalRefID (never "
    "re-order it by other means)"
)


def _classify(r: JournalRow, rec: StatusRecord | None, error: str | None) -> tuple[Category, str]:
    """A row's category, and why (with what to do)."""
    if r.state is RowState.INVALID:
        return "needs_action", f"invalid, never sent: {_short(r.message)}; fix the row"
    if r.state is not RowState.DONE:
        if r.state is RowState.PENDING:
            why = "not sent" + (f" ({_short(r.message)})" if r.message else "")
            why += ": tango-async resume sends it"
        elif r.state is RowState.SENDING:
            why = f"sent, but the job stopped before the answer: {_SETTLE}"
        elif r.state is RowState.UNKNOWN:
            why = f"sent without a definite answer ({_short(r.message)}): {_SETTLE}"
        else:  # FAILED
            code = " ".join(str(x) for x in (r.http_status, r.i18n_key) if x is not None)
            why = f"refused when created ({code + ': ' if code else ''}{_short(r.message)})"
            why += (
                ": not ordered; tango-async resume sends it again"
                if r.retriable
                else ": not ordered; fix the row (resume --retry-failed re-sends it as it is)"
            )
        if rec is not None:
            why += (
                f"; a webhook reported its line item {rec.reference_line_item_id or '?'} "
                f"{_short(rec.status)}, so its order exists (resume records it, unpaid again)"
            )
        return "needs_action", why
    lookup = f"; the last lookup failed: {error}" if error else ""
    if rec is None:
        answered = f" (the create call answered {_short(r.order_status)})" if r.order_status else ""
        return "pending", f"ordered, not looked up yet{answered}{lookup}"
    status = rec.status
    if status in _DELIVERED:
        return "delivered", ""
    if status in _NOT_DELIVERED and rec.detail and _REISSUED.search(rec.detail):
        found = _REISSUED.search(rec.detail)
        new = (found.group(1) or found.group(2)) if found else None
        new = new or "?"
        return "needs_action", (
            f"the order ended {_short(status)} because its line item was reissued as "
            f"{_short(new)}: a new reward was sent and charged in its place; do not send this "
            "row again (tango-async line-items get shows the new one)"
        )
    if status in _NOT_DELIVERED:
        return "failed", f"the order ended {_short(status)}: not delivered, the account refunded"
    if status in FINAL_STATUSES:  # PARTIAL: some of its line items ended otherwise
        return "needs_action", f"the order ended {_short(status)}: look up its line items"
    return "pending", (
        f"{_short(status)} as of {format_time(rec.as_of, seconds=True)} ({rec.source}): "
        "reconcile "
        f"again later, or with --wait{lookup}"
    )


def build_report(
    journal: Journal,
    *,
    errors: Mapping[int, str] | None = None,
    **run: Any,
) -> ReconcileReport:
    """The :class:`ReconcileReport` of ``journal`` as it stands (no network call):
    every row with its category; ``errors`` are lookups that failed, by row; ``run``
    the report's counters of a run (``looked_up``, ``changed``...)."""
    records = journal.reconciliation()
    errors = errors or {}
    rows: list[ReconciledRow] = []
    for r in journal.rows():
        rec = records.get(r.row)
        category, reason = _classify(r, rec, errors.get(r.row))
        rows.append(
            ReconciledRow(
                row=r.row,
                external_ref_id=r.external_ref_id,
                category=category,
                reason=reason,
                state=r.state,
                amount=_amount(r.request),
                reference_order_id=r.reference_order_id
                or (rec.reference_order_id if rec else None),
                reference_line_item_id=rec.reference_line_item_id if rec else None,
                status=rec.status if rec else None,
                source=rec.source if rec else None,
                seen_at=rec.seen_at if rec else None,
            )
        )
    last = journal.last_reconciled()
    return ReconcileReport(
        journal=journal.path,
        job_id=journal.job_id,
        rows=tuple(rows),
        reconciled_at=last[0] if last else None,
        reconciled_by=last[1] if last else None,
        lookup_errors=len(errors),
        **run,
    )


# --- events ---------------------------------------------------------------------------------


def _get(obj: object, attr: str, *wire: str) -> Any:
    """``obj.attr``, or for a mapping (raw JSON) the first of its ``wire`` keys present."""
    if isinstance(obj, Mapping):
        for key in wire:
            if key in obj:
                return obj[key]
        return None
    return getattr(obj, attr, None)


def _text(value: object, limit: int) -> str | None:
    """A non-empty str of at most ``limit`` characters, or None."""
    if isinstance(value, str) and 0 < len(value) <= limit:
        return value
    return None


def _occurred(value: object) -> datetime | None:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value
    return None


def _is_reward_status(event_type: object) -> bool:
    if event_type is None:
        return False
    kind = "".join(ch for ch in str(event_type).lower() if ch.isalnum())
    return kind == "rewardstatus"


# --- the reconciler -------------------------------------------------------------------------


class Reconciler:
    """Reconcile the job of one journal: look its orders up (:meth:`run`), record webhook
    events (:meth:`apply`), report (:meth:`report`). See the module docstring.

    ``client`` (a :class:`~tango_async.TangoClient`) is needed by :meth:`run` only; events
    are recorded without it. ``concurrency`` lookups (1-64) are in flight at once, at the
    client's read pacing; a wait pauses ``poll`` seconds between rounds, doubling up to
    ``max_poll``. Journal I/O runs on one worker thread. Use it as an async context
    manager, or :meth:`close` it; :meth:`open` opens the journal (and closes it with
    itself), the constructor takes an open :class:`~tango_async.bulk.Journal` (left open).
    """

    def __init__(
        self,
        journal: Journal,
        client: ReconcileClient | None = None,
        *,
        concurrency: int = 2,
        poll: float = 5.0,
        max_poll: float = 60.0,
    ) -> None:
        if not isinstance(journal, Journal):
            raise ValidationError("journal", "must be a Journal (Reconciler.open takes a path)")
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= _MAX_CONCURRENCY
        ):
            raise ValidationError("concurrency", f"must be an int from 1 to {_MAX_CONCURRENCY}")
        for name, value in (("poll", poll), ("max_poll", max_poll)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 < value <= _MAX_SECONDS
            ):
                raise ValidationError(name, "must be a number of seconds above 0, at most a year")
        if max_poll < poll:
            raise ValidationError("max_poll", "must be at least poll")
        self._journal = journal
        self._client = client
        self._concurrency = concurrency
        self._poll = float(poll)
        self._max_poll = float(max_poll)
        self._owns_journal = False
        self._executor: ThreadPoolExecutor | None = None
        self._ready = False  # schema checked (a schema-1 or -2 journal upgraded)
        self._stopping = False
        self._stop = asyncio.Event()
        self._unknown_logged: set[str] = set()
        self._events: Counter[str] = Counter()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        client: ReconcileClient | None = None,
        **options: Any,
    ) -> Reconciler:
        """A Reconciler of the journal at ``path`` (opened and checked:
        :class:`~tango_async.bulk.JournalDamagedError` for a damaged one), closed with it."""
        journal = await asyncio.to_thread(Journal.open, path)
        try:
            self = cls(journal, client, **options)
        except BaseException:
            journal.close()
            raise
        self._owns_journal = True
        return self

    @property
    def journal(self) -> Journal:
        return self._journal

    async def __aenter__(self) -> Reconciler:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Finish the journal write in progress, stop the worker thread and, if
        :meth:`open` opened it, close the journal (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)
        if self._owns_journal:
            self._owns_journal = False
            self._journal.close()

    def stop(self) -> None:
        """End :meth:`run` soon: the lookups in flight finish and are recorded, no more
        start, a wait ends (before :meth:`run`: the next run ends at once). Safe to call
        from a signal handler of the loop."""
        self._stopping = True
        self._stop.set()

    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tango-reconcile")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def _writable(self) -> None:
        """Before the first record: a schema-1 or -2 journal is taken (its job lock, kept
        until it is closed) and upgraded, as a resumed job would."""
        if not self._ready:
            if await self._io(lambda: self._journal.schema) < 3:
                await self._io(self._journal.lock)
            self._ready = True

    async def report(self) -> ReconcileReport:
        """The journal's rows as reconciled so far (no network call), with the events
        applied by this Reconciler counted."""
        return await self._io(build_report, self._journal, events=dict(self._events))

    # --- events ---------------------------------------------------------------------------

    async def apply(self, event: object) -> EventResult:
        """Record one webhook event (see the module docstring); made to be awaited from a
        webhook handler's callback. Events that are not RewardStatus events, or hold no
        usable status, are ``ignored``; JournalError when the journal cannot be written
        (let the handler fail, so that Tango delivers the event again)."""
        result = await self._apply(event)
        self._events[result.outcome] += 1
        if result.outcome != "applied":
            log.debug("reconcile: event %s: %s", result.outcome, result.reason)
        return result

    async def apply_all(self, events: Iterable[object]) -> list[EventResult]:
        """:meth:`apply` each of ``events``, in order."""
        return [await self.apply(e) for e in events]

    async def _apply(self, event: object) -> EventResult:
        if not _is_reward_status(_get(event, "event_type", "eventType")):
            return EventResult("ignored", reason="not a RewardStatus event")
        data = _get(event, "event_data", "eventData")
        status = _get(data, "status", "status")
        if _text(status, _MAX_STATUS) is None:
            return EventResult("ignored", reason="the event holds no status")
        line_item = _text(
            _get(data, "reference_line_item_id", "referenceLineItemId", "referenceLineItemID"),
            _MAX_ID,
        )
        ref = _text(_get(data, "external_ref_id", "externalRefID", "externalRefId"), _MAX_ID)
        found = await self._io(
            self._journal.find_row, reference_line_item_id=line_item, external_ref_id=ref
        )
        if found is None or found.state is RowState.INVALID:
            return EventResult(
                "unmatched",
                reason=f"no row of this job has line item {line_item} or externalRefID {ref}",
            )
        raw_id = _get(event, "event_id", "eventId")
        event_id = _text(str(raw_id), _MAX_ID) if raw_id is not None else None
        revision = _get(event, "revision", "revision")
        if (
            isinstance(revision, bool)
            or not isinstance(revision, int)
            or not (0 <= revision < 2**63)
        ):
            revision = None  # (SQLite keeps 64-bit integers)
        parts = [
            f"{name} {value}"
            for name, attr, wire in (
                ("action", "action", "action"),
                ("reason code", "reason_code", "reasonCode"),
                ("reason", "reason", "reason"),
                ("new line item", "new_reference_line_item_id", "newReferenceLineItemId"),
            )
            if isinstance(value := _get(data, attr, wire), str) and value
        ]
        detail = "; ".join(parts)[:_MAX_DETAIL] or None
        now = datetime.now(UTC)
        # An event dated after it was received (a skewed clock, a bad stamp) counts as of
        # now: a later lookup must still be able to supersede it.
        as_of = min(_occurred(_get(event, "event_occurred_at", "eventOccurredAt")) or now, now)
        await self._writable()
        applied, record = await self._io(
            self._journal.record_status,
            found.row,
            status=status,
            source="webhook",
            as_of=as_of,
            reference_line_item_id=line_item,
            event_id=event_id,
            revision=revision,
            detail=detail,
        )
        self._note_status(record.status)
        if applied:
            return EventResult("applied", found.row, record.status)
        if event_id is not None and record.event_id == event_id:
            return EventResult("duplicate", found.row, record.status, "recorded before")
        return EventResult("stale", found.row, record.status, "newer news is recorded")

    def _note_status(self, status: str) -> None:
        if status not in _KNOWN and status not in self._unknown_logged:
            self._unknown_logged.add(status)
            log.warning("reconcile: unknown status %s, taken as not final", status)

    # --- lookups --------------------------------------------------------------------------

    async def run(
        self,
        *,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - on the client clock
        recheck: bool = False,
        progress: Callable[[ReconcileProgress], object] | None = None,
    ) -> ReconcileReport:
        """Look up the order of every row the job recorded as ordered and whose recorded
        status is not final (every one with ``recheck``), record each status, and return
        the report. ``wait``: look the rows still not final up again until they are,
        ``timeout`` seconds (of the client's clock) after the run began (no round starts
        after it but the one at it), or :meth:`stop`. ``progress`` is called after each
        lookup.

        A 401 or 403 stops the run (:attr:`ReconcileReport.stopped_by`); another failed
        lookup leaves its row as recorded (:attr:`ReconcileReport.lookup_errors`).
        ValidationError without a client or for bad arguments; JournalError when the
        journal cannot be written (every record before it is kept)."""
        client = self._client
        if client is None:
            raise ValidationError("client", "is needed to look orders up")
        if not isinstance(wait, bool) or not isinstance(recheck, bool):
            raise ValidationError("wait", "wait and recheck must be True or False")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 <= timeout <= _MAX_SECONDS
        ):
            raise ValidationError("timeout", "must be None or a number of seconds, at most a year")
        clock = getattr(client, "clock", None)
        clock = clock if isinstance(clock, Clock) else SystemClock()
        try:
            return await self._run(client, clock, wait, timeout, recheck, progress)
        finally:  # ready for another run; a stop() before this one ended it at once
            self._stopping = False
            self._stop = asyncio.Event()

    async def _run(
        self,
        client: ReconcileClient,
        clock: Clock,
        wait: bool,
        timeout: float | None,  # noqa: ASYNC109 - on the client clock
        recheck: bool,
        progress: Callable[[ReconcileProgress], object] | None,
    ) -> ReconcileReport:
        await self._writable()
        records = await self._io(self._journal.reconciliation)
        rows = await self._io(lambda: [r for r in self._journal.rows() if r.state is RowState.DONE])
        todo = [r for r in rows if recheck or not (rec := records.get(r.row)) or not rec.final]
        run = _Run(
            clock, records, sum(1 for r in rows if r.row not in records or not records[r.row].final)
        )
        deadline = None if timeout is None else run.t0 + timeout
        delay = self._poll
        timed_out = False
        while todo:
            todo = await self._round(client, run, todo, progress)
            if not todo or not wait or self._stopping:
                break
            left = None if deadline is None else deadline - clock.monotonic()
            if left is not None and left <= 0:
                timed_out = True
                break
            await self._pause(clock, delay if left is None else min(delay, left))
            delay = min(delay * 2, self._max_poll)
            run.round += 1
        if run.fatal is not None:
            raise run.fatal
        cut_short = run.skipped > 0 or (wait and bool(todo) and not timed_out)
        report = await self._io(
            build_report,
            self._journal,
            errors=run.errors,
            looked_up=run.looked_up,
            changed=run.changed,
            events=dict(self._events),
            interrupted=self._stopping and run.stopped_by is None and cut_short,
            timed_out=timed_out,
            stopped_by=run.stopped_by,
        )
        log.info(
            "reconcile %s: looked up %d, %d changed; %s",
            self._journal.path,
            run.looked_up,
            run.changed,
            ", ".join(f"{n} {c}" for c, n in report.counts.items()),
        )
        return report

    async def _pause(self, clock: Clock, seconds: float) -> None:
        """Sleep on the client's clock, ending early on :meth:`stop`."""
        sleeper = asyncio.ensure_future(clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    async def _round(
        self,
        client: ReconcileClient,
        run: _Run,
        todo: list[JournalRow],
        progress: Callable[[ReconcileProgress], object] | None,
    ) -> list[JournalRow]:
        """Look ``todo`` up; return the rows still not final (those not looked up too)."""
        queue = deque(todo)
        still: list[JournalRow] = []
        checked = final = errors = 0
        started = run.clock.monotonic()

        async def worker() -> None:
            nonlocal checked, final, errors
            while queue and not self._stopping:
                r = queue.popleft()
                before = run.records.get(r.row)
                counted = before is None or not before.final  # among run.pending
                try:
                    done = await self._check(client, run, r)
                except Exception as e:  # the journal cannot be written, or a bug: stop
                    if run.fatal is None:
                        run.fatal = e
                    self._stopping = True
                    still.append(r)
                    return
                checked += 1
                if done:
                    final += 1
                    run.pending -= counted
                else:
                    run.pending += not counted
                    still.append(r)
                errors += r.row in run.errors
                if progress is not None:
                    now = run.clock.monotonic()
                    rate = checked / (now - started) if now > started else 0.0
                    progress(
                        ReconcileProgress(
                            round=run.round,
                            total=len(todo),
                            checked=checked,
                            final=final,
                            errors=errors,
                            pending=run.pending,
                            elapsed=now - run.t0,
                            rate=rate,
                            eta=(len(todo) - checked) / rate if rate > 0 else 0.0,
                        )
                    )

        workers = [asyncio.create_task(worker()) for _ in range(min(self._concurrency, len(todo)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        run.skipped = len(queue) if self._stopping else 0
        return sorted([*still, *queue], key=lambda r: r.row)

    async def _reissue_detail(self, client: ReconcileClient, line_item_id: str) -> str | None:
        """For a CANCELLED order: "new line item X" when its line item was reissued (a new
        reward was sent and charged in its place), from ``line_items.get`` where the
        client has it; None otherwise or when the lookup fails (logged)."""
        line_items = getattr(client, "line_items", None)
        get = getattr(line_items, "get", None)
        if get is None:
            return None
        try:
            item = await get(line_item_id)
        except TangoError as e:
            log.warning("reconcile: could not look line item %s up: %s", line_item_id, _short(e))
            return None
        new = _text(getattr(item, "reissued_to_reference_line_item_id", None), _MAX_ID)
        return f"action REISSUE; new line item {new}" if new else None

    async def _check(self, client: ReconcileClient, run: _Run, r: JournalRow) -> bool:
        """Look one DONE row's order up and record its status; whether it is final."""
        order_id = r.reference_order_id
        assert order_id is not None  # a DONE row has one (the journal's CHECK)
        try:
            order = await client.orders.get(order_id)
        except (AuthenticationError, PermissionDeniedError) as e:
            if run.stopped_by is None:
                code = "401" if isinstance(e, AuthenticationError) else "403"
                run.stopped_by = (
                    f"the API refused the lookups ({code}): check the platform name, the key "
                    f"and the base URL ({_short(e)})"
                )
                log.error("reconcile stopped at row %d: %s", r.row, run.stopped_by)
            self._stopping = True
            return False
        except TangoError as e:
            run.errors[r.row] = _short(e)
            return False
        status = order.status or order.line_item_status or order.order_status
        if _text(status, _MAX_STATUS) is None:
            run.errors[r.row] = "the API answered without a status"
            return False
        assert status is not None
        if order.reference_order_id != order_id:
            run.errors[r.row] = (
                f"the API answered with another order ({_short(order.reference_order_id)})"
            )
            return False
        self._note_status(status)
        detail = None
        line_item_id = _text(order.reference_line_item_id, _MAX_ID)
        if status == "CANCELLED" and line_item_id is not None:
            detail = await self._reissue_detail(client, line_item_id)
        applied, record = await self._io(
            self._journal.record_status,
            r.row,
            status=status,
            source="poll",
            as_of=datetime.now(UTC),
            reference_line_item_id=line_item_id,
            detail=detail,
        )
        run.errors.pop(r.row, None)
        run.looked_up += 1
        before = run.records.get(r.row)
        if applied and (before is None or before.status != record.status):
            run.changed += 1
        run.records[r.row] = record
        return record.final


class _Run:
    """The counters of one :meth:`Reconciler.run`."""

    def __init__(self, clock: Clock, records: dict[int, StatusRecord], pending: int) -> None:
        self.clock = clock
        self.t0 = clock.monotonic()
        self.records = records
        self.pending = pending  # DONE rows not final
        self.round = 1
        self.looked_up = 0
        self.changed = 0
        self.errors: dict[int, str] = {}
        self.skipped = 0  # rows of the last round not looked up (stop() came first)
        self.stopped_by: str | None = None
        self.fatal: BaseException | None = None


async def reconcile(
    client: ReconcileClient | None,
    journal: str | os.PathLike[str] | Journal,
    *,
    wait: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109 - on the client clock
    events: Iterable[object] | None = None,
    progress: Callable[[ReconcileProgress], object] | None = None,
    concurrency: int = 2,
    recheck: bool = False,
    poll: float = 5.0,
    max_poll: float = 60.0,
) -> ReconcileReport:
    """Reconcile the job of ``journal`` (a path, or an open Journal, left open): apply
    ``events`` (webhook events, without a network call), then, with a ``client``, look up
    every order not final yet (:meth:`Reconciler.run`: ``wait``, ``timeout``, ``recheck``,
    ``progress``, ``concurrency``, ``poll``, ``max_poll``); return the report. With
    ``client=None`` nothing is looked up: the report says what the journal records."""
    if isinstance(journal, Journal):
        reconciler = Reconciler(
            journal, client, concurrency=concurrency, poll=poll, max_poll=max_poll
        )
    else:
        reconciler = await Reconciler.open(
            journal, client, concurrency=concurrency, poll=poll, max_poll=max_poll
        )
    async with reconciler:
        if events is not None:
            await reconciler.apply_all(events)
        if client is None:
            return await reconciler.report()
        return await reconciler.run(wait=wait, timeout=timeout, recheck=recheck, progress=progress)


# --- the results file -----------------------------------------------------------------------

RECONCILE_FIELDS = (
    "row",
    "externalRefID",
    "referenceOrderID",
    "referenceLineItemID",
    "result",
    "status",
    "amount",
    "source",
    "seenAt",
    "reason",
)


def _report_rows(report: ReconcileReport) -> Iterable[dict[str, Any]]:
    for r in report.rows:
        yield {
            "row": r.row,
            "externalRefID": r.external_ref_id or None,
            "referenceOrderID": r.reference_order_id,
            "referenceLineItemID": r.reference_line_item_id,
            "result": r.category,
            "status": r.status,
            "amount": r.amount,
            "source": r.source,
            "seenAt": format_time(r.seen_at, seconds=True),
            "reason": r.reason or None,
        }


def write_reconcile_report(
    report: ReconcileReport,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    csv_raw: bool = False,
) -> Path:
    """Write the reconciliation results file, one line per row (:data:`RECONCILE_FIELDS`):
    CSV, or JSONL (by ``format`` or the suffix, as
    :func:`~tango_async.bulk.write_report`). The CSV is spreadsheet-safe unless
    ``csv_raw``. ValidationError for a bad ``format``; ReportError when it cannot be
    written (the journal keeps every record)."""
    fmt = report_format(path, format, csv_raw)
    out = Path(path)
    try:
        with out.open("w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for row in _report_rows(report):
                    f.write(json_line(row) + "\n")  # the amount a plain JSON number
            else:
                writer = csv.writer(f)
                writer.writerow(RECONCILE_FIELDS)
                for row in _report_rows(report):
                    writer.writerow([csv_cell(row[k], raw=csv_raw) for k in RECONCILE_FIELDS])
    except OSError as e:
        raise ReportError(f"cannot write the report {out}: {e.strerror or e}") from None
    return out
