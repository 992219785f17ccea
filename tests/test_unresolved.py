"""Unknown outcomes are remembered, not forgotten (issue 10, points 1, 3 and 7).

Every reproduction of the issue is kept here: an outer timeout while the server commits,
then the natural retry; unreadable 2xx answers; closing the client while creates wait.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

import tango_async as ta
from tango_async.testing import Sandbox

from .conftest import BASE, FAST_RETRY, KEY, NAME, order_request
from .redis_support import redis_for_tests

ORDERS_URL = BASE + "/orders"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


def _to(email: str) -> ta.Recipient:
    return ta.Recipient(email=email, first_name="Ann", last_name="Lee")


def _orders_for(sb: Sandbox, email: str) -> list[dict[str, Any]]:
    return [o for o in sb.orders.values() if o["recipient"]["email"] == email]


def _posts(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests if r.method == "POST" and r.path.endswith("/orders"))


async def test_outer_timeout_then_same_request_is_one_order() -> None:
    """The issue's first reproduction: wait_for times out while the server commits; the
    natural retry with the same request gets the existing order, not a second one."""
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "slow", delay=0.4)
        async with sb.client(retry=FAST_RETRY) as tango:
            req = order_request(recipient=_to("t1@example.com"))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(tango.orders.create(req), 0.1)
            pending = await tango.orders.unresolved()
            assert [e.state for e in pending] == ["unknown"]
            ref = pending[0].external_ref_id
            assert req.external_ref_id is None  # the caller's request is never changed
            await asyncio.sleep(0.5)  # the slow handler commits meanwhile
            again = await tango.orders.create(req)
            assert again.external_ref_id == ref
            assert again.created is False and again.existing
            assert len(_orders_for(sb, "t1@example.com")) == 1
            assert await tango.orders.unresolved() == []


async def test_equal_request_reuses_and_retry_during_commit_is_one_order() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "slow", delay=0.3, hold=True)
        policy = FAST_RETRY.with_options(max_retries=8, conflict_delay=0.1)
        async with sb.client(retry=policy) as tango:
            email = "t2@example.com"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    tango.orders.create(order_request(recipient=_to(email))), 0.05
                )
            # an equal request (another object), sent while the first is still in process:
            # 409.002 until it commits, then the existing order
            order = await tango.orders.create(order_request(recipient=_to(email)))
            assert len(_orders_for(sb, email)) == 1
            assert order.reference_order_id == _orders_for(sb, email)[0]["referenceOrderID"]


async def test_identical_order_after_known_success_is_a_new_order() -> None:
    async with Sandbox(order_rate=None) as sb, sb.client() as tango:
        req = order_request(recipient=_to("t3@example.com"))
        first = await tango.orders.create(req)
        second = await tango.orders.create(req)
        assert first.created and second.created
        assert first.external_ref_id != second.external_ref_id
        assert len(_orders_for(sb, "t3@example.com")) == 2


async def test_concurrent_identical_creates_stay_two_orders() -> None:
    """Calls in flight are not unknown: two at once are two orders, as asked."""
    async with Sandbox(order_rate=None) as sb, sb.client() as tango:
        req = order_request(recipient=_to("t4@example.com"))
        a, b = await asyncio.gather(tango.orders.create(req), tango.orders.create(req))
        assert a.external_ref_id != b.external_ref_id
        assert len(_orders_for(sb, "t4@example.com")) == 2


async def test_cancelled_before_sending_leaves_nothing() -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(order_rate=1.0) as tango:
        await tango.orders.create(order_request())  # the next slot is ~1 s away
        task = asyncio.create_task(tango.orders.create(order_request()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await tango.orders.unresolved() == []
        assert _posts(sb) == 1


async def test_retries_exhausted_after_commit_then_resolve() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "500-after-commit", times=3)
        async with sb.client(retry=FAST_RETRY.with_options(max_retries=2)) as tango:
            req = order_request(recipient=_to("t5@example.com"))
            with pytest.raises(ta.ServerError) as info:
                await tango.orders.create(req)
            err = info.value
            assert err.outcome_unknown and err.external_ref_id
            [entry] = await tango.orders.unresolved()
            assert entry.external_ref_id == err.external_ref_id
            assert "ServerError" in entry.reason
            assert "t5@example.com" not in repr(entry)  # the request stays out of reprs
            order = await tango.orders.resolve(err.external_ref_id)
            assert order is not None and order.existing
            assert order.reward is not None  # the full order, credentials included
            assert await tango.orders.unresolved() == []
            assert len(_orders_for(sb, "t5@example.com")) == 1


async def test_resolve_not_found_keeps_the_ref_for_equal_content() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "drop-before", times=2)
        async with sb.client(retry=FAST_RETRY.with_options(max_retries=1)) as tango:
            req = order_request(recipient=_to("t6@example.com"))
            with pytest.raises(ta.APIConnectionError) as info:
                await tango.orders.create(req)
            ref = info.value.external_ref_id
            assert info.value.outcome_unknown  # a dropped connection: it may have arrived
            assert ref is not None
            assert await tango.orders.resolve(ref) is None
            assert await tango.orders.unresolved() == []  # settled for the caller...
            order = await tango.orders.create(req)  # ...but equal content keeps its ref
            assert order.external_ref_id == ref and order.created
            assert await tango.orders.resolve(ref) is not None  # and now it exists


async def test_definite_refusal_forgets_the_attempt() -> None:
    async with Sandbox(order_rate=None) as sb, sb.client() as tango:
        sb.set_balance("acct-12345", 5)
        with pytest.raises(ta.InsufficientFundsError) as info:
            await tango.orders.create(order_request())
        assert info.value.outcome_unknown is False
        assert info.value.external_ref_id is not None
        assert await tango.orders.unresolved() == []


async def test_caller_supplied_ref_is_sent_as_given_and_listed_while_unknown() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "503-after-commit", times=2)
        async with sb.client(retry=FAST_RETRY.with_options(max_retries=1)) as tango:
            req = order_request(external_ref_id="my-own-ref-1")
            with pytest.raises(ta.ServerError):
                await tango.orders.create(req)
            [entry] = await tango.orders.unresolved()
            assert entry.external_ref_id == "my-own-ref-1" and entry.content_key is None
            order = await tango.orders.create(req)
            assert order.external_ref_id == "my-own-ref-1" and order.existing
            assert await tango.orders.unresolved() == []


# --- point 3: an unreadable 2xx is an unknown outcome, resolved with the same ref ----------


@pytest.mark.parametrize("fault", ["truncated-200", "malformed-200"])
async def test_unreadable_2xx_is_asked_again_never_a_failure(fault: str) -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as tango:
        sb.inject("POST /orders", fault)
        order = await tango.orders.create(order_request())
        assert order.reference_order_id in sb.orders
        assert len(sb.orders) == 1
        posts = [r for r in sb.requests if r.method == "POST"]
        assert len(posts) == 2 and posts[0].json["externalRefID"] == posts[1].json["externalRefID"]
        # truncated-200: a commit answered 201 and cut; malformed-200: nothing processed
        assert order.created  # made by this call: committed and cut, or made by the repeat


async def test_unreadable_2xx_every_time_stays_unknown() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "truncated-200", times=10)
        async with sb.client(retry=FAST_RETRY.with_options(max_retries=2)) as tango:
            with pytest.raises(ta.APIResponseValidationError) as info:
                await tango.orders.create(order_request())
            assert info.value.outcome_unknown
            [entry] = await tango.orders.unresolved()
            assert entry.external_ref_id == info.value.external_ref_id
            assert len(sb.orders) == 1


async def test_answer_for_another_order_is_not_taken(mocked_client: ta.TangoClient) -> None:
    """A hostile 201 naming another externalRefID (or none at all) is not this order."""
    with aioresponses() as m:
        m.post(ORDERS_URL, status=201, payload={"referenceOrderID": "RA1", "externalRefID": "x"})
        m.post(ORDERS_URL, status=201, payload={"referenceOrderID": ""})
        m.post(ORDERS_URL, status=201, payload={"externalRefID": "nope"})
        m.post(ORDERS_URL, status=201, payload=[1, 2])
        with pytest.raises(ta.APIResponseValidationError) as info:
            await mocked_client.orders.create(order_request())
        assert info.value.outcome_unknown
        assert len(await mocked_client.orders.unresolved()) == 1


# --- point 7: closing the client while calls wait ------------------------------------------


async def test_close_while_creates_wait_for_a_slot() -> None:
    async with Sandbox(order_rate=None) as sb:
        tango = sb.client(order_rate=2.0)
        async with tango:
            tasks = [asyncio.create_task(tango.orders.create(order_request())) for _ in range(4)]
            await asyncio.sleep(0.2)
            await tango.close()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        kinds = Counter(type(r).__name__ for r in results)
        assert kinds == {"CreatedOrder": 1, "ClientClosedError": 3}, results
        for r in results:
            if isinstance(r, ta.ClientClosedError):
                assert r.external_ref_id and r.outcome_unknown is False
        assert _posts(sb) == 1
        assert await tango.orders.unresolved() == []


async def test_close_during_backoff_after_a_maybe_delivered_attempt() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "500-after-commit")
        slow_retry = FAST_RETRY.with_options(initial_delay=5.0, max_delay=5.0)
        tango = sb.client(retry=slow_retry)
        task = asyncio.create_task(tango.orders.create(order_request()))
        await asyncio.sleep(0.2)
        await tango.close()
        with pytest.raises(ta.ClientClosedError) as info:
            await task
        assert info.value.outcome_unknown and info.value.external_ref_id
        [entry] = await tango.orders.unresolved()
        assert entry.state == "unknown"


async def test_close_while_a_resend_waits_out_its_cooldown() -> None:
    async with Sandbox(order_rate=None, resend_cooldown=30.0) as sb:
        tango = sb.client(resend_cooldown=30.0)
        order = await tango.orders.create(order_request())
        await tango.orders.resend(order.reference_order_id)
        task = asyncio.create_task(tango.orders.resend(order.reference_order_id, wait=True))
        await asyncio.sleep(0.1)
        await tango.close()
        with pytest.raises(ta.ClientClosedError):
            await asyncio.wait_for(task, 2.0)


async def test_user_cancellation_is_not_turned_into_closed_error() -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(order_rate=1.0) as tango:
        await tango.orders.create(order_request())
        task = asyncio.create_task(tango.orders.create(order_request()))
        await asyncio.sleep(0.05)
        task.cancel()
        await tango.close()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- durable stores -----------------------------------------------------------------------


async def test_sqlite_store_survives_the_client(tmp_path: Path) -> None:
    path = tmp_path / "unresolved.sqlite"
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "slow", delay=0.3)
        store = ta.SqliteUnresolvedStore(path)
        async with sb.client(unresolved_store=store) as tango:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(tango.orders.create(order_request()), 0.05)
        store.close()
        await asyncio.sleep(0.4)
        store2 = ta.SqliteUnresolvedStore(path)
        async with sb.client(unresolved_store=store2) as tango:
            [entry] = await tango.orders.unresolved()
            assert entry.state == "unknown"
            again = await tango.orders.create(order_request())
            assert again.external_ref_id == entry.external_ref_id and again.existing
            assert await tango.orders.unresolved() == []
        store2.close()
        assert len(sb.orders) == 1


_KILLED_SENDER = textwrap.dedent(
    """
    import asyncio, sys
    import tango_async as ta
    from tests.conftest import order_request

    async def main():
        store = ta.SqliteUnresolvedStore(sys.argv[3])
        async with ta.TangoClient("sandbox-platform", sys.argv[2], base_url=sys.argv[1],
                                  unresolved_store=store, timeout=30) as tango:
            print("sending", flush=True)
            await tango.orders.create(order_request())

    asyncio.run(main())
    """
)


async def test_sqlite_store_after_kill_9_lists_and_resolves(tmp_path: Path) -> None:
    """A process killed while its create is in flight leaves a 'sending' entry that
    another process lists and resolves."""
    path = tmp_path / "unresolved.sqlite"
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "slow", delay=1.0)
        proc = subprocess.Popen(  # noqa: ASYNC220 (started once, then polled)
            [sys.executable, "-c", _KILLED_SENDER, sb.base_url, sb.platform_key, str(path)],
            cwd=Path(__file__).parent.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 20
            while not any(r.method == "POST" for r in sb.requests):
                assert time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                await asyncio.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
        store = ta.SqliteUnresolvedStore(path)
        try:
            async with sb.client(unresolved_store=store) as tango:
                [entry] = await tango.orders.unresolved()
                assert entry.state == "sending"
                await asyncio.sleep(1.1)  # the server finishes the request it received
                order = await tango.orders.resolve(entry.external_ref_id)
                assert order is not None
                assert await tango.orders.unresolved() == []
        finally:
            store.close()


async def test_redis_store_shares_unknown_outcomes(redis_url: str) -> None:
    from tango_async.redis import RedisUnresolvedStore

    ns = f"t-unresolved-{random.randrange(10**9)}"
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "500-after-commit", times=2)
        first = RedisUnresolvedStore(redis_url, namespace=ns)
        once = FAST_RETRY.with_options(max_retries=1)
        async with sb.client(unresolved_store=first, retry=once) as a:
            with pytest.raises(ta.ServerError):
                await a.orders.create(order_request())
        await first.aclose()
        # another client (another process, another host) sees it, and reuses it
        second = RedisUnresolvedStore(redis_url, namespace=ns)
        async with sb.client(unresolved_store=second) as b:
            [entry] = await b.orders.unresolved()
            assert entry.state == "unknown" and entry.request
            again = await b.orders.create(order_request())
            assert again.external_ref_id == entry.external_ref_id and again.existing
            assert await b.orders.unresolved() == []
        await second.aclose()
        assert len(sb.orders) == 1


async def test_store_failure_before_sending_sends_nothing() -> None:
    class Broken(ta.LocalUnresolvedStore):
        async def put(self, entry: ta.UnresolvedOrder) -> None:
            raise ta.UnresolvedStoreError("disk full")

    async with Sandbox(order_rate=None) as sb, sb.client(unresolved_store=Broken()) as tango:
        with pytest.raises(ta.UnresolvedStoreError) as info:
            await tango.orders.create(order_request())
        assert info.value.external_ref_id
        assert _posts(sb) == 0


def test_unresolved_store_is_checked() -> None:
    with pytest.raises(ta.ValidationError, match="unresolved_store"):
        ta.TangoClient(NAME, KEY, base_url=BASE, unresolved_store=object())  # type: ignore[arg-type]


# --- the figure for RELIABILITY.md --------------------------------------------------------

CANCEL_ORDERS = int(os.environ.get("TANGO_CANCEL_ORDERS", "150"))


class _Forgetful(ta.LocalUnresolvedStore):
    """The control: a client that forgets unknown outcomes (as 0.1 did)."""

    async def find(self, content_key: str) -> list[ta.UnresolvedOrder]:
        return []


@pytest.mark.parametrize("memory", ["remembered", "forgotten"])
async def test_random_outer_cancellations_and_retries_pay_each_order_once(memory: str) -> None:
    """Logical orders created under random outer timeouts, each retried with the same
    request until it succeeds: every one exists exactly once. The control run, with a
    client that forgets, shows the test would see the duplicates."""
    rng = random.Random(10)
    store = ta.LocalUnresolvedStore() if memory == "remembered" else _Forgetful()
    async with Sandbox(order_rate=None) as sb:
        sb.chaos(0.3, seed=10, faults=("slow",), delay=0.06)
        patient = FAST_RETRY.with_options(max_retries=10)
        async with sb.client(order_rate=1000.0, retry=patient, unresolved_store=store) as tango:
            tries = Counter[int]()

            async def one(i: int) -> None:
                req = order_request(recipient=_to(f"c{i}@example.com"))
                while True:
                    tries[i] += 1
                    try:
                        await asyncio.wait_for(tango.orders.create(req), rng.uniform(0.005, 0.08))
                        return
                    except TimeoutError:
                        continue

            sem = asyncio.Semaphore(20)

            async def bounded(i: int) -> None:
                async with sem:
                    await one(i)

            await asyncio.gather(*(bounded(i) for i in range(CANCEL_ORDERS)))
            await asyncio.sleep(0.1)  # slow handlers still in process commit (or not)
        per_email = Counter(o["recipient"]["email"] for o in sb.orders.values())
        duplicates = sum(n - 1 for n in per_email.values() if n > 1)
        lost = sum(1 for i in range(CANCEL_ORDERS) if per_email[f"c{i}@example.com"] == 0)
        cancelled = sum(n - 1 for n in tries.values())
        refs = Counter(r.json["externalRefID"] for r in sb.requests if r.method == "POST")
        reused = sum(n - 1 for n in refs.values() if n > 1)
        print(
            f"\n{memory}: {CANCEL_ORDERS} orders, {cancelled} outer cancellations, "
            f"{reused} re-sends of a remembered ref: {duplicates} duplicates, {lost} lost"
        )
        assert lost == 0
        assert cancelled > CANCEL_ORDERS // 4  # the cancellations really happened
        if memory == "remembered":
            assert duplicates == 0
        else:
            assert duplicates > 0  # what the memory prevents


# --- regressions from the adversarial review -------------------------------------------------


class _GatedStore(ta.LocalUnresolvedStore):
    """A store whose next 'sending' put (or next remove) waits until released."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.armed = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def _gate(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            await self.release.wait()

    async def put(self, entry: ta.UnresolvedOrder) -> None:
        if self.what == "put" and entry.state == "sending":
            await self._gate()
        await super().put(entry)

    async def remove(self, external_ref_id: str) -> None:
        if self.what == "remove":
            await self._gate()
        await super().remove(external_ref_id)


