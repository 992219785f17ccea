"""OAuth against the sandbox (issue 15, points 5 and 6): its token endpoint, bearer tokens on
the API, expiry on the sandbox clock, the daily token limit, faults on the token route,
the 401 renewal (an order is never made twice), cancellation, and the contract check
over /oauth/token and the API routes used with Bearer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock

from .conftest import FAST_RETRY, order_request


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, clock=clock, contract=True) as sandbox:
        yield sandbox


def oauth_client(sb: Sandbox, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"retry": FAST_RETRY}
    oauth = kw.pop("oauth", True)
    options.update(kw)
    return sb.client(oauth=oauth, **options)


def order(**kw: Any) -> ta.CreateOrderRequest:
    fields: dict[str, Any] = {
        "customer_identifier": "cust-1",
        "account_identifier": "acct-1",
        "send_email": False,
    }
    fields.update(kw)
    return order_request(**fields)


def issued(sb: Sandbox) -> int:
    return sum(1 for r in sb.token_requests if r.status == 200)


async def test_orders_under_oauth_with_zero_contract_violations(sb: Sandbox) -> None:
    async with oauth_client(sb) as tango:
        created = await tango.orders.create(order())
        fetched = await tango.orders.get(created.reference_order_id)
        listed = [o async for o in tango.orders.list(customer_identifier="cust-1")]
        assert fetched.reference_order_id == created.reference_order_id
        assert [o.reference_order_id for o in listed] == [created.reference_order_id]
        await tango.line_items.reason_codes()
    assert len(sb.token_requests) == 1 and sb.token_requests[0].status == 200
    api = [r for r in sb.requests if r.path.startswith("/raas/v2")]
    assert api and all(str(r.headers["Authorization"]).startswith("Bearer ") for r in api)
    assert sb.contract_violations == []
    assert any(r.path == "/oauth/token" for r in sb.requests)


async def test_the_password_grant(sb: Sandbox) -> None:
    async with oauth_client(sb, oauth={"grant_type": "password"}) as tango:
        await tango.orders.create(order())
    (request,) = sb.token_requests
    assert request.grant_type == "password" and request.status == 200
    assert sb.contract_violations == []


async def test_fifty_concurrent_calls_one_token_request(sb: Sandbox) -> None:
    async with oauth_client(sb) as tango:
        created = await tango.orders.create(order())
        await asyncio.gather(*(tango.orders.get(created.reference_order_id) for _ in range(50)))
    assert issued(sb) == 1 and len(sb.token_requests) == 1


async def test_a_wrong_secret_is_a_401_oauth_error(sb: Sandbox) -> None:
    auth = ta.OAuth("sandbox-oauth-client", "wrong-secret", token_url=sb.oauth_token_url)
    async with oauth_client(sb, auth=auth) as tango:
        with pytest.raises(ta.OAuthError) as e:
            await tango.orders.create(order())
    assert e.value.status_code == 401 and e.value.error == "invalid_client"
    assert "wrong-secret" not in str(e.value)
    assert sb.orders == {} and len(sb.token_requests) == 1  # not retried
    assert sb.contract_violations == []


async def test_a_wrong_password_is_a_400_oauth_error(sb: Sandbox) -> None:
    auth = sb.oauth(grant_type="password", password="not-the-password")
    async with oauth_client(sb, auth=auth) as tango:
        with pytest.raises(ta.OAuthError) as e:
            await tango.orders.get("RA1")
    assert e.value.status_code == 400 and e.value.error == "invalid_grant"
    assert not isinstance(e.value, ta.TokenRateLimitError)
    assert sb.contract_violations == []


async def test_an_undocumented_audience_is_refused(sb: Sandbox) -> None:
    async with oauth_client(sb, oauth={"audience": "https://elsewhere/"}) as tango:
        with pytest.raises(ta.OAuthError) as e:
            await tango.orders.get("RA1")
    assert e.value.status_code == 400
    # the request itself is outside the documented contract (audience enum), the answer is not
    assert [v.direction for v in sb.contract_violations] == ["request"]


async def test_an_expired_token_is_refreshed_once(sb: Sandbox) -> None:
    async with oauth_client(sb) as tango:
        created = await tango.orders.create(order())
        sb.clock.advance(86_400 + 1)  # past the 24-hour token's expiry
        await asyncio.gather(*(tango.orders.get(created.reference_order_id) for _ in range(20)))
        assert issued(sb) == 2  # exactly one new token, for twenty calls
        api = [r for r in sb.requests if r.path.startswith("/raas/v2")]
        assert all(r.status < 400 for r in api)  # renewed before sending: no 401 seen
    assert sb.contract_violations == []


async def test_a_five_minute_token_expires_on_the_sandbox_clock(sb: Sandbox) -> None:
    async with oauth_client(sb, oauth={"audience": "tango-api.bhn.com/fiveminute"}) as tango:
        created = await tango.orders.create(order())
        sb.clock.advance(200)
        await tango.orders.get(created.reference_order_id)
        assert issued(sb) == 1
        sb.clock.advance(80)  # 20 s left: within its 30 s margin
        await tango.orders.get(created.reference_order_id)
        assert issued(sb) == 2


async def test_the_api_refuses_an_expired_token_with_a_bearer_challenge(sb: Sandbox) -> None:
    async with oauth_client(sb) as tango:
        await tango.orders.create(order())
    token_header = str(
        next(r for r in sb.requests if r.path == "/raas/v2/orders").headers["Authorization"]
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(
            sb.base_url + "/orders", headers={"Authorization": token_header}
        ) as r:
            assert r.status == 200
        sb.clock.advance(86_401)
        async with session.get(
            sb.base_url + "/orders", headers={"Authorization": token_header}
        ) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with session.get(sb.base_url + "/orders") as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert sb.contract_violations == []


async def test_a_revoked_token_is_renewed_once_and_the_call_retried(sb: Sandbox) -> None:
    async with oauth_client(sb) as tango:
        created = await tango.orders.create(order())
        assert sb.revoke_tokens() == 1
        again = await tango.orders.get(created.reference_order_id)
        assert again.reference_order_id == created.reference_order_id
    assert issued(sb) == 2
    statuses = [r.status for r in sb.requests if r.path.startswith("/raas/v2/orders/")]
    assert statuses == [401, 200]
    assert sb.contract_violations == []


async def test_an_order_create_is_not_duplicated_by_the_401_retry(sb: Sandbox) -> None:
    async with oauth_client(sb) as tango:
        await tango.line_items.reason_codes()  # a token is cached
        sb.revoke_tokens()
        created = await tango.orders.create(order(external_ref_id="once-only"))
    assert created.external_ref_id == "once-only"
    assert len(sb.orders) == 1  # the sandbox holds one order
    posts = [r.status for r in sb.requests if r.path == "/raas/v2/orders" and r.method == "POST"]
    assert posts == [401, 201]
    assert sb.contract_violations == []


async def test_a_second_401_is_an_authentication_error(sb: Sandbox) -> None:
    sb.inject("GET /orders/*", "401", times=2)
    async with oauth_client(sb) as tango:
        with pytest.raises(ta.AuthenticationError) as e:
            await tango.orders.get("RA1")
    assert not isinstance(e.value, ta.OAuthError)
    assert issued(sb) == 2 and len([r for r in sb.requests if r.path == "/raas/v2/orders/RA1"]) == 2


async def test_the_daily_limit_is_a_token_rate_limit_error_naming_the_remedy() -> None:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, clock=clock, oauth_daily_limit=2, contract=True) as sb:
        for _ in range(2):  # separate OAuth objects, separate caches: a token each
            async with oauth_client(sb) as tango:
                await tango.line_items.reason_codes()
        async with oauth_client(sb) as tango:
            with pytest.raises(ta.TokenRateLimitError) as e:
                await tango.line_items.reason_codes()
        assert e.value.status_code == 400 and "daily rate limit" in str(e.value)
        assert "RedisTokenCache" in str(e.value) and "token cache" in str(e.value)
        assert len(sb.token_requests) == 3  # a 400 is not retried
        clock.advance(86_400)  # the next sandbox day
        async with oauth_client(sb) as tango:
            await tango.line_items.reason_codes()
        assert sb.contract_violations == []


@pytest.mark.parametrize("fault", ["500", "503", "429", "drop-before", "empty-500"])
async def test_a_failing_token_route_is_retried(sb: Sandbox, fault: str) -> None:
    sb.inject("POST /oauth/token", fault, times=2)
    async with oauth_client(sb) as tango:
        await tango.line_items.reason_codes()
    assert len([r for r in sb.requests if r.path == "/oauth/token"]) == 3
    assert issued(sb) == 1 and sb.contract_violations == []


async def test_a_token_route_that_keeps_failing_is_an_oauth_error(sb: Sandbox) -> None:
    sb.inject("POST /oauth/token", "503", times=10)
    async with oauth_client(sb) as tango:
        with pytest.raises(ta.OAuthError) as e:
            await tango.orders.create(order())
    assert e.value.status_code == 503 and e.value.outcome_unknown is False
    assert sb.orders == {}
    assert len([r for r in sb.requests if r.path == "/oauth/token"]) == FAST_RETRY.max_retries + 1


async def test_cancelled_while_the_token_request_is_in_flight_leaves_no_stuck_lock(
    sb: Sandbox,
) -> None:
    sb.inject("POST /oauth/token", "slow", delay=30)
    async with oauth_client(sb) as tango:
        task = asyncio.create_task(tango.line_items.reason_codes())
        waiter = asyncio.create_task(tango.line_items.reason_codes())  # waits for the leader
        for _ in range(2000):
            if any(r.path == "/oauth/token" for r in sb.requests):
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(waiter, 10)  # the waiter took over: the lock was released
        await asyncio.wait_for(tango.line_items.reason_codes(), 10)
    assert issued(sb) == 1


async def test_closing_the_client_during_the_token_request(sb: Sandbox) -> None:
    sb.inject("POST /oauth/token", "slow", delay=30)
    tango = oauth_client(sb)
    task = asyncio.create_task(tango.line_items.reason_codes())
    for _ in range(2000):
        if any(r.path == "/oauth/token" for r in sb.requests):
            break
        await asyncio.sleep(0.005)
    await tango.close()
    with pytest.raises(ta.ClientClosedError):
        await task


async def test_basic_auth_stays_the_default(sb: Sandbox) -> None:
    async with sb.client(retry=FAST_RETRY) as tango:
        await tango.orders.create(order())
    assert sb.token_requests == []
    assert str(sb.requests[0].headers["Authorization"]).startswith("Basic ")


def test_sandbox_oauth_arguments_are_checked() -> None:
    for kwargs, field in (
        ({"oauth_client_id": ""}, "oauth_client_id"),
        ({"oauth_client_secret": ""}, "oauth_client_secret"),
        ({"oauth_username": None}, "oauth_username"),
        ({"oauth_password": "a\nb"}, "oauth_password"),
        ({"oauth_daily_limit": 0}, "oauth_daily_limit"),
        ({"oauth_daily_limit": True}, "oauth_daily_limit"),
    ):
        with pytest.raises(ta.ValidationError) as e:
            Sandbox(**kwargs)
        assert e.value.field == field


async def test_the_token_route_refuses_what_is_not_a_form(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(sb.oauth_token_url, json={"client_id": "x"}) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_request"
        form = {"client_id": sb.oauth_client_id, "client_secret": sb.oauth_client_secret}
        async with session.post(sb.oauth_token_url, data={**form, "grant_type": "implicit"}) as r:
            assert r.status == 400 and (await r.json())["error"] == "unsupported_grant_type"
        async with session.post(
            sb.oauth_token_url,
            data={
                **form,
                "grant_type": "client_credentials",
                "audience": "https://api.tangocard.com/",
                "scope": "x",
            },
        ) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_scope"
    assert [r.status for r in sb.token_requests] == [400, 400, 400]


def test_the_auth_spec_and_its_corrections() -> None:
    from tango_async.testing._contract import AUTH_SPEC_CORRECTIONS, ContractChecker

    checker = ContractChecker()
    form = "application/x-www-form-urlencoded"
    base = {
        "client_id": "c",
        "client_secret": "s",
        "scope": "raas.all",
        "audience": "https://api.tangocard.com/",
    }
    ok = checker.check_request(
        "POST", "/oauth/token", {**base, "grant_type": "client_credentials"}, content_type=form
    )
    assert ok == []  # A1
    missing = checker.check_request(
        "POST", "/oauth/token", {**base, "grant_type": "password"}, content_type=form
    )
    assert {v.message for v in missing} == {
        "$: 'username' is a required property",
        "$: 'password' is a required property",
    }
    assert checker.check_request("POST", "/oauth/token", base, content_type="application/json")
    assert checker.check_response("POST", "/oauth/token", 400, "", "text/plain") == []
    assert checker.check_response("POST", "/oauth/token", 401, {"error": "invalid_client"}) == []
    assert checker.check_response("POST", "/oauth/token", 400, {"nope": 1})  # A2: error required
    good = {"access_token": "t", "token_type": "Bearer", "expires_in": "300", "scope": "raas.all"}
    assert checker.check_response("POST", "/oauth/token", 200, good) == []
    assert checker.check_response("POST", "/oauth/token", 200, {"token_type": "Bearer"})  # A3
    assert checker.check_response("POST", "https://auth.example/oauth/token", 200, good) == []
    # the RaaS routes still go to the RaaS spec
    assert checker.check_response("GET", "/raas/v2/oauth/token", 200, {}) != []
    assert "A1." in AUTH_SPEC_CORRECTIONS and "A3." in AUTH_SPEC_CORRECTIONS
