"""``client.accounts``: the platform's accounts and their balances (``GET /accounts``,
``GET /accounts/{accountIdentifier}``). Both are reads, retried on 429, 5xx, timeouts and
connection errors.

Creating and changing accounts goes through their customer:
``client.customers.accounts`` (:mod:`tango_async.resources.customers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .._pagination import CursorPaginator
from .._repr import tolerant_repr
from .._retry import READ
from .._validation import (
    account_filters,
    check_account_identifier,
    check_max_results,
    path_segment,
)
from ..types.accounts import Account, AccountListWire
from ..types.webhooks import CursorPage
from ._base import Resource

if TYPE_CHECKING:
    from .._transport import Response, Transport

__all__ = ["AccountList", "Accounts", "PagedList"]

ItemT = TypeVar("ItemT")
DateLike = date | datetime | str
Number = Decimal | int | float


class PagedList(CursorPaginator[ItemT, CursorPage[ItemT], str], Generic[ItemT]):
    """A list the API answers either whole, as a JSON array, or (``paginate=true``) by
    cursor: ``items`` with ``nextCursor`` / ``nextPageAvailable``. The request asks for
    pages of ``maxResults``; an array answer is the one and only page.

    Iterate it for items, or :meth:`pages` for :class:`~tango_async.CursorPage` objects.
    Lazy: nothing is fetched before iteration, and each iteration starts afresh."""

    answer: ClassVar[Any]  # list[Item] | its paginated wire model

    def __init__(
        self, transport: Transport, path: str, query: list[tuple[str, str]], per_page: int
    ) -> None:
        self._transport = transport
        self._path = path
        self._query = query
        self._per_page = per_page

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r}, query={self._query!r})"

    async def _fetch(self, cursor: str | None) -> CursorPage[ItemT]:
        params = [*self._query, ("paginate", "true"), ("maxResults", str(self._per_page))]
        if cursor is not None:
            params.append(("nextCursor", cursor))
        resp = await self._transport.request("GET", self._path, operation=READ, params=params)
        return self._page(resp)

    def _page(self, resp: Response) -> CursorPage[ItemT]:
        wire = resp.parse(self.answer)
        if isinstance(wire, list):  # not paginated: the whole list
            return CursorPage(items=wire)
        has_next = wire.next_page_available
        return CursorPage(
            items=wire.items or [],
            next_cursor=wire.next_cursor,
            prev_cursor=wire.prev_cursor,
            has_next=bool(wire.next_cursor) if has_next is None else bool(has_next),
        )

    def _items(self, page: CursorPage[ItemT]) -> Sequence[ItemT]:
        return page.items

    def _next(self, page: CursorPage[ItemT]) -> str | None:
        return page.next_cursor if page.has_next and page.next_cursor else None


@tolerant_repr
class AccountList(PagedList[Account]):
    """What ``accounts.list()`` returns: iterate it for :class:`~tango_async.Account`
    objects, or :meth:`pages` for pages."""

    route = "GET /accounts"
    answer = list[Account] | AccountListWire


class Accounts(Resource):
    """Account calls of the API (``client.accounts``): reads only."""

    async def get(self, account_identifier: str, /) -> Account:
        """One account with its balance: ``GET /accounts/{accountIdentifier}``.

        ``current_balance`` is a Decimal in the account's ``currency_code``. Retried on
        429, 5xx, timeouts and connection errors. ValidationError (nothing sent) for an
        identifier that is not 5-100 letters, digits or hyphens; NotFoundError for an
        account the platform does not have.
        """
        ref = check_account_identifier(account_identifier)
        resp = await self._requestor.transport.request(
            "GET", f"/accounts/{path_segment(ref)}", operation=READ
        )
        return resp.parse(Account)

    def list(
        self,
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
    ) -> AccountList:
        """Iterate over the platform's accounts: ``GET /accounts``, lazily, by cursor
        (``max_results`` per page, 1 to 200, default 200); an answer that is not paged
        (a plain array) is taken whole.

        Filters (all optional, the API's own): ``account_number``, ``display_name``,
        ``status`` (ACTIVE, INACTIVE, DISABLED, FROZEN or DELETED), ``contact_email``,
        ``currency_code`` (one code or a list), ``min_balance`` / ``max_balance``
        (numbers, at most 2 decimal places), ``min_date_created_at`` /
        ``max_date_created_at`` (a date, an aware datetime or an RFC 3339 string; a date
        as the max includes that day), ``funding_notification_email`` (one address or a
        list). They are checked when ``list()`` is called (ValidationError); each page
        is a read, retried as :meth:`get` is.
        """
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
        return AccountList(
            self._requestor.transport, "/accounts", query, check_max_results(max_results)
        )
