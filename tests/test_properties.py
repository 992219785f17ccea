"""Property-based tests (Hypothesis) of the client-side rules and of response handling.

A. Requests (strategies: tests/hypothesis_strategies.py, ``order_requests``):
  A1. What the client accepts, the server accepts: the wire body of an accepted request
      passes the sandbox's independent server rules (testing._rules.check_order) and the
      OpenAPI request schema (testing._contract), and carries the request's values unchanged.
  A2. What the client refuses, it refuses with a ValidationError (nothing else) naming a
      real field of the request (dotted snake_case) and a rule.
  A3. A refused request sends nothing and spends no rate-limiter slot (aioresponses).
  A4. An accepted request is created by the local Sandbox (201), contract clean.
B. Responses (strategy: ``exchanges``): whatever the server answers to GET /orders/{id},
   GET /orders (with and without a date range), POST /orders and the two resends, the call
   returns a model or raises a TangoError, never anything else, and never hangs (5 s);
   1 MiB bodies against max_response_bytes=64 KiB; and an endless and a trickling body
   from a real loopback aiohttp server.

Run ``pytest tests/test_properties.py --hypothesis-show-statistics`` to see the mix of
outcomes (accepted per delivery method, refused per field, each error class).

The library bugs these properties found are fixed; each keeps a regression test that
runs the property on its minimal falsifying example (``test_regression_*``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from unittest import mock

import msgspec
import pytest
from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.streams import StreamReader
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

import tango_async as ta
from tango_async._codec import ENCODER
from tango_async._validation import prepare_order
from tango_async.resources.orders import encode_order
from tango_async.testing import Sandbox
from tango_async.testing._contract import ContractChecker
from tango_async.testing._rules import check_order, delivery_method

from . import hypothesis_strategies as hs
from ._aioresponses_compat import install as install_aioresponses_compat
from .conftest import BASE, KEY, NAME

install_aioresponses_compat()

CONTRACT = ContractChecker()
FAST = ta.RetryPolicy(
    initial_delay=0.001,
    max_delay=0.002,
    rate_limit_delay=0.001,
    conflict_delay=0.001,
    max_retry_after=0.5,  # a longer Retry-After is not waited for: the error comes back
)
LIMIT = 64 * 1024  # the clients' max_response_bytes
HUGE = 1024 * 1024  # the size of "huge" bodies
CALL_TIMEOUT = 5.0  # a call that takes longer hangs

BASE_SETTINGS = settings(
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def fixed(max_examples: int) -> settings:
    return settings(BASE_SETTINGS, max_examples=max_examples)


def note_event(name: str, value: object) -> None:
    """A Hypothesis event (see --hypothesis-show-statistics), when run by Hypothesis."""
    if currently_in_test_context():
        event(name, str(value))


# --- field paths ------------------------------------------------------------------------------


def _paths(struct: type[msgspec.Struct], prefix: str = "") -> Iterator[str]:
    for name in struct.__struct_fields__:
        yield prefix + name
    nested = {"sender": ta.Sender, "recipient": ta.Recipient, "address": ta.Address}
    for name in struct.__struct_fields__:
        if name in nested and nested[name] is not struct:
            yield from _paths(nested[name], f"{prefix}{name}.")


KNOWN_FIELDS = frozenset(_paths(ta.CreateOrderRequest))
#: Fields without a default: refusing None there need not say "required" ("must be a number").
REQUIRED_FIELDS = frozenset(
    [f.name for f in msgspec.structs.fields(ta.CreateOrderRequest) if f.required]
    + [f"recipient.address.{f.name}" for f in msgspec.structs.fields(ta.Address) if f.required]
)
SNAKE_PATH = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_MISSING = object()


def value_at(req: ta.CreateOrderRequest, path: str) -> Any:
    """The value at a dotted field path; _MISSING when a parent is not a model."""
    obj: Any = req
    for part in path.split("."):
        if not isinstance(obj, msgspec.Struct) or part not in obj.__struct_fields__:
            return _MISSING
        obj = getattr(obj, part)
    return obj


def strings_in(obj: Any) -> Iterator[str]:
    """Every string in a request (struct fields, dict keys and values, list items)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, msgspec.Struct):
        for name in obj.__struct_fields__:
            yield from strings_in(getattr(obj, name))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from strings_in(k)
            yield from strings_in(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from strings_in(v)


def _method_of(req: ta.CreateOrderRequest) -> str | None:
    m = req.delivery_method
    return m.value if isinstance(m, ta.DeliveryMethod) else m


# --- A. requests --------------------------------------------------------------------------------


def check_refusal(req: ta.CreateOrderRequest, e: ta.ValidationError) -> None:
    """A2: the error names a real field path and a rule, and points at the culprit."""
    assert isinstance(e.field, str) and SNAKE_PATH.fullmatch(e.field), e.field
    assert e.field in KNOWN_FIELDS, f"{e.field!r} is not a field of CreateOrderRequest"
    assert isinstance(e.rule, str) and e.rule.strip()
    assert str(e) == f"{e.field}: {e.rule}"
    value = value_at(req, e.field)
    assert value is not _MISSING, f"{e.field}: its parent is not a model; name the parent"
    if value is None and e.field not in REQUIRED_FIELDS:
        assert "required" in e.rule, f"{e.field} is None but refused for: {e.rule}"


def check_request_property(req: ta.CreateOrderRequest) -> str:
    """A1 and A2 for one request; returns "accepted" or "refused"."""
    try:
        prepared = prepare_order(req)
        ref, raw = encode_order(req)  # what create() puts on the wire
    except ta.ValidationError as e:  # anything else propagates: a failure (A2)
        check_refusal(req, e)
        note_event("refused", e.field)
        return "refused"
    note_event("accepted", _method_of(prepared))
    body = json.loads(raw, parse_float=Decimal)
    method = _method_of(req)

    # prepare_order then ENCODER.encode: the same body as create() sends, bar the generated ref.
    direct = json.loads(ENCODER.encode(prepared), parse_float=Decimal)
    expected = dict(body)
    if req.external_ref_id is None:
        del expected["externalRefID"]  # create() adds a generated one
    assert direct == expected

    problems = check_order(body)
    assert problems == [], f"the server refuses what the client accepted: {problems}"

    violations = [v.message for v in CONTRACT.check_request("POST", "/orders", body)]
    assert violations == [], f"the OpenAPI schema refuses what the client accepted: {violations}"

    # The wire carries the request's values unchanged.
    assert body["externalRefID"] == (req.external_ref_id or ref)
    if req.external_ref_id is None:
        assert re.fullmatch(r"[A-Za-z0-9]{1,100}", ref)
    assert isinstance(body["amount"], (int, Decimal)) and body["amount"] == req.amount
    # ...as a plain JSON number: no exponent, no trailing zeros (1E+3 -> 1000, 10.50 -> 10.5).
    assert re.search(rb'"amount":[1-9][0-9]*(\.[0-9]*[1-9])?[,}]|"amount":0\.[0-9]*[1-9][,}]', raw)
    if req.expiration_date is not None:  # the same instant (sent in UTC)
        sent = datetime.fromisoformat(body["expirationDate"].replace("Z", "+00:00"))
        assert sent == req.expiration_date
    changed = {"amount", "delivery_method", "send_email", "expiration_date"}  # amount: canonical
    for name in req.__struct_fields__:
        if name not in changed:
            assert getattr(prepared, name) is getattr(req, name), name
    # The method the client settles on is the one the server would infer by itself.
    assert body["deliveryMethod"] in hs.CREATE_METHODS
    if method is None:
        original = json.loads(ENCODER.encode(req), parse_float=Decimal)
        assert delivery_method(original) == body["deliveryMethod"]
    else:
        assert body["deliveryMethod"] == method
    return "accepted"


@fixed(350)
@given(req=hs.order_requests())
def test_a1_a2_accepted_requests_pass_the_server_and_refusals_name_a_field(
    req: ta.CreateOrderRequest,
) -> None:
    check_request_property(req)


@pytest.mark.parametrize("name", sorted(hs.ADDRESS_WILD))
@fixed(30)
@given(data=st.data())
def test_a1_a2_physical_orders_field_by_field(name: str, data: st.DataObject) -> None:
    """A1/A2 again, on ADDRESS orders valid but for one address field (boundaries first)."""
    check_request_property(data.draw(hs.physical_orders_with(name), label="req"))


def test_the_request_strategy_reaches_both_outcomes() -> None:
    """The strategy is useful only if both sides of A1/A2 are common."""
    outcomes: list[str] = []

    @fixed(60)
    @given(req=hs.order_requests())
    def collect(req: ta.CreateOrderRequest) -> None:
        outcomes.append(check_request_property(req))

    collect()
    assert 0.25 < outcomes.count("accepted") / len(outcomes) < 0.75, outcomes.count("accepted")


def _order(**kw: Any) -> ta.CreateOrderRequest:
    fields: dict[str, Any] = {
        "customer_identifier": "aaaaa", "account_identifier": "aaaaa", "utid": "U0", "amount": 1,
    }  # fmt: skip
    fields.update(kw)
    return ta.CreateOrderRequest(**fields)


def _address(**kw: Any) -> ta.Address:
    fields: dict[str, Any] = {
        "street_line1": "A", "city": "A", "state_or_province": "A", "postal_code": "A",
        "country": "GB",
    }  # fmt: skip
    fields.update(kw)
    return ta.Address(**fields)


@pytest.mark.parametrize("req", [
    _order(delivery_method="ADDRESS", recipient=ta.Recipient(
        first_name="A", last_name="A", address=_address(postal_code=" "))),
])  # fmt: skip
def test_regression_blank_postal_code_refused(req: ta.CreateOrderRequest) -> None:
    check_request_property(req)


@pytest.mark.parametrize("req", [
    _order(delivery_method="NONE", recipient=ta.Recipient(address=_address(country="USA"))),
    _order(delivery_method="EMAIL", recipient=ta.Recipient(
        first_name="A", email="a@a.aa", address=_address(city=5))),
])  # fmt: skip
def test_regression_digital_order_address_meets_the_contract(req: ta.CreateOrderRequest) -> None:
    check_request_property(req)


@pytest.mark.parametrize("req", [_order(delivery_method="NONE", message="\ud800")])
def test_regression_lone_surrogate_blamed_on_its_field(req: ta.CreateOrderRequest) -> None:
    check_request_property(req)


@pytest.mark.parametrize("req", [
    _order(delivery_method="NONE",
           expiration_date=datetime(2030, 1, 1, tzinfo=timezone(timedelta(seconds=30)))),
])  # fmt: skip
def test_regression_expiration_date_keeps_its_instant(req: ta.CreateOrderRequest) -> None:
    check_request_property(req)


# --- A3, A4: end to end ------------------------------------------------------------------------


def _refused(req: ta.CreateOrderRequest) -> bool:
    try:
        encode_order(req)
    except ta.ValidationError:
        return True
    return False


def _accepted_cleanly(req: ta.CreateOrderRequest) -> bool:
    """Accepted by the client (so the Sandbox must accept it too)."""
    return not _refused(req)


class CountingLimiter(ta.LocalRateLimiter):
    def __init__(self) -> None:
        super().__init__(1000.0)
        self.acquired = 0
        self.penalized = 0

    async def acquire(self) -> None:
        self.acquired += 1
        await super().acquire()

    async def penalize(self, delay: float) -> None:
        self.penalized += 1
        await super().penalize(delay)


async def _create_refused(req: ta.CreateOrderRequest) -> None:
    try:
        prepare_order(req)
        encode_order(req)
    except ta.ValidationError as e:
        expected = (e.field, e.rule)
    else:
        pytest.fail("drawn as refused, but accepted")
    limiter = CountingLimiter()
    async with ta.TangoClient(NAME, KEY, base_url=BASE, rate_limiter=limiter, retry=FAST) as client:
        with aioresponses() as m:
            m.post(f"{BASE}/orders", status=201, payload=hs.ORDER_BODY, repeat=True)
            m.get(re.compile(".*"), status=200, payload=hs.ORDER_BODY, repeat=True)
            with pytest.raises(ta.ValidationError) as raised:
                await asyncio.wait_for(client.orders.create(req), CALL_TIMEOUT)
            assert m.requests == {}, "a refused request reached the network"
    assert (raised.value.field, raised.value.rule) == expected
    assert limiter.acquired == 0 and limiter.penalized == 0, "a refused request spent a slot"


@fixed(40)
@given(req=hs.order_requests().filter(_refused))
def test_a3_refused_requests_send_nothing_and_spend_no_slot(req: ta.CreateOrderRequest) -> None:
    asyncio.run(_create_refused(req))


async def _create_on_sandbox(reqs: list[ta.CreateOrderRequest]) -> None:
    async with Sandbox(order_rate=None, contract=CONTRACT) as sandbox:
        async with sandbox.client(retry=FAST, max_retries=0) as client:
            for req in reqs:
                order = await asyncio.wait_for(client.orders.create(req), CALL_TIMEOUT)
                assert order.created
                assert order.amount_charged is not None
                assert order.amount_charged.value == req.amount
                if req.external_ref_id is not None:
                    assert order.external_ref_id == req.external_ref_id
        assert sandbox.contract_violations == []


@fixed(15)
@given(reqs=st.lists(hs.order_requests().filter(_accepted_cleanly), min_size=1, max_size=4))
def test_a4_accepted_requests_are_created_by_the_sandbox(
    reqs: list[ta.CreateOrderRequest],
) -> None:
    asyncio.run(_create_on_sandbox(reqs))


# --- B. responses -------------------------------------------------------------------------------

REF = "RA230101-1234-56"
LINE_ITEM = "U123456789"
VALID_ORDER = _order(
    delivery_method="EMAIL",
    external_ref_id="ref-1",
    recipient=ta.Recipient(first_name="Ann", email="ann@example.com"),
)
ROUTES: dict[str, tuple[str, str | re.Pattern[str]]] = {
    "get": ("GET", f"{BASE}/orders/{REF}"),
    "create": ("POST", f"{BASE}/orders"),
    "list": ("GET", re.compile(re.escape(f"{BASE}/orders") + r"\?.*")),
    "list_ranged": ("GET", re.compile(re.escape(f"{BASE}/orders") + r"\?.*")),
    "resend": ("POST", f"{BASE}/orders/{REF}/resends"),
    "line_item_resend": ("POST", f"{BASE}/lineItems/{LINE_ITEM}/resends"),
}
RESULT_TYPES: dict[str, type] = {
    "get": ta.Order, "create": ta.CreatedOrder, "list": list, "list_ranged": list,
    "resend": ta.Resend, "line_item_resend": ta.LineItemResend,
}  # fmt: skip


async def perform(client: ta.TangoClient, call: str) -> Any:
    if call == "get":
        return await client.orders.get(REF)
    if call == "create":
        return await client.orders.create(VALID_ORDER)
    if call == "list":
        return [page async for page in client.orders.list(elements_per_block=2).pages()]
    if call == "list_ranged":  # a date range: windows are split on 422.043, 400.021, big totals
        history = client.orders.list(
            start_date=date(2024, 1, 1), end_date=date(2024, 1, 2), elements_per_block=2
        )
        return [page async for page in history.pages()]
    if call == "resend":
        return await client.orders.resend(REF)
    return await client.line_items.resend(LINE_ITEM)


def register(m: aioresponses, ex: hs.Exchange) -> None:
    method, url = ROUTES[ex.call]
    for i, answer in enumerate(ex.answers):
        body = answer.body.payload(HUGE)
        headers = {}
        if answer.retry_after.value is not None:
            headers["Retry-After"] = answer.retry_after.value
        if answer.content_length:
            headers["Content-Length"] = str(len(body))
        if answer.request_id is not None:
            headers["X-Request-Id"] = answer.request_id
        m.add(
            url,
            method=method,
            status=answer.status,
            body=body,
            content_type=answer.content_type,
            headers=headers,
            repeat=i == len(ex.answers) - 1,
        )


def _roomy_reader(loop: asyncio.AbstractEventLoop | None = None) -> StreamReader:
    """aioresponses' mocked stream with a 2 MiB buffer limit instead of 64 KiB.

    aioresponses feeds the whole body at once; past twice the limit the stream pauses its
    protocol, and aiohttp 3.14 asserts the mock protocol has a parser (it has none), so the
    stock mock cannot serve bodies over 128 KiB. Reading them is unchanged.
    """
    return StreamReader(ResponseHandler(loop=loop), limit=2**21, loop=loop)  # type: ignore[arg-type]


def mocked() -> Any:
    """aioresponses, able to serve the 1 MiB bodies."""
    patch = mock.patch.object(aioresponses_core, "stream_reader_factory", _roomy_reader)
    return _Both(patch, aioresponses())


class _Both:
    def __init__(self, patch: Any, mocker: aioresponses) -> None:
        self.patch, self.mocker = patch, mocker

    def __enter__(self) -> aioresponses:
        self.patch.__enter__()
        return self.mocker.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.mocker.__exit__(*exc)
        self.patch.__exit__(*exc)


async def run_exchange(ex: hs.Exchange) -> None:
    """B for one exchange: a model or a TangoError, within CALL_TIMEOUT."""
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST, max_retries=1,
        order_rate=1000.0, resend_cooldown=0, max_response_bytes=LIMIT,
    ) as client:  # fmt: skip
        with mocked() as m:
            register(m, ex)
            result: Any = None
            error: ta.TangoError | None = None
            try:
                result = await asyncio.wait_for(perform(client, ex.call), CALL_TIMEOUT)
            except TimeoutError:
                pytest.fail(f"{ex.call} did not finish within {CALL_TIMEOUT} s")
            except ta.TangoError as e:
                error = e
            except Exception as e:
                raise AssertionError(f"{type(e).__name__} is not a TangoError: {e}") from e
            sent = sum(len(calls) for calls in m.requests.values())
    note_event("outcome", type(error).__name__ if error is not None else "model")

    assert sent >= 1
    if not ex.call.startswith("list"):  # a listing pages on; other calls: one answer per attempt
        assert sent <= client.retry.max_retries + 1
        last = ex.answers[min(sent, len(ex.answers)) - 1]
        if last.body.huge and 200 <= last.status < 300:
            assert isinstance(error, ta.APIResponseValidationError), error
        elif last.body.huge:  # an error status keeps its meaning; its body is cut at the bound
            assert isinstance(error, ta.APIError), error
            assert error.status_code == last.status and error.body_truncated, error
        if error is None:
            assert 200 <= last.status < 300
        elif isinstance(error, ta.ResendCooldownError):
            assert last.status == 403
        elif isinstance(error, ta.APIError) and not isinstance(
            error, ta.APIResponseValidationError
        ):
            assert error.status_code == last.status and not 200 <= last.status < 300
    if error is None:
        assert isinstance(result, RESULT_TYPES[ex.call]), type(result)
        if ex.call.startswith("list"):
            assert all(isinstance(p, ta.OrderPage) for p in result)
            assert all(isinstance(o, ta.Order) for p in result for o in p.orders)


