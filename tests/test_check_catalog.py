"""TangoClient(check_catalog=True) against the sandbox: every catalog rule refuses an order
before anything is sent (no POST /orders reaches the sandbox, the rate limiter gives no
slot), the catalog is fetched once for many orders, a valid order goes through, an
unreachable catalog refuses orders (fast, after the first failure), and a bulk run skips
the catalog-invalid row while sending the others."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock

from .conftest import BASE, FAST_RETRY, KEY, NAME, order_request

CATALOG_URL = re.compile(re.escape(f"{BASE}/catalogs") + r"(\?.*)?$")


class CountingLimiter(ta.LocalRateLimiter):
    """A LocalRateLimiter that counts the slots it gives."""

    def __init__(self, clock: SandboxClock) -> None:
        super().__init__(1000.0, clock=clock)
        self.acquired = 0
        self.writes = 0

    async def acquire(self) -> None:
        self.acquired += 1
        await super().acquire()

    async def before_write(self) -> object:
        self.writes += 1
        return await super().before_write()


def frozen() -> SandboxClock:
    return SandboxClock(frozen=True, start=datetime(2025, 6, 1, 9, tzinfo=UTC))


def posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.method == "POST" and r.path.endswith("/orders")]


def catalog_gets(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.method == "GET" and r.path.endswith("/catalogs")]


@pytest.mark.parametrize(
    ("utid", "amount", "field", "rule"),
    [
        ("U000404", 10, "utid",
         "must be an item of the catalog Sandbox Catalog (U000404 is not in it)"),
        ("U999001", 10, "utid",
         "must be an active item (U999001 (Discontinued Store Gift Card): its status is "
         "inactive)"),
        ("U100025", 20, "amount",
         "must be 25 USD for U100025 (Target Gift Card $25) (a fixed-value item)"),
        ("U561593", Decimal("2000.01"), "amount",
         "must be between 0.01 and 2000 USD for U561593 (Amazon.com Gift Card)"),
        ("U157189", 5, "amount",
         "must be between 10 and 500 USD for U157189 (Visa Prepaid Card (physical))"),
        ("U300100", 600, "amount",
         "must be between 1 and 500 EUR for U300100 (Amazon.de Gutschein)"),
        ("U400100", Decimal("10.50"), "amount",
         "must be a whole amount (no cents) for U400100 (Steam Wallet Code)"),
    ],
)  # fmt: skip
async def test_a_catalog_invalid_order_is_refused_before_sending(
    utid: str, amount: Any, field: str, rule: str
) -> None:
    clock = frozen()
    limiter = CountingLimiter(clock)
    async with (
        Sandbox(clock=clock, contract=True, order_rate=None) as sb,
        sb.client(check_catalog=True, rate_limiter=limiter) as tango,
    ):
        with pytest.raises(ta.ValidationError) as err:
            await tango.orders.create(order_request(utid=utid, amount=amount))
        assert (err.value.field, err.value.rule) == (field, rule)
        assert posts(sb) == [] and limiter.acquired == 0 and limiter.writes == 0
        assert await tango.orders.unresolved() == []  # nothing remembered either
        assert len(catalog_gets(sb)) == 1
        assert sb.contract_violations == []


async def test_the_currency_rule_on_the_cached_catalog() -> None:
    # An order names no currency (its amount is in the item's); the pre-flight of a row
    # whose amount is in a known currency checks it with the cached catalog.
    async with Sandbox(clock=frozen()) as sb, sb.client(check_catalog=True) as tango:
        catalog = await tango.catalog.get()
        with pytest.raises(ta.ValidationError) as err:
            catalog.check("U300100", 10, "USD")
        assert (err.value.field, err.value.rule) == (
            "currency_code",
            "must be EUR for U300100 (Amazon.de Gutschein)",
        )
        catalog.check("U300225", 25, "CAD")
        await tango.orders.create(order_request(utid="U300225", amount=25))
        assert len(catalog_gets(sb)) == 1  # the one get() above, shared with create()


async def test_valid_orders_go_through_with_one_catalog_fetch() -> None:
    clock = frozen()
    limiter = CountingLimiter(clock)
    async with (
        Sandbox(clock=clock, contract=True, order_rate=None) as sb,
        sb.client(check_catalog=True, rate_limiter=limiter) as tango,
    ):
        for utid, amount in [("U561593", 10), ("U100050", 50), ("U300100", 20), ("u666425", 5)]:
            created = await tango.orders.create(order_request(utid=utid, amount=amount))
            assert created.created
        assert len(posts(sb)) == 4 and limiter.acquired == 4
        assert len(catalog_gets(sb)) == 1
        clock.advance(12 * 3600 + 1)  # past catalog_ttl: fetched once more
        await tango.orders.create(order_request(amount=11))
        assert len(catalog_gets(sb)) == 2
        assert sb.contract_violations == []


async def test_without_check_catalog_nothing_is_fetched_and_anything_is_sent() -> None:
    async with Sandbox(clock=frozen()) as sb, sb.client() as tango:
        await tango.orders.create(order_request(utid="U000404", amount=3))
        assert catalog_gets(sb) == [] and len(posts(sb)) == 1


@pytest.mark.parametrize("fault", ["401", "500", "drop-before"])
async def test_an_unreachable_catalog_refuses_orders_and_fails_fast(fault: str) -> None:
    clock = frozen()
    async with (
        Sandbox(clock=clock) as sb,
        sb.client(check_catalog=True, max_retries=1) as tango,
    ):
        sb.inject("GET /catalogs", fault, times=10)
        with pytest.raises(ta.CatalogUnavailableError) as err:
            await tango.orders.create(order_request())
        assert isinstance(err.value.cause, (ta.APIError, ta.APIConnectionError))
        assert err.value.__cause__ is err.value.cause
        assert "check_catalog" in str(err.value)
        fetched = len(catalog_gets(sb))
        with pytest.raises(ta.CatalogUnavailableError):  # within 30 s: no new fetch
            await tango.orders.create(order_request())
        assert len(catalog_gets(sb)) == fetched and posts(sb) == []
        sb.clear_faults()
        clock.advance(31)
        await tango.orders.create(order_request())
        assert len(catalog_gets(sb)) == fetched + 1 and len(posts(sb)) == 1


async def test_a_bulk_run_skips_the_catalog_invalid_row_and_sends_the_others() -> None:
    async with (
        Sandbox(clock=frozen()) as sb,
        sb.client(check_catalog=True) as tango,
    ):
        rows = [
            order_request(amount=10),
            order_request(utid="U100025", amount=20),  # not the item's face value
            order_request(amount=12),
        ]
        results = [
            r async for r in tango.orders.submit_many(rows, concurrency=1, skip_invalid=True)
        ]
        by_row = {r.row: r for r in results}
        assert by_row[1].outcome == "created" and by_row[3].outcome == "created"
        bad = by_row[2]
        # refused by the bulk pre-flight (Catalog.check on the cached catalog), not sent
        assert bad.outcome == "invalid", bad
        assert bad.message is not None and "amount" in bad.message and "25 USD" in bad.message
        assert bad.reference_order_id is None and not bad.retriable
        sent = [r.json["utid"] for r in posts(sb)]
        assert sent == ["U561593", "U561593"]


async def test_a_403_on_the_catalog_refuses_the_order_with_nothing_sent() -> None:
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, check_catalog=True
    ) as tango:
        with aioresponses() as m:
            m.get(CATALOG_URL, status=403, payload={"errors": [{"i18nKey": "403.001"}]})
            with pytest.raises(ta.CatalogUnavailableError) as err:
                await tango.orders.create(order_request())
            assert isinstance(err.value.cause, ta.PermissionDeniedError)
            assert err.value.external_ref_id is None and not err.value.outcome_unknown
            assert [k for k in m.requests if k[0] == "POST"] == []
