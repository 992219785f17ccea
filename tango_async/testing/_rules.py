"""Server-side validation of the sandbox, written from the API documentation on its own.

Deliberately independent of the client's ``tango_async._validation``: the sandbox is the
other side of the wire, so a rule the client gets wrong shows up as a disagreement.
Each problem is an ``errors[]`` item of Tango's error body.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

CREATE_METHODS = ("NONE", "EMAIL", "PHONE", "ADDRESS", "EMBEDDED", "EMBEDDED_COMPONENT", "WHATSAPP")
RESEND_METHODS = ("NONE", "EMAIL", "PHONE", "WHATSAPP")
REASON_CODES = (
    "NOT_RECEIVED",
    "LOST_DELETED",
    "DELIVERY_INFO",
    "DELIVERY_METHOD",
    "REMINDER",
    "OTHER",
)

# (wire field, pattern or None, max length or None): top-level string fields of an order.
ORDER_STRINGS: tuple[tuple[str, str | None, int | None], ...] = (
    ("customerIdentifier", r"[-a-zA-Z0-9]{5,100}", None),
    ("accountIdentifier", r"[-a-zA-Z0-9]{5,100}", None),
    ("utid", r"[uU][0-9]+", None),
    ("externalRefID", None, 100),
    ("ptid", r"[pP][0-9]+", None),
    ("etid", r"[eE][0-9]{6}", None),
    ("emailSubject", None, None),
    ("message", None, 3000),
    ("campaign", None, 1024),
    ("notes", None, 1024),
    ("purchaseOrderNumber", None, 100),
    ("expirationDate", None, None),
)
PHYSICAL_NAME = r"[0-9A-Za-z .,&-]{1,25}"
STREET = r"[0-9A-Za-z .,/&%#@'-]{1,35}"
CITY = r"[0-9A-Za-z .&'-]{1,30}"
US_MOBILE = r"\+1[0-9]{10}"
E164 = r"\+[1-9][0-9]{1,14}"
EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"


def problem(
    key: str, path: str, message: str, value: Any = None, constraint: Any = None
) -> dict[str, Any]:
    """One errors[] item, as Tango's bean validation writes them."""
    return {
        "code": int(key.replace(".", "")),
        "i18nKey": key,
        "message": message,
        "path": path,
        "invalidValue": None if value is None else str(value),
        "constraint": None if constraint is None else str(constraint),
    }


class _Checker:
    def __init__(self) -> None:
        self.problems: list[dict[str, Any]] = []

    def fail(self, path: str, message: str, value: Any = None, constraint: Any = None) -> None:
        self.problems.append(problem("400.004", path, message, value, constraint))

    def string(
        self,
        obj: dict[str, Any],
        name: str,
        prefix: str = "",
        *,
        required: bool = False,
        pattern: str | None = None,
        max_len: int | None = None,
    ) -> str | None:
        path = prefix + name
        value = obj.get(name)
        if value is None:
            if required:
                self.problems.append(problem("400.003", path, f"{path} must not be null"))
            return None
        if not isinstance(value, str):
            self.fail(path, f"{path} must be a string", value)
            return None
        if required and not value.strip():
            self.problems.append(problem("400.003", path, f"{path} must not be blank"))
        elif pattern is not None and not re.fullmatch(pattern, value):
            self.fail(path, f'{path} must match "^{pattern}$"', value, pattern)
        elif max_len is not None and len(value) > max_len:
            self.fail(path, f"{path} size must be between 0 and {max_len}", value, max_len)
        return value

    def obj(self, parent: dict[str, Any], name: str, prefix: str = "") -> dict[str, Any] | None:
        value = parent.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(prefix + name, f"{prefix}{name} must be an object", value)
            return None
        return value


def delivery_method(body: dict[str, Any]) -> str:
    """The delivery method the API uses: as given, else ADDRESS for an address, else from
    the legacy sendEmail (false: NONE), else EMAIL."""
    method = body.get("deliveryMethod")
    if isinstance(method, str):
        return method
    recipient = body.get("recipient")
    if isinstance(recipient, dict) and recipient.get("address") is not None:
        return "ADDRESS"
    return "NONE" if body.get("sendEmail") is False else "EMAIL"


