"""Account models: accounts and their balances, the account requests, low-balance alerts.

Wire names are those of Tango's OpenAPI description (``AccountView``,
``AccountViewSummary``, ``CreateAccountCriteria``, ``UpdateAccountCriteria``,
``LowBalanceAlertView``, ``LowBalanceAlertListView``, ``LowBalanceAlertDTO``,
``UpdateLowBalanceAlertRequest``, ``DeleteBalanceAlertView``). Unknown response fields
are ignored and ``status`` stays a plain ``str``, so new API fields and statuses never
break decoding. Amounts decode to exact Decimals; one that is not a finite number of
sane size (``NaN``, ``Infinity``, ``1e400``) is a decode error (the call raises
APIResponseValidationError), never a Decimal no arithmetic can use.

``fundingNotification`` is a list of ``{"emailAddress": ...}`` objects in the current
description, a boolean in Tango's older pages: :attr:`Account.funding_notification`
decodes either.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from .orders import AwareDatetime, _Wire

__all__ = [
    "MAX_MONEY",
    "Account",
    "AccountListWire",
    "BalanceAlertContact",
    "CollectionPage",
    "CreateAccountRequest",
    "DeletedBalanceAlert",
    "FundingNotification",
    "LowBalanceAlert",
    "LowBalanceAlertList",
    "LowBalanceAlertRequest",
    "UpdateAccountRequest",
    "UpdateLowBalanceAlertRequest",
    "check_money",
]

# The largest magnitude an amount of these models may have (a balance of 10**18 is
# nobody's); past it, or not finite, the answer is refused as undecodable.
MAX_MONEY = Decimal(10) ** 18


def check_money(value: Decimal | None, name: str) -> None:
    """ValueError (a decode error, inside ``__post_init__``) for an amount that is not a
    finite number below :data:`MAX_MONEY` in magnitude."""
    if value is not None and (not value.is_finite() or abs(value) >= MAX_MONEY):
        raise ValueError(f"{name} must be a finite amount below 10**18, got {str(value)[:40]}")


class FundingNotification(_Wire, kw_only=True, gc=False):
    """One address funding notifications go to (``FundingNotificationView``)."""

    email_address: str | None = None


class Account(_Wire, kw_only=True, gc=False):
    """An account (``AccountView``; in summaries, ``AccountViewSummary``).

    ``current_balance`` (wire ``currentBalance``) is None in summaries (a customer's
    ``accounts``); ``funding_notification`` is the list of addresses funding
    notifications go to (an older boolean form decodes as a bool):
    :attr:`funding_notification_emails` gives the addresses either way.
    """

    account_identifier: str
    account_number: str | None = None
    display_name: str | None = None
    currency_code: str | None = None
    current_balance: Decimal | None = None
    status: str | None = None
    contact_email: str | None = None
    created_at: AwareDatetime | None = None
    funding_notification: list[FundingNotification] | bool | None = None

    def __post_init__(self) -> None:
        check_money(self.current_balance, "currentBalance")

    @property
    def funding_notification_emails(self) -> list[str]:
        """The addresses funding notifications go to ([] if none or not listed)."""
        if not isinstance(self.funding_notification, list):
            return []
        return [n.email_address for n in self.funding_notification if n.email_address]


class AccountListWire(_Wire, kw_only=True, gc=False):
    """A cursor page of accounts (``PaginatedGetAccountsResponse``)."""

    number_of_elements: int | None = None
    max_results: int | None = None
    prev_cursor: str | None = None
    next_cursor: str | None = None
    items: list[Account] | None = None
    prev_page_available: bool | None = None
    next_page_available: bool | None = None


class CreateAccountRequest(_Wire, kw_only=True):
    """Body of ``POST /customers/{customerIdentifier}/accounts`` (``CreateAccountCriteria``)."""

    account_identifier: str
    display_name: str
    contact_email: str
    currency_code: str | None = None  # (Tango's default: USD; the client always sends it)
    funding_notification: list[FundingNotification] | None = None


class UpdateAccountRequest(_Wire, kw_only=True):
    """Body of ``PATCH /customers/{customerIdentifier}/accounts/{accountIdentifier}``
    (``UpdateAccountCriteria``): fields left None are left unchanged; an empty
    ``funding_notification`` list clears the addresses."""

    display_name: str | None = None
    contact_email: str | None = None
    funding_notification: list[FundingNotification] | None = None


# --- low-balance alerts -------------------------------------------------------------------


class BalanceAlertContact(_Wire, kw_only=True, gc=False):
    """One address a low-balance alert is emailed to (``BalanceAlertContactDTO``)."""

    email_address: str | None = None


class LowBalanceAlert(_Wire, kw_only=True, gc=False):
    """A low-balance alert of an account (``LowBalanceAlertView``): emailed to
    ``balance_alert_notification`` when the balance falls below
    ``balance_alert_threshold``."""

    balance_alert_id: str | None = msgspec.field(default=None, name="balanceAlertID")
    customer_identifier: str | None = None
    account_identifier: str | None = None
    balance_alert_display_name: str | None = None
    balance_alert_threshold: Decimal | None = None
    # Optional on the wire (Tango writes explicit nulls); always a list once decoded.
    balance_alert_notification: list[BalanceAlertContact] | None = msgspec.field(
        default_factory=list
    )
    created_at: AwareDatetime | None = None

    def __post_init__(self) -> None:
        check_money(self.balance_alert_threshold, "balanceAlertThreshold")
        if self.balance_alert_notification is None:  # an explicit null
            self.balance_alert_notification = []

    @property
    def emails(self) -> list[str]:
        """The addresses the alert is emailed to."""
        return [c.email_address for c in self.balance_alert_notification or () if c.email_address]


class CollectionPage(_Wire, kw_only=True, gc=False):
    """Where a page of low-balance alerts lies (``CollectionPageView``; ``number`` from 0)."""

    size: int | None = None
    total_elements: int | None = None
    total_pages: int | None = None
    number: int | None = None


class LowBalanceAlertList(_Wire, kw_only=True, gc=False):
    """One page of an account's low-balance alerts (``LowBalanceAlertListView``)."""

    page: CollectionPage | None = None
    # Optional on the wire (Tango writes explicit nulls); always a list once decoded.
    low_balance_alerts: list[LowBalanceAlert] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.low_balance_alerts is None:  # an explicit null
            self.low_balance_alerts = []


class LowBalanceAlertRequest(_Wire, kw_only=True):
    """Body of ``POST .../lowbalance`` (``LowBalanceAlertDTO``)."""

    balance_alert_display_name: str
    balance_alert_threshold: Decimal
    balance_alert_notification: list[BalanceAlertContact]


class UpdateLowBalanceAlertRequest(_Wire, kw_only=True):
    """Body of ``PATCH .../lowbalance/{balanceAlertID}`` (``UpdateLowBalanceAlertRequest``):
    fields left None are left unchanged."""

    balance_alert_display_name: str | None = None
    balance_alert_threshold: Decimal | None = None
    balance_alert_notification: list[BalanceAlertContact] | None = None


class DeletedBalanceAlert(_Wire, kw_only=True, gc=False):
    """The answer to deleting a low-balance alert (``DeleteBalanceAlertView``)."""

    balance_alert_id: str | None = msgspec.field(default=None, name="balanceAlertID")
    status: str | None = None
