"""The sandbox's catalog and reference routes with raw aiohttp requests: every route, its
filters and paging, the contract of every answer (0 violations), the default catalog's
items (the utids orders named before), and strict_catalog's refusals of orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import tango_async as ta
from tango_async.testing import CatalogItem, Sandbox
from tango_async.testing.__main__ import build_parser, sandbox_from_args

from .conftest import order_request
from .sandbox14_support import call, key, session

ORDER: dict[str, Any] = {
    "customerIdentifier": "sandbox-customer",
    "accountIdentifier": "sandbox-account",
    "utid": "U561593",
    "amount": 10,
    "recipient": {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"},
    "sendEmail": True,
}


def utids(body: dict[str, Any]) -> list[str]:
    return [i["utid"] for b in body["brands"] for i in b["items"]]


async def test_every_route_answers_and_passes_the_contract() -> None:
    async with Sandbox(contract=True, order_rate=None) as sb, session(sb) as http:
        catalog = await call(http, sb, "GET", "/catalogs")
        assert catalog.status == 200 and catalog.body["catalogName"] == "Sandbox Catalog"
        items = {i["utid"]: i for b in catalog.body["brands"] for i in b["items"]}
        assert items["U561593"]["rewardName"] == "Amazon.com Gift Card"
        assert (
            items["U561593"]["minValue"] == Decimal("0.01") and items["U561593"]["maxValue"] == 2000
        )
        assert items["U666425"]["rewardName"] == "Promo Link"
        assert items["U157189"]["fulfillmentType"] == "PHYSICAL"
        assert (
            items["U100025"]["valueType"] == "FIXED_VALUE" and items["U100025"]["faceValue"] == 25
        )
        assert items["U999001"]["status"] == "inactive"
        assert {i["currencyCode"] for i in items.values()} >= {"USD", "EUR", "CAD"}
        for path in (
            "/catalogs?verbose=false",
            "/catalogs?currencyCode=EUR",
            "/choiceProducts",
            "/choiceProducts?countries=DE",
            "/choiceProducts/U777001",
            "/choiceProducts/U777002/catalog",
            "/choiceProducts/U000000",
            "/choiceProducts/U000000/catalog",
            "/exchangerates",
            "/exchangerates?paginate=true&maxResults=2",
            "/exchangerates?paginate=true&maxResults=0",
            "/credentialtypes",
            "/rewardCountries",
            "/rewardCountries?maxResults=2",
            "/rewardCountries?countries=ZZ",
            "/mobileCountries",
            "/brandCategories",
        ):
            answer = await call(http, sb, "GET", path)
            assert answer.status in (200, 400, 404), (path, answer)
        assert sb.contract_violations == []
        async with sb.client() as tango:  # and through the client
            await tango.catalog.get()
            await tango.catalog.get(status="active", reward_type="gift card", country="US")
            await tango.catalog.credential_types()
            await tango.catalog.reward_countries(max_results=2)
            await tango.catalog.mobile_countries()
            await tango.catalog.brand_categories()
            await tango.choice_products.list()
            await tango.choice_products.get("U777001")
            await tango.choice_products.catalog("U777001", verbose=True)
            await tango.exchange_rates.get()
            with pytest.raises(ta.NotFoundError):
                await tango.choice_products.get("U000000")
        assert sb.contract_violations == []


async def test_catalog_filters() -> None:
    async with Sandbox() as sb, session(sb) as http:

        async def found(query: str) -> list[str]:
            answer = await call(http, sb, "GET", "/catalogs" + query)
            assert answer.status == 200
            return utids(answer.body)

        assert await found("?utid=u100025") == ["U100025"]
        assert await found("?brandName=target") == ["U100010", "U100025", "U100050"]
        assert await found("?currencyCode=CAD") == ["U300225"]
        assert await found("?country=DE") == ["U300100"]
        assert await found("?status=inactive") == ["U999001"]
        assert await found("?rewardType=reward%20link") == ["U666425"]
        assert "U561593" in await found("?rewardType=all")
        key_ = (await call(http, sb, "GET", "/catalogs?utid=U561593")).body["brands"][0]["brandKey"]
        assert await found(f"?brandKey={key_}") == ["U561593"]
        assert await found("?rewardName=nothing") == []


async def test_cursor_pages_of_rates_and_countries() -> None:
    async with Sandbox(contract=True) as sb, session(sb) as http:
        seen: list[str] = []
        query = "?paginate=true&maxResults=3"
        for _ in range(5):
            page = await call(http, sb, "GET", "/exchangerates" + query)
            assert page.status == 200 and page.body["maxResults"] == 3
            seen += [r["rewardCurrency"] for r in page.body["exchangeRates"]]
            if not page.body["nextPageAvailable"]:
                break
            query = f"?paginate=true&maxResults=3&nextCursor={page.body['nextCursor']}"
        assert sorted(seen) == ["AUD", "CAD", "EUR", "GBP"]
        everything = await call(http, sb, "GET", "/exchangerates")
        assert len(everything.body["exchangeRates"]) == 4 and "nextCursor" not in everything.body
        bad = await call(http, sb, "GET", "/exchangerates?paginate=true&nextCursor=%%%")
        assert bad.status == 400 and key(bad) == "400.002"
        first = await call(http, sb, "GET", "/rewardCountries?maxResults=2")
        assert [c["twoLetterCode"] for c in first.body["items"]] == ["AU", "CA"]
        assert "countryName" not in first.body  # Tango's page only (contract correction 10)
        nxt = await call(
            http, sb, "GET", f"/rewardCountries?maxResults=2&nextCursor={first.body['nextCursor']}"
        )
        assert [c["twoLetterCode"] for c in nxt.body["items"]] == ["DE", "FR"]
        assert nxt.body["prevPageAvailable"] is True
        euro = await call(http, sb, "GET", "/rewardCountries?preferredCurrencies=EUR")
        assert [c["twoLetterCode"] for c in euro.body["items"]] == ["DE", "FR", "IE"]
        assert sb.contract_violations == []
    async with Sandbox() as sb, sb.client() as tango:
        assert len(await tango.catalog.reward_countries(max_results=2)) == 7
        euro_ = await tango.catalog.reward_countries(preferred_currencies="EUR", countries=["DE"])
        assert [c.country_name for c in euro_] == ["Germany"]


@pytest.mark.parametrize(
    ("change", "status", "i18n_key", "text"),
    [
        ({"utid": "U000404"}, 400, "400.050", "U000404 is not in the platform's catalog"),
        ({"utid": "U999001"}, 422, "422.050", "Item U999001 is not active"),
        ({"utid": "U100025", "amount": 20}, 400, "400.051", "amount must be 25 USD for U100025"),
        ({"amount": Decimal("2000.01")}, 400, "400.051", "between 0.01 and 2000 USD"),
        ({"utid": "U400100", "amount": Decimal("10.5")}, 400, "400.051", "a whole amount"),
    ],
)
async def test_strict_catalog_refuses_orders_like_tango(
    change: dict[str, Any], status: int, i18n_key: str, text: str
) -> None:
    async with Sandbox(strict_catalog=True, contract=True, order_rate=None) as sb:
        async with session(sb) as http:
            body = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in change.items()}
            answer = await call(http, sb, "POST", "/orders", json=ORDER | body)
            assert answer.status == status and key(answer) == i18n_key
            assert text in answer.body["errors"][0]["message"]
            ok = await call(
                http, sb, "POST", "/orders", json=ORDER | {"utid": "U100025", "amount": 25}
            )
            assert ok.status == 201
        async with sb.client() as tango:  # the client maps the refusal to its typed error
            request = order_request(**{"utid": change.get("utid", "U561593"),
                                       "amount": change.get("amount", 10)})  # fmt: skip
            with pytest.raises(
                ta.BadRequestError if status == 400 else ta.UnprocessableEntityError
            ):
                await tango.orders.create(request)
        assert len(sb.orders) == 1 and sb.contract_violations == []


async def test_orders_for_any_utid_and_amount_go_through_by_default() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        assert sb.strict_catalog is False
        for change in ({"utid": "U000404"}, {"utid": "U999001"}, {"utid": "U100025", "amount": 3}):
            answer = await call(http, sb, "POST", "/orders", json=ORDER | change)
            assert answer.status == 201
        assert answer.body["rewardName"] == "Target Gift Card $25"


async def test_sandbox_catalog_stays_usable_as_before() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        sb.catalog = {"U123456": CatalogItem("Custom Reward"), **sb.catalog}
        assert sb.catalog["U561593"].reward_name == "Amazon.com Gift Card"
        made = await call(http, sb, "POST", "/orders", json=ORDER | {"utid": "U123456"})
        assert made.body["rewardName"] == "Custom Reward"
        shown = await call(http, sb, "GET", "/catalogs?utid=U123456")
        item = shown.body["brands"][0]["items"][0]
        assert item["rewardName"] == "Custom Reward" and item["valueType"] == "VARIABLE_VALUE"
        sb.strict_catalog = True
        refused = await call(http, sb, "POST", "/orders", json=ORDER | {"utid": "U654321"})
        assert refused.status == 400


def test_strict_catalog_is_checked() -> None:
    with pytest.raises(ta.ValidationError) as err:
        Sandbox(strict_catalog=1)  # type: ignore[arg-type]
    assert err.value.field == "strict_catalog"


def test_the_sandbox_process_takes_strict_catalog() -> None:
    assert sandbox_from_args(build_parser().parse_args(["--strict-catalog"])).strict_catalog
    assert not sandbox_from_args(build_parser().parse_args([])).strict_catalog
