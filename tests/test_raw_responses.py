"""Issue 16, point 1: ``tango.with_raw_response`` and ``tango.with_options``, against the
local sandbox on loopback and with aioresponses."""

from __future__ import annotations

import asyncio
import re
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

import tango_async as ta
from tango_async.testing import Sandbox

from .conftest import BASE, FAST_RETRY, KEY, NAME, SANDBOX_ACCOUNT, SANDBOX_CUSTOMER, sandbox_order

CUSTOMER, ACCOUNT = SANDBOX_CUSTOMER, SANDBOX_ACCOUNT


@pytest.fixture
async def sandbox() -> Any:
    async with Sandbox(order_rate=None, resend_cooldown=0.2) as sb:
        yield sb


async def test_raw_create_get_and_list(sandbox: Sandbox) -> None:
    async with sandbox.client(retry=FAST_RETRY) as tango:
        raw = await tango.with_raw_response.orders.create(sandbox_order())
        assert raw.status_code == 201
        assert raw.method == "POST" and raw.path == "/orders" and raw.attempts == 1
        assert raw.request_id and raw.request_id == raw.headers["x-request-id"]
        assert raw.headers["X-Request-ID"] == raw.request_id  # case-insensitive
        order = raw.parse()
        assert isinstance(order, ta.CreatedOrder) and order.created
        assert order.reference_order_id.encode() in raw.content
        assert raw.elapsed >= 0

        got = await tango.with_raw_response.orders.get(order.reference_order_id)
        assert got.status_code == 200 and got.parse() == await tango.orders.get(
            order.reference_order_id
        )
        assert got.request_id != raw.request_id

        page = await tango.with_raw_response.orders.list()
        assert page.method == "GET" and page.path == "/orders"
        first = page.parse()
        assert isinstance(first, ta.OrderPage)
        assert [o.reference_order_id for o in first.orders] == [order.reference_order_id]

        # the same order again: the API answers 200 with the existing one
        again = await tango.with_raw_response.orders.create(
            sandbox_order(external_ref_id=order.external_ref_id)
        )
        assert again.status_code == 200 and not again.parse().created


async def test_raw_error_is_raised_with_its_request_id(sandbox: Sandbox) -> None:
    async with sandbox.client(retry=FAST_RETRY) as tango:
        with pytest.raises(ta.NotFoundError) as caught:
            await tango.with_raw_response.orders.get("RA000000-0000-00")
        assert caught.value.request_id  # the body's requestId, also the header's


async def test_raw_repr_never_shows_the_body(sandbox: Sandbox) -> None:
    async with sandbox.client() as tango:
        raw = await tango.with_raw_response.orders.create(sandbox_order())
        text = repr(raw)
        assert raw.parse().reference_order_id not in text
        assert "ann@example.com" not in text and "content" not in text
        assert "201" in text and raw.request_id in text  # type: ignore[operator]


