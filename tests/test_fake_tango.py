"""Self-tests of the fake Tango server (tests/fake_tango.py), with plain aiohttp."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import aiohttp
import pytest
from multidict import CIMultiDictProxy

try:
    from tests.fake_tango import FakeTango
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from fake_tango import FakeTango  # type: ignore[no-redef,import-not-found]

ORDER = {
    "customerIdentifier": "customer-1",
    "accountIdentifier": "account-1",
    "utid": "U561593",
    "amount": 10.50,
    "deliveryMethod": "EMAIL",
    "recipient": {"email": "rita@example.com", "firstName": "Rita"},
}
START = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Answer(NamedTuple):
    status: int
    body: Any  # parsed with floats as Decimal; None when empty
    headers: CIMultiDictProxy[str]
    raw: bytes


def session(fake: FakeTango, key: str | None = None) -> aiohttp.ClientSession:
    auth = aiohttp.encode_basic_auth(fake.platform_name, key or fake.platform_key)
    return aiohttp.ClientSession(headers={"Authorization": auth})


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Answer:
    async with http.request(method, url, allow_redirects=False, **kwargs) as resp:
        raw = await resp.read()
        try:
            body = json.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            body = None
        return Answer(resp.status, body, resp.headers, raw)


def error_key(answer: Answer) -> str:
    assert {"timestamp", "requestId", "path", "httpCode", "httpPhrase"} <= answer.body.keys()
    assert answer.body["httpCode"] == answer.status
    return str(answer.body["errors"][0]["i18nKey"])


@pytest.mark.asyncio
async def test_auth_is_required() -> None:
    async with FakeTango() as fake, session(fake, key="wrong") as http:
        answer = await call(http, "GET", fake.base_url + "/orders")
        assert answer.status == 401 and error_key(answer) == "401.001"
        assert answer.body["path"] == "/raas/v2/orders"
        assert fake.requests[0].status == 401


@pytest.mark.asyncio
async def test_create_then_same_external_ref_id_returns_existing_order() -> None:
    async with FakeTango() as fake, session(fake) as http:
        url = fake.base_url + "/orders"
        raw = (
            b'{"customerIdentifier": "customer-1", "accountIdentifier": "account-1", '
            b'"utid": "U561593", "amount": 10.50, "externalRefID": "ref-1"}'
        )
        headers = {"Content-Type": "application/json"}
        created = await call(http, "POST", url, data=raw, headers=headers)
        assert created.status == 201
        order = created.body
        assert b'"value":10.50' in created.raw  # the exact decimal text is kept
        assert order["amountCharged"]["total"] == Decimal("10.50")
        assert order["reward"]["credentialList"][0]["credentialType"] == "cardNumber"
        assert order["someFutureField"] == {"x": 1}
        again = await call(http, "POST", url, data=raw, headers=headers)
        assert again.status == 200 and again.body == order
        assert list(fake.orders) == [order["referenceOrderID"]]
        got = await call(http, "GET", f"{url}/{order['referenceOrderID']}")
        assert got.status == 200 and got.body == order
        missing = await call(http, "GET", url + "/RA000000-00000-00")
        assert missing.status == 404 and error_key(missing) == "404.002"
        bad = await call(http, "POST", url, json=ORDER | {"utid": "X1", "amount": -1})
        assert bad.status == 400
        assert {e["path"] for e in bad.body["errors"]} == {"utid", "amount"}


@pytest.mark.asyncio
async def test_order_rate_is_checked_at_arrival() -> None:
    clock = FakeClock()
    async with FakeTango(order_rate=1.0, clock=clock) as fake, session(fake) as http:
        url = fake.base_url + "/orders"
        assert (await call(http, "POST", url, json=ORDER)).status == 201
        clock.now += 0.999
        refused = await call(http, "POST", url, json=ORDER)
        assert refused.status == 429 and error_key(refused) == "429.001"
        assert refused.headers["Retry-After"] == "1"
        clock.now += 0.002  # 1.001 s after the last accepted arrival: the 429 did not count
        assert (await call(http, "POST", url, json=ORDER)).status == 201
        assert fake.arrivals("POST", "/orders") == [1000.0, 1000.999, 1001.001]
        assert [r.status for r in fake.requests] == [201, 429, 201]


@pytest.mark.asyncio
async def test_list_pagination_filters_and_window() -> None:
    async with FakeTango(max_window=20, max_range_days=100) as fake, session(fake) as http:
        url = fake.base_url + "/orders"
        ids = fake.seed_orders(25, start=START, step=timedelta(hours=1), customer_identifier="c-42")
        seen: list[str] = []
        for page in (0, 1):
            answer = await call(http, "GET", url, params={"page": page})
            assert answer.body["page"] == {
                "number": page,
                "elementsPerBlock": 10,
                "resultCount": 10,
                "totalCount": 25,
            }
            assert all("reward" not in o for o in answer.body["orders"])
            seen += [o["referenceOrderID"] for o in answer.body["orders"]]
        assert seen == ids[::-1][:20]  # createdAt descending
        too_far = await call(http, "GET", url, params={"page": 2})
        assert too_far.status == 400 and error_key(too_far) == "400.021"
        too_big = await call(http, "GET", url, params={"elementsPerBlock": 101})
        assert too_big.status == 422 and error_key(too_big) == "422.042"
        params = {
            "startDate": "2024-01-01T01:00:00Z",
            "endDate": "2024-01-01T03:00:00.000+00:00",
            "customerIdentifier": "c-42",
        }
        window = await call(http, "GET", url, params=params)
        assert [o["referenceOrderID"] for o in window.body["orders"]] == ids[3:0:-1]  # inclusive
        long = await call(
            http, "GET", url, params={"startDate": "2024-01-01", "endDate": "2024-06-01"}
        )
        assert long.status == 422 and error_key(long) == "422.043"
        fake.inject("GET /orders", "repeat-page", times=2)
        pages = [(await call(http, "GET", url, params={"page": 1})).body for _ in range(3)]
        assert [p["orders"][0]["referenceOrderID"] for p in pages] == [ids[24], ids[24], ids[14]]


@pytest.mark.asyncio
async def test_resend_cooldown_and_undelivered_orders() -> None:
    clock = FakeClock()
    async with FakeTango(clock=clock) as fake, session(fake) as http:
        sent = fake.seed_orders(1, start=START, step=timedelta())[0]
        silent = fake.seed_orders(
            1, start=START, step=timedelta(), delivery_method="NONE", send_email=False
        )[0]
        url = f"{fake.base_url}/orders/{sent}/resends"
        first = await call(http, "POST", url, json={"newEmail": "new@example.com"})
        assert first.status == 201 and first.body["email"] == "new@example.com"
        clock.now += 29.9
        early = await call(http, "POST", url, json={})
        assert early.status == 403 and error_key(early) == "403.005"
        assert early.body["errors"][0]["message"] == "Cannot send more than once every 30 seconds"
        line_item = fake.orders[sent]["referenceLineItemID"]
        li_url = f"{fake.base_url}/lineItems/{line_item}/resends"
        early = await call(http, "POST", li_url, json={"reasonCode": "NOT_RECEIVED"})
        assert early.status == 403 and error_key(early) == "403.005"  # one cooldown per order
        clock.now += 0.1
        body = {"reasonCode": "OTHER", "otherReason": "lost", "newMobileNumber": "+15555550100"}
        later = await call(http, "POST", li_url, json=body)
        assert later.status == 201
        assert later.body["reasonCode"] == "OTHER" and later.body["mobileNumber"] == "+15555550100"
        never = await call(http, "POST", f"{fake.base_url}/orders/{silent}/resends")
        assert never.status == 403 and error_key(never) == "403.003"


@pytest.mark.asyncio
async def test_drop_after_commit_commits_the_order() -> None:
    async with FakeTango() as fake, session(fake) as http:
        fake.inject("POST /orders", "drop-after-commit")
        body = ORDER | {"externalRefID": "ref-drop"}
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await call(http, "POST", fake.base_url + "/orders", json=body)
        assert [o["externalRefID"] for o in fake.orders.values()] == ["ref-drop"]
        assert fake.requests[-1].status == 0
        retry = await call(http, "POST", fake.base_url + "/orders", json=body)
        assert retry.status == 200 and retry.body["externalRefID"] == "ref-drop"


@pytest.mark.asyncio
async def test_other_faults() -> None:
    async with FakeTango() as fake, session(fake) as http:
        url = fake.base_url + "/orders"
        fake.inject("GET /orders/*", "502-html")
        fake.inject("GET /orders/*", "truncated-500")
        fake.inject("GET /orders/*", "redirect", location="https://elsewhere.example/")
        fake.inject("POST /orders", "legacy-error-body", status=422, i18nKey="404.142")
        fake.inject("POST /orders", "429", retry_after=3)
        fake.inject("POST /orders", "drop-before")
        fake.inject("POST /orders", "500-after-commit")
        html = await call(http, "GET", url + "/RA1")
        assert html.status == 502 and html.headers["Content-Type"].startswith("text/html")
        truncated = await call(http, "GET", url + "/RA1")
        assert truncated.status == 500 and truncated.raw and truncated.body is None
        moved = await call(http, "GET", url + "/RA1")
        assert moved.status == 302 and moved.headers["Location"] == "https://elsewhere.example/"
        legacy = await call(http, "POST", url, json=ORDER)
        assert legacy.status == 422 and legacy.body["i18nKey"] == "404.142"
        assert "errors" not in legacy.body
        limited = await call(http, "POST", url, json=ORDER)
        assert limited.status == 429 and limited.headers["Retry-After"] == "3"
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await call(http, "POST", url, json=ORDER)
        assert not fake.orders
        failed = await call(http, "POST", url, json=ORDER)
        assert failed.status == 500 and error_key(failed) == "500.001" and len(fake.orders) == 1

        fake.inject("POST /orders", "slow", delay=0.3, hold=True)
        body = ORDER | {"externalRefID": "ref-slow"}
        with pytest.raises(TimeoutError):
            await call(http, "POST", url, json=body, timeout=aiohttp.ClientTimeout(total=0.1))
        conflict = await call(http, "POST", url, json=body)
        assert conflict.status == 409 and error_key(conflict) == "409.002"
        await asyncio.sleep(0.4)  # the slow request still commits the order
        done = await call(http, "POST", url, json=body)
        assert done.status == 200 and done.body["externalRefID"] == "ref-slow"
        assert [r.status for r in fake.requests[-3:]] == [201, 409, 200]
        assert fake.requests[-3].fault == "slow"
