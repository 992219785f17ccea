"""The results file of a bulk job (CSV or JSONL) and its one-screen summary, and the
spreadsheet-safe CSV cells every CSV the library and the CLI write goes through.

Spreadsheet safety (OWASP's CSV injection advice): a cell a spreadsheet would read as a
formula is neutralised by prefixing a single quote (``'``).
A cell is neutralised when it starts with ``=``, ``+``, ``-``, ``@``, tab, CR, LF or NUL
(or the full-width forms U+FF1D, U+FF0B, U+FF0D, U+FF20 of the first four), or has one
of ``= + - @`` after leading whitespace or double quotes (`` =1+1``, ``"=1+1``).
Numbers the library writes itself (row numbers, HTTP statuses, amounts) stay plain
numbers, ``-5`` included; every text (references, names, messages, whatever the user or
the server sent) is neutralised. ``csv_raw=True`` (the CLI's ``--csv-raw``) writes the
values unchanged, for machine consumers. JSONL is always written raw.

Limit: the cell boundaries are the commas of the file (RFC 4180). A spreadsheet told to
split on another character (``;``, tab) can start a cell inside a field; import these
files with comma as the separator.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._exceptions import TangoError, ValidationError
from .._logs import escape
from .._validation import plain_decimal
from ._format import json_line
from ._job import Progress, RowResult, journal_outcome
from ._journal import Journal

__all__ = [
    "FORMULA_TRIGGERS",
    "REPORT_FIELDS",
    "ReportError",
    "csv_cell",
    "report_rows",
    "summary",
    "write_report",
]

#: The first characters that make a spreadsheet read a cell as a formula (OWASP's
#: ``= + - @``, tab and CR, and LF, NUL and the full-width forms of the four).
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n\x00\uff1d\uff0b\uff0d\uff20")
# a trigger first, or one of = + - @ (ASCII or full-width) after whitespace or double
# quotes; a leading ' is the neutralising mark itself: such a cell is already text
_FORMULA = re.compile('[\t\r\n\x00]|[\\s"]*[=+\\-@\uff1d\uff0b\uff0d\uff20]')
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def csv_cell(value: object, *, raw: bool = False, number: bool = False) -> str:
    """One CSV cell: ``""`` for None, plain digits for an int or a finite Decimal, else
    ``str(value)``, prefixed with ``'`` when a spreadsheet would read it as a formula
    (see the module docstring), unless ``raw``.

    ``number=True`` says the text is a number the library formatted itself (an amount):
    it stays unprefixed when it is one (``-?digits[.digits]``), ``-5`` included; any other
    text in such a column is neutralised all the same. Never raises."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return plain_decimal(value)
    text = str(value)
    if raw or (number and _NUMBER.fullmatch(text)) or not _FORMULA.match(text):
        return text
    return "'" + text


class ReportError(TangoError, OSError):
    """The results file could not be written (disk full, permission, a directory...).
    Nothing about the orders is lost: the journal holds every row's state."""


REPORT_FIELDS = (
    "row",
    "externalRefID",
    "referenceOrderID",
    "outcome",
    "status",
    "i18nKey",
    "message",
)


def report_rows(source: Journal | Iterable[RowResult]) -> Iterator[dict[str, Any]]:
    """One dict per row (by row number for a journal), keyed by REPORT_FIELDS. A
    journal's ``status`` of an ordered row is the order's status as last reconciled
    (``tango-async reconcile``), else as the create call answered."""
    if isinstance(source, Journal):
        reconciled = source.reconciliation()
        for r in source.rows():
            failed = r.state.value in ("FAILED", "INVALID")
            record = reconciled.get(r.row) if r.state.value == "DONE" else None
            status = r.order_status if record is None else record.status
            yield {
                "row": r.row,
                "externalRefID": r.external_ref_id or None,
                "referenceOrderID": r.reference_order_id,
                "outcome": journal_outcome(r),
                "status": r.http_status if failed else status,
                "i18nKey": r.i18n_key,
                "message": r.message,
            }
        return
    for res in sorted(source, key=lambda r: r.row):
        yield {
            "row": res.row,
            "externalRefID": res.external_ref_id or None,
            "referenceOrderID": res.reference_order_id,
            "outcome": res.outcome,
            "status": res.http_status if res.outcome in ("failed", "invalid") else res.status,
            "i18nKey": res.i18n_key,
            "message": res.message,
        }


