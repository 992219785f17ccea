"""The generic AsyncPaginator with a fake page source: laziness, lookahead, the stop rules,
the repeated-page guard and date-window splitting with edge dedupe, with no HTTP at all."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tango_async import ResultWindowError, ValidationError
from tango_async._pagination import EARLIEST, AsyncPaginator, Span
from tango_async.pagination import QUERY_FILTERS, WINDOW_FILTERS, OrderListQuery
from tango_async.resources.orders import Orders

START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    key: str
    at: datetime


@dataclass
class Page:
    number: int
    total: int
    items: list[Item]


class Refused(Exception):
    """The fake API's "this window is too long" refusal."""


@dataclass
class Source:
    """The fake list: items stamped in time; a window holds the items within it, its
    edges included (so adjacent windows share the items stamped on their boundary)."""

    items: list[Item]
    requests: list[tuple[Span | None, int]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    delay: float = 0.0
    repeat_from: int | None = None  # page numbers from here answer the page before
    refuse_longer_than: timedelta | None = None
    delivered: int = 0  # items sent, duplicates included

    async def page(self, window: Span | None, number: int, per_page: int) -> Page:
        self.requests.append((window, number))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if (
                self.refuse_longer_than is not None
                and window is not None
                and window[1] - window[0] > self.refuse_longer_than
            ):
                raise Refused
            held = [i for i in self.items if window is None or window[0] <= i.at <= window[1]]
            shown = number
            if self.repeat_from is not None and number >= self.repeat_from:
                shown = self.repeat_from - 1
            chunk = held[shown * per_page : (shown + 1) * per_page]
            self.delivered += len(chunk)
            return Page(number, len(held), chunk)
        finally:
            self.in_flight -= 1


class Fake(AsyncPaginator[Item, Page]):
    route = "GET /things"
    noun = "things"

    def __init__(self, source: Source, **kw: Any) -> None:
        self.source = source
        kw.setdefault("start_date", None)
        kw.setdefault("end_date", None)
        kw.setdefault("elements_per_block", 3)
        kw.setdefault("page", None)
        kw.setdefault("result_window", 10)
        super().__init__(**kw)

    async def _fetch(self, window: Span | None, number: int) -> Page:
        return await self.source.page(window, number, self._per_page)

    def _items(self, page: Page) -> Sequence[Item]:
        return page.items

    def _total(self, page: Page) -> int:
        return page.total

    def _key(self, item: Item) -> Hashable:
        return item.key

    def _with_items(self, page: Page, items: list[Item]) -> Page:
        return Page(page.number, page.total, items)

    def _splits(self, error: Exception, window: Span | None) -> bool:
        return isinstance(error, Refused) and window is not None


def spread(n: int, *, step: timedelta = timedelta(hours=1)) -> list[Item]:
    return [Item(f"i{k:03d}", START + step * k) for k in range(n)]


async def collect(p: Fake) -> list[str]:
    return [i.key async for i in p]


async def test_nothing_is_fetched_before_iteration_and_each_iteration_starts_afresh() -> None:
    source = Source(spread(7))
    p = Fake(source)
    assert source.requests == []
    assert await collect(p) == [f"i{k:03d}" for k in range(7)]
    first = len(source.requests)
    assert first == 3  # 3 + 3 + 1: the short page ends the walk
    assert await collect(p) == [f"i{k:03d}" for k in range(7)]
    assert len(source.requests) == 2 * first


async def test_stop_rules_the_total_and_the_empty_page() -> None:
    source = Source(spread(6))
    assert await collect(Fake(source)) == [f"i{k:03d}" for k in range(6)]
    assert [n for _, n in source.requests] == [0, 1]  # (1 + 1) * 3 >= totalCount 6
    empty = Source([])
    assert await collect(Fake(empty)) == []
    assert [n for _, n in empty.requests] == [0]


async def test_past_the_window_without_a_range_the_whole_history_is_split() -> None:
    # issue 16: no date range is the whole history, windowed by date past the window
    source = Source(spread(25))
    got = await collect(Fake(source))
    assert sorted(got) == [f"i{k:03d}" for k in range(25)] and len(got) == len(set(got))
    assert source.requests[0] == (None, 0)  # first without dates, then in windows
    assert all(w is not None for w, _ in source.requests[1:])
    assert source.requests[1][0] is not None and source.requests[1][0][0] == EARLIEST


async def test_page_past_the_window_without_a_range_is_still_a_result_window_error() -> None:
    source = Source(spread(25))
    with pytest.raises(ResultWindowError, match=r"page=1 cannot be combined with a list of more"):
        await collect(Fake(source, page=1))


async def test_the_arguments_are_checked_at_construction() -> None:
    with pytest.raises(ValidationError) as e:
        Fake(Source([]), concurrency=0)
    assert e.value.field == "concurrency"
    with pytest.raises(ValidationError) as e:
        Fake(Source([]), page=4)  # (4 + 1) * 3 > 10
    assert e.value.field == "page"
    with pytest.raises(ValidationError) as e:
        Fake(Source([]), start_date=START, end_date=START - timedelta(days=1))
    assert e.value.field == "start_date"


async def test_a_repeated_page_ends_the_window_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = Source(spread(9), repeat_from=2)  # page 2 answers page 1 again
    with caplog.at_level(logging.WARNING, logger="tango_async"):
        got = await collect(Fake(source))
    assert got == [f"i{k:03d}" for k in range(6)]
    assert "GET /things returned page 2 again; stopping this window" in caplog.text


async def test_a_large_range_is_split_and_boundary_items_come_once() -> None:
    # 40 items, 5 of them stamped on the same instant in the middle: every split edge
    # that lands on it gives them to two windows, yet each comes once
    items = spread(40, step=timedelta(minutes=1))
    middle = items[20].at
    items += [Item(f"edge{k}", middle) for k in range(5)]
    items.sort(key=lambda i: i.at)
    source = Source(items)
    p = Fake(source, start_date=START, end_date=START + timedelta(hours=1))
    got = await collect(p)
    assert sorted(got) == sorted(i.key for i in items)
    assert len(got) == len(set(got))
    assert len({w for w, _ in source.requests}) > 2  # it was split
    assert source.delivered > len(got)  # on an edge shared by two windows: sent twice


async def test_a_refused_window_is_halved() -> None:
    source = Source(spread(8), refuse_longer_than=timedelta(hours=3))
    p = Fake(source, start_date=START, end_date=START + timedelta(hours=7, minutes=59))
    got = await collect(p)
    assert sorted(got) == [f"i{k:03d}" for k in range(8)]
    assert len(got) == len(set(got))


async def test_more_than_the_window_within_one_millisecond_is_refused() -> None:
    items = [Item(f"same{k}", START) for k in range(12)]
    with pytest.raises(ResultWindowError, match="more than 10 things within one millisecond"):
        await collect(Fake(Source(items), start_date=START, end_date=START))


@pytest.mark.parametrize("concurrency", [2, 4])
async def test_lookahead_gives_the_same_items_with_at_most_n_in_flight(concurrency: int) -> None:
    items = spread(40, step=timedelta(minutes=1))
    rng = {"start_date": START, "end_date": START + timedelta(hours=1)}
    sequential = Source(items, delay=0.001)
    ahead = Source(items, delay=0.001)
    want = await collect(Fake(sequential, **rng))
    got = await collect(Fake(ahead, concurrency=concurrency, **rng))
    assert got == want
    assert sequential.peak == 1
    assert 1 < ahead.peak <= concurrency
    assert sorted(ahead.requests, key=repr) == sorted(sequential.requests, key=repr)


async def test_no_lookahead_before_the_second_page_and_break_cancels_it() -> None:
    source = Source(spread(9), delay=0.001)
    p = Fake(source, concurrency=4)
    pages = p.pages()
    first = await anext(pages)
    assert [i.key for i in first.items] == ["i000", "i001", "i002"]
    assert len(source.requests) == 1  # page 0 only, until the consumer asks again
    second = await anext(pages)
    assert second.number == 1
    await pages.aclose()  # type: ignore[attr-defined]
    assert source.in_flight == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("tango_async: GET")]


def test_the_query_object_names_every_filter_of_orders_list_in_its_order() -> None:
    paging = ("self", "elements_per_block", "page", "concurrency")
    names = [n for n in inspect.signature(Orders.list).parameters if n not in paging]
    assert list(OrderListQuery.__annotations__) == names
    assert set(QUERY_FILTERS) | WINDOW_FILTERS == set(names)
