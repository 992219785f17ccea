"""The sandbox's OAuth 2.0 token endpoint (``POST /oauth/token``, outside ``/raas/v2``) and
the bearer tokens it issues.

As Tango's auth host (``tangocard-auth-openapi.json``): a form-encoded request with
``client_id``, ``client_secret``, ``scope=raas.all``, ``audience`` and ``grant_type``
(``password``, with ``username`` and ``password``, or ``client_credentials``), answered
``{access_token, scope, expires_in, token_type: "Bearer"}``. Lifetimes follow the
audience: ``https://api.tangocard.com/`` 24 hours, ``tango-api.bhn.com/fiveminute`` 5
minutes, on the sandbox clock. Refusals are RFC 6749 error objects as JSON: 401
``invalid_client`` (wrong client ID or secret), 400 ``invalid_grant`` (wrong username or
password), ``unsupported_grant_type``, ``invalid_scope``, ``invalid_request`` (a body that
is not a form, a missing field, an unknown audience) and, past ``daily_limit`` tokens
issued to one client on one sandbox-clock day (UTC), 400 ``invalid_request`` "... exceeded
the daily rate limit ...".

Every request is recorded in :attr:`TokenIssuer.requests` (client ID, grant type,
audience, status, when: never a secret).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from .._exceptions import ValidationError
from .._validation import check_str
from ._wire import respond

if TYPE_CHECKING:
    from ._clock import SandboxClock

__all__ = [
    "AUDIENCE_LIFETIMES",
    "TOKEN_PATH",
    "TokenIssuer",
    "TokenRequest",
    "check_oauth_arguments",
    "parse_form",
]

TOKEN_PATH = "/oauth/token"
AUDIENCE_LIFETIMES = {"https://api.tangocard.com/": 86_400, "tango-api.bhn.com/fiveminute": 300}
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request to the token endpoint, as the sandbox saw it (no secret in it)."""

    client_id: str | None
    grant_type: str | None
    audience: str | None
    status: int
    at: datetime  # the sandbox clock's time
    error: str | None = None


@dataclass(slots=True)
class _Issued:
    client_id: str
    audience: str
    expires_at: float  # the sandbox clock's epoch seconds


