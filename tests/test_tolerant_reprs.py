"""A refused constructor argument gives a traceback that renders with captured locals.

Regression (issue 12 review): on Python 3.11, ``repr(self)`` of a half-built object in the
refusing ``__init__``'s frame raised AttributeError while the traceback was rendered
(``traceback.TracebackException(capture_locals=True)``, rich, loguru ``diagnose``), so the
ValidationError that explains the mistake was never shown. Nothing here connects anywhere.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from typing import Any

import pytest

import tango_async as ta
from tango_async import redis as ta_redis
from tango_async._cooldown import LocalCooldownStore, ResendLinks
from tango_async._ratelimit import LocalRateLimiter
from tango_async._unresolved import LocalUnresolvedStore, SqliteUnresolvedStore
from tango_async.testing import Sandbox, SandboxClock

URL = "redis://127.0.0.1:6379"

CASES: dict[str, Callable[[], Any]] = {
    "TangoClient": lambda: ta.TangoClient(platform_name="a", platform_key="b", order_rate=math.inf),
    "LocalRateLimiter": lambda: LocalRateLimiter(math.inf),
    "LocalCooldownStore": lambda: LocalCooldownStore(clock=5),  # type: ignore[arg-type]
    "ResendLinks": lambda: ResendLinks(-1),
    "LocalUnresolvedStore": lambda: LocalUnresolvedStore(max_entries=-1),
    "SqliteUnresolvedStore": lambda: SqliteUnresolvedStore(5),  # type: ignore[arg-type]
    "Sandbox": lambda: Sandbox(order_rate=math.nan),
    "SandboxClock": lambda: SandboxClock(start=5),  # type: ignore[arg-type]
    "PacingPolicy": lambda: ta.PacingPolicy(reads=math.nan),
    "RetryPolicy": lambda: ta.RetryPolicy(jitter=math.nan),
    "RedisRateLimiter": lambda: ta_redis.RedisRateLimiter(URL, rate=math.nan),
    "RedisCooldownStore": lambda: ta_redis.RedisCooldownStore(URL, cooldown=math.nan),
    "RedisUnresolvedStore": lambda: ta_redis.RedisUnresolvedStore(URL, ttl=0.5),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_argument_renders_with_captured_locals(name: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        CASES[name]()
    rendered = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert "ValidationError" in rendered
    assert f"{name}(not constructed)" in rendered or name in ("PacingPolicy", "RetryPolicy")
