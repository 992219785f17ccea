"""``python -m tango_async.testing``: the local sandbox as a process.

Prints its base URL and credentials (as TANGO_* lines a shell can export), then serves
until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ._faults import CHAOS_DEFAULT
from ._sandbox import Sandbox


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tango_async.testing",
        description="Serve a local emulator of Tango's RaaS v2 orders API.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument(
        "--order-rate",
        type=float,
        default=1.0,
        help="order creations per second, measured at arrival; 0 for no limit",
    )
    p.add_argument(
        "--resend-cooldown",
        type=float,
        default=30.0,
        help="seconds between two resends of one order (default 30)",
    )
    p.add_argument(
        "--pending-for",
        type=float,
        default=0.0,
        help="seconds a new order stays PENDING (default 0)",
    )
    p.add_argument(
        "--chaos",
        type=float,
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
        type=float,
        default=0.05,
        help="seconds a 'slow' fault waits (default 0.05)",
    )
    p.add_argument("--platform-name", default="sandbox-platform")
    p.add_argument("--platform-key", default=None, help="default: a random key, printed")
    return p


async def serve(args: argparse.Namespace, *, ready: asyncio.Event | None = None) -> None:
    """Run the sandbox until cancelled or signalled."""
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        order_rate=args.order_rate or None,
        resend_cooldown=args.resend_cooldown,
        pending_for=args.pending_for,
        platform_name=args.platform_name,
        platform_key=args.platform_key,
        record=False,
    )
    if getattr(args, "chaos", 0.0):
        sandbox.chaos(
            args.chaos,
            seed=args.chaos_seed,
            faults=[f.strip() for f in args.chaos_faults.split(",") if f.strip()],
            routes=[r.strip() for r in args.chaos_routes.split(",") if r.strip()],
            delay=args.chaos_delay,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with sandbox:
        sys.stdout.write(
            f"Tango sandbox serving at {sandbox.base_url}\n"
            f"TANGO_BASE_URL={sandbox.base_url}\n"
            f"TANGO_PLATFORM_NAME={sandbox.platform_name}\n"
            f"TANGO_PLATFORM_KEY={sandbox.platform_key}\n"
        )
        sys.stdout.flush()
        if ready is not None:
            ready.set()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = None
    if argv[:1] == ["--prog"]:  # the name to show in --help, when run as a subcommand
        prog, argv = argv[1], argv[2:]
    parser = build_parser()
    if prog:
        parser.prog = prog
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
