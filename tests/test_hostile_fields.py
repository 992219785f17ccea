"""Hostile field values (issue 12, points 3 and 6, request fields and list filters).

Point 3: no control character (C0, DEL, C1, U+2028, U+2029) in any identifier, reference
or free-text field of a request or a list filter (the gift message alone may hold tab, CR
and LF), each refused with a ValidationError naming the field; and every record of the
``tango_async`` logger renders user and server values escaped, so no value can start a
new log line (``tango_async._logs.EscapeFilter``).

Point 6: extreme dates (any offset at the ends of the datetime range, naive, odd
tzinfos), deep and large structures, non-finite and huge numbers in ``orders.create``
fields and ``orders.list`` filters are a ValidationError (or are accepted and sent
well-formed), never another error; a refused call sends nothing and spends no rate slot.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aioresponses import aioresponses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tango_async as ta
from tango_async._logs import EscapeFilter, escape
from tango_async._validation import (
    MAX_CUSTOM_FIELDS_CHARS,
    MAX_CUSTOM_FIELDS_DEPTH,
    check_custom_fields,
    format_query_datetime,
    line_item_resend_request,
    order_resend_request,
    prepare_order,
)
from tango_async.pagination import build_list_query
from tango_async.resources.orders import encode_order

from . import hypothesis_strategies as hs
from ._aioresponses_compat import install as install_aioresponses_compat
from .conftest import BASE, KEY, NAME

install_aioresponses_compat()

SETTINGS = settings(
    derandomize=True,  # the same examples on every run
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FAST = ta.RetryPolicy(
    initial_delay=0.001, max_delay=0.002, rate_limit_delay=0.001, conflict_delay=0.001
)
REF = "RA230101-1234-56"
LINE_ITEM = "U123456789"
FORGED = "\r\nINFO payment reconciled OK"
# One of each kind: C0 (NUL, tab, LF, VT, FF, CR, ESC, US), DEL, C1 (PAD, NEL, CSI, APC),
# the line and paragraph separators.
CONTROLS = (
    "\x00", "\x01", "\t", "\n", "\x0b", "\x0c", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85",
    "\x9b", "\x9f", "\u2028", "\u2029",
)  # fmt: skip
LINE_BREAKS = ("\t", "\n", "\r")  # what the gift message may hold
# Every character a log line must never hold raw.
RAW = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What every startDate / endDate on the wire looks like.
DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")

# --- requests ---------------------------------------------------------------------------------

US = ta.Address(
    street_line1="1 Main St", city="Springfield", state_or_province="IL", postal_code="62701",
    country="US", company_name="ACME",
)  # fmt: skip


def order(**kw: Any) -> ta.CreateOrderRequest:
    """A valid EMAIL order (the recipient has a digital address); ``kw`` overrides."""
    fields: dict[str, Any] = {
        "customer_identifier": "cust-12345",
        "account_identifier": "acct-12345",
        "utid": "U561593",
        "amount": 10,
        "delivery_method": "EMAIL",
        "recipient": ta.Recipient(
            email="ann@example.com",
            first_name="Ann",
            last_name="Lee",
            mobile_number="+12065551234",
            address=US,
        ),
        "sender": ta.Sender(first_name="Bob", last_name="Ray", email="bob@example.com"),
    }
    fields.update(kw)
    return ta.CreateOrderRequest(**fields)


# A valid value for every string field of a create request, by dotted path.
VALID_TEXT = {
    "customer_identifier": "cust-12345",
    "account_identifier": "acct-12345",
    "utid": "U561593",
    "external_ref_id": "ref-12345",
    "ptid": "P1234",
    "etid": "E000001",
    "email_subject": "Your reward",
    "message": "Thank you",
    "campaign": "Q1 bonus",
    "notes": "approved",
    "purchase_order_number": "PO-77",
    "sender.first_name": "Bob",
    "sender.last_name": "Ray",
    "sender.email": "bob@example.com",
    "recipient.first_name": "Ann",
    "recipient.last_name": "Lee",
    "recipient.email": "ann@example.com",
    "recipient.mobile_number": "+12065551234",
    **{f"recipient.address.{k}": v for k, v in msgspec.structs.asdict(US).items() if v},
}
PHYSICAL_PATHS = tuple(
    p for p in VALID_TEXT if p.startswith("recipient.address.") or p.startswith("recipient.")
)


def _replace(obj: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if rest:
        return msgspec.structs.replace(obj, **{head: _replace(getattr(obj, head), rest, value)})
    return msgspec.structs.replace(obj, **{head: value})


def with_value(path: str, value: Any, *, physical: bool = False) -> ta.CreateOrderRequest:
    """The valid order (an ADDRESS one with ``physical``) with ``value`` at ``path``."""
    base = order(delivery_method="ADDRESS") if physical else order()
    return _replace(base, path, value)  # type: ignore[no-any-return]


def inserted(text: str, ch: str, at: int = 1) -> str:
    return text[:at] + ch + text[at:]


def refusal(req: ta.CreateOrderRequest) -> ta.ValidationError | None:
    """The ValidationError ``orders.create`` raises for ``req`` before sending, or None."""
    try:
        prepare_order(req)
        encode_order(req)
    except ta.ValidationError as e:
        return e
    return None


def no_raw_control(text: str) -> bool:
    return RAW.search(text) is None


class CountingLimiter(ta.LocalRateLimiter):
    def __init__(self) -> None:
        super().__init__(1000.0)
        self.acquired = 0

    async def acquire(self) -> None:
        self.acquired += 1
        await super().acquire()


def _mock_everything(m: aioresponses) -> None:
    any_url = re.compile(".*")
    m.post(any_url, status=201, payload=hs.ORDER_BODY, repeat=True)
    m.get(any_url, status=200, payload=hs.LIST_BODY, repeat=True)


async def _sends_nothing(call: Callable[[ta.TangoClient], Any]) -> ta.ValidationError:
    """Run ``call`` on a client whose every request would succeed: it must raise a
    ValidationError having sent nothing and taken no rate-limiter slot."""
    limiter = CountingLimiter()
    async with ta.TangoClient(NAME, KEY, base_url=BASE, rate_limiter=limiter, retry=FAST) as c:
        with aioresponses() as m:
            _mock_everything(m)
            with pytest.raises(ta.ValidationError) as raised:
                result = call(c)
                if asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, 5.0)
                else:  # orders.list(): checked when called; iterated, just in case
                    async for _ in result:
                        pass
            assert m.requests == {}, "a refused call reached the network"
    assert limiter.acquired == 0, "a refused call took a rate-limiter slot"
    assert no_raw_control(str(raised.value)), str(raised.value)
    return raised.value


# --- point 3: control characters in request fields ------------------------------------------


async def test_regression_forged_log_line_in_external_ref_id_is_refused() -> None:
    """The issue's reproduction: a ref holding CR LF and a whole log line."""
    e = await _sends_nothing(lambda c: c.orders.create(order(external_ref_id="ref-1" + FORGED)))
    assert e.field == "external_ref_id"
    assert "'\\r'" in e.rule  # the character is named, escaped


