"""The local sandbox as a process, seeded with order history (``python -m
tango_async.testing`` serves an empty one).

``python -m benchmarks._seeded_sandbox COUNT [MAX_WINDOW]`` seeds COUNT orders one every
STEP from START, then prints ``{"base_url", "platform_name", "platform_key", "start",
"end", "count"}`` and serves until its stdin closes."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from tango_async.testing import Sandbox

from ._procs import wait_for_stdin_eof

START = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)


async def main(count: int, max_window: int) -> None:
    sb = Sandbox(order_rate=None, record=False, max_window=max_window)
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
    async with sb:
        end = START + STEP * count
        ready = {
            "base_url": sb.base_url,
            "platform_name": sb.platform_name,
            "platform_key": sb.platform_key,
            "start": START.isoformat(),
            "end": end.isoformat(),
            "count": count,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await wait_for_stdin_eof()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]), int(args[1]) if len(args) > 1 else 10_000))
