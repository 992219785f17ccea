"""The local sandbox: an in-memory emulator of Tango's RaaS v2 orders API on loopback.

:class:`Sandbox` holds its arguments, its lifecycle, the recording of every request and
the request path (auth, the rate rules, faults); the rest is in its private modules:
``_store`` (the orders), ``_routes`` (the order handlers), ``_line_items`` (line items:
their life on the clock and their routes), ``_webhooks`` (subscriptions and their
routes), ``_delivery`` (signing and delivering webhook events), ``_errors`` (the error
vocabulary) and ``_faults`` (what each fault does).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._client import TangoClient
from .._exceptions import ValidationError
from .._oauth import OAuth
from .._repr import tolerant_repr
from .._validation import check_str, finite_number
from ._accounts import Customers
from ._catalog import CatalogData
from ._clock import SandboxClock
from ._delivery import Deliverer, Signer, WebhookDelivery, WebhookFaultPlan
from ._errors import ErrorWriter
from ._faults import CHAOS_DEFAULT, Drop, Exchange, FaultPlan, apply
from ._line_items import LineItems
from ._network import DelayingProxy
from ._oauth import TOKEN_PATH, TokenIssuer, TokenRequest, check_oauth_arguments, parse_form
from ._recorded import Recorded, set_current
from ._routes import PREFIX, Routes
from ._store import DEFAULT_CATALOG, Accounts, CatalogItem, OrderStore
from ._webhooks import EVENT_TYPES, Webhooks
from ._wire import MALFORMED, body_bytes, loads, respond

if TYPE_CHECKING:
    from ._contract import ContractChecker, ContractViolation

__all__ = ["CatalogItem", "Recorded", "Sandbox"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

logger = logging.getLogger("tango_async")


class _Stamping(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind a wrapper that notes when a request's
    first bytes arrive: a request arrives then, not when its handler task gets to run
    (later, by a delay that varies on a busy loop)."""

    def __init__(self, handler: asyncio.Protocol, sandbox: Sandbox) -> None:
        self._handler = handler
        self._sandbox = sandbox

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._sandbox._arrived.setdefault(id(self._handler), self._sandbox.clock.monotonic())
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._sandbox._arrived.pop(id(self._handler), None)
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()


# The bounds of Sandbox's arguments (see its docstring).
_MIN_RATE = 1 / 86_400  # one a day: the rate rules wait 1/rate, at most a day
# A million a second: 1/rate stays far above the resolution of the clock's seconds (a
# faster "limit" refuses orders a frozen clock cannot tell apart); None is no limit.
_MAX_RATE = 1e6
_DAY = 86_400.0
_MAX_DELAY = 3_600.0  # connect_delay, latency: an hour is far past any client timeout
_MAX_PENDING = 366 * _DAY
_MAX_WINDOW = 10**9
_MAX_RANGE_DAYS = 36_525.0  # a century: timedelta(days=...) ends near 2.7 million years
_MAX_TTL = 3_660 * _DAY  # webhook_ttl: ten years
_MAX_RETRIES = 20  # webhook_retry_delays: at most this many retries
_TICK = 0.05  # real seconds between two looks for line-item changes come due


