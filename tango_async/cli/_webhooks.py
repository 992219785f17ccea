"""The webhook commands: ``webhooks list|get|create|update|delete|renew|test|events|replay|
event-types``, and ``webhooks listen``, a local receiver that prints every verified event
as a JSON line.

Secrets never go on the command line, where shell history and ``ps`` would keep them: an
HMAC key comes from an environment variable (``--hmac-key-env VAR``) or a file
(``--hmac-key-file PATH``), as base64 text (the form Tango registers,
``hmacSharedSecretKey``); a custom header's value may come from an environment variable
too (``--header-env NAME=VAR``). Nothing prints a key or a header value: subscriptions are
shown with both masked (``***``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import msgspec
from aiohttp import web

from .._exceptions import ValidationError
from .._logs import escape
from .._signing import WebhookVerifier
from .._validation import check_url, check_webhook_id, format_query_datetime, webhook_request
from ..types.enums import WebhookEventType
from ..types.webhooks import Webhook, WebhookEvent
from ..webhooks import DEFAULT_MAX_BODY, WebhookReceiver
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_LIMIT,
    Settings,
    _Checked,
    _FiniteFloat,
    cli,
    connect,
    echo_err,
    run,
)
from ._format import format_time
from ._orders import (
    YES_OPTION,
    Interrupted,
    checked_id,
    confirm,
    json_text,
    print_done,
    print_json,
    print_table,
    until_interrupted,
    usage_error,
)

log = logging.getLogger("tango_async")

MASK = "***"
_WEBHOOK_ID = checked_id("webhook_id", check_webhook_id)
_URL = _Checked("url", check_url)
_DATE = _Checked("date", lambda v: format_query_datetime(v, "date"))
_REVISION = click.IntRange(0, 2**63 - 1)


@cli.group()
def webhooks() -> None:
    """Webhooks: list, get, create, update, delete, renew, test, events, replay,
    event-types, and listen (a local receiver printing verified events)."""


# --- what a subscription shows -----------------------------------------------------------------


def masked(hook: Webhook) -> dict[str, Any]:
    """A subscription as Tango shows it (wire names), its HMAC key and the values of its
    custom headers masked."""
    data: dict[str, Any] = msgspec.to_builtins(hook)
    if data.get("hmacSharedSecretKey") is not None:
        data["hmacSharedSecretKey"] = MASK
    for header in data.get("headers") or ():
        if isinstance(header, dict) and "value" in header:
            header["value"] = MASK
    return data


def _joined(names: list[str] | None) -> str:
    return ",".join(names or ())


WEBHOOK_COLUMNS: tuple[tuple[str, Callable[[Webhook], Any]], ...] = (
    ("webhookId", lambda h: h.webhook_id),
    ("url", lambda h: h.url),
    ("payloadVerificationMethod", lambda h: h.payload_verification_method),
    ("eventTypes", lambda h: _joined(h.event_types)),
    ("categories", lambda h: _joined(h.categories)),
    ("expiresAt", lambda h: format_time(h.expires_at)),
)
EVENT_COLUMNS: tuple[tuple[str, Callable[[WebhookEvent], Any]], ...] = (
    ("revision", lambda e: e.revision),
    ("eventId", lambda e: e.event_id),
    ("eventType", lambda e: e.event_type),
    ("eventOccurredAt", lambda e: format_time(e.event_occurred_at)),
    ("subject", lambda e: e.subject),
)


# --- the options of a subscription -------------------------------------------------------------


class _Pair(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """``NAME=VALUE``, split at the first ``=``; NAME must not be empty."""

    name = "name=value"

    def __init__(self, right: str) -> None:
        self._right = right

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        name, sep, rest = str(value).partition("=")
        if not sep or not name:
            self.fail(f"expected NAME={self._right}", param, ctx)
        return name, rest

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"NAME={self._right}"


def _env(var: str, option: str) -> str:
    value = os.environ.get(var)
    if value is None:
        raise click.UsageError(f"{option}: the environment variable {escape(var)} is not set")
    if not value.strip():
        raise click.UsageError(f"{option}: the environment variable {escape(var)} is empty")
    return value


def _headers(
    pairs: tuple[tuple[str, str], ...], env_pairs: tuple[tuple[str, str], ...]
) -> dict[str, str] | None:
    """The custom headers: ``--header NAME=VALUE`` and ``--header-env NAME=VAR``."""
    if not pairs and not env_pairs:
        return None
    headers: dict[str, str] = {}
    for option, items, from_env in (("--header", pairs, False), ("--header-env", env_pairs, True)):
        for name, value in items:
            if name.lower() in (n.lower() for n in headers):
                raise click.UsageError(f"{option}: header {escape(name)} is given twice")
            headers[name] = _env(value, option) if from_env else value
    return headers


@dataclass(frozen=True)
class Signing:
    """How deliveries are signed, from the key options: one of them at most."""

    hmac_key: str | None = None
    certificate: bytes | None = None
    unsigned: bool = False
    option: str | None = None  # the option it came from

    @property
    def given(self) -> bool:
        return self.option is not None


def _signing(
    hmac_key_env: str | None,
    hmac_key_file: Path | None,
    certificate: Path | None,
    unsigned: bool,
    *,
    required: bool,
) -> Signing:
    given = [
        name
        for name, value in (
            ("--hmac-key-env", hmac_key_env),
            ("--hmac-key-file", hmac_key_file),
            ("--certificate", certificate),
            ("--unsigned", unsigned or None),
        )
        if value is not None
    ]
    choices = "--hmac-key-env VAR, --hmac-key-file PATH, --certificate PATH or --unsigned"
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)}: give one of {choices}")
    if not given:
        if required:
            raise click.UsageError(f"say how deliveries are signed: {choices}")
        return Signing()
    if hmac_key_env is not None:
        return Signing(hmac_key=_env(hmac_key_env, "--hmac-key-env").strip(), option=given[0])
    if hmac_key_file is not None:
        try:
            text = hmac_key_file.read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError:
            raise click.BadParameter(
                "must hold the key as base64 text", param_hint="'--hmac-key-file'"
            ) from None
        except OSError as e:
            raise click.BadParameter(
                f"cannot be read ({e.strerror or e})", param_hint="'--hmac-key-file'"
            ) from None
        if not text:
            raise click.BadParameter("is empty", param_hint="'--hmac-key-file'")
        return Signing(hmac_key=text, option=given[0])
    if certificate is not None:
        try:
            data = certificate.read_bytes()
        except OSError as e:
            raise click.BadParameter(
                f"cannot be read ({e.strerror or e})", param_hint="'--certificate'"
            ) from None
        try:  # a file that is no RSA certificate is refused here, not by Tango later
            WebhookVerifier(certificate=data)
        except ValidationError as e:
            raise click.BadParameter(e.rule, param_hint="'--certificate'") from None
        except ImportError:  # without cryptography, Tango (or the listener) tells
            pass
        return Signing(certificate=data, option=given[0])
    return Signing(unsigned=True, option="--unsigned")


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _signing_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            (
                click.option(
                    "--hmac-key-env",
                    metavar="VAR",
                    help=f"{what} HMAC-SHA256 with the key in this environment variable "
                    "(base64 text of at least 16 bytes).",
                ),
                click.option(
                    "--hmac-key-file",
                    type=_FILE,
                    help="The same, with the key (base64 text) read from this file.",
                ),
                click.option(
                    "--certificate",
                    type=_FILE,
                    help=f"{what} X509: this PEM or DER certificate's RSA key.",
                ),
                click.option(
                    "--unsigned",
                    is_flag=True,
                    help="Deliveries carry no signature (payloadVerificationMethod NONE).",
                ),
            )
        ):
            f = option(f)
        return f

    return decorate


def _subscription_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        (
            click.option(
                "--event-type",
                "event_types",
                multiple=True,
                help="An event type to deliver (repeatable; `webhooks event-types` lists them).",
            ),
            click.option(
                "--category",
                "categories",
                multiple=True,
                help="A category whose every event type is delivered (repeatable).",
            ),
            click.option(
                "--header",
                "header_pairs",
                multiple=True,
                type=_Pair("VALUE"),
                help="A header sent with every delivery (repeatable).",
            ),
            click.option(
                "--header-env",
                "header_env_pairs",
                multiple=True,
                type=_Pair("VAR"),
                help="A header whose value is in the environment variable VAR (repeatable; "
                "keeps a secret value out of shell history).",
            ),
        )
    ):
        f = option(f)
    return f


def _request(
    *,
    creating: bool,
    url: str | None,
    event_types: tuple[str, ...],
    categories: tuple[str, ...],
    header_pairs: tuple[tuple[str, str], ...],
    header_env_pairs: tuple[tuple[str, str], ...],
    signing: Signing,
) -> dict[str, Any]:
    """The keyword arguments of ``webhooks.create`` / ``update``, checked by the library's
    rules before anything starts (a refusal names the option: exit 2)."""
    fields: dict[str, Any] = {
        "event_types": list(event_types) or None,
        "categories": list(categories) or None,
        "headers": _headers(header_pairs, header_env_pairs),
        "verification": "NONE" if signing.unsigned else None,
        "hmac_key": signing.hmac_key,
        "certificate": signing.certificate,
    }
    try:
        webhook_request(url=url, creating=creating, **fields)
    except ValidationError as e:
        options = {
            "url": "URL" if creating else "--url",
            "event_types": "--event-type",
            "categories": "--category",
            "headers": "--header",
            "verification": "--unsigned",
            "hmac_key": signing.option or "--hmac-key-env",
            "certificate": "--certificate",
        }
        raise usage_error(e, options) from None
    return fields


# --- the commands -------------------------------------------------------------------------------


@webhooks.command("list")
@click.option("--url", help="Only subscriptions to this URL.")
@click.option("--header-name", help="Only those sending this custom header.")
@click.option(
    "--header-value-env",
    metavar="VAR",
    help="Only those whose custom header has the value in this environment variable.",
)
@click.option(
    "--category", "categories", multiple=True, help="Only those of this category (repeatable)."
)
@click.option(
    "--event-type", "event_types", multiple=True, help="Only those of this event type (repeatable)."
)
@click.option("--expires-at-from", type=_DATE, help="Only those expiring at or after (RFC 3339).")
@click.option("--expires-at-to", type=_DATE, help="Only those expiring at or before (RFC 3339).")
@click.option("--created-at-from", type=_DATE, help="Only those created at or after (RFC 3339).")
@click.option("--created-at-to", type=_DATE, help="Only those created at or before (RFC 3339).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "table"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (one subscription a line, secrets masked) or a table.",
)
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), help="Stop after this many.")
@click.pass_obj
def list_webhooks(
    settings: Settings,
    /,
    header_value_env: str | None,
    categories: tuple[str, ...],
    event_types: tuple[str, ...],
    fmt: str,
    limit: int | None,
    **filters: Any,
) -> None:
    """List the platform's subscriptions (HMAC keys and header values masked)."""
    given: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
    if header_value_env is not None:
        given["header_value"] = _env(header_value_env, "--header-value-env")
    if categories:
        given["categories"] = list(categories)
    if event_types:
        given["event_types"] = list(event_types)

    async def main() -> int:
        count = 0
        rows: list[list[Any]] = []
        async with connect(settings) as client:
            async for hook in client.webhooks.list(**given):
                if fmt == "table":
                    rows.append([get(hook) for _, get in WEBHOOK_COLUMNS])
                else:
                    click.echo(json_text(masked(hook)))
                count += 1
                if limit is not None and count >= limit:
                    break
        if fmt == "table":
            print_table(sys.stdout, [c for c, _ in WEBHOOK_COLUMNS], rows, numbers=())
        echo_err(f"{count} subscription(s)")
        return EXIT_OK

    run(main())


