"""Order pacing and resend cooldowns shared by processes and hosts, on Redis (``redis`` extra).

One platform credential has one 1-TPS budget and one cooldown per order, however many
workers use it. Pass these to every client that shares the credential::

    from tango_async.redis import RedisCooldownStore, RedisRateLimiter

    limiter = RedisRateLimiter("redis://cache:6379/0", rate=1.0)
    cooldowns = RedisCooldownStore("redis://cache:6379/0", cooldown=30.0)
    async with TangoClient(rate_limiter=limiter, cooldown_store=cooldowns) as tango:
        ...

The limiter is GCRA with no burst, in "reserve a slot" form: one Lua script reads Redis's
own clock (TIME), books the next free slot and answers how long to wait *relative to
Redis's clock*, so the hosts' clocks never matter. Redis unreachable or slow: the call
waits with backoff up to ``unavailable_timeout`` seconds, then raises
RateLimiterUnavailableError; it never sends unthrottled, and it works again as soon as
Redis answers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ._exceptions import TangoError, ValidationError
from ._ratelimit import Widening, checked_spacing
from ._unresolved import STATES, UnresolvedOrder, UnresolvedStoreError

__all__ = [
    "RateLimiterUnavailableError",
    "RedisCooldownStore",
    "RedisRateLimiter",
    "RedisUnresolvedStore",
]

log = logging.getLogger("tango_async")
T = TypeVar("T")

# KEYS[1]: the schedule (next free slot, microseconds on Redis's clock)
# ARGV: interval_us, max_ahead_us, ttl_ms. Returns {wait_us, booked}: booked 1 = the slot
# is ours after wait_us; booked 0 = the schedule is full that far ahead, ask again then.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, tat)
local ahead = slot - now
if ahead > tonumber(ARGV[2]) then
  return {ahead - tonumber(ARGV[2]), 0}
end
redis.call('SET', KEYS[1], string.format('%d', slot + tonumber(ARGV[1])), 'PX', ARGV[3])
return {ahead, 1}
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
    """The shared limiter or cooldown store (Redis) did not answer in time; nothing was sent."""


def _client(url_or_client: str | aioredis.Redis, timeout: float) -> aioredis.Redis:
    if isinstance(url_or_client, str):
        return aioredis.Redis.from_url(
            url_or_client,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
    if not isinstance(url_or_client, aioredis.Redis):
        raise ValidationError("url_or_client", "must be a redis:// URL or a redis.asyncio.Redis")
    return url_or_client


class _RedisBacked:
    """Fail-closed calls to Redis: retried with capped backoff for ``unavailable_timeout``."""

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        namespace: str,
        platform: str | None,
        unavailable_timeout: float,
        socket_timeout: float,
    ) -> None:
        if not isinstance(namespace, str) or not namespace.strip():
            raise ValidationError("namespace", "must be a non-empty string")
        if unavailable_timeout < 0:
            raise ValidationError("unavailable_timeout", "must be at least 0")
        self.redis = _client(url_or_client, socket_timeout)
        self.namespace = namespace
        self.platform = platform
        self.unavailable_timeout = unavailable_timeout

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
        delay = 0.05
        while True:
            try:
                return await fn()
            except (RedisError, OSError) as e:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._unavailable(
                        f"Redis did not answer ({type(e).__name__}) for "
                        f"{self.unavailable_timeout:g} s; {what} {self._consequence}"
                    ) from None
                log.warning("Redis unavailable (%s) for %s; retrying", type(e).__name__, what)
                await asyncio.sleep(min(delay * (1 + random.random() * 0.25), left))
                delay = min(delay * 2, 2.0)

    async def aclose(self) -> None:
        """Close the Redis connections this object opened."""
        await self.redis.aclose()


class RedisRateLimiter(_RedisBacked):
    """A rate limiter shared through Redis: ``rate`` slots per second for everyone sharing
    the namespace and platform, no burst, first come first served within a process.

    Slots are ``(1 / rate) * (1 + margin)`` apart (5% margin by default, as in-process).
    A worker that wakes later than ``late_tolerance`` after its slot (default: the margin,
    ``spacing - 1/rate``; a stalled event loop, a paused VM) books again instead of sending
    closer than ``1/rate`` to the next worker's slot. Bookings go
    at most ``max_ahead`` seconds ahead. ``penalize`` (after a 429) pushes the shared
    schedule forward for every worker; repeated 429s widen this process's spacing.
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
    ) -> None:
        spacing = checked_spacing(rate, margin, rate_field="rate", margin_field="margin")
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
        self.max_ahead = max(max_ahead, self.spacing)
        # Late by more than the margin, sending would come closer than 1/rate to the next
        # worker's slot: book again instead.
        self.late_tolerance = (
            late_tolerance
            if late_tolerance is not None
            else max(0.001, self.spacing - 1.0 / self.rate)
        )
        self._reserve = self.redis.register_script(_RESERVE)
        self._push = self.redis.register_script(_PUSH)
        self._fifo = asyncio.Lock()
        self._widening = Widening(widen_step, max_widen, widen_window)

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter(rate={self.rate}, key={self._key('orders', 'schedule')!r}, "
            f"widen={self.widen:.2f})"
        )

    @property
    def widen(self) -> float:
        """This process's widening factor of the spacing (1.0 when no recent 429)."""
        return self._widening.factor

    async def acquire(self) -> None:
        """Book the next shared slot and wait for it (cancel-safe: a cancelled wait leaves
        its slot unused, which costs the others nothing but that slot)."""
        key = self._key("orders", "schedule")
        async with self._fifo:
            while True:
                args = [
                    int(self.spacing * self.widen * 1_000_000),  # interval, microseconds
                    int(self.max_ahead * 1_000_000),  # how far ahead a booking may go
                    int((self.max_ahead + self.spacing) * 1000) + 1000,  # key TTL, ms
                ]
                wait_us, booked = await self._call(
                    "an order slot", functools.partial(self._reserve, keys=[key], args=args)
                )
                # Lateness is measured on this host's clock from the answer, never compared
                # with another host's clock.
                answered = time.monotonic()
                wait = int(wait_us) / 1_000_000
                if wait > 0:
                    await asyncio.sleep(wait)
                if not booked:
                    continue
                late = (time.monotonic() - answered) - wait
                if late > self.late_tolerance:
                    log.debug("woke %.3f s after the booked slot; booking again", late)
                    continue
                return

    async def penalize(self, delay: float) -> None:
        """After a 429: no worker's next slot comes sooner than ``delay`` seconds."""
        self._widening.record()
        key = self._key("orders", "schedule")
        delay_us = int(delay * 1_000_000)
        ttl_ms = int((delay + self.max_ahead) * 1000) + 1000
        await self._call(
            "a rate-limit pause", lambda: self._push(keys=[key], args=[delay_us, ttl_ms])
        )


