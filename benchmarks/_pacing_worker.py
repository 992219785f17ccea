"""One of the pacing benchmark's worker processes: a TangoClient sharing a Redis limiter.

``python -m benchmarks._pacing_worker BASE_URL NAME KEY REDIS_URL NAMESPACE RATE MARGIN N``
opens its connection, prints ``{"ready": true}``, waits for a line on stdin, creates N
orders concurrently, and prints ``{"outcomes": [...]}`` ("ok" or the error's class name)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from decimal import Decimal

import tango_async as ta


def order_request(i: int) -> ta.CreateOrderRequest:
    return ta.CreateOrderRequest(
        "bench-customer",
        "bench-account",
        "U561593",
        Decimal("10.00"),
        recipient=ta.Recipient(email=f"pacing{i}@example.com", first_name="Pat"),
    )


async def warm_up(tango: ta.TangoClient) -> None:
    """Open the keep-alive connection (a GET takes no rate slot), as a running service has."""
    with contextlib.suppress(ta.NotFoundError):
        await tango.orders.get("RA000000-00000-00")


async def create_all(tango: ta.TangoClient, count: int) -> list[str]:
    async def one(i: int) -> str:
        try:
            await tango.orders.create(order_request(i))
        except ta.TangoError as e:
            return type(e).__name__
        return "ok"

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def main(argv: list[str]) -> None:
    from tango_async.redis import RedisRateLimiter  # needs the redis package: imported here

    base_url, name, key, redis_url, namespace = argv[:5]
    rate, margin, count = float(argv[5]), float(argv[6]), int(argv[7])
    limiter = RedisRateLimiter(redis_url, rate=rate, margin=margin, namespace=namespace)
    try:
        async with ta.TangoClient(name, key, base_url=base_url, rate_limiter=limiter) as tango:
            await warm_up(tango)
            sys.stdout.write(json.dumps({"ready": True}) + "\n")
            sys.stdout.flush()
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            outcomes = await create_all(tango, count)
    finally:
        await limiter.aclose()
    sys.stdout.write(json.dumps({"outcomes": outcomes}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
