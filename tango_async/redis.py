"""Order pacing and resend cooldowns shared by processes and hosts, on Redis (``redis`` extra).

One platform credential has one 1-TPS budget and one cooldown per order, however many
workers use it. Pass these to every client that shares the credential::

    from tango_async.redis import RedisCooldownStore, RedisRateLimiter

    limiter = RedisRateLimiter("redis://cache:6379/0", rate=1.0)
    cooldowns = RedisCooldownStore("redis://cache:6379/0", cooldown=30.0)
    async with TangoClient(rate_limiter=limiter, cooldown_store=cooldowns) as tango:
        ...

The limiter paces in the same two stages as the in-process one (see
``tango_async._ratelimit``), both shared through Redis and timed by Redis's own clock
(TIME), so the hosts' clocks never matter:

1. **Slots**: GCRA with no burst, in "reserve a slot" form: one Lua script books the next
   free slot and answers how long to wait relative to Redis's clock.
2. **The write gate**: once its connection is ready, a request asks Redis to be admitted;
   the script admits one writer at a time, no sooner than the spacing after the last
   write it recorded, and the writer reports (from aiohttp's signal, as its headers go
   out) so the record is the real time of the write, taken after it.

A lost schedule can never let two requests leave closer than the spacing: a missing write
record (first use, a FLUSHALL, an eviction) is treated as a write that just happened, so
the next writer waits one spacing; each client also keeps its own floor from its last
write, and passes the latest slot it has seen to the booking script, which never books
earlier. Clients that disagree on the spacing for one namespace and platform get
RateLimiterConflictError, never the faster spacing.

Redis unreachable or slow: the call waits with backoff up to ``unavailable_timeout``
seconds, then raises RateLimiterUnavailableError; it never sends unthrottled, and it
works again as soon as Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ._exceptions import RateLimiterConflictError, TangoError, ValidationError
from ._oauth import AccessToken
from ._ratelimit import _LEAD, Widening, checked_spacing
from ._repr import tolerant_repr
from ._retry import store_retry
from ._unresolved import STATES, UnresolvedOrder, UnresolvedStoreError
from ._validation import check_str, finite_number

__all__ = [
    "RateLimiterConflictError",
    "RateLimiterUnavailableError",
    "RedisCooldownStore",
    "RedisEventStore",
    "RedisRateLimiter",
    "RedisTokenCache",
    "RedisUnresolvedStore",
    "TokenCacheUnavailableError",
]

log = logging.getLogger("tango_async")
T = TypeVar("T")

# The spacing every client of one namespace and platform agreed on (KEYS: the agreement),
# checked first by both scripts below: {-1, theirs_us} when another client paces at a
# different spacing; the agreement lasts AGREEMENT_MS after its last use.
_AGREE = """
local agreed = redis.call('GET', KEYS[1])
if agreed and agreed ~= ARGV[1] then
  return {-1, tonumber(agreed)}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
"""

# KEYS: the schedule (next free slot, microseconds on Redis's clock), the agreement, the
# last write. ARGV: spacing_us, agreement_ms, interval_us, max_ahead_us, ttl_ms, floor_us
# (the latest slot end this client has seen; 0 for none), lead_us (how far a slot may run
# ahead of the next write the gate admits), written_ms. Returns {wait_us, booked, slot_us}: booked 1
# = the slot is ours after wait_us; 0 = the schedule is full that far ahead, ask again.
_RESERVE = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""
    + _AGREE.replace("KEYS[1]", "KEYS[2]")
    + """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local last = redis.call('GET', KEYS[3])
if not last then
  -- no write record (first use, a flush, an eviction): a write may have just happened,
  -- so the first slot is one spacing away, here rather than at the gate
  last = string.format('%d', now)
  redis.call('SET', KEYS[3], last, 'PX', ARGV[8])
end
local gate = tonumber(last) + tonumber(ARGV[1]) - tonumber(ARGV[7])
local slot = math.max(now, tat, tonumber(ARGV[6]), gate)
local ahead = slot - now
if ahead > tonumber(ARGV[4]) then
  return {ahead - tonumber(ARGV[4]), 0, 0}
end
redis.call('SET', KEYS[1], string.format('%d', slot + tonumber(ARGV[3])), 'PX', ARGV[5])
return {ahead, 1, slot}
"""
)

# The write gate. KEYS: the last write (microseconds), the pending writer ("token when_us"),
# the agreement. ARGV: spacing_us, agreement_ms, token, pending_ms, written_ms, ahead_us.
# Returns {wait_us, admitted, now_us}: admitted 1 = write after wait_us (at most ahead_us).
# A pending writer (admitted, its write not yet reported) holds the others until one
# spacing after its admission, and after that until it reports (or its admission
# expires: a writer that died).
_ADMIT = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""
    + _AGREE.replace("KEYS[1]", "KEYS[3]")
    + """
