"""Exchange rate calls of the API: ``GET /exchangerates``.

**Caching.** Tango updates exchange rates once a day, starting at 12:00 UTC and no later
than 13:00 UTC. ``exchange_rates.get()`` keeps them in the client's reference cache until
the next change (``tango_async._cache.until_daily_change``): rates fetched before 12:00
UTC until 12:00; fetched between 12:00 and 13:00, for 10 minutes at most (the change may
come any time then) and not past 13:00; fetched after 13:00, until 12:00 UTC the next day.
The wall time is the client clock's where it has one (the sandbox clock), else the
system's. One request (walk of pages) however many callers wait; ``refresh=True`` fetches
anew; filters bypass the cache. The rates are for reference: Tango charges an order at
the rate in effect when it is placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._cache import until_daily_change
from .._pagination import CursorPaginator
from .._retry import READ
from .._validation import exchange_rate_query
from ..types.exchange_rates import ExchangeRate
from ..types.exchange_rates import ExchangeRates as ExchangeRatesModel
from ..types.orders import _Wire
from ._base import Resource
from .catalog import _check_flag

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = ["EXCHANGE_RATES_KEY", "ExchangeRates"]

EXCHANGE_RATES_KEY = "exchange_rates"
MAX_RESULTS = 200


class _RatesPageWire(_Wire, kw_only=True, gc=False):
    """One page of ``GET /exchangerates`` (``ExchangeRatesWithDisclaimer``)."""

    prev_cursor: str | None = None
    next_cursor: str | None = None
    next_page_available: bool | None = None
    disclaimer: str | None = None
    exchange_rates: list[ExchangeRate | None] | None = None


class _RatePages(CursorPaginator[ExchangeRate, _RatesPageWire, str]):
    route = "GET /exchangerates"

    def __init__(self, transport: Transport, query: list[tuple[str, str]]) -> None:
        self._transport = transport
        self._query = query

    async def _fetch(self, cursor: str | None) -> _RatesPageWire:
        params = [*self._query, ("paginate", "true"), ("maxResults", str(MAX_RESULTS))]
        if cursor is not None:
            params.append(("nextCursor", cursor))
        resp = await self._transport.request("GET", "/exchangerates", operation=READ, params=params)
        return resp.parse(_RatesPageWire)

    def _items(self, page: _RatesPageWire) -> Sequence[ExchangeRate]:
        return [r for r in page.exchange_rates or () if r is not None]

    def _next(self, page: _RatesPageWire) -> str | None:
        return page.next_cursor if page.next_page_available and page.next_cursor else None


async def _fetch_rates(transport: Transport, query: list[tuple[str, str]]) -> ExchangeRatesModel:
    rates: list[ExchangeRate] = []
    disclaimer: str | None = None
    walk = _RatePages(transport, query)
    async for page in walk.pages():
        disclaimer = disclaimer or page.disclaimer
        rates.extend(walk._items(page))
    return ExchangeRatesModel(disclaimer=disclaimer, exchange_rates=rates)


class ExchangeRates(Resource):
    """Exchange rate calls of the API (``client.exchange_rates``; see the module
    docstring for the caching rule)."""

    async def get(
        self,
        *,
        refresh: bool = False,
        base_currency: str | Sequence[str] | None = None,
        reward_currency: str | Sequence[str] | None = None,
    ) -> ExchangeRatesModel:
        """Every exchange rate of the platform: ``GET /exchangerates``, all pages (200 per
        page, by ``nextCursor``) in one :class:`~tango_async.ExchangeRates`, cached until
        the next daily change (see the module docstring); ``refresh=True`` fetches anew.
        ``base_currency`` / ``reward_currency`` (one code or a list) filter, bypassing the
        cache. ValidationError for a bad filter (nothing sent); APIError /
        APIConnectionError once retries are spent (nothing cached)."""
        _check_flag(refresh)
        query = exchange_rate_query(base_currency=base_currency, reward_currency=reward_currency)
        transport = self._requestor.transport
        if query:
            return await _fetch_rates(transport, query)
        return await self._requestor.cache.get(
            EXCHANGE_RATES_KEY,
            lambda: _fetch_rates(transport, []),
            until_daily_change(),
            refresh=refresh,
        )

    async def refresh(self) -> ExchangeRatesModel:
        """Fetch the rates anew and keep them (``get(refresh=True)``)."""
        return await self.get(refresh=True)
