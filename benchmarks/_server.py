"""A minimal, fast aiohttp.web server for the client-overhead benchmarks, run in its own
process: ``GET /raas/v2/orders/{id}`` answers a fixed verbose order (no auth check, no
store), so the client's own cost is what varies. Prints ``{"base_url": ...}`` once
serving; exits when its stdin closes."""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

from ._bodies import order_body
from ._procs import wait_for_stdin_eof

PREFIX = "/raas/v2"


async def main() -> None:
    body = order_body()

    async def get_order(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(PREFIX + "/orders/{id}", get_order)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    host, port = runner.addresses[0][:2]
    sys.stdout.write(json.dumps({"base_url": f"http://{host}:{port}{PREFIX}"}) + "\n")
    sys.stdout.flush()
    try:
        await wait_for_stdin_eof()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
