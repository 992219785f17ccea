"""Issue 12, point 6 (the CLI): every option of ``tango-async`` refuses non-finite,
out-of-range and wrong-typed values with a usage error (exit 2, one message naming the
option, no traceback) when the command line is parsed, before anything starts: no
sandbox, no connection, no journal. Library ValidationErrors from option values (a path
parameter, an email) are exit 2 with one line too.

The commands call asyncio.run(), so these tests are plain (sync) functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tango_async.bulk._journal import JournalError
from tango_async.cli import _bulk, _common
from tango_async.cli._app import cli

SETTINGS = settings(
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"
ROW = "cust-12345,acct-12345,U561593,5.00,ann@example.com,Ann"

HUGE = "9" * 30
# past str()->int's digit limit (4300): int("9" * 5000) raises ValueError
HUGER = "9" * 5000
# every hostile value the issue lists, for every numeric option
HOSTILE = [
    "inf", "-inf", "+inf", "Infinity", "nan", "NaN", "-nan", "1e-320", "5e-324", "1e308",
    "1e309", "1e999", "-1", "-0.5", "0", "-0", HUGE, "-" + HUGE, HUGER, "x", "", " ", "1,5",
    "0x10", "1_000", "True", "None", "1.5.2", "\x00", "1e",
]  # fmt: skip


def invoke(*args: str | Path) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    # every outcome is an exit code, never an exception escaping the command
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


def refused(res: Result, option: str) -> None:
    """A usage error naming the option; nothing started."""
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in res.stderr, res.stderr
    assert "local sandbox" not in res.stderr  # not even the in-process sandbox started


@pytest.fixture
def orders_csv(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(f"{HEADER}\n{ROW}\n", encoding="utf-8")
    return path


@pytest.fixture
def journal(tmp_path: Path, orders_csv: Path) -> Path:
    res = invoke("--sandbox", "local", "submit", orders_csv, "--order-rate", "50")
    assert res.exit_code == 0, res.output
    return tmp_path / "orders.csv.journal"


# --- the numeric options: (where, option, is the value good?) --------------------------------


def _float(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], bool]:
    def good(text: str) -> bool:
        try:
            x = float(text)
        except ValueError:
            return False
        if not math.isfinite(x):
            return False
        return (x > lo if lo_open else x >= lo) and x <= hi

    return good


def _int(lo: int, hi: int) -> Callable[[str], bool]:
    def good(text: str) -> bool:
        try:
            return lo <= int(text) <= hi  # as click reads it: " 5 ", "1_000", "-0" are ints
        except ValueError:
            return False

    return good


def _decimal(lo: str, hi: str, *, lo_open: bool, places: int | None) -> Callable[[str], bool]:
    from decimal import Decimal, InvalidOperation

    def good(text: str) -> bool:
        try:
            d = Decimal(text)
        except InvalidOperation:
            return False
        if not d.is_finite():
            return False
        if not ((d > Decimal(lo) if lo_open else d >= Decimal(lo)) and d <= Decimal(hi)):
            return False
        return places is None or d == round(d, places)

    return good


# (the command before the option, the option, the rule a value must pass, the command after)
SUBMIT = ("submit", "{csv}", "--dry-run")
WID = "0f8fad5b-d9cb-469f-a165-70867728950e"
NUMERIC: list[tuple[tuple[str, ...], str, Callable[[str], bool], tuple[str, ...]]] = [
    ((), "--timeout", _float(0.001, 86_400), SUBMIT),
    ((), "--max-retries", _int(0, 100), SUBMIT),
    (SUBMIT, "--order-rate", _float(1.05 / 86_400, 1000), ()),
    (SUBMIT, "--concurrency", _int(1, 64), ()),
    (SUBMIT, "--progress-interval", _float(0, 86_400), ()),
    (SUBMIT, "--max-amount", _decimal("0", "1e15", lo_open=True, places=None), ()),
    (("resume", "{journal}"), "--order-rate", _float(1.05 / 86_400, 1000), ()),
    (("resume", "{journal}"), "--concurrency", _int(1, 64), ()),
    (("resume", "{journal}"), "--progress-interval", _float(0, 86_400), ()),
    (("reconcile", "{journal}"), "--timeout", _float(0, 86_400), ("--wait",)),
    (("reconcile", "{journal}"), "--poll-interval", _float(0.001, 86_400), ()),
    (("reconcile", "{journal}"), "--concurrency", _int(1, 64), ()),
    (("reconcile", "{journal}"), "--progress-interval", _float(0, 86_400), ()),
    (("orders", "list"), "--limit", _int(1, 10**9), ()),
    (("orders", "list"), "--concurrency", _int(1, 16), ()),
    (("orders", "list"), "--min-amount", _decimal("0", "1e15", lo_open=False, places=2), ()),
    (("orders", "list"), "--max-amount", _decimal("0", "1e15", lo_open=False, places=2), ()),
    *(
        (cmd, option, rule, ())
        for cmd in (("orders", "wait", "RA1"), ("line-items", "wait", "LI1"))
        for option, rule in (
            ("--timeout", _float(0, 366 * 86_400)),
            ("--poll", _float(0, 86_400, lo_open=True)),
            ("--max-poll", _float(0, 86_400, lo_open=True)),
        )
    ),
    (("line-items", "list"), "--limit", _int(1, 10**9), ()),
    (
        ("line-items", "list"),
        "--min-remaining-balance",
        _decimal("0", "1e15", lo_open=False, places=2),
        (),
    ),
    (
        ("line-items", "list"),
        "--max-remaining-balance",
        _decimal("0", "1e15", lo_open=False, places=2),
        (),
    ),
    (
        ("line-items", "reissue", "LI1", "--reason", "RECIPIENT"),
        "--amount",
        _decimal("0", "1e6", lo_open=True, places=2),
        (),
    ),
    (("webhooks", "list"), "--limit", _int(1, 10**9), ()),
    (("webhooks", "events", WID), "--limit", _int(1, 10**9), ()),
    (("webhooks", "events", WID), "--from-revision", _int(0, 2**63 - 1), ()),
    (("webhooks", "events", WID), "--to-revision", _int(0, 2**63 - 1), ()),
    (("webhooks", "replay", WID), "--from-revision", _int(0, 2**63 - 1), ()),
    (("webhooks", "replay", WID, "--from-revision", "0"), "--to-revision", _int(0, 2**63 - 1), ()),
    (("webhooks", "listen", "--unsigned"), "--port", _int(0, 65535), ()),
    (("webhooks", "listen", "--unsigned", "--port", "0"), "--reorder-delay", _float(0, 3600), ()),
    (("webhooks", "listen", "--unsigned", "--port", "0"), "--count", _int(1, 10**9), ()),
]


def _args(
    before: tuple[str, ...], option: str, value: str, after: tuple[str, ...], files: dict[str, Path]
) -> list[str]:
    fill = [a.format(**{k: str(v) for k, v in files.items()}) for a in (*before, option)]
    return [*fill, value, *(a.format(**{k: str(v) for k, v in files.items()}) for a in after)]


def _id(case: object) -> str:
    return " ".join(case) if isinstance(case, tuple) else str(case) if isinstance(case, str) else ""


@pytest.mark.parametrize(("before", "option", "good", "after"), NUMERIC, ids=_id)
def test_every_hostile_number_is_a_usage_error(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    orders_csv: Path,
    before: tuple[str, ...],
    option: str,
    good: Callable[[str], bool],
    after: tuple[str, ...],
) -> None:
    files = {"csv": orders_csv}
    if "{journal}" in before:
        files["journal"] = request.getfixturevalue("journal")
    existing = set(tmp_path.iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in existing}
    for value in HOSTILE:
        if good(value):
            continue  # the accepted ones run below, in the property test and the table
        res = invoke(*_args(before, option, value, after, files))
        refused(res, option)
        assert len([e for e in res.stderr.splitlines() if "Error" in e]) == 1  # one message
    assert set(tmp_path.iterdir()) == existing  # nothing was created...
    assert {p: p.stat().st_mtime_ns for p in existing} == stamps  # ...or written


def test_the_reproduction_order_rate_inf(orders_csv: Path) -> None:
    for value in ("inf", "nan", "1e-320"):
        res = invoke("--sandbox", "local", "submit", orders_csv, "--order-rate", value)
        refused(res, "--order-rate")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--timeout", "0.001"), ("--timeout", "86400"), ("--max-retries", "0"),
        ("--max-retries", "100"),
    ],
)  # fmt: skip
def test_edge_values_that_are_accepted(orders_csv: Path, option: str, value: str) -> None:
    res = invoke(option, value, "submit", orders_csv, "--dry-run")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--order-rate", "1000"), ("--order-rate", "0.0000122"), ("--concurrency", "64"),
        ("--progress-interval", "0"), ("--progress-interval", "1e-320"),
        ("--max-amount", "1e-320"), ("--max-amount", "1000000000000000"),
    ],
)  # fmt: skip
def test_submit_edge_values_that_are_accepted(orders_csv: Path, option: str, value: str) -> None:
    assert next(good for _, o, good, _ in NUMERIC if o == option)(value)
    res = invoke("submit", orders_csv, option, value, "--dry-run")
    assert res.exit_code in (0, 1), res.output  # 1: the row is over a tiny --max-amount


_NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True).map(repr),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(HOSTILE),
    st.text(max_size=6),
)
_DRY = [n for n in NUMERIC if n[3] == SUBMIT or n[0] == SUBMIT]


@settings(SETTINGS, max_examples=150)
@given(st.sampled_from(_DRY), _NUMBER_TEXT)
def test_property_an_option_value_is_used_or_a_usage_error(
    orders_csv: Path,
    case: tuple[tuple[str, ...], str, Callable[[str], bool], tuple[str, ...]],
    value: str,
) -> None:
    """Any text for any numeric option of submit (with --dry-run, which sends nothing):
    accepted exactly when finite and in range, otherwise exit 2 naming the option; never
    a traceback, never a hang."""
    before, option, good, after = case
    res = invoke(*_args(before, option, value, after, {"csv": orders_csv}))
    if good(value):  # (1: the row is above a tiny --max-amount: listed, nothing sent)
        assert res.exit_code in (0, 1), (option, value, res.output)
        assert "dry run" in res.stdout or "nothing sent" in res.stderr
    else:
        assert res.exit_code == 2, (option, value, res.output)
        assert "Error:" in res.stderr


# --- text, date, choice and path options --------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--start-date", "garbage"),
        ("--start-date", "0001-01-01T00:00:00+12:00"),  # OverflowError before issue 12
        ("--end-date", "9999-12-31T23:00:00-14:00"),
        ("--start-date", "2024-13-01"),
        ("--start-date", ""),
        ("--customer-identifier", "x"),
        ("--account-identifier", "a/b/../c"),
        ("--external-ref-id", "a" * 101),
        ("--currency-code", "ABCD"),
        ("--status", "a\nb"),  # control characters (point 3)
        ("--send-email", "maybe"),
        ("--format", "xlsx"),
    ],
)
def test_orders_list_filters_are_checked_before_connecting(option: str, value: str) -> None:
    res = invoke("--sandbox", "local", "orders", "list", option, value)
    refused(res, option)


def test_orders_list_filters_together() -> None:
    res = invoke("--sandbox", "local", "orders", "list", "--min-amount", "5", "--max-amount", "1")
    assert res.exit_code == 2, res.output
    assert "--min-amount: must not exceed max_amount" in res.stderr
    assert "local sandbox" not in res.stderr


def test_orders_list_limit_zero_no_longer_writes_an_order() -> None:
    # before: --limit 0 (or -1) wrote the first order and stopped after it
    for value in ("0", "-1"):
        refused(invoke("--sandbox", "local", "orders", "list", "--limit", value), "--limit")


@pytest.mark.parametrize(
    "args",
    [
        ("--run-label", "a b"),
        ("--run-label", "x" * 65),
        ("--run-label", "-start"),
        ("--run-label", "a\nb"),
        ("--input-format", "xml"),
    ],
)
def test_submit_text_options(orders_csv: Path, args: tuple[str, str]) -> None:
    res = invoke("--sandbox", "local", "submit", orders_csv, *args)
    assert res.exit_code == 2, res.output
    assert "Error:" in res.stderr and "local sandbox" not in res.stderr


def test_global_choices_and_flags() -> None:
    refused(invoke("--sandbox", "remote", "status", "x"), "--sandbox")
    refused(invoke("line-items", "resend", "RA1", "--reason-code", "X"), "--reason-code")


def test_a_report_that_cannot_be_written_is_refused_before_sending(
    tmp_path: Path, orders_csv: Path
) -> None:
    """Before: the job sent every order, then failed to write the report (exit 2)."""
    res = invoke("--sandbox", "local", "submit", orders_csv, "--report", tmp_path / "no" / "r.csv")
    refused(res, "--report")
    assert not (tmp_path / "orders.csv.journal").exists()
    res = invoke("--sandbox", "local", "submit", orders_csv, "--journal", tmp_path / "no" / "j")
    refused(res, "--journal")
    res = invoke("--sandbox", "local", "orders", "list", "-o", tmp_path / "no" / "o.jsonl")
    refused(res, "--output")


def test_the_report_never_overwrites_the_journal_or_the_input(
    tmp_path: Path, orders_csv: Path
) -> None:
    """Before: --report FILE.journal overwrote the SQLite journal with the CSV at the end
    of the job, losing the record of what was sent."""
    default_journal = tmp_path / "orders.csv.journal"
    link = tmp_path / "link.csv"
    link.symlink_to(orders_csv)
    for report in (default_journal, orders_csv, tmp_path / "sub" / ".." / "orders.csv", link):
        res = invoke("--sandbox", "local", "submit", orders_csv, "--report", report)
        refused(res, "--report")
    res = invoke("--sandbox", "local", "submit", orders_csv, "--journal", orders_csv)
    refused(res, "--journal")
    own = tmp_path / "own.journal"
    res = invoke("--sandbox", "local", "submit", orders_csv, "--journal", own, "--report", own)
    refused(res, "--report")
    assert not default_journal.exists() and not own.exists()
    assert orders_csv.read_text(encoding="utf-8") == f"{HEADER}\n{ROW}\n"


def test_resume_report_never_overwrites_the_journal(journal: Path, orders_csv: Path) -> None:
    before = journal.read_bytes()
    res = invoke("--sandbox", "local", "resume", journal, "--report", journal)
    refused(res, "--report")
    res = invoke("--sandbox", "local", "resume", journal, "--report", orders_csv)
    refused(res, "--report")  # the job's own input file
    assert journal.read_bytes() == before
    res = invoke("--sandbox", "local", "resume", journal, "--report", journal.parent / "x" / "r")
    refused(res, "--report")


def test_resume_checks_the_settings_saved_in_the_journal() -> None:
    """A journal's saved settings are checked as their options are (JournalError, exit 2),
    never a ValueError traceback from float('x')."""
    assert _bulk._saved({}, "order_rate", _common._ORDER_RATE, 1.0) == 1.0
    assert _bulk._saved({"order_rate": 50.0}, "order_rate", _common._ORDER_RATE, 1.0) == 50.0
    for bad in ("inf", "x", float("nan"), 1e-320, -1, [1]):
        with pytest.raises(JournalError, match="order_rate saved in the journal"):
            _bulk._saved({"order_rate": bad}, "order_rate", _common._ORDER_RATE, 1.0)
    for bad in (0, "x", 10**30):
        with pytest.raises(JournalError, match="concurrency"):
            _bulk._saved({"concurrency": bad}, "concurrency", _common._JOB_CONCURRENCY, 2)
    with pytest.raises(JournalError, match="max_amount"):
        _bulk._saved_limit({"max_amount": "NaN"})
    assert _bulk._saved_limit({"max_amount": "20"})["max_amount"] == 20


# --- library ValidationErrors from option values: exit 2, one line -------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("orders", "get", ".."),
        ("orders", "get", "."),
        ("orders", "get", "a\rb"),
        ("orders", "resend", ".."),
        ("orders", "resend", "RA123-45", "--new-email", "not-an-email"),
        ("line-items", "resend", "."),
    ],
)
def test_library_validation_errors_are_one_line_exit_2(args: tuple[str, ...]) -> None:
    res = invoke("--sandbox", "local", *args)
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--platform-name", "a:b", "--platform-key", "k"),
        ("--platform-name", "", "--platform-key", ""),
        ("--base-url", "garbage", "--platform-name", "a", "--platform-key", "k"),
        ("--base-url", "ftp://x/raas/v2", "--platform-name", "a", "--platform-key", "k"),
    ],
)
def test_credentials_and_base_url_are_exit_2(args: tuple[str, ...]) -> None:
    res = invoke(*args, "orders", "list", "--limit", "1")
    assert res.exit_code == 2, res.output
    assert [line for line in res.stderr.splitlines() if line.startswith("error: ")]


def test_every_numeric_option_is_covered() -> None:
    """A new numeric option must join NUMERIC (or this test says which one is missing)."""
    covered = {(before[0] if before else "", option) for before, option, _, _ in NUMERIC}
    numeric = (click.FloatRange, click.IntRange, _common._DecimalType)
    found: set[tuple[str, str]] = set()

    def walk(command: click.Command, name: str) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and param.count:
                continue  # -v, -vv: a count, given no value
            if isinstance(param, click.Option) and isinstance(param.type, numeric):
                found.add((name, param.opts[-1] if len(param.opts) > 1 else param.opts[0]))
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                walk(sub, name or sub_name)

    walk(cli, "")
    assert found <= covered, found - covered
    # and no option is a bare float or int any more
    bare: list[str] = []

    def bare_walk(command: click.Command) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and param.type in (click.FLOAT, click.INT):
                bare.append(param.name or "?")
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                bare_walk(sub)

    bare_walk(cli)
    assert bare == []


@pytest.mark.parametrize(
    "args",
    [
        ("--port", "99999"), ("--port", "x"), ("--order-rate", "nan"), ("--order-rate", "inf"),
        ("--latency", "inf"), ("--chaos", "2"), ("--read-rate", "-1"), ("--chaos-seed", "1e3"),
        ("--resend-cooldown", "1e308"), ("--pending-for", "inf"), ("--connect-delay", "nan"),
    ],
)  # fmt: skip
def test_the_sandbox_command_refuses_bad_flags(args: tuple[str, str]) -> None:
    """``tango-async sandbox`` hands its flags to the sandbox process's parser (argparse):
    a bad one is its usage error, exit 2, before anything is served."""
    res = invoke("sandbox", *args)
    assert res.exit_code == 2, res.output
    assert "error: argument " + args[0] in res.stderr
    assert "serving" not in res.output
