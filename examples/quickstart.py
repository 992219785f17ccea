"""The README quick start, runnable as it is.

With TANGO_PLATFORM_NAME and TANGO_PLATFORM_KEY set, it runs against TANGO_BASE_URL (else
Tango's sandbox). Without them, it serves the project's local fake of the API on 127.0.0.1
(tests/fake_tango.py) and runs against that, so it works on a fresh machine with no account.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

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
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.fake_tango import FakeTango

            fake = await stack.enter_async_context(FakeTango())
            os.environ.update(
                TANGO_PLATFORM_NAME=fake.platform_name,
                TANGO_PLATFORM_KEY=fake.platform_key,
                TANGO_BASE_URL=fake.base_url,
            )
            print(f"No TANGO_* credentials set: using the local fake API at {fake.base_url}")
        await quickstart()


if __name__ == "__main__":
    asyncio.run(main())
