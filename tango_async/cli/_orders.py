"""The order and line-item commands: ``orders list|get|resend``, ``line-items resend``,
and ``sandbox`` (the local sandbox)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args, get_type_hints

import click
import msgspec

from .._exceptions import ValidationError
from .._validation import (
    format_amount_filter,
    format_query_datetime,
    plain_decimal,
)
from ..bulk._report import csv_cell
from ..pagination import (
    MAX_CONCURRENCY,
    QUERY_FILTERS,
    WINDOW_FILTERS,
    OrderListQuery,
    build_list_query,
)
from ..types.orders import Order
from ._common import (
    _CSV_RAW,
    EXIT_OK,
    MAX_LIMIT,
    Settings,
    _Checked,
    _DecimalType,
    _output_path,
    cli,
    connect,
    echo_err,
    run,
)

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
