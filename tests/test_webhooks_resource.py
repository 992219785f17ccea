"""client.webhooks with aioresponses: every operation's request, its validation before
sending, cursor paging, what is retried, and keep_renewed."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

import tango_async as ta

from .conftest import BASE

WID = "0f8fad5b-d9cb-469f-a165-70867728950e"
W_URL = f"{BASE}/webhooks/{WID}"
KEY = base64.b64encode(b"k" * 32).decode()


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return [
        c
        for (meth, u), cs in m.requests.items()
        if meth == method and str(u).split("?")[0] == url
        for c in cs
    ]


async def test_create_sends_the_documented_body_and_is_not_retried(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(
            f"{BASE}/webhooks",
            status=201,
            payload={"webhookId": WID, "expiresAt": "2030-01-01T00:00:00Z"},
        )
        made = await mocked_client.webhooks.create(
            "https://hooks.example.com/tango",
            event_types=[ta.WebhookEventType.REWARD_STATUS, "LineItemDeliveryStatus"],
            headers={"Authorization": "Bearer listener-secret"},
            hmac_key=b"k" * 32,
        )
        body = json.loads(calls(m, "POST", f"{BASE}/webhooks")[0].kwargs["data"])
        m.post(f"{BASE}/webhooks", status=502)
        with pytest.raises(ta.ServerError):
            await mocked_client.webhooks.create(
                "https://h.example/x", categories=["Orders"], hmac_key=KEY
            )
        assert len(calls(m, "POST", f"{BASE}/webhooks")) == 2  # the 502 was not retried
    assert made.webhook_id == WID and made.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert body == {
        "url": "https://hooks.example.com/tango",
        "headers": [{"name": "Authorization", "value": "Bearer listener-secret"}],
        "eventTypes": ["RewardStatus", "LineItemDeliveryStatus"],
        "hmacSharedSecretKey": KEY,
        "payloadVerificationMethod": "HMAC",
    }


async def test_create_with_a_certificate_registers_base64_der(
    mocked_client: ta.TangoClient,
) -> None:
    der = b"\x30\x82\x01\x0a" + b"\x01" * 20
    pem = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(der).decode()
        + "\n-----END CERTIFICATE-----\n"
    )
    with aioresponses() as m:
        m.post(f"{BASE}/webhooks", status=201, payload={"webhookId": WID}, repeat=True)
        await mocked_client.webhooks.create(
            "https://h.example/x", categories=["c"], certificate=pem
        )
        await mocked_client.webhooks.create(
            "https://h.example/x", categories=["c"], certificate=der
        )
        sent = [json.loads(c.kwargs["data"]) for c in calls(m, "POST", f"{BASE}/webhooks")]
    for body in sent:
        assert body["payloadVerificationMethod"] == "X509"
        assert body["signingCertificate"] == base64.b64encode(der).decode()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"url": "ftp://h.example/x", "categories": ["c"], "hmac_key": KEY}, "url"),
        ({"url": "/relative", "categories": ["c"], "hmac_key": KEY}, "url"),
        ({"url": "https://h.example/\nx", "categories": ["c"], "hmac_key": KEY}, "url"),
        ({"url": "https://h.example:99999/", "categories": ["c"], "hmac_key": KEY}, "url"),
        ({"url": "https://h.example/x", "hmac_key": KEY}, "event_types"),
        ({"url": "https://h.example/x", "categories": "Orders", "hmac_key": KEY}, "categories"),
        ({"url": "https://h.example/x", "categories": ["c"]}, "verification"),
        ({"url": "https://h.example/x", "categories": ["c"], "hmac_key": "short"}, "hmac_key"),
        ({"url": "https://h.example/x", "categories": ["c"], "hmac_key": b"tooshort"}, "hmac_key"),
        ({"url": "https://h.example/x", "categories": ["c"], "verification": "HMAC"}, "hmac_key"),
        (
            {"url": "https://h.example/x", "categories": ["c"], "verification": "X509"},
            "certificate",
        ),
        (
            {
                "url": "https://h.example/x",
                "categories": ["c"],
                "verification": "NONE",
                "hmac_key": KEY,
            },
            "verification",
        ),
        (
            {"url": "https://h.example/x", "categories": ["c"], "verification": "RSA"},
            "verification",
        ),
        (
            {
                "url": "https://h.example/x",
                "categories": ["c"],
                "hmac_key": KEY,
                "headers": {"Bad Name": "v"},
            },
            "headers",
        ),
        (
            {
                "url": "https://h.example/x",
                "categories": ["c"],
                "hmac_key": KEY,
                "headers": {"X-A": "a\r\nB: c"},
            },
            "headers.X-A",
        ),
        (
            {
                "url": "https://h.example/x",
                "categories": ["c"],
                "hmac_key": KEY,
                "headers": {"X-Signed-Payload": "v"},
            },
            "headers.X-Signed-Payload",
        ),
        (
            {"url": "https://h.example/x", "categories": ["c"], "certificate": "-----BEGIN x"},
            "certificate",
        ),
    ],
)
async def test_create_refuses_bad_subscriptions_before_sending(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    url = kwargs.pop("url")
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.webhooks.create(url, **kwargs)
    assert info.value.field == field and not m.requests
    assert "listener-secret" not in str(info.value)


async def test_unsigned_needs_saying_so(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/webhooks", status=201, payload={"webhookId": WID})
        await mocked_client.webhooks.create(
            "http://h.example/x", categories=["c"], verification="NONE"
        )
        body = json.loads(calls(m, "POST", f"{BASE}/webhooks")[0].kwargs["data"])
    assert body["payloadVerificationMethod"] == "NONE" and "hmacSharedSecretKey" not in body


async def test_get_update_delete_renew_replay_test(mocked_client: ta.TangoClient) -> None:
    hook = {
        "webhookId": WID,
        "url": "https://h.example/x",
        "hmacSharedSecretKey": KEY,
        "expiresAt": "2030-01-01T00:00:00Z",
    }
    with aioresponses() as m:
        m.get(W_URL, payload=hook)
        m.patch(W_URL, status=500)
        m.patch(W_URL, payload=hook | {"url": "https://h.example/y"})
        m.delete(W_URL, status=200)
        m.post(f"{W_URL}/renew", status=503)
        m.post(f"{W_URL}/renew", payload={"webhookId": WID, "expiresAt": "2030-02-01T00:00:00Z"})
        m.post(re.compile(re.escape(f"{W_URL}/replay") + r"\?.*"), status=200)
        m.post(f"{W_URL}/tests", status=200)
        m.post(f"{W_URL}/tests/ConnectivityTest", status=200)
        got = await mocked_client.webhooks.get(WID.upper())  # UUIDs are case-insensitive
        updated = await mocked_client.webhooks.update(WID, url="https://h.example/y")
        await mocked_client.webhooks.delete(WID)
        renewed = await mocked_client.webhooks.renew(WID)
        await mocked_client.webhooks.replay(WID, from_revision=3, to_revision=9)
        await mocked_client.webhooks.test(WID)
        await mocked_client.webhooks.test(WID, ta.WebhookEventType.CONNECTIVITY_TEST)
        replay = next(u for (meth, u) in m.requests if str(u).startswith(f"{W_URL}/replay"))
        assert len(calls(m, "PATCH", W_URL)) == 2  # PATCH is retried
        assert len(calls(m, "POST", f"{W_URL}/renew")) == 2  # renew too
    assert got.url == "https://h.example/x" and KEY not in repr(got)
    assert updated.url == "https://h.example/y"
    assert renewed.expires_at == datetime(2030, 2, 1, tzinfo=UTC)
    assert URL(str(replay)).query == {"fromRevision": "3", "toRevision": "9"}


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.get("not-a-uuid"),
        lambda w: w.get("../../orders"),
        lambda w: w.delete(""),
        lambda w: w.update(WID),
        lambda w: w.replay(WID, from_revision=-1),
        lambda w: w.replay(WID, from_revision=5, to_revision=2),
        lambda w: w.test(WID, "Nope"),
    ],
)
async def test_bad_arguments_send_nothing(mocked_client: ta.TangoClient, call: Any) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError):
        await call(mocked_client.webhooks)
    assert not m.requests


async def test_list_and_events_follow_cursors(mocked_client: ta.TangoClient) -> None:
    lists = re.compile(re.escape(f"{BASE}/webhooks") + r"\?.*")
    events = re.compile(re.escape(f"{W_URL}/events") + r"\?.*")
    event = {
        "eventId": "e1",
        "revision": 1,
        "eventType": "RewardStatus",
        "eventData": {"referenceLineItemId": "L1"},
    }
    with aioresponses() as m:
        m.get(
            lists,
            payload={"items": [{"webhookId": WID}], "nextCursor": "c2", "nextPageAvailable": True},
        )
        m.get(lists, payload={"items": [{"webhookId": "w2"}], "nextPageAvailable": False})
        m.get(events, payload={"items": [event], "nextCursor": "n", "nextPageAvailable": True})
        m.get(
            events,
            payload={
                "items": [event | {"eventId": "e2", "revision": 2}],
                "nextPageAvailable": False,
            },
        )
        hooks = [
            h.webhook_id
            async for h in mocked_client.webhooks.list(
                url="https://h.example/x", categories=["Orders"], max_results=1
            )
        ]
        got = [e async for e in mocked_client.webhooks.events(WID, from_revision=1)]
        urls = [URL(str(u)) for (meth, u) in m.requests]
    assert hooks == [WID, "w2"]
    assert [e.event_id for e in got] == ["e1", "e2"]
    assert isinstance(got[0].event_data, ta.RewardStatusEventData)
    assert urls[0].query["url"] == "https://h.example/x" and urls[0].query["maxResults"] == "1"
    assert urls[1].query["nextCursor"] == "c2"
    assert urls[2].query["fromRevision"] == "1"


async def test_an_unparseable_listed_event_is_a_response_error(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(
            re.compile(re.escape(f"{W_URL}/events") + r".*"), payload={"items": [{"revision": 1}]}
        )
        with pytest.raises(ta.APIResponseValidationError, match="does not parse"):
            [e async for e in mocked_client.webhooks.events(WID)]


async def test_event_types_walks_every_page(mocked_client: ta.TangoClient) -> None:
    pattern = re.compile(re.escape(f"{BASE}/webhooks/eventtypes") + r".*")
    with aioresponses() as m:
        m.get(
            pattern,
            payload={
                "items": [{"category": "Orders", "eventTypes": ["RewardStatus"]}],
                "nextCursor": "x",
                "nextPageAvailable": True,
            },
        )
        m.get(
            pattern,
            payload={"items": [{"category": "Catalog", "eventTypes": ["ItemAvailability"]}]},
        )
        groups = await mocked_client.webhooks.event_types()
    assert [(g.category, g.event_types) for g in groups] == [
        ("Orders", ["RewardStatus"]),
        ("Catalog", ["ItemAvailability"]),
    ]


class _Clock:
    """A frozen clock with a wall time, as the sandbox's."""

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


async def test_keep_renewed_renews_before_expiry() -> None:
    clock = _Clock()
    async with ta.TangoClient("platform", "key-12345", base_url=BASE, clock=clock) as client:
        with aioresponses() as m:
            m.get(W_URL, payload={"webhookId": WID, "expiresAt": "2030-01-03T00:00:00Z"})
            m.post(f"{W_URL}/renew", status=500)  # retried by the transport
            m.post(
                f"{W_URL}/renew", payload={"webhookId": WID, "expiresAt": "2030-01-10T00:00:00Z"}
            )
            m.post(f"{W_URL}/renew", status=404, payload={"httpCode": 404, "errors": []})
            with pytest.raises(ta.NotFoundError):
                async with client.webhooks.keep_renewed(WID, margin=86_400) as renewer:
                    for _ in range(200):
                        await asyncio.sleep(0)
                        if renewer._error is not None:
                            break
            assert renewer.renewals == 1
            assert renewer.expires_at == datetime(2030, 1, 10, tzinfo=UTC)
            assert clock.t >= 86_400  # it slept until a day before the first expiry
