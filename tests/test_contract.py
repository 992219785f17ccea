"""The contract test: every request the SDK sends and every response the sandbox sends,
across all routes and the error answers, validates against Tango's OpenAPI description.

The spec is read from ../shared/reference when it is there (the project's reference copy),
otherwise from the copy shipped in the package. Its known flaws are corrected in one place,
``tango_async/testing/_contract.py`` (``SPEC_CORRECTIONS``). The end-to-end tests run with
the same checks switched on (``tests/test_e2e.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock
from tango_async.testing._contract import ContractChecker, load_spec

from .conftest import FAST_RETRY

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "tangocard-openapi.json"


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return ContractChecker(load_spec(REFERENCE if REFERENCE.exists() else None))


@pytest.fixture
async def sandbox(checker: ContractChecker) -> AsyncIterator[Sandbox]:
    async with Sandbox(
        order_rate=None, resend_cooldown=30.0, contract=checker, clock=SandboxClock(frozen=True)
    ) as sb:
        yield sb


def recipient(**kw: object) -> ta.Recipient:
    return ta.Recipient(**{"email": "ann@example.com", "first_name": "Ann", **kw})  # type: ignore[arg-type]


async def test_every_route_and_answer_meets_the_contract(sandbox: Sandbox) -> None:
    sb = sandbox
    async with sb.client(retry=FAST_RETRY, max_retries=0) as tango:
        base = dict(customer_identifier="customer-1", account_identifier="account-1")
        orders = [
            await tango.orders.create(
                ta.CreateOrderRequest(
                    **base,
                    utid="U561593",
                    amount=Decimal("10.10"),
                    recipient=recipient(),
                    sender=ta.Sender(first_name="Sam", email="sam@example.com"),
                    message="Thanks!",
                    campaign="spring",
                    notes="n",
                    purchase_order_number="PO-1",
                    email_subject="A gift",
                    etid="E000000",
                )
            ),
            await tango.orders.create(
                ta.CreateOrderRequest(
                    **base,
                    utid="U561593",
                    amount=5,
                    delivery_method="PHONE",
                    recipient=ta.Recipient(first_name="Ann", mobile_number="+14155550100"),
                )
            ),
            await tango.orders.create(
                ta.CreateOrderRequest(
                    **base,
                    utid="U157189",
                    amount=25,
                    recipient=ta.Recipient(
                        first_name="Ann",
                        last_name="Lee",
                        address=ta.Address("1 Main St", "Springfield", "IL", "62701", "US"),
                    ),
                )
            ),
            await tango.orders.create(
                ta.CreateOrderRequest(
                    **base,
                    utid="U666425",
                    amount=1,
                    send_email=False,
                    expiration_date=datetime(2027, 12, 31, tzinfo=UTC),
                )
            ),
            await tango.orders.create(
                ta.CreateOrderRequest(**base, utid="U561593", amount=1, delivery_method="EMBEDDED")
            ),
        ]
        again = await tango.orders.create(
            ta.CreateOrderRequest(
                **base,
                utid="U561593",
                amount=Decimal("10.10"),
                recipient=recipient(),
                external_ref_id=orders[0].external_ref_id,
            )
        )
        assert not again.created
        for o in orders:
            await tango.orders.get(o.reference_order_id)
        sb.seed_orders(250, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(hours=1))
        assert len([o async for o in tango.orders.list()]) == 255
        [
            o
            async for o in tango.orders.list(
                start_date="2024-01-02",
                end_date="2024-01-03",
                customer_identifier="sandbox-customer",
            )
        ]
        await tango.orders.resend(orders[0].reference_order_id, new_email="b@example.com")
        line_item = orders[1].reference_line_item_id
        assert line_item is not None
        await tango.line_items.resend(
            line_item, reason_code="OTHER", other_reason="lost", new_mobile_number="+14155550101"
        )

        # the error answers
        with pytest.raises(ta.ResendCooldownError):  # refused locally: the order's cooldown
            await tango.line_items.resend(orders[0].reference_line_item_id or "")
        async with sb.client(retry=FAST_RETRY, max_retries=0) as other:  # knows no pair
            with pytest.raises(ta.ResendCooldownError) as refused:  # the server's 403.005
                await other.line_items.resend(orders[0].reference_line_item_id or "")
            assert isinstance(refused.value.__cause__, ta.PermissionDeniedError)
        with pytest.raises(ta.PermissionDeniedError):  # 403.003
            await tango.orders.resend(orders[3].reference_order_id)
        with pytest.raises(ta.NotFoundError):
            await tango.orders.get("RA000000-00000-00")
        with pytest.raises(ta.NotFoundError):
            await tango.line_items.resend("U404")
        sb.set_balance("account-2", 1)
        with pytest.raises(ta.InsufficientFundsError):
            await tango.orders.create(
                ta.CreateOrderRequest(
                    "customer-1", "account-2", "U561593", 5, recipient=recipient()
                )
            )
        sb.freeze("account-3")
        with pytest.raises(ta.UnprocessableEntityError):
            await tango.orders.create(
                ta.CreateOrderRequest(
                    "customer-1", "account-3", "U561593", 5, recipient=recipient()
                )
            )
        sb.in_process.add("busy-ref")
        with pytest.raises(ta.ConflictError):
            await tango.orders.create(
                ta.CreateOrderRequest(
                    **base,
                    utid="U561593",
                    amount=5,
                    recipient=recipient(),
                    external_ref_id="busy-ref",
                )
            )

    # answers the SDK never provokes: bad auth, server-side validation, paging limits
    auth = aiohttp.encode_basic_auth(sb.platform_name, sb.platform_key)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:

        async def status(method: str, path: str, **kw: object) -> int:
            async with http.request(method, sb.base_url + path, **kw) as resp:  # type: ignore[arg-type]
                await resp.read()
                return resp.status

        assert await status("GET", "/orders", params={"elementsPerBlock": "101"}) == 422
        assert (
            await status("GET", "/orders", params={"page": "200", "elementsPerBlock": "100"}) == 400
        )
        line = orders[0].reference_line_item_id
        assert await status("GET", f"/lineItems/{line}") == 200
        assert await status("GET", "/lineItems/U404") == 404
        async with (
            aiohttp.ClientSession() as anonymous,
            anonymous.get(sb.base_url + "/orders") as resp,
        ):
            assert resp.status == 401
    requests = [v for v in sb.contract_violations if v.direction == "request"]
    responses = [v for v in sb.contract_violations if v.direction == "response"]
    assert requests == []
    assert responses == []
    checked = {(r.method, r.status) for r in sb.requests}
    assert {
        ("POST", 201),
        ("POST", 200),
        ("GET", 200),
        ("POST", 403),
        ("GET", 404),
        ("POST", 402),
        ("POST", 422),
        ("POST", 409),
        ("GET", 401),
    } <= checked


async def test_server_side_validation_errors_meet_the_contract(sandbox: Sandbox) -> None:
    auth = aiohttp.encode_basic_auth(sandbox.platform_name, sandbox.platform_key)
    async with (
        aiohttp.ClientSession(headers={"Authorization": auth}) as http,
        http.post(
            sandbox.base_url + "/orders",
            json={
                "customerIdentifier": "ab",
                "accountIdentifier": "account-1",
                "utid": "X",
                "amount": 1,
            },
        ) as resp,
    ):
        assert resp.status == 400
        body = await resp.json()
    assert {e["path"] for e in body["errors"]} >= {"customerIdentifier", "utid"}
    # the request breaks the request schema (that is the point); the answer must not
    assert [v for v in sandbox.contract_violations if v.direction == "response"] == []
    assert [v for v in sandbox.contract_violations if v.direction == "request"]


def test_the_spec_is_read_from_the_reference_or_the_package() -> None:
    packaged = load_spec()
    assert "/orders" in packaged["paths"]
    if REFERENCE.exists():
        assert load_spec(REFERENCE) == packaged  # the shipped copy is the reference copy
