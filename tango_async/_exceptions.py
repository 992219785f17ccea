"""The typed error hierarchy: every error a public call raises derives from TangoError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CatalogUnavailableError",
    "ClientClosedError",
    "ConflictError",
    "ErrorDetail",
    "InsufficientFundsError",
    "NotFoundError",
    "OAuthError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiterConflictError",
    "ResendCooldownError",
    "ResultWindowError",
    "ServerError",
    "TangoError",
    "TokenRateLimitError",
    "UnprocessableEntityError",
    "ValidationError",
    "WaitTimeoutError",
    "WebhookVerificationError",
]


class TangoError(Exception):
    """Base class of every error raised by tango_async.

    ``external_ref_id`` is set on errors raised by ``orders.create()`` (None on a
    ValidationError, raised before one is assigned): the externalRefID the order was (or
    would have been) sent with, so it can be retried without risk of paying twice.
    ``outcome_unknown`` is True on an error from ``orders.create()`` after which the order
    may exist (a request may have reached the server without a definite answer): the
    client remembers it (``orders.unresolved()``), and creating the same order again
    reuses its externalRefID.
    """

    external_ref_id: str | None = None
    outcome_unknown: bool = False


class ValidationError(TangoError, ValueError):
    """The request breaks a documented rule.

    Raised before anything is sent and before a rate-limit slot is spent.
    ``field`` is the offending field in snake_case, dotted for nesting
    (``recipient.address.postal_code``); ``rule`` says what it must satisfy.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class ClientClosedError(TangoError, RuntimeError):
    """The client was closed (or used from another event loop) and cannot send requests."""


class RateLimiterConflictError(TangoError, ValueError):
    """Clients sharing one limiter (a Redis namespace and platform) were given different
    rates; nothing was sent. Use one rate for one credential, or separate namespaces.
    ``.theirs`` and ``.ours`` are the two spacings, in seconds."""

    def __init__(self, message: str, *, ours: float, theirs: float) -> None:
        super().__init__(message)
        self.ours = ours
        self.theirs = theirs


class SendSkipped(TangoError):
    """Internal: a bulk job stopped before this order's first request went out; nothing
    was sent."""


class ResultWindowError(TangoError):
    """An order search matches more results than the API's result window can page through.

    Raised by ``orders.list()`` when no date range was given, so the range cannot be split.
    """


class ResendCooldownError(TangoError):
    """The order or line item was resent less than the cooldown ago.

    ``retry_after`` is the number of seconds until it may be resent.
    """

    def __init__(self, key: str, retry_after: float) -> None:
        self.key = key
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"{key} was resent less than the cooldown ago; retry after {self.retry_after:.1f} s"
        )


class WaitTimeoutError(TangoError):
    """``orders.wait()`` / ``line_items.wait()`` ran out of time before a final status.

    ``last`` is the last Order (or LineItem) seen, None if no answer came; ``status`` its
    status; ``id`` what was waited for."""

    def __init__(self, id: str, last: object, timeout: float) -> None:
        self.id = id
        self.last = last
        self.status: str | None = getattr(last, "status", None)
        self.timeout = timeout
        super().__init__(
            f"{id} was not final after {timeout:g} s (last status: {self.status or 'none seen'})"
        )


class WebhookVerificationError(TangoError):
    """A webhook delivery failed verification: its signature header is missing, malformed
    or wrong for the body and key, or (after a good signature) the body is not an event.

    ``reason`` says which, without echoing the signature or the body."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"webhook not verified: {reason}")


class APIConnectionError(TangoError):
    """The request could not be completed: connection refused, reset or dropped.

    ``maybe_sent`` is False only when the request certainly never reached the server.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "", maybe_sent: bool = True):
        self.method = method
        self.path = path
        self.maybe_sent = maybe_sent
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """One HTTP attempt took longer than the client's ``timeout``."""


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One item of a Tango error body's ``errors[]`` (or its top-level i18nKey/message)."""

    code: int | str | None = None
    i18n_key: str | None = None
    message: str | None = None
    path: str | None = None
    invalid_value: Any = None
    constraint: str | None = None


