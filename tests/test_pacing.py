"""The in-process limiter and cooldown store, on their own (no network)."""

from __future__ import annotations

import asyncio

import pytest

import tango_async as ta
from tango_async.testing import SandboxClock

RATE = 50.0  # 21 ms spacing with the 5% margin: fast, yet far above timer resolution


async def test_spacing_includes_the_margin() -> None:
    limiter = ta.LocalRateLimiter(1.0)
    assert limiter.spacing == pytest.approx(1.05)
    assert ta.LocalRateLimiter(2.0, margin=0.1).spacing == pytest.approx(0.55)


async def test_concurrent_acquires_are_spaced_and_fifo() -> None:
    clock = SandboxClock(frozen=True)  # sleeps jump the clock: exact, and no real time
    limiter = ta.LocalRateLimiter(RATE, clock=clock)
    times: dict[int, float] = {}

    async def take(i: int) -> None:
        await limiter.acquire()
        times[i] = clock.monotonic()

    t0 = clock.monotonic()
    tasks = []
    for i in range(20):
        tasks.append(asyncio.create_task(take(i)))
        await asyncio.sleep(0)  # arrival order 0, 1, 2, ...
    await asyncio.gather(*tasks)
    order = sorted(times, key=times.__getitem__)
    assert order == list(range(20))  # first come, first served
    assert [times[i] - t0 for i in order] == pytest.approx([i * limiter.spacing for i in range(20)])


class LateClock(SandboxClock):
    """A frozen clock whose sleepers all wake ``late`` seconds after their deadline."""

    def __init__(self, late: float) -> None:
        super().__init__(frozen=True)
        self.late = late

    async def sleep(self, seconds: float) -> None:
        await super().sleep(max(0.0, seconds) + self.late)


async def test_lateness_does_not_accumulate() -> None:
    clock = LateClock(late=0.004)  # every wake 4 ms late, a fifth of the 21 ms spacing
    limiter = ta.LocalRateLimiter(RATE, clock=clock)
    t0 = clock.monotonic()
    stamps = []
    for _ in range(50):
        await limiter.acquire()
        stamps.append(clock.monotonic() - t0)
    # Slot k is due k * spacing after the first, however late each wake was: it is taken
    # at most one wake's lateness after it was due, never 50 latenesses.
    for k, t in enumerate(stamps):
        assert k * limiter.spacing - 1e-9 <= t <= k * limiter.spacing + 0.004 + 1e-9


async def test_the_write_gate_spaces_from_the_real_write() -> None:
    clock = SandboxClock(frozen=True)
    limiter = ta.LocalRateLimiter(RATE, clock=clock)
    first = await limiter.before_write()
    t0 = clock.monotonic()
    second = asyncio.create_task(limiter.before_write())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not second.done()  # the first is admitted but has not written yet
    clock.advance(0.5)  # it stalls half a second before its write (a GC pause, a handshake)
    limiter.after_write(first, written=True)
    token = await second
    # The second is admitted one spacing after the first really went out, not after its
    # admission.
    assert clock.monotonic() - t0 == pytest.approx(0.5 + limiter.spacing)
    limiter.after_write(token, written=False)  # ended unwritten: the gate moves on
    third = await limiter.before_write()
    assert clock.monotonic() - t0 == pytest.approx(0.5 + 2 * limiter.spacing)
    limiter.after_write(third, written=True)
    limiter.after_write(third, written=True)  # a second report is ignored


async def test_cancelled_waiter_spends_no_slot() -> None:
    limiter = ta.LocalRateLimiter(5.0)  # 0.21 s spacing
    loop = asyncio.get_running_loop()
    await limiter.acquire()  # slot 1 at t0
    t0 = loop.time()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await limiter.acquire()  # takes slot 2: not pushed to slot 3 by the cancelled one
    assert loop.time() - t0 < 2 * limiter.spacing * 0.95
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_penalty_holds_everyone_back_and_repeated_429s_widen() -> None:
    clock = SandboxClock(frozen=True)
    limiter = ta.LocalRateLimiter(RATE, widen_step=0.5, max_widen=2.0, clock=clock)
    await limiter.acquire()
    await limiter.penalize(0.1)
    start = clock.monotonic()
    await limiter.acquire()
    assert clock.monotonic() - start == pytest.approx(0.1)
    assert limiter.widen == 1.0  # one 429: a pause, no widening
    await limiter.penalize(0.0)
    assert limiter.widen == 1.5
    await limiter.penalize(0.0)
    await limiter.penalize(0.0)
    assert limiter.widen == 2.0  # capped
    await limiter.acquire()
    t1 = clock.monotonic()
    await limiter.acquire()
    assert clock.monotonic() - t1 == pytest.approx(limiter.spacing * 2.0)


async def test_widening_passes_after_a_quiet_window() -> None:
    limiter = ta.LocalRateLimiter(RATE, widen_window=0.05)
    await limiter.penalize(0.0)
    await limiter.penalize(0.0)
    assert limiter.widen > 1.0
    await asyncio.sleep(0.06)
    await limiter.acquire()
    assert limiter.widen == 1.0


async def test_cooldown_store_claim_extend_release() -> None:
    store = ta.LocalCooldownStore()
    assert await store.claim("k", 0.2) == 0.0
    left = await store.claim("k", 0.2)
    assert 0.0 < left <= 0.2
    await store.release("k")
    assert await store.claim("k", 0.2) == 0.0
    await asyncio.sleep(0.21)
    assert await store.claim("k", 0.2) == 0.0  # expired
    await store.extend("k", 5.0)
    assert await store.claim("k", 0.2) > 4.0


def test_limiter_and_store_satisfy_the_protocols() -> None:
    assert isinstance(ta.LocalRateLimiter(), ta.RateLimiter)
    assert isinstance(ta.LocalCooldownStore(), ta.CooldownStore)
    with pytest.raises(ta.ValidationError):
        ta.LocalRateLimiter(0)
    with pytest.raises(ta.ValidationError):
        ta.LocalRateLimiter(1.0, margin=1.5)
