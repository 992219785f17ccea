"""Pacing for every route, by policy: order creation at the order limiter, the other routes
unpaced by default but adaptive (AIMD) after a 429.

Tango enforces its rate limits per endpoint and tells a client it is too fast with a 429.
Order creation is paced up front (a refused order creation is costly: a retry, a rate
slot, a widened schedule). Reads and resends are not paced by default, since most
accounts never hit a limit on them; but when a route answers 429, everyone using that
route in this client slows down together:

- **Decrease.** The route becomes paced at ``decrease`` times the rate it was running at
  (its recent rate of successful requests when it was unpaced; at least ``min_rate``),
  and every caller is held back for the 429's delay. 429s of requests that had started
  before that decrease are answers to the old rate and do not decrease it again.
- **Slow start.** A rate measured while unpaced is a poor guess (the first 429 can come
  within milliseconds), so from it the rate doubles every quarter second until a 429
  comes at a paced rate; that rate is then the one that failed.
- **Increase.** Without a 429 the rate grows back: quickly (``recovery`` of the rate that
  failed, per second) up to 95% of it, where it stays for ``hold`` seconds, then slowly
  (``probe`` per second) past it. A long export settles just under the server's real
  limit, with one 429 (and one pause of its Retry-After) per probe.
- **Release.** After ``quiet`` seconds without a 429, the route is unpaced again.

A route is a method and a path with its identifiers taken out (``GET /orders/{id}``).
``PacingPolicy(every_endpoint=True)`` sends every request through the order limiter
instead: one budget for an account whose limit counts all endpoints together.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Protocol

from ._clock import Clock
from ._exceptions import ValidationError
from ._ratelimit import LocalRateLimiter, RateLimiter, WriteGate
from ._repr import tolerant_repr
from ._telemetry import route_template
from ._validation import finite_number

__all__ = ["Pace", "PacingPolicy", "RoutePacing", "route_of"]

# The slowest pace a route may get (one request a day): a pacer's spacing is 1 / rate, and
# the limiter that keeps it takes at most a day.
_MIN_RATE = 1 / 86_400


@dataclass(frozen=True, slots=True)
class PacingPolicy:
    """Which requests a client paces, and how: ``TangoClient(pacing=PacingPolicy(...))``.

    Order creation is always paced by the client's ``rate_limiter`` (``order_rate``).

    - ``reads`` / ``resends``: a fixed rate (per second, per route) for GETs / resends;
      None (the default) leaves them unpaced until a 429.
    - ``adaptive`` (default True): after a 429, slow the route down and recover (AIMD; see
      the module docstring). False: only the fixed rates, and the 429's delay.
    - ``every_endpoint``: every request, reads and resends included, takes a slot from the
      order limiter (one budget shared with order creation; the fixed rates are ignored).
    - ``decrease``, ``min_rate``, ``recovery``, ``hold``, ``probe``, ``quiet``: AIMD
      tuning (see the module docstring).

    Derive variants with :meth:`with_options`. ValidationError for values out of range:
    ``reads``, ``resends`` (or None) and ``min_rate`` finite rates of at least one a day
    (1/86400 per second); ``decrease`` above 0 and below 1; ``recovery``, ``hold``,
    ``probe`` and ``quiet`` finite and above 0; ``adaptive`` and ``every_endpoint`` bools.
    Numbers are ints or floats, never bools.
    """

    reads: float | None = None
    resends: float | None = None
    adaptive: bool = True
    every_endpoint: bool = False
    decrease: float = 0.85
    min_rate: float = 0.1
    recovery: float = 0.05
    hold: float = 30.0
    probe: float = 0.01
    quiet: float = 60.0

    def __post_init__(self) -> None:
        for name in ("reads", "resends"):
            value = getattr(self, name)
            if value is not None and not finite_number(value, lo=_MIN_RATE):
                raise ValidationError(
                    name, "must be a finite rate per second of at least 1/86400, or None"
                )
        if not (finite_number(self.decrease, lo=0.0, above=True) and self.decrease < 1):
            raise ValidationError("decrease", "must be a finite number above 0 and below 1")
        if not finite_number(self.min_rate, lo=_MIN_RATE):
            raise ValidationError(
                "min_rate", "must be a finite rate per second of at least 1/86400"
            )
        for name in ("recovery", "hold", "probe", "quiet"):
            if not finite_number(getattr(self, name), lo=0.0, above=True):
                raise ValidationError(name, "must be a finite number above 0")
        for name in ("adaptive", "every_endpoint"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(name, "must be True or False")

    def with_options(self, **changes: float | bool | None) -> PacingPolicy:
        """A copy of this policy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def route_of(method: str, path: str) -> str:
    """``GET /orders/RA1-2/resends`` -> ``GET /orders/{id}/resends``: the identifiers (every
    second segment) taken out."""
    return route_template(method, path)


class Pace(Protocol):
    """How one request of a route is paced (the transport's view)."""

    @property
    def gate(self) -> WriteGate | None: ...

    async def slot(self) -> float:
        """Wait until the request may start; returns when it started (the clock's time)."""
        ...

    async def rate_limited(self, delay: float, started: float) -> None:
        """The request started at ``started`` was answered 429; its retry waits ``delay``."""
        ...

    def succeeded(self) -> None:
        """The request was answered without a 429."""
        ...


