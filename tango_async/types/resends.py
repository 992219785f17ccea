"""Resend models: the bodies of the two resend calls and what they return."""

from __future__ import annotations

import msgspec

from .orders import AwareDatetime

__all__ = ["LineItemResend", "LineItemResendRequest", "OrderResendRequest", "Resend"]


class OrderResendRequest(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Body of ``POST /orders/{referenceOrderID}/resends`` (note: ``newMobile``)."""

    new_email: str | None = None
    new_etid: str | None = None
    new_mobile: str | None = None
    new_delivery_method: str | None = None  # a DeliveryMethod or its value


class LineItemResendRequest(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Body of ``POST /lineItems/{referenceLineItemId}/resends`` (note: ``newMobileNumber``)."""

    new_delivery_method: str | None = None  # a DeliveryMethod or its value
    new_email: str | None = None
    new_mobile_number: str | None = None
    new_etid: str | None = None
    reason_code: str | None = None  # a ResendReasonCode or its value
    other_reason: str | None = None


class Resend(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A resend of an order."""

    id: int | None = None
    legacy_id: str | None = None
    created_at: AwareDatetime | None = None
    email: str | None = None
    mobile_number: str | None = None


class LineItemResend(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A resend of a line item."""

    id: int | None = None
    legacy_id: str | None = None
    created_at: AwareDatetime | None = None
    delivery_method: str | None = None
    email: str | None = None
    mobile_number: str | None = None
    reason_code: str | None = None
    other_reason: str | None = None