def parse_form(raw: bytes) -> dict[str, str] | None:
    """The fields of a form body, or None when it is not one (not UTF-8, a field given
    twice, not key=value pairs)."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    fields = dict(pairs)
    return fields if len(fields) == len(pairs) else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenIssuer:
    """Issues and checks the sandbox's bearer tokens (see the module docstring)."""

    def __init__(
        self,
        clock: SandboxClock,
        *,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        daily_limit: int | None,
    ) -> None:
        self.clock = clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.daily_limit = daily_limit
        self.requests: list[TokenRequest] = []
        self._tokens: dict[str, _Issued] = {}
        self._per_day: dict[tuple[str, date], int] = {}

    def __repr__(self) -> str:
        return f"TokenIssuer(client_id={self.client_id!r}, issued={len(self._tokens)})"

    def add_to(self, app: web.Application) -> None:
        app.router.add_route("POST", TOKEN_PATH, self.token)

    # --- the API side -------------------------------------------------------------------

    def accepts(self, authorization: str | None) -> bool:
        """True for ``Bearer <token>`` naming a token issued here, unexpired on the clock."""
        if authorization is None or not authorization.startswith("Bearer "):
            return False
        issued = self._tokens.get(authorization[len("Bearer ") :])
        return issued is not None and issued.expires_at > self.clock.now().timestamp()

    def revoke_all(self) -> int:
        """Invalidate every token issued so far (the API answers 401 to them); how many."""
        count = len(self._tokens)
        self._tokens.clear()
        return count

    @property
    def valid_tokens(self) -> int:
        """Tokens issued and not yet expired on the sandbox clock."""
        now = self.clock.now().timestamp()
        return sum(1 for t in self._tokens.values() if t.expires_at > now)

    # --- the endpoint -------------------------------------------------------------------

    def _refuse(
        self, fields: dict[str, str] | None, status: int, error: str, description: str
    ) -> web.Response:
        self._record(fields, status, error)
        return respond({"error": error, "error_description": description}, status)

    def _record(self, fields: dict[str, str] | None, status: int, error: str | None) -> None:
        get = (fields or {}).get
        self.requests.append(
            TokenRequest(
                get("client_id"),
                get("grant_type"),
                get("audience"),
                status,
                self.clock.now(),
                error,
            )
        )

    async def token(self, request: web.Request) -> web.Response:
        """``POST /oauth/token``."""
        raw = await request.read()
        if request.content_type != FORM:
            return self._refuse(
                None, 400, "invalid_request", f"the body must be {FORM}, not {request.content_type}"
            )
        fields = parse_form(raw)
        if fields is None:
            return self._refuse(None, 400, "invalid_request", "the body is not a form")
        return self.issue(fields)

    def issue(self, fields: dict[str, str]) -> web.Response:
        """The answer to a token request's ``fields``."""
        grant = fields.get("grant_type")
        if grant not in ("password", "client_credentials"):
            return self._refuse(
                fields,
                400,
                "unsupported_grant_type",
                "grant_type must be password or client_credentials",
            )
        missing = [
            name
            for name in ("client_id", "client_secret", "scope", "audience")
            + (("username", "password") if grant == "password" else ())
            if not fields.get(name)
        ]
        if missing:
            return self._refuse(
                fields, 400, "invalid_request", f"missing parameter(s): {', '.join(missing)}"
            )
        if not (
            _same(fields.get("client_id"), self.client_id)
            and _same(fields.get("client_secret"), self.client_secret)
        ):
            return self._refuse(fields, 401, "invalid_client", "Unauthorized")
        if grant == "password" and not (
            _same(fields.get("username"), self.username)
            and _same(fields.get("password"), self.password)
        ):
            return self._refuse(fields, 400, "invalid_grant", "Wrong email or password.")
        if fields.get("scope") != "raas.all":
            return self._refuse(fields, 400, "invalid_scope", "scope must be raas.all")
        audience = fields["audience"]
        lifetime = AUDIENCE_LIFETIMES.get(audience)
        if lifetime is None:
            return self._refuse(
                fields, 400, "invalid_request", f"Service not found: {audience[:100]}"
            )
        now = self.clock.now()
        day = (self.client_id, now.date())
        if self.daily_limit is not None and self._per_day.get(day, 0) >= self.daily_limit:
            return self._refuse(
                fields,
                400,
                "invalid_request",
                f"You have exceeded the daily rate limit of {self.daily_limit} tokens for "
                "this client; reuse the token you have until it expires",
            )
        self._per_day[day] = self._per_day.get(day, 0) + 1
        token = self._new_token()
        self._tokens[token] = _Issued(self.client_id, audience, now.timestamp() + lifetime)
        self._record(fields, 200, None)
        body: dict[str, Any] = {
            "access_token": token,
            "scope": "raas.all",
            "expires_in": lifetime,
            "token_type": "Bearer",
        }
        return respond(body)

    def _new_token(self) -> str:
        return "sbx-" + secrets.token_urlsafe(32)


def check_oauth_arguments(
    *,
    client_id: object,
    client_secret: object,
    username: object,
    password: object,
    daily_limit: object,
) -> None:
    """ValidationError naming the first of the Sandbox's OAuth arguments out of range."""
    for field, value, optional in (
        ("oauth_client_id", client_id, False),
        ("oauth_client_secret", client_secret, True),
        ("oauth_username", username, False),
        ("oauth_password", password, True),
    ):
        if optional and value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ValidationError(field, "must be a non-empty string")
        check_str(value, field)
    if daily_limit is not None and (
        isinstance(daily_limit, bool) or not isinstance(daily_limit, int) or daily_limit < 1
    ):
        raise ValidationError(
            "oauth_daily_limit", "must be None (no limit) or an int of at least 1"
        )