class _LimiterPace:
    """A route paced by a RateLimiter (the order limiter): its slots, gate and penalties."""

    def __init__(self, limiter: RateLimiter, clock: Clock) -> None:
        self._limiter = limiter
        self._clock = clock
        self.gate: WriteGate | None = limiter if isinstance(limiter, WriteGate) else None

    async def slot(self) -> float:
        await self._limiter.acquire()
        return self._clock.monotonic()

    async def rate_limited(self, delay: float, started: float) -> None:
        await self._limiter.penalize(delay)

    def succeeded(self) -> None:
        pass


_QUARTER_DOUBLING = 2.0**0.25  # slow start's growth in a quarter second


@tolerant_repr
class _AdaptivePace:
    """One route's AIMD pacer (see the module docstring)."""

    _WINDOW = 1.0  # seconds over which the rate of an unpaced route is measured

    def __init__(self, policy: PacingPolicy, ceiling: float | None, clock: Clock) -> None:
        self._policy = policy
        self._ceiling = ceiling
        self._clock = clock
        self.rate: float | None = None
        self._failed_rate = 0.0
        self._slow_start = False  # the failed rate was measured unpaced: double until a 429
        self._at_knee = -math.inf  # when the rate grew back to 95% of the failed rate
        self._last_decrease = -math.inf
        self._last_429 = -math.inf
        self._updated = clock.monotonic()
        self._not_before = -math.inf
        self._ok: deque[float] = deque()  # when recent successful requests started
        self._limiter: LocalRateLimiter | None = None
        if ceiling is not None:
            self._set_rate(ceiling)

    def __repr__(self) -> str:
        return f"<adaptive pace rate={self.rate}>"

    @property
    def gate(self) -> WriteGate | None:
        return self._limiter

    def _set_rate(self, rate: float | None) -> None:
        self.rate = rate
        if rate is None:
            self._limiter = None
        elif self._limiter is None:
            self._limiter = LocalRateLimiter(rate, margin=0.0, clock=self._clock)
        else:  # keep its schedule and gate; only the spacing changes
            self._limiter.rate = rate
            self._limiter.spacing = 1.0 / rate

    async def slot(self) -> float:
        clock = self._clock
        self._grow(clock.monotonic())
        while (wait := self._not_before - clock.monotonic()) > 0:
            await clock.sleep(wait)
        limiter = self._limiter
        if limiter is not None:
            await limiter.acquire()
        return clock.monotonic()

    async def rate_limited(self, delay: float, started: float) -> None:
        now = self._clock.monotonic()
        self._last_429 = now
        self._not_before = max(self._not_before, now + delay)
        if not self._policy.adaptive or started < self._last_decrease:
            return
        policy = self._policy
        was_slow_start = self._slow_start
        self._slow_start = self.rate is None
        if self.rate is not None:
            # A 429 in slow start may have overshot by a quarter second's doubling.
            current = self.rate / _QUARTER_DOUBLING if was_slow_start else self.rate
        else:
            while self._ok and self._ok[0] < now - self._WINDOW:
                self._ok.popleft()
            current = len(self._ok) / self._WINDOW
        self._failed_rate = max(current, policy.min_rate)
        self._last_decrease = now
        self._updated = now
        self._set_rate(max(policy.min_rate, current * policy.decrease))

    def succeeded(self) -> None:
        now = self._clock.monotonic()
        if self.rate is None:
            ok = self._ok
            ok.append(now)
            if len(ok) > 4096:
                ok.popleft()
        else:
            self._grow(now)

    def _grow(self, now: float) -> None:
        rate = self.rate
        if rate is None or not self._policy.adaptive:
            return
        elapsed, self._updated = now - self._updated, now
        if self._last_429 == -math.inf:  # paced by a fixed rate, never refused
            return
        if self._ceiling is None and now - self._last_429 > self._policy.quiet:
            self._ok.clear()
            self._set_rate(None)
            return
        policy = self._policy
        knee = 0.95 * self._failed_rate
        if self._slow_start:
            rate *= _QUARTER_DOUBLING ** min(elapsed * 16.0, 240.0)
        elif rate < knee:
            rate = min(knee, rate + policy.recovery * self._failed_rate * elapsed)
            if rate >= knee:
                self._at_knee = now
        elif now - self._at_knee >= policy.hold:
            rate += policy.probe * self._failed_rate * elapsed
        rate = min(rate, self._ceiling if self._ceiling is not None else 1e6)
        if rate != self.rate:
            self._set_rate(rate)


class RoutePacing:
    """The pacers of one client, one per route, made on first use."""

    def __init__(self, policy: PacingPolicy, order_limiter: RateLimiter, clock: Clock) -> None:
        self.policy = policy
        self._orders = _LimiterPace(order_limiter, clock)
        self._clock = clock
        self._routes: dict[str, _AdaptivePace] = {}

    def for_request(self, method: str, path: str, mode: str) -> Pace | None:
        """The pacer of this request's route, or None when it is not paced at all."""
        policy = self.policy
        if mode == "create" or policy.every_endpoint:
            return self._orders
        ceiling = policy.resends if mode == "resend" else policy.reads
        if ceiling is None and not policy.adaptive:
            return None
        key = route_of(method, path)
        pace = self._routes.get(key)
        if pace is None:
            pace = self._routes[key] = _AdaptivePace(policy, ceiling, self._clock)
        return pace

    def rate_of(self, route: str) -> float | None:
        """The pace of ``route`` (``"GET /orders"``) now: requests per second, or None when
        it is unpaced (for logs and tests)."""
        pace = self._routes.get(route)
        return None if pace is None else pace.rate
