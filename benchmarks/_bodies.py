"""Realistic response bodies, made by the local sandbox: verbose orders with reward
credentials, sender, recipient with a postal address, campaign, notes..."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import msgspec

from tango_async.testing import Sandbox

ENCODER = msgspec.json.Encoder(decimal_format="number")
START = datetime(2025, 1, 1, tzinfo=UTC)

# Four kinds of order, as a real account's history mixes them.
_VARIANTS: list[dict[str, Any]] = [
    {"utid": "U561593", "amount": Decimal("25.00"), "delivery_method": "EMAIL"},
    {"utid": "U666425", "amount": Decimal("50.00"), "delivery_method": "EMAIL"},
    {
        "utid": "U561593",
        "amount": Decimal("10.50"),
        "delivery_method": "EMBEDDED",
        "send_email": False,
    },
    {"utid": "U666425", "amount": Decimal("100.00"), "delivery_method": "EMAIL"},
]


def _fields(i: int) -> dict[str, Any]:
    return {
        **_VARIANTS[i % len(_VARIANTS)],
        "customer_identifier": "acme-rewards-customer",
        "account_identifier": f"acme-account-{i % 3}",
        "ptid": "PBENCH0001",
        "etid": "E000000",
        "campaign": "spring-2025-loyalty",
        "email_subject": "Thank you for being a loyal customer!",
        "message": "Here is a little something to say thank you. Enjoy your reward!",
        "notes": "Loyalty programme, tier gold, quarter 1",
        "purchase_order_number": f"PO-2025-{i:05d}",
        "sender": {"firstName": "Sam", "lastName": "Sender", "email": "rewards@acme.example"},
        "recipient": {
            "email": f"customer{i}@example.com",
            "firstName": "Rita",
            "lastName": "Recipient",
            "mobileNumber": "+15555550123",
            "address": {
                "streetLine1": "1 Main Street",
                "streetLine2": "Apt 4",
                "city": "Seattle",
                "stateOrProvince": "WA",
                "postalCode": "98101",
                "country": "US",
                "companyName": "Acme Inc.",
            },
        },
    }


@cache
def verbose_orders(count: int = 100) -> list[dict[str, Any]]:
    """``count`` full order views (with their rewards) as the sandbox answers them."""
    sb = Sandbox(order_rate=None, record=False)
    for i in range(count):
        sb.seed_orders(1, start=START + timedelta(minutes=i), step=timedelta(0), **_fields(i))
    return list(sb.orders.values())


def page_body(count: int = 100) -> bytes:
    """A GET /orders page of ``count`` verbose orders (reward credentials included)."""
    orders = verbose_orders(count)
    page = {"number": 0, "elementsPerBlock": count, "resultCount": count, "totalCount": 100_000}
    return ENCODER.encode({"page": page, "orders": orders})


def order_body() -> bytes:
    """One verbose order, as GET /orders/{referenceOrderID} answers it."""
    return ENCODER.encode(verbose_orders(1)[0])


if __name__ == "__main__":
    import sys

    sys.stdout.write(order_body().decode() + "\n")
