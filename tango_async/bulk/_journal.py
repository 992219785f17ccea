"""The crash-safe journal of a bulk order job: one SQLite file, one row per input row.

Every row's state is committed (and fsynced: ``synchronous=FULL``) before its request goes
out, so a job resumed after kill -9 or a power loss re-sends in-flight rows with the SAME
externalRefID (the API is idempotent on it) and never sends a row twice under a new one.

State machine (anything else is refused with :class:`JournalError`)::

    PENDING --mark_sending--> SENDING --mark_done--> DONE
       ^                       |  |  ^
       |          mark_pending |  |  | mark_sending (resume / retry)
       +-----------------------+  |  +----------- FAILED  (mark_failed)
                                  +-------------- UNKNOWN (mark_unknown)
    INVALID  (refused before sending: never sent, never leaves this state)

``mark_sending`` is also allowed from SENDING (the row was in flight when the job died),
from FAILED and from UNKNOWN (an answer that could not be read, or retries exhausted after
the request may have reached the server: the order may exist). ``mark_pending`` puts back
a row the API refused for a reason that stops the whole job (wrong key, no funds).

Schema 2 added UNKNOWN and the content-derived identity of the job's orders (meta
``ref_scheme``, ``identity``, ``run_label``). Schema 3 added checksums: each row's
``digest`` (BLAKE2b of its values) and meta's ``digest`` (of every other meta value,
``rows``, the row count, included). A schema-1 or -2 journal is upgraded in place when a
job takes it (:meth:`Journal.lock`), its rows and externalRefIDs unchanged.

**Reconciliation.** What the server says of each row's order after the job (its status,
from a lookup or a webhook event, and when) is kept in a ``reconciled`` table, one record
per row, each with its checksum (:meth:`Journal.record_status`, used by
:mod:`tango_async.bulk._reconcile`). The table is added to a schema-3 journal by the first
record, in the same transaction as the meta keys that declare it (``reconciled``, the
record count; ``reconciled_at``, ``reconciled_by``), so a journal is never half
reconciled, and removing the table, a record or a meta key is damage. It needs no new
schema version: the rows table is unchanged, and a tango_async that does not know the
table reads and resumes such a journal as before (it never looks at the table). Writing a
record needs no job lock: it touches only that table and the meta, in one transaction, so
records can be written (a webhook handler) while a job sends the rest of its rows. A
schema-1 or -2 journal is upgraded to 3 (:meth:`Journal.lock`) before its first record.

**Pre-flight.** The pre-flight a job started with (the balance check: each account's
estimated cost, its balance, ok / skipped / warning, and when; see
:mod:`tango_async.bulk._preflight`) is kept as JSON in the meta key ``preflight``, written
by :meth:`Journal.create` with the rest of the meta and covered by its checksum. Like the
``reconciled`` table it needs no new schema version: a tango_async that does not know the
key reads and resumes such a journal as before. A journal of a job started without a
pre-flight has no such key (:attr:`Journal.preflight` is None).

**Creation and the lock.** :meth:`Journal.create` takes the job lock (``flock`` on
``PATH.lock``) before it writes a byte, builds the journal in ``PATH.creating`` and links
it into place only when it is complete, fsynced; the lock passes to the job. So there is
never a half-built journal at ``PATH``: another submitter, resumer or ``status`` finds
either no journal (and the lock held: "being created") or a complete one. A crash during
creation leaves only ``PATH.creating`` (nothing was ever sent from it), which the next
create removes under the lock.

**Damage.** :meth:`Journal.open` checks the file before trusting it: its size against its
SQLite header, SQLite's integrity check (every page, every index against its table), every
checksum and the row count. An empty, truncated or malformed journal raises
:class:`JournalDamagedError`, which says what could be recovered from it (the rows read
intact, the externalRefIDs found in its bytes); it is never taken as "nothing was sent",
and nothing here ever deletes a file that could record a sent order.

The file is plain SQLite (WAL mode) and can be read by other processes while a job writes
it, e.g. a ``status`` command. The API is synchronous and guarded by a lock: the job engine
calls it from one worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Final
from urllib.parse import urlsplit

from .._exceptions import TangoError
from .._logs import escape
from .._repr import tolerant_repr
from .._version import __version__
from ..types.enums import FINAL_LINE_ITEM_STATUSES, FINAL_ORDER_STATUSES

log = logging.getLogger("tango_async")

__all__ = [
    "FINAL_STATUSES",
    "JobRun",
    "Journal",
    "JournalBusyError",
    "JournalDamagedError",
    "JournalError",
    "JournalMismatchError",
    "JournalRow",
    "RowState",
    "StatusRecord",
]

SCHEMA_VERSION: Final = 3
#: ``meta.ref_scheme`` of journals whose externalRefIDs derive from each row's content.
CONTENT_REFS: Final = "content-v1"
#: ... whose externalRefIDs are 0.1's ``{job_id}r{row}`` (``submit_many(job_id=)``).
ROW_NUMBER_REFS: Final = "row-number-v0"
#: ``PRAGMA application_id`` of a journal: "TgBJ" (Tango Bulk Journal).
APPLICATION_ID: Final = 0x5467424A

_BATCH: Final = 1000  # rows per query when streaming rows()
_MAX_ROW: Final = 2**63 - 1  # SQLite's largest INTEGER
_NO_SETTINGS: Final[Mapping[str, Any]] = MappingProxyType({})

# Setting names that look like credentials: a journal must never hold one.
_CREDENTIAL_NAME = re.compile(
    r"secret|passw|token|credential|auth|api_?key|platform_?(key|name)|(^|[^a-z])key$",
    re.IGNORECASE,
)


class JournalError(TangoError):
    """The journal cannot be created, opened, read or changed as asked.

    Raised before anything is changed: a refused call leaves the journal as it was.
    """


class JournalBusyError(JournalError):
    """The journal's job lock is held: another job (another process, or another
    :class:`Journal` of this one) is running the job or creating the journal. ``pid`` and
    ``host`` are those its running job recorded (None when unknown: a journal being
    created, or a job of a tango_async that does not record them). Nothing was changed."""

    def __init__(
        self, message: str, path: Path, *, pid: int | None = None, host: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid
        self.host = host


class JournalMismatchError(JournalError, ValueError):
    """The journal belongs to another input file (or the input changed since the job began)."""


class JournalDamagedError(JournalError):
    """The journal file is damaged (empty, truncated, malformed, a checksum that does not
    match): it cannot be trusted to say what was sent, so nothing is read from it as if it
    were whole, and the file is left as it is. Orders may have been sent from it.

    ``reason`` says what is wrong; ``rows`` are the rows read intact (their checksum matches;
    a schema-1 or -2 journal has none), ``sent`` those of them recorded as sent (SENDING,
    UNKNOWN, DONE, FAILED); ``external_ref_ids`` every externalRefID found in the rows read
    and in the bytes of the file and its ``-wal``. The message says all of it, in short.
    """

    def __init__(
        self,
        path: Path,
        reason: str,
        rows: Iterable[JournalRow] = (),
        external_ref_ids: Iterable[str] = (),
    ) -> None:
        self.path = path
        self.reason = reason
        self.rows: tuple[JournalRow, ...] = tuple(rows)
        self.sent: tuple[JournalRow, ...] = tuple(r for r in self.rows if r.state in _SENT)
        self.external_ref_ids: frozenset[str] = frozenset(external_ref_ids) | {
            r.external_ref_id for r in self.rows if r.external_ref_id
        }
        super().__init__(_damage_message(self))


def _damage_message(e: JournalDamagedError) -> str:
    text = (
        f"journal {e.path} is damaged: {e.reason}. It cannot be trusted to say what was sent "
        "(orders may have been sent from it), so it was not used, and it was left as it is. "
    )
    if not e.rows and not e.external_ref_ids:
        text += "Nothing could be recovered from it."
    else:
        text += f"Recovered from it: {len(e.rows)} row(s) read intact"
        if e.rows:
            done = [r for r in e.sent if r.state is RowState.DONE]
            unsure = [r for r in e.sent if r.state in (RowState.SENDING, RowState.UNKNOWN)]
            failed = [r for r in e.sent if r.state is RowState.FAILED]
            text += (
                f", of which {len(done)} ordered, {len(unsure)} sent without a definite "
                f"answer and {len(failed)} failed"
            )
            shown = [
                f"row {r.row} {r.external_ref_id}"
                + (f" = {r.reference_order_id}" if r.reference_order_id else f" {r.state.value}")
                for r in e.sent[:10]
            ]
            if shown:
                more = f" ... and {len(e.sent) - 10} more" if len(e.sent) > 10 else ""
                text += f" ({'; '.join(shown)}{more})"
        text += f"; {len(e.external_ref_ids)} externalRefID(s) found in all."
    text += (
        " Keep the file (with its -wal and -shm, if any). Orders are idempotent on their "
        "externalRefID: submitting the same input file again with a NEW journal gives each "
        "row the same externalRefID (from its content, or its own column), so rows already "
        "ordered come back as existing and are not paid again"
    )
    return text + (
        "; look up the externalRefIDs recovered in the account's orders to check."
        if e.external_ref_ids
        else "."
    )


class RowState(StrEnum):
    """Where a row is in the job."""

    PENDING = "PENDING"  # not sent yet
    SENDING = "SENDING"  # marked before its request went out; outcome unknown until answered
    DONE = "DONE"  # the order exists (201 created, or 200: an earlier send had created it)
    FAILED = "FAILED"  # the API (or the connection) refused it; see retriable
    UNKNOWN = "UNKNOWN"  # sent, outcome unknown (the order may exist); re-sent first on resume
    INVALID = "INVALID"  # broke a rule before sending; never sent


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One row of the journal, as last committed."""

    row: int
    external_ref_id: str  # "" for an INVALID row (it never gets one)
    state: RowState
    attempt: int  # how many times mark_sending was called
    sent_at: datetime | None  # aware UTC, of the last SENDING
    reference_order_id: str | None  # DONE
    created: bool | None  # DONE: 201 -> True, 200 -> False
    order_status: str | None  # DONE: the order's status (COMPLETE, PENDING...)
    http_status: int | None  # FAILED
    i18n_key: str | None  # FAILED
    message: str | None  # FAILED; INVALID: the rule(s) broken
    retriable: bool | None  # FAILED; INVALID: False
    request: bytes  # the order's wire JSON, exactly as sent (b"" for INVALID)
    updated_at: datetime  # aware UTC, of the last change


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """What the server last said of one row's order, as committed (see
    :meth:`Journal.record_status`).

    ``source`` is ``"poll"`` (a lookup, ``orders.get``) or ``"webhook"`` (an event);
    ``as_of`` when the status held (the lookup's answer, the event's occurrence), ``seen_at``
    when it was recorded, both aware UTC. ``event_id``, ``revision`` and ``detail`` (the
    event's action and reason) come with a webhook's record. ``reference_order_id`` is None
    only for a webhook's record of a row the job had not recorded as ordered.
    """

    row: int
    reference_order_id: str | None
    reference_line_item_id: str | None
    status: str
    source: str
    as_of: datetime
    seen_at: datetime
    event_id: str | None = None
    revision: int | None = None
    detail: str | None = None

    @property
    def final(self) -> bool:
        """Whether :attr:`status` is one of :data:`FINAL_STATUSES`."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class JobRun:
    """Who runs the journal's job now, or last ran it (see :meth:`Journal.job_run`).

    ``running`` says whether the job lock is held now, checked on the lock itself (a
    process that died, however, holds none: a stale record never reads as running).
    ``pid``, ``host`` and ``started_at`` are what the last job to take the lock recorded
    (None for a journal no such job took: made by a tango_async before 0.2); while
    ``running``, they name the running job (None when the lock is held by a job that
    recorded nothing, an older tango_async: the recorded pid is checked on this host).
    ``last_activity`` is the last change of a row, ``settled`` how many rows became DONE,
    FAILED or UNKNOWN in the last ``window`` seconds of that run, and ``rate`` those per
    second (0.0 when none)."""

    running: bool
    pid: int | None
    host: str | None
    started_at: datetime | None
    last_activity: datetime | None
    settled: int
    window: float

    @property
    def rate(self) -> float:
        """Rows settled per second over :attr:`window` (0.0 when the window is empty)."""
        return self.settled / self.window if self.window > 0 else 0.0

    @property
    def local(self) -> bool:
        """Whether the recorded host is this machine's."""
        return self.host is not None and self.host == _hostname()


