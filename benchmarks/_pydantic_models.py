"""Pydantic v2 models of the same shape as tango-async's msgspec models: camelCase wire
names by alias (the irregular ones spelled out), Decimal money, an aware datetime
``createdAt``, unknown fields ignored. Decoded with ``model_validate_json`` (pydantic's
fastest path: its Rust JSON parser straight into the models)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Money(_Wire):
    value: Decimal | None = None
    currency_code: str | None = None
    exchange_rate: Decimal | None = None
    fee: Decimal | None = None
    total: Decimal | None = None


class Credential(_Wire):
    label: str | None = None
    value: str | None = None
    type: str | None = None
    credential_type: str | None = None


class Reward(_Wire):
    credentials: dict[str, Any] | str | None = None
    credential_list: list[Credential] | None = Field(default_factory=list)
    redemption_instructions: str | None = None


class Sender(_Wire):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class AddressView(_Wire):
    street_line1: str | None = None
    street_line2: str | None = None
    city: str | None = None
    state_or_province: str | None = None
    postal_code: str | None = None
    country: str | None = None
    company_name: str | None = None


class RecipientView(_Wire):
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    mobile_number: str | None = None
    address: AddressView | None = None


class Order(_Wire):
    reference_order_id: str = Field(alias="referenceOrderID")
    reference_line_item_id: str | None = Field(default=None, alias="referenceLineItemID")
    external_ref_id: str | None = Field(default=None, alias="externalRefID")
    customer_identifier: str | None = None
    account_identifier: str | None = None
    account_number: str | None = None
    amount_charged: Money | None = None
    denomination: Money | None = None
    utid: str | None = None
    ptid: str | None = None
    reward_name: str | None = None
    sender: Sender | None = None
    recipient: RecipientView | None = None
    email_subject: str | None = None
    message: str | None = None
    send_email: bool | None = None
    delivery_method: str | None = None
    etid: str | None = None
    status: str | None = None
    order_status: str | None = None
    line_item_status: str | None = None
    campaign: str | None = None
    created_at: AwareDatetime | None = None
    notes: str | None = None
    order_client_source: str | None = None
    purchase_order_number: str | None = None
    reward: Reward | None = None


class PageInfo(_Wire):
    number: int | None = None
    elements_per_block: int | None = None
    result_count: int | None = None
    total_count: int | None = None


class OrderList(_Wire):
    page: PageInfo | None = None
    orders: list[Order | None] | None = None
