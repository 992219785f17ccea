"""``client.customers``: customers, their accounts (``client.customers.accounts``) and
the accounts' low-balance alerts (``client.customers.low_balance_alerts``).

What is retried (``tango_async._retry``):

=========================  ===========================================================
call                       retried after it may have reached the server
=========================  ===========================================================
list, get (every kind)     yes: reads (429, 5xx, timeouts, connection errors)
customers.create,          no: only a 429 or a failure certainly before sending. When
accounts.create,           the outcome is unknown (a timeout or a lost connection after
low_balance_alerts.set     sending, a 5xx, an unreadable 2xx) the client asks: the
                           entity found with exactly the requested content is returned;
                           none found, the original error is raised (a note on it says
                           so), and calling again is safe; one found with other
                           content is a ConflictError.
accounts.update,           yes: the same PATCH twice is harmless
low_balance_alerts.update
low_balance_alerts.delete  yes; a 404 to a retry after an attempt that may have been
                           delivered means that attempt deleted it: it counts as done
=========================  ===========================================================

A 409 to a create (the identifier is taken, or an identical alert exists) is always a
ConflictError, even when the existing entity has the requested content: the caller
learns that it did not create it (``get()`` fetches it).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._codec import encode_request
from .._constants import MAX_ELEMENTS_PER_BLOCK
from .._exceptions import APIError, ConflictError, NotFoundError, TangoError, ValidationError
from .._pagination import CursorPaginator
from .._repr import tolerant_repr
from .._retry import ACTION, CHANGE, READ
from .._transport import Exchange
from .._validation import (
    account_filters,
    account_request,
    account_update_request,
    alert_request,
    alert_update_request,
    check_account_identifier,
    check_balance_alert_id,
    check_customer_identifier,
    check_email_list,
    check_int,
    check_max_results,
    check_str,
    check_threshold,
    created_range,
    customer_request,
    path_segment,
)
from ..types.accounts import (
    Account,
    AccountListWire,
    CollectionPage,
    DeletedBalanceAlert,
    LowBalanceAlert,
    LowBalanceAlertList,
)
from ..types.customers import Customer, CustomerListWire
from ._base import Resource
from .accounts import DateLike, Number, PagedList

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = [
    "CustomerAccountList",
    "CustomerAccounts",
    "CustomerList",
    "Customers",
    "LowBalanceAlertPages",
    "LowBalanceAlerts",
]

_COLLECTION: object = object()  # _path() without an ID: the collection's path

log = logging.getLogger("tango_async")

T = TypeVar("T")
MAX_ALERT_PAGES = 100  # pages of alerts read to resolve an unknown outcome


@tolerant_repr
class CustomerList(PagedList[Customer]):
    """What ``customers.list()`` returns: iterate it for :class:`~tango_async.Customer`
    objects, or :meth:`pages` for pages."""

    route = "GET /customers"
    answer = list[Customer] | CustomerListWire


@tolerant_repr
class CustomerAccountList(PagedList[Account]):
    """What ``customers.accounts(customer_identifier)`` returns: iterate it for the
    customer's :class:`~tango_async.Account` objects, or :meth:`pages` for pages."""

    route = "GET /customers/{customerIdentifier}/accounts"
    answer = list[Account] | AccountListWire


