"""The HTTP answer behind a call's result, for ``tango.with_raw_response`` (see
:class:`RawResponse`), and the recorder a transport view fills for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

__all__ = ["RawResponse", "Recorder"]

T = TypeVar("T")


class RawResponse(Generic[T]):
    """A call's result with the HTTP answer it came from (``tango.with_raw_response``).

    ``status_code``, ``headers`` (case-insensitive), ``request_id`` (the
    ``X-REQUEST-ID`` header, the reference Tango's support asks for), ``method`` and
    ``path`` (as sent), ``attempts`` (HTTP attempts of the whole call, retries and
    every request of it included: ``resolve()`` makes two requests, ``wait()`` one per
    poll) and ``elapsed`` (seconds, the whole call, its waits included). :meth:`parse`
    returns the result the plain call returns. ``content`` is the body as received
    (decoded from gzip): it may hold gift-card codes and redemption links, so it is never
    part of the repr. ``request_id`` is the header as the server sent it (the first, if
    sent twice); the repr shows at most 100 characters of it, escaped.

    It is the call's last 2xx answer: for ``orders.create`` asked again after an answer
    that could not be read, the last POST's; for ``resolve()``, the order's ``GET`` (the
    lookup's when none was found); for ``wait()``, the last poll's; for a paginated
    ``list()``, the first page's (and :meth:`parse` returns that page, empty when
    nothing matched)."""

    __slots__ = (
        "_result",
        "attempts",
        "content",
        "elapsed",
        "headers",
        "method",
        "path",
        "status_code",
    )

    def __init__(
        self,
        result: T,
        *,
        status_code: int,
        headers: Mapping[str, str],
        content: bytes,
        method: str,
        path: str,
        attempts: int,
        elapsed: float,
    ) -> None:
        self._result = result
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.method = method
        self.path = path
        self.attempts = attempts
        self.elapsed = elapsed

    @property
    def request_id(self) -> str | None:
        """The answer's ``X-REQUEST-ID`` header (any case), or None."""
        for name, value in self.headers.items():
            if name.lower() == "x-request-id":
                return value
        return None

    def parse(self) -> T:
        """The call's result: what the same call without ``with_raw_response`` returns."""
        return self._result

    def __repr__(self) -> str:
        return (
            f"<RawResponse {self.method} {self.path} -> {self.status_code} "
            f"request_id={_cut(self.request_id)!r} attempts={self.attempts}>"
        )


def _cut(text: str | None) -> str | None:
    """A header value for a repr: the first 100 characters (repr escapes the rest)."""
    return text if text is None or len(text) <= 100 else text[:100] + "..."


class Recorder:
    """Where a recording transport view keeps the last 2xx answer of its calls."""

    __slots__ = ("attempts", "content", "headers", "method", "path", "seen", "status")

    def __init__(self) -> None:
        self.seen = False
        self.status = 0
        self.headers: Mapping[str, str] = {}
        self.content = b""
        self.method = ""
        self.path = ""
        self.attempts = 0

    def record(
        self, status: int, headers: Mapping[str, str], content: bytes, method: str, path: str
    ) -> None:
        self.seen = True
        self.status = status
        self.headers = headers
        self.content = content
        self.method = method
        self.path = path

    def response(self, result: T, *, elapsed: float) -> RawResponse[T]:
        return RawResponse(
            result,
            status_code=self.status,
            headers=self.headers,
            content=self.content,
            method=self.method,
            path=self.path,
            attempts=self.attempts,
            elapsed=elapsed,
        )
