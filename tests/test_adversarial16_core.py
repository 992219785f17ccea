"""Issue 16, points 1 and 2, attacked: ``with_raw_response``, ``with_options``, the hooks
and OpenTelemetry, as a careless user and a hostile server would use them. Each test
is the reproduction of a problem found (or of an attack that held), kept as a
regression test. Against the local sandbox on loopback, aioresponses, or a bare asyncio
server where a header must be one no well-behaved server sends."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import re
import textwrap
import warnings
import weakref
from collections.abc import AsyncIterator, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

import tango_async as ta
from tango_async._telemetry import call_route
from tango_async.testing import Sandbox

from .conftest import BASE, FAST_RETRY, KEY, NAME, SANDBOX_ACCOUNT, SANDBOX_CUSTOMER, sandbox_order

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from tango_async.otel import Telemetry

from .otel_support import Otel

CUSTOMER, ACCOUNT = SANDBOX_CUSTOMER, SANDBOX_ACCOUNT
AMOUNT = Decimal("12.34")
EMAIL = "ann@example.com"


def request(**kw: Any) -> ta.CreateOrderRequest:
    return sandbox_order(**{"amount": AMOUNT, **kw})


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None, resend_cooldown=0.2) as sb:
        yield sb


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tango_async" and r.levelno == logging.WARNING
    ]


# --- observers that misbehave -----------------------------------------------------------------


def test_telemetry_given_the_class_instead_of_an_instance_is_refused() -> None:
    """Found: ``telemetry=Telemetry`` (without the parentheses) passed the Instrument check
    (the class has a ``call`` attribute), and then every call's ``Telemetry.call(...)``
    raised TypeError, logged once and ignored: no span, no metric, ever, in silence."""
    with pytest.raises(ta.ValidationError) as caught:
        ta.TangoClient(NAME, KEY, base_url=BASE, telemetry=Telemetry)  # type: ignore[arg-type]
    assert caught.value.field == "telemetry" and "instance" in str(caught.value)


async def test_a_failing_trace_is_logged_once_not_once_per_call(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Found: a failure of an instrument's per-call trace was keyed by the trace (a new
    object on every call), so it was logged on every call, and after 1000 calls the
    complaints set was full: nothing at all was logged any more, a new hook's failure
    included."""

    class BrokenTrace:
        def attempt(self, event: ta.RequestEvent) -> None:
            raise ValueError("broken")

        def answered(self, event: ta.ResponseEvent) -> None:
            raise ValueError("broken")

        def end(self, status_code: int | None, error: BaseException | None) -> None:
            raise ValueError("broken")

    class Broken:
        def call(
            self, method: str, route: str, operation: str, *, cooldown_wait: float = 0.0
        ) -> BrokenTrace:
            return BrokenTrace()

    async with sandbox.client(telemetry=Broken()) as tango:
        for _ in range(10):
            assert (await tango.accounts.get(ACCOUNT)).account_identifier == ACCOUNT
    logged = warnings_of(caplog)
    assert len(logged) == 1, logged  # the instrument, once (one kind of event: "instrument")
    assert "Broken" in logged[0] and "ValueError" in logged[0]


