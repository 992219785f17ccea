"""The record of one request the sandbox received, and the record of the request at hand."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .._auth import REDACTED, HeaderValue

__all__ = ["Recorded", "current", "set_current"]


# request body fields whose values a record's repr never shows: a webhook's HMAC key, and
# the values of its custom headers (``headers: [{name, value}]``); the OAuth token
# request's client secret and password (its form, recorded as a dict of its fields)
SECRET_FIELDS = ("hmacSharedSecretKey", "client_secret", "password")


def _redacted(body: Any) -> tuple[Any, bool]:
    """``body`` with its secret values replaced, and whether it had any."""
    if not isinstance(body, dict):
        return body, False
    out = {k: REDACTED if k in SECRET_FIELDS and v is not None else v for k, v in body.items()}
    headers = body.get("headers")
    if isinstance(headers, list):
        out["headers"] = [
            {**h, "value": REDACTED} if isinstance(h, dict) and "value" in h else h for h in headers
        ]
    return out, out != body


@dataclass(repr=False)
class Recorded:
    """One request as the sandbox received it, and the status it answered (0: dropped).

    Its ``Authorization`` header (any credential header) is kept as a HeaderValue: it
    compares and reads as the text that came, and renders as ``<redacted>`` in this
    record's repr, and in the repr of ``headers``. The repr also shows a webhook's
    ``hmacSharedSecretKey`` and its custom header values as ``<redacted>`` (and the raw
    ``body`` of such a request only by its size)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    arrived: float  # the sandbox clock's monotonic() at arrival
    status: int = 0
    body: bytes = b""
    fault: str | None = None

    def __repr__(self) -> str:
        shown, secret = _redacted(self.json)
        body = f"<{len(self.body)} bytes, secrets redacted>" if secret else repr(self.body)
        return (
            f"Recorded(method={self.method!r}, path={self.path!r}, query={self.query!r}, "
            f"json={shown!r}, headers={self.headers!r}, arrived={self.arrived!r}, "
            f"status={self.status!r}, body={body}, fault={self.fault!r})"
        )

    def __post_init__(self) -> None:
        self.headers = {
            name: HeaderValue(value)
            if name.lower() in ("authorization", "proxy-authorization")
            else value
            for name, value in self.headers.items()
        }


_CURRENT: ContextVar[Recorded] = ContextVar("tango_sandbox_request")


def set_current(rec: Recorded) -> None:
    """Make ``rec`` the request at hand (each request runs in its own task, hence its own
    context)."""
    _CURRENT.set(rec)


def current() -> Recorded:
    """The record of the request at hand (set by the sandbox before its handler runs)."""
    return _CURRENT.get()
