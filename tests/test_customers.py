"""client.customers with aioresponses: customers (create, get, list), their accounts
(list by calling, create, update) and low-balance alerts (list, get, set, update,
delete); what is retried; the resolution of a create whose outcome is unknown (returned
once, never POSTed twice); every error status; bad input that sends nothing."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from hypothesis import given, settings
from yarl import URL

import tango_async as ta

from . import hypothesis_strategies as hs
from .conftest import BASE, FAST_RETRY, KEY, NAME

CID = "acme-customer"
AID = "acme-main-account"
ALERT = "0f8fad5b-d9cb-469f-a165-70867728950e"
C_URL = f"{BASE}/customers/{CID}"
CA_URL = f"{C_URL}/accounts"
ACC_URL = f"{CA_URL}/{AID}"
LB_URL = f"{ACC_URL}/lowbalance"
A_URL = f"{BASE}/accounts/{AID}"
CUSTOMERS = re.compile(re.escape(f"{BASE}/customers") + r"(\?.*)?$")
LB_LIST = re.compile(re.escape(LB_URL) + r"(\?.*)?$")
CA_LIST = re.compile(re.escape(CA_URL) + r"(\?.*)?$")
NO_ADAPTIVE = ta.PacingPolicy(adaptive=False)

CUSTOMER = hs.CUSTOMER_BODY
ACCOUNT = hs.ACCOUNT_BODY
ALERT_BODY = hs.ALERT_BODY


@pytest.fixture
async def mocked_client() -> AsyncIterator[ta.TangoClient]:
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, pacing=NO_ADAPTIVE
    ) as client:
        yield client


def sent(m: aioresponses, method: str, url: str | None = None) -> list[Any]:
    return [
        c
        for (meth, u), cs in m.requests.items()
        if meth == method and (url is None or str(u).split("?")[0] == url)
        for c in cs
    ]


def body_of(call: Any) -> Any:
    return json.loads(call.kwargs["data"])


def urls(m: aioresponses, method: str = "GET") -> list[URL]:
    return [URL(str(u)) for (meth, u), cs in m.requests.items() if meth == method for _ in cs]


# --- customers ------------------------------------------------------------------------


async def test_create_sends_the_criteria_and_returns_the_customer(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/customers", status=201, payload={**CUSTOMER, "accounts": []})
        customer = await mocked_client.customers.create(
            customer_identifier=CID, display_name="Acme Corp"
        )
        posts = sent(m, "POST")
    assert body_of(posts[0]) == {"customerIdentifier": CID, "displayName": "Acme Corp"}
    assert customer.customer_identifier == CID and customer.accounts == []


async def test_create_answered_with_the_criteria_only_decodes(
    mocked_client: ta.TangoClient,
) -> None:
    """The description's 201 body is CreateCustomerCriteria: the request's two fields."""
    with aioresponses() as m:
        m.post(
            f"{BASE}/customers",
            status=201,
            payload={"customerIdentifier": CID, "displayName": "Acme Corp"},
        )
        customer = await mocked_client.customers.create(
            customer_identifier=CID, display_name="Acme Corp"
        )
    assert customer.display_name == "Acme Corp" and customer.status is None


@pytest.mark.parametrize(
    "failure",
    [
        {"exception": TimeoutError()},
        {"exception": ConnectionResetError("reset after sending")},
        {"status": 500, "payload": hs.ERROR_BODY},
        {"status": 503, "payload": hs.ERROR_BODY},
        {"status": 201, "body": "{not json"},  # created, but the answer does not read
    ],
)
async def test_an_unknown_outcome_found_as_requested_is_returned_once(
    mocked_client: ta.TangoClient, failure: dict[str, Any]
) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/customers", **failure)
        m.get(C_URL, payload=CUSTOMER)
        customer = await mocked_client.customers.create(
            customer_identifier=CID, display_name="Acme Corp"
        )
        assert len(sent(m, "POST")) == 1  # never POSTed twice
        assert len(sent(m, "GET", C_URL)) == 1
    assert customer.customer_identifier == CID and customer.accounts


async def test_an_unknown_outcome_not_found_raises_the_original_error(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/customers", status=502, payload=hs.ERROR_BODY)
        m.get(C_URL, status=404, payload={**hs.ERROR_BODY, "httpCode": 404})
        with pytest.raises(ta.ServerError) as info:
            await mocked_client.customers.create(customer_identifier=CID, display_name="Acme Corp")
        assert len(sent(m, "POST")) == 1
    assert any("not created" in n for n in getattr(info.value, "__notes__", []))


async def test_an_unknown_outcome_whose_lookup_fails_raises_the_original_error(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/customers", exception=TimeoutError())
        m.get(C_URL, status=503, payload=hs.ERROR_BODY, repeat=True)
        with pytest.raises(ta.APITimeoutError) as info:
            await mocked_client.customers.create(customer_identifier=CID, display_name="Acme Corp")
        assert len(sent(m, "POST")) == 1
    assert info.value.maybe_sent
    assert any("may or may not" in n for n in getattr(info.value, "__notes__", []))


async def test_an_unknown_outcome_found_with_other_content_is_a_conflict(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/customers", exception=TimeoutError())
        m.get(C_URL, payload={**CUSTOMER, "displayName": "Someone Else"})
        with pytest.raises(ta.ConflictError) as info:
            await mocked_client.customers.create(customer_identifier=CID, display_name="Acme Corp")
        assert len(sent(m, "POST")) == 1
    assert isinstance(info.value.__cause__, ta.APITimeoutError)


async def test_a_409_is_a_conflict_without_a_lookup(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/customers", status=409, payload={**hs.ERROR_BODY, "httpCode": 409})
        with pytest.raises(ta.ConflictError):
            await mocked_client.customers.create(customer_identifier=CID, display_name="Acme Corp")
        assert len(sent(m, "POST")) == 1 and not sent(m, "GET")


async def test_create_is_retried_on_429_and_failures_before_sending(
    mocked_client: ta.TangoClient,
) -> None:
    key = aiohttp.client_reqrep.ConnectionKey("api.test.invalid", 443, True, None, None, None, None)
    unsent = aiohttp.ClientConnectorError(key, OSError(111, "refused"))
    with aioresponses() as m:
        m.post(f"{BASE}/customers", status=429, headers={"Retry-After": "0"})
        m.post(f"{BASE}/customers", exception=unsent)
        m.post(f"{BASE}/customers", status=201, payload=CUSTOMER)
        customer = await mocked_client.customers.create(
            customer_identifier=CID, display_name="Acme Corp"
        )
        assert len(sent(m, "POST")) == 3 and not sent(m, "GET")
    assert customer.customer_identifier == CID


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"customer_identifier": "abcd", "display_name": "Acme Corp"}, "customer_identifier"),
        ({"customer_identifier": "acme_1", "display_name": "Acme Corp"}, "customer_identifier"),
        ({"customer_identifier": "a" * 101, "display_name": "Acme Corp"}, "customer_identifier"),
        ({"customer_identifier": CID, "display_name": "Acme"}, "display_name"),  # < 5
        ({"customer_identifier": CID, "display_name": "A" * 101}, "display_name"),
        ({"customer_identifier": CID, "display_name": "Acme $ Corp"}, "display_name"),  # symbol
        ({"customer_identifier": CID, "display_name": "Acme\nCorp"}, "display_name"),
        ({"customer_identifier": CID, "display_name": "     "}, "display_name"),
        ({"customer_identifier": CID, "display_name": None}, "display_name"),
        ({"customer_identifier": None, "display_name": "Acme Corp"}, "customer_identifier"),
    ],
)
async def test_create_refuses_bad_input_sending_nothing(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.customers.create(**kwargs)
    assert info.value.field == field and not m.requests


async def test_display_names_take_any_script_and_punctuation(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/customers", status=201, payload=CUSTOMER, repeat=True)
        for name in ("Société Générale", "株式会社テスト", "O'Brien & Co.", "Acme\u00a0Corp"):
            await mocked_client.customers.create(customer_identifier=CID, display_name=name)
        names = [body_of(c)["displayName"] for c in sent(m, "POST")]
    assert names[0] == "Société Générale" and len(names) == 4


@pytest.mark.parametrize(
    ("status", "error", "attempts"),
    [
        (400, ta.BadRequestError, 1),
        (401, ta.AuthenticationError, 1),
        (403, ta.PermissionDeniedError, 1),
        (404, ta.NotFoundError, 1),
        (422, ta.UnprocessableEntityError, 1),
        (429, ta.RateLimitError, 4),
        (500, ta.ServerError, 4),
        (503, ta.ServerError, 4),
    ],
)
async def test_every_error_status_of_the_reads(
    mocked_client: ta.TangoClient, status: int, error: type[ta.APIError], attempts: int
) -> None:
    body = {**hs.ERROR_BODY, "httpCode": status}
    reads = (
        lambda t: t.customers.get(CID),
        lambda t: _drain(t.customers.list()),
        lambda t: _drain(t.customers.accounts(CID)),
        lambda t: _drain(t.customers.low_balance_alerts.list(CID, AID)),
        lambda t: t.customers.low_balance_alerts.get(CID, AID, ALERT),
    )
    with aioresponses() as m:
        for url in (C_URL, CUSTOMERS, CA_LIST, LB_LIST, f"{LB_URL}/{ALERT}"):
            m.get(url, status=status, payload=body, repeat=True)
        for read in reads:
            with pytest.raises(error):
                await read(mocked_client)
        assert len(sent(m, "GET")) == attempts * len(reads)


@pytest.mark.parametrize(
    ("status", "error", "posts"),
    [
        (400, ta.BadRequestError, 1),
        (401, ta.AuthenticationError, 1),
        (403, ta.PermissionDeniedError, 1),
        (404, ta.NotFoundError, 1),
        (409, ta.ConflictError, 1),
        (422, ta.UnprocessableEntityError, 1),
        (429, ta.RateLimitError, 4),
        (500, ta.ServerError, 1),  # maybe processed: not retried, looked up instead
        (503, ta.ServerError, 1),
    ],
)
async def test_every_error_status_of_the_creates(
    mocked_client: ta.TangoClient, status: int, error: type[ta.APIError], posts: int
) -> None:
    body = {**hs.ERROR_BODY, "httpCode": status}
    missing = {**hs.ERROR_BODY, "httpCode": 404}
    with aioresponses() as m:
        for url in (f"{BASE}/customers", CA_URL, LB_URL):
            m.post(url, status=status, payload=body, repeat=True)
        for url in (C_URL, A_URL):
            m.get(url, status=404, payload=missing, repeat=True)
        m.get(LB_LIST, payload={"page": {"number": 0, "totalPages": 0}}, repeat=True)
        creates = (
            mocked_client.customers.create(customer_identifier=CID, display_name="Acme Corp"),
            mocked_client.customers.accounts.create(
                CID, account_identifier=AID, display_name="Main", contact_email="a@b.co"
            ),
            mocked_client.customers.low_balance_alerts.set(
                CID, AID, display_name="low", threshold=10, emails=["a@b.co"]
            ),
        )
        for create in creates:
            with pytest.raises(error):
                await create
        assert len(sent(m, "POST")) == posts * len(creates)
        looked_up = bool(sent(m, "GET"))
    assert looked_up == (status >= 500)


async def test_list_of_customers_takes_an_array_or_cursor_pages(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(CUSTOMERS, payload=[CUSTOMER, {**CUSTOMER, "customerIdentifier": "other-1"}])
        m.get(
            CUSTOMERS, payload={"items": [CUSTOMER], "nextCursor": "n", "nextPageAvailable": True}
        )
        m.get(CUSTOMERS, payload={"items": [{**CUSTOMER, "customerIdentifier": "z-cust"}]})
        whole = [c.customer_identifier async for c in mocked_client.customers.list()]
        paged = [
            c.customer_identifier
            async for c in mocked_client.customers.list(
                display_name="Acme Corp",
                status="ACTIVE",
                account_status="ACTIVE",
                account_identifier=AID,
                customer_min_date_created_at="2024-01-01",
                account_max_date_created_at="2024-06-30T00:00:00Z",
                max_results=1,
            )
        ]
        got = urls(m)
    assert whole == [CID, "other-1"] and paged == [CID, "z-cust"]
    q = got[1].query
    assert q["displayName"] == "Acme Corp" and q["accountIdentifier"] == AID
    assert q["customerMinDateCreatedAt"] == "2024-01-01T00:00:00.000Z"
    assert q["accountMaxDateCreatedAt"] == "2024-06-30T00:00:00.000Z"
    assert got[2].query["nextCursor"] == "n"


async def test_a_customer_with_null_accounts_decodes(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(C_URL, payload={**CUSTOMER, "accounts": None, "status": "NEW_STATUS", "x": [1]})
        customer = await mocked_client.customers.get(CID)
    assert customer.accounts == [] and customer.status == "NEW_STATUS"
    assert customer.accounts is not None
    assert customer.accounts == [] or customer.accounts[0].current_balance is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": 5}, "status"),
        ({"display_name": " "}, "display_name"),
        ({"customer_min_date_created_at": "x"}, "customer_min_date_created_at"),
        (
            {
                "account_min_date_created_at": "2024-02-01",
                "account_max_date_created_at": "2024-01-01",
            },
            "account_min_date_created_at",
        ),
        ({"max_results": 500}, "max_results"),
    ],
)
async def test_bad_customer_filters_send_nothing(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        mocked_client.customers.list(**kwargs)
    assert info.value.field == field and not m.requests


# --- a customer's accounts --------------------------------------------------------------


async def test_accounts_is_callable_and_lists_by_cursor(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(CA_LIST, payload=[ACCOUNT], repeat=True)
        called = [a async for a in mocked_client.customers.accounts(CID, status="ACTIVE")]
        listed = [a async for a in mocked_client.customers.accounts.list(CID, status="ACTIVE")]
        got = urls(m)
    assert called == listed and called[0].current_balance == Decimal("10.0")
    assert got[0].path.endswith(f"/customers/{CID}/accounts") and got[0].query["status"] == "ACTIVE"


async def test_account_create_sends_the_criteria(mocked_client: ta.TangoClient) -> None:
    answer = {**ACCOUNT, "currentBalance": 0}
    with aioresponses() as m:
        m.post(CA_URL, status=201, payload=answer, repeat=True)
        made = await mocked_client.customers.accounts.create(
            CID,
            account_identifier=AID,
            display_name="Acme main",
            contact_email="ops@acme.example",
            funding_notification=True,
        )
        await mocked_client.customers.accounts.create(
            CID,
            account_identifier=AID,
            display_name="Acme main",
            contact_email="ops@acme.example",
            currency_code="EUR",
            funding_notification=["fin@acme.example", "cfo@acme.example"],
        )
        await mocked_client.customers.accounts.create(
            CID, account_identifier=AID, display_name="Acme main", contact_email="o@a.co"
        )
        bodies = [body_of(c) for c in sent(m, "POST")]
    assert made.current_balance == 0
    assert bodies[0] == {
        "accountIdentifier": AID,
        "displayName": "Acme main",
        "contactEmail": "ops@acme.example",
        "currencyCode": "USD",
        "fundingNotification": [{"emailAddress": "ops@acme.example"}],
    }
    assert bodies[1]["currencyCode"] == "EUR"
    assert bodies[1]["fundingNotification"] == [
        {"emailAddress": "fin@acme.example"},
        {"emailAddress": "cfo@acme.example"},
    ]
    assert "fundingNotification" not in bodies[2]


async def test_account_create_resolves_an_unknown_outcome(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.post(CA_URL, exception=ConnectionResetError("lost after sending"))
        m.get(A_URL, payload=ACCOUNT)
        m.get(C_URL, payload=CUSTOMER)
        account = await mocked_client.customers.accounts.create(
            CID,
            account_identifier=AID,
            display_name="Acme main",
            contact_email="OPS@acme.example",
            funding_notification=True,
        )
        assert len(sent(m, "POST")) == 1
    assert account.account_identifier == AID
    # under another customer: not ours, the original error stands
    with aioresponses() as m:
        m.post(CA_URL, exception=TimeoutError())
        m.get(A_URL, payload=ACCOUNT)
        m.get(C_URL, payload={**CUSTOMER, "accounts": []})
        with pytest.raises(ta.APITimeoutError):
            await mocked_client.customers.accounts.create(
                CID, account_identifier=AID, display_name="Acme main", contact_email="o@a.co"
            )
        assert len(sent(m, "POST")) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"account_identifier": "abc"}, "account_identifier"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "a\x1bb"}, "display_name"),
        ({"contact_email": "nobody"}, "contact_email"),
        ({"contact_email": None}, "contact_email"),
        ({"currency_code": "usd"}, "currency_code"),
        ({"currency_code": "US"}, "currency_code"),
        ({"funding_notification": "a@b.co"}, "funding_notification"),
        ({"funding_notification": ["bad"]}, "funding_notification[0]"),
        ({"funding_notification": ["a@b.co", "a@b.co"]}, "funding_notification[1]"),
        ({"funding_notification": ["a@b.co"] * 101}, "funding_notification"),
        ({"funding_notification": 1}, "funding_notification"),
    ],
)
async def test_account_create_refuses_bad_input(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {
        "account_identifier": AID,
        "display_name": "Main",
        "contact_email": "a@b.co",
    } | kwargs
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.customers.accounts.create(CID, **fields)
    assert info.value.field == field and not m.requests
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.customers.accounts.create("bad id", **fields)
    assert info.value.field == "customer_identifier" and not m.requests


async def test_account_update_patches_only_what_is_given_and_is_retried(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.patch(ACC_URL, status=503, payload=hs.ERROR_BODY)
        m.patch(ACC_URL, payload={**ACCOUNT, "displayName": "Renamed"})
        m.patch(ACC_URL, payload=ACCOUNT, repeat=True)
        updated = await mocked_client.customers.accounts.update(CID, AID, display_name="Renamed")
        await mocked_client.customers.accounts.update(CID, AID, funding_notification=False)
        await mocked_client.customers.accounts.update(
            CID, AID, contact_email="n@a.co", funding_notification=True
        )
        bodies = [body_of(c) for c in sent(m, "PATCH")]
    assert updated.display_name == "Renamed"
    assert bodies == [
        {"displayName": "Renamed"},
        {"displayName": "Renamed"},  # the retry after the 503: the same PATCH
        {"fundingNotification": []},
        {"contactEmail": "n@a.co", "fundingNotification": [{"emailAddress": "n@a.co"}]},
    ]
    with aioresponses() as m:
        with pytest.raises(ta.ValidationError) as info:
            await mocked_client.customers.accounts.update(CID, AID)
        assert info.value.field == "display_name"
        with pytest.raises(ta.ValidationError) as info:
            await mocked_client.customers.accounts.update(CID, AID, funding_notification=True)
        assert info.value.field == "funding_notification"
        assert not m.requests


# --- low-balance alerts ---------------------------------------------------------------


async def test_alerts_list_pages_by_number(mocked_client: ta.TangoClient) -> None:
    second = {**ALERT_BODY, "balanceAlertID": "1f8fad5b-d9cb-469f-a165-70867728950e"}
    with aioresponses() as m:
        m.get(
            LB_LIST,
            payload={"page": {"number": 2, "totalPages": 4}, "lowBalanceAlerts": [ALERT_BODY]},
        )
        m.get(
            LB_LIST, payload={"page": {"number": 3, "totalPages": 4}, "lowBalanceAlerts": [second]}
        )
        got = [
            a.balance_alert_id
            async for a in mocked_client.customers.low_balance_alerts.list(
                CID,
                AID,
                display_name="low",
                threshold=Decimal("10.50"),
                emails=["ops@acme.example"],
                elements_per_block=1,
                page=2,
            )
        ]
        seen = urls(m)
    assert got == [ALERT, second["balanceAlertID"]]
    q = seen[0].query
    assert q["page"] == "2" and q["elementsPerBlock"] == "1"
    assert q["balanceAlertDisplayName"] == "low" and q["balanceAlertThreshold"] == "10.5"
    assert q["balanceAlertNotification[0].emailAddress"] == "ops@acme.example"
    assert seen[1].query["page"] == "3"


async def test_alerts_list_without_page_info_stops_at_a_short_page(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(LB_LIST, payload={"lowBalanceAlerts": [ALERT_BODY, ALERT_BODY]})
        m.get(LB_LIST, payload={"lowBalanceAlerts": None})
        pages = [
            p
            async for p in mocked_client.customers.low_balance_alerts.list(
                CID, AID, elements_per_block=2
            ).pages()
        ]
    assert [len(p.low_balance_alerts or []) for p in pages] == [2, 0]
    assert [p.page.number for p in pages if p.page] == [0, 1]


async def test_alert_set_sends_the_dto_and_resolves_an_unknown_outcome(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.post(LB_URL, payload=ALERT_BODY)
        alert = await mocked_client.customers.low_balance_alerts.set(
            CID, AID, display_name="low", threshold=Decimal("10.00"), emails=["ops@acme.example"]
        )
        body = body_of(sent(m, "POST")[0])
    assert body == {
        "balanceAlertDisplayName": "low",
        "balanceAlertThreshold": 10,
        "balanceAlertNotification": [{"emailAddress": "ops@acme.example"}],
    }
    assert alert.balance_alert_threshold == Decimal("10.0") and alert.emails == ["ops@acme.example"]
    other = {**ALERT_BODY, "balanceAlertThreshold": 99}
    with aioresponses() as m:
        m.post(LB_URL, exception=TimeoutError())
        m.get(
            LB_LIST, payload={"page": {"number": 0, "totalPages": 2}, "lowBalanceAlerts": [other]}
        )
        m.get(
            LB_LIST,
            payload={"page": {"number": 1, "totalPages": 2}, "lowBalanceAlerts": [ALERT_BODY]},
        )
        found = await mocked_client.customers.low_balance_alerts.set(
            CID, AID, display_name="low", threshold=10, emails=["OPS@acme.example"]
        )
        assert len(sent(m, "POST")) == 1
    assert found.balance_alert_id == ALERT
    with aioresponses() as m:
        m.post(LB_URL, status=500, payload=hs.ERROR_BODY)
        m.get(
            LB_LIST, payload={"page": {"number": 0, "totalPages": 1}, "lowBalanceAlerts": [other]}
        )
        with pytest.raises(ta.ServerError):
            await mocked_client.customers.low_balance_alerts.set(
                CID, AID, display_name="low", threshold=10, emails=["ops@acme.example"]
            )
        assert len(sent(m, "POST")) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": -5}, "threshold"),
        ({"threshold": Decimal("NaN")}, "threshold"),
        ({"threshold": float("inf")}, "threshold"),
        ({"threshold": Decimal("10.001")}, "threshold"),
        ({"threshold": 0.1 + 0.2}, "threshold"),
        ({"threshold": Decimal("1e16")}, "threshold"),
        ({"threshold": "10"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"emails": []}, "emails"),
        ({"emails": "a@b.co"}, "emails"),
        ({"emails": ["a@b.co", "x"]}, "emails[1]"),
        ({"emails": ["a@b.co"] * 101}, "emails"),
        ({"display_name": "  "}, "display_name"),
        ({"display_name": None}, "display_name"),
    ],
)
async def test_alert_set_refuses_bad_input(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {"display_name": "low", "threshold": 10, "emails": ["a@b.co"]}
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.customers.low_balance_alerts.set(CID, AID, **(fields | kwargs))
    assert info.value.field == field and not m.requests


async def test_alert_get_update_delete(mocked_client: ta.TangoClient) -> None:
    url = f"{LB_URL}/{ALERT}"
    with aioresponses() as m:
        m.get(url, payload=ALERT_BODY)
        m.patch(url, payload={**ALERT_BODY, "balanceAlertThreshold": 25})
        m.delete(url, payload={"balanceAlertID": ALERT, "status": "DELETED"})
        got = await mocked_client.customers.low_balance_alerts.get(CID, AID, ALERT)
        updated = await mocked_client.customers.low_balance_alerts.update(
            CID, AID, ALERT, threshold=25, emails=[]
        )
        deleted = await mocked_client.customers.low_balance_alerts.delete(CID, AID, ALERT)
        patch = body_of(sent(m, "PATCH")[0])
    assert got.balance_alert_id == ALERT and updated.balance_alert_threshold == 25
    assert patch == {"balanceAlertThreshold": 25, "balanceAlertNotification": []}
    assert deleted == ta.DeletedBalanceAlert(balance_alert_id=ALERT, status="DELETED")
    with aioresponses() as m:
        for bad in ("not-a-uuid", "../x", ""):
            with pytest.raises(ta.ValidationError) as info:
                await mocked_client.customers.low_balance_alerts.get(CID, AID, bad)
            assert info.value.field == "alert_id"
        with pytest.raises(ta.ValidationError):
            await mocked_client.customers.low_balance_alerts.update(CID, AID, ALERT)
        assert not m.requests


async def test_a_404_to_a_retried_delete_counts_as_done(mocked_client: ta.TangoClient) -> None:
    url = f"{LB_URL}/{ALERT}"
    missing = {**hs.ERROR_BODY, "httpCode": 404}
    with aioresponses() as m:
        m.delete(url, status=502, payload=hs.ERROR_BODY)  # may have deleted it
        m.delete(url, status=404, payload=missing)
        done = await mocked_client.customers.low_balance_alerts.delete(CID, AID, ALERT)
        assert len(sent(m, "DELETE")) == 2
    assert done.status == "DELETED" and done.balance_alert_id == ALERT
    with aioresponses() as m:
        m.delete(url, exception=ConnectionResetError("after sending"))
        m.delete(url, status=404, payload=missing)
        assert (await mocked_client.customers.low_balance_alerts.delete(CID, AID, ALERT)).status
    with aioresponses() as m:  # a 404 to the first attempt: it was not there
        m.delete(url, status=404, payload=missing)
        with pytest.raises(ta.NotFoundError):
            await mocked_client.customers.low_balance_alerts.delete(CID, AID, ALERT)


def test_sub_resources_take_path_parameters_positionally() -> None:
    client = ta.TangoClient(NAME, KEY, base_url=BASE)
    with pytest.raises(TypeError):
        client.customers.get(customer_identifier=CID)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.customers.accounts.create(  # type: ignore[call-arg]
            customer_identifier=CID,
            account_identifier=AID,
            display_name="x",
            contact_email="a@b.co",
        )
    with pytest.raises(TypeError):
        client.customers.create(CID, "Acme Corp")  # type: ignore[misc]


async def _drain(listing: Any) -> list[Any]:
    return [x async for x in listing]


CUSTOMER_CALLS = ("customer_get", "customer_list", "alert_get", "alert_list")
_TARGETS = {
    "customer_get": C_URL,
    "customer_list": CUSTOMERS,
    "alert_get": f"{LB_URL}/{ALERT}",
    "alert_list": LB_LIST,
}


async def _answer(ex: hs.Exchange) -> None:
    target = _TARGETS[ex.call]
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, pacing=NO_ADAPTIVE
    ) as client:
        calls = {
            "customer_get": lambda: client.customers.get(CID),
            "customer_list": lambda: _drain(client.customers.list()),
            "alert_get": lambda: client.customers.low_balance_alerts.get(CID, AID, ALERT),
            "alert_list": lambda: _drain(client.customers.low_balance_alerts.list(CID, AID)),
        }
        with aioresponses() as m:
            for answer in (*ex.answers, ex.answers[-1]):
                headers = {"Content-Type": answer.content_type}
                if answer.retry_after.value is not None:
                    headers["Retry-After"] = answer.retry_after.value
                m.get(
                    target,
                    status=answer.status,
                    body=answer.body.payload(4_000),
                    headers=headers,
                    repeat=answer is ex.answers[-1],
                )
            try:
                got = await calls[ex.call]()
            except ta.TangoError:
                return
            items = got if isinstance(got, list) else [got]
            assert all(isinstance(i, (ta.Customer, ta.LowBalanceAlert)) for i in items)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(ex=hs.exchanges(calls=CUSTOMER_CALLS))
def test_any_answer_is_a_model_or_a_typed_error(ex: hs.Exchange) -> None:
    asyncio.run(_answer(ex))
