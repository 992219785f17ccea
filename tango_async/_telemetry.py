"""What the transport tells observers about each call and attempt: the plain request and
response hooks (``TangoClient(on_request=..., on_response=...)``) and the interface an
instrumentation such as :mod:`tango_async.otel` implements.

A call (one method of a resource, with its retries) is told to every :class:`Instrument`
as it starts (:meth:`Instrument.call`); its :class:`CallTrace` then hears of each attempt
as it goes out (:class:`RequestEvent`, after its rate slot) and as it ends
(:class:`ResponseEvent`, an answer or a failure, with the retry decision), and of the end
of the call. Observers are synchronous and must be quick: they run inside the call, so an
order creation is never held up or cancelled by one awaiting something. An observer that
raises is logged (its exception's type, once per observer and kind) and ignored: it never
fails a call, whatever it does.

Events carry the route template (``GET /orders/{id}``: identifiers taken out) as well as
the path. The path is the caller's own (it holds reference IDs); :mod:`tango_async.otel`
never records it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._exceptions import APIConnectionError, APIError, APITimeoutError, ValidationError

__all__ = [
    "CallTrace",
    "Hooks",
    "Instrument",
    "RequestEvent",
    "RequestHook",
    "ResponseEvent",
    "ResponseHook",
    "Tracing",
    "ActiveCall",
    "call_route",
    "route_template",
    "retry_reason",
]

log = logging.getLogger("tango_async")


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One attempt about to be sent.

    ``route`` is the method and path template (``POST /orders``, ``GET /orders/{id}``);
    ``path`` the path as sent (with its IDs, without the query); ``attempt`` counts from 1;
    ``operation`` is the call's kind (``read``, ``create``, ``resend``, ``change``);
    ``slot_wait`` the seconds this attempt waited for its rate slot (order creation: the
    client's order limiter; other routes: their pacing after a 429)."""

    method: str
    route: str
    path: str
    attempt: int
    operation: str
    slot_wait: float


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """One attempt ended: answered (``status_code``), or failed without an answer
    (``status_code`` None, ``error`` the exception's class name: ``APITimeoutError``,
    ``APIConnectionError``, ``CancelledError``...).

    ``error`` is also set for an answer that is an error (``RateLimitError`` for a 429...).
    ``retry_reason`` is None unless the call will try again (``rate_limited``,
    ``server_error``, ``conflict``, ``timeout``, ``connection_error``; ``reauthorize``
    for a 401 answered to an OAuth token, sent once more with a new one), after
    ``retry_delay`` seconds. ``elapsed`` is the attempt's time on the wire, in seconds.
    ``headers`` are the answer's (empty without one); ``request_id`` its X-REQUEST-ID
    (the error body's requestId for an error without the header) as the server sent it:
    escape it before writing it to a terminal."""

    method: str
    route: str
    path: str
    attempt: int
    operation: str
    status_code: int | None
    request_id: str | None
    elapsed: float
    error: str | None = None
    retry_reason: str | None = None
    retry_delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


RequestHook = Callable[[RequestEvent], object]
ResponseHook = Callable[[ResponseEvent], object]


class CallTrace(Protocol):
    """One call as an instrument follows it (see the module docstring)."""

    def attempt(self, event: RequestEvent) -> None: ...

    def answered(self, event: ResponseEvent) -> None: ...

    def end(self, status_code: int | None, error: BaseException | None) -> None: ...


@runtime_checkable
class Instrument(Protocol):
    """What observes the calls of a client: :meth:`call` is asked once per call, as it
    starts; ``cooldown_wait`` is the seconds the call waited for a resend cooldown first."""

    def call(
        self, method: str, route: str, operation: str, *, cooldown_wait: float = 0.0
    ) -> CallTrace: ...


# Fixed path segments where the route shape puts an identifier: ``GET /lineItems/reasonCodes``
# and ``GET /webhooks/eventtypes`` are calls of their own, not ``GET /lineItems/{id}``.
_FIXED_SEGMENTS = frozenset({"reasonCodes", "eventtypes"})


def route_template(method: str, path: str, *, fixed: frozenset[str] = frozenset()) -> str:
    """``GET /orders/RA1-2/resends`` -> ``GET /orders/{id}/resends``: every second segment,
    where the API puts its identifiers, taken out (unless it is one of ``fixed``), and the
    query dropped. The one route shape of the SDK: the pacing's routes (no ``fixed``) and
    the observers' (:func:`call_route`)."""
    parts = path.split("?", 1)[0].split("/")
    shape = ("{id}" if i >= 2 and i % 2 == 0 and p not in fixed else p for i, p in enumerate(parts))
    return method + " " + "/".join(shape)


