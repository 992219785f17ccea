"""Issue 16, CLI output: one format for amounts (plain decimals; JSON numbers) and
timestamps (RFC 3339 in UTC ending in Z) in every command and format; help text for every
option of every command."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import click
import pytest
from click.testing import CliRunner, Result

from tango_async.cli._app import cli

from .reconcile_support import ThreadedSandbox, threaded_sandbox

START = datetime(2024, 1, 1, 12, 30, 5, 250_000, tzinfo=UTC)
STAMP = "2024-01-01T12:30:05.250000Z"
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def sb() -> Iterator[ThreadedSandbox]:
    with threaded_sandbox() as sandbox:
        yield sandbox


def _decimal_json(text: str) -> object:
    return json.loads(text, parse_float=Decimal)


def test_the_same_order_in_get_and_in_every_list_format(sb: ThreadedSandbox) -> None:
    (ref,) = sb.sandbox.seed_orders(1, start=START, step=timedelta(0), amount="1000")
    got = invoke(*sb.args, "orders", "get", ref)
    assert got.exit_code == 0, got.output
    one = _decimal_json(got.stdout)
    assert isinstance(one, dict)
    # JSON numbers in plain notation (never strings, never 1E+3)
    assert one["denomination"]["value"] == Decimal("1000")
    assert '"value": 1000' in got.stdout and "E+" not in got.stdout
    assert one["createdAt"] == STAMP

    jsonl = invoke(*sb.args, "orders", "list", "--format", "jsonl")
    (line,) = jsonl.stdout.splitlines()
    listed = _decimal_json(line)
    assert isinstance(listed, dict)
    assert listed["denomination"] == one["denomination"]
    assert listed["amountCharged"] == one["amountCharged"]
    assert listed["createdAt"] == one["createdAt"] == STAMP
    assert "reward" not in listed  # lists carry no reward credentials

    as_csv = invoke(*sb.args, "orders", "list", "--format", "csv")
    (row,) = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert row["createdAt"] == STAMP
    assert row["amount"] == "1000"
    assert row["referenceOrderID"] == ref

    table = invoke(*sb.args, "orders", "list", "--format", "table")
    assert table.exit_code == 0, table.output
    header, body = table.stdout.splitlines()[:2]
    assert "createdAt" in header and "amount" in header
    assert STAMP in body and " 1000 " in f"{body} " and ref in body


def test_line_items_in_every_format(sb: ThreadedSandbox) -> None:
    sb.sandbox.seed_orders(1, start=START, step=timedelta(0), amount="12.50")
    got = {
        fmt: invoke(*sb.args, "line-items", "list", "--format", fmt)
        for fmt in ("jsonl", "csv", "table")
    }
    assert all(r.exit_code == 0 for r in got.values()), {k: r.output for k, r in got.items()}
    (item,) = [_decimal_json(line) for line in got["jsonl"].stdout.splitlines()]
    assert isinstance(item, dict)
    (row,) = list(csv.DictReader(io.StringIO(got["csv"].stdout)))
    assert RFC3339_Z.match(row["dateIssued"]), row["dateIssued"]
    assert row["dateIssued"] == item["dateIssued"]
    assert row["amount"] == "12.50" and item["amountIssued"]["value"] == Decimal("12.50")
    assert row["dateIssued"] in got["table"].stdout and "12.50" in got["table"].stdout


def test_accounts_and_exchange_rates_timestamps_end_in_z(sb: ThreadedSandbox) -> None:
    accounts = invoke(*sb.args, "accounts", "list", "--format", "csv")
    assert accounts.exit_code == 0, accounts.output
    for row in csv.DictReader(io.StringIO(accounts.stdout)):
        assert row["createdAt"] == "" or RFC3339_Z.match(row["createdAt"]), row
        assert "E" not in row["currentBalance"]
    rates = invoke(*sb.args, "exchange-rates", "--format", "csv")
    assert rates.exit_code == 0, rates.output
    for row in csv.DictReader(io.StringIO(rates.stdout)):
        assert row["lastModifiedDate"] == "" or RFC3339_Z.match(row["lastModifiedDate"]), row
    as_json = invoke(*sb.args, "accounts", "list", "--format", "jsonl")
    for line in as_json.stdout.splitlines():
        balance = _decimal_json(line)["currentBalance"]  # type: ignore[index]
        assert balance is None or isinstance(balance, int | Decimal)


# --- 4. help text for every option --------------------------------------------------------------


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _without_help() -> set[tuple[str, str]]:
    missing = set()
    for path, command in _commands(cli):
        ctx = click.Context(command, info_name=path[-1], parent=click.Context(cli))
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and not param.hidden and not param.help:
                missing.add((" ".join(path), max(param.opts, key=len)))
    return missing


def test_every_option_of_every_command_has_help() -> None:
    # every command: the bulk ones too, and the global options each command shows
    assert not _without_help(), sorted(_without_help())


def test_every_group_option_has_help() -> None:
    assert all(p.help for p in cli.params if isinstance(p, click.Option))