async def test_a_failing_hook_is_named_never_shown_by_its_repr(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Found: the warning for a failing hook showed the hook's repr: a
    ``functools.partial(send, api_key)`` (the usual way to bind a credential to a
    callback) put the key in the log."""

    def send(api_key: str, event: object) -> None:
        raise RuntimeError("down")

    class Sink:
        def __init__(self, token: str) -> None:
            self.token = token

        def __call__(self, event: object) -> None:
            raise RuntimeError("down")

        def __repr__(self) -> str:
            return f"Sink(token={self.token!r})"

    hooks = [functools.partial(send, "sk_live_PARTIAL_SECRET"), Sink("sk_live_REPR_SECRET")]
    async with sandbox.client(on_request=hooks) as tango:
        await tango.accounts.get(ACCOUNT)
    logged = warnings_of(caplog)
    assert len(logged) == 2
    assert "SECRET" not in caplog.text
    assert any("send" in m for m in logged) and any("Sink" in m for m in logged)


async def test_a_hook_returning_a_coroutine_is_told_not_lost_in_silence(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Found: ``on_response=lambda e: queue.put(e)`` (asyncio.Queue.put is a coroutine
    function, the lambda is not) passed the check, and every event was lost: the
    coroutine was never awaited (a RuntimeWarning when collected, nothing else). Now the
    coroutine is closed (no warning) and the hook named in the log, once."""
    queue: asyncio.Queue[ta.ResponseEvent] = asyncio.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        async with sandbox.client(on_response=lambda e: queue.put(e)) as tango:
            for _ in range(3):
                await tango.accounts.get(ACCOUNT)
        gc.collect()
    logged = warnings_of(caplog)
    assert len(logged) == 1 and "awaitable" in logged[0], logged


async def test_a_hook_that_schedules_a_task_is_left_alone(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The pattern the docs give for async work, ``lambda e: loop.create_task(...)``,
    returns a Task: it runs, and nothing is logged about it."""
    seen: list[int | None] = []

    async def record(event: ta.ResponseEvent) -> None:
        seen.append(event.status_code)

    tasks: list[asyncio.Task[None]] = []

    def schedule(event: ta.ResponseEvent) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(record(event))
        tasks.append(task)
        return task

    async with sandbox.client(on_response=schedule) as tango:
        await tango.accounts.get(ACCOUNT)
        await asyncio.gather(*tasks)
    assert seen == [200] and warnings_of(caplog) == []


async def test_attempt_numbers_grow_after_an_oauth_401(sandbox: Sandbox) -> None:
    """Found: the attempt sent again with a new token after a 401 is outside the retry
    budget, and the hooks and spans were told ``attempt=1`` twice (no resend count on
    the span) while ``RawResponse.attempts`` said 2."""
    attempts: list[int] = []
    async with sandbox.client(oauth=True, on_request=lambda e: attempts.append(e.attempt)) as t:
        await t.accounts.get(ACCOUNT)  # a token, fetched
        sandbox.revoke_tokens()
        raw = await t.with_raw_response.accounts.get(ACCOUNT)
    assert raw.status_code == 200 and raw.attempts == 2
    assert attempts == [1, 1, 2]


async def test_a_broken_tracer_and_meter_fail_no_call_and_leak_no_context(
    sandbox: Sandbox,
) -> None:
    """A tracer whose spans raise on every method and a meter whose instruments raise:
    every call still answers, every span that was started is ended, and no span is
    left current in the caller's context afterwards (the attempt's span is attached
    while it is sent)."""
    started: list[Any] = []

    class BadSpan:
        def __init__(self, real: Any) -> None:
            self.real = real
            self.ended = False

        def set_attributes(self, attributes: Any) -> None:
            raise RuntimeError("tracer down")

        def set_attribute(self, key: str, value: Any) -> None:
            raise RuntimeError("tracer down")

        def set_status(self, status: Any) -> None:
            raise RuntimeError("tracer down")

        def end(self) -> None:
            self.ended = True
            self.real.end()

        def get_span_context(self) -> Any:
            return self.real.get_span_context()

        def is_recording(self) -> bool:
            return True

    class BadTracer:
        def __init__(self, real: Any) -> None:
            self.real = real

        def start_span(self, name: str, **kw: Any) -> Any:
            span = BadSpan(self.real.start_span(name, **kw))
            started.append(span)
            return span

    class BadInstrument:
        def add(self, *a: Any, **kw: Any) -> None:
            raise RuntimeError("meter down")

        record = add

    otel = Otel()
    telemetry = otel.telemetry
    telemetry._tracer = BadTracer(telemetry._tracer)
    for name in ("_requests", "_retries", "_rate_limited", "_slot_wait", "_duration"):
        setattr(telemetry, name, BadInstrument())
    before = otel_trace.get_current_span()
    async with sandbox.client(telemetry=telemetry, retry=FAST_RETRY) as tango:
        sandbox.inject("GET /accounts/*", "503")
        assert (await tango.accounts.get(ACCOUNT)).account_identifier == ACCOUNT
        made = await tango.orders.create(request())
        assert made.created
        raw = await tango.with_raw_response.orders.get(made.reference_order_id)
        assert raw.status_code == 200
        assert otel_trace.get_current_span() is before
    assert started and all(s.ended for s in started)
    assert len(otel.spans()) == len(started)  # each exported once ended


async def test_a_hook_that_closes_the_client_mid_create_loses_and_doubles_nothing(
    sandbox: Sandbox,
) -> None:
    """An on_request hook that schedules ``tango.close()`` while an order's POST is being
    answered: the create ends with ClientClosedError, its outcome unknown and the
    externalRefID remembered; the same content created again (another client on the same
    store) settles it. One order on the server, never two, never none."""
    store = ta.LocalUnresolvedStore()
    sandbox.latency = 0.2  # the answer is held: the client closes while it waits for it
    closing: list[asyncio.Task[None]] = []

    def close_soon(event: ta.RequestEvent) -> None:
        if event.method == "POST":
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, lambda: closing.append(asyncio.ensure_future(tango.close())))

    tango = sandbox.client(on_request=close_soon, unresolved_store=store, retry=FAST_RETRY)
    with pytest.raises(ta.ClientClosedError) as caught:
        await tango.with_raw_response.orders.create(request())
    await asyncio.gather(*closing)
    assert caught.value.outcome_unknown is True
    [kept] = await store.list()
    sandbox.latency = 0.0
    async with sandbox.client(unresolved_store=store) as again:
        settled = await again.with_raw_response.orders.create(request())
    assert settled.parse().external_ref_id == kept.external_ref_id
    assert settled.status_code == 200 and not settled.parse().created
    assert len(sandbox.orders) == 1


# --- money through views and raw calls ----------------------------------------------------------


async def test_a_raw_create_cancelled_mid_flight_is_remembered_and_settled(
    sandbox: Sandbox,
) -> None:
    """Cancelled while its POST is answered: the raw create's order exists on the server;
    the client remembers it, and the next equal create (plain, or through a view) reuses
    its externalRefID and gets the existing order."""
    sandbox.latency = 5  # held far longer than the test waits
    async with sandbox.client(retry=FAST_RETRY) as tango:
        task = asyncio.create_task(tango.with_raw_response.orders.create(request()))
        while not sandbox.orders:  # noqa: ASYNC110 - the sandbox has no event for it
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [unknown] = await tango.orders.unresolved()
        sandbox.latency = 0.0
        again = await tango.with_options(timeout=10).with_raw_response.orders.create(request())
        assert again.parse().external_ref_id == unknown.external_ref_id
        assert not again.parse().created and again.status_code == 200
        assert await tango.orders.unresolved() == []
    assert len(sandbox.orders) == 1


async def test_equal_creates_through_client_view_and_raw_at_once_reuse_one_ref_once(
    sandbox: Sandbox,
) -> None:
    """An earlier attempt with an unknown outcome, then three equal creates at once: one
    through the client, one through a view, one raw. The views share the client's
    creates in flight, so exactly one of them reuses the earlier externalRefID (settling
    it) and the two others are new orders: three orders asked for, three made."""
    async with sandbox.client(retry=FAST_RETRY.with_options(max_retries=0)) as tango:
        sandbox.inject("POST /orders", "503-after-commit")
        with pytest.raises(ta.APIError) as caught:
            await tango.orders.create(request())
        earlier = caught.value.external_ref_id
        assert caught.value.outcome_unknown and earlier
        sandbox.latency = 0.05  # the three overlap
        results = await asyncio.gather(
            tango.orders.create(request()),
            tango.with_options(timeout=10).orders.create(request()),
            tango.with_raw_response.orders.create(request()),
        )
        sandbox.latency = 0.0
    made = [r.parse() if isinstance(r, ta.RawResponse) else r for r in results]
    refs = [m.external_ref_id for m in made]
    assert len(set(refs)) == 3 and refs.count(earlier) == 1
    assert sorted(m.created for m in made) == [False, True, True]
    assert len(sandbox.orders) == 3


async def test_concurrent_raw_calls_each_get_their_own_answer(sandbox: Sandbox) -> None:
    """Twenty raw calls at once, on one client: each RawResponse is its own call's
    answer (path, request ID, result), never another's."""
    async with sandbox.client(retry=FAST_RETRY) as tango:
        made = [await tango.orders.create(request()) for _ in range(5)]
        raw = tango.with_raw_response
        calls: list[Coroutine[Any, Any, ta.RawResponse[Any]]] = [
            raw.orders.get(m.reference_order_id) for m in made * 2
        ]
        calls += [raw.accounts.get(ACCOUNT) for _ in range(5)]
        calls += [raw.customers.accounts(CUSTOMER) for _ in range(5)]
        answers = await asyncio.gather(*calls)
    for i, m in enumerate(made * 2):
        assert answers[i].path == f"/orders/{m.reference_order_id}"
        assert answers[i].parse().reference_order_id == m.reference_order_id
        assert m.reference_order_id.encode() in answers[i].content
    assert all(a.path == f"/accounts/{ACCOUNT}" for a in answers[10:15])
    assert all(a.path == f"/customers/{CUSTOMER}/accounts" for a in answers[15:])
    ids = [a.request_id for a in answers]
    assert None not in ids and len(set(ids)) == len(ids)


async def test_a_raw_first_page_cancelled_mid_page_leaves_nothing_running(
    sandbox: Sandbox,
) -> None:
    """A raw ``orders.list()`` cancelled while its first page is answered: CancelledError,
    no task of it left behind, and the next raw list works."""
    async with sandbox.client(retry=FAST_RETRY) as tango:
        await tango.orders.create(request())
        sandbox.latency = 5
        before = asyncio.all_tasks()
        task = asyncio.create_task(tango.with_raw_response.orders.list())
        while not sandbox.arrivals("GET", "/orders", exact=True):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() - before if not _servers(t)] == []
        sandbox.latency = 0.0
        page = await tango.with_raw_response.orders.list()
        assert page.status_code == 200 and len(page.parse().orders) == 1