async def test_every_resource_has_raw_calls(sandbox: Sandbox) -> None:
    async with sandbox.client(retry=FAST_RETRY) as tango:
        raw = tango.with_raw_response
        made = (await raw.orders.create(sandbox_order())).parse()
        order = await tango.orders.get(made.reference_order_id)
        assert (await raw.orders.wait(order.reference_order_id)).parse().status == "COMPLETE"
        resent = await raw.orders.resend(order.reference_order_id)
        assert resent.status_code in (200, 201) and resent.path.endswith("/resends")
        line_item = order.reference_line_item_id
        assert line_item is not None
        li = await raw.line_items.get(line_item)
        assert li.parse().reference_line_item_id == line_item
        assert isinstance((await raw.line_items.list()).parse().line_items, list)
        assert (await raw.line_items.reason_codes()).status_code == 200

        accounts = await raw.accounts.list()
        assert [a.account_identifier for a in accounts.parse().items] == [ACCOUNT]
        assert (await raw.accounts.get(ACCOUNT)).parse().current_balance > 0
        assert (await raw.customers.get(CUSTOMER)).path == f"/customers/{CUSTOMER}"
        assert (await raw.customers.accounts(CUSTOMER)).parse().items
        assert (await raw.customers.accounts.list(CUSTOMER)).status_code == 200
        assert (await raw.customers.list()).status_code == 200
        alerts = await raw.customers.low_balance_alerts.list(CUSTOMER, ACCOUNT)
        assert alerts.status_code == 200

        # reference data is fetched by a raw call, whatever the client's cache holds
        await tango.catalog.get()
        fetched_before = len(sandbox.arrivals("GET", "/catalogs", exact=True))
        cat = await raw.catalog.get()
        assert cat.status_code == 200 and cat.parse().find("U561593") is not None
        assert len(sandbox.arrivals("GET", "/catalogs", exact=True)) == fetched_before + 1
        await tango.catalog.get()  # the client's own cache is left as it was
        assert len(sandbox.arrivals("GET", "/catalogs", exact=True)) == fetched_before + 1
        assert (await raw.exchange_rates.get()).status_code == 200
        assert (await raw.catalog.credential_types()).status_code == 200

        hook = await raw.webhooks.create(
            "https://example.com/hook", categories=["ORDER"], verification="NONE"
        )
        assert hook.status_code in (200, 201)
        webhook_id = hook.parse().webhook_id
        assert webhook_id is not None
        assert (await raw.webhooks.get(webhook_id)).parse().webhook_id == webhook_id
        assert (await raw.webhooks.list()).status_code == 200
        deleted = await raw.webhooks.delete(webhook_id)
        assert deleted.parse() is None and deleted.method == "DELETE"


async def test_raw_on_a_view_and_views_chain(sandbox: Sandbox) -> None:
    async with sandbox.client() as tango:
        view = tango.with_options(timeout=7).with_options(max_retries=0)
        assert view.retry.max_retries == 0 and view._transport.timeout == 7
        raw = await view.with_raw_response.orders.create(sandbox_order())
        assert raw.status_code == 201
        assert tango.with_raw_response is tango.with_raw_response  # cached per client
        assert view.with_raw_response is not tango.with_raw_response


async def test_with_options_timeout_applies_to_the_view_only() -> None:
    async with Sandbox(order_rate=None, latency=0.3) as sb, sb.client(timeout=5) as tango:
        with pytest.raises(ta.APITimeoutError):
            await tango.with_options(timeout=0.05, max_retries=0).accounts.get(ACCOUNT)
        assert (await tango.accounts.get(ACCOUNT)).account_identifier == ACCOUNT


async def test_with_options_max_retries(sandbox: Sandbox) -> None:
    async with sandbox.client(retry=FAST_RETRY) as tango:
        sandbox.inject("GET /accounts/*", "503", times=2)
        with pytest.raises(ta.APIError):
            await tango.with_options(max_retries=0).accounts.get(ACCOUNT)
        assert len(sandbox.arrivals("GET", f"/accounts/{ACCOUNT}", exact=True)) == 1
        raw = await tango.with_options(max_retries=5).with_raw_response.accounts.get(ACCOUNT)
        assert raw.attempts == 2 and raw.status_code == 200  # the second 503, then 200
        assert tango.retry.max_retries == FAST_RETRY.max_retries


async def test_views_share_limiter_cooldowns_and_session(sandbox: Sandbox) -> None:
    async with sandbox.client(resend_cooldown=30.0) as tango:
        view = tango.with_options(timeout=3)
        assert view.rate_limiter is tango.rate_limiter
        assert view.cooldown_store is tango.cooldown_store
        assert view.unresolved_store is tango.unresolved_store
        assert view._transport.session() is tango._transport.session()
        made = await tango.orders.create(sandbox_order())
        await tango.orders.resend(made.reference_order_id)
        with pytest.raises(ta.ResendCooldownError):
            await view.orders.resend(made.reference_order_id)
        with pytest.raises(ta.ResendCooldownError):
            await tango.with_raw_response.orders.resend(made.reference_order_id)