local spacing = tonumber(ARGV[1])
local pending = redis.call('GET', KEYS[2])
if pending then
  local sep = string.find(pending, ' ', 1, true)
  local admitted = tonumber(string.sub(pending, sep + 1))
  if string.sub(pending, 1, sep - 1) == ARGV[3] then
    return {0, 1, now}  -- our own admission (a retried call): it stands
  end
  if now < admitted + spacing then
    return {admitted + spacing - now, 0, now}
  end
  return {1000, 0, now}
end
local last = redis.call('GET', KEYS[1])
if not last then
  redis.call('SET', KEYS[1], string.format('%d', now), 'PX', ARGV[5])
  return {spacing, 0, now}
end
local due = math.max(now, tonumber(last) + spacing)
if due - now > tonumber(ARGV[6]) then
  return {due - now, 0, now}
end
-- Admitted for ``due``, at most ARGV[6] ahead: the writer sleeps until then and writes,
-- without asking again.
redis.call('SET', KEYS[2], ARGV[3] .. ' ' .. string.format('%d', due), 'PX', ARGV[4])
redis.call('SET', KEYS[1], string.format('%d', due), 'PX', ARGV[5])
return {due - now, 1, now}
"""
)

# KEYS: the last write, the pending writer. ARGV: token, written_ms, wrote_us: the
# admission's Redis time plus the client's own time from asking to be admitted to its
# write, an upper bound of the write on Redis's clock (never later than now).
_WROTE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wrote = math.min(now, tonumber(ARGV[3]))
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if wrote > last then
  redis.call('SET', KEYS[1], string.format('%d', wrote), 'PX', ARGV[2])
end
local pending = redis.call('GET', KEYS[2])
if pending and string.sub(pending, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  redis.call('DEL', KEYS[2])
end
return 1
"""

# KEYS[1]: the schedule. ARGV: delay_us, ttl_ms. Nobody's next slot is before now + delay.
_PUSH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = now + tonumber(ARGV[1])
if target > tat then
  redis.call('SET', KEYS[1], string.format('%d', target), 'PX', ARGV[2])
end
return 1
"""

# KEYS[1]: the cooldown key. ARGV: token, cooldown_ms. Returns 0 when claimed, else the
# milliseconds left (PTTL).
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 1 end
return left
"""

# KEYS[1]: the cooldown key. ARGV: token. Deletes it only while it is still our claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RateLimiterUnavailableError(TangoError):
    """The shared rate limiter or cooldown store (Redis) did not answer in time; nothing was
    sent. (The unresolved-order store raises UnresolvedStoreError instead.)"""


_DAY = 86_400.0
_YEAR = 365 * _DAY


def _client(url_or_client: str | aioredis.Redis, timeout: float) -> aioredis.Redis:
    if isinstance(url_or_client, str):
        check_str(url_or_client, "url_or_client")
        try:
            return aioredis.Redis.from_url(
                url_or_client,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=30,
            )
        except (ValueError, TypeError) as e:  # redis-py's message names no credential
            raise ValidationError("url_or_client", f"is not a usable Redis URL ({e})") from None
    if not isinstance(url_or_client, aioredis.Redis):
        raise ValidationError("url_or_client", "must be a redis:// URL or a redis.asyncio.Redis")
    return url_or_client


def _seconds(value: object, field: str, *, lo: float, hi: float, above: bool = False) -> float:
    """``value`` as a float of seconds, or ValidationError unless it is a finite int or
    float (not a bool) from ``lo`` (above it with ``above``) to ``hi``."""
    if not finite_number(value, lo=lo, hi=hi, above=above):
        low = f"above {lo:g}" if above else f"from {lo:g}"
        raise ValidationError(field, f"must be a finite number of seconds {low} to {hi:g}")
    return float(value)  # type: ignore[arg-type]


def _name(value: object, field: str) -> str:
    """A non-blank string (valid Unicode) for a key part, or ValidationError."""
    s = check_str(value, field, required=True)
    if not s or not s.strip():
        raise ValidationError(field, "must be a non-empty string")
    return s