def _servers(task: asyncio.Task[Any]) -> bool:
    """A task of the sandbox's HTTP server (its answer held by ``latency``)."""
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "aiohttp/web" in code.co_filename


async def test_raw_views_are_collected_after_their_call(sandbox: Sandbox) -> None:
    """with_raw_response makes a view per call: nothing keeps it once the call returned
    (memory stays flat over a long run)."""
    seen: list[weakref.ref[Any]] = []
    async with sandbox.client() as tango:
        make = tango._view

        def spy(**kw: Any) -> ta.TangoClient:
            view = make(**kw)
            seen.append(weakref.ref(view))
            return view

        tango._view = spy  # type: ignore[method-assign]
        for _ in range(20):
            await tango.with_raw_response.accounts.get(ACCOUNT)
            await tango.with_options(timeout=5).with_raw_response.accounts.list()
        gc.collect()
        assert len(seen) >= 40 and all(ref() is None for ref in seen)


# --- views and the client's lifecycle -------------------------------------------------------------


async def test_closing_the_client_ends_calls_waiting_in_its_views(sandbox: Sandbox) -> None:
    """A view's call and a raw call, each waiting in a back-off of 30 s: closing the
    client ends both at once with ClientClosedError, nothing more sent; the view and the
    raw calls stay closed afterwards."""
    slow = ta.RetryPolicy(initial_delay=30, max_delay=30, jitter=0)
    sandbox.inject("GET /accounts/*", "503", times=2)
    tango = sandbox.client(retry=slow)
    view = tango.with_options(timeout=5)
    waiting = [
        asyncio.create_task(view.accounts.get(ACCOUNT)),
        asyncio.create_task(tango.with_raw_response.accounts.get(ACCOUNT)),
    ]
    while len(sandbox.arrivals("GET", f"/accounts/{ACCOUNT}")) < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await view.close()  # a view's close is nothing
    assert not tango.closed
    await tango.close()
    for task in waiting:
        with pytest.raises(ta.ClientClosedError):
            await asyncio.wait_for(task, 5)
    assert view.closed
    with pytest.raises(ta.ClientClosedError):
        await view.accounts.get(ACCOUNT)
    with pytest.raises(ta.ClientClosedError):
        await view.with_raw_response.accounts.get(ACCOUNT)
    assert len(sandbox.arrivals("GET", f"/accounts/{ACCOUNT}")) == 2


