"""The models of the API: msgspec Structs with snake_case attributes and exact wire names."""

from .enums import DeliveryMethod, LineItemStatus, OrderStatus, ResendReasonCode
from .orders import (
    Address,
    AddressView,
    CreatedOrder,
    CreateOrderRequest,
    Credential,
    Money,
    Order,
    OrderPage,
    Recipient,
    RecipientView,
    Reward,
    Sender,
)
from .resends import LineItemResend, LineItemResendRequest, OrderResendRequest, Resend

__all__ = [
    "Address",
    "AddressView",
    "CreateOrderRequest",
    "CreatedOrder",
    "Credential",
    "DeliveryMethod",
    "LineItemResend",
    "LineItemResendRequest",
    "LineItemStatus",
    "Money",
    "Order",
    "OrderPage",
    "OrderResendRequest",
    "OrderStatus",
    "Recipient",
    "RecipientView",
    "ResendReasonCode",
    "Resend",
    "Reward",
    "Sender",
]
