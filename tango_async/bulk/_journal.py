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
``ref_scheme``, ``identity``, ``run_label``); a schema-1 journal is upgraded in place when
a job takes it (:meth:`Journal.lock`), its rows and externalRefIDs unchanged.

The file is plain SQLite (WAL mode) and can be read by other processes while a job writes
it, e.g. a ``status`` command. The API is synchronous and guarded by a lock: the job engine
calls it from one worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Final
from urllib.parse import urlsplit

from .._exceptions import TangoError
from .._version import __version__

__all__ = ["Journal", "JournalError", "JournalMismatchError", "JournalRow", "RowState"]

SCHEMA_VERSION: Final = 2
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


class JournalMismatchError(JournalError, ValueError):
    """The journal belongs to another input file (or the input changed since the job began)."""


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
    CHECK ((state = 'INVALID') = (external_ref_id IS NULL)),
    CHECK ((state = 'INVALID') = (request IS NULL)),
    CHECK (state != 'DONE' OR reference_order_id IS NOT NULL)
);
"""
_SCHEMA: Final = _META_TABLE + _ROWS_TABLE
_INDEX: Final = "CREATE INDEX rows_state ON rows (state);"

_COLUMNS: Final = (
    "row, external_ref_id, state, attempt, sent_at, reference_order_id, created, order_status, "
    "http_status, i18n_key, message, retriable, request, updated_at"
)
_META_KEYS: Final = ("job_id", "input_path", "input_digest", "settings", "created_at")


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def _parse_ts(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


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


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), never creating the file.

    ``create`` only means the (empty) file was just made by us, so it may be read-write-create.
    """
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(
        f"{path.absolute().as_uri()}?mode={mode}",
        uri=True,
        timeout=30.0,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
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
    ) -> Journal:
        """Create a new journal holding every row, in one transaction; refuse an existing file.

        ``rows`` are ``(row, external_ref_id, request wire JSON)`` (PENDING); ``invalid`` are
        ``(row, "field: rule; ...")`` refused before sending (INVALID). ``settings`` (order
        rate, base URL...) must be JSON-serialisable and hold no credentials. ``identity``
        is the digest of the job's orders (their content-derived externalRefIDs) that a
        later submit of the same orders is recognised by; ``run_label`` the job's label.
        If anything is refused, no file is left behind.
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

        stale = [c for c in _companions(p) if c.exists()]
        if stale:
            raise JournalError(
                f"cannot create journal {p}: {', '.join(map(str, stale))} exists (left by an "
                "earlier journal of that name); move it away first"
            )
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise JournalError(
                f"cannot create journal {p}: the file exists (resume its job with "
                "Journal.open(), or choose another path)"
            ) from None
        except OSError as e:
            raise JournalError(f"cannot create journal {p}: {e}") from e
        os.close(fd)

        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(p, create=True)
            # Built in rollback-journal mode: for a new file it writes each page once (WAL would
            # write everything twice); a crash mid-way leaves an empty file, never half a job.
            conn.execute("PRAGMA journal_mode=DELETE")
            now = _ts(_now())
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):  # (executescript() would COMMIT first)
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("job_id", job_id),
                    ("input_path", input_path),
                    ("input_digest", input_digest),
                    ("settings", settings_json),
                    ("created_at", now),
                    ("library_version", __version__),
                    ("ref_scheme", ref_scheme),
                    ("identity", identity),
                    ("run_label", run_label or ""),
                ],
            )
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
            conn.execute(_INDEX)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
            _set_wal(conn, p)
            _fsync_dir(p.absolute().parent)
            return cls(conn, p)
        except BaseException as e:
            if conn is not None:
                conn.close()  # rolls back
            for leftover in (p, *_companions(p)):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            if isinstance(e, sqlite3.Error | OSError):
                raise JournalError(f"cannot create journal {p}: {e}") from e
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Open an existing journal (to resume its job, or to read its status).

        Several may be open on one file at once, in one or several processes.
        """
        p = Path(path)
        if not p.exists():
            raise JournalError(f"no journal at {p}: the file does not exist")
        if p.is_dir():
            raise JournalError(f"{p} is a directory, not a journal")
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(p, create=False)
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as e:
            if conn is not None:
                conn.close()
            if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                raise JournalError(f"{p} is not a journal (not an SQLite database)") from e
            raise JournalError(f"cannot open journal {p}: {e}") from e
        try:
            if app_id == 0 and version == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
                if tables == 0:
                    raise JournalError(
                        f"{p} is an empty file, not a journal: its creation did not finish "
                        "(nothing was sent from it); delete it and start the job again"
                    )
            if app_id != APPLICATION_ID:
                raise JournalError(f"{p} is not a tango_async bulk journal")
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"{p} was written by a newer tango_async (journal schema {version}); this "
                    f"version ({__version__}) reads schema {SCHEMA_VERSION}: upgrade tango_async"
                )
            if version not in (1, SCHEMA_VERSION):
                raise JournalError(f"{p} has unknown journal schema version {version}")
            _set_wal(conn, p)
            return cls(conn, p)
        except BaseException as e:
            conn.close()
            if isinstance(e, sqlite3.Error):
                raise JournalError(f"cannot open journal {p}: {e}") from e
            raise

    @classmethod
    def discard_unfinished(cls, path: str | os.PathLike[str]) -> bool:
        """Delete ``path`` if it is a journal whose creation never finished (a crash during
        create(): no row of it was ever sent); return whether it was deleted."""
        p = Path(path)
        if not p.is_file():
            return False
        try:
            conn = _connect(p, create=False)
            try:
                empty = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0
            finally:
                conn.close()
        except sqlite3.Error:
            return False
        if empty:
            for leftover in (p, *_companions(p)):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        return bool(empty)

    def lock(self) -> None:
        """Take this journal for one running job (an advisory lock, released when the
        process ends, however it ends); JournalError when another process holds it."""
        if self._lock_file is not None:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            self._upgrade()
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            f = open(lock_path, "a+b")  # noqa: SIM115
        except OSError as e:
            raise JournalError(
                f"cannot take journal {self.path} for this job: its lock file {lock_path} "
                f"cannot be opened ({e.strerror or e})"
            ) from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise JournalError(
                f"journal {self.path} is in use by another running job; wait for it, or stop it"
            ) from None
        self._lock_file = f
        self._upgrade()

    def _upgrade(self) -> None:
        """Schema 1 -> 2 (the UNKNOWN state), in one transaction; rows are copied as they are."""
        with self._lock:
            conn = self._db()
            try:
                if conn.execute("PRAGMA user_version").fetchone()[0] != 1:
                    return
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_ROWS_TABLE.replace("CREATE TABLE rows", "CREATE TABLE rows_v2"))
                conn.execute(f"INSERT INTO rows_v2 ({_COLUMNS}) SELECT {_COLUMNS} FROM rows")
                conn.execute("DROP TABLE rows")
                conn.execute("ALTER TABLE rows_v2 RENAME TO rows")
                conn.execute(_INDEX)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
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
                updated = self._get(conn, row)
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise JournalError(
                        f"cannot record {action} of row {row} in journal {self.path}: {e}"
                    ) from e
                raise
        if updated is None:  # pragma: no cover - the row was just read in this transaction
            raise JournalError(f"journal {self.path} lost row {row}")
        return updated

    def mark_sending(self, row: int) -> JournalRow:
        """Mark a PENDING, SENDING, FAILED or UNKNOWN row SENDING: attempt += 1, sent_at = now.

        Committed and fsynced before it returns: send the request only after it did.
        Clears the previous failure, if any.
        """
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

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent). Every committed transition is already on disk."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the job lock
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
