"""The CLI's ``--oauth-*`` options and their TANGO_OAUTH_* env vars (issue 15, point 7):
against ``--sandbox local`` and against a sandbox server given by ``--base-url`` and
``--oauth-token-url``; incomplete or ambiguous settings are exit 2; secrets are never
echoed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tango_async.cli._app import cli

from .reconcile_support import ThreadedSandbox

SECRET = "cli-oauth-s3cret-0123456789"
PASSWORD = "cli-oauth-passw0rd-abcdef"

ENV = (
    "TANGO_PLATFORM_NAME",
    "TANGO_PLATFORM_KEY",
    "TANGO_BASE_URL",
    "TANGO_OAUTH_CLIENT_ID",
    "TANGO_OAUTH_CLIENT_SECRET",
    "TANGO_OAUTH_USERNAME",
    "TANGO_OAUTH_PASSWORD",
    "TANGO_OAUTH_GRANT_TYPE",
    "TANGO_OAUTH_AUDIENCE",
    "TANGO_OAUTH_TOKEN_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for secret in (SECRET, PASSWORD):
        assert secret not in result.output and secret not in result.stderr
    return result


@pytest.fixture
def remote() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(oauth_client_secret=SECRET, oauth_password=PASSWORD) as sb:
        yield sb


def test_help_lists_the_oauth_options() -> None:
    out = invoke("--help").output
    for option in (
        "--oauth-client-id", "--oauth-client-secret", "--oauth-username", "--oauth-password",
        "--oauth-grant-type", "--oauth-audience", "--oauth-token-url",
    ):  # fmt: skip
        assert option in out
    assert "TANGO_OAUTH_CLIENT_SECRET" in out


def test_local_sandbox_with_oauth_options() -> None:
    res = invoke(
        "--sandbox", "local", "--oauth-client-id", "cli-client", "--oauth-client-secret", SECRET,
        "orders", "list",
    )  # fmt: skip
    assert res.exit_code == 0, res.output + res.stderr


def test_local_sandbox_with_the_password_grant_from_env() -> None:
    env = {
        "TANGO_OAUTH_CLIENT_ID": "cli-client",
        "TANGO_OAUTH_CLIENT_SECRET": SECRET,
        "TANGO_OAUTH_USERNAME": "svc-user",
        "TANGO_OAUTH_PASSWORD": PASSWORD,
        "TANGO_OAUTH_AUDIENCE": "tango-api.bhn.com/fiveminute",
    }
    res = invoke("--sandbox", "local", "orders", "list", env=env)
    assert res.exit_code == 0, res.output + res.stderr


def test_a_remote_sandbox_over_oauth(remote: ThreadedSandbox) -> None:
    sb = remote.sandbox
    res = invoke(
        "--base-url", sb.base_url, "--oauth-token-url", sb.oauth_token_url,
        "--oauth-client-id", sb.oauth_client_id, "--oauth-client-secret", SECRET,
        "orders", "list",
    )  # fmt: skip
    assert res.exit_code == 0, res.output + res.stderr
    assert [r.status for r in sb.token_requests] == [200]
    assert sb.token_requests[0].grant_type == "client_credentials"
    api = [r for r in sb.requests if r.path.startswith("/raas/v2")]
    assert api and all(str(r.headers["Authorization"]).startswith("Bearer ") for r in api)


def test_a_remote_sandbox_with_the_password_grant(remote: ThreadedSandbox) -> None:
    sb = remote.sandbox
    env = {
        "TANGO_OAUTH_CLIENT_ID": sb.oauth_client_id,
        "TANGO_OAUTH_CLIENT_SECRET": SECRET,
        "TANGO_OAUTH_USERNAME": sb.oauth_username,
        "TANGO_OAUTH_PASSWORD": PASSWORD,
        "TANGO_OAUTH_TOKEN_URL": sb.oauth_token_url,
    }
    res = invoke("--base-url", sb.base_url, "orders", "list", env=env)
    assert res.exit_code == 0, res.output + res.stderr
    assert sb.token_requests[0].grant_type == "password"


def test_a_wrong_secret_is_a_clear_error(remote: ThreadedSandbox) -> None:
    sb = remote.sandbox
    res = invoke(
        "--base-url", sb.base_url, "--oauth-token-url", sb.oauth_token_url,
        "--oauth-client-id", sb.oauth_client_id, "--oauth-client-secret", SECRET + "-x",
        "orders", "list",
    )  # fmt: skip
    assert res.exit_code == 1
    assert "HTTP 401" in res.stderr and "invalid_client" in res.stderr
    assert SECRET + "-x" not in res.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--oauth-client-secret", SECRET), "oauth_client_id"),
        (("--oauth-client-id", "c"), "client_secret"),
        (
            (
                "--oauth-client-id",
                "c",
                "--oauth-client-secret",
                SECRET,
                "--oauth-grant-type",
                "password",
            ),
            "username",
        ),
        (
            ("--oauth-client-id", "c", "--oauth-client-secret", SECRET, "--platform-key", "k"),
            "not both",
        ),
        (
            (
                "--oauth-client-id",
                "c",
                "--oauth-client-secret",
                SECRET,
                "--base-url",
                "https://api.example.com/raas/v2",
            ),
            "token_url",
        ),
        (
            (
                "--oauth-client-id",
                "c",
                "--oauth-client-secret",
                SECRET,
                "--oauth-token-url",
                "http://auth.example.com/oauth/token",
            ),
            "token_url",
        ),
    ],
)
def test_incomplete_or_ambiguous_settings_are_exit_2(args: tuple[str, ...], needle: str) -> None:
    res = invoke(*args, "orders", "list")
    assert res.exit_code == 2, res.output + res.stderr
    assert needle in res.stderr


def test_a_bad_grant_type_is_a_usage_error() -> None:
    res = invoke("--oauth-grant-type", "implicit", "orders", "list")
    assert res.exit_code == 2 and "--oauth-grant-type" in res.stderr
