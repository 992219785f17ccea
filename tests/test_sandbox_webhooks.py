"""The sandbox's webhooks, with raw aiohttp requests and a listener on loopback: the
subscription routes and their refusals, real signed deliveries (verified here with the
standard library's hmac and with cryptography), retries, replays, test events, the
delivery faults, expiry and renewal, the contract of every answer, and the process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tango_async.testing import EVENT_CATEGORIES, WEBHOOK_FAULTS, Sandbox, SandboxClock

from .processes import started_sandbox
from .sandbox14_support import (
    call,
    checker,
    eventually,
    key,
    listener,
    order,
    paths,
    session,
    spec,
)

KEY = base64.b64encode(b"sandbox-webhook-secret-0123456789").decode()
FAST: dict[str, Any] = {"webhook_retry_delays": (0.01, 0.01), "order_rate": None}


def frozen() -> SandboxClock:
    return SandboxClock(frozen=True, start=datetime(2025, 6, 1, 12, tzinfo=UTC))


def hmac_ok(body: bytes, signature: str, key_b64: str = KEY) -> bool:
    expected = hmac.new(base64.b64decode(key_b64), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64decode(signature), expected)


async def subscribe(http: Any, sb: Sandbox, url: str, **body: Any) -> str:
    body = {"url": url, "categories": ["REWARD", "ORDER"], **body}
    answer = await call(http, sb, "POST", "/webhooks", json=body)
    assert answer.status == 201, answer
    return str(answer.body["webhookId"])


# --- subscriptions ---------------------------------------------------------------------------


async def test_create_get_update_delete() -> None:
    clock = frozen()
    async with Sandbox(clock=clock, **FAST) as sb, session(sb) as http:
        body = {
            "url": "https://listener.example/hook",
            "headers": [{"name": "X-Api-Key", "value": "abc"}],
            "eventTypes": ["RewardStatus"],
            "payloadVerificationMethod": "HMAC",
            "hmacSharedSecretKey": KEY,
        }
        made = await call(http, sb, "POST", "/webhooks", json=body)
        assert made.status == 201
        webhook_id = made.body["webhookId"]
        assert uuid.UUID(webhook_id).version == 4
        assert made.body["expiresAt"] == "2025-07-01T12:00:00.000Z"  # 30 days by default
        got = await call(http, sb, "GET", f"/webhooks/{webhook_id}")
        assert got.status == 200
        assert got.body["url"] == body["url"] and got.body["headers"] == body["headers"]
        assert got.body["payloadVerificationMethod"] == "HMAC"
        assert got.body["createdAt"] == got.body["updatedAt"] == "2025-06-01T12:00:00.000Z"
        upper = await call(http, sb, "GET", f"/webhooks/{webhook_id.upper()}")
        assert upper.status == 200  # a UUID in capitals is the same UUID
        clock.advance(60)
        patched = await call(
            http,
            sb,
            "PATCH",
            f"/webhooks/{webhook_id}",
            json={"categories": ["ACCOUNT"], "url": "http://other.example/h"},
        )
        assert patched.status == 200
        assert patched.body["categories"] == ["ACCOUNT"]
        assert patched.body["eventTypes"] == ["RewardStatus"]
        assert patched.body["url"] == "http://other.example/h"
        assert patched.body["updatedAt"] == "2025-06-01T12:01:00.000Z"
        to_none = await call(
            http,
            sb,
            "PATCH",
            f"/webhooks/{webhook_id}",
            json={"payloadVerificationMethod": "NONE"},
        )
        assert to_none.body["payloadVerificationMethod"] == "NONE"
        assert list(sb.webhook_subscriptions) == [webhook_id]
        deleted = await call(http, sb, "DELETE", f"/webhooks/{webhook_id}")
        assert deleted.status == 200 and deleted.body is None
        for method in ("GET", "DELETE"):
            gone = await call(http, sb, method, f"/webhooks/{webhook_id}")
            assert gone.status == 404 and key(gone) == "404.030"
        bad = await call(http, sb, "GET", "/webhooks/not-a-uuid")
        assert bad.status == 400 and key(bad) == "400.030"
        unknown = await call(http, sb, "POST", f"/webhooks/{uuid.uuid4()}/renew")
        assert unknown.status == 404 and key(unknown) == "404.030"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"categories": ["REWARD"]}, {"url"}),
        ({"url": "ftp://x.example/", "categories": ["REWARD"]}, {"url"}),
        ({"url": "https:///nohost", "categories": ["REWARD"]}, {"url"}),
        ({"url": "https://x.example/a b", "categories": ["REWARD"]}, {"url"}),
        ({"url": 7, "categories": ["REWARD"]}, {"url"}),
        ({"url": "https://x.example/"}, {"eventTypes"}),
        ({"url": "https://x.example/", "categories": [], "eventTypes": []}, {"eventTypes"}),
        ({"url": "https://x.example/", "categories": ["SPORTS"]}, {"categories[0]"}),
        ({"url": "https://x.example/", "eventTypes": ["Weather"]}, {"eventTypes[0]"}),
        ({"url": "https://x.example/", "eventTypes": "RewardStatus"}, {"eventTypes"}),
        (
            {"url": "https://x.example/", "categories": ["ITEM"], "headers": [{"name": "A"}]},
            {"headers[0].value"},
        ),
        (
            {
                "url": "https://x.example/",
                "categories": ["ITEM"],
                "headers": [{"name": "Content-Type", "value": "x"}, {"name": "a b", "value": "x"}],
            },
            {"headers[0].name", "headers[1].name"},
        ),
        (
            {
                "url": "https://x.example/",
                "categories": ["ITEM"],
                "payloadVerificationMethod": "HMAC",
            },
            {"hmacSharedSecretKey"},
        ),
        (
            {
                "url": "https://x.example/",
                "categories": ["ITEM"],
                "hmacSharedSecretKey": "not base64!",
            },
            {"hmacSharedSecretKey"},
        ),
        (
            {
                "url": "https://x.example/",
                "categories": ["ITEM"],
                "payloadVerificationMethod": "X509",
            },
            {"signingCertificate"},
        ),
        (
            {"url": "https://x.example/", "categories": ["ITEM"], "signingCertificate": "bm9wZQ=="},
            {"signingCertificate"},
        ),
        (
            {
                "url": "https://x.example/",
                "categories": ["ITEM"],
                "payloadVerificationMethod": "RSA",
            },
            {"payloadVerificationMethod"},
        ),
    ],
)
async def test_create_refuses_bad_subscriptions(body: dict[str, Any], where: set[str]) -> None:
    async with Sandbox(**FAST) as sb, session(sb) as http:
        answer = await call(http, sb, "POST", "/webhooks", json=body)
        assert paths(answer) == where
        assert key(answer) in ("400.003", "400.004")
        assert sb.webhook_subscriptions == {}


async def test_malformed_bodies_and_patches() -> None:
    async with Sandbox(**FAST) as sb, session(sb) as http:
        assert key(await call(http, sb, "POST", "/webhooks", data=b"{")) == "400.001"
        webhook_id = await subscribe(http, sb, "https://x.example/")
        url = f"/webhooks/{webhook_id}"
        assert key(await call(http, sb, "PATCH", url, json=[1])) == "400.001"
        emptied = await call(http, sb, "PATCH", url, json={"categories": []})
        assert paths(emptied) == {"eventTypes"}  # nothing would be left to receive
        needs_key = await call(http, sb, "PATCH", url, json={"payloadVerificationMethod": "HMAC"})
        assert paths(needs_key) == {"hmacSharedSecretKey"}
        assert (await call(http, sb, "GET", url)).body["payloadVerificationMethod"] == "NONE"


async def test_list_with_cursors_and_filters() -> None:
    clock = frozen()
    async with Sandbox(clock=clock, **FAST) as sb, session(sb) as http:
        ids = []
        for i in range(5):
            ids.append(
                await subscribe(
                    http,
                    sb,
                    f"https://x.example/{i}",
                    categories=["ITEM"] if i % 2 else ["REWARD"],
                    headers=[{"name": "X-Team", "value": f"t{i}"}],
                )
            )
            clock.advance(3600)

        async def listing(**params: Any) -> dict[str, Any]:
            answer = await call(http, sb, "GET", "/webhooks", params=params)
            assert answer.status == 200, answer
            return dict(answer.body)

        first = await listing(maxResults=2)
        assert [w["webhookId"] for w in first["items"]] == ids[:2]
        assert (first["prevPageAvailable"], first["nextPageAvailable"]) == (False, True)
        assert first["prevCursor"] is None and first["numberOfElements"] == 2
        second = await listing(maxResults=2, nextCursor=first["nextCursor"])
        assert [w["webhookId"] for w in second["items"]] == ids[2:4]
        last = await listing(maxResults=2, nextCursor=second["nextCursor"])
        assert [w["webhookId"] for w in last["items"]] == ids[4:]
        assert last["nextCursor"] is None and last["nextPageAvailable"] is False
        back = await listing(maxResults=2, prevCursor=last["prevCursor"])
        assert back["items"] == second["items"]
        assert len((await listing())["items"]) == 5  # 10 by default
        assert [w["webhookId"] for w in (await listing(categories="ITEM"))["items"]] == [
            ids[1],
            ids[3],
        ]
        assert len((await listing(eventTypes="RewardStatus"))["items"]) == 3
        assert [w["webhookId"] for w in (await listing(url="https://x.example/2"))["items"]] == [
            ids[2]
        ]
        assert len((await listing(headerName="x-team"))["items"]) == 5
        assert [w["webhookId"] for w in (await listing(headerValue="t4"))["items"]] == [ids[4]]
        created = await listing(
            createdAtFrom="2025-06-01T13:00:00Z", createdAtTo="2025-06-01T14:00:00Z"
        )
        assert [w["webhookId"] for w in created["items"]] == ids[1:3]
        expiring = await listing(expiresAtFrom="2025-07-01T15:00:00Z")
        assert [w["webhookId"] for w in expiring["items"]] == ids[3:]
        for params in (
            {"maxResults": "201"},
            {"maxResults": "0"},
            {"maxResults": "x"},
            {"nextCursor": "garbage"},
            {"nextCursor": first["nextCursor"], "prevCursor": first["nextCursor"]},
            {"createdAtFrom": "soon"},
        ):
            refused = await call(http, sb, "GET", "/webhooks", params=params)
            assert refused.status == 400 and key(refused) == "400.002", params


async def test_event_types_listing() -> None:
    async with Sandbox(**FAST) as sb, session(sb) as http:
        everything = await call(http, sb, "GET", "/webhooks/eventtypes")
        assert everything.status == 200
        listed = {g["category"]: g["eventTypes"] for g in everything.body["items"]}
        assert listed == {c: list(t) for c, t in EVENT_CATEGORIES.items()}
        named = {t for types in listed.values() for t in types}
        assert named == set(schema_enum_of_test_names())  # the spec's test names, each once
        first = await call(http, sb, "GET", "/webhooks/eventtypes", params={"maxResults": 4})
        rest = await call(
            http, sb, "GET", "/webhooks/eventtypes", params={"nextCursor": first.body["nextCursor"]}
        )
        assert first.body["items"] + rest.body["items"] == everything.body["items"]
        reward = await call(http, sb, "GET", "/webhooks/eventtypes", params={"category": "REWARD"})
        assert reward.body["items"] == [{"category": "REWARD", "eventTypes": ["RewardStatus"]}]
        unknown = await call(http, sb, "GET", "/webhooks/eventtypes", params={"category": "X"})
        assert unknown.status == 404 and key(unknown) == "404.031"
        wrong = await call(
            http, sb, "GET", "/webhooks/eventtypes", params={"nextCursor": "dzox"}
        )  # a cursor of GET /webhooks
        assert wrong.status == 400
    assert named == {
        "RewardStatus",
        "LineItemDeliveryStatus",
        "ItemAvailability",
        "AccountStatus",
        "LowBalance",
        "Transaction",
        "CredentialStatus",
        "AsyncOrderStatus",
        "ExchangeRatesStatus",
        "ConnectivityTest",
    }


# --- deliveries -----------------------------------------------------------------------------


async def test_line_item_events_are_delivered_signed_in_order() -> None:
    clock = frozen()
    async with (
        Sandbox(clock=clock, pending_for=60, delivery_for=30, **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        webhook_id = await subscribe(
            http,
            sb,
            hook.url,
            hmacSharedSecretKey=KEY,
            headers=[{"name": "X-Api-Key", "value": "k-123"}],
        )
        narrow = await subscribe(
            http, sb, hook.url + "?only=reward", categories=[], eventTypes=["RewardStatus"]
        )
        made = await order(http, sb, externalRefID="ext-1")
        line = made["referenceLineItemID"]
        await sb.deliver_due()
        assert hook.received == []  # PENDING: nothing happened yet
        clock.advance(60)
        await sb.deliver_due()
        clock.advance(30)
        await sb.deliver_due()
        mine = [r for r in hook.received if r.json["revision"] and "X-Api-Key" in r.headers]
        envelopes = [r.json for r in mine]
        assert [(e["eventType"], e["eventData"]["status"]) for e in envelopes] == [
            ("RewardStatus", "COMPLETE"),
            ("LineItemDeliveryStatus", "PROCESSING"),
            ("LineItemDeliveryStatus", "DELIVERED"),
        ]
        assert [e["revision"] for e in envelopes] == [1, 2, 3]
        assert envelopes[0]["categories"] == ["REWARD"] and envelopes[1]["categories"] == ["ORDER"]
        assert envelopes[0]["eventOccurredAt"] == "2025-06-01T12:01:00.000Z"
        assert envelopes[2]["eventOccurredAt"] == "2025-06-01T12:01:30.000Z"
        data = envelopes[0]["eventData"]
        assert data == {
            "referenceLineItemId": line,
            "externalRefID": "ext-1",
            "action": "ISSUE",
            "status": "COMPLETE",
            "type": "gift_card",
        }
        assert len({e["eventId"] for e in envelopes}) == 3
        for r in mine:
            assert r.headers["Content-Type"] == "application/json"
            assert r.headers["X-Api-Key"] == "k-123"
            assert hmac_ok(r.body, r.headers["X-Signed-Payload"])
        # the RewardStatus-only subscription got only that, unsigned
        others = [r for r in hook.received if "X-Api-Key" not in r.headers]
        assert [r.json["eventType"] for r in others] == ["RewardStatus"]
        assert "X-Signed-Payload" not in others[0].headers
        recorded = [d for d in sb.webhook_deliveries if d.webhook_id == webhook_id]
        assert [d.status for d in recorded] == [200, 200, 200] and all(d.ok for d in recorded)
        assert recorded[0].json == envelopes[0] and recorded[0].url == hook.url
        assert "k-123" not in repr(recorded[0].headers)  # custom header values redacted
        assert sb.webhook_events(webhook_id) == envelopes
        assert narrow in sb.webhook_subscriptions


async def test_actions_publish_reward_status_events() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        await subscribe(http, sb, hook.url, categories=["REWARD"])
        line = (await order(http, sb))["referenceLineItemID"]
        base = f"/lineItems/{line}"
        await call(http, sb, "POST", base + "/freeze", json={"reasonCode": "FRAUD"})
        await call(http, sb, "POST", base + "/unfreeze", json={"reasonCode": "FRAUD"})
        answer = await call(
            http, sb, "POST", base + "/reissue", json={"reasonCode": "OTHER", "otherReason": "oops"}
        )
        new = answer.body["referenceLineItemID"]
        await call(http, sb, "POST", f"/lineItems/{new}/cancel", json={"reasonCode": "DUPLICATE"})
        await sb.deliver_due()
        got = [
            (
                e["eventData"]["referenceLineItemId"],
                e["eventData"]["action"],
                e["eventData"]["status"],
            )
            for e in hook.events()
        ]
        assert got == [
            (line, "ISSUE", "COMPLETE"),
            (line, "FREEZE", "FROZEN"),
            (line, "UNFREEZE", "UNFROZEN"),
            (line, "REISSUE", "CANCELLED"),
            (new, "ISSUE", "COMPLETE"),
            (new, "CANCEL", "CANCELLED"),
        ]
        reissue = hook.events()[3]["eventData"]
        assert reissue["newReferenceLineItemId"] == new and reissue["reason"] == "oops"
        assert reissue["reasonCode"] == "OTHER"


async def test_failed_orders_publish_failed() -> None:
    clock = frozen()
    async with (
        Sandbox(clock=clock, pending_for=5, **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        await subscribe(http, sb, hook.url)
        sb.fail_next()
        await order(http, sb)
        clock.advance(5)
        await sb.deliver_due()
        assert [(e["eventType"], e["eventData"]["status"]) for e in hook.events()] == [
            ("RewardStatus", "FAILED"),
            ("LineItemDeliveryStatus", "FAILED"),
        ]
        assert hook.events()[0]["eventData"]["action"] == "FAIL"


async def test_x509_deliveries_verify_with_the_sandbox_certificate() -> None:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        pem = sb.webhook_certificate
        cert = x509.load_pem_x509_certificate(pem.encode())
        der_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        as_der = await subscribe(http, sb, hook.url, signingCertificate=der_b64)
        as_pem = await subscribe(
            http,
            sb,
            hook.url,
            payloadVerificationMethod="X509",
            signingCertificate=base64.b64encode(pem.encode()).decode(),
        )
        assert sb.webhook_subscriptions[as_der]["payloadVerificationMethod"] == "X509"
        assert sb.webhook_subscriptions[as_pem]["signingCertificate"]
        await order(http, sb)
        await sb.deliver_due()
        assert len(hook.received) == 6  # COMPLETE, PROCESSING and DELIVERED, to each
        for r in hook.received:
            signature = base64.b64decode(r.headers["X-Signed-Payload"])
            cert.public_key().verify(signature, r.body, padding.PKCS1v15(), hashes.SHA256())
        tampered = hook.received[0].body + b" "
        with pytest.raises(InvalidSignature):
            cert.public_key().verify(
                base64.b64decode(hook.received[0].headers["X-Signed-Payload"]),
                tampered,
                padding.PKCS1v15(),
                hashes.SHA256(),
            )


async def test_non_2xx_answers_are_retried_then_given_up() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        webhook_id = await subscribe(http, sb, hook.url, categories=["REWARD"])
        hook.answer_with([500, 503])
        await order(http, sb)
        await sb.deliver_due()
        assert [d.status for d in sb.webhook_deliveries] == [500, 503, 200]
        assert [d.attempt for d in sb.webhook_deliveries] == [1, 2, 3]
        assert len({r.body for r in hook.received}) == 1  # the same body each time
        hook.answer_with([500, 500, 500])
        await order(http, sb)
        await sb.deliver_due()
        assert [d.status for d in sb.webhook_deliveries[3:]] == [500, 500, 500]  # given up
        assert len(sb.webhook_events(webhook_id)) == 2  # still listed, for a replay


async def test_an_unreachable_listener_is_retried() -> None:
    async with Sandbox(clock=frozen(), webhook_timeout=1.0, **FAST) as sb, session(sb) as http:
        async with listener() as hook:
            url = hook.url
        await subscribe(http, sb, url, categories=["REWARD"])  # nobody listens there now
        await order(http, sb)
        await sb.deliver_due()
        assert [(d.status, d.attempt) for d in sb.webhook_deliveries] == [(0, 1), (0, 2), (0, 3)]
        assert all(d.error for d in sb.webhook_deliveries)


async def test_replay_and_events_listing() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        webhook_id = await subscribe(
            http, sb, hook.url, categories=["REWARD"], hmacSharedSecretKey=KEY
        )
        for _ in range(6):
            await order(http, sb)
        await sb.deliver_due()
        assert [e["revision"] for e in hook.events()] == [1, 2, 3, 4, 5, 6]
        base = f"/webhooks/{webhook_id}"
        page = await call(http, sb, "GET", base + "/events", params={"maxResults": 4})
        assert [e["revision"] for e in page.body["items"]] == [1, 2, 3, 4]
        rest = await call(
            http, sb, "GET", base + "/events", params={"nextCursor": page.body["nextCursor"]}
        )
        assert [e["revision"] for e in rest.body["items"]] == [5, 6]
        ranged = await call(
            http, sb, "GET", base + "/events", params={"fromRevision": 2, "toRevision": 3}
        )
        assert [e["revision"] for e in ranged.body["items"]] == [2, 3]
        assert ranged.body["items"] == hook.events()[1:3]
        replay = await call(
            http, sb, "POST", base + "/replay", params={"fromRevision": 2, "toRevision": 4}
        )
        assert replay.status == 200 and replay.body is None
        await sb.deliver_due()
        again = hook.received[6:]
        assert [r.json["revision"] for r in again] == [2, 3, 4]
        assert [r.body for r in again] == [r.body for r in hook.received[1:4]]  # same bytes
        assert all(hmac_ok(r.body, r.headers["X-Signed-Payload"]) for r in again)
        assert all(d.replay for d in sb.webhook_deliveries[6:])
        open_ended = await call(http, sb, "POST", base + "/replay", params={"fromRevision": 6})
        assert open_ended.status == 200
        await sb.deliver_due()
        assert [r.json["revision"] for r in hook.received[9:]] == [6]
        for params in ({}, {"fromRevision": "x"}, {"fromRevision": 3, "toRevision": 2}):
            refused = await call(http, sb, "POST", base + "/replay", params=params)
            assert refused.status == 400 and key(refused) == "400.002", params
        bad = await call(http, sb, "GET", base + "/events", params={"toRevision": "-1"})
        assert bad.status == 400


async def test_test_events() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        webhook_id = await subscribe(
            http, sb, hook.url, categories=["ACCOUNT"], eventTypes=["ItemAvailability"]
        )
        base = f"/webhooks/{webhook_id}/tests"
        one = await call(http, sb, "POST", base + "/LowBalance")
        assert one.status == 200 and one.body is None
        ping = await call(http, sb, "POST", base + "/ConnectivityTest")  # always allowed
        assert ping.status == 200
        refused = await call(http, sb, "POST", base + "/RewardStatus")
        assert refused.status == 422 and key(refused) == "422.162"
        unknown = await call(http, sb, "POST", base + "/Weather")
        assert unknown.status == 400 and key(unknown) == "400.002"
        every = await call(http, sb, "POST", base)
        assert every.status == 200
        await sb.deliver_due()
        types = [e["eventType"] for e in hook.events()]
        assert types == [
            "LowBalance",
            "ConnectivityTest",
            "ConnectivityTest",
            "ItemAvailability",
            "Transaction",
            "LowBalance",
            "AccountStatus",
        ]
        low = hook.events()[0]
        assert low["categories"] == ["ACCOUNT"] and low["eventData"]["balanceThreshold"] == 100
        assert [e["revision"] for e in hook.events()] == list(range(1, 8))


def schema_enum_of_test_names() -> list[str]:
    op = spec()["paths"]["/webhooks/{webhookId}/tests/{testName}"]["post"]
    [param] = [p for p in op["parameters"] if p["name"] == "testName"]
    return list(param["schema"]["enum"])


# --- faults ---------------------------------------------------------------------------------


async def test_duplicate_and_out_of_order_faults() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        await subscribe(http, sb, hook.url)
        sb.inject_webhook("duplicate", event_type="RewardStatus")
        sb.inject_webhook("out-of-order", event_type="LineItemDeliveryStatus")
        await order(http, sb)  # pending_for 0: COMPLETE, PROCESSING, DELIVERED at once
        await sb.deliver_due()
        got = [(e["revision"], e["eventId"]) for e in hook.events()]
        revisions = [r for r, _ in got]
        assert revisions == [1, 1, 3, 2]  # a duplicate, then a later revision first
        assert got[0] == got[1]  # the same eventId twice
        assert [d.fault for d in sb.webhook_deliveries] == [
            "duplicate",
            "duplicate",
            None,
            "out-of-order",
        ]


async def test_an_out_of_order_event_alone_is_released_by_deliver_due() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        webhook_id = await subscribe(http, sb, hook.url, categories=["PLATFORM"])
        sb.inject_webhook("out-of-order", webhook_id=webhook_id)
        await call(http, sb, "POST", f"/webhooks/{webhook_id}/tests/ConnectivityTest")
        await sb.deliver_due()
        assert [e["revision"] for e in hook.events()] == [1]


async def test_signature_faults_and_lost_events() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        webhook_id = await subscribe(
            http, sb, hook.url, categories=["REWARD"], hmacSharedSecretKey=KEY
        )
        sb.inject_webhook("bad-signature")
        sb.inject_webhook("tampered-body")
        sb.inject_webhook("lost")
        for _ in range(4):
            await order(http, sb)
        await sb.deliver_due()
        bad, tampered, fine = hook.received
        assert not hmac_ok(bad.body, bad.headers["X-Signed-Payload"])
        assert bad.json["revision"] == 1  # the body itself is intact
        assert not hmac_ok(tampered.body, tampered.headers["X-Signed-Payload"])
        assert tampered.json["tampered"] is True and tampered.json["revision"] == 2
        assert hmac_ok(fine.body, fine.headers["X-Signed-Payload"])
        assert fine.json["revision"] == 4  # revision 3 was lost
        assert [e["revision"] for e in sb.webhook_events(webhook_id)] == [1, 2, 3, 4]
        await call(
            http,
            sb,
            "POST",
            f"/webhooks/{webhook_id}/replay",
            params={"fromRevision": 3, "toRevision": 3},
        )
        await sb.deliver_due()
        assert hook.received[-1].json["revision"] == 3
        assert hmac_ok(hook.received[-1].body, hook.received[-1].headers["X-Signed-Payload"])


async def test_bad_signature_without_verification_still_sends_a_header() -> None:
    async with (
        Sandbox(clock=frozen(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        await subscribe(http, sb, hook.url, categories=["REWARD"])
        sb.inject_webhook("bad-signature")
        await order(http, sb)
        await sb.deliver_due()
        assert hook.received[0].headers["X-Signed-Payload"]


def test_webhook_faults_are_listed_and_checked() -> None:
    assert set(WEBHOOK_FAULTS) == {
        "duplicate",
        "out-of-order",
        "bad-signature",
        "tampered-body",
        "lost",
    }
    sb = Sandbox()
    with pytest.raises(ValueError, match="unknown webhook fault"):
        sb.inject_webhook("meteor")
    with pytest.raises(ValueError, match="unknown event type"):
        sb.inject_webhook("lost", event_type="Weather")
    with pytest.raises(ValueError, match="times"):
        sb.inject_webhook("lost", times=0)
    sb.inject_webhook("lost")
    sb.clear_faults()
    assert sb._webhook_faults.scripted == []


# --- expiry and renewal -----------------------------------------------------------------------


async def test_expired_subscriptions_deliver_nothing_until_renewed() -> None:
    clock = frozen()
    async with (
        Sandbox(clock=clock, webhook_ttl=3600, **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        webhook_id = await subscribe(http, sb, hook.url, categories=["REWARD"])
        base = f"/webhooks/{webhook_id}"
        got = await call(http, sb, "GET", base)
        assert got.body["expiresAt"] == "2025-06-01T13:00:00.000Z"
        clock.advance(3599)
        await order(http, sb)
        clock.advance(1)  # expired now
        await order(http, sb)
        await sb.deliver_due()
        assert [e["revision"] for e in hook.events()] == [1]
        assert key(await call(http, sb, "POST", base + "/tests/ConnectivityTest")) == "422.161"
        assert key(await call(http, sb, "POST", base + "/replay", params={"fromRevision": 1})) == (
            "422.161"
        )
        assert (await call(http, sb, "GET", base)).status == 200  # still there, expired
        renewed = await call(http, sb, "POST", base + "/renew")
        assert renewed.status == 200
        assert renewed.body == {"webhookId": webhook_id, "expiresAt": "2025-06-01T14:00:00.000Z"}
        await order(http, sb)
        await sb.deliver_due()
        assert [e["revision"] for e in hook.events()] == [1, 2]


async def test_a_running_clock_delivers_without_deliver_due() -> None:
    async with (
        Sandbox(pending_for=0.05, **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        await subscribe(http, sb, hook.url, categories=["REWARD"])
        await order(http, sb)
        await eventually(lambda: len(hook.received) == 1)  # the background tick
        assert hook.events()[0]["eventData"]["status"] == "COMPLETE"


# --- the contract and the process ---------------------------------------------------------------


async def test_every_webhook_answer_meets_the_contract() -> None:
    clock = frozen()
    async with (
        Sandbox(clock=clock, webhook_ttl=60, contract=checker(), **FAST) as sb,
        session(sb) as http,
        listener() as hook,
    ):
        statuses = []

        async def hit(method: str, path: str, **kw: Any) -> Any:
            answer = await call(http, sb, method, path, **kw)
            statuses.append(answer.status)
            return answer.body

        made = await hit(
            "POST",
            "/webhooks",
            json={
                "url": hook.url,
                "headers": [{"name": "X-A", "value": "b"}],
                "categories": ["REWARD", "ORDER"],
                "eventTypes": ["LowBalance"],
                "payloadVerificationMethod": "HMAC",
                "hmacSharedSecretKey": KEY,
            },
        )
        wid = made["webhookId"]
        await hit("POST", "/webhooks", json={"url": "nope"})
        await hit("POST", "/webhooks", json={"url": hook.url, "categories": ["X"]})
        await order(http, sb)
        await hit("GET", "/webhooks", params={"maxResults": 1})
        await hit("GET", "/webhooks", params={"maxResults": 999})
        await hit("GET", "/webhooks/eventtypes", params={"maxResults": 2})
        await hit("GET", "/webhooks/eventtypes", params={"category": "NOPE"})
        await hit("GET", f"/webhooks/{wid}")
        await hit("GET", "/webhooks/bad-id")
        await hit("GET", f"/webhooks/{uuid.uuid4()}")
        await hit("PATCH", f"/webhooks/{wid}", json={"eventTypes": ["RewardStatus"]})
        await hit("PATCH", f"/webhooks/{wid}", json={"url": 1})
        await hit("GET", f"/webhooks/{wid}/events", params={"maxResults": 1})
        await hit("GET", f"/webhooks/{wid}/events", params={"fromRevision": "x"})
        await hit("POST", f"/webhooks/{wid}/tests")
        await hit("POST", f"/webhooks/{wid}/tests/LowBalance")
        await hit("POST", f"/webhooks/{wid}/tests/Weather")
        await hit("POST", f"/webhooks/{wid}/replay", params={"fromRevision": 1})
        await hit("POST", f"/webhooks/{wid}/replay")
        await sb.deliver_due()
        await hit("GET", f"/webhooks/{wid}/events", params={"maxResults": 200})
        clock.advance(61)
        await hit("POST", f"/webhooks/{wid}/tests/ConnectivityTest")
        await hit("POST", f"/webhooks/{wid}/renew")
        await hit("DELETE", f"/webhooks/{wid}")
        await hit("DELETE", f"/webhooks/{wid}")
    assert {200, 201, 400, 404, 422} <= set(statuses)
    assert [str(v) for v in sb.contract_violations if v.direction == "response"] == []
    requests = [str(v) for v in sb.contract_violations if v.direction == "request"]
    assert len(requests) == 1 and "url" in requests[0], requests  # PATCH {"url": 1}
    assert len(hook.received) >= 10


async def test_the_process_serves_webhooks(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    cert_file = tmp_path / "webhook-cert.pem"
    proc, _, env = await started_sandbox(
        "--order-rate",
        "0",
        "--webhook-ttl",
        "120",
        "--webhook-retry-delays",
        "0.01,0.01",
        "--webhook-timeout",
        "2",
        "--delivery-for",
        "0",
        "--webhook-certificate-file",
        str(cert_file),
        lines=5,
    )
    try:
        assert env["TANGO_WEBHOOK_CERT_FILE"] == str(cert_file)
        assert cert_file.read_text().startswith("-----BEGIN CERTIFICATE-----")

        class Remote:
            platform_name = env["TANGO_PLATFORM_NAME"]
            platform_key = env["TANGO_PLATFORM_KEY"]
            base_url = env["TANGO_BASE_URL"]

        remote: Any = Remote()
        async with session(remote) as http, listener() as hook:
            made = await call(
                http, remote, "POST", "/webhooks", json={"url": hook.url, "categories": ["REWARD"]}
            )
            assert made.status == 201
            got = await call(http, remote, "GET", f"/webhooks/{made.body['webhookId']}")
            expires, created = (
                datetime.fromisoformat(got.body[k].replace("Z", "+00:00"))
                for k in ("expiresAt", "createdAt")
            )
            assert (expires - created).total_seconds() == 120  # --webhook-ttl
            await order(http, remote)
            await eventually(lambda: len(hook.received) == 1, within=10)
            assert hook.events()[0]["eventData"]["status"] == "COMPLETE"
            line = hook.events()[0]["eventData"]["referenceLineItemId"]
            listed = await call(http, remote, "GET", "/lineItems")
            assert listed.body["lineItems"][0]["referenceLineItemID"] == line
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


async def test_no_reprs_show_the_hmac_key_or_header_values() -> None:
    async with Sandbox(**FAST) as sb, session(sb) as http, listener() as hook:
        webhook_id = await subscribe(
            http,
            sb,
            hook.url,
            categories=["REWARD"],
            hmacSharedSecretKey=KEY,
            headers=[{"name": "X-Api-Key", "value": "listener-secret-123"}],
        )
        await order(http, sb)
        await sb.deliver_due()
        texts = [
            repr(sb.requests),
            repr(sb.webhook_deliveries),
            repr(sb.webhook_deliveries[0].headers),
            repr(sb._webhooks.subscriptions[webhook_id]),
        ]
        assert sb.requests[0].json["hmacSharedSecretKey"] == KEY  # the record keeps it
        for text in texts:
            assert KEY not in text and "listener-secret-123" not in text
        assert "<redacted>" in texts[0]
