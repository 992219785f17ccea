"""``client.line_items``: read, list, update, cancel, freeze, unfreeze, reissue and resend
line items, wait for one to be final, and the reason codes.

Which calls are retried is decided per operation (``tango_async._retry``):

====================  ==========  ===============================================
call                  changes     retried after it may have reached the server
====================  ==========  ===============================================
get, list, wait,      nothing     yes (429, 5xx, timeouts, connection errors)
reason_codes,
embedded_url
update (PATCH)        fields      yes: setting the same values twice is harmless
cancel                refunds     no: only a 429 or a failure before sending
freeze, unfreeze      state       no: only a 429 or a failure before sending
reissue               **spends**  no: only a 429 or a failure before sending
resend                delivers    no (and a 30-second cooldown)
====================  ==========  ===============================================

After an APIConnectionError with ``maybe_sent`` True from an action, the action may have
happened: :meth:`LineItems.get` tells (a reissue shows ``reissued_to_reference_line_item_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, TypedDict

from .._codec import ENCODER, encode_request
from .._constants import MAX_ELEMENTS_PER_BLOCK
from .._exceptions import ValidationError
from .._logs import escape
from .._pagination import CursorPaginator
from .._repr import tolerant_repr
from .._retry import ACTION, CHANGE, READ, RESEND
from .._validation import (
    check_bool,
    check_external_ref_id,
    check_identifier,
    check_int,
    check_path_id,
    check_str,
    format_amount_filter,
    format_query_datetime,
    line_item_action_request,
    line_item_resend_request,
    line_item_update_request,
    path_segment,
    reissue_request,
)
from ..types.enums import (
    KNOWN_LINE_ITEM_STATUSES,
    CancelReasonCode,
    DeliveryMethod,
    DeliveryStatus,
    EmailStatus,
    FreezeReasonCode,
    OrderSource,
    ReissueReasonCode,
    ResendReasonCode,
    is_final_line_item_status,
)
from ..types.line_items import (
    EmbeddedUrlWire,
    LineItem,
    LineItemListWire,
    LineItemPage,
    ReasonCodes,
    ReissuedLineItem,
    ReissueRecipient,
)
from ..types.resends import LineItemResend
from ._base import Resource

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = ["LineItemList", "LineItemListQuery", "LineItems"]

DateLike = date | datetime | str

# The enumerations the spec gives the list filters.
_ENUMS: dict[str, frozenset[str]] = {
    "status": frozenset({"COMPLETE", "PENDING", "FAILED", "CANCELLED"}),
    "email_status": frozenset(EmailStatus.__members__),
    "delivery_method": frozenset(DeliveryMethod.__members__),
    "delivery_status": frozenset(DeliveryStatus.__members__),
    "order_status": frozenset({"COMPLETE", "PENDING", "FAILED", "CANCELLED", "PARTIAL"}),
    "order_source": frozenset(OrderSource.__members__),
}
SORT_COLUMNS = frozenset(
    {
        "accountNumber",
        "amountIssued",
        "dateIssued",
        "emailStatus",
        "deliveryMethod",
        "externalReferenceId",
        "status",
        "orderSource",
        "orderStatus",
        "recipientFirstName",
        "recipientLastName",
        "rewardName",
    }
)
# snake_case filter -> query parameter, where camelCase alone does not give it
_WIRE_NAMES = {
    "reference_order_id": "referenceOrderID",
    "external_ref_id": "externalRefID",
    "recipient_street_line1": "recipientStreetLine1",
    "recipient_street_line2": "recipientStreetLine2",
    "sort_by": "columnSortName",
    "ascending": "columnSortAscending",
}
_NUMBERS = ("min_remaining_balance", "max_remaining_balance")


class LineItemListQuery(TypedDict, total=False):
    """The filters of ``line_items.list()`` (``GET /lineItems``); None means unset."""

    reference_order_id: str | None
    external_ref_id: str | None
    utid: str | None
    ptid: str | None
    etid: str | None
    status: str | None
    email_status: EmailStatus | str | None
    delivery_method: DeliveryMethod | str | None
    delivery_status: DeliveryStatus | str | None
    order_status: str | None
    order_source: OrderSource | str | None
    recipient_email: str | None
    recipient_mobile_number: str | None
    recipient_first_name: str | None
    recipient_last_name: str | None
    account_identifier: str | None
    campaign: str | None
    purchase_order_number: str | None
    order_notes: str | None
    recipient_street_line1: str | None
    recipient_street_line2: str | None
    recipient_city: str | None
    recipient_state_or_province: str | None
    recipient_postal_code: str | None
    recipient_country: str | None
    start_date: DateLike | None
    end_date: DateLike | None
    sort_by: str | None
    ascending: bool | None
    min_remaining_balance: Decimal | float | None
    max_remaining_balance: Decimal | float | None
    has_remaining_balance: bool | None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def line_item_query(filters: LineItemListQuery) -> list[tuple[str, str]]:
    """Check the filters and render them as query parameters (ValidationError naming the
    filter): enumerated values as the spec lists them, dates as RFC 3339 (start not after
    end), balances as plain numbers (min not above max)."""
    query: list[tuple[str, str]] = []
    for name, value in filters.items():
        if value is None:
            continue
        wire = _WIRE_NAMES.get(name, _camel(name))
        if name in _NUMBERS:
            text = format_amount_filter(value, name)
        elif name in ("has_remaining_balance", "ascending"):
            text = "true" if check_bool(value, name) else "false"
        elif name in ("start_date", "end_date"):
            text = format_query_datetime(value, name, end=name == "end_date")[0]
        else:
            if isinstance(value, Enum):
                value = value.value
            text = check_str(value, name) or ""
            if name in _ENUMS and text not in _ENUMS[name]:
                raise ValidationError(name, f"must be one of {', '.join(sorted(_ENUMS[name]))}")
            if name == "sort_by" and text not in SORT_COLUMNS:
                raise ValidationError(name, f"must be one of {', '.join(sorted(SORT_COLUMNS))}")
            if name == "account_identifier":
                check_identifier(text, name)
            elif name == "external_ref_id":
                check_external_ref_id(text, name)
            elif not text.strip():
                raise ValidationError(name, "must not be empty or blank")
        query.append((wire, text))
    start, end = filters.get("start_date"), filters.get("end_date")
    if (
        start is not None
        and end is not None
        and (
            format_query_datetime(start, "start_date")[1]
            > format_query_datetime(end, "end_date", end=True)[1]
        )
    ):
        raise ValidationError("start_date", "must not be after end_date")
    lo, hi = filters.get("min_remaining_balance"), filters.get("max_remaining_balance")
    if lo is not None and hi is not None and Decimal(str(lo)) > Decimal(str(hi)):
        raise ValidationError("min_remaining_balance", "must not exceed max_remaining_balance")
    return query


@tolerant_repr
class LineItemList(CursorPaginator[LineItem, LineItemPage, tuple[str, ...]]):
    """What ``line_items.list()`` returns: iterate it for line items, or :meth:`pages` for
    :class:`LineItemPage` objects. Lazy: nothing is fetched before iteration, and each
    iteration starts afresh. Pages follow the API's keyset (``pageKeys``)."""

    route = "GET /lineItems"

    def __init__(
        self, transport: Transport, query: list[tuple[str, str]], elements_per_block: int
    ) -> None:
        self._transport = transport
        self._query = query
        self._per_page = elements_per_block

    def __repr__(self) -> str:
        return f"LineItemList(query={self._query!r}, elements_per_block={self._per_page})"

    async def _fetch(self, cursor: tuple[str, ...] | None) -> LineItemPage:
        params = [*self._query, ("elementsPerBlock", str(self._per_page))]
        params.extend(("pageKeys", key) for key in cursor or ())
        resp = await self._transport.request("GET", "/lineItems", operation=READ, params=params)
        wire = resp.parse(LineItemListWire)
        keys = wire.keyset_page
        return LineItemPage(
            line_items=wire.line_items or [],
            next_page_keys=list((keys.next_page_keys if keys else None) or ()),
            previous_page_keys=list((keys.previous_page_keys if keys else None) or ()),
            result_count=keys.result_count if keys else None,
            total_count=keys.total_count if keys else None,
        )

    def _items(self, page: LineItemPage) -> Sequence[LineItem]:
        return page.line_items

    def _next(self, page: LineItemPage) -> tuple[str, ...] | None:
        if not page.next_page_keys or len(page.line_items) < self._per_page:
            return None
        return tuple(page.next_page_keys)


