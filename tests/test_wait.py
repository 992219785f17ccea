"""orders.wait / line_items.wait: polling to a final status on the client's clock, with
capped backoff, a typed timeout carrying the last status, unknown statuses logged once."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
from aioresponses import aioresponses

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock

from .conftest import BASE, order_request


class FrozenClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


async def test_wait_on_an_order_that_fails_in_the_sandbox() -> None:
    clock = SandboxClock(frozen=True)
    async with Sandbox(order_rate=None, pending_for=120.0, clock=clock) as sb:
        sb.fail_next(1)
        async with sb.client() as tango:
            created = await tango.orders.create(order_request())
            assert created.status == "PENDING"
            started = time.monotonic()
            order = await tango.orders.wait(created.reference_order_id, poll=5, max_poll=30)
            assert order.status == "FAILED"
            assert time.monotonic() - started < 5  # frozen time: no real waiting
            assert ta.is_final_order_status(order.status)
            item = await tango.line_items.wait(str(created.reference_line_item_id), timeout=1)
            assert item.status == "FAILED"


async def test_wait_times_out_with_the_last_status() -> None:
    clock = SandboxClock(frozen=True)
    async with (
        Sandbox(order_rate=None, pending_for=3600.0, clock=clock) as sb,
        sb.client() as tango,
    ):
        created = await tango.orders.create(order_request())
        with pytest.raises(ta.WaitTimeoutError) as info:
            await tango.orders.wait(created.reference_order_id, timeout=60, poll=2)
    err = info.value
    assert isinstance(err, ta.TangoError) and err.status == "PENDING"
    assert (
        isinstance(err.last, ta.Order) and err.last.reference_order_id == created.reference_order_id
    )
    assert "PENDING" in str(err)


async def test_backoff_is_capped_and_the_last_sleep_ends_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FrozenClock()
    url = re.compile(re.escape(f"{BASE}/orders/RA1"))
    async with ta.TangoClient("platform", "key-12345", base_url=BASE, clock=clock) as tango:
        with aioresponses() as m, caplog.at_level(logging.WARNING, "tango_async"):
            m.get(url, payload={"referenceOrderID": "RA1", "status": "ON_THE_MOON"}, repeat=True)
            with pytest.raises(ta.WaitTimeoutError):
                await tango.orders.wait("RA1", timeout=100, poll=2, max_poll=10)
            with pytest.raises(ta.WaitTimeoutError):
                await tango.orders.wait("RA1", timeout=5, poll=2, max_poll=10)
    first = clock.sleeps[: clock.sleeps.index(max(clock.sleeps)) + 1]
    assert first[:4] == [2, 3, 4.5, 6.75] and max(clock.sleeps) == 10
    assert sum(s for s in clock.sleeps[: len(clock.sleeps)]) == pytest.approx(105)
    unknown = [r for r in caplog.records if "ON_THE_MOON" in r.getMessage()]
    assert len(unknown) == 1  # logged once per client, not per poll


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": -1}, {"timeout": float("nan")}, {"poll": 0}, {"poll": 5, "max_poll": 1}],
)
async def test_bad_wait_arguments(mocked_client: ta.TangoClient, kwargs: dict[str, Any]) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError):
        await mocked_client.orders.wait("RA1", **kwargs)
    assert not m.requests


async def test_errors_while_waiting_propagate(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(f"{BASE}/orders/RA1", status=404, payload={"httpCode": 404, "errors": []})
        with pytest.raises(ta.NotFoundError):
            await mocked_client.orders.wait("RA1")


@pytest.mark.parametrize(
    ("status", "final"),
    [
        ("COMPLETE", True),
        ("FAILED", True),
        ("CANCELLED", True),
        ("PARTIAL", True),
        ("PENDING", False),
        ("QUEUED", False),
        ("ON_HOLD", False),
        (None, False),
        ("complete", False),
    ],
)
def test_final_order_statuses(status: str | None, final: bool) -> None:
    assert ta.is_final_order_status(status) is final
