"""Issue 14, point 7 (the CLI after the order): ``line-items get|list|update|cancel|freeze|
unfreeze|reissue|wait|reason-codes``, ``orders wait``, ``webhooks ...`` and ``webhooks
listen``, through click's CliRunner.

Three ways to reach an API: ``--sandbox local`` (a fresh in-process sandbox for one
command), a sandbox on a frozen clock served from another thread (:class:`ThreadedSandbox`:
its orders live across commands, and a test moves its clock), and aioresponses (error
statuses, hostile answers, exact requests). ``webhooks listen`` runs in the test's own
thread, as every command does, while a helper thread delivers to it (or has the sandbox
deliver), then stops it.

The commands call asyncio.run(), so these tests are plain (sync) functions.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import hmac
import inspect
import io
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aioresponses import aioresponses
from click.testing import CliRunner, Result

import tango_async as ta
from tango_async.cli._app import cli
from tango_async.cli._orders import terminal_cell

from .conftest import BASE, FAST_RETRY, order_request
from .reconcile_support import ThreadedSandbox as _ThreadedBase
from .test_cli_options import HOSTILE as HOSTILE_NUMBERS
from .test_cli_options import _decimal, _float, _int, refused

T = TypeVar("T")

PENDING_FOR = 60.0
KEY_BYTES = b"cli-lifecycle-hmac-key-0123456789"
HMAC_KEY = base64.b64encode(KEY_BYTES).decode()
HEADER_SECRET = "Bearer listener-s3cret-value"
WID = "0f8fad5b-d9cb-469f-a165-70867728950e"
LI = "A12-34567890-12"
API = ["--base-url", BASE, "--platform-name", "platform", "--platform-key", "k3y-12345"]


def invoke(
    *args: str | Path, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)
    # every outcome is an exit code, never an exception escaping the command
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


def raw_controls(text: str) -> list[str]:
    return [c for c in text if c != "\n" and not c.isprintable()]


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- a sandbox that outlives one command --------------------------------------------------------


class ThreadedSandbox(_ThreadedBase):
    """A Sandbox on a frozen clock, on an event loop of its own thread, so that commands
    (each with its own asyncio.run) share its orders and subscriptions. :meth:`call` runs
    a coroutine there, :meth:`advance` moves its clock, :attr:`args` reach it."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("pending_for", PENDING_FOR)
        options.setdefault("webhook_retry_delays", ())  # real seconds: no retries here
        super().__init__(**options)

    def with_client(self, use: Callable[[ta.TangoClient], Coroutine[Any, Any, T]]) -> T:
        async def go() -> T:
            async with self.sandbox.client(retry=FAST_RETRY) as client:
                return await use(client)

        return self.call(go())

    def advance(self, seconds: float) -> None:
        async def move() -> None:
            self.clock.advance(seconds)
            await self.sandbox.deliver_due()

        self.call(move())

    def order(self, *, fail: bool = False, **fields: Any) -> ta.CreatedOrder:
        if fail:
            self.sandbox.fail_next(1)

        async def create(client: ta.TangoClient) -> ta.CreatedOrder:
            return await client.orders.create(order_request(**fields))

        return self.with_client(create)

    def invoke(self, *args: str | Path, **kw: Any) -> Result:
        return invoke(*self.args, "--max-retries", "0", *args, **kw)


@pytest.fixture
def sb() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox() as threaded:
        yield threaded


def secrets_of(sb: ThreadedSandbox, line_item: str) -> list[str]:
    """The reward credentials and redemption instructions of a line item, as the sandbox
    holds them (what no command but ``get`` may print)."""
    reward = sb.sandbox.line_items[line_item]["reward"]
    found = [c["value"] for c in reward["credentialList"] if len(str(c["value"])) > 6]
    return [*found, reward["redemptionInstructions"]]


def completed(sb: ThreadedSandbox, **fields: Any) -> ta.CreatedOrder:
    order = sb.order(**fields)
    sb.advance(PENDING_FOR + 1)
    return order


# --- the commands are there -------------------------------------------------------------------

NEW_COMMANDS = [
    ("orders", "wait"),
    *(
        ("line-items", c)
        for c in (
            "get",
            "list",
            "update",
            "cancel",
            "freeze",
            "unfreeze",
            "reissue",
            "wait",
            "reason-codes",
        )
    ),
    *(
        ("webhooks", c)
        for c in (
            "list",
            "get",
            "create",
            "update",
            "delete",
            "renew",
            "test",
            "events",
            "replay",
            "event-types",
            "listen",
        )
    ),
]


