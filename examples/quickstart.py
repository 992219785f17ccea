"""The README quick start, runnable as it is.

With TANGO_PLATFORM_NAME and TANGO_PLATFORM_KEY set, it runs against TANGO_BASE_URL (else
Tango's sandbox). Without them, it starts the package's local sandbox on 127.0.0.1
(tango_async.testing.Sandbox) and runs against that, so it works on a fresh machine with
no Tango account.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from decimal import Decimal

import tango_async as ta


async def quickstart() -> None:
    async with ta.TangoClient() as tango:
        order = await tango.orders.create(
            ta.CreateOrderRequest(
                "my-customer",  # customer_identifier
                "my-account",  # account_identifier
                "U561593",  # utid
                Decimal("10.00"),  # amount
                recipient=ta.Recipient(email="ann@example.com", first_name="Ann"),
                external_ref_id="welcome-ann-2026",  # optional: generated if left out
            )
        )
        print(order.reference_order_id, order.status, "new" if order.created else "existing")

        again = await tango.orders.get(order.reference_order_id)
        print(again.amount_charged)

        async for past in tango.orders.list(start_date="2026-01-01"):
            print(past.reference_order_id, past.created_at, past.status)


async def main() -> None:
    async with AsyncExitStack() as stack:
        if not (os.environ.get("TANGO_PLATFORM_NAME") and os.environ.get("TANGO_PLATFORM_KEY")):
            from tango_async.testing import Sandbox

            sandbox = await stack.enter_async_context(Sandbox())
            os.environ.update(
                TANGO_PLATFORM_NAME=sandbox.platform_name,
                TANGO_PLATFORM_KEY=sandbox.platform_key,
                TANGO_BASE_URL=sandbox.base_url,
            )
            print(f"No TANGO_* credentials set: using the local sandbox at {sandbox.base_url}")
        await quickstart()


if __name__ == "__main__":
    asyncio.run(main())
