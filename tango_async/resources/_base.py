"""What the resources share: the requestor handle and the resend procedure."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from .._exceptions import (
    APIConnectionError,
    APIError,
    ResendCooldownError,
    TangoError,
    ValidationError,
    WaitTimeoutError,
)
from .._retry import OperationRetry
from .._validation import finite_number

if TYPE_CHECKING:
    from .._cooldown import CooldownStore
    from .._requestor import Requestor

T = TypeVar("T")

log = logging.getLogger("tango_async")
_MAX_UNKNOWN = 100  # undocumented statuses remembered (logged once each) per client


class Resource:
    """A group of API calls (``client.orders``, ``client.line_items``...), fed by its
    client's :class:`~tango_async._requestor.Requestor`."""

    def __init__(self, requestor: Requestor) -> None:
        self._requestor = requestor
        self._unknown_statuses: set[str] = set()  # logged once each, per client

    async def _wait_final(
        self,
        label: str,
        fetch: Callable[[], Awaitable[T]],
        is_final: Callable[[str | None], bool],
        known: frozenset[str],
        *,
        timeout: float | None,  # noqa: ASYNC109 - on the client clock
        poll: float,
        max_poll: float,
    ) -> T:
        """Fetch until ``is_final(result.status)``, sleeping ``poll`` seconds first and
        half as long again after each answer, up to ``max_poll``, on the client's clock
        (each fetch goes through the read pacing and retries). WaitTimeoutError, with the
        last result, once ``timeout`` seconds have passed without a final status; the
        last sleep is cut to end at the deadline, where one more fetch is made."""
        if timeout is not None and not finite_number(timeout, lo=0.0):
            raise ValidationError("timeout", "must be a finite number of seconds >= 0, or None")
        if not finite_number(poll, lo=0.0, above=True):
            raise ValidationError("poll", "must be a finite number of seconds > 0")
        if not finite_number(max_poll, lo=float(poll)):
            raise ValidationError("max_poll", "must be a finite number of seconds >= poll")
        clock = self._requestor.clock
        transport = self._requestor.transport
        deadline = math.inf if timeout is None else clock.monotonic() + float(timeout)
        delay = float(poll)
        last: T | None = None
        while True:
            last = await fetch()
            status: str | None = getattr(last, "status", None)
            if is_final(status):
                return last
            if (
                status is not None
                and status not in known
                and status not in self._unknown_statuses
                and len(self._unknown_statuses) < _MAX_UNKNOWN
            ):
                self._unknown_statuses.add(status)
                log.warning(
                    "%s: status %r is not documented; waiting as if not final", label, status
                )
            left = deadline - clock.monotonic()
            if left <= 0:
                raise WaitTimeoutError(label, last, float(timeout or 0.0))
            await transport.sleep(min(delay, left))
            delay = min(delay * 1.5, float(max_poll))

    async def _resend(
        self,
        kind: str,
        ref: str,
        path: str,
        body: bytes,
        type_: type[T],
        wait: bool,
        operation: OperationRetry,
    ) -> T:
        """Claim the cooldown, POST the resend, and settle the cooldown by the outcome.

        Tango keeps one cooldown for an order and its line item, so where the client knows
        the pair (from orders it has seen) both keys are claimed and settled together. The
        cooldown counts from the server's answer; where no answer came after the request
        may have been sent, it counts from the send. A 403.005 from the server refreshes
        it (for as long as the answer says is left, else the whole cooldown) and raises
        ResendCooldownError (or waits, with ``wait``, as ``operation.cooldown`` decides:
        at most ``max_retries`` times). Retries of the POST itself: ``operation.decide``.
        """
        req = self._requestor
        store = req.cooldown_store
        cooldown = req.resend_cooldown
        label = f"{kind} {ref}"
        server_refusals = 0
        waited = 0.0  # for the observers: seconds waited for the cooldown
        while True:
            keys = self._cooldown_keys(kind, ref)
            left = await _claim_all(store, keys, cooldown)
            if left > 0:
                if not wait:
                    raise ResendCooldownError(label, left)
                await req.transport.sleep(left)
                waited += left
                continue
            try:
                resp = await req.transport.request(
                    "POST", path, operation=operation, body=body, cooldown_wait=waited
                )
            except APIConnectionError as e:
                if not e.maybe_sent:
                    await _release_all(store, keys)
                raise
            except APIError as e:
                refusal = (
                    operation.cooldown(e, server_refusals, req.retry, cooldown=cooldown)
                    if operation.cooldown is not None
                    else None
                )
                if refusal is not None:
                    await _extend_all(store, keys, refusal.delay)
                    server_refusals += 1
                    if wait and refusal.retry:
                        await req.transport.sleep(refusal.delay)
                        waited += refusal.delay
                        continue
                    raise ResendCooldownError(label, refusal.delay) from e
                if e.status_code < 500:
                    await _release_all(store, keys)
                raise
            # A cancellation mid-request propagates with the claims standing: it may have
            # been sent.
            await _extend_all(store, keys, cooldown)
            return resp.parse(type_)

    def _cooldown_keys(self, kind: str, ref: str) -> list[str]:
        """The cooldown keys of a resend: its own, then its order's or line item's if known.

        ``tango:{platform}:{kind}:{ref}``, the same in every process sharing a store.
        """
        platform = self._requestor.platform_name
        keys = [cooldown_key(platform, kind, ref)]
        links = self._requestor.resend_links
        if kind == "order":
            line_item = links.line_item_of(ref)
            if line_item is not None:
                keys.append(cooldown_key(platform, "line_item", line_item))
        elif kind == "line_item":
            order = links.order_of(ref)
            if order is not None:
                keys.append(cooldown_key(platform, "order", order))
        return keys


def cooldown_key(platform: str, kind: str, ref: str) -> str:
    """The cooldown store's key of one order (``kind`` "order") or line item ("line_item")."""
    return f"tango:{platform}:{kind}:{ref}"


async def _claim_all(store: CooldownStore, keys: list[str], cooldown: float) -> float:
    """Claim every key, or none: 0.0 when all are claimed; else the longest time left, with
    the keys claimed here released again."""
    claimed: list[str] = []
    left = 0.0
    try:
        for key in keys:
            waited = await store.claim(key, cooldown)
            if waited > 0:
                left = max(left, waited)
            else:
                claimed.append(key)
    except BaseException:
        await _release_all(store, claimed)
        raise
    if left > 0:
        await _release_all(store, claimed)
    return left


async def _release_all(store: CooldownStore, keys: list[str]) -> None:
    for key in keys:
        await _settle(store.release(key))


async def _extend_all(store: CooldownStore, keys: list[str], cooldown: float) -> None:
    for key in keys:
        await _settle(store.extend(key, cooldown))


async def _settle(step: Awaitable[None]) -> None:
    """Update the cooldown after the request; a store that fails now (a shared store gone
    away) must not turn a resend that happened into an error: the claim still stands."""
    try:
        await step
    except TangoError as e:
        log.warning("could not update the resend cooldown: %s", e)
