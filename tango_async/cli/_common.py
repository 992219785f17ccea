"""What the commands share: settings, option types checked at parse time, running a
coroutine with Ctrl-C handling, connecting, the ``cli`` group itself."""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
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


class KnownValue(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A filter value with known values (an enum of :mod:`tango_async.types.enums`): one of
    them in any case is taken as the API spells it (``complete`` is ``COMPLETE``); any
    other value, checked by ``check`` (the library's rule for the filter), is sent as
    given with one warning line on stderr, since the API may know values newer than this
    release's."""

    def __init__(self, values: Sequence[str], check: Callable[[str], object]) -> None:
        self.name = "value"
        self._values = tuple(values)
        self._check = check

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self._values) + "|...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):  # pragma: no cover - click passes text
            return value
        for known in self._values:
            if value.casefold() == known.casefold():
                return known
        try:
            self._check(value)
        except ValidationError as e:
            self.fail(e.rule, param, ctx)
        option = param.opts[0] if param is not None and param.opts else "the value"
        echo_err(
            f"warning: {option} {value!r} is not a known value "
            f"(known: {', '.join(self._values)}); sent as given"
        )
        return value


def run(coro: Coroutine[Any, Any, int]) -> None:
    """Run a command's coroutine and turn its result or error into the exit code.

    An input, journal, report or validation error is one line and exit 2; an API refusal
    (and any other TangoError) exit 1 with its message; an OSError of the environment (a
    file that cannot be read or written, an address in use) one line and exit 2; Ctrl-C one
    line and exit 130. A job
    that may have sent orders keeps its own messages and exit codes (the bulk commands
    print them before returning): nothing here hides an unknown outcome."""
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
    except OSError as e:
        if e.errno == errno.EPIPE:  # the reader went away (| head): click's quiet exit 1
            raise
        echo_err(f"error: {os_error_text(e)}")
        code = EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C: asyncio.run cancelled the command, then raised this
        echo_err("interrupted (Ctrl-C)")
        code = EXIT_INTERRUPTED
    raise SystemExit(code)


def os_error_text(e: OSError) -> str:
    """An OSError in one line: what failed and on which file, without a traceback."""
    reason = e.strerror or str(e) or type(e).__name__
    if e.filename is not None:
        return f"{reason}: {os.fsdecode(e.filename)!r}"
    return reason


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


# --- the group: global options before or after the command, one-line usage errors ------------

_SOURCE = click.core.ParameterSource
_GLOBAL_PREFIX = "_global_"  # the name of a global option's copy on a command
# what --sandbox local replaces by its own: explicit ones are refused, env ones ignored
_SANDBOX_REPLACES = ("base_url", "platform_name", "platform_key", "oauth_token_url")


def _option_text(param: click.Parameter) -> str:
    return max(param.opts, key=len) if param.opts else f"--{param.name}"


def settings_from(ctx: click.Context, values: dict[str, Any]) -> Settings:
    """The Settings of the global options' ``values`` (``ctx``: the group's context, which
    tells where each came from: the command line, the environment, a default).

    ``--sandbox local`` replaces the base URL, the platform credentials and the token URL
    by the in-process sandbox's own: given as options beside it they are a usage error
    (exit 2: the user meant another server); from the environment (TANGO_*, typically
    exported for real use) they are ignored, with one note on stderr saying so."""
    values = dict(values)

    def source(name: str) -> click.core.ParameterSource | None:
        given = ctx.meta.get(_AFTER_KEY, {})
        return _SOURCE.COMMANDLINE if name in given else ctx.get_parameter_source(name)

    verbose = values.get("verbose") or 0
    if verbose:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("tango_async").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    if values.get("sandbox") == "local":
        options = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
        explicit = [n for n in _SANDBOX_REPLACES if values.get(n) is not None]
        clash = [n for n in explicit if source(n) is not _SOURCE.ENVIRONMENT]
        if clash:
            names = ", ".join(_option_text(options[n]) for n in clash)
            raise click.UsageError(
                f"--sandbox local runs its own server with its own credentials: do not "
                f"combine it with {names}",
                ctx,
            )
        if explicit:
            envs = ", ".join(str(options[n].envvar) for n in explicit)
            if not ctx.meta.get(_NOTED_KEY):
                ctx.meta[_NOTED_KEY] = True
                echo_err(f"note: --sandbox local ignores {envs} (set in the environment)")
            for n in explicit:
                values[n] = None
    platform_key = values.get("platform_key")
    # OAuth (issue 15): a platform key from TANGO_PLATFORM_KEY is ignored when the --oauth-*
    # options (or their env vars) are given, as TangoClient(auth=...) ignores it; an
    # explicit --platform-key beside them stays ambiguous (exit 2).
    if (
        (values.get("oauth_client_id") is not None or values.get("oauth_client_secret") is not None)
        and platform_key is not None
        and source("platform_key") is _SOURCE.ENVIRONMENT
    ):
        platform_key = None
    return Settings(
        values.get("platform_name"),
        platform_key,
        values.get("base_url"),
        values.get("sandbox"),
        values.get("timeout", 30.0),
        values.get("max_retries", 3),
        oauth_client_id=values.get("oauth_client_id"),
        oauth_client_secret=values.get("oauth_client_secret"),
        oauth_username=values.get("oauth_username"),
        oauth_password=values.get("oauth_password"),
        oauth_grant_type=values.get("oauth_grant_type"),
        oauth_audience=values.get("oauth_audience"),
        oauth_token_url=values.get("oauth_token_url"),
    )


_AFTER_KEY = "tango_async.global_after"  # ctx.meta: the global options given after
_NOTED_KEY = "tango_async.sandbox_noted"


class TangoCommand(click.Command):
    """A command that also takes the group's global options after its own arguments
    (``tango-async submit FILE --base-url X``), shown in its ``--help`` under "Global
    options". A global option whose name the command uses itself (``orders wait
    --timeout``) is the command's. The same option before and after the command with
    different values is a usage error; a value after the command wins over the
    environment and the default."""

    def _globals(self, ctx: click.Context) -> list[click.Option]:
        cached: list[click.Option] | None = getattr(self, "_global_copies", None)
        if cached is not None:
            return cached
        copies: list[click.Option] = []
        root = ctx.find_root().command
        if not isinstance(root, TangoGroup):  # invoked on its own: no group, no globals
            return copies
        if not self.context_settings.get("ignore_unknown_options"):
            own = {o for p in self.params for o in (*p.opts, *p.secondary_opts)}
            own |= set(ctx.help_option_names)
            names = {p.name for p in self.params}
            for param in root.params:
                if not isinstance(param, click.Option) or not param.expose_value:
                    continue
                if param.name in names or own & {*param.opts, *param.secondary_opts}:
                    continue
                copies.append(
                    click.Option(
                        [*param.opts, f"{_GLOBAL_PREFIX}{param.name}"],
                        type=None if param.count else param.type,
                        count=param.count,
                        default=0 if param.count else None,
                        help=param.help,
                    )
                )
        self._global_copies = copies
        return copies

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return [*super().get_params(ctx), *self._globals(ctx)]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        copies = {p.name for p in self._globals(ctx)}
        own: list[tuple[str, str]] = []
        shared: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (shared if param.name in copies else own).append(record)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if shared:
            with formatter.section("Global options (here or before the command)"):
                formatter.write_dl(shared)

    def invoke(self, ctx: click.Context) -> Any:
        given: dict[str, Any] = {}
        for copy in self._globals(ctx):
            assert copy.name is not None
            value = ctx.params.pop(copy.name, None)
            if ctx.get_parameter_source(copy.name) is _SOURCE.COMMANDLINE:
                given[copy.name.removeprefix(_GLOBAL_PREFIX)] = value
        if given:
            _apply_after(ctx, given)
        return super().invoke(ctx)


def _apply_after(ctx: click.Context, given: dict[str, Any]) -> None:
    """Merge the global options given after the command into the group's settings."""
    root = ctx.find_root()
    options = {p.name: p for p in root.command.params}
    values = dict(root.params)
    for name, value in given.items():
        if name == "verbose":
            values[name] = (values.get(name) or 0) + value
            continue
        before = root.get_parameter_source(name) is _SOURCE.COMMANDLINE
        if before and root.params.get(name) != value:
            text = _option_text(options[name])
            raise click.UsageError(
                f"{text} is given before and after the command, with different values: "
                "give it once",
                ctx,
            )
        values[name] = value
    root.meta[_AFTER_KEY] = given
    settings = settings_from(root, values)
    current = ctx.find_object(Settings)
    if current is None:  # pragma: no cover - the group always makes one
        ctx.obj = settings
        return
    for f in fields(Settings):
        setattr(current, f.name, getattr(settings, f.name))


class TangoGroup(click.Group):
    """The ``tango-async`` group and its sub-groups: their commands are TangoCommands (the
    global options after them too); a usage error is one line on stderr, exit 2; an
    environment error (a file that cannot be read, an address in use) or an input error
    raised outside a command's run is one line and exit 2 too, never a traceback."""

    command_class = TangoCommand
    group_class = type

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # no command: the help, as click does
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            echo_err(usage_line(e))
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            echo_err("Aborted!")
            sys.exit(EXIT_FAILED)
        except (InputFileError, JournalError, ValidationError, ReportError) as e:
            echo_err(f"Error: {e}")
            sys.exit(EXIT_USAGE)
        except OSError as e:  # (a broken pipe is click's: a quiet exit 1)
            echo_err(f"Error: {os_error_text(e)}")
            sys.exit(EXIT_USAGE)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def usage_line(e: click.UsageError) -> str:
    """A usage error as one line: ``Error: <what> (see 'tango-async CMD --help')``."""
    message = " ".join(e.format_message().split())
    if e.ctx is None:
        return f"Error: {message}"
    return f"Error: {message} (see '{e.ctx.command_path} --help')"


@click.group(
    cls=TangoGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--platform-name",
    envvar="TANGO_PLATFORM_NAME",
    help="Platform name (HTTP Basic user) [env: TANGO_PLATFORM_NAME].",
)
@click.option(
    "--platform-key",
    envvar="TANGO_PLATFORM_KEY",
    help="Platform key (HTTP Basic password); prefer the env var [env: TANGO_PLATFORM_KEY].",
)
@click.option(
    "--base-url",
    envvar="TANGO_BASE_URL",
    help="API base URL with /raas/v2 [env: TANGO_BASE_URL; default: Tango's sandbox]",
)
@click.option(
    "--sandbox",
    type=click.Choice(["local"]),
    help="Run against an in-process local sandbox instead of an API (not with "
    "--base-url, --platform-name, --platform-key or --oauth-token-url; their TANGO_* "
    "env vars are ignored).",
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
def cli(ctx: click.Context, /, **values: Any) -> None:
    """Send Tango rewards in bulk; look up, list, resend and follow orders and line items;
    manage and receive webhooks; see accounts, the catalog and exchange rates.

    The options below are accepted before the command or after it (`tango-async submit
    FILE --sandbox local`), except after a command with an option of the same name
    (`orders wait --timeout` is the wait's)."""
    ctx.obj = settings_from(ctx, values)


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
