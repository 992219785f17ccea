"""Unit tests of the transport with aioresponses: auth, retries, error mapping, limits."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import tango_async as ta

from .conftest import BASE, FAST_RETRY, KEY, NAME, order_request

ORDER = {
    "referenceOrderID": "RA230101-1234-56",
    "referenceLineItemID": "U1234",
    "externalRefID": "ref-1",
    "amountCharged": {"value": 10.00, "currencyCode": "USD", "total": 10.00},
    "status": "COMPLETE",
    "createdAt": "2023-10-11T23:10:55.284Z",
}
ORDER_URL = f"{BASE}/orders/RA230101-1234-56"
# A create's answer without an externalRefID (one naming another ref is not taken)
CREATED = {k: v for k, v in ORDER.items() if k != "externalRefID"}


def tango_error(status: int, key: str, message: str = "nope", **extra: Any) -> dict[str, Any]:
    return {
        "timestamp": "2025-01-15T19:12:42.059Z",
        "requestId": "req-123",
        "path": "/raas/v2/orders",
        "httpCode": status,
        "httpPhrase": "Phrase",
        "errors": [{"code": status * 1000 + 1, "i18nKey": key, "message": message, **extra}],
    }


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return m.requests.get((method, URL(url)), [])


def sent_json(call: Any) -> dict[str, Any]:
    data = call.kwargs["data"]
    return json.loads(data)  # type: ignore[no-any-return]


# --- client construction -------------------------------------------------------------------


def test_missing_credentials_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TANGO_PLATFORM_NAME", raising=False)
    monkeypatch.delenv("TANGO_PLATFORM_KEY", raising=False)
    with pytest.raises(ta.ValidationError, match="TANGO_PLATFORM_NAME") as e:
        ta.TangoClient()
    assert e.value.field == "platform_name"
    with pytest.raises(ta.ValidationError, match="TANGO_PLATFORM_KEY"):
        ta.TangoClient("name")


def test_credentials_and_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANGO_PLATFORM_NAME", "env-name")
    monkeypatch.setenv("TANGO_PLATFORM_KEY", "env-key")
    monkeypatch.setenv("TANGO_BASE_URL", "http://127.0.0.1:9/raas/v2/")
    client = ta.TangoClient()
    assert client.platform_name == "env-name"
    assert client.base_url == "http://127.0.0.1:9/raas/v2"
    monkeypatch.delenv("TANGO_BASE_URL")
    assert ta.TangoClient().base_url == ta.SANDBOX_URL


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/raas/v2",
        "http://localhost/raas/v2",
        "http://[::1]:1/raas/v2",
        "http://127.1.2.3/raas/v2",
        ta.PRODUCTION_URL,
    ],
)
def test_base_url_accepted(url: str) -> None:
    assert ta.TangoClient(NAME, KEY, base_url=url).base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.tangocard.com/raas/v2",
        "http://10.0.0.1/raas/v2",
        "ftp://x/raas",
        "/raas/v2",
        "https://user:pw@api.tangocard.com/raas/v2",
    ],
)
def test_base_url_refused(url: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(NAME, KEY, base_url=url)
    assert e.value.field == "base_url"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"order_rate": 0}, "order_rate"),
        ({"resend_cooldown": -1}, "resend_cooldown"),
        ({"rate_limiter": object()}, "rate_limiter"),
        ({"cooldown_store": 3}, "cooldown_store"),
    ],
)
def test_bad_arguments(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(NAME, KEY, **kw)
    assert e.value.field == field


def test_repr_never_shows_the_key() -> None:
    client = ta.TangoClient(NAME, KEY)
    assert KEY not in repr(client)
    assert KEY not in repr(vars(client))  # not even the transport's repr


async def test_basic_auth_header_and_no_redirects(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, payload=ORDER)
        order = await mocked_client.orders.get("RA230101-1234-56")
    assert order.reference_order_id == "RA230101-1234-56"
    (call,) = calls(m, "GET", ORDER_URL)
    expected = "Basic " + base64.b64encode(f"{NAME}:{KEY}".encode()).decode()
    assert call.kwargs["headers"]["Authorization"] == expected
    assert call.kwargs["headers"]["Accept"] == "application/json"
    assert call.kwargs["allow_redirects"] is False


async def test_redirect_is_an_error_not_followed(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, status=302, headers={"Location": "https://evil.example/steal"})
        with pytest.raises(ta.APIError) as e:
            await mocked_client.orders.get("RA230101-1234-56")
    assert e.value.status_code == 302
    assert len(calls(m, "GET", "https://evil.example/steal")) == 0


async def test_closed_client_raises_clearly() -> None:
    client = ta.TangoClient(NAME, KEY, base_url=BASE)
    async with client:
        pass
    assert client.closed
    with pytest.raises(ta.ClientClosedError, match="closed"):
        await client.orders.get("RA1")
    with pytest.raises(ta.ClientClosedError):
        async with client:
            pass


async def test_callers_session_is_used_and_left_open() -> None:
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(ORDER_URL, payload=ORDER)
            async with ta.TangoClient(NAME, KEY, base_url=BASE, session=session) as client:
                await client.orders.get("RA230101-1234-56")
        assert not session.closed


async def test_path_ids_are_escaped_and_checked(mocked_client: ta.TangoClient) -> None:
    for bad in ("", " ", "a/b", "a b"):
        with pytest.raises(ta.ValidationError):
            await mocked_client.orders.get(bad)
    with aioresponses() as m:
        m.get(f"{BASE}/orders/A%3FB", payload={**ORDER, "referenceOrderID": "A?B"})
        order = await mocked_client.orders.get("A?B")
    assert order.reference_order_id == "A?B"


# --- errors ----------------------------------------------------------------------------------


async def test_error_body_with_errors_items(mocked_client: ta.TangoClient) -> None:
    body = tango_error(
        404,
        "404.002",
        "Order not found",
        path="referenceOrderID",
        invalidValue="RA1",
        constraint="exists",
    )
    with aioresponses() as m:
        m.get(ORDER_URL, status=404, payload=body)
        with pytest.raises(ta.NotFoundError) as e:
            await mocked_client.orders.get("RA230101-1234-56")
    err = e.value
    assert err.status_code == 404
    assert err.request_id == "req-123"
    assert err.path == "/raas/v2/orders"
    assert err.timestamp == "2025-01-15T19:12:42.059Z"
    assert err.i18n_key == "404.002"
    assert err.errors == [
        ta.ErrorDetail(404001, "404.002", "Order not found", "referenceOrderID", "RA1", "exists")
    ]
    assert "Order not found" in str(err) and "req-123" in str(err)
    assert len(calls(m, "GET", ORDER_URL)) == 1  # 4xx: never retried


async def test_error_body_with_top_level_key(mocked_client: ta.TangoClient) -> None:
    body = {
        "timestamp": "t",
        "requestId": "r",
        "path": "/raas/v2/orders/x",
        "httpCode": 400,
        "httpPhrase": "Bad Request",
        "i18nKey": "400.001",
        "message": "Invalid request",
    }
    with aioresponses() as m:
        m.get(ORDER_URL, status=400, payload=body)
        with pytest.raises(ta.BadRequestError) as e:
            await mocked_client.orders.get("RA230101-1234-56")
    assert e.value.i18n_key == "400.001"
    assert e.value.errors[0].message == "Invalid request"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ta.BadRequestError),
        (401, ta.AuthenticationError),
        (402, ta.InsufficientFundsError),
        (403, ta.PermissionDeniedError),
        (404, ta.NotFoundError),
        (409, ta.ConflictError),
        (422, ta.UnprocessableEntityError),
        (418, ta.APIError),
    ],
)
async def test_status_maps_to_class(
    mocked_client: ta.TangoClient, status: int, cls: type[ta.APIError]
) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, status=status, payload=tango_error(status, f"{status}.001"))
        with pytest.raises(cls) as e:
            await mocked_client.orders.get("RA230101-1234-56")
    assert type(e.value) is cls


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        (b"", "application/json"),
        (b'{"timestamp": "2025-01-15T19:12:42Z", "requestId": "abc", "err', "application/json"),
    ],
)
async def test_unreadable_error_bodies_still_typed(
    mocked_client: ta.TangoClient, body: bytes, ctype: str
) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, status=502, body=body, content_type=ctype, repeat=True)
        with pytest.raises(ta.ServerError) as e:
            await mocked_client.orders.get("RA230101-1234-56")
    assert e.value.status_code == 502
    assert e.value.body == body
    assert len(calls(m, "GET", ORDER_URL)) == 1 + FAST_RETRY.max_retries


async def test_undecodable_success_body(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, status=200, body=b"<html>oops</html>")
        with pytest.raises(ta.APIResponseValidationError) as e:
            await mocked_client.orders.get("RA230101-1234-56")
    assert e.value.status_code == 200
    with aioresponses() as m:
        m.get(ORDER_URL, status=200, payload={"referenceOrderID": 5})
        with pytest.raises(ta.APIResponseValidationError):
            await mocked_client.orders.get("RA230101-1234-56")


async def test_response_size_is_bounded() -> None:
    async with ta.TangoClient(NAME, KEY, base_url=BASE, max_response_bytes=100) as client:
        with aioresponses() as m:
            m.get(ORDER_URL, payload={**ORDER, "message": "x" * 500})
            with pytest.raises(ta.APIResponseValidationError, match="larger than 100 bytes"):
                await client.orders.get("RA230101-1234-56")


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("cut"),
        aiohttp.ClientOSError(104, "reset"),
        ConnectionResetError(),
    ],
)
async def test_transport_failures_become_connection_errors(
    mocked_client: ta.TangoClient, exc: Exception
) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, exception=exc, repeat=True)
        with pytest.raises(ta.APIConnectionError) as e:
            await mocked_client.orders.get("RA230101-1234-56")
    assert e.value.maybe_sent is True
    assert len(calls(m, "GET", ORDER_URL)) == 1 + FAST_RETRY.max_retries


async def test_timeout_becomes_timeout_error(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, exception=TimeoutError(), repeat=True)
        with pytest.raises(ta.APITimeoutError):
            await mocked_client.orders.get("RA230101-1234-56")


# --- retries of reads --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        {"status": 503, "payload": tango_error(503, "503.001")},
        {"status": 500, "body": b""},
        {"status": 429, "payload": tango_error(429, "429.001")},
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": TimeoutError()},
    ],
)
async def test_get_retries_transient_failures(
    mocked_client: ta.TangoClient, first: dict[str, Any]
) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, **first)
        m.get(ORDER_URL, payload=ORDER)
        order = await mocked_client.orders.get("RA230101-1234-56")
    assert order.status == ta.OrderStatus.COMPLETE
    assert len(calls(m, "GET", ORDER_URL)) == 2


async def test_max_retries_zero_means_one_attempt() -> None:
    async with ta.TangoClient(NAME, KEY, base_url=BASE, max_retries=0) as client:
        with aioresponses() as m:
            m.get(ORDER_URL, status=503, repeat=True)
            with pytest.raises(ta.ServerError):
                await client.orders.get("RA230101-1234-56")
        assert len(calls(m, "GET", ORDER_URL)) == 1


def test_backoff_is_exponential_capped_and_jitters_upward() -> None:
    p = ta.RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter=0.25)
    for attempt, base in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        for _ in range(50):
            d = p.backoff(attempt)
            assert base <= d <= base * 1.25
    assert p.backoff(0, retry_after=5.0) >= 5.0
    assert p.backoff(0, floor=2.0) >= 2.0


def test_retry_after_parsing() -> None:
    from tango_async._retry import parse_retry_after

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


# --- order creation -------------------------------------------------------------------------


async def test_create_201_vs_200(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/orders", status=201, payload=CREATED)
        m.post(f"{BASE}/orders", status=200, payload=CREATED)
        first = await mocked_client.orders.create(order_request(external_ref_id="ref-1"))
        again = await mocked_client.orders.create(order_request(external_ref_id="ref-1"))
    assert first.created is True and first.existing is False
    assert again.created is False and again.existing is True
    assert isinstance(first, ta.Order)


async def test_create_generates_one_ref_and_reuses_it_on_retries(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/orders", status=500, payload=tango_error(500, "500.000"))
        m.post(f"{BASE}/orders", exception=aiohttp.ServerDisconnectedError())
        m.post(f"{BASE}/orders", exception=TimeoutError())
        m.post(f"{BASE}/orders", status=201, payload=CREATED)
        order = await mocked_client.orders.create(order_request())
    bodies = [sent_json(c) for c in calls(m, "POST", f"{BASE}/orders")]
    assert len(bodies) == 4
    refs = {b["externalRefID"] for b in bodies}
    assert len(refs) == 1
    (ref,) = refs
    assert re.fullmatch(r"[A-Za-z0-9]{1,100}", ref)
    assert order.created
    # a second call makes a new one
    with aioresponses() as m:
        m.post(f"{BASE}/orders", status=201, payload=CREATED)
        await mocked_client.orders.create(order_request())
    assert sent_json(calls(m, "POST", f"{BASE}/orders")[0])["externalRefID"] != ref


async def test_create_wire_body(mocked_client: ta.TangoClient) -> None:
    from decimal import Decimal

    with aioresponses() as m:
        m.post(f"{BASE}/orders", status=201, payload=CREATED)
        await mocked_client.orders.create(
            order_request(amount=Decimal("10.10"), external_ref_id="my-ref")
        )
    (call,) = calls(m, "POST", f"{BASE}/orders")
    raw = call.kwargs["data"]
    assert b'"amount":10.1,' in raw  # exact, canonical: 10.10 goes as 10.1
    body = json.loads(raw)
    assert body["externalRefID"] == "my-ref"
    assert body["customerIdentifier"] == "cust-12345"
    assert body["deliveryMethod"] == "EMAIL"
    assert body["sendEmail"] is True
    assert call.kwargs["headers"]["Content-Type"] == "application/json"


async def test_create_409_in_process_is_retried_after_conflict_delay(
    mocked_client: ta.TangoClient,
) -> None:
    loop = asyncio.get_running_loop()
    with aioresponses() as m:
        m.post(f"{BASE}/orders", status=409, payload=tango_error(409, "409.002"))
        m.post(f"{BASE}/orders", status=200, payload=CREATED)
        start = loop.time()
        order = await mocked_client.orders.create(order_request(external_ref_id="ref-1"))
        elapsed = loop.time() - start
    assert not order.created
    assert elapsed >= FAST_RETRY.conflict_delay
    assert len(calls(m, "POST", f"{BASE}/orders")) == 2


async def test_create_429_waits_retry_after_and_penalizes_limiter() -> None:
    penalties: list[float] = []

    class Recorder(ta.LocalRateLimiter):
        async def penalize(self, delay: float) -> None:
            penalties.append(delay)
            await super().penalize(delay)

    limiter = Recorder(1000.0)
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, rate_limiter=limiter
    ) as client:
        with aioresponses() as m:
            m.post(
                f"{BASE}/orders",
                status=429,
                payload=tango_error(429, "429.001"),
                headers={"Retry-After": "0.05"},
            )
            m.post(f"{BASE}/orders", status=201, payload=CREATED)
            loop = asyncio.get_running_loop()
            start = loop.time()
            await client.orders.create(order_request())
            assert loop.time() - start >= 0.05
    assert penalties and penalties[0] >= 0.05


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
async def test_create_other_4xx_never_retried(mocked_client: ta.TangoClient, status: int) -> None:
    with aioresponses() as m:
        m.post(
            f"{BASE}/orders",
            status=status,
            payload=tango_error(status, f"{status}.001"),
            repeat=True,
        )
        with pytest.raises(ta.APIError) as e:
            await mocked_client.orders.create(order_request(external_ref_id="keep-me"))
    assert e.value.status_code == status
    assert e.value.external_ref_id == "keep-me"
    assert len(calls(m, "POST", f"{BASE}/orders")) == 1


async def test_create_gives_up_with_the_ref_on_the_error(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/orders", exception=aiohttp.ServerDisconnectedError(), repeat=True)
        with pytest.raises(ta.APIConnectionError) as e:
            await mocked_client.orders.create(order_request())
    ref = sent_json(calls(m, "POST", f"{BASE}/orders")[0])["externalRefID"]
    assert e.value.external_ref_id == ref


async def test_invalid_order_sends_nothing_and_spends_no_slot() -> None:
    acquired: list[int] = []

    class Counting(ta.LocalRateLimiter):
        async def acquire(self) -> None:
            acquired.append(1)
            await super().acquire()

    async with ta.TangoClient(NAME, KEY, base_url=BASE, rate_limiter=Counting(1000.0)) as client:
        with aioresponses() as m:
            with pytest.raises(ta.ValidationError) as e:
                await client.orders.create(order_request(utid="X123"))
            assert e.value.field == "utid"
            assert not m.requests
    assert acquired == []


# --- resends ---------------------------------------------------------------------------------


RESEND_URL = f"{ORDER_URL}/resends"


async def test_resend_5xx_and_timeouts_are_not_retried(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(RESEND_URL, status=500, payload=tango_error(500, "500.000"), repeat=True)
        with pytest.raises(ta.ServerError):
            await mocked_client.orders.resend("RA230101-1234-56")
        assert len(calls(m, "POST", RESEND_URL)) == 1
    # the 5xx may have delivered it: the cooldown holds
    with pytest.raises(ta.ResendCooldownError):
        await mocked_client.orders.resend("RA230101-1234-56")


async def test_resend_connect_failure_before_sending_is_retried(
    mocked_client: ta.TangoClient,
) -> None:
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("api.test.invalid", 443, True, True, None, None, None)
    with aioresponses() as m:
        m.post(RESEND_URL, exception=aiohttp.ClientConnectorError(key, OSError(111, "refused")))
        m.post(RESEND_URL, status=201, payload={"id": 7, "createdAt": "2024-03-25T22:46:39.922Z"})
        resend = await mocked_client.orders.resend("RA230101-1234-56", new_email="b@example.com")
    assert resend.id == 7
    bodies = [sent_json(c) for c in calls(m, "POST", RESEND_URL)]
    assert bodies == [{"newEmail": "b@example.com"}] * 2


async def test_resend_connect_failure_releases_the_cooldown() -> None:
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("api.test.invalid", 443, True, True, None, None, None)
    async with ta.TangoClient(NAME, KEY, base_url=BASE, max_retries=0) as client:
        with aioresponses() as m:
            m.post(RESEND_URL, exception=aiohttp.ClientConnectorError(key, OSError(111, "x")))
            m.post(RESEND_URL, status=201, payload={"id": 1})
            with pytest.raises(ta.APIConnectionError) as e:
                await client.orders.resend("RA230101-1234-56")
            assert e.value.maybe_sent is False
            assert (await client.orders.resend("RA230101-1234-56")).id == 1


async def test_line_item_resend_wire_names(mocked_client: ta.TangoClient) -> None:
    url = f"{BASE}/lineItems/U1234/resends"
    with aioresponses() as m:
        m.post(
            url,
            status=201,
            payload={
                "id": 3,
                "deliveryMethod": "PHONE",
                "reasonCode": "OTHER",
                "otherReason": "asked",
                "newThing": 1,
            },
        )
        r = await mocked_client.line_items.resend(
            "U1234",
            new_delivery_method="PHONE",
            new_mobile_number="+14155550100",
            reason_code=ta.ResendReasonCode.OTHER,
            other_reason="asked",
        )
    assert r.delivery_method == "PHONE" and r.reason_code == "OTHER"
    assert sent_json(calls(m, "POST", url)[0]) == {
        "newDeliveryMethod": "PHONE",
        "newMobileNumber": "+14155550100",
        "reasonCode": "OTHER",
        "otherReason": "asked",
    }


async def test_order_resend_wire_names(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(RESEND_URL, status=201, payload={"id": 3})
        await mocked_client.orders.resend(
            "RA230101-1234-56",
            new_mobile="+14155550100",
            new_delivery_method="PHONE",
            new_etid="E000000",
        )
    assert sent_json(calls(m, "POST", RESEND_URL)[0]) == {
        "newMobile": "+14155550100",
        "newDeliveryMethod": "PHONE",
        "newEtid": "E000000",
    }


# --- logging ---------------------------------------------------------------------------------


async def test_each_attempt_logged_at_debug_without_secrets(
    mocked_client: ta.TangoClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tango_async")
    reward = {
        "credentials": {"Code": "SECRET-CODE-1"},
        "credentialList": [
            {"label": "Code", "value": "SECRET-CODE-1", "type": "text"},
            {"label": "Link", "value": "https://redeem.example/SECRETLINK", "type": "url"},
        ],
    }
    with aioresponses() as m:
        m.get(ORDER_URL, status=503, headers={"X-Request-Id": "rid-9"})
        m.get(ORDER_URL, payload={**ORDER, "reward": reward})
        order = await mocked_client.orders.get("RA230101-1234-56")
    attempts = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(attempts) == 2
    first = attempts[0].getMessage()
    assert "GET /orders/RA230101-1234-56 -> 503" in first
    assert "attempt=1" in first and "elapsed_ms=" in first and "request_id=rid-9" in first
    assert "attempt=2" in attempts[1].getMessage()
    text = caplog.text + repr(order) + str(order)
    for secret in (KEY, "SECRET-CODE-1", "SECRETLINK", "Basic "):
        assert secret not in text


def test_tango_log_env_turns_on_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("tango_async")
    saved = (logger.level, list(logger.handlers))
    try:
        monkeypatch.setenv("TANGO_LOG", "debug")
        ta.TangoClient(NAME, KEY)
        ta.TangoClient(NAME, KEY)
        assert logger.level == logging.DEBUG
        assert sum(getattr(h, "_tango_async", False) for h in logger.handlers) == 1
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]


def test_requests_decode_from_their_own_wire_json() -> None:
    """Requests round-trip through wire JSON (bulk inputs are read that way)."""
    import msgspec

    from tango_async._codec import ENCODER
    from tango_async._validation import prepare_order

    req = order_request(
        delivery_method=ta.DeliveryMethod.ADDRESS,
        external_ref_id="r-1",
        recipient=ta.Recipient(
            first_name="Ann",
            last_name="Lee",
            address=ta.Address("1 Main St", "Town", "CA", "12345", "US"),
        ),
    )
    wire = ENCODER.encode(prepare_order(req))
    back = msgspec.json.decode(wire, type=ta.CreateOrderRequest)
    assert prepare_order(back) == prepare_order(req)
    for t in (ta.OrderResendRequest, ta.LineItemResendRequest):
        assert (
            msgspec.json.decode(b'{"newDeliveryMethod": "EMAIL"}', type=t).new_delivery_method
            == ta.DeliveryMethod.EMAIL
        )


async def test_list_page_with_nulls_stops_cleanly(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(re.compile(r".*/orders\?.*"), payload={"page": None, "orders": None})
        got = [o async for o in mocked_client.orders.list()]
    assert got == []
    with aioresponses() as m:
        m.get(re.compile(r".*/orders\?.*"), payload={"orders": [ORDER, None]})
        pages = [p async for p in mocked_client.orders.list().pages()]
    assert [len(p.orders) for p in pages] == [1]
    assert pages[0].total_count == 1 and pages[0].number == 0
