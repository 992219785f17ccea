"""The sandbox's JSON on the wire: request bodies in, answers out, times as Tango writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

__all__ = ["ENCODER", "MALFORMED", "body_bytes", "iso", "loads", "respond"]

ENCODER = msgspec.json.Encoder(decimal_format="number")
# what loads() gives for a body that is not JSON
MALFORMED: Any = object()


def iso(dt: datetime) -> str:
    """UTC, milliseconds, Z: as Tango writes createdAt."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def loads(raw: bytes) -> Any:
    """The JSON in ``raw``, its numbers with a fraction as Decimal; MALFORMED if not JSON."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        return MALFORMED


def respond(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """``obj`` as a JSON answer (Decimals as JSON numbers)."""
    return web.Response(
        status=status,
        body=ENCODER.encode(obj),
        headers=headers,
        content_type="application/json",
    )


def body_bytes(response: web.StreamResponse) -> bytes | None:
    """The bytes of an answer's body, None for a streamed one or one without bytes."""
    body = response.body if isinstance(response, web.Response) else None
    return body if isinstance(body, bytes) else None
