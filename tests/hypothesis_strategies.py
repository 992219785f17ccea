"""Hypothesis strategies for tests/test_properties.py: order requests and server responses.

Requests: ``order_requests()`` covers the whole space of ``CreateOrderRequest`` objects.
Each example picks no, one or a few fields to draw "wild" (anything: valid, subtly
invalid, wrong type) and draws the others "tame" (valid and consistent with the delivery
method), so accepted and refused requests are both common (about half each); one example
in eight is wild everywhere. ``physical_orders_with(field)``: ADDRESS orders valid but for
one address field, drawn from its boundary values half the time.

Responses: ``exchanges()`` draws what a server answers to one call: one or two HTTP
responses (status, Content-Type, Retry-After valid or not, Content-Length, body) for one
of the six calls (get, create, list without and with a date range, the two resends).

Hypothesis draws the first option of a choice (index 0, the first ``one_of`` branch)
far more often than the others (about a third of the time): first options here are the
plain ones.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

import tango_async as ta

# --- character sets -------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
IDENT_CHARS = ALNUM + "-"
PHYSICAL_NAME_CHARS = ALNUM + " .,&-"
STREET_CHARS = ALNUM + " .,/&%#@'-"
CITY_CHARS = ALNUM + " .&'-"
POSTAL_CHARS = ALNUM + " -"
# Digits of other scripts: str.isdigit() and Python's \d accept them, the API's ASCII rules not.
UNICODE_DIGITS = "\u0660\u0661\u0662\u0663\u0966\u0967\u0be6\uff10\uff11\uff19\U0001d7ce"
BAD_IDENT_CHARS = " _./@+\t\n\u00e9\u20ac\u00a0" + UNICODE_DIGITS
CREATE_METHODS = ("NONE", "EMAIL", "PHONE", "ADDRESS", "EMBEDDED", "EMBEDDED_COMPONENT", "WHATSAPP")
DIGITAL = tuple(m for m in CREATE_METHODS if m != "ADDRESS")
LONE_SURROGATES = ("\ud800", "a\udcff", "x\udfffy")  # e.g. from bytes decoded with surrogateescape


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (Hypothesis favours 0 heavily: test a middle value)."""
    return st.integers(0, n - 1).map(lambda i: i == n // 2)


def text_of(chars: str, min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(chars), min_size=min_size, max_size=max_size)


def non_blank(s: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return s.filter(lambda v: bool(v.strip()))


def of_length(n: int, alphabet: str = "ab\u00e9\u20ac \n") -> st.SearchStrategy[str]:
    """Strings of exactly ``n`` characters (cheap even for thousands): a drawn prefix, padded."""
    return st.tuples(st.text(st.sampled_from(alphabet), max_size=8), st.sampled_from(alphabet)).map(
        lambda t: (t[0] + t[1] * n)[:n]
    )


def inserted(base: st.SearchStrategy[str], bad: str) -> st.SearchStrategy[str]:
    """``base`` with one character of ``bad`` put somewhere in it."""
    return st.tuples(base, st.sampled_from(bad), st.integers(0, 200)).map(
        lambda t: t[0][: t[2] % (len(t[0]) + 1)] + t[1] + t[0][t[2] % (len(t[0]) + 1) :]
    )


junk_types: st.SearchStrategy[Any] = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, width=32),
    st.booleans(),
    st.binary(max_size=4),
    st.just(["x"]),
    st.just({"k": "v"}),
)
weird_text: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=30),  # any Unicode but surrogates
    st.sampled_from(["", " ", "\t", "\n", "\u00a0", "\u200b", "\x00", "<b>", "a/b", "\u202e"]),
    st.sampled_from(LONE_SURROGATES),
)

# --- identifiers and template IDs -------------------------------------------------------------

valid_identifiers = text_of(IDENT_CHARS, 5, 100)
any_identifiers: st.SearchStrategy[Any] = st.one_of(
    valid_identifiers,
    text_of(IDENT_CHARS, 0, 4),  # too short
    text_of(IDENT_CHARS, 101, 110),  # too long
    st.sampled_from(["a" * 100, "a" * 101, "abcd", "abcde", "-----"]),
    inserted(text_of(IDENT_CHARS, 4, 12), BAD_IDENT_CHARS),
    text_of("0123456789" + UNICODE_DIGITS, 5, 10),
    weird_text,
    st.none(),
    junk_types,
)


def template_ids(prefix: str, digits: str) -> tuple[st.SearchStrategy[str], st.SearchStrategy[Any]]:
    """(valid, anything) for utid/ptid/etid: ``prefix`` (either case) then ``digits``."""
    valid = st.from_regex(f"[{prefix}{prefix.lower()}][0-9]{digits}", fullmatch=True)
    anything = st.one_of(
        valid,
        st.from_regex(f"[{prefix}{prefix.lower()}][0-9]{{0,9}}", fullmatch=True),
        st.sampled_from(
            [
                prefix,
                f"X{prefix}1",
                f"{prefix}12a",
                f" {prefix}123",
                f"{prefix}123\n",
                f"{prefix}-123",
                f"{prefix}\u0661\u0662\u0663\u0664\u0665\u0666",
                "",
            ]
        ),
        st.tuples(
            st.sampled_from(prefix + prefix.lower()), text_of("0123456789" + UNICODE_DIGITS, 1, 8)
        ).map("".join),
        weird_text,
        st.none(),
        junk_types,
    )
    return valid, anything


valid_utids, any_utids = template_ids("U", "{1,10}")
valid_ptids, any_ptids_ = template_ids("P", "{1,10}")
valid_etids, any_etids_ = template_ids("E", "{6}")
any_ptids = st.one_of(st.none(), any_ptids_)
any_etids = st.one_of(st.none(), any_etids_)

