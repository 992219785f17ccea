"""The results file of a bulk job (CSV or JSONL) and its one-screen summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .._exceptions import TangoError
from ._job import Progress, RowResult, journal_outcome
from ._journal import Journal

__all__ = ["REPORT_FIELDS", "ReportError", "report_rows", "summary", "write_report"]


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
    """One dict per row (by row number for a journal), keyed by REPORT_FIELDS."""
    if isinstance(source, Journal):
        for r in source.rows():
            failed = r.state.value in ("FAILED", "INVALID")
            yield {
                "row": r.row,
                "externalRefID": r.external_ref_id or None,
                "referenceOrderID": r.reference_order_id,
                "outcome": journal_outcome(r),
                "status": r.http_status if failed else r.order_status,
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


def write_report(
    source: Journal | Iterable[RowResult], path: str | Path, *, format: str | None = None
) -> Path:
    """Write the results file: CSV, or JSONL (by ``format`` or the file's suffix).

    ReportError (naming the file and the cause) when it cannot be written."""
    path = Path(path)
    fmt = format or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    try:
        with path.open("w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for row in report_rows(source):
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                writer = csv.DictWriter(f, fieldnames=REPORT_FIELDS)
                writer.writeheader()
                for row in report_rows(source):
                    writer.writerow({k: "" if v is None else v for k, v in row.items()})
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
) -> str:
    """A one-screen summary: counts by outcome, the commonest failures, why the job
    stopped (``stopped_by``), what the outcomes mean, where to look next."""
    rows = list(report_rows(source))
    outcomes = Counter(r["outcome"] for r in rows)
    lines = [
        f"{len(rows)} row(s): "
        + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))
    ]
    if progress is not None and progress.elapsed > 0:
        lines.append(f"elapsed {progress.elapsed:.1f} s, {progress.rate:.2f} orders/s")
    failures = Counter(
        (r["outcome"], r["i18nKey"] or r["status"] or "", _short(r["message"]))
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
    if report_path is not None:
        lines.append(f"report: {report_path}")
    if resume_command:
        lines.append(f"not finished; resume with: {resume_command}")
    return "\n".join(lines)


def _short(message: Any, limit: int = 90) -> str:
    text = "" if message is None else str(message).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