@webhooks.command("get")
@click.argument("webhook_id", type=_WEBHOOK_ID)
@click.pass_obj
def get_webhook(settings: Settings, webhook_id: str) -> None:
    """Print one subscription as JSON (its HMAC key and header values masked)."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(masked(await client.webhooks.get(webhook_id)))
        return EXIT_OK

    run(main())


@webhooks.command("create")
@click.argument("url", type=_URL)
@_subscription_options
@_signing_options("Deliveries are signed with")
@click.pass_obj
def create_webhook(
    settings: Settings,
    /,
    url: str,
    event_types: tuple[str, ...],
    categories: tuple[str, ...],
    header_pairs: tuple[tuple[str, str], ...],
    header_env_pairs: tuple[tuple[str, str], ...],
    hmac_key_env: str | None,
    hmac_key_file: Path | None,
    certificate: Path | None,
    unsigned: bool,
) -> None:
    """Subscribe URL to events (at least one --event-type or --category) and print its
    webhookId and expiry as JSON. Say how deliveries are signed: --hmac-key-env,
    --hmac-key-file, --certificate, or --unsigned.

    Not retried once it may have reached Tango (a second subscription would deliver every
    event twice): after a connection error, `webhooks list --url URL` tells."""
    signing = _signing(hmac_key_env, hmac_key_file, certificate, unsigned, required=True)
    fields = _request(
        creating=True,
        url=url,
        event_types=event_types,
        categories=categories,
        header_pairs=header_pairs,
        header_env_pairs=header_env_pairs,
        signing=signing,
    )

    async def main() -> int:
        async with connect(settings) as client:
            made = await client.webhooks.create(url, **fields)
        print_json(made)
        if made.webhook_id:
            when = f" before {format_time(made.expires_at)}" if made.expires_at else ""
            echo_err(
                f"renew it{when} with: tango-async webhooks renew {shlex.quote(made.webhook_id)}"
            )
        return EXIT_OK

    run(main())


@webhooks.command("update")
@click.argument("webhook_id", type=_WEBHOOK_ID)
@click.option("--url", type=_URL, help="Deliver to this URL instead.")
@_subscription_options
@_signing_options("Sign deliveries with")
@click.pass_obj
def update_webhook(
    settings: Settings,
    /,
    webhook_id: str,
    url: str | None,
    event_types: tuple[str, ...],
    categories: tuple[str, ...],
    header_pairs: tuple[tuple[str, str], ...],
    header_env_pairs: tuple[tuple[str, str], ...],
    hmac_key_env: str | None,
    hmac_key_file: Path | None,
    certificate: Path | None,
    unsigned: bool,
) -> None:
    """Change a subscription (the fields given replace the old ones; headers all
    together) and print it as updated (key and header values masked)."""
    signing = _signing(hmac_key_env, hmac_key_file, certificate, unsigned, required=False)
    if url is None and not (
        event_types or categories or header_pairs or header_env_pairs or signing.given
    ):
        raise click.UsageError(
            "give at least one of --url, --event-type, --category, --header, --header-env, "
            "--hmac-key-env, --hmac-key-file, --certificate, --unsigned"
        )
    fields = _request(
        creating=False,
        url=url,
        event_types=event_types,
        categories=categories,
        header_pairs=header_pairs,
        header_env_pairs=header_env_pairs,
        signing=signing,
    )

    async def main() -> int:
        async with connect(settings) as client:
            hook = await client.webhooks.update(webhook_id, url=url, **fields)
        print_json(masked(hook))
        return EXIT_OK

    run(main())


@webhooks.command("delete")
@click.argument("webhook_id", type=_WEBHOOK_ID)
@YES_OPTION
@click.pass_obj
def delete_webhook(settings: Settings, webhook_id: str, yes: bool) -> None:
    """Delete a subscription: no more deliveries. Asks first unless --yes."""
    if not confirm(f"Delete webhook subscription {webhook_id}?", yes=yes):
        echo_err("not deleted: nothing was sent (--yes skips the question)")
        raise SystemExit(EXIT_FAILED)

    async def main() -> int:
        async with connect(settings) as client:
            await client.webhooks.delete(webhook_id)
        print_done(f"deleted webhook subscription {webhook_id}")
        return EXIT_OK

    run(main())


@webhooks.command("renew")
@click.argument("webhook_id", type=_WEBHOOK_ID)
@click.pass_obj
def renew_webhook(settings: Settings, webhook_id: str) -> None:
    """Push a subscription's expiry out; print its new expiry as JSON."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(await client.webhooks.renew(webhook_id))
        return EXIT_OK

    run(main())