class RedisCooldownStore(_RedisBacked):
    """Resend cooldowns shared through Redis: one resend per order / line item per
    ``cooldown`` seconds across every worker.

    ``claim`` is SET NX PX (atomically, so two workers never both resend); PTTL is the
    ``retry_after`` of the others. The claim is re-extended when the server answers, and
    released (only if still ours) when the resend certainly did not happen.
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
        super().__init__(
            url_or_client,
            namespace=namespace,
            platform=platform,
            unavailable_timeout=unavailable_timeout,
            socket_timeout=socket_timeout,
        )
        self.cooldown = cooldown
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


class RedisUnresolvedStore(_RedisBacked):
    """Order creations with an unknown outcome, kept in Redis: they survive a restart and
    are seen by every process and host that shares the namespace and platform.

    One hash per entry (``…:unresolved:ref:<externalRefID>``, expiring ``ttl`` seconds
    after its last change, 30 days by default), indexed by a sorted set of all entries
    and one per content key, oldest first. Redis unreachable: calls wait up to
    ``unavailable_timeout`` seconds, then raise UnresolvedStoreError (a create then sends
    nothing).
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
        super().__init__(
            url_or_client,
            namespace=namespace,
            platform=platform,
            unavailable_timeout=unavailable_timeout,
            socket_timeout=socket_timeout,
        )
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < 2**31:
            raise ValidationError("ttl", "must be a number of seconds greater than 0")
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
