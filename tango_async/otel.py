"""OpenTelemetry spans and metrics for every call (the ``otel`` extra).

Off unless asked for: ``TangoClient(telemetry=True)`` uses the global tracer and meter
providers, ``TangoClient(telemetry=Telemetry(tracer_provider=..., meter_provider=...))``
the ones given. Needs ``opentelemetry-api`` (``pip install "tango-async[otel]"``); without
it, asking for telemetry is a ValidationError, and nothing of OpenTelemetry is imported
unless asked for.

**Spans.** One per call, ``tango {METHOD} {route}`` (kind INTERNAL), with one child per
attempt, ``{METHOD} {route}`` (kind CLIENT); the attempt's span is current while it is
sent, so aiohttp's own instrumentation, if installed, nests under it. Attributes:

- ``http.request.method``, ``url.template`` (``/orders/{id}``: identifiers taken out),
  ``tango.operation`` (``read``, ``create``, ``resend``, ``change``);
- on the call: ``http.response.status_code``, ``tango.attempts``,
  ``tango.wait.cooldown`` (seconds waited for a resend cooldown), ``error.type``;
- on each attempt: ``http.response.status_code``, ``http.request.resend_count`` (from the
  second attempt), ``tango.attempt``, ``tango.wait.rate_slot`` (seconds waited for the
  rate slot), ``tango.retry.reason`` and ``tango.retry.delay`` when it is retried,
  ``error.type``, ``tango.request_id`` (Tango's X-REQUEST-ID, the support reference).

Never recorded: paths with their IDs, query strings, bodies, amounts, headers, credentials.

**Metrics** (meter ``tango_async``), each with ``http.request.method``, ``url.template``:

- ``tango.client.requests`` (counter, attempts sent; with ``http.response.status_code``
  or ``error.type``);
- ``tango.client.retries`` (counter; with ``tango.retry.reason``);
- ``tango.client.rate_limited`` (counter, 429 answers);
- ``tango.client.slot_wait`` (histogram, seconds an attempt waited for its rate slot);
- ``tango.client.attempt.duration`` (histogram, seconds on the wire).
"""

from __future__ import annotations

from typing import Any

from ._exceptions import ValidationError
from ._logs import escape
from ._telemetry import CallTrace, RequestEvent, ResponseEvent
from ._version import __version__

__all__ = ["Telemetry"]

_EXTRA = 'OpenTelemetry needs the otel extra: pip install "tango-async[otel]"'


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise ValidationError("telemetry", _EXTRA) from None
    return trace, metrics


