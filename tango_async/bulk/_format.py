"""One output format for everything the bulk jobs write or show (issue 16): amounts as
plain decimals (``1000``, ``10.50``, never ``1E+3``), timestamps as RFC 3339 in UTC
ending in ``Z``, and JSON lines whose amounts are JSON numbers in plain decimal notation.

The CLI's ``tango_async/cli/_format.py`` follows the same rules; this module is the bulk
layer's own (the bulk layer is below the CLI and does not import it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from .._validation import plain_decimal

__all__ = ["format_amount", "format_time", "json_line", "plain_json_decimal"]


def format_amount(value: Decimal | int | None) -> str | None:
    """``value`` as a plain decimal (``1000``, ``10.50``; never ``1E+3``), or None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return plain_decimal(value)
    return str(value)


def format_time(value: datetime | None, *, seconds: bool = False) -> str | None:
    """``value`` as RFC 3339 in UTC ending in ``Z`` (``2026-12-03T14:05:09Z``, with the
    fraction of a second only when there is one, never with ``seconds``), or None. A
    naive datetime is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC).replace(tzinfo=None)
    if seconds:
        value = value.replace(microsecond=0)
    return value.isoformat() + "Z"


_ENCODER = msgspec.json.Encoder()


def plain_json_decimal(d: Decimal) -> Any:
    """A Decimal as a plain JSON number (1000, never 1E+3); a non-finite one as a string."""
    return msgspec.Raw(plain_decimal(d).encode()) if d.is_finite() else str(d)


def json_line(row: Mapping[str, Any]) -> str:
    """One JSON object on one line: a Decimal as a JSON number in plain decimal notation
    (``10.50``), a datetime as RFC 3339 with ``Z`` (see :func:`format_time`), every other
    value as ``json`` would write it (non-ASCII as is, control characters escaped)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            out[key] = plain_json_decimal(value)
        elif isinstance(value, datetime):
            out[key] = format_time(value)
        else:
            out[key] = value
    return _ENCODER.encode(out).decode()