@pytest.mark.parametrize("path", NEW_COMMANDS, ids=" ".join)
def test_help_of_every_new_command(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout and result.stderr == ""


def test_line_items_list_takes_every_filter_of_the_library() -> None:
    from tango_async.resources.line_items import LineItems

    names = set(inspect.signature(LineItems.list).parameters) - {"self", "elements_per_block"}
    help_text = invoke("line-items", "list", "--help").stdout
    missing = [n for n in names if f"--{n.replace('_', '-')}" not in help_text]
    assert missing == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--status", "LOST"), "Invalid value for '--status'"),
        (("--sort-by", "nope"), "Invalid value for '--sort-by'"),
        (("--min-remaining-balance", "lots"), "not a number"),
        (("--min-remaining-balance", "nan"), "not a finite number"),
        (("--start-date", "yesterday"), "Invalid value for '--start-date'"),
        (("--start-date", "2024-02-01", "--end-date", "2024-01-01"), "--start-date:"),
        (("--min-remaining-balance", "5", "--max-remaining-balance", "1"), "--min-remaining"),
        (("--recipient-email", "a\x1bb"), "control characters"),
        (("--limit", "0"), "Invalid value for '--limit'"),
        (("--format", "xml"), "Invalid value for '--format'"),
    ],
)
def test_line_items_list_bad_filters_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = invoke("--sandbox", "local", "line-items", "list", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "local sandbox" not in result.stderr  # refused before anything started
    assert raw_controls(result.stderr) == []


@pytest.mark.parametrize(
    "args",
    [
        ("line-items", "get", "a/b"),
        ("line-items", "get", ""),
        ("line-items", "wait", "x y"),
        ("orders", "wait", "../etc"),
        ("line-items", "cancel", LI),  # --reason is required
        ("line-items", "cancel", LI, "--reason", "BORED"),
        ("line-items", "cancel", LI, "--reason", "OTHER"),  # needs --other-reason
        ("line-items", "freeze", LI, "--reason", "RECIPIENT"),  # a cancel code, not a freeze one
        ("line-items", "update", LI),
        ("line-items", "update", LI, "--campaign", "no/slashes"),
        ("line-items", "update", LI, "--notes", "x" * 151),
        ("line-items", "reissue", LI, "--reason", "OTHER", "--yes"),
        ("line-items", "reissue", LI, "--reason", "RECIPIENT", "--amount", "-5", "--yes"),
        ("line-items", "reissue", LI, "--reason", "RECIPIENT", "--amount", "inf", "--yes"),
        ("line-items", "reissue", LI, "--reason", "RECIPIENT", "--email", "nope", "--yes"),
        ("line-items", "reissue", LI, "--reason", "RECIPIENT", "--delivery-method", "PHONE", "-y"),
        ("line-items", "reissue", LI, "--reason", "RECIPIENT", "--delivery-method", "ADDRESS"),
        ("orders", "wait", "RA1", "--timeout", "-1"),
        ("orders", "wait", "RA1", "--timeout", "nan"),
        ("orders", "wait", "RA1", "--poll", "0"),
        ("orders", "wait", "RA1", "--poll", "5", "--max-poll", "1"),
        ("line-items", "wait", LI, "--poll", "inf"),
    ],
    ids=lambda a: " ".join(a)[:60],
)
def test_bad_line_item_and_wait_options_are_usage_errors(args: tuple[str, ...]) -> None:
    result = invoke("--sandbox", "local", *args)
    assert result.exit_code == 2, result.output
    assert "local sandbox" not in result.stderr  # nothing started, nothing sent
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


def test_a_reissue_error_names_the_option() -> None:
    result = invoke(
        "line-items", "reissue", LI, "--reason", "RECIPIENT", "--delivery-method", "PHONE", "-y"
    )
    assert result.exit_code == 2
    assert "--mobile: is required for PHONE delivery" in result.stderr
    other = invoke("line-items", "cancel", LI, "--reason", "OTHER")
    assert "--other-reason:" in other.stderr


# --- every numeric option refuses hostile numbers (as tests/test_cli_options.py does for
# the older commands; its NUMERIC table does not list these) ---------------------------

DAY = 86_400.0
WAITS = [
    (cmd, option, rule)
    for cmd in (("orders", "wait", "RA1"), ("line-items", "wait", LI))
    for option, rule in (
        ("--timeout", _float(0, 366 * DAY)),
        ("--poll", _float(0, DAY, lo_open=True)),
        ("--max-poll", _float(0, DAY, lo_open=True)),
    )
]
LIFECYCLE_NUMERIC: list[tuple[tuple[str, ...], str, Callable[[str], bool]]] = [
    *WAITS,
    (("line-items", "list"), "--limit", _int(1, 10**9)),
    (
        ("line-items", "list"),
        "--min-remaining-balance",
        _decimal("0", "1e15", lo_open=False, places=2),
    ),
    (
        ("line-items", "list"),
        "--max-remaining-balance",
        _decimal("0", "1e15", lo_open=False, places=2),
    ),
    (
        ("line-items", "reissue", LI, "--reason", "RECIPIENT"),
        "--amount",
        _decimal("0", "1e6", lo_open=True, places=2),
    ),
    (("webhooks", "list"), "--limit", _int(1, 10**9)),
    (("webhooks", "events", WID), "--limit", _int(1, 10**9)),
    (("webhooks", "events", WID), "--from-revision", _int(0, 2**63 - 1)),
    (("webhooks", "events", WID), "--to-revision", _int(0, 2**63 - 1)),
    (("webhooks", "replay", WID), "--from-revision", _int(0, 2**63 - 1)),
    (("webhooks", "replay", WID, "--from-revision", "0"), "--to-revision", _int(0, 2**63 - 1)),
    (("webhooks", "listen", "--unsigned"), "--port", _int(0, 65535)),
    (("webhooks", "listen", "--unsigned", "--port", "0"), "--reorder-delay", _float(0, 3600)),
    (("webhooks", "listen", "--unsigned", "--port", "0"), "--count", _int(1, 10**9)),
]


@pytest.mark.parametrize(
    ("before", "option", "good"),
    LIFECYCLE_NUMERIC,
    ids=lambda c: " ".join(c) if isinstance(c, tuple) else c if isinstance(c, str) else "",
)
def test_every_hostile_number_is_a_usage_error(
    before: tuple[str, ...], option: str, good: Callable[[str], bool]
) -> None:
    for value in HOSTILE_NUMBERS:
        if good(value):
            continue
        result = invoke("--sandbox", "local", *before, option, value)
        refused(result, option)
        assert len([e for e in result.stderr.splitlines() if "Error" in e]) == 1


def test_every_numeric_option_of_these_commands_is_covered() -> None:
    import click

    from tango_async.cli import _common

    covered = {(before[0], before[1], option) for before, option, _ in LIFECYCLE_NUMERIC}
    numeric = (click.FloatRange, click.IntRange, _common._DecimalType)
    found = set()
    for group, name in NEW_COMMANDS:
        command = cli.commands[group].commands[name]  # type: ignore[attr-defined]
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, numeric):
                found.add((group, name, param.opts[0]))
    assert found == covered, found ^ covered