class Telemetry:
    """OpenTelemetry for a client (an instrument: pass it as ``TangoClient(telemetry=)``).

    ``tracer_provider`` / ``meter_provider``: where spans and metrics go (default: the
    global providers, as set by the application, e.g. with ``opentelemetry-sdk``).
    ValidationError when opentelemetry-api is not installed, or for a provider that is
    not one (a class, or an object without ``get_tracer`` / ``get_meter``). One Telemetry
    may serve several clients."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        trace, metrics = _api()
        for name, value, method in (
            ("tracer_provider", tracer_provider, "get_tracer"),
            ("meter_provider", meter_provider, "get_meter"),
        ):
            if value is not None and (
                isinstance(value, type) or not callable(getattr(value, method, None))
            ):
                raise ValidationError(
                    name, f"must be an OpenTelemetry provider instance (with {method}()), or None"
                )
        self._trace = trace
        self._tracer = trace.get_tracer("tango_async", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("tango_async", __version__, meter_provider=meter_provider)
        self._requests = meter.create_counter(
            "tango.client.requests", unit="{request}", description="Attempts sent to Tango"
        )
        self._retries = meter.create_counter(
            "tango.client.retries", unit="{retry}", description="Attempts tried again"
        )
        self._rate_limited = meter.create_counter(
            "tango.client.rate_limited", unit="{response}", description="HTTP 429 answers"
        )
        self._slot_wait = meter.create_histogram(
            "tango.client.slot_wait",
            unit="s",
            description="Time an attempt waited for its rate slot",
        )
        self._duration = meter.create_histogram(
            "tango.client.attempt.duration", unit="s", description="Time of an attempt on the wire"
        )

    def call(
        self, method: str, route: str, operation: str, *, cooldown_wait: float = 0.0
    ) -> CallTrace:
        return _CallSpan(self, method, route, operation, cooldown_wait)


def _template(route: str) -> str:
    return route.split(" ", 1)[1] if " " in route else route


class _CallSpan:
    """The spans of one call: the call's, and the open attempt's (current while open)."""

    __slots__ = ("_attempt", "_attempts", "_base", "_owner", "_span", "_token", "_trace")

    def __init__(
        self, owner: Telemetry, method: str, route: str, operation: str, cooldown_wait: float
    ) -> None:
        self._owner = owner
        self._trace = owner._trace
        template = _template(route)
        self._base = {
            "http.request.method": method,
            "url.template": template,
        }
        self._span = owner._tracer.start_span(
            f"tango {method} {template}",
            kind=self._trace.SpanKind.INTERNAL,
            attributes={
                **self._base,
                "tango.operation": operation,
                "tango.wait.cooldown": cooldown_wait,
            },
        )
        self._attempt: Any = None
        self._token: Any = None
        self._attempts = 0

    def attempt(self, event: RequestEvent) -> None:
        self._attempts += 1
        owner = self._owner
        attributes: dict[str, Any] = {
            **self._base,
            "tango.operation": event.operation,
            "tango.attempt": event.attempt,
            "tango.wait.rate_slot": event.slot_wait,
        }
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        context = self._trace.set_span_in_context(self._span)
        self._attempt = owner._tracer.start_span(
            f"{event.method} {_template(event.route)}",
            context=context,
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        # Current while sent (the same task: the transport's call), for nested spans.
        self._token = _attach(self._trace.set_span_in_context(self._attempt))
        owner._slot_wait.record(event.slot_wait, self._base)

    def answered(self, event: ResponseEvent) -> None:
        owner = self._owner
        span, self._attempt = self._attempt, None
        token, self._token = self._token, None
        if token is not None:
            _detach(token)
        outcome: dict[str, Any] = dict(self._base)
        if event.status_code is not None:
            outcome["http.response.status_code"] = event.status_code
        if event.error is not None:
            outcome["error.type"] = event.error
        try:
            owner._requests.add(1, outcome)
            owner._duration.record(event.elapsed, outcome)
            if event.status_code == 429:
                owner._rate_limited.add(1, self._base)
            if event.retry_reason is not None:
                owner._retries.add(1, {**self._base, "tango.retry.reason": event.retry_reason})
        finally:  # a meter that raises (the caller logs it) still ends the attempt's span
            if span is not None:
                self._close_attempt(span, event, outcome)

    def _close_attempt(self, span: Any, event: ResponseEvent, outcome: dict[str, Any]) -> None:
        try:
            span.set_attributes(outcome)
            if event.request_id is not None:
                # a header as the server sent it: cut, and escaped (an ANSI sequence, or a
                # lone surrogate from a non-UTF-8 byte, which an OTLP exporter cannot encode)
                span.set_attribute("tango.request_id", escape(event.request_id[:100]))
            if event.retry_reason is not None:
                span.set_attribute("tango.retry.reason", event.retry_reason)
                span.set_attribute("tango.retry.delay", event.retry_delay)
            if event.error is not None and event.retry_reason is None:
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.error))
        finally:
            span.end()

    def end(self, status_code: int | None, error: BaseException | None) -> None:
        span = self._span
        try:
            span.set_attribute("tango.attempts", self._attempts)
            if status_code is not None:
                span.set_attribute("http.response.status_code", status_code)
            if error is not None:
                name = type(error).__name__
                span.set_attribute("error.type", name)
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, name))
        finally:  # ended whatever the span's methods raise (the caller logs it)
            span.end()


def _attach(context: Any) -> Any:
    from opentelemetry import context as otel_context

    return otel_context.attach(context)


def _detach(token: Any) -> None:
    from opentelemetry import context as otel_context

    otel_context.detach(token)
