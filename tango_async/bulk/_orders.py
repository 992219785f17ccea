"""``client.orders`` as the client attaches it: the orders resource, plus bulk jobs.

``submit_many`` lives here, in the workflow layer, so that the resource itself
(:class:`tango_async.resources.orders.Orders`) imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .._ratelimit import RateLimiter
from .._requestor import Requestor
from .._validation import check_bool
from ..resources.accounts import Accounts
from ..resources.catalog import Catalogs
from ..resources.exchange_rates import ExchangeRates
from ..resources.orders import Orders
from ..types.orders import CreateOrderRequest
from ._inputs import InputRow, RowError
from ._job import BulkJob, PreflightHook
from ._preflight import Preflight, run_preflight

__all__ = ["BulkOrders"]


@dataclass(frozen=True, slots=True)
class _Sender:
    """The BulkClient of a BulkOrders: its own resource, limits and limiter."""

    orders: Orders
    max_amount: Decimal
    rate_limiter: RateLimiter


@dataclass(frozen=True, slots=True)
class _Reference:
    """The PreflightClient of a BulkOrders: the client's accounts, catalog and exchange
    rates (sharing its requestor, so its reference cache: the catalog is not fetched
    again when the client holds it)."""

    accounts: Accounts
    catalog: Catalogs
    exchange_rates: ExchangeRates


class BulkOrders(Orders):
    """Order calls of the API (see :class:`~tango_async.resources.orders.Orders`), and
    :meth:`submit_many` for bulk jobs."""

    def __init__(self, requestor: Requestor, rate_limiter: RateLimiter) -> None:
        super().__init__(requestor)
        self._rate_limiter = rate_limiter

    def submit_many(
        self,
        requests: Iterable[CreateOrderRequest | InputRow],
        *,
        journal: str | Path | None = None,
        run_label: str | None = None,
        dry_run: bool = False,
        job_id: str | None = None,
        concurrency: int = 2,
        skip_invalid: bool = False,
        balance_check: bool = True,
        preflight: bool = True,
    ) -> BulkJob:
        """A bulk order job over ``requests``; iterate it to send them and get RowResults.

        Every row is checked before anything is sent: invalid rows raise
        BulkValidationError listing them all (nothing sent), or with ``skip_invalid`` come
        back as ``invalid`` results. A row without an externalRefID gets one derived from
        its content (and its ordinal among identical rows): submitting the same orders
        again, from any file or journal, gets the existing orders back and pays nothing.
        To send the same rewards again on purpose, give a new ``run_label`` (the same label
        twice is idempotent again). ``job_id`` keeps 0.1's scheme (``{job_id}r{row}``, by
        row number) to finish jobs that 0.1 started with it; don't use it for new jobs.
        ``dry_run`` sends nothing
        and yields a ``planned`` result per row. Orders go out through this client's rate
        limiter, ``concurrency`` at a time. With ``journal`` (a new SQLite file) every
        row's state is on disk before its request goes out:
        ``BulkJob.resume(client, Journal.open(path))`` finishes an interrupted job with
        exactly one order per row. A 401, 403, 402 or frozen-account answer stops the job
        (``job.stopped_by``); a journal write that fails stops it with JournalError.

        **Pre-flight** (``preflight=True``, the default; see
        :mod:`tango_async.bulk._preflight`): before the first order (when the job is
        first iterated, or ``await job.preflight()``), the job reads the client's cached
        catalog, each account named by the rows and, if currencies differ, the exchange
        rates. Rows the catalog refuses (unknown or inactive utid, amount outside the
        item's rule) are invalid rows: BulkValidationError, nothing sent, or ``invalid``
        results with ``skip_invalid``. An account whose ``current_balance`` is known not
        to cover the estimated cost of its rows refuses the whole job with
        BalanceCheckError (nothing sent, no journal made) unless ``balance_check=False``.
        What cannot be read (403, 404, network) is noted in the report and refuses
        nothing. ``job.checked`` holds the :class:`~tango_async.bulk.Preflight`; the
        journal records it. A dry run runs it too and refuses nothing (its ``invalid``
        results include the catalog's). ``preflight=False`` reads nothing first (no
        catalog rules, no balance check), as before 0.3.
        """
        check_bool(balance_check, "balance_check")
        check_bool(preflight, "preflight")
        hook: PreflightHook | None = None
        if preflight:
            requestor = self._requestor
            reference = _Reference(
                Accounts(requestor), Catalogs(requestor), ExchangeRates(requestor)
            )

            async def hook(
                rows: Sequence[tuple[int, str, bytes]], invalid: Sequence[RowError]
            ) -> Preflight:
                return await run_preflight(reference, rows, invalid=invalid)

        return BulkJob.prepare(
            _Sender(self, self._requestor.max_amount, self._rate_limiter),
            requests,
            run_label=run_label,
            job_id=job_id,
            journal=journal,
            concurrency=concurrency,
            skip_invalid=skip_invalid,
            dry_run=dry_run,
            preflight=hook,
            balance_check=balance_check,
        )