def test_a_view_used_in_another_event_loop_is_refused_like_its_client() -> None:
    """A client first used in one event loop: its views, and raw calls, from another
    loop raise ClientClosedError (the session belongs to the first loop)."""
    with aioresponses() as mocked:
        mocked.get(
            re.compile(r".*/accounts/acct-12345$"),
            payload={
                "accountIdentifier": "acct-12345",
                "currentBalance": 10,
                "currencyCode": "USD",
                "status": "ACTIVE",
                "displayName": "x",
                "createdAt": "2024-01-01T00:00:00Z",
            },
            repeat=True,
        )
        tango = ta.TangoClient(NAME, KEY, base_url=BASE)
        first = asyncio.new_event_loop()
        first.run_until_complete(tango.accounts.get("acct-12345"))
        view = tango.with_options(timeout=5)
        other = asyncio.new_event_loop()
        try:
            for call in (
                lambda: view.accounts.get("acct-12345"),
                lambda: tango.with_raw_response.accounts.get("acct-12345"),
                lambda: view.with_raw_response.accounts.get("acct-12345"),
            ):
                with pytest.raises(ta.ClientClosedError, match="another event loop"):
                    other.run_until_complete(call())
        finally:
            other.close()
            first.run_until_complete(tango.close())
            first.close()