def _to_record(r: tuple[Any, ...]) -> StatusRecord:
    return StatusRecord(
        row=r[0],
        reference_order_id=r[1],
        reference_line_item_id=r[2],
        status=r[3],
        source=r[4],
        as_of=_parse_ts(r[5]),
        seen_at=_parse_ts(r[6]),
        event_id=r[7],
        revision=r[8],
        detail=r[9],
    )


def _supersedes(old: StatusRecord, new: StatusRecord) -> bool:
    """Whether ``new`` replaces the record ``old`` of the same row: the later news wins
    (two events by their revision, else by ``as_of``), except that the same event twice
    changes nothing and PENDING never follows a final status (an order does not go back
    to PENDING: such an answer is a stale read)."""
    if new.event_id is not None and new.event_id == old.event_id:
        return False
    if new.status == "PENDING" and old.final:
        return False
    if (
        new.source == old.source == "webhook"
        and new.revision is not None
        and old.revision is not None
        and new.revision != old.revision
    ):
        return new.revision > old.revision
    return new.as_of >= old.as_of


_SENT: Final = frozenset({RowState.SENDING, RowState.UNKNOWN, RowState.DONE, RowState.FAILED})
_STATES: Final = ", ".join(f"'{s.value}'" for s in RowState)
_META_TABLE: Final = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""
_ROWS_TABLE: Final = f"""
CREATE TABLE rows (
    row                INTEGER PRIMARY KEY,
    external_ref_id    TEXT UNIQUE,
    state              TEXT NOT NULL CHECK (state IN ({_STATES})),
    attempt            INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    sent_at            TEXT,
    reference_order_id TEXT,
    created            INTEGER CHECK (created IN (0, 1)),
    order_status       TEXT,
    http_status        INTEGER,
    i18n_key           TEXT,
    message            TEXT,
    retriable          INTEGER CHECK (retriable IN (0, 1)),
    request            BLOB,
    updated_at         TEXT NOT NULL,
    digest             BLOB,
    CHECK ((state = 'INVALID') = (external_ref_id IS NULL)),
    CHECK ((state = 'INVALID') = (request IS NULL)),
    CHECK (state != 'DONE' OR reference_order_id IS NOT NULL)
);
"""
_SCHEMA: Final = _META_TABLE + _ROWS_TABLE
_INDEX: Final = "CREATE INDEX rows_state ON rows (state);"
# What the server said of a row's order after the job: one record per row (see the module
# docstring). ``reference_order_id`` may be unknown only for a webhook's record of a row the
# job has not recorded as ordered yet (the event names the line item, not the order).
_RECONCILED_TABLE: Final = """
CREATE TABLE IF NOT EXISTS reconciled (
    row                    INTEGER PRIMARY KEY,
    reference_order_id     TEXT,
    reference_line_item_id TEXT,
    status                 TEXT NOT NULL,
    source                 TEXT NOT NULL CHECK (source IN ('poll', 'webhook')),
    as_of                  TEXT NOT NULL,
    seen_at                TEXT NOT NULL,
    event_id               TEXT,
    revision               INTEGER,
    detail                 TEXT,
    digest                 BLOB,
    CHECK (source = 'webhook' OR reference_order_id IS NOT NULL)
)
"""
_RECONCILED_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS reconciled_line_item ON reconciled (reference_line_item_id)"
)
_RECON_COLUMNS: Final = (
    "row, reference_order_id, reference_line_item_id, status, source, as_of, seen_at, "
    "event_id, revision, detail"
)
_RECON_DIGEST_SQL: Final = f"tango_recon_digest({_RECON_COLUMNS})"
#: Statuses after which an order (or its line item) changes no more by itself: Tango's
#: final order and line item statuses.
FINAL_STATUSES: Final = FINAL_ORDER_STATUSES | FINAL_LINE_ITEM_STATUSES
_MAX_STATUS: Final = 64  # characters of a status; longer ones are refused
_MAX_ID: Final = 200  # of a reference ID or an event ID
_MAX_DETAIL: Final = 1000  # of a record's detail

_COLUMNS: Final = (
    "row, external_ref_id, state, attempt, sent_at, reference_order_id, created, order_status, "
    "http_status, i18n_key, message, retriable, request, updated_at"
)
_META_KEYS: Final = ("job_id", "input_path", "input_digest", "settings", "created_at")
# The job that took the lock last (issue 16): meta keys written when it takes it, in one
# transaction with the meta's checksum. Like ``preflight`` they need no new schema: a
# tango_async that does not know them reads and resumes the journal as before.
_RUN_KEYS: Final = ("run_pid", "run_host", "run_started_at")
_ACTIVITY_WINDOW: Final = 60.0  # seconds of a run's recent activity its rate is taken over
_DIGEST_SQL: Final = f"tango_row_digest({_COLUMNS})"
_SET_DIGEST: Final = f"UPDATE rows SET digest = {_DIGEST_SQL}"
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_REF_IN_JSON: Final = re.compile(rb'"externalRefID":"([!#-~]{1,200}?)"')
# In the SQL text of a journal's schema (its first page): a file holding it was a journal.
_JOURNAL_MARK: Final = b"external_ref_id    TEXT UNIQUE"
# SQLite error codes that say the file could not be read now, not that it is damaged.
_NOT_DAMAGE: Final = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_AUTH,
    }
)


def _digest(values: Iterable[Any], person: bytes = b"tango-row-v3") -> bytes:
    """A checksum of SQLite values (NULL, INTEGER, REAL, TEXT, BLOB), each tagged by type."""
    h = hashlib.blake2b(digest_size=16, person=person)
    for v in values:
        if v is None:
            h.update(b"N")
        elif isinstance(v, int):
            h.update(b"I%d;" % v)
        elif isinstance(v, float):
            h.update(b"F" + v.hex().encode() + b";")
        elif isinstance(v, str):
            data = v.encode("utf-8", "surrogatepass")
            h.update(b"S%d:" % len(data) + data)
        else:
            data = bytes(v)
            h.update(b"B%d:" % len(data) + data)
    return h.digest()


def _row_digest(*values: Any) -> bytes:
    return _digest(values)


def _recon_digest(*values: Any) -> bytes:
    return _digest(values, b"tango-recon-v1")


