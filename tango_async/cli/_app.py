"""The click application behind ``tango-async``.

Exit codes: 0 everything done; 1 some rows failed, were invalid or have an unknown outcome
(or the API refused a call); 2 bad usage, input, credentials, journal or report, or a
systemic refusal that stopped the job (401, 403, 402, frozen account); 130 interrupted
(the journal keeps the job: the resume command is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, get_args, get_type_hints

import click
import msgspec

from .. import TangoClient, TangoError
from .._constants import DEFAULT_RATE_MARGIN
from .._exceptions import APIError, ValidationError
from .._logs import escape_lines
from .._validation import (
    check_max_amount,
    format_amount_filter,
    format_query_datetime,
    plain_decimal,
)
from ..bulk._inputs import InputFileError, file_digest, read_orders
from ..bulk._job import BulkJob, Plan, check_run_label, check_same_orders, plan_rows
from ..bulk._journal import (
    CONTENT_REFS,
    Journal,
    JournalError,
    RowState,
    _build_path,
    _companions,
    _lock_path,
)
from ..bulk._report import ReportError, csv_cell, summary, write_report
from ..pagination import (
    MAX_CONCURRENCY,
    QUERY_FILTERS,
    WINDOW_FILTERS,
    OrderListQuery,
    build_list_query,
)
from ..types.orders import Order

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class Settings:
    platform_name: str | None
    platform_key: str | None
    base_url: str | None
    sandbox: str | None
    timeout: float = 30.0
    max_retries: int = 3


def echo_err(message: str) -> None:
    click.echo(escape_lines(message), err=True)  # server and file text: no raw control chars


# --- option types: every value is checked when the command line is parsed, so a bad one is
# a usage error naming the option (exit 2) before anything starts; the bounds are the
# library's own, so nothing the CLI accepts is refused (or overflows) later -----------------

MAX_SECONDS = 86_400.0  # a day: the longest timeout and progress interval
MIN_TIMEOUT = 0.001  # a shorter attempt can only time out
# the client's floor: at most a day between slots once its 5% margin is added
MIN_ORDER_RATE = (1 + DEFAULT_RATE_MARGIN) / 86_400
MAX_ORDER_RATE = 1000.0
MAX_RETRIES = 100  # RetryPolicy's bound
MAX_LIMIT = 10**9  # orders list --limit


class _FiniteFloat(click.FloatRange):
    """click's FloatRange, also refusing nan (every comparison with nan is false, so a
    bounded range lets it through) and infinities; ``label`` is the range in --help."""

    def __init__(
        self, lo: float, hi: float, *, lo_open: bool = False, label: str | None = None
    ) -> None:
        super().__init__(min=lo, max=hi, min_open=lo_open)
        self._label = label

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number

    def _describe_range(self) -> str:
        return self._label or super()._describe_range()


class _Checked(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """Text checked by the library's own rule for it (``check`` raises ValidationError)."""

    def __init__(self, name: str, check: Callable[[str], object]) -> None:
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            self._check(value)
        except ValidationError as e:
            self.fail(e.rule, param, ctx)
        except (ValueError, ArithmeticError):  # e.g. a date the library cannot shift to UTC
            self.fail(f"{value!r} is out of range", param, ctx)
        return value


def run(coro: Coroutine[Any, Any, int]) -> None:
    """Run a command's coroutine and turn its result or error into the exit code."""
    try:
        code = asyncio.run(coro)
    except (InputFileError, JournalError, ValidationError, ReportError) as e:
        echo_err(f"error: {e}")
        code = EXIT_USAGE
    except APIError as e:
        echo_err(f"error: {e}")
        code = EXIT_FAILED
    except TangoError as e:
        echo_err(f"error: {type(e).__name__}: {e}")
        code = EXIT_FAILED
    raise SystemExit(code)