@pytest.mark.parametrize("ch", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize("path", sorted(VALID_TEXT))
def test_control_character_refused_in_every_create_field(path: str, ch: str) -> None:
    req = with_value(path, inserted(VALID_TEXT[path], ch))
    e = refusal(req)
    if path == "message" and ch in LINE_BREAKS:
        assert e is None, e  # the gift message may hold line breaks (and tabs)
        return
    assert e is not None and e.field == path, e
    assert no_raw_control(str(e)), str(e)


@pytest.mark.parametrize("ch", ["\x00", "\n", "\x1b", "\x85", "\u2028"])
@pytest.mark.parametrize("path", PHYSICAL_PATHS)
def test_control_character_refused_in_physical_orders(path: str, ch: str) -> None:
    value = VALID_TEXT[path]
    if path.endswith("state_or_province"):
        value = "IL"
    e = refusal(with_value(path, inserted(value, ch), physical=True))
    assert e is not None and e.field == path, e


def test_the_gift_message_keeps_its_line_breaks() -> None:
    text = "Dear Ann,\r\n\r\nThank you!\n\tBob"
    _, body = encode_order(order(message=text))
    assert json.loads(body)["message"] == text


@pytest.mark.parametrize("ch", ["\x00", "\n", "\x1b", "\x7f", "\x85", "\u2029"])
async def test_control_character_refused_in_resends_and_path_ids(ch: str) -> None:
    cases: list[tuple[str, Callable[[ta.TangoClient], Any]]] = [
        ("reference_order_id", lambda c: c.orders.get(inserted(REF, ch))),
        ("reference_order_id", lambda c: c.orders.resend(inserted(REF, ch))),
        ("reference_line_item_id", lambda c: c.line_items.resend(inserted(LINE_ITEM, ch))),
        ("new_email", lambda c: c.orders.resend(REF, new_email=inserted("a@example.com", ch))),
        ("new_etid", lambda c: c.orders.resend(REF, new_etid=inserted("E000001", ch))),
        ("new_mobile", lambda c: c.orders.resend(REF, new_mobile=inserted("+12065551234", ch))),
        ("new_mobile_number",
         lambda c: c.line_items.resend(LINE_ITEM, new_mobile_number=inserted("+12065551234", ch))),
        ("other_reason", lambda c: c.line_items.resend(
            LINE_ITEM, reason_code="OTHER", other_reason=inserted("lost it", ch))),
        ("reason_code", lambda c: c.line_items.resend(LINE_ITEM, reason_code="OTHER" + ch)),
        ("external_ref_id", lambda c: c.orders.resolve(inserted("ref-12345", ch))),
    ]  # fmt: skip
    for field, call in cases:
        e = await _sends_nothing(call)
        assert e.field == field, (field, e)


LIST_TEXT_FILTERS = {
    "account_identifier": "acct-12345", "customer_identifier": "cust-12345",
    "external_ref_id": "ref-12345", "currency_code": "USD", "utid": "U561593",
    "ptid": "P1234", "reward_name": "Amazon", "sender_first_name": "Bob",
    "sender_last_name": "Ray", "sender_email": "bob@example.com",
    "recipient_email": "ann@example.com", "recipient_first_name": "Ann",
    "recipient_last_name": "Lee", "recipient_mobile_number": "+12065551234",
    "delivery_method": "EMAIL", "status": "COMPLETE", "order_status": "COMPLETE",
    "line_item_status": "COMPLETE", "campaign": "Q1", "notes": "approved",
    "line_item_notes": "ok", "purchase_order_number": "PO-77",
    "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-02",
}  # fmt: skip


@pytest.mark.parametrize("ch", ["\x00", "\t", "\n", "\r", "\x1b", "\x9b", "\u2028"])
@pytest.mark.parametrize("name", sorted(LIST_TEXT_FILTERS))
def test_control_character_refused_in_every_list_filter(name: str, ch: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        if name in ("start_date", "end_date"):
            format_query_datetime(inserted(LIST_TEXT_FILTERS[name], ch, 4), name)
        else:
            build_list_query(**{name: inserted(LIST_TEXT_FILTERS[name], ch)})
    assert e.value.field == name
    assert no_raw_control(str(e.value))


async def test_control_character_in_a_list_filter_sends_nothing() -> None:
    e = await _sends_nothing(lambda c: c.orders.list(notes="a" + FORGED))
    assert e.field == "notes"
    e = await _sends_nothing(lambda c: c.orders.list(start_date="2024-01-01\n"))
    assert e.field == "start_date"


def test_resend_bodies_refuse_control_characters() -> None:
    with pytest.raises(ta.ValidationError, match="other_reason"):
        line_item_resend_request(
            new_delivery_method=None, new_email=None, new_mobile_number=None, new_etid=None,
            reason_code="OTHER", other_reason="lost\nINFO ok",
        )  # fmt: skip
    with pytest.raises(ta.ValidationError, match="new_email"):
        order_resend_request(
            new_email="a\x00@example.com", new_etid=None, new_mobile=None,
            new_delivery_method=None,
        )  # fmt: skip


# Property: a control character anywhere in any string field is refused, naming it.
_any_text = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30)
_control = st.sampled_from(CONTROLS)


@SETTINGS
@given(
    path=st.sampled_from(sorted(VALID_TEXT)),
    ch=_control,
    where=st.integers(0, 40),
    noise=_any_text,
)
def test_property_a_control_character_is_refused_in_any_field(
    path: str, ch: str, where: int, noise: str
) -> None:
    base = VALID_TEXT[path] + noise
    value = inserted(base, ch, where % (len(base) + 1))
    e = refusal(with_value(path, value))
    if path == "message" and ch in LINE_BREAKS:
        assert e is None, e  # the gift message may hold line breaks and tabs
        return
    assert e is not None, (path, value)
    assert e.field == path, (path, e)
    assert no_raw_control(str(e)) and no_raw_control(repr(e)), str(e)


FREE_TEXT = ("email_subject", "message", "campaign", "notes", "external_ref_id")
_printable_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=100
).filter(lambda s: bool(s.strip()))