@fixed(250)
@given(ex=hs.exchanges())
def test_b_any_response_gives_a_model_or_a_tango_error(ex: hs.Exchange) -> None:
    asyncio.run(run_exchange(ex))


def _exchange(call: str, status: int, body: bytes, retry_after: str | None = None) -> hs.Exchange:
    answer = hs.Answer(
        status=status, body=hs.Body("example", body), content_type="application/json",
        retry_after=hs.RetryAfter("example", retry_after), content_length=False, request_id=None,
    )  # fmt: skip
    return hs.Exchange(call, (answer,))


def test_b_huge_bodies_are_refused_on_every_call() -> None:
    """1 MiB against max_response_bytes=64 KiB, every call, success and error statuses: a
    2xx is refused, an error status is mapped by its status with its body cut."""

    async def scenario() -> None:
        for call in hs.CALLS:
            for status in (200, 201, 404, 429, 503):
                body = hs.Body("huge", hs.dumps(hs.SUCCESS_BODIES[call]), huge=True)
                for content_length in (False, True):
                    answer = hs.Answer(
                        status,
                        body,
                        "application/json",
                        hs.RetryAfter("small", "0"),
                        content_length,
                        None,
                    )
                    await run_exchange(hs.Exchange(call, (answer,)))

    asyncio.run(scenario())


