"""Retry decisions, all in one place: which failures are retried, and how long to wait.

Two parts, in the spirit of githubkit's ``retry`` module:

- :class:`RetryPolicy` is the *timing* (exponential backoff, floors, the retry budget),
  the user's setting (``TangoClient(retry=...)``).
- Small *decision* objects each answer one question about a failure, "retry after N s",
  "don't" (a :class:`RetryOption`), or no opinion (None); a :class:`RetryChainDecision`
  asks them in order and the first opinion holds (none at all: don't retry).

One :class:`OperationRetry` per operation kind chains them. A resource declares the one
of each call (``transport.request(..., operation=READ)``) and the transport asks it after
every failed attempt:

- :data:`READ` (GETs): retried on 429, 5xx, timeouts and connection errors.
- :data:`CREATE` (POST /orders, always carrying an externalRefID): retried on 429 (at
  least ``rate_limit_delay``), 409 (at least ``conflict_delay``), 5xx, timeouts and
  connection errors; every attempt takes a rate slot (the pacing of kind ``"create"``).
- :data:`RESEND` (not idempotent): retried only on 429 and on failures that certainly
  happened before the request was sent; a 403.005 (the resend cooldown) is decided by its
  :class:`CooldownRefusal`, which the resource asks (it holds the cooldown store).

Every kind first checks the budget (``max_retries``) and that a Retry-After is no longer
than ``max_retry_after``. The Redis backends back off with :data:`STORE_BACKOFF` (the same
:meth:`RetryPolicy.backoff` timing) within their own budget, ``unavailable_timeout``
(:func:`store_retry`).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

from ._exceptions import APIConnectionError, APIError, TangoError, ValidationError
from ._validation import finite_number

__all__ = [
    "ACTION",
    "CHANGE",
    "COOLDOWN_KEY",
    "CREATE",
    "NO_RETRY",
    "READ",
    "RESEND",
    "STORE_BACKOFF",
    "CooldownRefusal",
    "OperationKind",
    "OperationRetry",
    "RetryAfterCeiling",
    "RetryBudget",
    "RetryChainDecision",
    "RetryConflict",
    "RetryConnectionError",
    "RetryDecision",
    "RetryOption",
    "RetryPolicy",
    "RetryRateLimited",
    "RetryServerError",
    "header",
    "parse_retry_after",
    "server_cooldown_left",
    "store_retry",
]

_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")
_EPOCH = re.compile(r"[0-9]+(\.[0-9]+)?")

COOLDOWN_KEY = "403.005"  # Tango's i18nKey of a resend refused within its cooldown


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


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header of ``headers`` by its name in any case, as HTTP names are: an APIError's
    ``headers`` (a dict) keep the names as the server wrote them (``retry-after``)."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


# --- decisions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryOption:
    """One decision: ``retry`` after ``delay`` seconds, or not.

    A decision that does not retry has ``delay`` 0, except a :class:`CooldownRefusal`'s,
    whose ``delay`` is the cooldown the server says is left (what the caller is told)."""

    retry: bool
    delay: float = 0.0


NO_RETRY = RetryOption(False)


class RetryDecision(Protocol):
    """A decision about one failed attempt: a :class:`RetryOption`, or None for no opinion
    (the next decision of the chain is asked). ``attempt`` counts from 0."""

    def __call__(
        self, failure: TangoError, attempt: int, policy: RetryPolicy
    ) -> RetryOption | None: ...


def _retry_after(failure: TangoError) -> float | None:
    if not isinstance(failure, APIError):
        return None
    return parse_retry_after(header(failure.headers, "Retry-After"))


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Don't, once ``policy.max_retries`` retries were made (any failure)."""

    def __call__(
        self, failure: TangoError, attempt: int, policy: RetryPolicy
    ) -> RetryOption | None:
        return NO_RETRY if attempt >= policy.max_retries else None


