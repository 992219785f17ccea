"""Issue 12, point 6 (the constructor part): the arguments of Sandbox, SandboxClock, the
sandbox's proxy, the limiters and stores (local and Redis), PacingPolicy, and the sandbox
process's flags refuse non-finite, out-of-range and wrong-typed values with
ValidationError (a usage error, exit 2, for the flags); a value that is accepted works at
its first use: no hang, no ZeroDivisionError, no OverflowError, nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import subprocess
import sys
import types
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tango_async as ta
import tango_async.redis as redis_module
from tango_async._cooldown import ResendLinks
from tango_async._pacing import RoutePacing
from tango_async.redis import RedisCooldownStore, RedisRateLimiter, RedisUnresolvedStore
from tango_async.testing import Sandbox, SandboxClock
from tango_async.testing import __main__ as sandbox_process
from tango_async.testing._network import DelayingProxy

from .conftest import order_request
from .redis_support import redis_for_tests

INF, NAN = math.inf, math.nan
SUBNORMAL = 1e-320  # 1 / SUBNORMAL is inf: once a ZeroDivisionError at the first call
HUGE_INT = 10**400  # past float's range: once an OverflowError in float()
URL = "redis://127.0.0.1:6379/15"  # constructing connects to nothing: any URL will do
FIRST_USE = 10.0  # real seconds a first use may take at most (it takes milliseconds)

BASE_SETTINGS = settings(
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def fixed(max_examples: int) -> settings:
    return settings(BASE_SETTINGS, max_examples=max_examples)


# Anything a caller might pass where a number is meant: hostile floats and ints, bools,
# strings, None, containers.
ANY_VALUE = st.one_of(
    st.sampled_from(
        [
            INF,
            -INF,
            NAN,
            SUBNORMAL,
            5e-324,
            1e-300,
            1e308,
            -0.0,
            0,
            -1,
            1,
            0.5,
            2**63,
            HUGE_INT,
            -HUGE_INT,
            True,
            False,
            None,
            "1",
            "",
            b"1",
            [1],
            1j,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**320),
    st.text(max_size=6),
)


def run(coro: Awaitable[Any]) -> Any:
    """Run a first use in a fresh loop, within FIRST_USE real seconds (a hang fails)."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, FIRST_USE)

    return asyncio.run(bounded())


def _learn(links: ResendLinks, oid: str, line_item: str) -> None:
    order = types.SimpleNamespace(reference_order_id=oid, reference_line_item_id=line_item)
    links.learn(order)  # type: ignore[arg-type]


# --- the table: every reproduction, refused at construction -----------------------------

