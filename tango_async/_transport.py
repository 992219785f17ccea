"""HTTP transport: one aiohttp session, auth, timeouts, bounded reads, error mapping, retries.

Each call names its operation kind's retry decisions (``_retry.READ``, ``CREATE`` or
``RESEND``, an :class:`~tango_async._retry.OperationRetry`), because a resend and an order
creation are not alike; the transport asks them after every failed attempt and waits as
they say (timing: the client's :class:`~tango_async._retry.RetryPolicy`). Every attempt of
a create takes a rate slot first, since the server counts arrivals.

An :class:`Exchange` passed to :meth:`Transport.request` records whether any attempt of
the call may have reached the server: what ``orders.create()`` needs to tell an order that
certainly was not made from one whose outcome is unknown.

Every wait of a call (a rate slot, the write gate, a backoff) goes through
:meth:`Transport.wait`, so :meth:`Transport.close` ends the calls that wait with
ClientClosedError instead of letting them send on a closed session (or, on a caller's
session, after the client was closed).

Pacing (``_pacing.RoutePacing``) happens in two places: the route's slot before an attempt
starts, and its write gate inside the attempt, once the connection is established and
just before the headers are written. The gate runs from aiohttp's tracing signals
(``on_request_headers_sent`` is awaited before the headers are serialised;
``on_request_chunk_sent`` fires, synchronously, right before the body goes out with
them), which also tell for certain whether an attempt that failed had written anything.

Auth: each attempt carries the client's HTTP Basic :class:`~tango_async._auth.Credential`,
or, with OAuth, the bearer token its :class:`~tango_async._oauth.BearerAuth` gives for that
attempt (cached, renewed by one request however many attempts wait). A 401 answered to
a bearer token drops that token (unless another replaced it meanwhile) and sends the call
once more with a new one, outside the retry budget: a 401 means the request was not
processed, so this is safe for an order creation too (it takes a rate slot, as every
attempt does). A second 401 is the AuthenticationError.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import reprlib
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import msgspec

from ._auth import Credential
from ._clock import Clock, SystemClock
from ._codec import decode_body
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    ClientClosedError,
    ErrorDetail,
    RateLimitError,
    TangoError,
    ValidationError,
    error_class_for,
)
from ._logs import escape
from ._oauth import AccessToken, BearerAuth
from ._pacing import Pace, RoutePacing
from ._ratelimit import WriteGate
from ._response import Recorder
from ._retry import OperationRetry, RetryPolicy, parse_retry_after
from ._retry import header as _header
from ._telemetry import ActiveCall, Tracing, call_route, retry_reason
from ._validation import URL_NOISE, http_url
from ._version import __version__

log = logging.getLogger("tango_async")

T = TypeVar("T")

_JSON_DECODER = msgspec.json.Decoder()


# --- bounded decoding of response bodies ------------------------------------------------------

ACCEPT_ENCODING = "gzip, deflate"  # what _Inflater decodes; brotli and zstd are not asked for
_WIRE_CHUNK = 64 * 1024  # wire bytes taken from aiohttp per read
_STEP = 64 * 1024  # the most decoded bytes one decompression step produces
_MAX_GZIP_MEMBERS = 1024  # a gzip body of endless empty members is refused


class _Inflater:
    """Undoes one body's Content-Encoding (none; gzip, members concatenated; deflate,
    zlib-wrapped or raw) in steps that each produce at most the bytes asked for.

    zlib's ``max_length`` leaves the input it did not get to in ``unconsumed_tail``, so a
    64 KiB wire chunk that would inflate to gigabytes costs no more than the reader takes:
    the bound on decoded bytes holds during decompression, not only after it. aiohttp's own
    decoder is not used (requests go with ``auto_decompress=False``): before 3.13 it inflates
    each wire chunk whole, and a caller's session may have any setting.

    ``feed`` wire bytes, ``pull`` until it returns b"" (it wants more input), and
    ``finish`` at the end: the error text, or None. After an error, ``pull`` returns b"".
    """

    __slots__ = ("_gzip", "_members", "_more", "_obj", "_pending", "error", "identity")

    @classmethod
    def for_encoding(cls, header: str) -> _Inflater | None:
        """The inflater of a Content-Encoding header's value; None when not one we decode
        (brotli, zstd, several encodings stacked, anything else)."""
        value = header.strip().lower()
        if value in ("", "identity"):
            return cls(None)
        if value in ("gzip", "x-gzip", "deflate"):
            return cls(value)
        return None

    def __init__(self, kind: str | None) -> None:
        self.identity = kind is None
        self._gzip = kind in ("gzip", "x-gzip")
        self._obj: zlib._Decompress | None = None  # the stream (gzip: member) being decoded
        self._pending = b""  # input not yet given to zlib (or given back by it)
        self._more = False  # the last step was cut at its size: zlib may hold more output
        self._members = 0  # streams (gzip members) decoded to their end
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        self._pending = self._pending + data if self._pending else data

    def pull(self, size: int) -> bytes:
        """At most ``size`` decoded bytes (identity: the bytes fed, whole); b"" when more
        input is needed, or after an error."""
        if self.error is not None:
            return b""
        if self.identity:
            data, self._pending = self._pending, b""
            return data
        while True:
            if self._obj is None:
                if not self._pending or not self._start():
                    return b""
            elif not self._pending and not self._more:
                return b""
            obj = self._obj
            assert obj is not None
            data, self._pending = self._pending, b""
            try:
                out = obj.decompress(data, size)
            except zlib.error as e:
                self.error = str(e)
                return b""
            if obj.eof:  # this stream (member) ended; what follows is the next one's
                self._pending, self._obj, self._more = obj.unused_data, None, False
                self._members += 1
            else:
                self._pending = obj.unconsumed_tail
                self._more = len(out) >= size
            if out:
                return out
            if not obj.eof and self._pending == data:  # zlib wants more input to go on
                self._more = False
                return b""

    def _start(self) -> bool:
        """Begin the next stream on ``_pending``; False when more input is needed (or on
        an error)."""
        head = self._pending
        if self._gzip:
            if head[:2] != b"\x1f\x8b"[: len(head[:2])]:
                self.error = (
                    "data after the end of the gzip body" if self._members else "not a gzip body"
                )
                return False
            if len(head) < 2:
                return False
            if self._members >= _MAX_GZIP_MEMBERS:
                self.error = f"more than {_MAX_GZIP_MEMBERS} gzip members"
                return False
            wbits = 16 + zlib.MAX_WBITS
        else:
            if self._members:
                self.error = "data after the end of the deflate body"
                return False
            if len(head) < 2:
                return False
            # RFC 1950's header (what "deflate" means), or the raw deflate some servers send
            zlib_header = head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
            wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)
        return True

    def finish(self) -> str | None:
        """The end of the body: the error, if it did not decode to the end of its stream."""
        if self.error is None and not self.identity and (self._obj is not None or self._pending):
            self.error = "the compressed body ends early"
        return self.error


@dataclass(slots=True)
class Response:
    """A completed HTTP exchange: status, headers, the whole body (decoded)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    method: str
    path: str
    truncated: bool = False  # an error status's body that did not decode to its end
    # OAuth: the (masked) token the attempt was sent with, so a 401 drops exactly that one
    bearer: AccessToken | None = field(default=None, repr=False, compare=False)

    def parse(self, type_: type[T]) -> T:
        """The body decoded into ``type_``; APIResponseValidationError (with this call's
        method, path, status, headers and body) when it does not decode."""
        try:
            return decode_body(self.body, type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise self.invalid(f"body does not decode: {e}") from None

    def invalid(self, why: str) -> APIResponseValidationError:
        """The error for an answer that is not what the call expects (``why``)."""
        return APIResponseValidationError(
            f"{self.method} {self.path}: HTTP {self.status} {why}",
            status_code=self.status,
            path=self.path,
            body=self.body,
            headers=dict(self.headers),
        )


@dataclass(slots=True)
class Exchange:
    """What happened on the wire during one call, across its attempts.

    ``maybe_delivered`` turns True once an attempt may have reached the server without a
    definite refusal: a 5xx or 409 answer, a connection lost or timed out after sending.
    ``in_flight`` is True while an attempt's request is being sent or answered: a call
    cancelled then may have been delivered too.
    """

    attempts: int = 0
    maybe_delivered: bool = False
    in_flight: bool = False

    @property
    def outcome_unknown(self) -> bool:
        """True when the call, ended now without a 2xx, may still have been processed."""
        return self.maybe_delivered or self.in_flight


class _Attempt:
    """One attempt's state, handed to aiohttp's tracing signals as ``trace_request_ctx``.

    ``owner`` marks the transport that sent it: on a session shared by
    several clients, every client's signals see every request, and only the owner's act
    on it (a GET must pass its gate once, not once per client). ``wait`` is the owner's
    :meth:`Transport.wait`, through which the gate is waited for, so that ``close()`` ends
    a request waiting there with ClientClosedError, nothing sent."""

    __slots__ = ("gate", "has_body", "owner", "token", "traced", "wait", "wrote")

    def __init__(
        self,
        gate: WriteGate | None,
        has_body: bool,
        owner: object,
        wait: Callable[[Awaitable[object]], Awaitable[object]],
    ) -> None:
        self.gate = gate
        self.has_body = has_body
        self.owner = owner
        self.wait = wait
        self.token: object | None = None  # the gate's admission, until the write is reported
        self.traced = False  # our signals saw this request: ``wrote`` can be trusted
        self.wrote = False  # headers were (or were about to be) written

    def __deepcopy__(self, memo: dict[int, Any]) -> _Attempt:
        # One attempt's state, tied to its transport: a copy (aioresponses deep-copies a
        # request's arguments to record them) is the attempt itself.
        return self

    @property
    def unsent(self) -> bool:
        """Our signals saw this request and it never reached its write: certainly unsent."""
        return self.traced and not self.wrote

    def finish(self) -> None:
        """The write happened, or the attempt ended: report a pending admission."""
        if self.token is not None and self.gate is not None:
            token, self.token = self.token, None
            self.gate.after_write(token, written=True)


def _trace_config(owner: object) -> aiohttp.TraceConfig:
    """The tracing signals of one transport (see the module docstring): they act on the
    attempts whose ``owner`` is ``owner``."""
    config: aiohttp.TraceConfig = aiohttp.TraceConfig()

    def attempt_of(ctx: Any) -> _Attempt | None:
        attempt = getattr(ctx, "trace_request_ctx", None)
        return attempt if isinstance(attempt, _Attempt) and attempt.owner is owner else None

    async def on_request_start(session: Any, ctx: Any, params: Any) -> None:
        attempt = attempt_of(ctx)
        if attempt is not None:
            attempt.traced = True

    async def on_headers(session: Any, ctx: Any, params: Any) -> None:
        # Awaited by aiohttp on an established connection, before the headers are serialised.
        attempt = attempt_of(ctx)
        if attempt is None:
            return
        gate = attempt.gate
        if gate is not None and attempt.token is None:
            attempt.token = await attempt.wait(gate.before_write())
        attempt.wrote = True
        if not attempt.has_body:
            # Without a body, aiohttp writes the headers as soon as this returns, in this step.
            attempt.finish()

    async def on_chunk(session: Any, ctx: Any, params: Any) -> None:
        # Called right before the first body bytes (and the buffered headers) are written.
        attempt = attempt_of(ctx)
        if attempt is not None:
            attempt.finish()

    config.on_request_start.append(on_request_start)
    config.on_request_headers_sent.append(on_headers)
    config.on_request_chunk_sent.append(on_chunk)
    config.freeze()
    return config


def _describe(e: BaseException) -> str:
    """What the message of a connection error keeps of aiohttp's exception, which is not
    chained (its ``request_info`` holds the request's headers): its type and, for an OS
    error, the errno and the OS's text; nothing else of the exception's own text."""
    name = type(e).__name__
    os_error = e.os_error if isinstance(e, aiohttp.ClientConnectorError) else e
    if isinstance(os_error, OSError) and os_error.errno is not None:
        return f"{name}: [Errno {os_error.errno}] {os_error.strerror}"
    return name


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; plain http only for loopback hosts; no
    whitespace or control characters inside it (around it: dropped)."""
    if isinstance(base_url, str):
        base_url = base_url.strip()  # a line end read from a file is no part of it
        if URL_NOISE.search(base_url) is not None:
            # yarl drops tabs, CR and LF: "https://api.tangocard.com\n.evil.com/raas/v2"
            # would be evil.com's host, the credentials sent there
            raise ValidationError("base_url", "must not contain whitespace or control characters")
    return str(http_url(base_url, "base_url")).rstrip("/")


class _Shared:
    """What a transport and its views (:meth:`Transport.derive`) share: the session and
    its lifecycle, the event loop, the calls waiting (for :meth:`Transport.close`)."""

    __slots__ = ("closed", "closing", "loop", "owns_session", "session", "waiting")

    def __init__(self, session: aiohttp.ClientSession | None) -> None:
        self.session = session
        self.owns_session = session is None
        self.closed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiting: set[asyncio.Task[Any]] = set()  # tasks inside wait()
        self.closing: set[asyncio.Task[Any]] = set()  # ... that close() cancelled


class Transport:
    """Sends requests for one client. Owns its aiohttp session unless one was given.

    :meth:`derive` makes a view of it (``with_options``, ``with_raw_response``) with its
    own timeout, retry policy or recorder, sharing everything else."""

    def __init__(
        self,
        *,
        base_url: str,
        credential: Credential | None,
        timeout: float,
        retry: RetryPolicy,
        session: aiohttp.ClientSession | None,
        connector_limit: int,
        max_response_bytes: int,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
        pacing: RoutePacing | None = None,
        oauth: BearerAuth | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        if (credential is None) == (oauth is None):
            raise ValidationError("auth", "exactly one of a credential and OAuth is needed")
        self.base_url = base_url
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._ssl_context = ssl_context
        self.pacing = pacing
        self._owner = object()  # marks this transport's attempts for its signals
        self._trace = _trace_config(self._owner)
        # The Authorization header is added by the credential inside the call that hands the
        # headers to aiohttp (see _auth): these dicts, and the locals of send(), never hold it.
        self._credential = credential
        self._oauth = oauth  # OAuth: the bearer token of each attempt (see the module docstring)
        self._headers = {
            "Accept": "application/json",
            # Only what _Inflater decodes; each request is sent with auto_decompress=False.
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": f"tango-async/{__version__}",
        }
        self._post_headers = {**self._headers, "Content-Type": "application/json"}
        self.timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self.retry = retry
        self._shared = _Shared(session)
        self._connector_limit = connector_limit
        self.max_response_bytes = max_response_bytes
        self.tracing: Tracing = tracing if tracing is not None else Tracing()
        self._recorder: Recorder | None = None  # a with_raw_response view's

    def derive(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        recorder: Recorder | None = None,
    ) -> Transport:
        """A view of this transport: the same session, credential, pacing and observers,
        closed with it; its own ``timeout`` (per attempt), ``retry`` policy and
        ``recorder`` (the 2xx answers of its calls, for with_raw_response) where given."""
        view = copy.copy(self)
        if timeout is not None:
            view.timeout = timeout
            view._client_timeout = aiohttp.ClientTimeout(total=timeout)
        if retry is not None:
            view.retry = retry
        view._recorder = recorder  # never the parent's: each raw call records its own
        return view

    # The shared lifecycle, under the names the methods below use.
    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self._shared.session

    @_session.setter
    def _session(self, session: aiohttp.ClientSession | None) -> None:
        self._shared.session = session

    @property
    def _owns_session(self) -> bool:
        return self._shared.owns_session

    @property
    def _closed(self) -> bool:
        return self._shared.closed

    @property
    def _waiting(self) -> set[asyncio.Task[Any]]:
        return self._shared.waiting

    @property
    def _closing(self) -> set[asyncio.Task[Any]]:
        return self._shared.closing

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._shared.closed

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use inside the running loop."""
        if self._closed:
            raise ClientClosedError("this TangoClient is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._shared.loop is None:
            self._shared.loop = loop
        elif loop is not self._shared.loop:
            raise ClientClosedError(
                "this TangoClient was first used in another event loop; "
                "create one client per event loop"
            )
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connector_limit,
                ttl_dns_cache=300,
                ssl=self._ssl_context if self._ssl_context is not None else True,
            )
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=[self._trace])
        elif self._session.closed:
            raise ClientClosedError("the aiohttp session given to this TangoClient is closed")
        elif self._trace not in self._session.trace_configs:
            # A caller's session: our signals only act on our own requests.
            self._session.trace_configs.append(self._trace)
        return self._session

    async def close(self) -> None:
        if self._closed:
            return
        self._shared.closed = True
        for task in self._waiting:  # they end with ClientClosedError, having sent nothing more
            self._closing.add(task)
            task.cancel()
        if self._owns_session and self._session is not None:
            await self._session.close()
        elif self._session is not None and self._trace in self._session.trace_configs:
            self._session.trace_configs.remove(self._trace)
        self._session = None

    async def sleep(self, seconds: float) -> None:
        """A back-off or cooldown of a call: ``seconds`` on the client's clock, ended by
        :meth:`close` with ClientClosedError (see :meth:`wait`)."""
        await self.wait(self.clock.sleep(seconds))

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await one wait of a call (a rate slot, a backoff, a cooldown): :meth:`close`
        ends it with ClientClosedError. Other cancellations propagate as they are."""
        if self._closed:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise ClientClosedError("this TangoClient was closed; nothing more was sent")
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            return await awaitable
        self._waiting.add(task)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task in self._closing:
                self._closing.discard(task)
                if task.uncancel() == 0:
                    raise ClientClosedError(
                        "this TangoClient was closed while the call waited; nothing more was sent"
                    ) from None
            raise
        finally:
            self._waiting.discard(task)

    # --- one attempt --------------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        attempt: int = 1,
        before_send: Callable[[], Awaitable[None]] | None = None,
        exchange: Exchange | None = None,
        pace: Pace | None = None,
        trace: ActiveCall | None = None,
    ) -> Response:
        """One HTTP attempt: a Response whatever its status. Raises APIConnectionError /
        APITimeoutError, or ClientClosedError when the client is (or gets) closed first;
        APIResponseValidationError when the body, decoded, is over ``max_response_bytes``
        or (on a 2xx) cannot be decoded; ValidationError (field ``session``) when aiohttp
        refuses the request before sending it (a caller's session adding its own
        Authorization: a .netrc entry under ``trust_env=True``).

        ``pace`` (the route's pacer) gives the slot before the attempt starts and the write
        gate inside it; ``before_send`` runs after the slot, right before the request.

        A TangoError raised here has neither ``__cause__`` nor ``__context__``: aiohttp's
        exception (its ``request_info`` holds the request's headers) is left behind, its
        type and OS error kept in the message."""
        session = self.session()
        url = self.base_url + path
        slot_wait = 0.0
        if pace is not None:
            waiting = self.clock.monotonic()
            await self.wait(pace.slot())
            slot_wait = self.clock.monotonic() - waiting
        if before_send is not None:
            await self.wait(before_send())
        # OAuth: this attempt's token (masked), fetched or renewed when needed; an OAuthError
        # from the token endpoint ends the call here, nothing sent to the API.
        bearer = await self.wait(self._oauth.token(session)) if self._oauth is not None else None
        if pace is not None or before_send is not None or bearer is not None:
            session = self.session()  # closed meanwhile: ClientClosedError, nothing sent
        tracked = _Attempt(
            pace.gate if pace is not None else None, body is not None, self._owner, self.wait
        )
        if exchange is not None:
            exchange.attempts += 1
            exchange.in_flight = True
        if self._recorder is not None:
            self._recorder.attempts += 1
        if trace is not None:
            trace.attempt(path, attempt, slot_wait)
        start = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.timeout
        failure: TangoError | None = None  # raised once out of the except blocks
        try:
            async with session.request(
                method,
                url,
                data=body,
                params=params,
                # the credential's header, made here: no local of this frame holds it
                headers=self._authorized(
                    bearer, self._post_headers if body is not None else self._headers
                ),
                timeout=self._client_timeout,
                allow_redirects=False,  # never carry the Authorization header elsewhere
                auto_decompress=False,  # _read decodes, bounded, whatever the session's setting
                raise_for_status=False,  # every status is ours to map (a caller's session too)
                trace_request_ctx=tracked,
            ) as resp:
                tracked.finish()
                data, truncated = await self._read(resp, method, path, deadline)
                result = Response(
                    resp.status, resp.headers, data, method, path, truncated, bearer=bearer
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            tracked.finish()
            self._log_attempt(method, path, None, attempt, start, None, type(e).__name__)
            error = self._connection_error(e, method, path, written=not tracked.unsent)
            if exchange is not None:
                exchange.in_flight = False
                exchange.maybe_delivered |= error.maybe_sent
            failure = error
        except RuntimeError as e:
            tracked.finish()
            # aiohttp: "Session is closed" (closed under us, or the caller's own session)
            # before the request started; "Connection closed." when the session closed
            # while the answer was read: the request went out, the order may exist.
            if not (self._closed or session.closed):
                raise
            unsent = tracked.unsent or str(e) == "Session is closed"
            if exchange is not None:
                exchange.in_flight = False
                exchange.maybe_delivered |= not unsent
            failure = ClientClosedError(
                "this TangoClient (or its aiohttp session) was closed; nothing was sent"
                if unsent
                else "this TangoClient (or its aiohttp session) was closed while the request "
                "was sent or answered; it may have been delivered"
            )
        except ValueError as e:
            tracked.finish()
            # aiohttp refusing the request before sending it: the session's auth (a .netrc
            # entry under trust_env=True) beside our Authorization header, or a hook of the
            # caller's session. Not a connection error: asking again fails the same way.
            # (After the write, or unseen by our signals, it counts as one, maybe sent.)
            if exchange is not None:
                exchange.in_flight = False
                exchange.maybe_delivered |= not tracked.unsent
            failure = (
                ValidationError(
                    "session",
                    f"aiohttp refused the request before sending it ({type(e).__name__}): the "
                    "session must not add an Authorization header (auth=, or a .netrc entry "
                    "with trust_env=True); nothing was sent",
                )
                if tracked.unsent
                else self._connection_error(e, method, path)
            )
        except APIResponseValidationError:  # an over-long body: the server did answer
            tracked.finish()
            if exchange is not None:
                exchange.in_flight = False
                exchange.maybe_delivered = True
            raise
        except BaseException:
            # Cancelled, or the write gate failed (a shared limiter's error): a pending
            # admission counts as a write; an attempt our signals saw stop before its
            # write certainly sent nothing.
            tracked.finish()
            if exchange is not None and tracked.unsent:
                exchange.in_flight = False
            raise
        if failure is not None:
            raise failure  # outside the except blocks: no __context__
        if exchange is not None:
            exchange.in_flight = False
        if log.isEnabledFor(logging.DEBUG):
            self._log_attempt(
                method, path, result.status, attempt, start, _request_id(result), None
            )
        return result

    def _authorized(self, bearer: AccessToken | None, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this attempt's Authorization header (a HeaderValue): the bearer
        token's, else the Basic credential's."""
        if bearer is not None:
            return bearer.headers(base)
        assert self._credential is not None  # one of the two, checked by __init__
        return self._credential.headers(base)

    def _connection_error(
        self, e: BaseException, method: str, path: str, *, written: bool = True
    ) -> APIConnectionError:
        """The typed error for a failed attempt; ``maybe_sent`` False only before any write
        (``written=False``: the tracing signals saw that nothing was written)."""
        cls: type[APIConnectionError] = APIConnectionError
        if not written:
            if isinstance(e, TimeoutError):
                cls, what = APITimeoutError, f"timed out before sending, after {self.timeout:g} s"
            else:
                what = f"connection failed before sending ({_describe(e)})"
            return cls(f"{method} {path}: {what}", method=method, path=path, maybe_sent=False)
        if isinstance(e, aiohttp.ConnectionTimeoutError):
            cls, what, sent = (
                APITimeoutError,
                f"timed out connecting after {self.timeout:g} s",
                False,
            )
        elif isinstance(e, TimeoutError):
            cls, what, sent = APITimeoutError, f"no complete answer within {self.timeout:g} s", True
        elif isinstance(e, aiohttp.ClientConnectorError):
            what, sent = f"could not connect ({_describe(e)})", False
        else:
            what, sent = f"connection failed after sending ({_describe(e)})", True
        return cls(f"{method} {path}: {what}", method=method, path=path, maybe_sent=sent)

    async def _read(
        self, resp: aiohttp.ClientResponse, method: str, path: str, deadline: float
    ) -> tuple[bytes, bool]:
        """The body, decoded, and whether it was cut short; at most ``max_response_bytes``
        decoded bytes are ever held (see _Inflater), on every status.

        A 2xx body over the bound is an APIResponseValidationError (the connection is
        closed, not read on), as is one in an encoding not asked for or that does not
        decode. An error status's body is never a reason to lose the status: over the
        bound, or undecodable, it is kept as far as it was read (at most the bound),
        marked truncated, and the connection closed; so a 429 or 503 with a huge body is
        still retried as a 429 or 503, its Retry-After honoured.
        Decoding runs in steps between reads, against the attempt's ``deadline``: past
        it, TimeoutError (an APITimeoutError for the caller)."""
        limit = self.max_response_bytes
        success = 200 <= resp.status < 300
        encoding = resp.headers.get("Content-Encoding", "")
        inflater = _Inflater.for_encoding(encoding)
        problem: str | None = None
        if inflater is None:
            if success:
                resp.close()
                raise APIResponseValidationError(
                    f"{method} {path}: HTTP {resp.status} body in an encoding not asked for "
                    f"(Content-Encoding {encoding[:40]!r}); not read",
                    status_code=resp.status,
                    path=path,
                )
            inflater = _Inflater(None)  # an error body: kept as it came, bounded the same
        if (
            success
            and inflater.identity
            and resp.content_length is not None
            and resp.content_length > limit
        ):
            resp.close()
            raise self._too_large(resp.status, method, path)
        loop = asyncio.get_running_loop()
        body = bytearray()
        wire = 0
        wire_limit = limit + limit // 64 + 4096  # deflate's worst case is ~0.03% over
        steps = 0
        async for chunk in resp.content.iter_chunked(_WIRE_CHUNK):
            wire += len(chunk)
            over_wire = wire > wire_limit
            if over_wire:
                if success:
                    resp.close()
                    raise self._too_large(resp.status, method, path)
                chunk = chunk[: len(chunk) - (wire - wire_limit)]  # an error body: keep its head
            inflater.feed(chunk)
            while piece := inflater.pull(min(_STEP, limit - len(body) + 1)):
                body += piece
                if len(body) > limit:
                    resp.close()
                    if not success:  # the status counts; the body is cut at the bound
                        del body[limit:]
                        return bytes(body), True
                    raise self._too_large(resp.status, method, path)
                steps += 1
                if steps % 16 == 0:  # every MiB decoded: let the loop (and timeouts) run
                    if loop.time() > deadline:
                        resp.close()
                        raise TimeoutError
                    await asyncio.sleep(0)
            if over_wire:
                resp.close()
                return bytes(body), True
            if inflater.error is not None:
                break
        problem = inflater.finish()
        if problem is not None:
            resp.close()
            if success:
                raise APIResponseValidationError(
                    f"{method} {path}: HTTP {resp.status} {escape(encoding[:40])} body does not "
                    f"decode ({problem})",
                    status_code=resp.status,
                    path=path,
                )
        return bytes(body), problem is not None

    def _too_large(self, status: int, method: str, path: str) -> APIResponseValidationError:
        return APIResponseValidationError(
            f"{method} {path}: response body larger than {self.max_response_bytes} bytes "
            "(decoded); not read",
            status_code=status,
            path=path,
        )

    def _log_attempt(
        self,
        method: str,
        path: str,
        status: int | None,
        attempt: int,
        start: float,
        request_id: str | None,
        failure: str | None,
    ) -> None:
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.perf_counter() - start) * 1000
            log.debug(
                "%s %s -> %s attempt=%d elapsed_ms=%.1f request_id=%s",
                method,
                path,
                status if status is not None else failure,
                attempt,
                elapsed,
                request_id or "-",
            )

    # --- a call, with retries -------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: OperationRetry,
        body: bytes | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        exchange: Exchange | None = None,
        cooldown_wait: float = 0.0,
    ) -> Response:
        """Send with retries as ``operation`` decides; return a 2xx Response or raise.

        Raises the last attempt's error when ``operation`` does not retry it: an APIError
        subclass for an answer, APIConnectionError (APITimeoutError) for a failure without
        one; ClientClosedError once the client is closed. ``exchange``, if given, records
        what may have reached the server (see Exchange). ``cooldown_wait``: the seconds
        the call waited for a resend cooldown before this, for the observers.
        """
        if not self.tracing.active:
            resp = await self._request(
                method, path, operation, body, params, before_send, exchange, None
            )
        else:
            route = call_route(method, path)
            trace = self.tracing.call(method, route, operation.kind, cooldown_wait)
            try:
                resp = await self._request(
                    method, path, operation, body, params, before_send, exchange, trace
                )
            except BaseException as e:
                trace.end(getattr(e, "status_code", None), e)
                raise
            trace.end(resp.status, None)
        if self._recorder is not None:
            self._recorder.record(resp.status, resp.headers, resp.body, method, path)
        return resp

    async def _request(
        self,
        method: str,
        path: str,
        operation: OperationRetry,
        body: bytes | None,
        params: Sequence[tuple[str, str]] | None,
        before_send: Callable[[], Awaitable[None]] | None,
        exchange: Exchange | None,
        trace: ActiveCall | None,
    ) -> Response:
        policy = self.retry
        decide = operation.decide
        pace = (
            self.pacing.for_request(method, path, operation.kind)
            if self.pacing is not None
            else None
        )
        # A call that asks again (create after an unreadable 2xx) shares one retry budget.
        attempt = exchange.attempts if exchange is not None else 0
        reauthorized = False  # OAuth: the one new token (and new attempt) after a 401
        while True:
            started = self.clock.monotonic()
            try:
                resp = await self.send(
                    method,
                    path,
                    body=body,
                    params=params,
                    attempt=attempt + 1,
                    before_send=before_send,
                    exchange=exchange,
                    pace=pace,
                    trace=trace,
                )
            except APIConnectionError as e:
                option = decide(e, attempt, policy)
                if trace is not None:
                    trace.answered(
                        status_code=None,
                        request_id=None,
                        error=type(e).__name__,
                        retry=(retry_reason(e), option.delay) if option.retry else None,
                    )
                if not option.retry:
                    raise
                delay = option.delay
                log.info(
                    "%s %s: %s; retry %d in %.2f s",
                    method,
                    path,
                    type(e).__name__,
                    attempt + 1,
                    delay,
                )
            else:
                if pace is not None and resp.status != 429:
                    pace.succeeded()
                if 200 <= resp.status < 300:
                    if trace is not None:
                        trace.answered(
                            status_code=resp.status,
                            request_id=_request_id(resp),
                            error=None,
                            headers=resp.headers,
                        )
                    return resp
                if resp.status == 401 and resp.bearer is not None and not reauthorized:
                    # The token was refused (revoked, expired early): drop it unless another
                    # call already replaced it, and send once more with a new one. A 401
                    # was not processed: safe even for an order creation.
                    reauthorized = True
                    assert self._oauth is not None
                    if trace is not None:
                        trace.answered(
                            status_code=401,
                            request_id=_request_id(resp),
                            error="AuthenticationError",
                            retry=("reauthorize", 0.0),
                            headers=resp.headers,
                        )
                    await self.wait(self._oauth.invalidate(resp.bearer))
                    log.info("%s %s: HTTP 401 with an OAuth token; renewing it, once", method, path)
                    continue
                error = build_api_error(resp)
                if exchange is not None and (error.status_code >= 500 or error.status_code == 409):
                    exchange.maybe_delivered = True  # processed, or in process
                option = decide(error, attempt, policy)
                if trace is not None:
                    trace.answered(
                        status_code=resp.status,
                        request_id=error.request_id,
                        error=type(error).__name__,
                        retry=(retry_reason(error), option.delay) if option.retry else None,
                        headers=resp.headers,
                    )
                if not option.retry:
                    raise error
                delay = option.delay
                if error.status_code == 429 and pace is not None:
                    await pace.rate_limited(delay, started)
                log.info(
                    "%s %s: HTTP %d %s; retry %d in %.2f s",
                    method,
                    path,
                    error.status_code,
                    error.i18n_key or "",
                    attempt + 1,
                    delay,
                )
            await self.sleep(delay)
            attempt += 1


