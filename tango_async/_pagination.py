"""A lazy async paginator over a page-numbered list that sees past the API's result window.

Tango pages through at most ``result_window`` (10,000) results of one query.
:class:`AsyncPaginator` is typed over the item (an ``Order``) and the page (an
``OrderPage``); a list endpoint subclasses it and says how to fetch page N of a date
window, what a page holds and what names an item (``GET /orders`` is
:class:`tango_async.pagination.OrderHistory`). The paginator does the rest, the same for
every list:

- **Laziness**: nothing is fetched until iteration starts; each iteration starts afresh.
- **Stop rules**: a window ends at an empty or short page or at its ``totalCount``; a
  first page with a ``totalCount`` past the window, or a next page that would lie past
  it, splits a date window instead.
- **The whole history**: without a date range the first request goes without dates
  (a list within the window is paged through as it is); when the list turns out larger
  than the window, the walk splits the whole history, :data:`EARLIEST` to a day past
  the client's clock when the split is made (:data:`HISTORY_MARGIN`, for a server
  clock ahead of the client's), into date windows as for a range. Items already
  yielded before the split are not yielded again. ResultWindowError remains only where
  no split is possible: ``page=`` beyond the first page of a list larger than the
  window, or more than the window within one millisecond.
- **Page numbers and totals**: :meth:`AsyncPaginator.pages` numbers the pages it yields
  in one sequence across the date windows (the first is ``page``, 0 by default, and
  each next one one more), not the API's number within the window; and gives every
  page the ``totalCount`` of the whole query (history or range) as the API counted it
  on the walk's first answer, not the window's. Where the API never counted the whole
  query (it refused the range as too long, 422.043, before giving a count), a page
  carries the count of the window it came from. Either figure is the API's when it was
  asked: items created or removed during the walk can make it differ from the number
  yielded.
- **The repeated-page guard**: a page holding only items already seen in its window
  (the API answered the same page again) ends that window with a warning.
- **Date-window splitting with edge dedupe**: given a date range, a result too large
  for one window is split into date windows small enough to page through whole (and a
  window the API refuses, :meth:`AsyncPaginator._splits`, is halved). Adjacent windows
  share their boundary instant, so an item stamped exactly there can come back twice:
  it is yielded once, by :meth:`AsyncPaginator._key`. Memory stays bounded: only the
  keys of the current and the previous window are kept.
- **Lookahead**: with ``concurrency`` N > 1 pages are fetched ahead, at most N at a
  time. The walk itself is unchanged and sequential: it takes the pages in the same
  order and decides splits, stops and duplicates on the same pages, so it yields the
  same items in the same order as with N = 1. Ahead of it run the requests it is going
  to make next, as far as the pages already seen tell: once a page gives
  ``totalCount``, the window's later pages, then the next window's first page, then
  that window's later pages once its first is back. At most N fetches exist at any
  time, in flight or fetched and not yet taken, so memory stays bounded too. A
  fetched-ahead page the walk turns out not to need (the list changed under it, a page
  came back twice, the API refused a page mid-window) is cancelled and thrown away;
  otherwise the requests are exactly those of the sequential walk, only sooner. A
  window's length is known only from its first page, so a run of one-page windows
  (short periods after halving) gains little. Nothing is fetched ahead before the
  consumer asks for the second page; closing the iterator (``aclose()``, ``break`` and
  garbage collection, an error, a cancellation) cancels every fetch ahead and waits for
  it to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import ClassVar, Generic, TypeVar

from ._constants import MAX_ELEMENTS_PER_BLOCK
from ._exceptions import ResultWindowError, ValidationError
from ._validation import check_int, format_query_datetime, to_rfc3339

__all__ = [
    "DEFAULT_CONCURRENCY",
    "EARLIEST",
    "HISTORY_MARGIN",
    "MAX_CONCURRENCY",
    "AsyncPaginator",
    "CursorPaginator",
    "Span",
]

log = logging.getLogger("tango_async")

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before any RaaS v2 order; lower bound of a range
# the whole history ends this far past the client's clock (a server clock ahead of it)
HISTORY_MARGIN = timedelta(days=1)
_MS = timedelta(milliseconds=1)
DEFAULT_CONCURRENCY = 1  # sequential unless asked: see Orders.list for why
MAX_CONCURRENCY = 16

Span = tuple[datetime, datetime]

ItemT = TypeVar("ItemT")
PageT = TypeVar("PageT")


class AsyncPaginator(ABC, Generic[ItemT, PageT]):
    """Iterate it for items, or :meth:`pages` for pages (see the module docstring).

    A list endpoint subclasses it: ``route`` names it in logs, errors and prefetch task
    names; :meth:`_fetch` gets one page; :meth:`_items`, :meth:`_total`, :meth:`_key` and
    :meth:`_with_items` read and rebuild a page; :meth:`_splits` says which refusals
    mean "split this window". The arguments are checked here, in this order, each a
    ValidationError naming it: ``concurrency`` (1 to 16; None means 1), ``start_date``
    and ``end_date`` (a date, an aware datetime or an RFC 3339 string; not start after
    end), ``elements_per_block`` (1 to ``max_per_page``; None means ``max_per_page``),
    ``page`` (the page to start from; it must lie within ``result_window``).
    """

    route: ClassVar[str]  # e.g. "GET /orders"
    noun: ClassVar[str] = "results"  # what the items are called in errors: "orders"

    def __init__(
        self,
        *,
        start_date: object,
        end_date: object,
        elements_per_block: int | None,
        page: int | None,
        result_window: int,
        concurrency: int | None = None,
        max_per_page: int = MAX_ELEMENTS_PER_BLOCK,
    ) -> None:
        self._concurrency = (
            check_int(concurrency, "concurrency", lo=1, hi=MAX_CONCURRENCY)
            if concurrency is not None
            else DEFAULT_CONCURRENCY
        )
        self._start = (
            format_query_datetime(start_date, "start_date")[1] if start_date is not None else None
        )
        self._end = (
            format_query_datetime(end_date, "end_date", end=True)[1]
            if end_date is not None
            else None
        )
        if self._start is not None and self._end is not None and self._start > self._end:
            raise ValidationError("start_date", "must not be after end_date")
        self._per_page = (
            check_int(elements_per_block, "elements_per_block", lo=1, hi=max_per_page)
            if elements_per_block is not None
            else max_per_page
        )
        self._window = result_window
        # (bounded first: a page of 10**5000 cannot even be shown in the error)
        self._first_page = (
            check_int(page, "page", lo=0, hi=result_window) if page is not None else 0
        )
        if (self._first_page + 1) * self._per_page > self._window:
            raise ValidationError(
                "page",
                f"page {self._first_page} lies beyond the API's {self._window}-result window",
            )

    # --- what a list endpoint supplies ---------------------------------------------------

    @abstractmethod
    async def _fetch(self, window: Span | None, number: int) -> PageT:
        """Page ``number`` (``self._per_page`` items each) of ``window`` (None: no range)."""

    @abstractmethod
    def _items(self, page: PageT) -> Sequence[ItemT]:
        """The items of ``page``."""

    @abstractmethod
    def _total(self, page: PageT) -> int:
        """The ``totalCount`` of ``page``'s query (inferred by :meth:`_fetch` if absent)."""

    @abstractmethod
    def _key(self, item: ItemT) -> Hashable:
        """What names ``item`` across pages and windows (an order's referenceOrderID)."""

    @abstractmethod
    def _with_items(self, page: PageT, items: list[ItemT]) -> PageT:
        """``page`` holding only ``items`` (those not yielded before)."""

    def _splits(self, error: Exception, window: Span | None) -> bool:
        """Whether ``error``, raised fetching a page of ``window``, means the window must
        be split in two (without a window: the whole history is split); by default none."""
        return False

    def _stamped(self, page: PageT, number: int, total: int) -> PageT:
        """``page`` as :meth:`pages` yields it: numbered ``number`` in the walk's one
        sequence, with ``total`` the whole query's count (see the module docstring). By
        default ``page`` unchanged (a list whose pages carry no such figures)."""
        return page

    def _time(self, item: ItemT) -> datetime | None:
        """When ``item`` was created (None: not known), which a date window selects it by;
        by default not known."""
        return None

    def _history(self, latest: datetime | None = None) -> Span:
        """The span the whole history is split in when it exceeds the result window: from
        :data:`EARLIEST` to :data:`HISTORY_MARGIN` past the later of the client's clock and
        ``latest``, the newest creation time among the items the walk has seen (a server
        clock further ahead than the margin: its newest items are still in the span)."""
        now = datetime.now(UTC)
        if latest is not None and latest.tzinfo is not None and latest > now:
            now = latest
        return (EARLIEST, now + HISTORY_MARGIN)

    # --- the walk --------------------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """Pages fetched at most at a time, in flight or waiting to be consumed (1: none ahead)."""
        return self._concurrency

    def __aiter__(self) -> AsyncIterator[ItemT]:
        return self._all_items()

    async def _all_items(self) -> AsyncGenerator[ItemT, None]:
        # aclosing: closing this iterator closes the pages at once (and their prefetches)
        async with contextlib.aclosing(self._pages()) as pages:
            async for page in pages:
                for item in self._items(page):
                    yield item

    def pages(self) -> AsyncIterator[PageT]:
        """The pages of the result; items already yielded are left out (a page left with
        none is skipped). Numbered in one sequence across the date windows, each with the
        whole query's count (see the module docstring). Nothing is fetched before
        iteration; errors as for the items."""
        return self._pages()

    def _after(self, window: _Window, number: int, count: int, total: int) -> _Next:
        """What the walk does after page ``number`` of ``window`` held ``count`` items of
        ``total``: the one rule :meth:`_pages` walks by and the prefetcher predicts with."""
        first = number == window.start
        if first and total > self._window and (window.span is not None or not window.start):
            return _Next.SPLIT
        if not count or count < self._per_page or (number + 1) * self._per_page >= total:
            return _Next.WINDOW
        if (number + 2) * self._per_page > self._window:
            return _Next.SPLIT
        return _Next.PAGE

    async def _pages(self) -> AsyncGenerator[PageT, None]:
        ranged = self._start is not None or self._end is not None
        root: Span | None = None
        if ranged:
            root = (self._start or EARLIEST, self._end or datetime.now(UTC))
        ahead = _Prefetch(self) if self._concurrency > 1 else None
        window_ids = itertools.count(1)
        # Each entry: a window to page through and the keys it must not yield again.
        stack = [_Window(0, root, set(), self._first_page)]
        previous: set[Hashable] = set()
        sequence = self._first_page  # the number of the next page yielded
        whole: int | None = None  # the whole query's count: the walk's first answer's
        latest: datetime | None = None  # the newest item seen without a window
        yielded = 0  # items yielded (a split history's count checked against ``whole``)
        history: Span | None = None  # the span the whole history was split in, if it was
        try:
            while stack:
                entry = stack.pop()
                window, inherited = entry.span, entry.inherited
                exclude = previous | inherited if inherited else previous
                seen: set[Hashable] = set()
                number = started_at = entry.start
                total: int | None = None  # of the last page taken in this window
                split_into = 0
                low: int | None = None  # the least count of a page of this window
                while True:
                    try:
                        if ahead is None:
                            page = await self._fetch(window, number)
                        else:
                            page = await ahead.take(entry, number, total, stack)
                    except Exception as e:
                        if not self._splits(e, window):
                            raise
                        split_into = 2
                        break
                    total = self._total(page)
                    if whole is None and entry.id == 0 and number == started_at:
                        whole = total
                    items = self._items(page)
                    if window is None:  # (a server clock ahead: the history's end follows)
                        for item in items:
                            when = self._time(item)
                            if when is not None and (latest is None or when > latest):
                                latest = when
                    if total > self._window and not seen and (window is not None or not started_at):
                        split_into = math.ceil(total / (self._window / 2))
                        break
                    keys = [self._key(i) for i in items]
                    # A page of items all seen is the API answering the same page again,
                    # unless the list grew during the walk of this window: items created
                    # meanwhile push the rest down (a newest-first list), by a page or
                    # more, and stopping there would lose every later page. (Pages are
                    # fetched ahead with ``concurrency``: not in the order they are taken.)
                    grew = low is not None and total > low
                    low = total if low is None else min(low, total)
                    repeated = bool(keys) and all(k in seen for k in keys) and not grew
                    fresh = [
                        item
                        for item, k in zip(items, keys, strict=True)
                        if k not in seen and k not in exclude
                    ]
                    seen.update(keys)
                    if fresh:
                        counted = total if whole is None else whole
                        yield self._stamped(self._with_items(page, fresh), sequence, counted)
                        sequence += 1
                        yielded += len(fresh)
                    if repeated:
                        log.warning(
                            "%s returned page %d again; stopping this window", self.route, number
                        )
                        break
                    # (_after's first test, a first page past the window, was made above)
                    step = self._after(entry, number, len(keys), total)
                    if step is _Next.WINDOW:
                        break
                    if step is _Next.SPLIT:
                        split_into = 2
                        break
                    number += 1
                if not split_into:
                    previous = seen
                    continue
                if window is None and started_at:
                    raise ResultWindowError(
                        f"page={self._first_page} cannot be combined with a list of more "
                        f"than {self._window} results (the API's result window): iterate "
                        "from the first page instead, so the history can be split into "
                        "date windows"
                    )
                if window is None:
                    window = history = self._history(latest)
                if started_at:
                    raise ResultWindowError(
                        f"page={self._first_page} cannot be combined with a date range holding "
                        f"more than {self._window} results; iterate the range from its start "
                        "instead"
                    )
                parts = _split(window, split_into, self._window, self.noun)
                carried = exclude | seen
                stack.extend(_Window(next(window_ids), part, carried) for part in reversed(parts))
            if history is not None and whole is not None and yielded < whole:
                log.warning(
                    "%s: the API counted %d %s in the whole history but its date windows "
                    "(%s to %s) held %d: the others were created outside them (a server "
                    "clock far from this one's) or left the filters during the walk",
                    self.route,
                    whole,
                    self.noun,
                    to_rfc3339(history[0]),
                    to_rfc3339(history[1]),
                    yielded,
                )
        finally:
            if ahead is not None:
                await ahead.close()


