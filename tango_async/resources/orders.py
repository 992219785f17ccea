"""``client.orders``: create, get, list and resend orders, and settle unknown outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from .._codec import CANONICAL_ENCODER, ENCODER, encode_request
from .._constants import DEFAULT_MAX_AMOUNT
from .._exceptions import APIResponseValidationError, SendSkipped, TangoError, ValidationError
from .._logs import escape
from .._retry import CREATE, READ, RESEND
from .._transport import Exchange
from .._unresolved import State, UnresolvedOrder, content_key, now_utc
from .._validation import (
    check_external_ref_id,
    check_path_id,
    order_resend_request,
    path_segment,
    prepare_order,
)
from ..pagination import OrderHistory, OrderListQuery, list_query
from ..types.enums import (
    KNOWN_ORDER_STATUSES,
    DeliveryMethod,
    LineItemStatus,
    OrderStatus,
    is_final_order_status,
)
from ..types.orders import CreatedOrder, CreateOrderRequest, Order
from ..types.resends import Resend
from ._base import Resource
from .catalog import check_order

if TYPE_CHECKING:
    from .._requestor import Requestor

__all__ = ["Orders"]

log = logging.getLogger("tango_async")

DateLike = date | datetime | str
_STORE_GRACE = 2.0  # seconds a cancelled create still gives the store to record its outcome


class _OrderKey(msgspec.Struct):
    """What the catalog check reads of an encoded order."""

    utid: str
    amount: Decimal


def new_external_ref_id() -> str:
    """A fresh externalRefID: alphanumeric, 34 characters."""
    return "ta" + uuid.uuid4().hex


def encode_order(
    request: CreateOrderRequest,
    external_ref_id: str | None = None,
    *,
    max_amount: Decimal | int = DEFAULT_MAX_AMOUNT,
) -> tuple[str, bytes]:
    """Check ``request`` (ValidationError) and encode it for the wire, with its
    externalRefID: the request's own, else ``external_ref_id``, else a fresh one."""
    wire = prepare_order(request, max_amount=max_amount)
    ref = wire.external_ref_id or external_ref_id or new_external_ref_id()
    return ref, encode_request(msgspec.structs.replace(wire, external_ref_id=ref))