# --- amounts ----------------------------------------------------------------------------------

decimal_tuples = st.builds(
    lambda sign, digits, exp: Decimal((sign, tuple(digits), exp)),
    st.sampled_from([0, 0, 1]),
    st.lists(st.integers(0, 9), min_size=1, max_size=20),
    st.one_of(st.integers(-30, 30), st.sampled_from([-400, 400, -5000, 5000])),
)
# Accepted amounts: greater than 0, at most 1,000,000 (DEFAULT_MAX_AMOUNT), at most 2 decimal
# places by value (trailing zeros and exponents are fine: 0.01000, 1E+3), floats only when
# their shortest repr is such an amount (cents / 100 always is).
exact_decimal_tuples = st.builds(
    lambda digits, zeros, exp: Decimal((0, (*digits, *(0,) * zeros), exp - zeros)),
    st.lists(st.integers(0, 9), min_size=1, max_size=8),
    st.integers(0, 20),
    st.integers(-2, 6),
).filter(lambda d: 0 < d <= 10**6)
valid_amounts: st.SearchStrategy[Any] = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=10**6, places=2),
    exact_decimal_tuples,
    st.integers(1, 10**6),
    st.integers(1, 10**8).map(lambda cents: cents / 100),
    st.sampled_from(
        [
            Decimal("0.01"),
            Decimal("0.0100"),
            Decimal("1E+2"),
            Decimal("1E+6"),
            Decimal("1000000.00"),
            Decimal("10.500"),
            1,
            0.01,
            1e6,
            Decimal("10.10"),
            10.1,
        ]
    ),
)
# Refused amounts, each for one rule: 0 or less, too many decimal places (an inexact float),
# above the bound, not finite, not a number.
refused_amounts: st.SearchStrategy[Any] = st.sampled_from(
    [
        Decimal("0"),
        Decimal("-0"),
        Decimal("0E-7"),
        0,
        0.0,
        -0.0,
        5e-324,
        0.1 + 0.2,
        5.001,
        Decimal("5.001"),
        Decimal("1E-999999"),
        Decimal("1000000.01"),
        10**7,
        1e22,
        Decimal("1E+1000"),
        Decimal("1234567890123456789012345678901234567890.5"),
    ]
)
any_amounts: st.SearchStrategy[Any] = st.one_of(
    valid_amounts,
    refused_amounts,
    decimal_tuples,
    st.integers(0, 10**30),
    st.floats(min_value=0, max_value=1e12),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("-Infinity"),
            Decimal("Infinity"),
            Decimal("-0.01"),
            -1,
            float("nan"),
            float("inf"),
            float("-inf"),
            -1e-300,
        ]
    ),
    st.integers(-(10**20), 10**20),
    st.floats(),  # nan, inf, negatives, subnormals
    st.booleans(),
    st.sampled_from(["10", "10.00", "", None, [10], {"value": 10}]),
)

# --- free text fields -------------------------------------------------------------------------


def limited_text(limit: int) -> tuple[st.SearchStrategy[str | None], st.SearchStrategy[Any]]:
    """(valid, anything) for an optional string of at most ``limit`` characters."""
    valid = st.one_of(st.none(), st.text(max_size=40), of_length(limit), of_length(limit - 1))
    anything = st.one_of(
        valid, of_length(limit + 1), of_length(limit + 2 + limit // 10), weird_text, junk_types
    )
    return valid, anything


valid_messages, any_messages = limited_text(3000)
valid_campaigns, any_campaigns = limited_text(1024)
valid_notes, any_notes = limited_text(1024)
valid_po_numbers, any_po_numbers = limited_text(100)
valid_subjects = st.one_of(st.none(), st.text(max_size=60))
any_subjects = st.one_of(valid_subjects, weird_text, junk_types)

valid_external_ref_ids = st.one_of(
    st.none(),
    non_blank(st.text(min_size=1, max_size=100)),
    of_length(100, "ab-1"),
    text_of(ALNUM, 1, 100),
)
any_external_ref_ids: st.SearchStrategy[Any] = st.one_of(
    valid_external_ref_ids,
    st.sampled_from(["", " ", "   ", "\t\n", "\u00a0", "\u3000"]),
    of_length(101, "ab-1"),
    of_length(150),
    weird_text,
    junk_types,
)

# --- dates ------------------------------------------------------------------------------------

fixed_offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59)
)
valid_expirations = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.one_of(st.just(UTC), fixed_offsets),
    ),
)
any_expirations: st.SearchStrategy[Any] = st.one_of(
    valid_expirations,
    st.datetimes(timezones=st.timezones()),  # zoneinfo zones, incl. historical LMT offsets
    st.datetimes(),  # naive
    st.dates(),
    st.sampled_from(["2030-01-01", "2030-01-01T00:00:00Z", 1893456000]),
    st.builds(
        lambda s: datetime(2030, 1, 1, tzinfo=timezone(timedelta(seconds=s))),
        st.integers(-86399, 86399),
    ),
)

# --- people -----------------------------------------------------------------------------------

digital_names = st.text(st.characters(exclude_characters="<>/"), max_size=100)
present_digital_names = non_blank(
    st.text(st.characters(exclude_characters="<>/"), min_size=1, max_size=100)
)
physical_names = text_of(PHYSICAL_NAME_CHARS, 1, 25)
any_names: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    digital_names,
    physical_names,
    inserted(st.text(max_size=10), "<>/"),
    of_length(100),
    of_length(101),
    of_length(25, "Ab"),
    of_length(26, "Ab"),
    st.text(max_size=30),  # any Unicode
    st.sampled_from(["", " ", "\t", "O'Brien", "Jos\u00e9", "\u5f20\u4f1f", "A_B", "a+b"]),
    weird_text,
    junk_types,
)

