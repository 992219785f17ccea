"""Adversarial review of issue 14's SDK side: line items, orders.wait, the webhooks
resource, verify_webhook, the receiver and its stores, and bulk reconciliation.

Tests marked ``# BUG:`` assert the correct behaviour and fail on the reviewed commit;
the others are robustness checks that pass."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses

import tango_async as ta
from tango_async.webhooks import MemoryEventStore, WebhookReceiver

from .conftest import BASE

KEY = b"adversarial-test-key-0123456789a"
LI = "LI-123456-12345678-1"
WH = "0f8fad5b-d9cb-469f-a165-70867728950e"


def event_body(
    revision: int | None,
    *,
    line_item: str = "L1",
    status: str = "COMPLETE",
    event_type: str = "RewardStatus",
    event_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    data: dict[str, Any] = {"referenceLineItemId": line_item, "status": status}
    data.update(extra or {})
    env: dict[str, Any] = {
        "eventId": event_id or str(uuid.uuid4()),
        "eventType": event_type,
        "categories": ["Orders"],
        "eventData": data,
    }
    if revision is not None:
        env["revision"] = revision
    return json.dumps(env).encode()


def sign(body: bytes, key: bytes = KEY) -> dict[str, str]:
    return {
        "X-Signed-Payload": base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    }


class Calls:
    def __init__(self) -> None:
        self.events: list[ta.WebhookEvent] = []
        self.fail: set[int] = set()
        self.gate: asyncio.Event | None = None

    async def __call__(self, event: ta.WebhookEvent) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if event.revision in self.fail:
            self.fail.discard(event.revision)
            raise RuntimeError("callback broke")
        self.events.append(event)

    @property
    def revisions(self) -> list[int | None]:
        return [e.revision for e in self.events]


async def settle(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# --- verification -----------------------------------------------------------------------


def test_signature_checked_before_parsing_garbage_body() -> None:
    # A wrong signature on a body that is not even JSON: a verification error, never a
    # parse error (no parsing before verifying).
    with pytest.raises(ta.WebhookVerificationError) as info:
        ta.verify_webhook(b"\xff\xfe{not json", {"X-Signed-Payload": "AAAA"}, hmac_key=KEY)
    assert "signature" in info.value.reason


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Signed-Payload": ""},
        {"X-Signed-Payload": "   "},
        {"X-Signed-Payload": "not base64!!"},
        {"X-Signed-Payload": "ä" * 10},
        {"X-Signed-Payload": "A" * 5000},
        {"X-Signed-Payload": "\x00"},
    ],
)
def test_malformed_signature_headers_are_refused(headers: dict[str, str]) -> None:
    body = event_body(1)
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(body, headers, hmac_key=KEY)


def test_duplicate_signature_headers_differing_in_case_are_refused() -> None:
    body = event_body(1)
    good = sign(body)["X-Signed-Payload"]
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(
            body, {"X-Signed-Payload": good, "x-signed-payload": "AAAA"}, hmac_key=KEY
        )
    from multidict import CIMultiDict

    md = CIMultiDict([("x-signed-payload", "AAAA"), ("X-SIGNED-PAYLOAD", good)])
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(body, md, hmac_key=KEY)
    # lower-case alone is accepted (headers are case-insensitive)
    assert ta.verify_webhook(body, {"x-signed-payload": good}, hmac_key=KEY).revision == 1


def test_signature_of_another_body_or_key_is_refused() -> None:
    body = event_body(1)
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(body + b" ", sign(body), hmac_key=KEY)
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(body, sign(body, b"other-key-0123456789abcdef0123"), hmac_key=KEY)
    # the key as its base64 text verifies the same
    assert ta.verify_webhook(body, sign(body), hmac_key=base64.b64encode(KEY).decode())


@pytest.mark.parametrize("key", [b"", "", "   ", "===="])
def test_empty_keys_are_refused_not_accepting_everything(key: Any) -> None:
    body = event_body(1)
    empty_sig = base64.b64encode(hmac.new(b"", body, hashlib.sha256).digest()).decode()
    with pytest.raises(ta.ValidationError):
        ta.verify_webhook(body, {"X-Signed-Payload": empty_sig}, hmac_key=key)


def test_a_verified_body_with_a_hostile_event_id_is_refused() -> None:
    for event_id in ("x" * 257, "a\nb", "a\x1b[2Jb", "a\u2028b", ""):
        body = (
            event_body(1, event_id=event_id) if event_id else json.dumps({"eventId": ""}).encode()
        )
        with pytest.raises(ta.WebhookVerificationError):
            ta.verify_webhook(body, sign(body), hmac_key=KEY)


def test_deeply_nested_event_data_is_a_typed_error_or_kept() -> None:
    deep = (
        b'{"eventId":"e1","eventType":"RewardStatus","eventData":'
        + b"[" * 200_000
        + b"]" * 200_000
        + b"}"
    )
    with contextlib.suppress(ta.WebhookVerificationError):
        ta.parse_webhook(deep)
    deep2 = b'{"eventId":"e1","zzz":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with contextlib.suppress(ta.WebhookVerificationError):
        ta.parse_webhook(deep2)


@pytest.mark.parametrize(
    "body",
    [
        b'{"eventId":"e1","revision":true}',
        b'{"eventId":"e1","revision":1e400}',
        b'{"eventId":5}',
        b'{"eventId":"e1","categories":"Orders"}',
        b'{"eventId":"e1","category":[1]}',
        b'{"eventId":"e1","eventOccurredAt":"yesterday"}',
        b"[]",
        b"null",
        b'"\\ud800"',
        b'{"eventId":"\\ud800"}',
    ],
)
def test_hostile_envelopes_are_typed_errors(body: bytes) -> None:
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(body, sign(body), hmac_key=KEY)


def test_typed_event_data_of_the_wrong_shape_is_kept_raw() -> None:
    body = event_body(3, extra={"status": 5, "referenceLineItemId": ["x"]})
    event = ta.verify_webhook(body, sign(body), hmac_key=KEY)
    assert isinstance(event.event_data, dict)
    assert event.subject == "type:RewardStatus"


def test_str_body_is_a_typed_error() -> None:
    # Regression: verify_webhook / receive() with a str body (a framework's decoded text) raise a
    # bare TypeError (and parse_webhook("...") a TypeError from bytes()): user input
    # should get a TangoError (ValidationError / WebhookVerificationError).
    body = event_body(1)
    with pytest.raises(ta.TangoError):
        ta.verify_webhook(body.decode(), sign(body), hmac_key=KEY)  # type: ignore[arg-type]
    with pytest.raises(ta.TangoError):
        ta.parse_webhook(body.decode())  # type: ignore[arg-type]


def test_headers_none_or_raw_pairs_are_a_typed_error() -> None:
    # Regression: headers=None or ASGI-style raw header pairs give AttributeError
    # ('NoneType' / 'list' object has no attribute 'items') instead of a TangoError.
    body = event_body(1)
    with pytest.raises(ta.TangoError):
        ta.verify_webhook(body, None, hmac_key=KEY)  # type: ignore[arg-type]
    with pytest.raises(ta.TangoError):
        ta.verify_webhook(  # type: ignore[arg-type]
            body, [(b"x-signed-payload", sign(body)["X-Signed-Payload"].encode())], hmac_key=KEY
        )


def test_verifier_repr_and_errors_hold_no_key_or_signature() -> None:
    body = event_body(1)
    sig = sign(body)["X-Signed-Payload"]
    verifier = ta.WebhookVerifier(hmac_key=KEY)
    assert KEY.decode() not in repr(verifier)
    assert base64.b64encode(KEY).decode() not in repr(verifier)
    with pytest.raises(ta.WebhookVerificationError) as info:
        verifier.verify(body + b"x", {"X-Signed-Payload": sig})
    assert sig not in str(info.value) and "referenceLineItemId" not in str(info.value)


# --- the receiver -----------------------------------------------------------------------


async def test_close_with_pending_callbacks_forgets_their_ids_so_they_can_come_again() -> None:
    # Regression: tango_async/webhooks.py _hand_over / _drain: close() cancels callbacks still
    # running (and drops events still queued) but leaves their eventIds recorded in the
    # store. Tango got 200, so only a replay can bring them back, and the replay (or, with
    # a shared RedisEventStore, the next process) drops them as duplicates for 7 days:
    # events lost on every shutdown that outlasts `grace`.
    store = MemoryEventStore()
    calls = Calls()
    calls.gate = asyncio.Event()  # the callback never returns before close
    first = WebhookReceiver(calls, hmac_key=KEY, store=store, reorder_delay=0)
    running = event_body(1, line_item="A")
    queued = event_body(2, line_item="A")
    assert (await first.receive(running, sign(running)))[0] == 200
    assert (await first.receive(queued, sign(queued)))[0] == 200
    await settle()
    await first.close(grace=0.01)
    assert calls.events == []

    calls.gate = None
    second = WebhookReceiver(calls, hmac_key=KEY, store=store, reorder_delay=0)
    assert await second.receive(running, sign(running)) == (200, "ok")
    assert await second.receive(queued, sign(queued)) == (200, "ok")
    await second.idle()
    assert calls.revisions == [1, 2]
    await second.close()


async def test_a_failed_event_replayed_after_a_later_revision_of_its_subject_is_delivered() -> None:
    # Regression: tango_async/webhooks.py _hand_over: the docstring promises a failed callback is
    # forgotten "so a replay delivers it again", but once any later revision of the same
    # subject was handed over (e.g. a LineItemDeliveryStatus event of the same line item),
    # the replayed RewardStatus event is dropped as stale, and its eventId stays recorded:
    # the reward's status change never reaches the application.
    calls = Calls()
    calls.fail = {5}
    rx = WebhookReceiver(calls, hmac_key=KEY, reorder_delay=0)
    reward = event_body(5, line_item="L9", status="FAILED", event_type="RewardStatus")
    delivery = event_body(
        6, line_item="L9", status="DELIVERED", event_type="LineItemDeliveryStatus"
    )
    await rx.receive(reward, sign(reward))
    await rx.idle()
    await rx.receive(delivery, sign(delivery))
    await rx.idle()
    assert rx.stats.failed == 1 and calls.revisions == [6]
    assert await rx.receive(reward, sign(reward)) == (200, "ok")  # the replay
    await rx.idle()
    assert 5 in calls.revisions
    await rx.close()


async def test_events_arriving_while_a_callback_runs_are_held_for_the_reorder_delay() -> None:
    # Regression: tango_async/webhooks.py _drain: the reorder delay is slept only when a subject's
    # drain task starts; events that arrive while a callback of that subject runs are
    # handed over the moment it returns. Rev 9 arriving during rev 7's callback is handed
    # over at once, and rev 8 arriving a moment later (well within reorder_delay) is
    # dropped as stale: an event lost although it came within the window.
    calls = Calls()
    calls.gate = asyncio.Event()
    rx = WebhookReceiver(calls, hmac_key=KEY, reorder_delay=0.05)
    bodies = {r: event_body(r, line_item="L7") for r in (7, 8, 9)}
    await rx.receive(bodies[7], sign(bodies[7]))
    await asyncio.sleep(0.08)  # rev 7's hold is over; its callback is waiting on the gate
    await rx.receive(bodies[9], sign(bodies[9]))
    calls.gate.set()
    await settle()
    await rx.receive(bodies[8], sign(bodies[8]))  # 0 s after rev 9: within its window
    await rx.idle()
    assert rx.stats.stale == 0
    assert calls.revisions == [7, 8, 9]
    await rx.close()


async def test_busy_and_store_failure_answer_503_without_recording() -> None:
    class Broken(MemoryEventStore):
        fail = True

        async def add(self, event_id: str, ttl: float) -> bool:
            if self.fail:
                raise ta.TangoError("store down")
            return await super().add(event_id, ttl)

    store = Broken()
    calls = Calls()
    rx = WebhookReceiver(calls, hmac_key=KEY, store=store, reorder_delay=0, max_pending=1)
    body = event_body(1)
    assert (await rx.receive(body, sign(body)))[0] == 503
    store.fail = False
    calls.gate = asyncio.Event()
    assert (await rx.receive(body, sign(body)))[0] == 200
    other = event_body(2, line_item="other")
    assert (await rx.receive(other, sign(other)))[0] == 503  # busy: not recorded
    calls.gate.set()
    await rx.idle()
    assert (await rx.receive(other, sign(other)))[0] == 200
    await rx.idle()
    assert calls.revisions == [1, 2]
    await rx.close()


async def test_duplicate_deliveries_concurrently_reach_the_callback_once() -> None:
    calls = Calls()
    rx = WebhookReceiver(calls, hmac_key=KEY, reorder_delay=0)
    body = event_body(1)
    answers = await asyncio.gather(*(rx.receive(body, sign(body)) for _ in range(50)))
    await rx.idle()
    assert sorted(a[1] for a in answers).count("ok") == 1
    assert len(calls.events) == 1
    await rx.close()


async def test_bad_signature_is_not_recorded_so_the_real_delivery_is_taken() -> None:
    calls = Calls()
    store = MemoryEventStore()
    rx = WebhookReceiver(calls, hmac_key=KEY, store=store, reorder_delay=0)
    body = event_body(1, event_id="evt-1")
    assert (await rx.receive(body, {"X-Signed-Payload": "AAAA"}))[0] == 401
    forged = event_body(1, event_id="evt-1", status="FAILED")
    assert (await rx.receive(forged, sign(forged, b"attacker-key-0123456789abcdef")))[0] == 401
    assert len(store) == 0
    assert await rx.receive(body, sign(body)) == (200, "ok")
    await rx.idle()
    assert calls.events[0].event_data.status == "COMPLETE"  # type: ignore[union-attr]
    await rx.close()


async def test_redis_event_store_retry_after_a_lost_reply_does_not_drop_the_event() -> None:
    # Regression: tango_async/redis.py RedisEventStore.add: SET NX is retried by _call after a
    # timeout / connection error. When the first SET was applied and only its reply was
    # lost, the retry finds the key and answers "not new": the receiver answers 200
    # "duplicate" and the event is never handed to the callback (Tango will not deliver it
    # again). add() needs a token (SET NX with a unique value, then GET == token on retry)
    # or must fail (503) rather than retry a write whose outcome is unknown.
    import redis.asyncio as aioredis
    from redis.exceptions import TimeoutError as RedisTimeout

    from tango_async.redis import RedisEventStore

    class LossyRedis(aioredis.Redis):
        def __init__(self) -> None:
            super().__init__()
            self.keys_: dict[str, bytes] = {}
            self.lose_next_reply = True

        async def set(self, name: Any, value: Any, *args: Any, nx: bool = False, **kw: Any) -> Any:
            applied = not (nx and name in self.keys_)
            if applied:
                self.keys_[name] = value
            if self.lose_next_reply:
                self.lose_next_reply = False
                raise RedisTimeout("reply lost")
            return True if applied else None

        async def get(self, name: Any) -> Any:
            return self.keys_.get(name)

        async def delete(self, *names: Any) -> int:
            return sum(self.keys_.pop(n, None) is not None for n in names)

    store = RedisEventStore(LossyRedis(), unavailable_timeout=1.0)
    calls = Calls()
    rx = WebhookReceiver(calls, hmac_key=KEY, store=store, reorder_delay=0)
    body = event_body(1)
    status = await rx.receive(body, sign(body))
    await rx.idle()
    assert status == (200, "ok")
    assert len(calls.events) == 1
    await rx.close()


async def test_oversized_body_is_refused_over_http() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    calls = Calls()
    rx = WebhookReceiver(calls, hmac_key=KEY, reorder_delay=0, max_body=1000)
    async with TestClient(TestServer(rx.app(path="/hook"))) as http:
        big = event_body(1, extra={"pad": "x" * 5000})
        resp = await http.post("/hook", data=big, headers=sign(big))
        assert resp.status == 413
        ok = event_body(2)
        resp = await http.post("/hook", data=ok, headers=sign(ok))
        assert resp.status == 200
        await rx.idle()
    assert calls.revisions == [2]


# --- line items, orders.wait, webhooks resource (hostile answers) -----------------------

LI_URL = f"{BASE}/lineItems/{LI}"
W_URL = f"{BASE}/webhooks/{WH}"


def requests_to(m: aioresponses, method: str, url: str) -> int:
    return sum(
        len(cs)
        for (meth, u), cs in m.requests.items()
        if meth == method and str(u).split("?")[0] == url
    )


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"status": 504},
        {"status": 409},
        {"exception": ConnectionResetError("reset after sending")},
        {"exception": TimeoutError()},
    ],
)
@pytest.mark.parametrize("action", ["reissue", "cancel", "freeze", "unfreeze"])
async def test_money_actions_are_sent_once_whatever_fails(
    mocked_client: ta.TangoClient, action: str, failure: dict[str, Any]
) -> None:
    url = f"{LI_URL}/{action}"
    with aioresponses() as m:
        m.post(url, **failure)
        m.post(url, status=201, payload={"referenceOrderID": "RA1"})  # must never be reached
        call = getattr(mocked_client.line_items, action)
        with pytest.raises(ta.TangoError):
            await call(LI, reason_code="OTHER", other_reason="test")
        assert requests_to(m, "POST", url) == 1


@pytest.mark.parametrize(
    ("method", "url", "call"),
    [
        (
            "POST",
            f"{BASE}/webhooks",
            lambda c: c.webhooks.create("https://h.example/x", categories=["Orders"], hmac_key=KEY),
        ),
        ("DELETE", W_URL, lambda c: c.webhooks.delete(WH)),
        ("POST", f"{W_URL}/replay", lambda c: c.webhooks.replay(WH, from_revision=1)),
        ("POST", f"{W_URL}/tests", lambda c: c.webhooks.test(WH)),
    ],
)
async def test_webhook_actions_are_sent_once_after_a_possible_delivery(
    mocked_client: ta.TangoClient, method: str, url: str, call: Any
) -> None:
    with aioresponses() as m:
        m.add(url, method, exception=ConnectionResetError("reset"))
        m.add(url, method, status=201, payload={"webhookId": WH})
        with pytest.raises(ta.APIConnectionError) as info:
            await call(mocked_client)
        assert info.value.maybe_sent
        assert requests_to(m, method, url) == 1


async def test_a_429_on_reissue_is_retried_and_spends_once(mocked_client: ta.TangoClient) -> None:
    url = f"{LI_URL}/reissue"
    with aioresponses() as m:
        m.post(url, status=429, headers={"Retry-After": "0"})
        m.post(url, status=201, payload={"referenceOrderID": "RA1", "status": "COMPLETE"})
        new = await mocked_client.line_items.reissue(LI, reason_code="RECIPIENT")
        assert new.reference_order_id == "RA1"
        assert requests_to(m, "POST", url) == 2


def test_reissued_line_item_repr_hides_redemption_instructions() -> None:
    # Regression: tango_async/types/line_items.py ReissuedLineItem adds a top-level
    # ``redemption_instructions`` (Tango copies the reward's there) without the masking
    # Reward applies to the same text: repr / logging of a reissue's result prints the
    # redemption link or code in full.
    import msgspec

    from tango_async.types.line_items import ReissuedLineItem

    new = msgspec.json.decode(
        b'{"referenceOrderID":"RA1","redemptionInstructions":"Redeem https://r.example/SECRETLINK",'
        b'"reward":{"credentialList":[{"label":"Code","value":"SECRETCODE"}],'
        b'"redemptionInstructions":"Redeem https://r.example/SECRETLINK"}}',
        type=ReissuedLineItem,
    )
    assert "SECRETCODE" not in repr(new)
    assert "SECRETLINK" not in repr(new)


async def test_line_item_repr_and_decode_errors_hide_codes(mocked_client: ta.TangoClient) -> None:
    secret = "GIFT-CODE-SECRET-0001"
    item = {
        "referenceLineItemID": LI,
        "status": "COMPLETE",
        "reward": {
            "credentials": {"Code": secret},
            "credentialList": [{"label": "Code", "value": secret, "type": "text"}],
            "redemptionInstructions": f"use {secret}",
        },
        "redemptionHistory": [{"referenceLineItemID": "x", "reward": {"credentials": secret}}],
    }
    with aioresponses() as m:
        m.get(LI_URL, payload=item)
        got = await mocked_client.line_items.get(LI)
        assert secret not in repr(got) and secret not in str(got)
        bad = dict(item, canCancel="yes")  # the wrong type next to the code
        m.get(LI_URL, payload=bad)
        with pytest.raises(ta.APIResponseValidationError) as info:
            await mocked_client.line_items.get(LI)
        assert secret not in str(info.value) and secret not in repr(info.value)
        m.get(f"{LI_URL}/embeddedUrl", payload={"url": 5, "x": f"https://e/{secret}"})
        with pytest.raises(ta.APIResponseValidationError) as info:
            await mocked_client.line_items.embedded_url(LI)
        assert secret not in str(info.value) and secret not in repr(info.value)


async def test_wait_does_not_report_another_order_as_final(mocked_client: ta.TangoClient) -> None:
    # Regression: tango_async/resources/_base.py _wait_final (and orders.get): the answer's
    # referenceOrderID is never compared with the one waited for; a server (or a caching
    # proxy) answering with another, COMPLETE order makes orders.wait() report the order
    # final and delivered. Reconciler._check does compare; wait() should too (a typed
    # APIResponseValidationError, or keep waiting).
    with aioresponses() as m:
        m.get(
            f"{BASE}/orders/RA-WAITED",
            payload={"referenceOrderID": "RA-OTHER", "status": "COMPLETE"},
        )
        with pytest.raises(ta.TangoError):
            await mocked_client.orders.wait("RA-WAITED", timeout=0, poll=0.001)


async def test_wait_with_hostile_statuses_ends_with_a_typed_timeout(
    mocked_client: ta.TangoClient,
) -> None:
    for s in ["complete", "COMPLETE ", "\x1b[2JCOMPLETE", "PENDING", "x" * 10_000, None]:
        with aioresponses() as m:
            m.get(LI_URL, payload={"referenceLineItemID": LI, "status": s}, repeat=True)
            with pytest.raises(ta.WaitTimeoutError) as info:
                await mocked_client.line_items.wait(LI, timeout=0.01, poll=0.001, max_poll=0.002)
            assert info.value.status == s
    with aioresponses() as m:
        m.get(LI_URL, payload={"referenceLineItemID": LI, "status": 5})
        with pytest.raises(ta.APIResponseValidationError):
            await mocked_client.line_items.wait(LI, timeout=1, poll=0.001)


async def test_wait_remembers_a_bounded_number_of_unknown_statuses(
    mocked_client: ta.TangoClient,
) -> None:
    # Regression: tango_async/resources/_base.py _wait_final adds every undocumented status
    # to Resource._unknown_statuses for the client's lifetime, unbounded: a server
    # answering a new status on each poll grows the client's memory (and the log) without
    # limit over a long wait.
    with aioresponses() as m:
        for i in range(300):
            m.get(LI_URL, payload={"referenceLineItemID": LI, "status": f"S{i}-" + "x" * 1000})
        # (the 300 answers run out before the timeout on a fast machine: either ends it)
        with pytest.raises((ta.WaitTimeoutError, ta.APIConnectionError)):
            await mocked_client.line_items.wait(LI, timeout=10, poll=0.0001, max_poll=0.0001)
    assert len(mocked_client.line_items._unknown_statuses) <= 100


async def test_line_item_list_cursor_loop_ends(mocked_client: ta.TangoClient) -> None:
    lists = re.compile(re.escape(f"{BASE}/lineItems") + r"\?.*")
    page = {
        "lineItems": [{"referenceLineItemID": "L1"}],
        "keysetPage": {"nextPageKeys": ["k1", "k2"]},
    }
    with aioresponses() as m:
        m.get(lists, payload=page, repeat=True)
        got = [li async for li in mocked_client.line_items.list(elements_per_block=1)]
    assert len(got) == 2  # the first page, then the page at the cursor it gave again


async def test_webhook_event_list_cursor_loop_and_hostile_items_end(
    mocked_client: ta.TangoClient,
) -> None:
    events = re.compile(re.escape(f"{W_URL}/events") + r"(\?.*)?")
    ev = {"eventId": "e1", "revision": 1, "eventType": "RewardStatus", "eventData": {}}
    with aioresponses() as m:
        m.get(
            events,
            payload={"items": [ev], "nextCursor": "c", "nextPageAvailable": True},
            repeat=True,
        )
        got = [e async for e in mocked_client.webhooks.events(WH)]
        assert len(got) == 2
    with aioresponses() as m:
        m.get(events, payload={"items": [ev | {"eventId": "y" * 300}], "nextPageAvailable": False})
        with pytest.raises(ta.APIResponseValidationError):
            [e async for e in mocked_client.webhooks.events(WH)]
    with aioresponses() as m:
        m.get(events, payload={"items": [[]], "nextPageAvailable": False})
        with pytest.raises(ta.APIResponseValidationError):
            [e async for e in mocked_client.webhooks.events(WH)]


class _WallClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.wall = datetime(2030, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.wall + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


async def test_keep_renewed_does_not_renew_in_a_tight_loop() -> None:
    # Regression: tango_async/resources/webhooks.py WebhookRenewer._run: when a renewal moves the
    # expiry forward but still leaves less than ``margin`` (a server granting shorter
    # renewals than the margin, or clock skew), the loop renews again at once, without
    # sleeping: POST /renew as fast as the network allows, for as long as the block runs.
    clock = _WallClock()
    renewals = 0

    def renew(url: Any, **kw: Any) -> CallbackResult:
        nonlocal renewals
        renewals += 1
        if renewals > 5:  # end the renewer (a 404) so the test stays short either way
            return CallbackResult(status=404, payload={"httpCode": 404, "errors": []})
        expiry = clock.now() + timedelta(hours=1, seconds=renewals)
        return CallbackResult(payload={"webhookId": WH, "expiresAt": expiry.isoformat()})

    async with ta.TangoClient("platform", "key-12345", base_url=BASE, clock=clock) as client:
        with aioresponses() as m:
            m.get(W_URL, payload={"webhookId": WH, "expiresAt": "2030-01-01T01:00:00Z"})
            m.post(f"{W_URL}/renew", callback=renew, repeat=True)
            with pytest.raises(ta.NotFoundError):
                async with client.webhooks.keep_renewed(
                    WH, margin=86_400, retry_every=60
                ) as renewer:
                    for _ in range(10_000):
                        if renewer._error is not None:
                            break
                        await asyncio.sleep(0)
    # at most one renewal per retry_every of the client's clock (plus the first)
    renewed = renewals - 1
    assert renewed <= clock.t / 60 + 2, (renewed, clock.t)


# --- bulk reconciliation ----------------------------------------------------------------

from tango_async.bulk import Journal, JournalDamagedError, Reconciler  # noqa: E402
from tango_async.testing import Sandbox, SandboxClock  # noqa: E402

from .conftest import FAST_RETRY  # noqa: E402
from .reconcile_support import reward_status, simple_job  # noqa: E402


@pytest.fixture
async def sandbox() -> Any:
    async with Sandbox(order_rate=None, pending_for=60, clock=SandboxClock(frozen=True)) as sb:
        yield sb


@pytest.fixture
async def sclient(sandbox: Sandbox) -> Any:
    async with sandbox.client(retry=FAST_RETRY) as c:
        yield c


async def _job(sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path, n: int = 1) -> Path:
    path = tmp_path / "job.journal"
    await simple_job(sclient, path, n)
    sandbox.clock.advance(61)  # every order COMPLETE
    return path


def _first_row(path: Path) -> Any:
    with Journal.open(path) as j:
        return next(iter(j.rows()))


async def test_reconcile_does_not_call_a_reissued_row_failed_and_refunded(
    sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path
) -> None:
    # Regression: tango_async/bulk/_reconcile.py _classify (and _NOT_DELIVERED): a line item that
    # was reissued ends CANCELLED (orders.get of the original order says CANCELLED, and
    # the RewardStatus event says action REISSUE, status CANCELLED, with
    # newReferenceLineItemId). reconcile reports the row "failed (not delivered;
    # refunded)" and the summary says "to send those rewards again, submit them with a new
    # --run-label": doing so pays the recipient twice (the reissue already charged and
    # sent a new reward). A reissued row must not be "failed"; it should follow the new
    # line item (or be needs_action "reissued to ...: do not send again").
    path = await _job(sandbox, sclient, tmp_path)
    row = _first_row(path)
    order = await sclient.orders.get(row.reference_order_id)
    line_item = str(order.reference_line_item_id)
    await sclient.line_items.reissue(line_item, reason_code="RECIPIENT")
    async with await Reconciler.open(path, sclient) as rec:
        report = await rec.run()
        await rec.apply(
            reward_status(
                "CANCELLED", line_item=line_item, ref=row.external_ref_id, action="REISSUE"
            )
        )
        report = await rec.report()
    assert report.rows[0].category != "failed", report.rows[0]
    assert "submit them with a new --run-label" not in report.summary()


async def test_reconcile_records_events_and_polls_concurrently_without_loss(
    sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path
) -> None:
    path = await _job(sandbox, sclient, tmp_path, n=6)
    with Journal.open(path) as j:
        rows = list(j.rows())
    # a webhook handler with its own Journal handle, writing while the run polls
    other = Journal.open(path)
    try:
        hook = Reconciler(other)
        poll = await Reconciler.open(path, sclient, concurrency=4)
        events = [
            reward_status("COMPLETE", ref=r.external_ref_id, event_id=f"e{r.row}", revision=r.row)
            for r in rows
        ]
        results = await asyncio.gather(poll.run(), *(hook.apply(e) for e in events))
        await hook.close()
        await poll.close()
    finally:
        other.close()
    report = results[0]
    with Journal.open(path) as j:  # not damaged, every row recorded once
        records = j.reconciliation()
    assert sorted(records) == [r.row for r in rows]
    assert {rec.status for rec in records.values()} == {"COMPLETE"}
    async with await Reconciler.open(path) as again:
        assert all(r.category == "delivered" for r in (await again.report()).rows)
    assert report.counts["delivered"] == 6


async def test_reconcile_cancelled_mid_run_keeps_the_journal_sound(
    sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path
) -> None:
    path = await _job(sandbox, sclient, tmp_path, n=8)
    rec = await Reconciler.open(path, sclient, concurrency=2)
    seen = 0

    def progress(p: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == 3:
            task.cancel()

    task = asyncio.ensure_future(rec.run(progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await task
    await rec.close()
    with Journal.open(path) as j:  # opens: not damaged
        done = len(j.reconciliation())
    assert 1 <= done <= 8
    async with await Reconciler.open(path, sclient) as again:
        report = await again.run()
    assert report.counts["delivered"] == 8
    assert report.looked_up == 8 - done  # final rows are not looked up again


async def test_an_edited_reconciliation_record_is_damage(
    sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path
) -> None:
    import sqlite3

    path = await _job(sandbox, sclient, tmp_path)
    async with await Reconciler.open(path, sclient) as rec:
        await rec.run()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE reconciled SET status = 'FAILED'")
    conn.commit()
    conn.close()
    with pytest.raises(JournalDamagedError):
        Journal.open(path)


async def test_hostile_events_are_typed_or_ignored(
    sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path
) -> None:
    path = await _job(sandbox, sclient, tmp_path)
    row = _first_row(path)
    async with await Reconciler.open(path) as rec:
        odd: list[Any] = [
            None,
            5,
            {"eventType": "RewardStatus", "eventData": None},
            {"eventType": "RewardStatus", "eventData": {"status": ["x"]}},
            {"eventType": ["RewardStatus"], "eventData": {}},
            {"eventType": "RewardStatus", "eventData": {"status": "COMPLETE", "externalRefID": 5}},
            reward_status("x" * 65, ref=row.external_ref_id),
            reward_status("COMPLETE", ref="nope"),
        ]
        for e in odd:
            result = await rec.apply(e)
            assert result.outcome in ("ignored", "unmatched")
        long_id = reward_status("COMPLETE", ref=row.external_ref_id, event_id="e" * 10_000)
        assert (await rec.apply(long_id)).outcome == "applied"


async def test_an_event_with_a_huge_revision_is_recorded(
    sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path
) -> None:
    # Regression: tango_async/bulk/_reconcile.py Reconciler._apply passes any int revision
    # on; parse_webhook accepts revisions past 2**63 and record_status then raises
    # JournalError. From a receiver's callback that is a failure on every delivery and
    # replay: the row's event can never be recorded. Out-of-range revisions should be
    # dropped (None) as oversized event IDs are.
    path = await _job(sandbox, sclient, tmp_path)
    row = _first_row(path)
    body = json.dumps(
        {
            "eventId": "big-rev",
            "revision": 2**70,
            "eventType": "RewardStatus",
            "eventData": {"externalRefID": row.external_ref_id, "status": "COMPLETE"},
        }
    ).encode()
    event = ta.parse_webhook(body)
    async with await Reconciler.open(path) as rec:
        assert (await rec.apply(event)).outcome == "applied"


async def test_an_event_dated_in_the_future_does_not_freeze_the_row(
    sandbox: Sandbox, sclient: ta.TangoClient, tmp_path: Path
) -> None:
    # Regression: tango_async/bulk/_journal.py _supersedes orders a poll and a webhook by
    # as_of, and the webhook's as_of is its eventOccurredAt, not clamped to when it was
    # seen. An event dated ahead (server clock skew, a bad timestamp) makes every later
    # lookup "stale": a later cancellation seen by `reconcile --recheck` is never recorded.
    path = await _job(sandbox, sclient, tmp_path)
    row = _first_row(path)
    future = datetime.now(UTC) + timedelta(days=365)
    order = await sclient.orders.get(row.reference_order_id)
    async with await Reconciler.open(path, sclient) as rec:
        await rec.apply(reward_status("COMPLETE", ref=row.external_ref_id, at=future))
        await sclient.line_items.cancel(str(order.reference_line_item_id), reason_code="FRAUD")
        assert (await sclient.orders.get(row.reference_order_id)).status == "CANCELLED"
        report = await rec.run(recheck=True)
    assert report.rows[0].status == "CANCELLED", report.rows[0]
