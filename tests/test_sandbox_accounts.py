"""The sandbox's customers, accounts and low-balance alerts: the whole flow through the
client, balances that orders spend (402 when short), the seeded default account, the
alerts firing (and their LowBalance webhook events), creates whose outcome is unknown,
Tango's error answers, and 0 contract violations over every new route."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

import tango_async as ta
from tango_async.testing import Sandbox
from tango_async.testing._contract import ContractChecker

from .conftest import FAST_RETRY, order_request
from .sandbox14_support import call, key, paths, session

CID = "acme-customer"
AID = "acme-main-account"


BAD_FIELDS = (
    "customerIdentifier",
    "displayName",
    "accountIdentifier",
    "contactEmail",
    "currencyCode",
    "balanceAlert",
)


def accounts_checker() -> ContractChecker:
    """The packaged checker: its correction 9 turns the description's
    CreateCustomerCriteria.displayName pattern (``\\p{..}`` classes, which Python's re
    cannot compile) into its length rule, 5 to 100 characters."""
    checker = ContractChecker()
    name = checker._compiled.spec["components"]["schemas"]["CreateCustomerCriteria"]["properties"]
    assert name["displayName"].get("maxLength") == 100 and "pattern" not in name["displayName"]
    return checker


def order(account: str, amount: Any, customer: str = CID) -> ta.CreateOrderRequest:
    return order_request(customer_identifier=customer, account_identifier=account, amount=amount)


async def test_the_whole_flow_through_the_client() -> None:
    async with (
        Sandbox(order_rate=None, contract=accounts_checker(), webhook_retry_delays=()) as sb,
        sb.client(retry=FAST_RETRY) as tango,
    ):
        hook = await tango.webhooks.create(
            "http://127.0.0.1:9/hook", event_types=["LowBalance"], verification="NONE"
        )
        customer = await tango.customers.create(customer_identifier=CID, display_name="Acme Corp")
        assert customer.customer_identifier == CID and customer.status == "ACTIVE"
        account = await tango.customers.accounts.create(
            CID,
            account_identifier=AID,
            display_name="Acme main",
            contact_email="ops@acme.example",
            funding_notification=True,
        )
        assert account.current_balance == 0 and account.currency_code == "USD"
        assert account.funding_notification_emails == ["ops@acme.example"]

        # a new account has nothing to spend: 402 until it is funded
        with pytest.raises(ta.InsufficientFundsError):
            await tango.orders.create(order(AID, 10))
        assert sb.fund(AID, 100) == 100
        await tango.orders.create(order(AID, 30))
        assert (await tango.accounts.get(AID)).current_balance == Decimal("70")

        alert = await tango.customers.low_balance_alerts.set(
            CID, AID, display_name="Running low", threshold=50, emails=["ops@acme.example"]
        )
        assert alert.balance_alert_id and alert.balance_alert_threshold == 50
        await tango.orders.create(order(AID, Decimal("25.50")))  # 70 -> 44.50: below 50
        await tango.orders.create(order(AID, 1))  # still below: fires once per crossing
        assert sb.low_balance_alerts_fired == [
            {
                "accountIdentifier": AID,
                "balance": Decimal("44.50"),
                "balanceThreshold": Decimal("50"),
                "balanceAlertIdentifier": alert.balance_alert_id,
            }
        ]
        events = sb.webhook_events(str(hook.webhook_id))
        assert [e["eventType"] for e in events] == ["LowBalance"]
        assert events[0]["eventData"]["balanceAlertIdentifier"] == alert.balance_alert_id
        assert sb.balance(AID) == Decimal("43.50")

        listed = [a async for a in tango.customers.low_balance_alerts.list(CID, AID)]
        assert [a.balance_alert_id for a in listed] == [alert.balance_alert_id]
        got = await tango.customers.low_balance_alerts.get(CID, AID, str(alert.balance_alert_id))
        assert got == alert
        changed = await tango.customers.low_balance_alerts.update(
            CID, AID, str(alert.balance_alert_id), threshold=Decimal("10.25"), emails=[]
        )
        assert changed.balance_alert_threshold == Decimal("10.25") and changed.emails == []
        with pytest.raises(ta.ConflictError):  # the same threshold twice
            await tango.customers.low_balance_alerts.set(
                CID, AID, display_name="again", threshold=Decimal("10.25"), emails=["a@b.co"]
            )
        deleted = await tango.customers.low_balance_alerts.delete(
            CID, AID, str(alert.balance_alert_id)
        )
        assert deleted.status == "DELETED"
        with pytest.raises(ta.NotFoundError):
            await tango.customers.low_balance_alerts.get(CID, AID, str(alert.balance_alert_id))

        updated = await tango.customers.accounts.update(
            CID, AID, display_name="Acme primary", funding_notification=False
        )
        assert updated.display_name == "Acme primary" and updated.funding_notification_emails == []
        mine = [a async for a in tango.customers.accounts(CID)]
        assert [(a.account_identifier, a.current_balance) for a in mine] == [
            (AID, Decimal("43.50"))
        ]
        every = {a.account_identifier async for a in tango.accounts.list(max_results=1)}
        assert every == {"sandbox-account", AID}
        rich = [a async for a in tango.accounts.list(min_balance=1000)]
        assert [a.account_identifier for a in rich] == ["sandbox-account"]
        customers = {c.customer_identifier: c async for c in tango.customers.list()}
        assert set(customers) == {"sandbox-customer", CID}
        assert [a.account_identifier for a in customers[CID].accounts or []] == [AID]
        assert (customers[CID].accounts or [])[0].current_balance is None  # a summary
        fetched = await tango.customers.get(CID)
        assert fetched.display_name == "Acme Corp"

        with pytest.raises(ta.ConflictError):
            await tango.customers.create(customer_identifier=CID, display_name="Acme Corp")
        with pytest.raises(ta.ConflictError):
            await tango.customers.accounts.create(
                CID, account_identifier=AID, display_name="x", contact_email="a@b.co"
            )
        with pytest.raises(ta.NotFoundError):
            await tango.customers.get("nobody-here")
        with pytest.raises(ta.NotFoundError):
            await tango.accounts.get("no-such-account")
    assert [str(v) for v in sb.contract_violations] == []


async def test_registered_balances_are_spent_and_others_stay_unlimited() -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as tango:
        view = sb.add_account("acct-small", customer_identifier="cust-small", balance=25)
        assert view["currentBalance"] == 25 and sb.balance("acct-small") == 25
        await tango.orders.create(order("acct-small", 10, "cust-small"))
        await tango.orders.create(order("acct-small", 10, "cust-small"))
        with pytest.raises(ta.InsufficientFundsError):
            await tango.orders.create(order("acct-small", 10, "cust-small"))
        assert sb.balance("acct-small") == 5
        assert (await tango.accounts.get("acct-small")).current_balance == 5
        # never registered: funded without limit, as before, and not an API account
        for _ in range(3):
            await tango.orders.create(order("acct-unlimited", 999_999))
        assert sb.balance("acct-unlimited") is None
        with pytest.raises(ta.NotFoundError):
            await tango.accounts.get("acct-unlimited")
        with pytest.raises(KeyError):
            sb.fund("acct-unlimited", 5)
        # an account given a balance with set_balance is an account too
        sb.set_balance("acct-legacy", 7)
        assert (await tango.accounts.get("acct-legacy")).current_balance == 7
        sb.add_account("acct-frozen", status="FROZEN")
        with pytest.raises(ta.UnprocessableEntityError):
            await tango.orders.create(order("acct-frozen", 1, "sandbox-customer"))
        assert (await tango.accounts.get("acct-frozen")).status == "FROZEN"


async def test_the_default_account_is_seeded() -> None:
    async with Sandbox() as sb, sb.client() as tango:
        account = await tango.accounts.get("sandbox-account")
        customer = await tango.customers.get("sandbox-customer")
    assert account.current_balance == Decimal("1000000") and account.currency_code == "USD"
    assert [a.account_identifier for a in customer.accounts or []] == ["sandbox-account"]
    assert sb.balance("sandbox-account") == Decimal("1000000")


@pytest.mark.parametrize("fault", ["drop-after-commit", "500-after-commit", "truncated-200"])
async def test_a_create_whose_answer_is_lost_is_found_and_returned_once(fault: str) -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as tango:
        sb.inject("POST /customers", fault)
        customer = await tango.customers.create(customer_identifier=CID, display_name="Acme Corp")
        sb.inject("POST /customers/*/accounts", fault)
        account = await tango.customers.accounts.create(
            CID, account_identifier=AID, display_name="Main", contact_email="o@acme.example"
        )
        sb.inject("POST /customers/*/accounts/*/lowbalance", fault)
        alert = await tango.customers.low_balance_alerts.set(
            CID, AID, display_name="low", threshold=5, emails=["o@acme.example"]
        )
    posts = [r.path for r in sb.requests if r.method == "POST"]
    assert len(posts) == 3  # each created once, never POSTed twice
    assert customer.customer_identifier == CID and account.account_identifier == AID
    assert alert.balance_alert_threshold == 5


async def test_a_create_refused_before_processing_raises_and_can_be_repeated() -> None:
    async with Sandbox(order_rate=None) as sb, sb.client(retry=FAST_RETRY) as tango:
        sb.inject("POST /customers", "500")  # nothing processed
        with pytest.raises(ta.ServerError) as info:
            await tango.customers.create(customer_identifier=CID, display_name="Acme Corp")
        assert any("not created" in n for n in getattr(info.value, "__notes__", []))
        customer = await tango.customers.create(customer_identifier=CID, display_name="Acme Corp")
    assert customer.customer_identifier == CID
    assert len([r for r in sb.requests if r.method == "POST"]) == 2


async def test_error_answers_are_tangos_and_meet_the_contract() -> None:
    async with (
        Sandbox(order_rate=None, contract=accounts_checker()) as sb,
        session(sb) as http,
    ):
        statuses: list[int] = []

        async def hit(method: str, path: str, **kw: Any) -> Any:
            answer = await call(http, sb, method, path, **kw)
            statuses.append(answer.status)
            return answer

        made = await hit(
            "POST", "/customers", json={"customerIdentifier": CID, "displayName": "Acme"}
        )
        assert made.status == 400 and paths(made) == {"displayName"}
        made = await hit(
            "POST", "/customers", json={"customerIdentifier": "x_y", "displayName": "Acme $ Corp"}
        )
        assert paths(made) == {"customerIdentifier", "displayName"}
        assert (await hit("POST", "/customers", data=b"{nope")).status == 400
        ok = await hit(
            "POST", "/customers", json={"customerIdentifier": CID, "displayName": "Acme Corp"}
        )
        assert ok.status == 201
        dup = await hit(
            "POST", "/customers", json={"customerIdentifier": CID, "displayName": "Acme Corp"}
        )
        assert dup.status == 409 and key(dup) == "409.010"
        assert key(await hit("GET", "/customers/nobody-1")) == "404.010"
        bad = await hit(
            "POST",
            f"/customers/{CID}/accounts",
            json={"accountIdentifier": "ab", "contactEmail": "x", "currencyCode": "XXX"},
        )
        assert paths(bad) == {"accountIdentifier", "displayName", "contactEmail", "currencyCode"}
        acct = {"accountIdentifier": AID, "displayName": "Main", "contactEmail": "o@acme.example"}
        assert (await hit("POST", f"/customers/{CID}/accounts", json=acct)).status == 201
        assert key(await hit("POST", f"/customers/{CID}/accounts", json=acct)) == "409.011"
        assert key(await hit("POST", "/customers/nobody-1/accounts", json=acct)) == "404.010"
        assert key(await hit("GET", "/accounts/nothing-here")) == "404.011"
        assert (await hit("GET", f"/accounts/{AID}")).status == 200
        assert (
            await hit("GET", "/accounts", params={"paginate": "true", "maxResults": 1})
        ).status == 200
        assert (
            await hit("GET", "/accounts", params={"paginate": "true", "maxResults": 999})
        ).status == 400
        assert (
            await hit("GET", "/accounts", params={"paginate": "true", "nextCursor": "zz"})
        ).status == 400
        assert (await hit("GET", "/accounts", params={"status": "OPEN"})).status == 400
        assert (await hit("GET", "/accounts", params={"minBalance": "NaN"})).status == 400
        assert (await hit("GET", "/customers", params={"accountIdentifier": AID})).status == 200
        assert (await hit("GET", f"/customers/{CID}/accounts")).status == 200
        assert (await hit("GET", f"/customers/{CID}")).status == 200
        patched = await hit(
            "PATCH", f"/customers/{CID}/accounts/{AID}", json={"contactEmail": "new@acme.example"}
        )
        assert patched.body["contactEmail"] == "new@acme.example"
        assert paths(
            await hit("PATCH", f"/customers/{CID}/accounts/{AID}", json={"displayName": ""})
        ) == {"displayName"}
        assert (
            key(await hit("PATCH", f"/customers/{CID}/accounts/other-acct", json={})) == "404.011"
        )
        lb = f"/customers/{CID}/accounts/{AID}/lowbalance"
        alert_body = {
            "balanceAlertDisplayName": "low",
            "balanceAlertThreshold": 5,
            "balanceAlertNotification": [{"emailAddress": "o@acme.example"}],
        }
        alert = (await hit("POST", lb, json=alert_body)).body
        assert key(await hit("POST", lb, json=alert_body)) == "409.012"
        assert paths(await hit("POST", lb, json={"balanceAlertThreshold": -1})) == {
            "balanceAlertDisplayName",
            "balanceAlertThreshold",
            "balanceAlertNotification",
        }
        assert (await hit("GET", lb, params={"elementsPerBlock": 1, "page": 0})).status == 200
        assert (await hit("GET", lb, params={"elementsPerBlock": 101})).status == 422
        assert (await hit("GET", lb, params={"page": "x"})).status == 400
        one = f"{lb}/{alert['balanceAlertID']}"
        assert (await hit("GET", one)).status == 200
        assert (await hit("PATCH", one, json={"balanceAlertThreshold": 7})).body[
            "balanceAlertThreshold"
        ] == 7
        assert (await hit("GET", f"{lb}/not-a-uuid")).status == 400
        assert key(await hit("GET", f"{lb}/0f8fad5b-d9cb-469f-a165-70867728950e")) == "404.012"
        assert (await hit("DELETE", one)).body == {
            "balanceAlertID": alert["balanceAlertID"],
            "status": "DELETED",
        }
        assert key(await hit("DELETE", one)) == "404.012"
    assert {200, 201, 400, 404, 409, 422} <= set(statuses)
    assert [str(v) for v in sb.contract_violations if v.direction == "response"] == []
    requests = [str(v) for v in sb.contract_violations if v.direction == "request"]
    # the bad bodies sent on purpose, and nothing else
    assert requests and all(any(f in v for f in BAD_FIELDS) for v in requests), requests


async def test_the_client_sends_what_the_contract_describes() -> None:
    """Every request the resources send (bodies included) meets the description."""
    async with (
        Sandbox(order_rate=None, contract=accounts_checker()) as sb,
        sb.client(retry=FAST_RETRY) as tango,
    ):
        await tango.customers.create(customer_identifier=CID, display_name="Société Générale")
        for i, currency in enumerate(("USD", "EUR", "GBP")):
            await tango.customers.accounts.create(
                CID,
                account_identifier=f"{AID}-{i}",
                display_name=f"Account {i}",
                contact_email="o@acme.example",
                currency_code=currency,
                funding_notification=["a@acme.example", "b@acme.example"] if i else None,
            )
        pages = [p async for p in tango.accounts.list(max_results=2, currency_code="EUR").pages()]
        assert sum(len(p.items) for p in pages) == 1
        walked = [a async for a in tango.customers.accounts(CID, max_results=2)]
        assert len(walked) == 3
        await tango.customers.accounts.update(CID, f"{AID}-1", funding_notification=[])
        alert = await tango.customers.low_balance_alerts.set(
            CID, f"{AID}-0", display_name="low", threshold=Decimal("0.01"), emails=["a@b.co"]
        )
        await tango.customers.low_balance_alerts.update(
            CID, f"{AID}-0", str(alert.balance_alert_id), display_name="lower"
        )
        found = [
            a
            async for a in tango.customers.low_balance_alerts.list(
                CID, f"{AID}-0", threshold=Decimal("0.01"), emails=["a@b.co"], elements_per_block=1
            )
        ]
        assert len(found) == 1
        await tango.customers.low_balance_alerts.delete(
            CID, f"{AID}-0", str(alert.balance_alert_id)
        )
    assert [str(v) for v in sb.contract_violations] == []
    bodies = [json.loads(r.body) for r in sb.requests if r.body and r.method == "POST"]
    assert bodies[0] == {"customerIdentifier": CID, "displayName": "Société Générale"}
