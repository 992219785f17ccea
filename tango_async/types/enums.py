"""String enums of wire values. Responses keep plain ``str``: new values never break decoding."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "FINAL_LINE_ITEM_STATUSES",
    "FINAL_ORDER_STATUSES",
    "CancelReasonCode",
    "DeliveryMethod",
    "DeliveryStatus",
    "EmailStatus",
    "FreezeReasonCode",
    "LineItemStatus",
    "OrderSource",
    "OrderStatus",
    "ReissueReasonCode",
    "ResendReasonCode",
    "WebhookEventType",
    "WebhookVerification",
    "is_final_line_item_status",
    "is_final_order_status",
]


class DeliveryMethod(StrEnum):
    """How Tango delivers a reward (``deliveryMethod``)."""

    NONE = "NONE"
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    ADDRESS = "ADDRESS"
    EMBEDDED = "EMBEDDED"
    EMBEDDED_COMPONENT = "EMBEDDED_COMPONENT"
    WHATSAPP = "WHATSAPP"
    BULKSHIPMENT = "BULKSHIPMENT"
    QRCODE = "QRCODE"
    BULKDIGITAL = "BULKDIGITAL"


class OrderStatus(StrEnum):
    """Order status values documented so far; responses may carry others."""

    COMPLETE = "COMPLETE"
    PENDING = "PENDING"
    FAILED = "FAILED"
    QUEUED = "QUEUED"
    PENDING_MR = "PENDING_MR"
    ON_HOLD = "ON_HOLD"
    CANCELLED = "CANCELLED"
    PARTIAL = "PARTIAL"
    DELETED = "DELETED"
    PENDING_KYB = "PENDING_KYB"
    PENDING_PAYMENT = "PENDING_PAYMENT"


class LineItemStatus(StrEnum):
    """Line item status values documented so far; responses may carry others."""

    COMPLETE = "COMPLETE"
    PENDING = "PENDING"
    FAILED = "FAILED"
    DELETED = "DELETED"
    CANCELLED = "CANCELLED"
    RETURNED = "RETURNED"


class ResendReasonCode(StrEnum):
    """Why a line item is resent (``reasonCode``)."""

    NOT_RECEIVED = "NOT_RECEIVED"
    LOST_DELETED = "LOST_DELETED"
    DELIVERY_INFO = "DELIVERY_INFO"
    DELIVERY_METHOD = "DELIVERY_METHOD"
    REMINDER = "REMINDER"
    OTHER = "OTHER"


class CancelReasonCode(StrEnum):
    """Why a line item is cancelled (``reasonCode`` of a cancel)."""

    DELIVERY_INFO = "DELIVERY_INFO"
    REWARD_AMOUNT = "REWARD_AMOUNT"
    REWARD_TYPE = "REWARD_TYPE"
    RECIPIENT = "RECIPIENT"
    CURRENCY = "CURRENCY"
    RECIPIENT_REQUESTED = "RECIPIENT_REQUESTED"
    RECIPIENT_OBLIGATIONS = "RECIPIENT_OBLIGATIONS"
    DUPLICATE = "DUPLICATE"
    FRAUD = "FRAUD"
    OTHER = "OTHER"


class FreezeReasonCode(StrEnum):
    """Why a line item is frozen or unfrozen (``reasonCode`` of a freeze or unfreeze)."""

    DELIVERY_INFO = "DELIVERY_INFO"
    REWARD_AMOUNT = "REWARD_AMOUNT"
    REWARD_TYPE = "REWARD_TYPE"
    VERIFY_ORDER = "VERIFY_ORDER"
    FRAUD = "FRAUD"
    OTHER = "OTHER"


class ReissueReasonCode(StrEnum):
    """Why a line item is reissued (``reasonCode`` of a reissue)."""

    DELIVERY_INFO = "DELIVERY_INFO"
    REWARD_AMOUNT = "REWARD_AMOUNT"
    REWARD_TYPE = "REWARD_TYPE"
    RECIPIENT = "RECIPIENT"
    CURRENCY = "CURRENCY"
    RECIPIENT_REQUESTED = "RECIPIENT_REQUESTED"
    OTHER = "OTHER"


class EmailStatus(StrEnum):
    """How a reward email fared (``emailStatus``); responses may carry others."""

    DELIVERED = "DELIVERED"
    NOT_DELIVERED = "NOT_DELIVERED"
    PENDING = "PENDING"
    SENT = "SENT"
    DEFERRED = "DEFERRED"
    DROPPED = "DROPPED"
    BOUNCE = "BOUNCE"
    BLOCKED = "BLOCKED"


class DeliveryStatus(StrEnum):
    """Where a reward's delivery stands (``deliveryStatus``); responses may carry others."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    DISPATCHED = "DISPATCHED"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    ENGAGED = "ENGAGED"


class OrderSource(StrEnum):
    """Where an order came from (``orderSource``: API, portal, bulk...)."""

    RA = "RA"
    RG = "RG"
    BE = "BE"
    BI = "BI"
    CI = "CI"
    QW = "QW"
    AA = "AA"


class WebhookVerification(StrEnum):
    """How Tango signs a subscription's deliveries (``payloadVerificationMethod``)."""

    HMAC = "HMAC"
    X509 = "X509"
    NONE = "NONE"


class WebhookEventType(StrEnum):
    """Webhook event types, as the spec names its test events; others may exist."""

    CONNECTIVITY_TEST = "ConnectivityTest"
    ITEM_AVAILABILITY = "ItemAvailability"
    REWARD_STATUS = "RewardStatus"
    TRANSACTION = "Transaction"
    LOW_BALANCE = "LowBalance"
    ACCOUNT_STATUS = "AccountStatus"
    CREDENTIAL_STATUS = "CredentialStatus"
    LINE_ITEM_DELIVERY_STATUS = "LineItemDeliveryStatus"
    ASYNC_ORDER_STATUS = "AsyncOrderStatus"
    EXCHANGE_RATES_STATUS = "ExchangeRatesStatus"


# Statuses after which an order / a line item changes no more by itself: Tango's pages
# name COMPLETE and FAILED (refunded); the spec's filters add CANCELLED, PARTIAL (an
# order whose line items ended differently) and DELETED; a line item may end RETURNED.
# Every other status (PENDING, QUEUED, ON_HOLD, PENDING_MR, PENDING_KYB, PENDING_PAYMENT
# and any not documented yet) is not final.
FINAL_ORDER_STATUSES = frozenset({"COMPLETE", "FAILED", "CANCELLED", "PARTIAL", "DELETED"})
FINAL_LINE_ITEM_STATUSES = frozenset({"COMPLETE", "FAILED", "CANCELLED", "DELETED", "RETURNED"})
KNOWN_ORDER_STATUSES = frozenset(OrderStatus.__members__)
KNOWN_LINE_ITEM_STATUSES = frozenset(LineItemStatus.__members__)


def is_final_order_status(status: str | None) -> bool:
    """Whether an order with this status is done (COMPLETE, FAILED, CANCELLED, PARTIAL,
    DELETED); unknown and missing statuses are not."""
    return status in FINAL_ORDER_STATUSES


def is_final_line_item_status(status: str | None) -> bool:
    """Whether a line item with this status is done (COMPLETE, FAILED, CANCELLED, DELETED,
    RETURNED); unknown and missing statuses are not."""
    return status in FINAL_LINE_ITEM_STATUSES