@asynccontextmanager
async def connect(settings: Settings, **client_options: Any) -> AsyncIterator[TangoClient]:
    """A client for the configured API, or for an in-process local sandbox."""
    client_options = {
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
        **client_options,
    }
    if settings.sandbox == "local":
        from ..testing import Sandbox

        rate = client_options.get("order_rate")
        async with Sandbox(order_rate=rate or 1.0) as sandbox:
            echo_err(f"local sandbox: {sandbox.base_url}")
            async with sandbox.client(**client_options) as client:
                yield client
        return
    async with TangoClient(
        settings.platform_name, settings.platform_key, base_url=settings.base_url, **client_options
    ) as client:
        yield client


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--platform-name", envvar="TANGO_PLATFORM_NAME", help="[env: TANGO_PLATFORM_NAME]")
@click.option("--platform-key", envvar="TANGO_PLATFORM_KEY", help="[env: TANGO_PLATFORM_KEY]")
@click.option(
    "--base-url",
    envvar="TANGO_BASE_URL",
    help="API base URL with /raas/v2 [env: TANGO_BASE_URL; default: Tango's sandbox]",
)
@click.option(
    "--sandbox",
    type=click.Choice(["local"]),
    help="Run against an in-process local sandbox instead of an API.",
)
@click.option(
    "--timeout",
    type=_FiniteFloat(MIN_TIMEOUT, MAX_SECONDS),
    default=30.0,
    show_default=True,
    help="Seconds for one HTTP attempt.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(0, MAX_RETRIES),
    default=3,
    show_default=True,
    help="Retries of one call after a transient failure.",
)
@click.option("-v", "--verbose", count=True, help="Log retries (-v) or every request (-vv).")
@click.version_option(package_name="tango-async")
@click.pass_context
def cli(
    ctx: click.Context,
    platform_name: str | None,
    platform_key: str | None,
    base_url: str | None,
    sandbox: str | None,
    timeout: float,
    max_retries: int,
    verbose: int,
) -> None:
    """Send Tango rewards in bulk, and look up, list and resend orders."""
    if verbose:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("tango_async").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    ctx.obj = Settings(platform_name, platform_key, base_url, sandbox, timeout, max_retries)


class _DecimalType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A finite Decimal, checked by the library's rule for the field (``check``)."""

    name = "decimal"

    def __init__(self, check: Callable[[Decimal], object] | None = None) -> None:
        self._check = check

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Decimal:
        try:
            number = Decimal(str(value))
        except (ArithmeticError, ValueError):  # ValueError: an int past str()'s digit limit
            self.fail(f"{value!r} is not a number", param, ctx)
        if not number.is_finite():
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self._check is not None:
            try:
                self._check(number)
            except ValidationError as e:
                self.fail(e.rule, param, ctx)
        return number


_RUN_LABEL = _Checked("label", check_run_label)
_ORDER_RATE = _FiniteFloat(
    MIN_ORDER_RATE, MAX_ORDER_RATE, label=f"{MIN_ORDER_RATE:.6g}<=x<={MAX_ORDER_RATE:g}"
)
_SECONDS = _FiniteFloat(0.0, MAX_SECONDS)
_JOB_CONCURRENCY = click.IntRange(1, 64)
_CSV_RAW = click.option(
    "--csv-raw",
    is_flag=True,
    help="Write CSV values unchanged. By default a cell a spreadsheet would run as a "
    "formula (=, +, -, @, tab, CR first) gets a ' prefix.",
)


def _output_path(path: Path, option: str) -> None:
    """A file to write must be in an existing directory we may write to (checked before
    anything is sent, not after the job)."""
    parent = path.absolute().parent
    if not parent.is_dir():
        raise click.BadParameter(f"{str(parent)!r} is not a directory", param_hint=option)
    if path.exists() and not os.access(path, os.W_OK):
        raise click.BadParameter(f"{str(path)!r} is not writable", param_hint=option)
    if os.path.lexists(path) and not path.exists():
        raise click.BadParameter(
            f"{str(path)!r} is a symbolic link to nothing (or a loop)", param_hint=option
        )
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(
            f"{str(parent)!r} is not writable: {path.name!r} cannot be created there",
            param_hint=option,
        )


def _text(name: str) -> str:
    """A file name as text a journal can store: itself, or (a name that is not UTF-8)
    its bytes decoded with backslash escapes (shown in ``status``; no longer a path)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def _resolved(path: Path) -> Path:
    """``path`` with its symbolic links resolved, or as it is (a symlink loop included)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return _resolved(a) == _resolved(b) or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


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