@dataclass(frozen=True, slots=True)
class RetryAfterCeiling:
    """Don't, when an answer's Retry-After asks for longer than ``policy.max_retry_after``:
    the error (with its ``retry_after``) goes to the caller, who decides."""

    def __call__(
        self, failure: TangoError, attempt: int, policy: RetryPolicy
    ) -> RetryOption | None:
        retry_after = _retry_after(failure)
        if retry_after is not None and retry_after > policy.max_retry_after:
            return NO_RETRY
        return None


@dataclass(frozen=True, slots=True)
class RetryRateLimited:
    """A 429: retry after the backoff, at least ``rate_limit_delay`` and the Retry-After."""

    def __call__(
        self, failure: TangoError, attempt: int, policy: RetryPolicy
    ) -> RetryOption | None:
        if not isinstance(failure, APIError) or failure.status_code != 429:
            return None
        delay = policy.backoff(
            attempt, retry_after=_retry_after(failure), floor=policy.rate_limit_delay
        )
        return RetryOption(True, delay)


@dataclass(frozen=True, slots=True)
class RetryServerError:
    """A 5xx: retry after the backoff, at least the Retry-After."""

    def __call__(
        self, failure: TangoError, attempt: int, policy: RetryPolicy
    ) -> RetryOption | None:
        if not isinstance(failure, APIError) or failure.status_code < 500:
            return None
        return RetryOption(True, policy.backoff(attempt, retry_after=_retry_after(failure)))


@dataclass(frozen=True, slots=True)
class RetryConflict:
    """A 409 (an order with this externalRefID still in process): retry after the backoff,
    at least ``conflict_delay`` and the Retry-After."""

    def __call__(
        self, failure: TangoError, attempt: int, policy: RetryPolicy
    ) -> RetryOption | None:
        if not isinstance(failure, APIError) or failure.status_code != 409:
            return None
        delay = policy.backoff(
            attempt, retry_after=_retry_after(failure), floor=policy.conflict_delay
        )
        return RetryOption(True, delay)


@dataclass(frozen=True, slots=True)
class RetryConnectionError:
    """A timeout or connection error: retry after the backoff; with ``unsent_only``, only
    when the request certainly never reached the server (``maybe_sent`` False)."""

    unsent_only: bool = False

    def __call__(
        self, failure: TangoError, attempt: int, policy: RetryPolicy
    ) -> RetryOption | None:
        if not isinstance(failure, APIConnectionError):
            return None
        if self.unsent_only and failure.maybe_sent:
            return NO_RETRY
        return RetryOption(True, policy.backoff(attempt))


class RetryChainDecision:
    """Decisions asked in order: the first with an opinion holds; none: don't retry."""

    __slots__ = ("decisions",)

    def __init__(self, *decisions: RetryDecision) -> None:
        self.decisions: tuple[RetryDecision, ...] = decisions

    def __call__(self, failure: TangoError, attempt: int, policy: RetryPolicy) -> RetryOption:
        for decision in self.decisions:
            option = decision(failure, attempt, policy)
            if option is not None:
                return option
        return NO_RETRY

    def __repr__(self) -> str:
        return f"RetryChainDecision{self.decisions!r}"


@dataclass(frozen=True, slots=True)
class CooldownRefusal:
    """A resend refused within its cooldown (HTTP 403, i18nKey ``403.005``): retry after
    the cooldown the answer says is left (:func:`server_cooldown_left`), at most
    ``policy.max_retries`` times; the resend resource asks it only when the caller waits.
    None for any other failure."""

    key: str = COOLDOWN_KEY

    def __call__(
        self, failure: TangoError, refusals: int, policy: RetryPolicy, *, cooldown: float
    ) -> RetryOption | None:
        """``refusals`` counts the earlier 403.005 answers of the call (from 0);
        ``cooldown`` is the client's ``resend_cooldown``."""
        if not (
            isinstance(failure, APIError)
            and failure.status_code == 403
            and failure.i18n_key == self.key
        ):
            return None
        return RetryOption(refusals < policy.max_retries, server_cooldown_left(failure, cooldown))


OperationKind = Literal["read", "create", "resend", "change"]


