"""The bulk commands: ``submit``, ``resume``, ``status``, ``reconcile``, and the job and
reconciliation drivers behind them."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from .. import TangoClient, TangoError
from .._exceptions import ValidationError
from .._logs import escape_lines
from .._validation import (
    check_max_amount,
)
from ..bulk._format import format_amount, format_time
from ..bulk._inputs import InputFileError, RowError, detect_format, file_digest, read_orders
from ..bulk._job import (
    BulkJob,
    BulkValidationError,
    Plan,
    check_run_label,
    check_same_orders,
    plan_rows,
)
from ..bulk._journal import (
    CONTENT_REFS,
    JobRun,
    Journal,
    JournalError,
    RowState,
    _build_path,
    _companions,
    _lock_path,
)
from ..bulk._preflight import BalanceCheckError, Preflight, preflight_lines, run_preflight
from ..bulk._reconcile import (
    CATEGORIES,
    ReconcileProgress,
    Reconciler,
    ReconcileReport,
    build_report,
    write_reconcile_report,
)
from ..bulk._report import ReportError, summary, write_report
from ._common import (
    _CSV_RAW,
    _JOB_CONCURRENCY,
    _ORDER_RATE,
    _RUN_LABEL,
    _SECONDS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_SECONDS,
    Settings,
    _DecimalType,
    _FiniteFloat,
    _output_path,
    _resolved,
    _same_file,
    _text,
    cli,
    connect,
    echo_err,
    run,
)

_PROGRESS_INTERVAL = click.option(
    "--progress-interval",
    type=_SECONDS,
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when not on a terminal.",
)


def _check_files(
    *, inputs: dict[str, Path], journal: Path, report: Path, journal_hint: str = "'--journal'"
) -> None:
    """The report (written at the end) must not overwrite the journal or an input file,
    which would lose the record of what was sent; the journal must not be an input."""
    _output_path(report, "'--report'")
    _output_path(journal, journal_hint)
    if _same_file(report, journal):
        raise click.BadParameter(
            f"{str(report)!r} is the journal: the report would overwrite it",
            param_hint="'--report'",
        )
    for named in {journal, _resolved(journal)}:  # SQLite names a symlink's -wal by its target
        for companion in (*_companions(named), _lock_path(named), _build_path(named)):
            if _same_file(report, companion):
                raise click.BadParameter(
                    f"{str(report)!r} is the journal's {companion.name} file: the report "
                    "would overwrite it, and with it the record of what was sent",
                    param_hint="'--report'",
                )
    for name, path in inputs.items():
        if _same_file(report, path):
            raise click.BadParameter(
                f"{str(report)!r} is the {name}: the report would overwrite it",
                param_hint="'--report'",
            )
        if _same_file(journal, path):
            raise click.BadParameter(
                f"{str(journal)!r} is the {name}, not a journal", param_hint=journal_hint
            )


# --- bulk jobs ----------------------------------------------------------------------------


def _default_journal(file: Path, run_label: str | None = None) -> Path:
    name = f"{file.name}.{run_label}.journal" if run_label else f"{file.name}.journal"
    return file.with_name(name)


def _default_report(file: Path) -> Path:
    return file.with_name(file.stem + ".results.csv")


def _resume_command(journal: Path) -> str:
    return f"tango-async resume {shlex.quote(str(journal))}"


def _left_to_send(journal: Journal) -> int:
    return len(journal.to_send())


def _nothing_to_send(opened: Journal, file: Path, report: Path, *, csv_raw: bool) -> int:
    """``submit`` of orders its journal has settled already: say so (naming the journal
    and the report, rewritten from the journal), send nothing; return the exit code."""
    counts = opened.counts()
    total = sum(counts.values())
    label = f"run label {opened.run_label}" if opened.run_label else "no run label"
    parts = ", ".join(f"{n} {state.value.lower()}" for state, n in counts.items() if n)
    try:
        written: Path | None = write_report(opened, report, csv_raw=csv_raw)
    except ReportError as e:
        written = None
        echo_err(f"error: {e}; the journal {opened.path} keeps every row's state")
    where = f"; report {written}" if written is not None else ""
    click.echo(
        escape_lines(
            f"nothing to send: all {total} row(s) of {file} already settled in journal "
            f"{opened.path} ({parts}){where}; nothing sent"
        )
    )
    click.echo(
        escape_lines(
            f"the job {opened.job_id} ({label}) started "
            f"{format_time(opened.created_at, seconds=True)} settled them. Submitting the "
            "same orders again never orders them twice. To send these rewards again as NEW "
            f"orders: tango-async submit {shlex.quote(str(file))} --run-label LABEL"
        )
    )
    if written is None:
        return EXIT_USAGE
    return EXIT_FAILED if counts[RowState.FAILED] + counts[RowState.INVALID] else EXIT_OK


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Job journal (SQLite). Default: FILE.journal (FILE.LABEL.journal with --run-label).",
)
@click.option(
    "--run-label",
    type=_RUN_LABEL,
    help="Send these rows again as NEW orders, under this label (letters, digits, . _ -). "
    "The same label twice orders nothing twice.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check every row (format, and the catalog's rules where it can be read) and show "
    "what would be sent and what it costs each account against its balance; send nothing. "
    "Exit 2 when the balance check would refuse the job.",
)
@click.option(
    "--no-balance-check",
    is_flag=True,
    help="Send even when an account's balance cannot cover its rows (the API then refuses "
    "them with 402, which stops the job). The cost and balance are still shown.",
)
@click.option(
    "--order-rate",
    type=_ORDER_RATE,
    default=1.0,
    show_default=True,
    help="Orders per second (Tango allows 1).",
)
@click.option(
    "--max-amount",
    type=_DecimalType(check_max_amount),
    help="Refuse rows above this amount [default: 1000000].",
)
@click.option(
    "--concurrency",
    type=_JOB_CONCURRENCY,
    default=2,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option("--skip-invalid", is_flag=True, help="Send the valid rows even if some are not.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file, .csv or .jsonl. Default: FILE's name + .results.csv",
)
@click.option(
    "--input-format",
    type=click.Choice(["csv", "jsonl"]),
    help="The input file's format. Default: from its suffix (.csv; .jsonl, .ndjson, .json).",
)
@_PROGRESS_INTERVAL
@_CSV_RAW
@click.pass_obj
def submit(
    settings: Settings,
    file: Path,
    journal: Path | None,
    run_label: str | None,
    dry_run: bool,
    no_balance_check: bool,
    order_rate: float,
    max_amount: Decimal | None,
    concurrency: int,
    skip_invalid: bool,
    report: Path | None,
    input_format: str | None,
    progress_interval: float,
    csv_raw: bool,
) -> None:
    """Send every order in FILE (CSV or JSONL), journaled so it can resume after any crash.

    Every row is checked first; bad rows are listed and nothing is sent (unless
    --skip-invalid). Each row's externalRefID comes from its content: submitting the same
    orders again (this file re-saved, or a copy) orders nothing twice, and a corrected
    row is the only one ordered anew. Use --run-label to send the same rewards again.

    Pre-flight: before the first order, the catalog's rules are checked for every row
    (where the catalog can be read), and each account's balance against the estimated
    cost of its rows (converted at the day's exchange rates where currencies differ). A
    balance that cannot cover its rows refuses the job (exit 2, nothing sent) unless
    --no-balance-check; a balance that cannot be read (403, 404) is a warning. The check
    is recorded in the journal (``status`` shows it); ``resume`` does not repeat it.
    """
    input_path = _text(str(file.absolute()))
    path = journal or _default_journal(file, run_label)
    out = report or _default_report(file)
    _check_files(inputs={"input file": file}, journal=path, report=out)

    async def main() -> int:
        label = check_run_label(run_label)
        limit: dict[str, Any] = {"max_amount": max_amount} if max_amount is not None else {}
        fmt = input_format or _input_format(file)
        rows = read_orders(file, format=fmt, **limit)  # type: ignore[arg-type]
        plan = plan_rows(rows, run_label=label, **limit)
        if plan.errors and not skip_invalid:
            _echo_row_errors(plan.errors)
            lines = "the header is line 1" if fmt == "csv" else "one order a line"
            echo_err(
                f"{len({x.row for x in plan.errors})} invalid row(s) in {file} (rows are "
                f"numbered by the file's lines: {lines}); nothing sent. Fix them, or pass "
                "--skip-invalid to send the others."
            )
            return EXIT_FAILED
        digest = file_digest(file)
        if Journal.discard_unfinished(path):
            echo_err(f"{path}: its creation never finished (nothing was sent): starting over")
        opened = Journal.open(path) if path.exists() else None
        if opened is not None:
            try:
                check_same_orders(opened, plan, file, digest)
            except BaseException:
                opened.close()
                raise
        if dry_run:
            to_check = plan.rows
            if opened is not None and opened.ref_scheme == CONTENT_REFS:
                # only the rows the resume would send cost anything: not those its journal
                # already ordered (nor paid), nor those it settled as failed or invalid
                left = {r.external_ref_id for r in opened.to_send()}
                to_check = [r for r in plan.rows if r[1] in left]
            found = await _dry_preflight(settings, plan, to_check, order_rate, limit)
            return _dry_run(plan, file, opened, found, balance_check=not no_balance_check)
        if opened is not None:
            try:
                if not _left_to_send(opened):
                    return _nothing_to_send(opened, file, out, csv_raw=csv_raw)
                opened.lock()  # a job running it: one line naming its pid (issue 16)
                echo_err(f"journal {path} holds these orders: resuming its job")
                _show_recorded(opened, resumed=True)
                async with connect(settings, order_rate=order_rate, **limit) as client:
                    job = BulkJob.resume(client, opened, concurrency=concurrency)
                    return await drive(job, path, out, progress_interval, csv_raw=csv_raw)
            finally:
                opened.close()
        settings_saved = {
            "order_rate": order_rate,
            "concurrency": concurrency,
            "base_url": settings.base_url,
            "sandbox": settings.sandbox,
            "report": str(out),
            "max_amount": None if max_amount is None else str(max_amount),
            "csv_raw": csv_raw,
        }
        async with connect(settings, order_rate=order_rate, **limit) as client:
            job = BulkJob.prepare(
                client,
                plan,
                journal=path,
                input_path=input_path,
                input_digest=digest,
                skip_invalid=skip_invalid,
                concurrency=concurrency,
                settings=settings_saved,
                preflight=_hook(client),
                balance_check=not no_balance_check,
            )
            try:
                checked = await job.preflight()
            except BalanceCheckError as e:
                _echo_preflight(e.preflight, balance_check=True, err=True)
                echo_err(f"error: {e.preflight.refusal('pass --no-balance-check')}")
                return EXIT_USAGE
            except BulkValidationError as e:
                _echo_row_errors(list(e.errors))
                echo_err(
                    f"{len({x.row for x in e.errors})} row(s) of {file} break the catalog's "
                    "rules; nothing sent. Fix them, or pass --skip-invalid to send the others."
                )
                return EXIT_FAILED
            if checked is not None:
                _echo_preflight(checked, balance_check=not no_balance_check, err=True)
                if checked.short:  # --no-balance-check
                    echo_err(
                        f"warning: {len(checked.short)} account(s) cannot cover their rows; "
                        "sending anyway (--no-balance-check): the API refuses the rows past "
                        "the balance with 402, which stops the job"
                    )
            echo_err(f"journal: {path}")
            if skip_invalid and job.progress().failed:
                echo_err(f"skipping {job.progress().failed} invalid row(s)")
            return await drive(job, path, out, progress_interval, csv_raw=csv_raw)

    _run(main())


SHOWN_INVALID_ROWS = 100  # invalid rows whose errors submit lists (every field of each)


def _echo_row_errors(errors: list[RowError]) -> None:
    """Every error of the first :data:`SHOWN_INVALID_ROWS` invalid rows, one a line, then
    one line counting the rest: a file of 100,000 bad rows is not a million lines."""
    shown: set[int] = set()
    hidden: list[RowError] = []
    for error in errors:
        if error.row not in shown and len(shown) >= SHOWN_INVALID_ROWS:
            hidden.append(error)
            continue
        shown.add(error.row)
        echo_err(str(error))
    if hidden:
        rows = len({e.row for e in hidden})
        echo_err(
            f"... and {len(hidden)} more error(s) in {rows} more invalid row(s), not shown "
            f"(the first {SHOWN_INVALID_ROWS} invalid rows are): fix those and run again"
        )


def _run(coro: Coroutine[Any, Any, int]) -> None:
    """:func:`run` for the bulk commands, with Ctrl-C where no job is running (reading
    the file, the pre-flight, connecting; a running job has its own two-stage handler):
    one line and exit 130, never a traceback. Nothing is being sent then: a job sends
    only from :func:`drive`, which handles Ctrl-C itself."""

    async def interruptible() -> int:
        try:
            return await coro
        except asyncio.CancelledError:  # the first Ctrl-C, outside a running job
            echo_err("interrupted (Ctrl-C); nothing more was sent")
            return EXIT_INTERRUPTED

    try:
        run(interruptible())
    except KeyboardInterrupt:  # a second Ctrl-C, at once
        echo_err("interrupted (Ctrl-C); nothing more was sent")
        raise SystemExit(EXIT_INTERRUPTED) from None


def _input_format(file: Path) -> str:
    """The format of ``file`` by its suffix, or InputFileError naming ``--input-format``."""
    try:
        return detect_format(file)
    except InputFileError:
        raise InputFileError(
            f"{file}: cannot tell the format from the suffix {file.suffix!r}: name it .csv, "
            ".jsonl, .ndjson or .json, or pass --input-format csv (or jsonl)"
        ) from None


def _hook(client: TangoClient) -> Any:
    """The pre-flight a CLI job runs, on ``client``."""

    async def hook(rows: Any, invalid: Any) -> Preflight:
        return await run_preflight(client, rows, invalid=invalid)

    return hook


async def _dry_preflight(
    settings: Settings,
    plan: Plan,
    rows: list[tuple[int, str, bytes]],
    order_rate: float,
    limit: dict[str, Any],
) -> Preflight | str:
    """The pre-flight of a dry run, or why there is none (no credentials: the dry run
    still checks the format rules, offline)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(
                connect(settings, order_rate=order_rate, **limit)
            )
        except ValidationError as e:
            return (
                f"pre-flight not run ({e.field}: {e.rule}): the catalog's rules and the "
                "balances were not checked"
            )
        return await run_preflight(client, rows, invalid=plan.errors)
    raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises or returns


def _echo_preflight(checked: Preflight, *, balance_check: bool, err: bool) -> None:
    for line in checked.lines(balance_check=balance_check):
        click.echo(escape_lines(line), err=err)


def _show_recorded(opened: Journal, *, resumed: bool = False) -> None:
    """The balance check the journal's job started with, on stderr (for ``resume``)."""
    record = opened.preflight
    if record is None:
        echo_err("no balance check recorded: the job was started without a pre-flight")
        return
    for line in preflight_lines(record):
        echo_err(line)
    if resumed:
        echo_err("(the job's balance check, as it started; a resume does not repeat it)")


def _dry_run(
    plan: Plan,
    file: Path,
    opened: Journal | None,
    checked: Preflight | str | None = None,
    *,
    balance_check: bool = True,
) -> int:
    refused: list[RowError] = []
    catalog_refused: frozenset[int] = frozenset()
    # With a journal, the real submit resumes its job: no pre-flight then, so neither the
    # balance check nor the catalog's rules refuse anything (a row sent before with an
    # unknown outcome must be sent again to be settled): what follows is information.
    resumes = opened is not None
    if isinstance(checked, Preflight):
        refused = [e for e in checked.invalid if e.row in checked.catalog_invalid]
        if not resumes:
            catalog_refused = checked.catalog_invalid
    refs = [ref for number, ref, _ in plan.rows if number not in catalog_refused]
    label = f"run label {plan.run_label}" if plan.run_label else "no run label"
    click.echo(f"dry run: {len(refs)} order(s) from {file} ({label}); nothing sent")
    if plan.errors:
        click.echo(f"{len({e.row for e in plan.errors})} invalid row(s) would be skipped")
    if refused:
        count = len({e.row for e in refused})
        click.echo(
            escape_lines(
                f"{count} row(s) break the catalog's rules and would not be sent:"
                if not resumes
                else f"{count} row(s) break the catalog's rules (the resume does not check "
                "them: it would send them):"
            )
        )
        for error in refused[:20]:
            click.echo(escape_lines(f"  {error}"))
        if len(refused) > 20:
            click.echo(f"  ... and {len(refused) - 20} more")
    if isinstance(checked, Preflight):
        _echo_preflight(checked, balance_check=balance_check, err=False)
    elif isinstance(checked, str):
        click.echo(escape_lines(checked))
    if opened is not None:
        rows = list(opened.rows())
        opened.close()
        if opened.ref_scheme != CONTENT_REFS:  # 0.1's journal: resumed with its own refs
            left = [r for r in rows if r.state not in (RowState.DONE, RowState.INVALID)]
            click.echo(
                f"journal {opened.path} (written by tango-async 0.1) would be resumed with its "
                f"own externalRefIDs: {len(rows) - len(left)} row(s) settled, {len(left)} left"
            )
            for r in left[:10]:
                click.echo(f"  row {r.row}: externalRefID {r.external_ref_id}")
            return EXIT_OK
        done = {r.external_ref_id for r in rows if r.state is RowState.DONE}
        click.echo(
            f"journal {opened.path}: {sum(1 for r in refs if r in done)} of them are already "
            "ordered and would not be sent again"
        )
        click.echo(
            "the real submit resumes this journal's job: its balance check and the catalog's "
            "rules are not repeated (the figures above are for information)"
        )
    shown = [(n, ref) for n, ref, _ in plan.rows if n not in catalog_refused]
    for number, ref in shown[:10]:
        click.echo(f"  row {number}: externalRefID {ref}")
    if len(refs) > 10:
        click.echo(f"  ... and {len(refs) - 10} more")
    if isinstance(checked, Preflight) and checked.short and balance_check and not resumes:
        click.echo(escape_lines(f"would be refused: {checked.refusal('pass --no-balance-check')}"))
        return EXIT_USAGE
    return EXIT_FAILED if plan.errors or catalog_refused else EXIT_OK


@cli.command()
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The job's input file, checked against the journal.",
)
@click.option(
    "--order-rate",
    type=_ORDER_RATE,
    help="Default: the rate the job was started with.",
)
@click.option(
    "--concurrency",
    type=_JOB_CONCURRENCY,
    help="Requests in flight at once. Default: what the job was started with.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also re-send rows that failed for good (a 4xx), same externalRefID.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file, .csv or .jsonl. Default: the report the job was started with.",
)
@_PROGRESS_INTERVAL
@_CSV_RAW
@click.pass_obj
def resume(
    settings: Settings,
    journal: Path,
    input_file: Path | None,
    order_rate: float | None,
    concurrency: int | None,
    retry_failed: bool,
    report: Path | None,
    progress_interval: float,
    csv_raw: bool,
) -> None:
    """Finish the job of JOURNAL: rows whose outcome is unknown first (re-sent with their
    externalRefID, which settles them), then the rest; done rows are skipped.

    The balance check is not run again: the one the job started with is shown (rows a
    balance cannot cover get the API's 402, which stops the job again)."""

    if report is not None:
        _output_path(report, "'--report'")

    async def main() -> int:
        opened = Journal.open(journal)
        try:
            saved = opened.settings
            limit = _saved_limit(saved)
            if input_file is not None:
                plan = plan_rows(read_orders(input_file), run_label=opened.run_label, **limit)
                check_same_orders(opened, plan, input_file, file_digest(input_file))
            rate = order_rate or _saved(saved, "order_rate", _ORDER_RATE, 1.0)
            jobs = concurrency or _saved(saved, "concurrency", _JOB_CONCURRENCY, 2)
            raw = csv_raw or saved.get("csv_raw") is True
            out = report or Path(
                _saved_text(saved, "report") or journal.with_suffix(".results.csv")
            )
            remote = settings.sandbox is None and settings.base_url is None
            saved_url = _saved_text(saved, "base_url") if remote else None
            inputs = {"input file": input_file} if input_file is not None else {}
            if opened.input_path:
                inputs["job's input file"] = Path(opened.input_path)
            _check_files(inputs=inputs, journal=journal, report=out, journal_hint="'JOURNAL'")
            # Taken before anything is shown or connected: a job running it is refused in
            # one line naming its pid (issue 16); the checks above wrote nothing
            opened.lock()
            if remote:
                settings.base_url = saved_url
            _show_recorded(opened, resumed=True)
            async with connect(settings, order_rate=rate, **limit) as client:
                job = BulkJob.resume(client, opened, retry_failed=retry_failed, concurrency=jobs)
                return await drive(job, journal, out, progress_interval, csv_raw=raw)
        finally:
            opened.close()

    _run(main())


