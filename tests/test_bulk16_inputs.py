"""Issue 16, point 3: every bad field of every row is reported, by the file line the row
starts on (CSV: the header is line 1; a quoted line break makes a record span lines),
for CSV and JSON Lines alike; 0.1's row-number externalRefIDs keep 0.1's numbering."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tango_async as ta
from tango_async._validation import prepare_order
from tango_async.bulk._inputs import _STAND_INS, InputFileError, InputRow, read_orders
from tango_async.bulk._job import plan_rows

HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"
GOOD = "cust-12345,acct-12345,U561593,10.00,ann@example.com,Ann"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def fields(row: InputRow) -> list[str]:
    return [e.field for e in row.errors]


def wire(**kw: Any) -> str:
    base: dict[str, Any] = {
        "customerIdentifier": "cust-12345",
        "accountIdentifier": "acct-12345",
        "utid": "U561593",
        "amount": 10,
        "recipient": {"email": "ann@example.com", "firstName": "Ann"},
    }
    base.update(kw)
    return json.dumps(base)


def test_every_bad_field_of_a_csv_row_is_reported(tmp_path: Path) -> None:
    """Before: only the first rule broken was reported (prepare_order stops at it)."""
    p = write(
        tmp_path,
        "o.csv",
        f"{HEADER}\n{GOOD}\nx,acct-12345,X1,10.001,nope,Ann\n",
    )
    ok, bad = read_orders(p)
    assert ok.errors == () and ok.request is not None
    assert bad.request is None
    assert fields(bad) == ["customer_identifier", "utid", "amount", "recipient.email"]
    assert {e.row for e in bad.errors} == {3}


def test_type_errors_and_rule_errors_of_one_row_all_come(tmp_path: Path) -> None:
    """Before: a cell that did not read (amount 'abc') hid every rule of the others."""
    p = write(tmp_path, "o.csv", f"{HEADER}\nx,acct-12345,X1,abc,bad,\n")
    (row,) = read_orders(p)
    assert fields(row) == [
        "amount",  # does not read as a number
        "customer_identifier",
        "utid",
        "recipient.first_name",  # EMAIL delivery needs one
        "recipient.email",
    ]
    assert row.errors[0].rule == "must be a number like 10.00 (got 'abc')"


def test_one_error_per_field(tmp_path: Path) -> None:
    """A bad email is one error, not also "EMAIL delivery needs an email" once it is out."""
    (row,) = read_orders(write(tmp_path, "o.csv", f"{HEADER}\n{GOOD.replace('ann@', 'ann')}\n"))
    assert [(e.field, e.rule) for e in row.errors] == [
        ("recipient.email", "must be an email address like name@example.com")
    ]


def test_a_bad_delivery_method_does_not_invent_method_rules(tmp_path: Path) -> None:
    header = HEADER + ",delivery_method,recipient.mobile_number"
    p = write(tmp_path, "o.csv", f"{header}\ncust-12345,acct-12345,X1,10.00,,Ann,PHONEE,\n")
    (row,) = read_orders(p)
    # the utid and the method; not "recipient.email is required for EMAIL delivery": the
    # method the row meant is not known
    assert fields(row) == ["utid", "delivery_method"]


def test_csv_rows_are_numbered_by_file_line(tmp_path: Path) -> None:
    """Before: rows counted data records (the first one after the header was row 1)."""
    text = (
        "\n"  # line 1: blank, before the header
        f"{HEADER},message\n"  # line 2
        f"{GOOD},hi\n"  # line 3
        "\n"  # line 4: blank, no order
        f'cust-12345,acct-12345,X1,10.00,b@example.com,Bo,"one\ntwo\nthree"\n'  # 5-7
        f"{GOOD.replace('ann@', 'c@')},bad amount\n"  # line 8
        f"x,acct-12345,U561593,1.00,d@example.com,Di,\n"  # line 9
    )
    rows = read_orders(write(tmp_path, "o.csv", text))
    assert [r.row for r in rows] == [3, 5, 8, 9]
    assert [e.row for r in rows for e in r.errors] == [5, 9]
    assert str(rows[1].errors[0]) == "row 5, utid: must be U followed by digits (e.g. U561593)"


def test_crlf_and_cr_line_ends_count_as_lines(tmp_path: Path) -> None:
    text = f"{HEADER}\r\n{GOOD}\r\n\r\nx,acct-12345,U561593,1.00,a@example.com,A\r\n"
    rows = read_orders(write(tmp_path, "o.csv", text))
    assert [r.row for r in rows] == [2, 4]
    p = tmp_path / "cr.csv"
    p.write_bytes(f"{HEADER}\r{GOOD}\rx,acct-12345,U561593,1.00,a@example.com,A\r".encode())
    assert [r.row for r in read_orders(p)] == [2, 3]


def test_jsonl_every_bad_field_by_line(tmp_path: Path) -> None:
    lines = [
        wire(),  # 1
        "",  # 2: blank
        wire(customerIdentifier="x", utid="X1", amount="ten"),  # 3
        wire(recipient={"email": "nope"}, amount=10.001),  # 4
    ]
    rows = read_orders(write(tmp_path, "o.jsonl", "\n".join(lines) + "\n"))
    assert [r.row for r in rows] == [1, 3, 4]
    assert fields(rows[1]) == ["amount", "customer_identifier", "utid"]
    assert fields(rows[2]) == ["amount", "recipient.first_name", "recipient.email"]
    assert {e.row for e in rows[2].errors} == {4}


def test_the_invalid_rows_carry_every_error_into_the_plan(tmp_path: Path) -> None:
    p = write(tmp_path, "o.csv", f"{HEADER}\n{GOOD}\nx,acct-12345,X1,10.001,nope,Ann\n")
    plan = plan_rows(read_orders(p))
    assert [n for n, _, _ in plan.rows] == [2]
    assert [(e.row, e.field) for e in plan.errors] == [
        (3, "customer_identifier"),
        (3, "utid"),
        (3, "amount"),
        (3, "recipient.email"),
    ]


def test_row_number_refs_keep_0_1_numbering(tmp_path: Path) -> None:
    """0.1's ``{job_id}r{row}`` refs were made of the record number: a job 0.1 started
    is finished with the same externalRefIDs (never paid twice), whatever the lines."""
    text = f"{HEADER},message\n" + f'{GOOD},"two\nlines"\n' + f"{GOOD.replace('ann@', 'bo@')},x\n"
    rows = read_orders(write(tmp_path, "o.csv", text))
    assert [r.row for r in rows] == [2, 4] and [r.record for r in rows] == [1, 2]
    plan = plan_rows(rows, job_id="abc123")
    assert [ref for _, ref, _ in plan.rows] == ["abc123r1", "abc123r2"]
    jl = write(tmp_path, "o.jsonl", "\n" + wire() + "\n")
    assert [ref for _, ref, _ in plan_rows(read_orders(jl), job_id="abc123").rows] == ["abc123r2"]


def test_content_refs_do_not_depend_on_line_numbers(tmp_path: Path) -> None:
    one = write(tmp_path, "a.csv", f"{HEADER}\n{GOOD}\n")
    two = write(tmp_path, "b.csv", f"\n\n{HEADER}\n\n\n{GOOD}\n")
    a, b = plan_rows(read_orders(one)), plan_rows(read_orders(two))
    assert [r[0] for r in a.rows] == [2] and [r[0] for r in b.rows] == [6]
    assert [r[1] for r in a.rows] == [r[1] for r in b.rows] and a.identity == b.identity


def test_a_missing_required_column_is_a_file_error(tmp_path: Path) -> None:
    p = write(tmp_path, "o.csv", "customer_identifier,account_identifier,recipient.email\nx,y,z\n")
    with pytest.raises(InputFileError, match=r"no 'utid', 'amount' columns") as e:
        read_orders(p)
    assert "\n" not in str(e.value)


def test_the_stand_ins_meet_every_rule() -> None:
    """The values put in place of a bad one must add no error of their own."""
    s = _STAND_INS
    req = ta.CreateOrderRequest(
        s["customer_identifier"],
        s["account_identifier"],
        s["utid"],
        s["amount"],
        recipient=ta.Recipient(
            first_name=s["first_name"],
            last_name=s["last_name"],
            email=s["email"],
            mobile_number=s["mobile_number"],
            address=ta.Address(
                street_line1=s["street_line1"],
                city=s["city"],
                state_or_province=s["state_or_province"],
                postal_code=s["postal_code"],
                country=s["country"],
            ),
        ),
    )
    prepare_order(req)  # ADDRESS delivery: the strictest rules
    phone = ta.CreateOrderRequest(
        s["customer_identifier"],
        s["account_identifier"],
        s["utid"],
        Decimal(1),
        delivery_method="PHONE",
        recipient=ta.Recipient(first_name="A", mobile_number=s["mobile_number"]),
    )
    prepare_order(phone)
