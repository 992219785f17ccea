"""orders.list(concurrency=N): pages fetched ahead, bounded, cancelled when not needed, and
the very same orders in the very same order as the sequential walk."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tango_async as ta
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = (START, START + timedelta(days=1))
PREFETCH = "tango_async: GET /orders"  # the name of every prefetch task


def client_for(server: Sandbox, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"retry": FAST_RETRY, "order_rate": 200.0}
    options.update(kw)
    return ta.TangoClient(
        server.platform_name, server.platform_key, base_url=server.base_url, **options
    )


class Wire:
    """Wraps a client's ``transport.request``: counts the GETs started, in flight (and
    their peak) and cancelled, and records (startDate, endDate, page) of each. Requests for
    a page number in ``held`` wait for ``release`` (never set: until cancelled); for one
    in ``failing`` they raise that error instead of sending."""

    def __init__(self, tango: ta.TangoClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = 0
        self.in_flight = 0
        self.peak = 0
        self.cancelled = 0
        self.pages: list[tuple[str | None, str | None, int]] = []
        self.held: set[int] = set()
        self.failing: dict[int, Exception] = {}
        self.release = asyncio.Event()
        transport = tango._transport
        # the class's own request, not an earlier Wire's
        real: Callable[..., Awaitable[Any]] = functools.partial(type(transport).request, transport)

        async def request(method: str, path: str, **kw: Any) -> Any:
            query = dict(kw.get("params") or ())
            page = int(query.get("page", 0))
            self.started += 1
            self.pages.append((query.get("startDate"), query.get("endDate"), page))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                if page in self.held:
                    await self.release.wait()
                if page in self.failing:
                    raise self.failing[page]
                return await real(method, path, **kw)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            finally:
                self.in_flight -= 1

        monkeypatch.setattr(transport, "request", request)


def prefetches() -> list[asyncio.Task[Any]]:
    """Prefetch tasks not finished yet."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(PREFETCH) and not t.done()]


async def settle() -> None:
    """Let the loop run until no prefetch task is left (a closed iterator cancels them;
    one dropped by ``break`` is closed by the loop's async-generator finalizer)."""
    for _ in range(1000):
        if not prefetches():
            return
        await asyncio.sleep(0)


