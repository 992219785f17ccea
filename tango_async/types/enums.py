"""String enums of wire values. Responses keep plain ``str``: new values never break decoding."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DeliveryMethod", "LineItemStatus", "OrderStatus", "ResendReasonCode"]


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