emails_simple = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    text_of(ALNUM + "._+-", 1, 20),
    text_of(ALNUM + "-", 1, 20),
    text_of(string.ascii_lowercase, 2, 6),
)
any_emails: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    emails_simple,
    st.emails(),
    st.builds(lambda n: "a" * n + "@example.com", st.sampled_from([87, 88, 89, 120])),  # 99..132
    st.sampled_from(
        [
            "plain",
            "a@b",
            "a@@b.c",
            "a b@c.de",
            "@example.com",
            "ann@",
            "ann@.com",
            "ann@example.",
            "\u00fc@ex.com",
            "ann@exa mple.com",
            "ann@example.com\n",
            " ann@example.com",
            "",
        ]
    ),
    weird_text,
    junk_types,
)

us_mobiles = st.from_regex(r"\+1[0-9]{10}", fullmatch=True)
e164_mobiles = st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)
any_mobiles: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    us_mobiles,
    e164_mobiles,
    st.from_regex(r"\+(44|49|52|91)[0-9]{10}", fullmatch=True),
    st.from_regex(r"\+[0-9]{16,18}", fullmatch=True),
    st.sampled_from(
        [
            "+0123456789",
            "2065551234",
            "+1 206 555 1234",
            "+1-206-555-1234",
            "+1206555123",
            "+120655512345",
            "+",
            "+1",
            "",
            "+1\u0662\u0660\u0666\u0665\u0665\u0665\u0661\u0662\u0663\u0664",
            "+12065551234\n",
        ]
    ),
    weird_text,
    junk_types,
)

# --- addresses --------------------------------------------------------------------------------

US_STATES = ("NY", "CA", "TX", "WA", "DC", "PR", "AE")
CA_PROVINCES = ("ON", "QC", "BC", "NU")
OTHER_COUNTRIES = ("GB", "DE", "MX", "JP", "gb", "Fr")


_countries = st.sampled_from(("US", "CA", "us", "ca", *OTHER_COUNTRIES))
_us_states = st.sampled_from(US_STATES)
_us_zips = st.from_regex(r"[0-9]{5}", fullmatch=True)
_ca_provinces = st.sampled_from(CA_PROVINCES)
_ca_postal = st.sampled_from(["K1A 0B6", "H2X1Y4", "V5K-0A1"])
_regions = non_blank(st.text(min_size=1, max_size=35))
_postal = non_blank(text_of(POSTAL_CHARS, 1, 12))  # the documented rule says "not blank"
_streets = non_blank(text_of(STREET_CHARS, 1, 35))
_cities = non_blank(text_of(CITY_CHARS, 1, 30))
_street2 = st.one_of(st.none(), text_of(STREET_CHARS, 1, 35))
_companies = st.one_of(st.none(), st.text(max_size=40))


@st.composite
def valid_addresses(draw: st.DrawFn) -> ta.Address:
    country = draw(_countries)
    if country.upper() == "US":
        region, postal = draw(_us_states), draw(_us_zips)
    elif country.upper() == "CA":
        region, postal = draw(_ca_provinces), draw(_ca_postal)
    else:
        region, postal = draw(_regions), draw(_postal)
    return ta.Address(
        street_line1=draw(_streets),
        city=draw(_cities),
        state_or_province=region,
        postal_code=postal,
        country=country,
        street_line2=draw(_street2),
        company_name=draw(_companies),
    )


blanks = st.sampled_from(["", " ", "   ", "\t", "\u00a0", "\n"])


def edges(chars: str, max_len: int) -> st.SearchStrategy[str]:
    """Boundary strings of a charset-limited field: blank ones made of allowed characters
    (spaces, where allowed), the empty string, exactly ``max_len`` and one more."""
    fill = chars[0]
    options = [fill, fill * max_len, fill * (max_len + 1), ""]
    if " " in chars:
        options += [" ", "   ", " " * max_len]
    if "-" in chars:
        options += ["-", "--"]
    return st.sampled_from(options)


_any_street: st.SearchStrategy[Any] = st.one_of(
    text_of(STREET_CHARS, 0, 40),
    edges(STREET_CHARS, 35),
    blanks,
    inserted(text_of(STREET_CHARS, 1, 10), "!$*\u00e9\n"),
    weird_text,
    st.none(),
    junk_types,
)
# Each field's first branch is plain (Hypothesis draws first branches most often).
ADDRESS_WILD: dict[str, st.SearchStrategy[Any]] = {
    "company_name": st.one_of(st.none(), st.text(max_size=40), blanks, weird_text, junk_types),
    "street_line1": _any_street,
    "street_line2": _any_street,
    "city": st.one_of(
        text_of(CITY_CHARS, 0, 35),
        edges(CITY_CHARS, 30),
        blanks,
        inserted(text_of(CITY_CHARS, 1, 10), "/#,\u00e9"),
        weird_text,
        st.none(),
        junk_types,
    ),
    "state_or_province": st.one_of(
        st.sampled_from(US_STATES + CA_PROVINCES + ("ny", "N", "NYC", "N1", "Greater London")),
        edges(string.ascii_uppercase + " ", 35),
        blanks,
        weird_text,
        st.none(),
        junk_types,
    ),
    "postal_code": st.one_of(
        st.from_regex(r"[0-9]{3,7}", fullmatch=True),
        edges(POSTAL_CHARS, 12),
        st.sampled_from(
            [
                "12345-6789",
                "K1A 0B6",
                "1234567890123",
                "123456789012",
                "\u0661\u0662\u0663\u0664\u0665",
                "12345\n",
                "SW1A 2AA",
            ]
        ),
        blanks,
        text_of(POSTAL_CHARS, 0, 14),
        weird_text,
        st.none(),
        junk_types,
    ),
    "country": st.one_of(
        st.sampled_from(["US", "CA", "us", "Ca", "GB", "USA", "U", "1A", "\u00dcS", " US"]),
        blanks,
        weird_text,
        st.none(),
        junk_types,
    ),
}
address_field_sets = st.frozensets(st.sampled_from(tuple(ADDRESS_WILD)), min_size=1, max_size=2)
_address_fields = st.sampled_from(tuple(ADDRESS_WILD))
_one_in_10 = one_in(10)
not_addresses = st.one_of(junk_types, st.just("1 Main St"), st.builds(ta.Recipient))