def _saved(
    saved: dict[str, Any],
    key: str,
    kind: click.ParamType,  # type: ignore[type-arg]
    default: Any,
) -> Any:
    """A setting the job was started with, checked as its option would be (JournalError,
    exit 2, when the journal holds a value its option refuses)."""
    value = saved.get(key)
    if value is None:
        return default
    try:
        return kind.convert(value, None, None)
    except (click.BadParameter, TypeError, ValueError, ArithmeticError):  # TypeError: a list
        hint = "" if key == "max_amount" else f": pass --{key.replace('_', '-')}"
        raise JournalError(
            f"the {key} saved in the journal ({value!r}) is not valid{hint}"
        ) from None


def _saved_text(saved: dict[str, Any], key: str) -> str | None:
    """A text setting the job was started with (a path, a URL), or None; JournalError
    (exit 2) for a value that is not a str (a journal written through the library may hold
    any JSON there)."""
    value = saved.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise JournalError(
            f"the {key} saved in the journal ({value!r}) is not valid: "
            f"pass --{key.replace('_', '-')}"
        )
    return value


def _saved_limit(saved: dict[str, Any]) -> dict[str, Any]:
    value = saved.get("max_amount")
    if not isinstance(value, str):
        return {}
    return {"max_amount": _saved(saved, "max_amount", _DecimalType(check_max_amount), None)}


