"""JSON encoding of requests and decoding of response bodies (bytes) into the models."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from ._exceptions import ValidationError
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


def decode_body(body: bytes, type_: type[T]) -> T:
    """Decode JSON ``body`` into ``type_``. Raises msgspec.DecodeError (bad JSON, or nested
    too deep to decode) or msgspec.ValidationError (JSON of another shape); the transport's
    ``Response.parse`` turns them into APIResponseValidationError with the call's context."""
    decoder = _DECODERS.get(type_) or msgspec.json.Decoder(type_)
    try:
        return decoder.decode(body)  # type: ignore[no-any-return]
    except RecursionError:
        raise msgspec.DecodeError("JSON nested too deeply") from None
