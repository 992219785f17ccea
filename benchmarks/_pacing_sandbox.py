"""The pacing benchmark's sandbox, in its own process so that nothing else runs in the
event loop that stamps arrivals.

``python -m benchmarks._pacing_sandbox RATE`` prints ``{"base_url", "platform_name",
"platform_key"}``, serves a Sandbox(order_rate=RATE) until its stdin closes, then prints
``{"arrivals": [...], "statuses": [...]}`` for every POST /orders it received."""

from __future__ import annotations

import asyncio
import json
import sys

from tango_async.testing import Sandbox

from ._procs import wait_for_stdin_eof


async def main(rate: float) -> None:
    async with Sandbox(order_rate=rate) as sb:
        ready = {
            "base_url": sb.base_url,
            "platform_name": sb.platform_name,
            "platform_key": sb.platform_key,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await wait_for_stdin_eof()
        posts = [r for r in sb.requests if r.method == "POST" and r.path.endswith("/orders")]
    sys.stdout.write(
        json.dumps({"arrivals": [r.arrived for r in posts], "statuses": [r.status for r in posts]})
        + "\n"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1])))
