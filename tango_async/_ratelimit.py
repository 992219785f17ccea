"""Pacing of requests: the in-process limiter, and the interfaces shared limiters implement.

Tango measures its rate limit where requests *arrive*, so the client measures its spacing
where requests *leave*: at the moment their headers are written to an established
connection. A limiter does this in two stages:

1. **The slot** (:meth:`LocalRateLimiter.acquire`), taken before the request starts, queues
   callers first come, first served on an absolute schedule: slot ``k + 1`` is due
   ``spacing`` after slot ``k`` was *due*, not after it was taken, so a caller that wakes
   late does not push everyone after it (lateness does not accumulate), and no request
   starts (and opens a connection) long before it may be written.
2. **The write gate** (:meth:`LocalRateLimiter.before_write` / :meth:`after_write`),
   called by the transport from aiohttp's tracing signals once the connection is
   established, just before the headers are written: it admits one writer at a time, no
   sooner than ``spacing`` after the previous writer's request actually went out. A
   connection that took 150 ms to set up (a TLS handshake), an idle pool whose
   connections the server closed, or a sender stalled after taking its slot (a GC pause)
   therefore make *that* request late, never the next one early.

Slots alone would let two requests leave closer than the spacing whenever the first
spends longer between its slot and its write than the second; the gate alone would let
every queued request open a connection and hold it while it waits. Together, the slot
keeps the queue outside the connection pool and the gate keeps the spacing exact.

Why not aiolimiter here: its leaky bucket measures each slot from when the previous one
was *taken*, which is exactly the accumulating lateness (about 2 ms per slot at 10/s) the
absolute schedule (GCRA's "theoretical arrival time") removes; and it has no notion of the
write. The schedule below is the few lines GCRA needs.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from ._clock import Clock, checked_clock
from ._exceptions import ValidationError
from ._repr import tolerant_repr
from ._validation import finite_number

__all__ = [
    "LocalRateLimiter",
    "RateLimiter",
    "WriteGate",
    "Widening",
    "checked_spacing",
]

_LEAD = 0.25  # how far (in spacings) a slot may run ahead of the write gate

# A writer admitted by the gate that never reports its write (it cannot happen through the
# transport, which always reports) stops holding the others after this long.
_PENDING_LIMIT = 5.0

_MAX_SPACING = 86_400.0  # a day: the longest spacing (and widening window) accepted
_MAX_WIDEN = 100.0  # the widest factor of the spacing: a day times this stays finite


@runtime_checkable
class RateLimiter(Protocol):
    """What ``TangoClient(rate_limiter=...)`` takes: one slot per order-creation attempt.

    ``acquire()`` returns when the caller may start its request; a cancelled
    ``acquire()`` must spend no slot. ``penalize(delay)`` is called after a 429: push the
    schedule back by ``delay`` seconds for every caller sharing the limiter.

    A limiter may also be a :class:`WriteGate` (both built-in ones are): the transport
    then holds each request, once its connection is ready, until the gate admits it.
    """

    async def acquire(self) -> None: ...

    async def penalize(self, delay: float) -> None: ...


@runtime_checkable
class WriteGate(Protocol):
    """Spacing measured at the write: ``await before_write()`` returns a token once this
    request may be written; ``after_write(token, written=...)`` is called at once when its
    headers went out (or when it ended without being written), so the next writer is
    spaced from the real moment."""

    async def before_write(self) -> object: ...

    def after_write(self, token: object, *, written: bool) -> None: ...


def checked_spacing(
    rate: float, margin: float, *, rate_field: str = "order_rate", margin_field: str = "rate_margin"
) -> float:
    """Seconds between two slots, ``(1 / rate) * (1 + margin)``; ValidationError if either
    is out of range: ``rate`` a finite number above 0 (an int or float, not a bool) with a
    spacing of at most a day, ``margin`` at least 0 and below 1."""
    if not finite_number(rate, lo=0.0, above=True):
        raise ValidationError(rate_field, "must be a finite number greater than 0")
    if not finite_number(margin, lo=0.0) or not margin < 1:
        raise ValidationError(margin_field, "must be at least 0 and below 1")
    spacing = (1.0 / float(rate)) * (1.0 + margin)
    if not spacing <= _MAX_SPACING:  # a rate so small the spacing overflows or exceeds a day
        raise ValidationError(
            rate_field,
            f"must leave at most a day between slots: at least {(1.0 + margin) / 86_400:.6g}"
            f" per second (one a day, times 1 + {margin_field})",
        )
    return spacing


class Widening:
    """Repeated 429s widen the spacing for a while: from the second 429 within ``window``
    seconds of the one before, each adds ``step`` to the factor, up to ``maximum``; a
    ``window`` without one resets it to 1.

    ValidationError (named as the limiters' arguments) unless ``step`` is a finite number
    from 0 to 100, ``maximum`` from 1 to 100 and ``window`` from 0 to 86400 seconds.
    """

    def __init__(
        self,
        step: float = 0.25,
        maximum: float = 2.0,
        window: float = 60.0,
        *,
        clock: Clock | None = None,
    ) -> None:
        if not finite_number(step, lo=0.0, hi=_MAX_WIDEN):
            raise ValidationError("widen_step", "must be a finite number from 0 to 100")
        if not finite_number(maximum, lo=1.0, hi=_MAX_WIDEN):
            raise ValidationError("max_widen", "must be a finite number from 1 to 100")
        if not finite_number(window, lo=0.0, hi=_MAX_SPACING):
            raise ValidationError("widen_window", "must be a finite number of seconds, 0 to 86400")
        self.step = float(step)
        self.maximum = float(maximum)
        self.window = float(window)
        self._clock: Clock = checked_clock(clock)
        self._count = 0
        self._last = -float("inf")

    def record(self) -> None:
        """Count a 429."""
        now = self._clock.monotonic()
        self._count = self._count + 1 if now - self._last <= self.window else 1
        self._last = now

    @property
    def factor(self) -> float:
        """What the spacing is multiplied by now."""
        if self._count < 2 or self._clock.monotonic() - self._last > self.window:
            return 1.0
        return min(self.maximum, 1.0 + self.step * (self._count - 1))


class _Gate:
    """The write gate of one process: one writer admitted at a time, each no sooner than
    ``spacing`` after the previous one's headers went out (see the module docstring)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._fifo = asyncio.Lock()
        self.last_write = -float("inf")
        self._pending: object | None = None
        self._done: asyncio.Event | None = None

    async def admit(self, spacing: float) -> object:
        clock = self._clock
        async with self._fifo:
            while True:
                done = self._done
                if self._pending is not None and done is not None:
                    # The writer before us is between its admission and its write.
                    try:
                        await asyncio.wait_for(done.wait(), _PENDING_LIMIT)
                    except TimeoutError:
                        self._pending = None
                        self.last_write = max(self.last_write, clock.monotonic())
                    continue
                now = clock.monotonic()
                due = self.last_write + spacing
                if due <= now:
                    break
                await clock.sleep(due - now)
            token = object()
            self._pending = token
            self._done = asyncio.Event()
            self.last_write = clock.monotonic()  # at least now; after_write moves it on
            return token

    def written(self, token: object, *, written: bool) -> None:
        if self._pending is not token:
            return
        if written:
            self.last_write = max(self.last_write, self._clock.monotonic())
        self._pending = None
        if self._done is not None:
            self._done.set()


@tolerant_repr
class LocalRateLimiter:
    """An in-process limiter with no burst, spaced at the write (see the module docstring).

    Requests are ``(1 / rate) * (1 + margin)`` seconds apart where they leave the client:
    the margin (5% by default) keeps a server that measures 1 TPS at arrival from
    rejecting requests that leave exactly 1.00 s apart. Slots are handed out first come,
    first served on an absolute schedule.

    After a 429, ``penalize`` holds every caller back for the given delay; repeated 429s
    within ``widen_window`` seconds widen the spacing of slots (by ``widen_step`` per
    429, up to ``max_widen`` times the spacing) until the window passes without one.

    ``clock`` (default: real time) is what it reads and sleeps on; TangoClient passes its
    own. A limiter is bound to the event loop it is first used in.

    ValidationError for an argument out of range (``rate`` and ``margin`` named
    ``order_rate`` and ``rate_margin``, as TangoClient's arguments passed through here):
    ``rate`` a finite number above 0 with a spacing of at most a day (at least 1.05/86400
    per second with the default margin), ``margin`` at least 0 and below 1,
    ``widen_step`` 0 to 100, ``max_widen`` 1 to 100, ``widen_window`` 0 to 86400 seconds
    (bools are not numbers), ``clock`` a Clock.
    """

    def __init__(
        self,
        rate: float = 1.0,
        *,
        margin: float = 0.05,
        widen_step: float = 0.25,
        max_widen: float = 2.0,
        widen_window: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        # named as TangoClient's arguments, which are passed through here
        self.spacing = checked_spacing(rate, margin)
        self.rate = float(rate)
        self.margin = float(margin)
        self.clock: Clock = checked_clock(clock)
        self._fifo = asyncio.Lock()
        self._tat = -float("inf")  # when the next slot is due (GCRA's theoretical arrival)
        self._not_before = -float("inf")
        self._gate = _Gate(self.clock)
        self._widening = Widening(widen_step, max_widen, widen_window, clock=self.clock)

    def __repr__(self) -> str:
        return f"LocalRateLimiter(rate={self.rate}, margin={self.margin}, widen={self.widen:.2f})"

    @property
    def widen(self) -> float:
        """The current widening factor of the spacing (1.0 when no recent 429)."""
        return self._widening.factor

    async def acquire(self) -> None:
        """Wait for the next slot, first come first served (cancel-safe: a cancelled wait
        takes no slot)."""
        clock = self.clock
        async with self._fifo:
            slot = max(self._tat, clock.monotonic())
            # penalize() may push _not_before, and a late write the gate's next admission,
            # while we sleep: re-check after each sleep.
            while (due := max(slot, self._not_before, self._gate_lead())) > (
                now := clock.monotonic()
            ):
                await clock.sleep(due - now)
            self._tat = due + self.spacing * self.widen

    def _gate_lead(self) -> float:
        # A slot may run ahead of the gate's next admission by a quarter of the spacing
        # (scheduling noise: the schedule stays absolute), no more: after a write that was
        # late (a cold connection), later slots move with it instead of holding their
        # connections idle in the gate, where a server may close them.
        return self._gate.last_write + self.spacing * (1.0 - _LEAD)

    async def penalize(self, delay: float) -> None:
        """Hold every caller back ``delay`` seconds from now, and count a 429."""
        self._widening.record()
        self._not_before = max(self._not_before, self.clock.monotonic() + delay)

    async def before_write(self) -> object:
        """Wait until this request may be written: the write gate (see the module docstring)."""
        return await self._gate.admit(self.spacing)

    def after_write(self, token: object, *, written: bool) -> None:
        """Report that the admitted request was written (or ended unwritten)."""
        self._gate.written(token, written=written)
