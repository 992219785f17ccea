"""The shared limiter and cooldown store on a real Redis, across processes."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

import tango_async as ta
from tango_async.redis import (
    RateLimiterUnavailableError,
    RedisCooldownStore,
    RedisRateLimiter,
)
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY, order_request
from .redis_support import RedisServer, redis_for_tests


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


@pytest.fixture
def namespace() -> str:
    return "test-" + uuid.uuid4().hex[:10]  # every test its own keys


@pytest.fixture
async def limiter(redis_url: str, namespace: str) -> AsyncIterator[RedisRateLimiter]:
    lim = RedisRateLimiter(redis_url, rate=20.0, namespace=namespace, platform="p")
    yield lim
    await lim.aclose()


async def test_protocols_and_platform_keys(redis_url: str, namespace: str) -> None:
    lim = RedisRateLimiter(redis_url, namespace=namespace)
    store = RedisCooldownStore(redis_url, namespace=namespace)
    assert isinstance(lim, ta.RateLimiter) and isinstance(store, ta.CooldownStore)
    client = ta.TangoClient("platform-a", "key", rate_limiter=lim, cooldown_store=store)
    assert lim.platform == store.platform == "platform-a"  # keys are namespaced per platform
    assert f"{namespace}:platform-a:orders:schedule" in repr(lim)
    await client.close()
    await lim.aclose()
    await store.aclose()
    with pytest.raises(ta.ValidationError):
        RedisRateLimiter(redis_url, rate=0)


async def test_concurrent_acquires_are_spaced_fifo(limiter: RedisRateLimiter) -> None:
    loop = asyncio.get_running_loop()
    order: list[int] = []
    times: list[float] = []

    async def take(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        times.append(loop.time())

    tasks = []
    for i in range(12):
        tasks.append(asyncio.create_task(take(i)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == list(range(12))
    assert min(b - a for a, b in pairwise(times)) >= (1 / limiter.rate) * 0.95


async def test_penalize_pushes_every_worker(redis_url: str, namespace: str) -> None:
    a = RedisRateLimiter(redis_url, rate=50.0, namespace=namespace, platform="p")
    b = RedisRateLimiter(redis_url, rate=50.0, namespace=namespace, platform="p")
    loop = asyncio.get_running_loop()
    await a.acquire()
    await a.penalize(0.3)
    start = loop.time()
    await b.acquire()  # another worker, another connection: held back too
    assert loop.time() - start >= 0.25
    for x in (a, b):
        await x.aclose()


@pytest.fixture
async def two_clients(redis_url: str, namespace: str) -> AsyncIterator[list[RedisRateLimiter]]:
    """Two limiters (two clients, two connections) on one namespace and platform."""
    pair = [
        RedisRateLimiter(redis_url, rate=20.0, namespace=namespace, platform="p") for _ in range(2)
    ]
    yield pair
    for x in pair:
        await x.aclose()


async def test_the_shared_gate_spaces_writers_of_every_client(
    two_clients: list[RedisRateLimiter],
) -> None:
    a, b = two_clients
    loop = asyncio.get_running_loop()
    first = await a.before_write()  # no record yet: one spacing's wait, then admitted
    second = asyncio.create_task(b.before_write())
    await asyncio.sleep(0.2)  # a stalls between its admission and its write
    assert not second.done()  # b waits for a's write, however long it takes
    a.after_write(first, written=True)
    wrote = loop.time()
    token = await second
    assert loop.time() - wrote >= a.spacing * 0.99  # spaced from the real write
    b.after_write(token, written=True)


async def test_a_flushed_schedule_never_lets_two_writes_close(
    two_clients: list[RedisRateLimiter],
) -> None:
    a, b = two_clients
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await a.acquire()
        token = await a.before_write()
        a.after_write(token, written=True)
        await asyncio.sleep(0.01)  # the report reaches Redis
        wrote = loop.time()
        await a.redis.flushdb()  # FLUSHALL / eviction of every key, mid-run
        await b.acquire()  # the schedule is gone; its missing write record means "just now"
        other = await b.before_write()
        assert loop.time() - wrote >= b.spacing * 0.99
        b.after_write(other, written=True)
        await asyncio.sleep(0.01)


async def test_clients_that_disagree_on_the_rate_get_a_clear_error(
    redis_url: str, namespace: str
) -> None:
    fast = RedisRateLimiter(redis_url, rate=20.0, namespace=namespace, platform="p")
    slow = RedisRateLimiter(
        redis_url, rate=1.0, namespace=namespace, platform="p", agreement_ttl=0.3
    )
    other = RedisRateLimiter(redis_url, rate=1.0, namespace=namespace + "x", platform="p")
    try:
        await fast.acquire()
        with pytest.raises(ta.RateLimiterConflictError) as caught:
            await slow.acquire()  # never the faster spacing, never silently
        assert caught.value.theirs == pytest.approx(fast.spacing, rel=1e-3)
        assert caught.value.ours == pytest.approx(slow.spacing)
        assert "same rate" in str(caught.value)
        with pytest.raises(ta.RateLimiterConflictError):
            await slow.before_write()
        await other.acquire()  # another namespace: its own schedule
    finally:
        for x in (fast, slow, other):
            await x.aclose()


async def test_the_agreement_lapses_when_the_other_rate_is_idle(
    redis_url: str, namespace: str
) -> None:
    fast = RedisRateLimiter(
        redis_url, rate=20.0, namespace=namespace, platform="p", agreement_ttl=0.2
    )
    slow = RedisRateLimiter(
        redis_url, rate=2.0, namespace=namespace, platform="p", agreement_ttl=0.2
    )
    try:
        await fast.acquire()
        await asyncio.sleep(0.3)  # the fast clients stopped (a deploy changed the rate)
        await slow.acquire()  # then the new rate is the agreed one
        with pytest.raises(ta.RateLimiterConflictError):
            await fast.acquire()
    finally:
        for x in (fast, slow):
            await x.aclose()


async def test_cooldown_store_claim_extend_release(redis_url: str, namespace: str) -> None:
    a = RedisCooldownStore(redis_url, namespace=namespace, platform="p")
    b = RedisCooldownStore(redis_url, namespace=namespace, platform="p")
    assert await a.claim("order:1", 1.0) == 0.0
    left = await b.claim("order:1", 1.0)
    assert 0.5 < left <= 1.0  # PTTL
    await b.release("order:1")  # not b's claim: nothing happens
    assert await b.claim("order:1", 1.0) > 0
    await a.release("order:1")
    assert await b.claim("order:1", 1.0) == 0.0
    await b.extend("order:1", 5.0)
    assert await a.claim("order:1", 1.0) > 4.0
    for x in (a, b):
        await x.aclose()


WORKER = textwrap.dedent("""
    import asyncio, json, ssl, sys
    import tango_async as ta
    from tango_async.redis import RedisRateLimiter

    async def main(base_url, name, key, redis_url, namespace, rate, tasks, per_task, ca, retries):
        # an 8% margin: 10 ms of slack at 8/s for four processes on a 2-core CI machine
        limiter = RedisRateLimiter(redis_url, rate=rate, margin=0.08, namespace=namespace)
        context = ssl.create_default_context(cafile=ca) if ca != "-" else None
        async with ta.TangoClient(name, key, base_url=base_url, rate_limiter=limiter,
                                  max_retries=retries, ssl_context=context) as tango:
            async def one(t):
                out = []
                for i in range(per_task):
                    req = ta.CreateOrderRequest(
                        "multi-customer", "multi-account", "U561593", 1,
                        recipient=ta.Recipient(email="w@example.com", first_name="W"))
                    try:
                        await tango.orders.create(req)
                        out.append("ok")
                    except ta.TangoError as e:
                        out.append(f"{type(e).__name__}: {e}")
                return out
            results = await asyncio.gather(*(one(t) for t in range(tasks)))
        await limiter.aclose()
        print(json.dumps([r for rs in results for r in rs]))

    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], a[4], float(a[5]), int(a[6]), int(a[7]), a[8],
                     int(a[9])))