@webhooks.command("test")
@click.argument("webhook_id", type=_WEBHOOK_ID)
@click.argument("name", required=False, type=click.Choice([str(e.value) for e in WebhookEventType]))
@click.pass_obj
def test_webhook(settings: Settings, webhook_id: str, name: str | None) -> None:
    """Have Tango deliver test events: all of the subscription's, or the one NAME
    (ConnectivityTest works everywhere, the others in Tango's sandbox only)."""

    async def main() -> int:
        async with connect(settings) as client:
            await client.webhooks.test(webhook_id, name)
        what = f"test event {name}" if name else "test events"
        print_done(f"{what} requested for webhook subscription {webhook_id}")
        return EXIT_OK

    run(main())


def _revisions(from_revision: int | None, to_revision: int | None) -> None:
    if from_revision is not None and to_revision is not None and to_revision < from_revision:
        raise click.UsageError(
            f"--to-revision ({to_revision}) must not be below --from-revision ({from_revision})"
        )


@webhooks.command("events")
@click.argument("webhook_id", type=_WEBHOOK_ID)
@click.option("--from-revision", type=_REVISION, help="Only events from this revision on.")
@click.option("--to-revision", type=_REVISION, help="Only events up to this revision.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "table"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (one event a line) or a table.",
)
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), help="Stop after this many.")
@click.pass_obj
def list_events(
    settings: Settings,
    /,
    webhook_id: str,
    from_revision: int | None,
    to_revision: int | None,
    fmt: str,
    limit: int | None,
) -> None:
    """List a subscription's events, oldest revision first, one JSON line each (the fields
    `webhooks listen` prints)."""
    _revisions(from_revision, to_revision)

    async def main() -> int:
        count = 0
        rows: list[list[Any]] = []
        async with connect(settings) as client:
            events = client.webhooks.events(
                webhook_id, from_revision=from_revision, to_revision=to_revision
            )
            async for event in events:
                if fmt == "table":
                    rows.append([get(event) for _, get in EVENT_COLUMNS])
                else:
                    click.echo(json_text(event))
                count += 1
                if limit is not None and count >= limit:
                    break
        if fmt == "table":
            print_table(
                sys.stdout,
                [c for c, _ in EVENT_COLUMNS],
                rows,
                numbers=("revision",),
            )
        echo_err(f"{count} event(s)")
        return EXIT_OK

    run(main())


