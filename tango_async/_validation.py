"""Client-side checks of every documented request rule, run before anything is sent.

Where Tango's sources disagree the newest wins (the OpenAPI description, then the 2025
documentation page, then the 2024 pages). Each failure is a ValidationError naming
the field (snake_case, dotted) and the rule.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC as _UTC
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from enum import StrEnum
from urllib.parse import quote, unquote, urlsplit

import msgspec
from yarl import URL

from ._constants import DEFAULT_MAX_AMOUNT
from ._exceptions import ValidationError
from ._logs import escape
from .types.accounts import (
    BalanceAlertContact,
    CreateAccountRequest,
    FundingNotification,
    LowBalanceAlertRequest,
    UpdateAccountRequest,
    UpdateLowBalanceAlertRequest,
)
from .types.customers import CreateCustomerRequest
from .types.enums import (
    CancelReasonCode,
    DeliveryMethod,
    FreezeReasonCode,
    ReissueReasonCode,
    ResendReasonCode,
    WebhookVerification,
)
from .types.line_items import (
    LineItemActionRequest,
    ReissueLineItemRequest,
    ReissueRecipient,
    UpdateLineItemRequest,
)
from .types.orders import Address, CreateOrderRequest, Recipient, Sender
from .types.resends import LineItemResendRequest, OrderResendRequest
from .types.webhooks import WebhookHeader, WebhookSubscriptionRequest

# ASCII only: the OpenAPI patterns' \d is [0-9]; Python's \d also matches other scripts.
IDENTIFIER = re.compile(r"[-a-zA-Z0-9]{5,100}")
UTID = re.compile(r"[uU][0-9]+")
PTID = re.compile(r"[pP][0-9]+")
ETID = re.compile(r"[eE][0-9]{6}")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
US_MOBILE = re.compile(r"\+1[0-9]{10}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHYSICAL_NAME = re.compile(r"[0-9A-Za-z .,&-]+")
STREET = re.compile(r"[0-9A-Za-z .,/&%#@'-]+")
CITY = re.compile(r"[0-9A-Za-z .&'-]+")
POSTAL = re.compile(r"[0-9A-Za-z -]{1,12}")
US_ZIP = re.compile(r"[0-9]{5}")
REGION_CODE = re.compile(r"[A-Z]{2}")
COUNTRY = re.compile(r"[A-Za-z]{2}")
FORBIDDEN_NAME_CHARS = re.compile(r"[<>/]")
_NOT_IN_PATH_ID = re.compile(r"[\s/]")
# Control characters: C0 (U+0000-U+001F), DEL, C1 (U+0080-U+009F, NEL included) and the
# Unicode line and paragraph separators. No identifier, reference or free-text field takes
# one: each can end, overwrite or reorder a line (a log line, a CSV row, a terminal, an email
# header). ``MULTILINE_TEXT`` fields (the gift message, custom field values) may also hold
# tab, CR and LF, nothing else of these.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LINE_BREAKS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")

# Delivery methods accepted on order creation (CreateOrderCriteria) and on resends.
CREATE_METHODS = frozenset(
    {"NONE", "EMAIL", "PHONE", "ADDRESS", "EMBEDDED", "EMBEDDED_COMPONENT", "WHATSAPP"}
)
RESEND_METHODS = frozenset({"NONE", "EMAIL", "PHONE", "WHATSAPP"})

MAX_EXTERNAL_REF_ID = 100
MAX_MESSAGE = 3000
MAX_CAMPAIGN = 1024
MAX_NOTES = 1024
MAX_PURCHASE_ORDER_NUMBER = 100
MAX_DIGITAL_NAME = 100
MAX_PHYSICAL_NAME = 25
MAX_EMAIL = 100
MAX_STREET = 35
MAX_CITY = 30
MAX_REGION = 35


def _fail(field: str, rule: str) -> ValidationError:
    return ValidationError(field, rule)


def check_str(
    value: object, field: str, *, required: bool = False, multiline: bool = False
) -> str | None:
    """None (if allowed) or a str of valid Unicode without control characters.

    Control characters are those of :data:`CONTROL_CHARS` (C0, DEL, C1, U+2028, U+2029);
    ``multiline`` allows tab, CR and LF among them (a gift message's line breaks). The
    rule of a refusal shows the character escaped (``'\\n'``), never raw.
    """
    if value is None:
        if required:
            raise _fail(field, "is required")
        return None
    if not isinstance(value, str):
        raise _fail(field, f"must be a string, not {type(value).__name__}")
    why = text_problem(value, multiline=multiline)
    if why is not None:
        raise _fail(field, why)
    return value


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` is no text for a request field (see :func:`check_str`), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    found = (_CONTROL_BUT_LINE_BREAKS if multiline else CONTROL_CHARS).search(value)
    if found is None:
        return None
    which = "control characters other than tab, CR and LF" if multiline else "control characters"
    return f"must not contain {which} (found {found.group()!r} at position {found.start()})"


def check_len(value: str | None, field: str, max_len: int, *, min_len: int = 0) -> None:
    if value is not None and not (min_len <= len(value) <= max_len):
        if min_len:
            raise _fail(field, f"must be {min_len} to {max_len} characters (got {len(value)})")
        raise _fail(field, f"must be at most {max_len} characters (got {len(value)})")


def check_pattern(value: str | None, field: str, pattern: re.Pattern[str], rule: str) -> None:
    if value is not None and not pattern.fullmatch(value):
        raise _fail(field, rule)


def check_identifier(value: object, field: str) -> str:
    s = check_str(value, field, required=True)
    assert s is not None
    check_pattern(s, field, IDENTIFIER, "must be 5-100 letters, digits or hyphens")
    return s


def check_external_ref_id(value: object, field: str = "external_ref_id") -> str | None:
    s = check_str(value, field)
    if s is not None:
        if not s.strip():
            raise _fail(field, "must not be empty or blank")
        check_len(s, field, MAX_EXTERNAL_REF_ID)
    return s


def finite_number(value: object, *, lo: float, hi: float = math.inf, above: bool = False) -> bool:
    """True for an int or float (not a bool) that is finite and within ``lo``..``hi``
    (strictly above ``lo`` with ``above``): the check behind every numeric setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        value = float(value)  # an int past float's range (10**400) is refused, not raised
    except OverflowError:
        return False
    if not math.isfinite(value) or value > hi:
        return False
    return value > lo if above else value >= lo


def check_path_id(value: object, field: str) -> str:
    """A reference ID used as a URL path segment: a non-empty string without '/' or spaces
    that is a safe segment (see :func:`unsafe_segment`)."""
    s = check_str(value, field, required=True)
    assert s is not None
    if not s or _NOT_IN_PATH_ID.search(s):
        raise _fail(field, "must be a non-empty ID without spaces or '/'")
    check_len(s, field, 200)
    why = unsafe_segment(s)
    if why:
        raise _fail(field, why)
    return s


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_DOT_SEGMENTS = (".", "..")


def unsafe_segment(value: str) -> str | None:
    """Why ``value`` is not a safe URL path segment, or None.

    ``.`` and ``..`` would move the request to another path (with the Authorization
    header): refused, and so is anything that decodes or normalises to them or to a
    ``/`` (percent-encoded, however many times, or in Unicode compatibility forms such as
    fullwidth dots), since a proxy or server on the way may decode it once more.
    """
    seen = value
    for _ in range(8):  # percent-decoding to a fixed point, bounded
        forms = {seen, unicodedata.normalize("NFKC", seen)}
        if any(f in _DOT_SEGMENTS for f in forms):
            return "must not be '.' or '..' (or encode one): it would change the request's path"
        if any("/" in f or "\\" in f for f in forms):
            return "must not contain '/' or '\\', encoded or not"
        decoded = unquote(seen)
        if decoded == seen:
            return None
        seen = decoded
    return "must not be percent-encoded this many times"


def path_segment(ref: str) -> str:
    """``ref`` as one URL path segment (Tango's IDs need no escaping; others get it).

    The one place every resource builds its path segments: a ValidationError for an
    unsafe segment (``.``, ``..`` and their encodings: :func:`unsafe_segment`), whatever
    check the caller made before.
    """
    why = unsafe_segment(ref)
    if why:
        raise _fail("path", why)
    return ref if _PLAIN_SEGMENT.fullmatch(ref) else quote(ref, safe="")


def check_email(value: object, field: str) -> str | None:
    s = check_str(value, field)
    check_len(s, field, MAX_EMAIL)
    check_pattern(s, field, EMAIL, "must be an email address like name@example.com")
    return s


def check_etid(value: object, field: str) -> str | None:
    s = check_str(value, field)
    check_pattern(s, field, ETID, "must be E followed by 6 digits")
    return s


def check_mobile(value: object, field: str, *, us_only: bool) -> str | None:
    s = check_str(value, field)
    if us_only:
        check_pattern(s, field, US_MOBILE, "PHONE delivery takes US numbers only: +1 and 10 digits")
    else:
        check_pattern(s, field, E164, "must be E.164: + and up to 15 digits")
    return s


def _check_name(value: object, field: str, *, physical: bool, required: bool) -> None:
    s = check_str(value, field, required=required)
    if s is None:
        return
    if required and not s.strip():
        raise _fail(field, "is required (not blank)")
    if physical:
        check_len(s, field, MAX_PHYSICAL_NAME)
        check_pattern(
            s,
            field,
            PHYSICAL_NAME,
            "physical rewards allow only letters, digits, space, period, comma, & and hyphen",
        )
    else:
        check_len(s, field, MAX_DIGITAL_NAME)
        if FORBIDDEN_NAME_CHARS.search(s):
            raise _fail(field, "must not contain <, > or /")


# ISO 4217 currencies without minor units: their amounts are whole numbers. Any other
# currency, and one the client does not know, takes at most 2 decimal places (those with 3
# minor units, BHD, KWD..., are capped at 2 as well).
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"JPY", "KRW", "VND", "CLP", "ISK", "XAF", "XOF", "XPF", "UGX", "PYG", "RWF", "KMF", "GNF",
     "DJF", "BIF", "VUV"}
)  # fmt: skip
MAX_AMOUNT_PLACES = 2
# The largest amount filter of orders.list() (far beyond any order; keeps the query short).
MAX_FILTER_AMOUNT = Decimal(10) ** 15
_SHOWN_DIGITS = 40