def _check_arguments(
    *,
    order_rate: object,
    resend_cooldown: object,
    platform_name: object,
    platform_key: object,
    host: object,
    port: object,
    clock: object,
    max_window: object,
    max_range_days: object,
    pending_for: object,
    record: object,
    contract: object,
    tls: object,
    connect_delay: object,
    keepalive_timeout: object,
    read_rate: object,
    latency: object,
    delivery_for: object = None,
    webhook_ttl: object = 30 * _DAY,
    webhook_retry_delays: object = (1.0, 2.0, 4.0),
    webhook_timeout: object = 10.0,
) -> None:
    """ValidationError naming the first of Sandbox's arguments out of range (see
    :class:`Sandbox`): before anything is made, so a bad one never hangs, divides by zero
    or overflows later."""

    def number(
        value: object,
        field: str,
        rule: str,
        *,
        lo: float,
        hi: float,
        above: bool = False,
        optional: bool = False,
    ) -> None:
        if optional and value is None:
            return
        if not finite_number(value, lo=lo, hi=hi, above=above):
            raise ValidationError(field, rule)

    for field, value in (("order_rate", order_rate), ("read_rate", read_rate)):
        number(
            value,
            field,
            "must be None (no limit) or a rate per second from 1/86400 (one a day) to 1000000",
            lo=_MIN_RATE,
            hi=_MAX_RATE,
            optional=True,
        )
    number(
        resend_cooldown,
        "resend_cooldown",
        "must be a finite number of seconds from 0 to 86400",
        lo=0.0,
        hi=_DAY,
    )
    number(
        pending_for,
        "pending_for",
        "must be a finite number of seconds from 0 to 31622400 (366 days)",
        lo=0.0,
        hi=_MAX_PENDING,
    )
    for field, value in (("connect_delay", connect_delay), ("latency", latency)):
        number(
            value, field, "must be a finite number of seconds from 0 to 3600", lo=0.0, hi=_MAX_DELAY
        )
    number(
        delivery_for,
        "delivery_for",
        "must be None (pending_for) or a finite number of seconds from 0 to 31622400",
        lo=0.0,
        hi=_MAX_PENDING,
        optional=True,
    )
    number(
        webhook_ttl,
        "webhook_ttl",
        "must be a finite number of seconds above 0 to 316224000 (ten years)",
        lo=0.0,
        hi=_MAX_TTL,
        above=True,
    )
    number(
        webhook_timeout,
        "webhook_timeout",
        "must be a finite number of seconds above 0 to 3600",
        lo=0.0,
        hi=_MAX_DELAY,
        above=True,
    )
    delays_rule = f"must be a sequence of at most {_MAX_RETRIES} seconds, each from 0 to 3600"
    if isinstance(webhook_retry_delays, (str, bytes)) or not isinstance(
        webhook_retry_delays, Sequence
    ):
        raise ValidationError("webhook_retry_delays", delays_rule)
    if len(webhook_retry_delays) > _MAX_RETRIES:
        raise ValidationError("webhook_retry_delays", delays_rule)
    for delay in webhook_retry_delays:
        number(delay, "webhook_retry_delays", delays_rule, lo=0.0, hi=_MAX_DELAY)
    number(
        keepalive_timeout,
        "keepalive_timeout",
        "must be None (aiohttp's default) or a finite number of seconds above 0 to 86400",
        lo=0.0,
        hi=_DAY,
        above=True,
        optional=True,
    )
    number(
        max_range_days,
        "max_range_days",
        "must be None (no limit) or a finite number of days above 0 to 36525",
        lo=0.0,
        hi=_MAX_RANGE_DAYS,
        above=True,
        optional=True,
    )
    if (
        isinstance(max_window, bool)
        or not isinstance(max_window, int)
        or not (1 <= max_window <= _MAX_WINDOW)
    ):
        raise ValidationError("max_window", "must be an int from 1 to 10**9")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValidationError("port", "must be an int from 0 to 65535 (0: a free one)")
    check_str(host, "host", required=True)
    name = check_str(platform_name, "platform_name", required=True)
    if not name:
        raise ValidationError("platform_name", "must be a non-empty string")
    if ":" in name:
        raise ValidationError("platform_name", "must not contain ':' (HTTP Basic auth)")
    check_str(platform_key, "platform_key")
    if clock is not None and not isinstance(clock, SandboxClock):
        raise ValidationError("clock", "must be a SandboxClock or None")
    for field, value in (("record", record), ("tls", tls)):
        if not isinstance(value, bool):
            raise ValidationError(field, "must be True or False")
    if not isinstance(contract, bool):
        # jsonschema (the ``testing`` extra) is needed only with ``contract``
        from ._contract import ContractChecker

        if not isinstance(contract, ContractChecker):
            raise ValidationError("contract", "must be True, False or a ContractChecker")


