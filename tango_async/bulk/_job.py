"""The bulk order job: checks every row first, then sends at the client's rate limit.

With a journal, each row is marked SENDING (committed to disk) before its request goes out
and DONE or FAILED when the answer comes. A job resumed from its journal (after kill -9,
Ctrl-C or a power cut) skips DONE rows and re-sends the rest with the same externalRefID,
which the API answers with the existing order: exactly one order per row.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._exceptions import (
    APIConnectionError,
    APIError,
    ConflictError,
    RateLimitError,
    ServerError,
    TangoError,
    ValidationError,
)
from ..types.orders import CreateOrderRequest
from ._inputs import InputRow, RowError
from ._journal import Journal, JournalRow, RowState

if TYPE_CHECKING:
    from .._client import TangoClient

__all__ = ["BulkJob", "BulkValidationError", "Progress", "RowResult", "derive_job_id"]

log = logging.getLogger("tango_async")

Outcome = Literal["created", "existing", "failed", "invalid"]
T = TypeVar("T")


class BulkValidationError(TangoError, ValueError):
    """Rows of a bulk job break documented rules; nothing was sent. ``errors`` lists them all."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        rows = len({e.row for e in self.errors})
        shown = "\n".join(f"  {e}" for e in self.errors[:20])
        more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{rows} invalid row(s), nothing sent:\n{shown}{more}")


@dataclass(frozen=True, slots=True)
class RowResult:
    """What became of one row: created / existing (the order), failed or invalid (why)."""

    row: int
    external_ref_id: str
    outcome: Outcome
    reference_order_id: str | None = None
    status: str | None = None  # the order's status
    http_status: int | None = None
    i18n_key: str | None = None
    message: str | None = None
    retriable: bool | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a job stands. ``rate`` is orders per second over the last minute; ``eta`` is
    seconds, remaining rows times the limiter's spacing."""

    total: int
    done: int
    failed: int
    remaining: int
    elapsed: float
    rate: float
    eta: float


def derive_job_id(digest: str) -> str:
    """A job ID from the input file's digest: the same file gives the same externalRefIDs."""
    return "tj" + hashlib.sha256(digest.encode()).hexdigest()[:12]


def invalid_messages(errors: Iterable[RowError]) -> dict[int, str]:
    """Each invalid row's errors as one message, by row number: ``"field: rule; ..."``."""
    by_row: dict[int, list[str]] = {}
    for err in errors:
        by_row.setdefault(err.row, []).append(f"{err.field or 'row'}: {err.rule}")
    return {row: "; ".join(parts) for row, parts in sorted(by_row.items())}


def _content_digest(items: Sequence[CreateOrderRequest | InputRow]) -> str:
    """A digest of the requests themselves: the same input gives the same job ID."""
    from .._codec import ENCODER

    h = hashlib.sha256()
    for item in items:
        request = item.request if isinstance(item, InputRow) else item
        try:
            h.update(ENCODER.encode(request))
        except (TypeError, ValueError):
            h.update(repr(request).encode())
        h.update(b"\n")
    return h.hexdigest()


def external_ref_for(job_id: str, row: int) -> str:
    """The externalRefID of a row that names none: job ID + row number (alphanumeric)."""
    return f"{job_id}r{row}"


def is_retriable(error: TangoError) -> bool:
    """Failures worth sending again later with the same externalRefID."""
    return isinstance(error, (APIConnectionError, ServerError, RateLimitError, ConflictError))