async def test_a_retry_cancelled_while_recording_keeps_the_earlier_unknown() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "500-after-commit")
        store = _GatedStore("put")
        async with sb.client(retry=FAST_RETRY, max_retries=0, unresolved_store=store) as tango:
            req = order_request()
            with pytest.raises(ta.ServerError):
                await tango.orders.create(req)  # committed, answered 500: unknown
            store.armed = True
            retry = asyncio.create_task(tango.orders.create(req))
            await store.entered.wait()
            retry.cancel()  # the caller's deadline, while the retry records itself
            with pytest.raises(asyncio.CancelledError):
                await retry
            assert len(await tango.orders.unresolved()) == 1
            again = await tango.orders.create(req)
            assert again.existing and len(sb.orders) == 1


async def test_cancelled_while_recording_a_2xx_stays_remembered() -> None:
    async with Sandbox(order_rate=None) as sb:
        store = _GatedStore("remove")
        async with sb.client(retry=FAST_RETRY, unresolved_store=store) as tango:
            req = order_request()
            store.armed = True
            task = asyncio.create_task(tango.orders.create(req))
            await store.entered.wait()  # the order exists; its entry is being removed
            task.cancel()
            store.release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            [entry] = await tango.orders.unresolved()  # to the caller the outcome is unknown
            again = await tango.orders.create(req)
            assert again.external_ref_id == entry.external_ref_id and again.existing
            assert len(sb.orders) == 1


