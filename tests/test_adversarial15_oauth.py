"""Adversarial review of the OAuth work (issue 15): regressions for the defects found, and
the money-safety paths checked sound (a 401 renewal after a maybe-delivered attempt)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from click.testing import CliRunner, Result

import tango_async as ta
from tango_async._oauth import check_token_url
from tango_async.cli._app import cli

from .conftest import BASE, FAST_RETRY, order_request
from .reconcile_support import ThreadedSandbox
from .test_oauth import (
    ORDER,
    ORDER_URL,
    SECRET,
    TOKEN_URL,
    ManualClock,
    api_calls,
    client,
    oauth,
    tango_401,
    token_answer,
    token_calls,
)

ORDERS = f"{BASE}/orders"
CREATED = {k: v for k, v in ORDER.items() if k != "externalRefID"}


async def settle() -> None:
    """Let every ready task run (loop turns, no real time)."""
    for _ in range(50):
        await asyncio.sleep(0)


def gated(release: asyncio.Event, answer: CallbackResult) -> Any:
    """An aioresponses callback that answers ``answer`` once ``release`` is set."""

    async def callback(url: Any, **kwargs: Any) -> CallbackResult:
        await release.wait()
        return answer

    return callback


# --- single flight shares a failure --------------------------------------------------------


async def test_callers_waiting_on_a_failed_renewal_share_its_error() -> None:
    # Before: each waiter took the lock in turn and asked again, with its retries: 10
    # calls against a down endpoint made 40 token requests, serially (minutes of timeouts).
    release = asyncio.Event()
    with aioresponses() as m:
        m.post(TOKEN_URL, callback=gated(release, CallbackResult(status=503)), repeat=True)
        async with client() as tango:
            calls = [asyncio.create_task(tango.orders.get("RA230101-1234-56")) for _ in range(10)]
            await settle()
            release.set()
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, ta.OAuthError) for r in results), results
        assert len(token_calls(m)) == FAST_RETRY.max_retries + 1  # one renewal, its retries
        assert len({id(r) for r in results}) == 10  # one exception object per caller
        assert all(r.status_code == 503 for r in results if isinstance(r, ta.OAuthError))
        assert api_calls(m) == []


async def test_callers_waiting_on_a_rate_limited_renewal_make_no_more_requests() -> None:
    release = asyncio.Event()
    refusal = CallbackResult(
        status=400,
        payload={"error": "invalid_request", "error_description": "exceeded the daily rate limit"},
    )
    with aioresponses() as m:
        m.post(TOKEN_URL, callback=gated(release, refusal), repeat=True)
        async with client() as tango:
            calls = [asyncio.create_task(tango.orders.get("RA230101-1234-56")) for _ in range(10)]
            await settle()
            release.set()
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, ta.TokenRateLimitError) for r in results), results
        assert len(token_calls(m)) == 1


async def test_waiters_of_a_failed_renewal_keep_the_unexpired_token() -> None:
    clock = ManualClock()
    release = asyncio.Event()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-1", expires_in=3600))
        m.post(TOKEN_URL, callback=gated(release, CallbackResult(status=401)), repeat=True)
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        async with client(clock=clock) as tango:
            await tango.orders.get("RA230101-1234-56")
            clock.now_s += 3600 - 100  # within the renewal margin (360 s), not expired
            calls = [asyncio.create_task(tango.orders.get("RA230101-1234-56")) for _ in range(8)]
            await settle()
            release.set()
            results = await asyncio.gather(*calls)
        assert len(results) == 8
        assert len(token_calls(m)) == 2  # the first token, one failed renewal
        assert len(api_calls(m)) == 9
        assert all(c.kwargs["headers"]["Authorization"] == "Bearer tok-1" for c in api_calls(m))


async def test_a_caller_after_a_failure_asks_again() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, status=401, payload={"error": "invalid_client"})
        m.post(TOKEN_URL, payload=token_answer())
        m.get(ORDER_URL, payload=ORDER)
        async with client() as tango:
            with pytest.raises(ta.OAuthError):
                await tango.orders.get("RA230101-1234-56")
            await tango.orders.get("RA230101-1234-56")  # not stuck on the old failure
        assert len(token_calls(m)) == 2


# --- the memory cache's lock ------------------------------------------------------------------


def test_a_memory_lock_left_in_a_closed_event_loop_blocks_no_one() -> None:
    # Before: MemoryTokenCache ignored lock()'s ttl: a holder that never released the lock
    # (its loop stopped under it) made every later caller of that OAuth wait for ever.
    auth = oauth()
    key = auth.cache_key(TOKEN_URL)

    async def dead_holder() -> None:
        assert await auth.token_cache.lock(key, 600.0) is not None

    async def later() -> ta.Order:
        async with client(auth) as tango:
            return await asyncio.wait_for(tango.orders.get("RA230101-1234-56"), 5)

    asyncio.run(dead_holder())
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer())
        m.get(ORDER_URL, payload=ORDER)
        assert asyncio.run(later()).reference_order_id == "RA230101-1234-56"
        assert len(token_calls(m)) == 1


async def test_a_memory_lock_past_its_ttl_is_free() -> None:
    cache = ta.MemoryTokenCache()
    first = await cache.lock("k", 0.0)
    assert first is not None
    second = await cache.lock("k", 60.0)
    assert second is not None and second is not first
    assert await cache.lock("k", 60.0) is None  # held, within its ttl
    await cache.unlock("k", first)  # the expired holder's handle frees nothing
    assert await cache.lock("k", 60.0) is None
    await cache.unlock("k", second)
    assert await cache.lock("k", 60.0) is not None


def test_a_memory_cache_waits_in_a_second_event_loop() -> None:
    # Before: a waiter whose wait timed out left an Event bound to its loop; the next
    # loop's waiter got RuntimeError ("bound to a different event loop").
    cache = ta.MemoryTokenCache()
    asyncio.run(cache.wait("k", 0.001))
    asyncio.run(cache.wait("k", 0.001))


# --- URLs whose host yarl would change --------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://auth.tangocard.com\r\n.evil.com/oauth/token",  # yarl: auth.tangocard.com.evil.com
        "https://auth.tangocard.com\t.evil.com/oauth/token",
        "https://auth.example.com/oauth/token\x00",
        "https://auth example.com/oauth/token",
        "https://auth.example.com/oauth/\x85token",
    ],
)
def test_a_token_url_with_whitespace_or_controls_is_refused(url: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.OAuth("c", SECRET, token_url=url)
    assert e.value.field == "token_url"
    with pytest.raises(ta.ValidationError):
        check_token_url(url)


def test_a_token_url_keeps_working_with_a_line_end_around_it() -> None:
    assert ta.OAuth("c", SECRET, token_url=TOKEN_URL + "\r\n").token_url == TOKEN_URL


@pytest.mark.parametrize(
    "url",
    [
        "https://api.tangocard.com\n.evil.com/raas/v2",
        "https://api.tangocard.com\t.evil.com/raas/v2",
        "https://api.example.com/raas/v2\x00",
    ],
)
def test_a_base_url_with_whitespace_or_controls_is_refused(url: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient("name", "key", base_url=url)
    assert e.value.field == "base_url"


def test_a_base_url_keeps_working_with_a_line_end_around_it() -> None:
    tango = ta.TangoClient("name", "key", base_url=BASE + "\n")
    assert tango.base_url == BASE


# --- money safety: the 401 renewal after a maybe-delivered attempt (checked sound) -----------


async def test_a_401_after_a_timeout_then_a_second_401_leaves_the_outcome_unknown() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-a"))
        m.post(TOKEN_URL, payload=token_answer("tok-b"))
        m.post(ORDERS, exception=TimeoutError())
        m.post(ORDERS, status=401, payload=tango_401())
        m.post(ORDERS, status=401, payload=tango_401())
        async with client() as tango:
            with pytest.raises(ta.AuthenticationError) as e:
                await tango.orders.create(order_request(external_ref_id="ref-t401"))
            assert [u.external_ref_id for u in await tango.orders.unresolved()] == ["ref-t401"]
        assert e.value.outcome_unknown is True and e.value.external_ref_id == "ref-t401"
        posts = api_calls(m, "POST", ORDERS)
        assert len(posts) == 3
        assert {json.loads(c.kwargs["data"])["externalRefID"] for c in posts} == {"ref-t401"}


async def test_a_5xx_then_a_401_then_201_is_one_order_under_one_external_ref_id() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-a"))
        m.post(TOKEN_URL, payload=token_answer("tok-b"))
        m.post(ORDERS, status=500, payload={"message": "boom"})
        m.post(ORDERS, status=401, payload=tango_401())
        m.post(ORDERS, status=201, payload=CREATED)
        async with client() as tango:
            order = await tango.orders.create(order_request(external_ref_id="ref-5401"))
        assert order.reference_order_id == "RA230101-1234-56"
        posts = api_calls(m, "POST", ORDERS)
        assert len(posts) == 3
        assert {json.loads(c.kwargs["data"])["externalRefID"] for c in posts} == {"ref-5401"}
        assert posts[-1].kwargs["headers"]["Authorization"] == "Bearer tok-b"


# --- the CLI ----------------------------------------------------------------------------------

CLI_ENV = (
    "TANGO_PLATFORM_NAME",
    "TANGO_PLATFORM_KEY",
    "TANGO_BASE_URL",
    "TANGO_OAUTH_CLIENT_ID",
    "TANGO_OAUTH_CLIENT_SECRET",
    "TANGO_OAUTH_USERNAME",
    "TANGO_OAUTH_PASSWORD",
    "TANGO_OAUTH_GRANT_TYPE",
    "TANGO_OAUTH_AUDIENCE",
    "TANGO_OAUTH_TOKEN_URL",
)


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedSandbox]:
    for name in CLI_ENV:
        monkeypatch.delenv(name, raising=False)
    with ThreadedSandbox(oauth_client_secret=SECRET) as sb:
        yield sb


def invoke(args: list[str], env: dict[str, str]) -> Result:
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and SECRET not in result.output + result.stderr
    return result


def test_cli_ignores_an_env_platform_key_under_oauth(remote: ThreadedSandbox) -> None:
    # Before: TANGO_PLATFORM_KEY in the environment made every --oauth-* run exit 2
    # ("ambiguous"), where TangoClient(auth=...) ignores that variable.
    sb = remote.sandbox
    env = {
        "TANGO_PLATFORM_NAME": "p",
        "TANGO_PLATFORM_KEY": "k",
        "TANGO_OAUTH_CLIENT_SECRET": SECRET,
    }
    res = invoke(
        ["--base-url", sb.base_url, "--oauth-token-url", sb.oauth_token_url,
         "--oauth-client-id", sb.oauth_client_id, "orders", "list"],
        env,
    )  # fmt: skip
    assert res.exit_code == 0, res.output + res.stderr
    assert [r.status for r in sb.token_requests] == [200]


def test_cli_an_explicit_platform_key_beside_oauth_env_is_exit_2(remote: ThreadedSandbox) -> None:
    sb = remote.sandbox
    res = invoke(
        ["--base-url", sb.base_url, "--platform-key", "k", "orders", "list"],
        {
            "TANGO_OAUTH_CLIENT_ID": sb.oauth_client_id,
            "TANGO_OAUTH_CLIENT_SECRET": SECRET,
            "TANGO_OAUTH_TOKEN_URL": sb.oauth_token_url,
        },
    )
    assert res.exit_code == 2, res.output + res.stderr
    assert "not both" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert sb.token_requests == []
