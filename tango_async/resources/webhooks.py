"""``client.webhooks``: webhook subscriptions (create, list, get, update, delete, renew),
their events (list, replay, test events), the event types, and a helper that keeps a
subscription renewed.

What is retried after it may have reached the server: reads (list, get, events,
event_types), ``update`` (a PATCH of the same fields) and ``renew`` are; ``create`` (a
second subscription would deliver every event twice), ``delete``, ``replay`` and
``test`` (deliveries again) are not, beyond a 429 or a failure before sending.

Verifying what Tango delivers is :func:`tango_async.verify_webhook`; receiving it, the
aiohttp handler of :mod:`tango_async.webhooks`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from .._codec import encode_request
from .._exceptions import (
    NotFoundError,
    TangoError,
    ValidationError,
    WebhookVerificationError,
)
from .._pagination import CursorPaginator
from .._repr import tolerant_repr
from .._retry import ACTION, CHANGE, READ
from .._signing import parse_webhook
from .._validation import (
    check_int,
    check_str,
    check_webhook_id,
    finite_number,
    format_query_datetime,
    path_segment,
    webhook_request,
)
from ..types.enums import WebhookEventType, WebhookVerification
from ..types.webhooks import (
    CursorPage,
    EventListWire,
    EventTypeGroup,
    EventTypeListWire,
    Webhook,
    WebhookEvent,
    WebhookExpiry,
    WebhookListWire,
)
from ._base import Resource

if TYPE_CHECKING:
    from .._transport import Response, Transport

__all__ = ["WebhookEventList", "WebhookList", "WebhookRenewer", "Webhooks"]

log = logging.getLogger("tango_async")

MAX_RESULTS = 200
DateLike = date | datetime | str


class _CursorList(CursorPaginator[Any, CursorPage[Any], str]):
    """A cursor-paged list of the webhooks API (``prevCursor`` / ``nextCursor``,
    ``maxResults`` up to 200)."""

    def __init__(
        self, transport: Transport, path: str, query: list[tuple[str, str]], per_page: int
    ) -> None:
        self._transport = transport
        self._path = path
        self._query = query
        self._per_page = per_page

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r}, query={self._query!r})"

    async def _fetch(self, cursor: str | None) -> CursorPage[Any]:
        params = [*self._query, ("maxResults", str(self._per_page))]
        if cursor is not None:
            params.append(("nextCursor", cursor))
        resp = await self._transport.request("GET", self._path, operation=READ, params=params)
        return self._page(resp)

    wire: ClassVar[type[Any]]  # the page's wire model: items and the cursor fields

    def _page(self, resp: Response) -> CursorPage[Any]:
        wire = resp.parse(self.wire)
        return CursorPage(
            items=self._parsed(resp, wire.items or []),
            next_cursor=wire.next_cursor,
            prev_cursor=wire.prev_cursor,
            has_next=bool(wire.next_page_available),
        )

    def _parsed(self, resp: Response, items: list[Any]) -> list[Any]:
        """The page's items as yielded (as decoded, unless a list says otherwise)."""
        return items

    def _items(self, page: CursorPage[Any]) -> Sequence[Any]:
        return page.items

    def _next(self, page: CursorPage[Any]) -> str | None:
        return page.next_cursor if page.has_next and page.next_cursor else None


@tolerant_repr
class WebhookList(_CursorList):
    """What ``webhooks.list()`` returns: iterate it for :class:`Webhook` objects, or
    :meth:`pages` for pages. Lazy; each iteration starts afresh."""

    route = "GET /webhooks"
    wire = WebhookListWire


@tolerant_repr
class WebhookEventList(_CursorList):
    """What ``webhooks.events(id)`` returns: iterate it for :class:`WebhookEvent` objects
    (oldest revision first, as Tango answers), or :meth:`pages`. Lazy."""

    route = "GET /webhooks/{id}/events"
    wire = EventListWire

    def _parsed(self, resp: Response, items: list[Any]) -> list[Any]:
        events: list[WebhookEvent] = []
        for raw in items:
            try:
                events.append(parse_webhook(bytes(raw)))
            except WebhookVerificationError as e:
                raise resp.invalid(f"holds an event that does not parse: {e.reason}") from None
        return events


