"""End-to-end tests: a real TangoClient against the local sandbox over loopback sockets."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

import tango_async as ta
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY, order_request

START = datetime(2024, 1, 1, tzinfo=UTC)
CONTRACT = True  # every request and response checked against the OpenAPI description


@pytest.fixture
async def fake() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None, resend_cooldown=0.3, contract=CONTRACT) as server:
        yield server
    assert server.contract_violations == []


def client_for(server: Sandbox, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"retry": FAST_RETRY, "order_rate": 200.0, "resend_cooldown": 0.3}
    options.update(kw)
    return ta.TangoClient(
        server.platform_name, server.platform_key, base_url=server.base_url, **options
    )


def orders_with_ref(server: Sandbox, ref: str) -> list[dict[str, Any]]:
    return [o for o in server.orders.values() if o["externalRefID"] == ref]


# --- creation, pacing, no duplicates -------------------------------------------------------------


async def test_create_and_get_round_trip(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        order = await tango.orders.create(order_request(amount=Decimal("10.10")))
        assert order.created
        assert order.amount_charged is not None
        assert order.amount_charged.value == Decimal("10.10")
        assert order.created_at is not None and order.created_at.tzinfo is not None
        got = await tango.orders.get(order.reference_order_id)
    assert got.reference_order_id == order.reference_order_id
    assert got.external_ref_id == order.external_ref_id
    assert got.reward is not None and got.reward.credential_list
    assert "FAKE-CODE" not in repr(got)


async def test_concurrent_creates_never_closer_than_the_spacing() -> None:
    rate = 10.0  # the server refuses anything under 100 ms apart at arrival
    # A wider margin than the default 5% absorbs scheduling jitter of a loaded CI machine:
    # the claim under test is "no burst, whatever the concurrency", not the margin's size.
    async with (
        Sandbox(contract=CONTRACT, order_rate=rate) as server,
        client_for(server, order_rate=rate, rate_margin=0.25) as tango,
    ):
        orders = await asyncio.gather(*(tango.orders.create(order_request()) for _ in range(20)))
        arrivals = server.arrivals("POST", "/orders", exact=True)
    assert len(orders) == 20 and all(o.created for o in orders)
    assert len(arrivals) == 20  # no 429, no retry
    assert all(r.status == 201 for r in server.requests)
    gaps = [b - a for a, b in pairwise(arrivals)]
    assert min(gaps) >= 1 / rate


@pytest.mark.parametrize("fault", ["500-after-commit", "drop-after-commit"])
async def test_no_duplicate_when_the_reply_is_lost_after_commit(fake: Sandbox, fault: str) -> None:
    fake.inject("POST /orders", fault)
    async with client_for(fake) as tango:
        order = await tango.orders.create(order_request())
    assert order.created is False  # the retry found the order the first attempt made
    assert order.external_ref_id is not None
    assert len(orders_with_ref(fake, order.external_ref_id)) == 1
    assert len(fake.orders) == 1
    sent = [r.json["externalRefID"] for r in fake.requests if r.method == "POST"]
    assert len(sent) == 2 and len(set(sent)) == 1


async def test_many_faults_still_one_order_each(fake: Sandbox) -> None:
    fake.inject("POST /orders", "drop-after-commit", times=3)
    fake.inject("POST /orders", "503", times=2)
    fake.inject("POST /orders", "500-after-commit", times=3)
    fake.inject("POST /orders", "429", times=2, retry_after=0)
    async with client_for(fake, max_retries=8) as tango:
        orders = await asyncio.gather(*(tango.orders.create(order_request()) for _ in range(10)))
    refs = Counter(o["externalRefID"] for o in fake.orders.values())
    assert len(refs) == 10 and set(refs.values()) == {1}
    assert {o.external_ref_id for o in orders} == set(refs)


async def test_409_in_process_then_the_existing_order(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        first = await tango.orders.create(order_request(external_ref_id="ref-409"))
        fake.inject("POST /orders", "409-in-process")
        again = await tango.orders.create(order_request(external_ref_id="ref-409"))
    assert first.created and not again.created
    assert again.reference_order_id == first.reference_order_id
    assert [r.status for r in fake.requests] == [201, 409, 200]


async def test_server_side_429_is_retried_with_the_same_ref() -> None:
    # the server limit is stricter than the client's pacing: 429s happen and are absorbed
    async with (
        Sandbox(contract=CONTRACT, order_rate=20.0) as server,
        client_for(server, order_rate=200.0, max_retries=10) as tango,
    ):
        orders = await asyncio.gather(*(tango.orders.create(order_request()) for _ in range(3)))
    statuses = Counter(r.status for r in server.requests)
    assert statuses[429] >= 1 and statuses[201] == 3
    assert len(server.orders) == 3 and len({o.external_ref_id for o in orders}) == 3


async def test_cancelled_create_spends_no_slot_and_leaves_no_task() -> None:
    async with (
        Sandbox(order_rate=None, contract=CONTRACT) as server,
        client_for(server, order_rate=4.0) as tango,
    ):
        spacing = tango.rate_limiter.spacing  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        first = asyncio.create_task(tango.orders.create(order_request()))
        await asyncio.sleep(0.01)
        cancelled = asyncio.create_task(tango.orders.create(order_request()))
        await asyncio.sleep(0.01)
        third = asyncio.create_task(tango.orders.create(order_request()))
        await first
        start = loop.time()
        cancelled.cancel()
        await third
        waited = loop.time() - start
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        arrivals = server.arrivals("POST", "/orders", exact=True)
    assert len(server.orders) == 2 and len(arrivals) == 2
    assert waited < spacing * 1.5  # the third took the cancelled one's slot
    assert arrivals[1] - arrivals[0] >= 1 / 4.0
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_validation_failure_sends_nothing(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        with pytest.raises(ta.ValidationError) as e:
            await tango.orders.create(order_request(recipient=ta.Recipient(first_name="Ann")))
    assert e.value.field == "recipient.email"
    assert fake.requests == []


# --- errors from a real server --------------------------------------------------------------------


async def test_wrong_key_is_authentication_error(fake: Sandbox) -> None:
    async with ta.TangoClient(fake.platform_name, "wrong-key", base_url=fake.base_url) as tango:
        with pytest.raises(ta.AuthenticationError) as e:
            await tango.orders.get("RA1")
    assert e.value.request_id and e.value.i18n_key == "401.001"
    assert "wrong-key" not in str(e.value) and "wrong-key" not in repr(e.value)


@pytest.mark.parametrize(
    ("fault", "cls", "key"),
    [
        ("502-html", ta.ServerError, None),
        ("empty-500", ta.ServerError, None),
        ("truncated-500", ta.ServerError, None),
        ("503", ta.ServerError, "503.001"),
        ("legacy-error-body", ta.BadRequestError, "400.001"),
        ("404", ta.NotFoundError, None),
    ],
)
async def test_fault_bodies_map_to_typed_errors(
    fake: Sandbox, fault: str, cls: type[ta.APIError], key: str | None
) -> None:
    fake.inject("GET /orders/*", fault, times=10)
    async with client_for(fake, max_retries=1) as tango:
        with pytest.raises(cls) as e:
            await tango.orders.get("RA1")
    if key:
        assert e.value.i18n_key == key


async def test_dropped_connection_on_get_is_retried(fake: Sandbox) -> None:
    (ref,) = fake.seed_orders(1, start=START, step=timedelta(seconds=1))
    fake.inject("GET /orders/*", "drop-before")
    async with client_for(fake) as tango:
        order = await tango.orders.get(ref)
    assert order.reference_order_id == ref


async def test_slow_reply_times_out(fake: Sandbox) -> None:
    fake.inject("GET /orders/*", "slow", times=5, delay=1.0)
    async with client_for(fake, timeout=0.05, max_retries=1) as tango:
        with pytest.raises(ta.APITimeoutError):
            await tango.orders.get("RA1")


async def test_redirect_is_not_followed(fake: Sandbox) -> None:
    fake.inject("GET /orders/*", "redirect", location="http://127.0.0.2:9/steal")
    async with client_for(fake) as tango:
        with pytest.raises(ta.APIError) as e:
            await tango.orders.get("RA1")
    assert e.value.status_code == 302


async def test_closing_leaves_no_unclosed_session_warning(fake: Sandbox) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with client_for(fake) as tango:
            await tango.orders.create(order_request())
        del tango
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]


async def test_one_client_two_event_loops_fails_clearly(fake: Sandbox) -> None:
    tango = client_for(fake)
    await tango.orders.create(order_request())

    def other_loop() -> None:
        async def use() -> None:
            await tango.orders.get("RA1")

        with pytest.raises(ta.ClientClosedError, match="another event loop"):
            asyncio.run(use())

    await asyncio.to_thread(other_loop)
    await tango.close()


# --- resends and the cooldown ------------------------------------------------------------------


async def test_resend_cooldown_without_network_call(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        order = await tango.orders.create(order_request())
        first = await tango.orders.resend(order.reference_order_id, new_email="new@example.com")
        assert first.email == "new@example.com"
        before = len(fake.requests)
        with pytest.raises(ta.ResendCooldownError) as e:
            await tango.orders.resend(order.reference_order_id)
        assert len(fake.requests) == before  # refused locally
        assert 0 < e.value.retry_after <= 0.3
        loop = asyncio.get_running_loop()
        start = loop.time()
        await tango.orders.resend(order.reference_order_id, wait=True)
        assert loop.time() - start >= 0.2
    assert len(fake.resends) == 2


async def test_concurrent_resends_of_one_order_send_one(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        order = await tango.orders.create(order_request())
        results = await asyncio.gather(
            *(tango.orders.resend(order.reference_order_id) for _ in range(5)),
            return_exceptions=True,
        )
    assert sum(isinstance(r, ta.Resend) for r in results) == 1
    assert sum(isinstance(r, ta.ResendCooldownError) for r in results) == 4
    assert len(fake.resends) == 1


async def test_server_cooldown_403_005_maps_and_refreshes(fake: Sandbox) -> None:
    fake.resend_cooldown = 5.0  # the server remembers longer than this client
    async with client_for(fake, resend_cooldown=0.05) as tango:
        order = await tango.orders.create(order_request())
        await tango.orders.resend(order.reference_order_id)
        await asyncio.sleep(0.06)
        with pytest.raises(ta.ResendCooldownError) as e:
            await tango.orders.resend(order.reference_order_id)
        assert isinstance(e.value.__cause__, ta.PermissionDeniedError)
        assert e.value.__cause__.i18n_key == "403.005"
        before = len(fake.requests)
        with pytest.raises(ta.ResendCooldownError):  # refreshed: refused locally now
            await tango.orders.resend(order.reference_order_id)
        assert len(fake.requests) == before


async def test_resend_of_undelivered_order_is_403_003(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        order = await tango.orders.create(
            order_request(delivery_method=ta.DeliveryMethod.NONE, recipient=None)
        )
        with pytest.raises(ta.PermissionDeniedError) as e:
            await tango.orders.resend(order.reference_order_id)
        assert e.value.i18n_key == "403.003"
        # a definite refusal does not start the cooldown
        with pytest.raises(ta.PermissionDeniedError):
            await tango.orders.resend(order.reference_order_id)


async def test_resend_lost_after_sending_starts_the_cooldown(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        order = await tango.orders.create(order_request())
        fake.inject("POST /orders/*/resends", "drop-after-commit")
        with pytest.raises(ta.APIConnectionError):
            await tango.orders.resend(order.reference_order_id)
        with pytest.raises(ta.ResendCooldownError):
            await tango.orders.resend(order.reference_order_id)
    assert len(fake.resends) == 1  # delivered once, never retried


async def test_line_item_resend_with_reason(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        order = await tango.orders.create(order_request())
        assert order.reference_line_item_id
        r = await tango.line_items.resend(
            order.reference_line_item_id, reason_code="NOT_RECEIVED", new_email="x@example.com"
        )
        assert r.reason_code == "NOT_RECEIVED" and r.email == "x@example.com"
        with pytest.raises(ta.ResendCooldownError):
            await tango.line_items.resend(order.reference_line_item_id)
    assert fake.resends[0]["request"] == {"newEmail": "x@example.com", "reasonCode": "NOT_RECEIVED"}


# --- history ------------------------------------------------------------------------------------


async def test_history_pages_short_last_and_empty(fake: Sandbox) -> None:
    ids = fake.seed_orders(250, start=START, step=timedelta(minutes=1))
    async with client_for(fake) as tango:
        pages = [p async for p in tango.orders.list().pages()]
        assert [len(p.orders) for p in pages] == [100, 100, 50]
        assert [p.number for p in pages] == [0, 1, 2]
        assert pages[0].total_count == 250
        seen = [o.reference_order_id async for o in tango.orders.list()]
        assert sorted(seen) == sorted(ids)
        from_page = [o async for o in tango.orders.list(page=1, elements_per_block=100)]
        assert len(from_page) == 150
        nothing = [o async for o in tango.orders.list(customer_identifier="nobody-here")]
        assert nothing == []
        exact = [o async for o in tango.orders.list(elements_per_block=50)]
        assert len(exact) == 250
    # exact multiple of the page size: stops on totalCount, no extra empty request
    assert fake.requests[-1].query["page"] == "4"


async def test_history_is_lazy(fake: Sandbox) -> None:
    fake.seed_orders(300, start=START, step=timedelta(minutes=1))
    async with client_for(fake) as tango:
        history = tango.orders.list()
        assert fake.requests == []
        async for _ in history:
            break
    assert len(fake.requests) == 1


async def test_history_never_loops_on_a_repeated_page(fake: Sandbox) -> None:
    fake.seed_orders(300, start=START, step=timedelta(minutes=1))
    fake.inject("GET /orders", "repeat-page", times=100)
    async with client_for(fake) as tango:
        got = [o async for o in tango.orders.list()]
    assert len(got) == 100
    assert len(fake.requests) == 2


async def test_history_past_the_window_with_a_date_range() -> None:
    window = 1_000  # the same mechanism as 10,000, ten times smaller
    async with Sandbox(order_rate=None, contract=CONTRACT, max_window=window) as server:
        ids = server.seed_orders(3_500, start=START, step=timedelta(seconds=7))
        # a burst of orders at one instant, and one exactly on a likely split boundary
        ids += server.seed_orders(40, start=START + timedelta(hours=3), step=timedelta(0))
        async with client_for(server, result_window=window) as tango:
            got = [
                o.reference_order_id
                async for o in tango.orders.list(
                    start_date=START, end_date=START + timedelta(days=1)
                )
            ]
        assert all(r.status == 200 for r in server.requests)
    counts = Counter(got)
    assert set(counts.values()) == {1}
    assert set(got) == set(ids)


async def test_history_past_the_real_10k_window() -> None:
    async with Sandbox(order_rate=None, contract=CONTRACT) as server:
        ids = server.seed_orders(10_150, start=START, step=timedelta(seconds=30))
        async with client_for(server) as tango:
            got = [
                o.reference_order_id
                async for o in tango.orders.list(
                    start_date=date(2024, 1, 1), end_date=date(2024, 1, 5)
                )
            ]
        assert all(r.status == 200 for r in server.requests)
        assert all(int(r.query["page"]) * 100 + 100 <= 10_000 for r in server.requests)
    assert len(got) == len(ids) == len(set(got))


async def test_history_without_range_streams_past_the_window() -> None:
    """Issue 16: without dates the whole history is yielded, split by date past the
    window: every order once, every request answered 200."""
    async with Sandbox(order_rate=None, contract=CONTRACT, max_window=500) as server:
        ids = server.seed_orders(700, start=START, step=timedelta(seconds=1))
        async with client_for(server, result_window=500) as tango:
            got = [o.reference_order_id async for o in tango.orders.list()]
    assert sorted(got) == sorted(ids) and len(set(got)) == 700
    assert all(r.status == 200 for r in server.requests)


async def test_history_splits_a_period_the_api_refuses_as_too_long() -> None:
    async with Sandbox(order_rate=None, contract=CONTRACT, max_range_days=10) as server:
        ids = server.seed_orders(400, start=START, step=timedelta(hours=2))
        async with client_for(server) as tango:
            got = [
                o.reference_order_id
                async for o in tango.orders.list(
                    start_date=START, end_date=START + timedelta(days=40)
                )
            ]
    assert sorted(got) == sorted(ids)


async def test_history_filters_and_dates_on_the_wire(fake: Sandbox) -> None:
    fake.seed_orders(48, start=START, step=timedelta(hours=1))
    async with client_for(fake) as tango:
        day = [
            o
            async for o in tango.orders.list(start_date=date(2024, 1, 1), end_date=date(2024, 1, 1))
        ]
        assert len(day) == 24  # a date as end_date includes that whole day
        [
            o
            async for o in tango.orders.list(
                external_ref_id="seed-1",
                status=ta.OrderStatus.COMPLETE,
                send_email=True,
                min_amount=Decimal("1.50"),
                max_amount=20,
            )
        ]
    q = fake.requests[-1].query
    assert q["externalRefID"] == "seed-1" and q["status"] == "COMPLETE"
    assert q["sendEmail"] == "true" and q["minAmount"] == "1.5" and q["maxAmount"] == "20"
    assert q["elementsPerBlock"] == "100"


async def test_history_bad_filters_fail_before_any_request(fake: Sandbox) -> None:
    async with client_for(fake) as tango:
        for kw in (
            {"elements_per_block": 101},
            {"elements_per_block": 0},
            {"page": -1},
            {"start_date": datetime(2024, 1, 1)},
            {"start_date": "yesterday"},
            {"start_date": date(2024, 2, 1), "end_date": date(2024, 1, 1)},
            {"currency_code": "DOLLARS"},
            {"min_amount": 5, "max_amount": 1},
        ):
            with pytest.raises(ta.ValidationError):
                tango.orders.list(**kw)
    assert fake.requests == []


async def test_cancel_after_sending_logs_the_ref(
    fake: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject("POST /orders", "slow", delay=5.0)
    async with client_for(fake) as tango:
        task = asyncio.create_task(tango.orders.create(order_request(external_ref_id="ref-c")))
        while not fake.requests:  # noqa: ASYNC110 (polling the fake, no event to wait on)
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "external_ref_id=ref-c" in caplog.text


async def test_error_request_id_is_logged(fake: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="tango_async")
    async with client_for(fake) as tango:
        with pytest.raises(ta.NotFoundError) as e:
            await tango.orders.get("RA-missing")
    assert e.value.request_id
    assert f"request_id={e.value.request_id}" in caplog.text
