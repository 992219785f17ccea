"""The order and line-item commands: ``orders list|get|resend|wait``, ``line-items
get|list|update|cancel|freeze|unfreeze|reissue|resend|wait|reason-codes``, and ``sandbox``
(the local sandbox); with the helpers the webhook commands share (JSON output escaped for
terminals, confirmations, Ctrl-C around a long wait).

Reward credentials (codes, PINs, redemption links) are printed by the ``get`` commands
only (``orders get``, ``line-items get``: asking for one item is asking for its reward);
every other command that prints an order or a line item leaves its ``reward`` out and
says which ``get`` shows it."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import shlex
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any, TypeVar, get_args, get_type_hints

import click
import msgspec

from .._exceptions import ValidationError, WaitTimeoutError
from .._logs import escape, escape_lines
from .._validation import (
    REISSUE_METHODS,
    check_amount,
    check_path_id,
    format_amount_filter,
    format_query_datetime,
    line_item_action_request,
    line_item_update_request,
    plain_decimal,
    reissue_request,
)
from ..bulk._format import plain_json_decimal
from ..bulk._report import csv_cell
from ..pagination import (
    MAX_CONCURRENCY,
    QUERY_FILTERS,
    WINDOW_FILTERS,
    OrderListQuery,
    build_list_query,
    filter_wire_name,
)
from ..resources.line_items import (
    _ENUMS,
    _WIRE_NAMES,
    SORT_COLUMNS,
    LineItemListQuery,
    line_item_query,
)
from ..types.enums import (
    CancelReasonCode,
    FreezeReasonCode,
    ReissueReasonCode,
)
from ..types.line_items import LineItem, ReissueRecipient
from ..types.orders import Order
from ._common import (
    _CSV_RAW,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    MAX_LIMIT,
    MAX_SECONDS,
    KnownValue,
    Settings,
    _Checked,
    _DecimalType,
    _FiniteFloat,
    _output_path,
    cli,
    connect,
    echo_err,
    run,
)
from ._format import format_amount, format_time

T = TypeVar("T")

# --- orders and line items --------------------------------------------------------------------


# The filters of orders.list(), read off its typed query object (OrderListQuery, in its
# order) so the CLI never lags behind it, then its concurrency; paging is the command's
# own business. An option's type follows its filter's: a bool, an amount (a Decimal), a
# date (the walk's window), else text checked as build_list_query() checks it.
_QUERY_HINTS = get_type_hints(OrderListQuery)
LIST_FILTERS = (*_QUERY_HINTS, "concurrency")


def _enum_of(hint: Any) -> type[Enum] | None:
    """The enum among a filter's types (``OrderStatus | str | None``: OrderStatus)."""
    for kind in get_args(hint):
        if isinstance(kind, type) and issubclass(kind, Enum):
            return kind
    return None


def _filter_type(name: str) -> Any:
    """The option type of filter ``name``, checked as orders.list() would check it; a
    filter with known values (an enum) warns about another value and sends it."""
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
    enum = _enum_of(_QUERY_HINTS[name])
    if enum is not None:
        return KnownValue(_values(enum), lambda v: build_list_query(**{name: v}))
    return _Checked("text", lambda v: build_list_query(**{name: v}))


_DATE_HELP = (
    "Only {noun} {what} at or {side} this instant: RFC 3339 (2026-01-31T12:00:00Z), or a "
    "date (UTC), {day}."
)


def _filter_help(name: str, noun: str, wire: str, hint: Any) -> str:
    """The --help line of list filter ``name`` (query parameter ``wire``) of ``noun``."""
    kinds = set(get_args(hint)) - {type(None)}
    if name in ("start_date", "end_date"):
        what = "issued" if noun == "line items" else "created"
        if name == "start_date":
            return _DATE_HELP.format(noun=noun, what=what, side="after", day="from its start")
        return _DATE_HELP.format(noun=noun, what=what, side="before", day="to its end")
    if kinds == {bool}:
        return f"Only {noun} with {wire} true or false."
    if Decimal in kinds:
        side = "at least" if name.startswith("min_") else "at most"
        return f"Only {noun} with {wire} {side} this (a plain decimal)."
    enum = _enum_of(hint)
    if enum is not None:
        return (
            f"Only {noun} with this {wire} (any case). Another value is sent as given, "
            "with a warning: the API may know newer ones."
        )
    return f"Only {noun} whose {wire} is this."


