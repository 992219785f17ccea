"""Transport safety and resources: TLS verification, 10,000 concurrent calls without leaks,
cancellation that cleans up, and a client refusing a second event loop."""

from __future__ import annotations

import asyncio
import gc
import os
import ssl
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import trustme
from aiohttp import web

import tango_async as ta
from tango_async.testing import Sandbox


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


@pytest.fixture
async def tls_server() -> AsyncIterator[tuple[str, trustme.CA]]:
    """An HTTPS server on 127.0.0.1 with a certificate from a CA nobody trusts by default."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def order(request: web.Request) -> web.Response:
        return web.json_response({"referenceOrderID": request.match_info["id"]})

    app = web.Application()
    app.router.add_get("/raas/v2/orders/{id}", order)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}/raas/v2", ca
    await runner.cleanup()


async def test_tls_certificates_are_always_verified(tls_server: tuple[str, trustme.CA]) -> None:
    url, ca = tls_server
    async with ta.TangoClient("name", "key", base_url=url, max_retries=0) as tango:
        with pytest.raises(ta.APIConnectionError) as e:
            await tango.orders.get("RA1")
    assert e.value.maybe_sent is False  # refused during the handshake: nothing was sent
    assert "certificate" in repr(e.value.__context__).lower() or "Certificate" in str(e.value)
    # trusting the CA is the caller's explicit choice, through their own session
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        ta.TangoClient("name", "key", base_url=url, session=session) as tango,
    ):
        assert (await tango.orders.get("RA1")).reference_order_id == "RA1"


def test_no_way_to_turn_verification_off() -> None:
    import inspect

    source = inspect.getsource(ta._transport)
    assert "ssl=False" not in source and "verify_ssl" not in source
    assert "ssl" not in inspect.signature(ta.TangoClient).parameters


async def test_ten_thousand_concurrent_calls_leak_nothing() -> None:
    async with Sandbox(order_rate=None) as sb:
        (ref,) = sb.seed_orders(1, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(0))
        gc.collect()
        before = open_fds()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with sb.client() as tango:
                orders = await asyncio.gather(*(tango.orders.get(ref) for _ in range(10_000)))
                connector = tango._transport.session().connector
                assert connector is not None and len(connector._conns) <= 100  # pooled
            del tango
            gc.collect()
            await asyncio.sleep(0.1)  # let closed transports finish
        after = open_fds()
        sb.record = False
    assert len(orders) == 10_000 and {o.reference_order_id for o in orders} == {ref}
    assert not [w for w in caught if "nclosed" in str(w.message)], caught
    assert after <= before + 2  # no descriptor left behind (the server's may linger briefly)


async def test_cancelling_callers_mid_request_cleans_up() -> None:
    async with Sandbox(order_rate=None) as sb:
        (ref,) = sb.seed_orders(1, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(0))
        sb.inject("GET /orders/*", "slow", times=50, delay=0.5)
        gc.collect()
        before = open_fds()
        async with sb.client() as tango:
            tasks = [asyncio.create_task(tango.orders.get(ref)) for _ in range(50)]
            await asyncio.sleep(0.1)  # every request is in flight
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            # the client still works, on fresh connections
            assert (await tango.orders.get(ref)).reference_order_id == ref
            connector = tango._transport.session().connector
            assert connector is not None
            assert not connector._acquired  # no connection held by a cancelled call
        leftover = [
            t
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and "RequestHandler" not in repr(t)
        ]
        assert leftover == []
    gc.collect()
    await asyncio.sleep(0.1)
    assert open_fds() <= before + 2


async def test_a_client_refuses_a_second_event_loop() -> None:
    async with Sandbox(order_rate=None) as sb:
        tango = sb.client()
        (ref,) = sb.seed_orders(1, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(0))
        await tango.orders.get(ref)

        def elsewhere() -> BaseException | None:
            async def use() -> None:
                await asyncio.wait_for(tango.orders.get(ref), 5)

            try:
                asyncio.run(use())
            except BaseException as e:  # the assertion is on its type
                return e
            return None

        error = await asyncio.to_thread(elsewhere)
        assert isinstance(error, ta.ClientClosedError)  # clearly, at once, not a hang
        assert "another event loop" in str(error)
        await tango.close()
