"""The sandbox's order store: orders and their line items as stored, built from requests or
seeded, with their lookups (by ID, externalRefID, line item), the GET /orders filters over a
createdAt index, and the accounts orders are charged to."""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ._rules import delivery_method
from ._wire import iso

__all__ = [
    "DEFAULT_CATALOG",
    "ECHOED",
    "LIST_FILTERS",
    "STATUS_FILTERS",
    "Accounts",
    "CatalogItem",
    "OrderStore",
    "Stored",
    "dig",
]

# request fields an order echoes back as they came
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


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """A reward the sandbox can issue: its name and kind (gift_card, promo_link, physical),
    and how GET /catalogs shows it (see ``_catalog``): its brand (None: named after the
    reward), currency, value rule (VARIABLE_VALUE from ``min_value`` to ``max_value``, or
    FIXED_VALUE at ``face_value``), whether amounts must be whole, status (Tango writes
    "active" / "inactive"), reward type and countries. Orders name their reward from it;
    with ``Sandbox(strict_catalog=True)`` they must also fit its rules."""

    reward_name: str
    kind: str = "gift_card"
    brand: str | None = None
    currency_code: str = "USD"
    value_type: str = "VARIABLE_VALUE"
    min_value: Decimal | None = Decimal("0.01")
    max_value: Decimal | None = Decimal("2000")
    face_value: Decimal | None = None
    whole_amounts: bool = False
    status: str = "active"
    reward_type: str = "gift card"
    countries: tuple[str, ...] = ("US",)


def _fixed(name: str, brand: str, value: int, currency: str = "USD", **kw: Any) -> CatalogItem:
    return CatalogItem(
        name,
        brand=brand,
        currency_code=currency,
        value_type="FIXED_VALUE",
        min_value=None,
        max_value=None,
        face_value=Decimal(value),
        **kw,
    )


# The sandbox's default catalog: variable- and fixed-value items, an inactive item, items
# in EUR and CAD, one that takes whole amounts only (the first three are those orders
# named before the catalog existed, with their names and kinds).
DEFAULT_CATALOG = {
    "U561593": CatalogItem("Amazon.com Gift Card", brand="Amazon.com"),
    "U666425": CatalogItem(
        "Promo Link",
        "promo_link",
        brand="Tango Promo Link",
        min_value=Decimal("1"),
        max_value=Decimal("1000"),
        reward_type="reward link",
    ),
    "U157189": CatalogItem(
        "Visa Prepaid Card (physical)",
        "physical",
        brand="Visa Prepaid",
        min_value=Decimal("10"),
        max_value=Decimal("500"),
        reward_type="physical gift card",
    ),
    "U100010": _fixed("Target Gift Card $10", "Target", 10),
    "U100025": _fixed("Target Gift Card $25", "Target", 25),
    "U100050": _fixed("Target Gift Card $50", "Target", 50),
    "U400100": CatalogItem(
        "Steam Wallet Code",
        brand="Steam",
        min_value=Decimal("5"),
        max_value=Decimal("100"),
        whole_amounts=True,
    ),
    "U300100": CatalogItem(
        "Amazon.de Gutschein",
        brand="Amazon.de",
        currency_code="EUR",
        min_value=Decimal("1"),
        max_value=Decimal("500"),
        countries=("DE",),
    ),
    "U300225": _fixed("Tim Hortons $25 CAD", "Tim Hortons", 25, "CAD", countries=("CA",)),
    "U999001": CatalogItem(
        "Discontinued Store Gift Card",
        brand="Discontinued Store",
        min_value=Decimal("5"),
        max_value=Decimal("100"),
        status="inactive",
    ),
}


@dataclass(slots=True)
class Stored:
    """One stored order: its wire fields but the status, made at ``ts``, and the state of
    its line item that requests change (see :mod:`._line_items`)."""

    wire: dict[str, Any]
    ts: float  # createdAt, epoch seconds
    account: str
    outcome: str = "COMPLETE"  # what PENDING turns into
    charged: Decimal | None = None  # what its account was charged (None: nothing)
    bounce: bool = False  # its email bounces (EMAIL delivery)
    frozen: bool = False  # its reward is frozen
    cancelled_at: float | None = None  # when it was cancelled (or reissued)
    # line-item fields that are not the order's: orderNotes, lineItemActionReason,
    # reissuedFromReferenceLineItemId, reissuedToReferenceLineItemId
    line: dict[str, Any] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)  # lineItemActionHistory