class _RedisBacked:
    """Fail-closed calls to Redis: retried with capped backoff (``_retry.STORE_BACKOFF``)
    for ``unavailable_timeout``.

    ValidationError for a bad common argument: ``url_or_client`` not a Redis URL or
    ``redis.asyncio.Redis``; ``namespace`` (or ``platform``, when given) not a non-empty
    string; ``unavailable_timeout`` not a finite number of seconds from 0 to 86400;
    ``socket_timeout`` not one above 0 to 86400.
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        namespace: str,
        platform: str | None,
        unavailable_timeout: float,
        socket_timeout: float,
    ) -> None:
        namespace = _name(namespace, "namespace")
        if platform is not None:
            platform = _name(platform, "platform")
        wait = _seconds(unavailable_timeout, "unavailable_timeout", lo=0.0, hi=_DAY)
        socket_wait = _seconds(socket_timeout, "socket_timeout", lo=0.0, hi=_DAY, above=True)
        self.redis = _client(url_or_client, socket_wait)
        self.namespace = namespace
        self.platform = platform
        self.unavailable_timeout = wait

    def bind(self, platform_name: str) -> None:
        """Called by TangoClient: keys are namespaced per platform."""
        if self.platform is None:
            self.platform = platform_name

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, self.platform or "-", *parts))

    _unavailable: type[TangoError] = RateLimiterUnavailableError
    _consequence = "refused, nothing sent"

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], *, patient: bool = True) -> T:
        """``fn()``, retried while Redis fails, for ``unavailable_timeout`` seconds (one try
        when not ``patient``), then RateLimiterUnavailableError (UnresolvedStoreError for
        the unresolved-order store)."""
        deadline = time.monotonic() + (self.unavailable_timeout if patient else 0.0)
        attempt = 0
        while True:
            try:
                return await fn()
            except (RedisError, OSError) as e:
                option = store_retry(attempt, deadline - time.monotonic())
                if not option.retry:
                    raise self._unavailable(
                        f"Redis did not answer ({type(e).__name__}) for "
                        f"{self.unavailable_timeout:g} s; {what} {self._consequence}"
                    ) from None
                log.warning("Redis unavailable (%s) for %s; retrying", type(e).__name__, what)
                await asyncio.sleep(option.delay)
                attempt += 1

    async def aclose(self) -> None:
        """Close the Redis connections this object opened."""
        await self.redis.aclose()


@tolerant_repr
class RedisRateLimiter(_RedisBacked):
    """A rate limiter shared through Redis: ``rate`` requests per second for everyone
    sharing the namespace and platform, spaced where they leave (see the module
    docstring), no burst, first come first served within a process.

    Requests are ``(1 / rate) * (1 + margin)`` apart (5% margin by default, as
    in-process). Bookings go at most ``max_ahead`` seconds ahead. ``penalize`` (after a
    429) pushes the shared schedule forward for every worker; repeated 429s widen this
    process's spacing of slots. A write record (``written_ttl``, default a day) outlives
    idle spells; when it is missing, the first order waits one spacing.

    Every client of one namespace and platform must use the same rate and margin:
    another spacing raises RateLimiterConflictError (nothing sent) until the clients with
    the other spacing have been idle for ``agreement_ttl`` seconds (default 120).
    ``late_tolerance`` is accepted for compatibility and no longer used: the write gate
    holds the spacing however late a worker wakes.

    ValidationError, before any connection is made, for an argument out of range:
    ``rate`` a finite number above 0 with a spacing of at most a day, ``margin`` at least
    0 and below 1, ``max_ahead`` (and ``late_tolerance``, or None) 0 to 86400 seconds,
    ``widen_step`` 0 to 100, ``max_widen`` 1 to 100, ``widen_window`` 0 to 86400 seconds,
    ``agreement_ttl`` and ``written_ttl`` 0.001 s to a year; and as for every Redis
    store (``url_or_client``, ``namespace``, ``platform``, ``unavailable_timeout``,
    ``socket_timeout``). Numbers are ints or floats, never bools.
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        rate: float = 1.0,
        margin: float = 0.05,
        namespace: str = "tango_async",
        platform: str | None = None,
        max_ahead: float = 60.0,
        late_tolerance: float | None = None,
        unavailable_timeout: float = 30.0,
        socket_timeout: float = 2.0,
        widen_step: float = 0.25,
        max_widen: float = 2.0,
        widen_window: float = 60.0,
        agreement_ttl: float = 120.0,
        written_ttl: float = 86400.0,
    ) -> None:
        spacing = checked_spacing(rate, margin, rate_field="rate", margin_field="margin")
        ahead = _seconds(max_ahead, "max_ahead", lo=0.0, hi=_DAY)
        if late_tolerance is not None:
            late_tolerance = _seconds(late_tolerance, "late_tolerance", lo=0.0, hi=_DAY)
        # PX of at least 1 ms, and no more than Redis takes
        agreement = _seconds(agreement_ttl, "agreement_ttl", lo=0.001, hi=_YEAR)
        written = _seconds(written_ttl, "written_ttl", lo=0.001, hi=_YEAR)
        widening = Widening(widen_step, max_widen, widen_window)
        super().__init__(
            url_or_client,
            namespace=namespace,
            platform=platform,
            unavailable_timeout=unavailable_timeout,
            socket_timeout=socket_timeout,
        )
        self.rate = float(rate)
        self.margin = float(margin)
        self.spacing = spacing
        self.max_ahead = max(ahead, self.spacing)
        self.late_tolerance = late_tolerance
        self.agreement_ttl = agreement
        self.written_ttl = written
        self._reserve = self.redis.register_script(_RESERVE)
        self._push = self.redis.register_script(_PUSH)
        self._admit = self.redis.register_script(_ADMIT)
        self._wrote = self.redis.register_script(_WROTE)
        self._fifo = asyncio.Lock()
        self._gate_fifo = asyncio.Lock()
        self._widening = widening
        self._floor_us = 0  # the latest slot end this client has booked or seen (Redis clock)
        self._last_write = -float("inf")  # this client's own floor (its monotonic clock)
        self._reports: set[asyncio.Task[None]] = set()
        self._pending: str | None = None
        self._pending_done: asyncio.Event | None = None
        self._admission = (0, 0.0)  # (Redis time of the admission, when we asked for it)

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter(rate={self.rate}, key={self._key('orders', 'schedule')!r}, "
            f"widen={self.widen:.2f})"
        )

    @property
    def widen(self) -> float:
        """This process's widening factor of the spacing (1.0 when no recent 429)."""
        return self._widening.factor

    def _us(self, seconds: float) -> int:
        return int(seconds * 1_000_000)

    def _agreement(self) -> list[Any]:
        return [self._us(self.spacing), int(self.agreement_ttl * 1000)]

    async def _agreed(self, what: str, script: Any, keys: list[str], args: list[Any]) -> list[Any]:
        """Run a script that checks the agreed spacing first (``_AGREE``): its answer, or
        RateLimiterConflictError when another client paces at another spacing."""
        answer: list[Any] = await self._call(what, functools.partial(script, keys=keys, args=args))
        if int(answer[0]) < 0:
            raise self._conflict(answer[1])
        return answer

    def _conflict(self, theirs_us: Any) -> RateLimiterConflictError:
        theirs = int(theirs_us) / 1_000_000
        return RateLimiterConflictError(
            f"another client of {self._key('orders')!r} paces orders {theirs * 1000:.1f} ms "
            f"apart, this one {self.spacing * 1000:.1f} ms (rate={self.rate:g}, "
            f"margin={self.margin:g}); nothing was sent. Give every client of one "
            "credential the same rate and margin (or separate namespaces); the other "
            f"spacing is forgotten {self.agreement_ttl:g} s after its last use",
            ours=self.spacing,
            theirs=theirs,
        )

    async def acquire(self) -> None:
        """Book the next shared slot and wait for it (cancel-safe: a cancelled wait leaves
        its slot unused, which costs the others nothing but that slot).
        RateLimiterConflictError when another client of the namespace paces at another
        spacing; RateLimiterUnavailableError when Redis does not answer."""
        keys = [
            self._key("orders", "schedule"),
            self._key("orders", "spacing"),
            self._key("orders", "written"),
        ]
        async with self._fifo:
            while True:
                interval = self.spacing * self.widen
                args = [
                    *self._agreement(),
                    self._us(interval),
                    self._us(self.max_ahead),  # how far ahead a booking may go
                    int((self.max_ahead + self.spacing) * 1000) + 1000,  # key TTL, ms
                    self._floor_us,
                    self._us(self.spacing * _LEAD),
                    int(self.written_ttl * 1000),
                ]
                wait_us, booked, slot_us = await self._agreed(
                    "an order slot", self._reserve, keys, args
                )
                if booked:
                    self._floor_us = max(self._floor_us, int(slot_us) + self._us(interval))
                wait = int(wait_us) / 1_000_000
                if wait > 0:
                    await asyncio.sleep(wait)
                if booked:
                    return

    async def before_write(self) -> object:
        """The shared write gate: wait until Redis admits this request (one writer at a
        time, the spacing after the last recorded write) and this client's own floor
        allows it. Returns the token :meth:`after_write` reports with."""
        keys = [
            self._key("orders", "written"),
            self._key("orders", "writing"),
            self._key("orders", "spacing"),
        ]
        token = secrets.token_hex(8)
        pending_ms = int(max(1.0, 4 * self.spacing) * 1000)
        written_ms = int(self.written_ttl * 1000)
        ahead_us = self._us(self.spacing * _LEAD)
        async with self._gate_fifo:
            done = self._pending_done
            if self._pending is not None and done is not None:
                # Our own previous writer has not reported yet: its report is its record.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), pending_ms / 1000)
            local = self._last_write + self.spacing - time.monotonic()
            if local > 0:  # this client's own floor, whatever Redis remembers
                await asyncio.sleep(local)
            try:
                while True:
                    args = [*self._agreement(), token, pending_ms, written_ms, ahead_us]
                    asked = time.monotonic()
                    wait_us, admitted, now_us = await self._agreed(
                        "an order write", self._admit, keys, args
                    )
                    if admitted:
                        if int(wait_us) > 0:  # admitted for a moment just ahead
                            await asyncio.sleep(int(wait_us) / 1_000_000)
                        break
                    await asyncio.sleep(max(int(wait_us), 200) / 1_000_000)
            except BaseException:
                # Cancelled (a timeout) or failed while asking: Redis may have admitted us
                # with the answer lost. Release that admission (nothing was written), or
                # every writer of every client would wait for it to expire.
                self._report(token, wrote_us=0)
                raise
            self._last_write = time.monotonic()
            self._admission = (int(now_us), asked)
            self._pending = token
            self._pending_done = asyncio.Event()
            return token

    def after_write(self, token: object, *, written: bool) -> None:
        """Report the admitted write (or its end without one) to Redis, at once."""
        if token != self._pending or not isinstance(token, str):
            return
        now = time.monotonic()
        self._last_write = max(self._last_write, now)
        done = self._pending_done
        admitted_us, asked = self._admission
        wrote_us = admitted_us + self._us(now - asked) + 1
        self._report(token, wrote_us=wrote_us, done=done)

    def _report(self, token: str, *, wrote_us: int, done: asyncio.Event | None = None) -> None:
        """Send a write report in the background: the write's time (``wrote_us``; 0 for
        none, which only releases the admission), and the end of ``token``'s admission."""
        keys = [self._key("orders", "written"), self._key("orders", "writing")]
        args: list[str | int] = [token, int(self.written_ttl * 1000), wrote_us]

        async def report() -> None:
            try:
                await self._call(
                    "a write report",
                    functools.partial(self._wrote, keys=keys, args=args),
                    patient=False,
                )
            except RateLimiterUnavailableError:
                # The record expires with the admission; the others wait it out.
                log.warning("Redis did not take a write report; the others wait it out")
            finally:
                if self._pending == token:
                    self._pending = None
                if done is not None:
                    done.set()

        task = asyncio.get_running_loop().create_task(report())
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def penalize(self, delay: float) -> None:
        """After a 429: no worker's next slot comes sooner than ``delay`` seconds."""
        self._widening.record()
        key = self._key("orders", "schedule")
        delay_us = int(delay * 1_000_000)
        ttl_ms = int((delay + self.max_ahead) * 1000) + 1000
        await self._call(
            "a rate-limit pause", lambda: self._push(keys=[key], args=[delay_us, ttl_ms])
        )

    async def aclose(self) -> None:
        """Send the write reports still on their way, then close the Redis connections."""
        if self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)
        await super().aclose()


