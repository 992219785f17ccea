"""``tango.with_raw_response``: every call of every resource, returning the HTTP answer
with the result (a :class:`~tango_async.RawResponse`), in the shape openai-python and
anthropic-sdk-python users know (``client.with_raw_response.orders.create(...)``).

Each call runs on a fresh view of the client whose transport records the call's answers
(``Transport.derive(recorder=...)``): the client's session, limiter, cooldowns, unresolved
store and order reservations are the ones used, so a create through ``with_raw_response``
is as safe, and paced, as one through the client. Reference data the client caches
(catalog, its lists, exchange rates) is fetched anew by a raw call, into a cache of its
own: the client's cache is left as it was.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from ._codec import decode_body
from ._exceptions import TangoError
from ._response import RawResponse, Recorder
from .resources.accounts import Accounts
from .resources.catalog import Catalogs
from .resources.choice_products import ChoiceProducts
from .resources.customers import CustomerAccounts, Customers, LowBalanceAlerts
from .resources.exchange_rates import ExchangeRates
from .resources.line_items import LineItems
from .resources.orders import Orders
from .resources.webhooks import Webhooks
from .types.accounts import Account
from .types.orders import OrderListWire, OrderPage, PageInfoWire
from .types.webhooks import CursorPage

__all__ = ["WithRawResponse"]

P = ParamSpec("P")
R = TypeVar("R")
PageT = TypeVar("PageT", covariant=True)
ResT = TypeVar("ResT")

# A view of the client that records into the recorder given; ``fresh_cache``: with a
# reference-data cache of its own (a raw call of cached data always fetches).
ViewFactory = Callable[[Recorder, bool], Any]


class _Paged(Protocol[PageT]):
    def pages(self) -> AsyncIterator[PageT]: ...


class _Binder(Generic[ResT]):
    """Makes the raw form of the methods of one resource (``pick`` finds it on a view)."""

    __slots__ = ("_fresh", "_pick", "_view")

    def __init__(
        self, view: ViewFactory, pick: Callable[[Any], ResT], *, fresh_cache: bool = False
    ) -> None:
        self._view = view
        self._pick = pick
        self._fresh = fresh_cache

    def wrap(
        self, func: Callable[Concatenate[ResT, P], Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, RawResponse[R]]]:
        """``func``'s raw form: the same arguments, a RawResponse of its result."""

        @functools.wraps(func)
        async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[R]:
            recorder = Recorder()
            started = time.perf_counter()
            result = await func(self._pick(self._view(recorder, self._fresh)), *args, **kwargs)
            return _answer(recorder, result, started, func)

        return call

    def first_page(
        self,
        func: Callable[Concatenate[ResT, P], _Paged[R]],
        empty: Callable[[bytes], R] | None = None,
    ) -> Callable[P, Coroutine[Any, Any, RawResponse[R]]]:
        """A paginated ``list``'s raw form: the answer of its first page, which
        :meth:`RawResponse.parse` returns. ``empty``: the page of an answer without
        items, for a list whose ``pages()`` yields none then (the order history)."""

        @functools.wraps(func)
        async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[R]:
            recorder = Recorder()
            started = time.perf_counter()
            pages = func(self._pick(self._view(recorder, self._fresh)), *args, **kwargs).pages()
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                # Nothing to yield (an empty history): the answer is still the first page.
                # Never StopAsyncIteration out of a coroutine (inside an async generator
                # of the caller's it would end it, or become a RuntimeError).
                if empty is None or not recorder.seen:
                    raise TangoError(f"{func.__qualname__}: the API answered no page") from None
                page = empty(recorder.content)
            finally:
                close = getattr(pages, "aclose", None)
                if close is not None:
                    await close()
            return _answer(recorder, page, started, func)

        return call