# --- --sandbox local ------------------------------------------------------------------------


def test_reason_codes_and_an_empty_list_against_the_local_sandbox() -> None:
    codes = invoke("--sandbox", "local", "line-items", "reason-codes")
    assert codes.exit_code == 0, codes.output
    assert set(json.loads(codes.stdout)) == {"FREEZE", "UNFREEZE", "CANCEL", "CANCEL_AND_REISSUE"}
    empty = invoke("--sandbox", "local", "line-items", "list", "--format", "csv")
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.splitlines()[0].startswith("referenceLineItemID,referenceOrderID")
    assert "0 line item(s)" in empty.stderr
    missing = invoke("--sandbox", "local", "orders", "wait", "RA-NOPE")
    assert missing.exit_code == 1 and "404" in missing.stderr and missing.stdout == ""
    kinds = invoke("--sandbox", "local", "webhooks", "event-types")
    assert kinds.exit_code == 0, kinds.output
    groups = {g["category"]: g["eventTypes"] for g in json.loads(kinds.stdout)}
    assert "RewardStatus" in groups["REWARD"]


# --- orders wait and line-items wait --------------------------------------------------------


def test_orders_wait_on_an_order_that_fails(sb: ThreadedSandbox) -> None:
    created = sb.order(fail=True)
    assert created.status == "PENDING"
    sb.advance(PENDING_FOR + 1)
    result = sb.invoke("orders", "wait", created.reference_order_id, "--poll", "0.01")
    assert result.exit_code == 1, result.output
    order = json.loads(result.stdout)
    assert order["status"] == "FAILED"
    assert order["referenceOrderID"] == created.reference_order_id
    assert f"order {created.reference_order_id} ended FAILED" in result.stderr
    line = sb.invoke("line-items", "wait", str(created.reference_line_item_id), "--timeout", "0")
    assert line.exit_code == 1, line.output
    assert json.loads(line.stdout)["status"] == "FAILED"


def test_orders_wait_on_an_order_that_completes_prints_no_credentials(sb: ThreadedSandbox) -> None:
    created = completed(sb)
    line_item = str(created.reference_line_item_id)
    secrets = secrets_of(sb, line_item)
    result = sb.invoke("orders", "wait", created.reference_order_id)
    assert result.exit_code == 0, result.output
    order = json.loads(result.stdout)
    assert order["status"] == "COMPLETE" and "reward" not in order
    assert f"its reward: tango-async orders get {created.reference_order_id}" in result.stderr
    item = sb.invoke("line-items", "wait", line_item)
    assert item.exit_code == 0, item.output
    assert json.loads(item.stdout)["status"] == "COMPLETE"
    for out in (result, item):
        assert not [s for s in secrets if s in out.output]
    # the get commands print them, as orders get always has
    shown = sb.invoke("line-items", "get", line_item)
    assert shown.exit_code == 0, shown.output
    assert all(s in shown.stdout for s in secrets)


def test_wait_timeout_says_the_last_status(sb: ThreadedSandbox) -> None:
    created = sb.order()
    result = sb.invoke("orders", "wait", created.reference_order_id, "--timeout", "0")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""  # not final: nothing printed as if it were
    assert "timed out" in result.stderr and "last status: PENDING" in result.stderr
    assert f"wait again with: tango-async orders wait {created.reference_order_id}" in (
        result.stderr
    )
    item = sb.invoke(
        "line-items", "wait", str(created.reference_line_item_id), "--timeout", "0.001"
    )
    assert item.exit_code == 1 and "last status: PENDING" in item.stderr


def test_orders_wait_stops_on_ctrl_c_with_exit_130(sb: ThreadedSandbox) -> None:
    created = sb.order()
    path = f"/orders/{created.reference_order_id}"

    done = threading.Event()

    def interrupt_once_polling() -> None:
        deadline = time.monotonic() + 20
        while not sb.sandbox.arrivals("GET", path) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not done.is_set():  # (once the command is over, SIGINT would stop pytest)
            os.kill(os.getpid(), signal.SIGINT)

    helper = threading.Thread(target=interrupt_once_polling, daemon=True)
    helper.start()
    try:
        result = sb.invoke("orders", "wait", created.reference_order_id, "--poll", "0.05")
    finally:
        done.set()
    helper.join(30)
    assert result.exit_code == 130, result.output
    assert result.stdout == ""
    assert (
        f"interrupted; wait again with: tango-async orders wait {created.reference_order_id}"
        in (result.stderr)
    )


def test_orders_wait_polls_until_final() -> None:
    url = re.compile(re.escape(f"{BASE}/orders/RA1") + r"$")
    with aioresponses() as m:
        m.get(url, payload={"referenceOrderID": "RA1", "status": "PENDING"})
        m.get(url, payload={"referenceOrderID": "RA1", "status": "PENDING"})
        m.get(url, payload={"referenceOrderID": "RA1", "status": "CANCELLED"})
        result = invoke(*API, "orders", "wait", "RA1", "--poll", "0.001", "--max-poll", "0.002")
        gets = sum(len(calls) for (method, _), calls in m.requests.items() if method == "GET")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["status"] == "CANCELLED"
    assert gets == 3


