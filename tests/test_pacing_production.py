"""Pacing in production conditions, against the sandbox on loopback: spacing held at the
write whatever the connection costs (TLS, 150 ms set-up per new connection, idle
connections closed by the server), a sender that stalls after its slot, and time that
tests control (the sandbox's clock wired into the client)."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from typing import Any

import aiohttp
import pytest

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock

from .conftest import FAST_RETRY, order_request

PRODUCTION: dict[str, Any] = {"tls": True, "connect_delay": 0.15, "keepalive_timeout": 0.6}


def write_recorder(session_writes: list[float]) -> aiohttp.TraceConfig:
    """A trace config that notes when each POST's body (with its headers) goes out."""
    config = aiohttp.TraceConfig()

    async def chunk(session: Any, ctx: Any, params: Any) -> None:
        session_writes.append(time.monotonic())

    config.on_request_chunk_sent.append(chunk)
    return config


async def create_many(tango: ta.TangoClient, count: int) -> list[str]:
    async def one(i: int) -> str:
        try:
            await tango.orders.create(order_request(notes=f"n{i}"))
        except ta.TangoError as e:
            return type(e).__name__
        return "ok"

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def refused(sb: Sandbox) -> int:
    return [r.status for r in sb.requests].count(429)


async def test_cold_connections_and_idle_gaps_never_bring_a_429() -> None:
    rate = 5.0  # 210 ms spacing; every new connection costs 150 ms, idle ones close at 0.6 s
    async with Sandbox(order_rate=rate, **PRODUCTION) as sb:
        writes: list[float] = []
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=sb.ssl_context),
            trace_configs=[write_recorder(writes)],
        )
        try:
            async with sb.client(session=session, max_retries=0) as tango:
                first = await create_many(tango, 8)  # from a cold start
                await asyncio.sleep(1.0)  # longer than the keep-alive: connections closed
                second = await create_many(tango, 8)
        finally:
            await session.close()
        arrivals = sb.arrivals("POST", "/orders", exact=True)
        assert first + second == ["ok"] * 16
        assert refused(sb) == 0
        assert sb.connections_accepted >= 2  # the idle gap cost a new connection
    spacing = ta.LocalRateLimiter(rate).spacing
    # At the write (what the limiter guarantees) and at arrival (what the server checks).
    assert min(b - a for a, b in pairwise(writes)) >= spacing * 0.999
    assert min(b - a for a, b in pairwise(arrivals)) >= 1 / rate


class SlotOnly:
    """A limiter without a write gate: slots only, as before 0.2 (the control)."""

    def __init__(self, rate: float) -> None:
        self._inner = ta.LocalRateLimiter(rate)

    async def acquire(self) -> None:
        await self._inner.acquire()

    async def penalize(self, delay: float) -> None:
        await self._inner.penalize(delay)


async def test_control_slots_alone_arrive_early_after_a_cold_connection() -> None:
    rate = 5.0
    async with Sandbox(order_rate=rate, **PRODUCTION) as sb:
        async with sb.client(rate_limiter=SlotOnly(rate), max_retries=0) as tango:
            outcomes = await create_many(tango, 3)
        # The first order's connection took 150 ms; the second, on it warm, came early.
        assert "RateLimitError" in outcomes
        assert refused(sb) >= 1


async def test_a_sender_stalled_after_its_slot_does_not_make_the_next_early() -> None:
    rate = 5.0
    async with Sandbox(order_rate=rate) as sb:
        stalled = False

        class Stalling(ta.LocalRateLimiter):
            async def acquire(self) -> None:
                nonlocal stalled
                await super().acquire()
                if not stalled:
                    stalled = True
                    time.sleep(0.15)  # noqa: ASYNC251 - the loop stalls (a GC pause) after the slot

        async with sb.client(rate_limiter=Stalling(rate), max_retries=0) as tango:
            outcomes = await create_many(tango, 4)
        arrivals = sb.arrivals("POST", "/orders", exact=True)
        assert outcomes == ["ok"] * 4
        assert refused(sb) == 0
        assert min(b - a for a, b in pairwise(arrivals)) >= 1 / rate


