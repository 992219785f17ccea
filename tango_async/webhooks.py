"""Receiving Tango's webhooks: an aiohttp handler that verifies, answers at once,
de-duplicates and hands events to your callback in order.

::

    import tango_async as ta
    from tango_async.webhooks import WebhookReceiver

    async def on_event(event: ta.WebhookEvent) -> None:
        ...  # e.g. mark the reward delivered

    receiver = WebhookReceiver(on_event, hmac_key=KEY)  # or certificate=CERT_PEM
    app = receiver.app(path="/tango/webhooks")           # an aiohttp web.Application
    # or: your_app.router.add_post("/tango/webhooks", receiver.handle)

What a delivery goes through, in order:

1. **Size**: a body over ``max_body`` bytes is refused (413) unread.
2. **Verification** on the raw body, before any parsing (:func:`tango_async.verify_webhook`):
   a missing, malformed or wrong signature answers 401 and the event is dropped.
3. **De-duplication** by ``eventId`` in the :class:`EventStore` (in memory by default;
   :class:`tango_async.redis.RedisEventStore` for many receivers): a duplicate answers 200
   and goes no further. Tango delivers again after a failure and on replay.
4. **200 at once**; the callback runs afterwards, never while Tango waits.
5. **Ordering**: Tango may deliver out of order. Events are held ``reorder_delay``
   seconds per *subject* (a line item, an account...: :attr:`WebhookEvent.subject`) and
   handed over in revision order, one at a time per subject (subjects run concurrently,
   ``concurrency`` at most). An event whose revision is below one already handed over
   for its subject arrived too late: it is logged and dropped (``deliver_stale=True``
   hands it over anyway).
6. **Failures of the callback** are logged (event ID and type, never its data) and the
   event ID is forgotten, so a replay (``tango.webhooks.replay``) delivers it again.

Backpressure: with ``max_pending`` events waiting, new deliveries answer 503 (not
recorded) and Tango delivers them later. Revisions are those of one subscription: give
each subscription its own receiver (or path) when ordering matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from ._clock import Clock, SystemClock, checked_clock
from ._exceptions import TangoError, ValidationError, WebhookVerificationError
from ._signing import SIGNATURE_HEADER, Encoding, WebhookVerifier, parse_webhook
from ._validation import check_int, finite_number
from .types.webhooks import WebhookEvent

__all__ = ["EventStore", "MemoryEventStore", "ReceiverStats", "WebhookReceiver"]

log = logging.getLogger("tango_async")

Callback = Callable[[WebhookEvent], Awaitable[object]]
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_DEDUPE_TTL = 7 * 86_400.0
_MAX_SUBJECTS = 100_000  # last revisions remembered (least recently used dropped first)


class EventStore(Protocol):
    """Where a receiver records the event IDs it has taken (to drop duplicates)."""

    async def add(self, event_id: str, ttl: float) -> bool:
        """Record ``event_id`` for ``ttl`` seconds; True if it was not recorded already.
        Must be atomic across the receivers that share the store."""
        ...

    async def forget(self, event_id: str) -> None:
        """Drop ``event_id`` (its callback failed): a later delivery is taken again."""
        ...


class MemoryEventStore:
    """Event IDs in this process, at most ``max_events`` (the oldest dropped first), each
    for its ``ttl`` on ``clock``."""

    def __init__(self, *, max_events: int = 100_000, clock: Clock | None = None) -> None:
        self.max_events = check_int(max_events, "max_events", lo=1)
        self._clock = checked_clock(clock) if clock is not None else SystemClock()
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> expiry

    def __repr__(self) -> str:
        return f"MemoryEventStore(events={len(self._seen)}, max_events={self.max_events})"

    def __len__(self) -> int:
        return len(self._seen)

    async def add(self, event_id: str, ttl: float) -> bool:
        now = self._clock.monotonic()
        expiry = self._seen.get(event_id)
        if expiry is not None and expiry > now:
            return False
        self._seen.pop(event_id, None)
        self._seen[event_id] = now + ttl
        while len(self._seen) > self.max_events:
            self._seen.popitem(last=False)
        return True

    async def forget(self, event_id: str) -> None:
        self._seen.pop(event_id, None)


@dataclass(slots=True)
class ReceiverStats:
    """Counts of what a receiver did since it was made."""

    received: int = 0  # deliveries that passed verification
    rejected: int = 0  # refused: bad signature, not an event, too large
    duplicates: int = 0
    stale: int = 0  # arrived after a later revision of their subject: dropped
    handled: int = 0  # callbacks that returned
    failed: int = 0  # callbacks that raised
    busy: int = 0  # answered 503: too many pending, or the store did not answer


class _Subject:
    __slots__ = ("heap", "running", "task")

    def __init__(self) -> None:
        # (revision, arrival order, arrival time, event): the lowest revision first
        self.heap: list[tuple[int, int, float, WebhookEvent]] = []
        self.running: WebhookEvent | None = None  # the event whose callback runs
        self.task: asyncio.Task[None] | None = None


class WebhookReceiver:
    """Verifies, de-duplicates and orders webhook deliveries, and hands each event to
    ``callback`` (see the module docstring).

    Verification: ``hmac_key`` or ``certificate`` (as :func:`tango_async.verify_webhook`),
    or a ready ``verifier``; ``unsigned=True`` takes deliveries of a NONE subscription
    without checking (anyone who can reach the URL can then post events). ``store``
    records event IDs for ``dedupe_ttl`` seconds (7 days). ``reorder_delay`` (seconds,
    0 to hand over at once) is how long events wait for earlier revisions;
    ``concurrency`` bounds callbacks running at a time; ``max_pending`` the events
    waiting; ``max_body`` the bytes of one delivery. ValidationError for a bad argument.
    """

    def __init__(
        self,
        callback: Callback,
        *,
        hmac_key: bytes | str | None = None,
        certificate: bytes | str | None = None,
        verifier: WebhookVerifier | None = None,
        unsigned: bool = False,
        header: str = SIGNATURE_HEADER,
        encoding: Encoding = "base64",
        store: EventStore | None = None,
        dedupe_ttl: float = DEFAULT_DEDUPE_TTL,
        reorder_delay: float = 0.5,
        deliver_stale: bool = False,
        concurrency: int = 16,
        max_pending: int = 10_000,
        max_body: int = DEFAULT_MAX_BODY,
        clock: Clock | None = None,
    ) -> None:
        if not callable(callback):
            raise ValidationError("callback", "must be an async function taking a WebhookEvent")
        given = sum(x is not None for x in (hmac_key, certificate, verifier)) + bool(unsigned)
        if given != 1:
            raise ValidationError(
                "hmac_key", "pass one of hmac_key, certificate, verifier, or unsigned=True"
            )
        if verifier is None and not unsigned:
            verifier = WebhookVerifier(
                hmac_key=hmac_key, certificate=certificate, header=header, encoding=encoding
            )
        self._verifier = verifier
        self._callback = callback
        self._clock = checked_clock(clock) if clock is not None else SystemClock()
        self._store: EventStore = store if store is not None else MemoryEventStore()
        for name, value in (("dedupe_ttl", dedupe_ttl), ("reorder_delay", reorder_delay)):
            if not finite_number(value, lo=0.0):
                raise ValidationError(name, "must be a finite number of seconds >= 0")
        if not dedupe_ttl > 0:
            raise ValidationError("dedupe_ttl", "must be above 0")
        self._ttl = float(dedupe_ttl)
        self._delay = float(reorder_delay)
        self._deliver_stale = bool(deliver_stale)
        self._slots = asyncio.Semaphore(check_int(concurrency, "concurrency", lo=1, hi=10_000))
        self._max_pending = check_int(max_pending, "max_pending", lo=1)
        self._max_body = check_int(max_body, "max_body", lo=1)
        self._subjects: dict[str, _Subject] = {}
        self._last: OrderedDict[str, int] = OrderedDict()  # subject -> last revision handed
        self._failed: OrderedDict[str, None] = OrderedDict()  # IDs whose callback failed
        self._pending = 0
        self._order = itertools.count()
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = ReceiverStats()

    def __repr__(self) -> str:
        return (
            f"WebhookReceiver(verifier={self._verifier!r}, store={self._store!r}, "
            f"pending={self._pending})"
        )

    # --- aiohttp --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler of one delivery (POST): 200 taken or duplicate, 401 not
        verified, 400 not an event, 413 too large, 503 busy (Tango delivers again)."""
        if self._closed:
            return web.Response(status=503, text="closing")
        declared = request.content_length
        if declared is not None and declared > self._max_body:
            self.stats.rejected += 1
            return web.Response(status=413, text="too large")
        chunks: list[bytes] = []
        size = 0
        while True:  # (read(n) may return less than n before the end: read to EOF)
            chunk = await request.content.read(self._max_body + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_body:
                self.stats.rejected += 1
                return web.Response(status=413, text="too large")
        body = b"".join(chunks)
        status, text = await self.receive(body, request.headers)
        return web.Response(status=status, text=text)

    def app(self, *, path: str = "/") -> web.Application:
        """An aiohttp Application serving this receiver at ``path`` (POST); it closes the
        receiver (waiting for pending callbacks) on cleanup."""
        application = web.Application(client_max_size=self._max_body + 1)
        application.router.add_post(path, self.handle)

        async def cleanup(_: web.Application) -> None:
            await self.close()

        application.on_cleanup.append(cleanup)
        return application

    # --- the pipeline ---------------------------------------------------------------------

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """Take one delivery outside aiohttp (another framework's handler): the HTTP status
        to answer and a short text."""
        if self._closed:
            return 503, "closing"
        if self._verifier is not None:
            try:
                self._verifier.check(body, headers)
            except WebhookVerificationError as e:
                self.stats.rejected += 1
                log.warning("webhook delivery refused: %s", e.reason)
                return 401, "not verified"
        try:
            event = parse_webhook(body)
        except WebhookVerificationError as e:
            self.stats.rejected += 1
            log.warning("webhook delivery refused: %s", e.reason)
            return 400, "not an event"
        if self._pending >= self._max_pending:
            self.stats.busy += 1
            log.warning("webhook receiver has %d events pending; answering 503", self._pending)
            return 503, "busy"
        try:
            new = await self._store.add(event.event_id, self._ttl)
        except TangoError as e:
            self.stats.busy += 1
            log.warning("webhook event store failed (%s); answering 503", e)
            return 503, "busy"
        if not new:
            self.stats.duplicates += 1
            log.debug("webhook event %s received again; dropped", event.event_id)
            return 200, "duplicate"
        self.stats.received += 1
        self._enqueue(event)
        return 200, "ok"

    def _enqueue(self, event: WebhookEvent) -> None:
        subject = event.subject
        entry = self._subjects.get(subject)
        if entry is None:
            entry = self._subjects[subject] = _Subject()
        revision = event.revision if event.revision is not None else -1
        heapq.heappush(entry.heap, (revision, next(self._order), self._clock.monotonic(), event))
        self._pending += 1
        self._idle.clear()
        if entry.task is None:
            entry.task = asyncio.create_task(self._drain(subject, entry), name=f"webhook {subject}")

    async def _drain(self, subject: str, entry: _Subject) -> None:
        try:
            while entry.heap:
                # Each event is held reorder_delay from its own arrival: an earlier
                # revision that comes meanwhile goes first.
                revision, _, arrived, event = entry.heap[0]
                wait = arrived + self._delay - self._clock.monotonic()
                if wait > 0:
                    await self._clock.sleep(wait)
                    continue
                heapq.heappop(entry.heap)
                entry.running = event
                try:
                    await self._hand_over(subject, revision, event)
                finally:
                    entry.running = None
                    self._pending -= 1  # (counted until its callback has returned)
        finally:
            entry.task = None
            if entry.heap:  # (cancelled by close(), which forgets their IDs)
                self._pending -= len(entry.heap)
                entry.heap.clear()
            self._subjects.pop(subject, None)
            if not self._subjects:
                self._idle.set()

    async def _hand_over(self, subject: str, revision: int, event: WebhookEvent) -> None:
        last = self._last.get(subject)
        retried = event.event_id in self._failed
        self._failed.pop(event.event_id, None)
        if (
            last is not None
            and 0 <= revision < last
            and not self._deliver_stale
            and not retried  # a replay of an event whose callback failed: handed over
        ):
            self.stats.stale += 1
            log.warning(
                "webhook event %s (revision %d) came after revision %d of %s; dropped",
                event.event_id,
                revision,
                last,
                subject,
            )
            return
        if revision >= 0 and (last is None or revision > last):
            self._last[subject] = revision
            self._last.move_to_end(subject)
            while len(self._last) > _MAX_SUBJECTS:
                self._last.popitem(last=False)
        async with self._slots:
            try:
                await self._callback(event)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.stats.failed += 1
                # One line, no traceback (records render on one line; the event's data is
                # never logged): catch in the callback for more.
                log.error(
                    "webhook callback failed for event %s (%s): %s: %s; it can be replayed",
                    event.event_id,
                    event.event_type,
                    type(e).__name__,
                    e,
                )
                self._failed[event.event_id] = None
                while len(self._failed) > _MAX_SUBJECTS:
                    self._failed.popitem(last=False)
                with contextlib.suppress(TangoError):
                    await self._store.forget(event.event_id)
            else:
                self.stats.handled += 1

    async def idle(self) -> None:
        """Wait until every event taken so far has been handed over (for tests, and
        before shutting down)."""
        await self._idle.wait()

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop taking deliveries (503 from now on) and wait up to ``grace`` seconds for
        the pending callbacks. What is still pending then is cancelled, its event IDs
        forgotten by the store (a replay or Tango's next attempt delivers them again) and
        logged."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        left: list[str] = []
        tasks: list[asyncio.Task[None]] = []
        for entry in self._subjects.values():
            if entry.running is not None:
                left.append(entry.running.event_id)
            left.extend(item[3].event_id for item in entry.heap)
            if entry.task is not None:
                tasks.append(entry.task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for event_id in left:
            with contextlib.suppress(TangoError):
                await self._store.forget(event_id)
        if left:
            log.warning(
                "webhook receiver closed with %d events not handed over (forgotten, so "
                "they can be delivered again): %s",
                len(left),
                ", ".join(left[:50]),
            )