async def test_closing_a_view_closes_nothing(sandbox: Sandbox) -> None:
    async with sandbox.client() as tango:
        async with tango.with_options(timeout=2) as view:
            await view.accounts.get(ACCOUNT)
        assert not tango.closed and not view.closed
        await tango.accounts.get(ACCOUNT)
    assert view.closed
    with pytest.raises(ta.ClientClosedError):
        await view.accounts.get(ACCOUNT)
    with pytest.raises(ta.ClientClosedError):
        await tango.with_raw_response.accounts.get(ACCOUNT)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"retry": 3}, "retry"),
    ],
)
def test_with_options_refuses_bad_values(kwargs: dict[str, Any], field: str) -> None:
    tango = ta.TangoClient(NAME, KEY, base_url=BASE)
    with pytest.raises(ta.ValidationError) as caught:
        tango.with_options(**kwargs)
    assert caught.value.field == field


async def test_an_unknown_outcome_is_settled_through_a_raw_create(sandbox: Sandbox) -> None:
    """Money: a create whose outcome stayed unknown, created again through
    with_raw_response, reuses its externalRefID: one order, not two."""
    async with sandbox.client(retry=FAST_RETRY.with_options(max_retries=0)) as tango:
        sandbox.inject("POST /orders", "drop-after-commit")
        with pytest.raises(ta.APIConnectionError):
            await tango.orders.create(sandbox_order())
        [unknown] = await tango.orders.unresolved()
        raw = await tango.with_raw_response.orders.create(sandbox_order())
        assert raw.status_code == 200 and not raw.parse().created
        assert raw.parse().external_ref_id == unknown.external_ref_id
        assert len([o async for o in tango.orders.list()]) == 1
        assert await tango.orders.unresolved() == []


async def test_views_share_the_creates_in_flight(sandbox: Sandbox) -> None:
    """Two equal creates at once, one through the client and one through a view, after
    an unknown outcome: only one of them may pick the earlier attempt's externalRefID
    (both would send it at once otherwise)."""
    async with sandbox.client(retry=FAST_RETRY.with_options(max_retries=0)) as tango:
        sandbox.inject("POST /orders", "drop-after-commit")
        with pytest.raises(ta.APIConnectionError):
            await tango.orders.create(sandbox_order())
        [unknown] = await tango.orders.unresolved()
        sandbox.inject("POST /orders", "slow", delay=0.2)
        first, second = await asyncio.gather(
            tango.orders.create(sandbox_order()),
            tango.with_options(timeout=5).orders.create(sandbox_order()),
        )
        refs = {first.external_ref_id, second.external_ref_id}
        assert unknown.external_ref_id in refs and len(refs) == 2


async def test_raw_response_with_aioresponses() -> None:
    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST_RETRY) as tango:
        with aioresponses() as mocked:
            mocked.get(
                f"{BASE}/accounts/acct-1",
                status=503,
                payload={"errors": []},
            )
            mocked.get(
                f"{BASE}/accounts/acct-1",
                status=200,
                payload={"accountIdentifier": "acct-1", "currentBalance": 12.5},
                headers={"x-request-id": "req-lower-case"},
            )
            raw = await tango.with_raw_response.accounts.get("acct-1")
        assert raw.request_id == "req-lower-case" and raw.attempts == 2
        assert raw.parse().current_balance == Decimal("12.5")


def test_raw_calls_are_typed(tmp_path: Path) -> None:
    """mypy sees each raw call's result type (RawResponse[CreatedOrder]...)."""
    mypy_api = pytest.importorskip("mypy.api")
    source = tmp_path / "typed_raw.py"
    source.write_text(
        textwrap.dedent(
            """
            from typing import assert_type
            import tango_async as ta

            async def main(tango: ta.TangoClient, req: ta.CreateOrderRequest) -> None:
                raw = await tango.with_raw_response.orders.create(req)
                assert_type(raw, ta.RawResponse[ta.CreatedOrder])
                assert_type(raw.parse(), ta.CreatedOrder)
                assert_type(raw.status_code, int)
                assert_type(raw.request_id, str | None)
                page = await tango.with_raw_response.orders.list(status="COMPLETE")
                assert_type(page.parse(), ta.OrderPage)
                got = await tango.with_options(timeout=5).with_raw_response.orders.get("x")
                assert_type(got.parse(), ta.Order)
                await tango.with_raw_response.orders.get(1)  # E: wrong argument type
            """
        )
    )
    out, _err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir=/dev/null", str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and re.search(r"typed_raw.py:15: error: Argument 1", errors[0]), out
    assert status == 1
