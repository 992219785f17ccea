"""Customer models: customers with their accounts, and the customer creation request.

Wire names are those of Tango's OpenAPI description (``CustomerViewSummary``,
``CreateCustomerCriteria``); unknown fields are ignored and ``status`` stays a plain
``str``.
"""

from __future__ import annotations

import msgspec

from .accounts import Account
from .orders import AwareDatetime, _Wire

__all__ = ["CreateCustomerRequest", "Customer", "CustomerListWire"]


class Customer(_Wire, kw_only=True, gc=False):
    """A customer of the platform and its accounts (``CustomerViewSummary``; the accounts
    are summaries: their ``current_balance`` is None, ``accounts.get()`` has it)."""

    customer_identifier: str
    display_name: str | None = None
    status: str | None = None
    created_at: AwareDatetime | None = None
    # Optional on the wire (Tango writes explicit nulls); always a list once decoded.
    accounts: list[Account] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.accounts is None:  # an explicit null
            self.accounts = []


class CustomerListWire(_Wire, kw_only=True, gc=False):
    """A cursor page of customers, should ``GET /customers?paginate=true`` answer one (the
    description documents a plain array, with the same paging parameters as the account
    lists)."""

    number_of_elements: int | None = None
    max_results: int | None = None
    prev_cursor: str | None = None
    next_cursor: str | None = None
    items: list[Customer] | None = None
    prev_page_available: bool | None = None
    next_page_available: bool | None = None


class CreateCustomerRequest(_Wire, kw_only=True):
    """Body of ``POST /customers`` (``CreateCustomerCriteria``)."""

    customer_identifier: str
    display_name: str