class LineItems(Resource):
    """Line-item calls of the API (see the module docstring for what is retried)."""

    def _path(self, reference_line_item_id: object, tail: str = "") -> tuple[str, str]:
        ref = check_path_id(reference_line_item_id, "reference_line_item_id")
        return ref, f"/lineItems/{path_segment(ref)}{tail}"

    async def get(self, reference_line_item_id: str, /) -> LineItem:
        """Fetch one line item with its reward and histories:
        ``GET /lineItems/{referenceLineItemID}``.

        Retried on 429, 5xx, timeouts and connection errors. Raises NotFoundError for an
        unknown ID, ValidationError for an empty or malformed one.
        """
        ref, path = self._path(reference_line_item_id)
        resp = await self._requestor.transport.request("GET", path, operation=READ)
        item = resp.parse(LineItem)
        if item.reference_line_item_id.casefold() != ref.casefold():
            raise resp.invalid(
                f"is about another line item ({escape(item.reference_line_item_id)})"
            )
        if item.reference_order_id:
            self._requestor.resend_links.pair(item.reference_order_id, item.reference_line_item_id)
        return item

    def list(
        self,
        *,
        reference_order_id: str | None = None,
        external_ref_id: str | None = None,
        utid: str | None = None,
        ptid: str | None = None,
        etid: str | None = None,
        status: str | None = None,
        email_status: EmailStatus | str | None = None,
        delivery_method: DeliveryMethod | str | None = None,
        delivery_status: DeliveryStatus | str | None = None,
        order_status: str | None = None,
        order_source: OrderSource | str | None = None,
        recipient_email: str | None = None,
        recipient_mobile_number: str | None = None,
        recipient_first_name: str | None = None,
        recipient_last_name: str | None = None,
        account_identifier: str | None = None,
        campaign: str | None = None,
        purchase_order_number: str | None = None,
        order_notes: str | None = None,
        recipient_street_line1: str | None = None,
        recipient_street_line2: str | None = None,
        recipient_city: str | None = None,
        recipient_state_or_province: str | None = None,
        recipient_postal_code: str | None = None,
        recipient_country: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        sort_by: str | None = None,
        ascending: bool | None = None,
        min_remaining_balance: Decimal | float | None = None,
        max_remaining_balance: Decimal | float | None = None,
        has_remaining_balance: bool | None = None,
        elements_per_block: int | None = None,
    ) -> LineItemList:
        """Iterate over line items: ``GET /lineItems``, lazily, page by page.

        ``async for item in tango.line_items.list(status="FAILED")`` yields LineItem
        objects (without reward credentials: :meth:`get` has those);
        ``.pages()`` yields LineItemPage objects. Every filter of the spec is here, checked
        when ``list()`` is called (ValidationError naming it): ``status`` COMPLETE,
        PENDING, FAILED or CANCELLED; ``order_status`` those and PARTIAL; ``email_status``,
        ``delivery_method``, ``delivery_status``, ``order_source`` their enums; ``sort_by``
        a column of the spec (``dateIssued`` by default, newest first unless
        ``ascending``); dates as for ``orders.list()``. ``elements_per_block`` is 1 to 100
        (default 100).
        """
        filters: LineItemListQuery = {
            "reference_order_id": reference_order_id,
            "external_ref_id": external_ref_id,
            "utid": utid,
            "ptid": ptid,
            "etid": etid,
            "status": status,
            "email_status": email_status,
            "delivery_method": delivery_method,
            "delivery_status": delivery_status,
            "order_status": order_status,
            "order_source": order_source,
            "recipient_email": recipient_email,
            "recipient_mobile_number": recipient_mobile_number,
            "recipient_first_name": recipient_first_name,
            "recipient_last_name": recipient_last_name,
            "account_identifier": account_identifier,
            "campaign": campaign,
            "purchase_order_number": purchase_order_number,
            "order_notes": order_notes,
            "recipient_street_line1": recipient_street_line1,
            "recipient_street_line2": recipient_street_line2,
            "recipient_city": recipient_city,
            "recipient_state_or_province": recipient_state_or_province,
            "recipient_postal_code": recipient_postal_code,
            "recipient_country": recipient_country,
            "start_date": start_date,
            "end_date": end_date,
            "sort_by": sort_by,
            "ascending": ascending,
            "min_remaining_balance": min_remaining_balance,
            "max_remaining_balance": max_remaining_balance,
            "has_remaining_balance": has_remaining_balance,
        }
        per_page = (
            check_int(elements_per_block, "elements_per_block", lo=1, hi=MAX_ELEMENTS_PER_BLOCK)
            if elements_per_block is not None
            else MAX_ELEMENTS_PER_BLOCK
        )
        return LineItemList(self._requestor.transport, line_item_query(filters), per_page)

    async def wait(
        self,
        reference_line_item_id: str,
        /,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - on the client clock, not asyncio.timeout
        poll: float = 2.0,
        max_poll: float = 60.0,
    ) -> LineItem:
        """Wait until the line item is final (COMPLETE, FAILED, CANCELLED, DELETED or
        RETURNED) and return it, polling :meth:`get`: first after ``poll`` seconds, then
        half as long again each time, at most ``max_poll`` apart, on the client's clock and
        through its read pacing. A status not documented is taken as not final (logged
        once). Raises WaitTimeoutError (with ``.last``) after ``timeout`` seconds (None:
        no limit); errors of :meth:`get`.
        """
        ref = check_path_id(reference_line_item_id, "reference_line_item_id")
        return await self._wait_final(
            f"line item {ref}",
            lambda: self.get(ref),
            is_final_line_item_status,
            KNOWN_LINE_ITEM_STATUSES,
            timeout=timeout,
            poll=poll,
            max_poll=max_poll,
        )

    async def update(
        self,
        reference_line_item_id: str,
        /,
        *,
        purchase_order_number: str | None = None,
        campaign: str | None = None,
        order_notes: str | None = None,
    ) -> None:
        """Change a line item's purchase order number, campaign or notes:
        ``PATCH /lineItems/{referenceLineItemID}`` (Tango answers 202 Accepted).

        At least one field; ``campaign`` letters, digits and spaces (up to 100),
        ``order_notes`` up to 150 characters (ValidationError before sending). Retried
        like a read: setting the same values again is harmless.
        """
        _, path = self._path(reference_line_item_id)
        body = encode_request(
            line_item_update_request(
                purchase_order_number=purchase_order_number,
                campaign=campaign,
                order_notes=order_notes,
            )
        )
        await self._requestor.transport.request("PATCH", path, operation=CHANGE, body=body)

    async def _act(
        self, action: str, reference_line_item_id: object, reason_code: object, other: object
    ) -> None:
        _, path = self._path(reference_line_item_id, f"/{action}")
        body = encode_request(
            line_item_action_request(action, reason_code=reason_code, other_reason=other)
        )
        await self._requestor.transport.request("POST", path, operation=ACTION, body=body)

    async def cancel(
        self,
        reference_line_item_id: str,
        /,
        *,
        reason_code: CancelReasonCode | str,
        other_reason: str | None = None,
    ) -> None:
        """Cancel a line item and refund its amount:
        ``POST /lineItems/{referenceLineItemID}/cancel`` (202 Accepted).

        ``reason_code`` is a CancelReasonCode; OTHER needs ``other_reason``. Only when the
        line item ``can_cancel``: Tango refuses otherwise (UnprocessableEntityError or
        PermissionDeniedError). Not retried once it may have reached the server.
        """
        await self._act("cancel", reference_line_item_id, reason_code, other_reason)

    async def freeze(
        self,
        reference_line_item_id: str,
        /,
        *,
        reason_code: FreezeReasonCode | str,
        other_reason: str | None = None,
    ) -> None:
        """Freeze a line item's reward so it cannot be redeemed:
        ``POST /lineItems/{referenceLineItemID}/freeze`` (202 Accepted).

        ``reason_code`` is a FreezeReasonCode; OTHER needs ``other_reason``. Only when the
        line item ``can_freeze``. Not retried once it may have reached the server.
        """
        await self._act("freeze", reference_line_item_id, reason_code, other_reason)

    async def unfreeze(
        self,
        reference_line_item_id: str,
        /,
        *,
        reason_code: FreezeReasonCode | str,
        other_reason: str | None = None,
    ) -> None:
        """Unfreeze a frozen line item: ``POST /lineItems/{referenceLineItemID}/unfreeze``.

        ``reason_code`` is a FreezeReasonCode; OTHER needs ``other_reason``. Tango refuses
        a line item that is cancelled or not frozen. Not retried once it may have reached
        the server.
        """
        await self._act("unfreeze", reference_line_item_id, reason_code, other_reason)

    async def reissue(
        self,
        reference_line_item_id: str,
        /,
        *,
        reason_code: ReissueReasonCode | str,
        other_reason: str | None = None,
        amount: Decimal | int | float | None = None,
        delivery_method: DeliveryMethod | str | None = None,
        recipient: ReissueRecipient | Mapping[str, Any] | None = None,
        notes: str | None = None,
    ) -> ReissuedLineItem:
        """Cancel a line item and issue a new one in its place (new amount, delivery
        method or recipient if given): ``POST /lineItems/{referenceLineItemID}/reissue``.

        **Spends money**: the new reward is charged. Never retried once it may have
        reached the server; after APIConnectionError with ``maybe_sent``, :meth:`get` the
        original (``reissued_to_reference_line_item_id``) before trying again.
        ``reason_code`` is a ReissueReasonCode (OTHER needs ``other_reason``); ``amount``
        follows the order rules (and the client's ``max_amount``); ``delivery_method`` a
        digital one; ``recipient`` names up to 100 characters without <, > or /, and a
        mobile number for PHONE / WHATSAPP; ``notes`` up to 150 characters. Returns the
        new order (ReissuedLineItem, with its reward).
        """
        _, path = self._path(reference_line_item_id, "/reissue")
        body = encode_request(
            reissue_request(
                reason_code=reason_code,
                other_reason=other_reason,
                amount=amount,
                delivery_method=delivery_method,
                recipient=recipient,
                notes=notes,
                max_amount=self._requestor.max_amount,
            )
        )
        resp = await self._requestor.transport.request("POST", path, operation=ACTION, body=body)
        new = resp.parse(ReissuedLineItem)
        if new.reference_line_item_id:
            self._requestor.resend_links.learn(new)
        return new

    async def reason_codes(self) -> ReasonCodes:
        """The reason codes of each action (freeze, unfreeze, cancel, cancel and reissue),
        code -> description: ``GET /lineItems/reasonCodes``."""
        resp = await self._requestor.transport.request(
            "GET", "/lineItems/reasonCodes", operation=READ
        )
        return resp.parse(ReasonCodes)

    async def embedded_url(self, reference_line_item_id: str, /) -> str:
        """The embeddable URL of a line item delivered EMBEDDED:
        ``GET /lineItems/{referenceLineItemID}/embeddedUrl``.

        The URL redeems the reward: treat it like a gift-card code (tango_async never logs
        it). Raises APIResponseValidationError if the answer holds no URL.
        """
        _, path = self._path(reference_line_item_id, "/embeddedUrl")
        resp = await self._requestor.transport.request("GET", path, operation=READ)
        url = resp.parse(EmbeddedUrlWire).url
        if not url:
            raise resp.invalid("the answer holds no url")
        return url

    async def resend(
        self,
        reference_line_item_id: str,
        /,
        *,
        new_delivery_method: DeliveryMethod | str | None = None,
        new_email: str | None = None,
        new_mobile_number: str | None = None,
        new_etid: str | None = None,
        reason_code: ResendReasonCode | str | None = None,
        other_reason: str | None = None,
        wait: bool = False,
    ) -> LineItemResend:
        """Resend a line item's reward: ``POST /lineItems/{referenceLineItemId}/resends``.

        The body says ``newMobileNumber`` (unlike order resends). ``reason_code`` OTHER
        needs ``other_reason``. One resend per line item per ``resend_cooldown`` seconds:
        sooner raises ResendCooldownError without a network call, or waits with
        ``wait=True``. Not retried once it may have reached the server (resends are not
        idempotent). Raises ValidationError before sending; APIError subclasses on
        refusal (403.003: Tango did not deliver the original); APIConnectionError.
        """
        ref = check_path_id(reference_line_item_id, "reference_line_item_id")
        body = ENCODER.encode(
            line_item_resend_request(
                new_delivery_method=new_delivery_method,
                new_email=new_email,
                new_mobile_number=new_mobile_number,
                new_etid=new_etid,
                reason_code=reason_code,
                other_reason=other_reason,
            )
        )
        path = f"/lineItems/{path_segment(ref)}/resends"
        return await self._resend("line_item", ref, path, body, LineItemResend, wait, RESEND)
