"""Issue 12, point 6 (the client's and RetryPolicy's part): every argument out of range is
a ValidationError at construction, never a hang, a ZeroDivisionError or an OverflowError
at the first call."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tango_async as ta

from .conftest import BASE, KEY, NAME

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"order_rate": INF}, "order_rate"),
        ({"order_rate": NAN}, "order_rate"),
        ({"order_rate": 1e-320}, "order_rate"),  # was a ZeroDivisionError at the first call
        ({"order_rate": 0}, "order_rate"),
        ({"rate_margin": NAN}, "rate_margin"),
        ({"timeout": INF}, "timeout"),  # was an OverflowError
        ({"timeout": NAN}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"resend_cooldown": INF}, "resend_cooldown"),
        ({"resend_cooldown": -1}, "resend_cooldown"),
        ({"connector_limit": "x"}, "connector_limit"),  # was a TypeError
        ({"connector_limit": -5}, "connector_limit"),  # hung
        ({"connector_limit": 2.5}, "connector_limit"),
        ({"max_response_bytes": "x"}, "max_response_bytes"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"max_response_bytes": True}, "max_response_bytes"),
    ],
)
def test_bad_client_arguments(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(NAME, KEY, base_url=BASE, **options)
    assert e.value.field == field


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"jitter": NAN}, "jitter"),  # hung
        ({"jitter": -0.1}, "jitter"),
        ({"initial_delay": INF}, "initial_delay"),
        ({"max_delay": -1}, "max_delay"),
        ({"rate_limit_delay": NAN}, "rate_limit_delay"),
        ({"conflict_delay": "2"}, "conflict_delay"),
        ({"max_retry_after": INF}, "max_retry_after"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": 10**6}, "max_retries"),
    ],
)
def test_bad_retry_policies(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.RetryPolicy(**options)
    assert e.value.field == field
    with pytest.raises(ta.ValidationError):
        ta.RetryPolicy().with_options(**options)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans()),
    st.sampled_from(["order_rate", "rate_margin", "timeout", "resend_cooldown"]),
)
def test_any_number_is_accepted_or_refused_cleanly(value: Any, name: str) -> None:
    try:
        client = ta.TangoClient(NAME, KEY, base_url=BASE, **{name: value})
    except ta.ValidationError:
        return
    # Accepted: the derived figures are finite, so nothing divides by zero or overflows later.
    spacing = getattr(client.rate_limiter, "spacing", 1.0)
    assert 0 < spacing <= 86_400
    assert 0 < client._transport.timeout <= 86_400
