"""Issue 12, point 2: every user value in a path is one safe segment. '.' and '..' (and
whatever decodes or normalises to them) would move a request, Authorization header and
all, to another path: they are refused before anything is sent, by one shared check."""

from __future__ import annotations

from typing import Any

import pytest
from aioresponses import aioresponses
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

import tango_async as ta
from tango_async._validation import check_path_id, path_segment, unsafe_segment

from .conftest import BASE

HOSTILE = [
    ".",
    "..",
    "%2e",
    "%2E",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",  # encoded twice: a proxy that decodes once more sees '..'
    "%25252e",
    "\uff0e\uff0e",  # fullwidth dots: NFKC makes them '..'
    "\u2024\u2024",  # one-dot leaders, NFKC '..'
    "%2F",
    "a%2F..",
    "%5C",
    "a\\b",
]


def calls(mocked: aioresponses) -> int:
    return sum(len(v) for v in mocked.requests.values())


@pytest.mark.parametrize("value", HOSTILE)
async def test_every_path_parameter_refuses_dot_segments(
    mocked_client: ta.TangoClient, value: str
) -> None:
    tango = mocked_client
    attempts: list[Any] = [
        lambda: tango.orders.get(value),
        lambda: tango.orders.resend(value),
        lambda: tango.line_items.resend(value),
    ]
    with aioresponses() as mocked:
        for attempt in attempts:
            with pytest.raises(ta.ValidationError):
                await attempt()
        assert calls(mocked) == 0  # nothing sent, the Authorization header included


def test_path_segment_is_the_one_shared_check() -> None:
    # Whatever a resource checked before, building the segment refuses it too.
    for value in HOSTILE:
        with pytest.raises(ta.ValidationError):
            path_segment(value)
    assert path_segment("RA231012-1234-56") == "RA231012-1234-56"
    assert path_segment("a b") == "a%20b"
    assert path_segment("...") == "..."  # three dots are a name, not a dot segment
    assert path_segment("a.b") == "a.b"


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_an_accepted_id_stays_one_segment_under_the_orders_path(value: str) -> None:
    try:
        ref = check_path_id(value, "reference_order_id")
        segment = path_segment(ref)
    except ta.ValidationError:
        return
    url = URL(BASE + f"/orders/{segment}/resends")
    # However yarl (and so aiohttp) normalises it, the request goes to exactly
    # /raas/v2/orders/<that one ID>/resends.
    assert url.raw_parts[:4] == ("/", "raas", "v2", "orders")
    assert url.raw_parts[5:] == ("resends",)
    assert url.parts[4] == ref
    assert unsafe_segment(ref) is None