@st.composite
def any_addresses(draw: st.DrawFn, fields_at_most: int = 2) -> Any:
    """A valid address with one or more fields drawn wild; now and then not an Address."""
    if draw(_one_in_10):
        return draw(not_addresses)
    base = draw(valid_addresses())
    fields = {f: getattr(base, f) for f in base.__struct_fields__}
    wild = [draw(_address_fields)] if fields_at_most == 1 else sorted(draw(address_field_sets))
    for name in wild:
        fields[name] = draw(ADDRESS_WILD[name])
    return ta.Address(**fields)


# --- the whole request ------------------------------------------------------------------------

WILD_KEYS = (
    "customer_identifier", "account_identifier", "utid", "amount", "external_ref_id",
    "delivery_method", "send_email", "sender", "recipient", "recipient.first_name",
    "recipient.last_name", "recipient.email", "recipient.mobile_number", "recipient.address",
    "ptid", "etid", "email_subject", "message", "campaign", "notes", "purchase_order_number",
    "expiration_date", "custom_fields",
)  # fmt: skip

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
)
_nested_json = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
)
valid_custom_fields = st.one_of(
    st.none(), st.dictionaries(st.text(max_size=10), json_scalars, max_size=3)
)
any_custom_fields: st.SearchStrategy[Any] = st.one_of(
    valid_custom_fields,
    st.dictionaries(st.text(max_size=5), _nested_json, max_size=3),
    st.sampled_from(
        [{1: "int key"}, {"k": object()}, {"k": {1, 2}}, {(1, 2): "x"}, {"nan": float("nan")}]
    ),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=5),
    st.integers(),
)
any_delivery_methods: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.sampled_from(list(ta.DeliveryMethod)),
    st.sampled_from([m.value for m in ta.DeliveryMethod]),
    st.sampled_from(["email", "Email", "SMS", "", " EMAIL", "EMAIL ", "PRINT", "NONE\n"]),
    weird_text,
    junk_types,
)
any_send_email: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 1, "true", "false", "", None])
)


any_recipients: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    junk_types,
    st.builds(
        ta.Recipient,
        email=any_emails,
        first_name=any_names,
        last_name=any_names,
        mobile_number=any_mobiles,
        address=st.one_of(st.none(), any_addresses()),
    ),
)
any_recipient_addresses = st.one_of(st.none(), any_addresses())
valid_senders = st.one_of(
    st.none(),
    st.builds(
        ta.Sender,
        first_name=st.one_of(st.none(), digital_names),
        last_name=st.one_of(st.none(), digital_names),
        email=st.one_of(st.none(), emails_simple),
    ),
)
any_senders: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    junk_types,
    st.builds(ta.Sender, first_name=any_names, last_name=any_names, email=any_emails),
)
tame_methods = st.one_of(
    st.none(),
    st.sampled_from(CREATE_METHODS),
    st.sampled_from([ta.DeliveryMethod(m) for m in CREATE_METHODS]),
)
# The legacy sendEmail that goes with a delivery method (None: inferred from it).
tame_send_email = {
    None: st.one_of(st.none(), st.booleans()),
    "EMAIL": st.sampled_from([None, True]),
    "ADDRESS": st.sampled_from([None, True, False]),
    **{m: st.sampled_from([None, False]) for m in DIGITAL if m != "EMAIL"},
}
optional_digital_names = st.one_of(st.none(), digital_names)
optional_emails = st.one_of(st.none(), emails_simple)
optional_e164 = st.one_of(st.none(), e164_mobiles)


@dataclass(frozen=True)
class _TameRecipient:
    """Valid recipient parts for one effective delivery method."""

    first_name: st.SearchStrategy[Any]
    last_name: st.SearchStrategy[Any]
    email: st.SearchStrategy[Any]
    mobile_number: st.SearchStrategy[Any]
    address: st.SearchStrategy[Any]


def _tame_recipient(method: str) -> _TameRecipient:
    physical = method == "ADDRESS"
    needs_first = method in ("EMAIL", "PHONE", "ADDRESS")
    return _TameRecipient(
        first_name=non_blank(physical_names)
        if physical
        else present_digital_names
        if needs_first
        else optional_digital_names,
        last_name=non_blank(physical_names) if physical else optional_digital_names,
        email=emails_simple if method == "EMAIL" else optional_emails,
        mobile_number=us_mobiles if method == "PHONE" else optional_e164,
        address=valid_addresses()
        if physical
        else st.one_of(st.none(), st.none(), valid_addresses()),
    )


