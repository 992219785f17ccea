"""Order history: a lazy async iterator over ``GET /orders`` that sees past the 10,000 window.

The API pages through at most ``result_window`` (10,000) results of one query. Given a
date range, :class:`OrderHistory` splits it into date windows small enough to page
through whole (and halves a window the API refuses as too long, 422.043). Adjacent
windows share their boundary instant, so an order stamped exactly there can come back
twice: it is yielded once, by referenceOrderID. Memory stays bounded: only the IDs of
the current and the previous window are kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from ._codec import decode
from ._constants import MAX_ELEMENTS_PER_BLOCK
from ._exceptions import (
    BadRequestError,
    ResultWindowError,
    UnprocessableEntityError,
    ValidationError,
)
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


class OrderHistory:
    """What ``orders.list()`` returns: iterate it for orders, or :meth:`pages` for pages.

    Nothing is fetched until iteration starts; each iteration starts afresh.
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
    ) -> None:
        self._transport = transport
        self._on_order = on_order  # sees every order fetched (the client learns pairs)
        self._query = query
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
        self._first_page = check_int(page, "page", lo=0) if page is not None else 0
        self._window = result_window
        if (self._first_page + 1) * self._per_page > self._window:
            raise ValidationError(
                "page",
                f"page {self._first_page} lies beyond the API's {self._window}-result window",
            )

    def __repr__(self) -> str:
        return f"OrderHistory(query={self._query!r}, start={self._start}, end={self._end})"

    def __aiter__(self) -> AsyncIterator[Order]:
        return self._orders()

    async def _orders(self) -> AsyncIterator[Order]:
        async for page in self._pages():
            for order in page.orders:
                yield order

    def pages(self) -> AsyncIterator[OrderPage]:
        """The pages of the result, each an OrderPage; orders already yielded are left out."""
        return self._pages()

    async def _fetch(self, window: tuple[datetime, datetime] | None, number: int) -> OrderPage:
        params = list(self._query)
        if window is not None:
            params.append(("startDate", to_rfc3339(window[0])))
            params.append(("endDate", to_rfc3339(window[1])))
        params.append(("elementsPerBlock", str(self._per_page)))
        params.append(("page", str(number)))
        resp = await self._transport.request("GET", "/orders", mode="read", params=params)
        wire = decode(resp, OrderListWire)
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

    async def _pages(self) -> AsyncIterator[OrderPage]:
        ranged = self._start is not None or self._end is not None
        root: tuple[datetime, datetime] | None = None
        if ranged:
            root = (self._start or EARLIEST, self._end or datetime.now(UTC))
        # Each entry: a window to page through and the IDs it must not yield again.
        stack: list[tuple[tuple[datetime, datetime] | None, set[str]]] = [(root, set())]
        previous: set[str] = set()
        first_page = self._first_page
        while stack:
            window, inherited = stack.pop()
            exclude = previous | inherited if inherited else previous
            seen: set[str] = set()
            number = started_at = first_page
            first_page = 0
            split_into = 0
            while True:
                try:
                    page = await self._fetch(window, number)
                except (BadRequestError, UnprocessableEntityError) as e:
                    if e.i18n_key == PERIOD_TOO_LONG and window is not None:
                        split_into = 2
                        break
                    if e.i18n_key == WINDOW_TOO_LARGE:
                        split_into = 2
                        break
                    raise
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
                    log.warning("GET /orders returned page %d again; stopping this window", number)
                    break
                if (
                    not ids
                    or len(ids) < self._per_page
                    or (number + 1) * self._per_page >= page.total_count
                ):
                    break
                if (number + 2) * self._per_page > self._window:
                    split_into = 2
                    break
                number += 1
            if not split_into:
                previous = seen
                continue
            if window is None:
                raise ResultWindowError(
                    f"GET /orders matches more than the API's {self._window}-result window; "
                    "pass start_date and/or end_date so the range can be split into windows"
                )
            if started_at:
                raise ResultWindowError(
                    f"page={self._first_page} cannot be combined with a date range holding more "
                    f"than {self._window} results; iterate the range from its start instead"
                )
            parts = _split(window, split_into, self._window)
            carried = exclude | seen
            stack.extend((part, carried) for part in reversed(parts))


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
