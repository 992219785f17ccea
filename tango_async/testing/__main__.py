"""``python -m tango_async.testing``: the local sandbox as a process.

Prints its base URL and credentials (as TANGO_* lines a shell can export), then serves
until interrupted (Ctrl-C or SIGTERM)::

    Tango sandbox serving at https://127.0.0.1:PORT/raas/v2
    TANGO_BASE_URL=https://127.0.0.1:PORT/raas/v2
    TANGO_PLATFORM_NAME=sandbox-platform
    TANGO_PLATFORM_KEY=sk-...
    TANGO_CA_FILE=/path/to/ca.pem

The last line only with ``--tls``: the CA certificate a client in another process trusts
with ``ssl.create_default_context(cafile=...)`` (``--ca-file``, else a temporary file
removed on exit). With ``--webhook-certificate-file PATH`` the PEM certificate that
verifies X509-signed webhook deliveries is written there and a last line
``TANGO_WEBHOOK_CERT_FILE=PATH`` printed.

A flag out of range (``inf``, ``nan``, a negative delay, a port past 65535, an unknown
fault...) is a usage error: a message and exit status 2, no traceback, nothing served. So
is an environment error: an address that cannot be listened on (a port in use, an
unknown host) or a ``--ca-file`` / ``--webhook-certificate-file`` that cannot be
written: one line with the reason, exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence

from .._validation import finite_number
from ._faults import CHAOS_DEFAULT, FAULTS, parse_route
from ._sandbox import Sandbox

_DAY = 86_400.0


def _number(lo: float, hi: float, rule: str, *, above: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite float from ``lo`` (above it with ``above``) to
    ``hi``; anything else (``inf``, ``nan``, ``1e999``, out of range) is a usage error
    saying ``rule``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}") from None
        if not finite_number(value, lo=lo, hi=hi, above=above):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}")
        return value

    parse.__name__ = "number"
    return parse


_SECONDS = "a finite number of seconds from 0 to {:g}"


def _rate(text: str) -> float:
    """An argparse ``type``: 0 (no limit) or a finite rate of at least one a day."""
    rule = "0 (no limit) or a rate per second from 1/86400 (one a day) to 1000000"
    value = _number(0.0, 1e6, rule)(text)
    if 0 < value < 1 / _DAY:
        raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}")
    return value


def _delays(text: str) -> tuple[float, ...]:
    """An argparse ``type``: comma-separated seconds (each 0 to 3600, at most 20), or
    empty (no retries)."""
    rule = "comma-separated seconds, each from 0 to 3600, at most 20 of them"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > 20:
        raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}")
    return tuple(_number(0.0, 3600.0, rule)(p) for p in parts)


def _port(text: str) -> int:
    """An argparse ``type``: an int from 0 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an int: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tango_async.testing",
        description="Serve a local emulator of Tango's RaaS v2 orders API.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    p.add_argument(
        "--order-rate",
        type=_rate,
        default=1.0,
        help="order creations per second, measured at arrival; 0 for no limit",
    )
    p.add_argument(
        "--resend-cooldown",
        type=_number(0.0, _DAY, _SECONDS.format(_DAY)),
        default=30.0,
        help="seconds between two resends of one order (default 30)",
    )
    p.add_argument(
        "--pending-for",
        type=_number(0.0, 366 * _DAY, "a finite number of seconds from 0 to 366 days"),
        default=0.0,
        help="seconds a new order stays PENDING (default 0)",
    )
    p.add_argument(
        "--chaos",
        type=_number(0.0, 1.0, "a share from 0 to 1"),
        default=0.0,
        metavar="RATE",
        help="inject a fault into this share of the requests (default 0)",
    )
    p.add_argument("--chaos-seed", type=int, default=0, help="seed of the chaos (default 0)")
    p.add_argument(
        "--chaos-faults",
        default=",".join(CHAOS_DEFAULT),
        help=f"comma-separated faults to draw from (default {','.join(CHAOS_DEFAULT)})",
    )
    p.add_argument(
        "--chaos-routes",
        default="POST /orders",
        help="comma-separated routes the chaos applies to (default 'POST /orders')",
    )
    p.add_argument(
        "--chaos-delay",
        type=_number(0.0, 3600.0, _SECONDS.format(3600)),
        default=0.05,
        help="seconds a 'slow' fault waits (default 0.05)",
    )
    net = p.add_argument_group("network conditions (as a distant production server)")
    net.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate for 127.0.0.1/localhost made by trustme",
    )
    net.add_argument(
        "--ca-file",
        metavar="PATH",
        default=None,
        help="with --tls: write the CA certificate (PEM) there (default: a temporary file)",
    )
    net.add_argument(
        "--connect-delay",
        type=_number(0.0, 3600.0, _SECONDS.format(3600)),
        default=0.0,
        metavar="SECONDS",
        help="seconds added to the set-up of every new connection (default 0)",
    )
    net.add_argument(
        "--keepalive-timeout",
        type=_number(0.0, _DAY, "a finite number of seconds above 0 to 86400", above=True),
        default=None,
        metavar="SECONDS",
        help="close keep-alive connections idle this long (default: aiohttp's, 3630)",
    )
    net.add_argument(
        "--read-rate",
        type=_rate,
        default=0.0,
        metavar="N",
        help="GETs per second, measured at arrival, beyond which 429 (default 0: no limit)",
    )
    net.add_argument(
        "--latency",
        type=_number(0.0, 3600.0, _SECONDS.format(3600)),
        default=0.0,
        metavar="SECONDS",
        help="seconds every response is held before it is sent (default 0)",
    )
    hooks = p.add_argument_group("line items and webhooks")
    hooks.add_argument(
        "--delivery-for",
        type=_number(0.0, 366 * _DAY, "a finite number of seconds from 0 to 366 days"),
        default=None,
        metavar="SECONDS",
        help="seconds a line item's delivery takes after its outcome (default: --pending-for)",
    )
    hooks.add_argument(
        "--webhook-ttl",
        type=_number(
            0.0, 3660 * _DAY, "a finite number of seconds above 0 to ten years", above=True
        ),
        default=30 * _DAY,
        metavar="SECONDS",
        help="seconds a webhook subscription lives after creation or renewal (default 30 days)",
    )
    hooks.add_argument(
        "--webhook-retry-delays",
        type=_delays,
        default=(1.0, 2.0, 4.0),
        metavar="S,S,...",
        help="seconds waited before each retry of a failed webhook delivery (default 1,2,4)",
    )
    hooks.add_argument(
        "--webhook-timeout",
        type=_number(0.0, 3600.0, "a finite number of seconds above 0 to 3600", above=True),
        default=10.0,
        metavar="SECONDS",
        help="seconds a webhook delivery attempt may take (default 10)",
    )
    hooks.add_argument(
        "--webhook-certificate-file",
        metavar="PATH",
        default=None,
        help="write the PEM certificate verifying X509-signed deliveries there",
    )
    p.add_argument(
        "--strict-catalog",
        action="store_true",
        help="refuse orders that break the catalog's rules (unknown or inactive utid, an "
        "amount outside the item's rule), as Tango does",
    )
    p.add_argument("--platform-name", default="sandbox-platform")
    p.add_argument("--platform-key", default=None, help="default: a random key, printed")
    return p