def amount_places(currency: str | None = None) -> int:
    """How many decimal places an amount in ``currency`` may have (2 when not known)."""
    if currency is not None and currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return 0
    return MAX_AMOUNT_PLACES


def _significant(d: Decimal) -> tuple[tuple[int, ...], int]:
    """The digits of a finite, non-zero ``d`` without trailing zeros, and the exponent of the
    last one: exact (no context precision), so ``10.500`` gives ((1, 0, 5), -1)."""
    t = d.as_tuple()
    assert isinstance(t.exponent, int)
    digits = t.digits
    n = len(digits)
    while n > 1 and digits[n - 1] == 0:
        n -= 1
    return digits[:n], t.exponent + (len(digits) - n)


def canonical_amount(d: Decimal) -> Decimal:
    """``d`` (finite) in the form that goes on the wire: a whole number with exponent 0
    (``1E+3`` -> ``1000``, ``10.00`` -> ``10``), else without trailing zeros (``10.50`` ->
    ``10.5``); its ``str()`` is then a plain decimal. Exact, whatever the context.
    Call it on bounded values only: ``1E+1000`` becomes 1001 digits."""
    if not d:
        return Decimal(0)
    digits, exp = _significant(d)
    sign = 1 if d < 0 else 0
    if exp >= 0:
        return Decimal((sign, digits + (0,) * exp, 0))
    return Decimal((sign, digits, exp))


def plain_decimal(d: Decimal) -> str:
    """``d`` as a plain decimal string, never in exponent form (``1E+3`` -> ``1000``)."""
    return format(d, "f") if d.is_finite() else str(d)


def _shown(d: Decimal) -> str:
    s = str(d)
    return s if len(s) <= _SHOWN_DIGITS else s[: _SHOWN_DIGITS - 3] + "..."