@cli.command()
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
def status(journal: Path) -> None:
    """Where the job of JOURNAL stands (safe while it runs): its rows by state, the
    balance check it started with, whether it is running now (its pid and host, its rate
    over the last minute, progress and ETA) or was interrupted (the resume command), and
    its reconciliation."""

    async def main() -> int:
        with Journal.open(journal) as opened:
            counts = opened.counts()
            run_info = opened.job_run()
            total = sum(counts.values())
            click.echo(escape_lines(f"job {opened.job_id}  input {opened.input_path}"))
            click.echo(escape_lines(f"journal {opened.path}"))
            if opened.run_label:
                click.echo(f"run label {opened.run_label}")
            click.echo(f"started {format_time(opened.created_at, seconds=True)}, {total} row(s)")
            for state in RowState:
                click.echo(f"  {state.value.lower():<8} {counts[state]}")
            record = opened.preflight  # issue 15: the balance check the job started with
            if record is None:
                click.echo("no balance check recorded (started without a pre-flight)")
            else:
                for line in preflight_lines(record):
                    click.echo(escape_lines(line))
            left = _left_to_send(opened)
            for line in _run_lines(opened, run_info, counts, left, journal):
                click.echo(escape_lines(line))
            last = opened.last_reconciled()
            if last is not None:
                report = build_report(opened)
                click.echo(
                    escape_lines(
                        f"reconciled {format_time(last[0], seconds=True)} "
                        f"(last record by {last[1]})"
                    )
                )
                results, amounts = report.counts, report.amounts
                for category in CATEGORIES:
                    click.echo(
                        f"  {_LABELS[category]:<13} {results[category]:>6}  "
                        f"amount {format_amount(amounts[category])}"
                    )
                if results["pending"]:
                    again = _reconcile_command(journal)
                    click.echo(
                        escape_lines(f"{results['pending']} order(s) not final yet: {again}")
                    )
            elif counts[RowState.DONE]:
                click.echo(escape_lines(f"not reconciled yet: {_reconcile_command(journal)}"))
            return EXIT_OK

    _run(main())