def _values_help(name: str) -> str:
    if name == "concurrency":
        return (
            f"Pages fetched at a time, 1 to {MAX_CONCURRENCY} (default 1: one after another; "
            "4 speeds an export up)."
        )
    return _filter_help(name, "orders", filter_wire_name(name), _QUERY_HINTS[name])


# orders list --format jsonl: Decimals decoded from JSON like 1E3 would print as 1E+3.
_JSONL_ENCODER = msgspec.json.Encoder(decimal_format=plain_json_decimal)
CSV_COLUMNS: tuple[tuple[str, Callable[[Order], Any]], ...] = (
    ("referenceOrderID", lambda o: o.reference_order_id),
    ("externalRefID", lambda o: o.external_ref_id),
    ("createdAt", lambda o: format_time(o.created_at)),
    ("status", lambda o: o.status),
    ("customerIdentifier", lambda o: o.customer_identifier),
    ("accountIdentifier", lambda o: o.account_identifier),
    ("utid", lambda o: o.utid),
    ("rewardName", lambda o: o.reward_name),
    ("amount", lambda o: format_amount(o.denomination.value) if o.denomination else None),
    ("currencyCode", lambda o: o.denomination.currency_code if o.denomination else None),
    ("deliveryMethod", lambda o: o.delivery_method),
    ("recipientEmail", lambda o: o.recipient.email if o.recipient else None),
)
NUMBER_COLUMNS = frozenset({"amount"})  # numbers the CLI formats: a plain -5 stays a number
# orders list --format table: one line an order on a terminal
ORDER_TABLE_COLUMNS = (
    "referenceOrderID",
    "createdAt",
    "status",
    "utid",
    "rewardName",
    "amount",
    "currencyCode",
    "deliveryMethod",
    "recipientEmail",
)


# --- what the commands share ------------------------------------------------------------------


