"""Webhook models: subscriptions, event types, and the events Tango delivers.

A delivered event is a :class:`WebhookEvent`: the envelope the spec's ``*EventDataView``
schemas share (``eventId``, ``revision``, ``eventType``, ``categories``,
``eventOccurredAt``, ``eventData``) with ``event_data`` decoded into the Struct of its
event type where the type is known (:data:`EVENT_DATA_TYPES`), else kept as the decoded
JSON object. Secrets a subscription carries (its HMAC key, the values of its custom
headers) never appear in a repr.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec

from .orders import AwareDatetime, _Wire

__all__ = [
    "EVENT_DATA_TYPES",
    "AccountStatusEventData",
    "AsyncOrderStatusEventData",
    "CredentialStatusEventData",
    "CursorPage",
    "EventTypeGroup",
    "ExchangeRatesStatusEventData",
    "ItemAvailabilityEventData",
    "LineItemDeliveryStatusEventData",
    "LowBalanceEventData",
    "RewardStatusEventData",
    "TransactionEventData",
    "Webhook",
    "WebhookEvent",
    "WebhookExpiry",
    "WebhookHeader",
]

_MASK = "'***'"


def masked_repr(obj: msgspec.Struct, *secret: str) -> str:
    """``Name(field=value, ...)`` over every field, those named in ``secret`` shown as
    ``'***'`` when set."""
    parts = (
        f"{name}={_MASK if name in secret and value is not None else repr(value)}"
        for name in obj.__struct_fields__
        for value in (getattr(obj, name),)
    )
    return f"{type(obj).__name__}({', '.join(parts)})"


class WebhookHeader(_Wire, kw_only=True):
    """A header Tango sends with every delivery (for the listener's own authentication):
    its value is shown masked."""

    name: str
    value: str

    def __repr__(self) -> str:
        return f"WebhookHeader(name={self.name!r}, value={_MASK})"


class WebhookSubscriptionRequest(_Wire, kw_only=True):
    """Body of ``POST /webhooks`` and (every field optional) ``PATCH /webhooks/{id}``."""

    url: str | None = None
    headers: list[WebhookHeader] | None = None
    categories: list[str] | None = None
    event_types: list[str] | None = None
    signing_certificate: str | None = None
    hmac_shared_secret_key: str | None = None
    payload_verification_method: str | None = None

    def __repr__(self) -> str:
        return masked_repr(self, "hmac_shared_secret_key")


class WebhookExpiry(_Wire, kw_only=True, gc=False):
    """A subscription created or renewed: its ID and when it expires."""

    webhook_id: str | None = None
    expires_at: AwareDatetime | None = None


class Webhook(_Wire, kw_only=True, gc=False):
    """A webhook subscription (``GET /webhooks/{webhookId}``)."""

    webhook_id: str | None = None
    url: str | None = None
    headers: list[WebhookHeader] | None = None
    categories: list[str] | None = None
    event_types: list[str] | None = None
    signing_certificate: str | None = None
    hmac_shared_secret_key: str | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    payload_verification_method: str | None = None

    def __repr__(self) -> str:
        return masked_repr(self, "hmac_shared_secret_key")


class CursorPageWire(_Wire, kw_only=True, gc=False):
    number_of_elements: int | None = None
    max_results: int | None = None
    prev_cursor: str | None = None
    next_cursor: str | None = None
    prev_page_available: bool | None = None
    next_page_available: bool | None = None


class WebhookListWire(CursorPageWire, kw_only=True, gc=False):
    items: list[Webhook] | None = None


class EventTypeGroup(_Wire, kw_only=True, gc=False):
    """A category of events and the event types in it (``GET /webhooks/eventtypes``)."""

    category: str | None = None
    event_types: list[str] = msgspec.field(default_factory=list)


class EventTypeListWire(CursorPageWire, kw_only=True, gc=False):
    items: list[EventTypeGroup] | None = None


class EventListWire(CursorPageWire, kw_only=True, gc=False):
    items: list[msgspec.Raw] | None = None


# --- event data, one Struct per event type -----------------------------------------------


class RewardStatusEventData(_Wire, kw_only=True, gc=False):
    """A line item's reward changed status (completed, failed, cancelled, frozen...)."""

    reference_line_item_id: str | None = None
    external_ref_id: str | None = msgspec.field(default=None, name="externalRefID")
    action: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    status: str | None = None
    type: str | None = None
    new_reference_line_item_id: str | None = None


class LineItemDeliveryStatusEventData(_Wire, kw_only=True, gc=False):
    """A line item's delivery status changed."""

    reference_line_item_id: str | None = None
    status: str | None = None


class AccountStatusEventData(_Wire, kw_only=True, gc=False):
    """An account's status changed."""

    account_identifier: str | None = None
    status: str | None = None


class ItemAvailabilityEventData(_Wire, kw_only=True, gc=False):
    """A catalog item's availability changed."""

    utid: str | None = None
    status: str | None = None


class CredentialStatusEventData(_Wire, kw_only=True, gc=False):
    """A platform credential's status changed."""

    platform_name: str | None = None
    credential_name: str | None = None
    credential_type: str | None = None
    status: str | None = None
    last_updated_by: str | None = None


class TransactionEventData(_Wire, kw_only=True, gc=False):
    """Money moved on an account (a deposit, a transfer...)."""

    customer_identifier: str | None = None
    account_identifier: str | None = None
    transaction_type: str | None = None
    transaction_id: int | None = None
    funding_method: str | None = None
    funding_type: str | None = None
    transfer_to_account_identifier: str | None = None
    transfer_from_account_identifier: str | None = None
    invoice_number: str | None = None
    currency: str | None = None
    amount: Decimal | None = None
    note: str | None = None


class LowBalanceEventData(_Wire, kw_only=True, gc=False):
    """An account's balance fell below an alert's threshold."""

    account_identifier: str | None = None
    balance: Decimal | None = None
    balance_threshold: Decimal | None = None
    balance_alert_identifier: str | None = None


class AsyncOrderStatusEventData(_Wire, kw_only=True, gc=False):
    """An async order's status changed."""

    external_ref_id: str | None = msgspec.field(default=None, name="externalRefID")
    status: str | None = None
    total_line_items: int | None = None
    failed_line_items: int | None = None
    successful_line_items: int | None = None
    reference_order_id: str | None = None
    account_identifier: str | None = None
    customer_identifier: str | None = None


class ExchangeRatesStatusEventData(_Wire, kw_only=True, gc=False):
    """Exchange rates were updated."""

    status: str | None = None


EventData = (
    RewardStatusEventData
    | LineItemDeliveryStatusEventData
    | AccountStatusEventData
    | ItemAvailabilityEventData
    | CredentialStatusEventData
    | TransactionEventData
    | LowBalanceEventData
    | AsyncOrderStatusEventData
    | ExchangeRatesStatusEventData
)

# event type (lowercase, letters and digits only) -> its eventData Struct
EVENT_DATA_TYPES: dict[str, type[EventData]] = {
    "rewardstatus": RewardStatusEventData,
    "lineitemdeliverystatus": LineItemDeliveryStatusEventData,
    "accountstatus": AccountStatusEventData,
    "itemavailability": ItemAvailabilityEventData,
    "credentialstatus": CredentialStatusEventData,
    "transaction": TransactionEventData,
    "lowbalance": LowBalanceEventData,
    "asyncorderstatus": AsyncOrderStatusEventData,
    "exchangeratesstatus": ExchangeRatesStatusEventData,
}


class WebhookEvent(msgspec.Struct, gc=False):
    """One webhook event: the envelope of the spec's ``*EventDataView`` schemas.

    ``event_data`` is the Struct of the event type (:data:`EVENT_DATA_TYPES`), or the
    decoded JSON object for a type this version does not know (or a body that does not
    fit its type). ``categories`` also takes the doc pages' single ``category``, and
    ``event_type`` their one-element ``eventTypes``. :attr:`subject` names what the
    event is about, the unit within which revisions are ordered.
    """

    event_id: str
    revision: int | None = None
    event_type: str | None = None
    categories: list[str] = msgspec.field(default_factory=list)
    event_occurred_at: AwareDatetime | None = None
    event_data: EventData | dict[str, Any] | None = None

    @property
    def subject(self) -> str:
        """What the event is about: ``line_item:<id>``, ``account:<id>``, ``item:<utid>``,
        ``order:<externalRefID>``..., else its event type."""
        data = self.event_data
        if isinstance(data, dict):
            for key, kind in (
                ("referenceLineItemId", "line_item"),
                ("referenceLineItemID", "line_item"),
                ("accountIdentifier", "account"),
                ("utid", "item"),
                ("externalRefID", "order"),
            ):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return f"{kind}:{value}"
        elif data is not None:
            for attr, kind in (
                ("reference_line_item_id", "line_item"),
                ("account_identifier", "account"),
                ("utid", "item"),
                ("external_ref_id", "order"),
                ("credential_name", "credential"),
            ):
                value = getattr(data, attr, None)
                if isinstance(value, str) and value:
                    return f"{kind}:{value}"
        return f"type:{self.event_type or ''}"


class EventEnvelopeWire(_Wire, kw_only=True, gc=False):
    """What a delivery body may hold, with the doc pages' variants."""

    event_id: str | None = None
    revision: int | None = None
    event_type: str | None = None
    event_types: list[str] | None = None
    categories: list[str] | None = None
    category: str | list[str] | None = None
    event_occurred_at: AwareDatetime | None = None
    event_data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


ItemT = TypeVar("ItemT")


class CursorPage(msgspec.Struct, Generic[ItemT], kw_only=True):
    """One page of a cursor-paged webhook list: its items and the cursors around it."""

    items: list[ItemT]
    next_cursor: str | None = None
    prev_cursor: str | None = None
    has_next: bool = False
