"""What the resources share: response decoding and the resend procedure."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    ResendCooldownError,
)
from .._transport import Response

if TYPE_CHECKING:
    from .._client import TangoClient

T = TypeVar("T")

ENCODER = msgspec.json.Encoder(decimal_format="number")
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}

COOLDOWN_KEY = "403.005"


def decode(resp: Response, type_: type[T]) -> T:
    """Decode a 2xx body into ``type_``; an undecodable one is APIResponseValidationError."""
    decoder = _DECODERS.get(type_)
    if decoder is None:
        decoder = _DECODERS[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(resp.body)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise APIResponseValidationError(
            f"{resp.method} {resp.path}: HTTP {resp.status} body does not decode: {e}",
            status_code=resp.status,
            path=resp.path,
            body=resp.body,
            headers=dict(resp.headers),
        ) from None


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
                    await store.release(key)
                raise
            except APIError as e:
                if e.status_code == 403 and e.i18n_key == COOLDOWN_KEY:
                    await store.extend(key, cooldown)
                    server_refusals += 1
                    if wait and server_refusals <= client.retry.max_retries:
                        continue
                    raise ResendCooldownError(label, cooldown) from e
                if e.status_code < 500:
                    await store.release(key)
                raise
            # A cancellation mid-request propagates with the claim standing: it may have been sent.
            await store.extend(key, cooldown)
            return decode(resp, type_)
