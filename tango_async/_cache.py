"""The reference-data cache of one client: the catalog and exchange rates, kept for a
time-to-live and fetched by one request however many callers wait.

One :class:`ReferenceCache` per client (made by ``TangoClient``, carried by its
``Requestor``, shared by all its resources; never global). Each entry is a key
("catalog", "exchange_rates"...) holding the last value fetched and when it expires, on
the client's clock (``Clock.monotonic()``, so a frozen sandbox clock moves it only when
advanced).

- **Single flight.** :meth:`ReferenceCache.get` with no fresh value starts one fetch (a
  task of its own) and every caller that asks meanwhile awaits that same fetch: 50
  concurrent ``get()`` calls make one request.
- **Failures are not cached.** A fetch that raises hands its error to every caller
  waiting on it and leaves the entry as it was (an older value is not served past its
  expiry); the next call fetches again.
- **Cancellation.** A caller cancelled while it waits leaves the fetch running for the
  others (it is shielded), the caller that started it included; the fetch is cancelled
  only once every caller waiting on it has gone, and a cancelled fetch stores nothing.
- **Expiry per entry** (:data:`Expiry`: how long a value just fetched stays fresh):
  :func:`fixed_ttl` (the catalog: 12 hours by default) or :func:`until_daily_change`
  (exchange rates, which Tango changes once a day between 12:00 and 13:00 UTC).
- **Refresh and invalidate.** ``get(..., refresh=True)`` fetches even when a fresh value
  is held (joining a fetch already under way); :meth:`ReferenceCache.invalidate` forgets
  one entry or all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ._clock import Clock, SystemClock

__all__ = [
    "CHANGE_WINDOW_SECONDS",
    "DAILY_CHANGE_OPENS",
    "Expiry",
    "ReferenceCache",
    "fixed_ttl",
    "until_daily_change",
    "wall_now",
]

T = TypeVar("T")

# Tango updates exchange rates once a day "starting at 12:00 UTC and no later than 13:00".
DAILY_CHANGE_OPENS = 12  # hour (UTC) the change window opens
CHANGE_WINDOW_SECONDS = 3600.0  # how long it stays open
IN_WINDOW_TTL = 600.0  # rates fetched inside the window are kept 10 minutes at most

# How long (seconds) a value fetched now stays fresh, given the client's clock.
Expiry = Callable[[Clock], float]


def wall_now(clock: object) -> datetime:
    """The wall time of ``clock`` where it has one (``SandboxClock.now()``: an aware
    datetime), else the system's (``time.time()``)."""
    now = getattr(clock, "now", None)
    if callable(now):
        value = now()
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
    return datetime.fromtimestamp(time.time(), UTC)


def fixed_ttl(seconds: float) -> Expiry:
    """Every value stays fresh ``seconds`` after it was fetched."""
    ttl = float(seconds)

    def expiry(clock: Clock) -> float:
        return ttl

    return expiry


def until_daily_change(
    *,
    opens: int = DAILY_CHANGE_OPENS,
    window: float = CHANGE_WINDOW_SECONDS,
    in_window: float = IN_WINDOW_TTL,
) -> Expiry:
    """Values stay fresh until the next daily change: fetched before the change window
    opens (``opens`` o'clock UTC on the clock's wall time), until it opens; fetched inside
    it (``window`` seconds, the hour to 13:00 UTC by default), for ``in_window`` seconds
    at most (10 minutes) and not past its end, since the change may come any time then;
    fetched after it, until the window of the next day opens (about 23 hours)."""

    def expiry(clock: Clock) -> float:
        now = wall_now(clock)
        today = now.replace(hour=opens, minute=0, second=0, microsecond=0)
        start = today if now < today + timedelta(seconds=window) else today + timedelta(days=1)
        end = start + timedelta(seconds=window)
        if now < start:
            return (start - now).total_seconds()
        return max(1.0, min(in_window, (end - now).total_seconds()))

    return expiry


@dataclass(slots=True)
class _Entry:
    value: Any
    expires: float  # on the clock's monotonic scale


@dataclass(slots=True, eq=False)
class _Flight:
    task: asyncio.Future[Any]
    waiters: int = 0


class ReferenceCache:
    """Reference data of one client, by key, fetched once per expiry (see the module
    docstring). Not thread-safe: one event loop, like its client."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._entries: dict[str, _Entry] = {}
        self._flights: dict[str, _Flight] = {}
        self._failures: dict[str, tuple[float, Exception]] = {}
        self.fetches = 0  # fetches started, for tests and diagnostics

    def __repr__(self) -> str:
        return f"ReferenceCache(keys={sorted(self._entries)}, in_flight={sorted(self._flights)})"

    def peek(self, key: str) -> Any | None:
        """The fresh value held for ``key``, or None (nothing held, or expired)."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self._clock.monotonic():
            return None
        return entry.value

    def expires_in(self, key: str) -> float | None:
        """Seconds until the value held for ``key`` expires (<= 0: expired), or None."""
        entry = self._entries.get(key)
        return None if entry is None else entry.expires - self._clock.monotonic()

    def last_failure(self, key: str, within: float) -> Exception | None:
        """The error of the last fetch of ``key`` if it failed less than ``within``
        seconds ago (and no fetch succeeded since), else None. get() never serves it: a
        caller that wants to fail fast after a failure asks for it."""
        failed = self._failures.get(key)
        if failed is None or self._clock.monotonic() - failed[0] >= within:
            return None
        return failed[1]

    def invalidate(self, key: str | None = None) -> None:
        """Forget the value of ``key`` (None: every key); the next get() fetches. A fetch
        under way still completes and stores what it gets."""
        if key is None:
            self._entries.clear()
            self._failures.clear()
        else:
            self._entries.pop(key, None)
            self._failures.pop(key, None)

    async def get(
        self,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        expiry: Expiry,
        *,
        refresh: bool = False,
    ) -> T:
        """The value of ``key``: the fresh one held, else what ``fetch()`` returns (one
        fetch for every concurrent caller), kept for ``expiry(clock)`` seconds. With
        ``refresh``, fetched even if a fresh value is held. Raises what the fetch raised
        (nothing is stored then)."""
        if not refresh:
            held = self.peek(key)
            if held is not None:
                return held  # type: ignore[no-any-return]
        flight = self._flights.get(key)
        if flight is None:
            flight = self._start(key, fetch, expiry)
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # every caller waiting on it went away (cancelled): stop it, store nothing
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.task.cancel()

    def _start(self, key: str, fetch: Callable[[], Awaitable[Any]], expiry: Expiry) -> _Flight:
        async def run() -> Any:
            try:
                value = await fetch()
            except Exception as e:
                self._failures[key] = (self._clock.monotonic(), e)
                raise
            self._failures.pop(key, None)
            ttl = expiry(self._clock)
            if ttl > 0:
                self._entries[key] = _Entry(value, self._clock.monotonic() + ttl)
            return value

        flight = _Flight(asyncio.ensure_future(run()))
        self.fetches += 1
        self._flights[key] = flight

        def done(task: asyncio.Future[Any]) -> None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not task.cancelled():
                with contextlib.suppress(BaseException):
                    task.exception()  # retrieved: each waiter raises it itself

        flight.task.add_done_callback(done)
        return flight