BAD: list[tuple[str, Callable[[], object], str]] = [
    # Sandbox
    ("sandbox order_rate inf", lambda: Sandbox(order_rate=INF), "order_rate"),
    ("sandbox order_rate nan", lambda: Sandbox(order_rate=NAN), "order_rate"),
    ("sandbox order_rate subnormal", lambda: Sandbox(order_rate=SUBNORMAL), "order_rate"),
    ("sandbox order_rate 0", lambda: Sandbox(order_rate=0), "order_rate"),
    ("sandbox order_rate str", lambda: Sandbox(order_rate="1"), "order_rate"),  # TypeError
    ("sandbox order_rate bool", lambda: Sandbox(order_rate=True), "order_rate"),
    ("sandbox read_rate -1", lambda: Sandbox(read_rate=-1), "read_rate"),
    ("sandbox read_rate huge int", lambda: Sandbox(read_rate=HUGE_INT), "read_rate"),
    ("sandbox resend_cooldown nan", lambda: Sandbox(resend_cooldown=NAN), "resend_cooldown"),
    ("sandbox resend_cooldown -1", lambda: Sandbox(resend_cooldown=-1), "resend_cooldown"),
    ("sandbox resend_cooldown None", lambda: Sandbox(resend_cooldown=None), "resend_cooldown"),
    ("sandbox pending_for inf", lambda: Sandbox(pending_for=INF), "pending_for"),
    ("sandbox pending_for 1e308", lambda: Sandbox(pending_for=1e308), "pending_for"),
    ("sandbox max_window 0", lambda: Sandbox(max_window=0), "max_window"),
    ("sandbox max_window float", lambda: Sandbox(max_window=100.0), "max_window"),
    ("sandbox max_window huge", lambda: Sandbox(max_window=10**5000), "max_window"),
    ("sandbox max_range_days 1e308", lambda: Sandbox(max_range_days=1e308), "max_range_days"),
    ("sandbox max_range_days 0", lambda: Sandbox(max_range_days=0), "max_range_days"),
    ("sandbox port 70000", lambda: Sandbox(port=70000), "port"),  # OverflowError at start
    ("sandbox port str", lambda: Sandbox(port="x"), "port"),  # gaierror at start
    ("sandbox port bool", lambda: Sandbox(port=True), "port"),
    ("sandbox host int", lambda: Sandbox(host=1), "host"),
    ("sandbox connect_delay nan", lambda: Sandbox(connect_delay=NAN), "connect_delay"),
    ("sandbox connect_delay -1", lambda: Sandbox(connect_delay=-1), "connect_delay"),
    ("sandbox latency inf", lambda: Sandbox(latency=INF), "latency"),  # every answer hung
    ("sandbox latency 1e9", lambda: Sandbox(latency=1e9), "latency"),
    ("sandbox keepalive nan", lambda: Sandbox(keepalive_timeout=NAN), "keepalive_timeout"),
    ("sandbox keepalive 0", lambda: Sandbox(keepalive_timeout=0), "keepalive_timeout"),
    ("sandbox platform_name int", lambda: Sandbox(platform_name=5), "platform_name"),
    ("sandbox platform_name empty", lambda: Sandbox(platform_name=""), "platform_name"),
    ("sandbox platform_name colon", lambda: Sandbox(platform_name="a:b"), "platform_name"),
    ("sandbox platform_key surrogate", lambda: Sandbox(platform_key="\ud800"), "platform_key"),
    ("sandbox platform_key bytes", lambda: Sandbox(platform_key=b"k"), "platform_key"),
    ("sandbox clock str", lambda: Sandbox(clock="now"), "clock"),
    ("sandbox clock SystemClock", lambda: Sandbox(clock=ta.SystemClock()), "clock"),
    ("sandbox record str", lambda: Sandbox(record="yes"), "record"),
    ("sandbox tls int", lambda: Sandbox(tls=1), "tls"),
    ("sandbox contract str", lambda: Sandbox(contract="strict"), "contract"),
    # SandboxClock
    ("clock frozen str", lambda: SandboxClock(frozen="yes"), "frozen"),
    ("clock start str", lambda: SandboxClock(start="2024-01-01"), "start"),
    ("clock start max", lambda: SandboxClock(start=datetime.max), "start"),
    ("clock start min", lambda: SandboxClock(start=datetime.min), "start"),
    ("clock start 9999", lambda: SandboxClock(start=datetime(9999, 12, 31, tzinfo=UTC)), "start"),
    ("clock advance inf", lambda: SandboxClock().advance(INF), "seconds"),  # OverflowError
    ("clock advance nan", lambda: SandboxClock().advance(NAN), "seconds"),
    ("clock advance -1", lambda: SandboxClock().advance(-1), "seconds"),
    ("clock advance str", lambda: SandboxClock().advance("1"), "seconds"),
    ("clock advance past 9000", lambda: SandboxClock().advance(1e12), "seconds"),
    (
        "clock frozen sleep inf",
        lambda: asyncio.run(SandboxClock(frozen=True).sleep(INF)),
        "seconds",
    ),
    ("clock sleep str", lambda: asyncio.run(SandboxClock().sleep("1")), "seconds"),
    # the sandbox's proxy
    (
        "proxy connect_delay nan",
        lambda: DelayingProxy("127.0.0.1", 80, connect_delay=NAN),
        "connect_delay",
    ),
    ("proxy target_port str", lambda: DelayingProxy("127.0.0.1", "80"), "target_port"),
    ("proxy target_port 0", lambda: DelayingProxy("127.0.0.1", 0), "target_port"),
    ("proxy port 65536", lambda: DelayingProxy("127.0.0.1", 80, port=65536), "port"),
    ("proxy host None", lambda: DelayingProxy(None, 80), "target_host"),
    ("proxy on_accept", lambda: DelayingProxy("127.0.0.1", 80, on_accept=1), "on_accept"),
    # LocalRateLimiter (rate and margin are named as TangoClient's arguments)
    ("limiter rate huge int", lambda: ta.LocalRateLimiter(HUGE_INT), "order_rate"),
    ("limiter rate subnormal", lambda: ta.LocalRateLimiter(SUBNORMAL), "order_rate"),
    ("limiter rate bool", lambda: ta.LocalRateLimiter(True), "order_rate"),
    ("limiter margin nan", lambda: ta.LocalRateLimiter(margin=NAN), "rate_margin"),
    ("limiter widen_step nan", lambda: ta.LocalRateLimiter(widen_step=NAN), "widen_step"),
    ("limiter widen_step -1", lambda: ta.LocalRateLimiter(widen_step=-1), "widen_step"),
    ("limiter max_widen 1e308", lambda: ta.LocalRateLimiter(max_widen=1e308), "max_widen"),
    ("limiter max_widen 0.5", lambda: ta.LocalRateLimiter(max_widen=0.5), "max_widen"),
    ("limiter widen_window str", lambda: ta.LocalRateLimiter(widen_window="x"), "widen_window"),
    ("limiter widen_window inf", lambda: ta.LocalRateLimiter(widen_window=INF), "widen_window"),
    ("limiter clock", lambda: ta.LocalRateLimiter(clock=object()), "clock"),
    # cooldown stores, resend links, unresolved stores (local)
    ("cooldown store clock", lambda: ta.LocalCooldownStore(clock=5), "clock"),
    ("resend links -1", lambda: ResendLinks(-1), "max_pairs"),  # KeyError at the first learn
    ("resend links float", lambda: ResendLinks(10.0), "max_pairs"),
    ("unresolved max_entries 0", lambda: ta.LocalUnresolvedStore(0), "max_entries"),
    ("sqlite path int", lambda: ta.SqliteUnresolvedStore(5), "path"),  # TypeError
    # PacingPolicy
    ("pacing min_rate tiny", lambda: ta.PacingPolicy(min_rate=1e-300), "min_rate"),
    ("pacing reads tiny", lambda: ta.PacingPolicy(reads=1e-300), "reads"),
    ("pacing resends huge int", lambda: ta.PacingPolicy(resends=HUGE_INT), "resends"),
    ("pacing decrease str", lambda: ta.PacingPolicy(decrease="0.5"), "decrease"),  # TypeError
    ("pacing decrease nan", lambda: ta.PacingPolicy(decrease=NAN), "decrease"),
    ("pacing decrease bool", lambda: ta.PacingPolicy(decrease=True), "decrease"),
    ("pacing hold inf", lambda: ta.PacingPolicy(hold=INF), "hold"),
    ("pacing quiet bool", lambda: ta.PacingPolicy(quiet=True), "quiet"),
    # Redis
    ("redis url", lambda: RedisRateLimiter("not a url"), "url_or_client"),  # ValueError
    ("redis url port", lambda: RedisRateLimiter("redis://h:99999/0"), "url_or_client"),
    ("redis url type", lambda: RedisRateLimiter(5), "url_or_client"),
    ("redis rate huge int", lambda: RedisRateLimiter(URL, rate=HUGE_INT), "rate"),
    ("redis rate subnormal", lambda: RedisRateLimiter(URL, rate=SUBNORMAL), "rate"),
    ("redis margin nan", lambda: RedisRateLimiter(URL, margin=NAN), "margin"),
    ("redis max_ahead nan", lambda: RedisRateLimiter(URL, max_ahead=NAN), "max_ahead"),
    ("redis max_ahead inf", lambda: RedisRateLimiter(URL, max_ahead=INF), "max_ahead"),
    (
        "redis late_tolerance str",
        lambda: RedisRateLimiter(URL, late_tolerance="1"),
        "late_tolerance",
    ),
    (
        "redis agreement_ttl tiny",
        lambda: RedisRateLimiter(URL, agreement_ttl=1e-4),
        "agreement_ttl",
    ),  # PX 0
    (
        "redis written_ttl 1e308",
        lambda: RedisRateLimiter(URL, written_ttl=1e308),
        "written_ttl",
    ),  # OverflowError
    ("redis widen_step nan", lambda: RedisRateLimiter(URL, widen_step=NAN), "widen_step"),
    ("redis max_widen inf", lambda: RedisRateLimiter(URL, max_widen=INF), "max_widen"),
    (
        "redis unavailable nan",
        lambda: RedisRateLimiter(URL, unavailable_timeout=NAN),
        "unavailable_timeout",
    ),  # hung
    (
        "redis unavailable str",
        lambda: RedisRateLimiter(URL, unavailable_timeout="x"),
        "unavailable_timeout",
    ),
    ("redis socket_timeout -1", lambda: RedisRateLimiter(URL, socket_timeout=-1), "socket_timeout"),
    ("redis namespace blank", lambda: RedisRateLimiter(URL, namespace=" "), "namespace"),
    (
        "redis namespace surrogate",
        lambda: RedisRateLimiter(URL, namespace="\udc80"),
        "namespace",
    ),  # UnicodeEncodeError
    ("redis platform int", lambda: RedisRateLimiter(URL, platform=5), "platform"),
    ("redis cooldown nan", lambda: RedisCooldownStore(URL, cooldown=NAN), "cooldown"),
    ("redis cooldown bool", lambda: RedisCooldownStore(URL, cooldown=True), "cooldown"),
    ("redis cooldown namespace", lambda: RedisCooldownStore(URL, namespace=""), "namespace"),
    (
        "redis unresolved ttl 0.5",
        lambda: RedisUnresolvedStore(URL, ttl=0.5),
        "ttl",
    ),  # EXPIRE 0: the entry was lost
    ("redis unresolved ttl nan", lambda: RedisUnresolvedStore(URL, ttl=NAN), "ttl"),
    (
        "redis unresolved timeout",
        lambda: RedisUnresolvedStore(URL, unavailable_timeout=INF),
        "unavailable_timeout",
    ),
]