@SETTINGS
@given(path=st.sampled_from(FREE_TEXT), text=_printable_text)
def test_property_free_text_without_control_characters_is_sent_unchanged(
    path: str, text: str
) -> None:
    _, body = encode_order(with_value(path, text))
    wire = {"external_ref_id": "externalRefID", "email_subject": "emailSubject"}
    assert json.loads(body)[wire.get(path, path)] == text


# --- point 3: log lines -----------------------------------------------------------------------


@dataclass
class Captured:
    lines: list[str]
    records: list[logging.LogRecord]


@pytest.fixture
def package_log() -> Iterator[Captured]:
    """Every record of the tango_async logger at DEBUG, formatted as a handler would."""
    logger = logging.getLogger("tango_async")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    captured = Captured([], [])

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.records.append(record)

    keep = Keep(logging.DEBUG)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.addHandler(keep)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(keep)
        logger.setLevel(old)
        captured.lines.extend(stream.getvalue().splitlines())
    # One record, one line: the stream holds exactly as many lines as records.
    assert len(stream.getvalue().split("\n")) - 1 == len(captured.records)
    for line in stream.getvalue().split("\n"):
        assert no_raw_control(line), repr(line)


def test_regression_a_value_cannot_forge_a_log_line(package_log: Captured) -> None:
    log = logging.getLogger("tango_async")
    log.warning("orders.create: sending it again with its externalRefID %s", "ref-1" + FORGED)
    log.info("%s %s -> %s request_id=%s", "GET", "/orders/x", 500, "rid\x1b[2J\u2028x")
    log.info("plain %r and %(x)s", {"x": "a\nb"})
    log.error(ValueError("boom\nINFO payment reconciled OK"))
    log.info("f-string from a value: ref-1" + FORGED)
    text = [r.getMessage() for r in package_log.records]
    assert text[0] == (
        "orders.create: sending it again with its externalRefID "
        "'ref-1\\r\\nINFO payment reconciled OK'"
    )
    assert text[1] == "GET /orders/x -> 500 request_id='rid\\x1b[2J\\u2028x'"
    assert all("\n" not in t and "\r" not in t for t in text)


