"""Issue 14 end to end on loopback: the SDK subscribes a WebhookReceiver to the sandbox,
orders are placed, the sandbox delivers signed events (HMAC and X509), the receiver
verifies, de-duplicates and orders them, and a bulk job is reconciled from them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

import tango_async as ta
from tango_async.bulk import Reconciler, reconcile
from tango_async.testing import Sandbox, SandboxClock
from tango_async.webhooks import WebhookReceiver

from .conftest import order_request

PENDING = 60.0


class Events:
    def __init__(self) -> None:
        self.got: list[ta.WebhookEvent] = []

    async def __call__(self, event: ta.WebhookEvent) -> None:
        self.got.append(event)

    def reward(self, line_item: str) -> list[tuple[int | None, str | None]]:
        return [
            (e.revision, e.event_data.status)
            for e in self.got
            if isinstance(e.event_data, ta.RewardStatusEventData)
            and e.event_data.reference_line_item_id == line_item
        ]


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(frozen=True)


@pytest.fixture
async def sb(clock: SandboxClock) -> AsyncIterator[Sandbox]:
    async with Sandbox(
        order_rate=None, pending_for=PENDING, clock=clock, webhook_retry_delays=(0.01, 0.01)
    ) as server:
        yield server


async def listener(receiver: WebhookReceiver) -> TestServer:
    server = TestServer(receiver.app(path="/hooks"))
    await server.start_server()
    return server


@pytest.mark.parametrize("method", ["HMAC", "X509"])
async def test_sandbox_deliveries_are_verified_and_handed_over(
    sb: Sandbox, clock: SandboxClock, method: str
) -> None:
    events = Events()
    key = secrets.token_bytes(32)
    creds: dict[str, Any] = (
        {"hmac_key": key} if method == "HMAC" else {"certificate": sb.webhook_certificate}
    )
    receiver = WebhookReceiver(events, reorder_delay=0, **creds)
    server = await listener(receiver)
    try:
        async with sb.client() as tango:
            hook = await tango.webhooks.create(
                str(server.make_url("/hooks")), event_types=["RewardStatus"], **creds
            )
            assert hook.webhook_id is not None
            got = await tango.webhooks.get(hook.webhook_id)
            assert got.payload_verification_method == method
            order = await tango.orders.create(order_request())
            line_item = str(order.reference_line_item_id)
            clock.advance(PENDING)
            await sb.deliver_due()
            await receiver.idle()
            assert events.reward(line_item) == [(1, "COMPLETE")]
            await tango.line_items.freeze(line_item, reason_code="VERIFY_ORDER")
            await tango.line_items.unfreeze(line_item, reason_code="VERIFY_ORDER")
            await tango.line_items.cancel(line_item, reason_code="DUPLICATE")
            await sb.deliver_due()
            await receiver.idle()
            assert [s for _, s in events.reward(line_item)] == [
                "COMPLETE",
                "FROZEN",
                "UNFROZEN",
                "CANCELLED",
            ]
            item = await tango.line_items.get(line_item)
            assert item.status == "CANCELLED" and item.can_cancel is False
            # the events the sandbox lists are those it delivered
            listed = [e async for e in tango.webhooks.events(hook.webhook_id)]
            assert [e.event_id for e in listed] == [e.event_id for e in events.got]
    finally:
        await server.close()
    assert receiver.stats.rejected == 0
    # every delivery the sandbox made verifies with ta.verify_webhook on its raw bytes...
    assert sb.webhook_deliveries
    for d in sb.webhook_deliveries:
        event = ta.verify_webhook(d.body, d.headers, **creds)
        assert event.event_id == d.event_id
        # ...and a byte changed, or another key, does not
        with pytest.raises(ta.WebhookVerificationError):
            ta.verify_webhook(d.body.replace(b"}", b" }", 1), d.headers, **creds)
    other: dict[str, Any] = (
        {"hmac_key": secrets.token_bytes(32)}
        if method == "HMAC"
        else {"certificate": _other_certificate()}
    )
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(sb.webhook_deliveries[0].body, sb.webhook_deliveries[0].headers, **other)


def _other_certificate() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from .test_verify_webhook import make_cert

    return make_cert(rsa.generate_private_key(public_exponent=65537, key_size=2048))


async def test_faults_duplicates_out_of_order_and_bad_signatures(
    sb: Sandbox, clock: SandboxClock
) -> None:
    events = Events()
    key = secrets.token_bytes(32)
    receiver = WebhookReceiver(events, hmac_key=key, reorder_delay=0.05)
    server = await listener(receiver)
    try:
        async with sb.client() as tango:
            await tango.webhooks.create(
                str(server.make_url("/hooks")), event_types=["RewardStatus"], hmac_key=key
            )
            orders = [await tango.orders.create(order_request()) for _ in range(3)]
            sb.inject_webhook("duplicate")
            sb.inject_webhook("out-of-order")
            sb.inject_webhook("bad-signature")
            clock.advance(PENDING)
            await sb.deliver_due()
            await receiver.idle()
    finally:
        await server.close()
    assert receiver.stats.duplicates >= 1
    assert receiver.stats.rejected >= 1  # the bad signature, refused with 401
    refused = [d for d in sb.webhook_deliveries if d.status == 401]
    assert refused and all(d.fault == "bad-signature" for d in refused)
    # each event handed over once; per line item in revision order
    ids = [e.event_id for e in events.got]
    assert len(ids) == len(set(ids))
    delivered = {str(o.reference_line_item_id) for o in orders}
    seen = {
        e.event_data.reference_line_item_id
        for e in events.got
        if isinstance(e.event_data, ta.RewardStatusEventData)
    }
    assert seen <= delivered and len(seen) >= 2


async def test_a_tampered_body_and_a_wrong_key_are_refused(
    sb: Sandbox, clock: SandboxClock
) -> None:
    events = Events()
    receiver = WebhookReceiver(events, hmac_key=secrets.token_bytes(32), reorder_delay=0)
    server = await listener(receiver)
    try:
        async with sb.client() as tango:
            await tango.webhooks.create(  # registered with another key than the receiver's
                str(server.make_url("/hooks")),
                event_types=["RewardStatus"],
                hmac_key=secrets.token_bytes(32),
            )
            await tango.orders.create(order_request())
            clock.advance(PENDING)
            await sb.deliver_due()
            await receiver.idle()
    finally:
        await server.close()
    assert events.got == [] and receiver.stats.rejected >= 1
    assert all(d.status == 401 for d in sb.webhook_deliveries)


async def test_reconcile_a_job_with_complete_failed_and_pending_rows(
    sb: Sandbox, clock: SandboxClock, tmp_path: Path
) -> None:
    journal = tmp_path / "job.journal"
    async with sb.client() as tango:
        sb.fail_next(1)
        requests = [order_request(amount=n) for n in (10, 20)]
        async for _ in tango.orders.submit_many(requests, journal=str(journal)):
            pass
        clock.advance(PENDING)
        async for _ in tango.orders.submit_many(
            [order_request(amount=30)], journal=str(tmp_path / "late.journal")
        ):
            pass
        report = await reconcile(tango, str(journal))
        assert report.counts["delivered"] == 1 and report.counts["failed"] == 1
        late = await reconcile(tango, str(tmp_path / "late.journal"))
        assert late.counts["pending"] == 1
        # a webhook event brings the pending row to its final state, with no lookup
        async with await Reconciler.open(str(tmp_path / "late.journal")) as reconciler:
            row = late.pending[0]
            event = ta.WebhookEvent(
                "evt-1",
                1,
                "RewardStatus",
                ["REWARD"],
                None,
                ta.RewardStatusEventData(
                    reference_line_item_id=row.reference_line_item_id, status="COMPLETE"
                ),
            )
            await reconciler.apply(event)
            assert (await reconciler.report()).counts["delivered"] == 1
