"""The sandbox's line items, with raw aiohttp requests: the list's filters and keyset
paging, the verbose view, the life on a frozen clock, the actions and their refusals,
reason codes, embedded URLs, and the contract of every answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tango_async.testing import Sandbox, SandboxClock

from .sandbox14_support import (
    Answer,
    call,
    checker,
    key,
    order,
    paths,
    schema_enum,
    session,
)

START = datetime(2024, 3, 1, tzinfo=UTC)


def frozen() -> SandboxClock:
    return SandboxClock(frozen=True, start=datetime(2025, 6, 1, 12, tzinfo=UTC))


async def line_item(http: Any, sb: Sandbox, line: str) -> dict[str, Any]:
    answer = await call(http, sb, "GET", f"/lineItems/{line}")
    assert answer.status == 200, answer
    return dict(answer.body)


async def act(http: Any, sb: Sandbox, line: str, action: str, **body: Any) -> Answer:
    return await call(http, sb, "POST", f"/lineItems/{line}/{action}", json=body)


# --- GET /lineItems ---------------------------------------------------------------------------


async def test_list_filters() -> None:
    async with Sandbox(order_rate=None, clock=frozen()) as sb, session(sb) as http:
        hour = timedelta(hours=1)
        sb.seed_orders(3, start=START, step=hour, utid="U157189", amount=Decimal("25.00"))
        sb.seed_orders(
            2,
            start=START + 10 * hour,
            step=hour,
            campaign="spring",
            purchase_order_number="PO-7",
            notes="for Rita",
            recipient={"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"},
        )
        sb.seed_orders(1, start=START + 20 * hour, step=hour, status="FAILED")
        sb.seed_orders(1, start=START + 21 * hour, step=hour, delivery_method="NONE")
        made = await order(http, sb, externalRefID="ext-1", accountIdentifier="account-9")

        async def found(**params: Any) -> list[str]:
            answer = await call(http, sb, "GET", "/lineItems", params=params)
            assert answer.status == 200, answer
            page = answer.body["keysetPage"]
            assert page["resultCount"] == len(answer.body["lineItems"])
            return [li["referenceLineItemID"] for li in answer.body["lineItems"]]

        everything = await found(elementsPerBlock=100)
        assert len(everything) == 8
        assert everything[0] == made["referenceLineItemID"]  # dateIssued, newest first
        assert len(await found(utid="U157189")) == 3
        assert len(await found(campaign="spring", purchaseOrderNumber="PO-7")) == 2
        assert len(await found(orderNotes="for Rita")) == 2
        assert len(await found(recipientEmail="ann@example.com", recipientFirstName="Ann")) == 2
        assert len(await found(recipientLastName="Nobody")) == 0
        assert await found(status="FAILED") == await found(orderStatus="FAILED")
        assert len(await found(status="FAILED")) == 1
        assert len(await found(deliveryStatus="FAILED")) == 1
        assert len(await found(emailStatus="NOT_DELIVERED")) == 1
        assert len(await found(deliveryMethod="NONE")) == 1
        assert len(await found(orderSource="RA", elementsPerBlock=100)) == 8
        assert len(await found(orderSource="BE")) == 0
        assert await found(externalRefID="ext-1") == [made["referenceLineItemID"]]
        assert await found(referenceOrderID=made["referenceOrderID"]) == [
            made["referenceLineItemID"]
        ]
        assert await found(accountIdentifier="account-9") == [made["referenceLineItemID"]]
        window = await found(startDate="2024-03-01T01:00:00Z", endDate="2024-03-01T02:00:00.000Z")
        assert len(window) == 2  # both ends included
        assert len(await found(startDate="2024-03-02")) == 1  # the order made now
        assert len(await found(minRemainingBalance="20", maxRemainingBalance="30")) == 3
        assert len(await found(hasRemainingBalance="true", elementsPerBlock=100)) == 7
        assert len(await found(hasRemainingBalance="false")) == 1  # the FAILED one

        by_amount = await call(
            http,
            sb,
            "GET",
            "/lineItems",
            params={"columnSortName": "amountIssued", "columnSortAscending": "true"},
        )
        amounts = [li["amountIssued"]["value"] for li in by_amount.body["lineItems"]]
        assert amounts == sorted(amounts) and amounts[-1] == Decimal("25.00")
        assert "reward" not in by_amount.body["lineItems"][0]  # LineItemView: no reward


@pytest.mark.parametrize(
    ("params", "status", "i18n"),
    [
        ({"status": "DONE"}, 400, "400.002"),
        ({"emailStatus": "LOST"}, 400, "400.002"),
        ({"deliveryMethod": "PIGEON"}, 400, "400.002"),
        ({"deliveryStatus": "SOMEWHERE"}, 400, "400.002"),
        ({"orderStatus": "GONE"}, 400, "400.002"),
        ({"orderSource": "XX"}, 400, "400.002"),
        ({"startDate": "yesterday"}, 400, "400.002"),
        ({"endDate": "2024-13-01"}, 400, "400.002"),
        ({"elementsPerBlock": "0"}, 400, "400.002"),
        ({"elementsPerBlock": "ten"}, 400, "400.002"),
        ({"elementsPerBlock": "101"}, 422, "422.042"),
        ({"minRemainingBalance": "lots"}, 400, "400.002"),
        ({"maxRemainingBalance": "NaN"}, 400, "400.002"),
        ({"hasRemainingBalance": "maybe"}, 400, "400.002"),
        ({"pagePrevious": "2"}, 400, "400.002"),
        ({"columnSortName": "colour"}, 400, "400.002"),
        ({"columnSortAscending": "up"}, 400, "400.002"),
        ({"pageKeys": ["only-one"]}, 400, "400.002"),
        ({"pageKeys": ["not-a-date", "U000000001"]}, 400, "400.002"),
        ({"startDate": "2024-01-01", "endDate": "2024-12-31"}, 422, "422.043"),
    ],
)
async def test_list_refuses_bad_filters(params: dict[str, Any], status: int, i18n: str) -> None:
    async with Sandbox(order_rate=None, max_range_days=100) as sb, session(sb) as http:
        answer = await call(http, sb, "GET", "/lineItems", params=params)
    assert answer.status == status and key(answer) == i18n


async def test_keyset_paging_forward_and_back() -> None:
    async with Sandbox(order_rate=None, clock=frozen()) as sb, session(sb) as http:
        ids = sb.seed_orders(25, start=START, step=timedelta(minutes=1))
        lines = [sb.orders[i]["referenceLineItemID"] for i in ids][::-1]  # newest first

        async def page(**params: Any) -> dict[str, Any]:
            answer = await call(
                http, sb, "GET", "/lineItems", params={"elementsPerBlock": 10, **params}
            )
            assert answer.status == 200, answer
            return dict(answer.body)

        seen: list[str] = []
        pages = []
        keys: list[str] = []
        while True:
            body = await page(**({"pageKeys": keys} if keys else {}))
            pages.append(body)
            seen += [li["referenceLineItemID"] for li in body["lineItems"]]
            keys = body["keysetPage"]["nextPageKeys"]
            assert body["keysetPage"]["totalCount"] == 25
            if not keys:
                break
        assert seen == lines
        assert [p["keysetPage"]["resultCount"] for p in pages] == [10, 10, 5]
        assert pages[0]["keysetPage"]["previousPageKeys"] == []
        back_keys = pages[2]["keysetPage"]["previousPageKeys"]
        assert back_keys[1] == lines[20]
        back = await page(pageKeys=back_keys, pagePrevious="true")
        assert [li["referenceLineItemID"] for li in back["lineItems"]] == lines[10:20]
        # a comma-separated pageKeys reads the same
        joined = await page(pageKeys=",".join(pages[0]["keysetPage"]["nextPageKeys"]))
        assert joined["lineItems"] == pages[1]["lineItems"]
        # ascending by amount, with a tie-break on the ID
        asc = await page(columnSortName="amountIssued", columnSortAscending="true")
        nxt = await page(
            columnSortName="amountIssued",
            columnSortAscending="true",
            pageKeys=asc["keysetPage"]["nextPageKeys"],
        )
        assert [li["referenceLineItemID"] for li in asc["lineItems"] + nxt["lineItems"]] == (
            lines[::-1][:20]
        )


# --- the verbose view and the life on the clock ----------------------------------------------


async def test_the_life_of_an_email_line_item_on_a_frozen_clock() -> None:
    clock = frozen()
    async with (
        Sandbox(order_rate=None, clock=clock, pending_for=60, delivery_for=30) as sb,
        session(sb) as http,
    ):
        sb.set_balance("account-1", "100")
        made = await order(http, sb, campaign="spring", notes="hello")
        line = made["referenceLineItemID"]

        def seen(li: dict[str, Any]) -> tuple[Any, ...]:
            return (
                li["status"],
                li["orderStatus"],
                li["deliveryStatus"],
                li["emailStatus"],
                li["rewardStatus"],
                li["canCancel"],
                li["remainingBalance"],
            )

        first = await line_item(http, sb, line)
        assert seen(first) == ("PENDING", "PENDING", "PENDING", "PENDING", None, False, None)
        assert first["reward"] is None  # no reward before it is COMPLETE
        clock.advance(59.999)
        assert seen(await line_item(http, sb, line))[0] == "PENDING"
        clock.advance(0.001)
        done = await line_item(http, sb, line)
        assert seen(done) == ("COMPLETE", "COMPLETE", "PROCESSING", "SENT", "ACTIVE", True, 10)
        assert done["reward"]["credentialList"]
        clock.advance(30)
        li = await line_item(http, sb, line)
        assert seen(li) == ("COMPLETE", "COMPLETE", "DELIVERED", "DELIVERED", "ACTIVE", True, 10)
        assert li["referenceOrderID"] == made["referenceOrderID"]
        assert li["dateIssued"] == made["createdAt"] and li["lineNumber"] == 1
        assert li["amountIssued"] == {"value": 10, "currencyCode": "USD"}
        assert li["amountCharged"]["total"] == 10
        assert li["campaign"] == "spring" and li["orderNotes"] == "hello"
        assert li["orderSource"] == "RA" and li["canFreeze"] is True
        assert sb.balance("account-1") == 90
        assert sb.line_items[line] == li


async def test_failed_bounced_physical_and_undelivered_lives() -> None:
    clock = frozen()
    async with Sandbox(order_rate=None, clock=clock, pending_for=10) as sb, session(sb) as http:
        sb.set_balance("account-1", "100")
        sb.fail_next()
        failed = (await order(http, sb))["referenceLineItemID"]
        sb.bounce_next()
        bounced = (await order(http, sb))["referenceLineItemID"]
        address = {
            "streetLine1": "1 Main St",
            "city": "Springfield",
            "stateOrProvince": "IL",
            "postalCode": "62701",
            "country": "US",
        }
        physical = (
            await order(
                http,
                sb,
                utid="U157189",
                deliveryMethod="ADDRESS",
                recipient={"firstName": "Ann", "lastName": "Lee", "address": address},
            )
        )["referenceLineItemID"]
        silent = (await order(http, sb, deliveryMethod="NONE", sendEmail=False))[
            "referenceLineItemID"
        ]
        assert sb.balance("account-1") == 70  # the failed one was never charged

        async def states(line: str) -> tuple[Any, ...]:
            li = await line_item(http, sb, line)
            return li["status"], li["deliveryStatus"], li["emailStatus"], li["rewardStatus"]

        clock.advance(10)
        assert await states(failed) == ("FAILED", "FAILED", "NOT_DELIVERED", None)
        assert (await line_item(http, sb, failed))["lineItemErrors"][0]["error_code"]
        assert await states(bounced) == ("COMPLETE", "PROCESSING", "SENT", "ACTIVE")
        assert await states(physical) == ("COMPLETE", "PROCESSING", None, "ACTIVE")
        assert await states(silent) == ("COMPLETE", "DELIVERED", None, "ACTIVE")
        clock.advance(10)  # delivery_for defaults to pending_for
        assert await states(bounced) == ("COMPLETE", "FAILED", "BOUNCE", "ACTIVE")
        assert await states(physical) == ("COMPLETE", "DISPATCHED", None, "ACTIVE")
        clock.advance(10)
        assert await states(physical) == ("COMPLETE", "DELIVERED", None, "ACTIVE")


# --- PATCH and the actions -----------------------------------------------------------------


async def test_update_a_line_item() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        line = (await order(http, sb))["referenceLineItemID"]
        url = f"/lineItems/{line}"
        body = {"purchaseOrderNumber": "PO-9", "campaign": "Fall 2025", "orderNotes": "n" * 150}
        accepted = await call(http, sb, "PATCH", url, json=body)
        assert accepted.status == 202 and accepted.body == "Accepted"
        li = await line_item(http, sb, line)
        assert (li["purchaseOrderNumber"], li["campaign"], li["orderNotes"]) == tuple(body.values())
        listed = await call(http, sb, "GET", "/lineItems", params={"campaign": "Fall 2025"})
        assert listed.body["keysetPage"]["totalCount"] == 1
        orders = await call(http, sb, "GET", "/orders", params={"campaign": "Fall 2025"})
        assert orders.body["page"]["totalCount"] == 1  # the order's campaign, cache refreshed
        bad = await call(
            http,
            sb,
            "PATCH",
            url,
            json={"campaign": "no-dashes!", "orderNotes": "n" * 151, "purchaseOrderNumber": 7},
        )
        assert paths(bad) == {"campaign", "orderNotes", "purchaseOrderNumber"}
        assert key(await call(http, sb, "PATCH", url, data=b"[1,")) == "400.001"
        assert key(await call(http, sb, "PATCH", "/lineItems/U404", json={})) == "404.003"


async def test_cancel_refunds_and_refusals_agree_with_can_cancel() -> None:
    clock = frozen()
    async with Sandbox(order_rate=None, clock=clock, pending_for=5) as sb, session(sb) as http:
        sb.set_balance("account-1", "50")
        line = (await order(http, sb))["referenceLineItemID"]
        sb.fail_next()
        failed = (await order(http, sb))["referenceLineItemID"]
        assert sb.balance("account-1") == 40
        pending = await act(http, sb, line, "cancel", reasonCode="DUPLICATE")
        assert pending.status == 422 and key(pending) == "422.104"
        clock.advance(5)
        assert (await line_item(http, sb, line))["canCancel"] is True
        bad_code = await act(http, sb, line, "cancel", reasonCode="VERIFY_ORDER")  # a freeze code
        assert bad_code.status == 422 and key(bad_code) == "422.141"
        other = await act(http, sb, line, "cancel", reasonCode="OTHER")
        assert other.status == 422 and key(other) == "422.142"
        blank = await act(http, sb, line, "cancel", reasonCode="OTHER", otherReason="  ")
        assert key(blank) == "422.142"
        assert paths(await act(http, sb, line, "cancel")) == {"reasonCode"}
        assert paths(await act(http, sb, line, "cancel", reasonCode=1)) == {"reasonCode"}
        assert key(await call(http, sb, "POST", f"/lineItems/{line}/cancel", data=b"x")) == (
            "400.001"
        )
        ok = await act(http, sb, line, "cancel", reasonCode="OTHER", otherReason="wrong person")
        assert ok.status == 202 and ok.body == "Accepted"
        assert sb.balance("account-1") == 50  # refunded
        li = await line_item(http, sb, line)
        assert (li["status"], li["orderStatus"], li["rewardStatus"]) == ("CANCELLED",) * 3
        assert (li["canCancel"], li["canFreeze"], li["remainingBalance"]) == (False, False, 0)
        assert li["lineItemActionReason"] == "wrong person"
        assert li["lineItemActionHistory"][0]["action"] == "CANCEL"
        order_id = li["referenceOrderID"]
        assert (await call(http, sb, "GET", f"/orders/{order_id}")).body["status"] == "CANCELLED"
        again = await act(http, sb, line, "cancel", reasonCode="DUPLICATE")
        assert again.status == 422 and key(again) == "422.101"
        assert sb.balance("account-1") == 50  # refunded once
        fail = await act(http, sb, failed, "cancel", reasonCode="DUPLICATE")
        assert key(fail) == "422.103" and (await line_item(http, sb, failed))["canCancel"] is False
        assert key(await act(http, sb, "U404", "cancel", reasonCode="FRAUD")) == "404.003"


async def test_freeze_and_unfreeze() -> None:
    clock = frozen()
    async with Sandbox(order_rate=None, clock=clock, pending_for=5) as sb, session(sb) as http:
        line = (await order(http, sb))["referenceLineItemID"]
        sb.fail_next()
        failed = (await order(http, sb))["referenceLineItemID"]
        assert key(await act(http, sb, line, "freeze", reasonCode="FRAUD")) == "422.114"
        clock.advance(5)
        assert key(await act(http, sb, line, "unfreeze", reasonCode="FRAUD")) == "422.121"
        assert key(await act(http, sb, line, "freeze", reasonCode="DUPLICATE")) == "422.141"
        assert (await act(http, sb, line, "freeze", reasonCode="VERIFY_ORDER")).status == 202
        li = await line_item(http, sb, line)
        assert (li["rewardStatus"], li["canFreeze"], li["canCancel"]) == ("FROZEN", False, False)
        assert li["status"] == "COMPLETE" and li["remainingBalance"] == 10
        assert key(await act(http, sb, line, "freeze", reasonCode="FRAUD")) == "422.112"
        assert key(await act(http, sb, line, "cancel", reasonCode="FRAUD")) == "422.102"
        assert key(await act(http, sb, line, "reissue", reasonCode="OTHER", otherReason="x")) == (
            "422.132"
        )
        assert (await act(http, sb, line, "unfreeze", reasonCode="VERIFY_ORDER")).status == 202
        li = await line_item(http, sb, line)
        assert (li["rewardStatus"], li["canFreeze"], li["canCancel"]) == ("ACTIVE", True, True)
        assert [a["action"] for a in li["lineItemActionHistory"]] == ["FREEZE", "UNFREEZE"]
        assert li["lineItemActionHistory"][1]["reason"] == "The order was verified"
        assert key(await act(http, sb, failed, "freeze", reasonCode="FRAUD")) == "422.113"
        assert (await act(http, sb, line, "cancel", reasonCode="FRAUD")).status == 202
        assert key(await act(http, sb, line, "freeze", reasonCode="FRAUD")) == "422.111"
        cancelled = await act(http, sb, line, "unfreeze", reasonCode="FRAUD")
        assert cancelled.body["errors"][0]["message"] == (
            "Cannot unfreeze a line item that is cancelled or not frozen"
        )


async def test_reissue_links_both_ways_cancels_and_charges() -> None:
    clock = frozen()
    async with Sandbox(order_rate=None, clock=clock) as sb, session(sb) as http:
        sb.set_balance("account-1", "30")
        old = (await order(http, sb, externalRefID="ext-9", notes="first"))["referenceLineItemID"]
        assert sb.balance("account-1") == 20
        body = {
            "reasonCode": "RECIPIENT",
            "amount": 25,
            "recipient": {"email": "new@example.com"},
            "notes": "second",
        }
        made = await act(http, sb, old, "reissue", **body)
        assert made.status == 201, made
        new = made.body["referenceLineItemID"]
        assert new != old and made.body["recipient"]["email"] == "new@example.com"
        assert made.body["amountCharged"]["total"] == 25 and made.body["externalRefID"] is None
        assert sb.balance("account-1") == Decimal(5)  # 30 - 10 + 10 - 25
        was = await line_item(http, sb, old)
        now = await line_item(http, sb, new)
        assert was["status"] == "CANCELLED" and was["reissuedToReferenceLineItemId"] == new
        assert now["reissuedFromReferenceLineItemId"] == old and now["orderNotes"] == "second"
        for li in (was, now):
            [entry] = li["lineItemActionHistory"]
            assert entry["action"] == "REISSUE" and entry["reason"] == "Incorrect recipient"
            assert (entry["oldReferenceLineItemId"], entry["newReferenceLineItemId"]) == (old, new)
        again = await act(http, sb, old, "reissue", reasonCode="RECIPIENT")
        assert again.status == 422 and key(again) == "422.131"
        assert key(await act(http, sb, new, "reissue", reasonCode="FRAUD")) == "422.141"
        refused = await act(http, sb, new, "reissue", reasonCode="CURRENCY", amount=1000)
        assert refused.status == 402 and key(refused) == "402.001"
        bad = await act(
            http,
            sb,
            new,
            "reissue",
            reasonCode="CURRENCY",
            amount=-1,
            deliveryMethod="ADDRESS",
            notes="x" * 151,
        )
        assert paths(bad) == {"amount", "deliveryMethod", "notes"}
        no_phone = await act(
            http, sb, new, "reissue", reasonCode="CURRENCY", deliveryMethod="PHONE"
        )
        assert paths(no_phone) == {"recipient.mobileNumber"}
        sb.freeze("account-1")
        frozen_account = await act(http, sb, new, "reissue", reasonCode="CURRENCY")
        assert frozen_account.status == 422 and key(frozen_account) == "404.142"
        sb.unfreeze("account-1")
        sb.fail_next()
        failed = await act(http, sb, new, "reissue", reasonCode="CURRENCY", amount=1)
        third = failed.body["referenceLineItemID"]
        assert (await line_item(http, sb, third))["status"] == "FAILED"
        assert key(await act(http, sb, third, "reissue", reasonCode="CURRENCY")) == "422.133"


async def test_reissue_of_a_pending_line_item_is_refused() -> None:
    async with Sandbox(order_rate=None, pending_for=60, clock=frozen()) as sb, session(sb) as http:
        line = (await order(http, sb))["referenceLineItemID"]
        assert key(await act(http, sb, line, "reissue", reasonCode="OTHER", otherReason="x")) == (
            "422.134"
        )


async def test_reason_codes_match_the_spec_enums() -> None:
    async with Sandbox(order_rate=None) as sb, session(sb) as http:
        answer = await call(http, sb, "GET", "/lineItems/reasonCodes")
    assert answer.status == 200
    codes = answer.body
    assert set(codes["CANCEL"]) == set(schema_enum("CancelLineItemRequestCriteria", "reasonCode"))
    assert set(codes["FREEZE"]) == set(schema_enum("FreezeLineItemRequestCriteria", "reasonCode"))
    assert set(codes["UNFREEZE"]) == set(
        schema_enum("UnfreezeLineItemRequestCriteria", "reasonCode")
    )
    assert set(codes["CANCEL_AND_REISSUE"]) == set(
        schema_enum("ReissueLineItemRequestCriteria", "reasonCode")
    )
    assert all(isinstance(t, str) and t for m in codes.values() for t in m.values())


async def test_embedded_url() -> None:
    clock = frozen()
    async with Sandbox(order_rate=None, clock=clock, pending_for=5) as sb, session(sb) as http:
        embedded = (await order(http, sb, deliveryMethod="EMBEDDED", recipient=None))[
            "referenceLineItemID"
        ]
        component = (await order(http, sb, deliveryMethod="EMBEDDED_COMPONENT", recipient=None))[
            "referenceLineItemID"
        ]
        email = (await order(http, sb))["referenceLineItemID"]
        early = await call(http, sb, "GET", f"/lineItems/{embedded}/embeddedUrl")
        assert early.status == 422 and key(early) == "422.151"
        clock.advance(5)
        for line in (embedded, component):
            answer = await call(http, sb, "GET", f"/lineItems/{line}/embeddedUrl")
            assert answer.status == 200 and answer.body["url"].startswith("https://")
        refused = await call(http, sb, "GET", f"/lineItems/{email}/embeddedUrl")
        assert refused.status == 403 and key(refused) == "403.110"
        missing = await call(http, sb, "GET", "/lineItems/U404/embeddedUrl")
        assert missing.status == 404 and key(missing) == "404.003"


async def test_resend_history_and_the_resend_route_keep_working() -> None:
    async with Sandbox(order_rate=None, resend_cooldown=0) as sb, session(sb) as http:
        made = await order(http, sb)
        line = made["referenceLineItemID"]
        resend = await call(
            http,
            sb,
            "POST",
            f"/lineItems/{line}/resends",
            json={"reasonCode": "NOT_RECEIVED", "newEmail": "b@example.com"},
        )
        assert resend.status == 201
        [entry] = (await line_item(http, sb, line))["resendHistory"]
        assert entry["reasonCode"] == "NOT_RECEIVED"
        assert entry["recipient"]["email"] == "b@example.com"


# --- the contract -----------------------------------------------------------------------------


async def test_every_line_item_answer_meets_the_contract() -> None:
    clock = frozen()
    async with (
        Sandbox(order_rate=None, clock=clock, pending_for=5, contract=checker()) as sb,
        session(sb) as http,
    ):
        sb.seed_orders(15, start=START, step=timedelta(hours=1))
        sb.set_balance("account-1", "1000")
        kinds: list[tuple[str, dict[str, Any]]] = [
            ("EMAIL", {}),
            ("EMAIL", {}),
            ("EMBEDDED", {"recipient": None}),
            ("NONE", {"recipient": None}),
            ("EMAIL", {"utid": "U666425"}),
        ]
        lines = [
            (await order(http, sb, externalRefID=f"ext-{i}", deliveryMethod=m, **extra))[
                "referenceLineItemID"
            ]
            for i, (m, extra) in enumerate(kinds)
        ]
        statuses = []

        async def hit(method: str, path: str, **kw: Any) -> None:
            statuses.append((await call(http, sb, method, path, **kw)).status)

        await hit("GET", "/lineItems", params={"elementsPerBlock": 5})
        await hit("GET", f"/lineItems/{lines[0]}")  # PENDING
        clock.advance(5)
        await hit("GET", "/lineItems", params={"status": "COMPLETE", "elementsPerBlock": 100})
        await hit("GET", "/lineItems", params={"status": "BAD"})
        await hit("GET", "/lineItems", params={"elementsPerBlock": 500})
        await hit("GET", "/lineItems/reasonCodes")
        await hit("PATCH", f"/lineItems/{lines[0]}", json={"campaign": "c", "orderNotes": "n"})
        await hit("PATCH", f"/lineItems/{lines[0]}", json={"campaign": "!"})
        await hit("POST", f"/lineItems/{lines[0]}/freeze", json={"reasonCode": "FRAUD"})
        await hit("POST", f"/lineItems/{lines[0]}/freeze", json={"reasonCode": "FRAUD"})
        await hit("POST", f"/lineItems/{lines[0]}/unfreeze", json={"reasonCode": "FRAUD"})
        await hit("POST", f"/lineItems/{lines[0]}/unfreeze", json={"reasonCode": "FRAUD"})
        await hit("POST", f"/lineItems/{lines[0]}/cancel", json={"reasonCode": "DUPLICATE"})
        await hit("POST", f"/lineItems/{lines[0]}/cancel", json={"reasonCode": "DUPLICATE"})
        await hit("POST", f"/lineItems/{lines[1]}/reissue", json={"reasonCode": "RECIPIENT"})
        await hit("POST", f"/lineItems/{lines[1]}/reissue", json={"reasonCode": "RECIPIENT"})
        await hit("POST", f"/lineItems/{lines[1]}/reissue", json={"reasonCode": "NOPE"})
        await hit("GET", f"/lineItems/{lines[2]}/embeddedUrl")
        await hit("GET", f"/lineItems/{lines[3]}/embeddedUrl")
        for line in lines:
            await hit("GET", f"/lineItems/{line}")
        await hit("GET", "/lineItems/U404")
        await hit("POST", "/lineItems/U404/cancel", json={"reasonCode": "FRAUD"})
        await hit("GET", "/lineItems", params={"columnSortName": "rewardName"})
    assert {200, 201, 202, 400, 403, 404, 422} <= set(statuses)
    assert [str(v) for v in sb.contract_violations if v.direction == "response"] == []
    requests = [str(v) for v in sb.contract_violations if v.direction == "request"]
    assert all("campaign" in v or "NOPE" in v for v in requests), requests  # the bad bodies
