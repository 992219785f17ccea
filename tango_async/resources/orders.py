"""``client.orders``: create, get, list and resend orders."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .._codec import ENCODER, decode
from .._exceptions import TangoError, ValidationError
from .._validation import check_path_id, order_resend_request, path_segment, prepare_order
from ..pagination import OrderHistory, build_list_query
from ..types.enums import DeliveryMethod, LineItemStatus, OrderStatus
from ..types.orders import CreatedOrder, CreateOrderRequest, Order
from ..types.resends import Resend
from ._base import Resource

if TYPE_CHECKING:
    from ..bulk._inputs import InputRow
    from ..bulk._job import BulkJob

__all__ = ["Orders"]

log = logging.getLogger("tango_async")

DateLike = date | datetime | str


def new_external_ref_id() -> str:
    """A fresh externalRefID: alphanumeric, 34 characters."""
    return "ta" + uuid.uuid4().hex


def encode_order(
    request: CreateOrderRequest, external_ref_id: str | None = None
) -> tuple[str, bytes]:
    """Check ``request`` (ValidationError) and encode it for the wire, with its
    externalRefID: the request's own, else ``external_ref_id``, else a fresh one."""
    wire = prepare_order(request)
    ref = wire.external_ref_id or external_ref_id or new_external_ref_id()
    wire = msgspec.structs.replace(wire, external_ref_id=ref)
    try:
        return ref, ENCODER.encode(wire)
    except (TypeError, ValueError, msgspec.EncodeError) as e:
        raise ValidationError("custom_fields", f"must hold JSON values only ({e})") from None