TAME_RECIPIENTS = {m: _tame_recipient(m) for m in CREATE_METHODS}
TOP_LEVEL: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "customer_identifier": (valid_identifiers, any_identifiers),
    "account_identifier": (valid_identifiers, any_identifiers),
    "utid": (valid_utids, any_utids),
    "amount": (valid_amounts, any_amounts),
    "external_ref_id": (valid_external_ref_ids, any_external_ref_ids),
    "ptid": (st.one_of(st.none(), valid_ptids), any_ptids),
    "etid": (st.one_of(st.none(), valid_etids), any_etids),
    "email_subject": (valid_subjects, any_subjects),
    "message": (valid_messages, any_messages),
    "campaign": (valid_campaigns, any_campaigns),
    "notes": (valid_notes, any_notes),
    "purchase_order_number": (valid_po_numbers, any_po_numbers),
    "expiration_date": (valid_expirations, any_expirations),
    "custom_fields": (valid_custom_fields, any_custom_fields),
    "sender": (valid_senders, any_senders),
}
_wild_keys = st.sampled_from(WILD_KEYS)
# Hypothesis draws the first element of a sampled_from far more often than the others:
# make it "no wild field" rather than favour one field.
_one_wild_key = st.sampled_from(("", *WILD_KEYS))
wild_key_sets = st.frozensets(_wild_keys, max_size=3)


@st.composite
def order_requests(draw: st.DrawFn) -> ta.CreateOrderRequest:
    """Any CreateOrderRequest: mostly valid with a few fields drawn wild, or wild throughout."""
    mode = draw(st.integers(0, 7))
    if mode == 7:
        wild = frozenset(WILD_KEYS)
    elif mode >= 4:
        wild = frozenset([draw(_one_wild_key)])
    else:
        wild = draw(wild_key_sets)

    def pick(key: str, tame: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]) -> Any:
        return draw(anything if key in wild else tame)

    # The delivery method first: the tame recipient is the one that method needs.
    method = pick("delivery_method", tame_methods, any_delivery_methods)
    name = method.value if isinstance(method, ta.DeliveryMethod) else method
    implicit_address = method is None and draw(st.booleans())
    tame_send = tame_send_email.get(name if isinstance(name, str) else None, tame_send_email[None])
    send_email = pick("send_email", tame_send, any_send_email)
    if not isinstance(name, str) or name not in CREATE_METHODS:
        name = "ADDRESS" if implicit_address else "NONE" if send_email is False else "EMAIL"

    recipient: Any = None
    if "recipient" in wild:
        recipient = draw(any_recipients)
    elif name in ("EMAIL", "PHONE", "ADDRESS") or draw(st.booleans()):
        tame = TAME_RECIPIENTS[name]
        recipient = ta.Recipient(
            first_name=pick("recipient.first_name", tame.first_name, any_names),
            last_name=pick("recipient.last_name", tame.last_name, any_names),
            email=pick("recipient.email", tame.email, any_emails),
            mobile_number=pick("recipient.mobile_number", tame.mobile_number, any_mobiles),
            address=pick("recipient.address", tame.address, any_recipient_addresses),
        )
    fields = {key: pick(key, *strategies) for key, strategies in TOP_LEVEL.items()}
    return ta.CreateOrderRequest(
        **fields, delivery_method=method, send_email=send_email, recipient=recipient
    )


ADDRESS_EDGES: dict[str, st.SearchStrategy[Any]] = {
    "company_name": edges(" a", 40),
    "street_line1": edges(STREET_CHARS, 35),
    "street_line2": edges(STREET_CHARS, 35),
    "city": edges(CITY_CHARS, 30),
    "state_or_province": edges(string.ascii_uppercase + " ", 35),
    "postal_code": edges(POSTAL_CHARS, 12),
    "country": edges(string.ascii_letters, 2),
}


@st.composite
def physical_orders_with(draw: st.DrawFn, name: str) -> ta.CreateOrderRequest:
    """A valid ADDRESS order but for the address field ``name``: a boundary value (half the
    time) or anything."""
    address = draw(valid_addresses())
    value = draw(st.one_of(ADDRESS_EDGES[name], ADDRESS_WILD[name]))
    address = ta.Address(
        **{**{f: getattr(address, f) for f in address.__struct_fields__}, name: value}
    )
    return ta.CreateOrderRequest(
        customer_identifier=draw(valid_identifiers),
        account_identifier=draw(valid_identifiers),
        utid=draw(valid_utids),
        amount=draw(valid_amounts),
        delivery_method=draw(_physical_methods),
        send_email=draw(_physical_send_email),
        recipient=ta.Recipient(
            first_name=draw(_physical_first),
            last_name=draw(_physical_first),
            email=draw(optional_emails),
            mobile_number=draw(optional_e164),
            address=address,
        ),
    )


_physical_methods = st.sampled_from([None, "ADDRESS", ta.DeliveryMethod.ADDRESS])
_physical_send_email = st.sampled_from([None, True, False])
_physical_first = non_blank(physical_names)


# --- responses --------------------------------------------------------------------------------

