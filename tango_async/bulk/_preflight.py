"""The pre-flight of a bulk job: what its rows will cost each account, against each balance,
and which rows the catalog refuses, before anything is sent.

:func:`run_preflight` reads (never writes) three things of the client: the catalog (its
cached copy: ``client.catalog.get()``), each account named by the rows
(``client.accounts.get(id)``) and, only when an item's currency differs from its account's,
the exchange rates (``client.exchange_rates.get()``, cached too). From them:

- **Catalog rules per row** (:meth:`~tango_async.Catalog.check`): a row whose utid is not in
  the catalog or not active, or whose amount is not the item's face value or outside its
  range, is an invalid row (``RowError(row, field, rule)``), reported like the rows that
  break a format rule, and never sent.
- **Cost per account and currency**: for each (account, reward currency): the rows, their
  total face value, the items' fees and the estimated cost in the account's currency
  (converted with :meth:`~tango_async.ExchangeRates.convert` when the currencies differ).
- **Balance per account**: ``current_balance`` against the cost; the shortfall, if any.

Whatever cannot be read (a 403 for a platform without that permission, a 404, the
network) is said, per account or for the catalog, and the pre-flight goes on: a catalog
that cannot be fetched means "catalog rules not checked" (the amounts are then taken to be
in each account's currency), an account that cannot be read means "balance not checked".
Neither refuses the job: only a balance known to be short does (:class:`BalanceCheckError`,
unless the balance check is off).

**Limits of the estimate.** It is an estimate, not a quote: Tango charges each order at
the exchange rate in effect when it is placed (the rates are for reference, and change
once a day), and computes fees itself. Fees are counted as the catalog states them (an
item's ``fee``: a percentage of the face value when its type says so, otherwise a flat
amount per order in the item's currency; a fee of a type not recognised is left out and
said so); an account's other charges, and orders placed meanwhile by anyone else, are
not known. Rows whose outcome is already settled (a resumed job) are not its business:
:meth:`tango_async.bulk.BulkJob.resume` does not run a pre-flight.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

import msgspec

from .._exceptions import APIConnectionError, APIError, TangoError, ValidationError
from .._logs import escape
from .._validation import plain_decimal
from ..types.accounts import Account
from ..types.catalog import Catalog, CatalogItem
from ..types.exchange_rates import ExchangeRates
from ._format import format_time
from ._inputs import RowError

__all__ = [
    "AccountCheck",
    "BalanceCheckError",
    "CostLine",
    "Preflight",
    "PreflightClient",
    "fee_of",
    "preflight_lines",
    "run_preflight",
]

Result = Literal["ok", "refused", "skipped", "warning"]
RECORD_VERSION = 1
_ACCOUNT_READS = 4  # accounts looked up at once
_PERCENT = ("percent", "pct", "%")
_FLAT = ("flat", "fixed", "amount", "value", "fee")
_SHOWN = 60  # characters of a server or user text shown in a note
# A fee or converted cost from the API at or above this is not a usable figure (Decimal
# arithmetic on 1E+999999999 overflows): it is said, not counted.
_MAX_FIGURE = Decimal(10) ** 18
_CODE = re.compile(r"[A-Z0-9]{1,10}")  # what a currency code can look like


class _AccountReader(Protocol):
    async def get(self, account_identifier: str, /) -> Account: ...


class _CatalogReader(Protocol):
    async def get(self) -> Catalog: ...


class _RatesReader(Protocol):
    async def get(self) -> ExchangeRates: ...


class PreflightClient(Protocol):
    """What a pre-flight reads of a client (a :class:`~tango_async.TangoClient` has it):
    ``accounts.get(id)``, ``catalog.get()`` and ``exchange_rates.get()``."""

    @property
    def accounts(self) -> _AccountReader: ...

    @property
    def catalog(self) -> _CatalogReader: ...

    @property
    def exchange_rates(self) -> _RatesReader: ...


@dataclass(frozen=True, slots=True)
class CostLine:
    """The rows of one account in one reward currency: ``face_value`` (the sum of their
    amounts) and ``fees`` in ``currency_code`` (None: unknown, the catalog being
    unreachable and the account's currency too), and ``cost``, their estimated cost in
    the account's currency (None when it could not be estimated: see ``note``)."""

    currency_code: str | None
    rows: int
    face_value: Decimal
    fees: Decimal
    cost: Decimal | None
    note: str | None = None

    @property
    def total(self) -> Decimal:
        """Face value and fees, in the line's currency."""
        return self.face_value + self.fees


@dataclass(frozen=True, slots=True)
class AccountCheck:
    """One account of the job: its ``rows``, their :class:`CostLine` per reward currency,
    the estimated ``cost`` in the account's ``currency_code`` (None when a line's could
    not be estimated), its ``balance`` (None when it could not be read), the
    ``shortfall`` (cost above the balance; 0 when covered, None when not checked) and
    ``ok`` (True covered, False short, None not checked). ``notes`` say what could not
    be checked and why."""

    account_identifier: str
    currency_code: str | None
    rows: int
    lines: tuple[CostLine, ...]
    cost: Decimal | None
    balance: Decimal | None
    shortfall: Decimal | None
    ok: bool | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Preflight:
    """A job's pre-flight (see the module docstring).

    ``rows``: the rows that would be sent (they passed the format and, where the catalog
    was reachable, the catalog rules); ``invalid``: every row refused, with its field
    and rule (the plan's format errors and the catalog's, by row); ``accounts``: one
    :class:`AccountCheck` per account; ``unchecked``: what could not be checked for the
    whole job (the catalog, the exchange rates, a fee); ``catalog_checked``: whether the
    catalog rules were applied; ``checked_at``: when (UTC)."""

    rows: int
    invalid: tuple[RowError, ...]
    accounts: tuple[AccountCheck, ...]
    unchecked: tuple[str, ...]
    catalog_checked: bool
    checked_at: datetime
    catalog_invalid: frozenset[int] = field(default_factory=frozenset)

    @property
    def short(self) -> tuple[AccountCheck, ...]:
        """The accounts whose balance is known not to cover their rows."""
        return tuple(a for a in self.accounts if a.ok is False)

    @property
    def ok(self) -> bool:
        """No account is known to be short (some may not have been checked)."""
        return not self.short

    @property
    def balances_checked(self) -> bool:
        """Every account's balance was read and compared with an estimated cost."""
        return all(a.ok is not None for a in self.accounts)

    def result(self, *, balance_check: bool = True) -> Result:
        """The balance check's verdict: ``refused`` (an account is short and the check is
        on), ``skipped`` (the check is off: nothing refused, whatever the balances),
        ``ok`` (every account read and covered) or ``warning`` (none known short, some
        not checked)."""
        if not balance_check:
            return "skipped"
        if self.short:
            return "refused"
        return "ok" if self.balances_checked else "warning"

    def record(self, *, balance_check: bool = True) -> dict[str, Any]:
        """The pre-flight as JSON-ready data (amounts as plain decimal strings), as the
        journal keeps it and ``tango-async status`` shows it (:func:`preflight_lines`)."""
        return {
            "version": RECORD_VERSION,
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "result": self.result(balance_check=balance_check),
            "rows": self.rows,
            "invalid_rows": len({e.row for e in self.invalid}),
            "catalog_invalid_rows": len(self.catalog_invalid),
            "catalog_checked": self.catalog_checked,
            "unchecked": list(self.unchecked),
            "accounts": [
                {
                    "account_identifier": a.account_identifier,
                    "currency_code": a.currency_code,
                    "rows": a.rows,
                    "cost": _text(a.cost),
                    "balance": _text(a.balance),
                    "shortfall": _text(a.shortfall),
                    "ok": a.ok,
                    "notes": list(a.notes),
                    "lines": [
                        {
                            "currency_code": line.currency_code,
                            "rows": line.rows,
                            "face_value": _text(line.face_value),
                            "fees": _text(line.fees),
                            "cost": _text(line.cost),
                            "note": line.note,
                        }
                        for line in a.lines
                    ],
                }
                for a in self.accounts
            ],
        }

    def lines(self, *, balance_check: bool = True) -> list[str]:
        """The pre-flight in words, one line each (see :func:`preflight_lines`)."""
        return preflight_lines(self.record(balance_check=balance_check))

    def refusal(self, remedy: str = "pass balance_check=False") -> str:
        """Why the job is refused: one line per short account (its balance, the cost and
        the shortfall), then what to do (``remedy``: how to send anyway)."""
        parts = [
            f"account {escape(a.account_identifier)}: balance {_amount(a.balance, a)}, "
            f"estimated cost of its {a.rows} row(s) {_amount(a.cost, a)}, "
            f"short by {_amount(a.shortfall, a)}"
            for a in self.short
        ]
        return (
            "balance check refused the job, nothing sent: "
            + "; ".join(parts)
            + f". Fund the account(s), or {remedy} to send anyway (the rows a balance "
            "cannot cover are then refused by the API with 402, which stops the job)."
        )


class BalanceCheckError(TangoError):
    """A bulk job refused before sending anything: an account's balance cannot cover the
    estimated cost of its rows. ``preflight`` holds the whole pre-flight."""

    def __init__(self, preflight: Preflight, remedy: str = "pass balance_check=False") -> None:
        self.preflight = preflight
        super().__init__(preflight.refusal(remedy))


# --- computing it ---------------------------------------------------------------------------


class _RowKey(msgspec.Struct, rename="camel"):
    """What the pre-flight reads of a row's wire JSON."""

    account_identifier: str
    utid: str
    amount: Decimal


def fee_of(item: CatalogItem, amount: Decimal) -> tuple[Decimal, str | None]:
    """The fee of one order of ``amount`` of ``item`` in the item's currency, as the
    catalog states it (a percentage of the amount when the fee's type says "percent",
    else a flat amount), and a note when a fee is stated that cannot be counted (0 then)."""
    fee = item.fee
    if fee is None or fee.value is None:
        return Decimal(0), None
    value = fee.value
    if not value.is_finite() or value < 0 or value >= _MAX_FIGURE:
        return Decimal(0), f"the fee of {_name(item.utid)} ({_name(str(value))}) is not counted"
    kind = (fee.type or "").strip().lower()
    if any(word in kind for word in _PERCENT):
        return amount * value / 100, None
    if not kind or any(word in kind for word in _FLAT):
        return value, None
    return Decimal(0), (
        f"the fee of {_name(item.utid)} is of type {_name(fee.type or '')}, not known here: "
        "not counted in the cost"
    )


def _why(e: BaseException) -> str:
    """A short reason for a failed read: the error's class and HTTP status."""
    if isinstance(e, APIError):
        return f"{e.status_code} {type(e).__name__}"
    if isinstance(e, APIConnectionError):
        return f"{type(e).__name__}: {_name(str(e))}"
    return type(e).__name__


async def run_preflight(
    client: PreflightClient,
    rows: Sequence[tuple[int, str, bytes]],
    *,
    invalid: Iterable[RowError] = (),
    check_catalog: bool = True,
    check_balances: bool = True,
) -> Preflight:
    """The pre-flight of ``rows`` (a :class:`~tango_async.bulk.Plan`'s ``(row, ref, wire
    JSON)``), with ``invalid`` (the plan's row errors) carried into the report. Reads
    only; never raises for what it cannot read (see the module docstring).
    ``check_catalog=False`` skips the catalog (no rules, amounts in each account's
    currency); ``check_balances=False`` reads no account (costs only)."""
    errors = list(invalid)
    unchecked: list[str] = []
    keyed: list[tuple[int, _RowKey]] = []
    for number, _, body in rows:
        try:
            keyed.append((number, msgspec.json.decode(body, type=_RowKey)))
        except msgspec.DecodeError:
            errors.append(RowError(number, "", "is not an order the pre-flight can read"))

    catalog: Catalog | None = None
    if check_catalog:
        try:
            catalog = await client.catalog.get()
        except (APIError, APIConnectionError, ValidationError) as e:
            unchecked.append(
                f"catalog not reachable ({_why(e)}): catalog rules not checked, amounts taken "
                "to be in each account's currency"
            )
    else:
        unchecked.append("catalog not asked for: catalog rules not checked")

    refused: set[int] = set()
    notes: dict[str, None] = {}  # job-wide notes, in order, once each
    # account -> reward currency (None: unknown) -> [rows, face, fees]
    totals: dict[str, dict[str | None, list[Any]]] = {}
    for number, key in keyed:
        currency: str | None = None
        fee = Decimal(0)
        if catalog is not None:
            try:
                catalog.check(key.utid, key.amount)
            except ValidationError as e:
                errors.append(RowError(number, e.field, e.rule))
                refused.add(number)
                continue
            item = catalog.find(key.utid)
            if item is not None:
                currency = _code(item.currency_code)
                if currency is None and item.currency_code and str(item.currency_code).strip():
                    notes.setdefault(
                        f"the currency of {_name(item.utid)} ({_name(str(item.currency_code))}) "
                        "is not a currency code: its amounts taken to be in the account's"
                    )
                fee, fee_note = fee_of(item, key.amount)
                if fee_note is not None:
                    notes.setdefault(fee_note)
        line = totals.setdefault(key.account_identifier, {}).setdefault(
            currency, [0, Decimal(0), Decimal(0)]
        )
        line[0] += 1
        line[1] += key.amount
        line[2] += fee
    unchecked += notes

    accounts: dict[str, Account | str] = {}
    if check_balances and totals:
        gate = asyncio.Semaphore(_ACCOUNT_READS)

        async def read(aid: str) -> None:
            async with gate:
                try:
                    accounts[aid] = await client.accounts.get(aid)
                except (APIError, APIConnectionError, ValidationError) as e:
                    accounts[aid] = f"balance not readable ({_why(e)}): not checked"

        await asyncio.gather(*(read(aid) for aid in totals))

    rates: ExchangeRates | str | None = None

    async def exchange_rates() -> ExchangeRates | str:
        nonlocal rates
        if rates is None:
            try:
                rates = await client.exchange_rates.get()
            except (APIError, APIConnectionError, ValidationError) as e:
                rates = f"exchange rates not reachable ({_why(e)})"
                unchecked.append(f"{rates}: costs in other currencies not estimated")
        return rates

    checks: list[AccountCheck] = []
    for aid, by_currency in totals.items():
        found = accounts.get(aid)
        account = found if isinstance(found, Account) else None
        account_notes: list[str] = [found] if isinstance(found, str) else []
        if not check_balances:
            account_notes.append("balance not asked for: not checked")
        home = _code(account.currency_code) if account is not None else None
        if account is not None and home is None and account.currency_code:
            account_notes.append(
                f"its currency ({_name(str(account.currency_code))}) is not a currency code"
            )
        status = account.status if account is not None else None
        if isinstance(status, str) and status.strip().upper() not in ("ACTIVE", ""):
            account_notes.append(f"its status is {_name(status)}: the API may refuse its orders")
        lines: list[CostLine] = []
        for currency, (count, face, fees) in by_currency.items():
            shown = currency if currency is not None else home
            cost: Decimal | None = None
            note: str | None = None
            if home is None:
                note = (
                    "cost in the account's currency unknown (the account was not read)"
                    if account is None
                    else "cost in the account's currency unknown (the API gave no currency)"
                )
            elif shown == home:
                cost = face + fees
            else:
                assert shown is not None
                got = await exchange_rates()
                if isinstance(got, str):
                    note = f"cost not estimated: {got}"
                else:
                    unusable = (
                        f"cost not estimated: the {_name(shown)}/{_name(home)} rate is unusable"
                    )
                    try:
                        cost = got.convert(face + fees, shown, home)
                    except ValidationError as e:
                        note = f"cost not estimated: {e.rule}"
                    except ArithmeticError:  # a hostile rate (1E+999999): no usable figure
                        note = unusable
                    if cost is not None and (not cost.is_finite() or abs(cost) >= _MAX_FIGURE):
                        cost, note = None, unusable
            lines.append(CostLine(shown, count, face, fees, cost, note))
        known = [line.cost for line in lines]
        total = sum((c for c in known if c is not None), Decimal(0))
        cost_known = all(c is not None for c in known)
        balance = account.current_balance if account is not None else None
        if account is not None and balance is None:
            account_notes.append("the API gave no balance: not checked")
        ok: bool | None = None
        shortfall: Decimal | None = None
        if cost_known and balance is not None and check_balances:
            shortfall = max(Decimal(0), total - balance)
            ok = shortfall == 0
        checks.append(
            AccountCheck(
                account_identifier=aid,
                currency_code=home,
                rows=sum(line.rows for line in lines),
                lines=tuple(lines),
                cost=total if cost_known else None,
                balance=balance,
                shortfall=shortfall,
                ok=ok,
                notes=tuple(account_notes),
            )
        )
    errors.sort(key=lambda e: e.row)
    return Preflight(
        rows=len(keyed) - len(refused),
        invalid=tuple(errors),
        accounts=tuple(checks),
        unchecked=tuple(unchecked),
        catalog_checked=catalog is not None,
        checked_at=datetime.now(UTC),
        catalog_invalid=frozenset(refused),
    )


# --- in words ---------------------------------------------------------------------------------

_RESULTS = {
    "ok": "ok: every balance covers its rows",
    "refused": "refused: a balance cannot cover its rows (nothing sent)",
    "skipped": "skipped (--no-balance-check / balance_check=False): sent whatever the balances",
    "warning": "warning: no balance known to be short, but not every one could be checked",
}


def preflight_lines(record: Mapping[str, Any]) -> list[str]:
    """A pre-flight record (:meth:`Preflight.record`, or one read from a journal) in
    words: the verdict and when, one line per account (rows, cost against balance,
    shortfall) and per currency line, then what could not be checked. Every value is
    escaped (one printable line each); a record of unexpected shape prints what it can."""
    result = str(record.get("result", "?"))
    lines = [
        f"balance check {_at(record.get('checked_at'))}: {_RESULTS.get(result, escape(result))}"
    ]
    rows = record.get("rows")
    invalid = record.get("invalid_rows")
    if isinstance(rows, int):
        text = f"  {rows} row(s) to send"
        if isinstance(invalid, int) and invalid:
            by_catalog = record.get("catalog_invalid_rows")
            text += f", {invalid} invalid row(s)"
            if isinstance(by_catalog, int) and by_catalog:
                text += f" ({by_catalog} refused by the catalog rules)"
        lines.append(text)
    accounts = record.get("accounts")
    for a in accounts if isinstance(accounts, list) else ():
        if not isinstance(a, Mapping):
            continue
        cur = a.get("currency_code")
        unit = f" {escape(str(cur))}" if cur else ""
        cost, balance, short = a.get("cost"), a.get("balance"), a.get("shortfall")
        text = (
            f"  account {escape(str(a.get('account_identifier', '?')))}: "
            f"{a.get('rows', '?')} row(s), estimated cost "
            f"{_shown(cost, unit, 'unknown')}, balance {_shown(balance, unit, 'not read')}"
        )
        ok = a.get("ok")
        if ok is True:
            text += ": covered"
        elif ok is False:
            text += f": SHORT by {_shown(short, unit, '?')}"
        else:
            text += ": not checked"
        lines.append(text)
        for line in a.get("lines") or ():
            if not isinstance(line, Mapping):
                continue
            lc = line.get("currency_code")
            lunit = f" {escape(str(lc))}" if lc else " (currency unknown)"
            detail = (
                f"    {line.get('rows', '?')} row(s) of face value "
                f"{_shown(line.get('face_value'), lunit, '?')}"
            )
            fees = line.get("fees")
            if fees not in (None, "0"):
                detail += f" + fees {_shown(fees, lunit, '?')}"
            if line.get("cost") is not None and lc != cur:
                detail += f" = {_shown(line.get('cost'), unit, '?')}"
            if line.get("note"):
                detail += f" ({escape(str(line['note']))})"
            lines.append(detail)
        for note in a.get("notes") or ():
            lines.append(f"    {escape(str(note))}")
    for note in record.get("unchecked") or ():
        lines.append(f"  {escape(str(note))}")
    return lines


def _at(value: object) -> str:
    """When a record was made, as every bulk output shows times: RFC 3339 in UTC with
    ``Z`` (``2026-01-02T12:00:00Z``)."""
    if not isinstance(value, str):
        return "?"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return escape(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return format_time(when, seconds=True) or "?"


def _code(value: object) -> str | None:
    """A currency code as the pre-flight compares them (stripped, upper case), or None for
    none or for a text that cannot be one (spaces, punctuation, over 10 characters: an API
    answer that must neither be compared nor stored as it is)."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    return code if _CODE.fullmatch(code) else None


def _text(d: Decimal | None) -> str | None:
    return None if d is None else plain_decimal(d)


def _shown(value: object, unit: str, missing: str) -> str:
    return missing if value is None else f"{escape(str(value))}{unit}"


def _amount(d: Decimal | None, a: AccountCheck) -> str:
    unit = f" {escape(a.currency_code)}" if a.currency_code else ""
    return ("?" if d is None else plain_decimal(d)) + unit


def _name(text: str | None) -> str:
    text = text or "?"
    return escape(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")
