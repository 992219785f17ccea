"""The in-process limiter and cooldown store, on their own (no network)."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

import tango_async as ta

RATE = 50.0  # 21 ms spacing with the 5% margin: fast, yet far above timer resolution


async def test_spacing_includes_the_margin() -> None:
    limiter = ta.LocalRateLimiter(1.0)
    assert limiter.spacing == pytest.approx(1.05)
    assert ta.LocalRateLimiter(2.0, margin=0.1).spacing == pytest.approx(0.55)


async def test_concurrent_acquires_are_spaced_and_fifo() -> None:
    limiter = ta.LocalRateLimiter(RATE)
    loop = asyncio.get_running_loop()
    times: dict[int, float] = {}

    async def take(i: int) -> None:
        await limiter.acquire()
        times[i] = loop.time()

    tasks = []
    for i in range(20):
        tasks.append(asyncio.create_task(take(i)))
        await asyncio.sleep(0)  # arrival order 0, 1, 2, ...
    await asyncio.gather(*tasks)
    order = sorted(times, key=times.__getitem__)
    assert order == list(range(20))  # first come, first served
    stamps = [times[i] for i in order]
    gaps = [b - a for a, b in pairwise(stamps)]
    assert min(gaps) >= limiter.spacing * 0.999  # no burst, ever


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
    limiter = ta.LocalRateLimiter(RATE, widen_step=0.5, max_widen=2.0)
    loop = asyncio.get_running_loop()
    await limiter.acquire()
    await limiter.penalize(0.1)
    start = loop.time()
    await limiter.acquire()
    assert loop.time() - start >= 0.099
    assert limiter.widen == 1.0  # one 429: a pause, no widening
    await limiter.penalize(0.0)
    assert limiter.widen == 1.5
    await limiter.penalize(0.0)
    await limiter.penalize(0.0)
    assert limiter.widen == 2.0  # capped
    await limiter.acquire()
    t1 = loop.time()
    await limiter.acquire()
    assert loop.time() - t1 >= limiter.spacing * 2.0 * 0.999


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
