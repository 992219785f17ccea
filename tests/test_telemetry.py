"""Issue 16, point 2: request/response hooks and OpenTelemetry spans and metrics, against
the local sandbox, checked with opentelemetry-sdk's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock

from .conftest import BASE, FAST_RETRY, KEY, NAME, sandbox_order

pytest.importorskip("opentelemetry.sdk")


from .otel_support import Otel

ACCOUNT = "sandbox-account"


def request(**kw: Any) -> ta.CreateOrderRequest:
    return sandbox_order(**{"amount": Decimal("12.34"), **kw})


@pytest.fixture
async def sandbox() -> Any:
    async with Sandbox(order_rate=None, resend_cooldown=0.2) as sb:
        yield sb


# --- plain hooks ------------------------------------------------------------------------------


async def test_hooks_see_every_attempt_with_its_retry(sandbox: Sandbox) -> None:
    seen: list[ta.RequestEvent | ta.ResponseEvent] = []
    async with sandbox.client(
        retry=FAST_RETRY, on_request=seen.append, on_response=[seen.append]
    ) as tango:
        sandbox.inject("GET /accounts/*", "503")
        await tango.accounts.get(ACCOUNT)
    first, answer, second, done = seen
    assert isinstance(first, ta.RequestEvent) and isinstance(second, ta.RequestEvent)
    assert (first.attempt, second.attempt) == (1, 2)
    assert first.route == "GET /accounts/{id}" and first.path == f"/accounts/{ACCOUNT}"
    assert first.operation == "read" and first.slot_wait >= 0
    assert isinstance(answer, ta.ResponseEvent) and isinstance(done, ta.ResponseEvent)
    assert answer.status_code == 503 and answer.error is not None
    assert answer.retry_reason == "server_error" and answer.retry_delay > 0
    assert answer.request_id is not None
    assert done.status_code == 200 and done.error is None and done.retry_reason is None
    assert done.request_id == done.headers["X-Request-Id"]
    assert done.elapsed >= 0


async def test_hooks_see_a_429_and_the_last_failure(sandbox: Sandbox) -> None:
    answers: list[ta.ResponseEvent] = []
    policy = FAST_RETRY.with_options(max_retries=1)
    async with sandbox.client(retry=policy, on_response=answers.append) as tango:
        sandbox.inject("POST /orders", "429", retry_after=0)
        sandbox.inject("POST /orders", "500")
        with pytest.raises(ta.APIError):
            await tango.orders.create(request())
    assert [a.status_code for a in answers] == [429, 500]
    assert answers[0].retry_reason == "rate_limited"
    assert answers[1].retry_reason is None  # the budget is spent: not retried
    assert all(a.route == "POST /orders" for a in answers)


async def test_a_failing_hook_never_fails_the_call(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(event: object) -> None:
        raise RuntimeError("secret-looking text sk_live_123")

    async with sandbox.client(on_request=boom, on_response=boom) as tango:
        made = await tango.orders.create(request())
        await tango.orders.get(made.reference_order_id)
    assert made.created
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "hook" in r.message]
    assert len(warnings) == 2  # once per hook and kind, not once per call
    assert all("RuntimeError" in r.message for r in warnings)
    assert "sk_live_123" not in caplog.text


def test_hooks_are_checked() -> None:
    async def later(event: object) -> None:
        pass

    for bad, field in (
        (later, "on_request"),
        ([later], "on_request"),
        ("print", "on_request"),
        ([1], "on_request"),
    ):
        with pytest.raises(ta.ValidationError) as caught:
            ta.TangoClient(NAME, KEY, base_url=BASE, on_request=bad)  # type: ignore[arg-type]
        assert caught.value.field == field
    with pytest.raises(ta.ValidationError) as caught:
        ta.TangoClient(NAME, KEY, base_url=BASE, on_response=later)
    assert caught.value.field == "on_response"
    with pytest.raises(ta.ValidationError) as caught:
        ta.TangoClient(NAME, KEY, base_url=BASE, telemetry="yes")  # type: ignore[arg-type]
    assert caught.value.field == "telemetry"


async def test_hooks_see_a_cancelled_attempt() -> None:
    answers: list[ta.ResponseEvent] = []
    async with (
        Sandbox(order_rate=None, latency=5) as sb,
        sb.client(on_response=answers.append) as tango,
    ):
        task = asyncio.create_task(tango.accounts.get(ACCOUNT))
        while not sb.requests:  # noqa: ASYNC110 - the sandbox has no event for it
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    [answer] = answers
    assert answer.status_code is None and answer.error == "CancelledError"


async def test_hooks_are_shared_by_views(sandbox: Sandbox) -> None:
    routes: list[str] = []
    async with sandbox.client(on_request=lambda e: routes.append(e.route)) as tango:
        await tango.with_options(timeout=3).accounts.get(ACCOUNT)
        await tango.with_raw_response.accounts.list()
    assert routes == ["GET /accounts/{id}", "GET /accounts"]


async def test_slot_wait_is_reported_for_paced_creates() -> None:
    waits: list[float] = []
    async with (
        Sandbox(order_rate=None) as sb,
        sb.client(order_rate=20.0, on_request=lambda e: waits.append(e.slot_wait)) as tango,
    ):
        for _ in range(3):
            await tango.orders.create(request())
    assert len(waits) == 3 and max(waits) > 0.02  # 20/s: about 50 ms apart


# --- OpenTelemetry ----------------------------------------------------------------------------


async def test_spans_per_call_and_attempt(sandbox: Sandbox) -> None:
    otel = Otel()
    async with sandbox.client(retry=FAST_RETRY, telemetry=otel.telemetry) as tango:
        sandbox.inject("POST /orders", "503")
        made = await tango.orders.create(request())
        await tango.orders.get(made.reference_order_id)
    spans = otel.spans()
    names = [s.name for s in spans]
    assert names == [
        "POST /orders",
        "POST /orders",
        "tango POST /orders",
        "GET /orders/{id}",
        "tango GET /orders/{id}",
    ]
    call = spans[2]
    first, second = spans[0], spans[1]
    assert first.parent is not None and first.parent.span_id == call.context.span_id
    assert second.parent is not None and second.parent.span_id == call.context.span_id
    assert call.parent is None
    assert call.attributes is not None and first.attributes is not None
    assert second.attributes is not None
    assert call.attributes["url.template"] == "/orders"
    assert call.attributes["http.request.method"] == "POST"
    assert call.attributes["http.response.status_code"] == 201
    assert call.attributes["tango.attempts"] == 2
    assert call.attributes["tango.operation"] == "create"
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["tango.retry.reason"] == "server_error"
    assert first.attributes["tango.attempt"] == 1
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert "tango.wait.rate_slot" in second.attributes
    assert isinstance(second.attributes["tango.request_id"], str)
    get = spans[4]
    assert get.attributes is not None and get.attributes["url.template"] == "/orders/{id}"

    # never an ID, an amount, the recipient or the key, anywhere
    forbidden = (made.reference_order_id, made.external_ref_id, "12.34", "ann@example.com")
    for span in spans:
        text = repr(dict(span.attributes or {})) + span.name
        for word in forbidden:
            assert word not in text
        assert sandbox.platform_key is None or sandbox.platform_key not in text


async def test_metrics() -> None:
    otel = Otel()
    # frozen: the route's pacing after the 429 takes no real time
    clock = SandboxClock(frozen=True)
    async with (
        Sandbox(order_rate=None, clock=clock) as sandbox,
        sandbox.client(retry=FAST_RETRY, telemetry=otel.telemetry) as tango,
    ):
        sandbox.inject("GET /accounts/*", "429", retry_after=0)
        sandbox.inject("GET /accounts/*", "503")
        await tango.accounts.get(ACCOUNT)
    metrics = otel.metrics()
    requests = {
        attrs.get("http.response.status_code"): value
        for attrs, value in metrics["tango.client.requests"]
    }
    assert requests == {429: 1, 503: 1, 200: 1}
    reasons = {a["tango.retry.reason"]: v for a, v in metrics["tango.client.retries"]}
    assert reasons == {"rate_limited": 1, "server_error": 1}
    [(attrs, limited)] = metrics["tango.client.rate_limited"]
    assert limited == 1 and attrs["url.template"] == "/accounts/{id}"
    [(_, (count, _total))] = metrics["tango.client.slot_wait"]
    assert count == 3
    assert "tango.client.attempt.duration" in metrics


async def test_cooldown_wait_is_on_the_call_span(sandbox: Sandbox) -> None:
    otel = Otel()
    async with sandbox.client(telemetry=otel.telemetry) as tango:  # its 0.2 s cooldown
        made = await tango.orders.create(request())
        await tango.orders.resend(made.reference_order_id)
        await tango.orders.resend(made.reference_order_id, wait=True)
    resends = [s for s in otel.spans() if s.name == "tango POST /orders/{id}/resends"]
    assert len(resends) == 2
    assert resends[0].attributes is not None and resends[1].attributes is not None
    assert resends[0].attributes["tango.wait.cooldown"] == 0
    assert resends[1].attributes["tango.wait.cooldown"] > 0


async def test_a_failed_call_is_an_error_span(sandbox: Sandbox) -> None:
    otel = Otel()
    async with sandbox.client(telemetry=otel.telemetry) as tango:
        with pytest.raises(ta.NotFoundError):
            await tango.orders.get("RA000000-0000-00")
    attempt, call = otel.spans()
    assert call.status.status_code.name == "ERROR"
    assert call.attributes is not None and call.attributes["error.type"] == "NotFoundError"
    assert attempt.attributes is not None
    assert attempt.attributes["http.response.status_code"] == 404


async def test_telemetry_true_uses_the_global_providers(sandbox: Sandbox) -> None:
    async with sandbox.client(telemetry=True) as tango:  # the API's no-op providers
        assert (await tango.accounts.get(ACCOUNT)).account_identifier == ACCOUNT


def test_telemetry_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ta.ValidationError) as caught:
        ta.TangoClient(NAME, KEY, base_url=BASE, telemetry=True)
    assert caught.value.field == "telemetry" and "tango-async[otel]" in str(caught.value)


def test_nothing_of_opentelemetry_is_imported_unless_asked() -> None:
    code = (
        "import sys, tango_async as ta\n"
        "ta.TangoClient('n', 'k', base_url='https://api.test.invalid/raas/v2')\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_a_hook_raising_cancelled_after_a_201_loses_no_order(sandbox: Sandbox) -> None:
    """Money: a hook that raises CancelledError (or any BaseException) on the answer of an
    order creation must not turn the 201 into a "cancelled before the answer": the order
    is returned, not forgotten and sent again under a new externalRefID."""

    def cancel(event: ta.ResponseEvent) -> None:
        raise asyncio.CancelledError

    def interrupt(event: ta.RequestEvent) -> None:
        raise KeyboardInterrupt

    async with sandbox.client(on_request=interrupt, on_response=cancel) as tango:
        made = await tango.orders.create(request())
        assert made.created
        assert await tango.orders.unresolved() == []
        assert len([o async for o in tango.orders.list()]) == 1
