"""Memory of order creations whose outcome is unknown, so one logical order is paid once.

A create can end without a definite answer: cancelled or timed out from outside after its
request went out, the connection lost after sending, retries exhausted after a 5xx, an
answer that cannot be read. The order may exist. The client keeps that attempt's
externalRefID here, keyed by a digest of the order's content; creating equal content
again with the same client reuses the externalRefID, and the API answers with the
existing order (200) instead of making a second one. A definite answer (the order read
back) removes the entry.

Each create writes its entry *before* its first request goes out (state ``sending``) and
marks it ``unknown`` when the call ends without a definite answer, so a process killed
mid-request leaves its entries behind in a durable store: list them with
``tango.orders.unresolved()`` after a restart and settle each with
``tango.orders.resolve(external_ref_id)``.

Reuse is per content: the oldest remembered attempt that no call of this client is
sending. Entries of a shared durable store are reused by every client that shares it,
in-flight ones of *another* process included: two processes that create equal content
at the same moment make one order (the second call gets ``created=False``). That is
what makes a restart safe (the restarted process reuses its dead predecessor's
attempt); give each order its own ``external_ref_id`` where identical content sent at
once from several processes is meant to be several orders.

Three implementations of :class:`UnresolvedStore`: :class:`LocalUnresolvedStore` (the
default; in memory, per client), :class:`SqliteUnresolvedStore` (a file, shared by the
processes of one host) and ``tango_async.redis.RedisUnresolvedStore``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from ._exceptions import TangoError, ValidationError
from ._repr import tolerant_repr

__all__ = [
    "LocalUnresolvedStore",
    "SqliteUnresolvedStore",
    "UnresolvedOrder",
    "UnresolvedStore",
    "UnresolvedStoreError",
    "content_key",
]

log = logging.getLogger("tango_async")
T = TypeVar("T")

State = Literal["sending", "unknown", "not_found"]
STATES: tuple[State, ...] = ("sending", "unknown", "not_found")


class UnresolvedStoreError(TangoError):
    """The store of unresolved orders could not be read or written.

    Raised by ``orders.create()`` before anything is sent when the entry cannot be written
    first; a failure to update it after the answer is logged, never raised.
    """


@dataclass(frozen=True, slots=True)
class UnresolvedOrder:
    """One order creation whose outcome is (or was, while in flight) unknown.

    ``state``: ``sending`` (its request may be in flight, or the process sending it died),
    ``unknown`` (the call ended without a definite answer) or ``not_found`` (``resolve()``
    found no order; kept so that equal content is sent again with the same externalRefID,
    in case the attempt still commits). ``content_key`` is the digest of the order's
    content when the client generated the externalRefID (None for one the caller gave);
    ``request`` is the wire JSON sent.
    """

    external_ref_id: str
    content_key: str | None
    request: bytes
    state: State
    first_sent_at: datetime
    updated_at: datetime
    reason: str = ""

    def __repr__(self) -> str:  # the request holds names and emails: keep it out of reprs
        return (
            f"UnresolvedOrder(external_ref_id={self.external_ref_id!r}, state={self.state!r}, "
            f"first_sent_at={self.first_sent_at.isoformat()}, reason={self.reason!r})"
        )


def content_key(content: bytes) -> str:
    """The digest of an order's wire JSON without its externalRefID."""
    return hashlib.sha256(content).hexdigest()


def now_utc() -> datetime:
    return datetime.now(UTC)


@runtime_checkable
class UnresolvedStore(Protocol):
    """What ``TangoClient(unresolved_store=...)`` takes. Every method is atomic.

    ``put`` inserts or replaces the entry of ``entry.external_ref_id`` (keeping the first
    ``first_sent_at``); ``find`` returns the entries for ``content_key``, oldest first;
    ``get`` and ``remove`` work by externalRefID; ``list`` returns every entry, oldest
    first. Errors are UnresolvedStoreError.
    """

    async def put(self, entry: UnresolvedOrder) -> None: ...

    async def find(self, content_key: str) -> list[UnresolvedOrder]: ...

    async def get(self, external_ref_id: str) -> UnresolvedOrder | None: ...

    async def remove(self, external_ref_id: str) -> None: ...

    async def list(self) -> list[UnresolvedOrder]: ...