ORDER_BODY: dict[str, Any] = {
    "referenceOrderID": "RA230101-1234-56",
    "referenceLineItemID": "U123456789",
    "externalRefID": "ref-1",
    "customerIdentifier": "cust-12345",
    "accountIdentifier": "acct-12345",
    "accountNumber": "A12345678",
    "amountCharged": {
        "value": 10.0,
        "currencyCode": "USD",
        "exchangeRate": 1.0,
        "fee": 0.0,
        "total": 10.0,
    },
    "denomination": {"value": 10.0, "currencyCode": "USD"},
    "utid": "U561593",
    "ptid": None,
    "rewardName": "Amazon.com Gift Card",
    "sender": {"firstName": "Sam", "lastName": "Ray", "email": "sam@example.com"},
    "recipient": {
        "email": "ann@example.com",
        "firstName": "Ann",
        "lastName": "Lee",
        "mobileNumber": "+12065551234",
        "address": {
            "streetLine1": "1 Main St",
            "city": "Springfield",
            "stateOrProvince": "IL",
            "postalCode": "62701",
            "country": "US",
        },
    },
    "emailSubject": "Thanks",
    "message": "Well done",
    "sendEmail": True,
    "deliveryMethod": "EMAIL",
    "etid": "E000000",
    "status": "COMPLETE",
    "orderStatus": "COMPLETE",
    "lineItemStatus": "COMPLETE",
    "campaign": "spring",
    "createdAt": "2023-10-11T23:10:55.284Z",
    "notes": None,
    "orderClientSource": "API",
    "purchaseOrderNumber": "PO-1",
    "reward": {
        "credentials": {"Claim Code": "ABCD-1234", "PIN": "9876"},
        "credentialList": [
            {
                "label": "Claim Code",
                "value": "ABCD-1234",
                "type": "text",
                "credentialType": "cardNumber",
            },
            {"label": "PIN", "value": "9876", "type": "text", "credentialType": "cardPin"},
        ],
        "redemptionInstructions": "Enter the code at checkout.",
    },
    "someFutureField": {"nested": [1, "two", None]},
}
LIST_BODY: dict[str, Any] = {
    "page": {"number": 0, "elementsPerBlock": 2, "resultCount": 2, "totalCount": 3},
    "orders": [
        {k: v for k, v in ORDER_BODY.items() if k != "reward"},
        {
            **{k: v for k, v in ORDER_BODY.items() if k != "reward"},
            "referenceOrderID": "RA230101-1234-57",
        },
    ],
}
RESEND_BODY: dict[str, Any] = {
    "id": 1001,
    "legacyId": "L-1",
    "createdAt": "2024-01-01T00:00:00Z",
    "email": "ann@example.com",
    "mobileNumber": "+12065551234",
}
LINE_ITEM_RESEND_BODY: dict[str, Any] = {
    **RESEND_BODY,
    "deliveryMethod": "EMAIL",
    "reasonCode": "OTHER",
    "otherReason": "lost",
}
ERROR_BODY: dict[str, Any] = {
    "timestamp": "2025-01-15T19:12:42.059Z",
    "requestId": "req-123",
    "path": "/raas/v2/orders",
    "httpCode": 400,
    "httpPhrase": "Bad Request",
    "i18nKey": "400.004",
    "message": "Validation failed",
    "errors": [
        {
            "code": 400004,
            "i18nKey": "400.004",
            "message": "utid must match",
            "path": "utid",
            "invalidValue": "X1",
            "constraint": "^[uU][0-9]+$",
        },
    ],
}
ERROR_BODIES: tuple[dict[str, Any], ...] = (
    ERROR_BODY,
    {
        **ERROR_BODY,
        "httpCode": 403,
        "i18nKey": None,
        "message": None,  # resend cooldown
        "errors": [
            {
                "code": 403005,
                "i18nKey": "403.005",
                "message": "Cannot send more than once every 30 seconds",
            }
        ],
    },
    {k: v for k, v in ERROR_BODY.items() if k != "errors"},  # legacy: top-level key only
    {**ERROR_BODY, "errors": [{"code": 409002, "i18nKey": "409.002", "message": "in process"}]},
    {**ERROR_BODY, "errors": [{"code": 422043, "i18nKey": "422.043", "message": "too long"}]},
    {**ERROR_BODY, "errors": [{"code": 400021, "i18nKey": "400.021", "message": "window"}]},
    {"error": "Unauthorized", "status": 401},  # not Tango's shape at all
)
SUCCESS_BODIES = {
    "get": ORDER_BODY,
    "create": ORDER_BODY,
    "list": LIST_BODY,
    "list_ranged": LIST_BODY,
    "resend": RESEND_BODY,
    "line_item_resend": LINE_ITEM_RESEND_BODY,
}
CALLS = tuple(SUCCESS_BODIES)

HTML_PAGES = (
    b"<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>",
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>"
    b"<p>The server is temporarily unable to service your request.</p></body></html>",
    b"<html><body>Moved <a href='https://evil.example/'>here</a></body></html>",
)

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
    ),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
other_json_values: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.just([]),
    st.just({}),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**30, -1, 0, 1.5, 1e308]),
    st.floats(),
    st.text(max_size=10),
    json_values,
)
_actions = st.sampled_from(["keep", "keep", "keep", "drop", "retype", "recurse"])
_one_in_4 = one_in(4)
_short_keys = st.text(max_size=8)
_tails = st.lists(json_values, max_size=1)


def _same_content_other_type(value: Any) -> Any:
    """The value as another JSON type: numbers as strings and back, lists as objects..."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return [value]
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return "null"


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with some members removed, retyped or mutated in turn (keep is the default)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, member in value.items():
            action = draw(_actions)
            if action == "keep" or (action == "recurse" and depth >= 4):
                out[key] = member
            elif action == "retype":
                out[key] = draw(_retyped(member))
            elif action == "recurse":
                out[key] = draw(mutated(member, depth + 1))
        if draw(_one_in_10):
            out[draw(_short_keys)] = draw(json_values)
        return out
    if isinstance(value, list):
        items = [draw(mutated(v, depth + 1)) for v in value]
        if items and draw(_one_in_4):
            items = items[: draw(st.integers(0, len(items)))]
        return items + draw(_tails)
    if draw(_one_in_4):
        return draw(_retyped(value))
    return value


@st.composite
def _retyped(draw: st.DrawFn, value: Any) -> Any:
    if draw(st.booleans()):
        return _same_content_other_type(value)
    return draw(other_json_values)


def dumps(value: Any) -> bytes:
    """JSON as a lax server might write it (NaN and Infinity literals included)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """``depth`` nested JSON arrays: ``[[[...1...]]]`` (2 bytes per level)."""
    return b"[" * depth + inner + b"]" * depth


