"""Catalog calls of the API: ``GET /catalogs`` and the reference lists (``/credentialtypes``,
``/rewardCountries``, ``/mobileCountries``, ``/brandCategories``).

**Caching.** Tango asks platforms to fetch the catalog at most twice a day and never per
order. The catalog is kept in the client's reference cache (shared by every resource of
the client, one fetch however many callers wait: see ``tango_async._cache``) for
``TangoClient(catalog_ttl=...)`` seconds, 12 hours by default; the reference lists for as
long. ``refresh=True`` (or :meth:`Catalogs.refresh`) fetches anew. A call with filters
asks the server for that selection and bypasses the cache. Every call is a read,
retried on 429, 5xx, timeouts and connection errors.

**The catalog check.** With ``TangoClient(check_catalog=True)``, ``orders.create`` calls
:func:`check_order` before anything is sent: the cached catalog (fetched once if needed)
refuses an unknown or inactive utid or an amount outside the item's rule
(:meth:`~tango_async.Catalog.check`, ValidationError), and a catalog that cannot be
fetched refuses the order too (CatalogUnavailableError), since the check was asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from .._cache import fixed_ttl
from .._exceptions import (
    APIConnectionError,
    APIError,
    CatalogUnavailableError,
    ValidationError,
)
from .._pagination import CursorPaginator
from .._retry import READ
from .._validation import catalog_query, check_int, reward_country_query
from ..types.catalog import (
    BrandCategory,
    BrandCategoryListWire,
    Catalog,
    Country,
    CredentialType,
    MobileCountry,
)
from ..types.orders import _Wire
from ._base import Resource

if TYPE_CHECKING:
    from .._requestor import Requestor
    from .._transport import Transport

__all__ = ["CATALOG_KEY", "Catalogs", "cached_catalog", "check_order", "fetch_catalog"]

T = TypeVar("T")

CATALOG_KEY = "catalog"
MAX_RESULTS = 200  # maxResults of /rewardCountries
FAILURE_HOLD = 30.0  # seconds a failed catalog fetch refuses checked orders without a request


async def fetch_catalog(
    transport: Transport, path: str = "/catalogs", params: Sequence[tuple[str, str]] = ()
) -> Catalog:
    """One ``GET`` of a catalog (``/catalogs``, or a choice product's), decoded."""
    resp = await transport.request("GET", path, operation=READ, params=list(params) or None)
    return resp.parse(Catalog)


async def cached_catalog(requestor: Requestor, *, refresh: bool = False) -> Catalog:
    """The client's catalog from its reference cache (fetched once per ``catalog_ttl``)."""
    return await requestor.cache.get(
        CATALOG_KEY,
        lambda: fetch_catalog(requestor.transport),
        fixed_ttl(requestor.catalog_ttl),
        refresh=refresh,
    )


async def check_order(requestor: Requestor, utid: str, amount: Decimal) -> None:
    """The catalog check of one order, when the client has ``check_catalog``: nothing
    otherwise. ValidationError for an order the catalog refuses; CatalogUnavailableError
    when the catalog cannot be fetched (and, for FAILURE_HOLD seconds after a failed
    fetch, without asking again). The currency rule is not applied: an order names no
    currency (its amount is in the item's)."""
    if not requestor.check_catalog:
        return
    cache = requestor.cache
    catalog = cache.peek(CATALOG_KEY)
    if catalog is None:
        failed = cache.last_failure(CATALOG_KEY, FAILURE_HOLD)
        try:
            if failed is not None:
                raise failed
            catalog = await cached_catalog(requestor)
        except (APIError, APIConnectionError) as e:
            raise CatalogUnavailableError(
                f"the order was not sent: check_catalog is on and the catalog could not be "
                f"fetched ({type(e).__name__}: {e}); retry later, or create the client "
                "without check_catalog",
                cause=e,
            ) from e
    assert isinstance(catalog, Catalog)
    catalog.check(utid, amount)


class _CountryPageWire(_Wire, kw_only=True, gc=False):
    """A ``GET /rewardCountries`` answer: the cursor page of Tango's pages (``items``), or
    one country (the shape the spec gives, ``CountryViewSummary``)."""

    prev_cursor: str | None = None
    next_cursor: str | None = None
    next_page_available: bool | None = None
    items: list[Country | None] | None = None
    two_letter_code: str | None = None
    three_letter_code: str | None = None
    country_name: str | None = None
    preferred_currency: str | None = None


class _MobileCountriesWire(_Wire, kw_only=True, gc=False):
    """A ``GET /mobileCountries`` answer that is an object: a list under ``items`` or one
    country (the spec's ``MobileCountryView``)."""

    items: list[MobileCountry | None] | None = None
    iso_code: str | None = None
    country_name: str | None = None
    country_code: str | None = None
    language_code: str | None = None


class _CountryPages(CursorPaginator[Country, "_CountryPageWire", str]):
    route = "GET /rewardCountries"

    def __init__(self, transport: Transport, query: list[tuple[str, str]], per_page: int) -> None:
        self._transport = transport
        self._query = query
        self._per_page = per_page

    async def _fetch(self, cursor: str | None) -> _CountryPageWire:
        params = [*self._query, ("maxResults", str(self._per_page))]
        if cursor is not None:
            params.append(("nextCursor", cursor))
        resp = await self._transport.request(
            "GET", "/rewardCountries", operation=READ, params=params
        )
        if resp.body.lstrip()[:1] == b"[":  # a bare list of countries
            return _CountryPageWire(items=list(resp.parse(list[Country])))
        return resp.parse(_CountryPageWire)

    def _items(self, page: _CountryPageWire) -> Sequence[Country]:
        if page.items is not None:
            return [c for c in page.items if c is not None]
        if page.country_name is None and page.two_letter_code is None:
            return []
        return [
            Country(
                two_letter_code=page.two_letter_code,
                three_letter_code=page.three_letter_code,
                country_name=page.country_name,
                preferred_currency=page.preferred_currency,
            )
        ]

    def _next(self, page: _CountryPageWire) -> str | None:
        return page.next_cursor if page.next_page_available and page.next_cursor else None


class Catalogs(Resource):
    """Catalog calls of the API (``client.catalog``; see the module docstring)."""

    async def get(
        self,
        *,
        refresh: bool = False,
        verbose: bool | None = None,
        brand_key: str | None = None,
        brand_name: str | None = None,
        utid: str | None = None,
        reward_name: str | None = None,
        status: str | None = None,
        reward_type: str | Sequence[str] | None = None,
        currency_code: str | None = None,
        country: str | None = None,
        fulfillment_type: str | Sequence[str] | None = None,
        item_attribute: str | Sequence[str] | None = None,
        category_ids: str | Sequence[str] | None = None,
    ) -> Catalog:
        """The platform's catalog: ``GET /catalogs``, kept in the client's cache for
        ``catalog_ttl`` (12 hours by default; Tango asks for at most two fetches a day),
        one request however many callers wait; ``refresh=True`` fetches anew.

        Filters (the spec's query parameters, each None: not filtered) ask the server for
        a selection instead, bypassing the cache: ``verbose`` (False leaves out the brand
        texts, requirements and images), ``brand_key``, ``brand_name``, ``utid``,
        ``reward_name``, ``status`` (test, active, inactive, deleted), ``reward_type``
        (one or more of the spec's reward types: "gift card", "promo"...),
        ``currency_code``, ``country``, ``fulfillment_type`` (DIGITAL, PHYSICAL;
        deprecated by Tango), ``item_attribute`` (EMAIL, PHONE, ADDRESS, EMBEDDED),
        ``category_ids`` (brand category UUIDs). ValidationError for a bad filter
        (nothing sent); APIError / APIConnectionError once retries are spent (nothing
        cached)."""
        query = catalog_query(
            verbose=verbose,
            brand_key=brand_key,
            brand_name=brand_name,
            utid=utid,
            reward_name=reward_name,
            status=status,
            reward_type=reward_type,
            currency_code=currency_code,
            country=country,
            fulfillment_type=fulfillment_type,
            item_attribute=item_attribute,
            category_ids=category_ids,
        )
        _check_flag(refresh)
        if query:
            return await fetch_catalog(self._requestor.transport, params=query)
        return await cached_catalog(self._requestor, refresh=refresh)

    async def refresh(self) -> Catalog:
        """Fetch the catalog anew and keep it (``get(refresh=True)``)."""
        return await self.get(refresh=True)

    def invalidate(self) -> None:
        """Forget the cached catalog and reference lists; the next call fetches."""
        cache = self._requestor.cache
        for key in (CATALOG_KEY, *_LIST_KEYS):
            cache.invalidate(key)

    async def credential_types(self, *, refresh: bool = False) -> list[CredentialType]:
        """The kinds of reward credentials: ``GET /credentialtypes``, cached like the
        catalog. APIError / APIConnectionError once retries are spent."""

        async def fetch() -> list[CredentialType]:
            resp = await self._requestor.transport.request(
                "GET", "/credentialtypes", operation=READ
            )
            return [c for c in resp.parse(list[CredentialType | None]) if c is not None]

        return await self._list("credential_types", fetch, refresh)

    async def reward_countries(
        self,
        *,
        countries: str | Sequence[str] | None = None,
        preferred_currencies: str | Sequence[str] | None = None,
        max_results: int | None = None,
        refresh: bool = False,
    ) -> list[Country]:
        """The reward countries and their preferred reward currency: ``GET
        /rewardCountries``, every page (``max_results`` per page, 1 to 200, default 200),
        cached like the catalog when unfiltered. ``countries`` (codes) and
        ``preferred_currencies`` (currency codes) filter, each one value or a list,
        bypassing the cache. Decodes Tango's cursor page (``items``), a bare list or the
        one country the spec types the answer as. ValidationError for a bad filter."""
        query = reward_country_query(countries=countries, preferred_currencies=preferred_currencies)
        per_page = (
            MAX_RESULTS
            if max_results is None
            else check_int(max_results, "max_results", lo=1, hi=MAX_RESULTS)
        )
        _check_flag(refresh)

        async def fetch() -> list[Country]:
            return [c async for c in _CountryPages(self._requestor.transport, query, per_page)]

        if query:
            return await fetch()
        return await self._list("reward_countries", fetch, refresh)

    async def mobile_countries(self, *, refresh: bool = False) -> list[MobileCountry]:
        """The countries rewards may be delivered to by phone: ``GET /mobileCountries``,
        cached like the catalog. Decodes a list, an object with ``items``, or the one
        country the spec types the answer as."""

        async def fetch() -> list[MobileCountry]:
            resp = await self._requestor.transport.request(
                "GET", "/mobileCountries", operation=READ
            )
            if resp.body.lstrip()[:1] == b"[":
                return [c for c in resp.parse(list[MobileCountry | None]) if c is not None]
            wire = resp.parse(_MobileCountriesWire)
            if wire.items is not None:
                return [c for c in wire.items if c is not None]
            if wire.iso_code is None and wire.country_name is None:
                return []
            return [
                MobileCountry(
                    iso_code=wire.iso_code,
                    country_name=wire.country_name,
                    country_code=wire.country_code,
                    language_code=wire.language_code,
                )
            ]

        return await self._list("mobile_countries", fetch, refresh)

    async def brand_categories(self, *, refresh: bool = False) -> list[BrandCategory]:
        """The brand categories (their UUIDs filter ``get(category_ids=...)``): ``GET
        /brandCategories``, cached like the catalog."""

        async def fetch() -> list[BrandCategory]:
            resp = await self._requestor.transport.request(
                "GET", "/brandCategories", operation=READ
            )
            wire = resp.parse(BrandCategoryListWire)
            return [c for c in wire.brand_categories or () if c is not None]

        return await self._list("brand_categories", fetch, refresh)

    async def _list(
        self, key: str, fetch: Callable[[], Awaitable[list[T]]], refresh: bool
    ) -> list[T]:
        _check_flag(refresh)
        req = self._requestor
        # a copy: a caller changing its list does not change the cached one
        return list(await req.cache.get(key, fetch, fixed_ttl(req.catalog_ttl), refresh=refresh))


_LIST_KEYS = ("credential_types", "reward_countries", "mobile_countries", "brand_categories")


def _check_flag(refresh: object) -> None:
    if not isinstance(refresh, bool):
        raise ValidationError("refresh", "must be True or False")