def _run_lines(
    opened: Journal, run_info: JobRun, counts: dict[RowState, int], left: int, journal: Path
) -> list[str]:
    """What ``status`` says of the job's run: running (pid, host, since, progress, rate,
    ETA), or not running (interrupted: the resume command; finished)."""
    total = sum(counts.values())
    settled = counts[RowState.DONE] + counts[RowState.FAILED] + counts[RowState.INVALID]
    remaining = counts[RowState.PENDING] + counts[RowState.SENDING] + counts[RowState.UNKNOWN]
    who = "" if run_info.pid is None else f"pid {run_info.pid}"
    if who and run_info.host:
        who += f" on {run_info.host}"
    since = format_time(run_info.started_at, seconds=True)
    last = format_time(run_info.last_activity, seconds=True)
    lines: list[str] = []
    if run_info.running:
        rate = run_info.rate
        eta = "unknown"
        if remaining and rate > 0:
            eta = _duration(remaining / rate)
        elif not remaining:
            eta = "0s"
        else:
            saved = opened.settings.get("order_rate")
            if isinstance(saved, int | float) and not isinstance(saved, bool) and saved > 0:
                eta = f"{_duration(remaining / float(saved))} at its order rate of {saved}/s"
        head = f"running now ({who}" if who else "running now (pid not recorded"
        lines.append(f"{head}{f', since {since}' if since else ''}, last activity {last})")
        lines.append(
            f"progress: {settled} of {total} row(s) settled ({counts[RowState.DONE]} done), "
            f"{remaining} left; {rate:.2f} orders/s over the last "
            f"{run_info.window:.0f} s; ETA {eta}"
        )
        if run_info.local and run_info.pid is not None:
            lines.append(
                f"to stop it: Ctrl-C in its terminal, or kill {run_info.pid} (it finishes the "
                "requests in flight); then resume it. Do not resume it while it runs."
            )
        if counts[RowState.UNKNOWN]:
            lines.append(
                f"{counts[RowState.UNKNOWN]} row(s) have an unknown outcome: a resume after "
                "this run settles them with their externalRefIDs"
            )
        return lines
    if counts[RowState.UNKNOWN]:
        lines.append(
            f"{counts[RowState.UNKNOWN]} row(s) have an unknown outcome: resume settles them "
            "with their externalRefIDs"
        )
    if left:
        ran = f" (last run: {who}" if who else " (last run"
        ran += f", started {since}" if since else ""
        ran += f", last activity {last})" if last else ")"
        lines.append(f"not running: interrupted or stopped before every row was sent{ran}")
        lines.append(f"not finished: {_resume_command(journal)}")
    else:
        lines.append(f"finished: not running (last activity {last})")
    return lines