def _escaped_char(c: str) -> str:
    code = ord(c)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # a JSON string spells a character past the BMP as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(obj: Any, *, indent: bool = False) -> str:
    """``obj`` as JSON for a terminal or a file: amounts as exact plain numbers (10.00,
    never 10.0 or 1E+1), and every character a terminal would act on (a control or format
    character, a line separator: ``str.isprintable()`` False) written as a ``\\u`` escape,
    so server text can neither move the cursor nor forge a line. Still JSON, and the same
    value once decoded. ``indent``: two spaces a level, else one line."""
    raw = _JSONL_ENCODER.encode(obj)
    if indent:
        raw = msgspec.json.format(raw, indent=2)
    text = raw.decode()
    if text.isprintable():
        return text
    # Outside its strings JSON holds only ASCII (and the line breaks of the indentation):
    # whatever is not printable and not such a break is inside a string, where an escape
    # stands for the same character.
    return "".join(c if c.isprintable() or c == "\n" else _escaped_char(c) for c in text)


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on standard output (see :func:`json_text`)."""
    click.echo(json_text(obj, indent=True))


def print_done(message: str) -> None:
    """A line saying what a command did (its text escaped for the terminal)."""
    click.echo(escape_lines(message))


def option_name(field: str, options: dict[str, str]) -> str:
    """The option a library field comes from (``headers.X`` is ``headers``'s option)."""
    head = field.split(".", 1)[0].split("[", 1)[0]
    return options.get(field) or options.get(head) or f"--{head.replace('_', '-')}"


def usage_error(e: ValidationError, options: dict[str, str]) -> click.UsageError:
    """A library ValidationError about an option's value, as click's usage error (exit 2)
    naming the option."""
    return click.UsageError(escape_lines(f"{option_name(e.field, options)}: {e.rule}"))


def confirm(question: str, *, yes: bool) -> bool:
    """True with ``--yes``, else the answer to ``question`` (asked on stderr, default no;
    no answer, as from a closed or empty standard input, is no)."""
    if yes:
        return True
    try:
        return click.confirm(escape_lines(question), default=False, err=True)
    except click.Abort:  # end of input, or Ctrl-C at the prompt
        click.echo(err=True)
        return False


YES_OPTION = click.option("--yes", "-y", is_flag=True, help="Do it without asking (for scripts).")


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM stopped a command's wait."""


async def until_interrupted(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro``; Ctrl-C or SIGTERM cancels it and raises Interrupted (the caller exits
    130). Where the loop cannot take signals (another thread, Windows), Ctrl-C stays
    Python's KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        task.cancel()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
    try:
        return await task
    except asyncio.CancelledError:
        if stopped:
            raise Interrupted from None
        raise
    finally:
        for sig in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def checked_id(field: str, check: Callable[[object, str], object] = check_path_id) -> _Checked:
    """An ID argument, checked as the library checks it for its path when the command line
    is parsed (a bad one is a usage error before anything starts)."""
    return _Checked("id", lambda v: check(v, field))


def _values(kind: type[Enum]) -> list[str]:
    return [str(m.value) for m in kind.__members__.values()]


MAX_WAIT = 366 * 86_400.0  # orders.wait --timeout: a PENDING order may last past a weekend
_WAIT_TIMEOUT = _FiniteFloat(0.0, MAX_WAIT)
_POLL = _FiniteFloat(0.0, MAX_SECONDS, lo_open=True)
DEFAULT_MAX_POLL = 60.0


def _wait_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        (
            click.option(
                "--timeout",
                type=_WAIT_TIMEOUT,
                help="Give up after this many seconds (exit 1, the last status on stderr). "
                "Default: no limit (Ctrl-C stops, exit 130).",
            ),
            click.option(
                "--poll",
                type=_POLL,
                default=2.0,
                show_default=True,
                help="Seconds before the second look; each pause is then 1.5 times longer.",
            ),
            click.option(
                "--max-poll",
                type=_POLL,
                help=f"Longest pause between two looks [default: {DEFAULT_MAX_POLL:g}, or "
                "--poll if longer].",
            ),
        )
    ):
        f = option(f)
    return f


def _max_poll(poll: float, max_poll: float | None) -> float:
    if max_poll is None:
        return max(poll, DEFAULT_MAX_POLL)
    if max_poll < poll:
        raise click.UsageError(f"--max-poll ({max_poll:g}) must not be below --poll ({poll:g})")
    return max_poll


def without_reward(obj: T) -> T:
    """An order or line item without its reward credentials (and, for a line item, those
    of the line items in its redemption history)."""
    changes: dict[str, Any] = {}
    if getattr(obj, "reward", None) is not None:
        changes["reward"] = None
    if getattr(obj, "redemption_instructions", None) is not None:
        changes["redemption_instructions"] = None
    history = getattr(obj, "redemption_history", None)
    if history:
        changes["redemption_history"] = [without_reward(h) for h in history]
    if not changes:
        return obj
    return msgspec.structs.replace(obj, **changes)  # type: ignore[type-var]


@cli.group()
def orders() -> None:
    """Orders: list, get, resend, wait."""


def _filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name in reversed(LIST_FILTERS):
        option = click.option(
            f"--{name.replace('_', '-')}",
            name,
            default=None,
            type=_filter_type(name),
            help=_values_help(name),
        )
        f = option(f)
    return f


@orders.command("list")
@_filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "table"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (every field but the reward), CSV or a table (one line an order).",
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
    """Stream order history (every filter of GET /orders; dates as RFC 3339): the whole
    history unless dates narrow it (past the API's 10,000-result window it is split by
    date, each order once).

    Amounts are plain decimals and timestamps RFC 3339 in UTC ending in Z, in every
    format; lists carry no reward credentials (`orders get` shows them). CSV is safe to
    open in a spreadsheet (a cell that would run as a formula gets a ' prefix) unless
    --csv-raw; JSONL and the table escape what a terminal would act on."""
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
        terminal = out.isatty()
        rows: list[list[Any]] = []
        picks = [[c for c, _ in CSV_COLUMNS].index(name) for name in ORDER_TABLE_COLUMNS]
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
                                terminal_cell(
                                    csv_cell(get(order), raw=csv_raw, number=c in NUMBER_COLUMNS),
                                    terminal,
                                )
                                for c, get in CSV_COLUMNS
                            ]
                        )
                    elif fmt == "table":
                        values = [get(order) for _, get in CSV_COLUMNS]
                        rows.append([values[i] for i in picks])
                    else:
                        out.write(json_text(without_reward(order)) + "\n")
                    count += 1
                    if limit is not None and count >= limit:
                        break
            if fmt == "table":
                print_table(out, ORDER_TABLE_COLUMNS, rows, numbers=NUMBER_COLUMNS)
        finally:
            if output:
                out.close()
        echo_err(f"{count} order(s)")
        return EXIT_OK

    run(main())