@tolerant_repr
class Sandbox:
    """A local emulator of Tango's orders API, served by aiohttp on 127.0.0.1.

    ::

        async with Sandbox(order_rate=1.0, resend_cooldown=30.0) as sb:
            async with sb.client() as tango:
                order = await tango.orders.create(...)

    It keeps orders in memory, checks HTTP Basic auth and the documented request rules
    (answering with Tango's error body), limits order creation to ``order_rate`` per second
    measured at arrival (429.001; None: no limit), makes orders idempotent by externalRefID
    (201 new, 200 existing, 409.002 while one is in process), enforces the resend cooldown
    (403.005) and refuses resends of orders Tango did not deliver (403.003), pages history
    with the 100-per-page maximum (422.042) and the ``max_window`` result window (400.021).

    Accounts are funded without limit until :meth:`set_balance` (402 when short) or
    :meth:`freeze` (422 frozen account). Customers, accounts with balances that orders
    spend and low-balance alerts (``/customers``, ``/accounts``: see ``_accounts``) start
    with ``sandbox-customer`` holding ``sandbox-account`` (1,000,000 USD);
    :meth:`add_account` registers more, :meth:`fund` funds them. Orders are PENDING for
    ``pending_for`` seconds of the sandbox clock, then COMPLETE (or FAILED:
    :meth:`fail_next`). :meth:`inject` and :meth:`chaos` script faults; :attr:`requests`
    records every request. With ``contract`` every request and response is checked
    against Tango's OpenAPI description and the violations collected in
    :attr:`contract_violations`.

    The catalog and reference data (see ``_catalog``): ``GET /catalogs`` shows
    :attr:`catalog` (a default one with variable- and fixed-value items, an inactive item,
    EUR and CAD items), beside choice products, exchange rates that change daily at 12:30
    UTC of the sandbox clock (:meth:`set_exchange_rate` fixes one), credential types,
    reward and mobile countries and brand categories. Orders for any utid and amount go
    through unless ``strict_catalog``: then they must fit the catalog (400 for an unknown
    utid or an amount outside the item's rule, 422 for an inactive item).

    Line items (``/lineItems``: list, get, update, cancel, freeze, unfreeze, reissue,
    reason codes, embedded URL) live on the sandbox clock: PENDING for ``pending_for``,
    then COMPLETE or FAILED, their delivery taking ``delivery_for`` more (None: as long
    again; :meth:`bounce_next` makes an email bounce). Webhook subscriptions
    (``/webhooks``) live ``webhook_ttl`` seconds after their creation or renewal and get
    every line-item change as a signed event POSTed to their URL (HMAC with their key,
    X509 with :attr:`webhook_certificate`), retried after each of
    ``webhook_retry_delays`` real seconds on a non-2xx answer or none within
    ``webhook_timeout``; :attr:`webhook_deliveries` records every attempt,
    :meth:`inject_webhook` scripts delivery faults, and ``await`` :meth:`deliver_due`
    after ``clock.advance()`` delivers what came due (see ``_line_items`` and
    ``_webhooks`` for the details).

    Network conditions, all off by default, reproduce a distant production server for
    pacing tests and benchmarks:

    - ``tls``: serve HTTPS with a certificate for 127.0.0.1/localhost made on the fly by
      ``trustme`` (``pip install trustme``); :attr:`ssl_context` trusts it (and
      :meth:`client` uses it), :attr:`ca_pem` is its CA certificate.
    - ``connect_delay``: seconds added to the set-up of every new connection, before its
      TLS handshake, as a TLS connection to Tango costs (~0.15 s); a reused keep-alive
      connection pays nothing. A TCP proxy on the public port does it
      (:class:`~tango_async.testing._network.DelayingProxy`).
    - ``keepalive_timeout``: seconds after which the server closes an idle keep-alive
      connection (None: aiohttp's AppRunner default, 3630 s; production servers use
      far less, nginx 75 s).
    - ``read_rate``: GETs per second, measured at arrival like ``order_rate``: a GET
      sooner than ``1/read_rate`` after the last accepted one gets 429.001 with
      ``Retry-After: 1`` (counted in :attr:`refused_reads`). None: no limit.
    - ``latency``: seconds every response is held before it is sent (real time, not the
      sandbox clock), as a distant server's round trip.

    :attr:`connections_accepted` counts the connections accepted on the public port.

    Every argument is checked first (ValidationError, a ValueError, naming it; numbers
    are ints or floats, never bools): ``order_rate`` and ``read_rate`` None or a rate
    from one a day (1/86400 per second) to 10**6 per second; ``resend_cooldown`` 0 to 86400
    seconds; ``pending_for`` 0 to 366 days in seconds; ``connect_delay`` and ``latency``
    0 to 3600 seconds; ``keepalive_timeout`` None or above 0 to 86400 seconds;
    ``max_window`` an int from 1 to 10**9; ``max_range_days`` None or above 0 to 36525;
    ``port`` an int from 0 to 65535; ``host`` a string; ``platform_name`` a non-empty
    string without ':'; ``platform_key`` None or a string; ``clock`` None or a
    SandboxClock; ``record`` and ``tls`` bools; ``contract`` a bool or a ContractChecker;
    ``delivery_for`` None or 0 to 366 days in seconds; ``webhook_ttl`` above 0 to ten
    years in seconds; ``webhook_retry_delays`` a sequence of at most 20 numbers of seconds
    from 0 to 3600; ``webhook_timeout`` above 0 to 3600 seconds.
    :meth:`client` adds the client's own rules: its ``order_rate`` must leave at most a
    day between orders with its 5% margin (at least 1.05/86400 per second).

    OAuth (see ``_oauth``): ``POST /oauth/token`` on the sandbox's own server (outside
    /raas/v2, at :attr:`oauth_token_url`) issues bearer tokens to ``oauth_client_id`` /
    ``oauth_client_secret`` (and, for the password grant, ``oauth_username`` /
    ``oauth_password``; the secret and the password are generated when not given), living
    24 hours or 5 minutes by audience on the sandbox clock, at most ``oauth_daily_limit``
    (None: no limit) per sandbox-clock day (400 "exceeded the daily rate limit" past it).
    The API accepts ``Authorization: Bearer <token>`` for an unexpired token beside Basic
    (401 with ``WWW-Authenticate: Bearer`` otherwise). :attr:`token_requests` records the
    token requests, :meth:`revoke_tokens` invalidates the tokens issued, ``inject("POST
    /oauth/token", fault)`` scripts the token route's faults, and ``client(oauth=True)``
    makes a client that uses OAuth.
    """

    def __init__(
        self,
        *,
        order_rate: float | None = 1.0,
        resend_cooldown: float = 30.0,
        platform_name: str = "sandbox-platform",
        platform_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SandboxClock | None = None,
        max_window: int = 10_000,
        max_range_days: float | None = None,
        pending_for: float = 0.0,
        record: bool = True,
        contract: bool | ContractChecker = False,
        tls: bool = False,
        connect_delay: float = 0.0,
        keepalive_timeout: float | None = None,
        read_rate: float | None = None,
        latency: float = 0.0,
        delivery_for: float | None = None,
        webhook_ttl: float = 30 * _DAY,
        webhook_retry_delays: Sequence[float] = (1.0, 2.0, 4.0),
        webhook_timeout: float = 10.0,
        oauth_client_id: str = "sandbox-oauth-client",
        oauth_client_secret: str | None = None,
        oauth_username: str = "sandbox-service-account",
        oauth_password: str | None = None,
        oauth_daily_limit: int | None = 20,
        strict_catalog: bool = False,
    ) -> None:
        if not isinstance(strict_catalog, bool):  # catalog (issue 15)
            raise ValidationError("strict_catalog", "must be True or False")
        check_oauth_arguments(
            client_id=oauth_client_id,
            client_secret=oauth_client_secret,
            username=oauth_username,
            password=oauth_password,
            daily_limit=oauth_daily_limit,
        )
        _check_arguments(
            order_rate=order_rate,
            resend_cooldown=resend_cooldown,
            platform_name=platform_name,
            platform_key=platform_key,
            host=host,
            port=port,
            clock=clock,
            max_window=max_window,
            max_range_days=max_range_days,
            pending_for=pending_for,
            record=record,
            contract=contract,
            tls=tls,
            connect_delay=connect_delay,
            keepalive_timeout=keepalive_timeout,
            read_rate=read_rate,
            latency=latency,
            delivery_for=delivery_for,
            webhook_ttl=webhook_ttl,
            webhook_retry_delays=webhook_retry_delays,
            webhook_timeout=webhook_timeout,
        )
        self.order_rate = order_rate
        self.resend_cooldown = resend_cooldown
        self.platform_name = platform_name
        self.platform_key = platform_key or "sk-" + secrets.token_urlsafe(18)
        self.host = host
        self.port = port
        self.clock = clock or SandboxClock()
        self.max_window = max_window
        self.max_range_days = max_range_days
        self.record = record
        self.tls = tls
        self.connect_delay = connect_delay
        self.keepalive_timeout = keepalive_timeout
        self.read_rate = read_rate
        self.latency = latency
        #: an SSLContext trusting this sandbox's certificate (None without ``tls``)
        self.ssl_context: ssl.SSLContext | None = None
        #: the PEM bytes of the CA that signed the certificate (None without ``tls``)
        self.ca_pem: bytes | None = None
        self._server_ssl: ssl.SSLContext | None = None
        if tls:
            self._make_certificate()
        #: connections accepted on the public port (the proxy's, with ``connect_delay``)
        self.connections_accepted = 0
        #: GETs refused with 429 by ``read_rate``
        self.refused_reads = 0
        self.base_url = ""
        self.requests: list[Recorded] = []
        self.resends: list[dict[str, Any]] = []
        self.in_process: set[str] = set()
        self.contract_violations: list[ContractViolation] = []
        self._contract: ContractChecker | None = None
        if contract:
            # jsonschema (the ``testing`` extra) is needed only with ``contract``
            from ._contract import ContractChecker

            self._contract = (
                contract if isinstance(contract, ContractChecker) else (ContractChecker())
            )
        #: seconds a webhook subscription lives after its creation or last renewal
        self.webhook_ttl = float(webhook_ttl)
        #: every attempt to deliver a webhook event, in the order they were made
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._faults = FaultPlan()
        self._store = OrderStore(pending_for=pending_for, catalog=dict(DEFAULT_CATALOG))
        self._accounts = Accounts()
        self._errors = ErrorWriter(self._now)
        self._signer = Signer()
        self._webhook_faults = WebhookFaultPlan()
        self._deliverer = Deliverer(
            lookup=lambda webhook_id: self._webhooks.get(webhook_id),
            signer=self._signer,
            records=self.webhook_deliveries,
            retry_delays=[float(d) for d in webhook_retry_delays],
            timeout=float(webhook_timeout),
        )
        self._webhooks = Webhooks(self, self._errors, self._deliverer, self._webhook_faults)
        self._line_items = LineItems(
            self,
            self._store,
            self._accounts,
            self._errors,
            publish=self._webhooks.publish,
            delivery_for=delivery_for,
        )
        # Catalog and reference data (issue 15): their routes, and the catalog's rules for
        # orders while ``strict_catalog``
        #: orders must fit the catalog (400 unknown utid or bad amount, 422 inactive item)
        self.strict_catalog = strict_catalog
        self._catalog_data = CatalogData(self, self._store, self._errors)
        self._routes = Routes(
            self,
            self._store,
            self._accounts,
            self._errors,
            on_created=self._line_items.track,
            catalog_rule=self._catalog_data.order_refusal,
        )
        # Accounts and customers (issue 15): their records, alerts and routes
        self._customers = Customers(
            self, self._accounts, self._errors, publish=self._webhooks.publish
        )
        self._ticker: asyncio.TimerHandle | None = None
        self._last_arrival: dict[str, float] = {}  # "order" / "read": the last one accepted
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._proxy: DelayingProxy | None = None
        self._arrived: dict[int, float] = {}  # connection handler -> its next request's arrival
        self._expected_auth = (
            "Basic "
            + base64.b64encode(f"{self.platform_name}:{self.platform_key}".encode()).decode()
        )
        # OAuth (issue 15): the token endpoint and the bearer tokens the API accepts
        self._oauth = TokenIssuer(
            self.clock,
            client_id=oauth_client_id,
            client_secret=oauth_client_secret or "cs-" + secrets.token_urlsafe(24),
            username=oauth_username,
            password=oauth_password or "pw-" + secrets.token_urlsafe(18),
            daily_limit=oauth_daily_limit,
        )

    def __repr__(self) -> str:
        return f"Sandbox(base_url={self.base_url!r}, orders={len(self._store)})"

    @property
    def pending_for(self) -> float:
        """Seconds of the sandbox clock an order stays PENDING after its createdAt."""
        return self._store.pending_for

    @pending_for.setter
    def pending_for(self, value: float) -> None:
        self._store.pending_for = value

    @property
    def delivery_for(self) -> float | None:
        """Seconds of the sandbox clock a line item's delivery takes after its outcome
        (None: :attr:`pending_for`); see :mod:`._line_items` for the whole life."""
        return self._line_items.delivery_for

    @delivery_for.setter
    def delivery_for(self, value: float | None) -> None:
        self._line_items.delivery_for = value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """Real seconds waited before each retry of a webhook delivery (as many retries)."""
        return self._deliverer.retry_delays

    @webhook_retry_delays.setter
    def webhook_retry_delays(self, value: Sequence[float]) -> None:
        self._deliverer.retry_delays = tuple(float(v) for v in value)

    @property
    def webhook_timeout(self) -> float:
        """Real seconds one webhook delivery attempt may take before it counts as failed."""
        return self._deliverer.timeout

    @webhook_timeout.setter
    def webhook_timeout(self, value: float) -> None:
        self._deliverer.timeout = float(value)

    @property
    def catalog(self) -> dict[str, CatalogItem]:
        """The rewards orders are made of, by utid (others get a generic reward name)."""
        return self._store.catalog

    @catalog.setter
    def catalog(self, value: dict[str, CatalogItem]) -> None:
        self._store.catalog = value

    def _now(self) -> datetime:
        return self.clock.now()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> Sandbox:
        """Start serving; :attr:`base_url` is set once this returns."""
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024**2)
        self._line_items.add_to(app)
        self._webhooks.add_to(app)
        self._oauth.add_to(app)
        self._customers.add_to(app)
        self._catalog_data.add_to(app)
        self._routes.add_to(app)  # the catch-all 404 last
        options: dict[str, Any] = {}
        if self.keepalive_timeout is not None:
            options["keepalive_timeout"] = self.keepalive_timeout
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25, **options)
        await runner.setup()
        server = runner.server
        assert server is not None
        proxied = self.connect_delay > 0

        def protocol() -> asyncio.BaseProtocol:
            if not proxied:
                self._count_connection()
            return _Stamping(server(), self)

        loop = asyncio.get_running_loop()
        try:
            # the listener aiohttp's TCPSite would make, counting the connections it accepts
            self._listener = await loop.create_server(
                protocol,
                "127.0.0.1" if proxied else self.host,
                0 if proxied else self.port,
                ssl=self._server_ssl,
                backlog=128,
            )
            host, port = self._listener.sockets[0].getsockname()[:2]
            if proxied:
                self._proxy = DelayingProxy(
                    host,
                    port,
                    host=self.host,
                    port=self.port,
                    connect_delay=self.connect_delay,
                    on_accept=self._count_connection,
                )
                host, port = (await self._proxy.start()).address
        except BaseException:
            self._runner = runner
            await self.stop()
            raise
        self._runner = runner
        self.port = port
        self._ticker = loop.call_later(_TICK, self._tick)
        scheme = "https" if self._server_ssl is not None else "http"
        self.base_url = f"{scheme}://{host}:{port}{PREFIX}"
        return self

    async def stop(self) -> None:
        """Stop serving (requests in flight are cut off after a short grace period) and
        delivering webhooks (deliveries in flight are cut off)."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
        await self._deliverer.close()
        proxy, self._proxy = self._proxy, None
        listener, self._listener = self._listener, None
        if proxy is not None:
            proxy.close_listener()
        if listener is not None:
            listener.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if proxy is not None:
            await proxy.stop()

    def _tick(self) -> None:
        """Publish line-item changes as they come due on a running clock (a frozen one
        moves only by advance(), after which :meth:`deliver_due` publishes at once); a
        timer, not a task, re-armed every ``_TICK`` real seconds while serving."""
        if self._ticker is None:
            return
        try:
            self._catch_up()
        except Exception:  # a bug must not stop the ticks
            logger.exception("sandbox: publishing line-item changes failed")
        self._ticker = asyncio.get_running_loop().call_later(_TICK, self._tick)

    def _catch_up(self) -> int:
        return self._line_items.catch_up(self.clock.now().timestamp())

    def _too_soon(self, rate: float, kind: str, arrived: float) -> bool:
        """The rate rule of ``order_rate`` and ``read_rate``: True (a 429) for an arrival
        sooner than ``1/rate`` after the last accepted one of its kind."""
        last = self._last_arrival.get(kind)
        if last is not None and arrived - last < 1 / rate:
            return True
        self._last_arrival[kind] = arrived
        return False

    def _count_connection(self) -> None:
        self.connections_accepted += 1

    def _make_certificate(self) -> None:
        try:
            import trustme
        except ImportError as exc:
            raise RuntimeError(
                "Sandbox(tls=True) makes its certificate with trustme: pip install trustme"
            ) from exc
        ca = trustme.CA()
        names = ["127.0.0.1", "localhost", "::1"]
        if self.host not in names and self.host not in ("", "0.0.0.0", "::"):
            names.append(self.host)
        cert = ca.issue_cert(*names)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ca.configure_trust(client_ctx)
        self._server_ssl = server_ctx
        self.ssl_context = client_ctx
        self.ca_pem = ca.cert_pem.bytes()

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def client(self, *, oauth: bool | dict[str, Any] = False, **kwargs: Any) -> TangoClient:
        """A TangoClient for this sandbox: its URL, credentials, rate, cooldown and clock,
        and with ``tls`` its :attr:`ssl_context`. ``kwargs`` override any of them.

        ``oauth=True`` makes it use OAuth instead of HTTP Basic: an OAuth of this
        sandbox's client ID and secret at :attr:`oauth_token_url`; a dict passes more
        arguments to OAuth (``grant_type="password"`` adds this sandbox's username and
        password; ``token_cache``, ``audience``, ``refresh_margin``...). An ``auth=``
        of your own is used as given (without the platform name and key)."""
        if oauth is not False or "auth" in kwargs:
            options = dict(oauth) if isinstance(oauth, dict) else {}
            kwargs.setdefault("auth", self.oauth(**options))
            return self._client(None, None, kwargs)
        return self._client(self.platform_name, self.platform_key, kwargs)

    def oauth(self, **kwargs: Any) -> OAuth:
        """An OAuth of this sandbox's client (its ID, secret and :attr:`oauth_token_url`;
        with ``grant_type="password"`` its username and password); ``kwargs`` override
        or add OAuth's arguments."""
        options: dict[str, Any] = {"token_url": self.oauth_token_url}
        if kwargs.get("grant_type") == "password":
            options.update(username=self._oauth.username, password=self._oauth.password)
        options.update(kwargs)
        return OAuth(self._oauth.client_id, self._oauth.client_secret, **options)

    @property
    def oauth_token_url(self) -> str:
        """The URL of this sandbox's token endpoint (set once started)."""
        return self.base_url[: -len(PREFIX)] + TOKEN_PATH if self.base_url else ""

    @property
    def oauth_client_id(self) -> str:
        return self._oauth.client_id

    @property
    def oauth_client_secret(self) -> str:
        return self._oauth.client_secret

    @property
    def oauth_username(self) -> str:
        return self._oauth.username

    @property
    def oauth_password(self) -> str:
        return self._oauth.password

    @property
    def token_requests(self) -> list[TokenRequest]:
        """Every request to ``POST /oauth/token`` (answered by the route, faults aside),
        oldest first: client ID, grant type, audience, status, time; no secret."""
        return self._oauth.requests

    def revoke_tokens(self) -> int:
        """Invalidate every bearer token issued so far: the API answers 401 to them (as
        to an expired one). Returns how many there were."""
        return self._oauth.revoke_all()

    def _client(self, name: str | None, key: str | None, kwargs: dict[str, Any]) -> TangoClient:
        options: dict[str, Any] = {
            "resend_cooldown": self.resend_cooldown,
            # no server limit: pace fast rather than at the real API's 1 TPS
            "order_rate": self.order_rate if self.order_rate is not None else 1000.0,
        }
        options.update(kwargs)
        options.setdefault("clock", self.clock)
        if self.ssl_context is not None:
            options.setdefault("ssl_context", self.ssl_context)
        return TangoClient(name, key, base_url=self.base_url, **options)

    # --- scripting ------------------------------------------------------------------------

    def inject(self, route: str, fault: str, *, times: int = 1, **opts: Any) -> None:
        """Answer the next ``times`` requests matching ``route`` with ``fault``.

        ``route`` is a method and a path under /raas/v2, ``*`` standing for one segment:
        ``"POST /orders"``, ``"GET /orders/*"``, ``"POST /lineItems/*/resends"``. Faults are
        listed in ``tango_async.testing.FAULTS``; they queue up and are used in order.
        ``when={"recipient.email": "x@example.com"}`` limits the fault to requests whose
        JSON body holds those values (dotted wire names): a per-row refusal, for example.
        """
        self._faults.add(route, fault, times, opts)

    def chaos(
        self,
        rate: float,
        *,
        seed: int = 0,
        faults: Iterable[str] = CHAOS_DEFAULT,
        routes: Iterable[str] = ("POST /orders",),
        **opts: Any,
    ) -> None:
        """Inject a fault drawn from ``faults`` into a share ``rate`` of the requests on
        ``routes``, reproducibly for a given ``seed``. ``rate=0`` turns it off."""
        self._faults.chaos(rate, seed, faults, routes, opts)

    def clear_faults(self) -> None:
        """Forget every scripted fault (webhook faults too) and stop the chaos."""
        self._faults.clear()
        self._webhook_faults.clear()

    def inject_webhook(
        self,
        fault: str,
        *,
        times: int = 1,
        event_type: str | None = None,
        webhook_id: str | None = None,
    ) -> None:
        """Shape the delivery of the next ``times`` events published to a subscription
        (limited to ``event_type`` and to ``webhook_id`` when given) with ``fault``, one of
        ``tango_async.testing.WEBHOOK_FAULTS``: "duplicate", "out-of-order",
        "bad-signature", "tampered-body", "lost". Replays are never faulted.
        ValueError for an unknown fault or event type, or ``times`` below 1."""
        if event_type is not None and event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}; one of: {', '.join(EVENT_TYPES)}")
        self._webhook_faults.add(fault, times, event_type, webhook_id)

    async def deliver_due(
        self,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a guard against a listener that hangs
    ) -> None:
        """Publish every line-item change that came due on the sandbox clock (call it after
        ``clock.advance()``), release the events an "out-of-order" fault holds back, and
        return once every webhook delivery queued, retries included, has ended (answered
        2xx or given up). TimeoutError after ``timeout`` real seconds."""
        self._catch_up()
        self._deliverer.release_held()
        async with asyncio.timeout(timeout):
            await self._deliverer.idle()

    @property
    def webhook_certificate(self) -> str:
        """The PEM text of the self-signed certificate whose RSA key signs X509 webhook
        deliveries: register it (or base64 of its DER) as ``signingCertificate`` and verify
        ``X-Signed-Payload`` with it. Made on first use; needs ``cryptography``
        (RuntimeError without it)."""
        return self._signer.certificate_pem

    @property
    def webhook_subscriptions(self) -> dict[str, dict[str, Any]]:
        """Every webhook subscription as GET /webhooks/{webhookId} shows it, by webhookId."""
        return {wid: sub.view() for wid, sub in self._webhooks.subscriptions.items()}

    def webhook_events(self, webhook_id: str) -> list[dict[str, Any]]:
        """The events published to a subscription (their envelopes, by revision); KeyError
        for an unknown one."""
        return [dict(e) for e in self._webhooks.subscriptions[webhook_id].events]

    def set_exchange_rate(
        self, reward_currency: str, base_fx: Decimal | int | str, *, base_currency: str = "USD"
    ) -> None:
        """Fix the rate GET /exchangerates gives for ``reward_currency`` in
        ``base_currency``: one unit of the reward currency costs ``base_fx`` of the base
        currency (it no longer moves with the sandbox clock's day; see ``_catalog``)."""
        self._catalog_data.set_rate(reward_currency, base_currency, Decimal(base_fx))

    def set_balance(self, account_identifier: str, amount: Decimal | int | str) -> None:
        """Fund ``account_identifier`` with exactly ``amount``; orders beyond it get 402."""
        self._accounts.balances[account_identifier] = Decimal(amount)

    def balance(self, account_identifier: str) -> Decimal | None:
        """The account's balance, or None while it is funded without limit."""
        return self._accounts.balances.get(account_identifier)

    # --- accounts and customers (issue 15): see ``_accounts`` ---------------------------

    def add_account(
        self,
        account_identifier: str,
        *,
        customer_identifier: str = "sandbox-customer",
        balance: Decimal | int | str = Decimal("1000"),
        currency_code: str = "USD",
        display_name: str | None = None,
        status: str = "ACTIVE",
    ) -> dict[str, Any]:
        """Register an account (and its customer) with ``balance``: orders spend it (402
        when short), ``GET /accounts/{id}`` shows it. Returns its view. Accounts never
        registered stay funded without limit (and are not listed)."""
        return self._customers.add_account(
            account_identifier,
            customer_identifier=customer_identifier,
            balance=balance,
            currency_code=currency_code,
            display_name=display_name,
            status=status,
        )

    def fund(self, account_identifier: str, amount: Decimal | int | str) -> Decimal:
        """Add ``amount`` to a registered account's balance (an account created through
        the API starts at 0); returns the new balance. KeyError for one never
        registered."""
        return self._customers.fund(account_identifier, amount)

    @property
    def low_balance_alerts_fired(self) -> list[dict[str, Any]]:
        """Every low-balance alert fired (the LowBalance event data), oldest first."""
        return self._customers.alerts_fired

    def freeze(self, account_identifier: str) -> None:
        """Freeze the account: its orders get the 422 frozen-account answer."""
        self._accounts.frozen.add(account_identifier)

    def unfreeze(self, account_identifier: str) -> None:
        self._accounts.frozen.discard(account_identifier)

    def fail_next(self, count: int = 1) -> None:
        """The next ``count`` orders end FAILED (after ``pending_for``) and are refunded."""
        self._accounts.fail_next += count

    def bounce_next(self, count: int = 1) -> None:
        """The email of the next ``count`` EMAIL orders bounces: their line item's
        emailStatus goes SENT then BOUNCE, its deliveryStatus PROCESSING then FAILED
        (``delivery_for`` after the outcome); the order itself still completes."""
        self._accounts.bounce_next += count

    @property
    def line_items(self) -> dict[str, dict[str, Any]]:
        """Every stored line item as GET /lineItems/{id} would show it now, by
        referenceLineItemID."""
        now = self.clock.now().timestamp()
        stored = self._store.created_between(None, None)[::-1]  # oldest first
        return {s.wire["referenceLineItemID"]: self._line_items.view(s, now) for s in stored}

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        """Every stored order as the API would show it now, by referenceOrderID."""
        return self._store.views(self.clock.now().timestamp())

    def seed_orders(
        self, count: int, *, start: datetime, step: timedelta | float, **fields: Any
    ) -> list[str]:
        """Store ``count`` orders created at ``start + i * step``; return their IDs.

        ``step`` is a ``timedelta`` or a number of seconds (``step=300`` is five minutes;
        an int or a finite float, not a bool); anything else is a ValidationError naming
        ``step``, before anything is stored. ``fields`` set order fields by wire or
        snake_case name (``customer_identifier``, ``amount``, ``status``...). Made for
        history tests: 100,000 in a few seconds.
        """
        if not isinstance(step, timedelta):
            if not finite_number(step, lo=-_MAX_RANGE_DAYS * _DAY, hi=_MAX_RANGE_DAYS * _DAY):
                raise ValidationError(
                    "step", "must be a timedelta or a finite number of seconds (int or float)"
                )
            step = timedelta(seconds=float(step))
        return self._store.seed(count, start=start, step=step, fields=fields)

    def arrivals(self, method: str, path: str, *, exact: bool = False) -> list[float]:
        """Arrival times of recorded requests by method and path (under /raas/v2) prefix;
        ``exact`` for the path itself only (``"/orders"`` without its resends)."""

        def hit(p: str) -> bool:
            rel = p[len(PREFIX) :] if p.startswith(PREFIX) else p
            return rel == path or (not exact and rel.startswith(path))

        return [r.arrived for r in self.requests if r.method == method.upper() and hit(r.path)]

    # --- plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # When the request's first bytes reached the server (the next request on this
        # connection is stamped by its own).
        arrived = self._arrived.pop(id(request.protocol), None)
        if arrived is None:
            arrived = self.clock.monotonic()
        raw = await request.read()
        rec = Recorded(
            request.method,
            request.path,
            dict(request.query),
            (parse_form(raw) if request.path == TOKEN_PATH else loads(raw)) if raw else None,
            dict(request.headers),
            arrived,
            body=raw,
        )
        if self.record:
            self.requests.append(rec)
        set_current(rec)
        try:
            response = await self._dispatch(request, handler, rec)
        except Drop:
            if self.latency:
                await asyncio.sleep(self.latency)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client
        rec.status = response.status
        _stamp_request_id(response)
        if self._contract is not None:
            self._check_contract(rec, response)
        if self.latency:
            await asyncio.sleep(self.latency)  # real time: the sandbox clock may be frozen
        return response

    async def _dispatch(
        self, request: web.Request, handler: Handler, rec: Recorded
    ) -> web.StreamResponse:
        path = request.path
        if path == TOKEN_PATH:
            return await self._dispatch_token(request, handler, rec)
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return await handler(request)
        authorization = request.headers.get("Authorization")
        if authorization != self._expected_auth and not self._oauth.accepts(authorization):
            bearer = authorization is not None and authorization.startswith("Bearer ")
            challenge = (
                'Bearer realm="RaaS", error="invalid_token"' if bearer else 'Basic realm="RaaS"'
            )
            return self.error(request, "401.001", headers={"WWW-Authenticate": challenge})
        rel = path[len(PREFIX) :] or "/"
        self._catch_up()  # changes that came due happened before this request
        creates = request.method == "POST" and rel == "/orders"
        rate = self.order_rate if creates else self.read_rate if request.method == "GET" else None
        if rate and self._too_soon(rate, "order" if creates else "read", rec.arrived):
            self.refused_reads += not creates
            return self.error(request, "429.001", rate, headers={"Retry-After": "1"})
        chosen = self._faults.next(request.method, rel, rec.json)
        if chosen is None:
            return await handler(request)
        name, opts = chosen
        rec.fault = name
        exchange = Exchange(
            request,
            rec.json,
            opts,
            lambda: handler(request),
            self._errors,
            self.order_rate,
            self.in_process,
        )
        return await apply(name, exchange)

    async def _dispatch_token(
        self, request: web.Request, handler: Handler, rec: Recorded
    ) -> web.StreamResponse:
        """The token route (OAuth), with the faults scripted for ``POST /oauth/token``."""
        chosen = self._faults.next(request.method, request.path, rec.json)
        if chosen is None:
            return await handler(request)
        name, opts = chosen
        rec.fault = name
        exchange = Exchange(
            request, rec.json, opts, lambda: handler(request), self._errors, None, self.in_process
        )
        return await apply(name, exchange)

    def _check_contract(self, rec: Recorded, response: web.StreamResponse) -> None:
        assert self._contract is not None
        if rec.path == TOKEN_PATH and isinstance(rec.json, dict):
            self.contract_violations += self._contract.check_request(
                rec.method, rec.path, rec.json, content_type="application/x-www-form-urlencoded"
            )
        elif rec.json is not None and rec.json is not MALFORMED:
            self.contract_violations += self._contract.check_request(rec.method, rec.path, rec.json)
        raw = body_bytes(response)
        if rec.fault is None and raw:
            body = loads(raw)
            if body is not MALFORMED:
                self.contract_violations += self._contract.check_response(
                    rec.method, rec.path, response.status, body, response.content_type
                )

    # --- answers: Tango's JSON and error answers, as the routes and the faults give them --

    @staticmethod
    def respond(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """``obj`` as a JSON answer."""
        return respond(obj, status, headers)

    def error_body(
        self,
        path: str,
        status: int,
        key: str,
        message: str,
        *,
        legacy: bool = False,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Tango's error body: errors[] items, or (legacy) a top-level i18nKey and message;
        its ``timestamp`` the sandbox clock's now."""
        return self._errors.body(path, status, key, message, legacy=legacy, errors=errors)

    def error(
        self,
        request: web.Request,
        key: str,
        *args: Any,
        message: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> web.Response:
        """Tango's error answer for ``key`` (see :data:`._errors.MESSAGES`)."""
        return self._errors.response(
            request.path,
            key,
            *args,
            message=message,
            status=status,
            headers=headers,
            errors=errors,
        )


_BODY_REQUEST_ID = re.compile(rb'"requestId"\s*:\s*"([0-9a-f-]{36})"')


def _stamp_request_id(response: web.StreamResponse) -> None:
    """Tango's ``X-REQUEST-ID`` on every answer (its support reference): an error body's
    own ``requestId``, else a new UUID."""
    if "X-REQUEST-ID" in response.headers or response.prepared:
        return
    body = response.body if isinstance(response, web.Response) else None
    found = _BODY_REQUEST_ID.search(body, 0, 400) if isinstance(body, bytes) else None
    response.headers["X-REQUEST-ID"] = found.group(1).decode() if found else str(uuid.uuid4())
