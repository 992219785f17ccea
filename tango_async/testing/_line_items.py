"""The sandbox's line items: their life on the sandbox clock, their views, the events
their changes publish, and the line-item routes under /raas/v2/lineItems (list, get,
update, cancel, freeze, unfreeze, reissue, reason codes, embedded URL; the resend is in
``_routes``).

Each order holds one line item (``Stored``). Its life, with ``P`` the sandbox's
``pending_for`` and ``D`` its ``delivery_for`` (``P`` unless set), from its createdAt
``t0``:

======================  ===============  =======================  =====================
line item               t0               t0 + P                   t0 + P + D
======================  ===============  =======================  =====================
status                  PENDING          COMPLETE (or FAILED)
deliveryStatus          PENDING          PROCESSING (FAILED)      DELIVERED (FAILED if
                                                                  the email bounced)
emailStatus (EMAIL)     PENDING          SENT (NOT_DELIVERED)     DELIVERED (or BOUNCE)
rewardStatus            null             ACTIVE (null)
======================  ===============  =======================  =====================

NONE, EMBEDDED and EMBEDDED_COMPONENT rewards are handed over in the answer: DELIVERED
at ``t0 + P``. ADDRESS (physical) ones go PROCESSING, DISPATCHED at ``t0 + P + D``,
DELIVERED at ``t0 + P + 2D``. A cancel (or a reissue) makes the status, the order's
status and the rewardStatus CANCELLED; a freeze makes the rewardStatus FROZEN, an
unfreeze ACTIVE again; delivery goes on as it would have.

Every change publishes a webhook event (``publish``): the status turning COMPLETE or
FAILED, a cancel, freeze, unfreeze or reissue a ``RewardStatus`` event; each
deliveryStatus change a ``LineItemDeliveryStatus`` event. Time-driven changes are
published by :meth:`LineItems.catch_up`, in the order they happened, when the sandbox
notices the clock passed them (on each request, on its background tick, and in
``Sandbox.deliver_due``); seeded orders (history) publish nothing.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from aiohttp import web

from ._clock import SandboxClock
from ._errors import ErrorWriter
from ._recorded import current
from ._routes import PREFIX, frozen_account, parse_time
from ._rules import check_order, problem
from ._store import Accounts, CatalogItem, OrderStore, Stored, dig
from ._wire import MALFORMED, iso, respond

__all__ = [
    "LINE_ITEM_STATUSES",
    "REWARD_REASONS",
    "LineItemHost",
    "LineItems",
    "Publish",
    "Transition",
]

# What a line item's change publishes: (event type, its eventData, when it happened in
# epoch seconds of the sandbox clock).
Publish = Callable[[str, dict[str, Any], float], object]

# The reason codes of each action (GET /lineItems/reasonCodes), as the spec's enums of
# Cancel/Freeze/Unfreeze/ReissueLineItemRequestCriteria list them; the texts are ours.
REWARD_REASONS: dict[str, dict[str, str]] = {
    "FREEZE": {
        "DELIVERY_INFO": "The delivery information is being checked",
        "REWARD_AMOUNT": "The reward amount is being checked",
        "REWARD_TYPE": "The reward type is being checked",
        "VERIFY_ORDER": "The order needs verification",
        "FRAUD": "Suspected fraud",
        "OTHER": "Other",
    },
    "UNFREEZE": {
        "DELIVERY_INFO": "The delivery information was confirmed",
        "REWARD_AMOUNT": "The reward amount was confirmed",
        "REWARD_TYPE": "The reward type was confirmed",
        "VERIFY_ORDER": "The order was verified",
        "FRAUD": "No fraud found",
        "OTHER": "Other",
    },
    "CANCEL": {
        "DELIVERY_INFO": "Incorrect delivery information",
        "REWARD_AMOUNT": "Incorrect reward amount",
        "REWARD_TYPE": "Incorrect reward type",
        "RECIPIENT": "Incorrect recipient",
        "CURRENCY": "Incorrect currency",
        "RECIPIENT_REQUESTED": "The recipient asked for it",
        "RECIPIENT_OBLIGATIONS": "The recipient did not meet their obligations",
        "DUPLICATE": "Duplicate reward",
        "FRAUD": "Suspected fraud",
        "OTHER": "Other",
    },
    "CANCEL_AND_REISSUE": {
        "DELIVERY_INFO": "Incorrect delivery information",
        "REWARD_AMOUNT": "Incorrect reward amount",
        "REWARD_TYPE": "Incorrect reward type",
        "RECIPIENT": "Incorrect recipient",
        "CURRENCY": "Incorrect currency",
        "RECIPIENT_REQUESTED": "The recipient asked for it",
        "OTHER": "Other",
    },
}

# GET /lineItems enum filters, as the spec lists their values
LINE_ITEM_STATUSES = ("COMPLETE", "PENDING", "FAILED", "CANCELLED")
_ENUM_FILTERS: dict[str, tuple[str, ...]] = {
    "status": LINE_ITEM_STATUSES,
    "emailStatus": (
        "DELIVERED", "NOT_DELIVERED", "PENDING", "SENT", "DEFERRED", "DROPPED", "BOUNCE",
        "BLOCKED",
    ),
    "deliveryMethod": (
        "NONE", "EMAIL", "PHONE", "ADDRESS", "EMBEDDED", "BULKSHIPMENT", "QRCODE",
        "BULKDIGITAL", "EMBEDDED_COMPONENT", "WHATSAPP",
    ),
    "deliveryStatus": ("PENDING", "PROCESSING", "DISPATCHED", "DELIVERED", "FAILED", "ENGAGED"),
    "orderStatus": ("COMPLETE", "PENDING", "FAILED", "CANCELLED", "PARTIAL"),
    "orderSource": ("RA", "RG", "BE", "BI", "CI", "QW", "AA"),
}  # fmt: skip
# GET /lineItems text filters -> path into the stored order, compared as text
_TEXT_FILTERS: dict[str, tuple[str, ...]] = {
    **{
        n: (n,)
        for n in (
            "referenceOrderID",
            "externalRefID",
            "utid",
            "ptid",
            "etid",
            "accountIdentifier",
            "campaign",
            "purchaseOrderNumber",
        )
    },
    **{
        f"recipient{p[:1].upper()}{p[1:]}": ("recipient", p)
        for p in ("email", "mobileNumber", "firstName", "lastName")
    },
    **{
        f"recipient{p[:1].upper()}{p[1:]}": ("recipient", "address", p)
        for p in ("streetLine1", "streetLine2", "city", "stateOrProvince", "postalCode", "country")
    },
}
_SORT_COLUMNS = (
    "accountNumber",
    "amountIssued",
    "dateIssued",
    "emailStatus",
    "deliveryMethod",
    "externalReferenceId",
    "status",
    "orderSource",
    "orderStatus",
    "recipientFirstName",
    "recipientLastName",
    "rewardName",
)
_REISSUE_METHODS = (
    "NONE", "EMAIL", "PHONE", "EMBEDDED", "EMBEDDED_COMPONENT", "WHATSAPP", "BULKDIGITAL",
)  # fmt: skip
HANDED_OVER = ("NONE", "EMBEDDED", "EMBEDDED_COMPONENT")  # delivered in the API's answer
_EMBEDDED = ("EMBEDDED", "EMBEDDED_COMPONENT")
_CAMPAIGN = r"[a-zA-Z0-9 ]{0,100}"
_MAX_PER_BLOCK = 100
_DEFAULT_PER_BLOCK = 10


class LineItemHost(Protocol):
    """What the line items read from their sandbox at each request."""

    clock: SandboxClock
    max_range_days: float | None
    resends: list[dict[str, Any]]  # every resend answered (for resendHistory)


@dataclass(frozen=True, slots=True)
class Transition:
    """One time-driven change of a line item: ``field`` becomes ``value`` at ``at``."""

    at: float  # epoch seconds
    field: str  # "status", "deliveryStatus" or "emailStatus"
    value: str


@dataclass(frozen=True, slots=True)
class _State:
    status: str
    delivery_status: str
    email_status: str | None
    reward_status: str | None

    @property
    def active(self) -> bool:
        """COMPLETE, not cancelled, not frozen: it may be cancelled, frozen, reissued."""
        return self.reward_status == "ACTIVE"


def _is_bool(text: str) -> bool | None:
    low = text.strip().lower()
    return True if low == "true" else False if low == "false" else None


class _BadQuery(Exception):
    """A GET /lineItems query parameter that cannot be read: 400.002."""


class LineItems:
    """The line items of ``store``'s orders: their state at any time, their views, the
    events their changes publish (``publish``) and the line-item routes.

    ``delivery_for``: seconds a delivery takes after the line item's outcome (None: the
    store's ``pending_for``)."""

    def __init__(
        self,
        host: LineItemHost,
        store: OrderStore,
        accounts: Accounts,
        errors: ErrorWriter,
        *,
        publish: Publish,
        delivery_for: float | None = None,
    ) -> None:
        self._host = host
        self._store = store
        self._accounts = accounts
        self._errors = errors
        self._publish = publish
        self.delivery_for = delivery_for
        self._tracked: dict[str, float] = {}  # line item -> changes published up to then
        self._due: list[tuple[float, int, str]] = []  # (next change, seq, line item), a heap
        self._seq = itertools.count()

    # --- life ---------------------------------------------------------------------------------

    def timeline(self, stored: Stored) -> list[Transition]:
        """The time-driven changes of ``stored``'s line item, in the order they happen."""
        done = stored.ts + self._store.pending_for
        d = self._store.pending_for if self.delivery_for is None else self.delivery_for
        method = stored.wire.get("deliveryMethod")
        email = method == "EMAIL"
        out = [Transition(done, "status", stored.outcome)]
        if stored.outcome != "COMPLETE":
            out.append(Transition(done, "deliveryStatus", "FAILED"))
            if email:
                out.append(Transition(done, "emailStatus", "NOT_DELIVERED"))
            return out
        if method in HANDED_OVER:
            out.append(Transition(done, "deliveryStatus", "DELIVERED"))
            return out
        out.append(Transition(done, "deliveryStatus", "PROCESSING"))
        if email:
            out.append(Transition(done, "emailStatus", "SENT"))
        if method == "ADDRESS":
            out.append(Transition(done + d, "deliveryStatus", "DISPATCHED"))
            out.append(Transition(done + 2 * d, "deliveryStatus", "DELIVERED"))
            return out
        bounced = email and stored.bounce
        out.append(Transition(done + d, "deliveryStatus", "FAILED" if bounced else "DELIVERED"))
        if email:
            out.append(Transition(done + d, "emailStatus", "BOUNCE" if bounced else "DELIVERED"))
        return out

    def _state(self, stored: Stored, now: float) -> _State:
        fields: dict[str, str | None] = {
            "status": "PENDING",
            "deliveryStatus": "PENDING",
            "emailStatus": "PENDING" if stored.wire.get("deliveryMethod") == "EMAIL" else None,
        }
        for change in self.timeline(stored):
            if change.at <= now:
                fields[change.field] = change.value
        status = str(fields["status"])
        if stored.cancelled_at is not None:
            status, reward = "CANCELLED", "CANCELLED"
        elif status == "COMPLETE":
            reward = "FROZEN" if stored.frozen else "ACTIVE"
        else:
            reward = None
        return _State(status, str(fields["deliveryStatus"]), fields["emailStatus"], reward)

    def track(self, stored: Stored) -> None:
        """Publish the changes of ``stored``'s line item as they come due (orders the API
        made; seeded history publishes nothing)."""
        line = stored.wire["referenceLineItemID"]
        self._tracked[line] = -math.inf
        self._schedule(line, stored, -math.inf)

    def _schedule(self, line: str, stored: Stored, after: float) -> None:
        times = [c.at for c in self.timeline(stored) if c.at > after]
        if times:
            heapq.heappush(self._due, (min(times), next(self._seq), line))
        else:
            self._tracked.pop(line, None)

    def next_due(self) -> float | None:
        """When the next time-driven change comes due (epoch seconds), None if none will."""
        return self._due[0][0] if self._due else None

    def catch_up(self, now: float) -> int:
        """Publish every time-driven change that came due by ``now``, in the order they
        happened (line items ordered by creation among changes at one instant); return how
        many were published."""
        found: list[tuple[float, float, str, int, Stored, Transition]] = []
        while self._due and self._due[0][0] <= now:
            _, _, line = heapq.heappop(self._due)
            stored = self._store.by_line_item(line)
            after = self._tracked.get(line)
            if stored is None or after is None:
                continue
            for i, change in enumerate(self.timeline(stored)):
                if after < change.at <= now:
                    found.append((change.at, stored.ts, line, i, stored, change))
            self._tracked[line] = now
            self._schedule(line, stored, now)
        found.sort(key=lambda f: f[:4])
        published = 0
        for at, _, line, _, stored, change in found:
            if change.field == "status":
                action = "ISSUE" if change.value == "COMPLETE" else "FAIL"
                self._reward_event(stored, action, change.value, at)
            elif change.field == "deliveryStatus":
                data = {"referenceLineItemId": line, "status": change.value}
                self._publish("LineItemDeliveryStatus", data, at)
            else:
                continue
            published += 1
        return published

    def _reward_event(
        self,
        stored: Stored,
        action: str,
        status: str,
        at: float,
        *,
        code: str | None = None,
        reason: str | None = None,
        new_line: str | None = None,
    ) -> None:
        kind = self._item(stored).kind
        data = {
            "referenceLineItemId": stored.wire["referenceLineItemID"],
            "externalRefID": stored.wire.get("externalRefID"),
            "action": action,
            "reasonCode": code,
            "reason": reason,
            "status": status,
            "type": kind,
            "newReferenceLineItemId": new_line,
        }
        self._publish("RewardStatus", {k: v for k, v in data.items() if v is not None}, at)

    def _item(self, stored: Stored) -> CatalogItem:
        utid = str(stored.wire.get("utid", "")).upper()
        return self._store.catalog.get(utid, CatalogItem(str(stored.wire.get("rewardName"))))

    # --- views ------------------------------------------------------------------------------

    def view(self, stored: Stored, now: float, *, verbose: bool = True) -> dict[str, Any]:
        """The line item as GET /lineItems/{id} shows it at ``now`` (LineItemViewVerbose),
        or (``verbose=False``) as GET /lineItems lists it (LineItemView)."""
        state = self._state(stored, now)
        w = stored.wire
        line = w["referenceLineItemID"]
        amount = w["denomination"]
        value = Decimal(str(amount["value"]))
        if state.status == "COMPLETE":
            balance: Decimal | None = value
        elif state.status == "CANCELLED":
            balance = Decimal("0.00")
        else:
            balance = None
        credentials = dig(w, ("reward", "credentialList")) or []
        expiration = next(
            (c["value"] for c in credentials if c.get("credentialType") == "expirationDate"),
            None,
        )
        view: dict[str, Any] = {
            "referenceLineItemID": line,
            "externalReferenceLineItemID": w.get("externalRefID"),
            "referenceOrderID": w["referenceOrderID"],
            "orderSource": "RA",
            "status": state.status,
            "orderStatus": self._store.status(stored, now),
            "emailStatus": state.email_status,
            "deliveryMethod": w.get("deliveryMethod"),
            "deliveryStatus": state.delivery_status,
            "rewardStatus": state.reward_status,
            "canCancel": state.active,
            "canFreeze": state.active,
            "lineNumber": 1,
            "rewardName": w.get("rewardName"),
            "amountIssued": {"value": amount["value"], "currencyCode": amount["currencyCode"]},
            "amountCharged": w.get("amountCharged"),
            "remainingBalance": balance,
            "dateIssued": w["createdAt"],
            "expirationDate": expiration,
            "accountNumber": w.get("accountNumber"),
            "accountIdentifier": w.get("accountIdentifier"),
            "etid": w.get("etid"),
            "ptid": w.get("ptid"),
            "utid": w.get("utid"),
            "customerIdentifier": w.get("customerIdentifier"),
            "recipient": w.get("recipient"),
            "sender": w.get("sender"),
            "purchaseOrderNumber": w.get("purchaseOrderNumber"),
            "campaign": w.get("campaign"),
            "orderNotes": self._notes(stored),
            "lineItemActionReason": stored.line.get("lineItemActionReason"),
            "reissuedFromReferenceLineItemId": stored.line.get("reissuedFromReferenceLineItemId"),
            "reissuedToReferenceLineItemId": stored.line.get("reissuedToReferenceLineItemId"),
            "lineItemErrors": (
                [{"error_code": "ORDER_FAILED", "error_message": "The order could not be filled"}]
                if state.status == "FAILED"
                else []
            ),
            "quantity": 1,
        }
        if verbose:
            view |= {
                "reward": w.get("reward") if state.status == "COMPLETE" else None,
                "resendHistory": self._resends(stored),
                "redemptionHistory": [],
                "lineItemActionHistory": list(stored.actions),
                "rewardViewHistory": [],
            }
        return view

    @staticmethod
    def _notes(stored: Stored) -> Any:
        return stored.line.get("orderNotes", stored.wire.get("notes"))

    def _resends(self, stored: Stored) -> list[dict[str, Any]]:
        w = stored.wire
        targets = {("lineItem", w["referenceLineItemID"]), ("order", w["referenceOrderID"])}
        sender = w.get("sender")
        out = []
        for resend in self._host.resends:
            if (resend["kind"], resend["target"]) not in targets:
                continue
            answer, asked = resend["response"], resend["request"]
            out.append(
                {
                    "dateIssued": answer.get("createdAt"),
                    "sender": sender,
                    "recipient": {
                        "email": answer.get("email"),
                        "mobileNumber": answer.get("mobileNumber"),
                    },
                    "deliveryMethod": answer.get("deliveryMethod") or w.get("deliveryMethod"),
                    "deliveryStatus": None,
                    "etid": asked.get("newEtid") or w.get("etid"),
                    "reasonCode": answer.get("reasonCode"),
                    "otherReason": answer.get("otherReason"),
                }
            )
        return out

    # --- routes -----------------------------------------------------------------------------

    def add_to(self, app: web.Application) -> None:
        """Register the line-item routes on ``app`` (the literal paths first)."""
        add = app.router.add_route
        base = PREFIX + "/lineItems"
        add("GET", base, self.list_line_items)
        add("GET", base + "/reasonCodes", self.reason_codes)
        add("GET", base + "/{id}", self.get_line_item)
        add("PATCH", base + "/{id}", self.update_line_item)
        add("POST", base + "/{id}/cancel", self.cancel)
        add("POST", base + "/{id}/freeze", self.freeze)
        add("POST", base + "/{id}/unfreeze", self.unfreeze)
        add("POST", base + "/{id}/reissue", self.reissue)
        add("GET", base + "/{id}/embeddedUrl", self.embedded_url)

    def _error(self, request: web.Request, key: str, *args: Any, **kwargs: Any) -> web.Response:
        return self._errors.response(request.path, key, *args, **kwargs)

    def _now(self) -> float:
        return self._host.clock.now().timestamp()

    async def reason_codes(self, request: web.Request) -> web.Response:
        return respond(REWARD_REASONS)

    async def get_line_item(self, request: web.Request) -> web.Response:
        stored = self._store.by_line_item(request.match_info["id"])
        if stored is None:
            return self._error(request, "404.003")
        return respond(self.view(stored, self._now()))

    async def embedded_url(self, request: web.Request) -> web.Response:
        stored = self._store.by_line_item(request.match_info["id"])
        if stored is None:
            return self._error(request, "404.003")
        if stored.wire.get("deliveryMethod") not in _EMBEDDED:
            return self._error(request, "403.110")
        state = self._state(stored, self._now())
        if state.status != "COMPLETE":
            return self._error(request, "422.151", state.status)
        line = stored.wire["referenceLineItemID"]
        token = f"{zlib.crc32(line.encode()) % 10**8:08d}{zlib.crc32(line[::-1].encode()):010d}"
        return respond({"url": f"https://sandbox.embedded.example/e/{token}"})

    async def update_line_item(self, request: web.Request) -> web.Response:
        stored = self._store.by_line_item(request.match_info["id"])
        if stored is None:
            return self._error(request, "404.003")
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        problems = []
        for name, pattern, max_len in (
            ("purchaseOrderNumber", None, 100),
            ("campaign", _CAMPAIGN, None),
            ("orderNotes", None, 150),
        ):
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                problems.append(problem("400.004", name, f"{name} must be a string", value))
            elif pattern is not None and not re.fullmatch(pattern, value):
                problems.append(
                    problem("400.004", name, f'{name} must match "^{pattern}$"', value, pattern)
                )
            elif max_len is not None and len(value) > max_len:
                problems.append(
                    problem("400.004", name, f"{name} size must be between 0 and {max_len}", value)
                )
        if problems:
            return self._error(request, "400.004", errors=problems)
        for name in ("purchaseOrderNumber", "campaign"):
            if body.get(name) is not None:
                stored.wire[name] = body[name]
        if body.get("orderNotes") is not None:
            stored.line["orderNotes"] = body["orderNotes"]
        self._store.touch()
        return respond("Accepted", 202)

    # --- the actions ------------------------------------------------------------------------

    def _reason(
        self, request: web.Request, body: Any, action: str
    ) -> tuple[str, str, str | None] | web.Response:
        """The action's (reasonCode, its text, otherReason), or the refusal of its body."""
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        code, other = body.get("reasonCode"), body.get("otherReason")
        problems = []
        if code is None:
            problems.append(problem("400.003", "reasonCode", "reasonCode must not be null"))
        elif not isinstance(code, str):
            problems.append(problem("400.004", "reasonCode", "reasonCode must be a string", code))
        if other is not None and not isinstance(other, str):
            problems.append(
                problem("400.004", "otherReason", "otherReason must be a string", other)
            )
        elif isinstance(other, str) and len(other) > 1024:
            problems.append(
                problem("400.004", "otherReason", "otherReason size must be between 0 and 1024")
            )
        if problems:
            return self._error(request, "400.004", errors=problems)
        codes = REWARD_REASONS[action]
        if code not in codes:
            return self._error(request, "422.141", ", ".join(codes))
        if code == "OTHER" and not (isinstance(other, str) and other.strip()):
            return self._error(request, "422.142")
        assert isinstance(code, str)
        text = other if code == "OTHER" and isinstance(other, str) else codes[code]
        return code, text, other

    def _refusal(self, state: _State, keys: tuple[str, str, str, str]) -> str | None:
        """The i18nKey refusing an action on a line item in ``state`` (None: allowed);
        ``keys`` for (cancelled, frozen, failed, pending)."""
        if state.status == "CANCELLED":
            return keys[0]
        if state.reward_status == "FROZEN":
            return keys[1]
        if state.status == "FAILED":
            return keys[2]
        if state.status != "COMPLETE":
            return keys[3]
        return None

    def _record(self, stored: Stored, action: str, reason: str, now: float, **links: str) -> None:
        stored.actions.append(
            {"action": action, "reason": reason, "actionDate": iso(_dt(now)), **links}
        )
        stored.line["lineItemActionReason"] = reason
        self._store.touch()

    def _opened(
        self, request: web.Request, kind: str, refusals: tuple[str, str, str, str] | None
    ) -> tuple[Stored, str, str, float] | web.Response:
        """The common start of a cancel, freeze or unfreeze: the line item, the reason
        code and text of the body (``kind``'s codes), and now; or the refusal to answer
        (unknown line item, bad reason, or the ``refusals`` key its state calls for;
        None: an unfreeze, refused 422.121 unless the reward is FROZEN)."""
        stored = self._store.by_line_item(request.match_info["id"])
        if stored is None:
            return self._error(request, "404.003")
        reason = self._reason(request, current().json, kind)
        if isinstance(reason, web.Response):
            return reason
        code, text, _ = reason
        now = self._now()
        state = self._state(stored, now)
        refused = (
            self._refusal(state, refusals)
            if refusals is not None
            else (None if state.reward_status == "FROZEN" else "422.121")
        )
        if refused is not None:
            return self._error(request, refused)
        return stored, code, text, now

    async def cancel(self, request: web.Request) -> web.Response:
        opened = self._opened(request, "CANCEL", ("422.101", "422.102", "422.103", "422.104"))
        if isinstance(opened, web.Response):
            return opened
        stored, code, text, now = opened
        stored.cancelled_at = now
        self._accounts.refund(stored)
        self._record(stored, "CANCEL", text, now)
        self._reward_event(stored, "CANCEL", "CANCELLED", now, code=code, reason=text)
        return respond("Accepted", 202)

    async def freeze(self, request: web.Request) -> web.Response:
        opened = self._opened(request, "FREEZE", ("422.111", "422.112", "422.113", "422.114"))
        if isinstance(opened, web.Response):
            return opened
        stored, code, text, now = opened
        stored.frozen = True
        self._record(stored, "FREEZE", text, now)
        self._reward_event(stored, "FREEZE", "FROZEN", now, code=code, reason=text)
        return respond("Accepted", 202)

    async def unfreeze(self, request: web.Request) -> web.Response:
        opened = self._opened(request, "UNFREEZE", None)
        if isinstance(opened, web.Response):
            return opened
        stored, code, text, now = opened
        stored.frozen = False
        self._record(stored, "UNFREEZE", text, now)
        self._reward_event(stored, "UNFREEZE", "UNFROZEN", now, code=code, reason=text)
        return respond("Accepted", 202)

    async def reissue(self, request: web.Request) -> web.Response:
        old = self._store.by_line_item(request.match_info["id"])
        if old is None:
            return self._error(request, "404.003")
        body = current().json
        reason = self._reason(request, body, "CANCEL_AND_REISSUE")
        if isinstance(reason, web.Response):
            return reason
        code, text, _ = reason
        new_body = self._reissue_body(old, body)
        if isinstance(new_body, list):
            return self._error(request, "400.004", errors=new_body)
        now = self._now()
        refused = self._refusal(self._state(old, now), ("422.131", "422.132", "422.133", "422.134"))
        if refused is not None:
            return self._error(request, refused)
        accounts = self._accounts
        if old.account in accounts.frozen:
            return frozen_account(self._errors, request.path)
        amount = Decimal(str(new_body["amount"]))
        balance = accounts.balances.get(old.account)
        if balance is not None and balance + (old.charged or 0) < amount:
            return self._error(request, "402.001", old.account)

        new = self._store.build(new_body, now)
        old_line, new_line = old.wire["referenceLineItemID"], new.wire["referenceLineItemID"]
        old.cancelled_at = now
        accounts.refund(old)
        if accounts.fail_next:
            accounts.fail_next -= 1
            new.outcome = "FAILED"
        else:
            accounts.charge(new, amount)
        if accounts.bounce_next and new.wire["deliveryMethod"] == "EMAIL":
            accounts.bounce_next -= 1
            new.bounce = True
        links = {"oldReferenceLineItemId": old_line, "newReferenceLineItemId": new_line}
        old.line["reissuedToReferenceLineItemId"] = new_line
        new.line["reissuedFromReferenceLineItemId"] = old_line
        if isinstance(body.get("notes"), str):
            new.line["orderNotes"] = body["notes"]
        self._record(old, "REISSUE", text, now, **links)
        self._record(new, "REISSUE", text, now, **links)
        self._store.add(new)
        self._reward_event(
            old, "REISSUE", "CANCELLED", now, code=code, reason=text, new_line=new_line
        )
        self.track(new)
        view = self._store.view(new, now)
        view.setdefault("externalRefID", None)
        view["redemptionInstructions"] = dig(new.wire, ("reward", "redemptionInstructions"))
        return respond(view, 201)

    def _reissue_body(self, old: Stored, body: dict[str, Any]) -> dict[str, Any] | list[Any]:
        """The POST /orders body of a reissue of ``old``, or the problems of ``body``."""
        problems = []
        amount = body.get("amount")
        if amount is not None and (
            isinstance(amount, bool)
            or not isinstance(amount, (int, Decimal))
            or not Decimal(amount).is_finite()
            or amount <= 0
        ):
            problems.append(problem("400.004", "amount", "amount must be a number above 0", amount))
        method = body.get("deliveryMethod")
        if method is not None and method not in _REISSUE_METHODS:
            problems.append(
                problem(
                    "400.004",
                    "deliveryMethod",
                    f"deliveryMethod must be one of {'|'.join(_REISSUE_METHODS)}",
                    method,
                )
            )
        who = body.get("recipient")
        if who is not None and not isinstance(who, dict):
            problems.append(problem("400.004", "recipient", "recipient must be an object", who))
            who = None
        for name in ("firstName", "lastName", "email", "mobileNumber"):
            value = (who or {}).get(name)
            if value is not None and not isinstance(value, str):
                path = f"recipient.{name}"
                problems.append(problem("400.004", path, f"{path} must be a string", value))
        notes = body.get("notes")
        if notes is not None and (not isinstance(notes, str) or len(notes) > 150):
            problems.append(
                problem("400.004", "notes", "notes must be a string of at most 150", notes)
            )
        if problems:
            return problems
        w = old.wire
        new: dict[str, Any] = {
            k: w[k]
            for k in (
                "customerIdentifier",
                "accountIdentifier",
                "utid",
                "ptid",
                "etid",
                "sender",
                "emailSubject",
                "message",
                "campaign",
                "purchaseOrderNumber",
                "notes",
            )
            if w.get(k) is not None
        }
        new["amount"] = amount if amount is not None else w["denomination"]["value"]
        new["deliveryMethod"] = method or w.get("deliveryMethod")
        recipient = dict(w.get("recipient") or {})
        recipient |= {k: v for k, v in (who or {}).items() if v is not None}
        new["recipient"] = recipient or None
        if notes is not None:
            new["notes"] = notes
        found = check_order(new)
        return found if found else new

    # --- GET /lineItems -----------------------------------------------------------------------

    async def list_line_items(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            per = self._int(q, "elementsPerBlock", _DEFAULT_PER_BLOCK)
            start = self._time(q, "startDate")
            end = self._time(q, "endDate")
            low = self._decimal(q, "minRemainingBalance")
            high = self._decimal(q, "maxRemainingBalance")
            has = self._bool(q, "hasRemainingBalance")
            previous = bool(self._bool(q, "pagePrevious"))
            ascending = bool(self._bool(q, "columnSortAscending"))
            column = q.get("columnSortName", "dateIssued")
            if column not in _SORT_COLUMNS:
                raise _BadQuery(f"columnSortName={column}")
            for name, allowed in _ENUM_FILTERS.items():
                if name in q and q[name] not in allowed:
                    raise _BadQuery(f"{name}={q[name]}")
            keys = self._page_keys(q, column)
            if per < 1:
                raise _BadQuery(f"elementsPerBlock={per}")
        except _BadQuery as e:
            return self._error(request, "400.002", str(e))
        if per > _MAX_PER_BLOCK:
            return self._error(request, "422.042")
        max_days = self._host.max_range_days
        if (
            max_days is not None
            and start is not None
            and end is not None
            and end - start > timedelta(days=max_days)
        ):
            return self._error(request, "422.043", max_days)

        now = self._now()
        exact = [(path, q[name]) for name, path in _TEXT_FILTERS.items() if name in q]
        enums = [(name, q[name]) for name in _ENUM_FILTERS if name in q]
        notes = q.get("orderNotes")
        rows: list[tuple[tuple[Any, str], Stored, _State]] = []
        for stored in self._store.created_between(start, end):
            w = stored.wire
            if exact and not all(_text(dig(w, p)) == v for p, v in exact):
                continue
            if notes is not None and _text(self._notes(stored)) != notes:
                continue
            state = self._state(stored, now)
            if enums and not all(self._enum(stored, state, n, now) == v for n, v in enums):
                continue
            if low is not None or high is not None or has is not None:
                balance = self._balance(stored, state)
                if has is not None and (balance is not None and balance > 0) != has:
                    continue
                if low is not None and (balance is None or balance < low):
                    continue
                if high is not None and (balance is None or balance > high):
                    continue
            sort_key = (self._sort_value(stored, state, column, now), w["referenceLineItemID"])
            rows.append((sort_key, stored, state))
        rows.sort(key=lambda r: r[0])
        sort_keys = [r[0] for r in rows]
        n = len(rows)
        if not ascending:
            rows.reverse()
        if keys is None:
            begin = 0
        elif not previous:  # the page after ``keys``: in descending order, the keys below
            if ascending:
                begin = bisect.bisect_right(sort_keys, keys)
            else:
                begin = n - bisect.bisect_left(sort_keys, keys)
        else:  # the page before ``keys``: in descending order, the keys above
            if ascending:
                before = bisect.bisect_left(sort_keys, keys)
            else:
                before = n - bisect.bisect_right(sort_keys, keys)
            begin = max(0, before - per)
            per = before - begin
        block = rows[begin : begin + per]
        return respond(
            {
                "keysetPage": {
                    "nextPageKeys": (
                        _wire_keys(block[-1][0]) if block and begin + len(block) < n else []
                    ),
                    "previousPageKeys": _wire_keys(block[0][0]) if block and begin > 0 else [],
                    "resultCount": len(block),
                    "totalCount": n,
                },
                "lineItems": [self.view(s, now, verbose=False) for _, s, _ in block],
            }
        )

    @staticmethod
    def _balance(stored: Stored, state: _State) -> Decimal | None:
        if state.status == "COMPLETE":
            return Decimal(str(stored.wire["denomination"]["value"]))
        return Decimal(0) if state.status == "CANCELLED" else None

    def _enum(self, stored: Stored, state: _State, name: str, now: float) -> Any:
        if name == "status":
            return state.status
        if name == "orderStatus":
            return self._store.status(stored, now)
        if name == "emailStatus":
            return state.email_status
        if name == "deliveryStatus":
            return state.delivery_status
        if name == "orderSource":
            return "RA"
        return stored.wire.get("deliveryMethod")

    def _sort_value(self, stored: Stored, state: _State, column: str, now: float) -> Any:
        w = stored.wire
        if column == "amountIssued":
            return Decimal(str(w["denomination"]["value"]))
        value = {
            "dateIssued": w["createdAt"],
            "accountNumber": w.get("accountNumber"),
            "externalReferenceId": w.get("externalRefID"),
            "recipientFirstName": dig(w, ("recipient", "firstName")),
            "recipientLastName": dig(w, ("recipient", "lastName")),
            "rewardName": w.get("rewardName"),
        }.get(column)
        if column in ("status", "orderStatus", "emailStatus", "deliveryMethod", "orderSource"):
            value = self._enum(stored, state, column, now)
        return "" if value is None else str(value)

    @staticmethod
    def _int(q: Mapping[str, str], name: str, default: int) -> int:
        if name not in q:
            return default
        try:
            return int(q[name])
        except ValueError:
            raise _BadQuery(f"{name}={q[name]}") from None

    @staticmethod
    def _time(q: Mapping[str, str], name: str) -> datetime | None:
        if name not in q:
            return None
        try:
            return parse_time(q[name])
        except ValueError:
            raise _BadQuery(f"{name}={q[name]}") from None

    @staticmethod
    def _decimal(q: Mapping[str, str], name: str) -> Decimal | None:
        if name not in q:
            return None
        try:
            value = Decimal(q[name])
        except (InvalidOperation, ValueError):
            raise _BadQuery(f"{name}={q[name]}") from None
        if not value.is_finite():
            raise _BadQuery(f"{name}={q[name]}")
        return value

    @staticmethod
    def _bool(q: Mapping[str, str], name: str) -> bool | None:
        if name not in q:
            return None
        value = _is_bool(q[name])
        if value is None:
            raise _BadQuery(f"{name}={q[name]}")
        return value

    @staticmethod
    def _page_keys(q: Any, column: str) -> tuple[Any, str] | None:
        """``pageKeys`` (repeated, or one comma-separated value): the sort value and the
        line item ID of the row the page starts after (or, ``pagePrevious``, before)."""
        given = [v for v in q.getall("pageKeys", []) if v != ""]
        if not given:
            return None
        if len(given) == 1 and "," in given[0]:
            given = given[0].rsplit(",", 1)
        if len(given) != 2:
            raise _BadQuery("pageKeys=" + ",".join(given))
        value, line = given
        if column == "amountIssued":
            try:
                return Decimal(value), line
            except InvalidOperation:
                raise _BadQuery(f"pageKeys={value}") from None
        if column == "dateIssued" and value:
            try:
                parse_time(value)
            except ValueError:
                raise _BadQuery(f"pageKeys={value}") from None
        return value, line


def _wire_keys(key: tuple[Any, str]) -> list[str]:
    return [str(key[0]), key[1]]


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