def check_order(body: Any) -> list[dict[str, Any]]:
    """Every documented rule of POST /orders; an empty list when the order is valid."""
    c = _Checker()
    if not isinstance(body, dict):
        return [problem("400.001", "", "Malformed JSON request: a JSON object is required")]
    for name, pattern, max_len in ORDER_STRINGS:
        required = name in ("customerIdentifier", "accountIdentifier", "utid")
        c.string(body, name, required=required, pattern=pattern, max_len=max_len)
    amount = body.get("amount")
    if amount is None:
        c.problems.append(problem("400.003", "amount", "amount must not be null"))
    elif isinstance(amount, bool) or not isinstance(amount, (int, Decimal, float)):
        c.fail("amount", "amount must be a number", amount)
    elif amount < 0:
        c.fail("amount", "amount must be greater than or equal to 0", amount, 0)
    if (
        "sendEmail" in body
        and body["sendEmail"] is not None
        and not isinstance(body["sendEmail"], bool)
    ):
        c.fail("sendEmail", "sendEmail must be a boolean", body["sendEmail"])
    method = delivery_method(body)
    if method not in CREATE_METHODS:
        c.fail(
            "deliveryMethod", f"deliveryMethod must be one of {'|'.join(CREATE_METHODS)}", method
        )
    if (
        "customFields" in body
        and body["customFields"] is not None
        and not isinstance(body["customFields"], dict)
    ):
        c.fail("customFields", "customFields must be an object", body["customFields"])
    physical = method == "ADDRESS"

    sender = c.obj(body, "sender")
    if sender is not None:
        for part in ("firstName", "lastName"):
            _digital_name(c, sender, part, "sender.")
        c.string(sender, "email", "sender.", pattern=EMAIL)

    recipient = c.obj(body, "recipient")
    if recipient is None:
        if method in ("EMAIL", "PHONE", "ADDRESS") and "recipient" not in {
            p["path"] for p in c.problems
        }:
            c.problems.append(
                problem("400.003", "recipient", f"recipient must not be null for {method} delivery")
            )
        return c.problems
    if physical:
        for part in ("firstName", "lastName"):
            c.string(recipient, part, "recipient.", required=True, pattern=PHYSICAL_NAME)
    else:
        _digital_name(
            c, recipient, "firstName", "recipient.", required=method in ("EMAIL", "PHONE")
        )
        _digital_name(c, recipient, "lastName", "recipient.")
    email = c.string(
        recipient, "email", "recipient.", required=method == "EMAIL", pattern=EMAIL, max_len=100
    )
    del email
    c.string(
        recipient,
        "mobileNumber",
        "recipient.",
        required=method == "PHONE",
        pattern=US_MOBILE if method == "PHONE" else E164,
    )
    address = c.obj(recipient, "address", "recipient.")
    if physical:
        if address is None:
            c.problems.append(
                problem(
                    "400.003",
                    "recipient.address",
                    "recipient.address must not be null for ADDRESS delivery",
                )
            )
        else:
            _check_address(c, address)
    return c.problems


def _digital_name(
    c: _Checker, obj: dict[str, Any], part: str, prefix: str, *, required: bool = False
) -> None:
    value = c.string(obj, part, prefix, required=required, max_len=100)
    if value is not None and re.search(r"[<>/]", value):
        c.fail(prefix + part, f"{prefix}{part} must not contain <, > or /", value)


def _check_address(c: _Checker, address: dict[str, Any]) -> None:
    p = "recipient.address."
    c.string(address, "streetLine1", p, required=True, pattern=STREET)
    c.string(address, "streetLine2", p, pattern=STREET)
    c.string(address, "city", p, required=True, pattern=CITY)
    country = c.string(address, "country", p, required=True, pattern=r"[A-Za-z]{2}")
    domestic = country is not None and country.upper() in ("US", "CA")
    c.string(
        address,
        "stateOrProvince",
        p,
        required=True,
        pattern=r"[A-Z]{2}" if domestic else None,
        max_len=None if domestic else 35,
    )
    us = country is not None and country.upper() == "US"
    c.string(
        address,
        "postalCode",
        p,
        required=True,
        pattern=r"[0-9]{5}" if us else r"[0-9A-Za-z -]{1,12}",
    )
    c.string(address, "companyName", p)


def check_resend(body: Any, *, line_item: bool) -> list[dict[str, Any]]:
    """The rules of the two resend bodies (newMobile vs newMobileNumber)."""
    if body is None:
        return []
    if not isinstance(body, dict):
        return [problem("400.001", "", "Malformed JSON request: a JSON object is required")]
    c = _Checker()
    c.string(body, "newEmail", pattern=EMAIL)
    c.string(body, "newEtid", pattern=r"[eE][0-9]{6}")
    c.string(body, "newMobileNumber" if line_item else "newMobile", pattern=US_MOBILE)
    c.string(body, "newDeliveryMethod", pattern="|".join(RESEND_METHODS))
    if line_item:
        code = c.string(body, "reasonCode", pattern="|".join(REASON_CODES))
        other = c.string(body, "otherReason")
        if code == "OTHER" and not (other and other.strip()):
            c.problems.append(
                problem(
                    "400.003",
                    "otherReason",
                    "otherReason must not be blank when reasonCode is OTHER",
                )
            )
    return c.problems