async def test_frozen_time_paces_and_cools_down_in_no_real_time() -> None:
    clock = SandboxClock(frozen=True)
    sb = Sandbox(order_rate=1.0, resend_cooldown=30.0, clock=clock)
    async with sb, sb.client() as tango:  # the sandbox's clock is the client's clock
        assert tango.clock is clock
        started, t0 = time.monotonic(), clock.monotonic()
        orders = [await tango.orders.create(order_request()) for _ in range(5)]
        assert refused(sb) == 0  # spaced 1.05 s apart on the shared clock
        assert clock.monotonic() - t0 == pytest.approx(4 * 1.05)
        oid = orders[0].reference_order_id
        await tango.orders.resend(oid)
        with pytest.raises(ta.ResendCooldownError) as caught:
            await tango.orders.resend(oid)
        assert 29 < caught.value.retry_after <= 30
        sb.clock.advance(31)  # ends the client's cooldown at once
        await tango.orders.resend(oid)
        await tango.orders.resend(oid, wait=True)  # waits 30 s of frozen time
        assert time.monotonic() - started < 10  # none of the ~40 s was real


async def test_retry_backoffs_sleep_on_the_clients_clock() -> None:
    clock = SandboxClock(frozen=True)
    slow = ta.RetryPolicy(initial_delay=20.0, max_delay=20.0, jitter=0.0)
    async with Sandbox(order_rate=None, clock=clock) as sb:
        sb.inject("GET /orders/*", "503", times=2)
        async with sb.client(retry=slow) as tango:
            order = await tango.orders.create(order_request())
            started, t0 = time.monotonic(), clock.monotonic()
            await tango.orders.get(order.reference_order_id)
            assert clock.monotonic() - t0 >= 40  # two back-offs of 20 s, on the sandbox clock
            assert time.monotonic() - started < 10


async def test_reads_back_off_together_after_a_429_and_recover() -> None:
    # The server allows 20 reads/s; 6 readers fetch as fast as they can.
    async with Sandbox(order_rate=None, read_rate=20.0) as sb:
        async with sb.client(retry=FAST_RETRY.with_options(max_retries=10)) as tango:
            order = await tango.orders.create(order_request())
            oid = order.reference_order_id

            async def reader() -> int:
                done = 0
                while done < 15:
                    await tango.orders.get(oid)
                    done += 1
                return done

            results = await asyncio.gather(*(reader() for _ in range(6)))
            pacing = tango._transport.pacing
            assert pacing is not None
            rate = pacing.rate_of("GET /orders/{id}")
        assert results == [15] * 6
        # After the first 429 the route was paced near the server's limit: the 90 reads
        # met only a handful of 429s, not one per read beyond 20/s.
        assert 1 <= sb.refused_reads <= 15
        assert rate is not None and 2.0 <= rate <= 40.0


async def test_every_endpoint_shares_the_order_budget() -> None:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=1.0, clock=clock) as sb:
        policy = ta.PacingPolicy(every_endpoint=True)
        async with sb.client(pacing=policy) as tango:
            t0 = clock.monotonic()
            order = await tango.orders.create(order_request())
            await tango.orders.get(order.reference_order_id)
            await tango.orders.get(order.reference_order_id)
            # Three requests through one 1-TPS budget: two spacings of frozen time.
            assert clock.monotonic() - t0 == pytest.approx(2 * 1.05)


def test_pacing_policy_checks_its_values() -> None:
    with pytest.raises(ta.ValidationError):
        ta.PacingPolicy(reads=0)
    with pytest.raises(ta.ValidationError):
        ta.PacingPolicy(decrease=1.5)
    with pytest.raises(ta.ValidationError):
        ta.PacingPolicy(adaptive="yes")  # type: ignore[arg-type]
    with pytest.raises(ta.ValidationError):
        ta.TangoClient("n", "k", pacing="fast")  # type: ignore[arg-type]
    assert ta.PacingPolicy().with_options(reads=2.0).reads == 2.0