def _nothing_to_send(opened: Journal, file: Path) -> str:
    counts = opened.counts()
    total = sum(counts.values())
    label = f"run label {opened.run_label}" if opened.run_label else "no run label"
    parts = ", ".join(f"{n} {state.value.lower()}" for state, n in counts.items() if n)
    return (
        f"nothing to send: every row of {file} was settled by the job started "
        f"{opened.created_at:%Y-%m-%d %H:%M:%S %Z} (journal {opened.path}, job "
        f"{opened.job_id}, {label}): {total} row(s), {parts}. Submitting the same orders "
        "again never orders them twice. To send these rewards again as NEW orders: "
        f"tango-async submit {shlex.quote(str(file))} --run-label LABEL"
    )


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
@click.option("--dry-run", is_flag=True, help="Check every row and show what would be sent.")
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
    "--input-format", type=click.Choice(["csv", "jsonl"]), help="Default: from the file's suffix."
)
@click.option(
    "--progress-interval",
    type=_SECONDS,
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when not on a terminal.",
)
@_CSV_RAW
@click.pass_obj
def submit(
    settings: Settings,
    file: Path,
    journal: Path | None,
    run_label: str | None,
    dry_run: bool,
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
    """
    input_path = _text(str(file.absolute()))
    path = journal or _default_journal(file, run_label)
    out = report or _default_report(file)
    _check_files(inputs={"input file": file}, journal=path, report=out)

    async def main() -> int:
        label = check_run_label(run_label)
        limit: dict[str, Any] = {"max_amount": max_amount} if max_amount is not None else {}
        rows = read_orders(file, format=input_format, **limit)  # type: ignore[arg-type]
        plan = plan_rows(rows, run_label=label, **limit)
        if plan.errors and not skip_invalid:
            for error in plan.errors:
                echo_err(str(error))
            echo_err(
                f"{len({x.row for x in plan.errors})} invalid row(s) in {file}; nothing "
                "sent. Fix them, or pass --skip-invalid to send the others."
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
            return _dry_run(plan, file, opened)
        if opened is not None:
            if not _left_to_send(opened):
                click.echo(_nothing_to_send(opened, file))
                counts = opened.counts()
                opened.close()
                return EXIT_FAILED if counts[RowState.FAILED] + counts[RowState.INVALID] else 0
            echo_err(f"journal {path} holds these orders: resuming its job")
            async with connect(settings, order_rate=order_rate, **limit) as client:
                job = BulkJob.resume(client, opened, concurrency=concurrency)
                return await drive(job, path, out, progress_interval, csv_raw=csv_raw)
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
            )
            echo_err(f"journal: {path}")
            if skip_invalid and job.progress().failed:
                echo_err(f"skipping {job.progress().failed} invalid row(s)")
            return await drive(job, path, out, progress_interval, csv_raw=csv_raw)

    run(main())


def _dry_run(plan: Plan, file: Path, opened: Journal | None) -> int:
    refs = [ref for _, ref, _ in plan.rows]
    label = f"run label {plan.run_label}" if plan.run_label else "no run label"
    click.echo(f"dry run: {len(refs)} order(s) from {file} ({label}); nothing sent")
    if plan.errors:
        click.echo(f"{len({e.row for e in plan.errors})} invalid row(s) would be skipped")
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
    for number, ref, _ in plan.rows[:10]:
        click.echo(f"  row {number}: externalRefID {ref}")
    if len(refs) > 10:
        click.echo(f"  ... and {len(refs) - 10} more")
    return EXIT_FAILED if plan.errors else EXIT_OK


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
@click.option("--concurrency", type=_JOB_CONCURRENCY, help="Requests in flight at once.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also re-send rows that failed for good (a 4xx), same externalRefID.",
)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Results file.")
@click.option("--progress-interval", type=_SECONDS, default=10.0, show_default=True)
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
    externalRefID, which settles them), then the rest; done rows are skipped."""

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
        except BaseException:
            opened.close()
            raise
        if remote:
            settings.base_url = saved_url
        async with connect(settings, order_rate=rate, **limit) as client:
            job = BulkJob.resume(client, opened, retry_failed=retry_failed, concurrency=jobs)
            return await drive(job, journal, out, progress_interval, csv_raw=raw)

    run(main())


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
    """Where the job of JOURNAL stands (safe while it runs)."""

    async def main() -> int:
        with Journal.open(journal) as opened:
            counts = opened.counts()
            total = sum(counts.values())
            click.echo(f"job {opened.job_id}  input {opened.input_path}")
            if opened.run_label:
                click.echo(f"run label {opened.run_label}")
            click.echo(f"started {opened.created_at:%Y-%m-%d %H:%M:%S %Z}, {total} row(s)")
            for state in RowState:
                click.echo(f"  {state.value.lower():<8} {counts[state]}")
            if counts[RowState.UNKNOWN]:
                click.echo(
                    f"{counts[RowState.UNKNOWN]} row(s) have an unknown outcome: resume "
                    "settles them with their externalRefIDs"
                )
            if _left_to_send(opened):
                click.echo(f"not finished: {_resume_command(journal)}")
            return EXIT_OK

    run(main())


async def drive(
    job: BulkJob, journal: Path, report: Path, interval: float, *, csv_raw: bool = False
) -> int:
    """Run ``job`` with progress on the terminal (or log lines), Ctrl-C handling, the
    report (spreadsheet-safe CSV unless ``csv_raw``) and the summary; return the exit
    code."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            job.stop()
            echo_err("\nstopping after the requests in flight (Ctrl-C again to abort now)")
        elif task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_interrupt)
    aborted = False
    fatal: TangoError | None = None
    try:
        await _with_progress(job, interval)
    except asyncio.CancelledError:
        aborted = True
    except JournalError as e:  # the journal could not be written: the job stopped
        fatal = e
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
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


async def _with_progress(job: BulkJob, interval: float) -> None:
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        columns = (
            TextColumn("[bold]orders"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn(
                "{task.completed}/{task.total}  failed {task.fields[failed]}  "
                "{task.fields[rate]:.2f}/s  ETA {task.fields[eta]}"
            ),
        )
        with Progress(*columns, transient=False) as bar:
            p = job.progress()
            task_id = bar.add_task(
                "orders",
                total=p.total,
                completed=p.done + p.failed,
                failed=p.failed,
                rate=0.0,
                eta="-",
            )
            async for _ in job:
                p = job.progress()
                bar.update(
                    task_id,
                    completed=p.done + p.failed,
                    failed=p.failed,
                    rate=p.rate,
                    eta=_duration(p.eta),
                )
        return
    last = time.monotonic()
    async for _ in job:
        if time.monotonic() - last >= interval:
            last = time.monotonic()
            echo_err(_progress_line(job))
    echo_err(_progress_line(job))


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


# --- orders and line items --------------------------------------------------------------------


# The filters of orders.list(), read off its typed query object (OrderListQuery, in its
# order) so the CLI never lags behind it, then its concurrency; paging is the command's
# own business. An option's type follows its filter's: a bool, an amount (a Decimal), a
# date (the walk's window), else text checked as build_list_query() checks it.
_QUERY_HINTS = get_type_hints(OrderListQuery)
LIST_FILTERS = (*_QUERY_HINTS, "concurrency")


def _filter_type(name: str) -> Any:
    """The option type of filter ``name``, checked as orders.list() would check it."""
    if name == "concurrency":
        return click.IntRange(1, MAX_CONCURRENCY)
    kinds = set(get_args(_QUERY_HINTS[name])) - {type(None)}
    if kinds == {bool}:
        return bool
    if Decimal in kinds:
        return _DecimalType(lambda d: format_amount_filter(d, name))
    if name in WINDOW_FILTERS:
        end = name == "end_date"
        return _Checked("date", lambda v: format_query_datetime(v, name, end=end))
    return _Checked("text", lambda v: build_list_query(**{name: v}))


def _plain(d: Decimal | None) -> str | None:
    return None if d is None else plain_decimal(d)


def _plain_json_decimal(d: Decimal) -> Any:
    """A Decimal as a plain JSON number (1000, never 1E+3); a non-finite one as a string."""
    return msgspec.Raw(plain_decimal(d).encode()) if d.is_finite() else str(d)


# orders list --format jsonl: Decimals decoded from JSON like 1E3 would print as 1E+3.
_JSONL_ENCODER = msgspec.json.Encoder(decimal_format=_plain_json_decimal)
CSV_COLUMNS: tuple[tuple[str, Callable[[Order], Any]], ...] = (
    ("referenceOrderID", lambda o: o.reference_order_id),
    ("externalRefID", lambda o: o.external_ref_id),
    ("createdAt", lambda o: o.created_at.isoformat() if o.created_at else None),
    ("status", lambda o: o.status),
    ("customerIdentifier", lambda o: o.customer_identifier),
    ("accountIdentifier", lambda o: o.account_identifier),
    ("utid", lambda o: o.utid),
    ("rewardName", lambda o: o.reward_name),
    ("amount", lambda o: _plain(o.denomination.value) if o.denomination else None),
    ("currencyCode", lambda o: o.denomination.currency_code if o.denomination else None),
    ("deliveryMethod", lambda o: o.delivery_method),
    ("recipientEmail", lambda o: o.recipient.email if o.recipient else None),
)
NUMBER_COLUMNS = frozenset({"amount"})  # numbers the CLI formats: a plain -5 stays a number


@cli.group()
def orders() -> None:
    """Orders: list, get, resend."""


def _filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name in reversed(LIST_FILTERS):
        option = click.option(
            f"--{name.replace('_', '-')}", name, default=None, type=_filter_type(name)
        )
        f = option(f)
    return f


@orders.command("list")
@_filter_options
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: standard output.",
)
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), help="Stop after this many orders.")
@_CSV_RAW
@click.pass_obj
def list_orders(
    settings: Settings,
    /,
    fmt: str,
    output: Path | None,
    limit: int | None,
    csv_raw: bool,
    **filters: Any,
) -> None:
    """Stream order history (every filter of GET /orders; dates as RFC 3339).

    CSV is safe to open in a spreadsheet (a cell that would run as a formula gets a '
    prefix) unless --csv-raw; JSONL stays raw."""
    given = {k: v for k, v in filters.items() if v is not None}
    try:  # the filters together (min_amount above max_amount...), before connecting
        build_list_query(**{k: v for k, v in given.items() if k in QUERY_FILTERS})
    except ValidationError as e:
        option = f"--{e.field.replace('_', '-')}"
        raise click.UsageError(f"{option}: {e.rule}") from None
    if output is not None:
        _output_path(output, "'--output'")

    async def main() -> int:
        out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            writer = csv.writer(out) if fmt == "csv" else None
            if writer is not None:
                writer.writerow([c for c, _ in CSV_COLUMNS])
            count = 0
            async with connect(settings) as client:
                async for order in client.orders.list(**given):
                    if writer is not None:
                        writer.writerow(
                            [
                                csv_cell(get(order), raw=csv_raw, number=c in NUMBER_COLUMNS)
                                for c, get in CSV_COLUMNS
                            ]
                        )
                    else:
                        out.write(_JSONL_ENCODER.encode(order).decode() + "\n")
                    count += 1
                    if limit is not None and count >= limit:
                        break
        finally:
            if output:
                out.close()
        echo_err(f"{count} order(s)")
        return EXIT_OK

    run(main())


def _print_json(obj: Any) -> None:
    click.echo(json.dumps(json.loads(msgspec.json.encode(obj)), indent=2))


@orders.command("get")
@click.argument("reference_order_id")
@click.pass_obj
def get_order(settings: Settings, reference_order_id: str) -> None:
    """Print one order as JSON (with its reward credentials)."""

    async def main() -> int:
        async with connect(settings) as client:
            _print_json(await client.orders.get(reference_order_id))
        return EXIT_OK

    run(main())


@orders.command("resend")
@click.argument("reference_order_id")
@click.option("--new-email")
@click.option("--new-etid")
@click.option("--new-mobile")
@click.option("--new-delivery-method")
@click.option("--wait", is_flag=True, help="Wait out the 30-second cooldown instead of failing.")
@click.pass_obj
def resend_order(settings: Settings, /, reference_order_id: str, wait: bool, **kw: Any) -> None:
    """Resend an order's reward."""

    async def main() -> int:
        async with connect(settings) as client:
            _print_json(await client.orders.resend(reference_order_id, wait=wait, **kw))
        return EXIT_OK

    run(main())


@cli.group("line-items")
def line_items() -> None:
    """Line items: resend."""


@line_items.command("resend")
@click.argument("reference_line_item_id")
@click.option("--new-delivery-method")
@click.option("--new-email")
@click.option("--new-mobile-number")
@click.option("--new-etid")
@click.option(
    "--reason-code",
    type=click.Choice(
        ["NOT_RECEIVED", "LOST_DELETED", "DELIVERY_INFO", "DELIVERY_METHOD", "REMINDER", "OTHER"]
    ),
)
@click.option("--other-reason")
@click.option("--wait", is_flag=True, help="Wait out the cooldown instead of failing.")
@click.pass_obj
def resend_line_item(
    settings: Settings, /, reference_line_item_id: str, wait: bool, **kw: Any
) -> None:
    """Resend a line item's reward."""

    async def main() -> int:
        async with connect(settings) as client:
            _print_json(await client.line_items.resend(reference_line_item_id, wait=wait, **kw))
        return EXIT_OK

    run(main())


# --- the local sandbox ------------------------------------------------------------------------


@cli.command("sandbox", context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sandbox_command(args: tuple[str, ...]) -> None:
    """Serve the local sandbox: the options of `python -m tango_async.testing` (--help)."""
    from ..testing.__main__ import main as sandbox_main

    raise SystemExit(sandbox_main(["--prog", "tango-async sandbox", *args]))
