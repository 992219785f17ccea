"""Order history: ``orders.list()``, a lazy async iterator over ``GET /orders`` that sees
past the 10,000 window (with or without a date range: the whole history is windowed by
date when it reaches the window), and its filters.

:class:`OrderHistory` is the generic :class:`tango_async._pagination.AsyncPaginator`
(laziness, lookahead with ``concurrency``, the stop rules, the repeated-page guard,
date-window splitting with edge dedupe; its module docstring tells how) over ``Order``
items and ``OrderPage`` pages: it fetches a page of ``GET /orders``, names an order by
its referenceOrderID and halves a window the API refuses with 422.043 (period too long)
or 400.021 (past the result window). :class:`OrderListQuery` is the typed list of the
filters ``orders.list()`` takes, which the CLI derives its ``orders list`` options from;
:func:`build_list_query` checks and renders the ones that go into the query string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, TypedDict

from ._exceptions import BadRequestError, UnprocessableEntityError, ValidationError
from ._pagination import DEFAULT_CONCURRENCY as DEFAULT_CONCURRENCY
from ._pagination import EARLIEST as EARLIEST
from ._pagination import MAX_CONCURRENCY as MAX_CONCURRENCY
from ._pagination import AsyncPaginator, Span
from ._repr import tolerant_repr
from ._retry import READ
from ._validation import (
    check_bool,
    check_external_ref_id,
    check_identifier,
    check_str,
    format_amount_filter,
    to_rfc3339,
)
from .types.enums import DeliveryMethod, LineItemStatus, OrderStatus
from .types.orders import Order, OrderListWire, OrderPage, PageInfoWire

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["OrderHistory", "OrderListQuery"]

WINDOW_TOO_LARGE = "400.021"
PERIOD_TOO_LONG = "422.043"

DateLike = date | datetime | str


class OrderListQuery(TypedDict, total=False):
    """The filters of ``orders.list()`` (``GET /orders``), in its order; None means unset.

    ``start_date`` and ``end_date`` bound the date range the walk splits into windows
    (``WINDOW_FILTERS``); the others go into the query string, checked and rendered by
    :func:`build_list_query` (ValidationError naming the filter). Paging
    (``elements_per_block``, ``page``) and ``concurrency`` are the paginator's, not
    filters. The CLI makes one ``orders list`` option of each key, typed by its value.
    """

    account_identifier: str | None
    customer_identifier: str | None
    external_ref_id: str | None
    start_date: DateLike | None
    end_date: DateLike | None
    min_amount: Decimal | float | None
    max_amount: Decimal | float | None
    currency_code: str | None
    utid: str | None
    ptid: str | None
    reward_name: str | None
    sender_first_name: str | None
    sender_last_name: str | None
    sender_email: str | None
    recipient_email: str | None
    recipient_first_name: str | None
    recipient_last_name: str | None
    recipient_mobile_number: str | None
    send_email: bool | None
    delivery_method: DeliveryMethod | str | None
    status: OrderStatus | str | None
    order_status: OrderStatus | str | None
    line_item_status: LineItemStatus | str | None
    campaign: str | None
    notes: str | None
    line_item_notes: str | None
    purchase_order_number: str | None


WINDOW_FILTERS = frozenset({"start_date", "end_date"})  # the walk's, not query parameters
QUERY_FILTERS = tuple(k for k in OrderListQuery.__annotations__ if k not in WINDOW_FILTERS)

_WIRE_NAMES = {"external_ref_id": "externalRefID"}


def _camel(name: str) -> str:
    if name in _WIRE_NAMES:
        return _WIRE_NAMES[name]
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def filter_wire_name(name: str) -> str:
    """The query parameter of filter ``name`` of ``orders.list()`` (``external_ref_id`` is
    ``externalRefID``, ``start_date`` ``startDate``)."""
    return _camel(name)


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


def list_query(filters: OrderListQuery) -> list[tuple[str, str]]:
    """Check the query-string filters of ``filters`` (all but the dates) and render them,
    in their order, as query parameters: :func:`build_list_query` (ValidationError)."""
    return build_list_query(**{k: v for k, v in filters.items() if k not in WINDOW_FILTERS})


@tolerant_repr
class OrderHistory(AsyncPaginator[Order, OrderPage]):
    """What ``orders.list()`` returns: iterate it for orders, or :meth:`pages` for pages.

    Nothing is fetched until iteration starts; each iteration starts afresh. Without a
    date range the whole history is yielded: when it holds more than the API's result
    window it is split into date windows as a range is (see :mod:`tango_async._pagination`),
    each order once. With
    ``concurrency`` above 1, up to that many pages are fetched ahead of the consumer (see
    :mod:`tango_async._pagination`); the orders and their order are the same as without.
    ``query`` is the rendered filters (:func:`build_list_query`); the dates, paging and
    ``concurrency`` are checked here (ValidationError).
    """

    route = "GET /orders"
    noun = "orders"

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
        super().__init__(
            start_date=start_date,
            end_date=end_date,
            elements_per_block=elements_per_block,
            page=page,
            result_window=result_window,
            concurrency=concurrency,
        )

    def __repr__(self) -> str:
        return (
            f"OrderHistory(query={self._query!r}, start={self._start}, end={self._end}, "
            f"concurrency={self._concurrency})"
        )

    def pages(self) -> AsyncIterator[OrderPage]:
        """The pages of the result, each an OrderPage; orders already yielded are left out
        (a page left with none is skipped).

        Under date windowing (a history or range larger than the API's result window) the
        pages keep one numbering and one total: ``page.number`` counts the pages yielded,
        in one sequence across the windows (the first is ``page=``, 0 by default; not the
        API's page number within its window); ``page.total_count`` is the totalCount of
        the whole query (the history, or the range) as the API counted it on the walk's
        first request, on every page, not the window's. When the API refused to count the
        whole range (422.043, the range is too long for one request) a page carries its
        window's count instead. Orders created during the walk can make the total differ
        from the number of orders yielded; ``result_count`` and ``elements_per_block``
        are the API's for the request that gave the page."""
        return self._pages()

    def _stamped(self, page: OrderPage, number: int, total: int) -> OrderPage:
        return OrderPage(
            number=number,
            elements_per_block=page.elements_per_block,
            result_count=page.result_count,
            total_count=total,
            orders=page.orders,
        )

    async def _fetch(self, window: Span | None, number: int) -> OrderPage:
        params = list(self._query)
        if window is not None:
            params.append(("startDate", to_rfc3339(window[0])))
            params.append(("endDate", to_rfc3339(window[1])))
        params.append(("elementsPerBlock", str(self._per_page)))
        params.append(("page", str(number)))
        resp = await self._transport.request("GET", "/orders", operation=READ, params=params)
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

    def _items(self, page: OrderPage) -> Sequence[Order]:
        return page.orders

    def _total(self, page: OrderPage) -> int:
        return page.total_count

    def _key(self, item: Order) -> Hashable:
        return item.reference_order_id

    def _time(self, item: Order) -> datetime | None:
        return item.created_at

    def _with_items(self, page: OrderPage, items: list[Order]) -> OrderPage:
        return OrderPage(
            number=page.number,
            elements_per_block=page.elements_per_block,
            result_count=page.result_count,
            total_count=page.total_count,
            orders=items,
        )

    def _splits(self, error: Exception, window: Span | None) -> bool:
        """422.043 (period too long) within a date window, or 400.021 (past the window,
        with or without one: without one the whole history is split)."""
        if not isinstance(error, BadRequestError | UnprocessableEntityError):
            return False
        if error.i18n_key == PERIOD_TOO_LONG and window is not None:
            return True
        return error.i18n_key == WINDOW_TOO_LARGE
