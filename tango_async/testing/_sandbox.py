"""The local sandbox: an in-memory emulator of Tango's RaaS v2 orders API on loopback."""

from __future__ import annotations

import asyncio
import base64
import bisect
import itertools
import json
import secrets
import ssl
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from .._exceptions import ValidationError
from .._repr import tolerant_repr
from .._validation import check_str, finite_number
from ._clock import SandboxClock
from ._faults import CHAOS_DEFAULT, FaultPlan
from ._network import DelayingProxy
from ._rules import check_order, check_resend, delivery_method

if TYPE_CHECKING:
    from .._client import TangoClient
    from ._contract import ContractChecker, ContractViolation

__all__ = ["CatalogItem", "Recorded", "Sandbox"]

PREFIX = "/raas/v2"
HTML_502 = "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"
MESSAGES = {
    "400.001": "Malformed JSON request: a JSON object is required",
    "400.002": "Invalid query parameter: {0}",
    "400.004": "Validation failed",
    "400.021": "Search request exceeds max result window of {0}",
    "401.001": "Full authentication is required to access this resource",
    "402.001": "Insufficient funds in account {0}",
    "403.003": "Cannot resend an order that Tango did not deliver (sendEmail=false or "
    "deliveryMethod NONE, EMBEDDED or ADDRESS)",
    "403.005": "Cannot send more than once every {0:g} seconds",
    "404.001": "Resource not found",
    "404.002": "Order not found",
    "404.003": "Line item not found",
    "404.142": "Account has been frozen, please contact your Tango CSM or email cs@tangocard.com",
    "409.002": "An order with this externalRefID is still in process; retry after at least 2 s",
    "422.042": "elementsPerBlock must be less than or equal to 100",
    "422.043": "Order search period must be at most {0:g} days",
    "429.001": "Order rate limit {0:g} TPS threshold reached",
    "500.001": "An unexpected error occurred",
    "503.001": "Service temporarily unavailable",
}
ECHOED = (
    "externalRefID",
    "customerIdentifier",
    "accountIdentifier",
    "utid",
    "ptid",
    "sender",
    "recipient",
    "emailSubject",
    "message",
    "etid",
    "campaign",
    "notes",
    "purchaseOrderNumber",
)
# GET /orders query parameter -> path into the stored order, compared as text
LIST_FILTERS: dict[str, tuple[str, ...]] = {
    **{
        n: (n,)
        for n in (
            "accountIdentifier",
            "customerIdentifier",
            "externalRefID",
            "utid",
            "ptid",
            "rewardName",
            "campaign",
            "notes",
            "purchaseOrderNumber",
            "deliveryMethod",
            "sendEmail",
        )
    },
    "currencyCode": ("denomination", "currencyCode"),
    **{
        f"{who}{part[:1].upper()}{part[1:]}": (who, part)
        for who in ("sender", "recipient")
        for part in ("firstName", "lastName", "email", "mobileNumber")
    },
}
STATUS_FILTERS = ("status", "orderStatus", "lineItemStatus")
NOT_DELIVERED_BY_TANGO = ("NONE", "EMBEDDED", "EMBEDDED_COMPONENT", "ADDRESS")
_ENCODER = msgspec.json.Encoder(decimal_format="number")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """A reward the sandbox can issue: its name and kind (gift_card, promo_link, physical)."""

    reward_name: str
    kind: str = "gift_card"


DEFAULT_CATALOG = {
    "U561593": CatalogItem("Amazon.com Gift Card"),
    "U666425": CatalogItem("Promo Link", "promo_link"),
    "U157189": CatalogItem("Visa Prepaid Card (physical)", "physical"),
}


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
        from .._auth import HeaderValue

        self.headers = {
            name: HeaderValue(value)
            if name.lower() in ("authorization", "proxy-authorization")
            else value
            for name, value in self.headers.items()
        }


@dataclass(slots=True)
class _Stored:
    wire: dict[str, Any]
    ts: float  # createdAt, epoch seconds
    account: str
    outcome: str = "COMPLETE"  # what PENDING turns into


class _Drop(Exception):
    """Close the connection without answering."""