@pytest.mark.parametrize(
    ("make", "field"), [(m, f) for _, m, f in BAD], ids=[label for label, _, _ in BAD]
)
def test_bad_arguments_are_a_validation_error(make: Callable[[], object], field: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        make()
    assert e.value.field == field
    assert isinstance(e.value, ValueError)  # what some of them raised before: still caught


def test_the_defaults_and_the_edges_are_accepted() -> None:
    Sandbox()
    Sandbox(
        order_rate=None,
        read_rate=1 / 86_400,
        resend_cooldown=0,
        pending_for=366 * 86_400,
        max_window=1,
        max_range_days=36_525,
        port=65535,
        connect_delay=3600,
        latency=0,
        keepalive_timeout=86_400,
        platform_key="",
        contract=False,
    )
    SandboxClock(start=datetime(1970, 1, 1, tzinfo=UTC))
    ta.LocalRateLimiter(1e308, margin=0, widen_step=0, max_widen=1, widen_window=0)
    ta.PacingPolicy(reads=1 / 86_400, min_rate=1e6, decrease=1e-300, hold=1e300)
    RedisRateLimiter(URL, rate=1e308, max_ahead=0, agreement_ttl=0.001, written_ttl=365 * 86400)
    RedisUnresolvedStore(URL, ttl=1)
    DelayingProxy("127.0.0.1", 1, port=0, connect_delay=3600, on_accept=lambda: None)


# --- first uses of accepted values --------------------------------------------------------


async def _use_local_limiter(limiter: ta.LocalRateLimiter, clock: SandboxClock) -> float:
    """Slots, writes and 429s on a frozen clock (sleeps jump it): the seconds they took."""
    start = clock.monotonic()
    for _ in range(3):
        await limiter.acquire()
        token = await limiter.before_write()
        limiter.after_write(token, written=True)
        await limiter.penalize(0.5)
        _ = limiter.widen, repr(limiter)
    return clock.monotonic() - start


LIMITER_ARGS = ["rate", "margin", "widen_step", "max_widen", "widen_window"]


@fixed(400)
@given(st.sampled_from(LIMITER_ARGS), ANY_VALUE)
def test_any_local_limiter_argument_is_refused_or_works(name: str, value: Any) -> None:
    clock = SandboxClock(frozen=True)
    try:
        limiter = ta.LocalRateLimiter(**{name: value}, clock=clock)
    except ta.ValidationError:
        return
    took = run(_use_local_limiter(limiter, clock))
    # three slots of at most a day times the widest factor, plus the 429s' pauses
    assert 0 <= took <= 3 * 86_400 * 100 + 2
    assert 0 < limiter.spacing <= 86_400 * 1.0000001


async def _use_pacing(policy: ta.PacingPolicy) -> float:
    clock = SandboxClock(frozen=True)
    pacing = RoutePacing(policy, ta.LocalRateLimiter(1000.0, clock=clock), clock)
    start = clock.monotonic()
    for method, path, mode in (
        ("GET", "/orders", "read"),
        ("POST", "/orders/RA1-2/resends", "resend"),
    ):
        pace = pacing.for_request(method, path, mode)
        if pace is None:
            continue
        for _ in range(4):  # a 429, then slow start, recovery, probe...
            started = await pace.slot()
            await pace.rate_limited(1.0, started)
            pace.succeeded()
            clock.advance(0.25)
        await pace.slot()
    return clock.monotonic() - start


PACING_ARGS = [
    "reads",
    "resends",
    "adaptive",
    "every_endpoint",
    "decrease",
    "min_rate",
    "recovery",
    "hold",
    "probe",
    "quiet",
]


@fixed(400)
@given(st.sampled_from(PACING_ARGS), ANY_VALUE)
def test_any_pacing_policy_argument_is_refused_or_works(name: str, value: Any) -> None:
    try:
        policy = ta.PacingPolicy(**{name: value})
    except ta.ValidationError:
        return
    took = run(_use_pacing(policy))
    assert 0 <= took <= 10 * 86_400  # each wait at most a day
    with pytest.raises(ta.ValidationError):
        policy.with_options(decrease=NAN)


@fixed(300)
@given(
    st.one_of(ANY_VALUE, st.datetimes(), st.datetimes(timezones=st.just(UTC))), ANY_VALUE, ANY_VALUE
)
def test_any_sandbox_clock_argument_is_refused_or_works(
    start: Any, frozen: Any, seconds: Any
) -> None:
    try:
        clock = SandboxClock(start=start, frozen=frozen)
    except ta.ValidationError:
        return
    repr(clock)
    assert 1970 <= clock.now().year < 9000
    with contextlib.suppress(ta.ValidationError):
        clock.advance(seconds)
    with contextlib.suppress(ta.ValidationError):
        run(clock.sleep(seconds) if clock.frozen else clock.sleep(0))
    assert clock.now().year <= 9000  # never past it, so now() never overflows
    clock.freeze()
    run(clock.sleep(86_400))
    clock.now().isoformat()


def test_the_clock_stops_short_of_the_end_of_datetime() -> None:
    clock = SandboxClock(start=datetime(8999, 12, 31, tzinfo=UTC), frozen=True)
    clock.advance(3600)
    with pytest.raises(ta.ValidationError):
        clock.advance(86_400)  # 9000-01-01: refused, the clock did not move
    assert clock.now() == datetime(8999, 12, 31, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)  # the old message still matches


# The sandbox: started on a frozen clock and used by its own client: two orders (the second
# waits out the rate), a listing over a date range, a resend and a read of the order.
SANDBOX_ARGS = [
    "order_rate",
    "read_rate",
    "resend_cooldown",
    "pending_for",
    "max_window",
    "max_range_days",
    "platform_name",
    "platform_key",
    "keepalive_timeout",
    "latency",
    "connect_delay",
    "record",
]


async def _use_sandbox(sandbox: Sandbox) -> None:
    async with sandbox:
        try:
            client = sandbox.client(
                retry=ta.RetryPolicy(max_retries=0), result_window=min(sandbox.max_window, 10_000)
            )
        except ta.ValidationError as e:
            # the client's own rule: 5% margin on the rate, at most a day between orders
            assert e.field == "order_rate"
            assert sandbox.order_rate is not None and sandbox.order_rate * 86_400 < 1.05
            return
        async with client as tango:
            first = await tango.orders.create(order_request())
            await tango.orders.create(order_request(amount=11))
            end = sandbox.clock.now()
            days = min(2.0, sandbox.max_range_days or 2.0)
            per_page = min(sandbox.max_window, 100)  # a page must fit in the result window
            async for _ in tango.orders.list(
                start_date=end - timedelta(days=days), end_date=end, elements_per_block=per_page
            ):
                pass
            await tango.orders.resend(first.reference_order_id)
            order = await tango.orders.get(first.reference_order_id)
            assert order.status in ("PENDING", "COMPLETE")


@fixed(200)
@given(st.sampled_from(SANDBOX_ARGS), ANY_VALUE)
def test_any_sandbox_argument_is_refused_or_works(name: str, value: Any) -> None:
    if (
        name in ("latency", "connect_delay")
        and isinstance(value, (int, float))
        and (0.05 < value <= 3600)
    ):
        value = 0.01  # accepted, and would take that long for real: checked by the table
    try:
        sandbox = Sandbox(**{name: value}, clock=SandboxClock(frozen=True))
    except ta.ValidationError:
        return
    try:
        run(_use_sandbox(sandbox))
    except ta.RateLimitError:
        # the sandbox refusing a second GET sooner than 1/read_rate: what it was asked to do
        assert name == "read_rate" and sandbox.refused_reads == 1
    except ta.APIConnectionError as e:
        # a keep-alive shorter than the gap between two calls: the server closes the idle
        # connection as the client reuses it (a reset after sending), and with no retries
        # the create says it may have been sent; what such a server does to any client
        assert name == "keepalive_timeout" and isinstance(value, (int, float)) and value < 1
        assert e.maybe_sent


@fixed(200)
@given(st.sampled_from(["host", "port", "clock", "contract", "tls"]), ANY_VALUE)
def test_other_sandbox_arguments_are_refused_or_typed(name: str, value: Any) -> None:
    try:
        Sandbox(**{name: value})
    except ta.ValidationError:
        return
    except RuntimeError:  # tls=True without trustme installed: said so
        assert name == "tls"
        return
    if name == "port":
        assert isinstance(value, int) and 0 <= value <= 65535
    elif name == "host":
        assert isinstance(value, str)
    elif name in ("tls", "contract"):
        assert isinstance(value, bool)
    else:
        assert value is None


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


class _WouldWait(Exception):
    """A first use asked to sleep longer than a test may: the figure was finite and bounded."""


class _Sleeps:
    """The Redis module's asyncio with its sleeps checked: every wait finite, at least 0 and
    at most ``limit``; one longer than a moment ends the first use (_WouldWait)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.module = types.SimpleNamespace(
            **{k: getattr(asyncio, k) for k in dir(asyncio) if not k.startswith("_")}
        )
        self.module.sleep = self.sleep

    async def sleep(self, seconds: float) -> None:
        assert isinstance(seconds, float | int) and math.isfinite(seconds), seconds
        assert 0 <= seconds <= self.limit, seconds
        if seconds > 0.05:
            raise _WouldWait(seconds)
        await asyncio.sleep(seconds)


def _patched_sleeps(limit: float) -> Any:
    return mock.patch.object(redis_module, "asyncio", _Sleeps(limit).module)


REDIS_LIMITER_ARGS = [
    "rate",
    "margin",
    "max_ahead",
    "late_tolerance",
    "unavailable_timeout",
    "socket_timeout",
    "widen_step",
    "max_widen",
    "widen_window",
    "agreement_ttl",
    "written_ttl",
    "namespace",
    "platform",
]


async def _use_redis_limiter(limiter: RedisRateLimiter) -> None:
    try:
        for _ in range(2):
            await limiter.acquire()
            token = await limiter.before_write()
            limiter.after_write(token, written=True)
        await limiter.penalize(0.01)
        await limiter.acquire()
    except _WouldWait:
        pass
    finally:
        await limiter.aclose()


def _redis_options(name: str, value: Any, url: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "namespace": "test-args-" + uuid.uuid4().hex[:10],
        "unavailable_timeout": 0.0,
    }
    options[name] = value
    return options


def _redis_error_is_the_value(name: str, value: Any, error: Exception) -> bool:
    """A socket timeout too short for a Redis to answer in: RateLimiterUnavailableError
    (fail-closed, typed), as with a Redis that is down."""
    return (
        name == "socket_timeout"
        and isinstance(error, redis_module.RateLimiterUnavailableError | ta.UnresolvedStoreError)
        and value < 0.5
    )


@fixed(300)
@given(st.sampled_from(REDIS_LIMITER_ARGS), ANY_VALUE)
def test_any_redis_limiter_argument_is_refused_or_works(
    redis_url: str, name: str, value: Any
) -> None:
    options = _redis_options(name, value, redis_url)
    options.setdefault("rate", 1000.0)
    if name != "rate":
        options["rate"] = 1000.0
    try:
        limiter = RedisRateLimiter(redis_url, **options)
    except ta.ValidationError:
        return
    with _patched_sleeps(limit=86_400 * 100):
        try:
            run(_use_redis_limiter(limiter))
        except ta.TangoError as e:
            assert _redis_error_is_the_value(name, value, e), repr(e)


async def _use_redis_cooldowns(store: RedisCooldownStore) -> None:
    key = "RA1-" + uuid.uuid4().hex  # a drawn namespace may be shared by several examples
    try:
        assert await store.claim(key, store.cooldown) == 0.0
        left = await store.claim(key, store.cooldown)
        assert 0 <= left <= store.cooldown + 0.001
        await store.extend(key, store.cooldown)
        await store.release(key)
    finally:
        await store.aclose()


async def _use_redis_unresolved(store: RedisUnresolvedStore) -> None:
    now = datetime.now(UTC)
    ref, key = "ref-" + uuid.uuid4().hex, uuid.uuid4().hex
    entry = ta.UnresolvedOrder(ref, key, b"{}", "sending", now, now)
    try:
        await store.put(entry)
        got = await store.get(ref)
        assert got is not None and got.state == "sending"  # not lost to a short TTL
        assert [e.external_ref_id for e in await store.find(key)] == [ref]
        await store.remove(ref)
    finally:
        await store.aclose()


@fixed(300)
@given(
    st.sampled_from(
        ["cooldown", "ttl", "unavailable_timeout", "socket_timeout", "namespace", "platform"]
    ),
    ANY_VALUE,
)
def test_any_redis_store_argument_is_refused_or_works(
    redis_url: str, name: str, value: Any
) -> None:
    options = _redis_options(name, value, redis_url)
    store_class: Any = RedisUnresolvedStore if name == "ttl" else RedisCooldownStore
    try:
        store = store_class(redis_url, **options)
    except ta.ValidationError:
        return
    use = _use_redis_unresolved if name == "ttl" else _use_redis_cooldowns
    with _patched_sleeps(limit=86_400):
        try:
            run(use(store))
        except ta.TangoError as e:
            assert _redis_error_is_the_value(name, value, e), repr(e)
    if name == "platform" and value is not None:
        assert store.platform == value  # TangoClient's bind() keeps a platform given


async def test_a_too_short_unresolved_ttl_no_longer_loses_the_entry(redis_url: str) -> None:
    """Regression: ttl=0.5 passed the check, became EXPIRE 0, and Redis deleted the entry
    the moment it was written: an order in flight was forgotten."""
    with pytest.raises(ta.ValidationError, match="ttl"):
        RedisUnresolvedStore(redis_url, ttl=0.5)
    await _use_redis_unresolved(
        RedisUnresolvedStore(redis_url, ttl=1, namespace="test-" + uuid.uuid4().hex)
    )


# --- the sandbox process's flags ----------------------------------------------------------

BAD_FLAGS = [
    ["--order-rate", "inf"],
    ["--order-rate", "nan"],
    ["--order-rate", "1e-320"],
    ["--order-rate", "-1"],
    ["--order-rate", "x"],
    ["--read-rate", "1e999"],
    ["--resend-cooldown", "nan"],
    ["--resend-cooldown", "-1"],
    ["--pending-for", "1e308"],
    ["--chaos", "2"],
    ["--chaos", "nan"],
    ["--chaos-delay", "inf"],
    ["--chaos-seed", "1.5"],
    ["--chaos-faults", "nope"],
    ["--chaos-routes", "orders"],
    ["--connect-delay", "-1"],
    ["--connect-delay", "inf"],
    ["--keepalive-timeout", "0"],
    ["--keepalive-timeout", "nan"],
    ["--latency", "1e9"],
    ["--port", "70000"],
    ["--port", "-1"],
    ["--port", "x"],
    ["--platform-name", "a:b"],
    ["--platform-name", ""],
    ["--platform-key", "\udcff"],
    ["--ca-file", "x.pem"],
]


@pytest.mark.parametrize("argv", BAD_FLAGS, ids=" ".join)
def test_bad_flags_are_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    served = mock.AsyncMock()
    with mock.patch.object(sandbox_process, "serve", served), pytest.raises(SystemExit) as e:
        sandbox_process.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    served.assert_not_called()


FLAGS = [
    "--order-rate",
    "--read-rate",
    "--resend-cooldown",
    "--pending-for",
    "--chaos",
    "--chaos-delay",
    "--connect-delay",
    "--keepalive-timeout",
    "--latency",
    "--port",
]
FLAG_TEXT = st.one_of(
    st.sampled_from(
        [
            "inf",
            "-inf",
            "nan",
            "NaN",
            "1e-320",
            "1e999",
            "-0",
            "0",
            "1",
            "0.5",
            "65535",
            "65536",
            "1_000",
            "0x10",
            " 1 ",
            "",
            "true",
            "1e308",
            "-1e-9",
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.text(max_size=6),
)


@fixed(400)
@given(st.sampled_from(FLAGS), FLAG_TEXT)
def test_any_flag_value_is_a_usage_error_or_a_working_sandbox(flag: str, text: str) -> None:
    made: list[Sandbox] = []

    async def serve(args: Any, *, sandbox: Sandbox, **_: Any) -> None:
        made.append(sandbox)

    with (
        mock.patch.object(sandbox_process, "serve", serve),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        try:
            code = sandbox_process.main([f"{flag}={text}"])
        except SystemExit as e:
            assert e.code == 2
            assert not made
            return
    assert code == 0 and len(made) == 1
    sandbox = made[0]
    for rate in (sandbox.order_rate, sandbox.read_rate):
        assert rate is None or 1 / 86_400 <= rate <= 1e6
    for seconds in (
        sandbox.resend_cooldown,
        sandbox.pending_for,
        sandbox.latency,
        sandbox.connect_delay,
    ):
        assert 0 <= seconds <= 366 * 86_400


def test_the_process_exits_2_without_a_traceback() -> None:
    """The reproduction, as a process: ``--order-rate inf`` (and a port out of range)."""
    for flags in (["--order-rate", "inf"], ["--port", "99999"], ["--latency", "nan"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tango_async.testing", *flags],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "error: argument" in proc.stderr
        assert proc.stdout == ""  # nothing served