async def test_with_options_timeout_changes_the_view_only(sandbox: Sandbox) -> None:
    """A view's timeout is its own: its call times out on a slow answer while the
    client's own call (and a later view without a timeout) waits for it; the client's
    transport, OAuth and pacing are untouched by the view."""
    async with sandbox.client(oauth=True, timeout=5, retry=FAST_RETRY) as tango:
        await tango.accounts.get(ACCOUNT)  # a token
        auth_before = tango._transport._oauth
        sandbox.latency = 0.3
        with pytest.raises(ta.APITimeoutError):
            await tango.with_options(timeout=0.05, max_retries=0).accounts.get(ACCOUNT)
        with pytest.raises(ta.APITimeoutError):
            await tango.with_options(timeout=0.05, max_retries=0).with_raw_response.accounts.get(
                ACCOUNT
            )
        assert (await tango.accounts.get(ACCOUNT)).account_identifier == ACCOUNT
        assert (await tango.with_options(max_retries=0).accounts.get(ACCOUNT)) is not None
        assert tango._transport.timeout == 5 and tango.retry == FAST_RETRY
        assert tango._transport._oauth is auth_before
        assert tango.with_options(timeout=1)._transport.pacing is tango._transport.pacing
    assert len(sandbox.token_requests) == 1  # one token for the client and every view


async def test_views_share_the_resend_cooldown(sandbox: Sandbox) -> None:
    """A resend through a view claims the cooldown the client (and a raw call) honour."""
    async with sandbox.client(retry=FAST_RETRY) as tango:
        made = await tango.orders.create(request())
        await tango.with_options(timeout=5).orders.resend(made.reference_order_id)
        with pytest.raises(ta.ResendCooldownError):
            await tango.orders.resend(made.reference_order_id)
        with pytest.raises(ta.ResendCooldownError):
            await tango.with_raw_response.orders.resend(made.reference_order_id)


# --- what observers are told ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/orders/RA1-23-45", "GET /orders/{id}"),
        ("POST", "/orders/RA1-23-45/resends", "POST /orders/{id}/resends"),
        ("GET", "/orders?externalRefID=secret-ref", "GET /orders"),
        ("GET", "/lineItems/reasonCodes", "GET /lineItems/reasonCodes"),
        ("GET", "/lineItems/LI1-2", "GET /lineItems/{id}"),
        ("POST", "/lineItems/LI1-2/resends", "POST /lineItems/{id}/resends"),
        ("GET", "/webhooks/eventtypes", "GET /webhooks/eventtypes"),
        ("POST", "/webhooks/wh-1/tests/ORDER_CREATED", "POST /webhooks/{id}/tests/{id}"),
        ("GET", "/customers/c1/accounts", "GET /customers/{id}/accounts"),
        (
            "DELETE",
            "/customers/c1/accounts/a1/lowbalance/b1",
            "DELETE /customers/{id}/accounts/{id}/lowbalance/{id}",
        ),
        ("GET", "/catalogs", "GET /catalogs"),
        ("GET", "/exchangerates", "GET /exchangerates"),
        ("GET", "/choiceProducts/cp%2F1/catalog", "GET /choiceProducts/{id}/catalog"),
    ],
)
def test_route_templates(method: str, path: str, route: str) -> None:
    """Found: the API's fixed sub-paths took the place of an ID, so ``GET
    /lineItems/reasonCodes`` and ``GET /webhooks/eventtypes`` were reported (span names,
    url.template, metrics, hooks) as ``GET /lineItems/{id}`` / ``GET /webhooks/{id}``."""
    assert call_route(method, path) == route