def iso(dt: datetime) -> str:
    """UTC, milliseconds, Z: as Tango writes createdAt."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        return _MALFORMED


_MALFORMED = object()
_CURRENT: ContextVar[Recorded] = ContextVar("tango_sandbox_request")


def _body_bytes(response: web.StreamResponse) -> bytes | None:
    body = response.body if isinstance(response, web.Response) else None
    return body if isinstance(body, bytes) else None


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def _parse_time(value: str) -> datetime:
    """RFC 3339 date (its midnight, UTC) or date-time with an offset; ValueError otherwise."""
    if len(value) == 10:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError(value)
    return parsed


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
) -> None:
    """ValidationError naming the first of Sandbox's arguments out of range (see
    :class:`Sandbox`): before anything is made, so a bad one never hangs, divides by zero
    or overflows later."""

    def number(value: object, field: str, rule: str, *, lo: float, hi: float,
               above: bool = False, optional: bool = False) -> None:
        if optional and value is None:
            return
        if not finite_number(value, lo=lo, hi=hi, above=above):
            raise ValidationError(field, rule)

    for field, value in (("order_rate", order_rate), ("read_rate", read_rate)):
        number(value, field, "must be None (no limit) or a rate per second from 1/86400 "
               "(one a day) to 1000000", lo=_MIN_RATE, hi=_MAX_RATE, optional=True)
    number(resend_cooldown, "resend_cooldown", "must be a finite number of seconds from 0 "
           "to 86400", lo=0.0, hi=_DAY)
    number(pending_for, "pending_for", "must be a finite number of seconds from 0 to "
           "31622400 (366 days)", lo=0.0, hi=_MAX_PENDING)
    for field, value in (("connect_delay", connect_delay), ("latency", latency)):
        number(value, field, "must be a finite number of seconds from 0 to 3600",
               lo=0.0, hi=_MAX_DELAY)
    number(keepalive_timeout, "keepalive_timeout", "must be None (aiohttp's default) or a "
           "finite number of seconds above 0 to 86400", lo=0.0, hi=_DAY, above=True,
           optional=True)
    number(max_range_days, "max_range_days", "must be None (no limit) or a finite number "
           "of days above 0 to 36525", lo=0.0, hi=_MAX_RANGE_DAYS, above=True, optional=True)
    if isinstance(max_window, bool) or not isinstance(max_window, int) or not (
        1 <= max_window <= _MAX_WINDOW
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
    :meth:`freeze` (422 frozen account). Orders are PENDING for ``pending_for`` seconds of
    the sandbox clock, then COMPLETE (or FAILED: :meth:`fail_next`). :meth:`inject` and
    :meth:`chaos` script faults; :attr:`requests` records every request. With ``contract``
    every request and response is checked against Tango's OpenAPI description and the
    violations collected in :attr:`contract_violations`.

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
    SandboxClock; ``record`` and ``tls`` bools; ``contract`` a bool or a ContractChecker.
    :meth:`client` adds the client's own rules: its ``order_rate`` must leave at most a
    day between orders with its 5% margin (at least 1.05/86400 per second).
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
    ) -> None:
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
        self.pending_for = pending_for
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
        self.catalog: dict[str, CatalogItem] = dict(DEFAULT_CATALOG)
        self.contract_violations: list[ContractViolation] = []
        self._contract: ContractChecker | None = None
        if contract:
            from ._contract import ContractChecker

            self._contract = (
                contract if isinstance(contract, ContractChecker) else (ContractChecker())
            )
        self._faults = FaultPlan()
        self._orders: dict[str, _Stored] = {}
        self._by_ext: dict[str, str] = {}
        self._by_line: dict[str, str] = {}
        self._index: list[tuple[float, str]] = []  # (-createdAt, id): newest first
        self._version = 0
        self._cache: dict[tuple[Any, ...], list[_Stored]] = {}
        self._balances: dict[str, Decimal] = {}
        self._frozen: set[str] = set()
        self._fail_next = 0
        self._last_arrival: dict[str, float] = {}  # "order" / "read": the last one accepted
        self._last_resend: dict[str, float] = {}
        self._seq = itertools.count(1)
        self._resend_ids = itertools.count(1001)
        self._seed_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._proxy: DelayingProxy | None = None
        self._arrived: dict[int, float] = {}  # connection handler -> its next request's arrival
        self._expected_auth = (
            "Basic "
            + base64.b64encode(f"{self.platform_name}:{self.platform_key}".encode()).decode()
        )

    def __repr__(self) -> str:
        return f"Sandbox(base_url={self.base_url!r}, orders={len(self._orders)})"

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> Sandbox:
        """Start serving; :attr:`base_url` is set once this returns."""
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024**2)
        add = app.router.add_route
        add("GET", PREFIX + "/orders", self._list_orders)
        add("POST", PREFIX + "/orders", self._create_order)
        add("GET", PREFIX + "/orders/{id}", self._get_order)
        add("POST", PREFIX + "/orders/{id}/resends", self._resend_order)
        add("GET", PREFIX + "/lineItems/{id}", self._get_line_item)
        add("POST", PREFIX + "/lineItems/{id}/resends", self._resend_line_item)
        add("*", "/{tail:.*}", self._not_found)
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
        scheme = "https" if self._server_ssl is not None else "http"
        self.base_url = f"{scheme}://{host}:{port}{PREFIX}"
        return self

    async def stop(self) -> None:
        """Stop serving (requests in flight are cut off after a short grace period)."""
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

    def client(self, **kwargs: Any) -> TangoClient:
        """A TangoClient for this sandbox: its URL, credentials, rate, cooldown and clock,
        and with ``tls`` its :attr:`ssl_context`. ``kwargs`` override any of them."""
        from .._client import TangoClient

        options: dict[str, Any] = {
            "resend_cooldown": self.resend_cooldown,
            # no server limit: pace fast rather than at the real API's 1 TPS
            "order_rate": self.order_rate if self.order_rate is not None else 1000.0,
        }
        options.update(kwargs)
        options.setdefault("clock", self.clock)
        if self.ssl_context is not None:
            options.setdefault("ssl_context", self.ssl_context)
        return TangoClient(self.platform_name, self.platform_key, base_url=self.base_url, **options)

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
        """Forget every scripted fault and stop the chaos."""
        self._faults.clear()

    def set_balance(self, account_identifier: str, amount: Decimal | int | str) -> None:
        """Fund ``account_identifier`` with exactly ``amount``; orders beyond it get 402."""
        self._balances[account_identifier] = Decimal(amount)

    def balance(self, account_identifier: str) -> Decimal | None:
        """The account's balance, or None while it is funded without limit."""
        return self._balances.get(account_identifier)

    def freeze(self, account_identifier: str) -> None:
        """Freeze the account: its orders get the 422 frozen-account answer."""
        self._frozen.add(account_identifier)

    def unfreeze(self, account_identifier: str) -> None:
        self._frozen.discard(account_identifier)

    def fail_next(self, count: int = 1) -> None:
        """The next ``count`` orders end FAILED (after ``pending_for``) and are refunded."""
        self._fail_next += count

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        """Every stored order as the API would show it now, by referenceOrderID."""
        now = self.clock.now().timestamp()
        return {oid: self._view(s, now) for oid, s in self._orders.items()}

    def seed_orders(
        self, count: int, *, start: datetime, step: timedelta, **fields: Any
    ) -> list[str]:
        """Store ``count`` orders created at ``start + i * step``; return their IDs.

        ``fields`` set order fields by wire or snake_case name (``customer_identifier``,
        ``amount``, ``status``...). Made for history tests: 100,000 in a few seconds.
        """
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        wire = {_wire_name(k): v for k, v in fields.items()}
        outcome = wire.pop("status", "COMPLETE")
        body: dict[str, Any] = {
            "customerIdentifier": "sandbox-customer",
            "accountIdentifier": "sandbox-account",
            "utid": "U561593",
            "amount": Decimal("10.00"),
            "deliveryMethod": "EMAIL",
            "sendEmail": True,
            "recipient": {"email": "recipient@example.com", "firstName": "Rita"},
        }
        extra = {k: v for k, v in wire.items() if k not in body and k not in ECHOED}
        body |= {k: v for k, v in wire.items() if k in body or k in ECHOED}
        if not isinstance(body["amount"], Decimal):
            body["amount"] = Decimal(str(body["amount"]))
        ids = []
        base_ts = start.timestamp()
        step_s = step.total_seconds()
        own_ref = count == 1 and body.get("externalRefID") is not None
        for i in range(count):
            ts = base_ts + i * step_s
            one = body if own_ref else {**body, "externalRefID": f"seed-{next(self._seed_ids)}"}
            stored = self._build(one, ts)
            stored.outcome = outcome
            stored.wire.update(extra)
            self._store(stored, sort=False)
            ids.append(stored.wire["referenceOrderID"])
        self._index.sort()
        self._version += 1
        return ids

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
            _loads(raw) if raw else None,
            dict(request.headers),
            arrived,
            body=raw,
        )
        if self.record:
            self.requests.append(rec)
        _CURRENT.set(rec)  # each request runs in its own task, hence its own context
        try:
            response = await self._dispatch(request, handler, rec)
        except _Drop:
            if self.latency:
                await asyncio.sleep(self.latency)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client
        rec.status = response.status
        if self._contract is not None:
            self._check_contract(rec, response)
        if self.latency:
            await asyncio.sleep(self.latency)  # real time: the sandbox clock may be frozen
        return response

    async def _dispatch(
        self, request: web.Request, handler: Handler, rec: Recorded
    ) -> web.StreamResponse:
        path = request.path
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return await handler(request)
        if request.headers.get("Authorization") != self._expected_auth:
            return self.error(
                request, "401.001", headers={"WWW-Authenticate": 'Basic realm="RaaS"'}
            )
        rel = path[len(PREFIX) :] or "/"
        creates = request.method == "POST" and rel == "/orders"
        rate = self.order_rate if creates else self.read_rate if request.method == "GET" else None
        if rate and self._too_soon(rate, "order" if creates else "read", rec.arrived):
            self.refused_reads += not creates
            return self.error(request, "429.001", rate, headers={"Retry-After": "1"})
        chosen = self._faults.next(request.method, rel, rec.json)
        if chosen is None:
            return await handler(request)
        rec.fault = chosen[0]
        return await self._apply(chosen[0], chosen[1], request, handler, rec)

    async def _apply(
        self, name: str, opts: dict[str, Any], request: web.Request, handler: Handler, rec: Recorded
    ) -> web.StreamResponse:
        canned = {
            "429": "429.001",
            "500": "500.001",
            "503": "503.001",
            "404": "404.001",
            "409-in-process": "409.002",
        }
        if name in canned:
            key = opts.get("i18nKey", canned[name])
            headers = {"Retry-After": str(opts.get("retry_after", 1))} if name == "429" else None
            message = opts.get("message", MESSAGES[canned[name]].format(self.order_rate or 1))
            return self.error(
                request, key, message=message, headers=headers, status=int(canned[name][:3])
            )
        if name == "502-html":
            return web.Response(status=502, text=HTML_502, content_type="text/html")
        if name == "empty-500":
            return web.Response(status=500)
        if name == "truncated-500":
            full = _ENCODER.encode(
                self.error_body(request.path, 500, "500.001", MESSAGES["500.001"])
            )
            return web.Response(
                status=500, body=full[: len(full) // 2], content_type="application/json"
            )
        if name == "malformed-200":
            return web.Response(
                status=200, body=b'{"referenceOrderID": RA<oops', content_type="application/json"
            )
        if name == "legacy-error-body":
            status = opts.get("status", 400)
            body = self.error_body(
                request.path,
                status,
                opts.get("i18nKey", f"{status}.001"),
                opts.get("message", HTTPStatus(status).phrase),
                legacy=True,
            )
            return self.respond(body, status)
        if name == "redirect":
            return web.Response(
                status=opts.get("status", 302), headers={"Location": opts["location"]}
            )
        if name == "drop-before":
            raise _Drop
        if name == "repeat-page":
            return await handler(request)
        if name == "slow":
            ext = (
                rec.json.get("externalRefID")
                if opts.get("hold") and isinstance(rec.json, dict)
                else None
            )
            if ext is not None:
                self.in_process.add(ext)
            try:
                await asyncio.sleep(opts["delay"])
            finally:
                if ext is not None:
                    self.in_process.discard(ext)
            return await handler(request)
        # processed first, then the answer is lost or broken
        response = await handler(request)
        if name == "drop-after-commit":
            raise _Drop
        raw = _body_bytes(response)
        if name == "truncated-200" and raw:
            return web.Response(
                status=response.status, body=raw[: len(raw) // 2], content_type="application/json"
            )
        status = 503 if name == "503-after-commit" else 500
        return self.error(request, f"{status}.001")

    def _check_contract(self, rec: Recorded, response: web.StreamResponse) -> None:
        assert self._contract is not None
        if rec.json is not None and rec.json is not _MALFORMED:
            self.contract_violations += self._contract.check_request(rec.method, rec.path, rec.json)
        raw = _body_bytes(response)
        if rec.fault is None and raw:
            body = _loads(raw)
            if body is not _MALFORMED:
                self.contract_violations += self._contract.check_response(
                    rec.method, rec.path, response.status, body, response.content_type
                )

    @staticmethod
    def respond(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status,
            body=_ENCODER.encode(obj),
            headers=headers,
            content_type="application/json",
        )

    @staticmethod
    def error_body(
        path: str,
        status: int,
        key: str,
        message: str,
        *,
        legacy: bool = False,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Tango's error body: errors[] items, or (legacy) a top-level i18nKey and message."""
        body: dict[str, Any] = {
            "timestamp": iso(datetime.now(UTC)),
            "requestId": str(uuid.uuid4()),
            "path": path,
            "httpCode": status,
            "httpPhrase": HTTPStatus(status).phrase,
        }
        if legacy:
            return body | {"i18nKey": key, "message": message}
        code = int(key.replace(".", "")) if key.replace(".", "").isdigit() else 0
        return body | {"errors": errors or [{"code": code, "i18nKey": key, "message": message}]}

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
        status = status or int(key[:3])
        if message is None:
            message = MESSAGES.get(key, HTTPStatus(status).phrase).format(*args)
        return self.respond(
            self.error_body(request.path, status, key, message, errors=errors), status, headers
        )

    # --- the store ------------------------------------------------------------------------

    def _store(self, stored: _Stored, *, sort: bool = True) -> None:
        oid = stored.wire["referenceOrderID"]
        self._orders[oid] = stored
        ext = stored.wire.get("externalRefID")
        if ext is not None:
            self._by_ext[ext] = oid
        self._by_line[stored.wire["referenceLineItemID"]] = oid
        key = (-stored.ts, oid)
        if sort:
            bisect.insort(self._index, key)
            self._version += 1
        else:
            self._index.append(key)

    def _build(self, body: dict[str, Any], ts: float) -> _Stored:
        seq = next(self._seq)
        created = datetime.fromtimestamp(ts, UTC)
        amount = body["amount"]
        method = delivery_method(body)
        item = self.catalog.get(str(body["utid"]).upper(), CatalogItem(f"Reward {body['utid']}"))
        account = str(body["accountIdentifier"])
        wire: dict[str, Any] = {
            "referenceOrderID": f"RA{created:%y%m%d}-{seq:05d}-{seq * 37 % 100:02d}",
            "referenceLineItemID": f"U{seq:09d}",
            **{k: body[k] for k in ECHOED if body.get(k) is not None},
            # Tango writes these even when empty (the docs show "address": null)
            "sender": body.get("sender"),
            "recipient": body.get("recipient"),
            "accountNumber": f"A{zlib.crc32(account.encode()) % 10**8:08d}",
            "amountCharged": {
                "value": amount,
                "currencyCode": "USD",
                "exchangeRate": Decimal("1.0"),
                "fee": Decimal("0.00"),
                "total": amount,
            },
            "denomination": {"value": amount, "currencyCode": "USD"},
            "rewardName": item.reward_name,
            "sendEmail": body.get("sendEmail", method == "EMAIL"),
            "deliveryMethod": method,
            "createdAt": iso(created),
            "orderClientSource": "API",
            "reward": self._reward(item, seq, created, body.get("expirationDate")),
        }
        return _Stored(wire, ts, account)

    @staticmethod
    def _reward(item: CatalogItem, seq: int, created: datetime, expiration: Any) -> dict[str, Any]:
        token = zlib.crc32(f"{seq}".encode()) % 10**8
        if item.kind == "promo_link":
            url = f"https://sandbox.rewardlink.example/r/{seq:06d}{token:08d}"
            expires = expiration or iso(created + timedelta(days=365))
            creds = [
                ("redemptionUrl", url, "url", "redemptionUrl"),
                ("expirationDate", expires, "date", "expirationDate"),
            ]
            instructions = "Open the link to choose your reward."
        else:
            creds = [
                ("Claim Code", f"SBX{token:08d}{seq:05d}", "text", "cardNumber"),
                ("PIN", f"{(token * 7) % 10**4:04d}", "text", "cardPin"),
            ]
            instructions = "Enter the claim code and PIN at checkout."
        return {
            "credentials": {label: value for label, value, _, _ in creds},
            "credentialList": [
                {"label": label, "value": value, "type": kind, "credentialType": ctype}
                for label, value, kind, ctype in creds
            ],
            "redemptionInstructions": instructions,
        }

    def _status(self, stored: _Stored, now: float) -> str:
        if now < stored.ts + self.pending_for:
            return "PENDING"
        return stored.outcome

    def _view(self, stored: _Stored, now: float, *, listing: bool = False) -> dict[str, Any]:
        status = self._status(stored, now)
        view = {**stored.wire, "status": status, "orderStatus": status, "lineItemStatus": status}
        if listing:
            view.pop("reward", None)
        return view

    # --- routes ---------------------------------------------------------------------------

    async def _create_order(self, request: web.Request) -> web.Response:
        body = _CURRENT.get().json
        if body is _MALFORMED or not isinstance(body, dict):
            return self.error(request, "400.001")
        problems = check_order(body)
        if problems:
            return self.error(request, "400.004", errors=problems)
        ext = body.get("externalRefID")
        if ext is not None:
            existing = self._by_ext.get(ext)
            if existing is not None:
                stored = self._orders[existing]
                return self.respond(self._view(stored, self.clock.now().timestamp()), 200)
            if ext in self.in_process:
                return self.error(request, "409.002")
        account = body["accountIdentifier"]
        if account in self._frozen:
            return self.error(
                request,
                "404.142",
                status=422,
                errors=[{"code": 422001, "i18nKey": "404.142", "message": MESSAGES["404.142"]}],
            )
        amount = Decimal(body["amount"])
        balance = self._balances.get(account)
        if balance is not None and balance < amount:
            return self.error(request, "402.001", account)
        stored = self._build(body, self.clock.now().timestamp())
        if self._fail_next:
            self._fail_next -= 1
            stored.outcome = "FAILED"
        elif balance is not None:
            self._balances[account] = balance - amount
        self._store(stored)
        return self.respond(self._view(stored, stored.ts), 201)

    async def _get_order(self, request: web.Request) -> web.Response:
        stored = self._orders.get(request.match_info["id"])
        if stored is None:
            return self.error(request, "404.002")
        return self.respond(self._view(stored, self.clock.now().timestamp()))

    async def _get_line_item(self, request: web.Request) -> web.Response:
        oid = self._by_line.get(request.match_info["id"])
        if oid is None:
            return self.error(request, "404.003")
        stored = self._orders[oid]
        view = self._view(stored, self.clock.now().timestamp())
        expiration = next(
            (
                c["value"]
                for c in view["reward"]["credentialList"]
                if c["credentialType"] == "expirationDate"
            ),
            None,
        )
        return self.respond(
            view
            | {
                "lineNumber": 1,
                "orderSource": "RA",
                "emailStatus": "DELIVERED" if view["deliveryMethod"] == "EMAIL" else None,
                "amountIssued": view["denomination"],
                "dateIssued": view["createdAt"],
                "expirationDate": expiration,
                "etid": view.get("etid"),
            }
        )

    async def _list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            per = int(q.get("elementsPerBlock", "10"))
            page = int(q.get("page", "0"))
            start = _parse_time(q["startDate"]) if "startDate" in q else None
            end = _parse_time(q["endDate"]) if "endDate" in q else None
            low = Decimal(q["minAmount"]) if "minAmount" in q else None
            high = Decimal(q["maxAmount"]) if "maxAmount" in q else None
            if per < 1 or page < 0 or not all(x is None or x.is_finite() for x in (low, high)):
                raise ValueError
        except (ValueError, ArithmeticError):
            return self.error(request, "400.002", request.query_string)
        if per > 100:
            return self.error(request, "422.042")
        if (
            self.max_range_days is not None
            and start is not None
            and end is not None
            and end - start > timedelta(days=self.max_range_days)
        ):
            return self.error(request, "422.043", self.max_range_days)
        if _CURRENT.get().fault == "repeat-page":
            page = 0
        if page * per + per > self.max_window:
            return self.error(request, "400.021", self.max_window)
        now = self.clock.now().timestamp()
        found = self._query(q, start, end, low, high, now)
        block = found[page * per : page * per + per]
        return self.respond(
            {
                "page": {
                    "number": page,
                    "elementsPerBlock": per,
                    "resultCount": len(block),
                    "totalCount": len(found),
                },
                "orders": [self._view(s, now, listing=True) for s in block],
            }
        )

    def _query(
        self,
        q: Any,
        start: datetime | None,
        end: datetime | None,
        low: Decimal | None,
        high: Decimal | None,
        now: float,
    ) -> list[_Stored]:
        filters = sorted((k, v) for k, v in q.items() if k not in ("page", "elementsPerBlock"))
        dynamic = self.pending_for > 0 and any(k in STATUS_FILTERS for k, _ in filters)
        key = (self._version, *filters)
        if not dynamic and key in self._cache:
            return self._cache[key]
        lo = 0 if end is None else bisect.bisect_left(self._index, (-end.timestamp(), ""))
        hi = (
            len(self._index)
            if start is None
            else bisect.bisect_right(self._index, (-start.timestamp(), "\uffff"))
        )
        exact = [(path, v) for k, v in filters if (path := LIST_FILTERS.get(k)) is not None]
        statuses = [v for k, v in filters if k in STATUS_FILTERS]
        orders = self._orders
        found = []
        for _, oid in self._index[lo:hi]:
            s = orders[oid]
            if exact and not all(_text(_dig(s.wire, p)) == v for p, v in exact):
                continue
            if low is not None or high is not None:
                amount = Decimal(s.wire["denomination"]["value"])
                if (low is not None and amount < low) or (high is not None and amount > high):
                    continue
            if statuses and any(self._status(s, now) != v for v in statuses):
                continue
            found.append(s)
        if not dynamic:
            if len(self._cache) > 16 or any(k[0] != self._version for k in self._cache):
                self._cache.clear()
            self._cache[key] = found
        return found

    async def _resend_order(self, request: web.Request) -> web.Response:
        oid = request.match_info["id"]
        return self._resend(request, self._orders.get(oid), line_item=False)

    async def _resend_line_item(self, request: web.Request) -> web.Response:
        oid = self._by_line.get(request.match_info["id"])
        return self._resend(request, self._orders.get(oid) if oid else None, line_item=True)

    def _resend(
        self, request: web.Request, stored: _Stored | None, *, line_item: bool
    ) -> web.Response:
        if stored is None:
            return self.error(request, "404.003" if line_item else "404.002")
        body = _CURRENT.get().json
        if body is _MALFORMED:
            return self.error(request, "400.001")
        problems = check_resend(body, line_item=line_item)
        if problems:
            return self.error(request, "400.004", errors=problems)
        body = body or {}
        order = stored.wire
        if order.get("deliveryMethod") in NOT_DELIVERED_BY_TANGO:  # (sendEmail=false: NONE)
            return self.error(request, "403.003")
        key, now = order["referenceLineItemID"], self.clock.monotonic()
        last = self._last_resend.get(key)
        if last is not None and now - last < self.resend_cooldown:
            return self.error(request, "403.005", self.resend_cooldown)
        self._last_resend[key] = now
        mobile = body.get("newMobileNumber" if line_item else "newMobile")
        answer: dict[str, Any] = {
            "id": next(self._resend_ids),
            "createdAt": iso(self.clock.now()),
            "email": body.get("newEmail") or _dig(order, ("recipient", "email")),
            "mobileNumber": mobile or _dig(order, ("recipient", "mobileNumber")),
        }
        if line_item:
            answer |= {
                "deliveryMethod": body.get("newDeliveryMethod") or order.get("deliveryMethod"),
                "reasonCode": body.get("reasonCode"),
                "otherReason": body.get("otherReason"),
            }
        answer = {k: v for k, v in answer.items() if v is not None}
        self.resends.append(
            {
                "kind": "lineItem" if line_item else "order",
                "target": key if line_item else order["referenceOrderID"],
                "request": body,
                "response": answer,
            }
        )
        return self.respond(answer, 201)

    async def _not_found(self, request: web.Request) -> web.Response:
        return self.error(request, "404.001")


_IRREGULAR = {
    "external_ref_id": "externalRefID",
    "reference_order_id": "referenceOrderID",
    "reference_line_item_id": "referenceLineItemID",
}


def _wire_name(name: str) -> str:
    if name in _IRREGULAR:
        return _IRREGULAR[name]
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)