@orders.command("get")
@click.argument("reference_order_id")
@click.pass_obj
def get_order(settings: Settings, reference_order_id: str) -> None:
    """Print one order as JSON (with its reward credentials)."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(await client.orders.get(reference_order_id))
        return EXIT_OK

    run(main())


@orders.command("resend")
@click.argument("reference_order_id")
@click.option("--new-email", help="Resend to this email address instead.")
@click.option("--new-etid", help="Use this email template (ETID) for the resend.")
@click.option("--new-mobile", help="Resend to this mobile number instead (E.164).")
@click.option("--new-delivery-method", help="Resend by this delivery method instead.")
@click.option("--wait", is_flag=True, help="Wait out the 30-second cooldown instead of failing.")
@click.pass_obj
def resend_order(settings: Settings, /, reference_order_id: str, wait: bool, **kw: Any) -> None:
    """Resend an order's reward."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(await client.orders.resend(reference_order_id, wait=wait, **kw))
        return EXIT_OK

    run(main())


def _wait_timed_out(e: WaitTimeoutError, again: str) -> int:
    echo_err(f"timed out: {e}; wait again with: {again}")
    return EXIT_FAILED


@orders.command("wait")
@click.argument("reference_order_id", type=checked_id("reference_order_id"))
@_wait_options
@click.pass_obj
def wait_order(
    settings: Settings,
    /,
    reference_order_id: str,
    timeout: float | None,
    poll: float,
    max_poll: float | None,
) -> None:
    """Wait until an order is final and print it as JSON (without its reward: `orders
    get` shows that).

    Final: COMPLETE, FAILED (the account was refunded), CANCELLED, PARTIAL, DELETED.
    Exit 0 when it ends COMPLETE; 1 when it ends otherwise, or --timeout passes first
    (nothing on stdout then; the last status on stderr); 130 on Ctrl-C."""
    _wait_command(settings, "orders", "order", reference_order_id, timeout, poll, max_poll)


def _wait_command(
    settings: Settings,
    group: str,
    noun: str,
    ref: str,
    timeout: float | None,
    poll: float,
    max_poll: float | None,
) -> None:
    """``orders wait`` / ``line-items wait``: wait (``client.orders`` or
    ``client.line_items``), print the result without its reward, exit 0 when COMPLETE."""
    longest = _max_poll(poll, max_poll)
    again = f"tango-async {group} wait {shlex.quote(ref)}"

    async def main() -> int:
        async with connect(settings) as client:
            resource = client.orders if group == "orders" else client.line_items
            try:
                found: Order | LineItem = await until_interrupted(
                    resource.wait(ref, timeout=timeout, poll=poll, max_poll=longest)
                )
            except WaitTimeoutError as e:
                return _wait_timed_out(e, again)
            except Interrupted:
                echo_err(f"interrupted; wait again with: {again}")
                return EXIT_INTERRUPTED
        print_json(without_reward(found))
        if found.reward is not None:
            echo_err(f"its reward: tango-async {group} get {shlex.quote(ref)}")
        if found.status == "COMPLETE":
            return EXIT_OK
        echo_err(f"{noun} {ref} ended {found.status}")
        return EXIT_FAILED

    run(main())


@cli.group("line-items")
def line_items() -> None:
    """Line items: get, list, update, cancel, freeze, unfreeze, reissue, resend, wait,
    reason-codes."""


