"""OAuth 2.0 bearer tokens for the API: the token flow, its cache and its refresh.

``TangoClient(auth=OAuth(client_id, client_secret, ...))`` sends ``Authorization: Bearer
<token>`` instead of HTTP Basic. The token comes from Tango's token endpoint (``POST
{token_url}``, a form with ``client_id``, ``client_secret``, ``scope=raas.all``,
``audience`` and ``grant_type``, plus ``username`` and ``password`` for the password
grant), answered with ``{access_token, scope, expires_in, token_type}``.

**Caching and single flight.** Tokens are kept in a :class:`TokenCache`, keyed by a hash
of (token URL, client ID, username, audience), never of a secret. However many
coroutines (and clients, and, with ``tango_async.redis.RedisTokenCache``, processes)
need a token at once, one of them takes the cache's refresh lock and asks the endpoint;
the others wait for the token it stores, or share its failure (the callers of one OAuth
object that waited for a renewal that failed get its OAuthError, or the unexpired token
still cached, instead of each asking again). A token is renewed only when less than
``min(refresh_margin, a tenth of its lifetime)`` is left of it, so a 24-hour token is
renewed 5 minutes before it expires and a 5-minute one 30 seconds before: Tango allows
few new tokens per client per day. When the renewal fails, a token that has not yet
expired is still used.

**Retries.** A token request is retried on 429, 5xx, timeouts and connection errors
after the client's back-off (its RetryPolicy, on its clock), at most its
``max_retries`` times; never on 400 or 401. Every failure is an :class:`OAuthError` (an
AuthenticationError), a 400 saying the daily rate limit was exceeded a
:class:`TokenRateLimitError`. A 401 from the API itself is handled by the transport:
the token that was used is invalidated (if it is still the cached one), a new one is
fetched (once, however many calls got the 401) and the call is sent once more.

**Time.** Expiries are absolute wall-clock times (epoch seconds), so processes sharing
a cache agree on them; the wall clock is the client's clock when it has one (a
``wall()`` method giving epoch seconds, or a ``now()`` giving an aware datetime, as the
sandbox's ``SandboxClock``), else ``time.time()``.

**Secrets.** The client secret, the password and every token are held masked
(``_repr.Sealed``): reprs, str(), pickles and tracebacks show ``<redacted>``. The
token becomes the header only inside the expression that hands the headers to aiohttp
(:meth:`AccessToken.headers`, a ``HeaderValue``); the form with the secrets is built
inside the call that sends it (a ``SecretBytes``). The constructor drops the secrets it
was given before it raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn, Protocol, runtime_checkable
from urllib.parse import urlencode

import aiohttp
import msgspec
from yarl import URL

from ._clock import Clock
from ._constants import PRODUCTION_URL, SANDBOX_URL
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    OAuthError,
    TangoError,
    TokenRateLimitError,
    ValidationError,
)
from ._logs import escape
from ._repr import REDACTED, HeaderValue, Sealed, SecretBytes, tolerant_repr
from ._retry import READ, RetryPolicy
from ._validation import URL_NOISE, finite_number, http_url, text_problem
from ._version import __version__

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_REFRESH_MARGIN",
    "FIVE_MINUTE_AUDIENCE",
    "GRANT_TYPES",
    "PRODUCTION_TOKEN_URL",
    "SANDBOX_TOKEN_URL",
    "AccessToken",
    "BearerAuth",
    "MemoryTokenCache",
    "OAuth",
    "TokenCache",
    "check_token_url",
    "wall_time",
]

log = logging.getLogger("tango_async")

DEFAULT_AUDIENCE = "https://api.tangocard.com/"  # tokens live 24 hours
FIVE_MINUTE_AUDIENCE = "tango-api.bhn.com/fiveminute"  # tokens live 5 minutes
SANDBOX_TOKEN_URL = "https://sandbox-auth.tangocard.com/oauth/token"
PRODUCTION_TOKEN_URL = "https://auth.tangocard.com/oauth/token"
GRANT_TYPES = ("client_credentials", "password")
SCOPE = "raas.all"
DEFAULT_REFRESH_MARGIN = 300.0  # seconds before expiry a token is renewed (at most)

# documented lifetimes, used when an answer carries no expires_in
_LIFETIMES = {DEFAULT_AUDIENCE: 86_400.0, FIVE_MINUTE_AUDIENCE: 300.0}
_UNKNOWN_LIFETIME = 300.0  # another audience without expires_in: assume the shortest
_MAX_LIFETIME = 366 * 86_400.0
_MAX_RESPONSE = 64 * 1024  # bytes of a token endpoint answer read at most
_MAX_TOKEN = 16 * 1024  # characters of an access token
_MAX_TEXT = 300  # characters of a server's error text kept in a message
_WAIT_GUARD = 1.0  # seconds a waiter sleeps at most before it looks at the cache again
# an access token is a visible-ASCII word (RFC 6750's b64token, and any JWT, fit)
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")
_NUMBER = re.compile(r"\s*[0-9]{1,12}(\.[0-9]{1,9})?\s*")
_RATE_LIMITED = re.compile(r"rate.?limit|exceeded", re.IGNORECASE)
_FORM_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": f"tango-async/{__version__}",
}
_REMEDY = (
    "Tango allows few new tokens per client per day: share one token through a token "
    "cache (tango_async.redis.RedisTokenCache for several processes or hosts) and renew "
    "it only near its expiry, instead of asking for a new one per process or per run"
)


def wall_time(clock: object) -> float:
    """Epoch seconds by ``clock``: its ``wall()`` (epoch seconds) or its ``now()`` (an
    aware datetime, as ``SandboxClock``), else ``time.time()``."""
    wall = getattr(clock, "wall", None)
    if callable(wall):
        value = wall()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    now = getattr(clock, "now", None)
    if callable(now):
        value = now()
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.timestamp()
    return time.time()


def check_token_url(value: object, field: str = "token_url") -> str:
    """An absolute https URL (plain http for loopback hosts only), without credentials,
    query, fragment, whitespace or control characters (around it: dropped), as
    ``base_url``; ValidationError otherwise."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must be an absolute http(s) URL")
    value = value.strip()  # a line end read from a file is no part of it
    if URL_NOISE.search(value) is not None or text_problem(value) is not None:
        # yarl drops tabs, CR and LF: "https://auth.tangocard.com\n.evil.com/" would be
        # evil.com's host, the secret sent there
        raise ValidationError(field, "must not contain whitespace or control characters")
    return str(http_url(value, field))