def _per_page(max_results: object) -> int:
    if max_results is None:
        return MAX_RESULTS
    return check_int(max_results, "max_results", lo=1, hi=MAX_RESULTS)


def _revision(value: object, field: str) -> str:
    return str(check_int(value, field, lo=0, hi=2**63 - 1))


def _wall_now(clock: object) -> datetime:
    """The clock's wall time where it has one (the sandbox clock), else the system's."""
    now = getattr(clock, "now", None)
    if callable(now):
        value = now()
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value
    return datetime.now(UTC)


class Webhooks(Resource):
    """Webhook calls of the API (see the module docstring for what is retried)."""

    def _path(self, webhook_id: object, tail: str = "") -> str:
        return f"/webhooks/{path_segment(check_webhook_id(webhook_id))}{tail}"

    async def create(
        self,
        url: str,
        *,
        event_types: Sequence[WebhookEventType | str] | None = None,
        categories: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        verification: WebhookVerification | str | None = None,
        hmac_key: bytes | str | None = None,
        certificate: bytes | str | None = None,
    ) -> WebhookExpiry:
        """Subscribe ``url`` to events: ``POST /webhooks``; returns its ID and expiry.

        Give ``event_types`` and/or ``categories`` (``event_types()`` lists them) and how
        deliveries are signed: ``hmac_key`` (bytes, or the base64 text of at least 16
        bytes) for HMAC, ``certificate`` (PEM, DER or base64) for X509, or
        ``verification="NONE"`` for unsigned ones. ``headers`` are sent with every
        delivery (for the listener's own authentication). Every rule is checked before
        sending (ValidationError): an absolute http(s) URL, header names that are HTTP
        tokens and not Tango's own, one key for its method. Subscriptions expire
        (``expires_at``): :meth:`renew` or :meth:`keep_renewed`. Not retried once it may
        have reached the server (a second subscription would deliver everything twice);
        after APIConnectionError with ``maybe_sent``, :meth:`list` with ``url=`` tells.
        """
        body = encode_request(
            webhook_request(
                url=url,
                event_types=event_types,
                categories=categories,
                headers=headers,
                verification=verification,
                hmac_key=hmac_key,
                certificate=certificate,
                creating=True,
            )
        )
        resp = await self._requestor.transport.request(
            "POST", "/webhooks", operation=ACTION, body=body
        )
        created = resp.parse(WebhookExpiry)
        if not created.webhook_id:
            raise resp.invalid("holds no webhookId")
        return created

    def list(
        self,
        *,
        url: str | None = None,
        header_name: str | None = None,
        header_value: str | None = None,
        categories: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        expires_at_from: DateLike | None = None,
        expires_at_to: DateLike | None = None,
        created_at_from: DateLike | None = None,
        created_at_to: DateLike | None = None,
        max_results: int | None = None,
    ) -> WebhookList:
        """Iterate over the platform's subscriptions: ``GET /webhooks``, lazily, by cursor
        (``max_results`` per page, 1 to 200, default 200). Filters are checked when
        ``list()`` is called (ValidationError)."""
        query: list[tuple[str, str]] = []
        for name, wire, value in (
            ("url", "url", url),
            ("header_name", "headerName", header_name),
            ("header_value", "headerValue", header_value),
        ):
            text = check_str(value, name)
            if text is not None:
                query.append((wire, text))
        for name, wire, values in (
            ("categories", "categories", categories),
            ("event_types", "eventTypes", event_types),
        ):
            if values is None:
                continue
            if isinstance(values, str):
                raise ValidationError(name, "must be a list of names")
            for i, item in enumerate(values):
                text = check_str(item, f"{name}[{i}]", required=True)
                query.append((wire, str(text)))
        for name, wire, when in (
            ("expires_at_from", "expiresAtFrom", expires_at_from),
            ("expires_at_to", "expiresAtTo", expires_at_to),
            ("created_at_from", "createdAtFrom", created_at_from),
            ("created_at_to", "createdAtTo", created_at_to),
        ):
            if when is not None:
                query.append((wire, format_query_datetime(when, name, end=name.endswith("to"))[0]))
        return WebhookList(self._requestor.transport, "/webhooks", query, _per_page(max_results))

    async def get(self, webhook_id: str, /) -> Webhook:
        """One subscription: ``GET /webhooks/{webhookId}``. ``webhook_id`` is a UUID
        (ValidationError otherwise); NotFoundError for an unknown one."""
        resp = await self._requestor.transport.request(
            "GET", self._path(webhook_id), operation=READ
        )
        return resp.parse(Webhook)

    async def update(
        self,
        webhook_id: str,
        /,
        *,
        url: str | None = None,
        event_types: Sequence[WebhookEventType | str] | None = None,
        categories: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        verification: WebhookVerification | str | None = None,
        hmac_key: bytes | str | None = None,
        certificate: bytes | str | None = None,
    ) -> Webhook:
        """Change a subscription: ``PATCH /webhooks/{webhookId}`` with the fields given (at
        least one; the rules of :meth:`create`). Retried like a read (the same PATCH twice
        is harmless). Returns the subscription as updated."""
        path = self._path(webhook_id)
        body = encode_request(
            webhook_request(
                url=url,
                event_types=event_types,
                categories=categories,
                headers=headers,
                verification=verification,
                hmac_key=hmac_key,
                certificate=certificate,
                creating=False,
            )
        )
        resp = await self._requestor.transport.request("PATCH", path, operation=CHANGE, body=body)
        return resp.parse(Webhook)

    async def delete(self, webhook_id: str, /) -> None:
        """Delete a subscription: ``DELETE /webhooks/{webhookId}``; no more deliveries.
        Not retried once it may have reached the server (a retry would answer 404)."""
        await self._requestor.transport.request("DELETE", self._path(webhook_id), operation=ACTION)

    async def renew(self, webhook_id: str, /) -> WebhookExpiry:
        """Push a subscription's expiry out: ``POST /webhooks/{webhookId}/renew``; returns
        the new ``expires_at``. Retried like a read (renewing twice is harmless)."""
        resp = await self._requestor.transport.request(
            "POST", self._path(webhook_id, "/renew"), operation=CHANGE
        )
        return resp.parse(WebhookExpiry)

    async def replay(
        self, webhook_id: str, /, *, from_revision: int, to_revision: int | None = None
    ) -> None:
        """Deliver a subscription's events again, from revision ``from_revision`` to
        ``to_revision`` (None: the latest): ``POST /webhooks/{webhookId}/replay``.
        Receivers see the same ``eventId``s again (and de-duplicate them). Not retried
        once it may have reached the server."""
        params = [("fromRevision", _revision(from_revision, "from_revision"))]
        if to_revision is not None:
            params.append(("toRevision", _revision(to_revision, "to_revision")))
            if to_revision < from_revision:
                raise ValidationError("to_revision", "must not be below from_revision")
        await self._requestor.transport.request(
            "POST", self._path(webhook_id, "/replay"), operation=ACTION, params=params
        )

    def events(
        self,
        webhook_id: str,
        /,
        *,
        from_revision: int | None = None,
        to_revision: int | None = None,
        max_results: int | None = None,
    ) -> WebhookEventList:
        """Iterate over a subscription's events: ``GET /webhooks/{webhookId}/events``,
        lazily, by cursor; optionally from / to a revision. Events are parsed as
        deliveries are (:class:`WebhookEvent`); a listing holding one that does not parse
        raises APIResponseValidationError."""
        path = self._path(webhook_id, "/events")
        query: list[tuple[str, str]] = []
        if from_revision is not None:
            query.append(("fromRevision", _revision(from_revision, "from_revision")))
        if to_revision is not None:
            query.append(("toRevision", _revision(to_revision, "to_revision")))
            if from_revision is not None and to_revision < from_revision:
                raise ValidationError("to_revision", "must not be below from_revision")
        return WebhookEventList(self._requestor.transport, path, query, _per_page(max_results))

    async def test(self, webhook_id: str, /, name: WebhookEventType | str | None = None) -> None:
        """Have Tango deliver test events: all of the subscription's
        (``POST /webhooks/{webhookId}/tests``) or the one named
        (``.../tests/{testName}``: a WebhookEventType; ConnectivityTest works everywhere,
        the others in Tango's sandbox only). Not retried once it may have reached the
        server."""
        tail = "/tests"
        if name is not None:
            names = {e.value for e in WebhookEventType}
            if not isinstance(name, str) or str(name) not in names:
                raise ValidationError("name", f"must be one of {', '.join(sorted(names))}")
            tail += f"/{path_segment(str(name))}"
        await self._requestor.transport.request(
            "POST", self._path(webhook_id, tail), operation=ACTION
        )

    async def event_types(self, *, category: str | None = None) -> builtins.list[EventTypeGroup]:
        """Every category and its event types (``GET /webhooks/eventtypes``, all pages),
        or those of ``category``."""
        query: list[tuple[str, str]] = []
        text = check_str(category, "category")
        if text is not None:
            query.append(("category", text))
        groups: builtins.list[EventTypeGroup] = []
        async for group in _EventTypeList(
            self._requestor.transport, "/webhooks/eventtypes", query, MAX_RESULTS
        ):
            groups.append(group)
        return groups

    def keep_renewed(
        self, webhook_id: str, /, *, margin: float = 86_400.0, retry_every: float = 60.0
    ) -> WebhookRenewer:
        """Keep a subscription from expiring while the block runs::

            async with tango.webhooks.keep_renewed(webhook_id) as renewer:
                ...  # serve webhooks; renewer.expires_at is the current expiry

        Reads the expiry, then renews whenever less than ``margin`` seconds (a day by
        default) are left, on the client's clock. A failed renewal is logged and tried
        again every ``retry_every`` seconds; a subscription gone (404) ends the renewer,
        and leaving the block raises that error. Leaving the block stops it.
        """
        check_webhook_id(webhook_id)
        if not finite_number(margin, lo=0.0, above=True):
            raise ValidationError("margin", "must be a finite number of seconds > 0")
        if not finite_number(retry_every, lo=0.0, above=True):
            raise ValidationError("retry_every", "must be a finite number of seconds > 0")
        return WebhookRenewer(self, webhook_id, float(margin), float(retry_every))