class BulkJob:
    """A bulk order job; iterate it (``async for result in job``) to run it.

    Build it with ``client.orders.submit_many(...)`` or :meth:`resume`. Every row is
    checked before the first order is sent: invalid rows raise BulkValidationError
    (nothing sent), or are reported as ``invalid`` results with ``skip_invalid``.
    Orders go out through the client's rate limiter, ``concurrency`` at a time.
    :meth:`stop` lets the requests in flight finish and ends the iteration; the journal
    keeps the rest for a resume.
    """

    def __init__(
        self,
        client: TangoClient,
        rows: Sequence[tuple[int, str, bytes]],
        *,
        journal: Journal | None = None,
        invalid: Sequence[RowError] = (),
        concurrency: int = 2,
        total: int | None = None,
        already_done: int = 0,
        already_failed: int = 0,
    ) -> None:
        if concurrency < 1:
            raise ValidationError("concurrency", "must be at least 1")
        self._client = client
        self._rows = list(rows)
        self._journal = journal
        self._invalid = list(invalid)
        self._concurrency = concurrency
        self._stopping = False
        self._started = False
        self._t0 = 0.0
        self._recent: deque[float] = deque()
        self._total = total if total is not None else len(self._rows)
        self._done = already_done
        self._failed = already_failed + len({e.row for e in self._invalid})
        self._executor: ThreadPoolExecutor | None = None
        self.results: list[RowResult] = []  # in completion order

    # --- construction -------------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        client: TangoClient,
        requests: Iterable[CreateOrderRequest | InputRow],
        *,
        job_id: str | None = None,
        journal: str | Path | None = None,
        input_path: str = "",
        input_digest: str = "",
        skip_invalid: bool = False,
        concurrency: int = 2,
        settings: dict[str, Any] | None = None,
    ) -> BulkJob:
        """Check every row, derive externalRefIDs, and (with ``journal``) create the journal."""
        from ..resources.orders import encode_order

        items = list(requests)
        if job_id is None:
            job_id = derive_job_id(_content_digest(items))
        rows: list[tuple[int, str, bytes]] = []
        errors: list[RowError] = []
        for number, item in enumerate(items, 1):
            if isinstance(item, InputRow):
                number, request, row_errors = item.row, item.request, list(item.errors)
            else:
                request, row_errors = item, []
            if request is not None and not row_errors:
                try:
                    ref, body = encode_order(request, external_ref_for(job_id, number))
                except ValidationError as exc:
                    row_errors = [RowError(number, exc.field, exc.rule)]
                else:
                    rows.append((number, ref, body))
            errors += row_errors
        refs: dict[str, int] = {}
        for number, ref, _ in rows:
            if ref in refs:
                errors.append(
                    RowError(number, "external_ref_id", f"duplicates row {refs[ref]}'s {ref!r}")
                )
            refs.setdefault(ref, number)
        if errors and not skip_invalid:
            raise BulkValidationError(errors)
        bad = {e.row for e in errors}
        rows = [r for r in rows if r[0] not in bad]
        opened: Journal | None = None
        if journal is not None:
            opened = Journal.create(
                journal,
                job_id=job_id,
                input_path=input_path,
                input_digest=input_digest,
                rows=rows,
                invalid=list(invalid_messages(errors).items()),
                settings=settings or {},
            )
        return cls(
            client,
            rows,
            journal=opened,
            invalid=errors,
            concurrency=concurrency,
            total=len(rows) + len({e.row for e in errors}),
        )

    @classmethod
    def resume(
        cls,
        client: TangoClient,
        journal: Journal,
        *,
        concurrency: int = 2,
        retry_failed: bool = False,
    ) -> BulkJob:
        """The rest of a journaled job: SENDING and PENDING rows (and retriable FAILED ones,
        or every FAILED one with ``retry_failed``), each with its journaled externalRefID."""
        to_send = journal.to_send(retry_failed=retry_failed)
        counts = journal.counts()
        failed_kept = counts[RowState.FAILED] - sum(
            1 for r in to_send if r.state is RowState.FAILED
        )
        return cls(
            client,
            [(r.row, r.external_ref_id, r.request) for r in to_send],
            journal=journal,
            concurrency=concurrency,
            total=sum(counts.values()),
            already_done=counts[RowState.DONE],
            already_failed=failed_kept + counts[RowState.INVALID],
        )

    # --- running ------------------------------------------------------------------------

    @property
    def journal(self) -> Journal | None:
        return self._journal

    def stop(self) -> None:
        """Finish the requests in flight, send no more, and end the iteration."""
        self._stopping = True

    @property
    def stopped(self) -> bool:
        """True when :meth:`stop` ended the job before every row was sent."""
        return self._stopping and self._done + self._failed < self._total

    def progress(self) -> Progress:
        now = time.monotonic()
        elapsed = now - self._t0 if self._started else 0.0
        while self._recent and now - self._recent[0] > 60.0:
            self._recent.popleft()
        window = min(elapsed, 60.0)
        rate = len(self._recent) / window if window > 0 else 0.0
        remaining = self._total - self._done - self._failed
        spacing = getattr(self._client.rate_limiter, "spacing", 1.0)
        return Progress(
            self._total,
            self._done,
            self._failed,
            remaining,
            elapsed,
            rate,
            remaining * float(spacing),
        )

    def __aiter__(self) -> AsyncIterator[RowResult]:
        if self._started:
            raise RuntimeError("a BulkJob runs once; resume it from its journal instead")
        self._started = True
        return self._run()

    async def _io(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Journal I/O on the job's one journal thread (SQLite fsyncs must not block the loop)."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def _run(self) -> AsyncIterator[RowResult]:
        if self._journal is not None:
            self._journal.lock()  # one running job per journal
        self._t0 = time.monotonic()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tango-journal")
        queue: asyncio.Queue[tuple[int, str, bytes]] = asyncio.Queue()
        for row in self._rows:
            queue.put_nowait(row)
        results: asyncio.Queue[RowResult | None] = asyncio.Queue()
        for number, message in invalid_messages(self._invalid).items():
            results.put_nowait(RowResult(number, "", "invalid", message=message))
        workers = [
            asyncio.create_task(self._worker(queue, results))
            for _ in range(min(self._concurrency, max(1, len(self._rows))))
        ]
        running = len(workers)
        try:
            while running:
                item = await results.get()
                if item is None:
                    running -= 1
                    continue
                self.results.append(item)
                yield item
            while not results.empty():
                item = results.get_nowait()
                if item is not None:
                    self.results.append(item)
                    yield item
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._executor.shutdown(wait=True)

    async def _worker(
        self, queue: asyncio.Queue[tuple[int, str, bytes]], results: asyncio.Queue[RowResult | None]
    ) -> None:
        try:
            while True:
                # Let the consumer see the last result (and maybe stop()) before taking a row.
                await asyncio.sleep(0)
                if self._stopping:
                    return
                try:
                    row, ref, body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results.put_nowait(await self._send(row, ref, body))
        finally:
            results.put_nowait(None)

    async def _send(self, row: int, ref: str, body: bytes) -> RowResult:
        journal = self._journal
        if journal is not None:
            await self._io(journal.mark_sending, row)  # on disk before the request goes out
        try:
            order = await self._client.orders._send_encoded(ref, body)
        except TangoError as e:
            retriable = is_retriable(e)
            status = e.status_code if isinstance(e, APIError) else None
            key = e.i18n_key if isinstance(e, APIError) else None
            message = str(e)
            if journal is not None:
                await self._io(
                    journal.mark_failed,
                    row,
                    http_status=status,
                    i18n_key=key,
                    message=message,
                    retriable=retriable,
                )
            self._failed += 1
            self._recent.append(time.monotonic())
            return RowResult(
                row,
                ref,
                "failed",
                http_status=status,
                i18n_key=key,
                message=message,
                retriable=retriable,
            )
        if journal is not None:
            await self._io(
                journal.mark_done,
                row,
                reference_order_id=order.reference_order_id,
                created=order.created,
                order_status=order.status,
            )
        self._done += 1
        self._recent.append(time.monotonic())
        return RowResult(
            row,
            ref,
            "created" if order.created else "existing",
            reference_order_id=order.reference_order_id,
            status=order.status,
        )


def journal_outcome(row: JournalRow) -> str:
    """The report's outcome of a journaled row."""
    if row.state is RowState.DONE:
        return "created" if row.created else "existing"
    return {RowState.FAILED: "failed", RowState.INVALID: "invalid"}.get(row.state, "not sent")