_LINE_ITEM_ID = checked_id("reference_line_item_id")


@line_items.command("get")
@click.argument("reference_line_item_id", type=_LINE_ITEM_ID)
@click.pass_obj
def get_line_item(settings: Settings, reference_line_item_id: str) -> None:
    """Print one line item as JSON, with its status, delivery, histories and reward
    credentials (as `orders get` prints an order's)."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(await client.line_items.get(reference_line_item_id))
        return EXIT_OK

    run(main())


# The filters of line_items.list(), read off its typed query (LineItemListQuery, in its
# order) so the CLI never lags behind it. An option's type follows its filter's: a bool,
# an amount, a date, one of the values the spec enumerates, else text checked as
# line_items.list() checks it.
_LI_HINTS = get_type_hints(LineItemListQuery)
LINE_ITEM_FILTERS = tuple(_LI_HINTS)


def _line_item_filter_type(name: str) -> Any:
    kinds = set(get_args(_LI_HINTS[name])) - {type(None)}
    if kinds == {bool}:
        return bool
    if Decimal in kinds:
        return _DecimalType(lambda d: format_amount_filter(d, name))
    if name in ("start_date", "end_date"):
        end = name == "end_date"
        return _Checked("date", lambda v: format_query_datetime(v, name, end=end))
    if name in _ENUMS:  # line_items.list() refuses other values (ValidationError)
        return click.Choice(sorted(_ENUMS[name]), case_sensitive=False)
    if name == "sort_by":
        return click.Choice(sorted(SORT_COLUMNS))
    return _Checked("text", lambda v: line_item_query({name: v}))  # type: ignore[misc]


def _line_item_wire(name: str) -> str:
    head, *rest = name.split("_")
    return _WIRE_NAMES.get(name, head + "".join(p[:1].upper() + p[1:] for p in rest))


def _line_item_help(name: str) -> str:
    if name == "sort_by":
        return "Sort by this column (default: dateIssued, newest first)."
    if name == "ascending":
        return "Sort ascending (true) or descending (false)."
    if name in _ENUMS:
        return f"Only line items with this {_line_item_wire(name)} (any case)."
    return _filter_help(name, "line items", _line_item_wire(name), _LI_HINTS[name])


def _line_item_filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name in reversed(LINE_ITEM_FILTERS):
        option = click.option(
            f"--{name.replace('_', '-')}",
            name,
            default=None,
            type=_line_item_filter_type(name),
            help=_line_item_help(name),
        )
        f = option(f)
    return f


def _money(m: Any) -> Decimal | None:
    return m.value if m is not None else None


LINE_ITEM_COLUMNS: tuple[tuple[str, Callable[[LineItem], Any]], ...] = (
    ("referenceLineItemID", lambda i: i.reference_line_item_id),
    ("referenceOrderID", lambda i: i.reference_order_id),
    ("dateIssued", lambda i: format_time(i.date_issued)),
    ("status", lambda i: i.status),
    ("deliveryMethod", lambda i: i.delivery_method),
    ("deliveryStatus", lambda i: i.delivery_status),
    ("emailStatus", lambda i: i.email_status),
    ("rewardStatus", lambda i: i.reward_status),
    ("rewardName", lambda i: i.reward_name),
    ("utid", lambda i: i.utid),
    ("amount", lambda i: _money(i.amount_issued)),
    ("currencyCode", lambda i: i.amount_issued.currency_code if i.amount_issued else None),
    ("remainingBalance", lambda i: i.remaining_balance),
    ("recipientEmail", lambda i: i.recipient.email if i.recipient else None),
    ("accountIdentifier", lambda i: i.account_identifier),
    ("campaign", lambda i: i.campaign),
)
LINE_ITEM_NUMBERS = frozenset({"amount", "remainingBalance"})
# the table shows fewer columns than the CSV: one line a line item on a terminal
TABLE_COLUMNS = (
    "referenceLineItemID",
    "referenceOrderID",
    "dateIssued",
    "status",
    "deliveryStatus",
    "emailStatus",
    "rewardName",
    "amount",
    "currencyCode",
    "recipientEmail",
)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return plain_decimal(value)  # a non-finite one as str() gives it
    if isinstance(value, datetime):
        return format_time(value) or ""
    return escape(str(value))


def terminal_cell(text: str, terminal: bool) -> str:
    """A CSV cell as it goes out: unchanged into a file or a pipe (it is data), escaped
    (:func:`tango_async._logs.escape`) when the CSV goes to a terminal, where a control
    character in it would act on the screen."""
    return escape(text) if terminal else text


def print_table(
    out: IO[str], columns: Sequence[str], rows: Iterable[Sequence[Any]], *, numbers: Iterable[str]
) -> None:
    """``rows`` as a rich table on ``out``: every cell as plain text (no rich markup, no
    raw control characters), numbers right-aligned."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    right = frozenset(numbers)
    table = Table(box=None, pad_edge=False, highlight=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*(Text(_cell_text(v)) for v in row))
    terminal = out.isatty()
    console = Console(
        file=out,
        markup=False,
        emoji=False,
        highlight=False,
        width=None if terminal else 1000,  # a file or a pipe: one line a row
        soft_wrap=not terminal,
    )
    console.print(table)


