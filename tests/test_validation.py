"""Client-side validation: every documented request rule, checked without the network.

Each refusal must be a ``ta.ValidationError`` whose ``field`` names the offending field
in dotted snake_case. The rules come from tangocard-openapi.json (CreateOrderCriteria,
RecipientInfoCriteria, AddressCriteria) and the doc pages, newest first (../shared/API.md).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import tango_async as ta
from tango_async._codec import ENCODER
from tango_async._validation import (
    format_query_datetime,
    line_item_resend_request,
    order_resend_request,
    prepare_order,
)
from tango_async.pagination import build_list_query

# --- helpers ------------------------------------------------------------------------------

ANN = ta.Recipient(email="ann@example.com", first_name="Ann", last_name="Lee")


def us_address(**kw: Any) -> ta.Address:
    fields: dict[str, Any] = {
        "street_line1": "1 Main St",
        "city": "Springfield",
        "state_or_province": "IL",
        "postal_code": "62701",
        "country": "US",
    }
    fields.update(kw)
    return ta.Address(**fields)


def uk_address(**kw: Any) -> ta.Address:
    fields: dict[str, Any] = {
        "street_line1": "10 Downing Street",
        "city": "London",
        "state_or_province": "Greater London",
        "postal_code": "SW1A 2AA",
        "country": "GB",
    }
    fields.update(kw)
    return ta.Address(**fields)


def order(**kw: Any) -> ta.CreateOrderRequest:
    """A valid EMAIL order; keyword arguments override its fields."""
    fields: dict[str, Any] = {
        "customer_identifier": "cust-12345",
        "account_identifier": "acct-12345",
        "utid": "U561593",
        "amount": Decimal("10.00"),
        "recipient": ANN,
    }
    fields.update(kw)
    return ta.CreateOrderRequest(**fields)


def physical(**kw: Any) -> ta.CreateOrderRequest:
    """A valid ADDRESS order; ``recipient`` fields go in as keywords prefixed ``r_``."""
    r: dict[str, Any] = {"first_name": "Ann", "last_name": "Lee", "address": us_address()}
    r.update({k[2:]: kw.pop(k) for k in list(kw) if k.startswith("r_")})
    return order(delivery_method="ADDRESS", recipient=ta.Recipient(**r), **kw)


def phone(mobile: str | None, **kw: Any) -> ta.CreateOrderRequest:
    return order(
        delivery_method="PHONE",
        recipient=ta.Recipient(first_name="Ann", mobile_number=mobile),
        **kw,
    )


def refused(req: ta.CreateOrderRequest, field: str) -> ta.ValidationError:
    with pytest.raises(ta.ValidationError) as info:
        prepare_order(req)
    assert info.value.field == field, f"{info.value!r} names {info.value.field!r}, not {field!r}"
    return info.value


def wire_json(req: ta.CreateOrderRequest) -> dict[str, Any]:
    return json.loads(ENCODER.encode(prepare_order(req)))


# --- the error type -----------------------------------------------------------------------


def test_validation_error_is_a_tango_error_and_a_value_error() -> None:
    err = refused(order(utid="X1"), "utid")
    assert isinstance(err, ta.TangoError)
    assert isinstance(err, ValueError)
    assert err.rule
    assert str(err).startswith("utid: ")


def test_a_valid_order_passes() -> None:
    wire = prepare_order(order())
    assert isinstance(wire, ta.CreateOrderRequest)


def test_not_a_request_is_refused() -> None:
    with pytest.raises(ta.ValidationError) as info:
        prepare_order({"utid": "U1"})  # type: ignore[arg-type]
    assert info.value.field == "request"


# --- identifiers --------------------------------------------------------------------------


IDENTIFIER_OK = ["abcde", "A-1-b", "12345", "-----", "x" * 100, "Cust-2024-ACME"]
IDENTIFIER_BAD = [
    "abcd",  # 4 characters
    "x" * 101,
    "cust_12345",  # underscore
    "cust 12345",
    "cust.12345",
    "cüst-12345",  # non-ASCII letter
    "cust-12345\n",
    "",
    None,
    12345,
]


@pytest.mark.parametrize("field", ["customer_identifier", "account_identifier"])
@pytest.mark.parametrize("value", IDENTIFIER_OK)
def test_identifier_accepted(field: str, value: str) -> None:
    prepare_order(order(**{field: value}))


@pytest.mark.parametrize("field", ["customer_identifier", "account_identifier"])
@pytest.mark.parametrize("value", IDENTIFIER_BAD)
def test_identifier_refused(field: str, value: object) -> None:
    refused(order(**{field: value}), field)


@pytest.mark.parametrize("value", ["U561593", "u1", "U000000000001"])
def test_utid_accepted(value: str) -> None:
    prepare_order(order(utid=value))


@pytest.mark.parametrize("value", ["561593", "U", "UA1", "X561593", "U561593 ", " U1", "U-1", ""])
def test_utid_refused(value: str) -> None:
    refused(order(utid=value), "utid")


def test_utid_is_required() -> None:
    refused(order(utid=None), "utid")


@pytest.mark.parametrize("value", ["P123", "p1", None])
def test_ptid_accepted(value: str | None) -> None:
    prepare_order(order(ptid=value))


@pytest.mark.parametrize("value", ["123", "P", "PX1", "U123", "P12 ", ""])
def test_ptid_refused(value: str) -> None:
    refused(order(ptid=value), "ptid")


@pytest.mark.parametrize("value", ["E000000", "e123456", None])
def test_etid_accepted(value: str | None) -> None:
    prepare_order(order(etid=value))


@pytest.mark.parametrize("value", ["E00000", "E0000000", "000000", "X000000", "E00000A", ""])
def test_etid_refused(value: str) -> None:
    refused(order(etid=value), "etid")


# ASCII digits only: in the OpenAPI (ECMA-262) patterns ``\d`` is [0-9], and a US ZIP or a
# US mobile number is made of ASCII digits. Python's ``\d`` also matches other scripts' digits.
ARABIC_INDIC = "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: order(utid="U" + ARABIC_INDIC[:3]), "utid"),
        (lambda: order(ptid="P" + ARABIC_INDIC[:3]), "ptid"),
        (lambda: order(etid="E" + ARABIC_INDIC[:6]), "etid"),
        (
            lambda: physical(r_address=us_address(postal_code=ARABIC_INDIC[:5])),
            "recipient.address.postal_code",
        ),
        (lambda: phone("+1" + ARABIC_INDIC), "recipient.mobile_number"),
    ],
    ids=["utid", "ptid", "etid", "us-zip", "phone"],
)
def test_non_ascii_digits_refused(make: Any, field: str) -> None:
    refused(make(), field)


# --- externalRefID ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "ref-1", "x" * 100, None])
def test_external_ref_id_accepted(value: str | None) -> None:
    prepare_order(order(external_ref_id=value))


@pytest.mark.parametrize("value", ["x" * 101, "", "   ", "\t"])
def test_external_ref_id_refused(value: str) -> None:
    refused(order(external_ref_id=value), "external_ref_id")


def test_external_ref_id_must_be_a_string() -> None:
    refused(order(external_ref_id=123), "external_ref_id")


# --- amount -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [Decimal("10.00"), Decimal("0.01"), 1, 25, 10.1, 0.5, Decimal("1000000.00")]
)
def test_amount_accepted(value: object) -> None:
    prepare_order(order(amount=value))


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        "10",
        "10.00",
        None,
        [10],
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        -1,
        -0.01,
        Decimal("-0.01"),
        0,
        0.0,
        Decimal("0"),
        Decimal("1000000.01"),
    ],
    ids=repr,
)
def test_amount_refused(value: object) -> None:
    refused(order(amount=value), "amount")


def test_amount_decimal_goes_on_the_wire_as_an_exact_json_number() -> None:
    body = ENCODER.encode(prepare_order(order(amount=Decimal("10.10"))))
    assert b'"amount":10.1,' in body
    assert b'"amount":"' not in body


def test_amount_float_goes_on_the_wire_as_its_shortest_repr() -> None:
    body = ENCODER.encode(prepare_order(order(amount=10.1)))
    assert b'"amount":10.1,' in body or body.endswith(b'"amount":10.1}')
    assert json.loads(body)["amount"] == 10.1


def test_amount_int_goes_on_the_wire_as_an_integer() -> None:
    assert b'"amount":25,' in ENCODER.encode(prepare_order(order(amount=25)))


# --- names --------------------------------------------------------------------------------


DIGITAL_NAME_OK = ["Ann", "O'Brien", "José", "Ann-Marie (Jr.)", "x" * 100, "A&B; C"]
DIGITAL_NAME_BAD = ["<Ann>", "Ann>", "<script", "A/B", "x" * 101, 42]


@pytest.mark.parametrize("value", DIGITAL_NAME_OK)
@pytest.mark.parametrize("part", ["first_name", "last_name"])
def test_digital_recipient_name_accepted(part: str, value: str) -> None:
    r = {"email": "ann@example.com", "first_name": "Ann", part: value}
    prepare_order(order(recipient=ta.Recipient(**r)))


@pytest.mark.parametrize("value", DIGITAL_NAME_BAD)
@pytest.mark.parametrize("part", ["first_name", "last_name"])
def test_digital_recipient_name_refused(part: str, value: object) -> None:
    r = {"email": "ann@example.com", "first_name": "Ann", part: value}
    refused(order(recipient=ta.Recipient(**r)), f"recipient.{part}")


@pytest.mark.parametrize("value", DIGITAL_NAME_OK)
@pytest.mark.parametrize("part", ["first_name", "last_name"])
def test_sender_name_accepted(part: str, value: str) -> None:
    prepare_order(order(sender=ta.Sender(**{part: value})))


@pytest.mark.parametrize("value", DIGITAL_NAME_BAD)
@pytest.mark.parametrize("part", ["first_name", "last_name"])
def test_sender_name_refused(part: str, value: object) -> None:
    refused(order(sender=ta.Sender(**{part: value})), f"sender.{part}")


def test_sender_names_follow_digital_rules_on_physical_orders() -> None:
    prepare_order(physical(sender=ta.Sender(first_name="O'Brien-" + "x" * 60)))


@pytest.mark.parametrize("value", ["ann@example.com", None])
def test_sender_email_accepted(value: str | None) -> None:
    prepare_order(order(sender=ta.Sender(email=value)))


@pytest.mark.parametrize("value", ["ann", "ann@", "@example.com", "ann@example", "a b@example.com"])
def test_sender_email_refused(value: str) -> None:
    refused(order(sender=ta.Sender(email=value)), "sender.email")


def test_sender_must_be_a_sender() -> None:
    refused(order(sender={"first_name": "Ann"}), "sender")


PHYSICAL_NAME_OK = ["Ann", "Ann-Marie", "Ann Lee, Jr.", "Smith & Sons", "x" * 25, "R2D2"]
PHYSICAL_NAME_BAD = ["x" * 26, "O'Brien", "José", "Ann/Lee", "Ann <Lee>", "Ann_Lee", "Ann!"]


@pytest.mark.parametrize("value", PHYSICAL_NAME_OK)
@pytest.mark.parametrize("part", ["first_name", "last_name"])
def test_physical_recipient_name_accepted(part: str, value: str) -> None:
    prepare_order(physical(**{f"r_{part}": value}))


@pytest.mark.parametrize("value", PHYSICAL_NAME_BAD)
@pytest.mark.parametrize("part", ["first_name", "last_name"])
def test_physical_recipient_name_refused(part: str, value: str) -> None:
    refused(physical(**{f"r_{part}": value}), f"recipient.{part}")


def test_physical_rules_apply_when_address_delivery_is_inferred() -> None:
    r = ta.Recipient(first_name="x" * 26, last_name="Lee", address=us_address())
    refused(order(recipient=r), "recipient.first_name")


def test_digital_order_with_address_keeps_digital_name_rules() -> None:
    r = ta.Recipient(
        email="ann@example.com", first_name="O'Brien " + "x" * 30, address=us_address()
    )
    prepare_order(order(delivery_method="EMAIL", recipient=r))


# --- address ------------------------------------------------------------------------------


def address_order(addr: ta.Address) -> ta.CreateOrderRequest:
    return physical(r_address=addr)


@pytest.mark.parametrize(
    "addr",
    [
        us_address(),
        us_address(street_line1="x" * 35, street_line2="x" * 35),
        us_address(street_line1="Apt #4, 1/2 Main St. & Co's %@", street_line2="Suite 100"),
        us_address(city="x" * 30),
        us_address(city="St. John's-Wood & Co"),
        us_address(country="us", state_or_province="NY", postal_code="10001"),
        us_address(company_name="ACME, Inc. <anything>"),
        us_address(state_or_province="PR", postal_code="00901"),
        ta.Address("1 Rue de Paris", "Montreal", "QC", "H2X 1Y4", "CA"),
        uk_address(),
        uk_address(state_or_province="x" * 35),
        uk_address(postal_code="x" * 12),
        uk_address(country="de", state_or_province="Bayern", postal_code="80331"),
    ],
    ids=lambda a: f"{a.country}-{a.street_line1[:10]}-{a.city[:8]}-{a.state_or_province[:8]}",
)
def test_address_accepted(addr: ta.Address) -> None:
    wire = prepare_order(address_order(addr))
    assert wire.recipient is not None
    assert wire.recipient.address == addr


@pytest.mark.parametrize(
    ("addr", "field"),
    [
        # street: 35 characters, letters digits space . , - / & % # @ '
        (us_address(street_line1="x" * 36), "street_line1"),
        (us_address(street_line1="1 Main St!"), "street_line1"),
        (us_address(street_line1="1 Hauptstraße"), "street_line1"),
        (us_address(street_line1="1 Main St; 2"), "street_line1"),
        (us_address(street_line1="   "), "street_line1"),
        (us_address(street_line1=""), "street_line1"),
        (us_address(street_line1=None), "street_line1"),
        (us_address(street_line2="x" * 36), "street_line2"),
        (us_address(street_line2="Suite <1>"), "street_line2"),
        # city: 30 characters, letters digits space . - & '
        (us_address(city="x" * 31), "city"),
        (us_address(city="Springfield, IL"), "city"),
        (us_address(city="Springfield/2"), "city"),
        (us_address(city="Zürich"), "city"),
        (us_address(city=" "), "city"),
        (us_address(city=None), "city"),
        # country: 2 letters
        (us_address(country="USA"), "country"),
        (us_address(country="U"), "country"),
        (us_address(country="U1"), "country"),
        (us_address(country=""), "country"),
        (us_address(country=None), "country"),
        # US ZIP: 5 digits only
        (us_address(postal_code="1234"), "postal_code"),
        (us_address(postal_code="123456"), "postal_code"),
        (us_address(postal_code="12345-6789"), "postal_code"),
        (us_address(postal_code="1234A"), "postal_code"),
        (us_address(postal_code=" 12345"), "postal_code"),
        (us_address(postal_code=""), "postal_code"),
        (us_address(postal_code=None), "postal_code"),
        (us_address(country="us", postal_code="12345-6789"), "postal_code"),
        # other postal codes: 1-12 letters, digits, spaces, hyphens
        (uk_address(postal_code="x" * 13), "postal_code"),
        (uk_address(postal_code=""), "postal_code"),
        (uk_address(postal_code="SW1A_2AA"), "postal_code"),
        # US and CA: 2 uppercase letters
        (us_address(state_or_province="il"), "state_or_province"),
        (us_address(state_or_province="Illinois"), "state_or_province"),
        (us_address(state_or_province="I"), "state_or_province"),
        (us_address(state_or_province="I1"), "state_or_province"),
        (us_address(state_or_province=""), "state_or_province"),
        (us_address(state_or_province=None), "state_or_province"),
        (ta.Address("1 Rue de Paris", "Montreal", "Quebec", "H2X 1Y4", "CA"), "state_or_province"),
        (ta.Address("1 Rue de Paris", "Montreal", "qc", "H2X 1Y4", "ca"), "state_or_province"),
        # elsewhere: a region of fewer than 36 characters
        (uk_address(state_or_province="x" * 36), "state_or_province"),
        (uk_address(state_or_province="  "), "state_or_province"),
        (uk_address(state_or_province=None), "state_or_province"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_address_refused(addr: ta.Address, field: str) -> None:
    refused(address_order(addr), f"recipient.address.{field}")


def test_address_must_be_an_address() -> None:
    r = ta.Recipient(first_name="Ann", last_name="Lee", address={"city": "x"})
    refused(order(delivery_method="ADDRESS", recipient=r), "recipient.address")


def test_address_delivery_without_address_is_refused() -> None:
    refused(physical(r_address=None), "recipient.address")


def test_address_delivery_without_recipient_is_refused() -> None:
    with pytest.raises(ta.ValidationError) as info:
        prepare_order(order(delivery_method="ADDRESS", recipient=None))
    assert info.value.field in ("recipient", "recipient.address")


@pytest.mark.parametrize("part", ["first_name", "last_name"])
@pytest.mark.parametrize("value", [None, "", "  "])
def test_address_delivery_needs_first_and_last_name(part: str, value: str | None) -> None:
    refused(physical(**{f"r_{part}": value}), f"recipient.{part}")


@pytest.mark.parametrize("method", ["EMAIL", "NONE", "EMBEDDED"])
def test_address_on_digital_order_is_sent_as_given(method: str) -> None:
    addr = uk_address(street_line2="Flat 1", company_name="ACME Ltd")
    r = ta.Recipient(email="ann@example.com", first_name="Ann", address=addr)
    wire = prepare_order(order(delivery_method=method, recipient=r))
    assert wire.delivery_method == method
    assert wire.recipient is not None
    assert wire.recipient.address == addr
    sent = json.loads(ENCODER.encode(wire))
    assert sent["deliveryMethod"] == method
    assert sent["recipient"]["address"] == {
        "streetLine1": "10 Downing Street",
        "city": "London",
        "stateOrProvince": "Greater London",
        "postalCode": "SW1A 2AA",
        "country": "GB",
        "streetLine2": "Flat 1",
        "companyName": "ACME Ltd",
    }


# --- free-text lengths --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "limit"),
    [("message", 3000), ("campaign", 1024), ("notes", 1024), ("purchase_order_number", 100)],
)
def test_text_length_limits(field: str, limit: int) -> None:
    prepare_order(order(**{field: "x" * limit}))
    prepare_order(order(**{field: ""}))
    refused(order(**{field: "x" * (limit + 1)}), field)


@pytest.mark.parametrize(
    "field", ["message", "campaign", "notes", "purchase_order_number", "email_subject"]
)
def test_text_fields_must_be_strings(field: str) -> None:
    refused(order(**{field: 123}), field)


def test_custom_fields_must_be_a_mapping() -> None:
    prepare_order(order(custom_fields={"costCenter": "42"}))
    refused(order(custom_fields=[("costCenter", "42")]), "custom_fields")


# --- per-method recipient requirements ----------------------------------------------------


def test_email_delivery_needs_a_recipient() -> None:
    refused(order(delivery_method="EMAIL", recipient=None), "recipient")


def test_email_delivery_needs_recipient_email() -> None:
    refused(order(recipient=ta.Recipient(first_name="Ann")), "recipient.email")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_email_delivery_needs_recipient_first_name(value: str | None) -> None:
    refused(
        order(recipient=ta.Recipient(email="ann@example.com", first_name=value)),
        "recipient.first_name",
    )


@pytest.mark.parametrize("value", ["ann", "ann@example", "ann@@example.com", "x" * 95 + "@a.com"])
def test_recipient_email_refused(value: str) -> None:
    refused(order(recipient=ta.Recipient(email=value, first_name="Ann")), "recipient.email")


def test_email_delivery_does_not_need_last_name() -> None:
    prepare_order(order(recipient=ta.Recipient(email="ann@example.com", first_name="Ann")))


@pytest.mark.parametrize("method", ["NONE", "EMBEDDED", "EMBEDDED_COMPONENT"])
def test_undelivered_methods_need_no_recipient(method: str) -> None:
    wire = prepare_order(order(delivery_method=method, recipient=None))
    assert wire.delivery_method == method


def test_none_delivery_with_partial_recipient_is_fine() -> None:
    prepare_order(order(delivery_method="NONE", recipient=ta.Recipient(last_name="Lee")))


def test_phone_delivery_accepts_a_us_number() -> None:
    wire = prepare_order(phone("+14155550100"))
    assert wire.delivery_method == ta.DeliveryMethod.PHONE


@pytest.mark.parametrize(
    "mobile",
    [
        "+442071234567",  # not US
        "4155550100",  # no +1
        "14155550100",  # no +
        "+1415555010",  # 9 digits
        "+141555501000",  # 11 digits
        "+1 415 555 0100",
        "+1-415-555-0100",
        "+1415555010a",
        "",
    ],
)
def test_phone_delivery_refuses_non_us_or_malformed_numbers(mobile: str) -> None:
    refused(phone(mobile), "recipient.mobile_number")


def test_phone_delivery_needs_a_mobile_number() -> None:
    refused(phone(None), "recipient.mobile_number")


def test_phone_delivery_needs_a_first_name() -> None:
    r = ta.Recipient(mobile_number="+14155550100")
    refused(order(delivery_method="PHONE", recipient=r), "recipient.first_name")


def test_phone_delivery_needs_a_recipient() -> None:
    refused(order(delivery_method="PHONE", recipient=None), "recipient")


def test_mobile_on_non_phone_order_only_needs_e164() -> None:
    r = ta.Recipient(email="ann@example.com", first_name="Ann", mobile_number="+442071234567")
    prepare_order(order(recipient=r))
    r = ta.Recipient(email="ann@example.com", first_name="Ann", mobile_number="020 7123 4567")
    refused(order(recipient=r), "recipient.mobile_number")


def test_recipient_must_be_a_recipient() -> None:
    refused(order(recipient={"email": "ann@example.com"}), "recipient")


# --- delivery method ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, "EMAIL"),
        ({"send_email": True}, "EMAIL"),
        ({"send_email": False}, "NONE"),
        (
            {"recipient": ta.Recipient(first_name="Ann", last_name="Lee", address=us_address())},
            "ADDRESS",
        ),
        (
            {
                "send_email": False,
                "recipient": ta.Recipient(first_name="Ann", last_name="Lee", address=us_address()),
            },
            "ADDRESS",
        ),
        (
            {
                "delivery_method": "PHONE",
                "recipient": ta.Recipient(first_name="Ann", mobile_number="+14155550100"),
            },
            "PHONE",
        ),
        ({"delivery_method": ta.DeliveryMethod.NONE}, "NONE"),
        ({"delivery_method": "WHATSAPP"}, "WHATSAPP"),
    ],
    ids=[
        "default",
        "send_email-true",
        "send_email-false",
        "address",
        "address-no-email",
        "explicit-phone",
        "explicit-enum",
        "whatsapp",
    ],
)
def test_delivery_method_inference(kw: dict[str, Any], expected: str) -> None:
    req = order(**kw)
    wire = prepare_order(req)
    assert wire.delivery_method == expected
    assert isinstance(wire.delivery_method, ta.DeliveryMethod)
    assert wire_json(req)["deliveryMethod"] == expected


@pytest.mark.parametrize(
    ("kw", "send_email"),
    [
        ({}, True),
        ({"delivery_method": "EMAIL"}, True),
        ({"send_email": True}, True),
        ({"delivery_method": "EMAIL", "send_email": True}, True),
        ({"send_email": False}, False),
        ({"delivery_method": "NONE"}, False),
        ({"delivery_method": "NONE", "send_email": False}, False),
    ],
)
def test_send_email_is_derived_for_email_and_none(kw: dict[str, Any], send_email: bool) -> None:
    sent = wire_json(order(**kw))
    assert sent["sendEmail"] is send_email
    assert sent["deliveryMethod"] == ("EMAIL" if send_email else "NONE")


@pytest.mark.parametrize(
    "req",
    [
        phone("+14155550100"),
        physical(),
        order(delivery_method="EMBEDDED"),
    ],
    ids=["PHONE", "ADDRESS", "EMBEDDED"],
)
def test_send_email_is_left_off_for_other_methods(req: ta.CreateOrderRequest) -> None:
    assert "sendEmail" not in wire_json(req)


def test_prepare_order_returns_a_copy() -> None:
    req = order()
    wire = prepare_order(req)
    assert wire is not req
    assert req.delivery_method is None
    assert req.send_email is None
    assert wire.delivery_method == "EMAIL"
    assert wire.send_email is True


@pytest.mark.parametrize(
    ("method", "send_email"),
    [
        ("NONE", True),
        ("EMAIL", False),
        ("PHONE", True),
        ("EMBEDDED", True),
    ],
)
def test_send_email_conflicting_with_delivery_method_is_refused(
    method: str, send_email: bool
) -> None:
    kw: dict[str, Any] = {"delivery_method": method, "send_email": send_email}
    if method == "PHONE":
        kw["recipient"] = ta.Recipient(first_name="Ann", mobile_number="+14155550100")
    elif method == "ADDRESS":
        kw["recipient"] = ta.Recipient(first_name="Ann", last_name="Lee", address=us_address())
    refused(order(**kw), "send_email")


def test_send_email_must_be_a_bool() -> None:
    refused(order(send_email="yes"), "send_email")
    refused(order(send_email=1), "send_email")


@pytest.mark.parametrize(
    "value", ["FAX", "email", "Email", "", "BULKSHIPMENT", "QRCODE", "BULKDIGITAL", 1]
)
def test_unknown_delivery_method_refused(value: object) -> None:
    refused(order(delivery_method=value), "delivery_method")


# --- expiration date ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        datetime(2030, 12, 31, 6, 59, 59, tzinfo=UTC),
        datetime(2030, 12, 31, tzinfo=timezone(timedelta(hours=-8))),
        None,
    ],
)
def test_aware_expiration_date_accepted(value: datetime | None) -> None:
    sent = wire_json(order(expiration_date=value))
    if value is None:
        assert "expirationDate" not in sent
    else:
        assert datetime.fromisoformat(sent["expirationDate"]) == value


@pytest.mark.parametrize(
    "value", [datetime(2030, 12, 31, 6, 59, 59), date(2030, 12, 31), "2030-12-31T00:00:00Z"]
)
def test_naive_or_non_datetime_expiration_date_refused(value: object) -> None:
    refused(order(expiration_date=value), "expiration_date")


# --- wire names ---------------------------------------------------------------------------


def test_create_order_wire_names() -> None:
    req = ta.CreateOrderRequest(
        "cust-12345",
        "acct-12345",
        "U561593",
        Decimal("5"),
        external_ref_id="ref-1",
        sender=ta.Sender(first_name="Sam", last_name="Ng", email="sam@example.com"),
        recipient=ta.Recipient(
            first_name="Ann",
            last_name="Lee",
            mobile_number="+14155550100",
            address=us_address(street_line2="Apt 2", company_name="ACME"),
        ),
        ptid="P1",
        etid="E000000",
        email_subject="Hi",
        message="Thanks",
        campaign="spring",
        purchase_order_number="PO-1",
        notes="n",
        expiration_date=datetime(2030, 1, 1, tzinfo=UTC),
        custom_fields={"costCenter": "42"},
    )
    body = ENCODER.encode(prepare_order(req))
    sent = json.loads(body)
    assert set(sent) == {
        "customerIdentifier",
        "accountIdentifier",
        "utid",
        "amount",
        "externalRefID",
        "deliveryMethod",
        "sender",
        "recipient",
        "ptid",
        "etid",
        "emailSubject",
        "message",
        "campaign",
        "purchaseOrderNumber",
        "notes",
        "expirationDate",
        "customFields",
    }
    assert sent["externalRefID"] == "ref-1"
    assert sent["deliveryMethod"] == "ADDRESS"
    assert set(sent["sender"]) == {"firstName", "lastName", "email"}
    assert set(sent["recipient"]) == {"firstName", "lastName", "mobileNumber", "address"}
    assert set(sent["recipient"]["address"]) == {
        "streetLine1",
        "streetLine2",
        "city",
        "stateOrProvince",
        "postalCode",
        "country",
        "companyName",
    }
    assert sent["customFields"] == {"costCenter": "42"}
    assert b"externalRefId" not in body
    assert b"_" not in body.replace(b"cust-12345", b"").replace(b"acct-12345", b"")


def test_order_resend_wire_uses_new_mobile() -> None:
    body = ENCODER.encode(
        ta.OrderResendRequest(
            new_email="a@example.com",
            new_etid="E000000",
            new_mobile="+14155550100",
            new_delivery_method=ta.DeliveryMethod.PHONE,
        )
    )
    assert json.loads(body) == {
        "newEmail": "a@example.com",
        "newEtid": "E000000",
        "newMobile": "+14155550100",
        "newDeliveryMethod": "PHONE",
    }


def test_line_item_resend_wire_uses_new_mobile_number() -> None:
    body = ENCODER.encode(
        ta.LineItemResendRequest(
            new_delivery_method="PHONE",
            new_email="a@example.com",
            new_mobile_number="+14155550100",
            new_etid="E000000",
            reason_code=ta.ResendReasonCode.OTHER,
            other_reason="lost phone",
        )
    )
    sent = json.loads(body)
    assert sent == {
        "newDeliveryMethod": "PHONE",
        "newEmail": "a@example.com",
        "newMobileNumber": "+14155550100",
        "newEtid": "E000000",
        "reasonCode": "OTHER",
        "otherReason": "lost phone",
    }
    assert "newMobile" not in sent


def test_resend_requests_leave_none_fields_off() -> None:
    assert ENCODER.encode(ta.OrderResendRequest()) == b"{}"
    assert ENCODER.encode(ta.LineItemResendRequest()) == b"{}"


# --- order resends ------------------------------------------------------------------------


def order_resend(**kw: Any) -> ta.DeliveryMethod | None:
    args: dict[str, Any] = {
        "new_email": None,
        "new_etid": None,
        "new_mobile": None,
        "new_delivery_method": None,
    }
    args.update(kw)
    return order_resend_request(**args).new_delivery_method  # type: ignore[return-value]


def test_order_resend_without_changes_is_fine() -> None:
    assert order_resend() is None


def test_order_resend_accepts_valid_values() -> None:
    method = order_resend(
        new_email="ann@example.com",
        new_etid="E000000",
        new_mobile="+14155550100",
        new_delivery_method="PHONE",
    )
    assert method is ta.DeliveryMethod.PHONE


@pytest.mark.parametrize("method", ["NONE", "EMAIL", "PHONE", "WHATSAPP"])
def test_order_resend_delivery_methods(method: str) -> None:
    assert order_resend(new_delivery_method=method) == method


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"new_mobile": "+442071234567"}, "new_mobile"),
        ({"new_mobile": "4155550100"}, "new_mobile"),
        ({"new_mobile": "+1415555010"}, "new_mobile"),
        ({"new_mobile": 14155550100}, "new_mobile"),
        ({"new_email": "not-an-email"}, "new_email"),
        ({"new_etid": "E123"}, "new_etid"),
        ({"new_etid": "T000000"}, "new_etid"),
        ({"new_delivery_method": "ADDRESS"}, "new_delivery_method"),
        ({"new_delivery_method": "EMBEDDED"}, "new_delivery_method"),
        ({"new_delivery_method": "phone"}, "new_delivery_method"),
    ],
)
def test_order_resend_refused(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        order_resend(**kw)
    assert info.value.field == field


# --- line-item resends --------------------------------------------------------------------


def line_item_resend(**kw: Any) -> tuple[ta.DeliveryMethod | None, ta.ResendReasonCode | None]:
    args: dict[str, Any] = {
        "new_delivery_method": None,
        "new_email": None,
        "new_mobile_number": None,
        "new_etid": None,
        "reason_code": None,
        "other_reason": None,
    }
    args.update(kw)
    r = line_item_resend_request(**args)
    return r.new_delivery_method, r.reason_code  # type: ignore[return-value]


def test_line_item_resend_without_changes_is_fine() -> None:
    assert line_item_resend() == (None, None)


@pytest.mark.parametrize("code", list(ta.ResendReasonCode))
def test_line_item_resend_reason_codes(code: ta.ResendReasonCode) -> None:
    other = "why" if code is ta.ResendReasonCode.OTHER else None
    method, got = line_item_resend(reason_code=code.value, other_reason=other)
    assert got is code
    assert method is None


def test_line_item_resend_accepts_valid_values() -> None:
    method, code = line_item_resend(
        new_delivery_method="PHONE",
        new_email="ann@example.com",
        new_mobile_number="+14155550100",
        new_etid="E000001",
        reason_code=ta.ResendReasonCode.NOT_RECEIVED,
    )
    assert method is ta.DeliveryMethod.PHONE
    assert code is ta.ResendReasonCode.NOT_RECEIVED


def test_other_reason_without_reason_code_is_allowed() -> None:
    assert line_item_resend(other_reason="just because") == (None, None)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"reason_code": "OTHER"}, "other_reason"),
        ({"reason_code": "OTHER", "other_reason": ""}, "other_reason"),
        ({"reason_code": "OTHER", "other_reason": "   "}, "other_reason"),
        ({"reason_code": ta.ResendReasonCode.OTHER}, "other_reason"),
        ({"reason_code": "LOST"}, "reason_code"),
        ({"reason_code": "DELIVERY_ME"}, "reason_code"),  # the doc page's typo
        ({"reason_code": "not_received"}, "reason_code"),
        ({"reason_code": ""}, "reason_code"),
        ({"reason_code": 1}, "reason_code"),
        ({"reason_code": "REMINDER", "other_reason": 5}, "other_reason"),
        ({"new_mobile_number": "+442071234567"}, "new_mobile_number"),
        ({"new_mobile_number": "4155550100"}, "new_mobile_number"),
        ({"new_mobile_number": "+1415555010"}, "new_mobile_number"),
        ({"new_email": "ann@"}, "new_email"),
        ({"new_etid": "E12345"}, "new_etid"),
        ({"new_delivery_method": "ADDRESS"}, "new_delivery_method"),
        ({"new_delivery_method": "SMS"}, "new_delivery_method"),
    ],
)
def test_line_item_resend_refused(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        line_item_resend(**kw)
    assert info.value.field == field


# --- query date-times ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "end", "text", "instant"),
    [
        (date(2016, 1, 1), False, "2016-01-01T00:00:00.000Z", datetime(2016, 1, 1, tzinfo=UTC)),
        (
            date(2016, 1, 1),
            True,
            "2016-01-01T23:59:59.999Z",
            datetime(2016, 1, 1, 23, 59, 59, 999000, tzinfo=UTC),
        ),
        ("2016-01-01", False, "2016-01-01T00:00:00.000Z", datetime(2016, 1, 1, tzinfo=UTC)),
        (
            "2016-01-01",
            True,
            "2016-01-01T23:59:59.999Z",
            datetime(2016, 1, 1, 23, 59, 59, 999000, tzinfo=UTC),
        ),
        (
            "2016-01-01T00:00:00Z",
            False,
            "2016-01-01T00:00:00.000Z",
            datetime(2016, 1, 1, tzinfo=UTC),
        ),
        (
            "2016-01-01T00:00:00z",
            False,
            "2016-01-01T00:00:00.000Z",
            datetime(2016, 1, 1, tzinfo=UTC),
        ),
        (
            "2016-01-01T00:00:00.123456+02:00",
            False,
            "2015-12-31T22:00:00.123Z",
            datetime(2015, 12, 31, 22, 0, 0, 123456, tzinfo=UTC),
        ),
        (
            datetime(2016, 1, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5))),
            False,
            "2016-01-01T17:30:00.000Z",
            datetime(2016, 1, 1, 17, 30, tzinfo=UTC),
        ),
        (
            # an aware datetime is taken as given, also as an end
            datetime(2016, 1, 1, 12, 0, 0, 999999, tzinfo=UTC),
            True,
            "2016-01-01T12:00:00.999Z",
            datetime(2016, 1, 1, 12, 0, 0, 999999, tzinfo=UTC),
        ),
    ],
)
def test_format_query_datetime(value: object, end: bool, text: str, instant: datetime) -> None:
    got_text, got_instant = format_query_datetime(value, "start_date", end=end)
    assert got_text == text
    assert got_instant == instant
    assert got_instant.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        datetime(2016, 1, 1),
        "2016-01-01T00:00:00",
        "2016-13-01",
        "01/01/2016",
        "yesterday",
        "",
        20160101,
        1451606400.0,
        None,
    ],
    ids=repr,
)
@pytest.mark.parametrize("field", ["start_date", "end_date"])
def test_format_query_datetime_refused(value: object, field: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        format_query_datetime(value, field)
    assert info.value.field == field


# --- list filters -------------------------------------------------------------------------


def test_build_list_query_renders_wire_names_and_skips_none() -> None:
    query = build_list_query(
        account_identifier="acct-12345",
        customer_identifier="cust-12345",
        external_ref_id="ref-1",
        min_amount=Decimal("5.50"),
        max_amount=10.1,
        currency_code="USD",
        utid="U561593",
        ptid=None,
        send_email=False,
        delivery_method=ta.DeliveryMethod.EMAIL,
        status=ta.OrderStatus.COMPLETE,
        line_item_status="FAILED",
        recipient_mobile_number="+14155550100",
        line_item_notes="n",
        purchase_order_number="PO-1",
    )
    assert query == [
        ("accountIdentifier", "acct-12345"),
        ("customerIdentifier", "cust-12345"),
        ("externalRefID", "ref-1"),
        ("minAmount", "5.5"),
        ("maxAmount", "10.1"),
        ("currencyCode", "USD"),
        ("utid", "U561593"),
        ("sendEmail", "false"),
        ("deliveryMethod", "EMAIL"),
        ("status", "COMPLETE"),
        ("lineItemStatus", "FAILED"),
        ("recipientMobileNumber", "+14155550100"),
        ("lineItemNotes", "n"),
        ("purchaseOrderNumber", "PO-1"),
    ]


def test_build_list_query_empty() -> None:
    assert build_list_query() == []
    assert build_list_query(utid=None, send_email=None) == []


@pytest.mark.parametrize(
    ("value", "text"),
    [(5, "5"), (0, "0"), (0.1, "0.1"), (Decimal("7.00"), "7"), (Decimal("1E+3"), "1000")],
)
def test_build_list_query_amounts(value: object, text: str) -> None:
    assert build_list_query(min_amount=value) == [("minAmount", text)]


def test_build_list_query_send_email_true() -> None:
    assert build_list_query(send_email=True) == [("sendEmail", "true")]


def test_build_list_query_equal_bounds_are_fine() -> None:
    build_list_query(min_amount=5, max_amount=Decimal("5.00"))


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"min_amount": -1}, "min_amount"),
        ({"max_amount": float("nan")}, "max_amount"),
        ({"max_amount": float("inf")}, "max_amount"),
        ({"min_amount": True}, "min_amount"),
        ({"min_amount": "5"}, "min_amount"),
        ({"min_amount": 10, "max_amount": Decimal("9.99")}, "min_amount"),
        ({"send_email": "true"}, "send_email"),
        ({"send_email": 1}, "send_email"),
        ({"currency_code": "US"}, "currency_code"),
        ({"currency_code": "USDX"}, "currency_code"),
        ({"currency_code": "US1"}, "currency_code"),
        ({"utid": 561593}, "utid"),
        ({"status": ["COMPLETE"]}, "status"),
    ],
)
def test_build_list_query_refused(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        build_list_query(**kw)
    assert info.value.field == field


def test_address_on_digital_order_is_not_held_to_physical_rules() -> None:
    # The server decides (API.md): a digital cash reward may carry any address it accepts.
    addr = us_address(postal_code="1234", city="São Paulo (centro)")
    r = ta.Recipient(email="ann@example.com", first_name="Ann <b>"[:3], address=addr)
    wire = prepare_order(order(delivery_method="EMAIL", recipient=r))
    assert wire.recipient is not None and wire.recipient.address == addr
    refused(
        order(
            delivery_method="EMAIL",
            recipient=ta.Recipient(email="ann@example.com", first_name="Ann", address="1 Main St"),
        ),
        "recipient.address",
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("explicit", [True, False])
def test_address_with_legacy_send_email_true_is_accepted(explicit: bool) -> None:
    kw: dict[str, Any] = {"send_email": True}
    if explicit:
        kw["delivery_method"] = "ADDRESS"
    r = ta.Recipient(first_name="Ann", last_name="Lee", address=us_address())
    wire = prepare_order(order(recipient=r, **kw))
    assert wire.delivery_method == ta.DeliveryMethod.ADDRESS
    assert wire.send_email is True


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"customer_identifier": "abc"}, "customer_identifier"),
        ({"account_identifier": "a_b_c_d_e"}, "account_identifier"),
        ({"external_ref_id": "x" * 101}, "external_ref_id"),
    ],
)
def test_list_identifier_filters_checked(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        build_list_query(**kw)
    assert info.value.field == field
