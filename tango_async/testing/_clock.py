"""The sandbox's clock: real time by default, frozen and advanced by hand in tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

__all__ = ["SandboxClock"]


class SandboxClock:
    """Drives everything time-dependent in a Sandbox: the rate limit, resend cooldowns,
    status transitions and ``createdAt`` stamps; and, through ``Sandbox.client()``, the
    client's own limiter, cooldowns and retry back-offs (it is a ``tango_async.Clock``).

    Real time unless :meth:`freeze` is called; :meth:`advance` moves it forward either
    way, so a 30-second cooldown or a day of PENDING takes no real time in a test.

    :meth:`sleep` on a frozen clock moves it forward to the sleeper's deadline at once
    (an "autojump" clock): a client waiting 1.05 s for its next order slot, or 30 s for a
    resend cooldown, finds that time passed without waiting for it. On a running clock,
    sleepers wake at their deadline, or sooner when :meth:`advance` reaches it.
    """

    def __init__(self, *, frozen: bool = False, start: datetime | None = None) -> None:
        self._mono0 = time.monotonic()
        self._wall0 = (start or datetime.now(UTC)).astimezone(UTC)
        self._offset = 0.0
        self._frozen_at: float | None = self._mono0 if frozen else None
        self._advanced: asyncio.Event | None = None  # set (and replaced) by advance()

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running"
        return f"SandboxClock({state}, now={self.now().isoformat()})"

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (for rates and cooldowns)."""
        base = self._frozen_at if self._frozen_at is not None else time.monotonic()
        return base + self._offset

    def now(self) -> datetime:
        """The sandbox's current UTC time (for createdAt and status transitions)."""
        return self._wall0 + timedelta(seconds=self.monotonic() - self._mono0)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        if self._advanced is not None:
            self._advanced.set()
            self._advanced = None

    async def sleep(self, seconds: float) -> None:
        """Return once :meth:`monotonic` has moved on by ``seconds``; frozen, move it there."""
        deadline = self.monotonic() + max(0.0, seconds)
        while (left := deadline - self.monotonic()) > 0:
            if self.frozen:
                self._offset += left  # frozen time jumps to the deadline
                break
            if self._advanced is None:
                self._advanced = asyncio.Event()
            advanced = self._advanced
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(advanced.wait(), left)
        await asyncio.sleep(0)

    def freeze(self) -> None:
        """Stop the clock where it is; only :meth:`advance` moves it afterwards."""
        if self._frozen_at is None:
            self._frozen_at = time.monotonic()

    def unfreeze(self) -> None:
        """Let the clock run again from where it stands."""
        if self._frozen_at is not None:
            self._offset += self._frozen_at - time.monotonic()
            self._frozen_at = None
