"""The reference commands: ``accounts list|get``, ``catalog`` and ``exchange-rates``.

Each prints a table (the default; every cell plain, escaped text), JSON Lines (one object
a line, amounts as exact plain numbers, every character a terminal would act on escaped)
or CSV (safe to open in a spreadsheet: a cell that would run as a formula gets a ``'``
prefix, unless ``--csv-raw``; escaped when written to a terminal). Amounts are plain
decimals (``1000``, ``0.01``; never ``1E+3``). Reads only: nothing is created or sent.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from .._validation import check_account_identifier, plain_decimal
from ..bulk._report import csv_cell
from ..types.accounts import Account
from ..types.catalog import FIXED_VALUE, VARIABLE_VALUE, Brand, CatalogItem
from ..types.exchange_rates import ExchangeRate
from ._common import (
    _CSV_RAW,
    EXIT_OK,
    Settings,
    _Checked,
    cli,
    connect,
    echo_err,
    run,
)
from ._format import format_time
from ._orders import json_text, print_table, terminal_cell

__all__ = ["accounts", "catalog", "exchange_rates"]

FORMATS = click.Choice(["table", "jsonl", "csv"])
Column = tuple[str, Callable[[Any], Any]]


def _format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format", "fmt", type=FORMATS, default="table", show_default=True, help="Output format."
    )(f)


def _when(value: Any) -> str | None:
    return format_time(value)


def _emit(
    fmt: str,
    columns: Sequence[Column],
    items: Sequence[Any],
    *,
    numbers: frozenset[str],
    as_json: Callable[[Any], Any],
    csv_raw: bool,
    table: Sequence[Column] | None = None,
) -> None:
    """``items`` on standard output as ``fmt``: a table of ``table`` (default: ``columns``),
    CSV of ``columns`` (``numbers`` are the numeric ones) or JSON Lines of ``as_json``."""
    out = sys.stdout
    if fmt == "jsonl":
        for item in items:
            out.write(json_text(as_json(item)) + "\n")
        return
    if fmt == "csv":
        terminal = out.isatty()
        writer = csv.writer(out)
        writer.writerow([name for name, _ in columns])
        for item in items:
            writer.writerow(
                [
                    terminal_cell(
                        csv_cell(get(item), raw=csv_raw, number=name in numbers), terminal
                    )
                    for name, get in columns
                ]
            )
        return
    shown = table or columns
    print_table(
        out,
        [name for name, _ in shown],
        [[get(item) for _, get in shown] for item in items],
        numbers=numbers,
    )


# --- accounts ---------------------------------------------------------------------------------

ACCOUNT_COLUMNS: tuple[Column, ...] = (
    ("accountIdentifier", lambda a: a.account_identifier),
    ("accountNumber", lambda a: a.account_number),
    ("displayName", lambda a: a.display_name),
    ("currencyCode", lambda a: a.currency_code),
    ("currentBalance", lambda a: a.current_balance),
    ("status", lambda a: a.status),
    ("contactEmail", lambda a: a.contact_email),
    ("createdAt", lambda a: _when(a.created_at)),
)
ACCOUNT_NUMBERS = frozenset({"currentBalance"})


@cli.group()
def accounts() -> None:
    """The platform's accounts and their balances."""


def _show_accounts(found: Sequence[Account], fmt: str, csv_raw: bool) -> None:
    _emit(
        fmt,
        ACCOUNT_COLUMNS,
        found,
        numbers=ACCOUNT_NUMBERS,
        as_json=lambda a: a,
        csv_raw=csv_raw,
    )


@accounts.command("list")
@_format_option
@_CSV_RAW
@click.pass_obj
def list_accounts(settings: Settings, fmt: str, csv_raw: bool) -> None:
    """List the platform's accounts (GET /accounts, every page), with their balances
    where the API gives them."""

    async def main() -> int:
        async with connect(settings) as client:
            found = [a async for a in client.accounts.list()]
        _show_accounts(found, fmt, csv_raw)
        echo_err(f"{len(found)} account(s)")
        return EXIT_OK

    run(main())


@accounts.command("get")
@click.argument("account_identifier", type=_Checked("id", check_account_identifier))
@_format_option
@_CSV_RAW
@click.pass_obj
def get_account(settings: Settings, account_identifier: str, fmt: str, csv_raw: bool) -> None:
    """Show one account and its current balance (GET /accounts/{accountIdentifier})."""

    async def main() -> int:
        async with connect(settings) as client:
            found = await client.accounts.get(account_identifier)
        _show_accounts([found], fmt, csv_raw)
        return EXIT_OK

    run(main())


# --- catalog ----------------------------------------------------------------------------------

Entry = tuple[Brand, CatalogItem]