@pytest.mark.parametrize("ex", [
    _exchange("get", 500, hs.nested(3000)),
    _exchange("get", 200, b'{"referenceOrderID": "x", "extra": ' + hs.nested(3000) + b"}"),
    _exchange("resend", 200, b'{"extra": ' + hs.nested(3000) + b"}"),
])  # fmt: skip
def test_regression_deeply_nested_json_is_a_tango_error(ex: hs.Exchange) -> None:
    asyncio.run(run_exchange(ex))


@pytest.mark.parametrize("ex", [
    _exchange("get", 429, hs.dumps(hs.ERROR_BODY), "1 Jan 2000 9999999999:00 GMT"),
    _exchange("get", 503, hs.dumps(hs.ERROR_BODY), "Wed, 21 Oct 2015 9999999999:28:00 GMT"),
    _exchange("get", 404, hs.dumps(hs.ERROR_BODY), "1 Jan 2000 9999999999:00 GMT"),
])  # fmt: skip
def test_regression_retry_after_overflow_is_harmless(ex: hs.Exchange) -> None:
    asyncio.run(run_exchange(ex))


@pytest.mark.parametrize(("call", "status"), [("create", 429), ("get", 503)])
async def test_regression_long_retry_after_is_not_waited_for(call: str, status: int) -> None:
    """With max_delay=0.002 and one retry, the call should end in milliseconds."""
    method, url = ROUTES[call]
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST, max_retries=1, order_rate=1000.0
    ) as client:
        with aioresponses() as m:
            m.add(
                url,
                method=method,
                status=status,
                payload=hs.ERROR_BODY,
                headers={"Retry-After": "3600"},
                repeat=True,
            )
            with pytest.raises(ta.APIError):
                await asyncio.wait_for(perform(client, call), 0.3)


