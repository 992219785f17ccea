"""Issue 16, CLI conventions: global options after the command, enum filters checked
with a warning, --sandbox local beside an explicit server or credentials, one-line usage
and environment errors (exit 2, no traceback)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tango_async.cli._app import cli
from tango_async.cli._common import TangoGroup, run

from .reconcile_support import ThreadedSandbox, threaded_sandbox

START = datetime(2024, 1, 1, tzinfo=UTC)
HEADER = "customer_identifier,account_identifier,utid,amount,recipient.email,recipient.first_name"
TANGO_ENV = (
    "TANGO_PLATFORM_NAME",
    "TANGO_PLATFORM_KEY",
    "TANGO_BASE_URL",
    "TANGO_OAUTH_CLIENT_ID",
    "TANGO_OAUTH_CLIENT_SECRET",
    "TANGO_OAUTH_TOKEN_URL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TANGO_ENV:
        monkeypatch.delenv(name, raising=False)


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_line_error(result: Result, *needles: str) -> None:
    """A usage or environment error: exit 2, one line on stderr, nothing on stdout."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert all(n in lines[0] for n in needles), lines[0]


@pytest.fixture
def sb() -> Iterator[ThreadedSandbox]:
    with threaded_sandbox() as sandbox:
        yield sandbox


# --- 1. global options before or after the command --------------------------------------------


def test_global_options_after_the_command(sb: ThreadedSandbox) -> None:
    ids = sb.sandbox.seed_orders(3, start=START, step=timedelta(hours=1))
    before = invoke(*sb.args, "orders", "get", ids[0])
    after = invoke("orders", "get", ids[0], *sb.args)
    assert before.exit_code == after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(before.stdout)
    mixed = invoke(sb.args[0], sb.args[1], "orders", "list", *sb.args[2:], "--timeout", "5")
    assert mixed.exit_code == 0, mixed.output
    assert len(mixed.stdout.splitlines()) == 3


def test_submit_file_then_sandbox_local(tmp_path: Path) -> None:
    file = tmp_path / "orders.csv"
    file.write_text(
        f"{HEADER}\ncust-12345,acct-12345,U561593,5.00,p@example.com,Ann\n", encoding="utf-8"
    )
    result = invoke("submit", file, "--order-rate", "50", "--sandbox", "local")
    assert result.exit_code == 0, result.output
    assert "local sandbox: http://127.0.0.1:" in result.stderr


def test_orders_list_then_sandbox_local_and_verbose() -> None:
    result = invoke("orders", "list", "--sandbox", "local", "-v", "--max-retries", "0")
    assert result.exit_code == 0, result.output
    assert "0 order(s)" in result.stderr


def test_the_same_option_before_and_after() -> None:
    same = invoke("--sandbox", "local", "orders", "list", "--sandbox", "local")
    assert same.exit_code == 0, same.output
    differ = invoke("--timeout", "5", "--sandbox", "local", "orders", "list", "--timeout", "6")
    one_line_error(differ, "--timeout is given before and after the command")


def test_a_commands_own_option_wins_over_the_global_one() -> None:
    # orders wait --timeout is the wait's: the global --timeout only goes before
    help_text = invoke("orders", "wait", "--help").stdout
    own, _, shared = help_text.partition("Global options")
    assert "--timeout" in own and "--timeout" not in shared
    assert "--base-url" in shared and "--sandbox" in shared


def test_every_command_shows_the_global_options_in_its_help() -> None:
    for path in (("submit",), ("orders", "list"), ("accounts", "list"), ("webhooks", "get")):
        result = invoke(*path, "--help")
        assert result.exit_code == 0, result.output
        assert "Global options (here or before the command):" in result.stdout
        assert "--platform-key" in result.stdout.partition("Global options")[2]


def test_the_sandbox_command_passes_everything_through() -> None:
    result = invoke("sandbox", "--help")
    assert result.exit_code == 0 and "--port" in result.stdout
    assert "Global options" not in result.stdout


# --- 3. enum-valued filters ----------------------------------------------------------------------


def test_an_unknown_status_warns_and_is_sent(sb: ThreadedSandbox) -> None:
    sb.sandbox.seed_orders(2, start=START, step=timedelta(hours=1))
    result = invoke(*sb.args, "orders", "list", "--status", "FOO")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [
        "warning: --status 'FOO' is not a known value (known: COMPLETE, PENDING, FAILED, "
        "QUEUED, PENDING_MR, ON_HOLD, CANCELLED, PARTIAL, DELETED, PENDING_KYB, "
        "PENDING_PAYMENT); sent as given"
    ]
    sent = [r for r in sb.sandbox.requests if r.path.endswith("/orders")]
    assert sent and sent[-1].query.get("status") == "FOO"


@pytest.mark.parametrize(
    ("option", "given", "sent", "param"),
    [
        ("--status", "complete", "COMPLETE", "status"),
        ("--order-status", "Pending", "PENDING", "orderStatus"),
        ("--line-item-status", "returned", "RETURNED", "lineItemStatus"),
        ("--delivery-method", "email", "EMAIL", "deliveryMethod"),
    ],
)
def test_a_known_value_in_any_case_is_sent_as_the_api_spells_it(
    sb: ThreadedSandbox, option: str, given: str, sent: str, param: str
) -> None:
    result = invoke(*sb.args, "orders", "list", option, given)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert sb.sandbox.requests[-1].query.get(param) == sent