_LABELS = {
    "delivered": "delivered",
    "failed": "failed",
    "pending": "pending",
    "needs_action": "needs action",
}


def _reconcile_command(journal: Path) -> str:
    return f"tango-async reconcile {shlex.quote(str(journal))}"


def _default_reconcile_report(journal: Path) -> Path:
    return journal.with_name(journal.stem + ".reconciled.csv")


@cli.command("reconcile")
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--wait",
    is_flag=True,
    help="Look the orders not final yet up again (pausing --poll-interval seconds, "
    "doubling up to 60) until every one is final, or --timeout.",
)
@click.option(
    "--timeout",
    type=_SECONDS,
    help="With --wait: stop waiting this many seconds after the start [default: no limit].",
)
@click.option(
    "--poll-interval",
    type=_FiniteFloat(0.001, MAX_SECONDS),
    default=5.0,
    show_default=True,
    help="With --wait: the first pause between rounds of lookups, in seconds.",
)
@click.option(
    "--concurrency",
    type=_JOB_CONCURRENCY,
    default=2,
    show_default=True,
    help="Lookups in flight at once.",
)
@click.option(
    "--recheck",
    is_flag=True,
    help="Also look up orders already recorded as final (to see a later cancellation).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reconciliation results, .csv or .jsonl. Default: JOURNAL's stem + .reconciled.csv",
)
@_PROGRESS_INTERVAL
@_CSV_RAW
@click.pass_obj
def reconcile_command(
    settings: Settings,
    journal: Path,
    wait: bool,
    timeout: float | None,
    poll_interval: float,
    concurrency: int,
    recheck: bool,
    report: Path | None,
    progress_interval: float,
    csv_raw: bool,
) -> None:
    """Bring every row of the job of JOURNAL to its final state: look up the status of
    each order it placed, record it in the journal, and report what was delivered, what
    failed (refunded), what is still pending and what needs action. Orders already
    recorded as final are not looked up again. Nothing is ordered or sent.

    Exit status: 0 every row delivered; 1 some failed, pending or needing action; 2 bad
    usage, journal, report or credentials; 130 interrupted (every status recorded so far
    is kept: run it again).
    """
    if timeout is not None and not wait:
        raise click.BadParameter("applies only with --wait", param_hint="'--timeout'")
    out = report or _default_reconcile_report(journal)
    _output_path(out, "'--report'")

    async def main() -> int:
        opened = Journal.open(journal)
        try:
            remote = settings.sandbox is None and settings.base_url is None
            saved_url = _saved_text(opened.settings, "base_url") if remote else None
            inputs = {"job's input file": Path(opened.input_path)} if opened.input_path else {}
            _check_files(inputs=inputs, journal=journal, report=out, journal_hint="'JOURNAL'")
            if remote:
                settings.base_url = saved_url
            async with connect(settings) as client:
                reconciler = Reconciler(
                    opened,
                    client,
                    concurrency=concurrency,
                    poll=poll_interval,
                    max_poll=max(60.0, poll_interval),
                )
                return await drive_reconcile(
                    reconciler,
                    journal,
                    out,
                    progress_interval,
                    wait=wait,
                    timeout=timeout,
                    recheck=recheck,
                    csv_raw=csv_raw,
                )
        finally:
            opened.close()

    _run(main())