@dataclass(frozen=True, slots=True)
class OperationRetry:
    """The retry decisions of one operation kind: what a resource declares for a call.

    ``kind`` also picks the call's pacing (``"create"``: the order rate slot, taken by
    every attempt); ``decide`` is asked by the transport after each failed attempt;
    ``cooldown``, where not None, decides a resend cooldown refusal (403.005)."""

    kind: OperationKind
    decide: RetryChainDecision
    cooldown: CooldownRefusal | None = None


_FIRST = (RetryBudget(), RetryAfterCeiling())

READ = OperationRetry(
    "read",
    RetryChainDecision(*_FIRST, RetryRateLimited(), RetryServerError(), RetryConnectionError()),
)
CREATE = OperationRetry(
    "create",
    RetryChainDecision(
        *_FIRST, RetryRateLimited(), RetryServerError(), RetryConflict(), RetryConnectionError()
    ),
)
RESEND = OperationRetry(
    "resend",
    RetryChainDecision(*_FIRST, RetryRateLimited(), RetryConnectionError(unsent_only=True)),
    cooldown=CooldownRefusal(),
)
# A state change that is the same however often it is applied (PATCH a line item or a
# subscription, renew one): retried as a read is.
CHANGE = OperationRetry(
    "change",
    RetryChainDecision(*_FIRST, RetryRateLimited(), RetryServerError(), RetryConnectionError()),
)
# An action that may spend money or do something twice (reissue, cancel, freeze, create
# or delete a subscription, replay, test events): never retried once it may have reached
# the server; a 429 (refused, not done) is retried.
ACTION = OperationRetry(
    "change",
    RetryChainDecision(*_FIRST, RetryRateLimited(), RetryConnectionError(unsent_only=True)),
)


def server_cooldown_left(error: APIError, cooldown: float) -> float:
    """Seconds until a resend refused with 403.005 may be sent again, as the answer says.

    A Retry-After header, else the error's ``timestamp`` read as the time of the last send
    (``timestamp + cooldown - now``, within [0, cooldown]; a timestamp of the refusal
    itself gives the whole cooldown), else the whole ``cooldown``.
    """
    hinted = parse_retry_after(header(error.headers, "Retry-After"))
    if hinted is not None:
        return hinted
    sent = _epoch_seconds(error.timestamp)
    if sent is None:
        return cooldown
    return min(cooldown, max(0.0, sent + cooldown - time.time()))


def _epoch_seconds(timestamp: object) -> float | None:
    """An error body's timestamp (RFC 3339, or epoch seconds / milliseconds) as epoch
    seconds; None when absent or unreadable."""
    if not isinstance(timestamp, str) or not timestamp.strip():
        return None
    text = timestamp.strip()
    try:
        if _EPOCH.fullmatch(text):
            seconds = float(text)
            if seconds > 1e11:  # milliseconds
                seconds /= 1000.0
        else:
            when = datetime.fromisoformat(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp()
    except (ValueError, TypeError, OverflowError, OSError):
        return None
    return seconds if math.isfinite(seconds) else None


# --- the shared stores (Redis) ----------------------------------------------------------------

STORE_BACKOFF = RetryPolicy(initial_delay=0.05, max_delay=2.0, jitter=0.25)
"""The timing of a store call retried while its backend is unavailable: 50 ms doubling to
2 s, up to 25% more; its budget is time (``unavailable_timeout``), not a count."""

_STORE_MAX_EXPONENT = 16  # 0.05 * 2**16 s is far past max_delay: no float overflow after


def store_retry(attempt: int, left: float, timing: RetryPolicy = STORE_BACKOFF) -> RetryOption:
    """Whether a store call that failed ``attempt + 1`` times is tried again: while
    ``left`` seconds of its budget remain, after ``timing.backoff(attempt)`` (at most
    ``left``); else don't."""
    if left <= 0:
        return NO_RETRY
    return RetryOption(True, min(timing.backoff(min(attempt, _STORE_MAX_EXPONENT)), left))