def test_printable_values_and_numbers_are_logged_as_they_are(package_log: Captured) -> None:
    log = logging.getLogger("tango_async")
    log.info("%s %s attempt=%d elapsed_ms=%.1f %r", "POST", "/orders", 2, 1.25, "Zoë")
    log.info("amount %s of %s", Decimal("10.50"), "José Ñandú 张伟")
    assert [r.getMessage() for r in package_log.records] == [
        "POST /orders attempt=2 elapsed_ms=1.2 'Zoë'",
        "amount 10.50 of José Ñandú 张伟",
    ]


def test_the_filter_is_on_the_package_logger_once() -> None:
    from tango_async._logs import _install

    _install(logging.getLogger("tango_async"))  # installing again adds no second filter
    filters = [f for f in logging.getLogger("tango_async").filters if isinstance(f, EscapeFilter)]
    assert len(filters) == 1


def test_every_package_logger_is_the_escaped_one() -> None:
    """The filter sits on the ``tango_async`` logger: every module must log through it
    (a child logger, ``tango_async.x``, would bypass it)."""
    root = Path(ta.__file__).parent
    found = 0
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
            ):
                found += 1
                args = node.args
                assert (
                    len(args) == 1
                    and isinstance(args[0], ast.Constant)
                    and args[0].value == "tango_async"
                ), f"{path.relative_to(root)}:{node.lineno} logs through another logger"
    assert found >= 5


@SETTINGS
@given(value=st.text(st.characters(), max_size=40), style=st.sampled_from(["%s", "%r"]))
def test_property_any_value_renders_on_one_line(value: str, style: str) -> None:
    """Whatever text is logged as an argument, the line holds no raw control character,
    a printable value is shown as it is, and any other reads back to the value."""
    record = logging.LogRecord(
        "tango_async", logging.INFO, __file__, 1, f"x={style}", (value,), None
    )
    assert EscapeFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert no_raw_control(line) and "\n" not in line
    shown = line.removeprefix("x=")
    if style == "%r":
        assert ast.literal_eval(shown) == value
    elif value.isprintable():
        assert shown == value
    else:
        assert ast.literal_eval(shown) == value
    assert escape(value) == (value if value.isprintable() else repr(value))


HOSTILE_ERROR = {
    "requestId": "rid\x1b]0;owned\x07",
    "path": "/raas/v2/orders\nINFO forged",
    "httpPhrase": "Bad\rRequest",
    "i18nKey": "500.001" + FORGED,
    "message": "database down" + FORGED + "\u2028\u2029\x85",
    "errors": [{"i18nKey": "500.002\x00", "message": "again\n\n", "invalidValue": "\x1b[31m"}],
}


async def test_hostile_server_values_never_reach_a_log_line_raw(package_log: Captured) -> None:
    """Server-sent values (error messages, i18n keys, the request ID, header values) in
    every log line the transport and the resources write: retries (INFO), attempts
    (DEBUG), an unreadable create answer and a cancelled create (WARNING)."""
    body = json.dumps(HOSTILE_ERROR).encode()
    headers = {"X-Request-Id": "hdr\x1b[2J\x7f\x9b", "Retry-After": "0"}
    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST, order_rate=1000.0) as c:
        with aioresponses() as m:
            m.get(f"{BASE}/orders/{REF}", status=503, body=body, headers=headers, repeat=True,
                  content_type="application/json")  # fmt: skip
            with pytest.raises(ta.ServerError) as raised:
                await c.orders.get(REF)
            m.get(f"{BASE}/orders/{LINE_ITEM}", status=404, body=b"<html>\n\x1b</html>",
                  headers={"X-Request-Id": "r\x00"}, content_type="text/html\x1b[31m")  # fmt: skip
            with pytest.raises(ta.NotFoundError) as missing:
                await c.orders.get(LINE_ITEM)
            # An unreadable 2xx answer to a create (WARNING with the ref), then the order.
            m.post(f"{BASE}/orders", status=201, body=b"{\n\x1b", headers=headers)
            m.post(f"{BASE}/orders", status=200, payload={**hs.ORDER_BODY, "externalRefID": None})
            await c.orders.create(order(external_ref_id="ref\u202e-\u00a0-1"))
    for error in (raised.value, missing.value):
        assert no_raw_control(str(error)), str(error)
    lines = [r.getMessage() for r in package_log.records]
    assert any("retry" in t for t in lines), lines
    assert any("request_id=" in t for t in lines), lines
    assert any("cannot be read" in t and "'ref\\u202e-\\xa0-1'" in t for t in lines), lines
    assert any("INFO forged" in t or "reconciled OK" in t or "hdr" in t for t in lines), lines
    for t in lines:
        assert no_raw_control(t), repr(t)