async def test_custom_fields_in_another_order_are_the_same_content() -> None:
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "500-after-commit")
        async with sb.client(retry=FAST_RETRY, max_retries=0) as tango:
            a = order_request(custom_fields={"employee": "E1", "reason": "bonus"})
            b = order_request(custom_fields={"reason": "bonus", "employee": "E1"})
            with pytest.raises(ta.ServerError):
                await tango.orders.create(a)
            again = await tango.orders.create(b)
            assert again.existing and len(sb.orders) == 1


async def test_a_failed_removal_never_swallows_a_deliberate_repeat() -> None:
    class StuckRemove(ta.LocalUnresolvedStore):
        fail = True

        async def remove(self, external_ref_id: str) -> None:
            if self.fail:
                raise ta.UnresolvedStoreError("Redis did not answer")
            await super().remove(external_ref_id)

    store = StuckRemove()
    async with Sandbox(order_rate=None) as sb, sb.client(unresolved_store=store) as tango:
        req = order_request()
        first = await tango.orders.create(req)  # known success; its entry could not go
        assert len(await store.list()) == 1
        store.fail = False
        second = await tango.orders.create(req)  # on purpose: a second reward
        assert first.created and second.created
        assert first.external_ref_id != second.external_ref_id
        assert len(sb.orders) == 2
        assert await store.list() == []  # the stale entry was removed again