def _meta_digest(meta: Mapping[str, str]) -> str:
    """The checksum of meta: every key and value but ``digest`` itself, by key."""
    items = sorted((k, v) for k, v in meta.items() if k != "digest")
    return _digest((x for kv in items for x in kv), b"tango-meta-v3").hex()


class _Damage(Exception):
    """Internal: why a journal is damaged (turned into JournalDamagedError with a salvage)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def _parse_ts(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _opt_ts(text: str | None) -> datetime | None:
    """A timestamp of the journal, or None for none or one that does not read as one."""
    if not text:
        return None
    try:
        return _parse_ts(text)
    except ValueError:
        return None


def _utc_text(dt: datetime) -> str:
    """``dt`` in RFC 3339, UTC, seconds, ``Z`` (as the CLI shows times)."""
    return dt.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _run_meta(now: str) -> dict[str, str]:
    """The meta keys that record this process as the one running the job."""
    return {"run_pid": str(os.getpid()), "run_host": _hostname(), "run_started_at": now}


def _opt_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _to_row(r: tuple[Any, ...]) -> JournalRow:
    return JournalRow(
        row=r[0],
        external_ref_id=r[1] or "",
        state=RowState(r[2]),
        attempt=r[3],
        sent_at=None if r[4] is None else _parse_ts(r[4]),
        reference_order_id=r[5],
        created=_opt_bool(r[6]),
        order_status=r[7],
        http_status=r[8],
        i18n_key=r[9],
        message=r[10],
        retriable=_opt_bool(r[11]),
        request=b"" if r[12] is None else bytes(r[12]),
        updated_at=_parse_ts(r[13]),
    )


def _check_settings(value: Any, where: str = "settings") -> None:
    """Refuse anything that looks like a credential, anywhere in the settings."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise JournalError(f"{where}: keys must be strings, got {k!r}")
            name = f"{where}.{k}"
            if _CREDENTIAL_NAME.search(k):
                raise JournalError(
                    f"{name} looks like a credential; a journal must never store credentials "
                    "(they are read from the environment when the job resumes)"
                )
            _check_settings(v, name)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_settings(v, f"{where}[{i}]")
    elif isinstance(value, str):
        lowered = value.lstrip().lower()
        if lowered.startswith(("basic ", "bearer ")):
            raise JournalError(f"{where} looks like an Authorization header; not stored")
        if "://" in value:
            try:
                parts = urlsplit(value)
                has_userinfo = parts.username is not None or parts.password is not None
            except ValueError:
                has_userinfo = False
            if has_userinfo:
                raise JournalError(
                    f"{where} is a URL with a user name or password; "
                    "a journal must never store credentials"
                )