@tolerant_repr
class LowBalanceAlertPages(CursorPaginator[LowBalanceAlert, LowBalanceAlertList, int]):
    """What ``customers.low_balance_alerts.list(...)`` returns: iterate it for
    :class:`~tango_async.LowBalanceAlert` objects, or :meth:`pages` for
    :class:`~tango_async.LowBalanceAlertList` pages (by page number, from ``page``).
    Lazy; each iteration starts afresh."""

    route = "GET /customers/{customerIdentifier}/accounts/{accountIdentifier}/lowbalance"

    def __init__(
        self,
        transport: Transport,
        path: str,
        query: builtins.list[tuple[str, str]],
        per_page: int,
        first: int,
    ) -> None:
        self._transport = transport
        self._path = path
        self._query = query
        self._per_page = per_page
        self._first = first

    def __repr__(self) -> str:
        return f"LowBalanceAlertPages(path={self._path!r}, query={self._query!r})"

    async def _fetch(self, cursor: int | None) -> LowBalanceAlertList:
        number = self._first if cursor is None else cursor
        params = [
            *self._query,
            ("elementsPerBlock", str(self._per_page)),
            ("page", str(number)),
        ]
        resp = await self._transport.request("GET", self._path, operation=READ, params=params)
        page = resp.parse(LowBalanceAlertList)
        if page.page is None:
            page.page = CollectionPage(number=number)
        elif page.page.number is None:
            page.page.number = number
        return page

    def _items(self, page: LowBalanceAlertList) -> Sequence[LowBalanceAlert]:
        return page.low_balance_alerts or []

    def _next(self, page: LowBalanceAlertList) -> int | None:
        info = page.page
        number = info.number if info is not None and info.number is not None else 0
        items = page.low_balance_alerts or []
        if info is not None and info.total_pages is not None:
            return number + 1 if number + 1 < info.total_pages and items else None
        return number + 1 if len(items) >= self._per_page else None


class Customers(Resource):
    """Customer calls of the API (``client.customers``); see the module docstring for
    what is retried. Sub-resources: :attr:`accounts`, :attr:`low_balance_alerts`."""

    def __init__(self, requestor: Any) -> None:
        super().__init__(requestor)
        #: a customer's accounts: ``customers.accounts(cid)`` lists them
        self.accounts = CustomerAccounts(requestor)
        #: the low-balance alerts of a customer's account
        self.low_balance_alerts = LowBalanceAlerts(requestor)

    def list(
        self,
        *,
        display_name: str | None = None,
        status: str | None = None,
        customer_min_date_created_at: DateLike | None = None,
        customer_max_date_created_at: DateLike | None = None,
        account_status: str | None = None,
        account_identifier: str | None = None,
        account_number: str | None = None,
        account_display_name: str | None = None,
        account_min_date_created_at: DateLike | None = None,
        account_max_date_created_at: DateLike | None = None,
        max_results: int | None = None,
    ) -> CustomerList:
        """Iterate over the platform's customers (each with its accounts, as summaries):
        ``GET /customers``, lazily. The API answers a plain array (taken whole) or, where
        it pages, cursor pages of ``max_results`` (1 to 200, default 200).

        Filters (all optional, the API's own): the customer's ``display_name``,
        ``status`` and creation range (``customer_min_date_created_at`` /
        ``customer_max_date_created_at``), and its accounts' ``account_status``,
        ``account_identifier``, ``account_number``, ``account_display_name`` and
        creation range; dates are dates, aware datetimes or RFC 3339 strings (a date as
        a max includes that day). Checked when ``list()`` is called (ValidationError).
        """
        query: builtins.list[tuple[str, str]] = []
        for name, wire, value in (
            ("display_name", "displayName", display_name),
            ("status", "status", status),
            ("account_status", "accountStatus", account_status),
            ("account_identifier", "accountIdentifier", account_identifier),
            ("account_number", "accountNumber", account_number),
            ("account_display_name", "accountDisplayName", account_display_name),
        ):
            text = check_str(value, name)
            if text is not None:
                if not text.strip():
                    raise _blank(name)
                query.append((wire, text))
        query += created_range(
            (
                "customer_min_date_created_at",
                "customerMinDateCreatedAt",
                customer_min_date_created_at,
            ),
            (
                "customer_max_date_created_at",
                "customerMaxDateCreatedAt",
                customer_max_date_created_at,
            ),
        )
        query += created_range(
            ("account_min_date_created_at", "accountMinDateCreatedAt", account_min_date_created_at),
            ("account_max_date_created_at", "accountMaxDateCreatedAt", account_max_date_created_at),
        )
        return CustomerList(
            self._requestor.transport, "/customers", query, check_max_results(max_results)
        )

    async def get(self, customer_identifier: str, /) -> Customer:
        """One customer and its accounts (summaries, without balances):
        ``GET /customers/{customerIdentifier}``. A read, retried. ValidationError
        (nothing sent) for an identifier that is not 5-100 letters, digits or hyphens;
        NotFoundError for an unknown customer."""
        ref = check_customer_identifier(customer_identifier)
        resp = await self._requestor.transport.request(
            "GET", f"/customers/{path_segment(ref)}", operation=READ
        )
        return resp.parse(Customer)

    async def create(self, *, customer_identifier: str, display_name: str) -> Customer:
        """Create a customer: ``POST /customers``; returns it as Tango answers (the
        request's fields at least; ``get()`` gives the whole view).

        ``customer_identifier``: 5-100 letters, digits or hyphens, unique on the
        platform; ``display_name``: 5-100 letters, numbers, punctuation and spaces
        (ValidationError, nothing sent). Not retried once it may have reached the
        server: an unknown outcome is resolved with ``GET /customers/{id}`` (see the
        module docstring): the customer found with this display name is returned;
        none found, the original error is raised and calling again is safe. A 409 (the
        identifier is taken) raises ConflictError.
        """
        req = customer_request(customer_identifier=customer_identifier, display_name=display_name)
        ref = req.customer_identifier

        async def existing() -> Customer | None:
            try:
                found = await self.get(ref)
            except NotFoundError:
                return None
            return found

        def same(found: Customer) -> bool:
            return found.customer_identifier == ref and found.display_name == req.display_name

        return await _create(
            self._requestor.transport,
            f"customer {ref}",
            "/customers",
            encode_request(req),
            Customer,
            existing,
            same,
        )