def no_task_warnings(caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()
    bad = [
        r.getMessage()
        for r in caplog.records
        if r.name == "asyncio"
        and ("destroyed but it is pending" in r.getMessage() or "never retrieved" in r.getMessage())
    ]
    assert bad == []


async def ids_of(tango: ta.TangoClient, **kw: Any) -> list[str]:
    return [o.reference_order_id async for o in tango.orders.list(**kw)]


@pytest.fixture
async def windowed() -> AsyncIterator[tuple[Sandbox, list[str]]]:
    """3,540 orders over one day behind a 1,000-result window, so the day is split: a
    burst of 40 at one instant, and orders on likely window boundaries."""
    async with Sandbox(order_rate=None, max_window=1_000) as server:
        ids = server.seed_orders(3_500, start=START, step=timedelta(seconds=7))
        ids += server.seed_orders(40, start=START + timedelta(hours=3), step=timedelta(0))
        yield server, ids


# --- the same orders, in the same order --------------------------------------------------------


async def test_concurrent_and_sequential_exports_are_identical(
    windowed: tuple[Sandbox, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    server, ids = windowed
    async with client_for(server, result_window=1_000) as tango:
        sequential = await ids_of(tango, start_date=DAY[0], end_date=DAY[1], concurrency=1)
        sent_sequential = [(r.query.get("startDate"), r.query["page"]) for r in server.requests]
        server.requests.clear()
        default = await ids_of(tango, start_date=DAY[0], end_date=DAY[1])
        assert [(r.query.get("startDate"), r.query["page"]) for r in server.requests] == (
            sent_sequential
        )  # None is 1: the same requests in the same order
        for n in (2, 4, 16):
            server.requests.clear()
            concurrent = await ids_of(tango, start_date=DAY[0], end_date=DAY[1], concurrency=n)
            assert concurrent == sequential, n
            sent = [(r.query.get("startDate"), r.query["page"]) for r in server.requests]
            # the history does not change: every page ahead is one the walk takes
            assert Counter(sent) == Counter(sent_sequential), n
    assert default == sequential
    assert len(sequential) == len(ids) and set(sequential) == set(ids)  # exactly once
    assert set(Counter(sequential).values()) == {1}
    assert len({start for start, _ in sent_sequential}) > 3  # the day was split
    assert all(r.status == 200 for r in server.requests)
    no_task_warnings(caplog)


async def test_pages_are_the_same_pages(windowed: tuple[Sandbox, list[str]]) -> None:
    server, _ = windowed

    def summary(p: ta.OrderPage) -> tuple[int, int, int, list[str]]:
        return p.number, p.total_count, p.result_count, [o.reference_order_id for o in p.orders]

    async with client_for(server, result_window=1_000) as tango:
        history = tango.orders.list(start_date=DAY[0], end_date=DAY[1], elements_per_block=50)
        one = [summary(p) async for p in history.pages()]
        history = tango.orders.list(
            start_date=DAY[0], end_date=DAY[1], elements_per_block=50, concurrency=5
        )
        assert history.concurrency == 5
        five = [summary(p) async for p in history.pages()]
    assert five == one and len(one) > 20


async def test_a_split_found_while_pages_are_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's window (500) is smaller than the client expects (10,000): the total fits,
    but page 5 is refused (400.021) while pages 6.. are already on their way. They are
    thrown away, the window is halved, and every order still comes once, in order."""
    async with Sandbox(order_rate=None, max_window=500) as server:
        ids = server.seed_orders(3_000, start=START, step=timedelta(seconds=11))
        async with client_for(server) as tango:
            wire = Wire(tango, monkeypatch)
            sequential = await ids_of(tango, start_date=DAY[0], end_date=DAY[1])
            assert max(page for *_, page in wire.pages) == 5
            assert any(r.status == 400 for r in server.requests)
            wire = Wire(tango, monkeypatch)
            concurrent = await ids_of(tango, start_date=DAY[0], end_date=DAY[1], concurrency=4)
            assert max(page for *_, page in wire.pages) > 5  # started ahead, then dropped
            assert prefetches() == []
    assert concurrent == sequential
    assert sorted(concurrent) == sorted(ids) and len(set(concurrent)) == len(ids)


async def test_a_period_too_long_splits_the_same_way() -> None:
    async with Sandbox(order_rate=None, max_range_days=10) as server:
        ids = server.seed_orders(400, start=START, step=timedelta(hours=2))
        async with client_for(server) as tango:
            span = {"start_date": START, "end_date": START + timedelta(days=40)}
            kw: dict[str, Any] = {**span, "elements_per_block": 20}
            sequential = await ids_of(tango, **kw)
            concurrent = await ids_of(tango, **kw, concurrency=3)
    assert concurrent == sequential and sorted(sequential) == sorted(ids)


async def test_without_a_range_the_whole_history_is_windowed() -> None:
    # issue 16: past the window without dates, the history is split by date, not refused
    async with Sandbox(order_rate=None, max_window=500) as server:
        ids = server.seed_orders(700, start=START, step=timedelta(seconds=1))
        async with client_for(server, result_window=500) as tango:
            sequential = await ids_of(tango)
            concurrent = await ids_of(tango, concurrency=4)
            assert prefetches() == []
    # (each walk splits the history up to its own "now": the windows, hence the order
    # across them, may differ between two walks; each order comes once in both)
    assert sorted(concurrent) == sorted(sequential) == sorted(ids)
    assert len(set(concurrent)) == len(concurrent)


async def test_page_without_a_range_past_the_window_still_raises() -> None:
    async with Sandbox(order_rate=None, max_window=500) as server:
        server.seed_orders(700, start=START, step=timedelta(seconds=1))
        async with client_for(server, result_window=500) as tango:
            got: list[ta.Order] = []
            with pytest.raises(ta.ResultWindowError, match="page=1 cannot be combined"):
                async for o in tango.orders.list(page=1, concurrency=4):
                    got.append(o)
            assert prefetches() == []
    assert len(got) == 400  # pages 1 to 4 of 100: page 5 would lie past the window


async def test_a_repeated_page_stops_the_window_as_before() -> None:
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(300, start=START, step=timedelta(minutes=1))
        server.inject("GET /orders", "repeat-page", times=100)
        async with client_for(server) as tango:
            got = await ids_of(tango, concurrency=4)
    assert len(got) == 100 == len(set(got))


# --- bounded ---------------------------------------------------------------------------------


async def test_at_most_concurrency_requests_in_flight(
    windowed: tuple[Sandbox, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ids = windowed
    async with client_for(server, result_window=1_000) as tango:
        for n in (1, 3, 8):
            wire = Wire(tango, monkeypatch)
            got = await ids_of(tango, start_date=DAY[0], end_date=DAY[1], concurrency=n)
            assert len(got) == len(ids)
            # never passed; and reached: once a window's first page is back, its later
            # pages and the next window's first page start together (up to 5 here: the
            # windows hold up to 6 pages, many just one, being empty)
            assert min(n, 5) <= wire.peak <= n
            assert wire.in_flight == 0


async def test_at_most_concurrency_pages_ahead_of_a_slow_consumer(
    windowed: tuple[Sandbox, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = windowed
    async with client_for(server, result_window=1_000) as tango:
        wire = Wire(tango, monkeypatch)
        taken = 0
        history = tango.orders.list(start_date=DAY[0], end_date=DAY[1], concurrency=4)
        async with history_pages(history) as pages:
            async for _ in pages:
                taken += 1
                await asyncio.sleep(0.01)  # every fetch ahead has time to finish
                # taken by the walk: these pages, and the day's first one, which is not
                # yielded (it shows the day must be split)
                assert wire.started <= 1 + taken + 4
                if taken == 12:
                    break
        assert prefetches() == []
        assert wire.started <= 1 + 12 + 4


async def test_a_consumer_that_stops_after_the_first_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(1_000, start=START, step=timedelta(seconds=7))
        async with client_for(server) as tango:
            wire = Wire(tango, monkeypatch)
            history = tango.orders.list(start_date=DAY[0], end_date=DAY[1], concurrency=4)
            assert wire.started == 0  # lazy: nothing before iteration
            async with history_pages(history) as pages:
                async for page in pages:
                    assert len(page.orders) == 100
                    break
            await asyncio.sleep(0.05)
            assert wire.started <= 1 + 4
            assert wire.started == 1  # nothing is fetched ahead before the second page


def history_pages(history: ta.OrderHistory) -> Any:
    return contextlib.aclosing(history.pages())


# --- cancelled when not needed -------------------------------------------------------------------


async def test_break_cancels_the_fetches_ahead(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(1_000, start=START, step=timedelta(seconds=7))
        async with client_for(server) as tango:
            wire = Wire(tango, monkeypatch)
            wire.held = {2, 3, 4, 5, 6}
            count = 0
            async for _ in tango.orders.list(start_date=DAY[0], end_date=DAY[1], concurrency=4):
                count += 1
                if count == 150:  # in page 1, with pages 2-4 held in flight
                    assert wire.in_flight == 3
                    break
            await settle()
            assert prefetches() == []
            assert wire.in_flight == 0 and wire.cancelled == 3
            assert wire.started == 5
    no_task_warnings(caplog)


async def test_aclose_cancels_and_awaits_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(1_000, start=START, step=timedelta(seconds=7))
        async with client_for(server) as tango:
            for pages in (False, True):
                wire = Wire(tango, monkeypatch)
                wire.held = {2, 3, 4, 5, 6}
                history = tango.orders.list(start_date=DAY[0], end_date=DAY[1], concurrency=4)
                it: Any = history.pages() if pages else aiter(history)
                for _ in range(2 if pages else 101):  # into page 1
                    await anext(it)
                assert wire.in_flight == 3
                await it.aclose()
                assert prefetches() == [] and wire.in_flight == 0 and wire.cancelled == 3


async def test_cancelling_the_consumer_cancels_the_fetches(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(1_000, start=START, step=timedelta(seconds=7))
        async with client_for(server) as tango:
            wire = Wire(tango, monkeypatch)
            wire.held = set(range(1, 10))
            consumer = asyncio.create_task(
                ids_of(tango, start_date=DAY[0], end_date=DAY[1], concurrency=4)
            )
            for _ in range(10_000):
                if wire.in_flight == 4:
                    break
                await asyncio.sleep(0.001)
            assert wire.in_flight == 4
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
            assert prefetches() == [] and wire.in_flight == 0 and wire.cancelled == 4


# --- errors ------------------------------------------------------------------------------------


def server_error() -> ta.ServerError:
    return ta.ServerError("GET /orders: HTTP 500", status_code=500, path="/orders")


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_an_error_on_page_3_comes_after_pages_1_and_2(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, concurrency: int
) -> None:
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(1_000, start=START, step=timedelta(seconds=7))
        async with client_for(server) as tango:
            full = await ids_of(tango, start_date=DAY[0], end_date=DAY[1])
            wire = Wire(tango, monkeypatch)
            wire.failing = {2: server_error()}
            wire.held = {3, 4, 5}  # still in flight when page 3 (number 2) fails
            got: list[str] = []
            history = tango.orders.list(start_date=DAY[0], end_date=DAY[1], concurrency=concurrency)
            with pytest.raises(ta.ServerError):
                async for o in history:
                    got.append(o.reference_order_id)
            assert prefetches() == [] and wire.in_flight == 0
            assert wire.cancelled == (2 if concurrency == 4 else 0)
    assert got == full[:200]
    no_task_warnings(caplog)


async def test_an_error_on_a_page_ahead_that_is_never_needed_is_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Page 1 comes back as page 0 again, so the walk stops there; page 2, fetched ahead,
    failed, but the walk never takes it: its error is not raised (nor logged)."""
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(500, start=START, step=timedelta(seconds=7))
        server.inject("GET /orders", "repeat-page", times=2)  # pages 0 and 1: 3, 4 are held
        async with client_for(server) as tango:
            wire = Wire(tango, monkeypatch)
            wire.failing = {2: server_error()}
            wire.held = {3, 4}
            got = await ids_of(tango, start_date=DAY[0], end_date=DAY[1], concurrency=4)
            assert prefetches() == [] and wire.cancelled == 2
    assert len(got) == 100
    assert [page for *_, page in wire.pages] == [0, 1, 2, 3, 4]
    no_task_warnings(caplog)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 17, 1000, True, 2.0, "4"])
async def test_concurrency_is_checked_at_call_time(value: Any) -> None:
    async with Sandbox(order_rate=None) as server, client_for(server) as tango:
        with pytest.raises(ta.ValidationError) as e:
            tango.orders.list(start_date=DAY[0], end_date=DAY[1], concurrency=value)
        assert e.value.field == "concurrency"
    assert server.requests == []


@pytest.mark.parametrize(("value", "expected"), [(None, 1), (1, 1), (7, 7), (16, 16)])
async def test_concurrency_accepted(value: int | None, expected: int) -> None:
    async with Sandbox(order_rate=None) as server, client_for(server) as tango:
        history = tango.orders.list(concurrency=value)
        assert history.concurrency == expected
        assert f"concurrency={expected}" in repr(history)
    assert server.requests == []
