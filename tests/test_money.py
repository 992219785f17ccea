"""Exact money rules for order amounts: what is refused (and why), the plain wire form, the
per-client upper bound, bulk input rows, and plain amounts in the CLI's list output."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tango_async as ta
import tango_async.testing as ta_testing
from tango_async._codec import ENCODER
from tango_async._constants import DEFAULT_MAX_AMOUNT
from tango_async._validation import (
    ZERO_DECIMAL_CURRENCIES,
    amount_places,
    canonical_amount,
    check_amount,
    plain_decimal,
    prepare_order,
)
from tango_async.bulk._inputs import read_orders
from tango_async.cli._app import cli
from tango_async.cli._orders import CSV_COLUMNS
from tango_async.pagination import build_list_query
from tango_async.resources.orders import encode_order
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY, order_request

START = datetime(2024, 1, 1, tzinfo=UTC)

# Every value the client must refuse, with (a piece of) the rule it breaks.
REFUSED: list[tuple[Any, str]] = [
    (0, "must be greater than 0"),
    (0.0, "must be greater than 0"),
    (-0.0, "must be greater than 0"),
    (Decimal("0"), "must be greater than 0"),
    (Decimal("-0"), "must be greater than 0"),
    (Decimal("0E-7"), "must be greater than 0"),
    (-5, "must be greater than 0"),
    (Decimal("-0.01"), "must be greater than 0"),
    (Decimal("-1E+999999999"), "must be greater than 0"),
    (5.001, "a float must be exact: 5.001 has more than 2 decimal places"),
    (Decimal("5.001"), "must have at most 2 decimal places (got 5.001)"),
    (0.1 + 0.2, "a float must be exact: 0.30000000000000004 has more than 2 decimal places"),
    (5e-324, "a float must be exact: 5e-324 has more than 2 decimal places; pass a Decimal"),
    (Decimal("1E-999999"), "must have at most 2 decimal places (got 1E-999999)"),
    (Decimal("1E-999999999"), "must have at most 2 decimal places"),
    (10**7, "must be at most 1000000 (the client's max_amount)"),
    (Decimal("1000000.01"), "must be at most 1000000"),
    (Decimal("1E+1000"), "must be at most 1000000"),
    (Decimal("1E+999999999"), "must be at most 1000000"),
    (1e22, "must be at most 1000000"),
    (10**5000, "must be at most 1000000"),
    (Decimal("1234567890123456789012345678901234567890.5"), "must be at most 1000000"),
    (Decimal("1234567890123456789012345678901234567890.123"), "must have at most 2 decimal"),
    (float("nan"), "must be a finite number"),
    (float("inf"), "must be a finite number"),
    (Decimal("NaN"), "must be a finite number"),
    (Decimal("sNaN"), "must be a finite number"),
    (Decimal("-Infinity"), "must be a finite number"),
    (True, "must be a number (Decimal, int or float), not bool"),
    ("10", "must be a number (Decimal, int or float), not str"),
]


def _id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**20:
        return f"int-{len(str(value)) if value < 10**4000 else 'huge'}"
    return repr(value)[:40]


def posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.method == "POST"]


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None) as server:
        yield server


# --- the rules, as check_amount states them -----------------------------------------------------


@pytest.mark.parametrize(("value", "rule"), REFUSED, ids=[_id(v) for v, _ in REFUSED])
def test_check_amount_refuses_with_the_rule_in_words(value: object, rule: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        check_amount(value)
    assert info.value.field == "amount"
    assert rule in info.value.rule, info.value.rule


def test_exact_messages() -> None:
    def rule(value: object, **kw: Any) -> str:
        with pytest.raises(ta.ValidationError) as info:
            check_amount(value, **kw)
        return info.value.rule

    assert rule(0) == "must be greater than 0"
    assert rule(Decimal("5.001")) == "must have at most 2 decimal places (got 5.001)"
    assert rule(10**7) == "must be at most 1000000 (the client's max_amount)"
    assert rule(Decimal("NaN")) == "must be a finite number"
    assert rule(0.1 + 0.2) == (
        "a float must be exact: 0.30000000000000004 has more than 2 decimal places; "
        "pass Decimal('0.3')"
    )
    assert rule(Decimal("5.5"), currency="JPY") == "must be a whole number for JPY (got 5.5)"
    assert rule(Decimal("1.005"), currency="KWD") == (
        "must have at most 2 decimal places for KWD (got 1.005)"
    )
    assert rule(Decimal("6"), max_amount=5) == "must be at most 5 (the client's max_amount)"
    # a long value is shortened in the message
    long = rule(Decimal("0." + "1" * 200))
    assert long.startswith("must have at most 2 decimal places (got 0.111") and len(long) < 100


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("1e3"), "1000"),
        (Decimal("1E+6"), "1000000"),
        (Decimal("10.00"), "10"),
        (Decimal("10.50"), "10.5"),
        (Decimal("10.500"), "10.5"),
        (Decimal("0.0100"), "0.01"),
        (Decimal("123456.78"), "123456.78"),
        (10, "10"),
        (10.5, "10.5"),
        (10.0, "10"),
        (1e6, "1000000"),
        (Decimal("1000000.000"), "1000000"),
    ],
    ids=repr,
)
def test_check_amount_returns_the_canonical_plain_decimal(value: object, wire: str) -> None:
    got = check_amount(value)
    assert isinstance(got, Decimal) and str(got) == wire and got == Decimal(wire)


def test_decimal_places_by_currency() -> None:
    assert check_amount(Decimal("5"), currency="JPY") == 5
    assert check_amount(Decimal("5.00"), currency="JPY") == 5  # the value is whole
    assert check_amount(Decimal("5E+3"), currency="jpy") == 5000
    for currency in ("JPY", "KRW", "jpy"):
        with pytest.raises(ta.ValidationError, match="whole number"):
            check_amount(Decimal("5.5"), currency=currency)
    with pytest.raises(ta.ValidationError, match="whole number for JPY"):
        check_amount(5.5, currency="JPY")  # an exact float, but not a whole one
    assert check_amount(Decimal("5.55"), currency="USD") == Decimal("5.55")
    assert check_amount(Decimal("5.55"), currency="XYZ") == Decimal("5.55")  # unknown: 2
    assert check_amount(Decimal("5.55"), currency="KWD") == Decimal("5.55")  # 3 minor: capped
    assert amount_places() == amount_places("USD") == amount_places("BHD") == 2
    assert all(amount_places(c) == 0 for c in ZERO_DECIMAL_CURRENCIES)
    assert len(ZERO_DECIMAL_CURRENCIES) == 16
    with pytest.raises(ta.ValidationError) as info:
        check_amount(Decimal("5"), currency=392)  # type: ignore[arg-type]
    assert info.value.field == "currency"


def test_float_hint_rounds_to_the_allowed_places() -> None:
    with pytest.raises(ta.ValidationError, match=r"pass Decimal\('1\.01'\)$"):
        check_amount(1.005)
    with pytest.raises(ta.ValidationError, match=r"pass Decimal\('10'\)$"):
        check_amount(10.000000000000002, currency="JPY")


def test_canonical_and_plain_helpers_are_exact() -> None:
    assert str(canonical_amount(Decimal("1E+30"))) == "1" + "0" * 30
    big = Decimal("1234567890123456789012345678901234567890.10")  # beyond 28 digits
    assert str(canonical_amount(big)) == "1234567890123456789012345678901234567890.1"
    assert str(canonical_amount(Decimal("-0"))) == "0"
    assert plain_decimal(Decimal("1E+3")) == "1000"
    assert plain_decimal(Decimal("1E-7")) == "0.0000001"
    assert plain_decimal(Decimal("NaN")) == "NaN"


def test_floats_are_kept_exact_or_left_for_validation_to_refuse() -> None:
    assert order_request(amount=10.5).amount == Decimal("10.5")
    assert isinstance(order_request(amount=10.5).amount, Decimal)
    assert isinstance(order_request(amount=1e22).amount, Decimal)
    inexact = order_request(amount=0.1 + 0.2)
    assert isinstance(inexact.amount, float)  # refused as a float, not silently rounded
    with pytest.raises(ta.ValidationError, match="a float must be exact"):
        prepare_order(inexact)


def test_prepare_order_returns_the_canonical_amount() -> None:
    req = order_request(amount=Decimal("1E+3"))
    wire = prepare_order(req)
    assert str(wire.amount) == "1000"
    assert str(req.amount) == "1E+3"  # the caller's request is left as it was
    assert b'"amount":1000,' in ENCODER.encode(wire)


def test_prepare_order_and_encode_order_take_max_amount() -> None:
    req = order_request(amount=5_000_000)
    with pytest.raises(ta.ValidationError, match="at most 1000000"):
        prepare_order(req)
    assert prepare_order(req, max_amount=Decimal(5_000_000)).amount == 5_000_000
    with pytest.raises(ta.ValidationError, match="at most 1000000"):
        encode_order(req)
    _, body = encode_order(req, max_amount=10**7)
    assert b'"amount":5000000,' in body


# --- end to end: nothing is sent, and the body holds plain numbers ------------------------------


@pytest.mark.parametrize(("value", "rule"), REFUSED, ids=[_id(v) for v, _ in REFUSED])
async def test_refused_amounts_send_nothing(sb: Sandbox, value: object, rule: str) -> None:
    async with sb.client(retry=FAST_RETRY) as tango:
        with pytest.raises(ta.ValidationError) as info:
            await tango.orders.create(order_request(amount=value))
    assert info.value.field == "amount"
    assert rule in info.value.rule
    assert posts(sb) == []


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("1e3"), b'"amount":1000,'),
        (10, b'"amount":10,'),
        (10.5, b'"amount":10.5,'),
        (Decimal("10.50"), b'"amount":10.5,'),
        (Decimal("10.500"), b'"amount":10.5,'),
        (Decimal("0.01"), b'"amount":0.01,'),
    ],
    ids=repr,
)
async def test_accepted_amounts_go_on_the_wire_plain(
    sb: Sandbox, value: object, wire: bytes
) -> None:
    async with sb.client(retry=FAST_RETRY) as tango:
        order = await tango.orders.create(order_request(amount=value))
    [post] = posts(sb)
    assert wire in post.body, post.body
    assert not re.search(rb'"amount":[^,}]*[eE]', post.body)
    assert order.amount_charged is not None and order.amount_charged.value == Decimal(value)


async def test_a_client_max_amount_raises_the_bound(sb: Sandbox) -> None:
    async with sb.client(retry=FAST_RETRY, max_amount=Decimal(5_000_000)) as tango:
        assert tango.max_amount == Decimal(5_000_000)
        await tango.orders.create(order_request(amount=5_000_000))
        with pytest.raises(ta.ValidationError) as info:
            await tango.orders.create(order_request(amount=10**7))
    assert info.value.field == "amount"
    assert info.value.rule == "must be at most 5000000 (the client's max_amount)"
    [post] = posts(sb)
    assert b'"amount":5000000,' in post.body


async def test_a_client_max_amount_lowers_the_bound(sb: Sandbox) -> None:
    async with sb.client(retry=FAST_RETRY, max_amount=100) as tango:
        with pytest.raises(ta.ValidationError, match="at most 100 "):
            await tango.orders.create(order_request(amount=Decimal("100.01")))
    assert posts(sb) == []


def test_client_max_amount_default_and_validation() -> None:
    assert ta.TangoClient("p", "k").max_amount == DEFAULT_MAX_AMOUNT == Decimal(1_000_000)
    assert ta.TangoClient("p", "k", max_amount=None).max_amount == DEFAULT_MAX_AMOUNT
    assert ta.TangoClient("p", "k", max_amount=Decimal("2.5E+6")).max_amount == 2_500_000
    bad: list[Any] = [0, -1, Decimal("-0"), Decimal("NaN"), Decimal("Infinity"), float("inf"),
                      float("nan"), True, "5", [5]]  # fmt: skip
    for value in bad:
        with pytest.raises(ta.ValidationError) as info:
            ta.TangoClient("p", "k", max_amount=value)
        assert info.value.field == "max_amount", value


# --- list filters -------------------------------------------------------------------------------


def test_list_amount_filters_are_plain_and_allow_zero() -> None:
    q = build_list_query(min_amount=Decimal("1E+3"), max_amount=Decimal("2.5E+3"))
    assert q == [("minAmount", "1000"), ("maxAmount", "2500")]
    assert build_list_query(min_amount=0) == [("minAmount", "0")]
    assert build_list_query(min_amount=Decimal("-0")) == [("minAmount", "0")]
    assert build_list_query(max_amount=10.5) == [("maxAmount", "10.5")]
    for kw in ({"min_amount": -1}, {"max_amount": Decimal("1E+999999999")},
               {"max_amount": Decimal("5.001")}, {"min_amount": Decimal("NaN")}):  # fmt: skip
        with pytest.raises(ta.ValidationError) as info:
            build_list_query(**kw)
        assert info.value.field == next(iter(kw))


async def test_list_amount_filters_on_the_wire(sb: Sandbox) -> None:
    async with sb.client(retry=FAST_RETRY) as tango:
        [o async for o in tango.orders.list(min_amount=Decimal("1E+3"), max_amount=2e3)]
    q = sb.requests[-1].query
    assert q["minAmount"] == "1000" and q["maxAmount"] == "2000"


# --- bulk input files ---------------------------------------------------------------------------

HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"


def _row(amount: str) -> str:
    return f"cust-12345,acct-12345,U561593,{amount},ann@example.com,Ann"


def test_read_orders_reports_each_bad_amount(tmp_path: Path) -> None:
    amounts = ["10.00", "0", "-0", "5.001", "10000000", "1E+1000", "1e3", "10.500", "1E-999999",
               "0.00", "1000000.01", "2.5"]  # fmt: skip
    bad = {3, 4, 5, 6, 7, 10, 11, 12}  # file lines: the header is line 1 (issue 16)
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([HEADER, *map(_row, amounts)]) + "\n", encoding="utf-8")
    rows = read_orders(path)
    assert [r.row for r in rows] == list(range(2, len(amounts) + 2))
    for r in rows:
        if r.row in bad:
            assert r.request is None
            assert [e.field for e in r.errors] == ["amount"], (r.row, r.errors)
        else:
            assert r.errors == () and r.request is not None
    by_row = {r.row: r.errors[0].rule for r in rows if r.errors}
    assert by_row[3] == by_row[4] == "must be greater than 0"
    assert by_row[5] == "must have at most 2 decimal places (got 5.001)"
    assert by_row[6] == "must be at most 1000000 (the client's max_amount)"
    # the request is the row as read; what goes on the wire is canonical
    seventh = rows[6].request
    assert seventh is not None
    assert b'"amount":1000,' in encode_order(seventh)[1]


def test_read_orders_takes_max_amount(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([HEADER, _row("5000000"), _row("10000000")]) + "\n", "utf-8")
    rows = read_orders(path, max_amount=Decimal(5_000_000))
    assert rows[0].errors == ()
    assert [e.field for e in rows[1].errors] == ["amount"]
    assert "at most 5000000" in rows[1].errors[0].rule
    with pytest.raises(ta.ValidationError) as info:
        read_orders(path, max_amount=0)
    assert info.value.field == "max_amount"


def test_read_orders_jsonl_amounts(tmp_path: Path) -> None:
    def line(amount: str) -> str:
        return ('{"customerIdentifier": "cust-12345", "accountIdentifier": "acct-12345", '
                f'"utid": "U561593", "amount": {amount}, "sendEmail": false}}')  # fmt: skip

    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(map(line, ["1E3", "0", "0.30000000000000004", "10.50"])) + "\n")
    rows = read_orders(path)
    assert [bool(r.errors) for r in rows] == [False, True, True, False]
    assert all(e.field == "amount" for r in rows for e in r.errors)


# --- CLI output ---------------------------------------------------------------------------------


def _seeded_sandbox(monkeypatch: pytest.MonkeyPatch, amount: Decimal) -> None:
    """Make ``--sandbox local`` start with one stored order of ``amount`` (sent as 1E+3)."""

    class Seeded(Sandbox):
        async def start(self) -> Sandbox:
            await super().start()
            self.seed_orders(1, start=START, step=timedelta(hours=1), amount=amount)
            return self

    monkeypatch.setattr(ta_testing, "Sandbox", Seeded)


def test_orders_list_csv_amount_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    _seeded_sandbox(monkeypatch, Decimal("1E+3"))
    result = CliRunner().invoke(cli, ["--sandbox", "local", "orders", "list", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    assert rows[0]["amount"] == "1000"
    assert "E+" not in result.stdout


def test_orders_list_jsonl_amount_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    _seeded_sandbox(monkeypatch, Decimal("1E+3"))
    result = CliRunner().invoke(cli, ["--sandbox", "local", "orders", "list"])
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert '"value":1000' in line and "E+" not in line
    assert json.loads(line)["denomination"]["value"] == 1000


def test_csv_amount_column_of_a_decoded_order() -> None:
    order = ta.Order(reference_order_id="r", denomination=ta.Money(value=Decimal("1E+3")))
    [get] = [g for name, g in CSV_COLUMNS if name == "amount"]
    assert get(order) == "1000"
    assert get(ta.Order(reference_order_id="r")) is None