class CustomerAccounts(Resource):
    """The accounts of a customer (``client.customers.accounts``): list (also by calling
    it: ``customers.accounts(cid)``), create, update."""

    def _path(self, customer_identifier: object, account_identifier: object = _COLLECTION) -> str:
        path = f"/customers/{path_segment(check_customer_identifier(customer_identifier))}/accounts"
        if account_identifier is not _COLLECTION:  # None is a bad ID, not the collection
            path += f"/{path_segment(check_account_identifier(account_identifier))}"
        return path

    def list(
        self,
        customer_identifier: str,
        /,
        *,
        account_number: str | None = None,
        display_name: str | None = None,
        status: str | None = None,
        contact_email: str | None = None,
        currency_code: str | Sequence[str] | None = None,
        min_balance: Number | None = None,
        max_balance: Number | None = None,
        min_date_created_at: DateLike | None = None,
        max_date_created_at: DateLike | None = None,
        funding_notification_email: str | Sequence[str] | None = None,
        max_results: int | None = None,
    ) -> CustomerAccountList:
        """Iterate over a customer's accounts (with balances):
        ``GET /customers/{customerIdentifier}/accounts``, lazily, by cursor, with the
        filters and limits of :meth:`Accounts.list <tango_async.resources.accounts.
        Accounts.list>`. Checked when called (ValidationError); NotFoundError (when
        iterated) for an unknown customer."""
        path = self._path(customer_identifier)
        query = account_filters(
            account_number=account_number,
            display_name=display_name,
            status=status,
            contact_email=contact_email,
            currency_code=currency_code,
            min_balance=min_balance,
            max_balance=max_balance,
            min_date_created_at=min_date_created_at,
            max_date_created_at=max_date_created_at,
            funding_notification_email=funding_notification_email,
        )
        return CustomerAccountList(
            self._requestor.transport, path, query, check_max_results(max_results)
        )

    __call__ = list

    async def create(
        self,
        customer_identifier: str,
        /,
        *,
        account_identifier: str,
        display_name: str,
        contact_email: str,
        currency_code: str = "USD",
        funding_notification: bool | Sequence[str] | None = None,
    ) -> Account:
        """Create an account under a customer:
        ``POST /customers/{customerIdentifier}/accounts``; returns it as Tango answers.

        ``account_identifier``: 5-100 letters, digits or hyphens, unique;
        ``display_name``: not blank; ``contact_email``: an email address (at most 255
        characters); ``currency_code``: three upper-case letters, fixed for the
        account's life (Tango documents AUD, CAD, EUR, GBP, USD, MXN, SGD, PLN);
        ``funding_notification``: who gets funding notification emails: a list of
        addresses, True (the contact email), False (nobody), None (Tango's default).
        ValidationError for a bad one, nothing sent.

        A new account's balance is 0 until it is funded. Not retried once it may have
        reached the server: an unknown outcome is resolved with
        ``GET /accounts/{accountIdentifier}`` and the customer's account list: the
        account found under this customer with this display name, contact email and
        currency is returned; none found, the original error is raised and calling
        again is safe. A 409 (the identifier is taken) raises ConflictError.
        """
        path = self._path(customer_identifier)
        cid = check_customer_identifier(customer_identifier)
        req = account_request(
            account_identifier=account_identifier,
            display_name=display_name,
            contact_email=contact_email,
            currency_code=currency_code,
            funding_notification=funding_notification,
        )
        aid = req.account_identifier
        transport = self._requestor.transport

        async def existing() -> Account | None:
            try:
                resp = await transport.request(
                    "GET", f"/accounts/{path_segment(aid)}", operation=READ
                )
                found = resp.parse(Account)
                resp = await transport.request(
                    "GET", f"/customers/{path_segment(cid)}", operation=READ
                )
                customer = resp.parse(Customer)
            except NotFoundError:
                return None
            if not any(a.account_identifier == aid for a in customer.accounts or ()):
                return None
            return found

        def same(found: Account) -> bool:
            wanted = req.funding_notification
            return (
                found.account_identifier == aid
                and found.display_name == req.display_name
                and (found.contact_email or "").lower() == req.contact_email.lower()
                and found.currency_code in (None, req.currency_code)
                and (
                    wanted is None
                    or not isinstance(found.funding_notification, builtins.list)
                    or sorted(e.lower() for e in found.funding_notification_emails)
                    == sorted((n.email_address or "").lower() for n in wanted)
                )
            )

        return await _create(
            transport, f"account {aid}", path, encode_request(req), Account, existing, same
        )

    async def update(
        self,
        customer_identifier: str,
        account_identifier: str,
        /,
        *,
        display_name: str | None = None,
        contact_email: str | None = None,
        funding_notification: bool | Sequence[str] | None = None,
    ) -> Account:
        """Change an account: ``PATCH /customers/{customerIdentifier}/accounts/
        {accountIdentifier}`` with the fields given (at least one; the rules of
        :meth:`create`; ``funding_notification`` replaces the list of addresses, [] or
        False clears it, True needs ``contact_email`` in the same call). Returns the
        account as updated. Retried like a read (the same PATCH twice is harmless).
        NotFoundError for an unknown customer or account."""
        path = self._path(customer_identifier, account_identifier)
        body = encode_request(
            account_update_request(
                display_name=display_name,
                contact_email=contact_email,
                funding_notification=funding_notification,
            )
        )
        resp = await self._requestor.transport.request("PATCH", path, operation=CHANGE, body=body)
        return resp.parse(Account)