class _Next(Enum):
    PAGE = "the next page of the window"
    WINDOW = "the first page of the next window"
    SPLIT = "the window is split (its parts are not known yet)"


@dataclass(slots=True, eq=False)
class _Window:
    """A date window to page through from page ``start``, with the keys it must not yield
    again; ``id`` names its requests among the prefetches."""

    id: int
    span: Span | None
    inherited: set[Hashable]
    start: int = 0


class _Prefetch(Generic[ItemT, PageT]):
    """The pages the walk of :meth:`AsyncPaginator._pages` will ask for next, fetched ahead.

    Each :meth:`take` plans the walk's next requests as far as the pages seen so far
    predict them (at most ``concurrency``), cancels prefetches no longer in that plan and
    starts the missing ones, so that at most ``concurrency`` fetches exist at any time, in
    flight or done and not yet taken (cancelled ones count until they have finished).
    """

    def __init__(self, walk: AsyncPaginator[ItemT, PageT]) -> None:
        self._walk = walk
        self._limit = walk.concurrency
        self._tasks: dict[tuple[int, int], asyncio.Task[PageT]] = {}
        self._dropped: set[asyncio.Task[PageT]] = set()

    async def take(
        self, window: _Window, number: int, total: int | None, stack: list[_Window]
    ) -> PageT:
        """Page ``number`` of ``window`` (``total``: the totalCount of its previous page,
        if any; ``stack``: the windows still to walk, the next one last)."""
        key = (window.id, number)
        self._refill(window, number, total, stack)
        while key not in self._tasks:  # the slots are held by cancelled prefetches
            await asyncio.wait(list(self._dropped))
            self._refill(window, number, total, stack)
        task = self._tasks[key]
        while not task.done():
            pending = [t for t in self._tasks.values() if not t.done()]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # another page came in: it may reveal more to fetch
                self._refill(window, number, total, stack)
        del self._tasks[key]
        return task.result()

    def _plan(
        self, window: _Window, number: int, total: int | None, stack: list[_Window]
    ) -> list[tuple[int, int]]:
        walk = self._walk
        plan: list[tuple[int, int]] = []
        for w in (window, *reversed(stack)):
            if w is not window:
                number, total = w.start, None
            while True:
                plan.append((w.id, number))
                if len(plan) >= self._limit:
                    return plan
                task = self._tasks.get((w.id, number))
                if task is not None and task.done():
                    if task.cancelled() or task.exception() is not None:
                        return plan  # the walk raises or splits there
                    page = task.result()
                    count, total = len(walk._items(page)), walk._total(page)
                elif total is not None:
                    count = walk._per_page  # assume a full page and the same total
                else:
                    return plan  # how many pages follow is not known yet
                step = walk._after(w, number, count, total)
                if step is _Next.SPLIT:
                    return plan
                if step is _Next.WINDOW:
                    break
                number += 1
        return plan

    def _refill(
        self, window: _Window, number: int, total: int | None, stack: list[_Window]
    ) -> None:
        plan = self._plan(window, number, total, stack)
        wanted = set(plan)
        for key in [k for k in self._tasks if k not in wanted]:
            self._drop(self._tasks.pop(key))
        spans = {w.id: w.span for w in (window, *stack)}
        for key in plan:
            if key in self._tasks:
                continue
            if len(self._tasks) + sum(not t.done() for t in self._dropped) >= self._limit:
                break
            self._tasks[key] = asyncio.create_task(
                self._walk._fetch(spans[key[0]], key[1]),
                name=f"tango_async: {self._walk.route} page {key[1]} (window {key[0]})",
            )

    def _drop(self, task: asyncio.Task[PageT]) -> None:
        task.cancel()
        if task.done():
            _retrieve(task)
            return
        self._dropped.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[PageT]) -> None:
        self._dropped.discard(task)
        _retrieve(task)

    async def close(self) -> None:
        """Cancel every prefetch and wait until each has finished."""
        tasks = [*self._tasks.values(), *self._dropped]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            _retrieve(task)


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a thrown-away prefetch's error as seen (no 'exception was never retrieved')."""
    if not task.cancelled():
        task.exception()


