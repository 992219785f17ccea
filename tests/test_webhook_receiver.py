"""tango_async.webhooks.WebhookReceiver on loopback: verification before anything, 200 at
once, duplicates dropped, revision order per subject, stale and failing events, limits,
and the Redis event store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import tango_async as ta
from tango_async.webhooks import MemoryEventStore, WebhookReceiver

from .redis_support import redis_for_tests

KEY = b"receiver-test-key-0123456789abcd"


def delivery(
    revision: int, *, line_item: str = "L1", status: str = "COMPLETE", event_id: str | None = None
) -> bytes:
    return json.dumps(
        {
            "eventId": event_id or str(uuid.uuid4()),
            "revision": revision,
            "eventType": "RewardStatus",
            "categories": ["Orders"],
            "eventData": {"referenceLineItemId": line_item, "status": status},
        }
    ).encode()


def signed(body: bytes, key: bytes = KEY) -> dict[str, str]:
    sig = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    return {"X-Signed-Payload": sig, "Content-Type": "application/json"}


class Seen:
    def __init__(self) -> None:
        self.events: list[ta.WebhookEvent] = []
        self.fail_on: set[int] = set()
        self.gate: asyncio.Event | None = None

    async def __call__(self, event: ta.WebhookEvent) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if event.revision in self.fail_on:
            raise RuntimeError("callback broke")
        self.events.append(event)

    def revisions(self) -> list[int | None]:
        return [e.revision for e in self.events]


@pytest.fixture
def seen() -> Seen:
    return Seen()


async def serve(receiver: WebhookReceiver) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(receiver.app(path="/hooks"))) as client:
        yield client


@pytest.fixture
async def receiver(seen: Seen) -> WebhookReceiver:
    return WebhookReceiver(seen, hmac_key=KEY, reorder_delay=0.05)


@pytest.fixture
async def http(receiver: WebhookReceiver) -> AsyncIterator[TestClient[Any, Any]]:
    async for client in serve(receiver):
        yield client


async def post(http: TestClient[Any, Any], body: bytes, headers: dict[str, str]) -> int:
    async with http.post("/hooks", data=body, headers=headers) as resp:
        return resp.status


async def test_verified_event_reaches_the_callback(
    http: TestClient[Any, Any], receiver: WebhookReceiver, seen: Seen
) -> None:
    body = delivery(1)
    assert await post(http, body, signed(body)) == 200
    await receiver.idle()
    assert seen.revisions() == [1]
    assert isinstance(seen.events[0].event_data, ta.RewardStatusEventData)


async def test_tampered_wrong_key_and_unsigned_are_refused(
    http: TestClient[Any, Any], receiver: WebhookReceiver, seen: Seen
) -> None:
    body = delivery(1)
    assert await post(http, body.replace(b"COMPLETE", b"FAILED!!"), signed(body)) == 401
    assert await post(http, body, signed(body, b"another-key-of-32-bytes-00000000")) == 401
    assert await post(http, body, {"Content-Type": "application/json"}) == 401
    good = b"not json"
    assert await post(http, good, signed(good)) == 400
    await receiver.idle()
    assert seen.events == [] and receiver.stats.rejected == 4


async def test_duplicates_are_dropped(
    http: TestClient[Any, Any], receiver: WebhookReceiver, seen: Seen
) -> None:
    body = delivery(1, event_id="same-id")
    for _ in range(3):
        assert await post(http, body, signed(body)) == 200
    await receiver.idle()
    assert seen.revisions() == [1] and receiver.stats.duplicates == 2


async def test_out_of_order_deliveries_are_handed_over_in_revision_order(
    http: TestClient[Any, Any], receiver: WebhookReceiver, seen: Seen
) -> None:
    bodies = [delivery(r) for r in (3, 1, 2)] + [delivery(5, line_item="L2")]
    for body in bodies:
        assert await post(http, body, signed(body)) == 200
    await receiver.idle()
    by_subject = {
        s: [e.revision for e in seen.events if e.subject == s]
        for s in ("line_item:L1", "line_item:L2")
    }
    assert by_subject == {"line_item:L1": [1, 2, 3], "line_item:L2": [5]}


async def test_a_stale_revision_after_a_later_one_is_dropped(
    http: TestClient[Any, Any], receiver: WebhookReceiver, seen: Seen
) -> None:
    late = delivery(4)
    first = delivery(5)
    await post(http, first, signed(first))
    await receiver.idle()
    assert await post(http, late, signed(late)) == 200
    await receiver.idle()
    assert seen.revisions() == [5] and receiver.stats.stale == 1


async def test_the_answer_does_not_wait_for_the_callback(seen: Seen) -> None:
    seen.gate = asyncio.Event()
    receiver = WebhookReceiver(seen, hmac_key=KEY, reorder_delay=0)
    async for http in serve(receiver):
        body = delivery(1)
        assert await asyncio.wait_for(post(http, body, signed(body)), 5) == 200
        assert seen.events == []
        seen.gate.set()
        await receiver.idle()
        assert seen.revisions() == [1]


async def test_a_failed_callback_is_forgotten_so_a_replay_delivers_it(seen: Seen) -> None:
    store = MemoryEventStore()
    receiver = WebhookReceiver(seen, hmac_key=KEY, reorder_delay=0, store=store)
    seen.fail_on = {1}
    async for http in serve(receiver):
        body = delivery(1, event_id="e-1")
        assert await post(http, body, signed(body)) == 200
        await receiver.idle()
        assert receiver.stats.failed == 1 and len(store) == 0
        seen.fail_on = set()
        assert await post(http, body, signed(body)) == 200  # the replay
        await receiver.idle()
        assert seen.revisions() == [1]


async def test_too_large_and_too_many_pending(seen: Seen) -> None:
    seen.gate = asyncio.Event()
    receiver = WebhookReceiver(seen, hmac_key=KEY, reorder_delay=0, max_body=2000, max_pending=2)
    async for http in serve(receiver):
        big = b"{" + b" " * 3000 + b"}"
        assert await post(http, big, signed(big)) == 413
        statuses = []
        for r in range(4):
            body = delivery(r, line_item=f"L{r}")
            statuses.append(await post(http, body, signed(body)))
        # two are pending (their callbacks wait on the gate): the others are refused
        assert statuses == [200, 200, 503, 503]
        seen.gate.set()
        await receiver.idle()
        refused = statuses.count(503)
        assert len(seen.events) == 4 - refused
        # a refused delivery was not recorded: Tango's retry is taken
        body = delivery(9, line_item="L9", event_id="retry-me")
        assert await post(http, body, signed(body)) == 200


async def test_receive_without_aiohttp_and_unsigned_mode(seen: Seen) -> None:
    receiver = WebhookReceiver(seen, unsigned=True, reorder_delay=0)
    body = delivery(1)
    assert await receiver.receive(body, {}) == (200, "ok")
    await receiver.idle()
    assert seen.revisions() == [1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"hmac_key": KEY, "unsigned": True},
        {"hmac_key": KEY, "reorder_delay": -1},
        {"hmac_key": KEY, "concurrency": 0},
        {"hmac_key": KEY, "dedupe_ttl": 0},
        {"hmac_key": "not base64!"},
    ],
)
def test_bad_receiver_arguments(seen: Seen, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ta.ValidationError):
        WebhookReceiver(seen, **kwargs)


async def test_close_answers_503_and_drains(seen: Seen) -> None:
    receiver = WebhookReceiver(seen, hmac_key=KEY, reorder_delay=0)
    body = delivery(1)
    assert (await receiver.receive(body, signed(body)))[0] == 200
    await receiver.close()
    assert seen.revisions() == [1]
    async for http in serve(receiver):
        assert await post(http, body, signed(body)) == 503


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


async def test_redis_event_store_dedupes_across_receivers(redis_url: str) -> None:
    from tango_async.redis import RedisEventStore

    namespace = "test-" + uuid.uuid4().hex[:10]
    stores = [RedisEventStore(redis_url, namespace=namespace, platform="p") for _ in range(2)]
    seen = Seen()
    receivers = [WebhookReceiver(seen, hmac_key=KEY, reorder_delay=0, store=s) for s in stores]
    body = delivery(1, event_id="shared")
    results = await asyncio.gather(*(r.receive(body, signed(body)) for r in receivers * 3))
    assert sorted(text for _, text in results) == ["duplicate"] * 5 + ["ok"]
    for r in receivers:
        await r.idle()
    assert seen.revisions() == [1]
    await stores[0].forget("shared")
    assert await stores[1].add("shared", 60) is True
    for s in stores:
        await s.aclose()


async def test_a_chunked_body_past_the_bound_is_refused_without_content_length(seen: Seen) -> None:
    receiver = WebhookReceiver(seen, hmac_key=KEY, reorder_delay=0, max_body=1000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b" " * 100

    async for http in serve(receiver):
        async with http.post("/hooks", data=chunks(), headers={"X-Signed-Payload": "AAAA"}) as resp:
            assert resp.status == 413
        # a small chunked body is read whole (read() may return it in pieces)
        body = delivery(1)

        async def small(whole: bytes = body) -> AsyncIterator[bytes]:
            for i in range(0, len(whole), 7):
                yield whole[i : i + 7]

        async with http.post("/hooks", data=small(), headers=signed(body)) as resp:
            assert resp.status == 200
    await receiver.idle()
    assert seen.revisions() == [1]
