"""What the commands share: settings, option types checked at parse time, running a
coroutine with Ctrl-C handling, connecting, the ``cli`` group itself."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import TangoClient, TangoError
from .._constants import DEFAULT_RATE_MARGIN
from .._exceptions import APIError, ValidationError
from .._logs import escape_lines
from .._oauth import DEFAULT_AUDIENCE, GRANT_TYPES, OAuth
from ..bulk._inputs import InputFileError
from ..bulk._job import check_run_label
from ..bulk._journal import (
    JournalError,
)
from ..bulk._report import ReportError

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class Settings:
    platform_name: str | None
    platform_key: str | None
    base_url: str | None
    sandbox: str | None
    timeout: float = 30.0
    max_retries: int = 3
    # OAuth (issue 15): used instead of the platform key when a client ID is given
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    oauth_username: str | None = None
    oauth_password: str | None = field(default=None, repr=False)
    oauth_grant_type: str | None = None
    oauth_audience: str | None = None
    oauth_token_url: str | None = None

    @property
    def oauth(self) -> bool:
        """True when the OAuth options ask for bearer tokens."""
        return self.oauth_client_id is not None or self.oauth_client_secret is not None


def _oauth_for(settings: Settings, token_url: str | None) -> OAuth:
    """The OAuth of the ``--oauth-*`` options (ValidationError, exit 2, when incomplete):
    the password grant when a username is given and no grant type."""
    grant = settings.oauth_grant_type or (
        "password" if settings.oauth_username is not None else "client_credentials"
    )
    if settings.oauth_client_id is None:
        raise ValidationError(
            "oauth_client_id", "is required with --oauth-client-secret (TANGO_OAUTH_CLIENT_ID)"
        )
    return OAuth(
        settings.oauth_client_id,
        settings.oauth_client_secret,  # type: ignore[arg-type]  # OAuth says when missing
        username=settings.oauth_username,
        password=settings.oauth_password,
        grant_type=grant,
        audience=settings.oauth_audience or DEFAULT_AUDIENCE,
        token_url=token_url,
    )


def echo_err(message: str) -> None:
    click.echo(escape_lines(message), err=True)  # server and file text: no raw control chars


# --- option types: every value is checked when the command line is parsed, so a bad one is
# a usage error naming the option (exit 2) before anything starts; the bounds are the
# library's own, so nothing the CLI accepts is refused (or overflows) later -----------------

MAX_SECONDS = 86_400.0  # a day: the longest timeout and progress interval
MIN_TIMEOUT = 0.001  # a shorter attempt can only time out
# the client's floor: at most a day between slots once its 5% margin is added
MIN_ORDER_RATE = (1 + DEFAULT_RATE_MARGIN) / 86_400
MAX_ORDER_RATE = 1000.0
MAX_RETRIES = 100  # RetryPolicy's bound
MAX_LIMIT = 10**9  # orders list --limit


class _FiniteFloat(click.FloatRange):
    """click's FloatRange, also refusing nan (every comparison with nan is false, so a
    bounded range lets it through) and infinities; ``label`` is the range in --help."""

    def __init__(
        self, lo: float, hi: float, *, lo_open: bool = False, label: str | None = None
    ) -> None:
        super().__init__(min=lo, max=hi, min_open=lo_open)
        self._label = label

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number

    def _describe_range(self) -> str:
        return self._label or super()._describe_range()


class _Checked(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """Text checked by the library's own rule for it (``check`` raises ValidationError)."""

    def __init__(self, name: str, check: Callable[[str], object]) -> None:
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            self._check(value)
        except ValidationError as e:
            self.fail(e.rule, param, ctx)
        except (ValueError, ArithmeticError):  # e.g. a date the library cannot shift to UTC
            self.fail(f"{value!r} is out of range", param, ctx)
        return value


def run(coro: Coroutine[Any, Any, int]) -> None:
    """Run a command's coroutine and turn its result or error into the exit code."""
    try:
        code = asyncio.run(coro)
    except (InputFileError, JournalError, ValidationError, ReportError) as e:
        echo_err(f"error: {e}")
        code = EXIT_USAGE
    except APIError as e:
        echo_err(f"error: {e}")
        code = EXIT_FAILED
    except TangoError as e:
        echo_err(f"error: {type(e).__name__}: {e}")
        code = EXIT_FAILED
    raise SystemExit(code)