def _value(entry: Entry) -> str | None:
    """The item's value rule in a word: its face value, or ``min-max``."""
    item = entry[1]
    kind = (item.value_type or "").upper()
    if kind == FIXED_VALUE or (item.face_value is not None and kind != VARIABLE_VALUE):
        return None if item.face_value is None else plain_decimal(item.face_value)
    if item.min_value is None and item.max_value is None:
        return None
    low = "" if item.min_value is None else plain_decimal(item.min_value)
    high = "" if item.max_value is None else plain_decimal(item.max_value)
    return f"{low}-{high}"


def _countries(entry: Entry) -> str:
    return " ".join(str(c) for c in entry[1].countries or ())


CATALOG_COLUMNS: tuple[Column, ...] = (
    ("utid", lambda e: e[1].utid),
    ("brandName", lambda e: e[0].brand_name),
    ("rewardName", lambda e: e[1].reward_name),
    ("currencyCode", lambda e: e[1].currency_code),
    ("valueType", lambda e: e[1].value_type),
    ("minValue", lambda e: e[1].min_value),
    ("maxValue", lambda e: e[1].max_value),
    ("faceValue", lambda e: e[1].face_value),
    ("status", lambda e: e[1].status),
    ("countries", _countries),
)
CATALOG_TABLE: tuple[Column, ...] = (
    ("utid", lambda e: e[1].utid),
    ("brand", lambda e: e[0].brand_name),
    ("reward", lambda e: e[1].reward_name),
    ("currency", lambda e: e[1].currency_code),
    ("valueType", lambda e: e[1].value_type),
    ("value", _value),
    ("status", lambda e: e[1].status),
    ("countries", _countries),
)
CATALOG_NUMBERS = frozenset({"minValue", "maxValue", "faceValue", "value"})


def _item_json(entry: Entry) -> dict[str, Any]:
    brand, item = entry
    return {
        "utid": item.utid,
        "brandKey": brand.brand_key,
        "brandName": brand.brand_name,
        "rewardName": item.reward_name,
        "currencyCode": item.currency_code,
        "valueType": item.value_type,
        "minValue": item.min_value,
        "maxValue": item.max_value,
        "faceValue": item.face_value,
        "status": item.status,
        "rewardType": item.reward_type,
        "countries": item.countries,
        "credentialTypes": item.credential_types,
        "isWholeAmountValueRequired": item.is_whole_amount_value_required,
        "fee": item.fee,
    }


def _matches(entry: Entry, needle: str) -> bool:
    brand, item = entry
    return any(
        isinstance(text, str) and needle in text.casefold()
        for text in (brand.brand_name, item.reward_name, item.utid)
    )


@cli.command("catalog")
@click.option(
    "--search",
    help="Only items whose brand name, reward name or utid contains TEXT (any case).",
)
@_format_option
@click.option("--refresh", is_flag=True, help="Fetch the catalog anew (not from the cache).")
@_CSV_RAW
@click.pass_obj
def catalog(settings: Settings, search: str | None, fmt: str, refresh: bool, csv_raw: bool) -> None:
    """List the catalog's items (GET /catalogs), one line each: utid, brand, reward name,
    currency, value type, its value (face value, or min-max), status and countries."""
    needle = search.casefold() if search is not None else None

    async def main() -> int:
        async with connect(settings) as client:
            found = await client.catalog.get(refresh=refresh)
        entries = [
            (brand, item)
            for brand in found.brands or ()
            for item in brand.items or ()
            if needle is None or _matches((brand, item), needle)
        ]
        _emit(
            fmt,
            CATALOG_COLUMNS,
            entries,
            numbers=CATALOG_NUMBERS,
            as_json=_item_json,
            csv_raw=csv_raw,
            table=CATALOG_TABLE,
        )
        echo_err(f"{len(entries)} item(s)")
        return EXIT_OK

    run(main())


# --- exchange rates ---------------------------------------------------------------------------

RATE_COLUMNS: tuple[Column, ...] = (
    ("rewardCurrency", lambda r: r.reward_currency),
    ("baseCurrency", lambda r: r.base_currency),
    ("baseFx", lambda r: r.base_fx),
    ("lastModifiedDate", lambda r: _when(r.last_modified_date)),
)
RATE_NUMBERS = frozenset({"baseFx"})


@cli.command("exchange-rates")
@_format_option
@_CSV_RAW
@click.pass_obj
def exchange_rates(settings: Settings, fmt: str, csv_raw: bool) -> None:
    """List the exchange rates (GET /exchangerates): one unit of the reward currency
    costs baseFx of the base currency. For reference only: Tango charges each order at
    the rate in effect when it is placed."""

    async def main() -> int:
        async with connect(settings) as client:
            rates = await client.exchange_rates.get()
        found: list[ExchangeRate] = list(rates.exchange_rates or ())
        _emit(
            fmt,
            RATE_COLUMNS,
            found,
            numbers=RATE_NUMBERS,
            as_json=lambda r: r,
            csv_raw=csv_raw,
        )
        if rates.disclaimer:
            echo_err(rates.disclaimer)
        echo_err(f"{len(found)} rate(s)")
        return EXIT_OK

    run(main())