@webhooks.command("replay")
@click.argument("webhook_id", type=_WEBHOOK_ID)
@click.option(
    "--from-revision", type=_REVISION, required=True, help="Replay from this revision on."
)
@click.option("--to-revision", type=_REVISION, help="Default: the latest.")
@click.pass_obj
def replay_webhook(
    settings: Settings, /, webhook_id: str, from_revision: int, to_revision: int | None
) -> None:
    """Deliver a subscription's events again, from --from-revision to --to-revision
    (receivers see the same eventIds again, and drop them if they already have them)."""
    _revisions(from_revision, to_revision)

    async def main() -> int:
        async with connect(settings) as client:
            await client.webhooks.replay(
                webhook_id, from_revision=from_revision, to_revision=to_revision
            )
        upto = f" to {to_revision}" if to_revision is not None else " on"
        print_done(
            f"replay of revision {from_revision}{upto} requested for webhook subscription "
            f"{webhook_id}"
        )
        return EXIT_OK

    run(main())


@webhooks.command("event-types")
@click.option("--category", help="Only this category's.")
@click.pass_obj
def event_types(settings: Settings, category: str | None) -> None:
    """Print every category and its event types as JSON."""

    async def main() -> int:
        async with connect(settings) as client:
            print_json(await client.webhooks.event_types(category=category))
        return EXIT_OK

    run(main())


