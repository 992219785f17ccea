"""client.catalog, client.choice_products, the catalog models and the reference cache, with
aioresponses: every status, decoding (unknown fields and values, hostile strings, Decimal
edge cases, null lists, huge catalogs), Catalog.check's rules, and the cache (single
flight, expiry on a frozen clock, refresh, failures not cached, cancellation)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from aioresponses import aioresponses
from hypothesis import given, settings
from hypothesis import strategies as st

import tango_async as ta
from tango_async._cache import ReferenceCache, fixed_ttl
from tango_async.testing import SandboxClock

from . import hypothesis_strategies as hs
from .conftest import BASE, FAST_RETRY, KEY, NAME

CATALOG_URL = re.compile(re.escape(f"{BASE}/catalogs") + r"(\?.*)?$")


def item(utid: str, **kw: Any) -> dict[str, Any]:
    return {
        "utid": utid,
        "rewardName": f"Reward {utid}",
        "currencyCode": "USD",
        "status": "active",
        "valueType": "VARIABLE_VALUE",
        "rewardType": "gift card",
        "minValue": 5,
        "maxValue": 500,
        "countries": ["US"],
        "credentialTypes": ["cardNumber"],
        **kw,
    }


def catalog_body(*items: dict[str, Any], brand: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "catalogName": "Test Catalog",
        "brands": [
            {"brandKey": "B1", "brandName": "Brand One", "status": "active", **(brand or {}),
             "items": list(items)},
        ],
    }  # fmt: skip


CATALOG = catalog_body(
    item("U1", rewardName="Amazon.com Gift Card"),
    item("U25", valueType="FIXED_VALUE", faceValue=25.00, minValue=None, maxValue=None),
    item("U0", status="inactive"),
    item("UEUR", currencyCode="EUR", minValue=1, maxValue=100),
    item("UWHOLE", isWholeAmountValueRequired=True),
)


def calls(m: aioresponses, method: str = "GET", path: str = "/catalogs") -> list[Any]:
    return [
        c
        for (meth, u), cs in m.requests.items()
        if meth == method and str(u).split("?")[0] == f"{BASE}{path}"
        for c in cs
    ]


def decoded(body: dict[str, Any]) -> ta.Catalog:
    return msgspec.json.decode(json.dumps(body).encode(), type=ta.Catalog)


# --- models --------------------------------------------------------------------------------


def test_every_model_decodes_with_unknown_fields_values_and_nulls() -> None:
    body = {
        "catalogName": "C",
        "newTopLevel": {"x": 1},
        "brands": [
            {
                "brandKey": "B1",
                "brandName": "Brand",
                "status": "SOMETHING_NEW",
                "brandRequirements": {
                    "displayInstructions": "d",
                    "termsAndConditionsInstructions": "t",
                    "disclaimerInstructions": "x",
                    "alwaysShowDisclaimer": True,
                    "futureField": [1, 2],
                },
                "imageUrls": None,
                "categories": [{"identifier": "6f1c0f3e-0000-4000-8000-000000000000",
                                "description": "Retail", "extra": 1}],
                "items": [
                    item(
                        "U1",
                        valueType="BRAND_NEW_VALUE_TYPE",
                        countries=None,
                        credentialTypes=None,
                        attributes=None,
                        fee={"type": "PERCENTAGE", "value": "1.5"},
                        quantityConstraints={"minQuantity": 1, "maxQuantity": 10},
                        unknownField="kept out",
                    )
                ],
            },
            {"brandKey": "B2", "items": None, "categories": None},
        ],
    }  # fmt: skip
    c = decoded(body)
    brand, empty = c.brands or []
    assert brand.status == "SOMETHING_NEW" and brand.image_urls == {}
    assert brand.brand_requirements and brand.brand_requirements.always_show_disclaimer is True
    assert brand.categories and brand.categories[0].description == "Retail"
    got = c.find("u1")  # case-insensitive
    assert got is not None and got.value_type == "BRAND_NEW_VALUE_TYPE"
    assert got.countries == [] and got.credential_types == [] and got.attributes == []
    assert got.fee == ta.CostAdjustment(type="PERCENTAGE", value=Decimal("1.5"))
    assert got.quantity_constraints == ta.QuantityConstraints(min_quantity=1, max_quantity=10)
    assert empty.items == [] and empty.categories == []
    assert c.brand_of("U1") is brand and c.find("U404") is None and c.brand_of("U404") is None
    c.check("U1", 10)  # an unknown value type: the amount rule is the server's
    assert decoded({"brands": None}).brands == []


def test_reference_models_decode() -> None:
    dec = msgspec.json.decode
    assert dec(b'{"utid":"U7","rewardName":"Choice","currencyCode":"EUR","countries":null,'
               b'"x":1}', type=ta.ChoiceProduct).countries == []  # fmt: skip
    assert dec(b'{"credentialType":"cardPin","n":1}', type=ta.CredentialType).description is None
    country = dec(
        b'{"twoLetterCode":"FR","threeLetterCode":"FRA","countryName":"France",'
        b'"preferredCurrency":"EUR","z":0}',
        type=ta.Country,
    )
    assert country.preferred_currency == "EUR"
    mobile = dec(b'{"isoCode":"US","countryCode":"1"}', type=ta.MobileCountry)
    assert mobile.country_code == "1" and mobile.language_code is None
    assert dec(b'{"identifier":"u","description":"d"}', type=ta.BrandCategory).identifier == "u"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1e400", Decimal("1E+400")),
        ('"NaN"', None),  # decoded as NaN; the rule it would state is not checked
        ("-5", Decimal("-5")),
        ("0.1", Decimal("0.1")),
        ("123456789012345678901234567890.123456789", None),
    ],
)
def test_decimal_edge_cases_decode_exactly_and_never_break_check(
    raw: str, expected: Decimal | None
) -> None:
    body = (
        b'{"catalogName":"C","brands":[{"items":[{"utid":"U1","valueType":"VARIABLE_VALUE",'
        b'"minValue":' + raw.encode() + b',"maxValue":' + raw.encode() + b',"faceValue":'
        + raw.encode() + b"}]}]}"
    )  # fmt: skip
    c = msgspec.json.decode(body, type=ta.Catalog)
    found = c.find("U1")
    assert found is not None and isinstance(found.min_value, Decimal)
    if expected is not None:
        assert found.min_value == expected
    for amount in (Decimal("10"), 1, 2.5):
        try:
            c.check("U1", amount)
        except ta.ValidationError as e:  # a bound that is finite refuses: never another error
            assert e.field == "amount" and len(e.rule) < 200


def test_hostile_strings_are_escaped_and_cut_in_rules() -> None:
    evil = "Evil\r\nINFO forged line\x1b[31m" + "x" * 500
    c = decoded(catalog_body(item("U1", rewardName=evil, currencyCode="US\nD")))
    with pytest.raises(ta.ValidationError) as err:
        c.check("U1", 1)
    assert (
        "\n" not in err.value.rule and "\x1b" not in err.value.rule and "\r" not in err.value.rule
    )
    assert len(err.value.rule) < 300
    with pytest.raises(ta.ValidationError) as err:
        c.check("U\n" + "9" * 1000, 1)
    assert err.value.field == "utid" and "\n" not in err.value.rule and len(err.value.rule) < 300


def test_huge_catalog_decodes_and_checks_in_constant_time() -> None:
    brands = [
        {"brandKey": f"B{i}", "items": [item(f"U{i:06d}", minValue=1, maxValue=100)]}
        for i in range(20_000)
    ]
    c = decoded({"catalogName": "Big", "brands": brands})
    c.check("U019999", 50)  # builds the index once
    index = c.__dict__["_utid_index"]
    for _ in range(1000):
        c.check("U000001", 50)
    assert c.__dict__["_utid_index"] is index and len(index) == 20_000
    with pytest.raises(ta.ValidationError):
        c.check("U019999", 101)


# --- Catalog.check ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field", "rule"),
    [
        (("U404", 10), "utid", "must be an item of the catalog Test Catalog (U404 is not in it)"),
        (("U0", 10), "utid", "must be an active item (U0 (Reward U0): its status is inactive)"),
        (("U25", 10), "amount", "must be 25 USD for U25 (Reward U25) (a fixed-value item)"),
        (("U25", Decimal("25.01")), "amount", "must be 25 USD"),
        (("U1", Decimal("4.99")), "amount",
         "must be between 5 and 500 USD for U1 (Amazon.com Gift Card)"),
        (("U1", 501), "amount", "must be between 5 and 500 USD for U1 (Amazon.com Gift Card)"),
        (("U1", 10, "EUR"), "currency_code", "must be USD for U1 (Amazon.com Gift Card)"),
        (("UEUR", 10, "USD"), "currency_code", "must be EUR for UEUR"),
        (("UWHOLE", Decimal("10.50")), "amount", "must be a whole amount (no cents)"),
        (("U1", float("inf")), "amount", "must be a finite number"),
        (("U1", Decimal("NaN")), "amount", "must be a finite number"),
        (("U1", "10"), "amount", "must be a number"),
        (("U1", True), "amount", "must be a number"),
        (("", 10), "utid", "must be a non-empty string"),
        (("U1", 10, 840), "currency_code", "must be a currency code string"),
    ],
)  # fmt: skip
def test_check_names_the_field_and_the_items_rule(
    args: tuple[Any, ...], field: str, rule: str
) -> None:
    with pytest.raises(ta.ValidationError) as err:
        decoded(CATALOG).check(*args)
    assert err.value.field == field
    assert err.value.rule.startswith(rule), err.value.rule


def test_check_accepts_what_the_items_allow() -> None:
    c = decoded(CATALOG)
    for args in [
        ("U1", 5),
        ("u1", Decimal("500.00")),
        ("U1", 10.5),
        ("U1", 10, "usd"),
        ("U25", Decimal("25.00")),
        ("U25", 25.0),
        ("UEUR", 100, "EUR"),
        ("UWHOLE", Decimal("10.00")),
    ]:
        c.check(*args)


def test_inactive_brand_refuses_its_items_and_missing_bounds_are_not_checked() -> None:
    c = decoded(catalog_body(item("U1"), brand={"status": "Inactive"}))
    with pytest.raises(ta.ValidationError, match="its brand's status is Inactive"):
        c.check("U1", 10)
    open_ended = decoded(catalog_body(item("U2", minValue=None, maxValue=50)))
    open_ended.check("U2", Decimal("0.01"))
    with pytest.raises(ta.ValidationError, match="must be at most 50 USD"):
        open_ended.check("U2", 51)
    floor = decoded(catalog_body(item("U3", minValue=5, maxValue=None)))
    with pytest.raises(ta.ValidationError, match="must be at least 5 USD"):
        floor.check("U3", 1)
    floor.check("U3", 10**9)
    no_face = decoded(catalog_body(item("U4", valueType="FIXED_VALUE", faceValue=None)))
    no_face.check("U4", 7)


# --- client.catalog over HTTP ----------------------------------------------------------------


async def test_get_decodes_and_caches_the_catalog(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(CATALOG_URL, payload=CATALOG, repeat=True)
        first = await mocked_client.catalog.get()
        again = await mocked_client.catalog.get()
        assert again is first and len(calls(m)) == 1
        assert calls(m)[0].kwargs.get("params") is None  # the unfiltered catalog
        refreshed = await mocked_client.catalog.refresh()
        assert refreshed is not first and len(calls(m)) == 2
        assert await mocked_client.catalog.get() is refreshed
        mocked_client.catalog.invalidate()
        await mocked_client.catalog.get()
        assert len(calls(m)) == 3


async def test_filters_are_sent_checked_and_bypass_the_cache(
    mocked_client: ta.TangoClient,
) -> None:
    cat = "6f1c0f3e-0000-4000-8000-000000000000"
    with aioresponses() as m:
        m.get(CATALOG_URL, payload=CATALOG, repeat=True)
        await mocked_client.catalog.get()
        await mocked_client.catalog.get(
            verbose=False,
            brand_key="B1",
            brand_name="Brand One",
            utid="U1",
            reward_name="Amazon.com Gift Card",
            status="ACTIVE",
            reward_type=["Gift Card", "promo"],
            currency_code="USD",
            country="US",
            fulfillment_type="digital",
            item_attribute=["email", "EMBEDDED"],
            category_ids=[cat],
        )
        sent = calls(m)
        assert len(sent) == 2
        assert sent[1].kwargs["params"] == [
            ("verbose", "false"),
            ("brandKey", "B1"),
            ("brandName", "Brand One"),
            ("utid", "U1"),
            ("rewardName", "Amazon.com Gift Card"),
            ("status", "active"),
            ("rewardType", "gift card"),
            ("rewardType", "promo"),
            ("fulfillmentType", "DIGITAL"),
            ("itemAttribute", "EMAIL"),
            ("itemAttribute", "EMBEDDED"),
            ("currencyCode", "USD"),
            ("country", "US"),
            ("categoryIds", cat),
        ]
        await mocked_client.catalog.get()  # the unfiltered one is still cached
        assert len(calls(m)) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": "retired"}, "status"),
        ({"reward_type": "voucher"}, "reward_type[0]"),
        ({"reward_type": []}, "reward_type"),
        ({"item_attribute": ["EMAIL", "FAX"]}, "item_attribute[1]"),
        ({"fulfillment_type": 3}, "fulfillment_type"),
        ({"category_ids": ["not-a-uuid"]}, "category_ids[0]"),
        ({"currency_code": "usd"}, "currency_code"),
        ({"country": "U S"}, "country"),
        ({"brand_name": "a\nb"}, "brand_name"),
        ({"utid": "   "}, "utid"),
        ({"reward_name": "x" * 256}, "reward_name"),
        ({"verbose": "yes"}, "verbose"),
        ({"refresh": 1}, "refresh"),
    ],
)
async def test_bad_filters_send_nothing(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    with aioresponses() as m:
        with pytest.raises(ta.ValidationError) as err:
            await mocked_client.catalog.get(**kwargs)
        assert err.value.field == field
        assert not m.requests


@pytest.mark.parametrize(
    ("status", "error", "attempts"),
    [
        (400, ta.BadRequestError, 1),
        (401, ta.AuthenticationError, 1),
        (403, ta.PermissionDeniedError, 1),
        (404, ta.NotFoundError, 1),
        (422, ta.UnprocessableEntityError, 1),
        (429, ta.RateLimitError, 4),
        (500, ta.ServerError, 4),
        (503, ta.ServerError, 4),
    ],
)
async def test_every_error_status_of_every_route(
    status: int, error: type[ta.APIError], attempts: int
) -> None:
    # a frozen clock: the back-offs and the pacing after a 429 take no real time
    clock = SandboxClock(frozen=True)
    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST_RETRY, clock=clock) as client:
        await _every_route(client, status, error, attempts)


async def _every_route(
    mocked_client: ta.TangoClient, status: int, error: type[ta.APIError], attempts: int
) -> None:
    err_body = {"errors": [{"i18nKey": f"{status}.001", "message": "no"}]}
    routes: list[tuple[str, Any]] = [
        ("/catalogs", mocked_client.catalog.get),
        ("/credentialtypes", mocked_client.catalog.credential_types),
        ("/rewardCountries", mocked_client.catalog.reward_countries),
        ("/mobileCountries", mocked_client.catalog.mobile_countries),
        ("/brandCategories", mocked_client.catalog.brand_categories),
        ("/choiceProducts", mocked_client.choice_products.list),
        ("/choiceProducts/U7", lambda: mocked_client.choice_products.get("U7")),
        ("/choiceProducts/U7/catalog", lambda: mocked_client.choice_products.catalog("U7")),
        ("/exchangerates", mocked_client.exchange_rates.get),
    ]
    for path, call in routes:
        with aioresponses() as m:
            url = re.compile(re.escape(f"{BASE}{path}") + r"(\?.*)?$")
            m.get(url, status=status, payload=err_body, repeat=True)
            with pytest.raises(error):
                await call()
            assert len(calls(m, path=path)) == attempts, path
    # and nothing was cached: the next call asks again and succeeds
    with aioresponses() as m:
        m.get(CATALOG_URL, payload=CATALOG)
        assert (await mocked_client.catalog.get()).catalog_name == "Test Catalog"


async def test_a_body_that_is_not_a_catalog_is_a_response_validation_error(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(CATALOG_URL, payload={"brands": "many"})
        with pytest.raises(ta.APIResponseValidationError):
            await mocked_client.catalog.get()


async def test_reference_lists_are_cached_and_take_every_documented_shape(
    mocked_client: ta.TangoClient,
) -> None:
    fr = {"twoLetterCode": "FR", "threeLetterCode": "FRA", "countryName": "France",
          "preferredCurrency": "EUR"}  # fmt: skip
    us = {"twoLetterCode": "US", "threeLetterCode": "USA", "countryName": "United States",
          "preferredCurrency": "USD"}  # fmt: skip
    countries = re.compile(re.escape(f"{BASE}/rewardCountries") + r"\?.*$")
    with aioresponses() as m:
        m.get(f"{BASE}/credentialtypes", payload=[{"credentialType": "cardPin"}, None])
        m.get(f"{BASE}/brandCategories", payload={"brandCategories": [{"identifier": "i"}]})
        m.get(f"{BASE}/mobileCountries", payload=[{"isoCode": "US"}])
        m.get(countries, payload={"nextCursor": "c2", "nextPageAvailable": True, "items": [fr]})
        m.get(countries, payload={"nextCursor": None, "nextPageAvailable": False, "items": [us]})
        for _ in range(2):
            assert await mocked_client.catalog.credential_types() == [
                ta.CredentialType(credential_type="cardPin")
            ]
            assert await mocked_client.catalog.brand_categories() == [
                ta.BrandCategory(identifier="i")
            ]
            assert await mocked_client.catalog.mobile_countries() == [
                ta.MobileCountry(iso_code="US")
            ]
            got = await mocked_client.catalog.reward_countries()
            assert [c.two_letter_code for c in got] == ["FR", "US"]
        pages = calls(m, path="/rewardCountries")
        assert len(pages) == 2  # two pages, once: cached afterwards
        assert pages[1].kwargs["params"] == [("maxResults", "200"), ("nextCursor", "c2")]
        got.clear()  # a caller's list is its own copy
        assert len(await mocked_client.catalog.reward_countries()) == 2
    with aioresponses() as m:  # the spec's shapes: one object; filters bypass the cache
        m.get(countries, payload=fr)
        m.get(countries, payload=[us])
        one = await mocked_client.catalog.reward_countries(countries="FR", max_results=5)
        assert [c.country_name for c in one] == ["France"]
        assert calls(m, path="/rewardCountries")[0].kwargs["params"] == [
            ("countries", "FR"),
            ("maxResults", "5"),
        ]
        listed = await mocked_client.catalog.reward_countries(preferred_currencies=["USD", "EUR"])
        assert [c.country_name for c in listed] == ["United States"]
    with aioresponses() as m:
        m.get(f"{BASE}/mobileCountries", payload={"isoCode": "CA", "countryName": "Canada"})
        m.get(f"{BASE}/mobileCountries", payload={"items": [{"isoCode": "GB"}], "isoCode": "GB"})
        assert [c.iso_code for c in await mocked_client.catalog.mobile_countries(refresh=True)] == [
            "CA"
        ]
        assert [c.iso_code for c in await mocked_client.catalog.mobile_countries(refresh=True)] == [
            "GB"
        ]
    with aioresponses() as m:
        for bad in ({"countries": "FRANCE"}, {"preferred_currencies": []}, {"max_results": 201}):
            with pytest.raises(ta.ValidationError):
                await mocked_client.catalog.reward_countries(**bad)
        assert not m.requests


async def test_choice_products(mocked_client: ta.TangoClient) -> None:
    product = {"utid": "U7", "rewardName": "Choice", "currencyCode": "USD", "countries": ["US"]}
    with aioresponses() as m:
        m.get(re.compile(re.escape(f"{BASE}/choiceProducts") + r"(\?.*)?$"),
              payload={"choiceProducts": [product, None]})  # fmt: skip
        m.get(f"{BASE}/choiceProducts/U7", payload=product)
        m.get(re.compile(re.escape(f"{BASE}/choiceProducts/U7/catalog") + r"(\?.*)?$"),
              payload=CATALOG)  # fmt: skip
        listed = await mocked_client.choice_products.list(
            reward_name="Choice", currency_code="USD", countries=["US", "CA"]
        )
        assert [p.utid for p in listed] == ["U7"]
        assert calls(m, path="/choiceProducts")[0].kwargs["params"] == [
            ("rewardName", "Choice"),
            ("currencyCode", "USD"),
            ("countries", "US"),
            ("countries", "CA"),
        ]
        assert (await mocked_client.choice_products.get("U7")).reward_name == "Choice"
        picks = await mocked_client.choice_products.catalog("U7", item_utid="U1")
        picks.check("U1", 10)
        assert calls(m, path="/choiceProducts/U7/catalog")[0].kwargs["params"] == [("utid", "U1")]
    with aioresponses() as m:
        for call in (
            lambda: mocked_client.choice_products.get("../catalogs"),
            lambda: mocked_client.choice_products.get(""),
            lambda: mocked_client.choice_products.catalog("U 7"),
            lambda: mocked_client.choice_products.list(countries="not a country"),
        ):
            with pytest.raises(ta.ValidationError):
                await call()
        assert not m.requests


# --- the cache -------------------------------------------------------------------------------


async def test_fifty_concurrent_gets_make_one_request(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(CATALOG_URL, payload=CATALOG, repeat=True)
        got = await asyncio.gather(*(mocked_client.catalog.get() for _ in range(50)))
        assert len(calls(m)) == 1
    assert all(c is got[0] for c in got)


async def test_expiry_on_a_frozen_clock_and_the_ttl_setting() -> None:
    clock = SandboxClock(frozen=True, start=datetime(2025, 6, 1, 8, tzinfo=UTC))
    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST_RETRY, clock=clock) as tango:
        with aioresponses() as m:
            m.get(CATALOG_URL, payload=CATALOG, repeat=True)
            await tango.catalog.get()
            clock.advance(12 * 3600 - 1)
            await tango.catalog.get()
            assert len(calls(m)) == 1
            clock.advance(2)
            await tango.catalog.get()
            assert len(calls(m)) == 2
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, clock=clock, catalog_ttl=60
    ) as tango:
        with aioresponses() as m:
            m.get(CATALOG_URL, payload=CATALOG, repeat=True)
            await tango.catalog.get()
            clock.advance(61)
            await tango.catalog.get()
            assert len(calls(m)) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"catalog_ttl": 0}, "catalog_ttl"),
        ({"catalog_ttl": -1}, "catalog_ttl"),
        ({"catalog_ttl": float("nan")}, "catalog_ttl"),
        ({"catalog_ttl": float("inf")}, "catalog_ttl"),
        ({"catalog_ttl": 7 * 86400 + 1}, "catalog_ttl"),
        ({"catalog_ttl": "3600"}, "catalog_ttl"),
        ({"catalog_ttl": True}, "catalog_ttl"),
        ({"check_catalog": "yes"}, "check_catalog"),
    ],
)
def test_client_arguments_are_checked(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as err:
        ta.TangoClient(NAME, KEY, base_url=BASE, **kwargs)
    assert err.value.field == field


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(CATALOG_URL, status=403, payload={"errors": [{"i18nKey": "403.001"}]})
        m.get(CATALOG_URL, payload=CATALOG)
        results = await asyncio.gather(
            *(mocked_client.catalog.get() for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(r, ta.PermissionDeniedError) for r in results)
        assert len(calls(m)) == 1
        assert (await mocked_client.catalog.get()).catalog_name == "Test Catalog"
        assert len(calls(m)) == 2


async def test_cancelling_the_caller_that_started_the_fetch_leaves_the_others_served() -> None:
    cache = ReferenceCache(SandboxClock(frozen=True))
    release = asyncio.Event()
    fetched: list[int] = []

    async def fetch() -> str:
        fetched.append(1)
        await release.wait()
        return "value"

    starter = asyncio.ensure_future(cache.get("k", fetch, fixed_ttl(60)))
    await asyncio.sleep(0)
    others = [asyncio.ensure_future(cache.get("k", fetch, fixed_ttl(60))) for _ in range(3)]
    await asyncio.sleep(0)
    starter.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*others) == ["value"] * 3
    assert starter.cancelled() and fetched == [1]
    assert await cache.get("k", fetch, fixed_ttl(60)) == "value" and fetched == [1]


async def test_when_every_caller_is_cancelled_the_fetch_stops_and_stores_nothing() -> None:
    cache = ReferenceCache(SandboxClock(frozen=True))
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def hanging() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    waiters = [asyncio.ensure_future(cache.get("k", hanging, fixed_ttl(60))) for _ in range(2)]
    await started.wait()
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await asyncio.sleep(0)
    assert cancelled == [True] and cache.peek("k") is None

    async def quick() -> str:
        return "fresh"

    assert await cache.get("k", quick, fixed_ttl(60)) == "fresh"  # not poisoned
    assert cache.fetches == 2


async def test_cache_refresh_joins_a_fetch_under_way_and_expiry_zero_stores_nothing() -> None:
    clock = SandboxClock(frozen=True)
    cache = ReferenceCache(clock)
    gate = asyncio.Event()
    n = 0

    async def fetch() -> int:
        nonlocal n
        n += 1
        await gate.wait()
        return n

    a = asyncio.ensure_future(cache.get("k", fetch, fixed_ttl(10)))
    await asyncio.sleep(0)
    b = asyncio.ensure_future(cache.get("k", fetch, fixed_ttl(10), refresh=True))
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(a, b) == [1, 1]
    assert await cache.get("k", fetch, fixed_ttl(10), refresh=True) == 2
    assert cache.expires_in("k") == 10
    clock.advance(10)
    assert cache.peek("k") is None
    assert await cache.get("z", fetch, fixed_ttl(0)) == 3 and cache.peek("z") is None
    cache.invalidate()
    assert cache.expires_in("k") is None


# --- properties ------------------------------------------------------------------------------


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    body=hs.catalog_bodies(),
    utid=st.sampled_from(["U0", "U1", "U2", "U3", "U4", "u1", "U9"]),
    amount=hs.CATALOG_AMOUNTS,
    currency=st.one_of(st.none(), st.sampled_from(["USD", "EUR", "usd"])),
)
def test_check_on_any_catalog_raises_only_validation_errors(
    body: dict[str, Any], utid: str, amount: Any, currency: str | None
) -> None:
    c = msgspec.json.decode(json.dumps(body).encode(), type=ta.Catalog)
    try:
        c.check(utid, amount, currency)
    except ta.ValidationError as e:
        assert e.field in ("utid", "amount", "currency_code")
        assert e.rule.isprintable() and len(e.rule) < 400
    found = c.find(utid)
    if found is None:
        with pytest.raises(ta.ValidationError):
            c.check(utid, 1)