# --- B: a real server that never ends its body -------------------------------------------------


async def _serve(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/raas/v2"


@pytest.mark.parametrize("call", ["get", "create"])
async def test_b_endless_body_stops_at_max_response_bytes(call: str) -> None:
    written = 0
    chunk = b"x" * 65536

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal written
        await request.read()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)  # chunked: no Content-Length
        try:
            await resp.write(b'{"referenceOrderID": "RA1", "padding": "')
            while True:
                await resp.write(chunk)
                written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up
        return resp

    runner, base_url = await _serve(endless)
    try:
        async with ta.TangoClient(
            NAME,
            KEY,
            base_url=base_url,
            retry=FAST,
            max_retries=1,
            order_rate=1000.0,
            max_response_bytes=LIMIT,
        ) as client:
            with pytest.raises(ta.APIResponseValidationError, match="larger than") as e:
                await asyncio.wait_for(perform(client, call), CALL_TIMEOUT)
            assert e.value.status_code == 200
    finally:
        await runner.cleanup()
    # The client stopped reading: the server could not push more than the socket buffers hold.
    # (About 4 MB here; a client reading on would see GB within CALL_TIMEOUT on loopback.)
    assert written < 32 * 1024 * 1024, written


async def test_b_trickling_body_ends_with_a_timeout() -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            await resp.write(b'{"referenceOrderID": "RA1", "padding": "')
            while True:
                await resp.write(b"x")
                await asyncio.sleep(0.02)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    runner, base_url = await _serve(trickle)
    try:
        async with ta.TangoClient(
            NAME,
            KEY,
            base_url=base_url,
            retry=FAST,
            max_retries=1,
            timeout=0.3,
            max_response_bytes=LIMIT,
        ) as client:
            with pytest.raises(ta.APITimeoutError):
                await asyncio.wait_for(client.orders.get("RA1"), CALL_TIMEOUT)
    finally:
        await runner.cleanup()
