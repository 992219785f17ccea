"""The one clock a client reads and sleeps on: its limiter, cooldowns and retry back-offs.

Tests inject another (``tango_async.testing.SandboxClock``, wired in by
``Sandbox.client()``) so that rates and cooldowns take no real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from ._exceptions import ValidationError

__all__ = ["Clock", "SystemClock", "checked_clock"]


@runtime_checkable
class Clock(Protocol):
    """What ``TangoClient(clock=...)`` takes.

    ``monotonic()`` is seconds on a scale that never goes back; ``sleep(seconds)`` returns
    once ``monotonic()`` has moved on by at least ``seconds`` (at once for 0 or less).
    """

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time: ``time.monotonic()`` and ``asyncio.sleep`` (the default)."""

    def __repr__(self) -> str:
        return "SystemClock()"

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds if seconds > 0 else 0)


def checked_clock(clock: object, field: str = "clock") -> Clock:
    """``clock``, or the real one for None; ValidationError for anything that is not a
    :class:`~tango_async.Clock` (``monotonic()`` and async ``sleep(seconds)``)."""
    if clock is None:
        return SystemClock()
    if not isinstance(clock, Clock):
        raise ValidationError(field, "must have monotonic() and async sleep(seconds)")
    return clock