class LowBalanceAlerts(Resource):
    """The low-balance alerts of a customer's account
    (``client.customers.low_balance_alerts``): list, get, set, update, delete."""

    def _path(
        self,
        customer_identifier: object,
        account_identifier: object,
        alert_id: object = _COLLECTION,
    ) -> str:
        cid = path_segment(check_customer_identifier(customer_identifier))
        aid = path_segment(check_account_identifier(account_identifier))
        path = f"/customers/{cid}/accounts/{aid}/lowbalance"
        if alert_id is not _COLLECTION:  # None is a bad ID, not the collection
            path += f"/{path_segment(check_balance_alert_id(alert_id))}"
        return path

    def list(
        self,
        customer_identifier: str,
        account_identifier: str,
        /,
        *,
        display_name: str | None = None,
        threshold: Number | None = None,
        emails: Sequence[str] | None = None,
        elements_per_block: int | None = None,
        page: int | None = None,
    ) -> LowBalanceAlertPages:
        """Iterate over an account's low-balance alerts: ``GET .../lowbalance``, lazily,
        ``elements_per_block`` (1 to 100, default 100) per page, from page ``page``
        (from 0). Filters: ``display_name`` (balanceAlertDisplayName), ``threshold``
        (balanceAlertThreshold) and ``emails`` (balanceAlertNotification, sent as
        ``balanceAlertNotification[i].emailAddress``). Checked when called
        (ValidationError). Reads, retried."""
        path = self._path(customer_identifier, account_identifier)
        query: builtins.list[tuple[str, str]] = []
        name = check_str(display_name, "display_name")
        if name is not None:
            if not name.strip():
                raise _blank("display_name")
            query.append(("balanceAlertDisplayName", name))
        if threshold is not None:
            query.append(("balanceAlertThreshold", str(check_threshold(threshold))))
        if emails is not None:
            for i, email in enumerate(check_email_list(emails, "emails", allow_empty=False)):
                query.append((f"balanceAlertNotification[{i}].emailAddress", email))
        per = (
            check_int(elements_per_block, "elements_per_block", lo=1, hi=MAX_ELEMENTS_PER_BLOCK)
            if elements_per_block is not None
            else MAX_ELEMENTS_PER_BLOCK
        )
        first = check_int(page, "page", lo=0, hi=2**31 - 1) if page is not None else 0
        return LowBalanceAlertPages(self._requestor.transport, path, query, per, first)

    async def get(
        self, customer_identifier: str, account_identifier: str, alert_id: str, /
    ) -> LowBalanceAlert:
        """One low-balance alert: ``GET .../lowbalance/{balanceAlertID}`` (``alert_id`` a
        UUID: ValidationError otherwise). A read, retried; NotFoundError for an unknown
        one."""
        path = self._path(customer_identifier, account_identifier, alert_id)
        resp = await self._requestor.transport.request("GET", path, operation=READ)
        return resp.parse(LowBalanceAlert)

    async def set(
        self,
        customer_identifier: str,
        account_identifier: str,
        /,
        *,
        display_name: str,
        threshold: Number,
        emails: Sequence[str],
    ) -> LowBalanceAlert:
        """Set a low-balance alert on an account: ``POST .../lowbalance``. Tango emails
        ``emails`` when the balance falls below ``threshold``.

        ``display_name``: not blank; ``threshold``: a number above 0, at most 10**15,
        with at most 2 decimal places (a Decimal, an int or an exact float);
        ``emails``: 1 to 100 distinct addresses (ValidationError, nothing sent).
        Not retried once it may have reached the server: an unknown outcome is
        resolved by listing the account's alerts: one with exactly this display
        name, threshold and addresses is returned (it may be an identical alert set
        before); none, the original error is raised and calling again is safe. A 409
        (a duplicate alert) raises ConflictError.
        """
        path = self._path(customer_identifier, account_identifier)
        req = alert_request(display_name=display_name, threshold=threshold, emails=emails)
        wanted = sorted((c.email_address or "").lower() for c in req.balance_alert_notification)

        def same(found: LowBalanceAlert) -> bool:
            return (
                found.balance_alert_display_name == req.balance_alert_display_name
                and found.balance_alert_threshold == req.balance_alert_threshold
                and sorted(e.lower() for e in found.emails) == wanted
            )

        async def existing() -> LowBalanceAlert | None:
            pages = LowBalanceAlertPages(
                self._requestor.transport, path, [], MAX_ELEMENTS_PER_BLOCK, 0
            )
            seen = 0
            try:
                async for page in pages.pages():
                    for alert in page.low_balance_alerts or ():
                        if same(alert):
                            return alert
                    seen += 1
                    if seen >= MAX_ALERT_PAGES:
                        break
            except NotFoundError:
                return None
            return None

        return await _create(
            self._requestor.transport,
            f"low-balance alert {req.balance_alert_display_name!r}",
            path,
            encode_request(req),
            LowBalanceAlert,
            existing,
            lambda found: True,  # existing() returns only an alert with the same content
        )

    async def update(
        self,
        customer_identifier: str,
        account_identifier: str,
        alert_id: str,
        /,
        *,
        display_name: str | None = None,
        threshold: Number | None = None,
        emails: Sequence[str] | None = None,
    ) -> LowBalanceAlert:
        """Change a low-balance alert: ``PATCH .../lowbalance/{balanceAlertID}`` with the
        fields given (at least one; the rules of :meth:`set`; ``emails`` replaces the
        addresses, [] clears them). Returns the alert as updated. Retried like a read
        (the same PATCH twice is harmless)."""
        path = self._path(customer_identifier, account_identifier, alert_id)
        body = encode_request(
            alert_update_request(display_name=display_name, threshold=threshold, emails=emails)
        )
        resp = await self._requestor.transport.request("PATCH", path, operation=CHANGE, body=body)
        return resp.parse(LowBalanceAlert)

    async def delete(
        self, customer_identifier: str, account_identifier: str, alert_id: str, /
    ) -> DeletedBalanceAlert:
        """Delete a low-balance alert: ``DELETE .../lowbalance/{balanceAlertID}``; returns
        its ID and status (DELETED). Retried on 429, 5xx, timeouts and connection errors
        (deleting twice deletes once); a 404 answering a retry after an attempt that may
        have been delivered means that attempt deleted it, and counts as done (the
        answer then is ``DeletedBalanceAlert(balance_alert_id=alert_id,
        status="DELETED")``). A 404 to a first attempt raises NotFoundError."""
        path = self._path(customer_identifier, account_identifier, alert_id)
        exchange = Exchange()
        try:
            resp = await self._requestor.transport.request(
                "DELETE", path, operation=CHANGE, exchange=exchange
            )
        except NotFoundError:
            if exchange.attempts > 1 and exchange.maybe_delivered:
                log.info("%s: 404 after an attempt that may have deleted it; done", path)
                return DeletedBalanceAlert(balance_alert_id=str(alert_id), status="DELETED")
            raise
        return resp.parse(DeletedBalanceAlert)