# --- listen ------------------------------------------------------------------------------------


def _check_path(path: str) -> None:
    if not path.startswith("/") or any(c.isspace() or not c.isprintable() for c in path):
        raise ValidationError("path", "must start with / and hold no spaces or control characters")


class _StderrHandler(logging.Handler):
    """The library's warnings (refused deliveries, late events, failed callbacks) on
    stderr while ``listen`` runs; its records' values are escaped already."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted must not stop the listener
            self.handleError(record)
            return
        echo_err(f"{record.levelname.lower()}: {message}")


@webhooks.command("listen")
@click.option("--port", type=click.IntRange(0, 65535), required=True, help="0: a free one.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface).",
)
@click.option(
    "--path",
    default="/",
    show_default=True,
    type=_Checked("path", _check_path),
    help="URL path the deliveries are posted to.",
)
@_signing_options("Verify deliveries as signed with")
@click.option(
    "--signature-encoding",
    type=click.Choice(["base64", "hex"]),
    default="base64",
    show_default=True,
    help="How X-Signed-Payload writes the signature.",
)
@click.option(
    "--reorder-delay",
    type=_FiniteFloat(0.0, 3600.0),
    default=0.5,
    show_default=True,
    help="Seconds an event waits for earlier revisions of its subject (0: print at once).",
)
@click.option(
    "--count", type=click.IntRange(1, MAX_LIMIT), help="Stop once this many events are printed."
)
@click.pass_context
def listen(
    ctx: click.Context,
    /,
    port: int,
    host: str,
    path: str,
    hmac_key_env: str | None,
    hmac_key_file: Path | None,
    certificate: Path | None,
    unsigned: bool,
    signature_encoding: str,
    reorder_delay: float,
    count: int | None,
) -> None:
    """Receive Tango's webhook deliveries on HOST:PORT/PATH and print each verified event
    as one JSON line on stdout (event_id, revision, event_type, categories,
    event_occurred_at, event_data), once, in revision order per subject.

    The signature (X-Signed-Payload) is checked on the raw body first: a delivery that
    fails is answered 401, noted on stderr, and never printed. Needs no API credentials.
    Ctrl-C stops it (exit 130); with --count, exit 0 after that many events (deliveries
    after that are answered 503, for Tango to deliver again; those already answered 200
    are printed before it exits)."""
    signing = _signing(hmac_key_env, hmac_key_file, certificate, unsigned, required=True)
    verifier: WebhookVerifier | None = None
    if not signing.unsigned:
        try:
            verifier = WebhookVerifier(
                hmac_key=signing.hmac_key,
                certificate=signing.certificate,
                encoding="hex" if signature_encoding == "hex" else "base64",
            )
        except ValidationError as e:
            raise usage_error(
                e, {"hmac_key": signing.option or "", "certificate": "--certificate"}
            ) from None
        except ImportError as e:  # X509 without cryptography
            raise click.UsageError(str(e)) from None
    verbose = bool(ctx.find_root().params.get("verbose"))
    shown = f"[{host}]" if ":" in host else host

    async def main() -> int:
        printed = 0
        closed_output = False
        enough = asyncio.Event()  # --count reached, or standard output closed: stop

        async def on_event(event: WebhookEvent) -> None:
            nonlocal printed, closed_output
            try:
                click.echo(json_text(event))
            except OSError:  # a closed pipe (| head): nobody reads; stop taking deliveries
                closed_output = True
                enough.set()
                raise
            printed += 1
            if count is not None and printed >= count:
                enough.set()

        receiver = WebhookReceiver(
            on_event,
            verifier=verifier,
            unsigned=signing.unsigned,
            reorder_delay=reorder_delay,
        )
        app = receiver.app(path=path)

        @web.middleware
        async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
            if enough.is_set():  # stopping: Tango delivers it again later
                return web.Response(status=503, text="closing")
            response: web.StreamResponse = await handler(request)
            if response.status == 413:
                echo_err(f"warning: webhook delivery refused: over {DEFAULT_MAX_BODY} bytes")
            return response

        app.middlewares.append(gate)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)

        async def serve() -> None:
            await runner.setup()
            try:
                site = web.TCPSite(runner, host, port)
                await site.start()
                bound = runner.addresses[0][1] if runner.addresses else port
                echo_err(f"listening on http://{shown}:{bound}{path} (Ctrl-C to stop)")
                if signing.unsigned:
                    echo_err("warning: --unsigned: anyone who can reach this URL can post events")
                await enough.wait()
            finally:
                await runner.cleanup()  # waits for the events being printed

        handler = None if verbose else _StderrHandler(logging.WARNING)
        if handler is not None:
            log.addHandler(handler)
        try:
            await until_interrupted(serve())
        except Interrupted:
            code = EXIT_INTERRUPTED
        except OSError as e:
            # the environment refuses (address in use, unknown host): exit 2, one line
            echo_err(f"error: cannot listen on {shown}:{port}: {e.strerror or e}")
            return EXIT_USAGE
        else:
            code = EXIT_OK
        finally:
            if handler is not None:
                log.removeHandler(handler)
        stats = receiver.stats
        echo_err(
            f"{printed} event(s) printed; {stats.rejected} refused, "
            f"{stats.duplicates} duplicate(s), {stats.stale} late"
        )
        if closed_output:
            echo_err("error: standard output was closed; stopped taking deliveries")
            return EXIT_FAILED
        return code

    run(main())