@dataclass(frozen=True)
class Body:
    """A response body: ``kind`` says how it was made; ``huge`` bodies are built on demand."""

    kind: str
    data: bytes
    huge: bool = False

    def payload(self, huge_size: int) -> bytes:
        if not self.huge:
            return self.data
        pad = max(0, huge_size - len(self.data) - 16)
        return self.data[:-1] + b', "padding": "' + b"x" * pad + b'"}'

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 100 else self.data[:100] + b"..."
        huge = ", huge" if self.huge else ""
        return f"Body({self.kind!r}, {shown!r}, len={len(self.data)}{huge})"


BODY_KINDS = (
    "valid", "mutated", "error", "mutated-error", "truncated", "html", "random", "empty",
    "json-value", "huge", "odd-json", "deep",
)  # fmt: skip
_body_kinds = st.sampled_from(BODY_KINDS)
_error_bodies = st.sampled_from(ERROR_BODIES)
_html = st.sampled_from(HTML_PAGES)
_random_bytes = st.binary(min_size=1, max_size=300)
# Deep enough to exhaust a recursive decoder (Python's limit is 1000 frames), small enough
# (at most 40 KB) to stay under max_response_bytes.
DEEP_LEVELS = (3, 50, 3000, 20000)
_depths = st.sampled_from(DEEP_LEVELS)


@st.composite
def bodies(draw: st.DrawFn, call: str) -> Body:
    """Every kind of body a server, a proxy or a broken network may deliver."""
    kind = draw(_body_kinds)
    success = SUCCESS_BODIES[call]
    if kind == "valid":
        return Body(kind, dumps(success))
    if kind == "mutated":
        return Body(kind, dumps(draw(mutated(success))))
    if kind == "error":
        return Body(kind, dumps(draw(_error_bodies)))
    if kind == "mutated-error":
        return Body(kind, dumps(draw(mutated(draw(_error_bodies)))))
    if kind == "truncated":
        full = dumps(success if draw(st.booleans()) else ERROR_BODY)
        return Body(kind, full[: draw(st.integers(0, len(full) - 1))])
    if kind == "html":
        return Body(kind, draw(_html))
    if kind == "random":
        return Body(kind, draw(_random_bytes))
    if kind == "empty":
        return Body(kind, b"")
    if kind == "json-value":
        return Body(kind, dumps(draw(json_values)))
    if kind == "huge":
        return Body(kind, dumps(success), huge=True)
    if kind == "deep":
        depth = draw(_depths)
        where = draw(st.sampled_from(["bare", "unknown-field", "error-field"]))
        if where == "bare":
            return Body(f"deep-{depth}", nested(depth))
        base = dumps(success if where == "unknown-field" else ERROR_BODY)
        return Body(f"deep-{depth}", base[:-1] + b', "extra": ' + nested(depth) + b"}")
    # odd-json: valid-ish JSON a strict decoder may or may not take
    raw = dumps(success)
    return Body(kind, draw(st.sampled_from([
        b"\xef\xbb\xbf" + raw,  # UTF-8 BOM
        raw.decode().encode("utf-16"),
        raw + b" trailing garbage",
        raw[:-1] + b', "referenceOrderID": "dup"}',  # duplicate key
        raw.replace(b"10.0", b"1e400"),  # overflowing numbers
        raw.replace(b"10.0", b"NaN"),
        raw.replace(b"1001", b"100000000000000000000000000000"),  # int beyond 64 bits
        b"null",
        b"[" + raw + b"]",
        b'"' + raw.replace(b'"', b'\\"') + b'"',  # JSON in a JSON string
    ])))  # fmt: skip


STATUSES = (200, 201, 204, 301, 302, *range(400, 430), 500, 501, 502, 503, 504)


@dataclass(frozen=True)
class RetryAfter:
    category: str  # none, small, negative, huge, garbage, date
    value: str | None


_ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_date_numbers = st.one_of(st.integers(0, 99), st.integers(0, 10**12), st.integers(0, 10**25))
http_dates = st.builds(
    lambda day, mon, year, h, m, sec, zone: f"{day}, {mon} {year} {h}:{m}:{sec} {zone}",
    st.sampled_from(["Mon", "Wed", "Fri", "Xyz"]),
    st.sampled_from(["01 Jan", "21 Oct", "32 Oct", "31 Feb", "0 Dec"]),
    st.one_of(st.sampled_from([1, 1994, 2015, 2099, 9999, 10000]), _date_numbers),
    _date_numbers,
    _date_numbers,
    _date_numbers,
    st.sampled_from(["GMT", "UTC", "+0000", "-2359", "+9999", "EST", "Z", ""]),
)
retry_afters = st.one_of(
    st.builds(RetryAfter, st.just("none"), st.none()),
    st.builds(RetryAfter, st.just("small"), st.sampled_from(["0", "0.001", "1e-3", " 0 ", "0.0"])),
    st.builds(RetryAfter, st.just("negative"), st.sampled_from(["-1", "-3600", "-0.5", "-1e9"])),
    st.builds(
        RetryAfter,
        st.just("huge"),
        st.sampled_from(["3600", "86400", "1e9", "inf", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT"]),
    ),
    st.builds(
        RetryAfter,
        st.just("garbage"),
        st.one_of(
            st.sampled_from(["soon", "", "nan", "-nan", "1,5", "0x10", "1_0", "\u00a0"]),
            _ascii_text,
        ),
    ),
    st.builds(
        RetryAfter,
        st.just("date"),
        st.one_of(
            st.sampled_from(
                [
                    "Wed, 21 Oct 2015 07:28:00 GMT",
                    "Mon, 01 Jan 0001 00:00:00 GMT",
                    "Sun, 06 Nov 1994 08:49:37 GMT",
                ]
            ),
            http_dates,
        ),
    ),
)
_statuses = st.one_of(st.sampled_from((200, 201, 204)), st.sampled_from(STATUSES))
_content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/html",
        "text/plain",
        "application/octet-stream",
    ]
)


