"""The sign-up service against tango-async's local sandbox: rewards, idempotency, bad
input, Tango's failures and the reward's status."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import tango_async as ta
from aiohttp.test_utils import TestClient, TestServer
from tango_async.testing import Sandbox

from signup_service import create_app, signup_ref
from signup_service.app import TANGO

if TYPE_CHECKING:
    from conftest import Service

ANN = {"email": "ann@example.com", "first_name": "Ann"}


def order_posts(sandbox: Sandbox) -> int:
    """How many order creations reached the sandbox."""
    return sum(1 for r in sandbox.requests if r.method == "POST" and r.path.endswith("/orders"))


def secrets_of(sandbox: Sandbox) -> list[str]:
    """Every reward code, PIN and link the sandbox's orders hold: never to be shown."""
    found: list[str] = []
    for order in sandbox.orders.values():
        for credential in (order.get("reward") or {}).get("credentialList") or []:
            found.append(str(credential["value"]))
    return found


async def test_a_signup_is_rewarded(service: Service, tango_sandbox: Sandbox) -> None:
    response = await service.post("/signups", json=ANN)

    assert response.status == 201
    body = await response.json()
    assert body["created"] is True
    assert body["status"] == "COMPLETE"
    ref_id = body["reference_order_id"]
    assert response.headers["Location"] == f"/signups/{ref_id}/reward"
    # the order, as Tango has it
    order = tango_sandbox.orders[ref_id]
    assert order["externalRefID"] == signup_ref("ann@example.com")
    assert order["recipient"] == {"email": "ann@example.com", "firstName": "Ann"}
    assert order["utid"] == "U561593"
    assert order["deliveryMethod"] == "EMAIL"
    assert order["customerIdentifier"] == "sandbox-customer"
    # the reward's code and PIN went to Ann by email, not into the answer
    text = await response.text()
    assert secrets_of(tango_sandbox)
    assert not any(secret in text for secret in secrets_of(tango_sandbox))


async def test_the_same_signup_twice_pays_once(service: Service, tango_sandbox: Sandbox) -> None:
    first = await service.post("/signups", json=ANN)
    # the same address (case and spaces aside), even with another name: the same sign-up
    again = await service.post(
        "/signups", json={"email": "  Ann@Example.COM ", "first_name": "Annie"}
    )

    assert (first.status, again.status) == (201, 200)
    first_body, again_body = await first.json(), await again.json()
    assert again_body["created"] is False
    assert again_body["reference_order_id"] == first_body["reference_order_id"]
    # both reached Tango; Tango answered the second with the order it had
    assert order_posts(tango_sandbox) == 2
    assert len(tango_sandbox.orders) == 1


async def test_concurrent_posts_of_one_signup_pay_once(
    service: Service, tango_sandbox: Sandbox
) -> None:
    # A double click, or two replicas of the service: while Tango still processes the
    # first order, it answers the others 409 "in process"; the SDK retries them with the
    # same externalRefID and gets the order (200), or, if the first is still in process
    # after its retries, the service answers 503: try again.
    tango_sandbox.inject("POST /orders", "slow", delay=0.05, hold=True)

    answers = await asyncio.gather(*(service.post("/signups", json=ANN) for _ in range(3)))

    statuses = [a.status for a in answers]
    assert statuses.count(201) == 1  # one order made...
    assert set(statuses) <= {200, 201, 503}  # ...and the others told of it, or to retry
    again = await service.post("/signups", json=ANN)
    assert again.status == 200
    assert len(tango_sandbox.orders) == 1


async def test_other_signups_get_their_own_rewards(
    service: Service, tango_sandbox: Sandbox
) -> None:
    for email in ("ann@example.com", "bob@example.com"):
        response = await service.post("/signups", json={"email": email, "first_name": "X"})
        assert response.status == 201
    assert len(tango_sandbox.orders) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "Ann"}, "email"),
        ({"email": "ann@example.com"}, "first_name"),
        ({"email": "   ", "first_name": "Ann"}, "email"),
        ({"email": 42, "first_name": "Ann"}, "email"),
        ({"email": "ann@example.com", "first_name": ""}, "first_name"),
        # the SDK's own rules, checked before anything is sent
        ({"email": "not-an-address", "first_name": "Ann"}, "email"),
        ({"email": "ann@example.com", "first_name": "<b>Ann</b>"}, "first_name"),
        (["ann@example.com", "Ann"], "body"),
    ],
)
async def test_bad_input_is_refused_and_orders_nothing(
    service: Service, tango_sandbox: Sandbox, body: Any, field: str
) -> None:
    response = await service.post("/signups", json=body)

    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "invalid_signup"
    assert answer["field"] == field
    assert answer["message"]
    assert order_posts(tango_sandbox) == 0


async def test_a_body_that_is_not_json_is_refused(service: Service, tango_sandbox: Sandbox) -> None:
    response = await service.post("/signups", data=b"email=ann@example.com")

    assert response.status == 422
    assert (await response.json())["field"] == "body"
    assert order_posts(tango_sandbox) == 0


async def test_tango_down_is_a_clear_503_and_trying_again_rewards_once(
    service: Service, tango_sandbox: Sandbox, tango_client: ta.TangoClient
) -> None:
    attempts = tango_client.retry.max_retries + 1
    tango_sandbox.inject("POST /orders", "503", times=attempts)  # every attempt of one call

    failed = await service.post("/signups", json=ANN)

    assert failed.status == 503
    assert failed.headers["Retry-After"] == "1"
    body = await failed.json()
    assert body["error"] == "reward_unavailable"
    assert "never pays twice" in body["message"]
    assert body["tango_request_id"]  # Tango's support reference
    assert tango_sandbox.orders == {}

    # the client tries again: the fault is spent, the sign-up rewarded once
    again = await service.post("/signups", json=ANN)
    assert again.status == 201
    assert len(tango_sandbox.orders) == 1