def sandbox_from_args(args: argparse.Namespace) -> Sandbox:
    """The Sandbox the parsed flags describe (ValidationError for a bad value), its chaos
    set; not started."""
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        order_rate=args.order_rate or None,
        resend_cooldown=args.resend_cooldown,
        pending_for=args.pending_for,
        platform_name=args.platform_name,
        platform_key=args.platform_key,
        record=False,
        tls=getattr(args, "tls", False),
        connect_delay=getattr(args, "connect_delay", 0.0),
        keepalive_timeout=getattr(args, "keepalive_timeout", None),
        read_rate=getattr(args, "read_rate", 0.0) or None,
        latency=getattr(args, "latency", 0.0),
        delivery_for=getattr(args, "delivery_for", None),
        webhook_ttl=getattr(args, "webhook_ttl", 30 * _DAY),
        webhook_retry_delays=getattr(args, "webhook_retry_delays", (1.0, 2.0, 4.0)),
        webhook_timeout=getattr(args, "webhook_timeout", 10.0),
        strict_catalog=getattr(args, "strict_catalog", False),
    )
    if getattr(args, "chaos", 0.0):
        sandbox.chaos(
            args.chaos,
            seed=args.chaos_seed,
            faults=[f.strip() for f in args.chaos_faults.split(",") if f.strip()],
            routes=[r.strip() for r in args.chaos_routes.split(",") if r.strip()],
            delay=args.chaos_delay,
        )
    return sandbox


