"""JSON encoding of requests and decoding of responses into the models."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from ._exceptions import APIResponseValidationError, ValidationError
from ._transport import Response
from .types.orders import CreatedOrder, Order, OrderListWire
from .types.resends import LineItemResend, Resend

T = TypeVar("T")

ENCODER = msgspec.json.Encoder(decimal_format="number")
# Fields and dict keys sorted: equal content always gives the same bytes (identities).
CANONICAL_ENCODER = msgspec.json.Encoder(decimal_format="number", order="sorted")


def encode_request(request: msgspec.Struct, encoder: msgspec.json.Encoder = ENCODER) -> bytes:
    """A checked request as wire JSON; ValidationError when its ``custom_fields`` hold
    something JSON cannot carry (the only part whose types are not checked before)."""
    try:
        return encoder.encode(request)
    except (TypeError, ValueError, msgspec.EncodeError) as e:
        raise ValidationError("custom_fields", f"must hold JSON values only ({e})") from None


# One immutable decoder per response type, built at import (decoders are stateless).
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t) for t in (CreatedOrder, Order, OrderListWire, Resend, LineItemResend)
}


def decode(resp: Response, type_: type[T]) -> T:
    """Decode a 2xx body into ``type_``; an undecodable one is APIResponseValidationError."""
    decoder = _DECODERS.get(type_) or msgspec.json.Decoder(type_)
    try:
        return decoder.decode(resp.body)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
        raise APIResponseValidationError(
            f"{resp.method} {resp.path}: HTTP {resp.status} body does not decode: {e}",
            status_code=resp.status,
            path=resp.path,
            body=resp.body,
            headers=dict(resp.headers),
        ) from None