@line_items.command("list")
@_line_item_filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "table"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (every field but the reward), CSV or a table (one line a line item).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: standard output.",
)
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), help="Stop after this many.")
@_CSV_RAW
@click.pass_obj
def list_line_items(
    settings: Settings,
    /,
    fmt: str,
    output: Path | None,
    limit: int | None,
    csv_raw: bool,
    **filters: Any,
) -> None:
    """Stream line items (every filter of GET /lineItems; dates as RFC 3339), newest
    first unless --sort-by/--ascending say otherwise. Lists carry no reward credentials.

    CSV is safe to open in a spreadsheet (a cell that would run as a formula gets a '
    prefix) unless --csv-raw; JSONL keeps every field, escaped for terminals."""
    given = {k: v for k, v in filters.items() if v is not None}
    try:  # the filters together (start after end, min above max), before connecting
        line_item_query(given)  # type: ignore[arg-type]
    except ValidationError as e:
        raise usage_error(e, {}) from None
    if output is not None:
        _output_path(output, "'--output'")
    per_page = min(limit, 100) if limit is not None else None

    async def main() -> int:
        out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        terminal = out.isatty()
        rows: list[list[Any]] = []
        table = [name for name, _ in LINE_ITEM_COLUMNS].index
        picks = [table(name) for name in TABLE_COLUMNS]
        try:
            writer = csv.writer(out) if fmt == "csv" else None
            if writer is not None:
                writer.writerow([c for c, _ in LINE_ITEM_COLUMNS])
            count = 0
            async with connect(settings) as client:
                async for item in client.line_items.list(**given, elements_per_block=per_page):
                    if fmt == "csv" and writer is not None:
                        writer.writerow(
                            [
                                terminal_cell(
                                    csv_cell(get(item), raw=csv_raw, number=c in LINE_ITEM_NUMBERS),
                                    terminal,
                                )
                                for c, get in LINE_ITEM_COLUMNS
                            ]
                        )
                    elif fmt == "table":
                        values = [get(item) for _, get in LINE_ITEM_COLUMNS]
                        rows.append([values[i] for i in picks])
                    else:
                        out.write(json_text(without_reward(item)) + "\n")
                    count += 1
                    if limit is not None and count >= limit:
                        break
            if fmt == "table":
                print_table(out, TABLE_COLUMNS, rows, numbers=LINE_ITEM_NUMBERS)
        finally:
            if output:
                out.close()
        echo_err(f"{count} line item(s)")
        return EXIT_OK

    run(main())