""")


@pytest.mark.parametrize("conditions", ["warm", "tls-cold-flushed"])
async def test_four_processes_share_one_limit(
    redis_url: str, namespace: str, conditions: str, tmp_path: Path
) -> None:
    rate, procs, tasks, per_task = 8.0, 4, 5, 2
    production = conditions != "warm"
    # Production conditions: TLS, 150 ms more for every new connection, idle connections
    # closed after 3 s, and the whole Redis database flushed three times mid-run. A request
    # can then meet a connection the server is closing (retried: it is not a 429).
    options: dict[str, object] = (
        {"tls": True, "connect_delay": 0.15, "keepalive_timeout": 3.0} if production else {}
    )
    async with Sandbox(order_rate=rate, **options) as sb:  # 429 for arrivals < 1/rate apart
        ca = "-"
        if sb.ca_pem is not None:
            (tmp_path / "ca.pem").write_bytes(sb.ca_pem)
            ca = str(tmp_path / "ca.pem")
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                sb.base_url,
                sb.platform_name,
                sb.platform_key,
                redis_url,
                namespace,
                str(rate),
                str(tasks),
                str(per_task),
                ca,
                "2" if production else "0",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(procs)
        ]
        flushes = 0
        if production:
            flusher = RedisRateLimiter(redis_url, namespace=namespace)
            try:
                while flushes < 3 and any(w.returncode is None for w in workers):
                    await asyncio.sleep(1.0)
                    await flusher.redis.flushdb()
                    flushes += 1
            finally:
                await flusher.aclose()
        outputs = [await asyncio.wait_for(w.communicate(), 60) for w in workers]
        arrivals = sb.arrivals("POST", "/orders", exact=True)
        statuses = [r.status for r in sb.requests]
    results = [r for out, err in outputs for r in json.loads(out or b"[]")]
    assert len(results) == procs * tasks * per_task, [err for _, err in outputs]
    assert results == ["ok"] * len(results), results
    assert not production or flushes == 3
    assert statuses.count(429) == 0  # zero violations of the spacing at arrival
    assert min(b - a for a, b in pairwise(arrivals)) >= 1 / rate
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert achieved <= rate
    if not production:  # utilisation under production conditions: see benchmarks/
        assert achieved >= 0.9 * rate


COOLDOWN_WORKER = textwrap.dedent("""
    import asyncio, sys
    import tango_async as ta
    from tango_async.redis import RedisCooldownStore

    async def main(base_url, name, key, redis_url, namespace, order_id):
        store = RedisCooldownStore(redis_url, namespace=namespace)
        async with ta.TangoClient(name, key, base_url=base_url, cooldown_store=store) as tango:
            try:
                await tango.orders.resend(order_id)
                print("sent")
            except ta.ResendCooldownError as e:
                print(f"cooldown {e.retry_after:.1f}")
        await store.aclose()

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_cooldown_is_honoured_across_processes(redis_url: str, namespace: str) -> None:
    async with Sandbox(order_rate=None, resend_cooldown=30.0) as sb:
        async with sb.client(retry=FAST_RETRY) as tango:
            order = await tango.orders.create(order_request())

        async def resend_in_a_process() -> str:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                COOLDOWN_WORKER,
                sb.base_url,
                sb.platform_name,
                sb.platform_key,
                redis_url,
                namespace,
                order.reference_order_id,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err
            return out.decode().strip()

        first = await resend_in_a_process()
        before = len(sb.requests)
        second = await resend_in_a_process()
        assert first == "sent"
        assert second.startswith("cooldown ") and 25 < float(second.split()[1]) <= 30
        assert len(sb.requests) == before  # refused without a network call
        assert len(sb.resends) == 1


