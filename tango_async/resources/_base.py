"""What the resources share: the client handle and the resend procedure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from .._codec import decode
from .._exceptions import APIConnectionError, APIError, ResendCooldownError, TangoError

if TYPE_CHECKING:
    from .._client import TangoClient

T = TypeVar("T")

log = logging.getLogger("tango_async")

COOLDOWN_KEY = "403.005"


class Resource:
    def __init__(self, client: TangoClient) -> None:
        self._client = client

    async def _resend(
        self, kind: str, ref: str, path: str, body: bytes, type_: type[T], wait: bool
    ) -> T:
        """Claim the cooldown, POST the resend, and settle the cooldown by the outcome.

        The cooldown counts from the server's answer; where no answer came after the
        request may have been sent, it counts from the send. A 403.005 from the server
        refreshes it and raises ResendCooldownError (or waits, with ``wait``).
        """
        client = self._client
        store = client.cooldown_store
        cooldown = client.resend_cooldown
        key = f"tango:{client.platform_name}:{kind}:{ref}"
        label = f"{kind} {ref}"
        server_refusals = 0
        while True:
            left = await store.claim(key, cooldown)
            if left > 0:
                if not wait:
                    raise ResendCooldownError(label, left)
                await asyncio.sleep(left)
                continue
            try:
                resp = await client._transport.request("POST", path, mode="resend", body=body)
            except APIConnectionError as e:
                if not e.maybe_sent:
                    await _settle(store.release(key))
                raise
            except APIError as e:
                if e.status_code == 403 and e.i18n_key == COOLDOWN_KEY:
                    await _settle(store.extend(key, cooldown))
                    server_refusals += 1
                    if wait and server_refusals <= client.retry.max_retries:
                        continue
                    raise ResendCooldownError(label, cooldown) from e
                if e.status_code < 500:
                    await _settle(store.release(key))
                raise
            # A cancellation mid-request propagates with the claim standing: it may have been sent.
            await _settle(store.extend(key, cooldown))
            return decode(resp, type_)


async def _settle(step: Awaitable[None]) -> None:
    """Update the cooldown after the request; a store that fails now (a shared store gone
    away) must not turn a resend that happened into an error: the claim still stands."""
    try:
        await step
    except TangoError as e:
        log.warning("could not update the resend cooldown: %s", e)