def report_format(path: str | os.PathLike[str], format: str | None, csv_raw: object) -> str:
    """The format a results file is written in: ``format`` ("csv" or "jsonl"), else
    "jsonl" for a .jsonl / .ndjson / .json ``path`` and "csv" otherwise. ValidationError
    for another ``format`` or a non-bool ``csv_raw`` (before anything is written)."""
    if format is not None and format not in ("csv", "jsonl"):
        raise ValidationError("format", "must be 'csv' or 'jsonl'")
    if not isinstance(csv_raw, bool):
        raise ValidationError("csv_raw", "must be a bool")
    suffix = Path(path).suffix.lower()
    return format or ("jsonl" if suffix in (".jsonl", ".ndjson", ".json") else "csv")


def write_report(
    source: Journal | Iterable[RowResult],
    path: str | Path,
    *,
    format: str | None = None,
    csv_raw: bool = False,
) -> Path:
    """Write the results file: CSV, or JSONL (by ``format`` or the file's suffix:
    ``.jsonl``, ``.ndjson`` and ``.json`` are JSONL, anything else CSV).

    The CSV is safe to open in a spreadsheet: a text cell that would be read as a
    formula (``=``, ``+``, ``-``, ``@``, tab, CR... first) is prefixed with ``'`` (see the
    module docstring); ``csv_raw=True`` writes the values unchanged. JSONL is always raw.

    ValidationError for a ``format`` other than ``csv``/``jsonl`` or a non-bool
    ``csv_raw`` (nothing written); ReportError (naming the file and the cause) when the
    file cannot be written."""
    fmt = report_format(path, format, csv_raw)
    path = Path(path)
    try:
        with path.open("w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for row in report_rows(source):
                    f.write(json_line(row) + "\n")
            else:
                writer = csv.writer(f)
                writer.writerow(REPORT_FIELDS)
                for row in report_rows(source):
                    writer.writerow([csv_cell(row[k], raw=csv_raw) for k in REPORT_FIELDS])
    except OSError as e:
        raise ReportError(f"cannot write the report {path}: {e.strerror or e}") from None
    return path


def summary(
    source: Journal | Iterable[RowResult],
    progress: Progress | None = None,
    *,
    report_path: str | Path | None = None,
    resume_command: str | None = None,
    stopped_by: str | None = None,
    journal_path: str | Path | None = None,
) -> str:
    """A one-screen summary: counts by outcome, the commonest failures, why the job
    stopped (``stopped_by``), what the outcomes mean, where to look next: the journal
    (``journal_path``, else the journal summarised) and the report (``report_path``)."""
    rows = list(report_rows(source))
    outcomes = Counter(r["outcome"] for r in rows)
    lines = [
        f"{len(rows)} row(s): "
        + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))
    ]
    if progress is not None and progress.elapsed > 0:
        lines.append(f"elapsed {progress.elapsed:.1f} s, {progress.rate:.2f} orders/s")
    failures = Counter(
        (r["outcome"], _short(r["i18nKey"] or r["status"] or "", 60), _short(r["message"]))
        for r in rows
        if r["outcome"] in ("failed", "invalid")
    )
    if failures:
        lines.append("failures:")
        for (outcome, key, message), n in failures.most_common(8):
            lines.append(f"  {n:>5} x {outcome} {key} {message}".rstrip())
        if len(failures) > 8:
            lines.append(f"  ... {len(failures) - 8} other kinds")
    if stopped_by:
        lines.append(f"stopped: {stopped_by}. Nothing more was sent.")
    if outcomes["existing"]:
        lines.append(
            f"{outcomes['existing']} row(s) had been ordered before (the API answered with "
            "their existing orders): not paid again. To send such rewards again as new "
            "orders, submit them with a new --run-label."
        )
    if outcomes["unknown"]:
        lines.append(
            f"{outcomes['unknown']} row(s) were sent without a definite answer (the order may "
            "exist): resume settles them with their own externalRefIDs; never re-order them "
            "by other means."
        )
    if outcomes["pending"] and stopped_by:
        lines.append(f"{outcomes['pending']} row(s) not ordered stay pending.")
    if journal_path is None and isinstance(source, Journal):
        journal_path = source.path
    if journal_path is not None:
        lines.append(f"journal: {journal_path}")
    if report_path is not None:
        lines.append(f"report: {report_path}")
    if resume_command:
        lines.append(f"not finished; resume with: {resume_command}")
    return "\n".join(lines)


def _short(message: Any, limit: int = 90) -> str:
    text = "" if message is None else escape(str(message).replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 3] + "..."
