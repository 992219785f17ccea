"""The sandbox's customers, accounts and low-balance alerts, and their routes under
/raas/v2: ``/accounts``, ``/customers``, ``/customers/{id}/accounts`` and
``.../lowbalance``.

Balances live in :class:`._store.Accounts` (``balances``), which orders charge and refunds
credit; every account registered here has one (an account created through the API starts
at 0, so orders on it get 402 until ``Sandbox.fund``). An account orders use that was
never registered stays funded without limit and is not listed. An account given a
balance with ``Sandbox.set_balance`` is listed too, under ``sandbox-customer``.

A low-balance alert fires when a charge takes its account's balance from at or above its
threshold to below it: a ``LowBalance`` event is published to the webhook subscriptions
(and recorded in :attr:`Customers.alerts_fired`).

Answers follow Tango's OpenAPI description: account lists are a JSON array, or with
``paginate=true`` cursor pages (``maxResults`` 1 to 200, default 10); ``GET /customers``
is always an array; alert lists are pages (``elementsPerBlock``, ``page`` from 0).
Errors: 400.004 with ``errors[]`` for a bad body, 400.002 for a bad query parameter,
404.010/011/012 for an unknown customer, account or alert, 409.010/011/012 for a taken
identifier or a duplicate alert threshold.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import unicodedata
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from aiohttp import web

from ._clock import SandboxClock
from ._errors import ErrorWriter
from ._recorded import current
from ._routes import PREFIX, parse_time
from ._rules import EMAIL, problem
from ._store import Accounts
from ._wire import MALFORMED, iso, respond

__all__ = [
    "CURRENCIES",
    "DEFAULT_ACCOUNT",
    "DEFAULT_CUSTOMER",
    "AccountRecord",
    "AlertRecord",
    "CustomerRecord",
    "Customers",
    "account_number",
]

DEFAULT_CUSTOMER = "sandbox-customer"
DEFAULT_ACCOUNT = "sandbox-account"
DEFAULT_BALANCE = Decimal("1000000")
CURRENCIES = ("AUD", "CAD", "EUR", "GBP", "USD", "MXN", "SGD", "PLN")
STATUSES = ("ACTIVE", "INACTIVE", "DISABLED", "FROZEN", "DELETED")
IDENTIFIER = re.compile(r"[-a-zA-Z0-9]{5,100}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ALERT_EMAIL = re.compile(r"balanceAlertNotification\[(\d+)\]\.emailAddress")
_DEFAULT_RESULTS = 10
_MAX_RESULTS = 200
_MAX_BLOCK = 100


def account_number(account_identifier: str) -> str:
    """The accountNumber the sandbox gives an account (its orders show the same)."""
    return f"A{zlib.crc32(account_identifier.encode()) % 10**8:08d}"


class AccountsHost(Protocol):
    clock: SandboxClock


@dataclass(eq=False)
class AccountRecord:
    account_identifier: str
    customer_identifier: str
    display_name: str
    contact_email: str | None
    currency_code: str
    status: str
    created_at: float
    funding_notification: list[str] = field(default_factory=list)


@dataclass(eq=False)
class CustomerRecord:
    customer_identifier: str
    display_name: str
    status: str
    created_at: float
    accounts: list[str] = field(default_factory=list)  # account identifiers, oldest first


@dataclass(eq=False)
class AlertRecord:
    alert_id: str
    customer_identifier: str
    account_identifier: str
    display_name: str
    threshold: Decimal
    emails: list[str]
    created_at: float


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Customers:
    """The customers, their accounts and alerts, over ``accounts`` (the balances orders
    spend), answering errors with ``errors``; ``publish`` gets the LowBalance events."""

    def __init__(
        self,
        host: AccountsHost,
        accounts: Accounts,
        errors: ErrorWriter,
        *,
        publish: Callable[[str, dict[str, Any], float], int] | None = None,
    ) -> None:
        self._host = host
        self._accounts = accounts
        self._errors = errors
        self._publish = publish
        self.customers: dict[str, CustomerRecord] = {}
        self.records: dict[str, AccountRecord] = {}
        self.alerts: dict[str, AlertRecord] = {}
        #: every low-balance alert fired: its event data, oldest first
        self.alerts_fired: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        accounts.on_change = self._balance_changed
        self.add_account(DEFAULT_ACCOUNT, balance=DEFAULT_BALANCE, display_name="Sandbox account")

    # --- the store --------------------------------------------------------------------------

    def _now(self) -> float:
        return _ts(self._host.clock.now())

    def add_customer(
        self, customer_identifier: str, display_name: str | None = None
    ) -> CustomerRecord:
        """The customer, registered first if new."""
        found = self.customers.get(customer_identifier)
        if found is None:
            found = CustomerRecord(
                customer_identifier, display_name or customer_identifier, "ACTIVE", self._now()
            )
            self.customers[customer_identifier] = found
        return found

    def add_account(
        self,
        account_identifier: str,
        *,
        customer_identifier: str = DEFAULT_CUSTOMER,
        balance: Decimal | int | str = Decimal("1000"),
        currency_code: str = "USD",
        display_name: str | None = None,
        status: str = "ACTIVE",
        contact_email: str | None = None,
    ) -> dict[str, Any]:
        """Register an account (and its customer) with ``balance``; an existing one is
        updated. Returns its view (as GET /accounts/{id} shows it). A FROZEN account
        refuses orders as ``Sandbox.freeze`` makes it."""
        customer = self.add_customer(customer_identifier)
        record = self.records.get(account_identifier)
        if record is None:
            record = AccountRecord(
                account_identifier,
                customer_identifier,
                display_name or account_identifier,
                contact_email,
                currency_code,
                status,
                self._now(),
            )
            self.records[account_identifier] = record
            customer.accounts.append(account_identifier)
        else:
            record.display_name = display_name or record.display_name
            record.currency_code = currency_code
            record.status = status
            record.contact_email = contact_email or record.contact_email
        self._accounts.balances[account_identifier] = Decimal(balance)
        if status == "FROZEN":
            self._accounts.frozen.add(account_identifier)
        return self.view(record)

    def fund(self, account_identifier: str, amount: Decimal | int | str) -> Decimal:
        """Add ``amount`` to a registered account's balance; its new balance. KeyError for
        an account without a balance (never registered: funded without limit)."""
        balances = self._accounts.balances
        if account_identifier not in balances:
            raise KeyError(f"account {account_identifier!r} has no balance to fund (register it)")
        balances[account_identifier] += Decimal(amount)
        return balances[account_identifier]

    def _sync(self) -> None:
        """Accounts given a balance with set_balance, listed under the default customer."""
        for aid in self._accounts.balances:
            if aid not in self.records:
                self.add_customer(DEFAULT_CUSTOMER).accounts.append(aid)
                self.records[aid] = AccountRecord(
                    aid, DEFAULT_CUSTOMER, aid, None, "USD", "ACTIVE", self._now()
                )

    def view(self, record: AccountRecord, *, summary: bool = False) -> dict[str, Any]:
        """An account as AccountView (``summary``: AccountViewSummary) shows it."""
        aid = record.account_identifier
        status = "FROZEN" if aid in self._accounts.frozen else record.status
        view: dict[str, Any] = {
            "accountIdentifier": aid,
            "accountNumber": account_number(aid),
            "displayName": record.display_name,
            "createdAt": iso(_dt(record.created_at)),
            "status": status,
            "currencyCode": record.currency_code,
        }
        if not summary:
            view["currentBalance"] = self._accounts.balances.get(aid, Decimal(0))
            if record.contact_email is not None:
                view["contactEmail"] = record.contact_email
            view["fundingNotification"] = [{"emailAddress": e} for e in record.funding_notification]
        return view

    def customer_view(self, customer: CustomerRecord) -> dict[str, Any]:
        return {
            "customerIdentifier": customer.customer_identifier,
            "displayName": customer.display_name,
            "status": customer.status,
            "createdAt": iso(_dt(customer.created_at)),
            "accounts": [
                self.view(self.records[a], summary=True)
                for a in customer.accounts
                if a in self.records
            ],
        }

    def alert_view(self, alert: AlertRecord) -> dict[str, Any]:
        return {
            "balanceAlertID": alert.alert_id,
            "customerIdentifier": alert.customer_identifier,
            "accountIdentifier": alert.account_identifier,
            "balanceAlertDisplayName": alert.display_name,
            "balanceAlertThreshold": alert.threshold,
            "balanceAlertNotification": [{"emailAddress": e} for e in alert.emails],
            "createdAt": iso(_dt(alert.created_at)),
        }

    def _balance_changed(self, account: str, before: Decimal, after: Decimal, when: float) -> None:
        for alert in list(self.alerts.values()):
            if alert.account_identifier == account and before >= alert.threshold > after:
                data = {
                    "accountIdentifier": account,
                    "balance": after,
                    "balanceThreshold": alert.threshold,
                    "balanceAlertIdentifier": alert.alert_id,
                }
                self.alerts_fired.append(data)
                if self._publish is not None:
                    self._publish("LowBalance", data, when)

    # --- routes -----------------------------------------------------------------------------

    def add_to(self, app: web.Application) -> None:
        """Register the routes on ``app`` (before the orders' catch-all 404)."""
        add = app.router.add_route
        customer = PREFIX + "/customers/{customerIdentifier}"
        account = customer + "/accounts/{accountIdentifier}"
        add("GET", PREFIX + "/accounts", self.list_accounts)
        add("GET", PREFIX + "/accounts/{accountIdentifier}", self.get_account)
        add("GET", PREFIX + "/customers", self.list_customers)
        add("POST", PREFIX + "/customers", self.create_customer)
        add("GET", customer, self.get_customer)
        add("GET", customer + "/accounts", self.list_customer_accounts)
        add("POST", customer + "/accounts", self.create_account)
        add("PATCH", account, self.update_account)
        add("GET", account + "/lowbalance", self.list_alerts)
        add("POST", account + "/lowbalance", self.set_alert)
        add("GET", account + "/lowbalance/{balanceAlertID}", self.get_alert)
        add("PATCH", account + "/lowbalance/{balanceAlertID}", self.update_alert)
        add("DELETE", account + "/lowbalance/{balanceAlertID}", self.delete_alert)

    def _error(self, request: web.Request, key: str, *args: Any, **kwargs: Any) -> web.Response:
        return self._errors.response(request.path, key, *args, **kwargs)

    def _invalid(self, request: web.Request, problems: list[dict[str, Any]]) -> web.Response:
        return self._error(request, "400.004", errors=problems)

    def _customer(self, request: web.Request) -> CustomerRecord | web.Response:
        self._sync()
        cid = request.match_info["customerIdentifier"]
        found = self.customers.get(cid)
        return found if found is not None else self._error(request, "404.010", cid)

    def _customer_account(self, request: web.Request) -> AccountRecord | web.Response:
        customer = self._customer(request)
        if isinstance(customer, web.Response):
            return customer
        aid = request.match_info["accountIdentifier"]
        record = self.records.get(aid)
        if record is None or record.customer_identifier != customer.customer_identifier:
            return self._error(request, "404.011", aid)
        return record

    def _alert(self, request: web.Request) -> AlertRecord | web.Response:
        record = self._customer_account(request)
        if isinstance(record, web.Response):
            return record
        alert_id = request.match_info["balanceAlertID"]
        if not _UUID.fullmatch(alert_id):
            return self._invalid(
                request, [problem("400.004", "balanceAlertID", "must be a UUID", alert_id)]
            )
        alert = self.alerts.get(alert_id.lower())
        if alert is None or alert.account_identifier != record.account_identifier:
            return self._error(request, "404.012", alert_id)
        return alert

    # accounts

    def _filtered_accounts(
        self, request: web.Request, records: list[AccountRecord]
    ) -> list[AccountRecord] | web.Response:
        q = request.query
        try:
            low = Decimal(q["minBalance"]) if "minBalance" in q else None
            high = Decimal(q["maxBalance"]) if "maxBalance" in q else None
            start = parse_time(q["minDateCreatedAt"]) if "minDateCreatedAt" in q else None
            end = parse_time(q["maxDateCreatedAt"]) if "maxDateCreatedAt" in q else None
            if not all(x is None or x.is_finite() for x in (low, high)):
                raise ValueError
        except (ValueError, ArithmeticError):
            return self._error(request, "400.002", request.query_string)
        status = q.get("status")
        if status is not None and status not in STATUSES:
            return self._error(request, "400.002", f"status={status}")
        currencies = set(q.getall("currencyCode", []))
        funding = {e.lower() for e in q.getall("fundingNotificationEmail", [])}
        out = []
        balances = self._accounts.balances
        for r in records:
            view = self.view(r)
            balance = balances.get(r.account_identifier, Decimal(0))
            if (
                ("accountNumber" in q and view["accountNumber"] != q["accountNumber"])
                or ("displayName" in q and r.display_name != q["displayName"])
                or (status is not None and view["status"] != status)
                or (
                    "contactEmail" in q
                    and (r.contact_email or "").lower() != q["contactEmail"].lower()
                )
                or (currencies and r.currency_code not in currencies)
                or (low is not None and balance < low)
                or (high is not None and balance > high)
                or (start is not None and r.created_at < start.timestamp())
                or (end is not None and r.created_at > end.timestamp())
                or (funding and not funding & {e.lower() for e in r.funding_notification})
            ):
                continue
            out.append(r)
        return out

    def _account_list(self, request: web.Request, records: list[AccountRecord]) -> web.Response:
        found = self._filtered_accounts(request, records)
        if isinstance(found, web.Response):
            return found
        q = request.query
        if q.get("paginate", "false").lower() != "true":
            return respond([self.view(r) for r in found])
        try:
            per = int(q.get("maxResults", str(_DEFAULT_RESULTS)))
            offset = _offset(q["nextCursor"]) if "nextCursor" in q else 0
            if not 1 <= per <= _MAX_RESULTS or offset < 0:
                raise ValueError
        except ValueError:
            return self._error(request, "400.002", request.query_string)
        block = found[offset : offset + per]
        more = offset + per < len(found)
        page: dict[str, Any] = {
            "numberOfElements": len(block),
            "maxResults": per,
            "items": [self.view(r) for r in block],
            "prevPageAvailable": offset > 0,
            "nextPageAvailable": more,
        }
        if more:
            page["nextCursor"] = _cursor(offset + per)
        if offset > 0:
            page["prevCursor"] = _cursor(max(0, offset - per))
        return respond(page)

    async def list_accounts(self, request: web.Request) -> web.Response:
        self._sync()
        return self._account_list(request, list(self.records.values()))

    async def get_account(self, request: web.Request) -> web.Response:
        self._sync()
        aid = request.match_info["accountIdentifier"]
        record = self.records.get(aid)
        if record is None:
            return self._error(request, "404.011", aid)
        return respond(self.view(record))

    async def list_customer_accounts(self, request: web.Request) -> web.Response:
        customer = self._customer(request)
        if isinstance(customer, web.Response):
            return customer
        records = [self.records[a] for a in customer.accounts if a in self.records]
        return self._account_list(request, records)

    async def create_account(self, request: web.Request) -> web.Response:
        customer = self._customer(request)
        if isinstance(customer, web.Response):
            return customer
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        problems: list[dict[str, Any]] = []
        aid = _identifier(body, "accountIdentifier", problems)
        name = _text(body, "displayName", problems, required=True)
        email = _email(body, "contactEmail", problems, required=True)
        currency = body.get("currencyCode", "USD")
        if currency not in CURRENCIES:
            problems.append(
                problem(
                    "400.004", "currencyCode", "must be one of " + ", ".join(CURRENCIES), currency
                )
            )
        funding = _funding(body, problems)
        if problems:
            return self._invalid(request, problems)
        assert aid is not None and name is not None
        self._sync()
        if aid in self.records:
            return self._error(request, "409.011", aid)
        record = AccountRecord(
            aid, customer.customer_identifier, name, email, str(currency), "ACTIVE", self._now()
        )
        record.funding_notification = funding or []
        self.records[aid] = record
        customer.accounts.append(aid)
        self._accounts.balances[aid] = Decimal(0)
        return respond(self.view(record), 201)

    async def update_account(self, request: web.Request) -> web.Response:
        record = self._customer_account(request)
        if isinstance(record, web.Response):
            return record
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        problems: list[dict[str, Any]] = []
        name = _text(body, "displayName", problems, required=False)
        email = _email(body, "contactEmail", problems, required=False)
        funding = _funding(body, problems)
        if problems:
            return self._invalid(request, problems)
        if name is not None:
            record.display_name = name
        if email is not None:
            record.contact_email = email
        if funding is not None:
            record.funding_notification = funding
        return respond(self.view(record))

    # customers

    async def list_customers(self, request: web.Request) -> web.Response:
        self._sync()
        q = request.query
        try:
            bounds = {
                k: parse_time(q[k])
                for k in (
                    "customerMinDateCreatedAt",
                    "customerMaxDateCreatedAt",
                    "accountMinDateCreatedAt",
                    "accountMaxDateCreatedAt",
                )
                if k in q
            }
        except ValueError:
            return self._error(request, "400.002", request.query_string)
        out = []
        for c in self.customers.values():
            if ("displayName" in q and c.display_name != q["displayName"]) or (
                "status" in q and c.status != q["status"]
            ):
                continue
            lo, hi = bounds.get("customerMinDateCreatedAt"), bounds.get("customerMaxDateCreatedAt")
            if (lo is not None and c.created_at < lo.timestamp()) or (
                hi is not None and c.created_at > hi.timestamp()
            ):
                continue
            account_tests = [
                k
                for k in (
                    "accountStatus",
                    "accountIdentifier",
                    "accountNumber",
                    "accountDisplayName",
                    "accountMinDateCreatedAt",
                    "accountMaxDateCreatedAt",
                )
                if k in q
            ]
            if account_tests and not any(
                self._account_matches(self.records[a], q, bounds)
                for a in c.accounts
                if a in self.records
            ):
                continue
            out.append(self.customer_view(c))
        return respond(out)  # the description documents an array only

    def _account_matches(self, r: AccountRecord, q: Any, bounds: dict[str, datetime]) -> bool:
        view = self.view(r, summary=True)
        lo, hi = bounds.get("accountMinDateCreatedAt"), bounds.get("accountMaxDateCreatedAt")
        return not (
            ("accountStatus" in q and view["status"] != q["accountStatus"])
            or ("accountIdentifier" in q and r.account_identifier != q["accountIdentifier"])
            or ("accountNumber" in q and view["accountNumber"] != q["accountNumber"])
            or ("accountDisplayName" in q and r.display_name != q["accountDisplayName"])
            or (lo is not None and r.created_at < lo.timestamp())
            or (hi is not None and r.created_at > hi.timestamp())
        )

    async def get_customer(self, request: web.Request) -> web.Response:
        customer = self._customer(request)
        if isinstance(customer, web.Response):
            return customer
        return respond(self.customer_view(customer))

    async def create_customer(self, request: web.Request) -> web.Response:
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        problems: list[dict[str, Any]] = []
        cid = _identifier(body, "customerIdentifier", problems)
        name = body.get("displayName")
        if not isinstance(name, str) or not 5 <= len(name) <= 100 or not name.strip():
            problems.append(
                problem("400.004", "displayName", "must be 5-100 characters", name, "5-100")
            )
        elif any(unicodedata.category(ch)[0] not in "LNPZ" for ch in name):
            problems.append(
                problem(
                    "400.004",
                    "displayName",
                    "accepts letters, numbers, punctuation and whitespace separators only",
                    name,
                )
            )
        if problems:
            return self._invalid(request, problems)
        assert cid is not None and isinstance(name, str)
        self._sync()
        if cid in self.customers:
            return self._error(request, "409.010", cid)
        customer = self.add_customer(cid, name)
        return respond(self.customer_view(customer), 201)

    # low-balance alerts

    async def list_alerts(self, request: web.Request) -> web.Response:
        record = self._customer_account(request)
        if isinstance(record, web.Response):
            return record
        q = request.query
        try:
            per = int(q.get("elementsPerBlock", str(_DEFAULT_RESULTS)))
            number = int(q.get("page", "0"))
            threshold = (
                Decimal(q["balanceAlertThreshold"]) if "balanceAlertThreshold" in q else None
            )
            if per < 1 or number < 0:
                raise ValueError
        except (ValueError, ArithmeticError):
            return self._error(request, "400.002", request.query_string)
        if per > _MAX_BLOCK:
            return self._error(request, "422.042")
        emails = {
            v.lower() for k, v in q.items() if _ALERT_EMAIL.fullmatch(k) or k == "emailAddress"
        }
        found = [
            a
            for a in self.alerts.values()
            if a.account_identifier == record.account_identifier
            and (
                "balanceAlertDisplayName" not in q or a.display_name == q["balanceAlertDisplayName"]
            )
            and (threshold is None or a.threshold == threshold)
            and (not emails or emails <= {e.lower() for e in a.emails})
        ]
        block = found[number * per : number * per + per]
        return respond(
            {
                "page": {
                    "size": per,
                    "totalElements": len(found),
                    "totalPages": -(-len(found) // per),
                    "number": number,
                },
                "lowBalanceAlerts": [self.alert_view(a) for a in block],
            }
        )

    def _alert_body(
        self, body: Any, *, creating: bool
    ) -> tuple[str | None, Decimal | None, list[str] | None, list[dict[str, Any]]]:
        problems: list[dict[str, Any]] = []
        name = _text(body, "balanceAlertDisplayName", problems, required=creating)
        raw = body.get("balanceAlertThreshold")
        threshold: Decimal | None = None
        if raw is not None or creating:
            try:
                threshold = Decimal(str(raw))
                if not threshold.is_finite() or threshold <= 0 or isinstance(raw, bool):
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                problems.append(
                    problem("400.004", "balanceAlertThreshold", "must be a number above 0", raw)
                )
                threshold = None
        emails: list[str] | None = None
        contacts = body.get("balanceAlertNotification")
        if contacts is not None or creating:
            emails = _contacts(
                contacts, "balanceAlertNotification", problems, allow_empty=not creating
            )
        return name, threshold, emails, problems

    def _threshold_taken(
        self, account_identifier: str, threshold: Decimal, *, but: AlertRecord | None = None
    ) -> bool:
        """Whether another alert of the account (not ``but``) has this threshold (409.012)."""
        return any(
            a is not but and a.account_identifier == account_identifier and a.threshold == threshold
            for a in self.alerts.values()
        )

    async def set_alert(self, request: web.Request) -> web.Response:
        record = self._customer_account(request)
        if isinstance(record, web.Response):
            return record
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        name, threshold, emails, problems = self._alert_body(body, creating=True)
        if problems:
            return self._invalid(request, problems)
        assert name is not None and threshold is not None and emails is not None
        aid = record.account_identifier
        if self._threshold_taken(aid, threshold):
            return self._error(request, "409.012", threshold)
        alert = AlertRecord(
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-alert-{next(self._seq)}")),
            record.customer_identifier,
            aid,
            name,
            threshold,
            emails,
            self._now(),
        )
        self.alerts[alert.alert_id] = alert
        return respond(self.alert_view(alert))  # the description documents 200

    async def get_alert(self, request: web.Request) -> web.Response:
        alert = self._alert(request)
        if isinstance(alert, web.Response):
            return alert
        return respond(self.alert_view(alert))

    async def update_alert(self, request: web.Request) -> web.Response:
        alert = self._alert(request)
        if isinstance(alert, web.Response):
            return alert
        body = current().json
        if body is MALFORMED or not isinstance(body, dict):
            return self._error(request, "400.001")
        name, threshold, emails, problems = self._alert_body(body, creating=False)
        if problems:
            return self._invalid(request, problems)
        if threshold is not None and self._threshold_taken(
            alert.account_identifier, threshold, but=alert
        ):
            return self._error(request, "409.012", threshold)
        if name is not None:
            alert.display_name = name
        if threshold is not None:
            alert.threshold = threshold
        if emails is not None:
            alert.emails = emails
        return respond(self.alert_view(alert))

    async def delete_alert(self, request: web.Request) -> web.Response:
        alert = self._alert(request)
        if isinstance(alert, web.Response):
            return alert
        del self.alerts[alert.alert_id]
        return respond({"balanceAlertID": alert.alert_id, "status": "DELETED"})


# --- request checks (the sandbox's own, independent of the client's) ------------------------


def _identifier(body: dict[str, Any], name: str, problems: list[dict[str, Any]]) -> str | None:
    value = body.get(name)
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        problems.append(
            problem(
                "400.004", name, "must be 5-100 characters of -0-9a-zA-Z", value, IDENTIFIER.pattern
            )
        )
        return None
    return value


def _text(
    body: dict[str, Any], name: str, problems: list[dict[str, Any]], *, required: bool
) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(problem("400.004", name, "must not be blank", value))
        return None
    return value


def _email(
    body: dict[str, Any], name: str, problems: list[dict[str, Any]], *, required: bool
) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > 255 or not re.fullmatch(EMAIL, value):
        problems.append(problem("400.004", name, "must be a well-formed email address", value))
        return None
    return value


def _contacts(
    value: Any, name: str, problems: list[dict[str, Any]], *, allow_empty: bool
) -> list[str] | None:
    if not isinstance(value, list) or (not value and not allow_empty):
        problems.append(problem("400.004", name, "must be a non-empty list of addresses", value))
        return None
    out: list[str] = []
    for i, item in enumerate(value):
        email = item.get("emailAddress") if isinstance(item, dict) else None
        if not isinstance(email, str) or not re.fullmatch(EMAIL, email):
            problems.append(
                problem("400.004", f"{name}[{i}].emailAddress", "must be an email", email)
            )
            return None
        if email.lower() in {e.lower() for e in out}:
            problems.append(
                problem("400.004", f"{name}[{i}].emailAddress", "is listed twice", email)
            )
            return None
        out.append(email)
    return out


def _funding(body: dict[str, Any], problems: list[dict[str, Any]]) -> list[str] | None:
    if body.get("fundingNotification") is None:
        return None
    return _contacts(body["fundingNotification"], "fundingNotification", problems, allow_empty=True)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(cursor) from None
    kind, _, number = text.partition(":")
    if kind != "offset" or not number.isdigit():
        raise ValueError(cursor)
    return int(number)