# --- line items against the sandbox ---------------------------------------------------------


def test_line_items_list_in_every_format_without_credentials(
    sb: ThreadedSandbox, tmp_path: Path
) -> None:
    first = completed(sb, amount=5)
    second = sb.order(amount=7, recipient=ta.Recipient(email="bob@example.com", first_name="Bob"))
    secrets = secrets_of(sb, str(first.reference_line_item_id))

    jsonl = sb.invoke("line-items", "list")
    assert jsonl.exit_code == 0, jsonl.output
    items = json_lines(jsonl.stdout)
    assert [i["referenceLineItemID"] for i in items] == [
        second.reference_line_item_id,
        first.reference_line_item_id,
    ]
    assert "2 line item(s)" in jsonl.stderr

    csv_file = tmp_path / "items.csv"
    as_csv = sb.invoke("line-items", "list", "--format", "csv", "-o", csv_file)
    assert as_csv.exit_code == 0, as_csv.output
    rows = csv_file.read_text().splitlines()
    assert rows[0].startswith("referenceLineItemID,referenceOrderID,dateIssued,status")
    assert len(rows) == 3

    table = sb.invoke("line-items", "list", "--format", "table", "--status", "COMPLETE")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == [
        "referenceLineItemID",
        "referenceOrderID",
        "dateIssued",
        "status",
    ]
    assert len(lines) == 2 and str(first.reference_line_item_id) in lines[1]

    one = sb.invoke("line-items", "list", "--limit", "1", "--recipient-email", "bob@example.com")
    assert one.exit_code == 0, one.output
    assert [i["referenceLineItemID"] for i in json_lines(one.stdout)] == [
        second.reference_line_item_id
    ]
    for out in (jsonl, as_csv, table, one):
        assert not [s for s in secrets if s in out.output]
    assert not [s for s in secrets if s in csv_file.read_text()]


def test_freeze_unfreeze_update_and_cancel(sb: ThreadedSandbox) -> None:
    created = completed(sb)
    li = str(created.reference_line_item_id)

    frozen = sb.invoke("line-items", "freeze", li, "--reason", "FRAUD")
    assert frozen.exit_code == 0, frozen.output
    assert f"freeze accepted for line item {li}" in frozen.stdout
    assert sb.sandbox.line_items[li]["rewardStatus"] == "FROZEN"

    unfrozen = sb.invoke(
        "line-items", "unfreeze", li, "--reason", "OTHER", "--other-reason", "checked"
    )
    assert unfrozen.exit_code == 0, unfrozen.output
    assert sb.sandbox.line_items[li]["rewardStatus"] != "FROZEN"
    again = sb.invoke("line-items", "unfreeze", li, "--reason", "FRAUD")  # not frozen now
    assert again.exit_code == 1 and "422" in again.stderr

    updated = sb.invoke(
        "line-items", "update", li, "--campaign", "spring 24", "--purchase-order-number", "PO-7"
    )
    assert updated.exit_code == 0, updated.output
    assert sb.sandbox.line_items[li]["campaign"] == "spring 24"
    assert sb.sandbox.line_items[li]["purchaseOrderNumber"] == "PO-7"

    cancelled = sb.invoke("line-items", "cancel", li, "--reason", "DUPLICATE")
    assert cancelled.exit_code == 0, cancelled.output
    assert sb.sandbox.line_items[li]["status"] == "CANCELLED"
    shown = json.loads(sb.invoke("line-items", "get", li).stdout)
    assert [a["action"] for a in shown["lineItemActionHistory"]] == [
        "FREEZE",
        "UNFREEZE",
        "CANCEL",
    ]
    twice = sb.invoke("line-items", "cancel", li, "--reason", "DUPLICATE")
    assert twice.exit_code == 1 and "422" in twice.stderr


