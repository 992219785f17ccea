"""The local sandbox, tested on its own with plain aiohttp (no tango_async client)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tango_async.testing import Sandbox, SandboxClock

from .processes import started_sandbox

ORDER = {
    "customerIdentifier": "customer-1",
    "accountIdentifier": "account-1",
    "utid": "U561593",
    "amount": 10.50,
    "deliveryMethod": "EMAIL",
    "recipient": {"email": "rita@example.com", "firstName": "Rita"},
}
START = datetime(2024, 1, 1, tzinfo=UTC)


class Answer(NamedTuple):
    status: int
    body: Any  # parsed with floats as Decimal; None when empty
    headers: CIMultiDictProxy[str]
    raw: bytes


def session(fake: Sandbox, key: str | None = None) -> aiohttp.ClientSession:
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
    async with Sandbox(order_rate=None) as fake, session(fake, key="wrong") as http:
        answer = await call(http, "GET", fake.base_url + "/orders")
        assert answer.status == 401 and error_key(answer) == "401.001"
        assert answer.body["path"] == "/raas/v2/orders"
        assert fake.requests[0].status == 401


@pytest.mark.asyncio
async def test_create_then_same_external_ref_id_returns_existing_order() -> None:
    async with Sandbox(order_rate=None) as fake, session(fake) as http:
        url = fake.base_url + "/orders"
        raw = (
            b'{"customerIdentifier": "customer-1", "accountIdentifier": "account-1", '
            b'"utid": "U561593", "amount": 10.50, "externalRefID": "ref-1", '
            b'"recipient": {"email": "rita@example.com", "firstName": "Rita"}}'
        )
        headers = {"Content-Type": "application/json"}
        created = await call(http, "POST", url, data=raw, headers=headers)
        assert created.status == 201
        order = created.body
        assert b'"value":10.50' in created.raw  # the exact decimal text is kept
        assert order["amountCharged"]["total"] == Decimal("10.50")
        assert order["reward"]["credentialList"][0]["credentialType"] == "cardNumber"
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
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=1.0, clock=clock) as fake, session(fake) as http:
        url = fake.base_url + "/orders"
        assert (await call(http, "POST", url, json=ORDER)).status == 201
        clock.advance(0.999)
        refused = await call(http, "POST", url, json=ORDER)
        assert refused.status == 429 and error_key(refused) == "429.001"
        assert refused.headers["Retry-After"] == "1"
        clock.advance(0.002)  # 1.001 s after the last accepted arrival: the 429 did not count
        assert (await call(http, "POST", url, json=ORDER)).status == 201
        t0 = fake.arrivals("POST", "/orders")[0]
        assert [round(t - t0, 3) for t in fake.arrivals("POST", "/orders")] == [0, 0.999, 1.001]
        assert [r.status for r in fake.requests] == [201, 429, 201]


@pytest.mark.asyncio
async def test_list_pagination_filters_and_window() -> None:
    async with (
        Sandbox(order_rate=None, max_window=20, max_range_days=100) as fake,
        session(fake) as http,
    ):
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
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, clock=clock) as fake, session(fake) as http:
        sent = fake.seed_orders(1, start=START, step=timedelta())[0]
        silent = fake.seed_orders(
            1, start=START, step=timedelta(), delivery_method="NONE", send_email=False
        )[0]
        url = f"{fake.base_url}/orders/{sent}/resends"
        first = await call(http, "POST", url, json={"newEmail": "new@example.com"})
        assert first.status == 201 and first.body["email"] == "new@example.com"
        clock.advance(29.9)
        early = await call(http, "POST", url, json={})
        assert early.status == 403 and error_key(early) == "403.005"
        assert early.body["errors"][0]["message"] == "Cannot send more than once every 30 seconds"
        line_item = fake.orders[sent]["referenceLineItemID"]
        li_url = f"{fake.base_url}/lineItems/{line_item}/resends"
        early = await call(http, "POST", li_url, json={"reasonCode": "NOT_RECEIVED"})
        assert early.status == 403 and error_key(early) == "403.005"  # one cooldown per order
        clock.advance(0.1)
        body = {"reasonCode": "OTHER", "otherReason": "lost", "newMobileNumber": "+15555550100"}
        later = await call(http, "POST", li_url, json=body)
        assert later.status == 201
        assert later.body["reasonCode"] == "OTHER" and later.body["mobileNumber"] == "+15555550100"
        never = await call(http, "POST", f"{fake.base_url}/orders/{silent}/resends")
        assert never.status == 403 and error_key(never) == "403.003"


@pytest.mark.asyncio
async def test_drop_after_commit_commits_the_order() -> None:
    async with Sandbox(order_rate=None) as fake, session(fake) as http:
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
    async with Sandbox(order_rate=None) as fake, session(fake) as http:
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


# --- accounts, statuses, rewards ----------------------------------------------------------


async def test_balance_and_frozen_account() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        url = sb.base_url + "/orders"
        sb.set_balance("account-1", "15.00")
        assert (await call(http, "POST", url, json=ORDER)).status == 201
        assert sb.balance("account-1") == Decimal("4.50")
        short = await call(http, "POST", url, json=ORDER)
        assert short.status == 402 and error_key(short) == "402.001"
        sb.freeze("account-1")
        frozen = await call(http, "POST", url, json=ORDER)
        assert frozen.status == 422
        assert frozen.body["errors"] == [
            {
                "code": 422001,
                "i18nKey": "404.142",
                "message": "Account has been frozen, please contact your Tango CSM or email "
                "cs@tangocard.com",
            }
        ]
        other = await call(http, "POST", url, json=ORDER | {"accountIdentifier": "account-2"})
        assert other.status == 201  # other accounts are funded by default


async def test_pending_then_complete_or_failed_on_the_sandbox_clock() -> None:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, clock=clock, pending_for=3600) as sb, session(sb) as http:
        url = sb.base_url + "/orders"
        ok = (await call(http, "POST", url, json=ORDER)).body
        sb.fail_next()
        bad = (await call(http, "POST", url, json=ORDER)).body
        assert ok["status"] == bad["status"] == "PENDING"
        pending = await call(http, "GET", url, params={"status": "PENDING"})
        assert pending.body["page"]["totalCount"] == 2
        clock.advance(3600)
        assert (await call(http, "GET", f"{url}/{ok['referenceOrderID']}")).body[
            "status"
        ] == "COMPLETE"
        assert (await call(http, "GET", f"{url}/{bad['referenceOrderID']}")).body[
            "status"
        ] == "FAILED"
        failed = await call(http, "GET", url, params={"status": "FAILED"})
        assert [o["referenceOrderID"] for o in failed.body["orders"]] == [bad["referenceOrderID"]]


async def test_promo_link_credentials_carry_the_expiration_date() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        body = ORDER | {
            "utid": "U666425",
            "deliveryMethod": "NONE",
            "sendEmail": False,
            "expirationDate": "2027-12-31T06:59:59Z",
        }
        order = (await call(http, "POST", sb.base_url + "/orders", json=body)).body
        creds = {c["credentialType"]: c for c in order["reward"]["credentialList"]}
        assert creds["expirationDate"]["value"] == "2027-12-31T06:59:59Z"
        assert creds["expirationDate"]["type"] == "date"
        assert creds["redemptionUrl"]["type"] == "url"
        assert order["rewardName"] == "Promo Link"
        gift = (await call(http, "POST", sb.base_url + "/orders", json=ORDER)).body
        assert {c["credentialType"] for c in gift["reward"]["credentialList"]} == {
            "cardNumber",
            "cardPin",
        }


ANN = {"firstName": "Ann", "lastName": "Lee"}
US_ADDRESS = {
    "streetLine1": "1 Main St",
    "city": "Springfield",
    "stateOrProvince": "IL",
    "postalCode": "62701",
    "country": "US",
}


@pytest.mark.parametrize(
    ("change", "status", "paths"),
    [
        ({"recipient": {"firstName": "Ann"}}, 400, {"recipient.email"}),
        (
            {"deliveryMethod": "PHONE", "recipient": ANN | {"mobileNumber": "+442071234567"}},
            400,
            {"recipient.mobileNumber"},
        ),
        (
            {"deliveryMethod": "PHONE", "recipient": ANN | {"mobileNumber": "+14155550100"}},
            201,
            set(),
        ),
        ({"deliveryMethod": "ADDRESS", "recipient": ANN}, 400, {"recipient.address"}),
        # no deliveryMethod and an address: ADDRESS, as the API infers it
        (
            {
                "deliveryMethod": None,
                "recipient": ANN | {"address": US_ADDRESS | {"postalCode": "1234"}},
            },
            400,
            {"recipient.address.postalCode"},
        ),
        (
            {
                "deliveryMethod": None,
                "recipient": {"firstName": "A" * 26, "lastName": "Lee", "address": US_ADDRESS},
            },
            400,
            {"recipient.firstName"},
        ),
        ({"deliveryMethod": None, "recipient": ANN | {"address": US_ADDRESS}}, 201, set()),
        ({"deliveryMethod": "EMBEDDED", "recipient": None}, 201, set()),
        ({"deliveryMethod": "NONE", "recipient": None}, 201, set()),
        ({"deliveryMethod": "CARRIER_PIGEON"}, 400, {"deliveryMethod"}),
        (
            {"recipient": {"email": "ann@example.com", "firstName": "<Ann>"}},
            400,
            {"recipient.firstName"},
        ),
        ({"message": "x" * 3001, "campaign": "c" * 1025}, 400, {"message", "campaign"}),
    ],
)
async def test_delivery_method_rules(change: dict[str, Any], status: int, paths: set[str]) -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        answer = await call(http, "POST", sb.base_url + "/orders", json=ORDER | change)
    assert answer.status == status
    if paths:
        assert {e["path"] for e in answer.body["errors"]} == paths
        assert all(e["i18nKey"] and e["message"] for e in answer.body["errors"])


async def test_chaos_is_reproducible_with_a_seed() -> None:
    async def run(seed: int) -> list[tuple[int, str | None]]:
        async with Sandbox(order_rate=None) as sb, session(sb) as http:
            sb.chaos(0.5, seed=seed, faults=("500", "503", "429"), routes=("GET /orders/*",))
            for _ in range(30):
                await call(http, "GET", sb.base_url + "/orders/RA1")
            return [(r.status, r.fault) for r in sb.requests]

    first, again = await run(7), await run(7)
    assert first == again
    faulted = [f for _, f in first if f]
    assert 5 < len(faulted) < 25 and set(faulted) <= {"500", "503", "429"}
    assert all(s == 404 for s, f in first if f is None)


async def test_unknown_fault_and_bad_route_are_refused() -> None:
    sb = Sandbox()
    with pytest.raises(ValueError, match="unknown fault"):
        sb.inject("POST /orders", "meteor-strike")
    with pytest.raises(ValueError, match="route"):
        sb.inject("/orders", "500")
    with pytest.raises(ValueError, match="delay"):
        sb.inject("GET /orders", "slow")


async def test_seeding_is_fast_and_history_is_indexed() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        ids = sb.seed_orders(20_000, start=START, step=timedelta(seconds=10), utid="U157189")
        assert len(set(ids)) == 20_000
        answer = await call(
            http,
            "GET",
            sb.base_url + "/orders",
            params={
                "startDate": "2024-01-01T00:00:00Z",
                "endDate": "2024-01-01T00:16:39.999Z",
                "elementsPerBlock": 100,
                "utid": "U157189",
            },
        )
        assert answer.body["page"]["totalCount"] == 100
        assert answer.body["orders"][0]["rewardName"].startswith("Visa")


# --- the process and the pytest plugin --------------------------------------------------------


async def test_python_m_serves_a_client_in_another_process() -> None:

    import tango_async as ta

    proc, lines, env = await started_sandbox(
        "--port",
        "0",
        "--order-rate",
        "5",
        "--platform-name",
        "proc-platform",
        "--platform-key",
        "proc-key",
    )
    try:
        assert lines[0].startswith("Tango sandbox serving at http://127.0.0.1:")
        assert env["TANGO_PLATFORM_NAME"] == "proc-platform"
        assert env["TANGO_PLATFORM_KEY"] == "proc-key"
        async with ta.TangoClient(
            env["TANGO_PLATFORM_NAME"],
            env["TANGO_PLATFORM_KEY"],
            base_url=env["TANGO_BASE_URL"],
            order_rate=5,
        ) as tango:
            order = await tango.orders.create(
                ta.CreateOrderRequest(
                    "customer-1",
                    "account-1",
                    "U561593",
                    Decimal("5.00"),
                    recipient=ta.Recipient(email="ann@example.com", first_name="Ann"),
                )
            )
            assert (await tango.orders.get(order.reference_order_id)).created_at is not None
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


def test_pytest_plugin_fixtures_in_a_users_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import tango_async as ta

        @pytest.mark.asyncio
        async def test_my_service_thanks_a_customer(tango_client, tango_sandbox):
            order = await tango_client.orders.create(ta.CreateOrderRequest(
                "customer-1", "account-1", "U561593", 25,
                recipient=ta.Recipient(email="ann@example.com", first_name="Ann")))
            assert order.created
            assert len(tango_sandbox.orders) == 1

        @pytest.fixture
        def tango_sandbox_options():
            return {"order_rate": None, "resend_cooldown": 0.1}

        @pytest.mark.asyncio
        async def test_options_apply(tango_sandbox):
            assert tango_sandbox.order_rate is None and tango_sandbox.resend_cooldown == 0.1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.asyncio
async def test_error_bodies_are_stamped_by_the_sandbox_clock() -> None:
    # a frozen clock years from now: a body stamped with real time would not show it
    clock = SandboxClock(frozen=True, start=datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))
    stamp = "2031-05-06T07:08:09.000Z"
    async with Sandbox(order_rate=None, clock=clock) as fake, session(fake) as http:
        url = f"{fake.base_url}/orders/RA-nope"
        assert (await call(http, "GET", url)).body["timestamp"] == stamp  # a route's 404
        async with session(fake, key="wrong") as stranger:
            assert (await call(stranger, "GET", url)).body["timestamp"] == stamp  # 401
        fake.inject("GET /orders/*", "500")
        fake.inject("GET /orders/*", "legacy-error-body", status=409)
        fake.inject("POST /orders", "500-after-commit")
        assert (await call(http, "GET", url)).body["timestamp"] == stamp
        assert (await call(http, "GET", url)).body["timestamp"] == stamp
        clock.advance(61.5)
        after = await call(http, "POST", f"{fake.base_url}/orders", json=ORDER)
        assert after.status == 500 and after.body["timestamp"] == "2031-05-06T07:09:10.500Z"
        assert fake.error_body("/x", 404, "404.001", "gone")["timestamp"] == after.body["timestamp"]
