"""Bulk order jobs: read a file of orders, send them at the rate limit, survive crashes.

::

    from tango_async.bulk import BulkJob, Journal, read_orders

    job = tango.orders.submit_many(read_orders("rewards.csv"), journal="rewards.journal")
    async for result in job:
        ...
    # after a crash, the rest, with the same externalRefIDs:
    job = BulkJob.resume(tango, Journal.open("rewards.journal"))
    # before anything is sent, the job checks the catalog rules and each account's
    # balance (BalanceCheckError when one cannot cover its rows): job.checked
    # later: what became of every order (delivered, failed, pending, needs action)
    report = await reconcile(tango, "rewards.journal", wait=True, timeout=3600)
"""

from ._inputs import InputFileError, InputRow, RowError, detect_format, file_digest, read_orders
from ._job import (
    BulkClient,
    BulkJob,
    BulkValidationError,
    Plan,
    PreflightHook,
    Progress,
    RowResult,
    SystemicStop,
    check_same_orders,
    derive_job_id,
    plan_rows,
)
from ._journal import (
    JobRun,
    Journal,
    JournalBusyError,
    JournalDamagedError,
    JournalError,
    JournalMismatchError,
    JournalRow,
    RowState,
    StatusRecord,
)
from ._orders import BulkOrders
from ._preflight import (
    AccountCheck,
    BalanceCheckError,
    CostLine,
    Preflight,
    PreflightClient,
    preflight_lines,
    run_preflight,
)
from ._reconcile import (
    RECONCILE_FIELDS,
    EventResult,
    ReconciledRow,
    ReconcileProgress,
    Reconciler,
    ReconcileReport,
    reconcile,
    write_reconcile_report,
)
from ._report import FORMULA_TRIGGERS, REPORT_FIELDS, ReportError, csv_cell, summary, write_report

__all__ = [
    "FORMULA_TRIGGERS",
    "RECONCILE_FIELDS",
    "REPORT_FIELDS",
    "AccountCheck",
    "BalanceCheckError",
    "BulkClient",
    "BulkJob",
    "BulkOrders",
    "BulkValidationError",
    "CostLine",
    "EventResult",
    "InputFileError",
    "InputRow",
    "JobRun",
    "Journal",
    "JournalBusyError",
    "JournalDamagedError",
    "JournalError",
    "JournalMismatchError",
    "JournalRow",
    "Plan",
    "Preflight",
    "PreflightClient",
    "PreflightHook",
    "Progress",
    "ReconcileProgress",
    "ReconcileReport",
    "ReconciledRow",
    "Reconciler",
    "ReportError",
    "RowError",
    "RowResult",
    "RowState",
    "StatusRecord",
    "SystemicStop",
    "check_same_orders",
    "csv_cell",
    "derive_job_id",
    "detect_format",
    "file_digest",
    "plan_rows",
    "preflight_lines",
    "read_orders",
    "reconcile",
    "run_preflight",
    "summary",
    "write_reconcile_report",
    "write_report",
]
