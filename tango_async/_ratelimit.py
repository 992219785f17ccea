"""Pacing of order creation: the in-process limiter and the interface shared limiters implement."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from aiolimiter import AsyncLimiter

from ._exceptions import ValidationError

__all__ = ["LocalRateLimiter", "RateLimiter", "Widening", "checked_spacing"]


@runtime_checkable
class RateLimiter(Protocol):
    """What ``TangoClient(rate_limiter=...)`` takes: one slot per order-creation attempt.

    ``acquire()`` returns when the caller may send; a cancelled ``acquire()`` must spend
    no slot. ``penalize(delay)`` is called after a 429: push the schedule back by ``delay``
    seconds for every caller sharing the limiter.
    """

    async def acquire(self) -> None: ...

    async def penalize(self, delay: float) -> None: ...


def checked_spacing(
    rate: float, margin: float, *, rate_field: str = "order_rate", margin_field: str = "rate_margin"
) -> float:
    """Seconds between two slots, ``(1 / rate) * (1 + margin)``; ValidationError if either
    is out of range."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise ValidationError(rate_field, "must be greater than 0")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ValidationError(margin_field, "must be at least 0 and below 1")
    return (1.0 / rate) * (1.0 + margin)


class Widening:
    """Repeated 429s widen the spacing for a while: from the second 429 within ``window``
    seconds of the one before, each adds ``step`` to the factor, up to ``maximum``; a
    ``window`` without one resets it to 1."""

    def __init__(self, step: float = 0.25, maximum: float = 2.0, window: float = 60.0) -> None:
        self.step = step
        self.maximum = maximum
        self.window = window
        self._count = 0
        self._last = -float("inf")

    def record(self) -> None:
        """Count a 429."""
        now = time.monotonic()
        self._count = self._count + 1 if now - self._last <= self.window else 1
        self._last = now

    @property
    def factor(self) -> float:
        """What the spacing is multiplied by now."""
        if self._count < 2 or time.monotonic() - self._last > self.window:
            return 1.0
        return min(self.maximum, 1.0 + self.step * (self._count - 1))


class LocalRateLimiter:
    """An in-process, first-come-first-served limiter with no burst.

    Slots are ``(1 / rate) * (1 + margin)`` seconds apart: the margin (5% by default)
    keeps a server that measures 1 TPS at arrival from rejecting requests that leave
    exactly 1.00 s apart. Built on an aiolimiter bucket of capacity 1; an asyncio.Lock
    in front makes it strictly FIFO, which aiolimiter alone is not.

    After a 429, ``penalize`` holds every caller back for the given delay; repeated 429s
    within ``widen_window`` seconds widen the spacing (by ``widen_step`` per 429, up to
    ``max_widen`` times the spacing) until the window passes without one.
    """

    def __init__(
        self,
        rate: float = 1.0,
        *,
        margin: float = 0.05,
        widen_step: float = 0.25,
        max_widen: float = 2.0,
        widen_window: float = 60.0,
    ) -> None:
        self.spacing = checked_spacing(rate, margin)
        self.rate = float(rate)
        self.margin = float(margin)
        self._bucket = AsyncLimiter(1, self.spacing)
        self._fifo = asyncio.Lock()
        self._not_before = 0.0
        self._widening = Widening(widen_step, max_widen, widen_window)

    def __repr__(self) -> str:
        return f"LocalRateLimiter(rate={self.rate}, margin={self.margin}, widen={self.widen:.2f})"

    @property
    def widen(self) -> float:
        """The current widening factor of the spacing (1.0 when no recent 429)."""
        return self._widening.factor

    async def acquire(self) -> None:
        """Wait for the next slot, first come first served."""
        loop = asyncio.get_running_loop()
        async with self._fifo:
            # penalize() may push _not_before again while we sleep, so re-check.
            while (delay := self._not_before - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(delay)
            await self._bucket.acquire()
            widen = self.widen
            if widen > 1.0:
                self._not_before = max(self._not_before, loop.time() + self.spacing * widen)

    async def penalize(self, delay: float) -> None:
        """Hold every caller back ``delay`` seconds from now, and count a 429."""
        self._widening.record()
        self._not_before = max(self._not_before, asyncio.get_running_loop().time() + delay)
