"""Line-item models: a line item as Tango shows it, its pages, and the bodies of the
line-item actions (update, cancel, freeze, unfreeze, reissue).

Wire names follow the spec, including its irregular spellings: ``referenceLineItemID``
and ``externalReferenceLineItemID`` but ``reissuedFromReferenceLineItemId``; the errors
of a line item say ``error_code``. Unknown response fields are ignored; statuses stay
plain strings (see :mod:`tango_async.types.enums` for the documented values).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from .orders import AwareDatetime, Money, Order, RecipientView, Reward, Sender, _Wire
from .webhooks import masked_repr

__all__ = [
    "LineItem",
    "LineItemAction",
    "LineItemActionRequest",
    "LineItemError",
    "LineItemPage",
    "ReasonCodes",
    "ReissueLineItemRequest",
    "ReissueRecipient",
    "ReissuedLineItem",
    "ResendAudit",
    "RewardViewEvent",
    "UpdateLineItemRequest",
]


class LineItemError(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False):
    """An error Tango records on a line item (``lineItemErrors``)."""

    error_code: str | None = None
    error_message: str | None = None


class LineItemAction(_Wire, kw_only=True, gc=False):
    """One action taken on a line item (cancel, freeze, unfreeze, reissue...)."""

    action: str | None = None
    reason: str | None = None
    action_date: str | None = None  # the spec types it as a plain string
    old_reference_line_item_id: str | None = None
    new_reference_line_item_id: str | None = None


class ResendAudit(_Wire, kw_only=True, gc=False):
    """One resend of a line item, as its ``resendHistory`` records it."""

    date_issued: AwareDatetime | None = None
    sender: Sender | None = None
    recipient: RecipientView | None = None
    delivery_method: str | None = None
    delivery_status: str | None = None
    etid: str | None = None
    reason_code: str | None = None
    other_reason: str | None = None


class RewardViewEvent(_Wire, kw_only=True, gc=False):
    """When the recipient viewed the reward, and its status then (``rewardViewHistory``)."""

    date: AwareDatetime | None = None
    status: str | None = None


class LineItem(_Wire, kw_only=True, gc=False):
    """A line item: one reward of an order (``GET /lineItems/{id}``; in lists, without its
    ``reward`` and histories).

    ``status`` is the line item's (COMPLETE, PENDING, FAILED, CANCELLED...);
    ``order_status`` its order's; ``email_status`` (DELIVERED, BOUNCE...) and
    ``delivery_status`` (PENDING, DELIVERED, FAILED...) say how delivery went;
    ``reward_status`` (e.g. FROZEN) the reward's own state; ``can_cancel`` /
    ``can_freeze`` whether Tango accepts those actions now.
    """

    reference_line_item_id: str = msgspec.field(name="referenceLineItemID")
    external_reference_line_item_id: str | None = msgspec.field(
        default=None, name="externalReferenceLineItemID"
    )
    reference_order_id: str | None = msgspec.field(default=None, name="referenceOrderID")
    order_source: str | None = None
    status: str | None = None
    order_status: str | None = None
    email_status: str | None = None
    delivery_method: str | None = None
    delivery_status: str | None = None
    reward_status: str | None = None
    can_cancel: bool | None = None
    can_freeze: bool | None = None
    line_number: int | None = None
    reward_name: str | None = None
    amount_issued: Money | None = None
    amount_charged: Money | None = None
    remaining_balance: Decimal | None = None
    date_issued: AwareDatetime | None = None
    expiration_date: AwareDatetime | None = None
    account_number: str | None = None
    account_identifier: str | None = None
    customer_identifier: str | None = None
    etid: str | None = None
    ptid: str | None = None
    utid: str | None = None
    recipient: RecipientView | None = None
    sender: Sender | None = None
    purchase_order_number: str | None = None
    campaign: str | None = None
    order_notes: str | None = None
    line_item_action_reason: str | None = None
    reissued_from_reference_line_item_id: str | None = None
    reissued_to_reference_line_item_id: str | None = None
    line_item_errors: list[LineItemError] | None = None
    quantity: int | None = None
    reward: Reward | None = None
    resend_history: list[ResendAudit] | None = None
    redemption_history: list[LineItem] | None = None
    line_item_action_history: list[LineItemAction] | None = None
    reward_view_history: list[RewardViewEvent] | None = None


class LineItemPage(msgspec.Struct, kw_only=True):
    """One page of ``GET /lineItems``: its line items and the keys of the pages around it
    (keyset paging: pass ``next_page_keys`` back to get the next page)."""

    line_items: list[LineItem]
    next_page_keys: list[str]
    previous_page_keys: list[str]
    result_count: int | None
    total_count: int | None


class KeysetPageWire(_Wire, kw_only=True, gc=False):
    next_page_keys: list[str] | None = None
    previous_page_keys: list[str] | None = None
    result_count: int | None = None
    total_count: int | None = None


class LineItemListWire(_Wire, kw_only=True, gc=False):
    keyset_page: KeysetPageWire | None = None
    line_items: list[LineItem] | None = None


class ReasonCodes(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False):
    """The reason codes of each line-item action, code -> description
    (``GET /lineItems/reasonCodes``)."""

    freeze: dict[str, str] = msgspec.field(default_factory=dict, name="FREEZE")
    unfreeze: dict[str, str] = msgspec.field(default_factory=dict, name="UNFREEZE")
    cancel: dict[str, str] = msgspec.field(default_factory=dict, name="CANCEL")
    cancel_and_reissue: dict[str, str] = msgspec.field(
        default_factory=dict, name="CANCEL_AND_REISSUE"
    )


class ReissuedLineItem(Order, kw_only=True, gc=False):
    """The order a reissue created (``OrderViewSummary``): the new line item's order, with
    its reward."""

    redemption_instructions: str | None = None

    def __repr__(self) -> str:
        # The instructions may hold the redemption link or code: masked, as Reward does.
        return masked_repr(self, "redemption_instructions")


class EmbeddedUrlWire(_Wire, kw_only=True, gc=False):
    url: str | None = None


# --- requests ---------------------------------------------------------------------------


class UpdateLineItemRequest(_Wire, kw_only=True):
    """Body of ``PATCH /lineItems/{referenceLineItemID}``."""

    purchase_order_number: str | None = None
    campaign: str | None = None
    order_notes: str | None = None


class LineItemActionRequest(_Wire, kw_only=True):
    """Body of a line-item cancel, freeze or unfreeze: a reason code (OTHER needs
    ``other_reason``)."""

    reason_code: str
    other_reason: str | None = None


class ReissueRecipient(_Wire, kw_only=True):
    """Who a reissued reward goes to, where it changes (``recipient`` of a reissue)."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    mobile_number: str | None = None


class ReissueLineItemRequest(_Wire, kw_only=True):
    """Body of ``POST /lineItems/{referenceLineItemID}/reissue``."""

    reason_code: str
    other_reason: str | None = None
    amount: Decimal | None = None
    delivery_method: str | None = None
    recipient: ReissueRecipient | None = None
    notes: str | None = None
