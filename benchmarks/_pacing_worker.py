"""One of the pacing benchmark's worker processes: a TangoClient sharing a Redis limiter.

``python -m benchmarks._pacing_worker`` prints ``{"started": true}`` once imported, then
obeys one JSON command a line on stdin, answering each with one JSON line, so one worker
serves every trial of a case (its imports are paid once):

- ``{"op": "open", "base_url", "name", "key", "redis_url", "ns", "rate", "margin",
  "ca_file", "warm"}``: a fresh RedisRateLimiter on namespace ``ns`` and a fresh
  TangoClient (HTTPS verified against ``ca_file`` when given) that, when ``warm``, opens
  its connection first (a GET, which takes no rate slot): ``{"ready": true}``;
- ``{"op": "burst", "n": N}``: N orders created concurrently: ``{"outcomes": [...]}``
  ("ok" or the error's class name);
- ``{"op": "close"}``: the client and limiter closed: ``{"closed": true}``.

It exits when its stdin closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
from decimal import Decimal
from itertools import count as counter
from typing import Any

import tango_async as ta


def order_request(i: int) -> ta.CreateOrderRequest:
    return ta.CreateOrderRequest(
        "bench-customer",
        "bench-account",
        "U561593",
        Decimal("10.00"),
        recipient=ta.Recipient(email=f"pacing{i}@example.com", first_name="Pat"),
    )


def ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """What a client of the TLS sandbox verifies it with (None: plain HTTP, or the default)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


async def warm_up(tango: ta.TangoClient) -> None:
    """Open the keep-alive connection (a GET takes no rate slot), as a running service has."""
    with contextlib.suppress(ta.NotFoundError):
        await tango.orders.get("RA000000-00000-00")


async def create_all(tango: ta.TangoClient, count: int, start: int = 0) -> list[str]:
    async def one(i: int) -> str:
        try:
            await tango.orders.create(order_request(i))
        except ta.TangoError as e:
            return type(e).__name__
        return "ok"

    return list(await asyncio.gather(*(one(start + i) for i in range(count))))


async def main() -> None:
    """Commands, one JSON object a line on stdin, each answered by one on stdout."""
    from tango_async.redis import RedisRateLimiter  # needs the redis package: imported here

    loop = asyncio.get_running_loop()
    tango: ta.TangoClient | None = None
    limiter: RedisRateLimiter | None = None
    numbers = counter()

    async def close() -> None:
        nonlocal tango, limiter
        if tango is not None:
            await tango.close()
        if limiter is not None:
            await limiter.aclose()
        tango = limiter = None

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    say({"started": True})
    try:
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            cmd = json.loads(line)
            if cmd["op"] == "open":
                await close()
                limiter = RedisRateLimiter(
                    cmd["redis_url"], rate=cmd["rate"], margin=cmd["margin"], namespace=cmd["ns"]
                )
                tango = ta.TangoClient(
                    cmd["name"],
                    cmd["key"],
                    base_url=cmd["base_url"],
                    rate_limiter=limiter,
                    ssl_context=ssl_context(cmd.get("ca_file")),
                )
                await tango.__aenter__()
                if cmd.get("warm", True):
                    await warm_up(tango)
                say({"ready": True})
            elif cmd["op"] == "burst":
                assert tango is not None, "burst before open"
                outcomes = await create_all(tango, cmd["n"], next(numbers) * 100_000)
                say({"outcomes": outcomes})
            elif cmd["op"] == "close":
                await close()
                say({"closed": True})
            else:
                raise ValueError(f"unknown command {cmd!r}")
    finally:
        await close()


if __name__ == "__main__":
    asyncio.run(main())
