"""A small but faithful fake of Tango Card's RaaS v2 orders API, for end-to-end tests.

``FakeTango`` serves an ``aiohttp.web`` application on 127.0.0.1 at a free port::

    async with FakeTango(order_rate=1.0) as fake:
        ...  # point a client at fake.base_url; inspect fake.requests and fake.orders

It does not import ``tango_async``: it speaks the wire format of the reference docs in
/work/shared/reference (doc pages 000-003 and tangocard-openapi.json) and nothing else.

Order of processing of one request: record it; outside /raas/v2 -> 404; HTTP Basic auth
(401); for POST /orders with ``order_rate``, the rate check at arrival (429.001, Retry-After: 1;
every request that passes it, whatever happens next, counts as the last arrival); then the
next injected fault matching the route, if any; then the route itself.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web

PREFIX = "/raas/v2"
HTML_502 = "<html><body><h1>502 Bad Gateway</h1></body></html>"
# fmt: off
FAULTS = frozenset((
    "500", "502-html", "503", "429", "empty-500", "truncated-500", "404", "500-after-commit",
    "drop-after-commit", "drop-before", "slow", "409-in-process", "legacy-error-body", "redirect",
    "repeat-page",
))
# error-body faults -> i18nKey
CANNED = {"500": "500.001", "503": "503.001", "404": "404.001", "429": "429.001",
          "409-in-process": "409.002"}
# i18nKey -> message; the HTTP status is the key's first three digits.
MESSAGES = {
    "400.001": "Malformed JSON request: a JSON object is required",
    "400.002": "Invalid query parameters: {0}",
    "400.021": "Search request exceeds max result window of {0}",
    "401.001": "Full authentication is required to access this resource",
    "403.003": "Cannot resend an order placed with sendEmail=false or deliveryMethod=NONE",
    "403.005": "Cannot send more than once every {0:g} seconds",
    "404.001": "Resource not found",
    "404.002": "Order not found",
    "404.003": "Line item not found",
    "409.002": "An order with this externalRefID is still in process; retry after at least 2 s",
    "422.042": "elementsPerBlock must be less than or equal to 100",
    "422.043": "Order search period must be at most {0:g} days",
    "429.001": "Order rate limit {0:g} TPS threshold reached",
    "500.001": "An unexpected error occurred",
    "503.001": "Service temporarily unavailable",
}
# (field, required, full-match pattern, max length): CreateOrderCriteria and the resend bodies.
Rules = tuple[tuple[str, bool, str | None, int | None], ...]
ORDER_RULES: Rules = (
    ("customerIdentifier", True, r"[-a-zA-Z0-9]{5,100}", None),
    ("accountIdentifier", True, r"[-a-zA-Z0-9]{5,100}", None),
    ("utid", True, r"[uU][0-9]+", None),
    ("externalRefID", False, None, 100),
    ("etid", False, r"[eE][0-9]{6}", None),
    ("ptid", False, r"[pP][0-9]+", None),
    ("campaign", False, None, 1024),
    ("notes", False, None, 1024),
    ("deliveryMethod", False, "NONE|EMAIL|PHONE|ADDRESS|EMBEDDED|EMBEDDED_COMPONENT|WHATSAPP",
     None),
)
RESEND_RULES: Rules = (("newDeliveryMethod", False, "NONE|EMAIL|PHONE|WHATSAPP", None),)
LINE_ITEM_RESEND_RULES: Rules = (
    *RESEND_RULES,
    ("reasonCode", False,
     "NOT_RECEIVED|LOST_DELETED|DELIVERY_INFO|DELIVERY_METHOD|REMINDER|OTHER", None),
)
# CreateOrderCriteria fields echoed into the order (null when absent), and optional ones.
ECHOED = (
    "externalRefID", "customerIdentifier", "accountIdentifier", "utid", "sender", "recipient",
    "emailSubject", "message", "etid", "campaign", "notes", "purchaseOrderNumber",
)
OPTIONAL_ECHOED = ("ptid", "expirationDate")
REQUEST_FIELDS = frozenset((*ECHOED, *OPTIONAL_ECHOED, "amount", "deliveryMethod", "sendEmail"))
# GET /orders query parameter -> path into the stored order (exact match of the text).
LIST_FILTERS: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in (
        "accountIdentifier", "customerIdentifier", "externalRefID", "utid", "ptid", "rewardName",
        "status", "orderStatus", "lineItemStatus", "campaign", "notes", "purchaseOrderNumber",
        "deliveryMethod", "sendEmail",
    )},
    "currencyCode": ("denomination", "currencyCode"),
    **{f"{who}{part[:1].upper()}{part[1:]}": (who, part) for who in ("sender", "recipient")
       for part in ("firstName", "lastName", "email", "mobileNumber")},
}
# fmt: on
IRREGULAR_WIRE_NAMES = {
    "external_ref_id": "externalRefID",
    "reference_order_id": "referenceOrderID",
    "reference_line_item_id": "referenceLineItemID",
}
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2}))?")
_ENCODER = msgspec.json.Encoder(decimal_format="number")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    """One request as received, and the status answered (0: the connection was dropped)."""

    method: str
    path: str  # the full request path, e.g. "/raas/v2/orders"
    query: dict[str, str]
    json: Any | None  # the body parsed with floats as Decimal; None if empty or not JSON
    headers: dict[str, str]
    arrived: float  # FakeTango.clock() (time.monotonic by default) when the request arrived
    status: int = 0
    body: bytes = b""  # the raw body, to check the exact wire text
    fault: str | None = None  # the injected fault applied to it, if any


_CURRENT: ContextVar[Recorded] = ContextVar("fake_tango_request")  # set per request


@dataclass
class _Fault:
    method: str
    segments: list[str]
    name: str
    remaining: int
    opts: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str, rel: str) -> bool:
        segs = rel.strip("/").split("/")
        return (
            method == self.method
            and len(segs) == len(self.segments)
            and all(p in ("*", s) for p, s in zip(self.segments, segs, strict=True))
        )


class _Drop(Exception):
    """Raised to close the connection without answering."""


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, as Tango writes createdAt."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _loads(raw: bytes) -> Any | None:
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError:
        return None


def _rel(path: str) -> str | None:
    """The path relative to /raas/v2, or None outside it."""
    if path == PREFIX or path.startswith(PREFIX + "/"):
        return path[len(PREFIX) :] or "/"
    return None


def _parse_time(value: str) -> datetime:
    """RFC 3339 date (= its midnight UTC) or date-time with Z or offset; ValueError otherwise."""
    if not _RFC3339.fullmatch(value):
        raise ValueError(value)
    parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _text(value: Any) -> str | None:
    """A JSON value as it reads in a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def _wire_name(name: str) -> str:
    head, *rest = name.split("_")
    return IRREGULAR_WIRE_NAMES.get(name, head + "".join(p[:1].upper() + p[1:] for p in rest))


