"""Issue 15 across its parts: a bulk job stops (systemic, nothing sent, rows kept for a
resume) when its orders cannot be checked against the catalog, or when no OAuth token can
be had, instead of failing row after row."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock

from .conftest import order_request


def frozen() -> SandboxClock:
    return SandboxClock(frozen=True, start=datetime(2025, 6, 1, 9, tzinfo=UTC))


def posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.method == "POST" and r.path.endswith("/orders")]


async def test_a_bulk_job_stops_once_when_the_catalog_cannot_be_fetched() -> None:
    async with (
        Sandbox(clock=frozen()) as sb,
        sb.client(check_catalog=True, max_retries=0) as tango,
    ):
        sb.inject("GET /catalogs", "500", times=100)
        job = tango.orders.submit_many([order_request(amount=10 + i) for i in range(5)])
        results = [r async for r in job]
        assert posts(sb) == []
        assert job.stopped_by is not None
        assert "catalog could not be fetched" in job.stopped_by.reason
        assert isinstance(job.stopped_by.error, ta.CatalogUnavailableError)
        assert all(r.outcome != "failed" for r in results), results
        assert {r.outcome for r in results} <= {"pending", "invalid"}


async def test_a_bulk_job_stops_once_when_no_oauth_token_can_be_had() -> None:
    async with Sandbox(clock=frozen(), oauth_daily_limit=1) as sb:
        async with sb.client(oauth=True) as first:  # takes the day's one token
            await first.accounts.get("sandbox-account")
        async with sb.client(oauth=True) as tango:  # another OAuth, no shared cache
            job = tango.orders.submit_many(
                [order_request(amount=10 + i) for i in range(5)], preflight=False
            )
            results = [r async for r in job]
        assert posts(sb) == []
        assert job.stopped_by is not None
        assert isinstance(job.stopped_by.error, ta.TokenRateLimitError)
        assert "token cache" in job.stopped_by.reason.lower()
        assert all(r.outcome == "pending" for r in results), results


async def test_a_none_path_id_is_refused_not_sent_to_the_collection() -> None:
    async with Sandbox(clock=frozen()) as sb, sb.client() as tango:
        before = len(sb.requests)
        bad: Any = None
        with pytest.raises(ta.ValidationError):
            await tango.customers.accounts.update("sandbox-customer", bad, display_name="x y z")
        with pytest.raises(ta.ValidationError):
            await tango.customers.low_balance_alerts.delete(
                "sandbox-customer", "sandbox-account", bad
            )
        with pytest.raises(ta.ValidationError):
            await tango.customers.low_balance_alerts.get("sandbox-customer", "sandbox-account", bad)
        assert len(sb.requests) == before


async def test_a_create_with_an_unknown_outcome_is_settled_whatever_the_catalog_says_now() -> None:
    """The resend of an attempt that may exist is not checked: a catalog changed since
    (the item now inactive) must not keep it from being settled, and it is never sent as
    a new order."""
    async with (
        Sandbox(clock=frozen()) as sb,
        sb.client(check_catalog=True, max_retries=0) as tango,
    ):
        request = order_request(amount=10)
        sb.inject("POST /orders", "drop-after-commit")
        with pytest.raises(ta.APIConnectionError) as err:
            await tango.orders.create(request)
        assert err.value.outcome_unknown
        sb.catalog = {
            utid: dataclasses.replace(item, status="inactive") for utid, item in sb.catalog.items()
        }
        await tango.catalog.refresh()
        settled = await tango.orders.create(request)  # the same content: its externalRefID
        assert not settled.created
        refs = {r.json["externalRefID"] for r in posts(sb)}
        assert len(posts(sb)) == 2 and len(refs) == 1
        with pytest.raises(ta.ValidationError):  # a new order is checked as before
            await tango.orders.create(order_request(amount=11))
        assert len(posts(sb)) == 2