def call_route(method: str, path: str) -> str:
    """The route template observers see (:func:`route_template`), keeping the API's fixed
    sub-paths (``GET /lineItems/reasonCodes``, ``GET /webhooks/eventtypes``). Only fixed
    text of the SDK's own paths is ever kept: never an identifier, amount or code."""
    return route_template(method, path, fixed=_FIXED_SEGMENTS)


def retry_reason(failure: BaseException) -> str:
    """Why a failed attempt is tried again, in a word: ``rate_limited`` (429),
    ``server_error`` (5xx), ``conflict`` (409), ``timeout``, ``connection_error``."""
    if isinstance(failure, APIError):
        if failure.status_code == 429:
            return "rate_limited"
        if failure.status_code == 409:
            return "conflict"
        if failure.status_code >= 500:
            return "server_error"
        return f"http_{failure.status_code}"
    if isinstance(failure, APITimeoutError):
        return "timeout"
    if isinstance(failure, APIConnectionError):
        return "connection_error"
    return type(failure).__name__


class _Complaints:
    """Observers that raised, each logged once (per kind of event).

    Whatever an observer raises is contained, BaseException included: a hook that raised
    CancelledError after an order's 201 must not make the call look cancelled before an
    answer (its order would be taken for never made, and sent again under a new ID)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[tuple[int, str]] = set()

    def report(self, observer: object, what: str, e: BaseException | str) -> None:
        """Log, once per ``observer`` and ``what``, that it failed (``e``: its exception,
        or what it did wrong). ``observer`` is a hook or an instrument, never a per-call
        trace: keyed by its identity, a per-call object would be logged on every call."""
        key = (id(observer), what)
        if key in self._seen or len(self._seen) >= 1000:
            return
        self._seen.add(key)
        # The type only: a hook's message may quote anything it was handed. Its name only,
        # not its repr: functools.partial(send, api_key) shows its arguments.
        why = e if isinstance(e, str) else f"raised {type(e).__name__}"
        log.warning("%s %s %s; ignored", what, _name(observer), why)


def _name(observer: object) -> str:
    """An observer's qualified name (a partial's function's), never its repr; never
    raises (an object whose ``__getattr__`` raises is named by its type)."""
    try:
        while isinstance(observer, functools.partial):
            observer = observer.func
        target = observer if hasattr(observer, "__qualname__") else type(observer)
        module, name = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
        if isinstance(module, str) and isinstance(name, str):
            return f"{module}.{name}"
    except Exception:  # a name for a log line, whatever the object does
        pass
    return type(observer).__qualname__


def _returned(result: object, complaints: _Complaints, hook: object, what: str) -> None:
    """A hook returned an awaitable (``lambda e: queue.put(e)``): nothing awaits it, so
    its work would be lost in silence (and a coroutine warn when collected). A task or
    future it returns is scheduled already (``lambda e: loop.create_task(...)``, the way
    the docs give): left alone."""
    if result is None or asyncio.isfuture(result) or not inspect.isawaitable(result):
        return
    if inspect.iscoroutine(result):
        result.close()
    complaints.report(
        hook, what, "returned an awaitable, which is not awaited (hooks must be synchronous)"
    )


class Hooks:
    """The plain request and response hooks of a client (an :class:`Instrument`).

    ``on_request`` / ``on_response``: a callable or a sequence of callables, called with a
    :class:`RequestEvent` before each attempt and a :class:`ResponseEvent` after it (see
    the module docstring: synchronous, quick, their exceptions logged and ignored). An
    async callable is a ValidationError at construction (nothing would await it); a
    sync one that returns an awaitable anyway (``lambda e: queue.put(e)``) has it closed
    and is logged once: schedule async work yourself, e.g. with ``loop.create_task``."""

    __slots__ = ("_complaints", "on_request", "on_response")

    def __init__(
        self,
        on_request: RequestHook | Sequence[RequestHook] | None = None,
        on_response: ResponseHook | Sequence[ResponseHook] | None = None,
    ) -> None:
        self.on_request: tuple[RequestHook, ...] = _callables(on_request, "on_request")
        self.on_response: tuple[ResponseHook, ...] = _callables(on_response, "on_response")
        self._complaints = _Complaints()

    def __bool__(self) -> bool:
        return bool(self.on_request or self.on_response)

    def call(
        self, method: str, route: str, operation: str, *, cooldown_wait: float = 0.0
    ) -> CallTrace:
        return self  # stateless: every event says which call and attempt it is

    def attempt(self, event: RequestEvent) -> None:
        self._fire(self.on_request, event, "on_request hook")

    def answered(self, event: ResponseEvent) -> None:
        self._fire(self.on_response, event, "on_response hook")

    def _fire(self, hooks: Sequence[Callable[[Any], object]], event: object, what: str) -> None:
        for hook in hooks:
            try:
                _returned(hook(event), self._complaints, hook, what)
            except BaseException as e:  # contained, whatever it is: see _Complaints
                self._complaints.report(hook, what, e)

    def end(self, status_code: int | None, error: BaseException | None) -> None:
        pass


def _callables(value: object, name: str) -> tuple[Callable[..., object], ...]:
    if value is None:
        return ()
    items = (value,) if callable(value) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ValidationError(name, "must be a callable or a sequence of callables")
    out = tuple(items)
    for item in out:
        if not callable(item):
            raise ValidationError(name, f"must hold callables, not {type(item).__name__}")
        if _is_async(item):
            raise ValidationError(
                name,
                "must be a synchronous callable (hooks run inside the call and are not "
                "awaited); schedule async work from it with loop.create_task",
            )
    return out


def _is_async(fn: object) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - a callable object's own method
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


class Tracing:
    """The observers of one client and of one call of it: fans each event out to every
    instrument, each one's failure contained. The transport asks :meth:`call` only when
    :attr:`active`; the rest of the time the cost of observing is one attribute check."""

    __slots__ = ("_complaints", "active", "instruments")

    def __init__(self, instruments: Sequence[Instrument] = ()) -> None:
        # Hooks without a hook are left out; any other instrument is kept, even one that is
        # falsy (an empty-looking object must not turn the caller's telemetry off in silence)
        self.instruments: tuple[Instrument, ...] = tuple(
            i for i in instruments if not isinstance(i, Hooks) or i
        )
        self.active = bool(self.instruments)
        self._complaints = _Complaints()

    def call(self, method: str, route: str, operation: str, cooldown_wait: float) -> ActiveCall:
        traces: list[tuple[Instrument, CallTrace]] = []
        for instrument in self.instruments:
            try:
                trace = instrument.call(method, route, operation, cooldown_wait=cooldown_wait)
                traces.append((instrument, trace))
            except BaseException as e:  # contained, whatever it is: see _Complaints
                self._complaints.report(instrument, "instrument", e)
        return ActiveCall(self, traces, method, route, operation)


class ActiveCall:
    """One call's traces, and the attempt in progress (to end it if the call ends first)."""

    __slots__ = (
        "_last",
        "_open",
        "_started",
        "_traces",
        "_tracing",
        "method",
        "operation",
        "route",
    )

    def __init__(
        self,
        tracing: Tracing,
        traces: list[tuple[Instrument, CallTrace]],
        method: str,
        route: str,
        operation: str,
    ) -> None:
        self._tracing = tracing
        self._traces = traces  # each instrument with its trace of this call
        self._last = 0  # the last attempt number told
        self.method = method
        self.route = route
        self.operation = operation
        self._open: RequestEvent | None = None
        self._started = 0.0

    def _each(self, what: str, fire: Callable[[CallTrace], None]) -> None:
        for instrument, trace in self._traces:
            try:
                fire(trace)
            except BaseException as e:  # contained, whatever it is: see _Complaints
                # once per instrument: its trace is a new object on every call
                self._tracing._complaints.report(instrument, what, e)

    def attempt(self, path: str, attempt: int, slot_wait: float) -> None:
        # Numbers only grow within a call: the attempt sent again with a new OAuth token
        # after a 401 is outside the retry budget (the transport does not count it), yet
        # it is another attempt, not a second "1".
        attempt = self._last = max(attempt, self._last + 1)
        event = RequestEvent(self.method, self.route, path, attempt, self.operation, slot_wait)
        self._open = event
        self._started = time.perf_counter()
        self._each("instrument", lambda t: t.attempt(event))

    def answered(
        self,
        *,
        status_code: int | None,
        request_id: str | None,
        error: str | None,
        retry: tuple[str, float] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The open attempt ended (nothing happens when none is open: the call failed
        before sending, e.g. while waiting for its slot)."""
        opened, self._open = self._open, None
        if opened is None:
            return
        event = ResponseEvent(
            opened.method,
            opened.route,
            opened.path,
            opened.attempt,
            opened.operation,
            status_code,
            request_id,
            time.perf_counter() - self._started,
            error,
            retry[0] if retry is not None else None,
            retry[1] if retry is not None else 0.0,
            headers if headers is not None else {},
        )
        self._each("instrument", lambda t: t.answered(event))

    def end(self, status_code: int | None, error: BaseException | None) -> None:
        if self._open is not None:  # cancelled or closed mid-attempt
            self.answered(
                status_code=None,
                request_id=None,
                error=type(error).__name__ if error is not None else "unknown",
            )
        self._each("instrument", lambda t: t.end(status_code, error))