# --- the token --------------------------------------------------------------------------------


class AccessToken:
    """One bearer token, masked, with its absolute expiry.

    ``expires_at`` is epoch seconds, ``lifetime`` the seconds it was issued for, and
    ``fingerprint`` a short hash of it (what a cache compares to invalidate exactly this
    token; it does not reveal the token). ``repr()`` and ``str()`` never show the token;
    it cannot be pickled; equality is identity. :meth:`headers` and :meth:`reveal` are the
    only ways to its text (a cache that stores it elsewhere, as Redis does, reveals it)."""

    __slots__ = ("_sealed", "expires_at", "fingerprint", "lifetime")

    def __init__(self, sealed: Sealed, *, expires_at: float, lifetime: float, fingerprint: str):
        self._sealed = sealed
        self.expires_at = float(expires_at)
        self.lifetime = float(lifetime)
        self.fingerprint = fingerprint

    @classmethod
    def build(cls, text: object, *, expires_at: float, lifetime: float) -> AccessToken | None:
        """The token of ``text``, or None when it is not a usable header value (not a
        non-empty visible-ASCII word of at most 16 KiB: a CR, LF, space or control
        character is refused) or the times are not finite. Never raises."""
        if (
            not isinstance(text, str)
            or not 0 < len(text) <= _MAX_TOKEN
            or _TOKEN_TEXT.fullmatch(text) is None
            or not (math.isfinite(expires_at) and math.isfinite(lifetime))
        ):
            return None
        return cls(
            Sealed(text),
            expires_at=expires_at,
            lifetime=lifetime,
            fingerprint=hashlib.sha256(text.encode("ascii")).hexdigest()[:32],
        )

    def headers(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with ``Authorization: Bearer <token>`` added, its value a HeaderValue."""
        return {**base, "Authorization": HeaderValue("Bearer " + self._sealed.reveal())}

    def reveal(self) -> str:
        """The token's text (for a cache that must store it)."""
        return self._sealed.reveal()

    def fresh(self, now: float, margin: float) -> bool:
        """True while more than ``min(margin, lifetime / 10)`` seconds are left at ``now``."""
        return self.expires_at - min(margin, self.lifetime / 10) > now

    def __repr__(self) -> str:
        return f"AccessToken({REDACTED}, expires_at={self.expires_at:.0f})"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("an AccessToken cannot be pickled")

    def __copy__(self) -> AccessToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AccessToken:
        return self


# --- caches -----------------------------------------------------------------------------------


@runtime_checkable
class TokenCache(Protocol):
    """Where tokens are kept and shared, and the lock that makes their renewal single
    flight (``OAuth(token_cache=...)``).

    ``key`` is a hex digest naming one (token URL, client ID, username, audience).
    ``lock(key, ttl)`` tries once to take the renewal lock (for at most ``ttl`` seconds):
    a handle, or None when another holder has it; ``unlock(key, handle)`` releases it
    only if it is still that holder's. ``wait(key, at_most)`` returns when the entry may
    have changed, or after at most ``at_most`` seconds. ``invalidate(key, token)`` drops
    the entry only while it is still ``token`` (same fingerprint)."""

    async def get(self, key: str) -> AccessToken | None: ...

    async def set(self, key: str, token: AccessToken) -> None: ...

    async def invalidate(self, key: str, token: AccessToken) -> None: ...

    async def lock(self, key: str, ttl: float) -> object | None: ...

    async def unlock(self, key: str, handle: object) -> None: ...

    async def wait(self, key: str, at_most: float) -> None: ...


class MemoryTokenCache:
    """Tokens in this process's memory (the default: each OAuth object has its own).

    Share one between several OAuth objects (and so clients) of one event loop to share
    their tokens. Waiters are woken when the entry or the lock changes; nothing polls.
    A renewal lock is free again once its ``ttl`` has passed or the event loop that took
    it is closed (a holder that died without releasing it blocks no one for good)."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        # key -> (handle, monotonic deadline, the event loop of the holder)
        self._locks: dict[str, tuple[object, float, asyncio.AbstractEventLoop]] = {}
        self._changed: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenCache(tokens={len(self._tokens)})"

    def _notify(self, key: str) -> None:
        entry = self._changed.pop(key, None)
        if entry is not None and not entry[0].is_closed():
            entry[1].set()

    async def get(self, key: str) -> AccessToken | None:
        return self._tokens.get(key)

    async def set(self, key: str, token: AccessToken) -> None:
        self._tokens[key] = token
        self._notify(key)

    async def invalidate(self, key: str, token: AccessToken) -> None:
        current = self._tokens.get(key)
        if current is not None and current.fingerprint == token.fingerprint:
            del self._tokens[key]
            self._notify(key)

    async def lock(self, key: str, ttl: float) -> object | None:
        held = self._locks.get(key)
        now = time.monotonic()
        if held is not None and held[1] > now and not held[2].is_closed():
            return None
        handle = object()
        limit = ttl if isinstance(ttl, (int, float)) and math.isfinite(ttl) else 0.0
        self._locks[key] = (handle, now + max(0.0, limit), asyncio.get_running_loop())
        return handle

    async def unlock(self, key: str, handle: object) -> None:
        held = self._locks.get(key)
        if held is not None and held[0] is handle:
            del self._locks[key]
            self._notify(key)

    async def wait(self, key: str, at_most: float) -> None:
        loop = asyncio.get_running_loop()
        entry = self._changed.get(key)
        if entry is None or entry[0] is not loop:  # none yet, or one of another (closed) loop
            entry = self._changed[key] = (loop, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entry[1].wait(), at_most)


# --- the settings -----------------------------------------------------------------------------


def _sealed(value: object, field: str, what: str) -> Sealed | ValidationError:
    """``value`` sealed, or the ValidationError to raise (returned, never raised, so the
    caller can drop the secret before raising)."""
    try:
        if not isinstance(value, str) or not value:
            return ValidationError(field, f"is required: {what} (a non-empty string)")
        why = text_problem(value)
        if why is not None:
            return ValidationError(field, why.split(" (found", 1)[0])
        return Sealed(value)
    except Exception:  # pragma: no cover - nothing above raises on str input
        return ValidationError(field, "cannot be encoded")


def _plain(value: object, field: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    why = text_problem(value)
    if why is not None:
        raise ValidationError(field, why)
    return value


@tolerant_repr
class OAuth:
    """OAuth 2.0 client credentials for ``TangoClient(auth=...)``: the API is then called
    with bearer tokens from Tango's token endpoint instead of HTTP Basic.

    ``grant_type`` is ``"client_credentials"`` (the default) or ``"password"``, which
    also needs ``username`` and ``password`` (a Service Account's); ``audience`` sets the
    tokens' lifetime: ``"https://api.tangocard.com/"`` (24 hours, the default) or
    ``"tango-api.bhn.com/fiveminute"`` (5 minutes); any non-empty audience is sent as
    given. ``token_url`` defaults, for a client on ``SANDBOX_URL``, to
    https://sandbox-auth.tangocard.com/oauth/token and on ``PRODUCTION_URL`` to
    https://auth.tangocard.com/oauth/token; a client on any other base URL needs it
    (ValidationError when the client is made). Plain http only for loopback hosts.

    ``token_cache`` (default: a MemoryTokenCache of this object's own) keeps the tokens;
    pass a shared one (``tango_async.redis.RedisTokenCache``) so that several processes
    use one token. ``refresh_margin`` (seconds, default 300) is how long before its
    expiry a token is renewed, at most a tenth of its lifetime.

    One OAuth object may be given to several clients of one event loop: they share its
    cache, hence its token, and one renewal serves them all (see the module docstring).

    ``repr()`` shows the client ID, grant type, audience and token URL only; the object
    cannot be pickled. ValidationError for a missing or malformed value, for a password
    grant without both username and password, and for a username or password with the
    client_credentials grant; the secrets are never part of the error.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        username: str | None = None,
        password: str | None = None,
        grant_type: str = "client_credentials",
        audience: str = DEFAULT_AUDIENCE,
        token_url: str | None = None,
        token_cache: TokenCache | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        # The secrets go straight into their seals, and this frame drops them before
        # anything can raise: no traceback of a constructor error shows them.
        secret = _sealed(client_secret, "client_secret", "the OAuth client's secret")
        sealed_password = (
            None if password is None else _sealed(password, "password", "the account's password")
        )
        del client_secret, password
        if isinstance(secret, ValidationError):
            raise secret
        if isinstance(sealed_password, ValidationError):
            raise sealed_password
        self.client_id: str = _plain(client_id, "client_id", required=True)  # type: ignore[assignment]
        if grant_type not in GRANT_TYPES:
            raise ValidationError("grant_type", "must be 'client_credentials' or 'password'")
        self.username = _plain(username, "username", required=False)
        if grant_type == "password":
            if self.username is None:
                raise ValidationError("username", "is required with grant_type='password'")
            if sealed_password is None:
                raise ValidationError("password", "is required with grant_type='password'")
        elif self.username is not None or sealed_password is not None:
            raise ValidationError(
                "grant_type",
                "username and password are sent only with grant_type='password'; pass "
                "grant_type='password' or leave them out",
            )
        self.grant_type = grant_type
        self.audience: str = _plain(audience, "audience", required=True)  # type: ignore[assignment]
        self.token_url = None if token_url is None else check_token_url(token_url)
        if token_cache is not None and not isinstance(token_cache, TokenCache):
            raise ValidationError(
                "token_cache",
                "must be a TokenCache (async get, set, invalidate, lock, unlock, wait)",
            )
        if not finite_number(refresh_margin, lo=0.0, hi=86_400):
            raise ValidationError(
                "refresh_margin", "must be a finite number of seconds, 0 to 86400"
            )
        self.refresh_margin = float(refresh_margin)
        self.token_cache: TokenCache = (
            token_cache if token_cache is not None else MemoryTokenCache()
        )
        self._secret = secret
        self._password = sealed_password
        # the last failed renewal per cache key (traceback-free): the callers that waited
        # for that renewal get its error instead of each asking the endpoint again
        self._failures: dict[str, OAuthError] = {}

    def __repr__(self) -> str:
        return (
            f"OAuth(client_id={self.client_id!r}, grant_type={self.grant_type!r}, "
            f"audience={self.audience!r}, token_url={self.token_url!r})"
        )

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("an OAuth object holds secrets and cannot be pickled")

    def __copy__(self) -> OAuth:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> OAuth:
        return self

    def token_url_for(self, base_url: str) -> str:
        """The token URL a client on ``base_url`` uses: ``token_url`` when given, else
        Tango's for its sandbox or production API; ValidationError for another base URL."""
        if self.token_url is not None:
            return self.token_url
        base = base_url.rstrip("/")
        if base == SANDBOX_URL:
            return SANDBOX_TOKEN_URL
        if base == PRODUCTION_URL:
            return PRODUCTION_TOKEN_URL
        raise ValidationError(
            "token_url",
            "is required for a base_url other than SANDBOX_URL and PRODUCTION_URL: "
            "pass OAuth(..., token_url=...)",
        )

    def cache_key(self, token_url: str) -> str:
        """The cache key of this identity's tokens at ``token_url``: a hash of the URL,
        client ID, username and audience (no secret)."""
        parts = (token_url, self.client_id, self.username or "", self.audience)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()

    def bind(
        self, base_url: str, *, clock: Clock, retry: RetryPolicy, timeout: float
    ) -> BearerAuth:
        """This object's use by one client (its token URL, clock, retries and timeout).
        ValidationError when no token URL fits ``base_url``."""
        return BearerAuth(self, self.token_url_for(base_url), clock, retry, timeout)

    def _form(self) -> SecretBytes:
        """The token request's form, its secrets in it (a SecretBytes: repr redacted)."""
        password = self._password
        return SecretBytes(
            urlencode(
                [
                    ("client_id", self.client_id),
                    ("client_secret", self._secret.reveal()),
                    ("scope", SCOPE),
                    ("audience", self.audience),
                    ("grant_type", self.grant_type),
                ]
                + (
                    [("username", self.username or ""), ("password", password.reveal())]
                    if password is not None
                    else []
                )
            ).encode("utf-8")
        )

    def _scrub(self, text: str) -> str:
        """A server's text without the secrets, should it echo them."""
        text = self._secret.scrub(text)
        return self._password.scrub(text) if self._password is not None else text


# --- one client's tokens ----------------------------------------------------------------------


class BearerAuth:
    """One client's use of an :class:`OAuth`: the token URL, the clock its expiries and
    back-offs are read on, its retry policy and timeout. The transport asks it for the
    token of each attempt (:meth:`token`) and, after a 401, drops that token
    (:meth:`invalidate`)."""

    __slots__ = ("_timeout", "clock", "key", "oauth", "retry", "token_url")

    def __init__(
        self, oauth: OAuth, token_url: str, clock: Clock, retry: RetryPolicy, timeout: float
    ) -> None:
        self.oauth = oauth
        self.token_url = token_url
        self.key = oauth.cache_key(token_url)
        self.clock = clock
        self.retry = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"BearerAuth({self.oauth!r}, token_url={self.token_url!r})"

    def _lock_ttl(self) -> float:
        """How long a renewal may hold the lock: every attempt timing out, plus back-offs
        (each at most the longest of max_delay, rate_limit_delay and max_retry_after)."""
        total = self._timeout.total or 30.0
        policy = self.retry
        pause = max(policy.max_delay, policy.rate_limit_delay, policy.max_retry_after)
        return min(3600.0, (total + pause) * (policy.max_retries + 1) + 30.0)

    async def token(self, session: aiohttp.ClientSession) -> AccessToken:
        """A fresh token: the cached one, or one fetched by a single request however many
        callers (sharing the cache) need one at once. OAuthError (TokenRateLimitError)
        when the endpoint refuses or fails and no unexpired token is left;
        ClientClosedError when ``session`` closes."""
        oauth = self.oauth
        cache, key, margin = oauth.token_cache, self.key, oauth.refresh_margin
        # Single flight shares the failure too: a caller that waited while a renewal (of
        # this OAuth object) failed gets that error (or the unexpired token still cached)
        # rather than asking the endpoint again, one waiter after another.
        since = oauth._failures.get(key)
        while True:
            found = await cache.get(key)
            if found is not None and found.fresh(wall_time(self.clock), margin):
                return found
            failed = oauth._failures.get(key)
            if failed is not None and failed is not since:
                if found is not None and found.expires_at > wall_time(self.clock):
                    return found
                raise _copy_error(failed)
            handle = await cache.lock(key, self._lock_ttl())
            if handle is None:  # another caller is renewing it: wait for its token
                await cache.wait(key, _WAIT_GUARD)
                continue
            try:
                found = await cache.get(key)
                if found is not None and found.fresh(wall_time(self.clock), margin):
                    return found
                try:
                    fresh = await self._fetch(session)
                except OAuthError as e:
                    oauth._failures[key] = _copy_error(e)
                    if found is not None and found.expires_at > wall_time(self.clock):
                        log.warning(
                            "OAuth token renewal for client_id=%s failed; using the current "
                            "token until it expires",
                            self.oauth.client_id,
                        )
                        return found
                    raise
                oauth._failures.pop(key, None)
                await cache.set(key, fresh)
                return fresh
            finally:
                try:
                    await asyncio.shield(cache.unlock(key, handle))
                except Exception as e:  # the lock expires by itself (its ttl)
                    log.warning(
                        "token cache: the renewal lock was not released (%s)", type(e).__name__
                    )

    async def invalidate(self, token: AccessToken) -> None:
        """Drop ``token`` from the cache, unless another one replaced it meanwhile."""
        await self.oauth.token_cache.invalidate(self.key, token)

    async def _fetch(self, session: aiohttp.ClientSession) -> AccessToken:
        """A new token, asked for with retries (see the module docstring)."""
        decide = READ.decide
        attempt = 0
        while True:
            outcome = await self._attempt(session, attempt + 1)
            if isinstance(outcome, AccessToken):
                log.info(
                    "OAuth token obtained for client_id=%s audience=%s (expires in %.0f s)",
                    self.oauth.client_id,
                    self.oauth.audience,
                    outcome.lifetime,
                )
                return outcome
            option = decide(outcome, attempt, self.retry)
            if not option.retry:
                raise self._final(outcome)
            log.info(
                "OAuth token request: %s; retry %d in %.2f s",
                _what(outcome),
                attempt + 1,
                option.delay,
            )
            await self.clock.sleep(option.delay)
            attempt += 1

    def _final(self, failure: TangoError) -> OAuthError:
        if isinstance(failure, OAuthError):
            return failure
        return OAuthError(
            f"{failure}; no token",
            status_code=0,
            path=URL(self.token_url).path,
        )

    async def _attempt(
        self, session: aiohttp.ClientSession, attempt: int
    ) -> AccessToken | TangoError:
        """One token request: the token, or the failure (never raised here, so that no
        traceback holds this frame, whose locals once held the answer)."""
        asked_at = wall_time(self.clock)
        failure: TangoError | None = None
        status = 0
        headers: dict[str, str] = {}
        body = b""
        cut = False
        try:
            async with session.post(
                self.token_url,
                data=self.oauth._form(),
                headers=_FORM_HEADERS,
                timeout=self._timeout,
                allow_redirects=False,  # never carry the secrets elsewhere
                auto_decompress=False,
                raise_for_status=False,
            ) as resp:
                status = resp.status
                headers = dict(resp.headers)
                encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    failure = self._error(status, headers, b"", "an encoded answer, not asked for")
                else:
                    body, cut = await _read_bounded(resp)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
            cls = APITimeoutError if isinstance(e, TimeoutError) else APIConnectionError
            failure = cls(
                f"POST {self.token_url}: {_describe(e)}", method="POST", path=self.token_url
            )
        except RuntimeError:
            if not session.closed:
                raise
            failure = ClientClosedError("the client's session was closed; no token was asked for")
        if isinstance(failure, ClientClosedError):
            raise failure
        if failure is not None:
            return failure
        if cut:
            return self._error(status, headers, b"", f"an answer over {_MAX_RESPONSE} bytes")
        outcome = self._outcome(status, headers, body, asked_at)
        del body
        return outcome

    def _outcome(
        self, status: int, headers: dict[str, str], body: bytes, asked_at: float
    ) -> AccessToken | OAuthError:
        """The token of a 2xx answer, or the error of any answer. Never raises."""
        if not 200 <= status < 300:
            return self._refusal(status, headers, body)
        try:
            data = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):
            return self._error(status, headers, b"", "an answer that is not JSON")
        if not isinstance(data, dict):
            return self._error(status, headers, b"", "an answer that is not a JSON object")
        token_type = data.get("token_type")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() != "bearer"
        ):
            return self._error(status, headers, b"", "a token that is not a bearer token")
        lifetime = _lifetime(data.get("expires_in"), self.oauth.audience)
        if lifetime is None:
            return self._error(
                status, headers, b"", "an expires_in that is not a positive number of seconds"
            )
        token = AccessToken.build(
            data.get("access_token"), expires_at=asked_at + lifetime, lifetime=lifetime
        )
        if token is None:
            return self._error(
                status,
                headers,
                b"",
                "no usable access_token (missing, empty, too long, or holding characters "
                "a header value cannot: spaces, CR, LF, controls)",
            )
        return token

    def _refusal(self, status: int, headers: dict[str, str], body: bytes) -> OAuthError:
        """The typed error of an error answer (RFC 6749 JSON, or text)."""
        code: str | None = None
        description: str | None = None
        try:
            data = msgspec.json.decode(body) if body else None
        except (msgspec.DecodeError, RecursionError):
            data = None
        if isinstance(data, dict):
            code = _short(data.get("error"))
            description = _short(data.get("error_description") or data.get("message"))
            if code is None and description is None:
                errors = data.get("errors")
                if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                    description = _short(errors[0].get("message"))
        text = " ".join(t for t in (code, description) if t) or _short(
            body.decode("utf-8", "replace")
        )
        text = escape(self.oauth._scrub(text or "no error details"))
        code = None if code is None else self.oauth._scrub(code)
        description = None if description is None else self.oauth._scrub(description)
        kept = self.oauth._scrub(body.decode("utf-8", "replace")).encode("utf-8")
        message = f"POST {self.token_url}: HTTP {status}: {text}"
        kwargs: dict[str, Any] = {
            "status_code": status,
            "error": code,
            "error_description": description,
            "path": URL(self.token_url).path,
            "body": kept,
            "headers": headers,
        }
        if status == 400 and _RATE_LIMITED.search(text):
            return TokenRateLimitError(f"{message}. {_REMEDY}", **kwargs)
        if status == 401:
            message += " (check the OAuth client ID and secret, and the username and password)"
        return OAuthError(message, **kwargs)

    def _error(self, status: int, headers: dict[str, str], body: bytes, why: str) -> OAuthError:
        return OAuthError(
            f"POST {self.token_url}: HTTP {status}: {why}; no token",
            status_code=status,
            path=URL(self.token_url).path,
            body=body,
            headers=headers,
        )


async def _read_bounded(resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """The body, and True when it went past _MAX_RESPONSE (then cut and closed)."""
    data = bytearray()
    async for chunk in resp.content.iter_chunked(8192):
        data += chunk
        if len(data) > _MAX_RESPONSE:
            resp.close()
            return b"", True
    return bytes(data), False


def _lifetime(value: object, audience: str) -> float | None:
    """Seconds a token lives: ``expires_in`` as an int, a float or a numeric string;
    missing (or null): the audience's documented lifetime. None when it is not a positive
    finite number. At most 366 days."""
    if value is None:
        return _LIFETIMES.get(audience, _UNKNOWN_LIFETIME)
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if _NUMBER.fullmatch(value) is None:
            return None
        value = float(value)
    if not isinstance(value, (int, float)) or not finite_number(value, lo=0.0, above=True):
        return None
    return min(float(value), _MAX_LIFETIME)


def _copy_error(error: OAuthError) -> OAuthError:
    """A copy of ``error`` without its traceback, cause or context (one to raise per
    caller: raising one instance in many tasks would pile up their tracebacks)."""
    copy = type(error).__new__(type(error), *error.args)
    copy.__dict__.update(error.__dict__)
    return copy


def _short(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)[:_MAX_TEXT]
    text = text.strip()
    if not text:
        return None
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "... (cut)"


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    detail = escape(str(e))[:200]
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


def _what(failure: TangoError) -> str:
    status = getattr(failure, "status_code", None)
    return f"HTTP {status}" if status else type(failure).__name__