@line_items.command("update")
@click.argument("reference_line_item_id", type=_LINE_ITEM_ID)
@click.option("--campaign", help="Letters, digits and spaces, up to 100.")
@click.option("--purchase-order-number", help="The new purchase order number.")
@click.option("--notes", "order_notes", help="Up to 150 characters.")
@click.pass_obj
def update_line_item(
    settings: Settings,
    /,
    reference_line_item_id: str,
    campaign: str | None,
    purchase_order_number: str | None,
    order_notes: str | None,
) -> None:
    """Change a line item's campaign, purchase order number or notes (at least one)."""
    fields = {
        "campaign": campaign,
        "purchase_order_number": purchase_order_number,
        "order_notes": order_notes,
    }
    try:
        line_item_update_request(**fields)
    except ValidationError as e:
        if e.rule.startswith("give at least one"):
            raise click.UsageError(
                "give at least one of --campaign, --purchase-order-number, --notes"
            ) from None
        raise usage_error(e, {"order_notes": "--notes"}) from None

    async def main() -> int:
        async with connect(settings) as client:
            await client.line_items.update(reference_line_item_id, **fields)
        print_done(f"updated line item {reference_line_item_id}")
        return EXIT_OK

    run(main())


_REASON_OPTIONS = {"reason_code": "--reason", "other_reason": "--other-reason"}


def _action_command(action: str, codes: type[Enum], summary: str) -> None:
    @line_items.command(action, help=summary)
    @click.argument("reference_line_item_id", type=_LINE_ITEM_ID)
    @click.option(
        "--reason",
        "reason_code",
        required=True,
        type=click.Choice(_values(codes)),
        help="Why (line-items reason-codes describes each).",
    )
    @click.option("--other-reason", help="Why, in words: required with --reason OTHER.")
    @click.pass_obj
    def command(
        settings: Settings, /, reference_line_item_id: str, reason_code: str, other_reason: str
    ) -> None:
        try:
            line_item_action_request(action, reason_code=reason_code, other_reason=other_reason)
        except ValidationError as e:
            raise usage_error(e, _REASON_OPTIONS) from None

        async def main() -> int:
            async with connect(settings) as client:
                call = getattr(client.line_items, action)
                await call(
                    reference_line_item_id, reason_code=reason_code, other_reason=other_reason
                )
            print_done(
                f"{action} accepted for line item {reference_line_item_id}; "
                f"tango-async line-items get {shlex.quote(reference_line_item_id)} shows it"
            )
            return EXIT_OK

        run(main())


_action_command(
    "cancel",
    CancelReasonCode,
    "Cancel a line item and refund its amount (when Tango allows it: canCancel).",
)
_action_command(
    "freeze",
    FreezeReasonCode,
    "Freeze a line item's reward so it cannot be redeemed (when Tango allows it: canFreeze).",
)
_action_command("unfreeze", FreezeReasonCode, "Unfreeze a frozen line item's reward.")


_REISSUE_OPTIONS = {
    **_REASON_OPTIONS,
    "recipient.email": "--email",
    "recipient.first_name": "--first-name",
    "recipient.last_name": "--last-name",
    "recipient.mobile_number": "--mobile",
}