@tolerant_repr
class RedisCooldownStore(_RedisBacked):
    """Resend cooldowns shared through Redis: one resend per order / line item per
    cooldown across every worker. The cooldown is the one each call passes (the
    client's ``resend_cooldown``); the ``cooldown`` argument here is only shown in the
    repr, to say which one the workers are meant to share.

    ``claim`` is SET NX PX (atomically, so two workers never both resend); PTTL is the
    ``retry_after`` of the others. The claim is re-extended when the server answers, and
    released (only if still ours) when the resend certainly did not happen.

    ValidationError, before any connection is made, unless ``cooldown`` is a finite
    number of seconds from 0 to 86400 (as TangoClient's ``resend_cooldown``), and as for
    every Redis store (``url_or_client``, ``namespace``, ``platform``,
    ``unavailable_timeout``, ``socket_timeout``).
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        cooldown: float = 30.0,
        namespace: str = "tango_async",
        platform: str | None = None,
        unavailable_timeout: float = 30.0,
        socket_timeout: float = 2.0,
    ) -> None:
        checked = _seconds(cooldown, "cooldown", lo=0.0, hi=_DAY)
        super().__init__(
            url_or_client,
            namespace=namespace,
            platform=platform,
            unavailable_timeout=unavailable_timeout,
            socket_timeout=socket_timeout,
        )
        self.cooldown = checked
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._tokens: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RedisCooldownStore(cooldown={self.cooldown}, prefix={self._key('')!r})"

    async def claim(self, key: str, cooldown: float) -> float:
        token = secrets.token_hex(8)
        full = self._key("cooldown", key)
        ms = max(1, int(cooldown * 1000))
        left: Any = await self._call(
            "a resend cooldown", lambda: self._claim(keys=[full], args=[token, ms])
        )
        if int(left) == 0:
            self._tokens[key] = token
            return 0.0
        return int(left) / 1000

    async def extend(self, key: str, cooldown: float) -> None:
        token = self._tokens.pop(key, None) or secrets.token_hex(8)
        full = self._key("cooldown", key)
        ms = max(1, int(cooldown * 1000))
        await self._call(
            "a resend cooldown", lambda: self.redis.set(full, token, px=ms), patient=False
        )

    async def release(self, key: str) -> None:
        token = self._tokens.pop(key, None)
        if token is None:
            return
        full = self._key("cooldown", key)
        await self._call(
            "a resend cooldown", lambda: self._release(keys=[full], args=[token]), patient=False
        )


@tolerant_repr
class RedisUnresolvedStore(_RedisBacked):
    """Order creations with an unknown outcome, kept in Redis: they survive a restart and
    are seen by every process and host that shares the namespace and platform.

    One hash per entry (``…:unresolved:ref:<externalRefID>``, expiring ``ttl`` seconds
    after its last change, 30 days by default), indexed by a sorted set of all entries
    and one per content key, oldest first. Redis unreachable: calls wait up to
    ``unavailable_timeout`` seconds, then raise UnresolvedStoreError (a create then sends
    nothing).

    ValidationError, before any connection is made, unless ``ttl`` is a finite number of
    seconds from 1 to 2**31 - 1 (below 1 s an EXPIRE would delete the entry at once), and
    as for every Redis store (``url_or_client``, ``namespace``, ``platform``,
    ``unavailable_timeout``, ``socket_timeout``).
    """

    _unavailable = UnresolvedStoreError
    _consequence = "failed"

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        namespace: str = "tango_async",
        platform: str | None = None,
        ttl: float = 30 * 86400.0,
        unavailable_timeout: float = 10.0,
        socket_timeout: float = 2.0,
    ) -> None:
        if not finite_number(ttl, lo=1.0, hi=2**31 - 1):
            raise ValidationError("ttl", "must be a finite number of seconds from 1 to 2**31 - 1")
        super().__init__(
            url_or_client,
            namespace=namespace,
            platform=platform,
            unavailable_timeout=unavailable_timeout,
            socket_timeout=socket_timeout,
        )
        self.ttl = int(ttl)

    def __repr__(self) -> str:
        return f"RedisUnresolvedStore(prefix={self._key('unresolved', '')!r})"

    def _entry_key(self, ref: str) -> str:
        return self._key("unresolved", "ref", ref)

    def _content_key(self, key: str) -> str:
        return self._key("unresolved", "content", key)

    async def put(self, entry: UnresolvedOrder) -> None:
        full = self._entry_key(entry.external_ref_id)
        score = entry.first_sent_at.timestamp()

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    full,
                    mapping={
                        "content_key": entry.content_key or "",
                        "request": entry.request,
                        "state": entry.state,
                        "updated_at": entry.updated_at.isoformat(),
                        "reason": entry.reason,
                    },
                )
                pipe.hsetnx(full, "first_sent_at", entry.first_sent_at.isoformat())
                pipe.expire(full, self.ttl)
                pipe.zadd(self._key("unresolved", "all"), {entry.external_ref_id: score}, nx=True)
                if entry.content_key:
                    pipe.zadd(
                        self._content_key(entry.content_key),
                        {entry.external_ref_id: score},
                        nx=True,
                    )
                    pipe.expire(self._content_key(entry.content_key), self.ttl)
                await pipe.execute()

        await self._call("recording an order", write)

    async def _read(self, ref: str) -> UnresolvedOrder | None:
        got: Any = await self._call(
            "looking up an order", lambda: self.redis.hgetall(self._entry_key(ref))
        )
        if not got:
            return None
        # bytes, or str from a client made with decode_responses=True
        raw = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in got.items()}
        try:
            state = _text(raw["state"])
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}")
            request = raw.get("request", b"")
            return UnresolvedOrder(
                external_ref_id=ref,
                content_key=_text(raw.get("content_key", "")) or None,
                request=request if isinstance(request, bytes) else str(request).encode(),
                state=state,
                first_sent_at=datetime.fromisoformat(_text(raw["first_sent_at"])),
                updated_at=datetime.fromisoformat(_text(raw["updated_at"])),
                reason=_text(raw.get("reason", "")),
            )
        except (KeyError, ValueError, UnicodeDecodeError) as e:
            raise UnresolvedStoreError(
                f"unresolved-order entry {self._entry_key(ref)} is not readable: {e}"
            ) from None

    async def _refs(self, index: str) -> list[str]:
        members: Any = await self._call("listing orders", lambda: self.redis.zrange(index, 0, -1))
        return [_text(m) for m in members]

    async def _unindex(self, index: str, ref: str) -> None:
        await self._call("tidying an index", lambda: self.redis.zrem(index, ref))

    async def find(self, content_key: str) -> list[UnresolvedOrder]:
        index = self._content_key(content_key)
        found: list[UnresolvedOrder] = []
        for ref in await self._refs(index):
            entry = await self._read(ref)
            if entry is not None:
                found.append(entry)
            else:  # expired
                await self._unindex(index, ref)
        return found

    async def get(self, external_ref_id: str) -> UnresolvedOrder | None:
        return await self._read(external_ref_id)

    async def remove(self, external_ref_id: str) -> None:
        entry = await self._read(external_ref_id)

        async def delete() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._entry_key(external_ref_id))
                pipe.zrem(self._key("unresolved", "all"), external_ref_id)
                if entry is not None and entry.content_key:
                    pipe.zrem(self._content_key(entry.content_key), external_ref_id)
                await pipe.execute()

        await self._call("removing an order", delete)

    async def list(self) -> list[UnresolvedOrder]:
        index = self._key("unresolved", "all")
        found: list[UnresolvedOrder] = []
        for ref in await self._refs(index):
            entry = await self._read(ref)
            if entry is None:  # expired
                await self._unindex(index, ref)
            else:
                found.append(entry)
        return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@tolerant_repr
class RedisEventStore(_RedisBacked):
    """Webhook event IDs already received, shared through Redis: many receivers behind a
    load balancer hand each event to their callbacks once (``tango_async.webhooks``).

    ``add`` is SET NX EX: atomic, so two receivers given the same delivery never both
    take it. Keys are ``{namespace}:{platform or '-'}:webhook_event:{eventId}``. Redis
    unreachable: retried for ``unavailable_timeout`` seconds, then
    RateLimiterUnavailableError (the receiver answers 503 so Tango delivers again later).
    """

    _consequence = "not recorded; the delivery is refused so that it comes again"

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        namespace: str = "tango_async",
        platform: str | None = None,
        unavailable_timeout: float = 5.0,
        socket_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            url_or_client,
            namespace=namespace,
            platform=platform,
            unavailable_timeout=unavailable_timeout,
            socket_timeout=socket_timeout,
        )

    def __repr__(self) -> str:
        return f"RedisEventStore(prefix={self._key('')!r})"

    async def add(self, event_id: str, ttl: float) -> bool:
        """Record ``event_id`` for ``ttl`` seconds: True if it was new."""
        full = self._key("webhook_event", event_id)
        ms = max(1, int(ttl * 1000))
        # A unique token, so that a retry after a lost reply (the SET applied, its answer
        # gone) recognises its own write instead of calling the event a duplicate.
        token = secrets.token_hex(16).encode()

        async def claim() -> bool:
            if await self.redis.set(full, token, px=ms, nx=True):
                return True
            return bool(await self.redis.get(full) == token)

        return await self._call("a webhook event", claim)

    async def forget(self, event_id: str) -> None:
        """Drop ``event_id``: a later delivery of it is taken again."""
        full = self._key("webhook_event", event_id)
        await self._call("a webhook event", lambda: self.redis.delete(full), patient=False)


# --- OAuth tokens (issue 15) ------------------------------------------------------------------

# KEYS[1]: the token entry. ARGV[1]: the fingerprint of the token to drop. Deletes the entry
# only while it is still that token ("<fingerprint> <expires_at> <lifetime> <token>").
_DROP_TOKEN = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class TokenCacheUnavailableError(TangoError):
    """The shared token cache (Redis) did not answer in time; nothing was sent."""


@tolerant_repr
class RedisTokenCache(_RedisBacked):
    """OAuth tokens shared through Redis by every process and host that uses one OAuth
    identity: ``OAuth(..., token_cache=RedisTokenCache("redis://cache:6379/0"))``.

    One entry per identity (``{namespace}:oauth:token:{key}``, the key a hash of token
    URL, client ID, username and audience; never a secret), expiring with its token. The
    token is stored as text: it is a secret, so protect the Redis (network access,
    AUTH/ACLs, TLS) as you would the client secret.

    Renewal is single flight across processes: the renewer takes a lock (``SET NX PX``
    with a random value, ``lock_ttl`` seconds at most, released by compare-and-delete);
    the others poll the entry every ``poll_interval`` seconds until the new token appears
    or the lock expires (a renewer that died), and then one of them takes over. So many
    workers starting at once make one token request, and Tango's daily token limit is
    spent once per token lifetime, not once per process.

    Redis unreachable: calls are retried for ``unavailable_timeout`` seconds, then raise
    TokenCacheUnavailableError (nothing sent; it never falls back to asking for tokens
    without the lock). ValidationError, before any connection is made, for
    ``lock_ttl`` not 0.01 to 3600 seconds, ``poll_interval`` not above 0 to 60 seconds,
    and as for every Redis store (``url_or_client``, ``namespace``,
    ``unavailable_timeout``, ``socket_timeout``).
    """

    _unavailable = TokenCacheUnavailableError

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        namespace: str = "tango_async",
        lock_ttl: float = 60.0,
        poll_interval: float = 0.05,
        unavailable_timeout: float = 10.0,
        socket_timeout: float = 2.0,
    ) -> None:
        lock = _seconds(lock_ttl, "lock_ttl", lo=0.01, hi=3600.0)
        poll = _seconds(poll_interval, "poll_interval", lo=0.0, hi=60.0, above=True)
        super().__init__(
            url_or_client,
            namespace=namespace,
            platform=None,
            unavailable_timeout=unavailable_timeout,
            socket_timeout=socket_timeout,
        )
        self.lock_ttl = lock
        self.poll_interval = poll
        self._drop = self.redis.register_script(_DROP_TOKEN)
        self._unlock = self.redis.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisTokenCache(prefix={self._token_key('')!r})"

    def bind(self, platform_name: str) -> None:
        """Tokens are keyed by their identity, not by platform: nothing to bind."""

    def _token_key(self, key: str) -> str:
        return f"{self.namespace}:oauth:token:{key}"

    def _lock_key(self, key: str) -> str:
        return f"{self.namespace}:oauth:lock:{key}"

    async def get(self, key: str) -> AccessToken | None:
        """The stored token, or None (none, expired, or an entry that does not read)."""
        full = self._token_key(key)
        raw: Any = await self._call("reading an OAuth token", lambda: self.redis.get(full))
        if raw is None:
            return None
        parts = _text(raw).split(" ", 3)
        if len(parts) != 4:
            return None
        try:
            expires_at, lifetime = float(parts[1]), float(parts[2])
        except ValueError:
            return None
        token = AccessToken.build(parts[3], expires_at=expires_at, lifetime=lifetime)
        if token is None or token.fingerprint != parts[0]:
            return None
        return token

    async def set(self, key: str, token: AccessToken) -> None:
        """Store ``token`` for its lifetime (Redis's TTL; whether it is still fresh is
        read from its ``expires_at`` by each client's own clock)."""
        ms = max(1, int(token.lifetime * 1000))
        full = self._token_key(key)
        await self._call(
            "storing an OAuth token",
            lambda: self.redis.set(
                full,
                f"{token.fingerprint} {token.expires_at!r} {token.lifetime!r} {token.reveal()}",
                px=ms,
            ),
        )

    async def invalidate(self, key: str, token: AccessToken) -> None:
        full = self._token_key(key)
        await self._call(
            "dropping an OAuth token",
            lambda: self._drop(keys=[full], args=[token.fingerprint]),
            patient=False,
        )

    async def lock(self, key: str, ttl: float) -> object | None:
        """Take the renewal lock for ``min(ttl, lock_ttl)`` seconds: its random value, or
        None while another holder has it."""
        handle = secrets.token_hex(16)
        full = self._lock_key(key)
        ms = max(10, int(min(ttl, self.lock_ttl) * 1000))
        got: Any = await self._call(
            "the OAuth renewal lock", lambda: self.redis.set(full, handle, nx=True, px=ms)
        )
        return handle if got else None

    async def unlock(self, key: str, handle: object) -> None:
        if not isinstance(handle, str):
            return
        full = self._lock_key(key)
        await self._call(
            "the OAuth renewal lock",
            lambda: self._unlock(keys=[full], args=[handle]),
            patient=False,
        )

    async def wait(self, key: str, at_most: float) -> None:
        """Sleep one poll interval (real time: other processes fill the entry)."""
        await asyncio.sleep(min(self.poll_interval, at_most))