@asynccontextmanager
async def connect(settings: Settings, **client_options: Any) -> AsyncIterator[TangoClient]:
    """A client for the configured API, or for an in-process local sandbox."""
    client_options = {
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
        **client_options,
    }
    if settings.sandbox == "local":
        from ..testing import Sandbox

        rate = client_options.get("order_rate")
        # OAuth: the local sandbox issues tokens to the client ID and secret given
        oauth_options: dict[str, Any] = {}
        if settings.oauth:
            _oauth_for(settings, "http://127.0.0.1/oauth/token")  # complete? (exit 2 if not)
            oauth_options = {
                "oauth_client_id": settings.oauth_client_id,
                "oauth_client_secret": settings.oauth_client_secret,
                "oauth_password": settings.oauth_password,
            }
            if settings.oauth_username is not None:
                oauth_options["oauth_username"] = settings.oauth_username
        async with Sandbox(order_rate=rate or 1.0, **oauth_options) as sandbox:
            echo_err(f"local sandbox: {sandbox.base_url}")
            if settings.oauth:
                client_options["auth"] = _oauth_for(settings, sandbox.oauth_token_url)
            async with sandbox.client(**client_options) as client:
                yield client
        return
    if settings.oauth:
        if settings.platform_key is not None:
            raise ValidationError(
                "platform_key",
                "--platform-key and the --oauth-* options (TANGO_OAUTH_*) are both given: "
                "use one, not both",
            )
        client_options["auth"] = _oauth_for(settings, settings.oauth_token_url)
    async with TangoClient(
        settings.platform_name, settings.platform_key, base_url=settings.base_url, **client_options
    ) as client:
        yield client


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--platform-name", envvar="TANGO_PLATFORM_NAME", help="[env: TANGO_PLATFORM_NAME]")
@click.option("--platform-key", envvar="TANGO_PLATFORM_KEY", help="[env: TANGO_PLATFORM_KEY]")
@click.option(
    "--base-url",
    envvar="TANGO_BASE_URL",
    help="API base URL with /raas/v2 [env: TANGO_BASE_URL; default: Tango's sandbox]",
)
@click.option(
    "--sandbox",
    type=click.Choice(["local"]),
    help="Run against an in-process local sandbox instead of an API.",
)
@click.option(
    "--timeout",
    type=_FiniteFloat(MIN_TIMEOUT, MAX_SECONDS),
    default=30.0,
    show_default=True,
    help="Seconds for one HTTP attempt.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(0, MAX_RETRIES),
    default=3,
    show_default=True,
    help="Retries of one call after a transient failure.",
)
@click.option(
    "--oauth-client-id",
    envvar="TANGO_OAUTH_CLIENT_ID",
    help="Use OAuth bearer tokens of this client instead of the platform key "
    "[env: TANGO_OAUTH_CLIENT_ID].",
)
@click.option(
    "--oauth-client-secret",
    envvar="TANGO_OAUTH_CLIENT_SECRET",
    help="The OAuth client's secret; prefer the env var [env: TANGO_OAUTH_CLIENT_SECRET].",
)
@click.option(
    "--oauth-username",
    envvar="TANGO_OAUTH_USERNAME",
    help="Service Account username (the password grant) [env: TANGO_OAUTH_USERNAME].",
)
@click.option(
    "--oauth-password",
    envvar="TANGO_OAUTH_PASSWORD",
    help="Service Account password; prefer the env var [env: TANGO_OAUTH_PASSWORD].",
)
@click.option(
    "--oauth-grant-type",
    envvar="TANGO_OAUTH_GRANT_TYPE",
    type=click.Choice(list(GRANT_TYPES)),
    help="[env: TANGO_OAUTH_GRANT_TYPE; default: password with a username, else "
    "client_credentials]",
)
@click.option(
    "--oauth-audience",
    envvar="TANGO_OAUTH_AUDIENCE",
    help="Token audience: https://api.tangocard.com/ (24 h) or tango-api.bhn.com/fiveminute "
    f"(5 min) [env: TANGO_OAUTH_AUDIENCE; default: {DEFAULT_AUDIENCE}]",
)
@click.option(
    "--oauth-token-url",
    envvar="TANGO_OAUTH_TOKEN_URL",
    help="Token endpoint [env: TANGO_OAUTH_TOKEN_URL; default: Tango's for the sandbox "
    "or production base URL].",
)
@click.option("-v", "--verbose", count=True, help="Log retries (-v) or every request (-vv).")
@click.version_option(package_name="tango-async")
@click.pass_context
def cli(
    ctx: click.Context,
    platform_name: str | None,
    platform_key: str | None,
    base_url: str | None,
    sandbox: str | None,
    timeout: float,
    max_retries: int,
    oauth_client_id: str | None,
    oauth_client_secret: str | None,
    oauth_username: str | None,
    oauth_password: str | None,
    oauth_grant_type: str | None,
    oauth_audience: str | None,
    oauth_token_url: str | None,
    verbose: int,
) -> None:
    """Send Tango rewards in bulk; look up, list, resend and follow orders and line items;
    manage and receive webhooks; see accounts, the catalog and exchange rates."""
    if verbose:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("tango_async").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    # OAuth (issue 15): a platform key from TANGO_PLATFORM_KEY is ignored when the --oauth-*
    # options (or their env vars) are given, as TangoClient(auth=...) ignores it; an
    # explicit --platform-key beside them stays ambiguous (exit 2).
    if (
        (oauth_client_id is not None or oauth_client_secret is not None)
        and platform_key is not None
        and ctx.get_parameter_source("platform_key") is click.core.ParameterSource.ENVIRONMENT
    ):
        platform_key = None
    ctx.obj = Settings(
        platform_name,
        platform_key,
        base_url,
        sandbox,
        timeout,
        max_retries,
        oauth_client_id=oauth_client_id,
        oauth_client_secret=oauth_client_secret,
        oauth_username=oauth_username,
        oauth_password=oauth_password,
        oauth_grant_type=oauth_grant_type,
        oauth_audience=oauth_audience,
        oauth_token_url=oauth_token_url,
    )