def _empty_orders(content: bytes) -> OrderPage:
    """The OrderPage of a ``GET /orders`` answer without orders (already decoded once by
    the history, which yields no page for it)."""
    info = decode_body(content, OrderListWire).page or PageInfoWire()
    return OrderPage(
        number=info.number or 0,
        elements_per_block=info.elements_per_block or 0,
        result_count=info.result_count or 0,
        total_count=info.total_count or 0,
        orders=[],
    )


def _answer(recorder: Recorder, result: R, started: float, func: object) -> RawResponse[R]:
    if not recorder.seen:  # pragma: no cover - every wrapped call makes a request
        raise TangoError(f"{getattr(func, '__qualname__', func)} made no HTTP request")
    return recorder.response(result, elapsed=time.perf_counter() - started)


class OrdersWithRawResponse:
    """``tango.with_raw_response.orders``: the order calls, each returning a RawResponse."""

    def __init__(self, b: _Binder[Orders]) -> None:
        self.create = b.wrap(Orders.create)
        self.get = b.wrap(Orders.get)
        self.list = b.first_page(Orders.list, _empty_orders)
        self.resolve = b.wrap(Orders.resolve)
        self.resend = b.wrap(Orders.resend)
        self.wait = b.wrap(Orders.wait)


class LineItemsWithRawResponse:
    """``tango.with_raw_response.line_items``."""

    def __init__(self, b: _Binder[LineItems]) -> None:
        self.get = b.wrap(LineItems.get)
        self.list = b.first_page(LineItems.list)
        self.wait = b.wrap(LineItems.wait)
        self.update = b.wrap(LineItems.update)
        self.cancel = b.wrap(LineItems.cancel)
        self.freeze = b.wrap(LineItems.freeze)
        self.unfreeze = b.wrap(LineItems.unfreeze)
        self.reissue = b.wrap(LineItems.reissue)
        self.reason_codes = b.wrap(LineItems.reason_codes)
        self.embedded_url = b.wrap(LineItems.embedded_url)
        self.resend = b.wrap(LineItems.resend)


class WebhooksWithRawResponse:
    """``tango.with_raw_response.webhooks``."""

    def __init__(self, b: _Binder[Webhooks]) -> None:
        self.create = b.wrap(Webhooks.create)
        self.list = b.first_page(Webhooks.list)
        self.get = b.wrap(Webhooks.get)
        self.update = b.wrap(Webhooks.update)
        self.delete = b.wrap(Webhooks.delete)
        self.renew = b.wrap(Webhooks.renew)
        self.replay = b.wrap(Webhooks.replay)
        self.events = b.first_page(Webhooks.events)
        self.test = b.wrap(Webhooks.test)
        self.event_types = b.wrap(Webhooks.event_types)


class AccountsWithRawResponse:
    """``tango.with_raw_response.accounts``."""

    def __init__(self, b: _Binder[Accounts]) -> None:
        self.get = b.wrap(Accounts.get)
        self.list = b.first_page(Accounts.list)


class CustomerAccountsWithRawResponse:
    """``tango.with_raw_response.customers.accounts``: called, the first page of a
    customer's accounts."""

    def __init__(self, b: _Binder[CustomerAccounts]) -> None:
        self.list = b.first_page(CustomerAccounts.list)
        self.create = b.wrap(CustomerAccounts.create)
        self.update = b.wrap(CustomerAccounts.update)

    def __call__(
        self, customer_identifier: str, /, **filters: Any
    ) -> Coroutine[Any, Any, RawResponse[CursorPage[Account]]]:
        """``list(customer_identifier, **filters)``: the first page of the accounts."""
        return self.list(customer_identifier, **filters)


class LowBalanceAlertsWithRawResponse:
    """``tango.with_raw_response.customers.low_balance_alerts``."""

    def __init__(self, b: _Binder[LowBalanceAlerts]) -> None:
        self.list = b.first_page(LowBalanceAlerts.list)
        self.get = b.wrap(LowBalanceAlerts.get)
        self.set = b.wrap(LowBalanceAlerts.set)
        self.update = b.wrap(LowBalanceAlerts.update)
        self.delete = b.wrap(LowBalanceAlerts.delete)