def test_reissue_asks_first_and_spends_once(sb: ThreadedSandbox) -> None:
    created = completed(sb)
    li = str(created.reference_line_item_id)
    args = ("line-items", "reissue", li, "--reason", "RECIPIENT", "--email", "new@example.com")

    def reissues() -> int:
        return len(sb.sandbox.arrivals("POST", f"/lineItems/{li}/reissue"))

    closed = sb.invoke(*args)  # no answer (standard input at its end): no
    assert closed.exit_code == 1, closed.output
    assert "Reissue line item" in closed.stderr and "charged" in closed.stderr
    assert "not reissued: nothing was sent" in closed.stderr
    declined = sb.invoke(*args, input="n\n")
    assert declined.exit_code == 1 and "not reissued" in declined.stderr
    assert reissues() == 0 and closed.stdout == declined.stdout == ""

    accepted = sb.invoke(*args, "--amount", "12.50", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "new amount 12.50" in accepted.stderr
    new = json.loads(accepted.stdout)
    assert new["recipient"]["email"] == "new@example.com"
    assert new["denomination"]["value"] == 12.5
    assert "reward" not in new and "redemptionInstructions" not in new
    assert f"its reward: tango-async line-items get {new['referenceLineItemID']}" in (
        accepted.stderr
    )
    assert reissues() == 1
    assert sb.sandbox.line_items[li]["reissuedToReferenceLineItemId"] == new["referenceLineItemID"]

    # the original is cancelled now: Tango refuses a second reissue (sent: --yes)
    second = sb.invoke(*args, "--yes")
    assert second.exit_code == 1 and "422" in second.stderr
    assert reissues() == 2


# --- line items with aioresponses: exact requests, errors, hostile answers -----------------


def sent(m: aioresponses, method: str, url: str) -> list[Any]:
    return [
        call
        for (meth, u), calls in m.requests.items()
        if meth == method and str(u).split("?")[0] == url
        for call in calls
    ]


HOSTILE = "Gift\x1b[2J\x1b]0;owned\x07 \u202eevil\u2028[bold]card[/bold]\r0 failed"


def test_hostile_server_text_reaches_no_terminal_raw() -> None:
    item = {
        "referenceLineItemID": LI,
        "status": "COMPLETE",
        "rewardName": HOSTILE,
        "amountIssued": {"value": 1e3, "currencyCode": "USD"},
        "recipient": {"email": "a@example.com", "firstName": HOSTILE},
    }
    page = {"keysetPage": {"resultCount": 1}, "lineItems": [item]}
    with aioresponses() as m:
        m.get(re.compile(re.escape(f"{BASE}/lineItems") + r"\?.*"), payload=page, repeat=True)
        m.get(f"{BASE}/lineItems/{LI}", payload=item, repeat=True)
        outs = [
            invoke(*API, "line-items", "list", "--format", fmt) for fmt in ("jsonl", "table", "csv")
        ]
        outs.append(invoke(*API, "line-items", "get", LI))
    for out in outs:
        assert out.exit_code == 0, out.output
    for out in (outs[0], outs[1], outs[3]):
        assert raw_controls(out.stdout) == [], out.stdout
    # CSV into a pipe or a file is data, kept as it is (quoted); on a terminal, escaped
    (row,) = list(csv.DictReader(io.StringIO(outs[2].stdout)))
    assert row["rewardName"] == HOSTILE and row["amount"] == "1000.0"
    assert raw_controls(terminal_cell(HOSTILE, True)) == []
    assert terminal_cell(HOSTILE, False) == HOSTILE
    decoded = json_lines(outs[0].stdout)[0]
    assert decoded["rewardName"] == HOSTILE  # escaped, not altered
    assert decoded["amountIssued"]["value"] == 1000  # a plain number, never 1E+3
    assert "[bold]card[/bold]" in outs[1].stdout  # shown as text, not rich markup
    assert json.loads(outs[3].stdout)["recipient"]["firstName"] == HOSTILE


def test_api_refusals_are_exit_1_with_the_error_escaped() -> None:
    with aioresponses() as m:
        m.post(
            f"{BASE}/lineItems/{LI}/cancel",
            status=422,
            payload={"httpCode": 422, "i18nKey": "422.101", "message": "no\x1b[31m way\r"},
        )
        m.get(f"{BASE}/lineItems/{LI}", status=404, payload={"i18nKey": "404.003"})
        m.post(f"{BASE}/lineItems/{LI}/freeze", status=503, repeat=True)
        cancel = invoke(*API, "line-items", "cancel", LI, "--reason", "FRAUD")
        missing = invoke(*API, "line-items", "get", LI)
        freeze = invoke(*API, "--max-retries", "3", "line-items", "freeze", LI, "--reason", "FRAUD")
        freezes = len(sent(m, "POST", f"{BASE}/lineItems/{LI}/freeze"))
    assert cancel.exit_code == 1 and "422" in cancel.stderr
    assert raw_controls(cancel.stderr) == [] and "way" in cancel.stderr
    assert missing.exit_code == 1 and "404" in missing.stderr
    assert freeze.exit_code == 1 and freezes == 1  # a state change: not retried after sending


def test_reissue_sends_the_documented_body() -> None:
    answer = {
        "referenceOrderID": "RA2",
        "referenceLineItemID": "A12-2",
        "status": "COMPLETE",
        "reward": {"credentialList": [{"label": "Code", "value": "SECRET-REISSUED-CODE"}]},
        "redemptionInstructions": "Go to https://redeem.example/SECRET-LINK",
    }
    with aioresponses() as m:
        m.post(f"{BASE}/lineItems/{LI}/reissue", status=201, payload=answer)
        result = invoke(
            *API,
            "line-items",
            "reissue",
            LI,
            "--reason",
            "OTHER",
            "--other-reason",
            "typo in the email",
            "--amount",
            "25",
            "--delivery-method",
            "PHONE",
            "--mobile",
            "+14155550100",
            "--first-name",
            "Ann",
            "--notes",
            "sorry",
            "--yes",
        )
        calls = sent(m, "POST", f"{BASE}/lineItems/{LI}/reissue")
    assert result.exit_code == 0, result.output
    assert json.loads(calls[0].kwargs["data"]) == {
        "reasonCode": "OTHER",
        "otherReason": "typo in the email",
        "amount": 25,
        "deliveryMethod": "PHONE",
        "recipient": {"firstName": "Ann", "mobileNumber": "+14155550100"},
        "notes": "sorry",
    }
    assert "SECRET" not in result.output
    assert json.loads(result.stdout)["referenceLineItemID"] == "A12-2"


# --- webhooks against the sandbox ------------------------------------------------------------


def hook_env(**extra: str) -> dict[str, str]:
    return {"TANGO_TEST_HMAC": HMAC_KEY, "TANGO_TEST_HEADER": HEADER_SECRET, **extra}


def no_secrets(*results: Result) -> None:
    for result in results:
        for secret in (HMAC_KEY, HEADER_SECRET, "listener-s3cret"):
            assert secret not in result.output


def test_webhook_subscription_lifecycle(sb: ThreadedSandbox, tmp_path: Path) -> None:
    created = sb.invoke(
        "webhooks",
        "create",
        "http://127.0.0.1:9/tango",
        "--event-type",
        "RewardStatus",
        "--event-type",
        "ConnectivityTest",
        "--header-env",
        "Authorization=TANGO_TEST_HEADER",
        "--header",
        "X-Team=rewards",
        "--hmac-key-env",
        "TANGO_TEST_HMAC",
        env=hook_env(),
    )
    assert created.exit_code == 0, created.output
    made = json.loads(created.stdout)
    wid = made["webhookId"]
    assert made["expiresAt"] and f"tango-async webhooks renew {wid}" in created.stderr
    stored = sb.sandbox.webhook_subscriptions[wid]
    assert stored["payloadVerificationMethod"] == "HMAC"
    assert {h["name"]: h["value"] for h in stored["headers"]} == {
        "Authorization": HEADER_SECRET,
        "X-Team": "rewards",
    }

    got = sb.invoke("webhooks", "get", wid)
    assert got.exit_code == 0, got.output
    shown = json.loads(got.stdout)
    assert shown["hmacSharedSecretKey"] == "***"
    assert {h["value"] for h in shown["headers"]} == {"***"}
    listed = sb.invoke("webhooks", "list")
    assert [h["webhookId"] for h in json_lines(listed.stdout)] == [wid]
    table = sb.invoke("webhooks", "list", "--format", "table", "--url", "https://nope.example/")
    assert table.exit_code == 0 and "0 subscription(s)" in table.stderr

    key_file = tmp_path / "key.txt"
    key_file.write_text(base64.b64encode(b"another-key-of-32-bytes-or-so!!!").decode() + "\n")
    updated = sb.invoke(
        "webhooks", "update", wid, "--category", "ORDER", "--hmac-key-file", key_file
    )
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.stdout)["categories"] == ["ORDER"]
    assert key_file.read_text().strip() not in updated.output
    renewed = sb.invoke("webhooks", "renew", wid)
    assert renewed.exit_code == 0 and json.loads(renewed.stdout)["webhookId"] == wid

    tested = sb.invoke("webhooks", "test", wid, "ConnectivityTest")
    assert tested.exit_code == 0, tested.output
    sb.call(sb.sandbox.deliver_due())
    events = sb.invoke("webhooks", "events", wid)
    assert events.exit_code == 0, events.output
    (event,) = json_lines(events.stdout)
    assert set(event) == {
        "event_id",
        "revision",
        "event_type",
        "categories",
        "event_occurred_at",
        "event_data",
    }
    assert event["event_type"] == "ConnectivityTest"
    revision = event["revision"]
    as_table = sb.invoke("webhooks", "events", wid, "--format", "table")
    assert event["event_id"] in as_table.stdout
    later = sb.invoke("webhooks", "events", wid, "--from-revision", str(revision + 1))
    assert later.exit_code == 0 and later.stdout == ""
    replayed = sb.invoke("webhooks", "replay", wid, "--from-revision", str(revision))
    assert replayed.exit_code == 0, replayed.output
    bad_range = sb.invoke("webhooks", "replay", wid, "--from-revision", "3", "--to-revision", "2")
    assert bad_range.exit_code == 2

    kept = sb.invoke("webhooks", "delete", wid, input="n\n")
    assert kept.exit_code == 1 and wid in sb.sandbox.webhook_subscriptions
    deleted = sb.invoke("webhooks", "delete", wid, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert wid not in sb.sandbox.webhook_subscriptions
    gone = sb.invoke("webhooks", "get", wid)
    assert gone.exit_code == 1 and "404" in gone.stderr
    no_secrets(created, got, listed, updated, renewed, tested, events, deleted)


def test_webhook_create_with_a_certificate_and_unsigned(
    sb: ThreadedSandbox, tmp_path: Path
) -> None:
    cert = tmp_path / "signing.pem"
    cert.write_text(sb.sandbox.webhook_certificate)
    x509 = sb.invoke(
        "webhooks", "create", "https://h.example/x", "--category", "REWARD", "--certificate", cert
    )
    assert x509.exit_code == 0, x509.output
    wid = json.loads(x509.stdout)["webhookId"]
    assert sb.sandbox.webhook_subscriptions[wid]["payloadVerificationMethod"] == "X509"
    none = sb.invoke(
        "webhooks", "create", "https://h.example/y", "--category", "REWARD", "--unsigned"
    )
    assert none.exit_code == 0, none.output
    wid = json.loads(none.stdout)["webhookId"]
    assert sb.sandbox.webhook_subscriptions[wid]["payloadVerificationMethod"] == "NONE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("https://h.example/", "--event-type", "RewardStatus"), "say how deliveries are signed"),
        (
            ("https://h.example/", "--event-type", "X", "--unsigned", "--hmac-key-env", "T"),
            "give one of",
        ),
        (("https://h.example/", "--unsigned"), "--event-type: give at least one"),
        (("ftp://h.example/", "--unsigned", "--category", "C"), "Invalid value for 'URL'"),
        (("https://h.example/", "--category", "C", "--hmac-key-env", "UNSET_VAR"), "is not set"),
        (("https://h.example/", "--category", "C", "--hmac-key-env", "SHORT"), "at least 16"),
        (("https://h.example/", "--category", "C", "--hmac-key-env", "NOT_B64"), "base64"),
        (("https://h.example/", "--category", "C", "--unsigned", "--header", "novalue"), "NAME="),
        (
            ("https://h.example/", "--category", "C", "--unsigned", "--header", "Bad Name=v"),
            "--header:",
        ),
        (
            (
                "https://h.example/",
                "--category",
                "C",
                "--unsigned",
                "--header",
                "X-Signed-Payload=v",
            ),
            "set by Tango",
        ),
        (
            (
                "https://h.example/",
                "--category",
                "C",
                "--unsigned",
                "--header",
                "A=1",
                "--header",
                "a=2",
            ),
            "given twice",
        ),
        (("https://h.example/", "--category", "C", "--certificate", "/nonexistent.pem"), "exist"),
    ],
)
def test_bad_webhook_create_options_are_usage_errors(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    env = hook_env(SHORT=base64.b64encode(b"short").decode(), NOT_B64="not base64 at all!")
    env.pop("UNSET_VAR", None)
    result = invoke("--sandbox", "local", "webhooks", "create", *args, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "local sandbox" not in result.stderr
    no_secrets(result)
    assert env["SHORT"] not in result.output


def test_bad_certificate_file_and_other_webhook_usage_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n")
    made = invoke(
        "webhooks", "create", "https://h.example/", "--category", "C", "--certificate", junk
    )
    assert made.exit_code == 2 and "Invalid value for '--certificate'" in made.stderr
    for args in (
        ("webhooks", "get", "not-a-uuid"),
        ("webhooks", "update", WID),
        ("webhooks", "update", WID, "--url", "nope"),
        ("webhooks", "test", WID, "NoSuchTest"),
        ("webhooks", "events", WID, "--from-revision", "-1"),
        ("webhooks", "replay", WID),
        ("webhooks", "list", "--expires-at-from", "soon"),
        ("webhooks", "list", "--header-value-env", "UNSET_VAR_FOR_TEST"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)


def test_library_validation_errors_map_to_exit_2() -> None:
    # a filter the library checks when the listing starts (not an option type of its own)
    result = invoke("--sandbox", "local", "webhooks", "list", "--header-name", "a\x01b")
    assert result.exit_code == 2, result.output
    assert "header_name" in result.stderr and raw_controls(result.stderr) == []


def test_webhook_delete_sends_once_and_a_404_is_exit_1() -> None:
    with aioresponses() as m:
        m.delete(f"{BASE}/webhooks/{WID}", status=204)
        m.get(
            f"{BASE}/webhooks/{WID}",
            payload={
                "webhookId": WID,
                "url": "https://h.example/",
                "hmacSharedSecretKey": HMAC_KEY,
                "headers": [{"name": "Authorization", "value": HEADER_SECRET}],
            },
        )
        deleted = invoke(*API, "webhooks", "delete", WID, input="y\n")
        got = invoke(*API, "webhooks", "get", WID)
        again = invoke(*API, "--max-retries", "0", "webhooks", "get", WID)  # nothing mocked
    assert deleted.exit_code == 0 and f"deleted webhook subscription {WID}" in deleted.stdout
    assert got.exit_code == 0 and json.loads(got.stdout)["hmacSharedSecretKey"] == "***"
    assert again.exit_code == 1
    no_secrets(deleted, got, again)


# --- webhooks listen ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def post(port: int, body: bytes, headers: dict[str, str], path: str = "/") -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def listen_while(
    action: Callable[[int], None], *args: str, env: dict[str, str] | None = None
) -> Result:
    """Run ``webhooks listen`` on a free port here, ``action(port)`` in a thread once the
    port is open; stop the listener with SIGINT if it is still running 20 s after
    ``action`` (or at once if ``action`` fails), so a broken test fails instead of
    hanging."""
    port = free_port()
    done = threading.Event()
    failures: list[BaseException] = []

    def act() -> None:
        try:
            wait_for_port(port)
            action(port)
        except BaseException as e:
            failures.append(e)
            if not done.is_set():  # (once the listener is gone, SIGINT would stop pytest)
                os.kill(os.getpid(), signal.SIGINT)
            return
        if not done.wait(20):
            os.kill(os.getpid(), signal.SIGINT)

    helper = threading.Thread(target=act, daemon=True)
    helper.start()
    try:
        result = invoke("webhooks", "listen", "--port", str(port), *args, env=env)
    finally:
        done.set()
        helper.join(30)
    if failures:
        raise failures[0]
    return result


def event_body(event_id: str, revision: int, status: str = "COMPLETE", **data: Any) -> bytes:
    return json.dumps(
        {
            "eventId": event_id,
            "revision": revision,
            "eventType": "RewardStatus",
            "categories": ["REWARD"],
            "eventOccurredAt": "2024-01-01T00:00:00Z",
            "eventData": {"referenceLineItemId": LI, "status": status, **data},
        }
    ).encode()


def signed(body: bytes, key: bytes = KEY_BYTES) -> dict[str, str]:
    signature = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    return {"X-Signed-Payload": signature, "Content-Type": "application/json"}


def test_listen_prints_verified_events_and_refuses_bad_signatures() -> None:
    answers: list[int] = []
    good_a = event_body("evt-a", 1, reason="delivered")
    good_b = event_body("evt-b", 2)
    forged = event_body("evt-forged", 3, reason="FORGED-EVENT")

    def deliver(port: int) -> None:
        answers.append(post(port, forged, signed(forged, b"wrong-key-wrong-key-wrong")))
        answers.append(post(port, forged, signed(good_a)))  # a signature of another body
        answers.append(post(port, forged, {"Content-Type": "application/json"}))  # none
        answers.append(post(port, good_a, signed(good_a)))
        answers.append(post(port, good_a, signed(good_a)))  # Tango delivering again
        answers.append(post(port, good_b, signed(good_b)))

    result = listen_while(
        deliver,
        "--hmac-key-env",
        "TANGO_TEST_HMAC",
        "--reorder-delay",
        "0",
        "--count",
        "2",
        env=hook_env(),
    )
    assert result.exit_code == 0, result.output
    assert answers == [401, 401, 401, 200, 200, 200]
    events = json_lines(result.stdout)
    assert [e["event_id"] for e in events] == ["evt-a", "evt-b"]
    assert events[0] == {
        "event_id": "evt-a",
        "revision": 1,
        "event_type": "RewardStatus",
        "categories": ["REWARD"],
        "event_occurred_at": "2024-01-01T00:00:00Z",
        "event_data": {"referenceLineItemId": LI, "status": "COMPLETE", "reason": "delivered"},
    }
    assert "FORGED" not in result.stdout
    assert "listening on http://127.0.0.1:" in result.stderr
    assert result.stderr.count("webhook delivery refused") == 3
    assert "2 event(s) printed; 3 refused, 1 duplicate(s)" in result.stderr
    no_secrets(result)


def test_listen_on_a_path_with_a_key_file_and_hex_signatures(tmp_path: Path) -> None:
    key_file = tmp_path / "hook.key"
    key_file.write_text(HMAC_KEY + "\n")
    body = event_body("evt-hex", 7)
    hexed = {"X-Signed-Payload": hmac.new(KEY_BYTES, body, hashlib.sha256).hexdigest()}
    answers: list[int] = []

    def deliver(port: int) -> None:
        answers.append(post(port, body, hexed, path="/"))  # not the listener's path
        answers.append(post(port, body, signed(body), path="/tango"))  # base64: refused
        answers.append(post(port, body, hexed, path="/tango"))

    result = listen_while(
        deliver,
        "--path",
        "/tango",
        "--hmac-key-file",
        str(key_file),
        "--signature-encoding",
        "hex",
        "--reorder-delay",
        "0",
        "--count",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert answers[1:] == [401, 200] and answers[0] in (404, 405)
    assert [e["event_id"] for e in json_lines(result.stdout)] == ["evt-hex"]


def test_listen_receives_what_the_sandbox_delivers_hmac_and_x509(
    sb: ThreadedSandbox, tmp_path: Path
) -> None:
    cert = tmp_path / "sandbox.pem"
    cert.write_text(sb.sandbox.webhook_certificate)
    for option, value, signing in (
        ("--hmac-key-env", "TANGO_TEST_HMAC", {"hmac_key": HMAC_KEY}),
        ("--certificate", str(cert), {"certificate": sb.sandbox.webhook_certificate}),
    ):

        def have_the_sandbox_deliver(port: int, signing: dict[str, Any] = signing) -> None:
            async def go(client: ta.TangoClient) -> None:
                made = await client.webhooks.create(
                    f"http://127.0.0.1:{port}/",
                    event_types=["ConnectivityTest"],
                    headers={"Authorization": HEADER_SECRET},
                    **signing,
                )
                assert made.webhook_id is not None
                await client.webhooks.test(made.webhook_id, "ConnectivityTest")
                await sb.sandbox.deliver_due()
                await client.webhooks.delete(made.webhook_id)

            sb.with_client(go)

        result = listen_while(
            have_the_sandbox_deliver,
            option,
            value,
            "--reorder-delay",
            "0",
            "--count",
            "1",
            env=hook_env(),
        )
        assert result.exit_code == 0, result.output
        (event,) = json_lines(result.stdout)
        assert event["event_type"] == "ConnectivityTest" and event["categories"]
        assert "0 refused" in result.stderr
        no_secrets(result)


def test_listen_stops_on_ctrl_c_with_exit_130() -> None:
    def interrupt(port: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    result = listen_while(interrupt, "--unsigned", "--reorder-delay", "0")
    assert result.exit_code == 130, result.output
    assert result.stdout == ""
    assert "--unsigned: anyone who can reach this URL can post events" in result.stderr
    assert "0 event(s) printed" in result.stderr


def test_listen_usage_errors_and_a_port_in_use(tmp_path: Path) -> None:
    for args in (
        ("--port", "8080"),  # how deliveries are signed is required
        ("--port", "70000", "--unsigned"),
        ("--port", "0", "--unsigned", "--path", "no-slash"),
        ("--port", "0", "--unsigned", "--reorder-delay", "nan"),
        ("--port", "0", "--hmac-key-env", "NOT_B64"),
        ("--port", "0", "--hmac-key-env", "EMPTY"),
        ("--port", "0", "--hmac-key-env", "TANGO_TEST_HMAC", "--unsigned"),
        ("--port", "0", "--unsigned", "--count", "0"),
    ):
        guard = threading.Timer(20, os.kill, (os.getpid(), signal.SIGINT))  # never hang
        guard.start()
        try:
            result = invoke(
                "webhooks", "listen", *args, env=hook_env(NOT_B64="not base64!", EMPTY=" ")
            )
        finally:
            guard.cancel()
        assert result.exit_code == 2, (args, result.output)
        no_secrets(result)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke("webhooks", "listen", "--port", str(port), "--unsigned")
    assert result.exit_code == 2, result.output  # an environment error (issue 16)
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_listen_needs_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TANGO_PLATFORM_NAME", "TANGO_PLATFORM_KEY", "TANGO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    body = event_body("evt-1", 1)

    def deliver(port: int) -> None:
        with contextlib.suppress(Exception):
            post(port, body, signed(body))

    result = listen_while(
        deliver,
        "--hmac-key-env",
        "TANGO_TEST_HMAC",
        "--count",
        "1",
        "--reorder-delay",
        "0",
        env=hook_env(),
    )
    assert result.exit_code == 0, result.output
    assert "TANGO_PLATFORM_NAME" not in result.stderr