async def serve(
    args: argparse.Namespace,
    *,
    ready: asyncio.Event | None = None,
    sandbox: Sandbox | None = None,
) -> None:
    """Run the sandbox (``sandbox``, else the one ``args`` describe) until cancelled or
    signalled."""
    if sandbox is None:
        sandbox = sandbox_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    ca_file, temporary = _write_ca(sandbox, getattr(args, "ca_file", None))
    try:
        cert_file = _write_webhook_certificate(
            sandbox, getattr(args, "webhook_certificate_file", None)
        )
        async with sandbox:
            sys.stdout.write(
                f"Tango sandbox serving at {sandbox.base_url}\n"
                f"TANGO_BASE_URL={sandbox.base_url}\n"
                f"TANGO_PLATFORM_NAME={sandbox.platform_name}\n"
                f"TANGO_PLATFORM_KEY={sandbox.platform_key}\n"
                + (f"TANGO_CA_FILE={ca_file}\n" if ca_file is not None else "")
                + (f"TANGO_WEBHOOK_CERT_FILE={cert_file}\n" if cert_file is not None else "")
            )
            sys.stdout.flush()
            if ready is not None:
                ready.set()
            await stop.wait()
    finally:
        if temporary and ca_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(ca_file)


class _FileError(Exception):
    """A file the sandbox writes for its clients could not be written."""

    def __init__(self, option: str, path: str, error: OSError) -> None:
        super().__init__(option, path)
        self.option, self.path = option, path
        self.reason = error.strerror or str(error)


def _write_webhook_certificate(sandbox: Sandbox, path: str | None) -> str | None:
    """Write the PEM certificate of the sandbox's X509 webhook signatures to ``path``
    (None: nowhere); return its absolute path (_FileError when it cannot be written)."""
    if path is None:
        return None
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(sandbox.webhook_certificate)
    except OSError as e:
        raise _FileError("--webhook-certificate-file", path, e) from None
    return os.path.abspath(path)


def _write_ca(sandbox: Sandbox, path: str | None) -> tuple[str | None, bool]:
    """Write the sandbox's CA certificate to ``path`` (None: a temporary file); return
    its absolute path (None without TLS) and whether it is temporary."""
    if sandbox.ca_pem is None:
        return None, False
    if path is None:
        fd, path = tempfile.mkstemp(prefix="tango-sandbox-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(sandbox.ca_pem)
        return path, True
    try:
        with open(path, "wb") as f:
            f.write(sandbox.ca_pem)
    except OSError as e:
        raise _FileError("--ca-file", path, e) from None
    return os.path.abspath(path), False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = None
    if argv[:1] == ["--prog"]:  # the name to show in --help, when run as a subcommand
        prog, argv = argv[1], argv[2:]
    parser = build_parser()
    if prog:
        parser.prog = prog
    args = parser.parse_args(argv)  # a flag out of range: a usage error, exit 2
    if args.ca_file is not None and not args.tls:
        parser.error("--ca-file needs --tls")
    faults = [f.strip() for f in args.chaos_faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(
            f"--chaos-faults: unknown {', '.join(map(repr, unknown))}; one of: {', '.join(FAULTS)}"
        )
    try:
        for route in args.chaos_routes.split(","):
            if route.strip():
                parse_route(route)
    except ValueError as e:
        parser.error(f"--chaos-routes: {e}")
    if not args.platform_name or ":" in args.platform_name:
        parser.error("--platform-name must be non-empty, without ':'")
    try:
        sandbox = sandbox_from_args(args)
    except ValueError as e:  # a ValidationError the checks above missed: still a usage error
        parser.error(str(e))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args, sandbox=sandbox))
    except _FileError as e:
        parser.exit(2, f"{parser.prog}: error: cannot write {e.option} {e.path!r}: {e.reason}\n")
    except OSError as e:  # the address cannot be listened on (in use, unknown host...)
        reason = e.strerror or str(e)
        parser.exit(2, f"{parser.prog}: error: cannot serve on {args.host}:{args.port}: {reason}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