class CustomersWithRawResponse:
    """``tango.with_raw_response.customers``, with its sub-resources."""

    def __init__(self, view: ViewFactory) -> None:
        b: _Binder[Customers] = _Binder(view, lambda c: c.customers)
        self.list = b.first_page(Customers.list)
        self.get = b.wrap(Customers.get)
        self.create = b.wrap(Customers.create)
        self.accounts = CustomerAccountsWithRawResponse(
            _Binder(view, lambda c: c.customers.accounts)
        )
        self.low_balance_alerts = LowBalanceAlertsWithRawResponse(
            _Binder(view, lambda c: c.customers.low_balance_alerts)
        )


class CatalogWithRawResponse:
    """``tango.with_raw_response.catalog``: each call fetches (never the client's cache)."""

    def __init__(self, b: _Binder[Catalogs]) -> None:
        self.get = b.wrap(Catalogs.get)
        self.refresh = b.wrap(Catalogs.refresh)
        self.credential_types = b.wrap(Catalogs.credential_types)
        self.reward_countries = b.wrap(Catalogs.reward_countries)
        self.mobile_countries = b.wrap(Catalogs.mobile_countries)
        self.brand_categories = b.wrap(Catalogs.brand_categories)


class ChoiceProductsWithRawResponse:
    """``tango.with_raw_response.choice_products``."""

    def __init__(self, b: _Binder[ChoiceProducts]) -> None:
        self.list = b.wrap(ChoiceProducts.list)
        self.get = b.wrap(ChoiceProducts.get)
        self.catalog = b.wrap(ChoiceProducts.catalog)


class ExchangeRatesWithRawResponse:
    """``tango.with_raw_response.exchange_rates``: each call fetches (never the client's
    cache); the answer is the last page's."""

    def __init__(self, b: _Binder[ExchangeRates]) -> None:
        self.get = b.wrap(ExchangeRates.get)
        self.refresh = b.wrap(ExchangeRates.refresh)


class WithRawResponse:
    """``tango.with_raw_response``: the client's resources, each call returning a
    :class:`~tango_async.RawResponse` (status, headers, request ID, and the result by
    :meth:`~tango_async.RawResponse.parse`). Errors are raised as by the plain calls (an
    APIError carries its status, headers and request ID too)."""

    def __init__(self, view: ViewFactory) -> None:
        self._view = view

    @functools.cached_property
    def orders(self) -> OrdersWithRawResponse:
        return OrdersWithRawResponse(_Binder(self._view, lambda c: c.orders))

    @functools.cached_property
    def line_items(self) -> LineItemsWithRawResponse:
        return LineItemsWithRawResponse(_Binder(self._view, lambda c: c.line_items))

    @functools.cached_property
    def webhooks(self) -> WebhooksWithRawResponse:
        return WebhooksWithRawResponse(_Binder(self._view, lambda c: c.webhooks))

    @functools.cached_property
    def accounts(self) -> AccountsWithRawResponse:
        return AccountsWithRawResponse(_Binder(self._view, lambda c: c.accounts))

    @functools.cached_property
    def customers(self) -> CustomersWithRawResponse:
        return CustomersWithRawResponse(self._view)

    @functools.cached_property
    def catalog(self) -> CatalogWithRawResponse:
        return CatalogWithRawResponse(_Binder(self._view, lambda c: c.catalog, fresh_cache=True))

    @functools.cached_property
    def choice_products(self) -> ChoiceProductsWithRawResponse:
        return ChoiceProductsWithRawResponse(_Binder(self._view, lambda c: c.choice_products))

    @functools.cached_property
    def exchange_rates(self) -> ExchangeRatesWithRawResponse:
        return ExchangeRatesWithRawResponse(
            _Binder(self._view, lambda c: c.exchange_rates, fresh_cache=True)
        )