async def test_a_cancelled_create_logs_its_ref_escaped(package_log: Captured) -> None:
    gate = asyncio.Event()

    async def slow(url: Any, **kw: Any) -> Any:
        await gate.wait()
        raise AssertionError("not reached")

    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST, order_rate=1000.0) as c:
        with aioresponses() as m:
            m.post(f"{BASE}/orders", callback=slow)
            task = asyncio.create_task(c.orders.create(order(external_ref_id="r\u00a0\u200f1")))
            while not m.requests:  # noqa: ASYNC110 (polling the mock, no event to wait on)
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    warnings = [r.getMessage() for r in package_log.records if r.levelno == logging.WARNING]
    assert any("external_ref_id='r\\xa0\\u200f1'" in t for t in warnings), warnings


# --- point 6: extreme dates, deep structures, non-finite numbers -----------------------------


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    """``{"a": {"a": ... leaf}}``, ``depth`` mappings deep (built without recursion)."""
    value: Any = leaf
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


def nested_lists(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return {"k": value}


async def test_regression_expiration_date_past_year_9999_in_utc() -> None:
    late = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14)))
    e = await _sends_nothing(lambda c: c.orders.create(order(expiration_date=late)))
    assert e.field == "expiration_date"
    early = datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=14)))
    assert refusal(order(expiration_date=early)) is not None


async def test_regression_custom_fields_nested_100000_deep() -> None:
    e = await _sends_nothing(lambda c: c.orders.create(order(custom_fields=nested(100_000))))
    assert e.field == "custom_fields" and "nested" in e.rule
    assert refusal(order(custom_fields=nested_lists(100_000))) is not None
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    assert refusal(order(custom_fields=cycle)) is not None


def test_custom_fields_depth_bound_is_exact() -> None:
    check_custom_fields(nested(MAX_CUSTOM_FIELDS_DEPTH))
    with pytest.raises(ta.ValidationError):
        check_custom_fields(nested(MAX_CUSTOM_FIELDS_DEPTH + 1))
    check_custom_fields(nested_lists(MAX_CUSTOM_FIELDS_DEPTH))
    with pytest.raises(ta.ValidationError):
        check_custom_fields(nested_lists(MAX_CUSTOM_FIELDS_DEPTH + 1))


def test_custom_fields_size_bounds() -> None:
    check_custom_fields({"k": "x" * (MAX_CUSTOM_FIELDS_CHARS - 1)})
    for too_big in (
        {"k": "x" * MAX_CUSTOM_FIELDS_CHARS},
        {"k": ["x"] * 10_001},
        {str(i): i for i in range(10_001)},
        {"k" * (MAX_CUSTOM_FIELDS_CHARS + 1): 1},
        {"k": Decimal("1." + "0" * MAX_CUSTOM_FIELDS_CHARS)},
    ):
        with pytest.raises(ta.ValidationError) as e:
            check_custom_fields(too_big)
        assert e.value.field == "custom_fields"


@pytest.mark.parametrize(
    "value",
    [float("inf"), float("-inf"), float("nan"), Decimal("NaN"), Decimal("sNaN"),
     Decimal("-Infinity"), [1, float("inf")], {"deep": {"er": float("nan")}}],
    ids=repr,
)  # fmt: skip
async def test_regression_non_finite_custom_field_is_refused_not_sent_as_null(
    value: Any,
) -> None:
    e = await _sends_nothing(lambda c: c.orders.create(order(custom_fields={"x": value})))
    assert e.field == "custom_fields" and "finite" in e.rule


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, 10**5000, Decimal("1E+400"), Decimal("-1E+999999"),
     Decimal("1E-400"), b"bytes", object(), {1, 2}, datetime(2030, 1, 1), {1: "int key"},
     {"a\nb": "key with LF"}, {"k": "\x1b[2J"}, {"k": "lone \ud800"}],
    ids=lambda v: type(v).__name__,
)  # fmt: skip
def test_custom_field_values_json_cannot_carry_are_refused(value: Any) -> None:
    fields = value if isinstance(value, dict) else {"x": value}
    e = refusal(order(custom_fields=fields))
    assert e is not None and e.field == "custom_fields", e
    assert no_raw_control(str(e))


