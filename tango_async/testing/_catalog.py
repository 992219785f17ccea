"""The sandbox's catalog and reference data: the routes ``GET /catalogs``,
``/choiceProducts`` (list, one, its catalog), ``/exchangerates``, ``/credentialtypes``,
``/rewardCountries``, ``/mobileCountries`` and ``/brandCategories``, and the catalog rules
of ``Sandbox(strict_catalog=True)`` orders.

- **The catalog** is the sandbox's ``catalog`` (utid -> ``CatalogItem``, the one orders
  name their rewards from: ``_store.DEFAULT_CATALOG`` by default), grouped into brands by
  ``CatalogItem.brand``. Its filters: brandKey, brandName, utid, rewardName, status,
  rewardType, currencyCode, country (case-insensitive matches).
- **Exchange rates** are quoted against USD (baseCurrency USD) for EUR, CAD, GBP and AUD,
  and change once a day at 12:30 UTC of the sandbox clock (inside Tango's 12:00-13:00
  window): each day's rate is the base rate moved by a small amount that follows the
  day, its ``lastModifiedDate`` that day's 12:30. :meth:`CatalogData.set_rate` fixes one.
  ``paginate=true`` pages them by ``maxResults`` (default 10, at most 200) with opaque
  ``nextCursor`` / ``prevCursor``; without it, all come in one answer, as Tango says.
- **Reward countries** page like the exchange rates (``items``, Tango's page shape; the
  contract checker's correction 10 says so where the spec types one ``CountryViewSummary``).
  **Mobile countries**: ``{"items": [...]}``.
- **strict_catalog**: an order for a utid not in the catalog is refused with 400
  (400.050), for an inactive item with 422 (422.050), for an amount that breaks the
  item's value rule with 400 (400.051, the rule in the message), as Tango would. Off by
  default: orders for any utid and amount go through, named from the catalog or generic.
"""

from __future__ import annotations

import base64
import binascii
import uuid
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web
from multidict import MultiMapping

from ._clock import SandboxClock
from ._errors import ErrorWriter
from ._routes import PREFIX
from ._store import CatalogItem, OrderStore
from ._wire import iso, respond

__all__ = ["CHOICE_PRODUCTS", "CatalogData", "CatalogHost"]

CATALOG_NAME = "Sandbox Catalog"
_CREATED = "2020-01-01T00:00:00.000Z"
BRAND_CATEGORIES: dict[str, str] = {
    "Retail": str(uuid.uuid5(uuid.NAMESPACE_URL, "tango-sandbox/category/retail")),
    "Gaming": str(uuid.uuid5(uuid.NAMESPACE_URL, "tango-sandbox/category/gaming")),
    "Food": str(uuid.uuid5(uuid.NAMESPACE_URL, "tango-sandbox/category/food")),
    "Cash": str(uuid.uuid5(uuid.NAMESPACE_URL, "tango-sandbox/category/cash")),
}
_BRAND_CATEGORY = {"Steam": "Gaming", "Tim Hortons": "Food", "Visa Prepaid": "Cash"}
CREDENTIAL_TYPES = (
    ("cardNumber", "The number of a gift card"),
    ("cardPin", "The PIN of a gift card"),
    ("redemptionUrl", "A link the recipient opens to redeem the reward"),
    ("expirationDate", "When the reward expires"),
)
REWARD_COUNTRIES = (
    ("AU", "AUS", "Australia", "AUD"),
    ("CA", "CAN", "Canada", "CAD"),
    ("DE", "DEU", "Germany", "EUR"),
    ("FR", "FRA", "France", "EUR"),
    ("GB", "GBR", "United Kingdom", "GBP"),
    ("IE", "IRL", "Ireland", "EUR"),
    ("US", "USA", "United States", "USD"),
)
MOBILE_COUNTRIES = (
    ("US", "United States", "1", "en"),
    ("CA", "Canada", "1", "en"),
)
# utid -> (reward name, currency, countries)
CHOICE_PRODUCTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "U777001": ("Global Choice Link", "USD", ("US", "CA", "GB")),
    "U777002": ("Choice Link Europe", "EUR", ("DE", "FR", "IE")),
}
# reward currency -> USD per unit on the sandbox's base day
BASE_RATES = {
    "EUR": Decimal("1.0850"),
    "CAD": Decimal("0.7350"),
    "GBP": Decimal("1.2700"),
    "AUD": Decimal("0.6600"),
}
RATES_CHANGE_AT = timedelta(hours=12, minutes=30)  # of each UTC day, on the sandbox clock
DISCLAIMER = (
    "Exchange rates are provided here for reference. They are updated at least once a day "
    "and may have changed by time of order."
)
_MAX_RESULTS = 200
_DEFAULT_RESULTS = 10


