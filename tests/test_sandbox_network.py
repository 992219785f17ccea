"""The sandbox's network conditions: TLS, slow connection set-up, keep-alive timeout, a
read rate limit and latency (plain aiohttp unless the TangoClient is the point)."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock
from tango_async.testing.__main__ import main as sandbox_main

from .processes import started_sandbox

CREATE = ta.CreateOrderRequest(
    "customer-1",
    "account-1",
    "U561593",
    Decimal("5.00"),
    recipient=ta.Recipient(email="ann@example.com", first_name="Ann"),
)


def session(sb: Sandbox, **kwargs: Any) -> aiohttp.ClientSession:
    auth = aiohttp.encode_basic_auth(sb.platform_name, sb.platform_key)
    return aiohttp.ClientSession(headers={"Authorization": auth}, **kwargs)


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any, float]:
    """Status, parsed body and the real seconds the request took."""
    t0 = time.monotonic()
    async with http.get(url, **kwargs) as resp:
        raw = await resp.read()
        return resp.status, json.loads(raw) if raw else None, time.monotonic() - t0


# --- TLS --------------------------------------------------------------------------------------


async def test_tls_round_trip_with_the_sandbox_client() -> None:
    async with Sandbox(order_rate=None, tls=True) as sb:
        assert sb.base_url == f"https://127.0.0.1:{sb.port}/raas/v2"
        assert isinstance(sb.ssl_context, ssl.SSLContext)
        assert sb.ca_pem is not None and sb.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
        async with sb.client() as tango:
            assert tango.clock is sb.clock
            order = await tango.orders.create(CREATE)
            got = await tango.orders.get(order.reference_order_id)
            assert got.reference_order_id == order.reference_order_id
        assert [r.status for r in sb.requests] == [201, 200]


async def test_a_client_without_the_ca_fails_verification() -> None:
    async with Sandbox(order_rate=None, tls=True) as sb:
        async with session(sb) as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await get(http, sb.base_url + "/orders")
        assert not sb.requests  # refused in the handshake, before any request
        trusting = ssl.create_default_context(cadata=sb.ca_pem.decode() if sb.ca_pem else None)
        async with session(sb) as http:
            assert (await get(http, sb.base_url + "/orders", ssl=trusting))[0] == 200
        local = sb.base_url.replace("127.0.0.1", "localhost")  # the certificate names both
        async with session(sb) as http:
            assert (await get(http, local + "/orders", ssl=sb.ssl_context))[0] == 200


async def test_client_options_override_the_sandbox_defaults() -> None:
    own_clock = SandboxClock()
    own_ctx = ssl.create_default_context()
    async with (
        Sandbox(order_rate=None, tls=True) as sb,
        sb.client(clock=own_clock, ssl_context=own_ctx, max_retries=0) as tango,
    ):
        assert tango.clock is own_clock
        with pytest.raises(ta.APIConnectionError):  # its context does not trust the sandbox
            await tango.orders.get("RA1")
    async with Sandbox(order_rate=None) as plain, plain.client() as tango:
        assert plain.ssl_context is None and plain.ca_pem is None
        assert plain.base_url.startswith("http://127.0.0.1:")
        assert tango.clock is plain.clock


def test_tls_without_trustme_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # import trustme: ImportError
    with pytest.raises(RuntimeError, match="pip install trustme"):
        Sandbox(tls=True)
    assert Sandbox().ssl_context is None  # without TLS trustme is never imported


# --- connection set-up and keep-alive ---------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True])
async def test_connect_delay_is_paid_by_new_connections_only(tls: bool) -> None:
    delay = 0.2
    async with Sandbox(order_rate=None, connect_delay=delay, tls=tls) as sb:
        assert sb.base_url.startswith(("https" if tls else "http") + "://127.0.0.1:")
        async with session(sb) as http:
            status, _, first = await get(http, sb.base_url + "/orders", ssl=sb.ssl_context)
            assert status == 200 and first >= delay
            status, _, reused = await get(http, sb.base_url + "/orders", ssl=sb.ssl_context)
            assert status == 200 and reused < first - delay / 2
        assert sb.connections_accepted == 1
        # arrival is stamped when the request reaches the server, after the delay
        assert len(sb.requests) == 2
        async with session(sb) as other:  # a second client: a new connection, a new delay
            status, _, fresh = await get(other, sb.base_url + "/orders", ssl=sb.ssl_context)
            assert status == 200 and fresh >= delay
        assert sb.connections_accepted == 2


async def test_connect_delay_with_the_sandbox_client() -> None:
    async with Sandbox(order_rate=None, connect_delay=0.2, tls=True) as sb, sb.client() as tango:
        t0 = time.monotonic()
        order = await tango.orders.create(CREATE)
        first = time.monotonic() - t0
        t0 = time.monotonic()
        await tango.orders.get(order.reference_order_id)
        reused = time.monotonic() - t0
        assert first >= 0.2 and reused < first - 0.1
        assert sb.connections_accepted == 1


@pytest.mark.parametrize("connect_delay", [0.0, 0.05])
async def test_idle_keepalive_connections_are_closed(connect_delay: float) -> None:
    async with (
        Sandbox(order_rate=None, keepalive_timeout=0.2, connect_delay=connect_delay) as sb,
        session(sb) as http,
    ):
        url = sb.base_url + "/orders"
        assert (await get(http, url))[0] == 200
        assert (await get(http, url))[0] == 200
        assert sb.connections_accepted == 1  # reused while not idle
        await asyncio.sleep(0.45)
        status, _, _ = await get(http, url)  # the client saw the close: no stale connection
        assert status == 200
        assert sb.connections_accepted == 2
        assert [r.status for r in sb.requests] == [200, 200, 200]


async def test_keepalive_default_keeps_idle_connections() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        assert (await get(http, sb.base_url + "/orders"))[0] == 200
        await asyncio.sleep(0.3)
        assert (await get(http, sb.base_url + "/orders"))[0] == 200
        assert sb.connections_accepted == 1


async def test_stop_cuts_proxied_connections() -> None:
    sb = await Sandbox(order_rate=None, connect_delay=0.01).start()
    http = session(sb)
    try:
        assert (await get(http, sb.base_url + "/orders"))[0] == 200
        await sb.stop()
        with pytest.raises(aiohttp.ClientError):
            await get(http, sb.base_url + "/orders")
    finally:
        await http.close()


# --- the read rate and latency ----------------------------------------------------------------


async def test_read_rate_refuses_gets_sooner_than_the_last_accepted_one() -> None:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, read_rate=2.0, clock=clock) as sb, session(sb) as http:
        url = sb.base_url + "/orders"
        assert (await get(http, url))[0] == 200
        async with http.get(url) as resp:  # back to back
            assert resp.status == 429 and resp.headers["Retry-After"] == "1"
            body = await resp.json()
        assert body["errors"][0]["i18nKey"] == "429.001" and body["httpCode"] == 429
        clock.advance(0.3)
        assert (await get(http, url + "/RA1"))[0] == 429  # every GET route shares the rate
        clock.advance(0.25)  # 0.55 s after the last accepted GET: the 429s did not count
        assert (await get(http, url + "/RA1"))[0] == 404
        async with http.post(url, json={}) as resp:  # not a read
            assert resp.status == 400
        assert sb.refused_reads == 2
        assert [(r.method, r.status) for r in sb.requests] == [
            ("GET", 200),
            ("GET", 429),
            ("GET", 429),
            ("GET", 404),
            ("POST", 400),
        ]
        t0 = sb.requests[0].arrived
        assert [round(t - t0, 3) for t in sb.arrivals("GET", "/orders")] == [0, 0, 0.3, 0.55]


async def test_latency_holds_every_response_in_real_time() -> None:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, latency=0.15, clock=clock) as sb, session(sb) as http:
        before = clock.monotonic()
        status, _, took = await get(http, sb.base_url + "/orders")
        assert status == 200 and took >= 0.15
        status, _, took = await get(http, f"http://127.0.0.1:{sb.port}/elsewhere")
        assert status == 404 and took >= 0.15
        assert clock.monotonic() == before  # the frozen clock did not move
        assert [r.arrived for r in sb.requests] == [before, before]


def test_bad_network_options_are_refused() -> None:
    for bad in (
        {"read_rate": 0},
        {"connect_delay": -1},
        {"latency": -0.1},
        {"keepalive_timeout": 0},
    ):
        with pytest.raises(ValueError):
            Sandbox(**bad)


# --- the process ------------------------------------------------------------------------------


async def test_python_m_with_tls_serves_a_client_trusting_the_ca_file(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    proc, lines, env = await started_sandbox(
        "--tls",
        "--ca-file",
        str(ca_file),
        "--connect-delay",
        "0.05",
        "--order-rate",
        "0",
        lines=5,
    )
    try:
        assert lines[0].startswith("Tango sandbox serving at https://127.0.0.1:")
        assert env["TANGO_BASE_URL"].startswith("https://127.0.0.1:")
        assert env["TANGO_CA_FILE"] == str(ca_file)
        trusting = ssl.create_default_context(cafile=env["TANGO_CA_FILE"])
        async with ta.TangoClient(
            env["TANGO_PLATFORM_NAME"],
            env["TANGO_PLATFORM_KEY"],
            base_url=env["TANGO_BASE_URL"],
            ssl_context=trusting,
        ) as tango:
            order = await tango.orders.create(CREATE)
            assert order.created
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


def test_python_m_refuses_a_ca_file_without_tls(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sandbox_main(["--ca-file", "ca.pem"])
    assert exit_info.value.code == 2
    assert "--ca-file needs --tls" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sandbox_main(["--latency", "-1"])