def test_custom_fields_that_are_fine_are_sent_as_given() -> None:
    fields = {
        "team": "Sales", "n": 3, "rate": Decimal("1.5"), "f": 0.25, "ok": True, "none": None,
        "tags": ["a", "b"], "nested": {"x": [1, {"y": "multi\nline\tvalue"}]},
        "big": 2**63 - 1, "small": -(2**63), "zero": Decimal("0E+999999"), "": "empty key",
    }  # fmt: skip
    _, body = encode_order(order(custom_fields=fields))
    sent = json.loads(body, parse_float=Decimal)["customFields"]
    assert sent["nested"] == {"x": [1, {"y": "multi\nline\tvalue"}]}
    assert sent["big"] == 2**63 - 1 and sent["rate"] == Decimal("1.5")


@pytest.mark.parametrize("base", [datetime.min, datetime.max], ids=["min", "max"])
def test_datetime_ends_with_every_offset(base: datetime) -> None:
    """datetime.min and max with every whole-minute offset (and a few with seconds), as an
    expiration date and as both list filters, as objects and as strings: each is a
    ValidationError or goes out as a well-formed RFC 3339 instant."""
    refused = accepted = 0
    seconds = [m * 60 for m in range(-1439, 1440)] + [1, -1, 86399, -86399]
    for offset in seconds:
        dt = base.replace(tzinfo=timezone(timedelta(seconds=offset)))
        try:
            wire = prepare_order(order(expiration_date=dt)).expiration_date
        except ta.ValidationError as e:
            assert e.field == "expiration_date"
            refused += 1
        else:
            assert wire == dt and wire is not None and wire.utcoffset() == timedelta(0)
            accepted += 1
        for value in (dt, dt.isoformat()):
            for name, end in (("start_date", False), ("end_date", True)):
                try:
                    text, instant = format_query_datetime(value, name, end=end)
                except ta.ValidationError as e:
                    assert e.field == name
                else:
                    assert DATE_TEXT.fullmatch(text) and instant == dt, (text, dt)
    assert refused == 1439 + 2 and accepted == 1440 + 2  # the side past the range is refused


async def test_regression_list_start_date_before_year_1_in_utc() -> None:
    e = await _sends_nothing(lambda c: c.orders.list(start_date="0001-01-01T00:00:00+12:00"))
    assert e.field == "start_date"
    e = await _sends_nothing(lambda c: c.orders.list(end_date="9999-12-31T23:59:59-00:01"))
    assert e.field == "end_date"


def test_year_1_and_9999_are_sent_with_four_digit_years() -> None:
    assert format_query_datetime("0001-01-01T00:00:00Z", "start_date")[0] == (
        "0001-01-01T00:00:00.000Z"
    )
    assert format_query_datetime(date(999, 1, 2), "start_date")[0] == "0999-01-02T00:00:00.000Z"
    assert format_query_datetime(date.max, "end_date", end=True)[0] == ("9999-12-31T23:59:59.999Z")


class BrokenTZ(tzinfo):
    """A tzinfo answering nonsense: an offset of a day or more, or not a timedelta."""

    def __init__(self, offset: Any) -> None:
        self.offset = offset

    def utcoffset(self, dt: datetime | None) -> Any:
        return self.offset

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "broken"

    def __repr__(self) -> str:
        return f"BrokenTZ({self.offset!r})"


# Extreme values, each with a short repr (the failing example is printed) and built only
# when used (some are large).
@dataclass(frozen=True)
class Extreme:
    label: str
    make: Callable[[], Any]

    def __repr__(self) -> str:
        return f"Extreme({self.label})"


def just(value: Any, label: str | None = None) -> Extreme:
    return Extreme(label or repr(value)[:60], lambda: value)


