"""OAuth tokens shared through Redis (issue 15, point 5): one token request for 50
concurrent calls across 4 clients, cross-connection single flight, expiry, the renewal
lock (taken over once a dead holder's lock expires, released on cancellation), and the
compare-and-delete of a refused token."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

import tango_async as ta
from tango_async._oauth import AccessToken
from tango_async.redis import RedisTokenCache, TokenCacheUnavailableError
from tango_async.testing import Sandbox, SandboxClock

from .conftest import FAST_RETRY
from .redis_support import free_port, redis_for_tests


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


@pytest.fixture
def namespace() -> str:
    return "test-oauth-" + uuid.uuid4().hex[:10]


@pytest.fixture
async def cache(redis_url: str, namespace: str) -> AsyncIterator[RedisTokenCache]:
    store = RedisTokenCache(redis_url, namespace=namespace)
    yield store
    await store.aclose()


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None, clock=SandboxClock(frozen=True), contract=True) as sandbox:
        yield sandbox


def issued(sb: Sandbox) -> int:
    return sum(1 for r in sb.token_requests if r.status == 200)


def client(sb: Sandbox, token_cache: ta.TokenCache, **kw: Any) -> ta.TangoClient:
    # each client its own OAuth object: what they share is the Redis cache only
    return sb.client(oauth={"token_cache": token_cache, **kw}, retry=FAST_RETRY)


async def test_fifty_calls_across_four_clients_sharing_one_redis_cache_one_token_request(
    sb: Sandbox, cache: RedisTokenCache
) -> None:
    clients = [client(sb, cache) for _ in range(4)]
    try:
        await asyncio.gather(*(clients[i % 4].line_items.reason_codes() for i in range(50)))
    finally:
        for c in clients:
            await c.close()
    assert len(sb.token_requests) == 1 and issued(sb) == 1
    assert sb.contract_violations == []


async def test_four_caches_on_one_namespace_act_as_four_processes(
    sb: Sandbox, redis_url: str, namespace: str
) -> None:
    caches = [RedisTokenCache(redis_url, namespace=namespace) for _ in range(4)]  # 4 connections
    clients = [client(sb, c) for c in caches]
    try:
        await asyncio.gather(*(clients[i % 4].line_items.reason_codes() for i in range(50)))
    finally:
        for c in clients:
            await c.close()
        for c in caches:
            await c.aclose()
    assert len(sb.token_requests) == 1


async def test_an_expired_token_is_renewed_once_for_everyone(
    sb: Sandbox, cache: RedisTokenCache
) -> None:
    clients = [client(sb, cache) for _ in range(4)]
    try:
        await asyncio.gather(*(c.line_items.reason_codes() for c in clients))
        sb.clock.advance(86_400 + 1)
        await asyncio.gather(*(clients[i % 4].line_items.reason_codes() for i in range(20)))
    finally:
        for c in clients:
            await c.close()
    assert issued(sb) == 2


async def test_a_401_replaced_token_is_dropped_once(sb: Sandbox, cache: RedisTokenCache) -> None:
    clients = [client(sb, cache) for _ in range(4)]
    try:
        await asyncio.gather(*(c.line_items.reason_codes() for c in clients))
        sb.revoke_tokens()
        await asyncio.gather(*(clients[i % 4].line_items.reason_codes() for i in range(12)))
    finally:
        for c in clients:
            await c.close()
    assert issued(sb) == 2


async def test_a_dead_holders_lock_is_taken_over_once_it_expires(
    sb: Sandbox, redis_url: str, namespace: str
) -> None:
    cache = RedisTokenCache(redis_url, namespace=namespace, poll_interval=0.01)
    tango = client(sb, cache)
    try:
        key = tango._transport._oauth.key  # type: ignore[union-attr]
        # a process that took the lock and died: its lock lives 200 ms
        await cache.redis.set(f"{namespace}:oauth:lock:{key}", "dead-holder", px=200)
        await asyncio.wait_for(tango.line_items.reason_codes(), 10)
    finally:
        await tango.close()
        await cache.aclose()
    assert issued(sb) == 1


async def test_cancelled_during_the_token_request_releases_the_lock(
    sb: Sandbox, cache: RedisTokenCache
) -> None:
    sb.inject("POST /oauth/token", "slow", delay=30)
    first, second = client(sb, cache), client(sb, cache)  # lock_ttl is 60 s: no waiting it out
    try:
        task = asyncio.create_task(first.line_items.reason_codes())
        for _ in range(2000):
            if any(r.path == "/oauth/token" for r in sb.requests):
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        key = first._transport._oauth.key  # type: ignore[union-attr]
        for _ in range(200):  # the release runs shielded, right after the cancellation
            if await cache.redis.get(f"{cache.namespace}:oauth:lock:{key}") is None:
                break
            await asyncio.sleep(0.005)
        await asyncio.wait_for(second.line_items.reason_codes(), 10)
    finally:
        await first.close()
        await second.close()
    assert issued(sb) == 1


async def test_the_stored_entry_and_compare_and_delete(cache: RedisTokenCache) -> None:
    one = AccessToken.build("tok-one", expires_at=2e9, lifetime=3600.0)
    two = AccessToken.build("tok-two", expires_at=2e9, lifetime=3600.0)
    assert one is not None and two is not None
    assert isinstance(cache, ta.TokenCache)
    await cache.set("k", one)
    stored = await cache.redis.get(f"{cache.namespace}:oauth:token:k")
    assert stored is not None and stored.endswith(b" tok-one")  # text: protect the Redis
    ttl = await cache.redis.pttl(f"{cache.namespace}:oauth:token:k")
    assert 3_500_000 < ttl <= 3_600_000
    got = await cache.get("k")
    assert got is not None and got.reveal() == "tok-one" and got.expires_at == 2e9
    await cache.invalidate("k", two)
    assert await cache.get("k") is not None
    await cache.invalidate("k", one)
    assert await cache.get("k") is None
    await cache.redis.set(f"{cache.namespace}:oauth:token:k", b"garbage")
    assert await cache.get("k") is None
    await cache.redis.set(f"{cache.namespace}:oauth:token:k", b"0000 1 1 tok\r\nx")
    assert await cache.get("k") is None
    handle = await cache.lock("k", 5)
    assert handle is not None and await cache.lock("k", 5) is None
    await cache.unlock("k", "someone-else")
    assert await cache.lock("k", 5) is None
    await cache.unlock("k", handle)
    assert await cache.lock("k", 5) is not None
    assert "tok-one" not in repr(cache)


async def test_redis_unreachable_is_a_typed_error(sb: Sandbox) -> None:
    cache = RedisTokenCache(
        f"redis://127.0.0.1:{free_port()}/0", unavailable_timeout=0, socket_timeout=0.5
    )
    async with client(sb, cache) as tango:
        with pytest.raises(TokenCacheUnavailableError):
            await tango.line_items.reason_codes()
    await cache.aclose()
    assert sb.token_requests == []  # never asks without the lock


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lock_ttl": 0}, "lock_ttl"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"namespace": ""}, "namespace"),
        ({"unavailable_timeout": -1}, "unavailable_timeout"),
    ],
)
def test_arguments(redis_url: str, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        RedisTokenCache(redis_url, **kwargs)
    assert e.value.field == field


async def test_a_client_object_is_accepted(redis_url: str, namespace: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    cache = RedisTokenCache(redis, namespace=namespace)
    assert cache.redis is redis
    assert await cache.get("nothing") is None
    await redis.aclose()
