"""client.line_items with aioresponses: every operation's request (method, path, query,
body), its decoding, its validation before sending, and which ones are retried."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

import tango_async as ta

from .conftest import BASE

LI = "A12-34567890-12"
LI_URL = f"{BASE}/lineItems/{LI}"

VERBOSE: dict[str, Any] = {
    "referenceLineItemID": LI,
    "externalReferenceLineItemID": "ext-1",
    "referenceOrderID": "RA240101-1-01",
    "orderSource": "RA",
    "status": "COMPLETE",
    "orderStatus": "COMPLETE",
    "emailStatus": "DELIVERED",
    "deliveryMethod": "EMAIL",
    "deliveryStatus": "DELIVERED",
    "rewardStatus": "ACTIVE",
    "canCancel": True,
    "canFreeze": False,
    "lineNumber": 1,
    "rewardName": "Amazon.com Gift Card",
    "amountIssued": {"value": 10.0, "currencyCode": "USD"},
    "amountCharged": {"value": 10.0, "currencyCode": "USD", "fee": 0, "total": 10.0},
    "remainingBalance": 2.5,
    "dateIssued": "2024-01-01T00:00:00Z",
    "expirationDate": "2025-01-01T00:00:00Z",
    "accountNumber": "A1",
    "accountIdentifier": "acct-12345",
    "customerIdentifier": "cust-12345",
    "etid": "E000000",
    "utid": "U561593",
    "reissuedFromReferenceLineItemId": "A11-1",
    "lineItemErrors": [{"error_code": "X1", "error_message": "boom"}],
    "reward": {
        "credentials": {"Claim Code": "SECRET-CODE"},
        "credentialList": [
            {
                "label": "Claim Code",
                "value": "SECRET-CODE",
                "type": "text",
                "credentialType": "code",
            }
        ],
    },
    "lineItemActionHistory": [
        {"action": "FREEZE", "reason": "FRAUD", "actionDate": "2024-01-02"},
    ],
    "resendHistory": [{"dateIssued": "2024-01-03T00:00:00Z", "reasonCode": "REMINDER"}],
    "rewardViewHistory": [{"date": "2024-01-04T00:00:00Z", "status": "VIEWED"}],
    "redemptionHistory": [{"referenceLineItemID": "A11-1", "status": "CANCELLED"}],
    "somethingNew": {"nested": [1, 2]},
}


def sent(m: aioresponses, method: str, url: str) -> list[Any]:
    """The requests made to ``url`` (without its query) by ``method``."""
    return [
        call
        for (meth, u), calls in m.requests.items()
        if meth == method and str(u).split("?")[0] == url
        for call in calls
    ]


def body_of(call: Any) -> Any:
    return json.loads(call.kwargs["data"])


async def test_get_decodes_every_documented_field(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(LI_URL, payload=VERBOSE)
        item = await mocked_client.line_items.get(LI)
    assert item.reference_line_item_id == LI
    assert item.external_reference_line_item_id == "ext-1"
    assert item.reference_order_id == "RA240101-1-01"
    assert (item.status, item.email_status, item.delivery_status) == (
        "COMPLETE",
        "DELIVERED",
        "DELIVERED",
    )
    assert item.can_cancel is True and item.can_freeze is False
    assert item.remaining_balance == Decimal("2.5")
    assert item.amount_charged is not None and item.amount_charged.total == Decimal("10.0")
    assert item.reissued_from_reference_line_item_id == "A11-1"
    assert item.line_item_errors == [ta.LineItemError(error_code="X1", error_message="boom")]
    assert item.reward is not None and item.reward.credential_list[0].value == "SECRET-CODE"
    assert item.line_item_action_history is not None
    assert item.line_item_action_history[0].action == "FREEZE"
    assert item.resend_history is not None and item.resend_history[0].reason_code == "REMINDER"
    assert item.redemption_history is not None
    assert item.redemption_history[0].status == "CANCELLED"
    assert "SECRET-CODE" not in repr(item)
    # the pair is learnt: a resend of the line item starts its order's cooldown too
    links = mocked_client._requestor.resend_links
    assert links.order_of(LI) == "RA240101-1-01"


async def test_list_renders_every_filter_and_follows_page_keys(
    mocked_client: ta.TangoClient,
) -> None:
    first = {
        "keysetPage": {
            "nextPageKeys": ["k1", "k2"],
            "previousPageKeys": [],
            "resultCount": 2,
            "totalCount": 3,
        },
        "lineItems": [VERBOSE | {"referenceLineItemID": "L1"}, {"referenceLineItemID": "L2"}],
    }
    second = {
        "keysetPage": {"nextPageKeys": ["k3"], "previousPageKeys": ["k0"], "resultCount": 1},
        "lineItems": [{"referenceLineItemID": "L3"}],
    }
    pattern = re.compile(re.escape(f"{BASE}/lineItems") + r"\?.*")
    with aioresponses() as m:
        m.get(pattern, payload=first)
        m.get(pattern, payload=second)
        items = mocked_client.line_items.list(
            reference_order_id="RA1",
            external_ref_id="ext-1",
            status="FAILED",
            email_status=ta.EmailStatus.BOUNCE,
            delivery_method="EMAIL",
            delivery_status="FAILED",
            order_status="PARTIAL",
            order_source="RA",
            recipient_email="a@b.co",
            recipient_street_line1="1 Main",
            account_identifier="acct-12345",
            start_date="2024-01-01",
            end_date="2024-01-31",
            sort_by="dateIssued",
            ascending=True,
            min_remaining_balance=Decimal("1"),
            max_remaining_balance=5,
            has_remaining_balance=True,
            elements_per_block=2,
        )
        got = [i.reference_line_item_id async for i in items]
        calls = [u for (meth, u) in m.requests if meth == "GET"]
    assert got == ["L1", "L2", "L3"]
    assert len(calls) == 2
    q1 = URL(str(calls[0])).query
    assert q1["referenceOrderID"] == "RA1" and q1["externalRefID"] == "ext-1"
    assert q1["emailStatus"] == "BOUNCE" and q1["orderStatus"] == "PARTIAL"
    assert q1["recipientStreetLine1"] == "1 Main"
    assert q1["columnSortName"] == "dateIssued" and q1["columnSortAscending"] == "true"
    assert q1["startDate"].startswith("2024-01-01T00:00:00")
    assert q1["endDate"].startswith("2024-01-31T23:59:59")
    assert q1["minRemainingBalance"] == "1" and q1["hasRemainingBalance"] == "true"
    assert q1["elementsPerBlock"] == "2" and "pageKeys" not in q1
    assert URL(str(calls[1])).query.getall("pageKeys") == ["k1", "k2"]


async def test_list_pages_and_a_looping_server(mocked_client: ta.TangoClient) -> None:
    loop = {
        "keysetPage": {"nextPageKeys": ["same"], "previousPageKeys": []},
        "lineItems": [{"referenceLineItemID": "L1"}],
    }
    pattern = re.compile(re.escape(f"{BASE}/lineItems") + r"\?.*")
    with aioresponses() as m:
        m.get(pattern, payload=loop, repeat=True)
        pages = [p async for p in mocked_client.line_items.list(elements_per_block=1).pages()]
    # the second page hands out the key the first gave: the walk stops, it does not spin
    assert [len(p.line_items) for p in pages] == [1, 1]
    assert pages[0].next_page_keys == ["same"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": "RETURNED"}, "status"),
        ({"email_status": "LOST"}, "email_status"),
        ({"order_status": "QUEUED"}, "order_status"),
        ({"sort_by": "amount"}, "sort_by"),
        ({"elements_per_block": 101}, "elements_per_block"),
        ({"start_date": "2024-02-01", "end_date": "2024-01-01"}, "start_date"),
        ({"min_remaining_balance": 5, "max_remaining_balance": 1}, "min_remaining_balance"),
        ({"has_remaining_balance": "yes"}, "has_remaining_balance"),
        ({"campaign": "a\nb"}, "campaign"),
        ({"utid": " "}, "utid"),
        ({"account_identifier": "x"}, "account_identifier"),
    ],
)
async def test_list_refuses_bad_filters_before_sending(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        mocked_client.line_items.list(**kwargs)
    assert info.value.field == field
    assert not m.requests


async def test_update_patches_and_is_retried(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.patch(LI_URL, status=503)
        m.patch(LI_URL, status=202, body='"Accepted"')
        await mocked_client.line_items.update(LI, campaign="Spring 2024", order_notes="n")
        calls = sent(m, "PATCH", LI_URL)
    assert len(calls) == 2
    assert body_of(calls[0]) == {"campaign": "Spring 2024", "orderNotes": "n"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "purchase_order_number"),
        ({"campaign": "no-hyphens"}, "campaign"),
        ({"campaign": "x" * 101}, "campaign"),
        ({"order_notes": "x" * 151}, "order_notes"),
        ({"purchase_order_number": "x" * 101}, "purchase_order_number"),
    ],
)
async def test_update_refuses_bad_fields(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.line_items.update(LI, **kwargs)
    assert info.value.field == field and not m.requests


@pytest.mark.parametrize("action", ["cancel", "freeze", "unfreeze"])
async def test_actions_post_their_reason_and_are_not_retried_after_sending(
    mocked_client: ta.TangoClient, action: str
) -> None:
    url = f"{LI_URL}/{action}"
    call = getattr(mocked_client.line_items, action)
    with aioresponses() as m:
        m.post(url, status=202, body='"Accepted"')
        await call(LI, reason_code="OTHER", other_reason="asked by HR")
        m.post(url, status=503)
        with pytest.raises(ta.ServerError):
            await call(LI, reason_code="FRAUD")
        calls = sent(m, "POST", url)
    assert body_of(calls[0]) == {"reasonCode": "OTHER", "otherReason": "asked by HR"}
    assert len(calls) == 2  # the 503 was not retried: the action may have happened
    with aioresponses() as m:
        m.post(url, status=429, headers={"Retry-After": "0"})
        m.post(url, status=202, body='"Accepted"')
        await call(LI, reason_code="FRAUD")  # a 429 is a refusal: retried
        assert len(sent(m, "POST", url)) == 2


async def test_action_reason_codes_follow_each_action(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        with pytest.raises(ta.ValidationError, match="reason_code"):
            await mocked_client.line_items.cancel(LI, reason_code="VERIFY_ORDER")  # freeze's
        with pytest.raises(ta.ValidationError, match="reason_code"):
            await mocked_client.line_items.freeze(LI, reason_code="DUPLICATE")  # cancel's
        with pytest.raises(ta.ValidationError, match="other_reason"):
            await mocked_client.line_items.unfreeze(LI, reason_code="OTHER", other_reason=" ")
        with pytest.raises(ta.ValidationError, match="reference_line_item_id"):
            await mocked_client.line_items.cancel("../orders", reason_code="FRAUD")
        assert not m.requests


async def test_reissue_spends_once(mocked_client: ta.TangoClient) -> None:
    url = f"{LI_URL}/reissue"
    answer = {
        "referenceOrderID": "RA2",
        "referenceLineItemID": "L2",
        "externalRefID": "x",
        "status": "COMPLETE",
        "redemptionInstructions": "use it",
        "reward": {"credentials": {"Code": "NEW-SECRET"}},
    }
    with aioresponses() as m:
        m.post(url, status=201, payload=answer)
        new = await mocked_client.line_items.reissue(
            LI,
            reason_code=ta.ReissueReasonCode.RECIPIENT,
            amount=Decimal("12.50"),
            delivery_method="EMAIL",
            recipient={"email": "new@example.com", "first_name": "Ann"},
            notes="typo in email",
        )
        calls = sent(m, "POST", url)
    assert new.reference_line_item_id == "L2" and new.redemption_instructions == "use it"
    assert "NEW-SECRET" not in repr(new)
    assert body_of(calls[0]) == {
        "reasonCode": "RECIPIENT",
        "amount": 12.5,
        "deliveryMethod": "EMAIL",
        "recipient": {"firstName": "Ann", "email": "new@example.com"},
        "notes": "typo in email",
    }
    with aioresponses() as m:
        m.post(url, exception=ConnectionResetError("reset after sending"))
        with pytest.raises(ta.APIConnectionError) as info:
            await mocked_client.line_items.reissue(LI, reason_code="OTHER", other_reason="x")
        assert info.value.maybe_sent
        assert len(sent(m, "POST", url)) == 1  # never sent twice


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason_code": "FRAUD"}, "reason_code"),  # not a reissue reason
        ({"reason_code": "OTHER"}, "other_reason"),
        ({"reason_code": "RECIPIENT", "amount": 0}, "amount"),
        ({"reason_code": "RECIPIENT", "amount": Decimal("1.001")}, "amount"),
        ({"reason_code": "RECIPIENT", "delivery_method": "ADDRESS"}, "delivery_method"),
        ({"reason_code": "RECIPIENT", "delivery_method": "PHONE"}, "recipient.mobile_number"),
        ({"reason_code": "RECIPIENT", "recipient": {"first_name": "<b>"}}, "recipient.first_name"),
        ({"reason_code": "RECIPIENT", "recipient": {"email": "nope"}}, "recipient.email"),
        ({"reason_code": "RECIPIENT", "recipient": {"shoe": 1}}, "recipient"),
        ({"reason_code": "RECIPIENT", "notes": "x" * 151}, "notes"),
    ],
)
async def test_reissue_refuses_bad_bodies(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.line_items.reissue(LI, **kwargs)
    assert info.value.field == field and not m.requests


async def test_reason_codes_and_embedded_url(mocked_client: ta.TangoClient) -> None:
    codes = {
        "FREEZE": {"FRAUD": "Fraud"},
        "UNFREEZE": {"OTHER": "Other"},
        "CANCEL": {"DUPLICATE": "Duplicate"},
        "CANCEL_AND_REISSUE": {"RECIPIENT": "Recipient"},
    }
    with aioresponses() as m:
        m.get(f"{BASE}/lineItems/reasonCodes", payload=codes)
        m.get(f"{LI_URL}/embeddedUrl", payload={"url": "https://redeem.example/abc"})
        m.get(f"{LI_URL}/embeddedUrl", payload={})
        got = await mocked_client.line_items.reason_codes()
        url = await mocked_client.line_items.embedded_url(LI)
        with pytest.raises(ta.APIResponseValidationError, match="no url"):
            await mocked_client.line_items.embedded_url(LI)
    assert got.cancel == {"DUPLICATE": "Duplicate"}
    assert got.cancel_and_reissue == {"RECIPIENT": "Recipient"}
    assert url == "https://redeem.example/abc"


async def test_hostile_line_item_answers_are_typed_errors(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(LI_URL, payload={"referenceLineItemID": LI, "dateIssued": "2024-01-01T00:00:00"})
        m.get(LI_URL, payload={"referenceLineItemID": LI, "remainingBalance": "lots"})
        m.get(LI_URL, body=b"\xff\xfe not json")
        for _ in range(3):
            with pytest.raises(ta.APIResponseValidationError):
                await mocked_client.line_items.get(LI)