_offsets = st.one_of(
    st.sampled_from([0, 1, -1, 60, -60, 14 * 3600, -14 * 3600, 86399, -86399]),
    st.integers(-86399, 86399),
).map(lambda s: timezone(timedelta(seconds=s)))
_edges = st.sampled_from(
    [datetime.min, datetime.max, datetime(1, 1, 1, 12), datetime(9999, 12, 31, 12),
     datetime(1, 1, 2), datetime(9999, 12, 30)]
)  # fmt: skip
readable_datetimes = st.one_of(
    st.builds(lambda d, tz: d.replace(tzinfo=tz), _edges, _offsets),
    _edges,  # naive
    st.datetimes(max_value=datetime(1, 1, 3), timezones=st.one_of(_offsets, st.timezones())),
    st.datetimes(min_value=datetime(9999, 12, 29), timezones=st.one_of(_offsets, st.timezones())),
    st.datetimes(timezones=st.timezones()),
)
extreme_datetimes = st.one_of(
    readable_datetimes,
    st.builds(
        lambda d, off: d.replace(tzinfo=BrokenTZ(off)),
        _edges,
        st.sampled_from([timedelta(hours=24), timedelta(days=-2), "x", 5, None]),
    ),
)
extreme_strings = st.one_of(
    readable_datetimes.map(lambda d: d.isoformat()),
    readable_datetimes.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+12:00",
            "9999-12-31T23:59:59-12:00",
            "0001-01-01",
            "9999-12-31",
            "0000-01-01",
            "+10000-01-01",
            "2024-13-01",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00-23:59",
            "",
            "Z",
            "2024-01-01\n",
            "2024-01-01T00:00:00\x00Z",
            "2024-01-01T00:00:00.123456789Z",
            "x" * 300,
        ]
    ),
)
_numbers = st.one_of(
    st.sampled_from(
        [
            0,
            -1,
            1,
            2**63,
            -(2**63),
            10**30,
            -(10**30),
            float("nan"),
            float("inf"),
            float("-inf"),
            1e308,
            -1e308,
            5e-324,
            -0.0,
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("-NaN"),
            Decimal("Infinity"),
            Decimal("-Infinity"),
            Decimal("1E+999999"),
            Decimal("-1E+999999"),
            Decimal("1E-999999"),
            Decimal("0E+999999"),
            Decimal("-0"),
            True,
            False,
        ]
    ),
    st.integers(),
    st.floats(),
    st.decimals(),
)
_deep = st.sampled_from([1, 31, 32, 33, 1000, 100_000])
_east, _west = timezone(timedelta(hours=14)), timezone(timedelta(hours=-14))
# The issue's reproductions and their kin first (Hypothesis draws first branches most).
WORST = (
    just(datetime(9999, 12, 31, 23, 0, tzinfo=_west), "9999-12-31T23:00-14:00"),
    just(datetime.min.replace(tzinfo=_east), "datetime.min+14:00"),
    just(datetime.max.replace(tzinfo=timezone(-timedelta(seconds=1))), "datetime.max-00:00:01"),
    just("0001-01-01T00:00:00+12:00"),
    just("9999-12-31T23:59:59.999-00:01"),
    just(datetime.max, "naive datetime.max"),
    Extreme("dict nested 100000", lambda: nested(100_000)),
    Extreme("list nested 100000", lambda: nested_lists(100_000)),
    just(float("inf")),
    just(float("nan")),
    just(Decimal("NaN")),
    just(Decimal("sNaN")),
    just(Decimal("-Infinity")),
    Extreme("10**4000", lambda: 10**4000),
    Extreme("'x' * 10**6", lambda: "x" * 10**6),
    just("a" + FORGED),
)
extremes: st.SearchStrategy[Extreme] = st.one_of(
    st.sampled_from(WORST),
    extreme_datetimes.map(just),
    extreme_strings.map(lambda s: just(s, f"str[{len(s)}] {s[:40]!r}")),
    st.sampled_from([date.min, date.max]).map(just),
    _numbers.map(lambda n: just(n, type(n).__name__ + (" big" if isinstance(n, int) else ""))),
    _deep.map(lambda n: Extreme(f"dict nested {n}", lambda: nested(n))),
    _deep.map(lambda n: Extreme(f"list nested {n}", lambda: nested_lists(n))),
    st.sampled_from([10**6, 10**7]).map(lambda n: Extreme(f"'x' * {n}", lambda: "x" * n)),
    st.sampled_from(
        [
            Extreme("10**4000", lambda: 10**4000),
            Extreme("-10**4000", lambda: -(10**4000)),
            Extreme("Decimal 5000 digits", lambda: Decimal("1" * 5000)),
            Extreme("date string + 100000 x", lambda: "2024-01-01" + "x" * 100_000),
        ]
    ),
    st.builds(lambda c: just("ab" + c + "cd"), _control),
    st.sampled_from([None, b"bytes", ["x"], {"k": "v"}, object()]).map(just),
)

CREATE_PATHS = (
    *sorted(VALID_TEXT), "amount", "delivery_method", "send_email", "expiration_date",
    "custom_fields", "custom_fields.value", "sender", "recipient", "recipient.address",
)  # fmt: skip


def _create_with(path: str, value: Any) -> ta.CreateOrderRequest:
    if path == "custom_fields.value":
        return order(custom_fields={"k": value})
    if path == "amount":
        return order(amount=value)  # through __post_init__, as a caller would
    return with_value(path, value)


def _well_formed(body: bytes) -> None:
    def no_constants(name: str) -> None:
        raise AssertionError(f"the body holds {name}")

    decoded = json.loads(body, parse_constant=no_constants)
    assert isinstance(decoded, dict)


def _nulls(value: Any) -> int:
    """How many None values ``value`` holds, at any depth (iteratively)."""
    count, stack = 0, [value]
    while stack:
        v = stack.pop()
        if v is None:
            count += 1
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return count


