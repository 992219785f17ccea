"""``client.orders`` as the client attaches it: the orders resource, plus bulk jobs.

``submit_many`` lives here, in the workflow layer, so that the resource itself
(:class:`tango_async.resources.orders.Orders`) imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .._ratelimit import RateLimiter
from .._requestor import Requestor
from ..resources.orders import Orders
from ..types.orders import CreateOrderRequest
from ._inputs import InputRow
from ._job import BulkJob

__all__ = ["BulkOrders"]


@dataclass(frozen=True, slots=True)
class _Sender:
    """The BulkClient of a BulkOrders: its own resource, limits and limiter."""

    orders: Orders
    max_amount: Decimal
    rate_limiter: RateLimiter


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
        """
        return BulkJob.prepare(
            _Sender(self, self._requestor.max_amount, self._rate_limiter),
            requests,
            run_label=run_label,
            job_id=job_id,
            journal=journal,
            concurrency=concurrency,
            skip_invalid=skip_invalid,
            dry_run=dry_run,
        )