def _to_decimal(value: object, field: str) -> Decimal:
    """A Decimal, int or float (not bool), finite, as an exact Decimal (a float: its repr)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float)):
        raise _fail(field, f"must be a number (Decimal, int or float), not {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(field, "must be a finite number")
        return Decimal(float.__repr__(value))  # (numpy's float64 repr is "np.float64(...)")
    d = Decimal(value)  # exact for an int, whatever its size
    if not d.is_finite():
        raise _fail(field, "must be a finite number")
    return d


def _rounded_hint(d: Decimal, places: int) -> str | None:
    """``d`` rounded half up to ``places``, as a plain decimal, if that is greater than 0."""
    try:
        exact = Context(prec=60, rounding=ROUND_HALF_UP)
        q = d.quantize(Decimal((0, (1,), -places)), context=exact)
    except ArithmeticError:  # pragma: no cover - a float with a fraction has < 17 digits
        return None
    return str(canonical_amount(q)) if q > 0 else None


def check_amount(
    value: object,
    field: str = "amount",
    *,
    currency: str | None = None,
    max_amount: Decimal | int = DEFAULT_MAX_AMOUNT,
) -> Decimal:
    """Check an order amount and return it in canonical wire form (see canonical_amount).

    A Decimal, int or float (not bool), finite, greater than 0, at most ``max_amount``, with
    at most as many decimal places as ``currency`` has (2 when None or unknown, 0 for
    ZERO_DECIMAL_CURRENCIES), judged on the value: ``10.500`` is 10.5. A float must be the
    exact amount its shortest repr shows (``0.1 + 0.2`` is not). ValidationError otherwise;
    no other error.
    """
    if currency is not None and not isinstance(currency, str):
        raise _fail("currency", f"must be a currency code string, not {type(currency).__name__}")
    d = _to_decimal(value, field)
    if not d > 0:  # 0 and -0 too
        raise _fail(field, "must be greater than 0")
    places = amount_places(currency)
    _, exp = _significant(d)
    if -exp > places:
        where = f" for {escape(currency.upper())}" if currency is not None else ""
        if isinstance(value, float) and -exp > MAX_AMOUNT_PLACES:
            hint = _rounded_hint(d, places)
            raise _fail(
                field,
                f"a float must be exact: {float.__repr__(value)} has more than "
                f"{MAX_AMOUNT_PLACES} decimal "
                f"places; pass {f'Decimal({hint!r})' if hint else 'a Decimal'}",
            )
        if places == 0:
            raise _fail(field, f"must be a whole number{where} (got {_shown(d)})")
        raise _fail(field, f"must have at most {places} decimal places{where} (got {_shown(d)})")
    if d > max_amount:
        raise _fail(
            field, f"must be at most {plain_decimal(Decimal(max_amount))} (the client's max_amount)"
        )
    return canonical_amount(d)


def check_max_amount(value: object, field: str = "max_amount") -> Decimal:
    """A client's largest order amount: a finite number greater than 0 (None: the default)."""
    if value is None:
        return DEFAULT_MAX_AMOUNT
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float)):
        raise _fail(field, f"must be a number (Decimal or int), not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(field, "must be a finite number greater than 0")
    d = Decimal(float.__repr__(value)) if isinstance(value, float) else Decimal(value)
    if not d.is_finite() or not d > 0:
        raise _fail(field, "must be a finite number greater than 0")
    if d > MAX_FILTER_AMOUNT:  # a bound, not a way around one: no amount is that large
        raise _fail(field, f"must be at most {plain_decimal(MAX_FILTER_AMOUNT)}")
    return d


def format_amount_filter(value: object, field: str) -> str:
    """An amount filter of ``orders.list()`` as a plain query value (``1E+3`` -> ``1000``):
    a finite number of at least 0 (0 is a fine lower bound) with at most 2 decimal places."""
    d = _to_decimal(value, field)
    if d < 0:
        raise _fail(field, "must be at least 0")
    if d > MAX_FILTER_AMOUNT:
        raise _fail(field, f"must be at most {plain_decimal(MAX_FILTER_AMOUNT)}")
    if d and -_significant(d)[1] > MAX_AMOUNT_PLACES:
        raise _fail(
            field, f"must have at most {MAX_AMOUNT_PLACES} decimal places (got {_shown(d)})"
        )
    return str(canonical_amount(d))


def check_aware(value: object, field: str) -> None:
    """None or a timezone-aware datetime that has an instant in UTC (see :func:`in_utc`)."""
    in_utc(value, field)


def in_utc(value: object, field: str) -> datetime | None:
    """``value`` (None or an aware datetime) as the same instant in UTC.

    ValidationError for anything else: a naive datetime (not guessed), a tzinfo whose
    offset cannot be read, and an instant outside the years 1 to 9999 in UTC
    (``9999-12-31T23:00-14:00`` is in the year 10000 there), which no RFC 3339 text holds.
    """
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise _fail(field, f"must be a timezone-aware datetime, not {type(value).__name__}")
    try:
        offset = value.utcoffset() if value.tzinfo is not None else None
    except (ValueError, TypeError, ArithmeticError):  # a tzinfo answering nonsense
        raise _fail(field, "has a tzinfo whose UTC offset cannot be read") from None
    if offset is None:
        raise _fail(field, "must be timezone-aware (a naive datetime is not guessed)")
    try:
        return value.astimezone(_UTC)
    except (ValueError, TypeError, ArithmeticError):  # OverflowError: past year 1 or 9999
        raise _fail(
            field, "must be an instant between the years 1 and 9999 in UTC (it is out of range)"
        ) from None


# Custom fields are free-form JSON, so they are bounded: nesting depth (the top-level
# mapping is level 1), values (every scalar, list and mapping, the top one included) and
# characters (keys, strings and the digits of Decimals), counted before anything is encoded.
MAX_CUSTOM_FIELDS_DEPTH = 32
MAX_CUSTOM_FIELDS_VALUES = 10_000
MAX_CUSTOM_FIELDS_CHARS = 100_000
_INT64 = 2**63
# Decimal exponents a JSON reader with IEEE doubles can hold (beyond: inf or 0).
_DOUBLE_EXPONENTS = range(-307, 309)


def _at(path: tuple[str | int, ...]) -> str:
    """Where a value sits in custom_fields, keys shown with repr (cut): ``['a'][0]``."""
    return "".join(f"[{_cut(p)!r}]" for p in path) or "(top level)"


def _cut(key: str | int, most: int = 40) -> str | int:
    return key[:most] + "..." if isinstance(key, str) and len(key) > most else key


def check_custom_fields(value: object, field: str = "custom_fields") -> None:
    """None or a mapping of str to JSON values, bounded: else ValidationError on ``field``.

    Values are None, bool, int (64-bit), float (finite), Decimal (finite, within a double's
    range), str (valid Unicode; tab, CR and LF but no other control characters), a list or
    tuple, or a mapping with str keys (without control characters); at most
    MAX_CUSTOM_FIELDS_DEPTH levels deep, MAX_CUSTOM_FIELDS_VALUES values and
    MAX_CUSTOM_FIELDS_CHARS characters in all. Walked without recursion, so a structure
    nested 100,000 deep (or a cycle) is refused at level 33, never a RecursionError; a
    non-finite number is refused, never sent as null. The rule names the place (``['a'][0]``).
    """
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _fail(field, "must be a mapping of field name to value")
    values = chars = 0
    stack: list[tuple[object, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        values += 1
        if values > MAX_CUSTOM_FIELDS_VALUES:
            raise _fail(field, f"must hold at most {MAX_CUSTOM_FIELDS_VALUES} values in all")
        why: str | None = None
        if isinstance(node, (Mapping, list, tuple)):
            if depth > MAX_CUSTOM_FIELDS_DEPTH:
                raise _fail(field, f"must be nested at most {MAX_CUSTOM_FIELDS_DEPTH} levels deep")
            # every member is a value: a list of 10**7 is refused before it is walked
            if values + len(stack) + len(node) > MAX_CUSTOM_FIELDS_VALUES:
                raise _fail(field, f"must hold at most {MAX_CUSTOM_FIELDS_VALUES} values in all")
            if isinstance(node, Mapping):
                for key, member in node.items():
                    if not isinstance(key, str):
                        raise _fail(
                            field,
                            f"keys must be strings, not {type(key).__name__} (in {_at(path)})",
                        )
                    chars += len(key)
                    if chars > MAX_CUSTOM_FIELDS_CHARS:
                        break
                    why = text_problem(key)
                    if why is not None:
                        raise _fail(field, f"key {_cut(key)!r} in {_at(path)}: {why}")
                    stack.append((member, depth + 1, (*path, key)))
            else:
                stack.extend((v, depth + 1, (*path, i)) for i, v in enumerate(node))
        elif node is None or isinstance(node, bool):
            pass
        elif isinstance(node, int):
            if not -_INT64 <= node < _INT64:
                why = "an integer must fit in 64 bits (pass a larger one as a str)"
        elif isinstance(node, float):
            if not math.isfinite(node):
                why = f"must be a finite number, not {node!r}"
        elif isinstance(node, Decimal):
            if not node.is_finite():
                why = f"must be a finite number, not {node!r}"
            else:
                chars += len(node.as_tuple().digits)
                if node and node.adjusted() not in _DOUBLE_EXPONENTS:
                    why = "must be within a JSON number's usual range (about 1e-307 to 1e308)"
        elif isinstance(node, str):
            chars += len(node)
            if chars <= MAX_CUSTOM_FIELDS_CHARS:
                why = text_problem(node, multiline=True)
        else:
            why = (
                "must be a JSON value (str, number, bool, None, list or dict), "
                f"not {type(node).__name__}"
            )
        if chars > MAX_CUSTOM_FIELDS_CHARS:
            raise _fail(field, f"must hold at most {MAX_CUSTOM_FIELDS_CHARS} characters in all")
        if why is not None:
            raise _fail(field, f"value at {_at(path)}: {why}")


def check_address(addr: object, field: str) -> None:
    if not isinstance(addr, Address):
        raise _fail(field, f"must be an Address, not {type(addr).__name__}")
    f = f"{field}."
    street1 = check_str(addr.street_line1, f + "street_line1", required=True)
    street2 = check_str(addr.street_line2, f + "street_line2")
    for name, s, req in (("street_line1", street1, True), ("street_line2", street2, False)):
        if s is None:
            continue
        if req and not s.strip():
            raise _fail(f + name, "is required (not blank)")
        check_len(s, f + name, MAX_STREET)
        check_pattern(
            s,
            f + name,
            STREET,
            "allows letters, digits, space and . , - / & % # @ ' only",
        )
    city = check_str(addr.city, f + "city", required=True)
    if city is not None and not city.strip():
        raise _fail(f + "city", "is required (not blank)")
    check_len(city, f + "city", MAX_CITY)
    check_pattern(city, f + "city", CITY, "allows letters, digits, space and . - & ' only")
    country = check_str(addr.country, f + "country", required=True)
    check_pattern(country, f + "country", COUNTRY, "must be a 2-letter country code")
    assert country is not None
    domestic = country.upper() in ("US", "CA")
    region = check_str(addr.state_or_province, f + "state_or_province", required=True)
    assert region is not None
    if domestic:
        check_pattern(
            region,
            f + "state_or_province",
            REGION_CODE,
            "must be a 2-letter uppercase state or province code for US and CA addresses",
        )
    else:
        if not region.strip():
            raise _fail(f + "state_or_province", "is required (not blank)")
        check_len(region, f + "state_or_province", MAX_REGION)
    postal = check_str(addr.postal_code, f + "postal_code", required=True)
    if postal is not None and not postal.strip():
        raise _fail(f + "postal_code", "is required (not blank)")
    if country.upper() == "US":
        check_pattern(
            postal, f + "postal_code", US_ZIP, "US addresses take a 5-digit ZIP code only"
        )
    else:
        check_pattern(
            postal, f + "postal_code", POSTAL, "must be 1-12 letters, digits, spaces or hyphens"
        )
    check_str(addr.company_name, f + "company_name")


# AddressCriteria's own limits in the OpenAPI description: what a digital order's address
# must meet (the documented physical rules apply to ADDRESS delivery only).
DIGITAL_ADDRESS_LIMITS = (
    ("street_line1", 200),
    ("street_line2", 100),
    ("city", 60),
    ("state_or_province", 60),
    ("postal_code", 12),
    ("country", 2),
    ("company_name", None),
)


def check_digital_address(addr: object, field: str) -> None:
    """An address on a digital order: sent as given (the server decides; newer pages allow
    one), but its fields must be strings within the schema's lengths, and the country 2
    letters."""
    if not isinstance(addr, Address):
        raise _fail(field, f"must be an Address, not {type(addr).__name__}")
    for name, limit in DIGITAL_ADDRESS_LIMITS:
        value = check_str(getattr(addr, name), f"{field}.{name}")
        if limit is not None:
            check_len(value, f"{field}.{name}", limit)
    check_pattern(addr.country, f"{field}.country", COUNTRY, "must be a 2-letter country code")


def _method(value: object, field: str, allowed: frozenset[str]) -> DeliveryMethod | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise _fail(field, f"must be one of {', '.join(sorted(allowed))}")
    return DeliveryMethod(value)


def effective_delivery_method(req: CreateOrderRequest) -> DeliveryMethod:
    """The delivery method the order will use, from delivery_method, an address or send_email."""
    explicit = _method(req.delivery_method, "delivery_method", CREATE_METHODS)
    if req.send_email is not None and not isinstance(req.send_email, bool):
        raise _fail("send_email", "must be a bool")
    if explicit is not None:
        # sendEmail=true means "Tango emails it": it contradicts NONE and the other digital
        # methods, not ADDRESS, which legacy physical orders combined with it.
        if req.send_email is True and explicit not in (
            DeliveryMethod.EMAIL,
            DeliveryMethod.ADDRESS,
        ):
            raise _fail(
                "send_email",
                f"send_email=True conflicts with delivery_method={explicit.value}; "
                "set only delivery_method",
            )
        if req.send_email is False and explicit is DeliveryMethod.EMAIL:
            raise _fail(
                "send_email",
                "send_email=False conflicts with delivery_method=EMAIL; set only delivery_method",
            )
        return explicit
    recipient = req.recipient
    if isinstance(recipient, Recipient) and recipient.address is not None:
        return DeliveryMethod.ADDRESS  # as the API itself infers it
    if req.send_email is False:
        return DeliveryMethod.NONE
    return DeliveryMethod.EMAIL  # legacy send_email=True, or the API's default


def prepare_order(
    req: CreateOrderRequest, *, max_amount: Decimal | int = DEFAULT_MAX_AMOUNT
) -> CreateOrderRequest:
    """Check every documented rule of ``req`` and return the request to put on the wire.

    The returned copy has ``delivery_method`` set (inferred where not given) and, for EMAIL
    and NONE, the legacy ``send_email`` that matches it, so both old and new servers read it
    the same way; its ``amount`` is the canonical Decimal (``1E+3`` -> ``1000``, ``10.50``
    -> ``10.5``), at most ``max_amount``. Raises ValidationError naming the field and the rule.
    """
    if not isinstance(req, CreateOrderRequest):
        raise _fail("request", f"must be a CreateOrderRequest, not {type(req).__name__}")
    check_identifier(req.customer_identifier, "customer_identifier")
    check_identifier(req.account_identifier, "account_identifier")
    utid = check_str(req.utid, "utid", required=True)
    check_pattern(utid, "utid", UTID, "must be U followed by digits (e.g. U561593)")
    amount = check_amount(req.amount, max_amount=max_amount)
    check_external_ref_id(req.external_ref_id)
    check_pattern(check_str(req.ptid, "ptid"), "ptid", PTID, "must be P followed by digits")
    check_etid(req.etid, "etid")
    check_str(req.email_subject, "email_subject")
    check_len(check_str(req.message, "message", multiline=True), "message", MAX_MESSAGE)
    check_len(check_str(req.campaign, "campaign"), "campaign", MAX_CAMPAIGN)
    check_len(check_str(req.notes, "notes"), "notes", MAX_NOTES)
    check_len(
        check_str(req.purchase_order_number, "purchase_order_number"),
        "purchase_order_number",
        MAX_PURCHASE_ORDER_NUMBER,
    )
    expiration = in_utc(req.expiration_date, "expiration_date")
    check_custom_fields(req.custom_fields)

    method = effective_delivery_method(req)
    physical = method is DeliveryMethod.ADDRESS

    if req.sender is not None:
        if not isinstance(req.sender, Sender):
            raise _fail("sender", f"must be a Sender, not {type(req.sender).__name__}")
        _check_name(req.sender.first_name, "sender.first_name", physical=False, required=False)
        _check_name(req.sender.last_name, "sender.last_name", physical=False, required=False)
        check_email(req.sender.email, "sender.email")

    r = req.recipient
    if r is None:
        if method in (DeliveryMethod.EMAIL, DeliveryMethod.PHONE, DeliveryMethod.ADDRESS):
            raise _fail("recipient", f"is required for {method.value} delivery")
    else:
        if not isinstance(r, Recipient):
            raise _fail("recipient", f"must be a Recipient, not {type(r).__name__}")
        needs_first = method in (DeliveryMethod.EMAIL, DeliveryMethod.PHONE, DeliveryMethod.ADDRESS)
        _check_name(r.first_name, "recipient.first_name", physical=physical, required=needs_first)
        _check_name(r.last_name, "recipient.last_name", physical=physical, required=physical)
        email = check_email(r.email, "recipient.email")
        if method is DeliveryMethod.EMAIL and email is None:
            raise _fail("recipient.email", "is required for EMAIL delivery")
        if method is DeliveryMethod.PHONE and r.mobile_number is None:
            raise _fail("recipient.mobile_number", "is required for PHONE delivery")
        check_mobile(
            r.mobile_number, "recipient.mobile_number", us_only=method is DeliveryMethod.PHONE
        )
        if physical and r.address is not None:
            check_address(r.address, "recipient.address")
        elif r.address is not None:
            check_digital_address(r.address, "recipient.address")
        # On a digital order an address is sent as given: newer API pages allow one for some
        # digital cash rewards, so the server decides.
    if physical and (r is None or r.address is None):
        raise _fail("recipient.address", "is required for ADDRESS delivery")

    send_email = req.send_email
    if send_email is None and method in (DeliveryMethod.EMAIL, DeliveryMethod.NONE):
        send_email = method is DeliveryMethod.EMAIL
    # (expiration: the same instant, in UTC: sub-minute offsets do not encode)
    return msgspec.structs.replace(
        req,
        amount=amount,
        delivery_method=method,
        send_email=send_email,
        expiration_date=expiration,
    )


def order_resend_request(
    *, new_email: object, new_etid: object, new_mobile: object, new_delivery_method: object
) -> OrderResendRequest:
    """The checked body of an order resend (``newMobile``: US numbers, as for PHONE)."""
    return OrderResendRequest(
        new_email=check_email(new_email, "new_email"),
        new_etid=check_etid(new_etid, "new_etid"),
        new_mobile=check_mobile(new_mobile, "new_mobile", us_only=True),
        new_delivery_method=_method(new_delivery_method, "new_delivery_method", RESEND_METHODS),
    )


def line_item_resend_request(
    *,
    new_delivery_method: object,
    new_email: object,
    new_mobile_number: object,
    new_etid: object,
    reason_code: object,
    other_reason: object,
) -> LineItemResendRequest:
    """The checked body of a line-item resend (``newMobileNumber``; OTHER needs a reason)."""
    base = order_resend_request(
        new_email=new_email,
        new_etid=new_etid,
        new_mobile=None,
        new_delivery_method=new_delivery_method,
    )
    mobile = check_mobile(new_mobile_number, "new_mobile_number", us_only=True)
    code: ResendReasonCode | None = None
    if reason_code is not None:
        if not isinstance(reason_code, str) or reason_code not in ResendReasonCode.__members__:
            raise _fail("reason_code", f"must be one of {', '.join(ResendReasonCode.__members__)}")
        code = ResendReasonCode(reason_code)
    other = check_str(other_reason, "other_reason")
    if code is ResendReasonCode.OTHER and not (other and other.strip()):
        raise _fail("other_reason", "is required when reason_code is OTHER")
    return LineItemResendRequest(
        new_delivery_method=base.new_delivery_method,
        new_email=base.new_email,
        new_mobile_number=mobile,
        new_etid=base.new_etid,
        reason_code=code,
        other_reason=other,
    )


def format_query_datetime(value: object, field: str, *, end: bool = False) -> tuple[str, datetime]:
    """An RFC 3339 query value and the aware datetime it stands for.

    A ``date`` means its whole day in UTC: the start of it, or (``end=True``) its last
    millisecond. Strings are parsed; naive datetimes are refused, and so is an instant
    outside the years 1 to 9999 in UTC (``0001-01-01T00:00:00+12:00``): ValidationError.
    The datetime returned is in UTC.
    """
    if isinstance(value, datetime):
        dt = in_utc(value, field)
        assert dt is not None
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day, tzinfo=_UTC)
        if end:
            dt = dt.replace(hour=23, minute=59, second=59, microsecond=999000)
    elif isinstance(value, str):
        check_str(value, field)
        return format_query_datetime(_parse_rfc3339(value, field), field, end=end)
    else:
        raise _fail(
            field,
            f"must be a date, an aware datetime or an RFC 3339 string, not {type(value).__name__}",
        )
    return to_rfc3339(dt), dt


def to_rfc3339(dt: datetime) -> str:
    """``2016-01-01T00:00:00.000Z``: UTC with milliseconds (four-digit years: 0001, not 1)."""
    u = dt.astimezone(_UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
        f"{u.microsecond // 1000:03d}Z"
    )


def _parse_rfc3339(value: str, field: str) -> datetime | date:
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise _fail(
            field, "must be an RFC 3339 date or date-time, e.g. 2016-01-01 or 2016-01-01T00:00:00Z"
        ) from None


def check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, "must be a bool")
    return value


def check_int(value: object, field: str, *, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, "must be an int")
    if value < lo or (hi is not None and value > hi):
        raise _fail(field, f"must be {lo} to {hi}" if hi is not None else f"must be at least {lo}")
    return value


# --- line items -------------------------------------------------------------------------

LINE_ITEM_CAMPAIGN = re.compile(r"[a-zA-Z0-9 ]{0,100}")
MAX_LINE_ITEM_NOTES = 150
REISSUE_METHODS = frozenset(
    {"NONE", "EMAIL", "PHONE", "EMBEDDED", "EMBEDDED_COMPONENT", "WHATSAPP", "BULKDIGITAL"}
)


def _reason(
    reason_code: object, other_reason: object, codes: type[StrEnum]
) -> tuple[str, str | None]:
    if isinstance(reason_code, str) and reason_code in codes.__members__:
        code = codes(reason_code)
    else:
        raise _fail("reason_code", f"must be one of {', '.join(codes.__members__)}")
    other = check_str(other_reason, "other_reason")
    if code == "OTHER" and not (other and other.strip()):
        raise _fail("other_reason", "is required when reason_code is OTHER")
    check_len(other, "other_reason", 1024)
    return code, other


def line_item_update_request(
    *, purchase_order_number: object, campaign: object, order_notes: object
) -> UpdateLineItemRequest:
    """The checked body of ``PATCH /lineItems/{id}``: at least one field; ``campaign``
    letters, digits and spaces up to 100; ``order_notes`` up to 150 characters."""
    po = check_str(purchase_order_number, "purchase_order_number")
    check_len(po, "purchase_order_number", MAX_PURCHASE_ORDER_NUMBER)
    camp = check_str(campaign, "campaign")
    check_pattern(
        camp, "campaign", LINE_ITEM_CAMPAIGN, "must be up to 100 letters, digits and spaces"
    )
    notes = check_str(order_notes, "order_notes")
    check_len(notes, "order_notes", MAX_LINE_ITEM_NOTES)
    if po is None and camp is None and notes is None:
        raise _fail("purchase_order_number", "give at least one field to update")
    return UpdateLineItemRequest(purchase_order_number=po, campaign=camp, order_notes=notes)


def line_item_action_request(
    action: str, *, reason_code: object, other_reason: object
) -> LineItemActionRequest:
    """The checked body of a cancel (CancelReasonCode) or a freeze / unfreeze
    (FreezeReasonCode); OTHER needs ``other_reason``."""
    codes: type[StrEnum] = CancelReasonCode if action == "cancel" else FreezeReasonCode
    code, other = _reason(reason_code, other_reason, codes)
    return LineItemActionRequest(reason_code=code, other_reason=other)


def reissue_request(
    *,
    reason_code: object,
    other_reason: object,
    amount: object,
    delivery_method: object,
    recipient: object,
    notes: object,
    max_amount: Decimal | int = DEFAULT_MAX_AMOUNT,
) -> ReissueLineItemRequest:
    """The checked body of a reissue: ReissueReasonCode (OTHER needs ``other_reason``), an
    optional new amount (as for orders), delivery method (digital ones only), recipient
    (names up to 100 characters without <, > or /; email; mobile in E.164) and notes (up
    to 150 characters)."""
    code, other = _reason(reason_code, other_reason, ReissueReasonCode)
    wire_amount = check_amount(amount, max_amount=max_amount) if amount is not None else None
    method = _method(delivery_method, "delivery_method", REISSUE_METHODS)
    who: ReissueRecipient | None = None
    if recipient is not None:
        if isinstance(recipient, Mapping):
            try:
                recipient = ReissueRecipient(**recipient)
            except TypeError as e:
                raise _fail("recipient", f"has an unknown field ({e})") from None
        if not isinstance(recipient, ReissueRecipient):
            raise _fail("recipient", "must be a ReissueRecipient or a mapping of its fields")
        _check_name(recipient.first_name, "recipient.first_name", physical=False, required=False)
        _check_name(recipient.last_name, "recipient.last_name", physical=False, required=False)
        check_email(recipient.email, "recipient.email")
        check_mobile(recipient.mobile_number, "recipient.mobile_number", us_only=False)
        who = recipient
    if method in (DeliveryMethod.PHONE, DeliveryMethod.WHATSAPP) and (
        who is None or who.mobile_number is None
    ):
        # The spec: "mobileNumber ... Required if delivery method is SMS."
        raise _fail("recipient.mobile_number", f"is required for {method} delivery")
    text = check_str(notes, "notes")
    check_len(text, "notes", MAX_LINE_ITEM_NOTES)
    return ReissueLineItemRequest(
        reason_code=code,
        other_reason=other,
        amount=wire_amount,
        delivery_method=method,
        recipient=who,
        notes=text,
    )


# --- webhooks ---------------------------------------------------------------------------

MAX_URL = 2048
MAX_WEBHOOK_LIST = 100
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# Names Tango sets itself, or that would break the request to the listener.
_RESERVED_HEADERS = frozenset(
    {"content-length", "content-type", "host", "transfer-encoding", "x-signed-payload"}
)


def check_webhook_id(value: object, field: str = "webhook_id") -> str:
    """A webhook ID: a UUID (the spec's format), as used in paths."""
    s = check_str(value, field, required=True)
    assert s is not None
    if not _UUID.fullmatch(s):
        raise _fail(field, "must be a UUID like 0f8fad5b-d9cb-469f-a165-70867728950e")
    return s.lower()


def check_url(value: object, field: str = "url") -> str:
    """An absolute http(s) URL with a host, no spaces or control characters."""
    s = check_str(value, field, required=True)
    assert s is not None
    check_len(s, field, MAX_URL, min_len=1)
    try:
        parts = urlsplit(s)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise _fail(field, "must be a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in s:
        raise _fail(field, "must be an absolute http:// or https:// URL with a host")
    return s


def _names(value: object, field: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise _fail(field, "must be a list of names")
    names: list[str] = []
    for i, item in enumerate(value):
        s = check_str(item, f"{field}[{i}]", required=True)
        assert s is not None
        if not s.strip():
            raise _fail(f"{field}[{i}]", "must not be blank")
        check_len(s, f"{field}[{i}]", 200)
        if s not in names:
            names.append(s)
    if len(names) > MAX_WEBHOOK_LIST:
        raise _fail(field, f"must hold at most {MAX_WEBHOOK_LIST} names")
    return names


def _headers(value: object) -> list[WebhookHeader] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail("headers", "must be a mapping of header name to value")
    out: list[WebhookHeader] = []
    for name, val in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise _fail("headers", "a header name must be an HTTP token (letters, digits, -...)")
        if name.lower() in _RESERVED_HEADERS:
            raise _fail(f"headers.{name}", "is set by Tango itself")
        s = check_str(val, f"headers.{name}", required=True)
        assert s is not None
        if not s:
            raise _fail(f"headers.{name}", "must not be empty")
        check_len(s, f"headers.{name}", 4096)
        out.append(WebhookHeader(name=name, value=s))
    return out


def _hmac_text(key: object) -> str:
    """The registered form of an HMAC key: base64 text."""
    if isinstance(key, bytes | bytearray):
        if len(key) < 16:
            raise _fail("hmac_key", "must be at least 16 bytes (128 bits) of key")
        return base64.b64encode(bytes(key)).decode("ascii")
    s = check_str(key, "hmac_key", required=True)
    assert s is not None
    try:
        raw = base64.b64decode(s.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(
            "hmac_key", "a str key must be base64 text (or pass the raw key as bytes)"
        ) from None
    if len(raw) < 16:
        raise _fail("hmac_key", "must be at least 16 bytes (128 bits) of key")
    return s.strip()


def _certificate_text(cert: object) -> str:
    """The registered form of a certificate: base64 of its DER bytes."""
    if isinstance(cert, bytes | bytearray):
        data = bytes(cert)
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = data.decode("ascii", "replace")
        elif not data:
            raise _fail("certificate", "must not be empty")
        else:
            return base64.b64encode(data).decode("ascii")
    s = check_str(cert, "certificate", required=True, multiline=True)
    assert s is not None
    if "-----BEGIN" in s:
        found = _PEM_BODY.search(s)
        if found is None:
            raise _fail("certificate", "must be a PEM CERTIFICATE block, DER bytes or base64")
        s = found.group(1)
    body = "".join(s.split())
    if not body or not _BASE64.fullmatch(body) or len(body) % 4:
        raise _fail("certificate", "must be a PEM CERTIFICATE block, DER bytes or base64")
    return body


def webhook_request(
    *,
    url: object,
    event_types: object,
    categories: object,
    headers: object,
    verification: object,
    hmac_key: object,
    certificate: object,
    creating: bool,
) -> WebhookSubscriptionRequest:
    """The checked body of ``POST /webhooks`` (``creating``) or ``PATCH /webhooks/{id}``.

    A new subscription needs a URL and at least one event type or category. The
    verification method follows the key given (``hmac_key``: HMAC, ``certificate``:
    X509); unsigned deliveries need ``verification="NONE"`` said explicitly. An HMAC key
    (bytes, or its base64 text) is at least 16 bytes; a certificate is PEM, DER or base64
    and is registered as base64 of its DER bytes."""
    wire_url = check_url(url) if (creating or url is not None) else None
    types = _names(event_types, "event_types")
    cats = _names(categories, "categories")
    if creating and not types and not cats:
        raise _fail("event_types", "give at least one event type or category")
    method: WebhookVerification | None = None
    if verification is not None:
        if not isinstance(verification, str) or verification not in WebhookVerification.__members__:
            raise _fail("verification", "must be one of HMAC, X509, NONE")
        method = WebhookVerification(verification)
    if hmac_key is not None and certificate is not None:
        raise _fail("hmac_key", "pass hmac_key or certificate, not both")
    if method is None:
        if hmac_key is not None:
            method = WebhookVerification.HMAC
        elif certificate is not None:
            method = WebhookVerification.X509
        elif creating:
            raise _fail(
                "verification",
                "pass hmac_key or certificate, or verification='NONE' for unsigned deliveries",
            )
    if method is WebhookVerification.HMAC and hmac_key is None and creating:
        raise _fail("hmac_key", "is required for HMAC verification")
    if method is WebhookVerification.X509 and certificate is None and creating:
        raise _fail("certificate", "is required for X509 verification")
    if method is WebhookVerification.NONE and (hmac_key is not None or certificate is not None):
        raise _fail("verification", "NONE takes no hmac_key or certificate")
    if method is WebhookVerification.HMAC and certificate is not None:
        raise _fail("certificate", "is for X509 verification, not HMAC")
    if method is WebhookVerification.X509 and hmac_key is not None:
        raise _fail("hmac_key", "is for HMAC verification, not X509")
    req = WebhookSubscriptionRequest(
        url=wire_url,
        headers=_headers(headers),
        categories=cats,
        event_types=types,
        signing_certificate=_certificate_text(certificate) if certificate is not None else None,
        hmac_shared_secret_key=_hmac_text(hmac_key) if hmac_key is not None else None,
        payload_verification_method=method,
    )
    if not creating and req == WebhookSubscriptionRequest():
        raise _fail("url", "give at least one field to update")
    return req


# --- accounts, customers, low-balance alerts (issue 15) ----------------------------------
# The rules of the OpenAPI description: customerIdentifier and accountIdentifier 5-100 of
# -0-9a-zA-Z; a customer's displayName 5-100 letters, numbers, punctuation and whitespace
# separators (Unicode categories L, N, P, Z); contactEmail an email of at most 255
# characters (the maxLength of the contactEmail filter); currency codes three upper-case
# letters (ISO 4217: Tango documents AUD, CAD, EUR, GBP, USD, MXN, SGD, PLN and adds
# more, so the form is checked, not that list); account status filters one of the
# documented statuses; maxResults 1 to 200.

ACCOUNT_STATUSES = ("ACTIVE", "INACTIVE", "DISABLED", "FROZEN", "DELETED")
CURRENCY_CODE = re.compile(r"[A-Z]{3}")
MAX_CONTACT_EMAIL = 255
MAX_NOTIFICATION_EMAILS = 100  # addresses of one alert or funding notification list
MAX_ACCOUNT_RESULTS = 200
MAX_THRESHOLD = MAX_FILTER_AMOUNT
_CUSTOMER_NAME_CATEGORIES = frozenset("LNPZ")


def check_customer_identifier(value: object, field: str = "customer_identifier") -> str:
    """A customerIdentifier: 5-100 letters, digits or hyphens (ASCII)."""
    return check_identifier(value, field)


def check_account_identifier(value: object, field: str = "account_identifier") -> str:
    """An accountIdentifier: 5-100 letters, digits or hyphens (ASCII)."""
    return check_identifier(value, field)


def check_customer_display_name(value: object, field: str = "display_name") -> str:
    """A customer's displayName: 5-100 characters, each a letter, number, punctuation mark
    or whitespace separator (Unicode categories L, N, P and Z)."""
    s = check_str(value, field, required=True)
    assert s is not None
    check_len(s, field, 100, min_len=5)
    for i, ch in enumerate(s):
        if unicodedata.category(ch)[0] not in _CUSTOMER_NAME_CATEGORIES:
            raise _fail(
                field,
                "must hold only letters, numbers, punctuation and spaces "
                f"(found {ch!r} at position {i})",
            )
    if not s.strip():
        raise _fail(field, "must not be blank")
    return s


def check_display_name(value: object, field: str, *, required: bool) -> str | None:
    """An account's or a low-balance alert's displayName: text without control
    characters, not blank (Tango documents no other rule for them)."""
    s = check_str(value, field, required=required)
    if s is not None and not s.strip():
        raise _fail(field, "must not be empty or blank")
    return s


def check_contact_email(value: object, field: str, *, required: bool = False) -> str | None:
    """An email address of at most 255 characters (the rule of :func:`check_email`'s
    pattern)."""
    s = check_str(value, field, required=required)
    check_len(s, field, MAX_CONTACT_EMAIL)
    check_pattern(s, field, EMAIL, "must be an email address like name@example.com")
    return s


def check_currency_code(value: object, field: str = "currency_code") -> str:
    """A currency code: three upper-case letters (ISO 4217), e.g. USD."""
    s = check_str(value, field, required=True)
    assert s is not None
    check_pattern(s, field, CURRENCY_CODE, "must be a currency code of 3 upper-case letters")
    return s


def check_threshold(value: object, field: str = "threshold") -> Decimal:
    """A low-balance threshold: a finite number greater than 0, at most 10**15, with at
    most 2 decimal places; returned in canonical wire form."""
    d = _to_decimal(value, field)
    if not d > 0:
        raise _fail(field, "must be greater than 0")
    if d > MAX_THRESHOLD:
        raise _fail(field, f"must be at most {plain_decimal(MAX_THRESHOLD)}")
    if -_significant(d)[1] > MAX_AMOUNT_PLACES:
        raise _fail(
            field, f"must have at most {MAX_AMOUNT_PLACES} decimal places (got {_shown(d)})"
        )
    return canonical_amount(d)


def check_balance_filter(value: object, field: str) -> str:
    """A balance filter (``min_balance``, ``max_balance``) as a plain query value: a finite
    number (a balance may be below 0) of at most 10**15 in magnitude, at most 2 decimal
    places."""
    d = _to_decimal(value, field)
    if abs(d) > MAX_FILTER_AMOUNT:
        bound = plain_decimal(MAX_FILTER_AMOUNT)
        raise _fail(field, f"must be from -{bound} to {bound}")
    if d and -_significant(d)[1] > MAX_AMOUNT_PLACES:
        raise _fail(
            field, f"must have at most {MAX_AMOUNT_PLACES} decimal places (got {_shown(d)})"
        )
    return plain_decimal(canonical_amount(d)) if d else "0"


def check_email_list(
    value: object, field: str, *, allow_empty: bool, max_count: int = MAX_NOTIFICATION_EMAILS
) -> list[str]:
    """A list (or tuple) of distinct email addresses (compared without case), at most
    ``max_count``; empty only with ``allow_empty``. A lone string is refused (it would
    be read as a list of characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _fail(field, f"must be a list of email addresses, not {type(value).__name__}")
    if not value and not allow_empty:
        raise _fail(field, "must hold at least one email address")
    if len(value) > max_count:
        raise _fail(field, f"must hold at most {max_count} email addresses (got {len(value)})")
    seen: set[str] = set()
    out: list[str] = []
    for i, item in enumerate(value):
        s = check_contact_email(item, f"{field}[{i}]", required=True)
        assert s is not None
        if s.lower() in seen:
            raise _fail(f"{field}[{i}]", "is listed twice")
        seen.add(s.lower())
        out.append(s)
    return out


def check_balance_alert_id(value: object, field: str = "alert_id") -> str:
    """A low-balance alert's balanceAlertID: a UUID."""
    s = check_str(value, field, required=True)
    assert s is not None
    if not _UUID.fullmatch(s):
        raise _fail(field, "must be a UUID (the balanceAlertID Tango gave the alert)")
    return s


def check_max_results(value: object, field: str = "max_results") -> int:
    """``maxResults`` of an account or customer list: None (200) or 1 to 200."""
    if value is None:
        return MAX_ACCOUNT_RESULTS
    return check_int(value, field, lo=1, hi=MAX_ACCOUNT_RESULTS)


def _funding_notification(
    value: object, contact_email: str | None, field: str = "funding_notification"
) -> list[FundingNotification] | None:
    """``funding_notification`` as the wire's list of addresses: None (not sent), True
    (the contact email, as Tango's older boolean meant), False (none: an empty list), or
    a list of email addresses."""
    if value is None:
        return None
    if isinstance(value, bool):
        if not value:
            return []
        if contact_email is None:
            raise _fail(
                field,
                "True sends funding notifications to contact_email: give contact_email too, "
                "or a list of addresses",
            )
        return [FundingNotification(email_address=contact_email)]
    emails = check_email_list(value, field, allow_empty=True)
    return [FundingNotification(email_address=e) for e in emails]


def customer_request(*, customer_identifier: object, display_name: object) -> CreateCustomerRequest:
    """The checked body of ``POST /customers``."""
    return CreateCustomerRequest(
        customer_identifier=check_customer_identifier(customer_identifier),
        display_name=check_customer_display_name(display_name),
    )


def account_request(
    *,
    account_identifier: object,
    display_name: object,
    contact_email: object,
    currency_code: object,
    funding_notification: object,
) -> CreateAccountRequest:
    """The checked body of ``POST /customers/{customerIdentifier}/accounts``."""
    email = check_contact_email(contact_email, "contact_email", required=True)
    name = check_display_name(display_name, "display_name", required=True)
    assert name is not None and email is not None
    return CreateAccountRequest(
        account_identifier=check_account_identifier(account_identifier),
        display_name=name,
        contact_email=email,
        currency_code=check_currency_code(currency_code),
        funding_notification=_funding_notification(funding_notification, email),
    )


def account_update_request(
    *, display_name: object, contact_email: object, funding_notification: object
) -> UpdateAccountRequest:
    """The checked body of ``PATCH /customers/{cid}/accounts/{aid}``: at least one field."""
    email = check_contact_email(contact_email, "contact_email")
    req = UpdateAccountRequest(
        display_name=check_display_name(display_name, "display_name", required=False),
        contact_email=email,
        funding_notification=_funding_notification(funding_notification, email),
    )
    if req == UpdateAccountRequest():
        raise _fail(
            "display_name",
            "give at least one field to update (display_name, contact_email, funding_notification)",
        )
    return req


def alert_request(
    *, display_name: object, threshold: object, emails: object
) -> LowBalanceAlertRequest:
    """The checked body of ``POST .../lowbalance``: a display name, a threshold above 0
    and at least one address."""
    name = check_display_name(display_name, "display_name", required=True)
    assert name is not None
    return LowBalanceAlertRequest(
        balance_alert_display_name=name,
        balance_alert_threshold=check_threshold(threshold),
        balance_alert_notification=[
            BalanceAlertContact(email_address=e)
            for e in check_email_list(emails, "emails", allow_empty=False)
        ],
    )


def alert_update_request(
    *, display_name: object, threshold: object, emails: object
) -> UpdateLowBalanceAlertRequest:
    """The checked body of ``PATCH .../lowbalance/{balanceAlertID}``: at least one field;
    ``emails`` replaces the list (an empty list clears it)."""
    req = UpdateLowBalanceAlertRequest(
        balance_alert_display_name=check_display_name(display_name, "display_name", required=False),
        balance_alert_threshold=check_threshold(threshold) if threshold is not None else None,
        balance_alert_notification=(
            [
                BalanceAlertContact(email_address=e)
                for e in check_email_list(emails, "emails", allow_empty=True)
            ]
            if emails is not None
            else None
        ),
    )
    if req == UpdateLowBalanceAlertRequest():
        raise _fail(
            "display_name", "give at least one field to update (display_name, threshold, emails)"
        )
    return req


def account_filters(
    *,
    account_number: object = None,
    display_name: object = None,
    status: object = None,
    contact_email: object = None,
    currency_code: object = None,
    min_balance: object = None,
    max_balance: object = None,
    min_date_created_at: object = None,
    max_date_created_at: object = None,
    funding_notification_email: object = None,
) -> list[tuple[str, str]]:
    """The query of ``GET /accounts`` and ``GET /customers/{id}/accounts`` from their
    filters (each None: not filtered); ``currency_code`` and ``funding_notification_email``
    take one value or a list."""
    query: list[tuple[str, str]] = []
    for name, wire, value in (
        ("account_number", "accountNumber", account_number),
        ("display_name", "displayName", display_name),
    ):
        text = check_str(value, name)
        if text is not None:
            query.append((wire, text))
    if status is not None:
        if not isinstance(status, str) or status not in ACCOUNT_STATUSES:
            raise _fail("status", f"must be one of {', '.join(ACCOUNT_STATUSES)}")
        query.append(("status", str(status)))
    email = check_contact_email(contact_email, "contact_email")
    if email is not None:
        query.append(("contactEmail", email))
    if currency_code is not None:
        codes = [currency_code] if isinstance(currency_code, str) else currency_code
        if not isinstance(codes, (list, tuple)) or not codes:
            raise _fail("currency_code", "must be a currency code or a non-empty list of them")
        for i, code in enumerate(codes):
            query.append(("currencyCode", check_currency_code(code, f"currency_code[{i}]")))
    low = check_balance_filter(min_balance, "min_balance") if min_balance is not None else None
    high = check_balance_filter(max_balance, "max_balance") if max_balance is not None else None
    if low is not None and high is not None and Decimal(low) > Decimal(high):
        raise _fail("min_balance", "must not be above max_balance")
    query += [(w, v) for w, v in (("minBalance", low), ("maxBalance", high)) if v is not None]
    query += created_range(
        ("min_date_created_at", "minDateCreatedAt", min_date_created_at),
        ("max_date_created_at", "maxDateCreatedAt", max_date_created_at),
    )
    if funding_notification_email is not None:
        one = isinstance(funding_notification_email, str)
        emails = check_email_list(
            [funding_notification_email] if one else funding_notification_email,
            "funding_notification_email",
            allow_empty=False,
        )
        query += [("fundingNotificationEmail", e) for e in emails]
    return query


def created_range(
    low: tuple[str, str, object], high: tuple[str, str, object]
) -> list[tuple[str, str]]:
    """The RFC 3339 query values of a creation-time range, each of ``low`` and ``high`` a
    (field, wire name, value) with value None for no bound: ValidationError for a bad
    value or a ``low`` after ``high``. A ``date`` as ``high`` includes that whole day."""
    out: list[tuple[str, str]] = []
    start: datetime | None = None
    for (name, wire, value), upper in ((low, False), (high, True)):
        if value is None:
            continue
        text, when = format_query_datetime(value, name, end=upper)
        if upper and start is not None and start > when:
            raise _fail(low[0], f"must not be after {name}")
        start = when if not upper else start
        out.append((wire, text))
    return out


# --- catalog and reference data (issue 15, catalog) ---------------------------------------
# The query parameters of GET /catalogs (and /choiceProducts/{utid}/catalog),
# /choiceProducts, /exchangerates and /rewardCountries, as the OpenAPI description lists
# them; enumerated values are checked against its enums (compared case-insensitively and
# sent as the spec spells them), text against control characters and a length.

CATALOG_STATUSES = ("test", "active", "inactive", "deleted")
REWARD_TYPES = (
    "all", "gift card", "promo", "donation", "reward link", "payment ach", "payment card",
    "reporting", "payment-paypal", "tango open loop", "cash equivalent", "physical gift card",
)  # fmt: skip
ITEM_ATTRIBUTES = ("EMAIL", "PHONE", "ADDRESS", "EMBEDDED")
FULFILLMENT_TYPES = ("DIGITAL", "PHYSICAL")
MAX_FILTER_TEXT = 255
MAX_FILTER_VALUES = 100
_COUNTRY = re.compile(r"[A-Za-z]{2,3}")


def check_filter_text(value: object, field: str) -> str | None:
    """A text filter: None, or a non-blank string without control characters of at most
    255 characters."""
    s = check_str(value, field)
    if s is not None:
        if not s.strip():
            raise _fail(field, "must not be empty or blank")
        check_len(s, field, MAX_FILTER_TEXT)
    return s


def _values(value: object, field: str) -> list[object]:
    """One value or a non-empty list (or tuple) of at most 100 of them."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not values:
        raise _fail(field, "must be a value or a non-empty list of them")
    if len(values) > MAX_FILTER_VALUES:
        raise _fail(field, f"must hold at most {MAX_FILTER_VALUES} values")
    return list(values)


def _one_of(value: object, field: str, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str):
        for choice in allowed:
            if value.strip().lower() == choice.lower():
                return choice
    raise _fail(field, f"must be one of {', '.join(repr(a) for a in allowed)}")


def check_country(value: object, field: str = "country") -> str:
    """A country code: 2 or 3 letters (``US``, ``USA``)."""
    s = check_str(value, field, required=True)
    assert s is not None
    check_pattern(s, field, _COUNTRY, "must be a country code of 2 or 3 letters, e.g. US")
    return s


def catalog_query(
    *,
    verbose: object = None,
    brand_key: object = None,
    brand_name: object = None,
    utid: object = None,
    reward_name: object = None,
    status: object = None,
    reward_type: object = None,
    currency_code: object = None,
    country: object = None,
    fulfillment_type: object = None,
    item_attribute: object = None,
    category_ids: object = None,
) -> list[tuple[str, str]]:
    """The query of ``GET /catalogs`` from its filters (each None: not filtered);
    ``reward_type``, ``fulfillment_type``, ``item_attribute`` and ``category_ids`` take
    one value or a list."""
    query: list[tuple[str, str]] = []
    if verbose is not None:
        if not isinstance(verbose, bool):
            raise _fail("verbose", "must be True or False")
        query.append(("verbose", "true" if verbose else "false"))
    for name, wire, value in (
        ("brand_key", "brandKey", brand_key),
        ("brand_name", "brandName", brand_name),
        ("utid", "utid", utid),
        ("reward_name", "rewardName", reward_name),
    ):
        text = check_filter_text(value, name)
        if text is not None:
            query.append((wire, text))
    if status is not None:
        query.append(("status", _one_of(status, "status", CATALOG_STATUSES)))
    for name, wire, value, allowed in (
        ("reward_type", "rewardType", reward_type, REWARD_TYPES),
        ("fulfillment_type", "fulfillmentType", fulfillment_type, FULFILLMENT_TYPES),
        ("item_attribute", "itemAttribute", item_attribute, ITEM_ATTRIBUTES),
    ):
        if value is not None:
            for i, one in enumerate(_values(value, name)):
                query.append((wire, _one_of(one, f"{name}[{i}]", allowed)))
    if currency_code is not None:
        query.append(("currencyCode", check_currency_code(currency_code)))
    if country is not None:
        query.append(("country", check_country(country)))
    if category_ids is not None:
        for i, one in enumerate(_values(category_ids, "category_ids")):
            if not isinstance(one, str) or not _UUID.fullmatch(one):
                raise _fail(f"category_ids[{i}]", "must be a brand category UUID")
            query.append(("categoryIds", one))
    return query


def choice_product_query(
    *, reward_name: object = None, currency_code: object = None, countries: object = None
) -> list[tuple[str, str]]:
    """The query of ``GET /choiceProducts`` (``countries``: one code or a list)."""
    query: list[tuple[str, str]] = []
    text = check_filter_text(reward_name, "reward_name")
    if text is not None:
        query.append(("rewardName", text))
    if currency_code is not None:
        query.append(("currencyCode", check_currency_code(currency_code)))
    if countries is not None:
        for i, one in enumerate(_values(countries, "countries")):
            query.append(("countries", check_country(one, f"countries[{i}]")))
    return query


def exchange_rate_query(
    *, base_currency: object = None, reward_currency: object = None
) -> list[tuple[str, str]]:
    """The query of ``GET /exchangerates`` (each: one currency code or a list)."""
    query: list[tuple[str, str]] = []
    for name, wire, value in (
        ("base_currency", "baseCurrency", base_currency),
        ("reward_currency", "rewardCurrency", reward_currency),
    ):
        if value is not None:
            for i, one in enumerate(_values(value, name)):
                query.append((wire, check_currency_code(one, f"{name}[{i}]")))
    return query


def reward_country_query(
    *, countries: object = None, preferred_currencies: object = None
) -> list[tuple[str, str]]:
    """The query of ``GET /rewardCountries``: each filter one value or a list, sent
    comma-separated as the spec says."""
    query: list[tuple[str, str]] = []
    if countries is not None:
        codes = [
            check_country(c, f"countries[{i}]")
            for i, c in enumerate(_values(countries, "countries"))
        ]
        query.append(("countries", ",".join(codes)))
    if preferred_currencies is not None:
        values = _values(preferred_currencies, "preferred_currencies")
        codes = [check_currency_code(c, f"preferred_currencies[{i}]") for i, c in enumerate(values)]
        query.append(("preferredCurrencies", ",".join(codes)))
    return query


# --- http(s) URLs: base_url, token_url ---------------------------------------------

URL_NOISE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_url(value: str, field: str) -> URL:
    """``value`` as an absolute http(s) URL without credentials, query or fragment, plain
    http for loopback hosts only; ValidationError naming ``field`` otherwise. The caller
    has dropped the white space around it and refused any inside it (:data:`URL_NOISE`):
    yarl would drop tabs, CR and LF silently."""
    try:
        url = URL(value)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be an absolute http(s) URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError(field, "must be an absolute http(s) URL")
    if url.user or url.password or url.query_string or url.fragment:
        raise ValidationError(field, "must not carry credentials, a query or a fragment")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValidationError(
            field, "plain http:// is allowed for loopback hosts only; use https://"
        )
    return url
