"""The record of one request the sandbox received, and the record of the request at hand."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .._auth import HeaderValue

__all__ = ["Recorded", "current", "set_current"]


@dataclass
class Recorded:
    """One request as the sandbox received it, and the status it answered (0: dropped).

    Its ``Authorization`` header (any credential header) is kept as a HeaderValue: it
    compares and reads as the text that came, and renders as ``<redacted>`` in this
    record's repr, and in the repr of ``headers``."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    arrived: float  # the sandbox clock's monotonic() at arrival
    status: int = 0
    body: bytes = b""
    fault: str | None = None

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
