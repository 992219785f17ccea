"""The local sandbox as a process, seeded with order history (``python -m
tango_async.testing`` serves an empty one).

``python -m benchmarks._seeded_sandbox COUNT [MAX_WINDOW] [--latency SECONDS]
[--read-rate N]`` seeds
COUNT orders one every STEP from START, then prints ``{"base_url", "platform_name",
"platform_key", "start", "end", "count", "latency"}`` and serves until its stdin closes.

``--latency``: every ``GET /orders`` waits that long before it is answered, as a distant
server's round trip; concurrent requests wait side by side, as they would for the real
API. It uses the sandbox's public fault script (``inject(..., "slow", delay=...)``), so it
needs nothing from the sandbox beyond what tests use. ``--read-rate``: the sandbox answers
429 to any GET sooner than 1/N after the last one it accepted (``Sandbox(read_rate=N)``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tango_async.testing import Sandbox

from ._procs import wait_for_stdin_eof

START = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)
FOREVER = 2**62  # uses of the latency fault: every request the process will ever see


async def main(
    count: int, max_window: int, latency: float = 0.0, read_rate: float | None = None
) -> None:
    sb = Sandbox(order_rate=None, record=False, max_window=max_window, read_rate=read_rate)
    sb.seed_orders(
        count,
        start=START,
        step=STEP,
        customer_identifier="history-customer",
        account_identifier="history-account",
        campaign="history-export",
        sender={"firstName": "Sam", "lastName": "Sender", "email": "rewards@acme.example"},
        recipient={"email": "customer@example.com", "firstName": "Rita", "lastName": "Recipient"},
    )
    if latency > 0:
        sb.inject("GET /orders", "slow", times=FOREVER, delay=latency)
    async with sb:
        end = START + STEP * count
        ready = {
            "base_url": sb.base_url,
            "platform_name": sb.platform_name,
            "platform_key": sb.platform_key,
            "start": START.isoformat(),
            "end": end.isoformat(),
            "count": count,
            "latency": latency,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await wait_for_stdin_eof()


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks._seeded_sandbox")
    p.add_argument("count", type=int)
    p.add_argument("max_window", type=int, nargs="?", default=10_000)
    p.add_argument("--latency", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--read-rate", type=float, default=None, metavar="N")
    args = p.parse_args(argv)
    if args.latency < 0:
        p.error("--latency must be 0 or more seconds")
    return args


if __name__ == "__main__":
    args = parse(sys.argv[1:])
    asyncio.run(main(args.count, args.max_window, args.latency, args.read_rate))