class _DecimalType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A finite Decimal, checked by the library's rule for the field (``check``)."""

    name = "decimal"

    def __init__(self, check: Callable[[Decimal], object] | None = None) -> None:
        self._check = check

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Decimal:
        try:
            number = Decimal(str(value))
        except (ArithmeticError, ValueError):  # ValueError: an int past str()'s digit limit
            self.fail(f"{value!r} is not a number", param, ctx)
        if not number.is_finite():
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self._check is not None:
            try:
                self._check(number)
            except ValidationError as e:
                self.fail(e.rule, param, ctx)
        return number


_RUN_LABEL = _Checked("label", check_run_label)
_ORDER_RATE = _FiniteFloat(
    MIN_ORDER_RATE, MAX_ORDER_RATE, label=f"{MIN_ORDER_RATE:.6g}<=x<={MAX_ORDER_RATE:g}"
)
_SECONDS = _FiniteFloat(0.0, MAX_SECONDS)
_JOB_CONCURRENCY = click.IntRange(1, 64)
_CSV_RAW = click.option(
    "--csv-raw",
    is_flag=True,
    help="Write CSV values unchanged. By default a cell a spreadsheet would run as a "
    "formula (=, +, -, @, tab, CR first) gets a ' prefix.",
)


def _output_path(path: Path, option: str) -> None:
    """A file to write must be in an existing directory we may write to (checked before
    anything is sent, not after the job)."""
    parent = path.absolute().parent
    if not parent.is_dir():
        raise click.BadParameter(f"{str(parent)!r} is not a directory", param_hint=option)
    if path.exists() and not os.access(path, os.W_OK):
        raise click.BadParameter(f"{str(path)!r} is not writable", param_hint=option)
    if os.path.lexists(path) and not path.exists():
        raise click.BadParameter(
            f"{str(path)!r} is a symbolic link to nothing (or a loop)", param_hint=option
        )
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(
            f"{str(parent)!r} is not writable: {path.name!r} cannot be created there",
            param_hint=option,
        )


def _text(name: str) -> str:
    """A file name as text a journal can store: itself, or (a name that is not UTF-8)
    its bytes decoded with backslash escapes (shown in ``status``; no longer a path)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def _resolved(path: Path) -> Path:
    """``path`` with its symbolic links resolved, or as it is (a symlink loop included)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return _resolved(a) == _resolved(b) or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False