def test_every_enum_filter_of_orders_list_warns() -> None:
    for option in ("--delivery-method", "--order-status", "--line-item-status"):
        result = invoke("--sandbox", "local", "orders", "list", option, "NEWER")
        assert result.exit_code == 0, result.output
        assert f"warning: {option} 'NEWER' is not a known value" in result.stderr


def test_a_bad_enum_value_is_still_a_usage_error() -> None:
    result = invoke("--sandbox", "local", "orders", "list", "--status", "A\x1bB")
    one_line_error(result, "--status")


def test_line_item_enum_filters_take_any_case() -> None:
    result = invoke("--sandbox", "local", "line-items", "list", "--status", "complete")
    assert result.exit_code == 0, result.output


# --- 5. --sandbox local with an explicit server or credentials ----------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ("--base-url", "https://integration-api.tangocard.com/raas/v2"),
        ("--platform-name", "me"),
        ("--platform-key", "sk-secret"),
        ("--oauth-token-url", "https://auth.example.com/oauth/token"),
    ],
    ids=lambda e: e[0],
)
@pytest.mark.parametrize("where", ["before", "after"])
def test_sandbox_local_refuses_an_explicit_server_or_credentials(
    extra: tuple[str, str], where: str
) -> None:
    if where == "before":
        args = ["--sandbox", "local", *extra, "orders", "list"]
    else:
        args = ["orders", "list", "--sandbox", "local", *extra]
    result = invoke(*args)
    one_line_error(result, "--sandbox local", extra[0])
    assert "local sandbox:" not in result.stderr  # nothing started
    assert "sk-secret" not in result.output


def test_sandbox_local_ignores_the_environment_with_a_note() -> None:
    env = {"TANGO_BASE_URL": "https://api.tangocard.com/raas/v2", "TANGO_PLATFORM_KEY": "sk-x"}
    result = invoke("--sandbox", "local", "orders", "list", env=env)
    assert result.exit_code == 0, result.output
    assert (
        "note: --sandbox local ignores TANGO_BASE_URL, TANGO_PLATFORM_KEY (set in the "
        "environment)" in result.stderr
    )
    assert result.stderr.count("note:") == 1
    assert "sk-x" not in result.output


# --- 6. one line and exit 2 ---------------------------------------------------------------------


def test_a_usage_error_is_one_line() -> None:
    one_line_error(invoke("orders", "list", "--nope"), "No such option", "orders list --help")
    one_line_error(invoke("orders", "frobnicate"), "No such command")
    one_line_error(invoke("orders", "list", "--limit", "0"), "--limit")


def test_bad_environment_values_are_one_line() -> None:
    bad = invoke("orders", "list", env={"TANGO_OAUTH_GRANT_TYPE": "bogus"})
    one_line_error(bad, "--oauth-grant-type")
    url = invoke(
        "orders",
        "list",
        env={
            "TANGO_BASE_URL": "not a url",
            "TANGO_PLATFORM_NAME": "me",
            "TANGO_PLATFORM_KEY": "sk-1",
        },
    )
    assert url.exit_code == 2, url.output
    assert len(url.stderr.splitlines()) == 1 and "base_url" in url.stderr


def _toy() -> click.Group:
    @click.group(cls=TangoGroup)
    def toy() -> None:
        """A group with the CLI's error handling."""

    @toy.command()
    def unreadable() -> None:
        """Raise what reading a file without permission raises."""
        raise PermissionError(13, "Permission denied", "/root/secret.csv")

    @toy.command()
    def inside() -> None:
        """Raise an OSError inside a command's run."""

        async def main() -> int:
            raise OSError(28, "No space left on device", "/full/out.jsonl")

        run(main())

    return toy


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("unreadable", "Permission denied: '/root/secret.csv'"),
        ("inside", "No space left on device: '/full/out.jsonl'"),
    ],
)
def test_an_os_error_is_one_line_and_exit_2(command: str, needle: str) -> None:
    result = CliRunner().invoke(_toy(), [command])
    one_line_error(result, needle)


def _busy_port() -> socket.socket:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    return busy


def test_the_sandbox_on_a_busy_port_is_one_line_and_exit_2() -> None:
    with _busy_port() as busy:
        port = str(busy.getsockname()[1])
        via_cli = invoke("sandbox", "--port", port)
        proc = subprocess.run(
            [sys.executable, "-m", "tango_async.testing", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert via_cli.exit_code == 2, via_cli.output
    assert f"cannot serve on 127.0.0.1:{port}" in via_cli.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"cannot serve on 127.0.0.1:{port}: " in proc.stderr and proc.stdout == ""


def test_the_sandbox_with_an_unwritable_file_says_which(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "cert.pem"
    result = invoke("sandbox", "--webhook-certificate-file", str(missing))
    assert result.exit_code == 2, result.output
    assert f"cannot write --webhook-certificate-file '{missing}'" in result.stderr


def test_no_command_still_shows_the_help() -> None:
    result = invoke()
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: ") and "Commands:" in result.stderr
    assert invoke("--help").exit_code == 0 and invoke("orders", "--help").exit_code == 0


def test_an_unknown_line_item_status_is_refused_in_one_line() -> None:
    # line_items.list() itself refuses values outside the spec's (ValidationError)
    result = invoke("--sandbox", "local", "line-items", "list", "--status", "FOO")
    one_line_error(result, "--status", "'FOO' is not one of")