class CatalogHost(Protocol):
    """What the catalog routes read from their sandbox at each request."""

    clock: SandboxClock
    strict_catalog: bool


class _BadQuery(Exception):
    pass


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _BadQuery(f"invalid cursor {cursor[:40]!r}") from None
    kind, _, number = text.partition(":")
    if kind != "offset" or not number.isdigit():
        raise _BadQuery(f"invalid cursor {cursor[:40]!r}")
    return int(number)


def _page(
    query: Mapping[str, str], items: list[dict[str, Any]], *, default: int = _DEFAULT_RESULTS
) -> dict[str, Any]:
    """A cursor page of ``items`` (Tango's prevCursor / nextCursor page fields)."""
    try:
        per = int(query.get("maxResults", str(default)))
    except ValueError:
        raise _BadQuery("maxResults must be an integer") from None
    if not 1 <= per <= _MAX_RESULTS:
        raise _BadQuery(f"maxResults must be 1 to {_MAX_RESULTS}")
    start = _offset(query["nextCursor"]) if "nextCursor" in query else 0
    if "prevCursor" in query and "nextCursor" not in query:
        start = _offset(query["prevCursor"])
    block = items[start : start + per]
    more = start + per < len(items)
    return {
        "prevCursor": _cursor(max(0, start - per)) if start > 0 else None,
        "nextCursor": _cursor(start + per) if more else None,
        "prevPageAvailable": start > 0,
        "nextPageAvailable": more,
        "maxResults": per,
        "items": block,
    }


def _brand_key(name: str) -> str:
    return f"B{zlib.crc32(name.encode()) % 10**6:06d}"


def _matches(value: Any, wanted: str | None) -> bool:
    return wanted is None or (isinstance(value, str) and value.lower() == wanted.lower())


