"""Adversarial checks of issue 11 (pacing at the write): the write gate run from aiohttp's
tracing signals must never make a request that went out look unsent, must end with
``close()`` like every other wait, must act once per request on a session shared by
several clients, and a shared (Redis) gate must not be held by an admission whose answer
was lost. Nothing here sleeps for long: events, frozen time, or Redis state."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

import tango_async as ta
from tango_async.redis import RedisRateLimiter
from tango_async.testing import Sandbox, SandboxClock

from .conftest import FAST_RETRY, order_request
from .redis_support import redis_for_tests

# --- money: a request that went out is never "nothing was sent" -----------------------------


@pytest.fixture
async def half_answering_server() -> AsyncIterator[str]:
    """A server that answers POST /orders with a 201 whose body never finishes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await reader.read(65536)
            if not chunk:
                return
            data += chunk
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b'Content-Length: 200\r\n\r\n{"referenceOrderID":'
        )
        await writer.drain()
        with contextlib.suppress(Exception):
            await reader.read()  # until the client goes away
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/raas/v2"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_session_closed_while_the_answer_is_read_leaves_the_order_unknown(
    half_answering_server: str,
) -> None:
    # The caller's session has its own trace config, which yields once the answer's
    # headers are in (an async log sink): the app shuts down right then, closing its
    # session under the create. aiohttp then raises RuntimeError("Connection closed.")
    # from the body read: the POST went out and was answered 201, so the order may exist
    # and must stay remembered, never "nothing was sent".
    entered, release = asyncio.Event(), asyncio.Event()

    async def on_end(session: Any, ctx: Any, params: Any) -> None:
        entered.set()
        await release.wait()

    config = aiohttp.TraceConfig()
    config.on_request_end.append(on_end)
    session = aiohttp.ClientSession(trace_configs=[config])
    client = ta.TangoClient(
        "p", "k" * 10, base_url=half_answering_server, retry=FAST_RETRY, session=session
    )
    task = asyncio.create_task(client.orders.create(order_request()))
    await asyncio.wait_for(entered.wait(), 5)
    await session.close()
    await client.close()
    release.set()
    with pytest.raises(ta.TangoError) as caught:
        await asyncio.wait_for(task, 5)
    assert caught.value.outcome_unknown is True
    assert "nothing was sent" not in str(caught.value)
    kept = await client.unresolved_store.list()
    assert [e.external_ref_id for e in kept] == [caught.value.external_ref_id]
    assert kept[0].state == "unknown"


# --- liveness: close() ends the requests waiting in the write gate ---------------------------


class HeldGate(ta.LocalRateLimiter):
    """A limiter whose write gate holds its writer until the test lets it go (another
    process's writer ahead in a shared gate, a long queue)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def before_write(self) -> object:
        self.entered.set()
        await self.release.wait()
        return await super().before_write()


@pytest.mark.parametrize("own_session", [True, False], ids=["own-session", "caller-session"])
async def test_close_ends_a_create_waiting_in_the_write_gate(own_session: bool) -> None:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, clock=clock) as sb:
        session = None if own_session else aiohttp.ClientSession()
        limiter = HeldGate(1000.0, clock=clock)
        extra: dict[str, Any] = {} if session is None else {"session": session}
        client = sb.client(rate_limiter=limiter, retry=FAST_RETRY, **extra)
        try:
            task = asyncio.create_task(client.orders.create(order_request()))
            await asyncio.wait_for(limiter.entered.wait(), 5)
            await client.close()
            limiter.release.set()  # the gate would admit it now: too late, it was closed
            with pytest.raises(ta.ClientClosedError) as caught:
                await asyncio.wait_for(task, 5)
            # Certainly not sent: not remembered as unknown, and the server saw nothing.
            assert caught.value.outcome_unknown is False
            assert await client.unresolved_store.list() == []
            assert sb.arrivals("POST", "/orders", exact=True) == []
        finally:
            if session is not None:
                await session.close()


# --- spacing: a session shared by two clients gates each request once ------------------------


async def test_two_clients_on_one_session_pass_the_gate_once_per_request() -> None:
    clock = SandboxClock(frozen=True)
    policy = ta.PacingPolicy(reads=10.0)  # GETs paced at 10/s: 0.1 s apart, through a gate
    async with Sandbox(order_rate=None, clock=clock) as sb:
        session = aiohttp.ClientSession()
        try:
            a = sb.client(session=session, pacing=policy)
            b = sb.client(session=session, pacing=policy)
            order = await a.orders.create(order_request())
            await b.orders.get(order.reference_order_id)  # b's signals join the session
            await a.orders.get(order.reference_order_id)
            start = clock.monotonic()
            for _ in range(5):
                await a.orders.get(order.reference_order_id)
            # One spacing per GET, not one per client whose signals saw it.
            assert clock.monotonic() - start == pytest.approx(5 * 0.1)
            await a.close()
            await b.close()
        finally:
            await session.close()


# --- the shared gate: an admission whose answer was lost is released -------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


async def test_a_redis_admission_lost_to_a_cancellation_is_released(redis_url: str) -> None:
    namespace = "test-" + uuid.uuid4().hex[:10]
    a = RedisRateLimiter(redis_url, rate=5.0, namespace=namespace, platform="p")
    writing = a._key("orders", "writing")
    real_admit = a._admit

    async def admitted_then_cancelled(*args: Any, **kwargs: Any) -> Any:
        answer = await real_admit(*args, **kwargs)
        if int(answer[1]):
            # Redis admitted us; the reply is lost to a cancellation (aiohttp's timeout
            # during the gate, a caller's wait_for).
            raise asyncio.CancelledError
        return answer

    a._admit = admitted_then_cancelled  # type: ignore[method-assign]
    try:
        with pytest.raises(asyncio.CancelledError):
            await a.before_write()
        await asyncio.gather(*a._reports)
        # Nothing was written: no admission is left for every other writer to wait out.
        assert await a.redis.get(writing) is None
    finally:
        await a.redis.delete(writing, a._key("orders", "written"), a._key("orders", "spacing"))
        await a.aclose()
