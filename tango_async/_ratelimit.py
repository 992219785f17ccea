"""Pacing of order creation: the in-process limiter and the interface shared limiters implement."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from aiolimiter import AsyncLimiter

from ._exceptions import ValidationError

__all__ = ["LocalRateLimiter", "RateLimiter"]


@runtime_checkable
class RateLimiter(Protocol):
    """What ``TangoClient(rate_limiter=...)`` takes: one slot per order-creation attempt.

    ``acquire()`` returns when the caller may send; a cancelled ``acquire()`` must spend
    no slot. ``penalize(delay)`` is called after a 429: push the schedule back by ``delay``
    seconds for every caller sharing the limiter.
    """

    async def acquire(self) -> None: ...

    async def penalize(self, delay: float) -> None: ...


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
        if not rate > 0:
            raise ValidationError("order_rate", "must be greater than 0")
        if not 0 <= margin < 1:
            raise ValidationError("rate_margin", "must be at least 0 and below 1")
        self.rate = float(rate)
        self.margin = float(margin)
        self.spacing = (1.0 / self.rate) * (1.0 + self.margin)
        self._bucket = AsyncLimiter(1, self.spacing)
        self._fifo = asyncio.Lock()
        self._not_before = 0.0
        self._widen_step = widen_step
        self._max_widen = max_widen
        self._widen_window = widen_window
        self._recent_429 = 0
        self._last_429 = -float("inf")

    def __repr__(self) -> str:
        return f"LocalRateLimiter(rate={self.rate}, margin={self.margin}, widen={self.widen:.2f})"

    @property
    def widen(self) -> float:
        """The current widening factor of the spacing (1.0 when no recent 429)."""
        if self._recent_429 < 2:
            return 1.0
        return min(self._max_widen, 1.0 + self._widen_step * (self._recent_429 - 1))

    async def acquire(self) -> None:
        """Wait for the next slot, first come first served."""
        loop = asyncio.get_running_loop()
        async with self._fifo:
            # penalize() may push _not_before again while we sleep, so re-check.
            while (delay := self._not_before - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(delay)
            await self._bucket.acquire()
            now = loop.time()
            if now - self._last_429 > self._widen_window:
                self._recent_429 = 0
            widen = self.widen
            if widen > 1.0:
                self._not_before = max(self._not_before, now + self.spacing * widen)

    async def penalize(self, delay: float) -> None:
        """Hold every caller back ``delay`` seconds from now, and count a 429."""
        now = asyncio.get_running_loop().time()
        self._recent_429 = self._recent_429 + 1 if now - self._last_429 <= self._widen_window else 1
        self._last_429 = now
        self._not_before = max(self._not_before, now + delay)