def _fsync_dir(directory: Path) -> None:
    """Make a newly created file's directory entry durable (POSIX; a no-op where unsupported)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _lock_path(path: Path) -> Path:
    """``PATH.lock`` of the file ``path`` names: a symbolic link to a journal shares its lock."""
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".lock")


def _holds(lock_file: IO[bytes], path: Path) -> bool:
    """Whether ``lock_file`` is still the lock file at ``PATH.lock`` (not removed or replaced,
    which would let another process take the journal's lock)."""
    try:
        mine, there = os.fstat(lock_file.fileno()), os.stat(_lock_path(path))
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _build_path(path: Path) -> Path:
    """Where :meth:`Journal.create` builds the journal of ``path`` before linking it in."""
    return path.with_name(path.name + ".creating")


def _hostname() -> str:
    try:
        return socket.gethostname() or "?"
    except OSError:  # pragma: no cover - gethostname does not fail on POSIX
        return "?"


def _busy(path: Path) -> str:
    if not os.path.lexists(path) or os.path.lexists(_build_path(path)):
        return (
            f"journal {path} is being created by another process (it is locked from its "
            "first byte until its job ends); wait for it, then resume it or check it with "
            "tango-async status"
        )
    return f"journal {path} is in use by another running job; wait for it, or stop it"


_LOCK_TRIES: Final = 5  # a lock held for an instant (a ``status`` checking it) is retried
_LOCK_PAUSE: Final = 0.01
# ... and while only such checks hold it (shared), up to this many times (2 s): checks
# that keep coming (several ``status`` loops) never make a starting job fail
_PROBED_TRIES: Final = 200


def _only_checked(f: IO[bytes]) -> bool:
    """Whether the lock ``f`` could not take is held only by checks (shared flocks, see
    :func:`_lock_held`), not by a job (an exclusive one): a shared flock is tried and
    released at once."""
    import fcntl

    try:
        fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(f, fcntl.LOCK_UN)
    return True


def _take_lock(path: Path) -> IO[bytes] | None:
    """The job lock of the journal at ``path``: ``flock(LOCK_EX | LOCK_NB)`` on ``PATH.lock``,
    released when the file is closed or the process ends, however it ends. JournalBusyError
    when another process (or another Journal in this one) holds it (a hold of a few ms, a
    ``status`` looking at the lock, is waited out). None where there is no flock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return None
    lock_path = _lock_path(path)
    for _ in range(16):  # a holder may remove the lock file (a failed create): retake it
        try:
            f = open(lock_path, "a+b")  # noqa: SIM115
        except OSError as e:
            raise JournalError(
                f"cannot take journal {path} for this job: its lock file {lock_path} "
                f"cannot be opened ({e.strerror or e})"
            ) from None
        try:
            for attempt in range(_PROBED_TRIES):
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt >= _LOCK_TRIES - 1 and not _only_checked(f):
                        raise
                    if attempt == _PROBED_TRIES - 1:
                        raise
                    time.sleep(_LOCK_PAUSE)
        except BlockingIOError:
            f.close()
            raise JournalBusyError(_busy(path), path) from None
        except OSError as e:
            f.close()
            raise JournalError(
                f"cannot take journal {path} for this job: its lock file {lock_path} "
                f"cannot be locked ({e.strerror or e})"
            ) from None
        if _holds(f, path):
            return f
        f.close()  # we locked a lock file that was removed meanwhile: take the new one
    raise JournalError(f"cannot take journal {path}: its lock file {lock_path} keeps changing")


def _lock_held(path: Path) -> bool:
    """Whether some process (this one included) holds the job lock of ``path`` now: a
    shared ``flock`` on ``PATH.lock`` tried and released at once, never creating the file.
    A lock file that cannot be opened (permissions) counts as held: not known to be free."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return False
    try:
        fd = os.open(_lock_path(path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # pragma: no cover - a file system without flock
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _release(lock_file: IO[bytes] | None, path: Path, *, remove: bool) -> None:
    """Release the lock; with ``remove``, delete the lock file first (while holding it, so
    whoever locks the old file next sees it is gone and takes the new one)."""
    if lock_file is None:
        return
    if remove:
        with contextlib.suppress(OSError):
            _lock_path(path).unlink()
    lock_file.close()


def _is_wal_file(path: Path) -> bool:
    """True if the SQLite file at ``path`` is in WAL mode (a journal that was used) or cannot
    be read (then it is not ours to remove either)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return len(head) == 20 and head.startswith(_SQLITE_MAGIC) and (head[18], head[19]) == (2, 2)


def _remove_interrupted_build(path: Path) -> bool:
    """With the lock of ``path`` held: remove what an interrupted create() left, the build
    file ``PATH.creating`` (never at ``path``, so nothing was sent from it) and its rollback
    journal. A build file that is a name of the journal itself (a crash just after linking it)
    is only unlinked; one in WAL mode (it was used as a journal) is refused."""
    build = _build_path(path)
    if not os.path.lexists(build):
        return False
    with contextlib.suppress(OSError):
        if os.path.lexists(path) and os.path.samefile(build, path):
            build.unlink()
            return True
    if _is_wal_file(build) or any(
        c.exists() for c in _companions(build) if not c.name.endswith("-journal")
    ):
        raise JournalError(
            f"{build} exists and looks like a journal that was used (a job may have run from "
            "it): it is not removed; move it away, or open it with Journal.open() to see it"
        )
    for leftover in (build, *_companions(build)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    return True


def _place(build: Path, path: Path) -> None:
    """Put the complete journal ``build`` at ``path`` atomically, never replacing a file."""
    try:
        os.link(build, path)
    except FileExistsError:
        raise JournalError(
            f"cannot create journal {path}: the file exists (resume its job with "
            "Journal.open(), or choose another path)"
        ) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links on this file system: rename. We hold the lock, so no tango-async
        # process can put a file at ``path`` between the check and the rename.
        if os.path.lexists(path):
            raise JournalError(
                f"cannot create journal {path}: the file exists (resume its job with "
                "Journal.open(), or choose another path)"
            ) from None
        os.rename(build, path)
    else:
        build.unlink()


def _connect(path: Path, *, create: bool, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), never creating the file.

    ``create`` only means the (empty) file was just made by us, so it may be read-write-create.
    ``read_only`` connections never write the file (nor checkpoint its -wal when closed).
    """
    mode = "ro" if read_only else "rwc" if create else "rw"
    conn = sqlite3.connect(
        f"{path.absolute().as_uri()}?mode={mode}",
        uri=True,
        timeout=30.0,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.create_function("tango_row_digest", 14, _row_digest, deterministic=True)
        conn.create_function("tango_recon_digest", 10, _recon_digest, deterministic=True)
        if read_only:
            return conn
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA fullfsync=ON")  # macOS: flush the drive's cache too
        conn.execute("PRAGMA checkpoint_fullfsync=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _set_wal(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(f"{path}: cannot use WAL mode (the file system answered {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")


@tolerant_repr
class Journal:
    """A bulk job's journal file. Use :meth:`create` (a new job) or :meth:`open` (a resume).

    Every ``mark_*`` call is one committed, fsynced transaction when it returns.
    """

    job_id: str
    input_path: str
    input_digest: str
    settings: dict[str, Any]
    path: Path
    created_at: datetime

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        """Internal: use :meth:`create` or :meth:`open`."""
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self.path = path
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        missing = [k for k in _META_KEYS if k not in meta]
        if missing:
            raise JournalError(f"{path} is not a complete journal: no {', '.join(missing)}")
        self.job_id = meta["job_id"]
        self.input_path = meta["input_path"]
        self.input_digest = meta["input_digest"]
        try:
            settings = json.loads(meta["settings"])
            self.created_at = _parse_ts(meta["created_at"])
        except ValueError as e:
            raise JournalError(f"{path} is not a valid journal: bad meta ({e})") from e
        if not isinstance(settings, dict):
            raise JournalError(f"{path} is not a valid journal: settings is not an object")
        self.settings = settings
        self.ref_scheme: str | None = meta.get("ref_scheme")  # None: 0.1's file-bytes refs
        self.identity: str | None = meta.get("identity")
        self.run_label: str | None = meta.get("run_label") or None
        # issue 15: the pre-flight record the job started with (meta "preflight"), if any
        self.preflight: dict[str, Any] | None = None
        if "preflight" in meta:
            try:
                record = json.loads(meta["preflight"])
            except ValueError as e:
                raise JournalError(f"{path} is not a valid journal: bad preflight ({e})") from e
            self.preflight = record if isinstance(record, dict) else None
        # Schema 3: every transition also updates the row's checksum.
        self._digests = conn.execute("PRAGMA user_version").fetchone()[0] >= 3

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        job_id: str,
        input_path: str,
        input_digest: str,
        rows: Iterable[tuple[int, str, bytes]],
        invalid: Iterable[tuple[int, str]] = (),
        settings: Mapping[str, Any] = _NO_SETTINGS,
        identity: str = "",
        run_label: str | None = None,
        ref_scheme: str = CONTENT_REFS,
        preflight: Mapping[str, Any] | None = None,
    ) -> Journal:
        """Create a new journal holding every row, in one transaction; refuse an existing file.

        ``rows`` are ``(row, external_ref_id, request wire JSON)`` (PENDING); ``invalid`` are
        ``(row, "field: rule; ...")`` refused before sending (INVALID). ``settings`` (order
        rate, base URL...) must be JSON-serialisable and hold no credentials. ``identity``
        is the digest of the job's orders (their content-derived externalRefIDs) that a
        later submit of the same orders is recognised by; ``run_label`` the job's label.
        ``preflight`` is the job's pre-flight record (what
        :meth:`tango_async.bulk.Preflight.record` gives: JSON-serialisable, no credentials),
        kept in the meta key ``preflight`` (see :attr:`preflight`).
        If anything is refused, no file is left behind.

        The job lock (see :meth:`lock`) is taken before the first byte is written and held
        by the returned journal: another process that creates, resumes or discards a journal
        at ``path`` meanwhile gets a JournalError and changes nothing. The journal is built
        in ``PATH.creating`` and linked to ``path`` only when complete (never replacing a
        file), so ``path`` never holds half a journal; after a crash the next create removes
        the build file (nothing was ever sent from it).
        """
        p = Path(path)
        for name, value in (
            ("job_id", job_id),
            ("input_path", input_path),
            ("input_digest", input_digest),
        ):
            if not isinstance(value, str):
                raise JournalError(f"{name} must be a str, got {type(value).__name__}")
        if not job_id:
            raise JournalError("job_id must not be empty")
        _check_settings(settings)
        try:
            settings_json = json.dumps(dict(settings), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise JournalError(f"settings must be JSON-serialisable: {e}") from e
        preflight_json: str | None = None
        if preflight is not None:
            _check_settings(preflight, "preflight")
            try:
                preflight_json = json.dumps(dict(preflight), sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise JournalError(f"preflight must be JSON-serialisable: {e}") from e

        exists = _exists_error(p)
        cls.check_new(p)
        lock_file = _take_lock(p)  # before the first byte: held until the job ends
        build = _build_path(p)
        conn: sqlite3.Connection | None = None
        placed = False
        try:
            if os.path.lexists(p):  # made before we had the lock
                raise exists
            _remove_interrupted_build(p)
            try:
                fd = os.open(build, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as e:
                raise JournalError(f"cannot create journal {p}: {e}") from e
            os.close(fd)
            conn = _connect(build, create=True)
            # Built in rollback-journal mode: for a new file it writes each page once (WAL would
            # write everything twice); it is at ``p`` only once complete.
            conn.execute("PRAGMA journal_mode=DELETE")
            now = _ts(_now())
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):  # (executescript() would COMMIT first)
                if statement.strip():
                    conn.execute(statement)
            meta = {
                "job_id": job_id,
                "input_path": input_path,
                "input_digest": input_digest,
                "settings": settings_json,
                "created_at": now,
                "library_version": __version__,
                "ref_scheme": ref_scheme,
                "identity": identity,
                "run_label": run_label or "",
            }
            if preflight_json is not None:  # issue 15: the pre-flight the job started with
                meta["preflight"] = preflight_json
            meta |= _run_meta(now)  # issue 16: the job that holds the lock (status shows it)
            seen_rows: set[int] = set()
            refs: dict[str, int] = {}

            def pending() -> Iterator[tuple[int, str, bytes, str]]:
                for item in rows:
                    try:
                        number, ref, request = item
                    except (TypeError, ValueError):
                        raise JournalError(
                            f"rows must be (row, external_ref_id, request) tuples, got {item!r}"
                        ) from None
                    _check_row_number(number, seen_rows)
                    if not isinstance(ref, str) or not ref:
                        raise JournalError(
                            f"row {number}: external_ref_id must be a non-empty str, got {ref!r}"
                        )
                    if ref in refs:
                        raise JournalError(
                            f"rows {refs[ref]} and {number} have the same externalRefID {ref!r}; "
                            "each row needs its own"
                        )
                    if not isinstance(request, bytes | bytearray | memoryview):
                        raise JournalError(
                            f"row {number}: request must be the wire JSON bytes, "
                            f"got {type(request).__name__}"
                        )
                    body = bytes(request)
                    if not body:
                        raise JournalError(f"row {number}: request is empty")
                    refs[ref] = number
                    yield number, ref, body, now

            def refused() -> Iterator[tuple[int, str, str]]:
                for item in invalid:
                    try:
                        number, message = item
                    except (TypeError, ValueError):
                        raise JournalError(
                            f"invalid must be (row, message) tuples, got {item!r}"
                        ) from None
                    _check_row_number(number, seen_rows)
                    if not isinstance(message, str) or not message:
                        raise JournalError(
                            f"invalid row {number}: the message must be a non-empty str"
                        )
                    yield number, message, now

            conn.executemany(
                "INSERT INTO rows (row, external_ref_id, state, request, updated_at) "
                "VALUES (?, ?, 'PENDING', ?, ?)",
                pending(),
            )
            conn.executemany(
                "INSERT INTO rows (row, state, message, retriable, updated_at) "
                "VALUES (?, 'INVALID', ?, 0, ?)",
                refused(),
            )
            conn.execute(_SET_DIGEST)
            meta["rows"] = str(len(seen_rows))
            meta["digest"] = _meta_digest(meta)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            conn.execute(_INDEX)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")  # fsynced (synchronous=FULL)
            conn.close()
            conn = None
            _place(build, p)  # complete, durable: now it is the journal
            placed = True
            _fsync_dir(p.absolute().parent)
            conn = _connect(p, create=False)
            _set_wal(conn, p)
            journal = cls(conn, p)
            journal._lock_file = lock_file
            return journal
        except BaseException as e:
            if conn is not None:
                conn.close()  # rolls back
            for leftover in (build, *_companions(build)):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            if placed:  # ours, and no job ran from it: we held the lock throughout
                for leftover in (p, *_companions(p)):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
            _release(lock_file, p, remove=not os.path.lexists(p))
            if isinstance(e, UnicodeEncodeError):  # a text SQLite cannot store (a lone surrogate)
                raise JournalError(
                    f"cannot create journal {p}: a text to store in it is not valid Unicode "
                    f"({e.reason}): {escape(e.object[max(0, e.start - 20) : e.end + 20])}"
                ) from None
            if isinstance(e, sqlite3.Error | OSError):
                raise JournalError(f"cannot create journal {p}: {e}") from e
            raise

    @staticmethod
    def check_new(path: str | os.PathLike[str]) -> None:
        """JournalError if :meth:`create` would refuse ``path`` now because something is
        there (the file, or a companion an earlier journal of that name left). Changes
        nothing; a job that creates its journal later (after its pre-flight) asks first."""
        p = Path(path)
        if os.path.lexists(p):
            raise _exists_error(p)
        stale = [c for c in _companions(p) if c.exists()]
        if stale:
            raise JournalError(
                f"cannot create journal {p}: {', '.join(map(str, stale))} exists (left by an "
                "earlier journal of that name); move it away first"
            )

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Open an existing journal (to resume its job, or to read its status).

        Several may be open on one file at once, in one or several processes. The file is
        checked first, read-only (see the module docstring; about 0.5 s for 60,000 rows):
        :class:`JournalDamagedError` if it is empty, truncated or malformed (it is not
        changed); JournalError if there is no journal at ``path`` (one being created there
        by another process is said so), if it is not a journal, or is of a newer schema.
        """
        p = Path(path)
        if not os.path.lexists(p):
            if os.path.lexists(_build_path(p)):
                raise JournalError(
                    f"no journal at {p} yet: it is being created by another process, or its "
                    f"creation was interrupted ({_build_path(p)} is the file being built; "
                    "nothing is sent from a journal before it is complete)"
                )
            raise JournalError(f"no journal at {p}: the file does not exist")
        if p.is_dir():
            raise JournalError(f"{p} is a directory, not a journal")
        if not p.exists():
            raise JournalError(f"no journal at {p}: it is a broken symbolic link")
        if not p.is_file():  # a FIFO would block the first read forever; a device is no journal
            raise JournalError(f"{p} is not a regular file, so not a journal")
        _check_file(p)  # before SQLite reads it: SQLite deletes the -wal of an empty file
        _verify(p)
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(p, create=False)
            _set_wal(conn, p)
            return cls(conn, p)
        except BaseException as e:
            if conn is not None:
                conn.close()
            # A read-write connection parses more of the schema (CHECK constraints) than
            # the read-only one that checked it: what it cannot read is damage too.
            if isinstance(e, UnicodeDecodeError):
                raise _damaged(p, f"a text in it is not UTF-8 ({e.reason})") from None
            if isinstance(e, sqlite3.Error):
                code = getattr(e, "sqlite_errorcode", sqlite3.SQLITE_CORRUPT) & 0xFF
                if code not in _NOT_DAMAGE:
                    raise _damaged(p, f"SQLite cannot read it ({e})") from None
                raise JournalError(f"cannot open journal {p}: {e}") from e
            raise

    @classmethod
    def discard_unfinished(cls, path: str | os.PathLike[str]) -> bool:
        """Remove what a create() of ``path`` that was interrupted (a crash) left: its build
        file ``PATH.creating``, which was never at ``path``, so nothing was sent from it.
        Return whether something was removed.

        Never deletes the journal at ``path``, whatever its state (an empty or damaged one
        included: it may record sent orders; :meth:`open` reports it). Touches nothing, and
        returns False, when another process holds the journal's lock (it is creating the
        journal, or running its job).
        """
        p = Path(path)
        if not os.path.lexists(_build_path(p)):
            return False
        try:
            lock_file = _take_lock(p)
        except JournalError:
            return False
        try:
            return _remove_interrupted_build(p)
        finally:
            _release(lock_file, p, remove=False)

    def lock(self) -> None:
        """Take this journal for one running job (an advisory ``flock`` on ``PATH.lock``,
        released by :meth:`release`, :meth:`close` or when the process ends, however it
        ends). :class:`JournalBusyError` (naming the running job's pid and host) when
        another process holds it (running its job, or creating the journal), or another
        Journal of this process; a journal from :meth:`create` holds it already. Upgrades
        a schema-1 or -2 journal to schema 3, and records this process as the one running
        the job (meta ``run_pid``, ``run_host``, ``run_started_at``: see :meth:`job_run`)."""
        if self._lock_file is not None:
            return
        try:
            self._lock_file = _take_lock(self.path)
        except JournalBusyError as e:
            raise self._busy_error(e) from None
        try:
            self._upgrade()
            self._record_run()
        except BaseException:
            _release(self._lock_file, self.path, remove=False)
            self._lock_file = None
            raise

    @property
    def locked(self) -> bool:
        """Whether this Journal holds the job lock (see :meth:`lock`)."""
        return self._lock_file is not None

    def release(self) -> None:
        """Release the job lock if this Journal holds it (idempotent); the file stays open
        for reading (and :meth:`lock` takes it again). A :class:`~tango_async.bulk.BulkJob`
        releases its journal's lock itself when its run ends, however it ends."""
        with self._lock:
            lock_file, self._lock_file = self._lock_file, None
        _release(lock_file, self.path, remove=False)

    def _busy_error(self, e: JournalBusyError) -> JournalBusyError:
        """``e`` with what the running job recorded: its pid, host and start."""
        try:
            run = self.job_run()
        except JournalError:
            return e
        if not run.running or run.pid is None:
            return e
        since = "" if run.started_at is None else f", started {_utc_text(run.started_at)}"
        where = f" on {escape(run.host)}" if run.host else ""
        return JournalBusyError(
            f"journal {self.path} is in use by another running job (pid {run.pid}{where}"
            f"{since}): wait for it to end (tango-async status {self.path} shows its "
            f"progress), or stop it (Ctrl-C in its terminal, or kill {run.pid}), then resume",
            self.path,
            pid=run.pid,
            host=run.host,
        )

    def _record_run(self) -> None:
        """Record this process as the one running the job (best effort: a journal that
        cannot be written now fails at its first row all the same)."""
        if not self._digests:  # pragma: no cover - lock() upgrades first
            return
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                meta |= _run_meta(_ts(_now()))
                meta["digest"] = _meta_digest(meta)
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [(k, meta[k]) for k in (*_RUN_KEYS, "digest")],
                )
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                log.debug("journal %s: the running job not recorded: %s", self.path, e)

    def job_run(self) -> JobRun:
        """Who runs the journal's job now, or last ran it, and how fast (see
        :class:`JobRun`): whether the job lock is held (checked on the lock: a record left
        by a process that died never reads as running), the pid, host and start the last
        job to take the lock recorded, and the rows settled over the last minute of its
        run. Safe while a job runs (it only reads, and tries the lock for an instant
        without taking it from anyone)."""
        running = self._lock_file is not None or _lock_held(self.path)
        now = _now()
        with self._lock:
            try:
                conn = self._db()
                meta = dict(
                    conn.execute(
                        f"SELECT key, value FROM meta WHERE key IN ({', '.join('?' * 3)})",
                        _RUN_KEYS,
                    ).fetchall()
                )
                started = _opt_ts(meta.get("run_started_at"))
                since = now - timedelta(seconds=_ACTIVITY_WINDOW)
                if started is not None and started > since:
                    since = started
                settled, last_settled = conn.execute(
                    "SELECT count(*), max(updated_at) FROM rows "
                    "WHERE state IN ('DONE', 'FAILED', 'UNKNOWN') AND updated_at >= ?",
                    (_ts(since),),
                ).fetchone()
                (last,) = conn.execute("SELECT max(updated_at) FROM rows").fetchone()
            except sqlite3.Error as e:
                raise JournalError(f"cannot read journal {self.path}: {e}") from e
        pid_text = meta.get("run_pid", "")
        pid = int(pid_text) if pid_text.isdigit() and len(pid_text) < 19 else None
        host = meta.get("run_host") or None
        if running and pid is not None and host == _hostname() and not _alive(pid):
            pid = host = None  # held by a job that recorded nothing (an older tango_async)
        window = max((now - since).total_seconds(), 1.0) if settled else 0.0
        if not running and settled and last_settled is not None:  # ended: up to its end
            end = _opt_ts(last_settled) or now
            window = max((end - since).total_seconds(), 1.0)
        return JobRun(
            running=running,
            pid=pid,
            host=host,
            started_at=started if pid is not None else None,
            last_activity=_opt_ts(last),
            settled=int(settled),
            window=window,
        )

    def _upgrade(self) -> None:
        """Schema 1 -> 3 (the UNKNOWN state; checksums), 2 -> 3 (checksums), in one
        transaction; rows are copied as they are."""
        with self._lock:
            conn = self._db()
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    # Another job may have upgraded it since this Journal was opened: every
                    # transition from now on must keep the checksums.
                    self._digests = True
                    return
                conn.execute("BEGIN IMMEDIATE")
                if version == 1:
                    conn.execute(_ROWS_TABLE.replace("CREATE TABLE rows", "CREATE TABLE rows_v3"))
                    conn.execute(f"INSERT INTO rows_v3 ({_COLUMNS}) SELECT {_COLUMNS} FROM rows")
                    conn.execute("DROP TABLE rows")
                    conn.execute("ALTER TABLE rows_v3 RENAME TO rows")
                    conn.execute(_INDEX)
                elif not _has_digest_column(conn):
                    conn.execute("ALTER TABLE rows ADD COLUMN digest BLOB")
                conn.execute(_SET_DIGEST)
                count = conn.execute("SELECT count(*) FROM rows").fetchone()[0]
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('rows', ?)", (str(count),))
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('digest', ?)", (_meta_digest(meta),)
                )
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
                self._digests = True
            except sqlite3.Error as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise JournalError(
                    f"cannot upgrade journal {self.path} to schema {SCHEMA_VERSION}: {e}"
                ) from e

    # --- reading ----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    def to_send(self, *, retry_failed: bool = False) -> list[JournalRow]:
        """Rows to (re)send: first those whose outcome is unknown (SENDING, UNKNOWN: re-sending
        them with their externalRefID resolves them), then PENDING ones, FAILED ones that are
        retriable and every FAILED one with ``retry_failed``, each group by row number.
        Each keeps its journaled externalRefID."""
        with self._lock:
            try:
                cur = self._db().execute(
                    f"SELECT {_COLUMNS} FROM rows WHERE state IN ('PENDING', 'SENDING', 'UNKNOWN') "
                    "OR (state = 'FAILED' AND (retriable = 1 OR ?)) "
                    "ORDER BY state NOT IN ('SENDING', 'UNKNOWN'), row",
                    (1 if retry_failed else 0,),
                )
                return [_to_row(r) for r in cur]
            except sqlite3.Error as e:
                raise JournalError(f"cannot read journal {self.path}: {e}") from e

    def counts(self) -> dict[RowState, int]:
        """How many rows are in each state (every state, zeros included)."""
        with self._lock:
            try:
                found = (
                    self._db().execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall()
                )
            except sqlite3.Error as e:
                raise JournalError(f"cannot read journal {self.path}: {e}") from e
        counts = dict.fromkeys(RowState, 0)
        for state, n in found:
            counts[RowState(state)] = n
        return counts

    def rows(self) -> Iterator[JournalRow]:
        """Every row, by row number, read in batches (the lock is not held between them, so
        ``mark_*`` may be called while iterating; each row is as committed when read)."""
        after = -1  # row numbers are >= 0
        while True:
            with self._lock:
                try:
                    batch = (
                        self._db()
                        .execute(
                            f"SELECT {_COLUMNS} FROM rows WHERE row > ? ORDER BY row LIMIT ?",
                            (after, _BATCH),
                        )
                        .fetchall()
                    )
                except sqlite3.Error as e:
                    raise JournalError(f"cannot read journal {self.path}: {e}") from e
            if not batch:
                return
            for r in batch:
                yield _to_row(r)
            if len(batch) < _BATCH:
                return
            after = batch[-1][0]

    def get(self, row: int) -> JournalRow:
        """One row; JournalError if the journal has no such row."""
        if not _is_row_number(row):
            raise JournalError(f"journal {self.path} has no row {row!r}")
        with self._lock:
            try:
                found = self._get(self._db(), row)
            except sqlite3.Error as e:
                raise JournalError(f"cannot read journal {self.path}: {e}") from e
        if found is None:
            raise JournalError(f"journal {self.path} has no row {row}")
        return found

    @staticmethod
    def _get(conn: sqlite3.Connection, row: int) -> JournalRow | None:
        r = conn.execute(f"SELECT {_COLUMNS} FROM rows WHERE row = ?", (row,)).fetchone()
        return None if r is None else _to_row(r)

    # --- transitions ------------------------------------------------------------------------

    def _transition(
        self,
        row: int,
        allowed: tuple[RowState, ...],
        action: str,
        sql: str,
        params: tuple[Any, ...],
        *,
        done_as: str | None = None,
    ) -> JournalRow:
        """In one committed transaction: check the row's state, then run ``sql``.

        With ``done_as``, a row already DONE with that reference_order_id is left as it is.
        """
        if isinstance(row, bool) or not isinstance(row, int):
            raise JournalError(f"row must be an int, got {row!r}")
        if not _is_row_number(row):
            raise JournalError(f"journal {self.path} has no row {row}")
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise JournalError(
                    f"cannot record {action} of row {row} in journal {self.path}: {e}"
                ) from e
            try:
                current = self._get(conn, row)
                if current is None:
                    raise JournalError(f"journal {self.path} has no row {row}")
                if current.state not in allowed:
                    if current.state is RowState.DONE and current.reference_order_id == done_as:
                        conn.execute("ROLLBACK")
                        return current
                    raise JournalError(_refusal(action, current, allowed, done_as))
                conn.execute(sql, (*params, row))
                if self._digests:
                    conn.execute(f"{_SET_DIGEST} WHERE row = ?", (row,))
                updated = self._get(conn, row)
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error | UnicodeEncodeError):  # (a lone surrogate)
                    raise JournalError(
                        f"cannot record {action} of row {row} in journal {self.path}: "
                        f"{escape(str(e))}"
                    ) from e
                raise
        if updated is None:  # pragma: no cover - the row was just read in this transaction
            raise JournalError(f"journal {self.path} lost row {row}")
        return updated

    def mark_sending(self, row: int) -> JournalRow:
        """Mark a PENDING, SENDING, FAILED or UNKNOWN row SENDING: attempt += 1, sent_at = now.

        Committed and fsynced before it returns: send the request only after it did.
        Clears the previous failure, if any. JournalError, and nothing changed, when this
        Journal holds the job lock and its lock file was removed or replaced meanwhile
        (another process could take the lock and run the same job).
        """
        if self._lock_file is not None and not _holds(self._lock_file, self.path):
            raise JournalError(
                f"journal {self.path}: its lock file {_lock_path(self.path)} was removed or "
                "replaced while this job held it, so another process may be running this job "
                f"too; row {row} was not sent (a resume sends it with its externalRefID)"
            )
        now = _ts(_now())
        return self._transition(
            row,
            (RowState.PENDING, RowState.SENDING, RowState.FAILED, RowState.UNKNOWN),
            "mark_sending",
            "UPDATE rows SET state = 'SENDING', attempt = attempt + 1, sent_at = ?, "
            "updated_at = ?, http_status = NULL, i18n_key = NULL, message = NULL, "
            "retriable = NULL WHERE row = ?",
            (now, now),
        )

    def mark_done(
        self, row: int, *, reference_order_id: str, created: bool, order_status: str | None
    ) -> None:
        """Mark a SENDING row DONE: its order exists (``created``: 201 True, 200 False).

        A repeat on a row already DONE with the same reference_order_id is a no-op.
        """
        if not isinstance(reference_order_id, str) or not reference_order_id:
            raise JournalError(f"row {row}: reference_order_id must be a non-empty str")
        if not isinstance(created, bool):
            raise JournalError(f"row {row}: created must be a bool, got {created!r}")
        if order_status is not None and not isinstance(order_status, str):
            raise JournalError(f"row {row}: order_status must be a str or None")
        self._transition(
            row,
            (RowState.SENDING,),
            "mark_done",
            "UPDATE rows SET state = 'DONE', reference_order_id = ?, created = ?, "
            "order_status = ?, updated_at = ? WHERE row = ?",
            (reference_order_id, int(created), order_status, _ts(_now())),
            done_as=reference_order_id,
        )

    def mark_failed(
        self,
        row: int,
        *,
        http_status: int | None,
        i18n_key: str | None,
        message: str,
        retriable: bool,
    ) -> None:
        """Mark a SENDING row FAILED. ``retriable`` rows are re-sent by a resumed job."""
        _check_answer(row, http_status, i18n_key, message)
        if not isinstance(retriable, bool):
            raise JournalError(f"row {row}: retriable must be a bool, got {retriable!r}")
        self._transition(
            row,
            (RowState.SENDING,),
            "mark_failed",
            "UPDATE rows SET state = 'FAILED', http_status = ?, i18n_key = ?, message = ?, "
            "retriable = ?, updated_at = ? WHERE row = ?",
            (http_status, i18n_key, message, int(retriable), _ts(_now())),
        )

    def mark_unknown(
        self, row: int, *, http_status: int | None, i18n_key: str | None, message: str
    ) -> None:
        """Mark a SENDING row UNKNOWN: sent, but no definite answer (the order may exist).
        A resumed job re-sends it first, with its externalRefID."""
        _check_answer(row, http_status, i18n_key, message)
        self._transition(
            row,
            (RowState.SENDING,),
            "mark_unknown",
            "UPDATE rows SET state = 'UNKNOWN', http_status = ?, i18n_key = ?, message = ?, "
            "retriable = 1, updated_at = ? WHERE row = ?",
            (http_status, i18n_key, message, _ts(_now())),
        )

    def mark_pending(
        self, row: int, *, http_status: int | None, i18n_key: str | None, message: str
    ) -> None:
        """Put a SENDING row back to PENDING: it was certainly not ordered (the job stopped
        before sending it, or the API refused it for a reason that stops the whole job).
        ``message`` says why; a resumed job sends it."""
        _check_answer(row, http_status, i18n_key, message)
        self._transition(
            row,
            (RowState.SENDING,),
            "mark_pending",
            "UPDATE rows SET state = 'PENDING', http_status = ?, i18n_key = ?, message = ?, "
            "retriable = NULL, updated_at = ? WHERE row = ?",
            (http_status, i18n_key, message, _ts(_now())),
        )

    # --- reconciliation -----------------------------------------------------------------------

    @property
    def schema(self) -> int:
        """The journal's schema version as it is on disk now (1, 2 or 3)."""
        with self._lock:
            try:
                return int(self._db().execute("PRAGMA user_version").fetchone()[0])
            except sqlite3.Error as e:
                raise JournalError(f"cannot read journal {self.path}: {e}") from e

    def reconciliation(self) -> dict[int, StatusRecord]:
        """Every row's reconciliation record (see :meth:`record_status`), by row number;
        empty for a journal never reconciled."""
        with self._lock:
            try:
                conn = self._db()
                if not _has_table(conn, "reconciled"):
                    return {}
                cur = conn.execute(f"SELECT {_RECON_COLUMNS} FROM reconciled ORDER BY row")
                return {r[0]: _to_record(r) for r in cur}
            except sqlite3.Error as e:
                raise JournalError(f"cannot read journal {self.path}: {e}") from e

    def last_reconciled(self) -> tuple[datetime, str] | None:
        """When a reconciliation record was last written, and by what (``"poll"`` or
        ``"webhook"``); None for a journal never reconciled."""
        with self._lock:
            try:
                meta = dict(
                    self._db()
                    .execute(
                        "SELECT key, value FROM meta WHERE key IN ('reconciled_at', "
                        "'reconciled_by')"
                    )
                    .fetchall()
                )
            except sqlite3.Error as e:
                raise JournalError(f"cannot read journal {self.path}: {e}") from e
        if "reconciled_at" not in meta:
            return None
        try:
            return _parse_ts(meta["reconciled_at"]), meta.get("reconciled_by", "")
        except ValueError as e:  # pragma: no cover - the meta's checksum was checked
            raise JournalError(f"journal {self.path}: bad reconciled_at ({e})") from e

    def find_row(
        self, *, reference_line_item_id: str | None = None, external_ref_id: str | None = None
    ) -> JournalRow | None:
        """The row whose order has the line item ``reference_line_item_id`` (known once a
        reconciliation record holds it), else the row of ``external_ref_id``; None if no
        row of this journal has either."""
        with self._lock:
            try:
                conn = self._db()
                number: int | None = None
                if isinstance(reference_line_item_id, str) and _has_table(conn, "reconciled"):
                    found = conn.execute(
                        "SELECT row FROM reconciled WHERE reference_line_item_id = ? "
                        "ORDER BY row LIMIT 1",
                        (reference_line_item_id,),
                    ).fetchone()
                    number = None if found is None else found[0]
                if number is None and isinstance(external_ref_id, str) and external_ref_id:
                    found = conn.execute(
                        "SELECT row FROM rows WHERE external_ref_id = ?", (external_ref_id,)
                    ).fetchone()
                    number = None if found is None else found[0]
                return None if number is None else self._get(conn, number)
            except (sqlite3.Error, UnicodeEncodeError) as e:
                raise JournalError(f"cannot read journal {self.path}: {escape(str(e))}") from e

    def record_status(
        self,
        row: int,
        *,
        status: str,
        source: str,
        as_of: datetime,
        reference_order_id: str | None = None,
        reference_line_item_id: str | None = None,
        event_id: str | None = None,
        revision: int | None = None,
        detail: str | None = None,
    ) -> tuple[bool, StatusRecord]:
        """Record what the server says of row ``row``'s order: its ``status`` as of
        ``as_of`` (an aware datetime), from ``source`` ``"poll"`` (a lookup of a DONE row's
        order) or ``"webhook"`` (an event, of any row that was sent). In one committed,
        fsynced transaction with the meta that declares it; the first record adds the
        ``reconciled`` table (see the module docstring). No job lock is needed.

        Returns ``(applied, record)``: the record as it now stands, and whether this news
        changed it. A record is replaced only by later news (:func:`_supersedes`: the same
        event twice, an older event or PENDING after a final status change nothing); a
        missing ``reference_order_id`` or ``reference_line_item_id`` keeps the one recorded.

        JournalError, and nothing changed, for a row that does not exist or was INVALID, a
        poll of a row that is not DONE, a ``reference_order_id`` that is not the DONE row's
        order, values of the wrong type or too long, or a schema-1 or -2 journal (take it
        with :meth:`lock` first, which upgrades it).
        """
        if isinstance(row, bool) or not isinstance(row, int) or not _is_row_number(row):
            raise JournalError(f"journal {self.path} has no row {row!r}")
        if not isinstance(status, str) or not 0 < len(status) <= _MAX_STATUS:
            raise JournalError(f"row {row}: status must be a str of 1 to {_MAX_STATUS} characters")
        if source not in ("poll", "webhook"):
            raise JournalError(f"row {row}: source must be 'poll' or 'webhook', got {source!r}")
        if not isinstance(as_of, datetime) or as_of.utcoffset() is None:
            raise JournalError(f"row {row}: as_of must be an aware datetime")
        for name, value, limit in (
            ("reference_order_id", reference_order_id, _MAX_ID),
            ("reference_line_item_id", reference_line_item_id, _MAX_ID),
            ("event_id", event_id, _MAX_ID),
            ("detail", detail, _MAX_DETAIL),
        ):
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
                raise JournalError(
                    f"row {row}: {name} must be None or a str of 1 to {limit} characters"
                )
        if revision is not None and (
            isinstance(revision, bool) or not isinstance(revision, int) or abs(revision) > _MAX_ROW
        ):
            raise JournalError(f"row {row}: revision must be None or an int")
        if not self._digests:
            raise JournalError(
                f"journal {self.path} is of schema {self.schema}: take it with lock() (which "
                "upgrades it) before recording its reconciliation"
            )
        now = _now()
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise JournalError(
                    f"cannot record the status of row {row} in journal {self.path}: {e}"
                ) from e
            try:
                current = self._get(conn, row)
                if current is None:
                    raise JournalError(f"journal {self.path} has no row {row}")
                if current.state is RowState.INVALID:
                    raise JournalError(
                        f"row {row} was refused before sending ({current.message}): it has no "
                        "order to reconcile"
                    )
                if current.state is RowState.DONE:
                    if reference_order_id is None:
                        reference_order_id = current.reference_order_id
                    elif reference_order_id != current.reference_order_id:
                        raise JournalError(
                            f"row {row}'s order is {current.reference_order_id}, not "
                            f"{reference_order_id}: not recorded"
                        )
                elif source == "poll":
                    raise JournalError(
                        f"row {row} is {current.state.value}: the job recorded no order of it "
                        "to look up"
                    )
                conn.execute(_RECONCILED_TABLE)
                conn.execute(_RECONCILED_INDEX)
                found = conn.execute(
                    f"SELECT {_RECON_COLUMNS} FROM reconciled WHERE row = ?", (row,)
                ).fetchone()
                old = None if found is None else _to_record(found)
                new = StatusRecord(
                    row=row,
                    reference_order_id=reference_order_id
                    or (old.reference_order_id if old else None),
                    reference_line_item_id=reference_line_item_id
                    or (old.reference_line_item_id if old else None),
                    status=status,
                    source=source,
                    as_of=as_of.astimezone(UTC),
                    seen_at=now,
                    event_id=event_id,
                    revision=revision,
                    detail=detail,
                )
                if old is not None and not _supersedes(old, new):
                    conn.execute("ROLLBACK")
                    return False, old
                values = (
                    new.row,
                    new.reference_order_id,
                    new.reference_line_item_id,
                    new.status,
                    new.source,
                    _ts(new.as_of),
                    _ts(new.seen_at),
                    new.event_id,
                    new.revision,
                    new.detail,
                )
                conn.execute(
                    f"INSERT OR REPLACE INTO reconciled ({_RECON_COLUMNS}, digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, _recon_digest(*values)),
                )
                count = conn.execute("SELECT count(*) FROM reconciled").fetchone()[0]
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                meta |= {
                    "reconciled": str(count),
                    "reconciled_at": _ts(now),
                    "reconciled_by": source,
                }
                meta["digest"] = _meta_digest(meta)
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [
                        (k, meta[k])
                        for k in ("reconciled", "reconciled_at", "reconciled_by", "digest")
                    ],
                )
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error | UnicodeEncodeError):  # (a lone surrogate)
                    raise JournalError(
                        f"cannot record the status of row {row} in journal {self.path}: "
                        f"{escape(str(e))}"
                    ) from e
                raise
        return True, new

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent). Every committed transition is already on disk."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._lock_file is not None:
            _release(self._lock_file, self.path, remove=False)  # releases the job lock
            self._lock_file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<Journal {str(self.path)!r} job_id={self.job_id!r} {state}>"


def _exists_error(p: Path) -> JournalError:
    return JournalError(
        f"cannot create journal {p}: the file exists (resume its job with "
        "Journal.open(), or choose another path)"
    )


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None


def _has_digest_column(conn: sqlite3.Connection) -> bool:
    return any(r[1] == "digest" for r in conn.execute("PRAGMA table_info(rows)"))


def _check_file(p: Path) -> None:
    """Check the file against its own SQLite header, before SQLite reads it (SQLite would
    delete the -wal of an empty file, and read the pages a truncation cut off as zeros)."""
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(100)
    except OSError as e:
        raise JournalError(f"cannot open journal {p}: {e.strerror or e}") from None
    wal = p.with_name(p.name + "-wal")
    try:
        wal_size = wal.stat().st_size
    except OSError:
        wal_size = 0
    if size == 0:
        reason = "it is empty (0 bytes: truncated, or never written)"
        if wal_size:
            reason += f"; {wal.name} holds {wal_size} bytes of its last transactions"
        raise _damaged(p, reason)
    if not head.startswith(_SQLITE_MAGIC):
        if size < 512:  # less than the smallest SQLite file: what is left of one?
            raise _damaged(p, f"it is truncated: {size} bytes, less than any journal")
        like_sqlite = sum(a == b for a, b in zip(head, _SQLITE_MAGIC, strict=False)) >= 8
        if like_sqlite or head[68:72] == APPLICATION_ID.to_bytes(4, "big") or _marked(p):
            raise _damaged(p, "its SQLite header is damaged (its first bytes were changed)")
        raise JournalError(f"{p} is not a journal (not an SQLite database)")
    if len(head) < 100:
        raise _damaged(p, f"it is truncated: {size} bytes, less than its 100-byte header")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise _damaged(p, f"its SQLite header is damaged (page size {page_size})")
    if head[18] not in (1, 2) or head[19] not in (1, 2):
        raise _damaged(p, f"its SQLite header is damaged (file format {head[18]}.{head[19]})")
    if size % page_size:
        raise _damaged(
            p, f"it is truncated: {size} bytes is not a whole number of {page_size}-byte pages"
        )
    pages = int.from_bytes(head[28:32], "big")
    if not wal_size and pages and head[24:28] == head[92:96] and size // page_size < pages:
        raise _damaged(
            p,
            f"it is truncated: {size // page_size} page(s) of {page_size} bytes, "
            f"its header says {pages}",
        )


def _marked(p: Path) -> bool:
    """Whether ``p`` holds a trace of a journal: the SQL of its rows table in its first
    64 KiB, or whole pages holding order JSON (a text file is rarely whole pages)."""
    try:
        with open(p, "rb") as f:
            start = f.read(65536)
        if _JOURNAL_MARK in start:
            return True
        return p.stat().st_size % 512 == 0 and _REF_IN_JSON.search(start) is not None
    except OSError:
        return False


def _verify(p: Path) -> None:
    """Check, read-only, that the journal at ``p`` is whole (see :meth:`Journal.open`)."""
    try:
        conn = _connect(p, create=False, read_only=True)
    except sqlite3.Error as e:
        raise JournalError(f"cannot open journal {p}: {e}") from e
    try:
        try:
            conn.execute("BEGIN")  # one snapshot, while a job may write
            problem = _problem(conn, p)
        except sqlite3.Error as e:
            code = getattr(e, "sqlite_errorcode", sqlite3.SQLITE_CORRUPT) & 0xFF
            if code in _NOT_DAMAGE:
                raise JournalError(f"cannot open journal {p}: {e}") from e
            problem = f"SQLite cannot read it ({e})"
        except UnicodeDecodeError as e:  # a text value that is not UTF-8 any more
            problem = f"a text in it is not UTF-8 ({e.reason} at byte {e.start})"
        if problem is not None:
            raise _damaged(p, problem, conn)
    finally:
        conn.close()


def _problem(conn: sqlite3.Connection, p: Path) -> str | None:
    """What is wrong with the journal on ``conn``, or None; JournalError if it is none."""
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not {"meta", "rows"} <= tables:
        if app_id == APPLICATION_ID or _marked(p):
            return "its tables are missing"
        raise JournalError(f"{p} is not a tango_async bulk journal")
    if app_id != APPLICATION_ID:
        return f"its SQLite header is damaged (application id {app_id:#x}, not a journal's)"
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{p} was written by a newer tango_async (journal schema {version}); this "
            f"version ({__version__}) reads schema {SCHEMA_VERSION}: upgrade tango_async"
        )
    digests = _has_digest_column(conn)
    if (
        version not in (1, 2, SCHEMA_VERSION)
        or digests != (version == SCHEMA_VERSION)
        or ("reconciled" in tables and not digests)
    ):
        return f"its SQLite header is damaged (journal schema {version} does not fit its tables)"
    checks = [r[0] for r in conn.execute("PRAGMA integrity_check(10)")]
    if checks != ["ok"]:
        return "SQLite's integrity check failed: " + "; ".join(map(str, checks[:3]))
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        return f"its meta has no {', '.join(missing)}"
    if digests:
        if meta.get("digest") != _meta_digest(meta):
            return "its meta (job, input, settings) does not match its checksum"
        bad = [
            r
            for (r,) in conn.execute(
                f"SELECT row FROM rows NOT INDEXED WHERE digest IS NOT {_DIGEST_SQL} "
                "ORDER BY row LIMIT 6"
            )
        ]
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
            return f"row(s) {shown} do not match their checksum (changed since written)"
        count = conn.execute("SELECT count(*) FROM rows NOT INDEXED").fetchone()[0]
        if str(count) != meta.get("rows"):
            return f"it holds {count} row(s), its meta says {meta.get('rows')}"
        return _reconciled_problem(conn, tables, meta)
    try:  # schema 1 or 2, no checksums: every value must at least read as a journal's
        json.loads(meta["settings"])
        _parse_ts(meta["created_at"])
        for r in conn.execute(f"SELECT {_COLUMNS} FROM rows NOT INDEXED"):
            _to_row(r)
    except (ValueError, TypeError) as e:
        return f"a value in it is malformed ({e})"
    return None


def _reconciled_problem(
    conn: sqlite3.Connection, tables: set[str], meta: Mapping[str, str]
) -> str | None:
    """What is wrong with the reconciliation records of a schema-3 journal, or None: the
    table and its meta keys come together, every record matches its checksum, their number
    the meta's, and each belongs to a row that was sent (and, once the row is DONE, to its
    order)."""
    if "reconciled" not in tables and "reconciled" not in meta:
        return None
    if "reconciled" not in tables:
        return (
            f"its reconciliation records are missing (its meta says {meta['reconciled']} "
            "were written)"
        )
    if "reconciled" not in meta or "reconciled_at" not in meta:
        return "it holds reconciliation records its meta does not declare"
    bad = [
        r
        for (r,) in conn.execute(
            f"SELECT row FROM reconciled NOT INDEXED WHERE digest IS NOT {_RECON_DIGEST_SQL} "
            "ORDER BY row LIMIT 6"
        )
    ]
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        return (
            f"the reconciliation records of row(s) {shown} do not match their checksum "
            "(changed since written)"
        )
    count = conn.execute("SELECT count(*) FROM reconciled NOT INDEXED").fetchone()[0]
    if str(count) != meta["reconciled"]:
        return f"it holds {count} reconciliation record(s), its meta says {meta['reconciled']}"
    stray = [
        r
        for (r,) in conn.execute(
            "SELECT c.row FROM reconciled c LEFT JOIN rows r ON r.row = c.row "
            "WHERE r.row IS NULL OR r.state = 'INVALID' OR (r.state = 'DONE' AND "
            "c.reference_order_id IS NOT NULL AND c.reference_order_id != r.reference_order_id) "
            "ORDER BY c.row LIMIT 6"
        )
    ]
    if stray:
        shown = ", ".join(map(str, stray[:5])) + (" ..." if len(stray) > 5 else "")
        return f"the reconciliation records of row(s) {shown} do not belong to the row's order"
    return None


def _damaged(p: Path, reason: str, conn: sqlite3.Connection | None = None) -> JournalDamagedError:
    """The error for the damaged journal ``p``, with whatever can be recovered from it: the
    rows ``conn`` reads intact, the externalRefIDs in the bytes of ``p`` and its -wal."""
    rows: list[JournalRow] = []
    if conn is not None:
        with contextlib.suppress(sqlite3.Error, UnicodeDecodeError):
            digests = _has_digest_column(conn)
            cur = conn.execute(
                f"SELECT {_COLUMNS}, {'digest' if digests else 'NULL'} FROM rows NOT INDEXED "
                "ORDER BY row"
            )
            for r in cur:
                if digests and r[-1] != _digest(r[:-1]):
                    continue
                with contextlib.suppress(ValueError, TypeError):
                    rows.append(_to_row(r[:-1]))
    refs: set[str] = set()
    for f in (p, p.with_name(p.name + "-wal")):
        with contextlib.suppress(OSError):
            refs.update(m.decode("ascii") for m in _REF_IN_JSON.findall(f.read_bytes()))
    return JournalDamagedError(p, reason, rows, refs)


def _check_answer(row: int, http_status: Any, i18n_key: Any, message: Any) -> None:
    if http_status is not None and (
        isinstance(http_status, bool)
        or not isinstance(http_status, int)
        or not 0 <= http_status <= 999
    ):
        raise JournalError(f"row {row}: http_status must be an HTTP status or None")
    if i18n_key is not None and not isinstance(i18n_key, str):
        raise JournalError(f"row {row}: i18n_key must be a str or None")
    if not isinstance(message, str):
        raise JournalError(f"row {row}: message must be a str")


def _is_row_number(number: Any) -> bool:
    return isinstance(number, int) and not isinstance(number, bool) and 0 <= number <= _MAX_ROW


def _check_row_number(number: Any, seen: set[int]) -> None:
    if not _is_row_number(number):
        raise JournalError(f"row numbers must be ints from 0 to 2**63-1, got {number!r}")
    if number in seen:
        raise JournalError(f"row {number} appears twice")
    seen.add(number)


def _refusal(
    action: str, current: JournalRow, allowed: tuple[RowState, ...], done_as: str | None
) -> str:
    """Why a transition is refused, in words."""
    row, state = current.row, current.state
    expected = " or ".join(s.value for s in allowed)
    if state is RowState.DONE:
        detail = f"its order {current.reference_order_id} exists"
        if action == "mark_sending":
            detail += "; sending it again could pay twice"
        elif action == "mark_done":
            detail = f"it is already DONE with order {current.reference_order_id}, not {done_as}"
    elif state is RowState.INVALID:
        detail = f"it was refused before sending ({current.message})"
    else:
        detail = f"{action} needs a {expected} row"
    return f"{action}(row {row}) refused: row {row} is {state.value}: {detail}"