class Orders(Resource):
    """Order calls of the API."""

    async def create(self, request: CreateOrderRequest) -> CreatedOrder:
        """Place an order: ``POST /orders``.

        Every documented rule is checked first (ValidationError, nothing sent, no rate slot
        spent). The request always carries an externalRefID: ``request.external_ref_id``,
        or one generated for this call and reused on every retry, so a reply lost after
        the server committed never makes a second order. ``created`` on the result is True
        for a new order (201) and False when the order already existed for that
        externalRefID (200).

        Each attempt waits for a slot of the client's rate limiter (1 TPS by default).
        Retried with the same externalRefID after 5xx, timeouts, connection errors, 429
        (>= 1 s, or Retry-After) and 409 (>= 2 s), up to ``max_retries``; other 4xx are not
        retried. Every error raised carries ``external_ref_id``, so the caller can retry
        the same order later without risk of paying twice.
        """
        ref, body = encode_order(request)
        return await self._send_encoded(ref, body)

    async def _send_encoded(self, ref: str, body: bytes) -> CreatedOrder:
        """POST an order already checked and encoded (with externalRefID ``ref``): the part
        of create() that bulk jobs call with the exact bytes they journaled."""
        client = self._client
        limiter = client.rate_limiter
        slots = 0

        async def take_slot() -> None:
            nonlocal slots
            await limiter.acquire()
            slots += 1

        try:
            resp = await client._transport.request(
                "POST",
                "/orders",
                mode="create",
                body=body,
                before_send=take_slot,
                on_rate_limited=limiter.penalize,
            )
            order = decode(resp, CreatedOrder)
        except TangoError as e:
            e.external_ref_id = ref
            raise
        except asyncio.CancelledError:
            if slots:  # a request went out: the order may exist; say how to find it
                log.warning(
                    "orders.create cancelled after sending; the order may exist: "
                    "retry with external_ref_id=%s to get it without paying twice",
                    ref,
                )
            raise
        order.created = resp.status != 200
        return order

    def submit_many(
        self,
        requests: Iterable[CreateOrderRequest | InputRow],
        *,
        journal: str | Path | None = None,
        job_id: str | None = None,
        concurrency: int = 2,
        skip_invalid: bool = False,
    ) -> BulkJob:
        """A bulk order job over ``requests``; iterate it to send them and get RowResults.

        Every row is checked before anything is sent: invalid rows raise
        BulkValidationError listing them all (nothing sent), or with ``skip_invalid`` come
        back as ``invalid`` results. Rows without an externalRefID get ``{job_id}r{row}``;
        ``job_id`` defaults to a digest of the requests, so running the same input again
        never makes a second order. Orders go out through this client's rate limiter,
        ``concurrency`` at a time. With ``journal`` (a new SQLite file) every row's state
        is on disk before its request goes out: ``BulkJob.resume(client, Journal.open(path))``
        finishes an interrupted job with exactly one order per row.
        """
        from ..bulk._job import BulkJob

        return BulkJob.prepare(
            self._client,
            requests,
            job_id=job_id,
            journal=journal,
            concurrency=concurrency,
            skip_invalid=skip_invalid,
        )

    async def get(self, reference_order_id: str, /) -> Order:
        """Fetch one order with its reward credentials: ``GET /orders/{referenceOrderID}``.

        Retried on 429, 5xx, timeouts and connection errors. Raises NotFoundError for an
        unknown ID, ValidationError for an empty or malformed one.
        """
        ref = check_path_id(reference_order_id, "reference_order_id")
        resp = await self._client._transport.request(
            "GET", f"/orders/{path_segment(ref)}", mode="read"
        )
        return decode(resp, Order)

    def list(
        self,
        *,
        account_identifier: str | None = None,
        customer_identifier: str | None = None,
        external_ref_id: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        elements_per_block: int | None = None,
        page: int | None = None,
        min_amount: Decimal | float | None = None,
        max_amount: Decimal | float | None = None,
        currency_code: str | None = None,
        utid: str | None = None,
        ptid: str | None = None,
        reward_name: str | None = None,
        sender_first_name: str | None = None,
        sender_last_name: str | None = None,
        sender_email: str | None = None,
        recipient_email: str | None = None,
        recipient_first_name: str | None = None,
        recipient_last_name: str | None = None,
        recipient_mobile_number: str | None = None,
        send_email: bool | None = None,
        delivery_method: DeliveryMethod | str | None = None,
        status: OrderStatus | str | None = None,
        order_status: OrderStatus | str | None = None,
        line_item_status: LineItemStatus | str | None = None,
        campaign: str | None = None,
        notes: str | None = None,
        line_item_notes: str | None = None,
        purchase_order_number: str | None = None,
    ) -> OrderHistory:
        """Iterate over order history: ``GET /orders``, lazily, page by page.

        ``async for order in tango.orders.list(...)`` yields orders;
        ``async for page in tango.orders.list(...).pages()`` yields OrderPage objects.
        Pages are fetched on demand (none ahead of the consumer), 100 per request unless
        ``elements_per_block`` says otherwise (at most 100). ``page`` is the page to
        start from. Dates take a ``date`` (a whole day, UTC), an aware ``datetime`` or an
        RFC 3339 string.

        The API pages through at most 10,000 results per query. With a date range
        (``start_date`` and/or ``end_date``), larger results are split into smaller
        date windows transparently (also when the API refuses a period as too long,
        422.043), and every order in the range is yielded exactly once. Without one,
        reaching the window raises ResultWindowError. Filter values are checked before
        the first request (ValidationError).
        """
        query = build_list_query(
            account_identifier=account_identifier,
            customer_identifier=customer_identifier,
            external_ref_id=external_ref_id,
            min_amount=min_amount,
            max_amount=max_amount,
            currency_code=currency_code,
            utid=utid,
            ptid=ptid,
            reward_name=reward_name,
            sender_first_name=sender_first_name,
            sender_last_name=sender_last_name,
            sender_email=sender_email,
            recipient_email=recipient_email,
            recipient_first_name=recipient_first_name,
            recipient_last_name=recipient_last_name,
            recipient_mobile_number=recipient_mobile_number,
            send_email=send_email,
            delivery_method=delivery_method,
            status=status,
            order_status=order_status,
            line_item_status=line_item_status,
            campaign=campaign,
            notes=notes,
            line_item_notes=line_item_notes,
            purchase_order_number=purchase_order_number,
        )
        return OrderHistory(
            self._client._transport,
            query,
            start_date=start_date,
            end_date=end_date,
            elements_per_block=elements_per_block,
            page=page,
            result_window=self._client.result_window,
        )

    async def resend(
        self,
        reference_order_id: str,
        /,
        *,
        new_email: str | None = None,
        new_etid: str | None = None,
        new_mobile: str | None = None,
        new_delivery_method: DeliveryMethod | str | None = None,
        wait: bool = False,
    ) -> Resend:
        """Resend an order's reward: ``POST /orders/{referenceOrderID}/resends``.

        The body says ``newMobile`` (unlike line-item resends). One resend per order per
        ``resend_cooldown`` seconds (30 by default): sooner raises ResendCooldownError with
        ``retry_after`` and makes no network call, or waits with ``wait=True``; the
        server's own 403.005 maps to the same error. Resends are not idempotent: they are
        retried only on 429 and on failures before the request was sent. Raises
        ValidationError before sending; PermissionDeniedError 403.003 when Tango did not
        deliver the original; other APIError subclasses; APIConnectionError.
        """
        ref = check_path_id(reference_order_id, "reference_order_id")
        body = ENCODER.encode(
            order_resend_request(
                new_email=new_email,
                new_etid=new_etid,
                new_mobile=new_mobile,
                new_delivery_method=new_delivery_method,
            )
        )
        path = f"/orders/{path_segment(ref)}/resends"
        return await self._resend("order", ref, path, body, Resend, wait)
