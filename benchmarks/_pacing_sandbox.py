"""The pacing benchmark's sandbox, in its own process so that nothing else runs in the
event loop that stamps arrivals.

``python -m benchmarks._pacing_sandbox RATE [--tls --ca-file PATH] [--connect-delay S]
[--keepalive-timeout S]`` serves a Sandbox(order_rate=RATE), with the network conditions
of the flags (the same as ``python -m tango_async.testing``'s: HTTPS with a certificate
made on the fly whose CA is written to PATH; seconds added to every new connection's
set-up; seconds after which the server closes an idle keep-alive connection). It prints
``{"base_url", "platform_name", "platform_key"}``, serves until its stdin closes, then
prints ``{"arrivals": [...], "statuses": [...], "connections": n}`` for every POST /orders
it received (arrivals on the system's monotonic clock, ``time.monotonic()``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tango_async.testing import Sandbox

from ._procs import wait_for_stdin_eof


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks._pacing_sandbox")
    p.add_argument("rate", type=float, help="order_rate: orders per second at arrival")
    p.add_argument("--tls", action="store_true", help="serve HTTPS")
    p.add_argument("--ca-file", default=None, help="with --tls: write the CA certificate here")
    p.add_argument("--connect-delay", type=float, default=0.0)
    p.add_argument("--keepalive-timeout", type=float, default=None)
    return p


def network_options(args: argparse.Namespace) -> dict[str, Any]:
    """Sandbox keyword arguments for the network flags given (none: plain loopback)."""
    options: dict[str, Any] = {}
    if args.tls:
        options["tls"] = True
    if args.connect_delay:
        options["connect_delay"] = args.connect_delay
    if args.keepalive_timeout is not None:
        options["keepalive_timeout"] = args.keepalive_timeout
    return options


def write_ca(sb: Sandbox, path: str) -> None:
    """Write the CA certificate of a Sandbox(tls=True) to ``path``."""
    ca_pem: bytes | None = getattr(sb, "ca_pem", None)
    if ca_pem is None:
        raise RuntimeError("Sandbox(tls=True) gave no ca_pem")
    Path(path).write_bytes(ca_pem)


async def main(args: argparse.Namespace) -> None:
    sandbox = Sandbox(order_rate=args.rate, **network_options(args))
    if args.tls and args.ca_file:
        write_ca(sandbox, args.ca_file)  # made with the certificate, before serving
    async with sandbox as sb:
        ready = {
            "base_url": sb.base_url,
            "platform_name": sb.platform_name,
            "platform_key": sb.platform_key,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await wait_for_stdin_eof()
        posts = [r for r in sb.requests if r.method == "POST" and r.path.endswith("/orders")]
        connections = getattr(sb, "connections_accepted", None)
    seen = {
        "arrivals": [r.arrived for r in posts],
        "statuses": [r.status for r in posts],
        "connections": connections,
    }
    sys.stdout.write(json.dumps(seen) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(build_parser().parse_args()))