async def drive_reconcile(
    reconciler: Reconciler,
    journal: Path,
    report: Path,
    interval: float,
    *,
    wait: bool,
    timeout: float | None,  # noqa: ASYNC109 - passed on to Reconciler.run
    recheck: bool,
    csv_raw: bool = False,
) -> int:
    """Run ``reconciler`` with progress, Ctrl-C handling (the first stops it after the
    lookups in flight, the second at once), the results file and the summary; return the
    exit code."""
    _catch_interrupts(
        reconciler.stop, "\nstopping after the lookups in flight (Ctrl-C again to stop now)"
    )
    latest: list[ReconcileProgress] = []

    def line() -> str:
        if not latest:
            return "progress: nothing to look up"
        p = latest[-1]
        return (
            f"progress: round {p.round}, looked up {p.checked} of {p.total}, final "
            f"{p.final}, failed lookups {p.errors}; {p.pending} order(s) not final; "
            f"{p.rate:.2f} lookups/s"
        )

    fields = (
        "{task.completed}/{task.total}  final {task.fields[final]}  "
        "errors {task.fields[errors]}  round {task.fields[round]}  {task.fields[rate]:.2f}/s"
    )
    start = (0, 0, {"final": 0, "errors": 0, "round": 1, "rate": 0.0})
    aborted = False
    result: ReconcileReport | None = None
    try:
        with _progress_display("lookups", fields, interval, line, start) as show:

            def progress(p: ReconcileProgress) -> None:
                latest.append(p)
                del latest[:-1]
                show(p.total, p.checked, final=p.final, errors=p.errors, round=p.round, rate=p.rate)

            result = await reconciler.run(
                wait=wait, timeout=timeout, recheck=recheck, progress=progress
            )
    except asyncio.CancelledError:
        aborted = True
    finally:
        _release_interrupts()
        await reconciler.close()
    if result is None:  # cancelled: what the journal holds now
        result = build_report(reconciler.journal)
    code = EXIT_OK if result.all_delivered else EXIT_FAILED
    try:
        written: Path | None = write_reconcile_report(result, report, csv_raw=csv_raw)
    except ReportError as e:
        written = None
        echo_err(f"error: {e}; the journal {journal} keeps every status recorded")
        code = EXIT_USAGE
    click.echo(escape_lines(result.summary()))
    if written is not None:
        click.echo(escape_lines(f"report: {written}"))
    unsettled = [r for r in result.needs_action if r.state not in (RowState.DONE, RowState.INVALID)]
    if unsettled:
        click.echo(
            escape_lines(f"{len(unsettled)} row(s) have no order yet: {_resume_command(journal)}")
        )
    if result.pending and not (aborted or result.interrupted or result.stopped_by):
        again = _reconcile_command(journal)
        click.echo(escape_lines(f"not final yet: {again} again later (--wait to wait for them)"))
    if aborted or result.interrupted:
        click.echo(escape_lines(f"interrupted; continue with: {_reconcile_command(journal)}"))
    if result.stopped_by is not None:
        return EXIT_USAGE
    if aborted or result.interrupted:
        return EXIT_INTERRUPTED
    return code


