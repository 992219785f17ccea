"""Journals as tango-async 0.1 wrote them, for the upgrade tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tango_async.bulk._journal import _COLUMNS, _ROWS_TABLE


def downgrade_to_schema_1(path: Path) -> None:
    """Make the journal at ``path`` look written by 0.1: user_version 1, a rows table
    whose states have no UNKNOWN, and no identity, run label or ref scheme in its meta."""
    old_table = _ROWS_TABLE.replace(", 'UNKNOWN'", "").replace("TABLE rows", "TABLE rows_v1")
    old_table = old_table.replace("    digest             BLOB,\n", "")  # schema 3's checksums
    assert "UNKNOWN" not in old_table and "digest" not in old_table
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute(old_table)
        db.execute(f"INSERT INTO rows_v1 SELECT {_COLUMNS} FROM rows")
        db.execute("DROP TABLE rows")
        db.execute("ALTER TABLE rows_v1 RENAME TO rows")
        db.execute(
            "DELETE FROM meta WHERE key IN ('ref_scheme', 'identity', 'run_label', "
            "'rows', 'digest')"
        )
        db.execute("PRAGMA user_version=1")
        db.execute("COMMIT")
    finally:
        db.close()
