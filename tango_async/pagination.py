"""Order history: a lazy async iterator over ``GET /orders`` that sees past the 10,000 window.

The API pages through at most ``result_window`` (10,000) results of one query. Given a
date range, :class:`OrderHistory` splits it into date windows small enough to page
through whole (and halves a window the API refuses as too long, 422.043). Adjacent
windows share their boundary instant, so an order stamped exactly there can come back
twice: it is yielded once, by referenceOrderID. Memory stays bounded: only the IDs of
the current and the previous window are kept.

With ``concurrency`` N > 1 pages are fetched ahead, at most N at a time. The walk itself
is unchanged and sequential: it takes the pages in the same order and decides splits,
stops and duplicates on the same pages, so it yields the same orders in the same order
as with N = 1. Ahead of it run the requests it is going to make next, as far as the pages
already seen tell: once a page gives ``totalCount``, the window's later pages, then the
next window's first page, then that window's later pages once its first is back. At most
N fetches exist at any time, in flight or fetched and not yet taken, so memory stays
bounded too. A fetched-ahead page the walk turns out not to need (the history changed
under it, a page came back twice, the API refused a page mid-window with 400.021) is
cancelled and thrown away; otherwise the requests are exactly those of the sequential
walk, only sooner.
A window's length is known only from its first page, so a run of one-page windows (short
periods after halving on 422.043) gains little. Nothing is fetched before iteration
starts, nor ahead before the consumer asks for the second page; closing the iterator
(``aclose()``, ``break`` and garbage collection, an error, a cancellation) cancels every
fetch ahead and waits for it to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from ._constants import MAX_ELEMENTS_PER_BLOCK
from ._exceptions import (
    BadRequestError,
    ResultWindowError,
    UnprocessableEntityError,
    ValidationError,
)
from ._repr import tolerant_repr
from ._validation import (
    check_bool,
    check_external_ref_id,
    check_identifier,
    check_int,
    check_str,
    format_amount_filter,
    format_query_datetime,
    to_rfc3339,
)
from .types.orders import Order, OrderListWire, OrderPage, PageInfoWire

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["OrderHistory"]

log = logging.getLogger("tango_async")

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before any RaaS v2 order; lower bound of a range
WINDOW_TOO_LARGE = "400.021"
PERIOD_TOO_LONG = "422.043"
_MS = timedelta(milliseconds=1)
DEFAULT_CONCURRENCY = 1  # sequential unless asked: see Orders.list for why
MAX_CONCURRENCY = 16

Span = tuple[datetime, datetime]

_WIRE_NAMES = {"external_ref_id": "externalRefID"}


def _camel(name: str) -> str:
    if name in _WIRE_NAMES:
        return _WIRE_NAMES[name]
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def build_list_query(**filters: object) -> list[tuple[str, str]]:
    """Check the filters of ``orders.list()`` and render them as query parameters."""
    query: list[tuple[str, str]] = []
    for name, value in filters.items():
        if value is None:
            continue
        if name in ("min_amount", "max_amount"):
            text = format_amount_filter(value, name)  # plain: 1E+3 goes as 1000
        elif name == "send_email":
            text = "true" if check_bool(value, name) else "false"
        else:
            if isinstance(value, Enum):
                value = value.value
            text = check_str(value, name) or ""
            if name == "currency_code" and not (len(text) == 3 and text.isalpha()):
                raise ValidationError(name, "must be a 3-letter currency code")
            if name in ("customer_identifier", "account_identifier"):
                check_identifier(text, name)
            elif name == "external_ref_id":
                check_external_ref_id(text, name)
        query.append((_camel(name), text))
    mins, maxs = filters.get("min_amount"), filters.get("max_amount")
    numbers = (Decimal, int, float)
    if isinstance(mins, numbers) and isinstance(maxs, numbers) and mins > maxs:
        raise ValidationError("min_amount", "must not exceed max_amount")
    return query


@tolerant_repr
class OrderHistory:
    """What ``orders.list()`` returns: iterate it for orders, or :meth:`pages` for pages.

    Nothing is fetched until iteration starts; each iteration starts afresh. With
    ``concurrency`` above 1, up to that many pages are fetched ahead of the consumer (see
    the module docstring); the orders and their order are the same as without.
    """

    def __init__(
        self,
        transport: Transport,
        query: list[tuple[str, str]],
        *,
        start_date: object,
        end_date: object,
        elements_per_block: int | None,
        page: int | None,
        result_window: int,
        on_order: Callable[[Order], object] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self._transport = transport
        self._on_order = on_order  # sees every order fetched (the client learns pairs)
        self._query = query
        self._concurrency = (
            check_int(concurrency, "concurrency", lo=1, hi=MAX_CONCURRENCY)
            if concurrency is not None
            else DEFAULT_CONCURRENCY
        )
        self._start = (
            format_query_datetime(start_date, "start_date")[1] if start_date is not None else None
        )
        self._end = (
            format_query_datetime(end_date, "end_date", end=True)[1]
            if end_date is not None
            else None
        )
        if self._start is not None and self._end is not None and self._start > self._end:
            raise ValidationError("start_date", "must not be after end_date")
        self._per_page = (
            check_int(elements_per_block, "elements_per_block", lo=1, hi=MAX_ELEMENTS_PER_BLOCK)
            if elements_per_block is not None
            else MAX_ELEMENTS_PER_BLOCK
        )
        self._window = result_window
        # (bounded first: a page of 10**5000 cannot even be shown in the error)
        self._first_page = (
            check_int(page, "page", lo=0, hi=result_window) if page is not None else 0
        )
        if (self._first_page + 1) * self._per_page > self._window:
            raise ValidationError(
                "page",
                f"page {self._first_page} lies beyond the API's {self._window}-result window",
            )

    def __repr__(self) -> str:
        return (
            f"OrderHistory(query={self._query!r}, start={self._start}, end={self._end}, "
            f"concurrency={self._concurrency})"
        )

    @property
    def concurrency(self) -> int:
        """Pages fetched at most at a time, in flight or waiting to be consumed (1: none ahead)."""
        return self._concurrency

    def __aiter__(self) -> AsyncIterator[Order]:
        return self._orders()

    async def _orders(self) -> AsyncGenerator[Order, None]:
        # aclosing: closing this iterator closes the pages at once (and their prefetches)
        async with contextlib.aclosing(self._pages()) as pages:
            async for page in pages:
                for order in page.orders:
                    yield order

    def pages(self) -> AsyncIterator[OrderPage]:
        """The pages of the result, each an OrderPage; orders already yielded are left out."""
        return self._pages()

    async def _fetch(self, window: Span | None, number: int) -> OrderPage:
        params = list(self._query)
        if window is not None:
            params.append(("startDate", to_rfc3339(window[0])))
            params.append(("endDate", to_rfc3339(window[1])))
        params.append(("elementsPerBlock", str(self._per_page)))
        params.append(("page", str(number)))
        resp = await self._transport.request("GET", "/orders", mode="read", params=params)
        wire = resp.parse(OrderListWire)
        # Tango writes explicit nulls; a missing figure is inferred rather than fatal.
        orders = [o for o in wire.orders or () if o is not None]
        if self._on_order is not None:
            for order in orders:
                self._on_order(order)
        p = wire.page or PageInfoWire()
        total = p.total_count
        if total is None:  # unknown: a full page may have more behind it
            total = number * self._per_page + len(orders) + (len(orders) == self._per_page)
        return OrderPage(
            number=number if p.number is None else p.number,
            elements_per_block=p.elements_per_block or self._per_page,
            result_count=len(orders) if p.result_count is None else p.result_count,
            total_count=total,
            orders=orders,
        )

    def _after(self, window: _Window, number: int, count: int, total: int) -> _Next:
        """What the walk does after page ``number`` of ``window`` held ``count`` orders of
        ``total``: the one rule :meth:`_pages` walks by and the prefetcher predicts with."""
        if number == window.start and total > self._window and window.span is not None:
            return _Next.SPLIT
        if not count or count < self._per_page or (number + 1) * self._per_page >= total:
            return _Next.WINDOW
        if (number + 2) * self._per_page > self._window:
            return _Next.SPLIT
        return _Next.PAGE

    async def _pages(self) -> AsyncGenerator[OrderPage, None]:
        ranged = self._start is not None or self._end is not None
        root: Span | None = None
        if ranged:
            root = (self._start or EARLIEST, self._end or datetime.now(UTC))
        ahead = _Prefetch(self) if self._concurrency > 1 else None
        window_ids = itertools.count(1)
        # Each entry: a window to page through and the IDs it must not yield again.
        stack = [_Window(0, root, set(), self._first_page)]
        previous: set[str] = set()
        try:
            while stack:
                entry = stack.pop()
                window, inherited = entry.span, entry.inherited
                exclude = previous | inherited if inherited else previous
                seen: set[str] = set()
                number = started_at = entry.start
                total: int | None = None  # of the last page taken in this window
                split_into = 0
                while True:
                    try:
                        if ahead is None:
                            page = await self._fetch(window, number)
                        else:
                            page = await ahead.take(entry, number, total, stack)
                    except (BadRequestError, UnprocessableEntityError) as e:
                        if e.i18n_key == PERIOD_TOO_LONG and window is not None:
                            split_into = 2
                            break
                        if e.i18n_key == WINDOW_TOO_LARGE:
                            split_into = 2
                            break
                        raise
                    total = page.total_count
                    if page.total_count > self._window and not seen and window is not None:
                        split_into = math.ceil(page.total_count / (self._window / 2))
                        break
                    ids = [o.reference_order_id for o in page.orders]
                    repeated = bool(ids) and all(i in seen for i in ids)
                    fresh = [
                        o
                        for o in page.orders
                        if o.reference_order_id not in seen and o.reference_order_id not in exclude
                    ]
                    seen.update(ids)
                    if fresh:
                        yield OrderPage(
                            number=page.number,
                            elements_per_block=page.elements_per_block,
                            result_count=page.result_count,
                            total_count=page.total_count,
                            orders=fresh,
                        )
                    if repeated:
                        log.warning(
                            "GET /orders returned page %d again; stopping this window", number
                        )
                        break
                    # (_after's first test, a first page past the window, was made above)
                    step = self._after(entry, number, len(ids), page.total_count)
                    if step is _Next.WINDOW:
                        break
                    if step is _Next.SPLIT:
                        split_into = 2
                        break
                    number += 1
                if not split_into:
                    previous = seen
                    continue
                if window is None:
                    raise ResultWindowError(
                        f"GET /orders matches more than the API's {self._window}-result "
                        "window; pass start_date and/or end_date so the range can be split "
                        "into windows"
                    )
                if started_at:
                    raise ResultWindowError(
                        f"page={self._first_page} cannot be combined with a date range holding "
                        f"more than {self._window} results; iterate the range from its start "
                        "instead"
                    )
                parts = _split(window, split_into, self._window)
                carried = exclude | seen
                stack.extend(_Window(next(window_ids), part, carried) for part in reversed(parts))
        finally:
            if ahead is not None:
                await ahead.close()


class _Next(Enum):
    PAGE = "the next page of the window"
    WINDOW = "the first page of the next window"
    SPLIT = "the window is split (its parts are not known yet)"


@dataclass(slots=True, eq=False)
class _Window:
    """A date window to page through from page ``start``, with the IDs it must not yield
    again; ``id`` names its requests among the prefetches."""

    id: int
    span: Span | None
    inherited: set[str]
    start: int = 0


class _Prefetch:
    """The pages the walk of :meth:`OrderHistory._pages` will ask for next, fetched ahead.

    Each :meth:`take` plans the walk's next requests as far as the pages seen so far
    predict them (at most ``concurrency``), cancels prefetches no longer in that plan and
    starts the missing ones, so that at most ``concurrency`` fetches exist at any time, in
    flight or done and not yet taken (cancelled ones count until they have finished).
    """

    def __init__(self, history: OrderHistory) -> None:
        self._history = history
        self._limit = history.concurrency
        self._tasks: dict[tuple[int, int], asyncio.Task[OrderPage]] = {}
        self._dropped: set[asyncio.Task[OrderPage]] = set()

    async def take(
        self, window: _Window, number: int, total: int | None, stack: list[_Window]
    ) -> OrderPage:
        """Page ``number`` of ``window`` (``total``: the totalCount of its previous page,
        if any; ``stack``: the windows still to walk, the next one last)."""
        key = (window.id, number)
        self._refill(window, number, total, stack)
        while key not in self._tasks:  # the slots are held by cancelled prefetches
            await asyncio.wait(list(self._dropped))
            self._refill(window, number, total, stack)
        task = self._tasks[key]
        while not task.done():
            pending = [t for t in self._tasks.values() if not t.done()]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # another page came in: it may reveal more to fetch
                self._refill(window, number, total, stack)
        del self._tasks[key]
        return task.result()

    def _plan(
        self, window: _Window, number: int, total: int | None, stack: list[_Window]
    ) -> list[tuple[int, int]]:
        history = self._history
        plan: list[tuple[int, int]] = []
        for w in (window, *reversed(stack)):
            if w is not window:
                number, total = w.start, None
            while True:
                plan.append((w.id, number))
                if len(plan) >= self._limit:
                    return plan
                task = self._tasks.get((w.id, number))
                if task is not None and task.done():
                    if task.cancelled() or task.exception() is not None:
                        return plan  # the walk raises or splits there
                    page = task.result()
                    count, total = len(page.orders), page.total_count
                elif total is not None:
                    count = history._per_page  # assume a full page and the same total
                else:
                    return plan  # how many pages follow is not known yet
                step = history._after(w, number, count, total)
                if step is _Next.SPLIT:
                    return plan
                if step is _Next.WINDOW:
                    break
                number += 1
        return plan

    def _refill(
        self, window: _Window, number: int, total: int | None, stack: list[_Window]
    ) -> None:
        plan = self._plan(window, number, total, stack)
        wanted = set(plan)
        for key in [k for k in self._tasks if k not in wanted]:
            self._drop(self._tasks.pop(key))
        spans = {w.id: w.span for w in (window, *stack)}
        for key in plan:
            if key in self._tasks:
                continue
            if len(self._tasks) + sum(not t.done() for t in self._dropped) >= self._limit:
                break
            self._tasks[key] = asyncio.create_task(
                self._history._fetch(spans[key[0]], key[1]),
                name=f"tango_async: GET /orders page {key[1]} (window {key[0]})",
            )

    def _drop(self, task: asyncio.Task[OrderPage]) -> None:
        task.cancel()
        if task.done():
            _retrieve(task)
            return
        self._dropped.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[OrderPage]) -> None:
        self._dropped.discard(task)
        _retrieve(task)

    async def close(self) -> None:
        """Cancel every prefetch and wait until each has finished."""
        tasks = [*self._tasks.values(), *self._dropped]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            _retrieve(task)


def _retrieve(task: asyncio.Task[OrderPage]) -> None:
    """Mark a thrown-away prefetch's error as seen (no 'exception was never retrieved')."""
    if not task.cancelled():
        task.exception()


def _split(
    window: tuple[datetime, datetime], parts: int, result_window: int
) -> list[tuple[datetime, datetime]]:
    start, end = window
    span = end - start
    if span < 2 * _MS:
        raise ResultWindowError(
            f"more than {result_window} orders within one millisecond ({to_rfc3339(start)}); "
            "narrow the search with other filters"
        )
    parts = max(2, min(parts, 64, int(span / _MS)))
    step = span / parts
    edges = [start] + [_floor_ms(start + step * i) for i in range(1, parts)] + [end]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i] <= edges[i + 1]]


def _floor_ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)