def _plain(d: Decimal) -> str:
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class CatalogData:
    """The catalog routes over the sandbox's ``store.catalog`` (see the module docstring),
    errors written by ``errors``."""

    def __init__(self, host: CatalogHost, store: OrderStore, errors: ErrorWriter) -> None:
        self._host = host
        self._store = store
        self._errors = errors
        self._fixed_rates: dict[tuple[str, str], Decimal] = {}

    def add_to(self, app: web.Application) -> None:
        """Register the routes (before the catch-all 404)."""
        add = app.router.add_route
        add("GET", PREFIX + "/catalogs", self.get_catalog)
        add("GET", PREFIX + "/choiceProducts", self.list_choice_products)
        add("GET", PREFIX + "/choiceProducts/{utid}", self.get_choice_product)
        add("GET", PREFIX + "/choiceProducts/{utid}/catalog", self.get_choice_catalog)
        add("GET", PREFIX + "/exchangerates", self.get_exchange_rates)
        add("GET", PREFIX + "/credentialtypes", self.credential_types)
        add("GET", PREFIX + "/rewardCountries", self.reward_countries)
        add("GET", PREFIX + "/mobileCountries", self.mobile_countries)
        add("GET", PREFIX + "/brandCategories", self.brand_categories)

    # --- the catalog ------------------------------------------------------------------------

    def item_view(self, utid: str, item: CatalogItem) -> dict[str, Any]:
        """An item as GET /catalogs shows it (ItemViewVerbose)."""
        view: dict[str, Any] = {
            "utid": utid,
            "rewardName": item.reward_name,
            "currencyCode": item.currency_code,
            "status": item.status,
            "valueType": item.value_type,
            "rewardType": item.reward_type,
            "isExpirable": item.kind == "promo_link",
            "quantityConstraints": {"minQuantity": 1, "maxQuantity": 1},
            "isWholeAmountValueRequired": item.whole_amounts,
            "exchangeRateRule": "NONE" if item.currency_code == "USD" else "DAILY",
            "fee": {"type": "PERCENTAGE", "value": Decimal("0")},
            "createdDate": _CREATED,
            "lastUpdateDate": _CREATED,
            "countries": list(item.countries),
            "credentialTypes": (
                ["redemptionUrl", "expirationDate"]
                if item.kind == "promo_link"
                else ["cardNumber", "cardPin"]
            ),
            "redemptionInstructions": "Enter the claim code and PIN at checkout.",
            "fulfillmentType": "PHYSICAL" if item.kind == "physical" else "DIGITAL",
            "attributes": ["ADDRESS"] if item.kind == "physical" else ["EMAIL", "EMBEDDED"],
        }
        for wire, value in (
            ("minValue", item.min_value),
            ("maxValue", item.max_value),
            ("faceValue", item.face_value),
        ):
            if value is not None:
                view[wire] = value
        return view

    def catalog(
        self, query: MultiMapping[str], utids: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """The catalog (CatalogViewVerbose) of the items ``query`` selects (of ``utids``
        only, when given)."""
        catalog = self._store.catalog
        chosen = set(utids) if utids is not None else None
        wanted_types = {v.lower() for v in query.getall("rewardType", [])} - {"all"}
        brands: dict[str, dict[str, Any]] = {}
        for utid, item in catalog.items():
            if chosen is not None and utid not in chosen:
                continue
            brand = item.brand or item.reward_name
            key = _brand_key(brand)
            if not (
                _matches(key, query.get("brandKey"))
                and _matches(brand, query.get("brandName"))
                and _matches(utid, query.get("utid"))
                and _matches(item.reward_name, query.get("rewardName"))
                and _matches(item.status, query.get("status"))
                and _matches(item.currency_code, query.get("currencyCode"))
                and (not wanted_types or item.reward_type.lower() in wanted_types)
                and (
                    "country" not in query
                    or query["country"].upper() in {c.upper() for c in item.countries}
                )
            ):
                continue
            view = brands.get(brand)
            if view is None:
                category = _BRAND_CATEGORY.get(brand, "Retail")
                view = brands[brand] = {
                    "brandKey": key,
                    "brandName": brand,
                    "disclaimer": f"{brand} is not a sponsor of this promotion.",
                    "description": f"Rewards from {brand}.",
                    "shortDescription": brand,
                    "terms": "Terms and conditions apply.",
                    "createdDate": _CREATED,
                    "lastUpdateDate": _CREATED,
                    "brandRequirements": {
                        "displayInstructions": "Show the brand's logo with its name.",
                        "termsAndConditionsInstructions": "Show the terms with the reward.",
                        "disclaimerInstructions": "Show the disclaimer with the reward.",
                        "alwaysShowDisclaimer": False,
                    },
                    "imageUrls": {
                        "200w-326ppi": f"https://sandbox.images.example/{key}/200w-326ppi.png",
                        "300w-326ppi": f"https://sandbox.images.example/{key}/300w-326ppi.png",
                    },
                    "status": "active",
                    "items": [],
                    "barcodeType": None,
                    "categories": [
                        {"identifier": BRAND_CATEGORIES[category], "description": category}
                    ],
                }
            view["items"].append(self.item_view(utid, item))
        return {"catalogName": CATALOG_NAME, "brands": list(brands.values())}

    async def get_catalog(self, request: web.Request) -> web.Response:
        return respond(self.catalog(request.query))

    # --- choice products --------------------------------------------------------------------

    @staticmethod
    def _choice_view(utid: str) -> dict[str, Any]:
        name, currency, countries = CHOICE_PRODUCTS[utid]
        return {
            "utid": utid,
            "rewardName": name,
            "currencyCode": currency,
            "countries": list(countries),
        }

    async def list_choice_products(self, request: web.Request) -> web.Response:
        q = request.query
        wanted = {c.upper() for c in q.getall("countries", [])}
        found = [
            self._choice_view(utid)
            for utid, (name, currency, countries) in CHOICE_PRODUCTS.items()
            if _matches(name, q.get("rewardName"))
            and _matches(currency, q.get("currencyCode"))
            and (not wanted or wanted & set(countries))
        ]
        return respond({"choiceProducts": found})

    def _choice(self, request: web.Request) -> str | None:
        utid = request.match_info["utid"].upper()
        return utid if utid in CHOICE_PRODUCTS else None

    async def get_choice_product(self, request: web.Request) -> web.Response:
        utid = self._choice(request)
        if utid is None:
            return self._errors.response(request.path, "404.050")
        return respond(self._choice_view(utid))

    async def get_choice_catalog(self, request: web.Request) -> web.Response:
        utid = self._choice(request)
        if utid is None:
            return self._errors.response(request.path, "404.050")
        _, currency, _ = CHOICE_PRODUCTS[utid]
        picks = [
            u
            for u, item in self._store.catalog.items()
            if item.currency_code == currency and item.status == "active"
        ]
        return respond(self.catalog(request.query, picks))

    # --- exchange rates ---------------------------------------------------------------------

    def set_rate(self, reward_currency: str, base_currency: str, base_fx: Decimal) -> None:
        """Fix the rate of ``reward_currency`` in ``base_currency`` (it no longer changes
        by the day)."""
        self._fixed_rates[(reward_currency.upper(), base_currency.upper())] = Decimal(base_fx)

    def rates(self, now: datetime) -> list[dict[str, Any]]:
        """Every rate as GET /exchangerates shows it at ``now`` (sandbox clock)."""
        changed = datetime.combine((now - RATES_CHANGE_AT).date(), datetime.min.time(), UTC)
        changed += RATES_CHANGE_AT
        day = (changed - datetime(2000, 1, 1, tzinfo=UTC)).days
        drift = Decimal((day % 7) - 3) / Decimal(1000)  # -0.3% to +0.3%, by the day
        pairs: dict[tuple[str, str], Decimal] = {
            (cur, "USD"): (base * (1 + drift)).quantize(Decimal("0.0001"))
            for cur, base in BASE_RATES.items()
        }
        pairs.update(self._fixed_rates)
        return [
            {
                "lastModifiedDate": iso(changed),
                "rewardCurrency": reward,
                "baseCurrency": base,
                "baseFx": _plain(fx),  # the spec types baseFx as a string
            }
            for (reward, base), fx in sorted(pairs.items())
        ]

    async def get_exchange_rates(self, request: web.Request) -> web.Response:
        q = request.query
        bases = {c.upper() for c in q.getall("baseCurrency", [])}
        rewards = {c.upper() for c in q.getall("rewardCurrency", [])}
        rates = [
            r
            for r in self.rates(self._host.clock.now())
            if (not bases or r["baseCurrency"] in bases)
            and (not rewards or r["rewardCurrency"] in rewards)
        ]
        if q.get("paginate", "false").lower() != "true":
            return respond({"disclaimer": DISCLAIMER, "exchangeRates": rates})
        try:
            page = _page(q, rates)
        except _BadQuery as e:
            return self._errors.response(request.path, "400.002", str(e))
        page["exchangeRates"] = page.pop("items")
        return respond({"disclaimer": DISCLAIMER, **page})

    # --- reference lists --------------------------------------------------------------------

    async def credential_types(self, request: web.Request) -> web.Response:
        return respond([{"credentialType": t, "description": d} for t, d in CREDENTIAL_TYPES])

    async def reward_countries(self, request: web.Request) -> web.Response:
        q = request.query
        codes = {c.strip().upper() for c in q.get("countries", "").split(",") if c.strip()}
        currencies = {
            c.strip().upper() for c in q.get("preferredCurrencies", "").split(",") if c.strip()
        }
        countries = [
            {
                "twoLetterCode": two,
                "threeLetterCode": three,
                "countryName": name,
                "preferredCurrency": currency,
            }
            for two, three, name, currency in REWARD_COUNTRIES
            if (not codes or two in codes or three in codes)
            and (not currencies or currency in currencies)
        ]
        try:
            page = _page(q, countries)
        except _BadQuery as e:
            return self._errors.response(request.path, "400.002", str(e))
        return respond(page)  # Tango's cursor page (see the contract's correction 10)

    async def mobile_countries(self, request: web.Request) -> web.Response:
        items = [
            {"isoCode": iso_code, "countryName": name, "countryCode": code, "languageCode": lang}
            for iso_code, name, code, lang in MOBILE_COUNTRIES
        ]
        return respond({"items": items})

    async def brand_categories(self, request: web.Request) -> web.Response:
        return respond(
            {
                "brandCategories": [
                    {"identifier": ident, "description": name}
                    for name, ident in BRAND_CATEGORIES.items()
                ]
            }
        )

    # --- strict_catalog: the catalog's rules for POST /orders ---------------------------------

    def order_refusal(self, path: str, body: Mapping[str, Any]) -> web.Response | None:
        """With ``strict_catalog``, the refusal of an order (its body valid otherwise) that
        breaks the catalog's rules; else None."""
        if not self._host.strict_catalog:
            return None
        utid = str(body.get("utid", ""))
        item = self._store.catalog.get(utid.upper())
        if item is None:
            return self._errors.response(path, "400.050", utid)
        if item.status.lower() != "active":
            return self._errors.response(path, "422.050", utid)
        amount = Decimal(str(body["amount"]))
        rule: str | None = None
        unit = f" {item.currency_code}"
        if item.value_type == "FIXED_VALUE" and item.face_value is not None:
            if amount != item.face_value:
                rule = f"amount must be {_plain(item.face_value)}{unit} for {utid}"
        elif item.value_type == "VARIABLE_VALUE":
            low, high = item.min_value, item.max_value
            if (low is not None and amount < low) or (high is not None and amount > high):
                rule = (
                    f"amount must be between {_plain(low or Decimal(0))} and "
                    f"{_plain(high) if high is not None else 'any'}{unit} for {utid}"
                )
        if rule is None and item.whole_amounts and amount != amount.to_integral_value():
            rule = f"amount must be a whole amount for {utid}"
        if rule is not None:
            return self._errors.response(path, "400.051", rule)
        return None
