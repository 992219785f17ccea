"""Order models: the creation request and the order views Tango answers with.

Attributes are snake_case; wire names are camelCase except the irregular ones
(``referenceOrderID``, ``externalRefID``, ``referenceLineItemID``), which are spelled
out field by field. Unknown response fields are ignored, so new API fields never
break decoding; ``status`` and ``delivery_method`` stay plain strings for the same reason.
"""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

__all__ = [
    "Address",
    "AddressView",
    "CreateOrderRequest",
    "CreatedOrder",
    "Credential",
    "Money",
    "Order",
    "OrderPage",
    "Recipient",
    "RecipientView",
    "Reward",
    "Sender",
]

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]

_MASK = "'***'"


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True):
    """Base of every model: camelCase wire names, None fields left off the wire.

    Response models set ``gc=False``: they hold no reference cycles, and a page of orders
    would otherwise hand thousands of objects to the cyclic collector (a fifth of the
    decode time, measured in benchmarks/).
    """


# --- requests ---------------------------------------------------------------------------


class Sender(_Wire, kw_only=True):
    """Who the reward is from (tracking only; it does not change the sending address)."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class Address(_Wire):
    """A postal address, required for ADDRESS (physical) delivery."""

    street_line1: str
    city: str
    state_or_province: str
    postal_code: str
    country: str
    street_line2: str | None = None
    company_name: str | None = None


class Recipient(_Wire, kw_only=True):
    """Who receives the reward."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    mobile_number: str | None = None
    address: Address | None = None


class _CreateOrderRequired(_Wire):
    customer_identifier: str
    account_identifier: str
    utid: str
    amount: Decimal | float

    def __post_init__(self) -> None:
        # Keep amounts exact: a float becomes the Decimal of its shortest repr, so 10.1
        # goes on the wire as 10.1, never as 10.0999999999999996447. A float whose repr has
        # more than 2 decimal places (0.1 + 0.2 -> 0.30000000000000004) is no currency's
        # amount: it stays a float, so validation refuses it as an inexact float.
        a: object = self.amount
        if isinstance(a, float):
            d = Decimal(float.__repr__(a))  # (numpy's float64 repr is "np.float64(...)")
            exp = d.as_tuple().exponent
            if not isinstance(exp, int) or exp >= -2:  # shortest reprs have no trailing 0s
                self.amount = d
        elif isinstance(a, int) and not isinstance(a, bool):
            self.amount = Decimal(a)


class CreateOrderRequest(_CreateOrderRequired, kw_only=True):
    """The body of ``POST /orders``.

    ``amount`` takes Decimal, int or float and goes on the wire as a plain JSON number
    (``1000``, ``10.5``): greater than 0, at most 2 decimal places (judged on the value:
    ``10.500`` is fine), at most the client's ``max_amount``; a float only when its shortest
    repr is such an amount (``10.5``, not ``0.1 + 0.2``).
    ``delivery_method`` may be left out: it is inferred (ADDRESS when the recipient has an
    address, else from the legacy ``send_email``: EMAIL / NONE, else EMAIL).
    No string field may hold a control character (C0, DEL, C1, U+2028, U+2029); the gift
    ``message`` alone may hold tab, CR and LF. ``expiration_date`` is an aware datetime
    whose instant lies within the years 1 to 9999 in UTC. ``custom_fields`` holds JSON
    values only (str, finite numbers, bool, None, lists, dicts with str keys), at most 32
    levels deep, 10,000 values and 100,000 characters. Each rule is checked before
    anything is sent (ValidationError naming the field).
    """

    external_ref_id: str | None = msgspec.field(default=None, name="externalRefID")
    delivery_method: str | None = None  # a DeliveryMethod (a str enum) or its value
    sender: Sender | None = None
    recipient: Recipient | None = None
    ptid: str | None = None
    etid: str | None = None
    email_subject: str | None = None
    message: str | None = None
    campaign: str | None = None
    purchase_order_number: str | None = None
    notes: str | None = None
    expiration_date: datetime | None = None
    send_email: bool | None = None
    custom_fields: dict[str, Any] | None = None


# --- responses --------------------------------------------------------------------------


class Money(_Wire, kw_only=True, gc=False):
    """An amount with its currency; every number decodes to an exact Decimal."""

    value: Decimal | None = None
    currency_code: str | None = None
    exchange_rate: Decimal | None = None
    fee: Decimal | None = None
    total: Decimal | None = None


