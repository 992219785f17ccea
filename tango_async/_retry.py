"""Retry policy: which failures are retried, and how long to wait between attempts."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ._exceptions import ValidationError
from ._validation import finite_number

__all__ = ["RetryPolicy", "parse_retry_after"]

_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff, capped, with upward-only jitter; Retry-After is a floor.

    A small immutable policy object; derive variants with :meth:`with_options`::

        policy = RetryPolicy().with_options(max_retries=5, max_delay=30.0)

    ``rate_limit_delay`` is the least wait after a 429 (Tango: "wait 1 second") and
    ``conflict_delay`` the least wait after a 409 (an order with the same externalRefID is
    still in process: "retry after at least 2 s"). A Retry-After longer than
    ``max_retry_after`` is not waited for: the error (with its ``retry_after``) goes to the
    caller, who decides. Tests may shorten all of them. ValidationError for a value out
    of range (non-finite, negative, over a day; ``max_retries`` an int from 0 to 100).
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    rate_limit_delay: float = 1.0
    conflict_delay: float = 2.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        n = self.max_retries
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 100:
            raise ValidationError("max_retries", "must be an int from 0 to 100")
        for name in (
            "initial_delay",
            "max_delay",
            "jitter",
            "rate_limit_delay",
            "conflict_delay",
            "max_retry_after",
        ):
            if not finite_number(getattr(self, name), lo=0.0, hi=86_400):
                raise ValidationError(name, "must be a finite number of seconds from 0 to 86400")

    def with_options(self, **changes: float | int) -> RetryPolicy:
        """A copy of this policy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def backoff(
        self, attempt: int, *, retry_after: float | None = None, floor: float = 0.0
    ) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        base = min(self.max_delay, self.initial_delay * (2.0**attempt))
        delay = base * (1.0 + random.uniform(0.0, self.jitter))
        return max(delay, floor, retry_after or 0.0)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0 if seconds < 0 else None
    return min(seconds, 3600.0)