def _blank(field: str) -> ValidationError:
    return ValidationError(field, "must not be empty or blank")


async def _create(
    transport: Transport,
    label: str,
    path: str,
    body: bytes,
    type_: type[T],
    existing: Callable[[], Awaitable[T | None]],
    same: Callable[[T], bool],
) -> T:
    """POST ``body`` to ``path`` once (retried only on 429 and failures certainly before
    sending); when the outcome is unknown, ask ``existing()`` (see the module docstring)."""
    exchange = Exchange()
    try:
        resp = await transport.request("POST", path, operation=ACTION, body=body, exchange=exchange)
    except ConflictError:
        raise
    except TangoError as error:
        if not exchange.maybe_delivered:
            raise  # refused (4xx), or certainly never sent
        return await _resolve(label, path, error, existing, same)
    try:
        return resp.parse(type_)
    except APIError as error:  # created, but the answer does not read: fetch it instead
        return await _resolve(label, path, error, existing, same)


async def _resolve(
    label: str,
    path: str,
    error: TangoError,
    existing: Callable[[], Awaitable[T | None]],
    same: Callable[[T], bool],
) -> T:
    try:
        found = await existing()
    except TangoError as lookup:
        log.warning("%s: the outcome is unknown and the lookup failed: %s", label, lookup)
        error.add_note(
            f"tango_async: {label} may or may not have been created; looking it up failed "
            f"({type(lookup).__name__}): get() it before creating it again"
        )
        raise error from None
    if found is None:
        log.info("%s: the outcome was unknown; it does not exist", label)
        error.add_note(
            f"tango_async: {label} does not exist: it was not created; creating it again is safe"
        )
        raise error
    if not same(found):
        raise ConflictError(
            f"{label} exists with other content than requested (its creation had an unknown "
            "outcome): get() it",
            status_code=409,
            path=path,
        ) from error
    log.info("%s: the outcome was unknown; it exists as requested", label)
    return found