class Credential(_Wire, kw_only=True, gc=False):
    """One reward credential (a code, PIN or redemption link). Its value is masked in repr."""

    label: str | None = None
    value: str | None = None
    type: str | None = None
    credential_type: str | None = None

    def __repr__(self) -> str:
        value = _MASK if self.value is not None else "None"
        return (
            f"Credential(label={self.label!r}, value={value}, type={self.type!r}, "
            f"credential_type={self.credential_type!r})"
        )


class Reward(_Wire, kw_only=True, gc=False):
    """The reward's credentials. ``credentials`` (label -> value) is deprecated by Tango in
    favour of ``credential_list``. Credential values are masked in repr."""

    credentials: dict[str, Any] | str | None = None
    # Optional on the wire (Tango writes explicit nulls); always a list once decoded.
    credential_list: list[Credential] | None = msgspec.field(default_factory=list)
    redemption_instructions: str | None = None

    def __post_init__(self) -> None:
        if self.credential_list is None:
            self.credential_list = []

    def __repr__(self) -> str:
        if isinstance(self.credentials, dict):
            creds = "{" + ", ".join(f"{k!r}: {_MASK}" for k in self.credentials) + "}"
        else:
            creds = _MASK if self.credentials is not None else "None"
        return (
            f"Reward(credentials={creds}, credential_list={self.credential_list!r}, "
            f"redemption_instructions=...)"
        )


class AddressView(_Wire, kw_only=True, gc=False):
    """A postal address as the API returns it (every field optional)."""

    street_line1: str | None = None
    street_line2: str | None = None
    city: str | None = None
    state_or_province: str | None = None
    postal_code: str | None = None
    country: str | None = None
    company_name: str | None = None


class RecipientView(_Wire, kw_only=True, gc=False):
    """The recipient as the API returns it."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    mobile_number: str | None = None
    address: AddressView | None = None


class Order(_Wire, kw_only=True, gc=False):
    """An order, from ``POST /orders``, ``GET /orders/{id}`` or a ``GET /orders`` page.

    Only ``reference_order_id`` is always present; list items carry no ``reward``.
    """

    reference_order_id: str = msgspec.field(name="referenceOrderID")
    reference_line_item_id: str | None = msgspec.field(default=None, name="referenceLineItemID")
    external_ref_id: str | None = msgspec.field(default=None, name="externalRefID")
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


class CreatedOrder(Order, kw_only=True, gc=True, dict=True):
    """What ``orders.create()`` returns: an Order, plus whether the server made it now.

    ``created`` is True for 201 (a new order) and False for 200 (the order that already
    existed for this externalRefID). It is not part of the wire model: encoding a
    CreatedOrder (``msgspec.json.encode``, ``msgspec.to_builtins``) gives Tango's fields
    only, and no key of a server's answer can set it. ``copy``, ``deepcopy`` and
    ``pickle`` keep it; ``msgspec.structs.replace`` does not (the copy says created).
    """

    @property
    def created(self) -> bool:
        """True when the server answered 201: it made the order now."""
        return bool(self.__dict__.get("_created", True))

    @created.setter
    def created(self, value: bool) -> None:
        self.__dict__["_created"] = bool(value)

    @property
    def existing(self) -> bool:
        """True when the server answered 200: the order already existed."""
        return not self.created

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__struct_fields__}

    def __copy__(self) -> CreatedOrder:
        return _created_order(self._fields(), self.created)

    def __deepcopy__(self, memo: dict[int, Any]) -> CreatedOrder:
        return _created_order(copy.deepcopy(self._fields(), memo), self.created)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_created_order, (self._fields(), self.created))


def _created_order(fields: dict[str, Any], created: bool) -> CreatedOrder:
    """A CreatedOrder of ``fields`` (an Order's), saying whether it was ``created``."""
    order = CreatedOrder(**fields)
    order.created = created
    return order


class OrderPage(msgspec.Struct, kw_only=True):
    """One page of ``GET /orders``: its paging figures and its orders."""

    number: int
    elements_per_block: int
    result_count: int
    total_count: int
    orders: list[Order]


# The wire shape of GET /orders, flattened into OrderPage by the resource.
class PageInfoWire(_Wire, kw_only=True, gc=False):
    number: int | None = None
    elements_per_block: int | None = None
    result_count: int | None = None
    total_count: int | None = None


class OrderListWire(_Wire, kw_only=True, gc=False):
    page: PageInfoWire | None = None
    orders: list[Order | None] | None = None
