"""TangoClient: credentials, the session, and the policies shared by its resources."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import ssl
from collections.abc import Sequence
from decimal import Decimal
from types import TracebackType

import aiohttp

from ._auth import Credential
from ._cache import ReferenceCache
from ._clock import Clock, SystemClock
from ._constants import (
    DEFAULT_CONNECTOR_LIMIT,
    DEFAULT_MAX_AMOUNT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_ORDER_RATE,
    DEFAULT_RATE_MARGIN,
    DEFAULT_RESEND_COOLDOWN,
    DEFAULT_RESULT_WINDOW,
    DEFAULT_TIMEOUT,
    SANDBOX_URL,
)
from ._cooldown import CooldownStore, LocalCooldownStore, ResendLinks
from ._exceptions import ValidationError
from ._logs import setup_logging
from ._oauth import OAuth
from ._pacing import PacingPolicy, RoutePacing
from ._ratelimit import LocalRateLimiter, RateLimiter
from ._raw import WithRawResponse
from ._requestor import Requestor
from ._response import Recorder
from ._retry import RetryPolicy
from ._telemetry import Hooks, Instrument, RequestHook, ResponseHook, Tracing
from ._transport import Transport, check_base_url
from ._unresolved import LocalUnresolvedStore, UnresolvedStore
from ._validation import check_max_amount, finite_number
from .bulk._orders import BulkOrders
from .resources.accounts import Accounts
from .resources.catalog import Catalogs
from .resources.choice_products import ChoiceProducts
from .resources.customers import Customers
from .resources.exchange_rates import ExchangeRates
from .resources.line_items import LineItems
from .resources.webhooks import Webhooks

__all__ = ["TangoClient"]

DEFAULT_CATALOG_TTL = 12 * 3600.0  # Tango: refresh the catalog at most semi-daily
MAX_CATALOG_TTL = 7 * 86_400.0


class TangoClient:
    """An async client of Tango's RaaS v2 orders API.

    Use it as an async context manager (or call :meth:`close`)::

        async with TangoClient("my-platform", "my-key") as tango:
            order = await tango.orders.get("RA231012-1234-56")

    Credentials fall back to TANGO_PLATFORM_NAME / TANGO_PLATFORM_KEY and the base URL
    to TANGO_BASE_URL, then to SANDBOX_URL. All requests share one aiohttp session with
    pooled keep-alive connections; pass ``session=`` to use your own (it is not closed).

    Order creations whose outcome stays unknown (a timeout, a cancellation, a lost answer)
    are remembered by ``unresolved_store`` (default: in memory; SqliteUnresolvedStore or
    tango_async.redis.RedisUnresolvedStore to survive restarts): creating the same order
    again reuses its externalRefID, so it is never paid twice (see ``orders.create``).

    Order creation is paced by ``rate_limiter`` (default: an in-process limiter at
    ``order_rate`` per second plus ``rate_margin``), its spacing measured where requests
    leave (at the write); resends by ``cooldown_store`` (default: in-process,
    ``resend_cooldown`` seconds). Pass shared ones (e.g. on Redis) to pace several clients
    or processes together. ``pacing`` (a PacingPolicy) decides how the other routes are
    paced: by default unpaced until a 429, then adaptive (AIMD) per route.

    ``max_amount`` (default DEFAULT_MAX_AMOUNT, 1,000,000; None means the default) is the
    largest order amount ``orders.create()`` sends: a larger one is a ValidationError.

    Retries follow ``retry`` (a RetryPolicy; default ``RetryPolicy()``) as given, its
    ``max_retries`` included. ``max_retries=``, when passed, overrides the policy's; with
    neither, requests are retried up to 3 times (DEFAULT_MAX_RETRIES).

    ``clock`` (default: real time) is what the client's own limiter, cooldown store and
    retry back-offs read and sleep on; ``Sandbox.client()`` passes the sandbox's clock, so
    frozen-time tests take no real time. ``ssl_context`` verifies the server (default:
    the system's trust store); ignored when ``session=`` is given.

    ``max_response_bytes`` (default 32 MiB) bounds the decoded body of every answer, on
    every status: gzip and deflate are decoded by the client in bounded steps, whatever the
    ``session``'s ``auto_decompress``; past the bound, APIResponseValidationError. The key
    is kept masked in a Credential (repr and str redacted) and becomes the Authorization
    header only inside the call that hands it to aiohttp.

    ``auth`` (an :class:`~tango_async.OAuth`) calls the API with OAuth 2.0 bearer tokens
    instead of HTTP Basic: no platform key is needed then (TANGO_PLATFORM_KEY is
    ignored; passing ``platform_key`` too is a ValidationError), and ``platform_name``
    (default: TANGO_PLATFORM_NAME, else the OAuth client ID) only names the platform for
    the shared stores. Tokens are cached, renewed ahead of their expiry by a single
    request, and renewed once after a 401 (see ``tango_async._oauth``). Its token URL
    follows the base URL (ValidationError for a base URL that is neither SANDBOX_URL nor
    PRODUCTION_URL and an OAuth without ``token_url``).

    Reference data (issue 15): the catalog, its reference lists and the exchange rates are
    kept in one cache per client, shared by its resources: the catalog for ``catalog_ttl``
    seconds (default 12 hours; Tango asks platforms to refresh the catalog at most twice
    a day and never per order; a finite number above 0, at most 7 days), the exchange
    rates until their next daily change. ``check_catalog=True`` makes ``orders.create``
    (bulk jobs too) check each order against the cached catalog before sending it
    (ValidationError for an unknown or inactive utid or an amount outside the item's
    rule, CatalogUnavailableError when the catalog cannot be fetched; nothing sent
    either way, no rate slot spent).

    Observing (issue 16): ``on_request`` / ``on_response`` (a callable or a sequence of
    them) are called, synchronously, before and after every attempt with a
    :class:`~tango_async.RequestEvent` / :class:`~tango_async.ResponseEvent` (route
    template, attempt, status, request ID, retry reason, rate-slot wait); an exception in a
    hook is logged and ignored. ``telemetry=True`` emits OpenTelemetry spans and metrics
    through the global providers (the ``otel`` extra; ValidationError without it), or pass
    a :class:`tango_async.otel.Telemetry` (or any object with the
    :class:`~tango_async._telemetry.Instrument` interface). See :mod:`tango_async.otel`.

    :attr:`with_raw_response` gives each call's HTTP answer with its result;
    :meth:`with_options` a view of the client with another timeout or retry budget.

    Raises ValidationError for a missing credential or a bad argument. A client is bound
    to the event loop it is first used in; using it after :meth:`close` or from another
    loop raises ClientClosedError.
    """

    def __init__(
        self,
        platform_name: str | None = None,
        platform_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        order_rate: float = DEFAULT_ORDER_RATE,
        resend_cooldown: float = DEFAULT_RESEND_COOLDOWN,
        rate_limiter: RateLimiter | None = None,
        cooldown_store: CooldownStore | None = None,
        unresolved_store: UnresolvedStore | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        rate_margin: float = DEFAULT_RATE_MARGIN,
        result_window: int = DEFAULT_RESULT_WINDOW,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        connector_limit: int = DEFAULT_CONNECTOR_LIMIT,
        max_amount: Decimal | int | None = DEFAULT_MAX_AMOUNT,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
        pacing: PacingPolicy | None = None,
        auth: OAuth | None = None,
        check_catalog: bool = False,
        catalog_ttl: float = DEFAULT_CATALOG_TTL,
        on_request: RequestHook | Sequence[RequestHook] | None = None,
        on_response: ResponseHook | Sequence[ResponseHook] | None = None,
        telemetry: bool | Instrument = False,
    ) -> None:
        setup_logging()
        name = platform_name if platform_name is not None else os.environ.get("TANGO_PLATFORM_NAME")
        # The key goes straight into its masked Credential, and this frame drops it before
        # anything can raise: no traceback of a constructor error shows it in the locals.
        if auth is None:
            credential: Credential | ValidationError | None = Credential.build(
                name,
                platform_key if platform_key is not None else os.environ.get("TANGO_PLATFORM_KEY"),
            )
        else:  # OAuth: bearer tokens instead of the platform key
            credential = _oauth_problem(auth, has_key=platform_key is not None)
            name = name or getattr(auth, "client_id", None)
        del platform_key
        if isinstance(credential, ValidationError):
            raise credential
        if not isinstance(name, str) or not name:
            raise ValidationError("platform_name", "must be a non-empty string")
        url = base_url if base_url is not None else os.environ.get("TANGO_BASE_URL") or SANDBOX_URL
        if timeout is None:
            raise ValidationError("timeout", _TIMEOUT_RULE)
        # The policy as given; an explicit max_retries= wins over its max_retries.
        policy = _call_options(
            timeout, retry, max_retries, base=RetryPolicy(max_retries=DEFAULT_MAX_RETRIES)
        )
        if not _positive(resend_cooldown, allow_zero=True):
            raise ValidationError("resend_cooldown", "must be a number of seconds, at least 0")
        if (
            isinstance(result_window, bool)
            or not isinstance(result_window, int)
            or result_window < 1
        ):
            raise ValidationError("result_window", "must be an int of at least 1")
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiter):
            raise ValidationError("rate_limiter", "must have async acquire() and penalize(delay)")
        if cooldown_store is not None and not isinstance(cooldown_store, CooldownStore):
            raise ValidationError(
                "cooldown_store", "must have async claim(), extend() and release()"
            )
        if unresolved_store is not None and not isinstance(unresolved_store, UnresolvedStore):
            raise ValidationError(
                "unresolved_store", "must have async put(), find(), get(), remove() and list()"
            )
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ValidationError("session", "must be an aiohttp.ClientSession")
        if session is not None and session.auth is not None:
            # aiohttp refuses every request that has both (a ValueError, at the first call)
            raise ValidationError(
                "session", "must not have auth=: the client sends its own Authorization header"
            )
        checked_max_amount = check_max_amount(max_amount, "max_amount")
        if not _count(connector_limit):
            raise ValidationError("connector_limit", "must be an int of at least 0 (0: no limit)")
        if not _count(max_response_bytes) or max_response_bytes < 1:
            raise ValidationError("max_response_bytes", "must be an int of at least 1")
        if clock is not None and not isinstance(clock, Clock):
            raise ValidationError("clock", "must have monotonic() and async sleep(seconds)")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ValidationError("ssl_context", "must be an ssl.SSLContext")
        if not isinstance(check_catalog, bool):
            raise ValidationError("check_catalog", "must be True or False")
        if not finite_number(catalog_ttl, lo=0.0, hi=MAX_CATALOG_TTL, above=True):
            raise ValidationError(
                "catalog_ttl",
                "must be a finite number of seconds above 0, at most 604800 (7 days); "
                "Tango advises refreshing the catalog at most twice a day (43200)",
            )
        if pacing is not None and not isinstance(pacing, PacingPolicy):
            raise ValidationError("pacing", "must be a PacingPolicy")
        tracing = Tracing([Hooks(on_request, on_response), *_instrument(telemetry)])
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.pacing: PacingPolicy = pacing if pacing is not None else PacingPolicy()

        self.platform_name = name
        self.base_url = check_base_url(url)
        self.resend_cooldown = float(resend_cooldown)
        self.result_window = result_window
        self.max_amount: Decimal = checked_max_amount
        self.rate_limiter: RateLimiter = (
            rate_limiter
            if rate_limiter is not None
            else LocalRateLimiter(order_rate, margin=rate_margin, clock=self.clock)
        )
        self.cooldown_store: CooldownStore = (
            cooldown_store if cooldown_store is not None else LocalCooldownStore(clock=self.clock)
        )
        self.unresolved_store: UnresolvedStore = (
            unresolved_store if unresolved_store is not None else LocalUnresolvedStore()
        )
        for shared in (self.rate_limiter, self.cooldown_store, self.unresolved_store):
            bind = getattr(shared, "bind", None)  # shared stores key by platform
            if callable(bind):
                bind(name)
        # OAuth: this client's use of it (ValidationError when no token URL fits base_url)
        bearer = (
            auth.bind(self.base_url, clock=self.clock, retry=policy, timeout=float(timeout))
            if auth is not None
            else None
        )
        self._transport = Transport(
            base_url=self.base_url,
            credential=credential,
            oauth=bearer,
            timeout=float(timeout),
            retry=policy,
            session=session,
            connector_limit=connector_limit,
            max_response_bytes=max_response_bytes,
            clock=self.clock,
            ssl_context=ssl_context,
            pacing=RoutePacing(self.pacing, self.rate_limiter, self.clock),
            tracing=tracing,
        )
        # What every resource calls the API with; a resource never sees the client.
        self._requestor = Requestor(
            transport=self._transport,
            clock=self.clock,
            platform_name=name,
            max_amount=self.max_amount,
            result_window=self.result_window,
            resend_cooldown=self.resend_cooldown,
            cooldown_store=self.cooldown_store,
            unresolved_store=self.unresolved_store,
            resend_links=ResendLinks(),  # order <-> line item pairs: one resend cooldown
            cache=ReferenceCache(self.clock),  # catalog, exchange rates: one per client
            catalog_ttl=float(catalog_ttl),
            check_catalog=check_catalog,
        )
        self._resend_links = self._requestor.resend_links
        self._view_of: TangoClient | None = None  # the client a view was made from
        self._resources()

    def _resources(self) -> None:
        """The resources, fed by this client's (or view's) requestor."""
        requestor = self._requestor
        self.orders = BulkOrders(requestor, self.rate_limiter)
        self.line_items = LineItems(requestor)
        self.webhooks = Webhooks(requestor)
        self.accounts = Accounts(requestor)
        self.customers = Customers(requestor)
        self.catalog = Catalogs(requestor)
        self.choice_products = ChoiceProducts(requestor)
        self.exchange_rates = ExchangeRates(requestor)

    def _view(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        recorder: Recorder | None = None,
        fresh_cache: bool = False,
    ) -> TangoClient:
        """A view of this client: its session, limiter, stores, caches and order
        reservations, with the transport settings given (see :meth:`with_options`)."""
        view = copy.copy(self)
        view.__dict__.pop("with_raw_response", None)  # a cached_property of this client
        view._transport = self._transport.derive(timeout=timeout, retry=retry, recorder=recorder)
        changes: dict[str, object] = {"transport": view._transport}
        if fresh_cache:
            changes["cache"] = ReferenceCache(self.clock)
        view._requestor = dataclasses.replace(self._requestor, **changes)  # type: ignore[arg-type]
        view._view_of = self._view_of if self._view_of is not None else self
        view._resources()
        return view

    def with_options(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> TangoClient:
        """A view of this client with other per-call options, as in openai-python:
        ``await tango.with_options(timeout=5, max_retries=0).orders.get(ref)``.

        ``timeout``: seconds for one HTTP attempt (not the OAuth token request, shared
        with the client, which keeps the client's); ``retry``: another RetryPolicy;
        ``max_retries``: retries of a call after a transient failure (over ``retry``'s, or
        the client's policy's). What is not given stays the client's.

        The view shares everything else with its client: the aiohttp session, the rate
        limiter (order creation stays at the client's rate, views included), the resend
        cooldowns, the unresolved-order store and the creates in flight (a create through
        a view is never sent twice beside the client's), the reference-data cache and the
        observers. It is cheap: make one per call if you like. Closing a view does
        nothing (close the client); a view of a closed client raises ClientClosedError
        as the client does. Views chain (``with_options(...).with_options(...)``), and
        ``with_raw_response`` works on a view.

        Raises ValidationError for a bad value (as the constructor does)."""
        policy = _call_options(timeout, retry, max_retries, base=self.retry)
        return self._view(timeout=None if timeout is None else float(timeout), retry=policy)

    @functools.cached_property
    def with_raw_response(self) -> WithRawResponse:
        """The client's resources, each call returning a :class:`~tango_async.RawResponse`:
        ``raw = await tango.with_raw_response.orders.get(ref)`` gives ``raw.status_code``,
        ``raw.headers``, ``raw.request_id`` (X-REQUEST-ID, Tango's support reference) and
        ``raw.parse()`` (the Order). Every awaitable call of every resource is there; a
        paginated ``list()`` gives its first page's answer. Each call runs on a view of the
        client (see :meth:`with_options`): the same pacing, cooldowns and money safety.
        Cached reference data (catalog, exchange rates) is always fetched anew by a raw
        call, leaving the client's cache as it was. Errors are raised as by the plain
        call."""

        def view(recorder: Recorder, fresh_cache: bool) -> TangoClient:
            return self._view(recorder=recorder, fresh_cache=fresh_cache)

        return WithRawResponse(view)

    def __repr__(self) -> str:
        # Safe on a client whose __init__ raised: a traceback with captured locals shows it.
        if not hasattr(self, "_transport"):
            return "TangoClient(not constructed)"
        state = "closed" if self.closed else "open"
        return (
            f"TangoClient(platform_name={self.platform_name!r}, "
            f"base_url={self.base_url!r}, {state})"
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._transport.closed

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._transport.retry

    async def close(self) -> None:
        """Close the session this client opened (a caller's session is left open). On a
        view (:meth:`with_options`), nothing: close the client it was made from."""
        if self._view_of is not None:
            return
        await self._transport.close()

    async def __aenter__(self) -> TangoClient:
        self._transport.session()  # fail early if closed; binds to this loop
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _oauth_problem(auth: object, *, has_key: bool) -> ValidationError | None:
    """Why ``auth=`` cannot be used (returned, not raised: see Credential.build), or None."""
    if not isinstance(auth, OAuth):
        return ValidationError(
            "auth",
            "must be a tango_async.OAuth (for HTTP Basic pass platform_name and platform_key)",
        )
    if has_key:
        return ValidationError(
            "auth",
            "is ambiguous with a platform_key: pass auth= (OAuth) or platform_key (HTTP "
            "Basic), not both",
        )
    return None


def _instrument(telemetry: object) -> list[Instrument]:
    """The instrument of ``telemetry=``: none, OpenTelemetry's (True), or the one given."""
    if telemetry is False or telemetry is None:
        return []
    if telemetry is True:
        from .otel import Telemetry  # imports opentelemetry: only when asked for

        return [Telemetry()]
    if isinstance(telemetry, type):  # telemetry=Telemetry: its call() would fail on every call
        raise ValidationError(
            "telemetry", f"must be an instance, not the class {telemetry.__name__} (add ())"
        )
    if isinstance(telemetry, Instrument):
        return [telemetry]
    raise ValidationError(
        "telemetry", "must be True, False or a tango_async.otel.Telemetry (an Instrument)"
    )


_TIMEOUT_RULE = "must be a finite number of seconds above 0, at most 86400"


def _call_options(
    timeout: float | None, retry: RetryPolicy | None, max_retries: int | None, *, base: RetryPolicy
) -> RetryPolicy:
    """Check the per-call options of the constructor and of ``with_options`` (a
    ValidationError names the argument) and return the retry policy in force: ``retry``
    (else ``base``) with ``max_retries``, when given, over its own."""
    if timeout is not None and not _positive(timeout):
        raise ValidationError("timeout", _TIMEOUT_RULE)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ValidationError("retry", "must be a RetryPolicy")
    if max_retries is not None and not _count(max_retries):
        raise ValidationError("max_retries", "must be an int of at least 0")
    policy = retry if retry is not None else base
    if max_retries is not None:
        return policy.with_options(max_retries=max_retries)
    if not _count(policy.max_retries):
        raise ValidationError("retry", "max_retries must be an int of at least 0")
    return policy


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value: object, *, allow_zero: bool = False) -> bool:
    """A finite number of seconds, at most a day, above 0 (or at least 0)."""
    return finite_number(value, lo=0.0, hi=86_400, above=not allow_zero)