async def test_spans_metrics_and_routes_hold_no_id_amount_email_or_secret(
    sandbox: Sandbox,
) -> None:
    """Every kind of call, raw and plain, with its failures: no span name, span attribute
    or metric attribute holds an order, line item, customer, account, webhook or
    externalRefID, an amount, an email, a credential or the query; the hooks' route
    neither (their path does, as documented)."""
    otel = Otel()
    routes: list[str] = []
    sensitive: set[str] = {KEY, EMAIL, "12.34", CUSTOMER, ACCOUNT}
    async with sandbox.client(
        telemetry=otel.telemetry,
        retry=FAST_RETRY,
        on_request=lambda e: routes.append(e.route),
        on_response=lambda e: routes.append(e.route),
    ) as tango:
        raw = tango.with_raw_response
        sandbox.inject("POST /orders", "500-after-commit")
        made = (await raw.orders.create(request())).parse()
        order = await tango.orders.get(made.reference_order_id)
        sensitive |= {made.reference_order_id, made.external_ref_id or "?"}
        sensitive.add(order.reference_line_item_id or "?")
        await raw.orders.list(external_ref_id=made.external_ref_id)
        await raw.orders.resend(made.reference_order_id)
        await tango.orders.resolve(made.external_ref_id or "")
        await raw.line_items.get(order.reference_line_item_id or "")
        await raw.line_items.reason_codes()
        await raw.accounts.get(ACCOUNT)
        await raw.customers.accounts(CUSTOMER)
        await raw.customers.low_balance_alerts.list(CUSTOMER, ACCOUNT)
        hook = (
            await raw.webhooks.create(
                "https://example.com/hook", categories=["ORDER"], verification="NONE"
            )
        ).parse()
        sensitive.add(hook.webhook_id or "?")
        await raw.webhooks.get(hook.webhook_id or "")
        await raw.webhooks.event_types()
        with pytest.raises(ta.NotFoundError):
            await raw.orders.get("RA999-99-99")
        sensitive.add("RA999-99-99")
    texts = [s.name for s in otel.spans()]
    for span in otel.spans():
        for k, v in dict(span.attributes or {}).items():
            texts += [str(k), str(v)]
    texts += otel.metric_texts() + routes
    leaks = [t for t in texts for s in sensitive if s and s in t]
    assert leaks == []
    assert "tango GET /lineItems/reasonCodes" in texts
    assert "tango GET /webhooks/eventtypes" in texts


async def _hostile_server(header: bytes) -> tuple[asyncio.AbstractServer, str]:
    """A server answering every request with one account and ``header`` (raw bytes)."""
    body = (
        b'{"accountIdentifier":"acct-12345","currentBalance":10,"currencyCode":"USD",'
        b'"status":"ACTIVE","displayName":"x","createdAt":"2024-01-01T00:00:00Z"}'
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await reader.read(4096)
            if not chunk:
                break
            data += chunk
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + header
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/raas/v2"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"X-Request-Id: abc\x1b[31mRED\r\n", "abc\x1b[31mRED"),
        (b"X-Request-Id: caf\xe9\r\n", "caf\udce9"),
        (b"X-Request-Id: " + b"A" * 8000 + b"\r\n", "A" * 8000),
        (b"X-Request-Id: first\r\nx-request-id: second\r\n", "first"),
    ],
    ids=["ansi", "latin-1", "huge", "twice"],
)
async def test_a_hostile_request_id_is_kept_exact_but_rendered_safely(
    header: bytes, expected: str
) -> None:
    """A request ID with an ANSI sequence, a byte that is not UTF-8 (a lone surrogate in
    Python), 8000 characters, or two headers: ``request_id`` is the header as sent (the
    first one; the support reference must be exact), the same one the hooks get; the
    RawResponse's repr is one short line (found: 8 KB), and the span's attribute is cut
    and escaped (found: raw, which an OTLP exporter cannot encode for a surrogate)."""
    server, base_url = await _hostile_server(header)
    otel = Otel()
    seen: list[str | None] = []
    try:
        async with ta.TangoClient(
            NAME,
            KEY,
            base_url=base_url,
            telemetry=otel.telemetry,
            on_response=lambda e: seen.append(e.request_id),
        ) as tango:
            raw = await tango.with_raw_response.accounts.get("acct-12345")
    finally:
        server.close()
        await server.wait_closed()
    assert raw.request_id == expected and seen == [expected]
    text = repr(raw)
    assert len(text) < 300 and text.isprintable() and "\x1b" not in text
    [attempt] = [s for s in otel.spans() if not s.name.startswith("tango ")]
    rid = str((attempt.attributes or {})["tango.request_id"])
    assert len(rid) <= 110 and rid.isprintable() and rid.encode("utf-8")


def test_with_options_refuses_bad_values_as_the_constructor_does() -> None:
    tango = ta.TangoClient(NAME, KEY, base_url=BASE)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"retry": {"max_retries": 1}}, "retry"),
    ]
    for kwargs, field in bad:
        with pytest.raises(ta.ValidationError) as caught:
            tango.with_options(**kwargs)
        assert caught.value.field == field, kwargs