# --- error bodies ---------------------------------------------------------------------------

_REQUEST_ID = re.compile(rb'"requestId"\s*:\s*"([^"\\]{1,100})"')


def _request_id(resp: Response) -> str | None:
    """The request ID for the log: the header, else (error bodies) the body's requestId."""
    rid = resp.headers.get("X-Request-Id")
    if rid is None and resp.status >= 400:
        m = _REQUEST_ID.search(resp.body, 0, 2048)
        rid = m.group(1).decode("utf-8", "replace") if m else None
    return rid


_MIN_PARSED_VALUES = 10_000  # JSON values an error body may hold and still be parsed


def _parse_error_body(body: bytes) -> tuple[Any, str]:
    """An error body's JSON, or None and why it was not parsed.

    Not parsed: a body that is not JSON or nests beyond the recursion limit, and one with
    more values than ``max(10,000, one per 64 bytes)`` (counted from its ``,``, ``[`` and
    ``{``): parsed into Python objects, JSON takes up to ~25 times its size (``{}`` is 3
    bytes, a dict 64), and all of it in one step that no timeout interrupts. Real error
    bodies are a few hundred bytes."""
    if not body:
        return None, "empty body"
    values = body.count(b",") + body.count(b"[") + body.count(b"{")
    if values > max(_MIN_PARSED_VALUES, len(body) // 64):
        return None, "JSON body with too many values to read"
    try:
        return _JSON_DECODER.decode(body), ""
    except (msgspec.DecodeError, RecursionError):  # not JSON, or nested beyond reason
        return None, "non-JSON body"


def build_api_error(resp: Response) -> APIError:
    """The typed APIError for a non-2xx response, whatever its body (JSON, HTML, empty, cut)."""
    status = resp.status
    headers = dict(resp.headers)
    parsed, unparsed = _parse_error_body(resp.body)
    details: list[ErrorDetail] = []
    request_id = _header(headers, "X-Request-Id")
    path: str | None = resp.path
    timestamp: str | None = None
    phrase = ""
    if isinstance(parsed, dict):
        request_id = _opt_str(parsed.get("requestId")) or request_id
        path = _opt_str(parsed.get("path")) or path
        timestamp = _opt_str(parsed.get("timestamp"))
        phrase = _opt_str(parsed.get("httpPhrase")) or ""
        items = parsed.get("errors")
        if isinstance(items, list):  # the first few: what an exception keeps stays small
            details.extend(_detail(item) for item in items[:_MAX_DETAILS])
        if parsed.get("i18nKey") is not None or parsed.get("message") is not None:
            top = ErrorDetail(
                code=_opt_code(parsed.get("code")),
                i18n_key=_opt_str(parsed.get("i18nKey")),
                message=_opt_str(parsed.get("message")),
            )
            if not any(d.i18n_key == top.i18n_key and d.message == top.message for d in details):
                details.append(top)
    if parsed is None:
        what = (
            "empty body"
            if not resp.body
            else (
                f"{unparsed} ({len(resp.body)} bytes{', cut short' if resp.truncated else ''}, "
                f"{(_header(headers, 'Content-Type') or 'no content type')[:100]})"
            )
        )
    else:
        texts = (f"{d.i18n_key + ' ' if d.i18n_key else ''}{d.message or ''}" for d in details)
        what = "; ".join(t.strip() for t in texts if t.strip()) or "no error details"
        what = _cut(what)
    what, phrase = escape(what), escape(phrase)  # server text: one line, control chars escaped
    message = f"{resp.method} {resp.path}: HTTP {status}{' ' + phrase if phrase else ''}: {what}"
    if request_id:
        message += f" (requestId={escape(request_id)})"
    cls = error_class_for(status)
    kwargs: dict[str, Any] = {
        "status_code": status,
        "request_id": request_id,
        "path": path,
        "timestamp": timestamp,
        "errors": details,
        "body": resp.body,  # APIError keeps its first MAX_ERROR_BODY bytes
        "body_truncated": resp.truncated,
        "headers": headers,
    }
    if cls is RateLimitError:
        return RateLimitError(
            message, retry_after=parse_retry_after(_header(headers, "Retry-After")), **kwargs
        )
    return cls(message, **kwargs)


def _detail(item: Any) -> ErrorDetail:
    if not isinstance(item, dict):
        return ErrorDetail(message=_opt_str(item))
    return ErrorDetail(
        code=_opt_code(item.get("code")),
        i18n_key=_opt_str(item.get("i18nKey")),
        message=_opt_str(item.get("message")),
        path=_opt_str(item.get("path")),
        invalid_value=_small(item.get("invalidValue")),
        constraint=_opt_str(item.get("constraint")),
    )


_MAX_DETAILS = 50  # errors[] items an APIError keeps
_MAX_DETAIL_TEXT = 1000  # characters kept of one text of an error body (and of the message)


_MAX_KEPT_DEPTH = 8  # the deepest list/dict an ErrorDetail keeps as it came

_RENDER = reprlib.Repr()  # bounded in depth and length, whatever the value
_RENDER.maxlevel = _MAX_KEPT_DEPTH
_RENDER.maxstring = _RENDER.maxother = _MAX_DETAIL_TEXT


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    return _cut(v if isinstance(v, str) else _text(v))


def _cut(text: str) -> str:
    """``text``, cut at ``_MAX_DETAIL_TEXT`` characters (saying so) when longer."""
    return text if len(text) <= _MAX_DETAIL_TEXT else text[:_MAX_DETAIL_TEXT] + "... (cut)"


def _small(v: Any) -> Any:
    """An invalidValue as it came, unless its text is long or it nests deep: then its
    text, cut."""
    if isinstance(v, str) or (isinstance(v, (list, dict)) and _bulky(v)):
        return _opt_str(v)
    if isinstance(v, (list, dict)) and len(str(v)) > _MAX_DETAIL_TEXT:
        return _opt_str(v)
    return v


def _bulky(v: list[Any] | dict[Any, Any]) -> bool:
    """True when ``v`` nests deeper than _MAX_KEPT_DEPTH or holds more than a text's worth
    of values and characters: walked without recursion, and only that far."""
    stack: list[tuple[Any, int]] = [(v, 0)]
    cost = 0
    while stack:
        item, depth = stack.pop()
        cost += 1 + (len(item) if isinstance(item, str) else 0)
        if cost > _MAX_DETAIL_TEXT or depth > _MAX_KEPT_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((x, depth + 1) for x in (*item.keys(), *item.values()))
        elif isinstance(item, list):
            stack.extend((x, depth + 1) for x in item)
    return False


def _text(v: Any) -> str:
    """A decoded JSON value's text, at a bounded cost: ``str()`` of a list or dict nested
    near the recursion limit raises RecursionError (and from a deeper frame than the one
    that parsed it), so a bulky one is rendered by reprlib, which stops at a depth and a
    length."""
    if isinstance(v, (list, dict)) and _bulky(v):
        return _RENDER.repr(v)
    return str(v)


def _opt_code(v: Any) -> int | str | None:
    if v is None or (isinstance(v, (int, str)) and not isinstance(v, bool)):
        return v
    return str(v)