async def test_an_answer_lost_after_tango_made_the_order_pays_once(
    service: Service, tango_sandbox: Sandbox
) -> None:
    # Tango makes the order, then its answer is lost (a 500): the SDK retries with the
    # same externalRefID and Tango answers with the order it made (200)
    tango_sandbox.inject("POST /orders", "500-after-commit")

    response = await service.post("/signups", json=ANN)

    assert response.status == 200
    assert (await response.json())["created"] is False
    assert order_posts(tango_sandbox) == 2
    assert len(tango_sandbox.orders) == 1


async def test_rate_limited_is_a_503_with_retry_after(
    service: Service, tango_sandbox: Sandbox, tango_client: ta.TangoClient
) -> None:
    attempts = tango_client.retry.max_retries + 1
    tango_sandbox.inject("POST /orders", "429", times=attempts, retry_after=7)

    response = await service.post("/signups", json=ANN)

    assert response.status == 503
    assert response.headers["Retry-After"] == "7"
    assert (await response.json())["error"] == "reward_unavailable"
    assert tango_sandbox.orders == {}


async def test_tango_refusing_the_order_is_a_502_not_the_users_fault(
    service: Service, tango_sandbox: Sandbox
) -> None:
    tango_sandbox.freeze("sandbox-account")  # Tango answers 422: the account is frozen

    response = await service.post("/signups", json=ANN)

    assert response.status == 502
    body = await response.json()
    assert body["error"] == "reward_refused"
    assert body["tango_request_id"]
    assert order_posts(tango_sandbox) == 1  # a refusal is not retried
    assert tango_sandbox.orders == {}


async def test_the_reward_status(service: Service, tango_sandbox: Sandbox) -> None:
    tango_sandbox.pending_for = 60.0  # orders stay PENDING for a minute of the sandbox clock
    created = await service.post("/signups", json=ANN)
    ref_id = (await created.json())["reference_order_id"]

    pending = await service.get(f"/signups/{ref_id}/reward")
    assert pending.status == 200
    body = await pending.json()
    assert body["reference_order_id"] == ref_id
    assert body["status"] == "PENDING"

    tango_sandbox.clock.advance(61)
    done = await service.get(f"/signups/{ref_id}/reward")
    body = await done.json()
    assert body["status"] == "COMPLETE"
    assert body["reward_name"] == "Amazon.com Gift Card"
    assert (Decimal(body["amount"]), body["currency_code"]) == (Decimal("5.00"), "USD")
    assert body["created_at"].endswith("Z")
    text = await done.text()
    assert not any(secret in text for secret in secrets_of(tango_sandbox))


@pytest.mark.parametrize("ref_id", ["RA000000-0000-00", "not%20an%20id"])
async def test_an_unknown_reward_is_404(service: Service, ref_id: str) -> None:
    response = await service.get(f"/signups/{ref_id}/reward")

    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


async def test_an_order_that_is_not_a_signup_reward_is_404(
    service: Service, tango_client: ta.TangoClient
) -> None:
    other = await tango_client.orders.create(
        ta.CreateOrderRequest(
            "sandbox-customer",
            "sandbox-account",
            "U561593",
            10,
            recipient=ta.Recipient(email="cfo@example.com", first_name="Cy"),
            external_ref_id="bonus-2026-cy",
        )
    )

    response = await service.get(f"/signups/{other.reference_order_id}/reward")

    assert response.status == 404


async def test_tango_failing_a_status_read_is_a_503(
    service: Service, tango_sandbox: Sandbox, tango_client: ta.TangoClient
) -> None:
    created = await service.post("/signups", json=ANN)
    ref_id = (await created.json())["reference_order_id"]
    tango_sandbox.inject("GET /orders/*", "500", times=tango_client.retry.max_retries + 1)

    response = await service.get(f"/signups/{ref_id}/reward")

    assert response.status == 503
    body = await response.json()
    assert body["error"] == "reward_unavailable"
    assert "sign-up" not in body["message"]  # nothing to post again here


async def test_the_app_makes_and_closes_its_own_client_from_the_environment(
    tango_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as in production: the settings come from the environment
    for name in ("CUSTOMER_IDENTIFIER", "ACCOUNT_IDENTIFIER", "REWARD_UTID", "REF_PREFIX"):
        monkeypatch.delenv(f"SIGNUP_{name}", raising=False)
    monkeypatch.setenv("TANGO_PLATFORM_NAME", tango_sandbox.platform_name)
    monkeypatch.setenv("TANGO_PLATFORM_KEY", tango_sandbox.platform_key or "")
    monkeypatch.setenv("TANGO_BASE_URL", tango_sandbox.base_url)
    monkeypatch.setenv("SIGNUP_REWARD_AMOUNT", "7.50")
    app = create_app()

    async with TestClient(TestServer(app)) as client:
        response = await client.post("/signups", json=ANN)
        assert response.status == 201
        tango = app[TANGO]
        assert not tango.closed
    assert tango.closed  # the application's cleanup closed it

    (order,) = tango_sandbox.orders.values()
    assert order["amountCharged"]["value"] == 7.5
