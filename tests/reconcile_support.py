"""For the reconciliation tests: bulk jobs whose rows end COMPLETE, FAILED, PENDING or
never get an order, and a sandbox served from another thread, so that CLI commands
(each running its own ``asyncio.run``) can look up the orders a job placed in it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import tango_async as ta
from tango_async.bulk._job import BulkJob
from tango_async.bulk._journal import Journal, RowState
from tango_async.testing import Sandbox, SandboxClock

from .conftest import FAST_RETRY, order_request

T = TypeVar("T")

PENDING_FOR = 60.0  # seconds an order stays PENDING in these tests' sandboxes
# The rows of mixed_job(), by row number: what becomes of each.
FAILS, COMPLETES, STAYS_PENDING, REFUSED, INVALID = 1, 2, 3, 4, 5


def mixed_requests() -> list[ta.CreateOrderRequest]:
    """Row n asks for n dollars; row 5 is invalid (a negative amount)."""
    return [*(order_request(amount=n) for n in range(1, 5)), order_request(amount=-5)]


async def mixed_job(sb: Sandbox, client: ta.TangoClient, path: Path) -> None:
    """A journaled job at ``path`` whose rows end as the constants above say: rows 1 and
    2 are ordered, and the clock moves past ``PENDING_FOR`` (row 1 ends FAILED, row 2
    COMPLETE); then rows 3 and 4 are sent (3 stays PENDING, the API refuses 4 with a 400);
    row 5 was invalid, never sent."""
    sb.fail_next(1)
    job = client.orders.submit_many(
        mixed_requests(), journal=path, concurrency=1, skip_invalid=True
    )
    async for result in job:
        if result.row == COMPLETES:
            job.stop()
    assert job.journal is not None
    counts = job.journal.counts()
    assert (counts[RowState.DONE], counts[RowState.PENDING]) == (2, 2), counts
    job.journal.close()
    sb.clock.advance(PENDING_FOR + 1)
    sb.inject(
        "POST /orders",
        "legacy-error-body",
        times=1,
        status=400,
        i18nKey="400.004",
        message="recipient rejected",
        when={"amount": REFUSED},
    )
    with Journal.open(path) as journal:
        rest = BulkJob.resume(client, journal, concurrency=1)
        results = {r.row: r for r in [r async for r in rest]}
    assert results[STAYS_PENDING].outcome == "created"
    assert results[REFUSED].outcome == "failed"


async def simple_job(client: ta.TangoClient, path: Path, n: int = 3) -> None:
    """A journaled job of ``n`` rows, every one ordered."""
    job = client.orders.submit_many(
        [order_request(amount=i) for i in range(1, n + 1)], journal=path
    )
    results = [r async for r in job]
    assert {r.outcome for r in results} == {"created"}
    assert job.journal is not None
    job.journal.close()


@dataclass
class FakeEventData:
    """The eventData of a RewardStatus event, as a webhook handler gets it."""

    reference_line_item_id: str | None = None
    status: str | None = None
    action: str | None = None
    external_ref_id: str | None = None
    reason: str | None = None


@dataclass
class FakeEvent:
    """A webhook event: the envelope the receiver hands to its callback."""

    event_data: Any
    event_type: str = "RewardStatus"
    event_id: str | None = None
    revision: int | None = None
    event_occurred_at: datetime | None = None


def reward_status(
    status: str,
    *,
    line_item: str | None = None,
    ref: str | None = None,
    event_id: str | None = None,
    revision: int | None = None,
    at: datetime | None = None,
    action: str | None = None,
) -> FakeEvent:
    return FakeEvent(
        FakeEventData(
            reference_line_item_id=line_item, status=status, action=action, external_ref_id=ref
        ),
        event_id=event_id,
        revision=revision,
        event_occurred_at=at or datetime.now(UTC),
    )


class ThreadedSandbox:
    """A Sandbox (frozen clock, ``pending_for`` PENDING_FOR) on an event loop of its own
    thread. :meth:`call` runs a coroutine there (a job through ``sandbox.client()``);
    :meth:`advance` moves its clock; :attr:`args` are the CLI options that reach it."""

    def __init__(self, **options: Any) -> None:
        self.clock = SandboxClock(frozen=True)
        options.setdefault("pending_for", PENDING_FOR)
        options.setdefault("order_rate", None)
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.sandbox: Sandbox

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def advance(self, seconds: float) -> None:
        async def move() -> None:
            self.clock.advance(seconds)

        self.call(move())

    def job(self, make: Any, path: Path, *args: Any) -> None:
        """Run ``make(sandbox, client, path, *args)`` (or ``make(client, path, *args)``)
        on the sandbox's loop, with a client of the sandbox."""

        async def go() -> None:
            async with self.sandbox.client(retry=FAST_RETRY) as client:
                if make is mixed_job:
                    await make(self.sandbox, client, path, *args)
                else:
                    await make(client, path, *args)

        self.call(go())

    @property
    def args(self) -> list[str]:
        sb = self.sandbox
        return [
            "--base-url",
            sb.base_url,
            "--platform-name",
            sb.platform_name,
            "--platform-key",
            str(sb.platform_key),
        ]

    def __enter__(self) -> ThreadedSandbox:
        self._thread.start()

        async def start() -> Sandbox:
            return await Sandbox(clock=self.clock, **self._options).start()

        self.sandbox = self.call(start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.sandbox.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


@contextmanager
def threaded_sandbox(**options: Any) -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(**options) as sb:
        yield sb