class Orders(Resource):
    """Order calls of the API."""

    def __init__(self, requestor: Requestor) -> None:
        super().__init__(requestor)
        # The client's creates in flight and settled, shared with its views (see CreateState)
        self._in_flight: set[str] = requestor.creates.in_flight
        self._settled: dict[str, None] = requestor.creates.settled

    async def create(self, request: CreateOrderRequest) -> CreatedOrder:
        """Place an order: ``POST /orders``.

        Every documented rule is checked first (ValidationError, nothing sent, no rate slot
        spent). ``created`` on the result is True for a new order (201) and False when the
        order already existed for its externalRefID (200).

        **Never paid twice.** The request always carries an externalRefID, reused on every
        retry of the call, so a reply lost after the server committed never makes a second
        order. When the call ends without a definite answer (cancelled or timed out from
        outside after a request went out, the connection lost after sending, retries
        exhausted after a 5xx, an answer that cannot be read), the client remembers the
        externalRefID (``unresolved()``): creating equal content again with this client
        (the same request object or an equal one) reuses it and gets the existing order
        (``created=False``) if the first attempt went through. A definite answer ends
        that; an identical order created after a known success is a new order.
        A request that names its own ``external_ref_id`` is sent with it as given (the
        API is idempotent on it); it is listed by ``unresolved()`` while unknown, too.

        Each attempt waits for a slot of the client's rate limiter (1 TPS by default).
        Retried with the same externalRefID after 5xx, timeouts, connection errors, 429
        (>= 1 s, or Retry-After), 409 (>= 2 s) and unreadable 2xx answers, up to
        ``max_retries``; other 4xx are not retried. Errors from the API or the network
        carry ``external_ref_id`` and ``outcome_unknown``; closing the client while the
        call waits raises ClientClosedError; UnresolvedStoreError if the store cannot
        record the order before it is sent (nothing sent).

        With ``TangoClient(check_catalog=True)`` the order is also checked against the
        client's cached catalog (fetched once if needed, never per order): an unknown or
        inactive utid, or an amount that is not the item's face value or outside its
        range, is a ValidationError; a catalog that cannot be fetched a
        CatalogUnavailableError. Nothing is sent and no rate slot is spent either way. A
        resend of an earlier attempt whose outcome is unknown is not checked (it may
        exist; it is settled whatever the catalog says now).
        """
        client = self._requestor
        store = client.unresolved_store
        wire = prepare_order(request, max_amount=client.max_amount)
        ref = wire.external_ref_id
        key: str | None = None
        if ref is None:
            key = content_key(encode_request(wire, CANONICAL_ENCODER))
            earlier = await self._earlier(key)
            if earlier is not None:
                ref = earlier.external_ref_id
                log.info(
                    "orders.create: equal content was created before with an unknown outcome; "
                    "sending it again with its externalRefID %s",
                    ref,
                )
        else:
            earlier = await store.get(ref)
        ref = ref or new_external_ref_id()
        # Reserved at once, with no await since the lookup: a concurrent equal create
        # of this client never picks the same earlier attempt.
        self._in_flight.add(ref)
        try:
            if earlier is None:
                # check_catalog: the cached catalog's rules, before any rate slot is taken.
                # Not for a resend of an attempt whose outcome is unknown: it may exist, and
                # a catalog changed since must not keep it from being settled.
                await check_order(client, wire.utid, Decimal(wire.amount))
            body = encode_request(msgspec.structs.replace(wire, external_ref_id=ref))
            return await self._send_encoded(
                ref, body, content_key=key, remember=True, reused=earlier is not None
            )
        finally:
            self._in_flight.discard(ref)

    async def _earlier(self, key: str) -> UnresolvedOrder | None:
        """The oldest remembered attempt with this content that no call of this client is
        sending and that this client has not settled (a settled one whose removal from the
        store failed is removed again)."""
        store = self._requestor.unresolved_store
        for entry in await store.find(key):
            ref = entry.external_ref_id
            if ref in self._settled:
                await _quietly(store.remove(ref))
            elif ref not in self._in_flight:
                return entry
        return None

    async def send_encoded(
        self,
        ref: str,
        body: bytes,
        *,
        content_key: str | None = None,
        remember: bool = False,
        reused: bool = False,
        gate: Callable[[], bool] | None = None,
    ) -> CreatedOrder:
        """POST an order already checked and encoded: ``body`` is the wire JSON (as
        :func:`encode_order` gives it) whose externalRefID is ``ref``. The part of
        :meth:`create` below validation: the seam for workflows that must send the exact
        bytes they recorded (bulk jobs send their journaled bytes through it).

        Retries, pacing and errors are create()'s; nothing here checks ``body`` again, so
        pass only what :func:`encode_order` produced. ``remember``: keep the attempt in the
        client's unresolved store while its outcome is unknown (bulk jobs keep their own
        journal instead). ``reused``: ``ref`` was sent before with an unknown outcome, so
        only a 2xx is a definite answer. ``gate``: asked once the first rate slot is taken;
        False sends nothing (SendSkipped).

        With the client's ``check_catalog``, the order's utid and amount are checked
        against the cached catalog first, as in :meth:`create` (ValidationError or
        CatalogUnavailableError, nothing sent, no rate slot spent), except for a
        ``reused`` ref: that order may already exist, and only sending it again settles it.
        """
        if self._requestor.check_catalog and not reused:
            try:
                key = msgspec.json.decode(body, type=_OrderKey)
            except msgspec.DecodeError:
                raise ValidationError("body", "must be an order encoded by encode_order") from None
            await check_order(self._requestor, key.utid, key.amount)
        return await self._send_encoded(
            ref, body, content_key=content_key, remember=remember, reused=reused, gate=gate
        )

    async def _send_encoded(
        self,
        ref: str,
        body: bytes,
        *,
        content_key: str | None = None,
        remember: bool = False,
        reused: bool = False,
        gate: Callable[[], bool] | None = None,
    ) -> CreatedOrder:
        """:meth:`send_encoded` once the catalog check is passed (or not asked for)."""
        client = self._requestor
        store = client.unresolved_store if remember else None
        exchange = Exchange()
        entry: UnresolvedOrder | None = None
        if store is not None:
            now = now_utc()
            entry = UnresolvedOrder(ref, content_key, body, "sending", now, now, "in flight")
            try:
                await store.put(entry)  # before anything is sent: it survives a crash
            except TangoError as e:
                e.external_ref_id = ref
                raise
            except asyncio.CancelledError:
                if not reused:  # nothing was sent: leave no entry behind
                    await _quietly(store.remove(ref))
                raise  # (a reused ref keeps its entry: the earlier attempt is still unknown)
        try:
            order = await self._post(ref, body, exchange, gate)
        except BaseException as e:
            unknown = exchange.outcome_unknown or (reused and not isinstance(e, SendSkipped))
            if isinstance(e, TangoError):
                e.external_ref_id = ref
                e.outcome_unknown = unknown
            if unknown and not isinstance(e, TangoError):  # cancelled from outside
                log.warning(
                    "orders.create %s after sending; the order may exist. It is remembered "
                    "(orders.unresolved()): creating it again reuses external_ref_id=%s, "
                    "orders.resolve() looks it up",
                    "cancelled" if isinstance(e, asyncio.CancelledError) else "interrupted",
                    ref,
                )
            if store is not None and entry is not None:
                if unknown:
                    await _quietly(store.put(_with_state(entry, "unknown", _reason(e))))
                else:
                    await _quietly(store.remove(ref))
            raise
        if store is not None and entry is not None:
            self._forget(ref)
            removal = asyncio.ensure_future(_quietly(store.remove(ref)))  # a definite answer
            try:
                await asyncio.shield(removal)
            except asyncio.CancelledError:
                # Cancelled while recording the answer: to the caller the outcome is unknown,
                # so the attempt must stay remembered once the removal has run (bounded: a
                # store that hangs must not keep a cancelled call alive).
                self._settled.pop(ref, None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(removal, _STORE_GRACE)
                kept = _with_state(entry, "unknown", "cancelled after 2xx")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_quietly(store.put(kept)), _STORE_GRACE)
                raise
        return order

    def _forget(self, ref: str) -> None:
        """Note that ``ref`` got a definite answer (bounded: the newest 10,000)."""
        self._settled[ref] = None
        if len(self._settled) > 10_000:
            del self._settled[next(iter(self._settled))]

    async def _post(
        self, ref: str, body: bytes, exchange: Exchange, gate: Callable[[], bool] | None
    ) -> CreatedOrder:
        """The POST with its retries, until an answer that decodes into this order."""
        transport = self._requestor.transport
        policy = transport.retry

        async def check_gate() -> None:  # after the rate slot (taken by the transport)
            if gate is not None and exchange.attempts == 0 and not gate():
                raise SendSkipped(f"order {ref} not sent: the job stopped")

        made = False  # a 201 was seen: the order was made by this call
        while True:
            try:
                resp = await transport.request(
                    "POST",
                    "/orders",
                    operation=CREATE,
                    body=body,
                    before_send=check_gate if gate is not None else None,
                    exchange=exchange,
                )
                made |= resp.status == 201
                order = resp.parse(CreatedOrder)
                if not order.reference_order_id or order.external_ref_id not in (None, ref):
                    raise APIResponseValidationError(
                        f"POST /orders: HTTP {resp.status} answer is not this order "
                        f"(referenceOrderID {order.reference_order_id!r}, externalRefID "
                        f"{order.external_ref_id!r}, expected {ref!r})",
                        status_code=resp.status,
                        path=resp.path,
                        body=resp.body,
                        headers=dict(resp.headers),
                    )
            except APIResponseValidationError as e:
                # The server answered 2xx (or an answer too large to read): the order most
                # likely exists. Ask again with the same externalRefID; the API answers
                # with the existing order.
                exchange.maybe_delivered = True
                made |= e.status_code == 201
                if exchange.attempts > policy.max_retries:  # one budget for every retry
                    raise
                delay = policy.backoff(exchange.attempts - 1)
                log.warning(
                    "POST /orders: HTTP %d answer cannot be read; asking again with "
                    "externalRefID %s in %.2f s",
                    e.status_code,
                    ref,
                    delay,
                )
                await transport.sleep(delay)
                continue
            order.created = made or resp.status != 200
            self._requestor.resend_links.learn(order)
            return order

    async def unresolved(self) -> list[UnresolvedOrder]:
        """The order creations of this client's store whose outcome is unknown, oldest
        first: calls that ended without a definite answer, and (in a durable store) calls
        whose process died while sending. Calls in flight in this client are left out.

        Settle each with :meth:`resolve`, or create the same order again (it reuses the
        externalRefID). UnresolvedStoreError if the store cannot be read.
        """
        entries = await self._requestor.unresolved_store.list()
        busy = self._in_flight
        return [e for e in entries if e.state != "not_found" and e.external_ref_id not in busy]

    async def resolve(self, external_ref_id: str, /) -> CreatedOrder | None:
        """Ask the server whether the order with ``external_ref_id`` exists.

        Returns the order (``created=False``, with its reward) and forgets the entry; or
        None: no such order (yet). The entry is then hidden from :meth:`unresolved` but
        kept, so that creating the same content again still reuses the externalRefID: an
        attempt that was still in process somewhere can never become a second order.
        Lookups are ``GET /orders?externalRefID=`` then ``GET /orders/{id}``, retried like
        every read. ValidationError for a malformed ID; APIError / APIConnectionError.
        """
        ref = check_external_ref_id(external_ref_id)
        if ref is None:
            raise ValidationError("external_ref_id", "is required")
        store = self._requestor.unresolved_store
        found: Order | None = None
        async for order in self.list(external_ref_id=ref):
            if order.external_ref_id == ref:
                found = await self.get(order.reference_order_id)
                break
        if ref in self._in_flight:  # the call in flight settles it
            return None if found is None else _as_created(found)
        if found is not None:
            await store.remove(ref)
            return _as_created(found)
        entry = await store.get(ref)
        if entry is not None:
            await store.put(_with_state(entry, "not_found", "resolve(): no order found"))
        return None

    async def get(self, reference_order_id: str, /) -> Order:
        """Fetch one order with its reward credentials: ``GET /orders/{referenceOrderID}``.

        Retried on 429, 5xx, timeouts and connection errors. Raises NotFoundError for an
        unknown ID, ValidationError for an empty or malformed one.
        """
        ref = check_path_id(reference_order_id, "reference_order_id")
        resp = await self._requestor.transport.request(
            "GET", f"/orders/{path_segment(ref)}", operation=READ
        )
        order = resp.parse(Order)
        if order.reference_order_id.casefold() != ref.casefold():
            # (a proxy's cache, a server bug: never report another order as this one)
            raise resp.invalid(f"is about another order ({escape(order.reference_order_id)})")
        self._requestor.resend_links.learn(order)
        return order

    async def wait(
        self,
        reference_order_id: str,
        /,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - on the client clock
        poll: float = 2.0,
        max_poll: float = 60.0,
    ) -> Order:
        """Wait until the order is final and return it, polling :meth:`get`.

        Final: COMPLETE, FAILED (Tango refunded the account), CANCELLED, PARTIAL, DELETED
        (``ta.FINAL_ORDER_STATUSES``). PENDING can last up to a business day; it and every
        other status, including ones not documented (logged once per client), are not
        final. Polls first after ``poll`` seconds, then half as long again each time, at
        most ``max_poll`` apart, on the client's clock and through its read pacing (each
        poll is a ``get``, retried as reads are). Raises WaitTimeoutError, whose ``.last``
        is the last Order seen, after ``timeout`` seconds (None: no limit); NotFoundError
        and the other errors of :meth:`get`. For many orders, prefer webhooks
        (``tango.webhooks``) to polling each.
        """
        ref = check_path_id(reference_order_id, "reference_order_id")
        return await self._wait_final(
            f"order {ref}",
            lambda: self.get(ref),
            is_final_order_status,
            KNOWN_ORDER_STATUSES,
            timeout=timeout,
            poll=poll,
            max_poll=max_poll,
        )

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
        concurrency: int | None = None,
    ) -> OrderHistory:
        """Iterate over order history: ``GET /orders``, lazily, page by page.

        ``async for order in tango.orders.list(...)`` yields orders;
        ``async for page in tango.orders.list(...).pages()`` yields OrderPage objects.
        Pages are fetched on demand (none ahead of the consumer by default), 100 per
        request unless ``elements_per_block`` says otherwise (at most 100). ``page`` is
        the page to start from. Dates take a ``date`` (a whole day, UTC), an aware
        ``datetime`` or an RFC 3339 string.

        The API pages through at most 10,000 results per query. With a date range
        (``start_date`` and/or ``end_date``), larger results are split into smaller
        date windows transparently (also when the API refuses a period as too long,
        422.043), and every order in the range is yielded exactly once. Without one,
        the whole history is yielded: past the window it is split by date the same way
        (from 2000-01-01 to a day past the client's clock). ``.pages()`` numbers its pages
        in one sequence across the windows, and each page's ``total_count`` is the whole
        query's (a window's only where the API refused to count the whole range).
        ResultWindowError only where no split is possible (``page=`` past the first page
        of such a list; more than the window within one millisecond). Filter values are checked when
        ``list()`` is called, before any request (ValidationError): text filters take no
        control characters, and a date must be an instant within the years 1 to 9999 in
        UTC (``0001-01-01T00:00:00+12:00`` is not).

        ``concurrency`` (1 to 16; None means 1) is how many pages may be fetched at a
        time. Above 1, once a page gives the ``totalCount``, the requests the walk makes
        next (the window's later pages, then the next window's) are fetched ahead, at
        most ``concurrency`` of them in flight or fetched and not yet consumed: a long
        export over a distant connection takes up to ``concurrency`` times less. The
        orders, their order and the exactly-once guarantee are those of the sequential
        walk; an error is raised where its page comes, and stopping early (``break``,
        ``aclose()``, an error, a cancellation) cancels the fetches ahead. Every request
        still goes through the client's pacing, which slows GET /orders down after a 429.

        The default is 1, sequential, for two reasons. Tango does not publish its limits
        on reads, and a 429 costs a whole Retry-After for every caller of the route (on
        an account whose limit counts all endpoints together, order creation beside the
        export too), so a client does not multiply its read rate unasked. And a consumer
        that stops early (``--limit``, a search) sends no request it did not need. Pass
        ``concurrency=4`` for exports.
        """
        filters: OrderListQuery = {
            "account_identifier": account_identifier,
            "customer_identifier": customer_identifier,
            "external_ref_id": external_ref_id,
            "start_date": start_date,
            "end_date": end_date,
            "min_amount": min_amount,
            "max_amount": max_amount,
            "currency_code": currency_code,
            "utid": utid,
            "ptid": ptid,
            "reward_name": reward_name,
            "sender_first_name": sender_first_name,
            "sender_last_name": sender_last_name,
            "sender_email": sender_email,
            "recipient_email": recipient_email,
            "recipient_first_name": recipient_first_name,
            "recipient_last_name": recipient_last_name,
            "recipient_mobile_number": recipient_mobile_number,
            "send_email": send_email,
            "delivery_method": delivery_method,
            "status": status,
            "order_status": order_status,
            "line_item_status": line_item_status,
            "campaign": campaign,
            "notes": notes,
            "line_item_notes": line_item_notes,
            "purchase_order_number": purchase_order_number,
        }
        return OrderHistory(
            self._requestor.transport,
            list_query(filters),
            start_date=start_date,
            end_date=end_date,
            elements_per_block=elements_per_block,
            page=page,
            result_window=self._requestor.result_window,
            on_order=self._requestor.resend_links.learn,
            concurrency=concurrency,
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
        return await self._resend("order", ref, path, body, Resend, wait, RESEND)


def _with_state(entry: UnresolvedOrder, state: State, reason: str) -> UnresolvedOrder:
    return dataclasses.replace(entry, state=state, updated_at=now_utc(), reason=reason)


def _reason(e: BaseException) -> str:
    if isinstance(e, asyncio.CancelledError):
        return "cancelled after sending"
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}"[:300]


def _as_created(order: Order) -> CreatedOrder:
    fields = {name: getattr(order, name) for name in Order.__struct_fields__}
    created = CreatedOrder(**fields)
    created.created = False
    return created


async def _quietly(step: Awaitable[None]) -> None:
    """Update the unresolved store after the answer; a store failing now must not turn an
    answer into an error (a stale entry only makes a later equal create reuse its ref)."""
    try:
        await step
    except TangoError as e:
        log.warning("could not update the unresolved-order store: %s", e)