def test_raw_calls_are_coroutines_to_mypy_sub_resources_included(tmp_path: Path) -> None:
    """Found: the raw calls were typed as returning ``Awaitable``, so
    ``asyncio.create_task(tango.with_raw_response.orders.get(ref))`` (a coroutine at run
    time) failed ``mypy --strict``. Every wrapper, sub-resources included, keeps its
    parameters and result type."""
    mypy_api = pytest.importorskip("mypy.api")
    source = tmp_path / "typed_raw16.py"
    source.write_text(
        textwrap.dedent(
            """
            import asyncio
            from decimal import Decimal
            from typing import assert_type
            import tango_async as ta
            from tango_async.types.webhooks import CursorPage

            async def main(tango: ta.TangoClient, req: ta.CreateOrderRequest) -> None:
                raw = tango.with_raw_response
                task = asyncio.create_task(raw.orders.get("RA1"))
                assert_type(await task, ta.RawResponse[ta.Order])
                assert_type((await raw.orders.resolve("r")).parse(), ta.CreatedOrder | None)
                assert_type(
                    (await raw.customers.accounts("c")).parse(), CursorPage[ta.Account]
                )
                assert_type(
                    (await raw.customers.accounts.list("c")).parse(), CursorPage[ta.Account]
                )
                alert = await raw.customers.low_balance_alerts.set(
                    "c", "a", display_name="x", threshold=Decimal(1), emails=["a@b.example"]
                )
                assert_type(alert.parse(), ta.LowBalanceAlert)
                assert_type((await raw.line_items.update("L", campaign="x")).parse(), None)
                assert_type((await raw.catalog.get()).parse(), ta.Catalog)
                assert_type((await raw.exchange_rates.get()).parse(), ta.ExchangeRates)
                view = tango.with_options(timeout=5, max_retries=0).with_raw_response
                assert_type((await view.orders.wait("RA1")).parse(), ta.Order)
                await raw.customers.accounts(1)  # E: wrong argument type
                await raw.orders.list(nonsense=1)  # E: unknown filter
            """
        )
    )
    out, _err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir=/dev/null", str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2, out
    assert "typed_raw16.py:28: error" in errors[0] and "typed_raw16.py:29: error" in errors[1]
    assert status == 1


async def test_a_raw_list_of_an_empty_history_is_its_empty_first_page(
    sandbox: Sandbox,
) -> None:
    """Found: ``await tango.with_raw_response.orders.list()`` on a history without orders
    (or a filter that matches none: "does this externalRefID exist?") raised a bare
    StopAsyncIteration out of the coroutine (the history yields no page for an empty
    answer). Now it is the answered page, with no orders."""
    async with sandbox.client() as tango:
        raw = tango.with_raw_response
        for answer in (
            await raw.orders.list(),
            await raw.orders.list(external_ref_id="no-such-ref"),
            await tango.with_options(timeout=5).with_raw_response.orders.list(page=2),
        ):
            assert answer.status_code == 200 and answer.request_id
            page = answer.parse()
            assert isinstance(page, ta.OrderPage)
            assert page.orders == [] and page.total_count == 0
        assert (await raw.line_items.list()).parse().line_items == []
        assert (await raw.webhooks.list()).parse().items == []