async def test_redis_outage_fails_closed_and_recovers(namespace: str) -> None:
    server = RedisServer()
    server.start()
    rate = 10.0
    try:
        limiter = RedisRateLimiter(
            server.url, rate=rate, namespace=namespace, unavailable_timeout=1.0, socket_timeout=0.5
        )
        async with (
            Sandbox(order_rate=rate) as sb,
            sb.client(rate_limiter=limiter, max_retries=0) as tango,
        ):
            for _ in range(3):
                await tango.orders.create(order_request())
            server.stop()
            loop = asyncio.get_running_loop()
            start = loop.time()
            outcomes = await asyncio.gather(
                *(tango.orders.create(order_request()) for _ in range(5)),
                return_exceptions=True,
            )
            waited = loop.time() - start
            assert all(isinstance(o, RateLimiterUnavailableError) for o in outcomes), outcomes
            assert all(isinstance(o, ta.TangoError) for o in outcomes)
            assert waited >= 0.9  # it waited with backoff before giving up
            sent_during_outage = len(sb.arrivals("POST", "/orders", exact=True))
            assert sent_during_outage == 3  # nothing sent unthrottled
            server.start()  # Redis is back: the same client works again
            for _ in range(3):
                await tango.orders.create(order_request())
            arrivals = sb.arrivals("POST", "/orders", exact=True)
            statuses = [r.status for r in sb.requests]
        assert len(arrivals) == 6 and statuses.count(429) == 0
        assert min(b - a for a, b in pairwise(arrivals)) >= 1 / rate  # no burst, ever
        await limiter.aclose()
    finally:
        server.stop()