def check_create_extreme(path: str, value: Extreme) -> None:
    """``orders.create`` with ``value`` at ``path``: a ValidationError (naming a field), or
    a request that encodes to well-formed JSON; never another error."""
    req = _create_with(path, value.make())
    e = refusal(req)
    if e is None:
        _, body = encode_order(req)
        _well_formed(body)
        sent = json.loads(body).get("customFields")
        assert _nulls(sent) == _nulls(req.custom_fields), "a value was sent as null"
        return
    assert e.field.split(".")[0] in ta.CreateOrderRequest.__struct_fields__, e
    assert no_raw_control(str(e)), str(e)


@pytest.mark.parametrize("value", WORST, ids=repr)
@pytest.mark.parametrize("path", CREATE_PATHS)
def test_every_create_field_takes_the_worst_values(path: str, value: Extreme) -> None:
    check_create_extreme(path, value)


@pytest.mark.parametrize("path", CREATE_PATHS)
@settings(SETTINGS, max_examples=80)
@given(value=extremes)
def test_property_every_create_field_takes_extremes_with_a_validation_error(
    path: str, value: Extreme
) -> None:
    check_create_extreme(path, value)


@settings(SETTINGS, max_examples=40)
@given(path=st.sampled_from(CREATE_PATHS), value=extremes)
def test_property_a_refused_extreme_create_sends_nothing(path: str, value: Extreme) -> None:
    req = _create_with(path, value.make())
    if refusal(req) is None:
        return
    asyncio.run(_sends_nothing(lambda c: c.orders.create(req)))


LIST_FILTERS = (
    *sorted(LIST_TEXT_FILTERS), "min_amount", "max_amount", "send_email", "elements_per_block",
    "page", "concurrency",
)  # fmt: skip


async def _list_once(kwargs: dict[str, Any]) -> None:
    """``orders.list(**kwargs)``: a ValidationError when called, else one page fetched
    from a mock with every query value well-formed."""
    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST) as c:
        try:
            history = c.orders.list(**kwargs)
        except ta.ValidationError as e:
            assert e.field in kwargs or e.field in ("start_date", "min_amount"), e
            assert no_raw_control(str(e))
            return
        with aioresponses() as m:
            page = {"page": {"number": 0, "resultCount": 0, "totalCount": 0}, "orders": []}
            m.get(re.compile(".*"), status=200, payload=page, repeat=True)
            async for _ in history:
                pass
            for (_, url), _calls in m.requests.items():
                for key in ("startDate", "endDate"):
                    if key in url.query:
                        assert DATE_TEXT.fullmatch(url.query[key]), url.query[key]


@pytest.mark.parametrize("name", LIST_FILTERS)
def test_every_list_filter_takes_the_worst_values(name: str) -> None:
    for value in WORST:
        asyncio.run(_list_once({name: value.make()}))


@pytest.mark.parametrize("name", LIST_FILTERS)
@settings(SETTINGS, max_examples=30)
@given(value=extremes)
def test_property_every_list_filter_takes_extremes_with_a_validation_error(
    name: str, value: Extreme
) -> None:
    asyncio.run(_list_once({name: value.make()}))


@settings(SETTINGS, max_examples=150)
@given(
    start=st.one_of(extreme_datetimes, extreme_strings, st.sampled_from([date.min, date.max])),
    end=st.one_of(extreme_datetimes, extreme_strings, st.sampled_from([date.min, date.max])),
    amounts=st.tuples(_numbers, _numbers),
)
def test_property_list_ranges_of_extremes(start: Any, end: Any, amounts: tuple[Any, Any]) -> None:
    """Both ends of the range, and both amount bounds, extreme at once."""
    asyncio.run(_list_once({"start_date": start, "end_date": end}))
    asyncio.run(_list_once({"min_amount": amounts[0], "max_amount": amounts[1]}))


@pytest.mark.parametrize("value", [10**5000, -(10**5000)], ids=["huge", "-huge"])
def test_integers_past_str_conversion_limit(value: int) -> None:
    """Beyond Python's 4300-digit int-to-str limit: still a ValidationError."""
    assert refusal(order(amount=value)) is not None
    for name in ("min_amount", "max_amount", "page", "elements_per_block"):
        with pytest.raises(ta.ValidationError):
            asyncio.run(_list_raises({name: value}))


async def _list_raises(kwargs: dict[str, Any]) -> None:
    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST) as c:
        c.orders.list(**kwargs)


def test_the_whole_suite_logged_no_raw_control_character() -> None:
    """Across every tango_async record the hygiene plugin recorded so far in this run (the
    whole suite when it runs whole), no raw control character."""
    from ._hygiene import RECORDER

    ours = [t for t in RECORDER.texts if t.startswith("tango_async ")]
    bad = [t for t in ours if not no_raw_control(t)]
    assert bad == [], bad[:3]