def _problem(
    key: str, path: str, message: str, value: Any, constraint: Any = None
) -> dict[str, Any]:
    return {
        "code": int(key.replace(".", "")),
        "i18nKey": key,
        "message": message,
        "path": path,
        "invalidValue": _text(value),
        "constraint": _text(constraint),
    }


def _validate(body: dict[str, Any], rules: Rules) -> list[dict[str, Any]]:
    """Bean-validation-like problems (errors[] items) of ``body`` against ``rules``."""
    problems = []
    for name, required, pattern, max_len in rules:
        value = body.get(name)
        if value is None:
            if required:
                problems.append(_problem("400.003", name, f"{name} must not be null", value))
        elif not isinstance(value, str):
            problems.append(_problem("400.004", name, f"{name} must be a string", value))
        elif pattern is not None and not re.fullmatch(pattern, value):
            message = f'{name} must match "^({pattern})$"'
            problems.append(_problem("400.004", name, message, value, pattern))
        elif max_len is not None and len(value) > max_len:
            message = f"{name} size must be between 0 and {max_len}"
            problems.append(_problem("400.005", name, message, value, max_len))
    return problems


def _validate_order(body: dict[str, Any]) -> list[dict[str, Any]]:
    problems = _validate(body, ORDER_RULES)
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal) or amount < 0:
        message = "amount must be a number greater than or equal to 0"
        problems.append(_problem("400.006", "amount", message, amount, 0))
    if "sendEmail" in body and not isinstance(body["sendEmail"], bool):
        message = "sendEmail must be a boolean"
        problems.append(_problem("400.004", "sendEmail", message, body["sendEmail"]))
    return problems