@pytest.mark.parametrize("kind", ["local", "sqlite"])
async def test_concurrent_retries_after_an_unknown_outcome(kind: str, tmp_path: Path) -> None:
    """Two equal creates at once after an unknown outcome: one reuses the remembered ref,
    the other is a new order, whatever the store (no race between find and reserve)."""
    store = (
        ta.SqliteUnresolvedStore(tmp_path / "u.db")
        if kind == "sqlite"
        else ta.LocalUnresolvedStore()
    )
    async with Sandbox(order_rate=None) as sb:
        sb.inject("POST /orders", "500-after-commit")
        async with sb.client(retry=FAST_RETRY, max_retries=0, unresolved_store=store) as tango:
            req = order_request()
            with pytest.raises(ta.ServerError):
                await tango.orders.create(req)
            a, b = await asyncio.gather(tango.orders.create(req), tango.orders.create(req))
            assert a.external_ref_id != b.external_ref_id
            assert sorted([a.created, b.created]) == [False, True]
            assert len(sb.orders) == 2
    if isinstance(store, ta.SqliteUnresolvedStore):
        store.close()


def test_an_empty_store_with_len_is_kept() -> None:
    class Sized(ta.LocalUnresolvedStore):
        def __len__(self) -> int:
            return len(self._entries)

    store = Sized()
    client = ta.TangoClient(NAME, KEY, base_url=BASE, unresolved_store=store)
    assert client.unresolved_store is store


async def test_numpy_floats_are_amounts() -> None:
    np = pytest.importorskip("numpy")
    async with Sandbox(order_rate=None) as sb, sb.client() as tango:
        order = await tango.orders.create(order_request(amount=np.float64(10.5)))
        assert order.created
        assert b'"amount":10.5' in sb.requests[-1].body
        with pytest.raises(ta.ValidationError, match="amount"):
            await tango.orders.create(order_request(amount=np.float64(0.1) + np.float64(0.2)))