def _split(window: Span, parts: int, result_window: int, noun: str) -> list[Span]:
    start, end = window
    span = end - start
    if span < 2 * _MS:
        raise ResultWindowError(
            f"more than {result_window} {noun} within one millisecond ({to_rfc3339(start)}); "
            "narrow the search with other filters"
        )
    parts = max(2, min(parts, 64, int(span / _MS)))
    step = span / parts
    edges = [start] + [_floor_ms(start + step * i) for i in range(1, parts)] + [end]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i] <= edges[i + 1]]


def _floor_ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)


CursorT = TypeVar("CursorT", bound=Hashable)
MAX_CURSOR_PAGES = 1_000_000  # a walk that long is a server handing out cursors forever


class CursorPaginator(ABC, Generic[ItemT, PageT, CursorT]):
    """A lazy walk over a list the API pages by cursor or keyset (``GET /lineItems``'s
    ``pageKeys``, the webhook lists' ``nextCursor``): iterate it for items, or
    :meth:`pages` for pages.

    A list subclasses it: :meth:`_fetch` gets the page at a cursor (None: the first),
    :meth:`_items` reads its items and :meth:`_next` the cursor of the next page (None at
    the end). Nothing is fetched before iteration, and each iteration starts afresh. A
    cursor the walk has already followed (a server answering with a loop) ends the walk
    with a warning instead of running forever, and so does an empty page that still
    names a next one.
    """

    route: ClassVar[str]

    @abstractmethod
    async def _fetch(self, cursor: CursorT | None) -> PageT:
        """The page at ``cursor`` (None: the first page)."""

    @abstractmethod
    def _items(self, page: PageT) -> Sequence[ItemT]:
        """The items of ``page``."""

    @abstractmethod
    def _next(self, page: PageT) -> CursorT | None:
        """The cursor of the page after ``page``, or None when it is the last."""

    def __aiter__(self) -> AsyncIterator[ItemT]:
        return self._all_items()

    async def _all_items(self) -> AsyncGenerator[ItemT, None]:
        async with contextlib.aclosing(self._pages()) as pages:
            async for page in pages:
                for item in self._items(page):
                    yield item

    def pages(self) -> AsyncIterator[PageT]:
        """The pages, one request each, fetched as they are consumed."""
        return self._pages()

    async def _pages(self) -> AsyncGenerator[PageT, None]:
        cursor: CursorT | None = None
        followed: set[CursorT] = set()
        for _ in range(MAX_CURSOR_PAGES):
            page = await self._fetch(cursor)
            yield page
            cursor = self._next(page)
            if cursor is None:
                return
            if cursor in followed or not self._items(page):
                log.warning(
                    "%s named a next page after an empty page, or a cursor it gave before; "
                    "stopping",
                    self.route,
                )
                return
            followed.add(cursor)
        log.warning("%s: stopped after %d pages", self.route, MAX_CURSOR_PAGES)
