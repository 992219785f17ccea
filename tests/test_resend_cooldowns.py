"""Resend cooldowns as the server keeps them (one per order and its line item, and the
time left that a 403.005 answer gives), and the retry policy taken as given."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

import tango_async as ta
from tango_async._cooldown import ResendLinks
from tango_async.testing import Sandbox

from .conftest import BASE, FAST_RETRY, KEY, NAME

COOLDOWN = 0.3
START = datetime(2024, 1, 1, tzinfo=UTC)
ORDER_ID = "RA230101-1234-56"
LINE_ITEM = "U1234"
ORDER_URL = f"{BASE}/orders/{ORDER_ID}"
RESEND_URL = f"{ORDER_URL}/resends"
LINE_ITEM_URL = f"{BASE}/lineItems/{LINE_ITEM}/resends"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(order_rate=None, resend_cooldown=COOLDOWN) as server:
        yield server


def seeded(sb: Sandbox, count: int = 1) -> list[tuple[str, str]]:
    """(order, line item) pairs of ``count`` delivered orders stored in the sandbox."""
    ids = sb.seed_orders(count, start=START, step=timedelta(minutes=1))
    return [(oid, sb.orders[oid]["referenceLineItemID"]) for oid in ids]


def resend_posts(sb: Sandbox) -> list[int]:
    """The statuses of the resend POSTs the sandbox received."""
    return [r.status for r in sb.requests if r.method == "POST" and r.path.endswith("/resends")]


def cooldown_error(**body: Any) -> dict[str, Any]:
    return {
        "requestId": "req-1",
        "path": "/raas/v2/orders/x/resends",
        "httpCode": 403,
        "httpPhrase": "Forbidden",
        "errors": [
            {
                "code": 403005,
                "i18nKey": "403.005",
                "message": "Cannot send more than once every 30 seconds",
            }
        ],
        **body,
    }


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- an order and its line item share one cooldown ---------------------------------------------


async def test_order_resend_starts_its_line_items_cooldown(sb: Sandbox) -> None:
    [(oid, line_item)] = seeded(sb)
    async with sb.client(resend_cooldown=COOLDOWN) as tango:
        await tango.orders.get(oid)  # the client learns the pair
        await tango.orders.resend(oid)
        before = len(sb.requests)
        with pytest.raises(ta.ResendCooldownError) as e:
            await tango.line_items.resend(line_item)
        assert len(sb.requests) == before  # refused locally: no network call
        assert 0 < e.value.retry_after <= COOLDOWN
        assert e.value.key == f"line_item {line_item}"
    assert resend_posts(sb) == [201]


async def test_line_item_resend_starts_its_orders_cooldown(sb: Sandbox) -> None:
    [(oid, line_item)] = seeded(sb)
    async with sb.client(resend_cooldown=COOLDOWN) as tango:
        await tango.orders.get(oid)
        await tango.line_items.resend(line_item, reason_code="NOT_RECEIVED")
        before = len(sb.requests)
        with pytest.raises(ta.ResendCooldownError) as e:
            await tango.orders.resend(oid)
        assert len(sb.requests) == before
        assert 0 < e.value.retry_after <= COOLDOWN
    assert resend_posts(sb) == [201]


async def test_pairs_are_learnt_from_order_history(sb: Sandbox) -> None:
    pairs = seeded(sb, 3)
    async with sb.client(resend_cooldown=COOLDOWN) as tango:
        assert len([o async for o in tango.orders.list()]) == 3
        for oid, line_item in pairs:
            await tango.orders.resend(oid)
            with pytest.raises(ta.ResendCooldownError):
                await tango.line_items.resend(line_item)
    assert resend_posts(sb) == [201] * 3


async def test_wait_true_sends_both_after_the_cooldown_without_a_403_005(sb: Sandbox) -> None:
    [(oid, line_item), (oid2, line_item2)] = seeded(sb, 2)
    loop = asyncio.get_running_loop()
    async with sb.client(resend_cooldown=COOLDOWN) as tango:
        await tango.orders.get(oid)
        await tango.orders.get(oid2)
        await tango.orders.resend(oid)
        start = loop.time()
        await tango.line_items.resend(line_item, wait=True)
        assert loop.time() - start >= COOLDOWN * 0.8
        # and the other way round
        await tango.line_items.resend(line_item2)
        start = loop.time()
        await tango.orders.resend(oid2, wait=True)
        assert loop.time() - start >= COOLDOWN * 0.8
    assert resend_posts(sb) == [201] * 4  # never refused by the server
    assert len(sb.resends) == 4


async def test_the_longer_cooldown_wins_and_no_claim_is_left_behind(sb: Sandbox) -> None:
    [(oid, line_item)] = seeded(sb)
    async with sb.client(resend_cooldown=COOLDOWN) as tango:
        await tango.orders.get(oid)
        store = tango.cooldown_store
        order_key = f"tango:{sb.platform_name}:order:{oid}"
        line_key = f"tango:{sb.platform_name}:line_item:{line_item}"
        assert await store.claim(line_key, 5.0) == 0.0  # e.g. another worker's resend
        with pytest.raises(ta.ResendCooldownError) as e:
            await tango.orders.resend(oid)
        assert 4.0 < e.value.retry_after <= 5.0
        # the order's own key, claimed on the way, was given back
        assert await store.claim(order_key, 1.0) == 0.0
    assert resend_posts(sb) == []


async def test_unknown_pairs_still_resend(sb: Sandbox) -> None:
    [(oid, line_item)] = seeded(sb)
    async with sb.client(resend_cooldown=COOLDOWN) as tango:  # knows no order
        await tango.orders.resend(oid)
        with pytest.raises(ta.ResendCooldownError) as e:  # the server's own 403.005
            await tango.line_items.resend(line_item)
        assert isinstance(e.value.__cause__, ta.PermissionDeniedError)
        # the refusal started the cooldown of the line item
        before = len(sb.requests)
        with pytest.raises(ta.ResendCooldownError):
            await tango.line_items.resend(line_item)
        assert len(sb.requests) == before
    assert resend_posts(sb) == [201, 403]


async def test_a_shared_store_holds_both_keys_for_every_client(sb: Sandbox) -> None:
    [(oid, line_item)] = seeded(sb)
    store = ta.LocalCooldownStore()
    async with (
        sb.client(resend_cooldown=COOLDOWN, cooldown_store=store) as a,
        sb.client(resend_cooldown=COOLDOWN, cooldown_store=store) as b,
    ):
        await a.orders.get(oid)
        await a.orders.resend(oid)
        before = len(sb.requests)
        with pytest.raises(ta.ResendCooldownError):  # b never saw the order
            await b.line_items.resend(line_item)
        assert len(sb.requests) == before
    assert resend_posts(sb) == [201]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    from .redis_support import redis_for_tests

    pytest.importorskip("redis")
    with redis_for_tests() as url:
        yield url


async def test_a_shared_redis_store_holds_both_keys(sb: Sandbox, redis_url: str) -> None:
    from tango_async.redis import RedisCooldownStore

    [(oid, line_item)] = seeded(sb)
    namespace = "test-" + uuid.uuid4().hex[:10]
    stores = [RedisCooldownStore(redis_url, namespace=namespace) for _ in range(2)]
    try:
        async with (
            sb.client(resend_cooldown=COOLDOWN, cooldown_store=stores[0]) as a,
            sb.client(resend_cooldown=COOLDOWN, cooldown_store=stores[1]) as b,
        ):
            await a.orders.get(oid)
            await a.orders.resend(oid)
            before = len(sb.requests)
            with pytest.raises(ta.ResendCooldownError) as e:
                await b.line_items.resend(line_item)
            assert len(sb.requests) == before
            assert 0 < e.value.retry_after <= COOLDOWN
            await b.line_items.resend(line_item, wait=True)
    finally:
        for store in stores:
            await store.aclose()
    assert resend_posts(sb) == [201, 201]


# --- a 403.005 says how long is left ---------------------------------------------------------


async def test_403_005_with_retry_after_header(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(RESEND_URL, status=403, payload=cooldown_error(), headers={"Retry-After": "5"})
        with pytest.raises(ta.ResendCooldownError) as e:
            await mocked_client.orders.resend(ORDER_ID)
        assert e.value.retry_after == pytest.approx(5.0)
        # the store holds it as long: a second try is refused locally
        with pytest.raises(ta.ResendCooldownError) as again:
            await mocked_client.orders.resend(ORDER_ID)
        assert 4.5 < again.value.retry_after <= 5.0
        assert len(m.requests[("POST", URL(RESEND_URL))]) == 1


async def test_403_005_timestamp_is_the_last_send() -> None:
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, resend_cooldown=30.0
    ) as client:
        with aioresponses() as m:
            ten_ago = iso(datetime.now(UTC) - timedelta(seconds=10))
            m.post(RESEND_URL, status=403, payload=cooldown_error(timestamp=ten_ago))
            with pytest.raises(ta.ResendCooldownError) as e:
                await client.orders.resend(ORDER_ID)
            assert 19.0 < e.value.retry_after <= 20.0
            with pytest.raises(ta.ResendCooldownError) as again:
                await client.orders.resend(ORDER_ID)
            assert 19.0 < again.value.retry_after <= 20.0  # the store's cooldown: 20 s
            assert len(m.requests[("POST", URL(RESEND_URL))]) == 1


@pytest.mark.parametrize(
    "timestamp",
    [None, "not a time", "", "2025-13-45T99:00:00Z"],
)
async def test_403_005_without_a_hint_is_the_whole_cooldown(timestamp: str | None) -> None:
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, resend_cooldown=30.0
    ) as client:
        with aioresponses() as m:
            body = cooldown_error() if timestamp is None else cooldown_error(timestamp=timestamp)
            m.post(RESEND_URL, status=403, payload=body)
            with pytest.raises(ta.ResendCooldownError) as e:
                await client.orders.resend(ORDER_ID)
            assert e.value.retry_after == 30.0


@pytest.mark.parametrize(
    ("seconds_ago", "expected"),
    [(0, 30.0), (-120, 30.0), (45, 0.0), (29, 1.0)],  # now, the future (skew), long ago
)
async def test_403_005_timestamp_is_clamped(seconds_ago: float, expected: float) -> None:
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, resend_cooldown=30.0
    ) as client:
        with aioresponses() as m:
            when = iso(datetime.now(UTC) - timedelta(seconds=seconds_ago))
            m.post(RESEND_URL, status=403, payload=cooldown_error(timestamp=when))
            with pytest.raises(ta.ResendCooldownError) as e:
                await client.orders.resend(ORDER_ID)
            assert e.value.retry_after == pytest.approx(expected, abs=0.5)


async def test_403_005_extends_both_keys_by_the_time_left(mocked_client: ta.TangoClient) -> None:
    mocked_client._resend_links.learn(
        ta.Order(reference_order_id=ORDER_ID, reference_line_item_id=LINE_ITEM)
    )
    with aioresponses() as m:
        m.post(RESEND_URL, status=403, payload=cooldown_error(), headers={"Retry-After": "3"})
        with pytest.raises(ta.ResendCooldownError) as e:
            await mocked_client.orders.resend(ORDER_ID)
        assert e.value.retry_after == pytest.approx(3.0)
        with pytest.raises(ta.ResendCooldownError) as li:
            await mocked_client.line_items.resend(LINE_ITEM)
        assert 2.5 < li.value.retry_after <= 3.0
        assert ("POST", URL(LINE_ITEM_URL)) not in m.requests


async def test_403_005_with_wait_waits_the_time_left(mocked_client: ta.TangoClient) -> None:
    loop = asyncio.get_running_loop()
    with aioresponses() as m:
        m.post(RESEND_URL, status=403, payload=cooldown_error(), headers={"Retry-After": "0.4"})
        m.post(RESEND_URL, status=201, payload={"id": 9})
        start = loop.time()
        resend = await mocked_client.orders.resend(ORDER_ID, wait=True)
        assert resend.id == 9
        assert loop.time() - start >= 0.35
        assert len(m.requests[("POST", URL(RESEND_URL))]) == 2


async def test_403_005_with_wait_is_bounded_by_max_retries() -> None:
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, max_retries=2, resend_cooldown=30.0
    ) as client:
        with aioresponses() as m:
            m.post(
                RESEND_URL,
                status=403,
                payload=cooldown_error(),
                repeat=True,
                headers={"Retry-After": "0.01"},
            )
            with pytest.raises(ta.ResendCooldownError) as e:
                await client.orders.resend(ORDER_ID, wait=True)
            assert e.value.retry_after == pytest.approx(0.01)
            assert len(m.requests[("POST", URL(RESEND_URL))]) == 3  # 1 + max_retries


async def test_other_refusals_release_both_keys(mocked_client: ta.TangoClient) -> None:
    mocked_client._resend_links.learn(
        ta.Order(reference_order_id=ORDER_ID, reference_line_item_id=LINE_ITEM)
    )
    with aioresponses() as m:
        m.post(
            RESEND_URL,
            status=403,
            payload=cooldown_error(
                errors=[{"code": 403003, "i18nKey": "403.003", "message": "not delivered by Tango"}]
            ),
        )
        m.post(LINE_ITEM_URL, status=201, payload={"id": 3})
        with pytest.raises(ta.PermissionDeniedError):
            await mocked_client.orders.resend(ORDER_ID)
        assert (await mocked_client.line_items.resend(LINE_ITEM)).id == 3


# --- the pairs a client knows ------------------------------------------------------------------


def test_resend_links_both_ways_and_bounded() -> None:
    links = ResendLinks(max_pairs=3)
    for i in range(4):
        links.learn(ta.Order(reference_order_id=f"RA{i}", reference_line_item_id=f"U{i}"))
    assert len(links) == 3
    assert links.line_item_of("RA0") is None and links.order_of("U0") is None  # evicted
    assert links.line_item_of("RA1") == "U1" and links.order_of("U3") == "RA3"
    links.learn(ta.Order(reference_order_id="RA4", reference_line_item_id="U4"))
    assert links.order_of("U2") is None  # RA2 was the least recently used
    assert links.line_item_of("RA1") == "U1"
    links.learn(ta.Order(reference_order_id="RA9"))  # no line item: nothing to learn
    assert links.line_item_of("RA9") is None
    links.learn(ta.Order(reference_order_id="RA1", reference_line_item_id="U9"))  # re-pointed
    assert links.order_of("U1") is None and links.order_of("U9") == "RA1"
    assert len(links) == 3


def test_every_client_has_its_own_links() -> None:
    a = ta.TangoClient(NAME, KEY, base_url=BASE)
    b = ta.TangoClient(NAME, KEY, base_url=BASE)
    assert a._resend_links is not b._resend_links
    assert a._resend_links.max_pairs == 10_000


# --- the retry policy as given ----------------------------------------------------------------


def get_500s(m: aioresponses) -> None:
    m.get(
        ORDER_URL,
        status=500,
        repeat=True,
        payload={"httpCode": 500, "errors": [{"i18nKey": "500.001", "message": "boom"}]},
    )


@pytest.mark.parametrize(
    ("options", "attempts"),
    [
        ({"retry": FAST_RETRY.with_options(max_retries=6)}, 7),  # the policy's holds
        ({"retry": FAST_RETRY.with_options(max_retries=6), "max_retries": 1}, 2),  # explicit wins
        ({"retry": FAST_RETRY.with_options(max_retries=0)}, 1),
        ({"retry": FAST_RETRY}, 4),
    ],
)
async def test_retry_policy_max_retries(options: dict[str, Any], attempts: int) -> None:
    async with ta.TangoClient(NAME, KEY, base_url=BASE, **options) as client:
        assert client.retry.max_retries == attempts - 1
        with aioresponses() as m:
            get_500s(m)
            with pytest.raises(ta.ServerError):
                await client.orders.get(ORDER_ID)
            assert len(m.requests[("GET", URL(ORDER_URL))]) == attempts


def test_default_max_retries_is_three() -> None:
    assert ta.TangoClient(NAME, KEY, base_url=BASE).retry.max_retries == 3
    assert ta.TangoClient(NAME, KEY, base_url=BASE, max_retries=5).retry.max_retries == 5
    policy = ta.RetryPolicy(max_retries=10, initial_delay=0.1)
    client = ta.TangoClient(NAME, KEY, base_url=BASE, retry=policy)
    assert client.retry == policy  # the policy as given, every field


async def test_sandbox_client_keeps_the_policys_max_retries(sb: Sandbox) -> None:
    [(oid, _)] = seeded(sb)
    sb.inject("GET /orders/*", "500", times=5)
    async with sb.client(retry=FAST_RETRY.with_options(max_retries=5)) as tango:
        assert (await tango.orders.get(oid)).reference_order_id == oid
    gets = [r.status for r in sb.requests if r.method == "GET"]
    assert gets == [500] * 5 + [200]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"retry": {"max_retries": 3}}, "retry"),
        ({"retry": 3}, "retry"),
        ({"retry": ta.RetryPolicy(), "max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
    ],
)
def test_bad_retry_options(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(NAME, KEY, base_url=BASE, **options)
    assert e.value.field == field
