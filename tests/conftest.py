from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import tango_async as ta

from ._aioresponses_compat import install as _install_aioresponses_compat

_install_aioresponses_compat()

pytest_plugins = ["pytester", "tests._hygiene"]

# Short waits so no test sleeps for real: the rules are the same, the numbers smaller.
FAST_RETRY = ta.RetryPolicy(
    initial_delay=0.001, max_delay=0.005, jitter=0.1, rate_limit_delay=0.01, conflict_delay=0.02
)
BASE = "https://api.test.invalid/raas/v2"
NAME = "platform-name"
KEY = "sup3r-s3cret-platform-key"


def order_request(**kw: Any) -> ta.CreateOrderRequest:
    fields: dict[str, Any] = {
        "customer_identifier": "cust-12345",
        "account_identifier": "acct-12345",
        "utid": "U561593",
        "amount": 10,
        "recipient": ta.Recipient(email="ann@example.com", first_name="Ann", last_name="Lee"),
    }
    fields.update(kw)
    return ta.CreateOrderRequest(**fields)


SANDBOX_CUSTOMER, SANDBOX_ACCOUNT = "sandbox-customer", "sandbox-account"  # seeded


def sandbox_order(**kw: Any) -> ta.CreateOrderRequest:
    """An order of the local sandbox's seeded customer and account."""
    return order_request(
        **{"customer_identifier": SANDBOX_CUSTOMER, "account_identifier": SANDBOX_ACCOUNT, **kw}
    )


@pytest.fixture
async def mocked_client() -> AsyncIterator[ta.TangoClient]:
    """A client for aioresponses tests: fake host, fast retries, a fast order rate."""
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, order_rate=1000.0, resend_cooldown=0.2
    ) as client:
        yield client
