"""The sandbox's clock: real time by default, frozen and advanced by hand in tests."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from datetime import UTC, datetime, timedelta

from .._exceptions import ValidationError
from .._repr import tolerant_repr
from .._validation import finite_number

__all__ = ["SandboxClock"]

# The wall clock stays within these years, however far it is advanced: createdAt stamps,
# ``timestamp()`` and Tango's date filters all work there (datetime itself ends at 9999).
_FIRST = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(9000, 1, 1, tzinfo=UTC)


@tolerant_repr
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

    ``start`` (default: now) is the wall-clock time it starts at: a datetime from 1970
    to 9000 (a naive one is local time). ValidationError for a ``frozen`` that is not a
    bool or a ``start`` that is not such a datetime; the clock never moves past 9000
    (:meth:`advance` refuses to, a frozen :meth:`sleep` too).
    """

    def __init__(self, *, frozen: bool = False, start: datetime | None = None) -> None:
        if not isinstance(frozen, bool):
            raise ValidationError("frozen", "must be True or False")
        if start is not None and not isinstance(start, datetime):
            raise ValidationError("start", "must be a datetime or None")
        try:
            wall0 = (start or datetime.now(UTC)).astimezone(UTC)
        except (OverflowError, ValueError, OSError):  # datetime.min/max as local time
            wall0 = None
        if wall0 is None or not _FIRST <= wall0 < _LAST:
            raise ValidationError("start", "must be a datetime from 1970 to 9000")
        self._mono0 = time.monotonic()
        self._wall0 = wall0
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

    def _room(self) -> float:
        """Seconds the clock may still move on before it reaches the year 9000."""
        return (_LAST - self._wall0).total_seconds() - (self.monotonic() - self._mono0)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``.

        ValidationError (a ValueError) for a negative, non-finite or non-number
        ``seconds`` (the clock only moves forward), or one that moves it past 9000.
        """
        if not finite_number(seconds, lo=0.0):
            raise ValidationError(
                "seconds",
                "must be a finite number of seconds, at least 0: the clock only moves forward",
            )
        if seconds > self._room():
            raise ValidationError("seconds", "would move the clock past the year 9000")
        self._offset += seconds
        if self._advanced is not None:
            self._advanced.set()
            self._advanced = None

    async def sleep(self, seconds: float) -> None:
        """Return once :meth:`monotonic` has moved on by ``seconds``; frozen, move it there.

        ``seconds`` of 0 or less, or NaN, return at once (after one pass of the event
        loop). ValidationError for a non-number, and, on a frozen clock, for a sleep that
        would move it past 9000 (an infinite one included): it could never end.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValidationError("seconds", "must be a number of seconds")
        try:
            wait = float(seconds)
        except OverflowError:  # an int past float's range
            wait = math.inf
        if not wait > 0:  # NaN too
            wait = 0.0
        if self.frozen and wait > self._room():
            raise ValidationError("seconds", "would move the frozen clock past the year 9000")
        deadline = self.monotonic() + wait
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