@dataclass
class Accounts:
    """The accounts orders are charged to: funded without limit unless in ``balances``,
    refusing orders while in ``frozen``; the next ``fail_next`` orders end FAILED, uncharged.

    ``balances`` holds the balance of every account registered (``Sandbox.add_account``,
    ``POST /customers/{id}/accounts``, ``Sandbox.set_balance``); ``on_change``, when set,
    is told of every charge and refund: (account, balance before, balance after, when:
    epoch seconds of the sandbox clock), e.g. to publish low-balance events."""

    balances: dict[str, Decimal] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    fail_next: int = 0
    bounce_next: int = 0  # the next EMAIL orders whose email bounces
    on_change: Callable[[str, Decimal, Decimal, float], None] | None = None

    def charge(self, stored: Stored, amount: Decimal) -> None:
        """Charge ``stored``'s account ``amount`` (nothing while it is funded without limit)."""
        balance = self.balances.get(stored.account)
        if balance is not None:
            self.balances[stored.account] = balance - amount
            stored.charged = amount
            self._changed(stored.account, balance, stored.ts)

    def refund(self, stored: Stored) -> None:
        """Give ``stored``'s account back what it was charged for it, once."""
        if stored.charged is not None:
            balance = self.balances.get(stored.account)
            if balance is not None:
                self.balances[stored.account] = balance + stored.charged
                self._changed(stored.account, balance, stored.cancelled_at or stored.ts)
            stored.charged = None

    def _changed(self, account: str, before: Decimal, when: float) -> None:
        if self.on_change is not None:
            self.on_change(account, before, self.balances[account], when)


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` (keys) in nested dicts; None where one is missing."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


class OrderStore:
    """Every order the sandbox holds, indexed by referenceOrderID, externalRefID, line item
    ID and createdAt (newest first). An order is PENDING for ``pending_for`` seconds after
    its createdAt, then its outcome; rewards are named from ``catalog`` by utid."""

    def __init__(self, *, pending_for: float, catalog: dict[str, CatalogItem]) -> None:
        self.pending_for = pending_for
        self.catalog = catalog
        self._orders: dict[str, Stored] = {}
        self._by_ext: dict[str, str] = {}
        self._by_line: dict[str, str] = {}
        self._index: list[tuple[float, str]] = []  # (-createdAt, id): newest first
        self._version = 0
        self._cache: dict[tuple[Any, ...], list[Stored]] = {}
        self._seq = itertools.count(1)
        self._seed_ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._orders)

    # --- lookups ----------------------------------------------------------------------------

    def get(self, order_id: str) -> Stored | None:
        return self._orders.get(order_id)

    def by_external_ref(self, external_ref_id: str) -> Stored | None:
        oid = self._by_ext.get(external_ref_id)
        return None if oid is None else self._orders[oid]

    def by_line_item(self, line_item_id: str) -> Stored | None:
        oid = self._by_line.get(line_item_id)
        return None if oid is None else self._orders[oid]

    def views(self, now: float) -> dict[str, dict[str, Any]]:
        """Every order as the API would show it at ``now``, by referenceOrderID."""
        return {oid: self.view(s, now) for oid, s in self._orders.items()}

    def status(self, stored: Stored, now: float) -> str:
        if stored.cancelled_at is not None:
            return "CANCELLED"
        if now < stored.ts + self.pending_for:
            return "PENDING"
        return stored.outcome

    def touch(self) -> None:
        """Note that a stored order changed (a cancel, an update): cached lists go stale."""
        self._version += 1

    def created_between(self, start: datetime | None, end: datetime | None) -> list[Stored]:
        """The orders created from ``start`` to ``end`` (inclusive, None: unbounded),
        newest first."""
        lo = 0 if end is None else bisect.bisect_left(self._index, (-end.timestamp(), ""))
        hi = (
            len(self._index)
            if start is None
            else bisect.bisect_right(self._index, (-start.timestamp(), "\uffff"))
        )
        orders = self._orders
        return [orders[oid] for _, oid in self._index[lo:hi]]

    def view(self, stored: Stored, now: float, *, listing: bool = False) -> dict[str, Any]:
        """The order as the API shows it at ``now`` (``listing``: as GET /orders, without
        its reward)."""
        status = self.status(stored, now)
        view = {**stored.wire, "status": status, "orderStatus": status, "lineItemStatus": status}
        if listing:
            view.pop("reward", None)
        return view

    # --- adding -----------------------------------------------------------------------------

    def add(self, stored: Stored, *, sort: bool = True) -> None:
        """Store ``stored``; ``sort=False`` leaves the index to be sorted by the caller."""
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

    def build(self, body: dict[str, Any], ts: float) -> Stored:
        """A new order (not stored yet) from a valid POST /orders body, created at ``ts``."""
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
            "externalRefID": body.get("externalRefID"),
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
            "reward": _reward(item, seq, created, body.get("expirationDate")),
        }
        return Stored(wire, ts, account)

    def seed(
        self, count: int, *, start: datetime, step: timedelta, fields: Mapping[str, Any]
    ) -> list[str]:
        """Store ``count`` orders created at ``start + i * step``; return their IDs (see
        :meth:`Sandbox.seed_orders <tango_async.testing.Sandbox.seed_orders>`)."""
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
            stored = self.build(one, ts)
            stored.outcome = outcome
            stored.wire.update(extra)
            self.add(stored, sort=False)
            ids.append(stored.wire["referenceOrderID"])
        self._index.sort()
        self._version += 1
        return ids

    # --- GET /orders --------------------------------------------------------------------------

    def query(
        self,
        q: Mapping[str, str],
        start: datetime | None,
        end: datetime | None,
        low: Decimal | None,
        high: Decimal | None,
        now: float,
    ) -> list[Stored]:
        """The orders GET /orders with query ``q`` finds, newest first: created from
        ``start`` to ``end``, amounts from ``low`` to ``high``, the other parameters
        compared as text (:data:`LIST_FILTERS`, :data:`STATUS_FILTERS`). Cached until the
        store changes, except with a status filter while orders are PENDING for a while
        (``pending_for``): their status turns with time."""
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
            if exact and not all(_text(dig(s.wire, p)) == v for p, v in exact):
                continue
            if low is not None or high is not None:
                amount = Decimal(s.wire["denomination"]["value"])
                if (low is not None and amount < low) or (high is not None and amount > high):
                    continue
            if statuses and any(self.status(s, now) != v for v in statuses):
                continue
            found.append(s)
        if not dynamic:
            if len(self._cache) > 16 or any(k[0] != self._version for k in self._cache):
                self._cache.clear()
            self._cache[key] = found
        return found


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