def test_telemetry_refuses_what_is_not_a_provider() -> None:
    """Found: ``Telemetry(tracer_provider=TracerProvider)`` (the class) or any other
    object raised a bare AttributeError from inside OpenTelemetry."""
    for kwargs, field in (
        ({"tracer_provider": TracerProvider}, "tracer_provider"),
        ({"tracer_provider": "console"}, "tracer_provider"),
        ({"meter_provider": MeterProvider}, "meter_provider"),
        ({"meter_provider": object()}, "meter_provider"),
    ):
        with pytest.raises(ta.ValidationError) as caught:
            Telemetry(**kwargs)
        assert caught.value.field == field


async def test_an_instrument_that_looks_empty_is_still_used(sandbox: Sandbox) -> None:
    """Found: the client dropped every instrument that was falsy (meant for hooks without
    a hook), so an instrument with ``__len__`` returning 0 was turned off in silence."""
    calls: list[str] = []

    class Recorder(list[str]):
        def call(
            self, method: str, route: str, operation: str, *, cooldown_wait: float = 0.0
        ) -> Any:
            calls.append(route)
            return ta.TangoClient  # wrong on purpose: its failures are contained

    async with sandbox.client(telemetry=Recorder()) as tango:
        await tango.accounts.get(ACCOUNT)
    assert calls == ["GET /accounts/{id}"]


async def test_a_cancelled_call_ends_its_spans_and_leaves_no_span_current() -> None:
    """A call cancelled while its attempt's span is current: both spans end (error
    CancelledError), and the caller's context is as it was."""
    otel = Otel()
    async with (
        Sandbox(order_rate=None, latency=5) as sb,
        sb.client(telemetry=otel.telemetry) as tango,
    ):
        before = otel_trace.get_current_span()
        task = asyncio.create_task(tango.with_raw_response.accounts.get(ACCOUNT))
        while not sb.requests:  # noqa: ASYNC110 - the sandbox has no event for it
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert otel_trace.get_current_span() is before
    spans = otel.spans()
    assert sorted(s.name for s in spans) == ["GET /accounts/{id}", "tango GET /accounts/{id}"]
    assert all((s.attributes or {}).get("error.type") == "CancelledError" for s in spans)


async def test_a_raw_order_never_shows_its_reward_in_repr_str_or_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The RawResponse of an order (its body holds the reward's credentials) is logged
    and printed by its repr: method, path, status, request ID, attempts; never the body."""
    caplog.set_level(logging.DEBUG, "tango_async")
    async with sandbox.client() as tango:
        made = await tango.orders.create(request())
        raw = await tango.with_raw_response.orders.get(made.reference_order_id)
        order = raw.parse()
        reward = order.reward
        assert reward is not None and reward.credential_list
        codes = [c.value for c in reward.credential_list if c.value]
        secrets = [EMAIL, *codes]
        assert codes and all(c.encode() in raw.content for c in codes)
        logging.getLogger("tango_async.test").warning("raw=%s %r %s", raw, raw, f"{raw}")
    shown = repr(raw) + str(raw) + f"{raw}" + caplog.text
    assert [s for s in secrets if s in shown] == []


async def test_a_hook_whose_attributes_raise_is_still_contained(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook object whose attribute lookup raises (a proxy, a broken mock): naming it for
    the warning must not raise out of the containment (found while fixing the names)."""

    class Hostile:
        def __call__(self, event: object) -> None:
            raise RuntimeError("hook down")

        def __getattr__(self, name: str) -> Any:
            if name == "__qualname__":  # what naming it for the log looks up
                raise RuntimeError(f"no {name}")
            raise AttributeError(name)

    async with sandbox.client(on_request=Hostile(), on_response=Hostile()) as tango:
        made = await tango.orders.create(request())
    assert made.created and len(sandbox.orders) == 1
    assert any("Hostile" in m for m in warnings_of(caplog))
