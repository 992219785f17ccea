"""The retry decisions asked directly: per operation kind (READ, CREATE, RESEND), each
answer status and exception class gives "retry after N s" or "don't", with the floors of
Retry-After, 429 and 409, the budget, the Retry-After ceiling, the 403.005 cooldown
decision and the Redis backends' backoff."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import tango_async as ta
from tango_async._retry import (
    CREATE,
    NO_RETRY,
    READ,
    RESEND,
    STORE_BACKOFF,
    CooldownRefusal,
    OperationRetry,
    RetryChainDecision,
    RetryOption,
    RetryServerError,
    store_retry,
)
from tango_async._transport import Response, build_api_error

# No jitter, so the delays are exact: backoff(attempt) == 0.1 * 2**attempt, capped at 0.4.
P = ta.RetryPolicy(
    max_retries=3,
    initial_delay=0.1,
    max_delay=0.4,
    jitter=0.0,
    rate_limit_delay=1.0,
    conflict_delay=2.0,
    max_retry_after=60.0,
)
KINDS = {"read": READ, "create": CREATE, "resend": RESEND}


def api_error(status: int, *headers: tuple[str, str], i18n: str | None = None) -> ta.APIError:
    body = b'{"httpCode": %d, "message": "x"' % status
    if i18n is not None:
        body += b', "errors": [{"i18nKey": "%s", "message": "m"}]' % i18n.encode()
    return build_api_error(Response(status, dict(headers), body + b"}", "POST", "/x"))


def connection(*, maybe_sent: bool) -> ta.APIConnectionError:
    return ta.APIConnectionError("boom", method="POST", path="/x", maybe_sent=maybe_sent)


def timeout(*, maybe_sent: bool) -> ta.APITimeoutError:
    return ta.APITimeoutError("slow", method="POST", path="/x", maybe_sent=maybe_sent)


def test_the_kinds_name_their_pacing() -> None:
    assert (READ.kind, CREATE.kind, RESEND.kind) == ("read", "create", "resend")
    assert READ.cooldown is None and CREATE.cooldown is None
    assert isinstance(RESEND.cooldown, CooldownRefusal)


# --- which answers retry, per kind -------------------------------------------------------

RETRIED = {
    # status: kinds that retry it
    400: set(),
    401: set(),
    403: set(),
    404: set(),
    409: {"create"},
    422: set(),
    429: {"read", "create", "resend"},
    500: {"read", "create"},
    502: {"read", "create"},
    503: {"read", "create"},
    504: {"read", "create"},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("status", sorted(RETRIED))
def test_which_statuses_retry(kind: str, status: int) -> None:
    option = KINDS[kind].decide(api_error(status), 0, P)
    assert option.retry == (kind in RETRIED[status])
    if not option.retry:
        assert option == NO_RETRY


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("make", [connection, timeout])
def test_connection_errors_retry_unless_a_resend_may_have_been_sent(
    kind: str, make: Callable[..., ta.APIConnectionError]
) -> None:
    unsent = KINDS[kind].decide(make(maybe_sent=False), 0, P)
    assert unsent == RetryOption(True, 0.1)
    sent = KINDS[kind].decide(make(maybe_sent=True), 0, P)
    assert sent.retry == (kind != "resend")


def test_a_resend_refused_in_its_cooldown_is_not_retried_by_the_transport() -> None:
    error = api_error(403, i18n="403.005")
    assert error.i18n_key == "403.005"
    for op in KINDS.values():
        assert not op.decide(error, 0, P).retry


# --- how long to wait: the floors -----------------------------------------------------------


@pytest.mark.parametrize("attempt, expected", [(0, 0.1), (1, 0.2), (2, 0.4)])
def test_a_5xx_waits_the_backoff(attempt: int, expected: float) -> None:
    for op in (READ, CREATE):
        assert op.decide(api_error(503), attempt, P) == RetryOption(True, expected)


def test_429_waits_at_least_rate_limit_delay() -> None:
    for op in KINDS.values():
        assert op.decide(api_error(429), 0, P) == RetryOption(True, 1.0)


def test_409_of_a_create_waits_at_least_conflict_delay() -> None:
    assert CREATE.decide(api_error(409), 0, P) == RetryOption(True, 2.0)


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_retry_after_is_a_floor_in_any_case(name: str) -> None:
    assert READ.decide(api_error(503, (name, "7")), 0, P) == RetryOption(True, 7.0)
    assert READ.decide(api_error(429, (name, "5")), 0, P) == RetryOption(True, 5.0)
    assert CREATE.decide(api_error(409, (name, "3")), 0, P) == RetryOption(True, 3.0)
    # below a floor, the floor holds
    assert READ.decide(api_error(429, (name, "0.5")), 0, P) == RetryOption(True, 1.0)
    assert CREATE.decide(api_error(409, (name, "1")), 0, P) == RetryOption(True, 2.0)


def test_a_retry_after_longer_than_max_retry_after_goes_to_the_caller() -> None:
    for op in KINDS.values():
        assert op.decide(api_error(429, ("Retry-After", "61")), 0, P) == NO_RETRY
        assert op.decide(api_error(429, ("Retry-After", "60")), 0, P).retry
    assert READ.decide(api_error(503, ("retry-after", "3600")), 0, P) == NO_RETRY


def test_an_unreadable_retry_after_is_no_floor() -> None:
    assert READ.decide(api_error(503, ("Retry-After", "soon")), 0, P) == RetryOption(True, 0.1)


def test_jitter_only_adds() -> None:
    jittery = P.with_options(jitter=0.25)
    for _ in range(50):
        delay = READ.decide(api_error(503), 0, jittery).delay
        assert 0.1 <= delay <= 0.125


# --- the budget -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_budget_is_max_retries(kind: str) -> None:
    op = KINDS[kind]
    for failure in (api_error(429), connection(maybe_sent=False)):
        assert op.decide(failure, P.max_retries - 1, P).retry
        assert op.decide(failure, P.max_retries, P) == NO_RETRY
    assert op.decide(api_error(429), 0, P.with_options(max_retries=0)) == NO_RETRY


# --- the chain ------------------------------------------------------------------------------


def test_a_chain_takes_the_first_opinion_and_else_does_not_retry() -> None:
    def veto(failure: ta.TangoError, attempt: int, policy: ta.RetryPolicy) -> RetryOption | None:
        return NO_RETRY

    def silent(failure: ta.TangoError, attempt: int, policy: ta.RetryPolicy) -> RetryOption | None:
        return None

    assert RetryChainDecision()(api_error(503), 0, P) == NO_RETRY
    assert RetryChainDecision(silent)(api_error(503), 0, P) == NO_RETRY
    assert RetryChainDecision(silent, RetryServerError())(api_error(503), 0, P).retry
    assert RetryChainDecision(veto, RetryServerError())(api_error(503), 0, P) == NO_RETRY
    custom = OperationRetry("read", RetryChainDecision(RetryServerError()))
    assert custom.decide(api_error(503), 99, P).retry  # no budget in this chain


# --- the 403.005 cooldown decision ----------------------------------------------------------


def test_a_cooldown_refusal_waits_what_the_server_says_at_most_max_retries_times() -> None:
    refusal = RESEND.cooldown
    assert refusal is not None
    error = api_error(403, ("Retry-After", "12"), i18n="403.005")
    assert refusal(error, 0, P, cooldown=30.0) == RetryOption(True, 12.0)
    assert refusal(error, P.max_retries - 1, P, cooldown=30.0) == RetryOption(True, 12.0)
    # out of retries: not retried, the time left still told
    assert refusal(error, P.max_retries, P, cooldown=30.0) == RetryOption(False, 12.0)


def test_a_cooldown_refusal_without_a_hint_counts_from_the_timestamp_or_is_whole() -> None:
    refusal = CooldownRefusal()
    whole = api_error(403, i18n="403.005")
    assert refusal(whole, 0, P, cooldown=30.0) == RetryOption(True, 30.0)
    sent_10s_ago = str(time.time() - 10)
    body = (
        b'{"httpCode": 403, "timestamp": "%s", "errors": [{"i18nKey": "403.005"}]}'
        % sent_10s_ago.encode()
    )
    stamped = build_api_error(Response(403, {}, body, "POST", "/x"))
    option = refusal(stamped, 0, P, cooldown=30.0)
    assert option is not None and option.retry and 19.0 <= option.delay <= 20.5


def test_other_answers_are_no_cooldown_refusal() -> None:
    refusal = CooldownRefusal()
    assert refusal(api_error(403, i18n="403.003"), 0, P, cooldown=30.0) is None
    assert refusal(api_error(403), 0, P, cooldown=30.0) is None
    assert refusal(api_error(429, i18n="403.005"), 0, P, cooldown=30.0) is None
    assert refusal(connection(maybe_sent=False), 0, P, cooldown=30.0) is None


# --- the Redis backends' backoff --------------------------------------------------------------


def test_store_backoff_is_50ms_doubling_to_2s_within_the_time_left() -> None:
    exact = STORE_BACKOFF.with_options(jitter=0.0)
    delays = [store_retry(n, 100.0, exact).delay for n in range(8)]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert store_retry(3, 0.01, exact) == RetryOption(True, 0.01)  # never past the budget
    assert store_retry(0, 0.0) == NO_RETRY
    assert store_retry(0, -1.0) == NO_RETRY
    assert store_retry(100_000, 5.0).delay <= 2.5  # no overflow on a long outage
    for n in range(6):
        assert 0.05 * 2**n <= store_retry(n, 100.0).delay <= 0.05 * 2**n * 1.25