@line_items.command("reissue")
@click.argument("reference_line_item_id", type=_LINE_ITEM_ID)
@click.option(
    "--reason",
    "reason_code",
    required=True,
    type=click.Choice(_values(ReissueReasonCode)),
    help="Why (line-items reason-codes describes each).",
)
@click.option("--other-reason", help="Why, in words: required with --reason OTHER.")
@click.option(
    "--amount",
    type=_DecimalType(check_amount),
    help="The new reward's amount (default: the same).",
)
@click.option(
    "--delivery-method",
    type=click.Choice(sorted(REISSUE_METHODS)),
    help="The new reward's delivery method (default: the same).",
)
@click.option("--email", help="The new recipient's email.")
@click.option("--first-name", help="The new recipient's first name.")
@click.option("--last-name", help="The new recipient's last name.")
@click.option("--mobile", "mobile_number", help="E.164, e.g. +14155550100 (PHONE, WHATSAPP).")
@click.option("--notes", help="Up to 150 characters.")
@YES_OPTION
@click.pass_obj
def reissue_line_item(
    settings: Settings,
    /,
    reference_line_item_id: str,
    reason_code: str,
    other_reason: str | None,
    amount: Decimal | None,
    delivery_method: str | None,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    mobile_number: str | None,
    notes: str | None,
    yes: bool,
) -> None:
    """Cancel a line item and issue a new reward in its place. SPENDS MONEY: the new reward
    is charged. Asks first unless --yes.

    Prints the new order as JSON, without its reward (`line-items get` the new
    referenceLineItemID shows that). Never retried once it may have reached Tango: after
    a connection error, `line-items get` the original (reissuedToReferenceLineItemId)
    before trying again."""
    who = {
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "mobile_number": mobile_number,
    }
    recipient = ReissueRecipient(**who) if any(v is not None for v in who.values()) else None
    request: dict[str, Any] = {
        "reason_code": reason_code,
        "other_reason": other_reason,
        "amount": amount,
        "delivery_method": delivery_method,
        "recipient": recipient,
        "notes": notes,
    }
    try:
        reissue_request(**request)
    except ValidationError as e:
        raise usage_error(e, _REISSUE_OPTIONS) from None
    worth = f"new amount {plain_decimal(amount)}" if amount is not None else "the same amount"
    question = (
        f"Reissue line item {reference_line_item_id} ({worth})? It is cancelled and a new "
        "reward is charged to the account."
    )
    if not confirm(question, yes=yes):
        echo_err("not reissued: nothing was sent (--yes skips the question)")
        raise SystemExit(EXIT_FAILED)

    async def main() -> int:
        async with connect(settings) as client:
            new = await client.line_items.reissue(reference_line_item_id, **request)
        print_json(without_reward(new))
        if new.reference_line_item_id:
            echo_err(
                f"its reward: tango-async line-items get {shlex.quote(new.reference_line_item_id)}"
            )
        return EXIT_OK

    run(main())


@line_items.command("wait")
@click.argument("reference_line_item_id", type=_LINE_ITEM_ID)
@_wait_options
@click.pass_obj
def wait_line_item(
    settings: Settings,
    /,
    reference_line_item_id: str,
    timeout: float | None,
    poll: float,
    max_poll: float | None,
) -> None:
    """Wait until a line item is final and print it as JSON (without its reward: `line-items
    get` shows that).

    Final: COMPLETE, FAILED, CANCELLED, DELETED, RETURNED. Exit 0 when it ends COMPLETE;
    1 when it ends otherwise, or --timeout passes first (nothing on stdout then; the last
    status on stderr); 130 on Ctrl-C."""
    _wait_command(
        settings, "line-items", "line item", reference_line_item_id, timeout, poll, max_poll
    )


@line_items.command("reason-codes")
@click.pass_obj
def reason_codes(settings: Settings) -> None:
    """Print the reason codes of each line-item action (code -> description) as JSON."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(await client.line_items.reason_codes())
        return EXIT_OK

    run(main())


@line_items.command("resend")
@click.argument("reference_line_item_id")
@click.option("--new-delivery-method", help="Resend by this delivery method instead.")
@click.option("--new-email", help="Resend to this email address instead.")
@click.option("--new-mobile-number", help="Resend to this mobile number instead (E.164).")
@click.option("--new-etid", help="Use this email template (ETID) for the resend.")
@click.option(
    "--reason-code",
    type=click.Choice(
        ["NOT_RECEIVED", "LOST_DELETED", "DELIVERY_INFO", "DELIVERY_METHOD", "REMINDER", "OTHER"]
    ),
    help="Why the reward is resent.",
)
@click.option("--other-reason", help="Why, in words: with --reason-code OTHER.")
@click.option("--wait", is_flag=True, help="Wait out the cooldown instead of failing.")
@click.pass_obj
def resend_line_item(
    settings: Settings, /, reference_line_item_id: str, wait: bool, **kw: Any
) -> None:
    """Resend a line item's reward."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(await client.line_items.resend(reference_line_item_id, wait=wait, **kw))
        return EXIT_OK

    run(main())


# --- the local sandbox ------------------------------------------------------------------------


@cli.command("sandbox", context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sandbox_command(args: tuple[str, ...]) -> None:
    """Serve the local sandbox: the options of `python -m tango_async.testing` (--help)."""
    from ..testing.__main__ import main as sandbox_main

    raise SystemExit(sandbox_main(["--prog", "tango-async sandbox", *args]))