async def drive(
    job: BulkJob, journal: Path, report: Path, interval: float, *, csv_raw: bool = False
) -> int:
    """Run ``job`` with progress on the terminal (or log lines), Ctrl-C handling, the
    report (spreadsheet-safe CSV unless ``csv_raw``) and the summary; return the exit
    code."""
    _catch_interrupts(
        job.stop, "\nstopping after the requests in flight (Ctrl-C again to abort now)"
    )
    aborted = False
    fatal: TangoError | None = None
    try:
        await _with_progress(job, interval)
    except asyncio.CancelledError:
        aborted = True
    except JournalError as e:  # the journal could not be written: the job stopped
        fatal = e
    finally:
        _release_interrupts()
    opened = job.journal
    assert opened is not None
    try:
        written: Path | None = write_report(opened, report, csv_raw=csv_raw)
    except (ReportError, JournalError) as e:
        written = None
        echo_err(
            f"error: {e}; the journal {journal} keeps every row's state "
            f"(tango-async status {shlex.quote(str(journal))})"
        )
        fatal = fatal or e
    try:
        counts = opened.counts()
        unfinished = counts[RowState.PENDING] + counts[RowState.SENDING] + counts[RowState.UNKNOWN]
        resume_cmd = _resume_command(journal) if unfinished or aborted else None
        stopped = str(job.stopped_by) if job.stopped_by is not None else None
        click.echo(
            escape_lines(
                summary(
                    opened,
                    job.progress(),
                    report_path=written,
                    resume_command=resume_cmd,
                    stopped_by=stopped,
                    journal_path=journal,
                )
            )
        )
    except JournalError as e:
        fatal = fatal or e
        counts, unfinished = {}, 1
    finally:
        opened.close()
    if fatal is not None:
        echo_err(f"error: {fatal}")
        return EXIT_USAGE
    if job.stopped_by is not None:
        return EXIT_USAGE
    if aborted or job.stopped or counts[RowState.PENDING] + counts[RowState.SENDING]:
        return EXIT_INTERRUPTED
    failed = counts[RowState.FAILED] + counts[RowState.INVALID] + counts[RowState.UNKNOWN]
    return EXIT_FAILED if failed else EXIT_OK