@dataclass(frozen=True)
class Answer:
    """One HTTP response: status, body and the headers that matter."""

    status: int
    body: Body
    content_type: str
    retry_after: RetryAfter
    content_length: bool  # send a (correct) Content-Length header
    request_id: str | None


@dataclass(frozen=True)
class Exchange:
    """One call and the answers the server gives to its attempts (the last one repeats)."""

    call: str
    answers: tuple[Answer, ...]


@st.composite
def exchanges(draw: st.DrawFn, calls: tuple[str, ...] = CALLS) -> Exchange:
    call = draw(st.sampled_from(calls))
    out = []
    for _ in range(draw(st.integers(1, 2))):
        out.append(Answer(
            status=draw(_statuses),
            body=draw(bodies(call)),
            content_type=draw(_content_types),
            retry_after=draw(retry_afters),
            content_length=draw(st.booleans()),
            request_id=draw(st.one_of(st.none(), st.just("rid-1"), _ascii_text)),
        ))  # fmt: skip
    return Exchange(call, tuple(out))


# --- accounts and customers (issue 15): success bodies of their calls, for
# exchanges(calls=...) in tests/test_accounts.py and tests/test_customers.py; kept out
# of CALLS (the order calls test_properties drives) -------------------------------------
ACCOUNT_BODY: dict[str, Any] = {
    "accountIdentifier": "acme-main-account",
    "accountNumber": "A12345678",
    "displayName": "Acme main",
    "currencyCode": "USD",
    "currentBalance": 10.0,
    "status": "ACTIVE",
    "contactEmail": "ops@acme.example",
    "createdAt": "2024-05-01T12:00:00.000Z",
    "fundingNotification": [{"emailAddress": "ops@acme.example"}],
}
CUSTOMER_BODY: dict[str, Any] = {
    "customerIdentifier": "acme-customer",
    "displayName": "Acme Corp",
    "status": "ACTIVE",
    "createdAt": "2024-05-01T12:00:00.000Z",
    "accounts": [{k: v for k, v in ACCOUNT_BODY.items() if k != "currentBalance"}],
}
ALERT_BODY: dict[str, Any] = {
    "balanceAlertID": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "customerIdentifier": "acme-customer",
    "accountIdentifier": "acme-main-account",
    "balanceAlertDisplayName": "low",
    "balanceAlertThreshold": 10.0,
    "balanceAlertNotification": [{"emailAddress": "ops@acme.example"}],
    "createdAt": "2024-05-01T12:00:00.000Z",
}
SUCCESS_BODIES.update(
    {
        "account_get": ACCOUNT_BODY,
        "account_list": {"items": [ACCOUNT_BODY], "nextPageAvailable": False},
        "customer_get": CUSTOMER_BODY,
        "customer_list": [CUSTOMER_BODY],
        "alert_get": ALERT_BODY,
        "alert_list": {
            "page": {"number": 0, "size": 100, "totalPages": 1, "totalElements": 1},
            "lowBalanceAlerts": [ALERT_BODY],
        },
    }
)
ACCOUNT_CALLS = ("account_get", "account_list", "customer_get", "customer_list", "alert_get",
                 "alert_list")  # fmt: skip


# --- catalog (issue 15, catalog): hostile catalogs for Catalog.check ------------------------

CATALOG_NUMBERS = st.one_of(
    st.none(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6),
                max_value=10**6).map(str),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0", "0.001"]),
)  # fmt: skip
CATALOG_TEXT = st.one_of(
    st.none(), st.text(max_size=30), st.sampled_from(["active", "ACTIVE", "inactive", "Deleted"])
)


@st.composite
def catalog_items(draw: st.DrawFn, utid: str) -> dict[str, Any]:
    """One ItemViewVerbose, valid or hostile: any status and value type, values of every
    JSON kind a Decimal decodes from (strings included), nulls."""
    return {
        "utid": utid,
        "rewardName": draw(CATALOG_TEXT),
        "currencyCode": draw(st.one_of(st.none(), st.sampled_from(["USD", "EUR", "usd", ""]))),
        "status": draw(CATALOG_TEXT),
        "valueType": draw(
            st.one_of(
                st.sampled_from(["FIXED_VALUE", "VARIABLE_VALUE", "variable_value"]), CATALOG_TEXT
            )
        ),
        "minValue": draw(CATALOG_NUMBERS),
        "maxValue": draw(CATALOG_NUMBERS),
        "faceValue": draw(CATALOG_NUMBERS),
        "isWholeAmountValueRequired": draw(st.one_of(st.none(), st.booleans())),
        "countries": draw(st.one_of(st.none(), st.lists(st.text(max_size=3), max_size=3))),
    }


@st.composite
def catalog_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A CatalogViewVerbose of a few brands and items (utids U0, U1...; some repeated)."""
    count = draw(st.integers(min_value=0, max_value=6))
    items = [draw(catalog_items(f"U{draw(st.integers(0, 4))}")) for _ in range(count)]
    return {
        "catalogName": draw(CATALOG_TEXT),
        "brands": [
            {"brandKey": f"B{i}", "status": draw(CATALOG_TEXT), "items": items[i::2]}
            for i in range(2)
        ],
    }


CATALOG_AMOUNTS = st.one_of(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
)