@tolerant_repr
class _EventTypeList(_CursorList):
    route = "GET /webhooks/eventtypes"
    wire = EventTypeListWire


class WebhookRenewer:
    """The background renewal of one subscription (:meth:`Webhooks.keep_renewed`)."""

    def __init__(self, webhooks: Webhooks, webhook_id: str, margin: float, retry: float) -> None:
        self._webhooks = webhooks
        self.webhook_id = webhook_id
        self._margin = margin
        self._retry = retry
        self.expires_at: datetime | None = None
        self.renewals = 0
        self._task: asyncio.Task[None] | None = None
        self._error: TangoError | None = None

    def __repr__(self) -> str:
        return (
            f"WebhookRenewer(webhook_id={self.webhook_id!r}, expires_at={self.expires_at!r}, "
            f"renewals={self.renewals})"
        )

    async def __aenter__(self) -> WebhookRenewer:
        hook = await self._webhooks.get(self.webhook_id)
        self.expires_at = hook.expires_at
        self._task = asyncio.create_task(self._run(), name=f"renew webhook {self.webhook_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._error is not None and exc_info[0] is None:
            raise self._error

    async def _run(self) -> None:
        requestor = self._webhooks._requestor
        while True:
            left = (
                (self.expires_at - _wall_now(requestor.clock)).total_seconds()
                if self.expires_at is not None
                else 0.0
            )
            if left > self._margin:
                await requestor.transport.sleep(left - self._margin)
                continue
            try:
                renewed = await self._webhooks.renew(self.webhook_id)
            except NotFoundError as e:
                log.error("webhook %s is gone; no longer renewing it", self.webhook_id)
                self._error = e
                return
            except TangoError as e:
                log.warning(
                    "renewing webhook %s failed (%s); trying again in %g s",
                    self.webhook_id,
                    e,
                    self._retry,
                )
                await requestor.transport.sleep(self._retry)
                continue
            self.renewals += 1
            moved = renewed.expires_at is not None and (
                self.expires_at is None or renewed.expires_at > self.expires_at
            )
            self.expires_at = renewed.expires_at or self.expires_at
            left = (
                (self.expires_at - _wall_now(requestor.clock)).total_seconds()
                if self.expires_at is not None
                else 0.0
            )
            if not moved or left <= self._margin:
                # An answer that does not move the expiry past the margin (short renewals,
                # a skewed clock): renew again only after retry_every, never in a loop.
                log.warning(
                    "renewing webhook %s left %.0f s (margin %g s)",
                    self.webhook_id,
                    left,
                    self._margin,
                )
                await requestor.transport.sleep(self._retry)
