"""``tango-async accounts list|get``, ``catalog`` and ``exchange-rates`` (issue 15, point 7)
against a sandbox served from another thread, in every format; hostile server text
(control characters, formula prefixes) in the table, CSV and JSONL output; errors as one
line with the documented exit codes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tango_async.testing._store import CatalogItem

from .reconcile_support import ThreadedSandbox
from .test_cli import invoke

FORMATS = ("table", "jsonl", "csv")


@pytest.fixture(scope="module")
def tsb() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(contract=True) as sb:

        async def setup() -> None:
            sb.sandbox.add_account(
                "acct-ref01", balance=Decimal("1234.50"), display_name="Marketing"
            )
            sb.sandbox.add_account(
                "acct-ref02", balance=Decimal("0.07"), currency_code="EUR", display_name="EU"
            )

        sb.call(setup())
        yield sb


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def jsonl_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- accounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_accounts_list_in_every_format(tsb: ThreadedSandbox, fmt: str) -> None:
    res = invoke(*tsb.args, "accounts", "list", "--format", fmt)
    assert res.exit_code == 0, res.output
    assert "account(s)" in res.stderr
    if fmt == "csv":
        found = {r["accountIdentifier"]: r for r in rows_of(res.stdout)}
        assert found["acct-ref01"]["currentBalance"] == "1234.50"
        assert found["acct-ref02"]["currencyCode"] == "EUR"
        assert found["acct-ref02"]["currentBalance"] == "0.07"
    elif fmt == "jsonl":
        found = {r["accountIdentifier"]: r for r in jsonl_of(res.stdout)}
        assert found["acct-ref01"]["displayName"] == "Marketing"
        assert '"currentBalance":1234.50' in res.stdout  # a plain exact number
    else:
        lines = res.stdout.splitlines()
        assert lines[0].split()[:2] == ["accountIdentifier", "accountNumber"]
        assert any("acct-ref01" in x and "1234.50" in x and "Marketing" in x for x in lines)
    assert tsb.sandbox.contract_violations == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_accounts_get_in_every_format(tsb: ThreadedSandbox, fmt: str) -> None:
    res = invoke(*tsb.args, "accounts", "get", "acct-ref02", "--format", fmt)
    assert res.exit_code == 0, res.output
    if fmt == "csv":
        (row,) = rows_of(res.stdout)
        assert (row["accountIdentifier"], row["currentBalance"]) == ("acct-ref02", "0.07")
    elif fmt == "jsonl":
        (row,) = jsonl_of(res.stdout)
        assert row["accountIdentifier"] == "acct-ref02" and row["currencyCode"] == "EUR"
    else:
        assert "acct-ref02" in res.stdout and "0.07" in res.stdout


def test_accounts_get_errors_are_one_line_with_exit_codes(tsb: ThreadedSandbox) -> None:
    missing = invoke(*tsb.args, "accounts", "get", "acct-nobody")
    assert missing.exit_code == 1  # the API refused the call
    (line,) = missing.stderr.strip().splitlines()
    assert line.startswith("error: ") and "404" in line
    bad = invoke(*tsb.args, "accounts", "get", "a/b")
    assert bad.exit_code == 2 and "ACCOUNT_IDENTIFIER" in bad.stderr  # nothing sent
    wrong_key = invoke(
        "--base-url",
        tsb.sandbox.base_url,
        "--platform-name",
        "x",
        "--platform-key",
        "wrong",
        "accounts",
        "list",
    )
    assert wrong_key.exit_code == 1
    assert wrong_key.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "wrong" not in wrong_key.output


def test_no_credentials_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TANGO_PLATFORM_NAME", raising=False)
    monkeypatch.delenv("TANGO_PLATFORM_KEY", raising=False)
    for args in (("accounts", "list"), ("catalog",), ("exchange-rates",)):
        res = invoke("--base-url", "http://127.0.0.1:9/raas/v2", *args)
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith("error: ")


# --- catalog ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_catalog_in_every_format(tsb: ThreadedSandbox, fmt: str) -> None:
    res = invoke(*tsb.args, "catalog", "--format", fmt)
    assert res.exit_code == 0, res.output
    if fmt == "csv":
        found = {r["utid"]: r for r in rows_of(res.stdout)}
        amazon = found["U561593"]
        assert amazon["brandName"] == "Amazon.com" and amazon["valueType"] == "VARIABLE_VALUE"
        assert (amazon["minValue"], amazon["maxValue"], amazon["faceValue"]) == ("0.01", "2000", "")
        assert found["U100025"]["faceValue"] == "25" and found["U100025"]["minValue"] == ""
        assert found["U999001"]["status"] == "inactive"
        assert found["U300100"]["currencyCode"] == "EUR" and found["U300100"]["countries"] == "DE"
    elif fmt == "jsonl":
        found = {r["utid"]: r for r in jsonl_of(res.stdout)}
        assert (
            found["U561593"]["minValue"] == Decimal("0.01") or found["U561593"]["minValue"] == 0.01
        )
        assert '"minValue":0.01' in res.stdout
        assert found["U100025"]["faceValue"] == 25
    else:
        line = next(x for x in res.stdout.splitlines() if x.startswith("U561593"))
        assert "Amazon.com Gift Card" in line and "0.01-2000" in line and "active" in line
        fixed = next(x for x in res.stdout.splitlines() if x.startswith("U100025"))
        assert " 25 " in fixed and "FIXED_VALUE" in fixed
    assert tsb.sandbox.contract_violations == []


@pytest.mark.parametrize("needle", ["amazon", "AMAZON", "u5615", "gutschein"])
def test_catalog_search_matches_brand_reward_or_utid_any_case(
    tsb: ThreadedSandbox, needle: str
) -> None:
    res = invoke(*tsb.args, "catalog", "--search", needle, "--format", "csv")
    assert res.exit_code == 0, res.output
    utids = {r["utid"] for r in rows_of(res.stdout)}
    assert utids and utids <= {"U561593", "U300100"}
    nothing = invoke(*tsb.args, "catalog", "--search", "no such thing", "--format", "jsonl")
    assert nothing.exit_code == 0 and nothing.stdout == "" and "0 item(s)" in nothing.stderr


def test_catalog_error_is_one_line(tsb: ThreadedSandbox) -> None:
    async def fail() -> None:
        tsb.sandbox.inject("GET /catalogs", "500", times=10)

    tsb.call(fail())
    res = invoke(*tsb.args, "--max-retries", "0", "catalog", "--refresh")
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and "500" in line

    async def clear() -> None:
        tsb.sandbox.clear_faults()

    tsb.call(clear())


# --- exchange rates ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_exchange_rates_in_every_format(tsb: ThreadedSandbox, fmt: str) -> None:
    res = invoke(*tsb.args, "exchange-rates", "--format", fmt)
    assert res.exit_code == 0, res.output
    assert "rate(s)" in res.stderr and "reference" in res.stderr  # the disclaimer
    if fmt == "csv":
        found = {r["rewardCurrency"]: r for r in rows_of(res.stdout)}
        assert found["EUR"]["baseCurrency"] == "USD"
        assert Decimal(found["EUR"]["baseFx"]) > 0 and "E" not in found["EUR"]["baseFx"]
    elif fmt == "jsonl":
        found = {r["rewardCurrency"]: r for r in jsonl_of(res.stdout)}
        assert found["EUR"]["baseCurrency"] == "USD"
    else:
        assert res.stdout.splitlines()[0].split() == [
            "rewardCurrency",
            "baseCurrency",
            "baseFx",
            "lastModifiedDate",
        ]
    assert tsb.sandbox.contract_violations == []


# --- hostile text from the server -------------------------------------------------------------

HOSTILE_NAME = '=HYPERLINK("http://x")\x1b[31m red\rforged'
HOSTILE_BRAND = "@SUM(1+1)\x07\u202e"


@pytest.fixture
def hostile() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox() as sb:

        async def setup() -> None:
            sb.sandbox.catalog = {
                "U123456": CatalogItem(HOSTILE_NAME, brand=HOSTILE_BRAND),
                "U654321": CatalogItem("+cmd|' /C calc'!A0", brand="-2+3"),
            }

        sb.call(setup())
        yield sb


def test_hostile_catalog_text_in_the_table_is_escaped(hostile: ThreadedSandbox) -> None:
    res = invoke(*hostile.args, "catalog")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout and "\r" not in res.stdout and "\x07" not in res.stdout
    assert "\u202e" not in res.stdout
    assert "\\x1b" in res.stdout  # shown, escaped


def test_hostile_catalog_text_in_csv_is_neutralised(hostile: ThreadedSandbox) -> None:
    res = invoke(*hostile.args, "catalog", "--format", "csv")
    assert res.exit_code == 0, res.output
    found = {r["utid"]: r for r in rows_of(res.stdout)}
    assert found["U123456"]["rewardName"] == "'" + HOSTILE_NAME
    assert found["U123456"]["brandName"] == "'" + HOSTILE_BRAND
    assert found["U654321"]["rewardName"].startswith("'+cmd")
    assert found["U654321"]["brandName"] == "'-2+3"
    assert found["U123456"]["minValue"] == "0.01"  # numbers the CLI writes stay numbers
    raw = invoke(*hostile.args, "catalog", "--format", "csv", "--csv-raw")
    assert {r["utid"]: r for r in rows_of(raw.stdout)}["U123456"]["rewardName"] == HOSTILE_NAME


def test_hostile_catalog_text_in_jsonl_is_escaped_and_exact(hostile: ThreadedSandbox) -> None:
    res = invoke(*hostile.args, "catalog", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout and "\r" not in res.stdout
    found = {r["utid"]: r for r in jsonl_of(res.stdout)}
    assert found["U123456"]["rewardName"] == HOSTILE_NAME  # the same text once decoded
    assert found["U123456"]["brandName"] == HOSTILE_BRAND
