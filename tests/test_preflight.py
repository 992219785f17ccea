"""The bulk pre-flight (issue 15, point 4): costs per account and currency (conversion,
fees), balances, catalog rules per row, what cannot be read, the refusal; with fakes,
against the sandbox (submit_many) and with aioresponses for every error status."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

import tango_async as ta
from tango_async.bulk import (
    BalanceCheckError,
    BulkJob,
    BulkValidationError,
    Journal,
    Preflight,
    RowState,
    plan_rows,
    preflight_lines,
    run_preflight,
)
from tango_async.bulk._inputs import RowError
from tango_async.bulk._preflight import fee_of
from tango_async.testing import Sandbox
from tango_async.types.catalog import (
    Brand,
    Catalog,
    CatalogItem,
    CostAdjustment,
)
from tango_async.types.exchange_rates import ExchangeRate, ExchangeRates

from .conftest import BASE, FAST_RETRY, order_request

# --- fakes ------------------------------------------------------------------------------------


def item(utid: str, name: str, **kw: Any) -> CatalogItem:
    fields: dict[str, Any] = {
        "utid": utid,
        "reward_name": name,
        "currency_code": "USD",
        "status": "active",
        "value_type": "VARIABLE_VALUE",
        "min_value": Decimal("1"),
        "max_value": Decimal("500"),
    }
    fields.update(kw)
    return CatalogItem(**fields)


CATALOG = Catalog(
    catalog_name="Test catalog",
    brands=[
        Brand(
            brand_key="B1",
            brand_name="Amazon.com",
            status="active",
            items=[
                item("U1", "Amazon.com Gift Card"),
                item("U2", "Amazon.de Gutschein", currency_code="EUR"),
                item("U3", "Fixed 25", value_type="FIXED_VALUE", face_value=Decimal("25")),
                item("U4", "Gone", status="inactive"),
                item(
                    "U5",
                    "With a 2% fee",
                    fee=CostAdjustment(type="PERCENTAGE", value=Decimal("2")),
                ),
                item("U6", "Flat fee", fee=CostAdjustment(type="FLAT", value=Decimal("0.5"))),
                item("U7", "Odd fee", fee=CostAdjustment(type="TIERED", value=Decimal("1"))),
                item("U8", "Canadian", currency_code="CAD"),
            ],
        )
    ],
)
RATES = ExchangeRates(
    disclaimer="for reference",
    exchange_rates=[
        ExchangeRate(reward_currency="EUR", base_currency="USD", base_fx=Decimal("1.1"))
    ],
)


class FakeAccounts:
    def __init__(self, found: dict[str, ta.Account | Exception]) -> None:
        self.found = found
        self.asked: list[str] = []

    async def get(self, account_identifier: str, /) -> ta.Account:
        self.asked.append(account_identifier)
        got = self.found.get(account_identifier)
        if got is None:
            raise error(ta.NotFoundError, 404)
        if isinstance(got, Exception):
            raise got
        return got


class FakeReader:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls = 0

    async def get(self) -> Any:
        self.calls += 1
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class FakeClient:
    def __init__(
        self,
        accounts: dict[str, ta.Account | Exception],
        catalog: Any = CATALOG,
        rates: Any = RATES,
    ) -> None:
        self.accounts = FakeAccounts(accounts)
        self.catalog = FakeReader(catalog)
        self.exchange_rates = FakeReader(rates)


def error(kind: type[ta.APIError], status: int) -> ta.APIError:
    return kind(f"HTTP {status}", status_code=status, path="/x")


def account(aid: str, balance: str | None, currency: str = "USD", **kw: Any) -> ta.Account:
    return ta.Account(
        account_identifier=aid,
        currency_code=currency,
        current_balance=None if balance is None else Decimal(balance),
        status=kw.pop("status", "ACTIVE"),
        **kw,
    )


def rows(*specs: tuple[str, str, str | int]) -> list[tuple[int, str, bytes]]:
    """Plan rows of (account, utid, amount)."""
    plan = plan_rows(
        [
            order_request(account_identifier=a, utid=u, amount=Decimal(str(amt)))
            for a, u, amt in specs
        ]
    )
    assert not plan.errors
    return plan.rows


# --- costs per account and currency -----------------------------------------------------------


async def test_costs_per_account_and_currency_with_conversion() -> None:
    client = FakeClient(
        {"acct-aaaa": account("acct-aaaa", "100"), "acct-bbbb": account("acct-bbbb", "5")}
    )
    planned = rows(
        ("acct-aaaa", "U1", 10),
        ("acct-aaaa", "U1", "12.50"),
        ("acct-aaaa", "U2", 20),  # 20 EUR = 22.00 USD
        ("acct-bbbb", "U1", 10),
    )
    pf = await run_preflight(client, planned)
    assert pf.rows == 4 and not pf.invalid and pf.catalog_checked
    a, b = pf.accounts
    assert (a.account_identifier, a.currency_code, a.rows) == ("acct-aaaa", "USD", 3)
    usd, eur = a.lines
    assert (usd.currency_code, usd.rows, usd.face_value, usd.cost) == (
        "USD",
        2,
        Decimal("22.50"),
        Decimal("22.50"),
    )
    assert (eur.currency_code, eur.rows, eur.face_value, eur.cost) == (
        "EUR",
        1,
        Decimal("20"),
        Decimal("22.00"),
    )
    assert a.cost == Decimal("44.50") and a.balance == Decimal("100")
    assert a.ok is True and a.shortfall == 0
    assert b.cost == Decimal("10") and b.balance == Decimal("5")
    assert b.ok is False and b.shortfall == Decimal("5")
    assert pf.short == (b,) and not pf.ok and pf.balances_checked
    assert pf.result() == "refused" and pf.result(balance_check=False) == "skipped"
    # the rates are read once, only because a currency differs; each account once
    assert client.exchange_rates.calls == 1 and client.catalog.calls == 1
    assert sorted(client.accounts.asked) == ["acct-aaaa", "acct-bbbb"]


async def test_no_exchange_rates_read_when_every_currency_is_the_accounts() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "100")})
    pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10)))
    assert client.exchange_rates.calls == 0
    assert pf.result() == "ok" and pf.ok and pf.balances_checked


async def test_fees_percentage_flat_and_unknown() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "1000")})
    pf = await run_preflight(
        client,
        rows(
            ("acct-aaaa", "U5", 100),  # 2% -> 2
            ("acct-aaaa", "U5", 50),  # 2% -> 1
            ("acct-aaaa", "U6", 10),  # flat 0.5
            ("acct-aaaa", "U7", 10),  # unknown type: not counted, said so
        ),
    )
    (line,) = pf.accounts[0].lines
    assert line.face_value == Decimal("170") and line.fees == Decimal("3.5")
    assert line.total == Decimal("173.5") and pf.accounts[0].cost == Decimal("173.5")
    assert any("U7" in n and "TIERED" in n and "not counted" in n for n in pf.unchecked)
    assert fee_of(item("U9", "x"), Decimal(10)) == (Decimal(0), None)
    negative = item("U9", "x", fee=CostAdjustment(type="FLAT", value=Decimal("-1")))
    assert fee_of(negative, Decimal(10))[0] == 0 and fee_of(negative, Decimal(10))[1]


async def test_a_missing_rate_leaves_the_cost_unknown_not_a_refusal() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "1")})
    pf = await run_preflight(client, rows(("acct-aaaa", "U8", 100)))  # CAD, no CAD rate
    (a,) = pf.accounts
    assert a.cost is None and a.ok is None and a.shortfall is None
    assert a.lines[0].note is not None and "no exchange rate links CAD and USD" in a.lines[0].note
    assert pf.ok and pf.result() == "warning"


async def test_unreachable_exchange_rates_are_said_once() -> None:
    client = FakeClient(
        {"acct-aaaa": account("acct-aaaa", "1")},
        rates=error(ta.PermissionDeniedError, 403),
    )
    pf = await run_preflight(client, rows(("acct-aaaa", "U2", 10), ("acct-aaaa", "U8", 10)))
    assert client.exchange_rates.calls == 1
    assert [n for n in pf.unchecked if "exchange rates not reachable (403" in n]
    assert pf.accounts[0].ok is None and pf.result() == "warning"


# --- what cannot be read ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        error(ta.PermissionDeniedError, 403),
        error(ta.NotFoundError, 404),
        error(ta.ServerError, 503),
        ta.APIConnectionError("connection refused"),
    ],
)
async def test_unreachable_catalog_is_said_and_the_rest_goes_on(failure: Exception) -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "15")}, catalog=failure)
    # U4 is inactive and 9999 out of range: not known without the catalog
    pf = await run_preflight(client, rows(("acct-aaaa", "U4", 10), ("acct-aaaa", "U1", 9999)))
    assert not pf.catalog_checked and not pf.invalid and pf.rows == 2
    (note,) = pf.unchecked
    assert note.startswith("catalog not reachable (") and "catalog rules not checked" in note
    (a,) = pf.accounts
    assert a.lines[0].currency_code == "USD"  # taken to be the account's
    assert a.cost == Decimal("10009") and a.ok is False  # the balance is still checked


@pytest.mark.parametrize(
    ("failure", "shown"),
    [
        (error(ta.PermissionDeniedError, 403), "403 PermissionDeniedError"),
        (error(ta.NotFoundError, 404), "404 NotFoundError"),
        (ta.APITimeoutError("timed out"), "APITimeoutError: timed out"),
    ],
)
async def test_an_unreadable_balance_is_a_warning_not_a_refusal(
    failure: Exception, shown: str
) -> None:
    client = FakeClient({"acct-aaaa": failure, "acct-bbbb": account("acct-bbbb", "100")})
    pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10), ("acct-bbbb", "U1", 10)))
    a, b = pf.accounts
    assert a.balance is None and a.ok is None and a.cost is None
    assert a.notes == (f"balance not readable ({shown}): not checked",)
    assert b.ok is True
    assert pf.ok and not pf.balances_checked and pf.result() == "warning"
    text = "\n".join(pf.lines())
    assert "warning" in text and "acct-aaaa" in text and "not checked" in text


async def test_an_account_that_is_not_active_is_noted() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "100", status="FROZEN")})
    pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10)))
    assert any("FROZEN" in n for n in pf.accounts[0].notes)


async def test_account_without_a_balance_is_not_checked() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", None)})
    pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10)))
    assert pf.accounts[0].ok is None and "no balance" in pf.accounts[0].notes[0]


# --- catalog rules per row ----------------------------------------------------------------------


async def test_rows_the_catalog_refuses_are_invalid_rows_with_field_and_rule() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "1000")})
    planned = rows(
        ("acct-aaaa", "U1", 10),  # ok
        ("acct-aaaa", "U1", 501),  # above the range
        ("acct-aaaa", "U3", 20),  # not the face value
        ("acct-aaaa", "U4", 10),  # inactive
        ("acct-aaaa", "U000000", 10),  # not in the catalog
    )
    earlier = [RowError(9, "amount", "must be greater than 0")]
    pf = await run_preflight(client, planned, invalid=earlier)
    assert pf.catalog_invalid == {2, 3, 4, 5}
    found = {(e.row, e.field) for e in pf.invalid}
    assert found == {(2, "amount"), (3, "amount"), (4, "utid"), (5, "utid"), (9, "amount")}
    by_row = {e.row: e.rule for e in pf.invalid}
    assert "between 1 and 500 USD" in by_row[2] and "U1 (Amazon.com Gift Card)" in by_row[2]
    assert "must be 25 USD" in by_row[3]
    assert "inactive" in by_row[4] and "not in it" in by_row[5]
    assert pf.rows == 1 and pf.accounts[0].rows == 1 and pf.accounts[0].cost == 10
    assert [e.row for e in pf.invalid] == sorted(e.row for e in pf.invalid)


async def test_check_catalog_off_reads_no_catalog() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "1000")})
    pf = await run_preflight(client, rows(("acct-aaaa", "U4", 10)), check_catalog=False)
    assert client.catalog.calls == 0 and not pf.catalog_checked and not pf.invalid


async def test_check_balances_off_reads_no_account() -> None:
    client = FakeClient({"acct-aaaa": account("acct-aaaa", "1")})
    pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10)), check_balances=False)
    assert client.accounts.asked == [] and pf.accounts[0].ok is None


# --- the refusal, the record, the words ---------------------------------------------------------


async def test_refusal_names_account_balance_cost_shortfall_and_remedy() -> None:
    client = FakeClient({"acct-bbbb": account("acct-bbbb", "5.25")})
    pf = await run_preflight(client, rows(("acct-bbbb", "U1", 10), ("acct-bbbb", "U1", 20)))
    e = BalanceCheckError(pf)
    text = str(e)
    assert e.preflight is pf and isinstance(e, ta.TangoError)
    assert "account acct-bbbb: balance 5.25 USD" in text
    assert "estimated cost of its 2 row(s) 30 USD" in text and "short by 24.75 USD" in text
    assert "nothing sent" in text and "balance_check=False" in text
    assert "--no-balance-check" in pf.refusal("pass --no-balance-check")


async def test_record_is_json_and_its_words_show_cost_balance_and_verdict() -> None:
    import json

    client = FakeClient({"acct-aaaa": account("acct-aaaa", "100")})
    pf = await run_preflight(client, rows(("acct-aaaa", "U1", 10), ("acct-aaaa", "U2", 10)))
    record = pf.record()
    assert json.loads(json.dumps(record)) == record
    assert record["result"] == "ok" and record["rows"] == 2
    (acct,) = record["accounts"]
    assert acct["cost"] == "21.00" and acct["balance"] == "100" and acct["ok"] is True
    lines = preflight_lines(record)
    assert lines[0].startswith("balance check ") and "ok" in lines[0]
    assert re.match(r"balance check \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[0])
    assert any(
        "account acct-aaaa: 2 row(s), estimated cost 21.00 USD, balance 100 USD" in x for x in lines
    )
    assert any("10 EUR = 11.00 USD" in x for x in lines)


def test_words_of_a_hostile_or_odd_record_are_escaped_and_never_raise() -> None:
    record: dict[str, Any] = {
        "result": "\x1b[31mok",
        "checked_at": "not a time\n",
        "rows": 1,
        "accounts": [
            "junk",
            {"account_identifier": "a\x1b]0;x\x07", "ok": False, "lines": [None, {}]},
        ],
        "unchecked": ["line\rforged"],
    }
    lines = preflight_lines(record)
    assert all(x.isprintable() for x in lines)
    assert preflight_lines({}) == ["balance check ?: ?"]


def test_preflight_is_frozen() -> None:
    from dataclasses import FrozenInstanceError
    from datetime import UTC, datetime

    pf = Preflight(1, (), (), (), True, datetime.now(UTC))
    with pytest.raises(FrozenInstanceError):
        pf.rows = 2  # type: ignore[misc]


# --- submit_many against the sandbox ------------------------------------------------------------


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None) as server:
        yield server


@pytest.fixture
async def client(sb: Sandbox) -> AsyncIterator[ta.TangoClient]:
    async with sb.client(retry=FAST_RETRY) as tango:
        yield tango


def posts(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests if r.method == "POST" and r.path.endswith("/orders"))


def to(aid: str, *amounts: int, utid: str = "U561593") -> list[ta.CreateOrderRequest]:
    return [order_request(account_identifier=aid, utid=utid, amount=a) for a in amounts]


async def test_submit_many_refuses_a_job_the_balance_cannot_cover(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    sb.add_account("acct-short", balance=Decimal("25"))
    path = tmp_path / "j.journal"
    job = client.orders.submit_many(to("acct-short", 10, 10, 10), journal=path)
    with pytest.raises(BalanceCheckError) as info:
        [r async for r in job]
    assert "acct-short" in str(info.value) and "short by 5 USD" in str(info.value)
    assert posts(sb) == 0 and not path.exists() and job.journal is None
    assert sb.balance("acct-short") == Decimal("25")
    with pytest.raises(BalanceCheckError):  # the same answer again
        await job.preflight()


async def test_balance_check_off_sends_and_the_402_stops_the_job(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    sb.add_account("acct-short", balance=Decimal("25"))
    path = tmp_path / "j.journal"
    job = client.orders.submit_many(
        to("acct-short", 10, 10, 10), journal=path, balance_check=False, concurrency=1
    )
    results = {r.row: r for r in [r async for r in job]}
    assert job.checked is not None and job.checked.short
    assert [results[n].outcome for n in sorted(results)] == ["created", "created", "pending"]
    assert results[3].http_status == 402 and job.stopped_by is not None
    assert job.journal is not None
    assert job.journal.preflight is not None and job.journal.preflight["result"] == "skipped"
    job.journal.close()


async def test_dry_run_reports_the_shortfall_and_sends_nothing(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    sb.add_account("acct-short", balance=Decimal("25"))
    path = tmp_path / "j.journal"
    job = client.orders.submit_many(
        [*to("acct-short", 10, 20), *to("acct-short", 7, utid="U100010")],
        journal=path,
        dry_run=True,
    )
    results = [r async for r in job]
    assert sorted((r.row, r.outcome) for r in results) == [
        (1, "planned"),
        (2, "planned"),
        (3, "invalid"),
    ]
    bad = next(r for r in results if r.outcome == "invalid")
    assert bad.message is not None and bad.message.startswith("amount: must be 10 USD")
    assert job.checked is not None and job.checked.short[0].shortfall == Decimal("5")
    assert posts(sb) == 0 and not path.exists()
    assert all(r.method == "GET" for r in sb.requests)


async def test_a_catalog_invalid_row_is_refused_before_anything_is_sent(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.journal"
    job = client.orders.submit_many(
        [*to("acct-12345", 10), *to("acct-12345", 5000)], journal=path
    )  # Amazon.com: 0.01 to 2000
    with pytest.raises(BulkValidationError) as info:
        [r async for r in job]
    [(row, fld)] = [(e.row, e.field) for e in info.value.errors]
    assert (row, fld) == (2, "amount") and "between 0.01 and 2000 USD" in str(info.value)
    assert posts(sb) == 0 and not path.exists()


async def test_skip_invalid_journals_the_catalog_refused_rows_as_invalid(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.journal"
    reqs = [*to("acct-12345", 10), *to("acct-12345", 5000), *to("acct-12345", 3, utid="U999001")]
    job = client.orders.submit_many(reqs, journal=path, skip_invalid=True)
    results = {r.row: r for r in [r async for r in job]}
    assert results[1].outcome == "created"
    assert {results[2].outcome, results[3].outcome} == {"invalid"}
    assert posts(sb) == 1
    assert job.journal is not None
    job.journal.close()
    with Journal.open(path) as journal:  # checksums verified with the new meta key
        assert journal.counts()[RowState.INVALID] == 2
        assert journal.get(3).message is not None and "utid:" in (journal.get(3).message or "")
        record = journal.preflight
        assert record is not None and record["catalog_invalid_rows"] == 2
        assert record["result"] == "warning"  # acct-12345 is not known to the sandbox
        # the same orders submitted again find this journal (identity of the format plan)
        assert journal.identity == plan_rows(reqs).identity
    p = job.progress()
    assert (p.total, p.done, p.failed) == (3, 1, 2)


async def test_preflight_false_reads_nothing_first(sb: Sandbox, client: ta.TangoClient) -> None:
    job = client.orders.submit_many(to("acct-12345", 10), preflight=False)
    [r async for r in job]
    assert job.checked is None
    assert [r.method for r in sb.requests] == ["POST"]


async def test_a_registered_account_with_funds_passes_and_is_recorded_ok(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    sb.add_account("acct-rich", balance=Decimal("1000"))
    path = tmp_path / "j.journal"
    job = client.orders.submit_many(to("acct-rich", 10, 20), journal=path)
    assert job.journal is None  # made after the pre-flight
    checked = await job.preflight()
    assert checked is not None and checked.result() == "ok"
    assert job.journal is not None and path.exists()
    assert {r.outcome async for r in job} == {"created"}
    assert sb.balance("acct-rich") == Decimal("970")
    assert job.journal.preflight is not None
    assert job.journal.preflight["accounts"][0]["balance"] == "1000"
    job.journal.close()


async def test_resume_runs_no_preflight(
    sb: Sandbox, client: ta.TangoClient, tmp_path: Path
) -> None:
    sb.add_account("acct-rich", balance=Decimal("1000"))
    path = tmp_path / "j.journal"
    job = client.orders.submit_many(to("acct-rich", 10, 20, 30), journal=path, concurrency=1)
    async for _ in job:
        job.stop()
    assert job.journal is not None
    job.journal.close()
    before = len(sb.requests)
    with Journal.open(path) as journal:
        rest = [r async for r in BulkJob.resume(client, journal)]
        assert rest and {r.outcome for r in rest} == {"created"}
        assert journal.preflight is not None and journal.preflight["result"] == "ok"
    assert all(r.method == "POST" for r in sb.requests[before:])


async def test_journal_path_taken_is_refused_at_once(
    client: ta.TangoClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.journal"
    path.write_bytes(b"x")
    with pytest.raises(ta.bulk.JournalError):
        client.orders.submit_many(to("acct-12345", 10), journal=path)
    assert path.read_bytes() == b"x"


async def test_bad_flags_are_validation_errors(client: ta.TangoClient) -> None:
    with pytest.raises(ta.ValidationError, match="balance_check"):
        client.orders.submit_many(to("acct-12345", 10), balance_check="no")  # type: ignore[arg-type]
    with pytest.raises(ta.ValidationError, match="preflight"):
        client.orders.submit_many(to("acct-12345", 10), preflight=1)  # type: ignore[arg-type]


async def test_contract_holds_over_the_preflight_routes(tmp_path: Path) -> None:
    async with Sandbox(order_rate=None, contract=True) as server:
        server.add_account("acct-eur0", balance=Decimal("50"), currency_code="EUR")
        async with server.client(retry=FAST_RETRY) as tango:
            job = tango.orders.submit_many(
                [*to("acct-eur0", 10), *to("acct-eur0", 10, utid="U300100")],
                journal=tmp_path / "c.journal",
            )
            results = [r async for r in job]
        assert {r.outcome for r in results} == {"created"}
        assert job.checked is not None
        (a,) = job.checked.accounts
        assert a.currency_code == "EUR" and a.ok is True and a.cost is not None
        usd = next(line for line in a.lines if line.currency_code == "USD")
        assert usd.cost is not None and usd.cost != usd.face_value  # converted
        paths = {(r.method, r.path.split("/raas/v2")[-1]) for r in server.requests}
        assert {
            ("GET", "/catalogs"),
            ("GET", "/accounts/acct-eur0"),
            ("GET", "/exchangerates"),
        } <= paths
        assert server.contract_violations == []
        assert job.journal is not None
        job.journal.close()


# --- aioresponses: every error status of the reads ----------------------------------------------


ACCOUNT_URL = re.compile(r"^https://api\.test\.invalid/raas/v2/accounts/.*$")
CATALOG_URL = re.compile(r"^https://api\.test\.invalid/raas/v2/catalogs.*$")
RATES_URL = re.compile(r"^https://api\.test\.invalid/raas/v2/exchangerates.*$")
ORDERS_URL = f"{BASE}/orders"


def tango_error(status: int) -> dict[str, Any]:
    return {
        "timestamp": "2026-01-01T00:00:00Z",
        "requestId": "r-1",
        "path": "/x",
        "httpCode": status,
        "httpPhrase": "x",
        "i18nKey": f"{status}.001",
        "message": "refused",
    }


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500, 502, 503])
async def test_every_error_status_of_the_reads_is_noted_and_nothing_is_sent(
    mocked_client: ta.TangoClient, status: int
) -> None:
    with aioresponses() as m:
        for url in (CATALOG_URL, ACCOUNT_URL, RATES_URL):
            m.get(url, status=status, payload=tango_error(status), repeat=True)
        job = mocked_client.orders.submit_many(to("acct-12345", 10, 20), dry_run=True)
        results = [r async for r in job]
        assert {r.outcome for r in results} == {"planned"}
        assert job.checked is not None
        assert job.checked.unchecked[0].startswith(f"catalog not reachable ({status} ")
        (a,) = job.checked.accounts
        assert a.ok is None and a.notes[0].startswith(f"balance not readable ({status} ")
        assert not any(k[0] == "POST" for k in m.requests)


async def test_a_429_on_a_read_is_retried_and_the_preflight_completes(
    mocked_client: ta.TangoClient,
) -> None:
    catalog = {
        "catalogName": "c",
        "brands": [
            {
                "brandKey": "B",
                "brandName": "Amazon.com",
                "items": [
                    {
                        "utid": "U561593",
                        "rewardName": "Amazon.com Gift Card",
                        "currencyCode": "USD",
                        "status": "active",
                        "valueType": "VARIABLE_VALUE",
                        "minValue": 0.01,
                        "maxValue": 2000,
                    }
                ],
            }
        ],
    }
    with aioresponses() as m:
        m.get(CATALOG_URL, status=429, payload=tango_error(429), headers={"Retry-After": "0"})
        m.get(CATALOG_URL, payload=catalog)
        m.get(
            ACCOUNT_URL,
            payload={
                "accountIdentifier": "acct-12345",
                "currencyCode": "USD",
                "currentBalance": 99,
            },
        )
        job = mocked_client.orders.submit_many(to("acct-12345", 10, 2500), dry_run=True)
        results = {r.row: r.outcome for r in [r async for r in job]}
    assert results == {1: "planned", 2: "invalid"}
    assert job.checked is not None and job.checked.catalog_checked
    assert job.checked.result() == "ok"


async def test_a_network_failure_of_the_reads_is_noted(mocked_client: ta.TangoClient) -> None:
    with aioresponses():  # nothing mocked: every request fails to connect
        job = mocked_client.orders.submit_many(to("acct-12345", 10), dry_run=True)
        results = [r async for r in job]
    assert [r.outcome for r in results] == ["planned"]
    assert job.checked is not None and "APIConnectionError" in job.checked.unchecked[0]
    assert "APIConnectionError" in job.checked.accounts[0].notes[0]


async def test_with_aioresponses_a_short_balance_refuses_and_posts_nothing(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(CATALOG_URL, status=403, payload=tango_error(403))
        m.get(
            ACCOUNT_URL,
            payload={
                "accountIdentifier": "acct-12345",
                "currencyCode": "USD",
                "currentBalance": 15,
            },
        )
        job = mocked_client.orders.submit_many(to("acct-12345", 10, 20))
        with pytest.raises(BalanceCheckError, match="short by 15 USD"):
            [r async for r in job]
        assert not any(k[0] == "POST" for k in m.requests)
