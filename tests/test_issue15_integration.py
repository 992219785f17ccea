"""Issue 15 across its parts: a bulk job stops (systemic, nothing sent, rows kept for a
resume) when its orders cannot be checked against the catalog, or when no OAuth token can
be had, instead of failing row after row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
    async with Sandbox(clock=frozen(), oauth_daily_limit=0) as sb:
        async with sb.client(oauth=True) as tango:
            job = tango.orders.submit_many(
                [order_request(amount=10 + i) for i in range(5)], preflight=False
            )
            results = [r async for r in job]
        assert posts(sb) == []
        assert job.stopped_by is not None
        assert isinstance(job.stopped_by.error, ta.TokenRateLimitError)
        assert "token cache" in job.stopped_by.reason.lower()
        assert all(r.outcome == "pending" for r in results), results
