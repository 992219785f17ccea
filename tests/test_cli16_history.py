"""Issue 16: the whole order history without dates, in the library and in ``orders list``;
``.pages()`` numbered in one sequence across the date windows, with the whole query's
total on every page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner, Result

import tango_async as ta
from tango_async.cli._app import cli
from tango_async.testing import Sandbox

from .conftest import FAST_RETRY
from .reconcile_support import threaded_sandbox

START = datetime(2024, 1, 1, tzinfo=UTC)


def client_for(server: Sandbox, **kw: Any) -> ta.TangoClient:
    return server.client(retry=FAST_RETRY, **kw)


async def test_pages_are_numbered_across_windows_with_the_whole_total() -> None:
    async with Sandbox(order_rate=None, max_window=500) as server:
        ids = server.seed_orders(2_500, start=START, step=timedelta(minutes=1))
        async with client_for(server, result_window=500) as tango:
            pages = [p async for p in tango.orders.list().pages()]
            windows = {(r.query.get("startDate"), r.query.get("endDate")) for r in server.requests}
    assert len(windows) > 2  # it was windowed: without dates first, then by date
    assert [p.number for p in pages] == list(range(len(pages)))
    assert {p.total_count for p in pages} == {2_500}
    got = [o.reference_order_id for p in pages for o in p.orders]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))


async def test_a_ranged_walk_keeps_one_numbering_too() -> None:
    async with Sandbox(order_rate=None, max_window=300) as server:
        server.seed_orders(1_000, start=START, step=timedelta(minutes=1))
        async with client_for(server, result_window=300) as tango:
            history = tango.orders.list(start_date=START, end_date=START + timedelta(days=2))
            pages = [p async for p in history.pages()]
    assert [p.number for p in pages] == list(range(len(pages)))
    assert {p.total_count for p in pages} == {1_000}
    assert sum(len(p.orders) for p in pages) == 1_000


async def test_a_small_history_is_one_walk_without_dates_as_before() -> None:
    async with Sandbox(order_rate=None) as server:
        server.seed_orders(250, start=START, step=timedelta(minutes=1))
        async with client_for(server) as tango:
            pages = [p async for p in tango.orders.list().pages()]
    assert all("startDate" not in r.query for r in server.requests)
    assert [(p.number, p.total_count, len(p.orders)) for p in pages] == [
        (0, 250, 100),
        (1, 250, 100),
        (2, 250, 50),
    ]


async def test_a_refused_range_falls_back_to_the_windows_count() -> None:
    # 422.043 on the whole range: the API never counted it, so a page has its window's
    async with Sandbox(order_rate=None, max_range_days=10) as server:
        server.seed_orders(40, start=START, step=timedelta(days=1))
        async with client_for(server) as tango:
            history = tango.orders.list(start_date=START, end_date=START + timedelta(days=40))
            pages = [p async for p in history.pages()]
    assert [p.number for p in pages] == list(range(len(pages)))
    assert sum(len(p.orders) for p in pages) == 40
    # each page has its window's count (an order on a shared edge is yielded once)
    assert all(len(p.orders) <= p.total_count <= 10 + 1 for p in pages)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_orders_list_streams_the_whole_history_past_the_window() -> None:
    # the sandbox's result window is 500 and the CLI's client assumes 10,000: page 5 is
    # refused (400.021) and the history is split by date from there
    with threaded_sandbox(max_window=500) as sb:
        ids = sb.sandbox.seed_orders(1_234, start=START, step=timedelta(minutes=1))
        result = invoke(*sb.args, "orders", "list", "--concurrency", "4")
    assert result.exit_code == 0, result.stderr
    got = [json.loads(line)["referenceOrderID"] for line in result.stdout.splitlines()]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    assert "1234 order(s)" in result.stderr