MAX_ERROR_BODY = 4096  # the most body bytes an APIError keeps


class APIError(TangoError):
    """The API answered with an error status (or a body that could not be decoded).

    Carries ``status_code``, ``request_id``, ``path``, ``timestamp`` and every item of the
    body's ``errors[]`` as ``errors``; ``body`` is the body (decoded bytes, possibly empty),
    at most its first MAX_ERROR_BODY (4096) bytes: ``body_truncated`` is True when it was
    cut there, or when the body did not decode to its end. ``body_size`` is the size of the
    body the client read (decoded), before that cut.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        path: str | None = None,
        timestamp: str | None = None,
        errors: list[ErrorDetail] | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        body_truncated: bool = False,
    ) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.path = path
        self.timestamp = timestamp
        self.errors: list[ErrorDetail] = errors or []
        self.body_size = len(body)
        self.body_truncated = body_truncated or len(body) > MAX_ERROR_BODY
        self.body = bytes(body[:MAX_ERROR_BODY])
        self.headers: dict[str, str] = headers or {}
        super().__init__(message)

    @property
    def i18n_key(self) -> str | None:
        """The i18nKey of the first error item, if any (e.g. ``"403.005"``)."""
        for e in self.errors:
            if e.i18n_key:
                return e.i18n_key
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, "
            f"i18n_key={self.i18n_key!r}, request_id={self.request_id!r}, path={self.path!r})"
        )


class APIResponseValidationError(APIError):
    """A success response whose body does not decode into the expected model."""


class BadRequestError(APIError):
    """400."""


class AuthenticationError(APIError):
    """401: wrong platform name or key."""


class InsufficientFundsError(APIError):
    """402: the account cannot cover the order."""


class PermissionDeniedError(APIError):
    """403."""


class NotFoundError(APIError):
    """404."""


class ConflictError(APIError):
    """409: e.g. an order with the same externalRefID is still in process (409.002)."""


class UnprocessableEntityError(APIError):
    """422: e.g. a frozen account, or a search period that is too long."""


class RateLimitError(APIError):
    """429: the TPS limit was reached. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(APIError):
    """5xx: the server failed. An order creation may still have been processed."""


# --- OAuth (issue 15): errors of the token endpoint -----------------------------------------


class OAuthError(AuthenticationError):
    """The OAuth token endpoint refused or failed to give a token; nothing was sent to
    the API.

    ``status_code`` is the token endpoint's status (0 when no answer came: it could not
    be reached, timed out, or answered something that is not a token), ``path`` its URL's
    path, ``error`` and ``error_description`` the RFC 6749 error fields of its answer when
    it gave them. The message and ``body`` never hold the client secret, the password or
    a token. An AuthenticationError, so a bulk job stops on it as on a 401."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error: str | None = None,
        error_description: str | None = None,
        **kw: Any,
    ) -> None:
        self.error = error
        self.error_description = error_description
        super().__init__(message, status_code=status_code, **kw)


class TokenRateLimitError(OAuthError):
    """The token endpoint refused a new token: this client asked for too many today
    (HTTP 400, "exceeded the daily rate limit"). Tango allows few new tokens per client
    per day: share one token through a token cache (``tango_async.redis.RedisTokenCache``
    for several processes) and renew it only near its expiry."""


# --- catalog (issue 15): the catalog check of orders.create ----------------------------------


class CatalogUnavailableError(TangoError):
    """``TangoClient(check_catalog=True)`` could not get the catalog to check an order
    against (``GET /catalogs`` failed: the cause, an APIError or APIConnectionError, is
    ``.cause`` and ``__cause__``), so the order was not sent: no request, no rate slot. A
    failure is remembered for a short while, so a run of orders fails fast rather than
    fetching the catalog once per order."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientFundsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_class_for(status: int) -> type[APIError]:
    """The APIError subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
