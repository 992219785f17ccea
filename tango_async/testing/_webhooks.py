"""The sandbox's webhooks: the event catalogue, the subscriptions, the events each one
received, and the routes under /raas/v2/webhooks.

Event types and the categories they are in (Tango's docs name ITEM, ACCOUNT, REWARD,
ORDER, PLATFORM and FINANCIAL; ConnectivityTest, which has no category there, is put in
PLATFORM): :data:`EVENT_CATEGORIES`. A subscription receives the event types it names
in ``eventTypes`` and every type of each category in ``categories``, except that a
category some of whose types are named in ``eventTypes`` gives only those.

An event is published (:meth:`Webhooks.publish`) to every subscription that receives its
type, was created by the time it happened and expires after it: the subscription's next
revision (1, 2, ...), stored (GET .../events, replays) and queued for delivery
(``_delivery``), where a webhook fault (``Sandbox.inject_webhook``) may shape it.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from ._clock import SandboxClock
from ._delivery import Deliverer, Job, WebhookFaultPlan, parse_certificate
from ._errors import ErrorWriter
from ._recorded import current
from ._routes import PREFIX, parse_time
from ._rules import problem
from ._wire import MALFORMED, iso, respond

__all__ = [
    "EVENT_CATEGORIES",
    "EVENT_TYPES",
    "TEST_NAMES",
    "Subscription",
    "WebhookHost",
    "Webhooks",
]

# category -> its event types, in the order GET /webhooks/eventtypes lists them
EVENT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "ACCOUNT": ("AccountStatus", "LowBalance", "Transaction"),
    "FINANCIAL": ("ExchangeRatesStatus",),
    "ITEM": ("ItemAvailability",),
    "ORDER": ("AsyncOrderStatus", "LineItemDeliveryStatus"),
    "PLATFORM": ("ConnectivityTest", "CredentialStatus"),
    "REWARD": ("RewardStatus",),
}
# event type -> its category
EVENT_TYPES: dict[str, str] = {t: c for c, types in EVENT_CATEGORIES.items() for t in types}
# the test events of POST /webhooks/{id}/tests/{testName}, as the spec's enum lists them
TEST_NAMES = (
    "ConnectivityTest", "ItemAvailability", "RewardStatus", "Transaction", "LowBalance",
    "AccountStatus", "CredentialStatus", "LineItemDeliveryStatus", "AsyncOrderStatus",
    "ExchangeRatesStatus",
)  # fmt: skip
METHODS = ("HMAC", "X509", "NONE")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_RESERVED = frozenset(
    {"content-length", "content-type", "host", "transfer-encoding", "x-signed-payload"}
)
_MAX_RESULTS = 200
_DEFAULT_RESULTS = 10
_MAX_URL = 2048

T = TypeVar("T")


class WebhookHost(Protocol):
    """What the webhook routes read from their sandbox at each request."""

    clock: SandboxClock
    webhook_ttl: float


@dataclass(eq=False)
class Subscription:
    """One webhook subscription: its settings, times (epoch seconds of the sandbox
    clock) and the events it received (their envelopes, by revision)."""

    webhook_id: str
    url: str
    headers: list[dict[str, str]]
    categories: list[str]
    event_types: list[str]
    method: str
    hmac_key: str | None
    certificate: str | None
    created_at: float
    updated_at: float
    expires_at: float
    seq: int
    events: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:  # no key, no header values
        return (
            f"Subscription({self.webhook_id}, method={self.method}, "
            f"event_types={sorted(self.receives())})"
        )

    def receives(self) -> set[str]:
        """The event types this subscription receives."""
        named = set(self.event_types)
        out = set(named)
        for category in self.categories:
            types = EVENT_CATEGORIES.get(category, ())
            if not named & set(types):
                out.update(types)
        return out

    def live(self, at: float) -> bool:
        """Created by ``at`` and not expired then."""
        return self.created_at <= at < self.expires_at

    def view(self) -> dict[str, Any]:
        """As GET /webhooks/{webhookId} shows it (GetWebhookResponseView)."""
        return {
            "webhookId": self.webhook_id,
            "url": self.url,
            "headers": [dict(h) for h in self.headers],
            "categories": list(self.categories),
            "eventTypes": list(self.event_types),
            "signingCertificate": self.certificate,
            "hmacSharedSecretKey": self.hmac_key,
            "createdAt": iso(_dt(self.created_at)),
            "updatedAt": iso(_dt(self.updated_at)),
            "expiresAt": iso(_dt(self.expires_at)),
            "payloadVerificationMethod": self.method,
        }


class _BadQuery(Exception):
    """A query parameter that cannot be read: 400.002."""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def _uncursor(kind: str, text: str, name: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        tag, _, key = raw.partition(":")
        if tag != kind:
            raise ValueError(raw)
        return int(key)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _BadQuery(f"{name}={text}") from None


def _page(
    items: Sequence[T], key: Callable[[T], int], q: Mapping[str, str], kind: str
) -> tuple[list[T], dict[str, Any]]:
    """A cursor page of ``items`` (sorted by ``key``, ascending) and its paging fields."""
    per = _DEFAULT_RESULTS
    if "maxResults" in q:
        try:
            per = int(q["maxResults"])
        except ValueError:
            raise _BadQuery(f"maxResults={q['maxResults']}") from None
        if not 1 <= per <= _MAX_RESULTS:
            raise _BadQuery(f"maxResults={q['maxResults']} (1 to {_MAX_RESULTS})")
    after, before = q.get("nextCursor"), q.get("prevCursor")
    if after and before:
        raise _BadQuery("nextCursor and prevCursor together")
    if after:
        k = _uncursor(kind, after, "nextCursor")
        block = [i for i in items if key(i) > k][:per]
    elif before:
        k = _uncursor(kind, before, "prevCursor")
        earlier = [i for i in items if key(i) < k]
        block = earlier[-per:]
    else:
        block = list(items[:per])
    prev = bool(block) and any(key(i) < key(block[0]) for i in items)
    nxt = bool(block) and any(key(i) > key(block[-1]) for i in items)
    return block, {
        "numberOfElements": len(block),
        "maxResults": per,
        "prevCursor": _cursor(kind, key(block[0])) if prev else None,
        "nextCursor": _cursor(kind, key(block[-1])) if nxt else None,
        "prevPageAvailable": prev,
        "nextPageAvailable": nxt,
    }


def _names(q: Any, name: str) -> list[str]:
    return [p for v in q.getall(name, []) for p in v.split(",") if p]


class Webhooks:
    """The subscriptions and their events, delivered by ``deliverer``; ``faults`` shapes
    the deliveries of newly published events."""

    def __init__(
        self,
        host: WebhookHost,
        errors: ErrorWriter,
        deliverer: Deliverer,
        faults: WebhookFaultPlan,
    ) -> None:
        self._host = host
        self._errors = errors
        self._deliverer = deliverer
        self._faults = faults
        self.subscriptions: dict[str, Subscription] = {}
        self._seq = 0

    def get(self, webhook_id: str) -> Subscription | None:
        return self.subscriptions.get(webhook_id)

    def _now(self) -> float:
        return self._host.clock.now().timestamp()

    # --- events ---------------------------------------------------------------------------

    def publish(self, event_type: str, data: dict[str, Any], occurred: float) -> int:
        """Give the event to every subscription that receives it and was live when it
        ``occurred``; return to how many."""
        count = 0
        for sub in self.subscriptions.values():
            if event_type in sub.receives() and sub.live(occurred):
                self._add_event(sub, event_type, data, occurred)
                count += 1
        return count

    def _add_event(
        self, sub: Subscription, event_type: str, data: dict[str, Any], occurred: float
    ) -> None:
        envelope = {
            "eventId": str(uuid.uuid4()),
            "revision": len(sub.events) + 1,
            "eventType": event_type,
            "categories": [EVENT_TYPES[event_type]],
            "eventOccurredAt": iso(_dt(occurred)),
            "eventData": dict(data),
        }
        sub.events.append(envelope)
        fault = self._faults.take(event_type, sub.webhook_id)
        self._deliverer.enqueue(Job(sub.webhook_id, envelope, fault))

    def _test_data(self, name: str, sub: Subscription) -> dict[str, Any]:
        account = "sandbox-account"
        data: dict[str, dict[str, Any]] = {
            "ConnectivityTest": {"status": "OK", "webhookId": sub.webhook_id},
            "ItemAvailability": {"utid": "U561593", "status": "AVAILABLE"},
            "RewardStatus": {
                "referenceLineItemId": "U000000000",
                "externalRefID": "sandbox-test",
                "action": "FREEZE",
                "reasonCode": "VERIFY_ORDER",
                "reason": "The order needs verification",
                "status": "FROZEN",
                "type": "gift_card",
            },
            "Transaction": {
                "customerIdentifier": "sandbox-customer",
                "accountIdentifier": account,
                "transactionType": "DEPOSIT",
                "transactionId": 1,
                "fundingMethod": "CREDIT_CARD",
                "fundingType": "DEPOSIT",
                "currency": "USD",
                "amount": 100,
                "note": "Sandbox test event",
            },
            "LowBalance": {
                "accountIdentifier": account,
                "balance": 10,
                "balanceThreshold": 100,
                "balanceAlertIdentifier": "sandbox-alert",
            },
            "AccountStatus": {"accountIdentifier": account, "status": "ACTIVE"},
            "CredentialStatus": {
                "platformName": "sandbox-platform",
                "credentialName": "sandbox-credential",
                "credentialType": "API_KEY",
                "status": "ACTIVE",
                "lastUpdatedBy": "sandbox",
            },
            "LineItemDeliveryStatus": {"referenceLineItemId": "U000000000", "status": "DELIVERED"},
            "AsyncOrderStatus": {
                "externalRefID": "sandbox-test",
                "status": "COMPLETE",
                "totalLineItems": 1,
                "failedLineItems": 0,
                "successfulLineItems": 1,
                "referenceOrderID": "RA000000-00000-00",
                "accountIdentifier": account,
                "customerIdentifier": "sandbox-customer",
            },
            "ExchangeRatesStatus": {"status": "PROCESSED"},
        }
        return data[name]

    # --- routes ---------------------------------------------------------------------------

    def add_to(self, app: web.Application) -> None:
        """Register the webhook routes on ``app`` (the literal paths first)."""
        add = app.router.add_route
        base = PREFIX + "/webhooks"
        add("POST", base, self.create)
        add("GET", base, self.list_webhooks)
        add("GET", base + "/eventtypes", self.event_types)
        add("GET", base + "/{webhookId}", self.get_one)
        add("PATCH", base + "/{webhookId}", self.update)
        add("DELETE", base + "/{webhookId}", self.delete)
        add("POST", base + "/{webhookId}/renew", self.renew)
        add("POST", base + "/{webhookId}/replay", self.replay)
        add("GET", base + "/{webhookId}/events", self.events)
        add("POST", base + "/{webhookId}/tests", self.test_all)
        add("POST", base + "/{webhookId}/tests/{testName}", self.test_one)

    def _error(self, request: web.Request, key: str, *args: Any, **kwargs: Any) -> web.Response:
        return self._errors.response(request.path, key, *args, **kwargs)

    def _find(self, request: web.Request) -> Subscription | web.Response:
        text = request.match_info["webhookId"]
        try:
            webhook_id = str(uuid.UUID(text))
        except ValueError:
            return self._error(request, "400.030")
        if len(text) != 36:
            return self._error(request, "400.030")
        sub = self.subscriptions.get(webhook_id)
        return self._error(request, "404.030") if sub is None else sub

    def _check(
        self, body: dict[str, Any], sub: Subscription | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The problems of a POST (``sub`` None) or PATCH body, and its fields to set."""
        problems: list[dict[str, Any]] = []
        out: dict[str, Any] = {}

        def fail(path: str, message: str, value: Any = None, key: str = "400.004") -> None:
            problems.append(problem(key, path, message, value))

        url = body.get("url")
        if url is None:
            if sub is None:
                fail("url", "url must not be null", key="400.003")
        elif not isinstance(url, str):
            fail("url", "url must be a string", url)
        else:
            parts = None
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - a bad port raises ValueError
            except ValueError:
                parts = None
            if (
                parts is None
                or parts.scheme.lower() not in ("http", "https")
                or not parts.hostname
                or len(url) > _MAX_URL
                or any(c.isspace() or not c.isprintable() for c in url)
            ):
                fail("url", "url must be a valid http:// or https:// URL", url)
            else:
                out["url"] = url

        headers = body.get("headers")
        if headers is not None:
            if not isinstance(headers, list):
                fail("headers", "headers must be an array of {name, value}")
            else:
                clean = []
                for i, h in enumerate(headers):
                    path = f"headers[{i}]"
                    name = h.get("name") if isinstance(h, dict) else None
                    value = h.get("value") if isinstance(h, dict) else None
                    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
                        fail(f"{path}.name", f"{path}.name must be an HTTP header name", name)
                    elif name.lower() in _RESERVED:
                        fail(f"{path}.name", f"{path}.name {name} is set by Tango", name)
                    elif (
                        not isinstance(value, str) or not value or any(c in value for c in "\r\n\0")
                    ):
                        fail(f"{path}.value", f"{path}.value must be a non-empty single line")
                    else:
                        clean.append({"name": name, "value": value})
                out["headers"] = clean

        for name, known in (("categories", EVENT_CATEGORIES), ("eventTypes", EVENT_TYPES)):
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, list):
                fail(name, f"{name} must be an array of strings")
                continue
            names: list[str] = []
            for i, item in enumerate(value):
                if item not in known:
                    fail(f"{name}[{i}]", f"{name}[{i}] must be one of {', '.join(known)}", item)
                elif item not in names:
                    names.append(item)
            out[name] = names
        categories = out.get("categories", sub.categories if sub else [])
        types = out.get("eventTypes", sub.event_types if sub else [])
        if (
            not categories
            and not types
            and not any(p["path"].startswith(("categories", "eventTypes")) for p in problems)
        ):
            fail("eventTypes", "give at least one event type or category", key="400.003")

        key = body.get("hmacSharedSecretKey")
        if key is not None:
            raw = b""
            if isinstance(key, str):
                try:
                    raw = base64.b64decode(key, validate=True)
                except (binascii.Error, ValueError):
                    raw = b""
            if not raw:
                fail("hmacSharedSecretKey", "hmacSharedSecretKey must be base64 of a key")
            else:
                out["hmac_key"] = key
        cert = body.get("signingCertificate")
        if cert is not None:
            if not isinstance(cert, str) or parse_certificate(cert) is None:
                fail(
                    "signingCertificate",
                    "signingCertificate must be an X509 certificate (base64 of its DER or PEM)",
                )
            else:
                out["certificate"] = cert

        method = body.get("payloadVerificationMethod")
        if method is not None and method not in METHODS:
            fail(
                "payloadVerificationMethod",
                f"payloadVerificationMethod must be one of {'|'.join(METHODS)}",
                method,
            )
            return problems, out
        if method is None:
            if sub is not None:
                method = sub.method
            elif key is not None:
                method = "HMAC"
            elif cert is not None:
                method = "X509"
            else:
                method = "NONE"
        out["method"] = method
        has_key = key is not None or (sub is not None and sub.hmac_key)
        has_cert = cert is not None or (sub is not None and sub.certificate)
        if method == "HMAC" and not has_key:
            fail("hmacSharedSecretKey", "hmacSharedSecretKey is required for HMAC", key="400.003")
        if method == "X509":
            if not has_cert:
                fail(
                    "signingCertificate",
                    "signingCertificate is required for X509",
                    key="400.003",
                )
            elif importlib.util.find_spec("cryptography") is None:
                fail("payloadVerificationMethod", "X509 needs the cryptography package")
        return problems, out

    def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        return body

    async def create(self, request: web.Request) -> web.Response:
        body = self._body(request)
        if isinstance(body, web.Response):
            return body
        problems, fields = self._check(body, None)
        if problems:
            return self._error(request, "400.004", errors=problems)
        now = self._now()
        self._seq += 1
        sub = Subscription(
            webhook_id=str(uuid.uuid4()),
            url=fields["url"],
            headers=fields.get("headers", []),
            categories=fields.get("categories", []),
            event_types=fields.get("eventTypes", []),
            method=fields["method"],
            hmac_key=fields.get("hmac_key"),
            certificate=fields.get("certificate"),
            created_at=now,
            updated_at=now,
            expires_at=now + self._host.webhook_ttl,
            seq=self._seq,
        )
        self.subscriptions[sub.webhook_id] = sub
        return respond({"webhookId": sub.webhook_id, "expiresAt": iso(_dt(sub.expires_at))}, 201)

    async def list_webhooks(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            bounds = {}
            for name in ("expiresAtFrom", "expiresAtTo", "createdAtFrom", "createdAtTo"):
                if name in q:
                    try:
                        bounds[name] = parse_time(q[name]).timestamp()
                    except ValueError:
                        raise _BadQuery(f"{name}={q[name]}") from None
            categories = set(_names(q, "categories"))
            types = set(_names(q, "eventTypes"))
            header_name = q.get("headerName")
            header_value = q.get("headerValue")

            def keep(s: Subscription) -> bool:
                if "url" in q and s.url != q["url"]:
                    return False
                if header_name is not None and not any(
                    h["name"].lower() == header_name.lower() for h in s.headers
                ):
                    return False
                if header_value is not None and not any(
                    h["value"] == header_value for h in s.headers
                ):
                    return False
                if categories and not categories & set(s.categories):
                    return False
                if types and not types & s.receives():
                    return False
                for name, ts, lower in (
                    ("expiresAtFrom", s.expires_at, True),
                    ("expiresAtTo", s.expires_at, False),
                    ("createdAtFrom", s.created_at, True),
                    ("createdAtTo", s.created_at, False),
                ):
                    bound = bounds.get(name)
                    if bound is not None and (ts < bound if lower else ts > bound):
                        return False
                return True

            found = [s for s in self.subscriptions.values() if keep(s)]
            block, paging = _page(found, lambda s: s.seq, q, "w")
        except _BadQuery as e:
            return self._error(request, "400.002", str(e))
        return respond(paging | {"items": [s.view() for s in block]})

    async def event_types(self, request: web.Request) -> web.Response:
        q = request.query
        groups = list(enumerate(EVENT_CATEGORIES.items(), 1))
        if "category" in q:
            groups = [g for g in groups if g[1][0] == q["category"]]
            if not groups:
                return self._error(request, "404.031", q["category"])
        try:
            block, paging = _page(groups, lambda g: g[0], q, "t")
        except _BadQuery as e:
            return self._error(request, "400.002", str(e))
        items = [{"category": c, "eventTypes": list(t)} for _, (c, t) in block]
        return respond(paging | {"items": items})

    async def get_one(self, request: web.Request) -> web.Response:
        sub = self._find(request)
        return sub if isinstance(sub, web.Response) else respond(sub.view())

    async def update(self, request: web.Request) -> web.Response:
        sub = self._find(request)
        if isinstance(sub, web.Response):
            return sub
        body = self._body(request)
        if isinstance(body, web.Response):
            return body
        problems, fields = self._check(body, sub)
        if problems:
            return self._error(request, "400.004", errors=problems)
        for name, attr in (
            ("url", "url"),
            ("headers", "headers"),
            ("categories", "categories"),
            ("eventTypes", "event_types"),
            ("method", "method"),
            ("hmac_key", "hmac_key"),
            ("certificate", "certificate"),
        ):
            if name in fields:
                setattr(sub, attr, fields[name])
        sub.updated_at = self._now()
        return respond(sub.view())

    async def delete(self, request: web.Request) -> web.Response:
        sub = self._find(request)
        if isinstance(sub, web.Response):
            return sub
        del self.subscriptions[sub.webhook_id]
        self._deliverer.drop(sub.webhook_id)
        return web.Response(status=200)

    async def renew(self, request: web.Request) -> web.Response:
        sub = self._find(request)
        if isinstance(sub, web.Response):
            return sub
        now = self._now()
        sub.expires_at = now + self._host.webhook_ttl
        sub.updated_at = now
        return respond({"webhookId": sub.webhook_id, "expiresAt": iso(_dt(sub.expires_at))})

    def _revisions(self, q: Mapping[str, str], *, required: bool) -> tuple[int, int | None]:
        if "fromRevision" not in q and required:
            raise _BadQuery("fromRevision is required")
        values: list[int | None] = []
        for name in ("fromRevision", "toRevision"):
            if name not in q:
                values.append(None)
                continue
            try:
                value = int(q[name])
            except ValueError:
                raise _BadQuery(f"{name}={q[name]}") from None
            if value < 0:
                raise _BadQuery(f"{name}={q[name]}")
            values.append(value)
        low, high = values
        if low is not None and high is not None and high < low:
            raise _BadQuery(f"toRevision={high} is before fromRevision={low}")
        return low or 0, high

    async def replay(self, request: web.Request) -> web.Response:
        sub = self._find(request)
        if isinstance(sub, web.Response):
            return sub
        try:
            low, high = self._revisions(request.query, required=True)
        except _BadQuery as e:
            return self._error(request, "400.002", str(e))
        if not sub.live(self._now()):
            return self._error(request, "422.161")
        for env in sub.events:
            if env["revision"] >= low and (high is None or env["revision"] <= high):
                self._deliverer.enqueue(Job(sub.webhook_id, env, replay=True))
        return web.Response(status=200)

    async def events(self, request: web.Request) -> web.Response:
        sub = self._find(request)
        if isinstance(sub, web.Response):
            return sub
        q = request.query
        try:
            low, high = self._revisions(q, required=False)
            found = [
                e
                for e in sub.events
                if e["revision"] >= low and (high is None or e["revision"] <= high)
            ]
            block, paging = _page(found, lambda e: int(e["revision"]), q, "e")
        except _BadQuery as e:
            return self._error(request, "400.002", str(e))
        return respond(paging | {"items": block})

    def _test(self, request: web.Request, names: list[str]) -> web.Response:
        sub = self._find(request)
        if isinstance(sub, web.Response):
            return sub
        now = self._now()
        if not sub.live(now):
            return self._error(request, "422.161")
        receives = sub.receives()
        if not names:  # every test the subscription may run
            names = [n for n in TEST_NAMES if n == "ConnectivityTest" or n in receives]
        for name in names:
            if name not in TEST_NAMES:
                return self._error(request, "400.002", f"testName={name}")
            if name != "ConnectivityTest" and name not in receives:
                return self._error(request, "422.162", name)
        for name in names:
            self._add_event(sub, name, self._test_data(name, sub), now)
        return web.Response(status=200)

    async def test_all(self, request: web.Request) -> web.Response:
        return self._test(request, [])

    async def test_one(self, request: web.Request) -> web.Response:
        return self._test(request, [request.match_info["testName"]])
