"""The bulk order job: checks every row first, then sends at the client's rate limit.

**Identity.** A row's externalRefID is derived from its order content (the request as it
goes on the wire, fields in a fixed order, without the externalRefID), its ordinal among
identical rows of the input, and an optional run label; a row that names its own
externalRefID keeps it. So re-saving a file (other line endings, column order, quoting,
blank lines) changes no externalRefID; correcting one row changes only that row's; the
same rewards sent again on purpose need a new ``run_label``.

**Journal.** With a journal, each row is marked SENDING (committed to disk) before its
request goes out and DONE, FAILED or UNKNOWN when the call ends. A job resumed from its
journal (after kill -9, Ctrl-C or a power cut) skips DONE rows and re-sends the rest with
the same externalRefID, which the API answers with the existing order: exactly one order
per row. Rows whose outcome is unknown go first.

**Pre-flight.** A job built with a pre-flight (``submit_many`` builds one by default;
see :mod:`tango_async.bulk._preflight`) runs it before its first order, once: rows the
catalog refuses become invalid rows (BulkValidationError, nothing sent, unless
``skip_invalid``), and an account whose balance cannot cover its rows refuses the whole
job (BalanceCheckError, nothing sent, no journal made) unless the balance check is off.
The journal is created only after it, holding the pre-flight record. A resumed job runs
no pre-flight: its journal shows the one it started with.

**Stops.** An answer that no later row can escape (401, 403, 402, a frozen account) stops
the job at once: nothing more is sent, the row goes back to PENDING, and
:attr:`BulkJob.stopped_by` says why. A journal that cannot be written stops the job too;
iterating it then raises that JournalError.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import weakref
from collections import Counter, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import msgspec

from .._codec import CANONICAL_ENCODER, encode_request
from .._constants import DEFAULT_MAX_AMOUNT
from .._exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    CatalogUnavailableError,
    ConflictError,
    InsufficientFundsError,
    OAuthError,
    PermissionDeniedError,
    RateLimitError,
    SendSkipped,
    ServerError,
    TangoError,
    UnprocessableEntityError,
    ValidationError,
)
from .._ratelimit import RateLimiter
from .._validation import prepare_order
from ..resources.orders import Orders
from ..types.orders import CreateOrderRequest
from ._inputs import InputRow, RowError, checked_request
from ._journal import (
    CONTENT_REFS,
    ROW_NUMBER_REFS,
    Journal,
    JournalError,
    JournalMismatchError,
    JournalRow,
    RowState,
)
from ._preflight import BalanceCheckError, Preflight

if TYPE_CHECKING:
    from decimal import Decimal


class BulkClient(Protocol):
    """What a bulk job needs of a client (a :class:`~tango_async.TangoClient` has it all):
    its ``orders`` resource to send through, its ``max_amount`` to check rows against and
    its ``rate_limiter`` (whose ``spacing``, if it has one, paces the progress estimate)."""

    @property
    def orders(self) -> Orders: ...

    @property
    def max_amount(self) -> Decimal: ...

    @property
    def rate_limiter(self) -> RateLimiter: ...


__all__ = [
    "BulkClient",
    "BulkJob",
    "BulkValidationError",
    "Plan",
    "PreflightHook",
    "Progress",
    "RowResult",
    "SystemicStop",
    "check_same_orders",
    "derive_job_id",
    "plan_rows",
]

log = logging.getLogger("tango_async")

#: What a job calls for its pre-flight: (the rows to send, the row errors) -> Preflight.
PreflightHook = Callable[
    [Sequence[tuple[int, str, bytes]], Sequence[RowError]], Awaitable[Preflight]
]
Outcome = Literal["created", "existing", "failed", "invalid", "unknown", "pending", "planned"]
T = TypeVar("T")

RUN_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FROZEN_ACCOUNT = "404.142"


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
    """What became of one row: created / existing (the order), failed or invalid (why),
    unknown (sent, no definite answer: resume resolves it), pending (not ordered: the job
    stopped), planned (a dry run)."""

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


@dataclass(frozen=True, slots=True)
class SystemicStop:
    """Why a job stopped by itself: an answer every later row would get too."""

    row: int
    error: TangoError  # an APIError, or an OAuthError / CatalogUnavailableError
    reason: str  # what it means and what to do

    def __str__(self) -> str:
        return f"{self.reason} (row {self.row}: {self.error})"


@dataclass(frozen=True, slots=True)
class Plan:
    """The rows of a job as they will be sent: ``(row, externalRefID, wire JSON)``, every
    row error, and ``identity``, the digest of the set of externalRefIDs (what a journal
    recognises the same orders by)."""

    rows: list[tuple[int, str, bytes]]
    errors: list[RowError]
    identity: str
    run_label: str | None

    @property
    def job_id(self) -> str:
        return derive_job_id(self.identity)


def derive_job_id(digest: str) -> str:
    """A short job ID from a digest (a plan's identity)."""
    return "tj" + hashlib.sha256(digest.encode()).hexdigest()[:12]


def check_run_label(label: object) -> str | None:
    """None, or a label of 1-64 letters, digits, '.', '_' or '-' (ValidationError)."""
    if label is None:
        return None
    if not isinstance(label, str) or not RUN_LABEL.fullmatch(label):
        raise ValidationError(
            "run_label",
            "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return label


def invalid_messages(errors: Iterable[RowError]) -> dict[int, str]:
    """Each invalid row's errors as one message, by row number: ``"field: rule; ..."``."""
    by_row: dict[int, list[str]] = {}
    for err in errors:
        by_row.setdefault(err.row, []).append(f"{err.field or 'row'}: {err.rule}")
    return {row: "; ".join(parts) for row, parts in sorted(by_row.items())}


def content_ref(content: bytes, ordinal: int, run_label: str | None) -> str:
    """The externalRefID of a row that names none: from its canonical content, its ordinal
    among identical rows (1, 2, ...) and the run label (alphanumeric, 42 characters)."""
    h = hashlib.sha256(b"tango-async bulk order v1\0")
    h.update((run_label or "").encode())
    h.update(b"\0")
    h.update(content)
    h.update(b"\0%d" % ordinal)
    return "tb" + h.hexdigest()[:40]


def plan_rows(
    requests: Iterable[CreateOrderRequest | InputRow],
    *,
    run_label: str | None = None,
    max_amount: Decimal | int = DEFAULT_MAX_AMOUNT,
    job_id: str | None = None,
) -> Plan:
    """Check every row and derive its externalRefID (see the module docstring); nothing
    is sent. Row numbers are InputRow.row (the file line a row read by ``read_orders``
    starts on), else the position (from 1). Each row is checked
    once: a row ``read_orders`` checked against this ``max_amount`` is not checked again
    (see :func:`~tango_async.bulk._inputs.checked_request`), any other is checked here.

    ``job_id`` selects 0.1's scheme instead, ``{job_id}r{row}`` by row number as 0.1
    numbered rows (``InputRow.record``: a CSV's record after the header is 1, not the file
    line): only to finish, with the same externalRefIDs, a job that 0.1 started with that
    job ID."""
    label = check_run_label(run_label)
    if job_id is not None and (not isinstance(job_id, str) or not job_id.isalnum()):
        raise ValidationError("job_id", "must be letters and digits (0.1's job IDs)")
    rows: list[tuple[int, str, bytes]] = []
    errors: list[RowError] = []
    seen: Counter[bytes] = Counter()
    for number, item in enumerate(requests, 1):
        # A row read_orders() checked is not checked again (checked_request); any other
        # request is checked here, once.
        checked: CreateOrderRequest | None = None
        ordinal = number  # 0.1's row number, which its row-number refs are made of
        if isinstance(item, InputRow):
            number, request, row_errors = item.row, item.request, list(item.errors)
            ordinal = item.record if item.record is not None else item.row
            checked = checked_request(item, max_amount)
        else:
            request, row_errors = item, []
        if request is None or row_errors:
            errors += row_errors
            continue
        try:
            wire = checked if checked is not None else prepare_order(request, max_amount=max_amount)
            own = wire.external_ref_id
            if own is not None:
                ref = own
            elif job_id is not None:
                ref = f"{job_id}r{ordinal}"  # as 0.1 numbered it, not the file line
            else:
                content = encode_request(wire, CANONICAL_ENCODER)
                seen[content] += 1
                ref = content_ref(content, seen[content], label)
            body = encode_request(msgspec.structs.replace(wire, external_ref_id=ref))
        except ValidationError as exc:
            errors.append(RowError(number, exc.field, exc.rule))
        else:
            rows.append((number, ref, body))
    refs: dict[str, int] = {}
    for number, ref, _ in rows:
        if ref in refs:
            errors.append(
                RowError(number, "external_ref_id", f"duplicates row {refs[ref]}'s {ref!r}")
            )
        refs.setdefault(ref, number)
    bad = {e.row for e in errors}
    good = [r for r in rows if r[0] not in bad]
    identity = hashlib.sha256("\n".join(sorted(r[1] for r in good)).encode()).hexdigest()
    return Plan(good, errors, identity, label)


def check_same_orders(opened: Journal, plan: Plan, file: str | Path, digest: str) -> None:
    """Refuse (JournalMismatchError) a journal that holds other orders than ``plan`` (the
    rows of ``file``, whose bytes have the SHA-256 ``digest``); the message says which
    rows differ and never advises anything that would pay a row twice. A journal of 0.1
    (refs from the file's bytes) is matched by the digest."""
    where = f"journal {opened.path}"
    if opened.ref_scheme != CONTENT_REFS:  # written by 0.1: refs from the file's bytes
        if digest == opened.input_digest:
            return
        ordered = sum(1 for r in opened.rows() if r.state in (RowState.DONE, RowState.SENDING))
        raise JournalMismatchError(
            f"{where} was written by tango-async 0.1, whose externalRefIDs come from the "
            f"input file's bytes, and {file} is not that file (or it changed). A new journal "
            f"would give the {ordered} row(s) it already ordered (or sent) new externalRefIDs, "
            f"and pay them again. Finish it with its original file "
            f"(tango-async resume {opened.path}), or remove from the file the rows its report "
            "shows as ordered before sending the rest with a new --journal."
        )
    if plan.identity == opened.identity:
        return
    new_refs = {ref for _, ref, _ in plan.rows}
    old = {r.external_ref_id: r for r in opened.rows() if r.external_ref_id}
    gone = [r for ref, r in old.items() if ref not in new_refs]
    ordered_gone = [
        r.row for r in gone if r.state in (RowState.DONE, RowState.SENDING, RowState.UNKNOWN)
    ]
    text = (
        f"{where} holds other orders than {file}: {len(new_refs - old.keys())} row(s) of the "
        f"file are new or changed, {len(gone)} row(s) of the journal are not in it as they were"
    )
    if opened.run_label != plan.run_label:
        was = f"--run-label {opened.run_label}" if opened.run_label else "no --run-label"
        raise JournalMismatchError(
            f"{text}: the journal's job was run with {was}, this submit with "
            f"{f'--run-label {plan.run_label}' if plan.run_label else 'none'}. A run label "
            "makes every row a NEW order: with a new journal, every row of the file would be "
            f"ordered (and paid) again. To finish the journal's job, submit with {was}."
        )
    text += "."
    if ordered_gone:
        shown = ", ".join(map(str, ordered_gone[:10])) + (" ..." if len(ordered_gone) > 10 else "")
        text += (
            f" {len(ordered_gone)} of those were already ordered, or sent without an answer "
            f"(journal rows {shown}): a corrected version of such a row is a NEW order, paid "
            "in addition to the first."
        )
    text += (
        f" To send {file} as it is now, give it a new journal (--journal PATH): rows that "
        "were already ordered keep their externalRefIDs and come back as existing, not paid "
        "again; only new or changed rows are ordered."
    )
    raise JournalMismatchError(text)


def is_retriable(error: TangoError) -> bool:
    """Failures worth sending again later with the same externalRefID."""
    return isinstance(error, (APIConnectionError, ServerError, RateLimitError, ConflictError))


def systemic_reason(error: TangoError) -> str | None:
    """Why ``error`` stops a whole job (every later row would get it too), or None."""
    if isinstance(error, OAuthError):  # its message names the remedy (a token cache...)
        return f"no OAuth token could be had: {error}"
    if isinstance(error, AuthenticationError):
        return "the API refused the credentials (401): check the platform name and key"
    if isinstance(error, CatalogUnavailableError):
        return (
            "the catalog could not be fetched to check the orders (check_catalog=True): "
            f"{error.cause if error.cause is not None else error}; nothing was sent, resume later"
        )
    if isinstance(error, PermissionDeniedError):
        return (
            "the API refused access (403): these credentials may not place this order on "
            "this account"
        )
    if isinstance(error, InsufficientFundsError):
        return "the account cannot cover the order (402): fund it, then resume"
    if isinstance(error, UnprocessableEntityError) and (
        error.i18n_key == FROZEN_ACCOUNT or "frozen" in str(error).lower()
    ):
        return "the account is frozen (422 404.142): contact Tango, then resume"
    return None


class BulkJob:
    """A bulk order job; iterate it (``async for result in job``) to run it.

    Build it with ``client.orders.submit_many(...)`` or :meth:`resume`. Every row is
    checked before the first order is sent: invalid rows raise BulkValidationError
    (nothing sent), or are reported as ``invalid`` results with ``skip_invalid``.
    Orders go out through the client's rate limiter, ``concurrency`` at a time.
    :meth:`stop` lets the requests in flight finish and ends the iteration; the journal
    keeps the rest for a resume. A systemic refusal (401, 403, 402, frozen account) stops
    it the same way and sets :attr:`stopped_by`; a journal that cannot be written stops it
    and the iteration raises that JournalError (what was sent stays recorded as SENDING,
    so a resume re-sends it with its externalRefID).

    **The journal's lock.** A journaled job holds its journal's job lock (one running job
    per journal, see :meth:`Journal.lock`) from :meth:`resume` or the journal's creation
    until its iteration ends, however it ends (finished, stopped, a systemic refusal, a
    journal error, cancelled): then it releases it, so another job, in this process or
    another, may resume the journal at once (``BulkJob.resume(client, job.journal)``, or
    ``Journal.open(path)``). The journal stays open for reading (``job.journal.counts()``,
    ``write_report``) until ``job.journal.close()``. A job that is never iterated, or whose
    iteration is left unfinished (``break``, a cancellation or an exception in the loop's
    body), keeps the lock until :meth:`aclose` (``async with job:`` calls it on exit; the
    iteration's garbage collection does it too), ``job.journal.release()`` or
    ``close()``::

        async with tango.orders.submit_many(rows, journal="rewards.journal") as job:
            async for result in job:
                ...
    """

    def __init__(
        self,
        client: BulkClient,
        rows: Sequence[tuple[int, str, bytes]],
        *,
        journal: Journal | None = None,
        invalid: Sequence[RowError] = (),
        concurrency: int = 2,
        total: int | None = None,
        already_done: int = 0,
        already_failed: int = 0,
        unsettled: Iterable[int] = (),
        dry_run: bool = False,
        preflight: PreflightHook | None = None,
        balance_check: bool = True,
        skip_invalid: bool = False,
        create_journal: Callable[[Sequence[RowError], Preflight | None], Journal] | None = None,
    ) -> None:
        if not isinstance(balance_check, bool):
            raise ValidationError("balance_check", "must be True or False")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError("concurrency", "must be an int of at least 1")
        self._client = client
        self._rows = list(rows)
        self._journal = journal
        self._invalid = list(invalid)
        self._concurrency = concurrency
        self._unsettled = set(unsettled)  # rows sent before with an unknown outcome
        self._dry_run = dry_run
        self._stopping = False
        self._started = False
        self._running = False  # an iteration is in progress
        self._ended = asyncio.Event()  # set when an iteration has ended
        self._iteration: weakref.ref[AsyncGenerator[RowResult, None]] | None = None
        self._t0 = 0.0
        self._recent: deque[float] = deque()
        self._total = total if total is not None else len(self._rows)
        self._done = already_done
        self._failed = already_failed + len({e.row for e in self._invalid})
        self._executor: ThreadPoolExecutor | None = None
        self._executor_done = False
        self._workers: list[asyncio.Task[None]] = []  # the senders of the iteration
        self._fatal: BaseException | None = None
        self.stopped_by: SystemicStop | None = None
        self.results: list[RowResult] = []  # in completion order
        # issue 15: the pre-flight (run once, before the first order) and what it decides
        self._preflight_hook = preflight
        self._balance_check = balance_check
        self._skip_invalid = skip_invalid
        self._create_journal = create_journal  # a journal made after the pre-flight
        self._preflight_task: asyncio.Future[Preflight | None] | None = None
        self.checked: Preflight | None = None  # the pre-flight's report, once it ran

    # --- construction -------------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        client: BulkClient,
        requests: Iterable[CreateOrderRequest | InputRow] | Plan,
        *,
        run_label: str | None = None,
        job_id: str | None = None,
        journal: str | Path | None = None,
        input_path: str = "",
        input_digest: str = "",
        skip_invalid: bool = False,
        concurrency: int = 2,
        settings: dict[str, Any] | None = None,
        dry_run: bool = False,
        preflight: PreflightHook | None = None,
        balance_check: bool = True,
    ) -> BulkJob:
        """Check every row, derive externalRefIDs (see :func:`plan_rows`; ``job_id``: 0.1's
        row-number scheme) and, with ``journal`` and not ``dry_run``, create the journal.
        A dry run sends nothing: iterating it yields a ``planned`` result per row
        (``invalid`` for invalid ones, with ``skip_invalid``).

        ``preflight`` (see :mod:`tango_async.bulk._preflight`) is run by :meth:`preflight`
        before the first order; the journal is then created after it (a ``journal`` path
        that is taken is refused here all the same, JournalError), holding its record.
        ``balance_check=False`` sends even when a balance is known to be short (the
        pre-flight still runs and is recorded as ``skipped``)."""
        plan = (
            requests
            if isinstance(requests, Plan)
            else plan_rows(
                requests, run_label=run_label, max_amount=client.max_amount, job_id=job_id
            )
        )
        errors = plan.errors
        if errors and not skip_invalid:
            raise BulkValidationError(errors)
        opened: Journal | None = None
        later: Callable[[Sequence[RowError], Preflight | None], Journal] | None = None
        if journal is not None and not dry_run:
            scheme = ROW_NUMBER_REFS if job_id is not None else CONTENT_REFS
            path = journal

            def create(invalid: Sequence[RowError], checked: Preflight | None) -> Journal:
                refused = {e.row for e in invalid}
                return Journal.create(
                    path,
                    job_id=plan.job_id,
                    input_path=input_path,
                    input_digest=input_digest,
                    rows=[r for r in plan.rows if r[0] not in refused],
                    invalid=list(invalid_messages(invalid).items()),
                    settings=settings or {},
                    # the plan's identity, catalog-refused rows included: a later submit of
                    # the same rows (planned without the catalog) finds this journal
                    identity=plan.identity,
                    run_label=plan.run_label,
                    ref_scheme=scheme,
                    preflight=None
                    if checked is None
                    else checked.record(balance_check=balance_check),
                )

            if preflight is None:
                opened = create(errors, None)
            else:
                Journal.check_new(path)  # refused now, not after the pre-flight
                later = create
        return cls(
            client,
            plan.rows,
            journal=opened,
            invalid=errors,
            concurrency=concurrency,
            total=len(plan.rows) + len({e.row for e in errors}),
            dry_run=dry_run,
            preflight=preflight,
            balance_check=balance_check,
            skip_invalid=skip_invalid,
            create_journal=later,
        )

    @classmethod
    def resume(
        cls,
        client: BulkClient,
        journal: Journal,
        *,
        concurrency: int = 2,
        retry_failed: bool = False,
    ) -> BulkJob:
        """The rest of a journaled job, each row with its journaled externalRefID: first
        the rows whose outcome is unknown (SENDING, UNKNOWN), then PENDING ones and
        retriable FAILED ones (every FAILED one with ``retry_failed``).

        No pre-flight is run (the balance check is not repeated: ``journal.preflight``
        holds the one the job started with); rows the balance cannot cover meet the
        API's 402, which stops the job as ever.

        Takes the journal's job lock first (:meth:`Journal.lock`): JournalError, and nothing
        read or changed, when another process is running its job or creating it."""
        journal.lock()  # one running job per journal, taken before anything is read
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
            unsettled=[r.row for r in to_send if r.state in (RowState.SENDING, RowState.UNKNOWN)],
        )

    # --- running ------------------------------------------------------------------------

    @property
    def journal(self) -> Journal | None:
        """The job's journal (None without one; for a job with a pre-flight, None until
        :meth:`preflight` has run and created it)."""
        return self._journal

    async def preflight(self) -> Preflight | None:
        """Run the job's pre-flight (once; iterating the job runs it if this was not
        called) and apply it: rows the catalog refuses become invalid rows (without
        ``skip_invalid``: BulkValidationError, nothing sent, no journal); an account known
        to be short refuses the job (BalanceCheckError, nothing sent, no journal) unless
        the balance check is off; then the journal is created, holding the record. A dry
        run refuses nothing: it reports. Returns the :class:`Preflight` (also kept as
        :attr:`checked`), None for a job without one. Called again, it returns (or raises)
        what the first call did."""
        # One run, awaited by every caller: a second caller (the iteration, while a first
        # await is still reading) must wait for the verdict, never go on without it.
        if self._preflight_task is None:
            self._preflight_task = asyncio.ensure_future(self._run_preflight())
        return await self._preflight_task

    async def _run_preflight(self) -> Preflight | None:
        hook = self._preflight_hook
        if hook is None:
            return None
        checked = await hook(self._rows, self._invalid)
        self.checked = checked
        for line in checked.lines(balance_check=self._balance_check):
            log.info("bulk pre-flight: %s", line.strip())
        refused = checked.catalog_invalid
        if refused:
            by_catalog = [e for e in checked.invalid if e.row in refused]
            if not self._skip_invalid and not self._dry_run:
                raise BulkValidationError(by_catalog)
            self._rows = [r for r in self._rows if r[0] not in refused]
            self._invalid = sorted([*self._invalid, *by_catalog], key=lambda e: e.row)
            self._failed += len(refused)
        if checked.short and not self._dry_run:
            if self._balance_check:
                raise BalanceCheckError(checked)
            log.warning(
                "bulk pre-flight: %d account(s) short, sending anyway (balance_check=False)",
                len(checked.short),
            )
        if self._create_journal is not None and not self._dry_run:
            self._journal = self._create_journal(self._invalid, checked)
            self._create_journal = None
        return checked

    def stop(self) -> None:
        """Finish the requests in flight, send no more, and end the iteration."""
        self._stopping = True

    @property
    def stopped(self) -> bool:
        """True when the job ended (stop(), a systemic refusal, a journal error) before
        every row was sent."""
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

    def __aiter__(self) -> AsyncGenerator[RowResult, None]:
        if self._started:
            raise RuntimeError("a BulkJob runs once; resume it from its journal instead")
        self._started = True
        iteration = self._run()
        # weakly held: an iteration left unfinished (``break``) is still closed, and its
        # lock released, when it is garbage collected
        self._iteration = weakref.ref(iteration)
        return iteration

    async def _io(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Journal I/O on the job's one journal thread (SQLite fsyncs must not block the loop)."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def _run(self) -> AsyncGenerator[RowResult, None]:
        self._running = True
        rows = self._run_rows()
        try:
            async with contextlib.aclosing(rows):  # its own finally runs first, at once
                async for result in rows:
                    yield result
        finally:
            self._running = False
            if self._executor is None or self._executor_done:  # nothing left in flight
                self._release()
            self._ended.set()

    async def _run_rows(self) -> AsyncGenerator[RowResult, None]:
        await self.preflight()
        for number, message in invalid_messages(self._invalid).items():
            refused = RowResult(number, "", "invalid", message=message)
            self.results.append(refused)
            if self._dry_run:
                yield refused
        if self._dry_run:
            for number, ref, _ in self._rows:
                planned = RowResult(number, ref, "planned")
                self.results.append(planned)
                yield planned
            return
        if self._journal is not None:
            self._journal.lock()  # one running job per journal
        self._t0 = time.monotonic()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tango-journal")
        queue: asyncio.Queue[tuple[int, str, bytes]] = asyncio.Queue()
        for row in self._rows:
            queue.put_nowait(row)
        results: asyncio.Queue[RowResult | None] = asyncio.Queue()
        for refused in self.results:
            results.put_nowait(refused)
        self.results = []
        workers = self._workers = [
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
            # Nothing is in flight and no journal write is pending: the job has ended
            # (finished, stopped, failed or cancelled), so its lock goes (issue 16).
            self._executor_done = True
            self._release()
        if self._fatal is not None:
            raise self._fatal

    def _release(self) -> None:
        """Release the journal's job lock (the journal stays open for reading)."""
        if self._journal is not None:
            self._journal.release()

    async def aclose(self) -> None:
        """End the job and release its journal's job lock (idempotent). An iteration left
        unfinished (``break``, an exception or a cancellation in the loop's body) is
        closed first, as a second Ctrl-C would: the requests in flight are cancelled,
        their rows stay SENDING, and a resume re-sends them with their externalRefIDs. The
        journal stays open for reading (``job.journal.counts()``,
        :func:`~tango_async.bulk.write_report`) until ``job.journal.close()``. Not from
        inside the job's own loop: call :meth:`stop` there."""
        iteration = self._iteration() if self._iteration is not None else None
        if iteration is not None:
            await iteration.aclose()  # no-op for an iteration that ended
        elif self._running:  # collected unfinished: asyncio closes it (its finalizer hook)
            await self._ended.wait()
        if self._running:
            return
        if self._executor is not None and not self._executor_done:
            # The iteration's own clean-up was cut short (cancelled again while it waited
            # for its senders): the lock goes only once nothing is in flight and no
            # journal write is pending, or another job could resume rows still being sent
            for w in self._workers:
                w.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: self._executor.shutdown(wait=True) if self._executor else None
            )
            self._executor_done = True
        self._release()

    async def __aenter__(self) -> BulkJob:
        """``async with job:`` runs nothing by itself; its exit is :meth:`aclose`."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """:meth:`aclose`: the job ends and its journal's lock is released, however the
        block is left (a ``break``, an exception), and even if it was never iterated."""
        await self.aclose()

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
                try:
                    results.put_nowait(await self._send(row, ref, body))
                except Exception as e:  # a journal that cannot be written, or a bug: stop loudly
                    if self._fatal is None:
                        self._fatal = e
                    self._stopping = True
                    return
        finally:
            results.put_nowait(None)

    async def _record(self, fn: Any, row: int, what: str, **kwargs: Any) -> None:
        assert self._journal is not None
        try:
            await self._io(fn, row, **kwargs)
        except JournalError as e:
            raise JournalError(
                f"{e}. The job stopped: {what}; resume re-sends row {row} with its "
                "externalRefID, so it is never ordered twice"
            ) from e

    async def _send(self, row: int, ref: str, body: bytes) -> RowResult:
        journal = self._journal
        if journal is not None:
            await self._io(journal.mark_sending, row)  # on disk before the request goes out
        try:
            order = await self._client.orders.send_encoded(
                ref, body, reused=row in self._unsettled, gate=lambda: not self._stopping
            )
        except SendSkipped:
            if row in self._unsettled:  # sent before, outcome unknown: it stays unknown
                message = "not sent again (the job stopped first); its earlier outcome is unknown"
                if journal is not None:
                    await self._record(
                        journal.mark_unknown,
                        row,
                        "it was not sent again",
                        http_status=None,
                        i18n_key=None,
                        message=message,
                    )
                return RowResult(row, ref, "unknown", message=message, retriable=True)
            message = "not sent: the job stopped first"
            if journal is not None:
                await self._record(
                    journal.mark_pending,
                    row,
                    "it was not sent",
                    http_status=None,
                    i18n_key=None,
                    message=message,
                )
            return RowResult(row, ref, "pending", message=message)
        except TangoError as e:
            return await self._refused(row, ref, e)
        if journal is not None:
            await self._record(
                journal.mark_done,
                row,
                f"its order {order.reference_order_id} exists but is not recorded",
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

    async def _refused(self, row: int, ref: str, e: TangoError) -> RowResult:
        """Record a row whose call raised ``e``: unknown, back to pending (a systemic
        refusal, which stops the job) or failed."""
        journal = self._journal
        status = e.status_code if isinstance(e, APIError) else None
        key = e.i18n_key if isinstance(e, APIError) else None
        message = str(e)
        reason = systemic_reason(e)
        if reason is not None:
            if self.stopped_by is None:
                self.stopped_by = SystemicStop(row, e, reason)
                log.error("bulk job stopped at row %d: %s", row, reason)
            self._stopping = True
        if e.outcome_unknown:
            if journal is not None:
                await self._record(
                    journal.mark_unknown,
                    row,
                    "its outcome is unknown",
                    http_status=status,
                    i18n_key=key,
                    message=message,
                )
            return RowResult(
                row,
                ref,
                "unknown",
                http_status=status,
                i18n_key=key,
                message=message,
                retriable=True,
            )
        if reason is not None:
            if journal is not None:
                await self._record(
                    journal.mark_pending,
                    row,
                    "it was refused",
                    http_status=status,
                    i18n_key=key,
                    message=message,
                )
            return RowResult(row, ref, "pending", http_status=status, i18n_key=key, message=message)
        retriable = is_retriable(e)
        if journal is not None:
            await self._record(
                journal.mark_failed,
                row,
                "its failure is not recorded",
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


def journal_outcome(row: JournalRow) -> str:
    """The report's outcome of a journaled row: created, existing, failed, invalid,
    unknown (sent without a definite answer, or in flight when the job ended) or pending."""
    if row.state is RowState.DONE:
        return "created" if row.created else "existing"
    return {
        RowState.FAILED: "failed",
        RowState.INVALID: "invalid",
        RowState.UNKNOWN: "unknown",
        RowState.SENDING: "unknown",
    }.get(row.state, "pending")
