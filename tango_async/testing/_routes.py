"""The sandbox's routes: the aiohttp handlers of the orders API under /raas/v2 (create,
get, list, the order and line-item resends) and the 404 for anything else. The other
line-item routes are in ``_line_items``, the webhook routes in ``_webhooks``."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web

from ._clock import SandboxClock
from ._errors import MESSAGES, ErrorWriter
from ._recorded import current
from ._rules import check_order, check_resend
from ._store import Accounts, OrderStore, Stored, dig
from ._wire import MALFORMED, iso, respond

__all__ = [
    "NOT_DELIVERED_BY_TANGO",
    "PREFIX",
    "RouteHost",
    "Routes",
    "frozen_account",
    "parse_time",
]

PREFIX = "/raas/v2"
NOT_DELIVERED_BY_TANGO = ("NONE", "EMBEDDED", "EMBEDDED_COMPONENT", "ADDRESS")


class RouteHost(Protocol):
    """What the routes read from their sandbox at each request (its settings may change
    between requests) and the records they add to."""

    clock: SandboxClock
    resend_cooldown: float
    max_window: int
    max_range_days: float | None
    in_process: set[str]  # externalRefIDs whose order is still in process (409.002)
    resends: list[dict[str, Any]]  # every resend answered, with its request


def frozen_account(errors: ErrorWriter, path: str) -> web.Response:
    """The 422 answer to an order (or a reissue) charged to a frozen account."""
    return errors.response(
        path,
        "404.142",
        status=422,
        errors=[{"code": 422001, "i18nKey": "404.142", "message": MESSAGES["404.142"]}],
    )


def parse_time(value: str) -> datetime:
    """RFC 3339 date (its midnight, UTC) or date-time with an offset; ValueError otherwise."""
    if len(value) == 10:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError(value)
    return parsed


class Routes:
    """The handlers, over ``store`` and ``accounts``, answering errors with ``errors``.

    Each reads the request's JSON body from its record (:func:`._recorded.current`), set
    by the sandbox before the handler runs; the resend cooldown is kept here, per line item,
    on the sandbox clock's monotonic time."""

    def __init__(
        self,
        host: RouteHost,
        store: OrderStore,
        accounts: Accounts,
        errors: ErrorWriter,
        *,
        on_created: Callable[[Stored], None] | None = None,
        catalog_rule: Callable[[str, dict[str, Any]], web.Response | None] | None = None,
    ) -> None:
        self._host = host
        self._store = store
        self._accounts = accounts
        self._errors = errors
        self._on_created = on_created  # told of every order POST /orders makes
        # the catalog's refusal of a valid order body, if any (Sandbox(strict_catalog=True))
        self._catalog_rule = catalog_rule
        self._last_resend: dict[str, float] = {}
        self._resend_ids = itertools.count(1001)

    def add_to(self, app: web.Application) -> None:
        """Register every route on ``app``, the catch-all 404 last (register the other
        modules' routes before)."""
        add = app.router.add_route
        add("GET", PREFIX + "/orders", self.list_orders)
        add("POST", PREFIX + "/orders", self.create_order)
        add("GET", PREFIX + "/orders/{id}", self.get_order)
        add("POST", PREFIX + "/orders/{id}/resends", self.resend_order)
        add("POST", PREFIX + "/lineItems/{id}/resends", self.resend_line_item)
        add("*", "/{tail:.*}", self.not_found)

    def _error(self, request: web.Request, key: str, *args: Any, **kwargs: Any) -> web.Response:
        return self._errors.response(request.path, key, *args, **kwargs)

    def _now(self) -> float:
        return self._host.clock.now().timestamp()

    async def create_order(self, request: web.Request) -> web.Response:
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        problems = check_order(body)
        if problems:
            return self._error(request, "400.004", errors=problems)
        if self._catalog_rule is not None:
            refusal = self._catalog_rule(request.path, body)
            if refusal is not None:
                return refusal
        ext = body.get("externalRefID")
        if ext is not None:
            existing = self._store.by_external_ref(ext)
            if existing is not None:
                return respond(self._store.view(existing, self._now()), 200)
            if ext in self._host.in_process:
                return self._error(request, "409.002")
        account = body["accountIdentifier"]
        accounts = self._accounts
        if account in accounts.frozen:
            return frozen_account(self._errors, request.path)
        amount = Decimal(body["amount"])
        balance = accounts.balances.get(account)
        if balance is not None and balance < amount:
            return self._error(request, "402.001", account)
        stored = self._store.build(body, self._now())
        if accounts.fail_next:
            accounts.fail_next -= 1
            stored.outcome = "FAILED"
        else:
            accounts.charge(stored, amount)
        if accounts.bounce_next and stored.wire["deliveryMethod"] == "EMAIL":
            accounts.bounce_next -= 1
            stored.bounce = True
        self._store.add(stored)
        if self._on_created is not None:
            self._on_created(stored)
        return respond(self._store.view(stored, stored.ts), 201)

    async def get_order(self, request: web.Request) -> web.Response:
        stored = self._store.get(request.match_info["id"])
        if stored is None:
            return self._error(request, "404.002")
        return respond(self._store.view(stored, self._now()))

    async def list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            per = int(q.get("elementsPerBlock", "10"))
            page = int(q.get("page", "0"))
            start = parse_time(q["startDate"]) if "startDate" in q else None
            end = parse_time(q["endDate"]) if "endDate" in q else None
            low = Decimal(q["minAmount"]) if "minAmount" in q else None
            high = Decimal(q["maxAmount"]) if "maxAmount" in q else None
            if per < 1 or page < 0 or not all(x is None or x.is_finite() for x in (low, high)):
                raise ValueError
        except (ValueError, ArithmeticError):
            return self._error(request, "400.002", request.query_string)
        if per > 100:
            return self._error(request, "422.042")
        max_range_days = self._host.max_range_days
        if (
            max_range_days is not None
            and start is not None
            and end is not None
            and end - start > timedelta(days=max_range_days)
        ):
            return self._error(request, "422.043", max_range_days)
        if current().fault == "repeat-page":
            page = 0
        max_window = self._host.max_window
        if page * per + per > max_window:
            return self._error(request, "400.021", max_window)
        now = self._now()
        found = self._store.query(q, start, end, low, high, now)
        block = found[page * per : page * per + per]
        return respond(
            {
                "page": {
                    "number": page,
                    "elementsPerBlock": per,
                    "resultCount": len(block),
                    "totalCount": len(found),
                },
                "orders": [self._store.view(s, now, listing=True) for s in block],
            }
        )

    async def resend_order(self, request: web.Request) -> web.Response:
        stored = self._store.get(request.match_info["id"])
        return self._resend(request, stored, line_item=False)

    async def resend_line_item(self, request: web.Request) -> web.Response:
        stored = self._store.by_line_item(request.match_info["id"])
        return self._resend(request, stored, line_item=True)

    def _resend(
        self, request: web.Request, stored: Stored | None, *, line_item: bool
    ) -> web.Response:
        if stored is None:
            return self._error(request, "404.003" if line_item else "404.002")
        body = current().json
        if body is MALFORMED:
            return self._error(request, "400.001")
        problems = check_resend(body, line_item=line_item)
        if problems:
            return self._error(request, "400.004", errors=problems)
        body = body or {}
        order = stored.wire
        if order.get("deliveryMethod") in NOT_DELIVERED_BY_TANGO:  # (sendEmail=false: NONE)
            return self._error(request, "403.003")
        clock, cooldown = self._host.clock, self._host.resend_cooldown
        key, now = order["referenceLineItemID"], clock.monotonic()
        last = self._last_resend.get(key)
        if last is not None and now - last < cooldown:
            return self._error(request, "403.005", cooldown)
        self._last_resend[key] = now
        mobile = body.get("newMobileNumber" if line_item else "newMobile")
        answer: dict[str, Any] = {
            "id": next(self._resend_ids),
            "createdAt": iso(clock.now()),
            "email": body.get("newEmail") or dig(order, ("recipient", "email")),
            "mobileNumber": mobile or dig(order, ("recipient", "mobileNumber")),
        }
        if line_item:
            answer |= {
                "deliveryMethod": body.get("newDeliveryMethod") or order.get("deliveryMethod"),
                "reasonCode": body.get("reasonCode"),
                "otherReason": body.get("otherReason"),
            }
        answer = {k: v for k, v in answer.items() if v is not None}
        self._host.resends.append(
            {
                "kind": "lineItem" if line_item else "order",
                "target": key if line_item else order["referenceOrderID"],
                "request": body,
                "response": answer,
            }
        )
        return respond(answer, 201)

    async def not_found(self, request: web.Request) -> web.Response:
        return self._error(request, "404.001")