@tolerant_repr
class LocalUnresolvedStore:
    """In memory, for one client: survives retries, not a restart of the process.

    Holds at most ``max_entries`` (entries only leave on a definite answer, so a server
    that never answers could grow it without bound): past that, the oldest entry is
    dropped with a WARNING naming its externalRefID.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValidationError("max_entries", "must be an int of at least 1")
        self.max_entries = max_entries
        self._entries: dict[str, UnresolvedOrder] = {}  # insertion order: oldest first
        self._by_content: dict[str, dict[str, None]] = {}  # content key -> refs, oldest first

    def __repr__(self) -> str:
        return f"LocalUnresolvedStore(entries={len(self._entries)})"

    async def put(self, entry: UnresolvedOrder) -> None:
        old = self._entries.get(entry.external_ref_id)
        if old is not None:
            entry = replace(entry, first_sent_at=old.first_sent_at)
            self._unindex(old)
        self._entries[entry.external_ref_id] = entry
        if entry.content_key is not None:
            self._by_content.setdefault(entry.content_key, {})[entry.external_ref_id] = None
        while len(self._entries) > self.max_entries:
            dropped = next(iter(self._entries))
            self._unindex(self._entries.pop(dropped))
            log.warning(
                "unresolved-order memory full (%d): forgetting externalRefID %s",
                self.max_entries,
                dropped,
            )

    def _unindex(self, entry: UnresolvedOrder) -> None:
        if entry.content_key is None:
            return
        refs = self._by_content.get(entry.content_key)
        if refs is not None:
            refs.pop(entry.external_ref_id, None)
            if not refs:
                del self._by_content[entry.content_key]

    async def find(self, content_key: str) -> list[UnresolvedOrder]:
        return [self._entries[ref] for ref in self._by_content.get(content_key, ())]

    async def get(self, external_ref_id: str) -> UnresolvedOrder | None:
        return self._entries.get(external_ref_id)

    async def remove(self, external_ref_id: str) -> None:
        entry = self._entries.pop(external_ref_id, None)
        if entry is not None:
            self._unindex(entry)

    async def list(self) -> list[UnresolvedOrder]:
        return list(self._entries.values())


_SCHEMA = """
CREATE TABLE IF NOT EXISTS unresolved (
    external_ref_id TEXT PRIMARY KEY,
    content_key     TEXT,
    request         BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('sending', 'unknown', 'not_found')),
    first_sent_at   TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS unresolved_content ON unresolved (content_key, first_sent_at);
"""
_COLUMNS = "external_ref_id, content_key, request, state, first_sent_at, updated_at, reason"


@tolerant_repr
class SqliteUnresolvedStore:
    """A SQLite file (WAL, fsynced writes): entries survive a crash of the process and
    are shared by every process of the host that opens the same file.

    ``path`` is created if missing. Calls run on one worker thread so the event loop
    never waits for an fsync. ``close()`` (or ``aclose()``) releases the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValidationError("path", "must be a non-empty str or os.PathLike path")
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tango-unresolved")

    def __repr__(self) -> str:
        return f"SqliteUnresolvedStore({str(self.path)!r})"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                try:
                    return fn(self._db())
                except (sqlite3.Error, OSError, ValueError, TypeError) as e:
                    raise UnresolvedStoreError(
                        f"unresolved-order store {self.path}: cannot {what}: {e}"
                    ) from None

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except RuntimeError as e:  # the executor was shut down by close()
            raise UnresolvedStoreError(f"unresolved-order store {self.path} is closed") from e

    async def put(self, entry: UnresolvedOrder) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO unresolved ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (external_ref_id) DO UPDATE SET content_key = excluded.content_key, "
                "request = excluded.request, state = excluded.state, "
                "updated_at = excluded.updated_at, reason = excluded.reason",
                (
                    entry.external_ref_id,
                    entry.content_key,
                    entry.request,
                    entry.state,
                    entry.first_sent_at.isoformat(),
                    entry.updated_at.isoformat(),
                    entry.reason,
                ),
            )

        await self._run("record an order", write)

    async def find(self, content_key: str) -> list[UnresolvedOrder]:
        def read(db: sqlite3.Connection) -> list[UnresolvedOrder]:
            cur = db.execute(
                f"SELECT {_COLUMNS} FROM unresolved WHERE content_key = ? "
                "ORDER BY first_sent_at, external_ref_id",
                (content_key,),
            )
            return [_entry(row) for row in cur]

        return await self._run("look up an order", read)

    async def get(self, external_ref_id: str) -> UnresolvedOrder | None:
        def read(db: sqlite3.Connection) -> UnresolvedOrder | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM unresolved WHERE external_ref_id = ?", (external_ref_id,)
            ).fetchone()
            return None if row is None else _entry(row)

        return await self._run("look up an order", read)

    async def remove(self, external_ref_id: str) -> None:
        await self._run(
            "remove an order",
            lambda db: db.execute(
                "DELETE FROM unresolved WHERE external_ref_id = ?", (external_ref_id,)
            ),
        )

    async def list(self) -> list[UnresolvedOrder]:
        def read(db: sqlite3.Connection) -> list[UnresolvedOrder]:
            cur = db.execute(
                f"SELECT {_COLUMNS} FROM unresolved ORDER BY first_sent_at, external_ref_id"
            )
            return [_entry(row) for row in cur]

        return await self._run("list orders", read)

    def close(self) -> None:
        """Close the file (idempotent); later calls raise UnresolvedStoreError."""
        self._executor.shutdown(wait=True)
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaitable."""
        self.close()


def _entry(row: tuple[Any, ...]) -> UnresolvedOrder:
    ref, key, request, state, first, updated, reason = row
    if state not in STATES:
        raise sqlite3.DataError(f"unknown state {state!r}")
    return UnresolvedOrder(
        external_ref_id=str(ref),
        content_key=None if key is None else str(key),
        request=bytes(request),
        state=state,
        first_sent_at=datetime.fromisoformat(str(first)),
        updated_at=datetime.fromisoformat(str(updated)),
        reason=str(reason),
    )