class FakeTango:
    """The fake server; use as ``async with FakeTango(...) as fake`` (see the module doc)."""

    def __init__(
        self,
        *,
        platform_name: str = "fakeplatform",
        platform_key: str = "fake-key-123",
        order_rate: float | None = None,
        resend_cooldown: float = 30.0,
        max_window: int = 10_000,
        max_range_days: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.platform_name = platform_name
        self.platform_key = platform_key
        self.order_rate = order_rate
        self.resend_cooldown = resend_cooldown
        self.max_window = max_window
        self.max_range_days = max_range_days
        self.clock = clock
        self.base_url = ""  # set on start: "http://127.0.0.1:PORT/raas/v2"
        self.requests: list[Recorded] = []
        self.orders: dict[str, dict[str, Any]] = {}  # referenceOrderID -> order (wire JSON)
        # one {"kind", "target", "request", "response"} per accepted resend
        self.resends: list[dict[str, Any]] = []
        self.in_process: set[str] = set()  # externalRefIDs for which POST /orders answers 409.002
        self._faults: list[_Fault] = []
        self._last_order_arrival: float | None = None
        self._last_resend: dict[str, float] = {}  # referenceOrderID -> clock() of the last resend
        self._seq = itertools.count(1)
        self._resend_ids = itertools.count(1001)
        self._seed_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeTango:
        app = web.Application(middlewares=[self._middleware])
        add = app.router.add_route
        add("GET", PREFIX + "/orders", self._list_orders)
        add("POST", PREFIX + "/orders", self._create_order)
        add("GET", PREFIX + "/orders/{id}", self._get_order)
        add("POST", PREFIX + "/orders/{id}/resends", self._resend_order)
        add("GET", PREFIX + "/lineItems/{id}", self._get_line_item)
        add("POST", PREFIX + "/lineItems/{id}/resends", self._resend_line_item)
        add("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}{PREFIX}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- test helpers ---------------------------------------------------------------------------

    def inject(self, route: str, fault: str, *, times: int = 1, **opts: Any) -> None:
        """Answer the next ``times`` requests matching ``route`` (e.g. "POST /orders/*/resends",
        ``*`` = one path segment) with ``fault``. Faults queue up and are consumed in order.

        Options: retry_after ("429"), delay and hold ("slow"; hold=True keeps the body's
        externalRefID in process, i.e. 409.002, during the delay), status ("legacy-error-body",
        "redirect"), location ("redirect"), i18nKey and message (error-body faults).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        if (fault == "slow" and "delay" not in opts) or (
            fault == "redirect" and "location" not in opts
        ):
            raise ValueError(f"fault {fault!r} needs an option")
        method, _, path = route.partition(" ")
        segments = (_rel(path) or path).strip("/").split("/")
        self._faults.append(_Fault(method.upper(), segments, fault, times, opts))

    def seed_orders(
        self, count: int, *, start: datetime, step: timedelta, **fields: Any
    ) -> list[str]:
        """Store ``count`` orders created at ``start + i*step``; return their referenceOrderIDs.

        ``fields`` (wire or snake_case names; nested values in wire form) override the defaults:
        request fields (amount, customerIdentifier, recipient, ...) go through order building,
        any other (status, rewardName, ...) overwrites the built order.
        """
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        wire = {_wire_name(k): v for k, v in fields.items()}
        ids = []
        for i in range(count):
            body: dict[str, Any] = {
                "externalRefID": f"seed-{next(self._seed_ids)}",
                "customerIdentifier": "customer-1",
                "accountIdentifier": "account-1",
                "utid": "U561593",
                "amount": Decimal("10.00"),
                "deliveryMethod": "EMAIL",
                "sendEmail": True,
                "recipient": {"email": "recipient@example.com", "firstName": "Rita"},
            }
            body |= {k: v for k, v in wire.items() if k in REQUEST_FIELDS}
            if isinstance(body["amount"], float | str):
                body["amount"] = Decimal(str(body["amount"]))
            order = self._build_order(body, start + i * step)
            order |= {k: v for k, v in wire.items() if k not in REQUEST_FIELDS}
            self.orders[order["referenceOrderID"]] = order
            ids.append(order["referenceOrderID"])
        return ids

    def arrivals(self, method: str, path_prefix: str, *, exact: bool = False) -> list[float]:
        """Arrival times of the requests with ``method`` whose path (full, or relative to
        /raas/v2) starts with ``path_prefix`` (or equals it, with ``exact``): note that
        ``arrivals("POST", "/orders")`` includes order resends; add ``exact=True`` to exclude them.
        """

        def hit(path: str | None) -> bool:
            if path is None:
                return False
            return path == path_prefix or (not exact and path.startswith(path_prefix))

        return [
            r.arrived
            for r in self.requests
            if r.method == method.upper() and (hit(r.path) or hit(_rel(r.path)))
        ]

    # -- plumbing -------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        rec = Recorded(
            request.method,
            request.path,
            dict(request.query),
            _loads(raw) if raw else None,
            dict(request.headers),
            self.clock(),
            body=raw,
        )
        self.requests.append(rec)
        _CURRENT.set(rec)
        try:
            response = await self._dispatch(request, handler, rec)
        except _Drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never sent: the transport is closed
        rec.status = response.status
        return response

    async def _dispatch(
        self, request: web.Request, handler: Handler, rec: Recorded
    ) -> web.StreamResponse:
        rel = _rel(request.path)
        if rel is None:
            return await handler(request)
        if not self._authorized(request):
            return self.error(
                request, "401.001", headers={"WWW-Authenticate": 'Basic realm="RaaS"'}
            )
        if self.order_rate and request.method == "POST" and rel == "/orders":
            last = self._last_order_arrival
            if last is not None and rec.arrived - last < 1 / self.order_rate:
                return self.error(request, "429.001", self.order_rate, headers={"Retry-After": "1"})
            self._last_order_arrival = rec.arrived
        fault = next((f for f in self._faults if f.matches(request.method, rel)), None)
        if fault is None:
            return await handler(request)
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.remove(fault)
        rec.fault = fault.name
        return await self._apply(fault.name, fault.opts, request, handler, rec)

    async def _apply(
        self, name: str, opts: dict[str, Any], request: web.Request, handler: Handler, rec: Recorded
    ) -> web.StreamResponse:
        key = CANNED.get(name)
        if key is not None:
            retry = {"Retry-After": str(opts.get("retry_after", 1))} if name == "429" else None
            message = opts.get("message", MESSAGES[key].format(self.order_rate or 1))
            return self.error(
                request,
                opts.get("i18nKey", key),
                message=message,
                headers=retry,
                status=int(key[:3]),
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
        if name == "legacy-error-body":
            status = opts.get("status", 400)
            message = opts.get("message", HTTPStatus(status).phrase)
            body = self.error_body(
                request.path, status, opts.get("i18nKey", f"{status}.001"), message, legacy=True
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
            sent = rec.json if opts.get("hold") and isinstance(rec.json, dict) else {}
            ext = sent.get("externalRefID")
            if ext is not None:
                self.in_process.add(ext)
            try:
                await asyncio.sleep(opts["delay"])
            finally:
                if ext is not None:
                    self.in_process.discard(ext)
            return await handler(request)
        # "500-after-commit" and "drop-after-commit": process fully, then fail
        await handler(request)
        if name == "drop-after-commit":
            raise _Drop
        return self.error(request, "500.001")

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            credentials = base64.b64decode(encoded, validate=True).decode()
        except ValueError:  # binascii.Error and UnicodeDecodeError included
            return False
        expected = f"{self.platform_name}:{self.platform_key}"
        return scheme.lower() == "basic" and credentials == expected

    @staticmethod
    def respond(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """A JSON response; Decimals are written as JSON numbers with their exact text."""
        body = _ENCODER.encode(obj)
        return web.Response(
            status=status, body=body, headers=headers, content_type="application/json"
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
        """Tango's error body: with errors[] or (legacy) with a top-level i18nKey and message."""
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
        """The error answer for i18nKey ``key``: status its first three digits unless given,
        message MESSAGES[key] formatted with ``args`` unless given."""
        status = status or int(key[:3])
        if message is None:
            message = MESSAGES.get(key, HTTPStatus(status).phrase).format(*args)
        body = self.error_body(request.path, status, key, message, errors=errors)
        return self.respond(body, status, headers)

    # -- orders ---------------------------------------------------------------------------------

    async def _create_order(self, request: web.Request) -> web.Response:
        body = _CURRENT.get().json
        if not isinstance(body, dict):
            return self.error(request, "400.001")
        problems = _validate_order(body)
        if problems:
            return self.error(request, "400.004", errors=problems)
        ext = body.get("externalRefID")
        if ext is not None:
            existing = next(
                (o for o in self.orders.values() if o.get("externalRefID") == ext), None
            )
            if existing is not None:
                return self.respond(existing, 200)
            if ext in self.in_process:
                return self.error(request, "409.002")
        order = self._build_order(body, datetime.now(UTC))
        self.orders[order["referenceOrderID"]] = order
        return self.respond(order, 201)

    def _build_order(self, body: dict[str, Any], created: datetime) -> dict[str, Any]:
        seq = next(self._seq)
        amount = body["amount"]
        method = body.get("deliveryMethod")
        if method is None:  # the API derives it: sendEmail=false -> NONE, an address -> ADDRESS
            address = _dig(body, ("recipient", "address"))
            method = "NONE" if body.get("sendEmail") is False else "ADDRESS" if address else "EMAIL"
        account_number = zlib.crc32(str(body.get("accountIdentifier")).encode()) % 10**8
        code, url = f"FAKE-CODE-{seq:04d}", f"https://fake.example/redeem/{seq:06d}"
        day = created.astimezone(UTC).strftime("%y%m%d")
        return {
            "referenceOrderID": f"RA{day}-{seq:05d}-{seq * 37 % 100:02d}",
            "referenceLineItemID": f"U{seq:09d}",
            **{k: body.get(k) for k in ECHOED},
            **{k: body[k] for k in OPTIONAL_ECHOED if k in body},
            "accountNumber": f"A{account_number:08d}",
            "amountCharged": {
                "value": amount,
                "currencyCode": "USD",
                "exchangeRate": Decimal("1.0"),
                "fee": Decimal("0.00"),
                "total": amount,
            },
            "denomination": {"value": amount, "currencyCode": "USD"},
            "rewardName": "Amazon.com Gift Card",
            "sendEmail": body.get("sendEmail", method == "EMAIL"),
            "deliveryMethod": method,
            "status": "COMPLETE",
            "orderStatus": "COMPLETE",
            "lineItemStatus": "COMPLETE",
            "createdAt": iso(created),
            "orderClientSource": "API",
            "reward": {
                "credentials": {"Claim Code": code, "Redemption URL": url},
                "credentialList": [
                    {
                        "label": "Claim Code",
                        "value": code,
                        "type": "text",
                        "credentialType": "cardNumber",
                    },
                    {
                        "label": "Redemption URL",
                        "value": url,
                        "type": "url",
                        "credentialType": "redemptionUrl",
                    },
                ],
                "redemptionInstructions": "<p>Enter the claim code at https://fake.example/redeem.</p>",
            },
            "someFutureField": {"x": 1},
        }

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        return self.error(request, "404.002") if order is None else self.respond(order)

    async def _list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            per, page = int(q.get("elementsPerBlock", "10")), int(q.get("page", "0"))
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
        span = end - start if start is not None and end is not None else None
        if (
            self.max_range_days is not None
            and span is not None
            and span > timedelta(days=self.max_range_days)
        ):
            return self.error(request, "422.043", self.max_range_days)
        if _CURRENT.get().fault == "repeat-page":
            page = 0
        if page * per + per > self.max_window:
            return self.error(request, "400.021", self.max_window)

        def keep(created: datetime, order: dict[str, Any]) -> bool:
            value = _dig(order, ("denomination", "value"))
            amount = Decimal(value) if isinstance(value, int | Decimal) else None
            return (
                (start is None or created >= start)
                and (end is None or created <= end)
                and (low is None or (amount is not None and amount >= low))
                and (high is None or (amount is not None and amount <= high))
                and all(
                    _text(_dig(order, path)) == q[k] for k, path in LIST_FILTERS.items() if k in q
                )
            )

        dated = [(_parse_time(o["createdAt"]), o) for o in self.orders.values()]
        dated.sort(key=lambda pair: pair[1]["referenceOrderID"])
        dated.sort(key=lambda pair: pair[0], reverse=True)  # stable: createdAt desc, then the id
        found = [order for created, order in dated if keep(created, order)]
        block = found[page * per : page * per + per]
        page_view = {
            "number": page,
            "elementsPerBlock": per,
            "resultCount": len(block),
            "totalCount": len(found),
        }
        items = [{k: v for k, v in o.items() if k != "reward"} for o in block]  # no credentials
        return self.respond({"page": page_view, "orders": items})

    # -- line items and resends -----------------------------------------------------------------

    def _order_by_line_item(self, line_item_id: str) -> dict[str, Any] | None:
        orders = self.orders.values()
        return next((o for o in orders if o.get("referenceLineItemID") == line_item_id), None)

    async def _get_line_item(self, request: web.Request) -> web.Response:
        order = self._order_by_line_item(request.match_info["id"])
        if order is None:
            return self.error(request, "404.003")
        extra = {
            "lineNumber": 1,
            "amountIssued": order["denomination"],
            "dateIssued": order["createdAt"],
        }
        return self.respond(order | extra)

    async def _resend_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        return self._resend(request, order, line_item=False)

    async def _resend_line_item(self, request: web.Request) -> web.Response:
        order = self._order_by_line_item(request.match_info["id"])
        return self._resend(request, order, line_item=True)

    def _resend(
        self, request: web.Request, order: dict[str, Any] | None, *, line_item: bool
    ) -> web.Response:
        if order is None:
            return self.error(request, "404.003" if line_item else "404.002")
        rec = _CURRENT.get()
        body: Any = rec.json if rec.body.strip() else {}
        if not isinstance(body, dict):
            return self.error(request, "400.001")
        problems = _validate(body, LINE_ITEM_RESEND_RULES if line_item else RESEND_RULES)
        if line_item and body.get("reasonCode") == "OTHER" and not body.get("otherReason"):
            message = "otherReason must not be empty when reasonCode is OTHER"
            problems.append(_problem("400.003", "otherReason", message, body.get("otherReason")))
        if problems:
            return self.error(request, "400.004", errors=problems)
        if order.get("deliveryMethod") == "NONE" or order.get("sendEmail") is False:
            return self.error(request, "403.003")
        key, now = order["referenceOrderID"], self.clock()  # one cooldown per order / line item
        last = self._last_resend.get(key)
        if last is not None and now - last < self.resend_cooldown:
            return self.error(request, "403.005", self.resend_cooldown)
        self._last_resend[key] = now
        mobile = body.get("newMobileNumber" if line_item else "newMobile")
        answer: dict[str, Any] = {
            "id": next(self._resend_ids),
            "createdAt": iso(datetime.now(UTC)),
            "email": body.get("newEmail") or _dig(order, ("recipient", "email")),
            "mobileNumber": mobile or _dig(order, ("recipient", "mobileNumber")),
        }
        if line_item:
            answer |= {
                "deliveryMethod": body.get("newDeliveryMethod") or order.get("deliveryMethod"),
                "reasonCode": body.get("reasonCode"),
                "otherReason": body.get("otherReason"),
            }
        target = order["referenceLineItemID"] if line_item else key
        kind = "lineItem" if line_item else "order"
        self.resends.append({"kind": kind, "target": target, "request": body, "response": answer})
        return self.respond(answer, 201)

    async def _not_found(self, request: web.Request) -> web.Response:
        return self.error(request, "404.001")