@contextlib.contextmanager
def _progress_display(
    label: str,
    fields: str,
    interval: float,
    line: Callable[[], str],
    start: tuple[int, int, dict[str, Any]],
) -> Iterator[Callable[..., None]]:
    """The progress of a job or of a reconciliation on stderr: a rich bar on a terminal
    (``label``, the bar, the percentage and ``fields``, a rich format of ``task.*``; at
    first ``start``: total, completed, fields), else ``line()`` every ``interval`` seconds
    and once at the end. Yields ``update(total, completed, **fields)``."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        columns = (
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn(fields),
        )
        with Progress(*columns, transient=False) as bar:
            total, completed, values = start
            task_id = bar.add_task(label, total=total, completed=completed, **values)

            def show(total: int, completed: int, **values: Any) -> None:
                bar.update(task_id, total=total, completed=completed, **values)

            yield show
        return
    last = time.monotonic()

    def write(total: int, completed: int, **values: Any) -> None:
        nonlocal last
        if time.monotonic() - last >= interval:
            last = time.monotonic()
            echo_err(line())

    yield write
    echo_err(line())


async def _with_progress(job: BulkJob, interval: float) -> None:
    fields = (
        "{task.completed}/{task.total}  failed {task.fields[failed]}  "
        "{task.fields[rate]:.2f}/s  ETA {task.fields[eta]}"
    )
    p = job.progress()
    start = (p.total, p.done + p.failed, {"failed": p.failed, "rate": 0.0, "eta": "-"})
    with _progress_display("orders", fields, interval, lambda: _progress_line(job), start) as show:
        async for _ in job:
            p = job.progress()
            show(p.total, p.done + p.failed, failed=p.failed, rate=p.rate, eta=_duration(p.eta))


def _progress_line(job: BulkJob) -> str:
    p = job.progress()
    return (
        f"progress: done {p.done}, failed {p.failed}, remaining {p.remaining} of {p.total}; "
        f"{p.rate:.2f} orders/s; ETA {_duration(p.eta)}"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _catch_interrupts(stop: Callable[[], object], message: str) -> None:
    """Ctrl-C (or SIGTERM) once: ``stop()`` (finish what is in flight) and say
    ``message``; twice: cancel the running task. Undone by :func:`_release_interrupts`."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            stop()
            echo_err(message)
        elif task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_interrupt)


def _release_interrupts() -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sig)
