"""Reading bulk order input files: CSV and JSON Lines, row errors and file errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

import tango_async as ta
from tango_async.bulk import _inputs, _job
from tango_async.bulk._inputs import (
    InputFileError,
    InputRow,
    RowError,
    _msgspec_field,
    detect_format,
    file_digest,
    read_orders,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "orders.csv"

BASE = "customer_identifier,account_identifier,utid,amount"
GOOD = "cust-12345,acct-12345,U561593"


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def csv_file(tmp_path: Path, header: str, *rows: str, name: str = "orders.csv") -> Path:
    return write(tmp_path, name, "\n".join([header, *rows]) + "\n")


def jsonl_file(tmp_path: Path, *lines: str, name: str = "orders.jsonl") -> Path:
    return write(tmp_path, name, "\n".join(lines) + "\n")


def wire(**kw: object) -> str:
    order: dict[str, object] = {
        "customerIdentifier": "cust-12345",
        "accountIdentifier": "acct-12345",
        "utid": "U561593",
        "amount": 10,
        "recipient": {"email": "ann@example.com", "firstName": "Ann"},
    }
    order.update(kw)
    return json.dumps(order)


def errors_of(rows: list[InputRow]) -> list[tuple[int, str]]:
    return [(e.row, e.field) for r in rows for e in r.errors]


def only_error(rows: list[InputRow], row: int) -> RowError:
    (r,) = [r for r in rows if r.row == row]
    assert r.request is None
    assert len(r.errors) == 1, r.errors
    return r.errors[0]


# --- good files -------------------------------------------------------------------------

FULL_HEADER = (
    "customer_identifier,account_identifier,utid,amount,external_ref_id,delivery_method,"
    "send_email,ptid,etid,email_subject,message,campaign,purchase_order_number,notes,"
    "expiration_date,sender.first_name,sender.last_name,sender.email,recipient.email,"
    "recipient.first_name,recipient.last_name,recipient.mobile_number,"
    "recipient.address.street_line1,recipient.address.street_line2,recipient.address.city,"
    "recipient.address.state_or_province,recipient.address.postal_code,"
    "recipient.address.country,recipient.address.company_name,custom_fields.team,"
    "custom_fields.cost_center"
)
FULL_ROWS = (
    # 1: EMAIL, every optional top-level field, a sender, custom fields
    "cust-12345,acct-12345,U561593,10.10,ref-1,EMAIL,TRUE,P000001,E000123,Hello,"
    '"Thanks, Ann!",spring,PO-7,a note,2030-01-31T12:00:00Z,Sam,Boss,sam@example.com,'
    "ann@example.com,Ann,Lee,,,,,,,,,Sales,cc-9",
    # 2: ADDRESS, inferred from the address (no delivery_method), no sender
    "cust-12345,acct-12345,U157189,25,ref-2,,,,,,,,,,2030-01-31T12:00:00+02:00,,,,,Bob,Ray,,"
    "1 Main St,Apt 2,Springfield,IL,62701,US,Acme Inc,,",
    # 3: NONE via send_email=no, no recipient at all
    "cust-12345,acct-12345,U561593,5.00,ref-3,,no,,,,,,,,,,,,,,,,,,,,,,,,",
)


def jsonl_equivalent() -> list[str]:
    return [
        json.dumps(
            {
                "customerIdentifier": "cust-12345",
                "accountIdentifier": "acct-12345",
                "utid": "U561593",
                "amount": 10.10,
                "externalRefID": "ref-1",
                "deliveryMethod": "EMAIL",
                "sendEmail": True,
                "ptid": "P000001",
                "etid": "E000123",
                "emailSubject": "Hello",
                "message": "Thanks, Ann!",
                "campaign": "spring",
                "purchaseOrderNumber": "PO-7",
                "notes": "a note",
                "expirationDate": "2030-01-31T12:00:00Z",
                "sender": {"firstName": "Sam", "lastName": "Boss", "email": "sam@example.com"},
                "recipient": {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"},
                "customFields": {"team": "Sales", "cost_center": "cc-9"},
            }
        ).replace('"amount": 10.1,', '"amount": 10.10,'),
        json.dumps(
            {
                "customerIdentifier": "cust-12345",
                "accountIdentifier": "acct-12345",
                "utid": "U157189",
                "amount": 25,
                "externalRefID": "ref-2",
                "expirationDate": "2030-01-31T12:00:00+02:00",
                "recipient": {
                    "firstName": "Bob",
                    "lastName": "Ray",
                    "address": {
                        "streetLine1": "1 Main St",
                        "streetLine2": "Apt 2",
                        "city": "Springfield",
                        "stateOrProvince": "IL",
                        "postalCode": "62701",
                        "country": "US",
                        "companyName": "Acme Inc",
                    },
                },
            }
        ),
        '{"customerIdentifier": "cust-12345", "accountIdentifier": "acct-12345", '
        '"utid": "U561593", "amount": 5.00, "externalRefID": "ref-3", "sendEmail": false}',
    ]


def expected_requests() -> list[ta.CreateOrderRequest]:
    return [
        ta.CreateOrderRequest(
            "cust-12345",
            "acct-12345",
            "U561593",
            Decimal("10.10"),
            external_ref_id="ref-1",
            delivery_method="EMAIL",
            send_email=True,
            ptid="P000001",
            etid="E000123",
            email_subject="Hello",
            message="Thanks, Ann!",
            campaign="spring",
            purchase_order_number="PO-7",
            notes="a note",
            expiration_date=datetime(2030, 1, 31, 12, tzinfo=UTC),
            sender=ta.Sender(first_name="Sam", last_name="Boss", email="sam@example.com"),
            recipient=ta.Recipient(email="ann@example.com", first_name="Ann", last_name="Lee"),
            custom_fields={"team": "Sales", "cost_center": "cc-9"},
        ),
        ta.CreateOrderRequest(
            "cust-12345",
            "acct-12345",
            "U157189",
            Decimal("25"),
            external_ref_id="ref-2",
            expiration_date=datetime(2030, 1, 31, 12, tzinfo=timezone(timedelta(hours=2))),
            recipient=ta.Recipient(
                first_name="Bob",
                last_name="Ray",
                address=ta.Address(
                    "1 Main St",
                    "Springfield",
                    "IL",
                    "62701",
                    "US",
                    street_line2="Apt 2",
                    company_name="Acme Inc",
                ),
            ),
        ),
        ta.CreateOrderRequest(
            "cust-12345",
            "acct-12345",
            "U561593",
            Decimal("5.00"),
            external_ref_id="ref-3",
            send_email=False,
        ),
    ]


def test_good_csv_and_jsonl_give_the_same_requests(tmp_path: Path) -> None:
    from_csv = read_orders(csv_file(tmp_path, FULL_HEADER, *FULL_ROWS))
    from_jsonl = read_orders(jsonl_file(tmp_path, *jsonl_equivalent()))
    assert [r.errors for r in from_csv] == [(), (), ()]
    assert [r.errors for r in from_jsonl] == [(), (), ()]
    assert [r.row for r in from_csv] == [2, 3, 4]  # file lines: the header is line 1
    assert [r.row for r in from_jsonl] == [1, 2, 3]
    expected = expected_requests()
    assert [r.request for r in from_csv] == expected
    assert [r.request for r in from_jsonl] == expected
    # Both encode to the same wire bytes.
    enc = msgspec.json.Encoder(decimal_format="number")
    encoded = [enc.encode(r.request) for r in from_csv]
    assert encoded == [enc.encode(r.request) for r in from_jsonl]
    assert b'"amount":10.10,' in encoded[0]


def test_amounts_stay_exact_decimals(tmp_path: Path) -> None:
    rows = read_orders(
        csv_file(tmp_path, BASE + ",send_email", f"{GOOD},10.10,false", f"{GOOD},7,false")
    )
    assert [r.errors for r in rows] == [(), ()]
    a0 = rows[0].request.amount  # type: ignore[union-attr]
    assert isinstance(a0, Decimal) and str(a0) == "10.10"
    a1 = rows[1].request.amount  # type: ignore[union-attr]
    assert isinstance(a1, Decimal) and str(a1) == "7"

    jrows = read_orders(jsonl_file(tmp_path, wire(amount=10.10), wire(amount=10), wire()))
    amounts = [r.request.amount for r in jrows]  # type: ignore[union-attr]
    assert [type(a) for a in amounts] == [Decimal] * 3
    assert [str(a) for a in amounts] == ["10.1", "10", "10"]
    exact = read_orders(jsonl_file(tmp_path, wire().replace('"amount": 10', '"amount": 10.10')))
    assert str(exact[0].request.amount) == "10.10"  # type: ignore[union-attr]
    big = read_orders(jsonl_file(tmp_path, wire().replace('"amount": 10', '"amount": 999999.99')))
    assert big[0].request.amount == Decimal("999999.99")  # type: ignore[union-attr]


def test_msgspec_convert_keeps_decimals_and_maps_wire_names() -> None:
    obj = json.loads(
        '{"customerIdentifier": "c", "accountIdentifier": "a", "utid": "U1", '
        '"amount": 10.10, "externalRefID": "x", "recipient": {"firstName": "Ann", '
        '"address": {"streetLine1": "1 Main St", "city": "C", "stateOrProvince": "IL", '
        '"postalCode": "62701", "country": "US"}}}',
        parse_float=Decimal,
    )
    req = msgspec.convert(obj, ta.CreateOrderRequest)
    assert req.amount == Decimal("10.10") and str(req.amount) == "10.10"
    assert req.external_ref_id == "x"
    assert req.recipient is not None and req.recipient.address is not None
    assert req.recipient.address.street_line1 == "1 Main St"


def test_custom_fields_and_blank_cells(tmp_path: Path) -> None:
    header = BASE + ",send_email,custom_fields.team,custom_fields.note,sender.email"
    rows = read_orders(csv_file(tmp_path, header, f"{GOOD},1,false,Sales,  ,", f"{GOOD},1,0,,,"))
    r0, r1 = (r.request for r in rows)
    assert r0 is not None and r1 is not None
    assert r0.custom_fields == {"team": "Sales"}
    assert r0.sender is None  # built only when one of its cells is given
    assert r1.custom_fields is None
    assert r0.send_email is False and r1.send_email is False


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("Yes", True), ("1", True), ("false", False),
     ("No", False), ("0", False), (" yes ", True)],
)  # fmt: skip
def test_send_email_spellings(tmp_path: Path, text: str, value: bool) -> None:
    header = BASE + ",send_email,delivery_method,recipient.email,recipient.first_name"
    method = "EMAIL" if value else "NONE"
    rows = read_orders(csv_file(tmp_path, header, f"{GOOD},1,{text},{method},a@example.com,Ann"))
    assert rows[0].errors == ()
    assert rows[0].request is not None and rows[0].request.send_email is value


def test_crlf_quoted_newlines_and_bom(tmp_path: Path) -> None:
    text = (
        "\ufeff" + BASE + ",message,recipient.email,recipient.first_name\r\n"
        f'{GOOD},1,"line one\r\nline two",a@example.com,Ann\r\n'
        f"{GOOD},2,,b@example.com,Bob\r\n"
    )
    rows = read_orders(write(tmp_path, "bom.csv", text))
    assert [r.errors for r in rows] == [(), ()]
    assert [r.row for r in rows] == [2, 4]  # the first spans lines 2-3: numbered by line 2
    assert [r.record for r in rows] == [1, 2]  # 0.1's numbering (row-number refs)
    assert rows[0].request is not None and rows[0].request.customer_identifier == "cust-12345"
    assert rows[0].request.message == "line one\r\nline two"


def test_jsonl_with_bom_and_crlf(tmp_path: Path) -> None:
    p = write(tmp_path, "o.ndjson", "\ufeff" + wire() + "\r\n" + wire(amount=3) + "\r\n")
    rows = read_orders(p)
    assert [r.errors for r in rows] == [(), ()]


def test_example_orders_csv_reads_without_errors() -> None:
    rows = read_orders(EXAMPLE)
    assert len(rows) == 25
    assert [e for r in rows for e in r.errors] == []
    reqs = [r.request for r in rows]
    assert all(r is not None for r in reqs)
    methods = [r.delivery_method for r in reqs if r is not None]
    assert methods.count("PHONE") >= 2 and methods.count("ADDRESS") >= 2
    assert methods.count("NONE") == 1 and "EMAIL" in methods
    for r in reqs:
        assert r is not None
        assert (r.customer_identifier, r.account_identifier) == ("acme-customer", "acme-rewards")
        assert r.utid == ("U157189" if r.delivery_method == "ADDRESS" else "U561593")
        assert isinstance(r.amount, Decimal)
        assert r.external_ref_id is None
        if r.delivery_method == "NONE":
            assert r.send_email is False


# --- bad CSV rows -----------------------------------------------------------------------

HEADER = (
    BASE + ",send_email,expiration_date,recipient.email,recipient.first_name,recipient.last_name,"
    "recipient.address.street_line1,recipient.address.city,recipient.address.state_or_province,"
    "recipient.address.postal_code,recipient.address.country"
)


def good_row(**cells: str) -> str:
    values = {
        "amount": "10.00",
        "send_email": "",
        "expiration_date": "",
        "email": "ann@example.com",
        "first": "Ann",
        "last": "",
        "street": "",
        "city": "",
        "state": "",
        "postal": "",
        "country": "",
    }
    values.update(cells)
    return GOOD + "," + ",".join(values.values())


def test_bad_csv_rows_report_row_and_field(tmp_path: Path) -> None:
    rows = read_orders(
        csv_file(
            tmp_path,
            HEADER,
            good_row(),  # 1
            good_row(amount="ten"),  # 2
            good_row(amount="NaN"),  # 3
            good_row(amount="inf"),  # 4
            good_row(send_email="maybe"),  # 5
            good_row(expiration_date="2030-01-01T00:00:00"),  # 6
            good_row(expiration_date="next tuesday"),  # 7
            good_row(last="Lee", street="1 Main St", country="US"),  # 8
            good_row(email="not-an-email"),  # 9
            GOOD + ",10.00,extra",  # 10: wrong number of cells
            good_row(amount="1_000"),  # 11
            good_row(amount=""),  # 12
            good_row(amount="-5"),  # 13
            good_row(amount="x", send_email="perhaps", email="bad"),  # 14
            good_row(expiration_date="2030-01-01z"),  # 15: date only, naive
            good_row(expiration_date="2030-06-01T10:00:00z"),  # 16: lowercase z is UTC
        )
    )
    assert [r.row for r in rows] == list(range(2, 18))  # file lines: the header is line 1
    assert rows[0].errors == () and rows[0].request is not None
    assert only_error(rows, 3) == RowError(3, "amount", "must be a number like 10.00 (got 'ten')")
    assert only_error(rows, 4) == RowError(4, "amount", "must be a finite number")
    assert only_error(rows, 5) == RowError(5, "amount", "must be a finite number")
    e5 = only_error(rows, 6)
    assert (e5.field, e5.rule) == (
        "send_email",
        "must be true or false (or yes/no, 1/0), not 'maybe'",
    )
    e6 = only_error(rows, 7)
    assert e6.field == "expiration_date" and e6.rule.startswith("must include a timezone offset")
    e7 = only_error(rows, 8)
    assert e7.field == "expiration_date" and "ISO 8601" in e7.rule
    r8 = next(r for r in rows if r.row == 9)
    assert r8.request is None
    assert [(e.field, e.rule) for e in r8.errors] == [
        ("recipient.address.city", "is required"),
        ("recipient.address.state_or_province", "is required"),
        ("recipient.address.postal_code", "is required"),
    ]
    e9 = only_error(rows, 10)
    assert (e9.field, e9.rule) == (
        "recipient.email",
        "must be an email address like name@example.com",
    )
    e10 = only_error(rows, 11)
    assert e10.field == "" and "5 cells" in e10.rule and "14 columns" in e10.rule
    assert only_error(rows, 12).field == "amount"
    assert only_error(rows, 13) == RowError(13, "amount", "is required")
    assert only_error(rows, 14) == RowError(14, "amount", "must be greater than 0")
    # Every cell's type error is reported, and every rule the rest of the row breaks (issue
    # 16: before, prepare_order's rules only ran on a clean row)
    r14 = next(r for r in rows if r.row == 15)
    assert [e.field for e in r14.errors] == ["amount", "send_email", "recipient.email"]
    assert only_error(rows, 16).field == "expiration_date"
    r16 = next(r for r in rows if r.row == 17)
    assert r16.errors == () and r16.request is not None
    assert r16.request.expiration_date == datetime(2030, 6, 1, 10, tzinfo=UTC)


def test_csv_missing_required_cells_and_physical_rules(tmp_path: Path) -> None:
    rows = read_orders(
        csv_file(
            tmp_path,
            HEADER,
            ",,U561593,10.00,,,a@example.com,Ann,,,,,,",
            good_row(
                last="Lee", street="1 Main St", city="Springfield", state="IL", postal="6270",
                country="US",
            ),
        )
    )  # fmt: skip
    assert errors_of(rows) == [
        (2, "customer_identifier"),
        (2, "account_identifier"),
        (3, "recipient.address.postal_code"),
    ]
    assert rows[1].errors[0].rule == "US addresses take a 5-digit ZIP code only"


def test_csv_blank_rows_are_skipped_but_counted(tmp_path: Path) -> None:
    header = BASE + ",recipient.email,recipient.first_name"
    p = csv_file(tmp_path, header, "", f"{GOOD},1,a@example.com,Ann", ",,,,,", f"{GOOD},x,,")
    rows = read_orders(p)
    assert [r.row for r in rows] == [3, 5]  # file lines: the header is line 1
    # the bad amount, and (issue 16: every broken rule) the recipient EMAIL delivery needs
    assert errors_of(rows) == [(5, "amount"), (5, "recipient")]


def test_row_error_str() -> None:
    e = RowError(3, "recipient.email", "must be an email address like name@example.com")
    assert str(e) == "row 3, recipient.email: must be an email address like name@example.com"
    assert str(RowError(7, "", "is not valid JSON")) == "row 7: is not valid JSON"
    with pytest.raises(AttributeError):
        e.row = 4  # type: ignore[misc]


# --- file-level CSV errors --------------------------------------------------------------


def test_unknown_columns(tmp_path: Path) -> None:
    p = csv_file(tmp_path, BASE + ",nickname,customerIdentifier,recipient.phone", f"{GOOD},1,a,b,c")
    with pytest.raises(InputFileError) as info:
        read_orders(p)
    msg = str(info.value)
    assert "'nickname'" in msg and "'recipient.phone'" in msg
    assert "did you mean 'customer_identifier'" in msg
    assert "known columns: customer_identifier, account_identifier" in msg
    assert "recipient.address.postal_code" in msg and "custom_fields.<name>" in msg
    assert isinstance(info.value, ta.TangoError) and isinstance(info.value, ValueError)


def test_duplicate_columns(tmp_path: Path) -> None:
    p = csv_file(tmp_path, BASE + ",amount,recipient.email", f"{GOOD},1,2,a@example.com")
    with pytest.raises(InputFileError, match=r"'amount' appears more than once"):
        read_orders(p)


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_csv(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputFileError, match="has no orders"):
        read_orders(write(tmp_path, "empty.csv", text))


@pytest.mark.parametrize("text", [BASE + "\n", BASE, BASE + "\n\n,,,\n"])
def test_header_only_csv(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputFileError, match="has no orders"):
        read_orders(write(tmp_path, "header.csv", text))


def test_bad_csv_quoting_is_a_file_error(tmp_path: Path) -> None:
    p = write(tmp_path, "q.csv", BASE + "\n" + GOOD + ',"10\n')
    with pytest.raises(InputFileError, match="not valid CSV"):
        read_orders(p)


def test_json_in_a_csv_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="looks like JSON"):
        read_orders(write(tmp_path, "o.csv", wire() + "\n"))


# --- JSON Lines -------------------------------------------------------------------------


def test_jsonl_blank_lines_keep_numbering(tmp_path: Path) -> None:
    p = jsonl_file(tmp_path, "", wire(), "   ", "", wire(amount="ten"), wire())
    rows = read_orders(p)
    assert [r.row for r in rows] == [2, 5, 6]
    assert errors_of(rows) == [(5, "amount")]
    assert rows[1].errors[0].rule == "must be a JSON number, not a string"


def test_jsonl_unknown_keys(tmp_path: Path) -> None:
    rows = read_orders(
        jsonl_file(
            tmp_path,
            wire(nickname="x"),
            wire(recipient={"email": "a@example.com", "firstName": "A", "nickname": "x"}),
            wire(recipient={"email": "a@example.com", "first_name": "A"}),
            wire(externalRefId="r-1"),
        )
    )
    assert errors_of(rows) == [
        (1, "nickname"),
        (2, "recipient.nickname"),
        (3, "recipient.first_name"),
        (4, "externalRefId"),
    ]
    assert "unknown JSON key 'nickname'" in rows[0].errors[0].rule
    assert "camelCase" in rows[1].errors[0].rule
    assert rows[2].errors[0].rule.endswith("did you mean 'firstName'?")
    assert rows[3].errors[0].rule.endswith("did you mean 'externalRefID'?")


def test_jsonl_bad_rows(tmp_path: Path) -> None:
    lines = [
        "not json",  # 1
        "[1, 2]",  # 2: an array (not the first line, so a row error)
        '"a string"',  # 3
        wire(recipient={"email": 5, "firstName": "A"}),  # 4
        wire(amount=None),  # 5
        '{"customerIdentifier": "cust-12345", "utid": "U561593", "amount": 1}',  # 6
        wire().replace('"amount": 10', '"amount": NaN'),  # 7
        wire(sendEmail="yes"),  # 8
        wire(expirationDate="2030-01-01T00:00:00"),  # 9
        wire(recipient="ann@example.com"),  # 10
        wire(recipient={"firstName": "A", "address": {"streetLine1": "1 Main St"}}),  # 11
        wire(utid="X1"),  # 12: passes conversion, fails prepare_order
        '{"utid": "U1", "utid": "U2"}',  # 13
        wire(amount=True),  # 14
        wire(customFields=[1]),  # 15
    ]
    rows = read_orders(jsonl_file(tmp_path, wire(), *lines))
    got = {r.row: [(e.field, e.rule) for e in r.errors] for r in rows}
    assert got[1] == []
    assert got[2][0][0] == "" and got[2][0][1].startswith("is not valid JSON")
    assert got[3] == [("", "must be a JSON object, not an array")]
    assert got[4] == [("", "must be a JSON object, not a string")]
    assert got[5] == [("recipient.email", "must be a string, not a number")]
    assert got[6] == [("amount", "is required (got null)")]
    assert got[7] == [  # (issue 16: and every rule the rest breaks)
        ("account_identifier", "is required (JSON key 'accountIdentifier')"),
        ("recipient", "is required for EMAIL delivery"),
    ]
    assert got[8][0][0] == "" and "NaN" in got[8][0][1]
    assert got[9] == [("send_email", "must be true or false, not a string")]
    assert got[10][0][0] == "expiration_date" and "timezone offset" in got[10][0][1]
    assert got[11] == [("recipient", "must be an object, not a string")]
    assert [f for f, _ in got[12]] == [
        "recipient.address.city",
        "recipient.address.state_or_province",
        "recipient.address.postal_code",
        "recipient.address.country",
        "recipient.last_name",  # issue 16: every rule the rest breaks (ADDRESS needs one)
    ]
    assert got[13] == [("utid", "must be U followed by digits (e.g. U561593)")]
    assert got[14] == [("", "the JSON key 'utid' appears twice in one object")]
    assert got[15] == [("amount", "must be a JSON number, not true/false")]
    assert got[16] == [("custom_fields", "must be an object, not an array")]
    assert all(r.request is None for r in rows if r.errors)


def test_jsonl_collects_every_conversion_error(tmp_path: Path) -> None:
    line = wire(amount="1", sendEmail=1, recipient={"email": 5}, sender=[], bogus=1)
    (row,) = read_orders(jsonl_file(tmp_path, line))
    assert [e.field for e in row.errors] == [
        "amount",
        "recipient.email",
        "send_email",
        "sender",
        "bogus",
    ]


def test_jsonl_custom_fields_keep_json_values(tmp_path: Path) -> None:
    (row,) = read_orders(jsonl_file(tmp_path, wire(customFields={"n": 1.5, "t": "x", "b": True})))
    assert row.request is not None
    assert row.request.custom_fields == {"n": Decimal("1.5"), "t": "x", "b": True}


def test_json_array_file_is_a_file_error(tmp_path: Path) -> None:
    p = write(tmp_path, "orders.json", "[" + wire() + "]\n")
    with pytest.raises(InputFileError, match="JSON array"):
        read_orders(p)
    pretty = write(tmp_path, "pretty.json", json.dumps(json.loads(wire()), indent=2))
    with pytest.raises(InputFileError, match="pretty-printed"):
        read_orders(pretty)


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
def test_empty_jsonl(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputFileError, match="has no orders"):
        read_orders(write(tmp_path, "o.jsonl", text))


def test_msgspec_paths_map_to_snake_case() -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert(
            {
                "customerIdentifier": "c",
                "accountIdentifier": "a",
                "utid": "U1",
                "amount": 1,
                "recipient": {"address": {"streetLine1": 5}},
            },
            ta.CreateOrderRequest,
        )
    assert _msgspec_field(info.value) == "recipient.address.street_line1"
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert({"externalRefID": 5}, ta.CreateOrderRequest)
    assert _msgspec_field(info.value) in ("", "external_ref_id")


def test_jsonl_errors_keep_key_order_across_unknown_keys(tmp_path: Path) -> None:
    # msgspec stops at the first error; the reader takes it out and converts again, so every
    # error is reported, in the order of the keys, unknown ones included.
    line = json.dumps(
        {
            "zz": 1,
            "customerIdentifier": 5,
            "yy": 2,
            "xx": 3,
            "utid": None,
            "amount": "1",
            "recipient": {"ww": 1, "email": [], "address": {"city": 1, "vv": 0}},
            "sendEmail": "\udcff",
            "uu": 4,
        }
    )
    (row,) = read_orders(jsonl_file(tmp_path, line))
    assert [(e.field, e.rule.split(" (")[0]) for e in row.errors] == [
        ("zz", "unknown JSON key 'zz'"),
        ("customer_identifier", "must be a string, not a number"),
        ("yy", "unknown JSON key 'yy'"),
        ("xx", "unknown JSON key 'xx'"),
        ("utid", "is required"),
        ("amount", "must be a JSON number, not a string"),
        ("recipient.ww", "unknown JSON key 'ww'"),
        ("recipient.email", "must be a string, not an array"),
        ("recipient.address.city", "must be a string, not a number"),
        ("recipient.address.vv", "unknown JSON key 'vv'"),
        ("recipient.address.street_line1", "is required"),
        ("recipient.address.state_or_province", "is required"),
        ("recipient.address.postal_code", "is required"),
        ("recipient.address.country", "is required"),
        ("send_email", "must be true or false, not a string"),
        ("uu", "unknown JSON key 'uu'"),
        ("account_identifier", "is required"),
    ]


def test_jsonl_lone_surrogates_in_keys_and_values_are_row_errors(tmp_path: Path) -> None:
    rows = read_orders(
        jsonl_file(
            tmp_path,
            wire().replace('"utid"', '"\\udcff": 1, "utid"'),
            wire(recipient="\udcff"),
            wire(customFields="\udcff"),
            wire(utid="\udcff"),  # a str field: prepare_order's rule
        )
    )
    expected = [
        ("'\\udcff'", "unknown JSON key '\\udcff' (keys"),
        ("recipient", "must be an object, not a string"),
        ("custom_fields", "must be an object, not a string"),
        ("utid", "must be valid Unicode text"),
    ]
    for r, (field, rule) in zip(rows, expected, strict=True):
        (e,) = r.errors
        assert e.field == field and e.rule.startswith(rule), e


def test_jsonl_many_unknown_keys_cost_one_pass_per_run(tmp_path: Path) -> None:
    keys = {f"k{i}": i for i in range(20_000)}
    (row,) = read_orders(jsonl_file(tmp_path, wire(**keys, utid=5, **{"z": 1})))
    assert len(row.errors) == 20_002
    assert row.errors[0].field == "utid" and row.errors[-1].field == "z"


def test_rows_read_are_checked_once_and_others_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real = _inputs.prepare_order

    def counting(request: ta.CreateOrderRequest, **kw: Any) -> ta.CreateOrderRequest:
        calls.append(request)
        return real(request, **kw)

    monkeypatch.setattr(_inputs, "prepare_order", counting)
    monkeypatch.setattr(_job, "prepare_order", counting)
    rows = read_orders(jsonl_file(tmp_path, wire(), wire(amount=11), wire(utid="X")))
    # each good row once; the bad one until every field is checked (issue 16): its bad utid,
    # then the rest with a stand-in utid
    assert len(calls) == 4
    plan = _job.plan_rows(rows)
    assert len(calls) == 4 and len(plan.rows) == 2  # not again
    by_hand = [r.request for r in rows if r.request is not None]
    again = _job.plan_rows(by_hand)
    assert len(calls) == 6 and again.rows == plan.rows  # requests: checked once, same refs
    replaced = [dataclasses.replace(rows[0], request=rows[1].request), rows[1]]
    _job.plan_rows(replaced, max_amount=Decimal(500))
    assert len(calls) == 8  # another request, another limit: checked again
    _job.plan_rows(rows[:1], max_amount=Decimal(5))
    assert len(calls) == 9
    assert _job.plan_rows(rows[:2], max_amount=Decimal(10)).errors[0].row == 2


# --- format, encoding, digest -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", "csv"), ("A.CSV", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl"),
     ("a.json", "jsonl"), ("dir.v2/a.JSONL", "jsonl")],
)  # fmt: skip
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["orders.txt", "orders", "orders.csv.gz", "orders.xlsx"])
def test_detect_format_refuses_other_suffixes(name: str) -> None:
    with pytest.raises(InputFileError, match="format"):
        detect_format(Path(name))


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    p = write(tmp_path, "orders.txt", wire() + "\n")
    with pytest.raises(InputFileError):
        read_orders(p)
    assert read_orders(p, format="jsonl")[0].errors == ()
    c = write(tmp_path, "orders.data", BASE + ",recipient.email,recipient.first_name\n"
              f"{GOOD},1,a@example.com,Ann\n")  # fmt: skip
    assert read_orders(str(c), format="csv")[0].errors == ()
    with pytest.raises(InputFileError):
        read_orders(c, format="xml")  # type: ignore[arg-type]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_orders(tmp_path / "nope.csv")
    with pytest.raises(InputFileError, match="no such file"):
        file_digest(tmp_path / "nope.csv")
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(InputFileError, match="directory"):
        read_orders(d)


def test_not_utf8(tmp_path: Path) -> None:
    header = BASE + ",recipient.email,recipient.first_name"
    p = write(tmp_path, "latin.csv", f"{header}\n{GOOD},1,a@example.com,Zoë\n", "latin-1")
    with pytest.raises(InputFileError, match=r"not UTF-8 text \(line 2") as info:
        read_orders(p)
    assert not isinstance(info.value, UnicodeDecodeError)
    line = json.dumps(json.loads(wire(recipient={"firstName": "Zoë"})), ensure_ascii=False)
    j = write(tmp_path, "latin.jsonl", wire() + "\n" + line + "\n", "latin-1")
    with pytest.raises(InputFileError, match=r"not UTF-8 text \(line 2"):
        read_orders(j)


def test_file_digest(tmp_path: Path) -> None:
    p = csv_file(tmp_path, BASE, f"{GOOD},1")
    first = file_digest(p)
    assert first == hashlib.sha256(p.read_bytes()).hexdigest()
    assert file_digest(str(p)) == first
    p.write_bytes(p.read_bytes() + b"\n")
    assert file_digest(p) != first
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (3 * (1 << 20) + 17))
    assert file_digest(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_many_rows(tmp_path: Path) -> None:
    header = BASE + ",recipient.email,recipient.first_name"
    body = "".join(f"{GOOD},{i % 50}.25,p{i}@example.com,Pat\n" for i in range(5000))
    rows = read_orders(write(tmp_path, "many.csv", header + "\n" + body))
    assert len(rows) == 5000 and rows[-1].row == 5001 and rows[-1].record == 5000
    assert not any(r.errors for r in rows)


def test_a_row_changed_in_place_after_reading_is_checked_again(tmp_path: Path) -> None:
    """Regression (review of the check-once change): a row's request is a mutable Struct;
    raising its amount past max_amount after read_orders() must not slip past the limit."""
    (row,) = read_orders(jsonl_file(tmp_path, wire(amount=10)), max_amount=Decimal(100))
    assert row.request is not None and not row.errors
    assert _job.plan_rows([row], max_amount=Decimal(100)).errors == []
    row.request.amount = Decimal(5000)  # edited in place
    plan = _job.plan_rows([row], max_amount=Decimal(100))
    assert [e.field for e in plan.errors] == ["amount"] and plan.rows == []
    assert row.request.recipient is not None
    row.request.amount = Decimal(10)
    row.request.recipient.email = "not an email"  # a nested edit
    plan = _job.plan_rows([row], max_amount=Decimal(100))
    assert [e.field for e in plan.errors] == ["recipient.email"]
