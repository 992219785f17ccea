"""client.accounts with aioresponses: the requests, every error status and what is
retried, cursor paging and plain-array answers, hostile and unknown fields, exact
Decimal balances (and the ones refused as undecodable), and bad input that sends
nothing."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses
from hypothesis import given, settings
from yarl import URL

import tango_async as ta

from . import hypothesis_strategies as hs
from .conftest import BASE, FAST_RETRY, KEY, NAME

AID = "acme-main-account"
A_URL = f"{BASE}/accounts/{AID}"
LIST = re.compile(re.escape(f"{BASE}/accounts") + r"(\?.*)?$")

ACCOUNT: dict[str, Any] = {
    "accountIdentifier": AID,
    "accountNumber": "A12345678",
    "displayName": "Acme main",
    "currencyCode": "USD",
    "currentBalance": 1234.56,
    "status": "ACTIVE",
    "contactEmail": "ops@acme.example",
    "createdAt": "2024-05-01T12:00:00.000Z",
    "fundingNotification": [{"emailAddress": "ops@acme.example"}],
}


# No adaptive read pacing: a 429 would slow the next reads down for real seconds.
NO_ADAPTIVE = ta.PacingPolicy(adaptive=False)


@pytest.fixture
async def mocked_client() -> AsyncIterator[ta.TangoClient]:
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, pacing=NO_ADAPTIVE
    ) as client:
        yield client


def requests_of(m: aioresponses, method: str = "GET") -> list[URL]:
    return [URL(str(u)) for (meth, u), cs in m.requests.items() if meth == method for _ in cs]


async def test_get_decodes_an_account_with_its_exact_balance(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(A_URL, payload=ACCOUNT)
        account = await mocked_client.accounts.get(AID)
    assert account == ta.Account(
        account_identifier=AID,
        account_number="A12345678",
        display_name="Acme main",
        currency_code="USD",
        current_balance=Decimal("1234.56"),
        status="ACTIVE",
        contact_email="ops@acme.example",
        created_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        funding_notification=[ta.FundingNotification(email_address="ops@acme.example")],
    )
    assert isinstance(account.current_balance, Decimal)
    assert account.funding_notification_emails == ["ops@acme.example"]
    assert "ops@acme.example" in repr(account)  # readable: no secret in an account


@pytest.mark.parametrize(
    ("status", "error", "attempts"),
    [
        (400, ta.BadRequestError, 1),
        (401, ta.AuthenticationError, 1),
        (402, ta.InsufficientFundsError, 1),
        (403, ta.PermissionDeniedError, 1),
        (404, ta.NotFoundError, 1),
        (409, ta.ConflictError, 1),
        (422, ta.UnprocessableEntityError, 1),
        (429, ta.RateLimitError, 4),
        (500, ta.ServerError, 4),
        (502, ta.ServerError, 4),
        (503, ta.ServerError, 4),
    ],
)
async def test_every_error_status_is_typed_and_reads_are_retried(
    mocked_client: ta.TangoClient, status: int, error: type[ta.APIError], attempts: int
) -> None:
    body = {**hs.ERROR_BODY, "httpCode": status, "path": f"/raas/v2/accounts/{AID}"}
    with aioresponses() as m:
        m.get(A_URL, status=status, payload=body, repeat=True)
        m.get(LIST, status=status, payload=body, repeat=True)
        with pytest.raises(error) as info:
            await mocked_client.accounts.get(AID)
        with pytest.raises(error):
            [a async for a in mocked_client.accounts.list()]
        sent = requests_of(m)
    assert info.value.status_code == status
    assert len(sent) == 2 * attempts  # 429 and 5xx retried (max_retries=3), others not


async def test_connection_errors_and_timeouts_are_retried_for_reads(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(A_URL, exception=ConnectionResetError("reset"))
        m.get(A_URL, exception=TimeoutError())
        m.get(A_URL, payload=ACCOUNT)
        account = await mocked_client.accounts.get(AID)
        assert len(requests_of(m)) == 3
    assert account.current_balance == Decimal("1234.56")


async def test_list_follows_cursors_with_the_filters(mocked_client: ta.TangoClient) -> None:
    second = {**ACCOUNT, "accountIdentifier": "acme-second"}
    with aioresponses() as m:
        m.get(
            LIST,
            payload={
                "items": [ACCOUNT],
                "numberOfElements": 1,
                "maxResults": 1,
                "nextCursor": "cursor-2",
                "nextPageAvailable": True,
            },
        )
        m.get(LIST, payload={"items": [second], "prevCursor": "x", "nextPageAvailable": False})
        got = [
            a.account_identifier
            async for a in mocked_client.accounts.list(
                status="ACTIVE",
                currency_code=["USD", "EUR"],
                min_balance=Decimal("-10.5"),
                max_balance=1000,
                min_date_created_at=date(2024, 1, 1),
                max_date_created_at=date(2024, 12, 31),
                contact_email="ops@acme.example",
                funding_notification_email="ops@acme.example",
                display_name="Acme main",
                account_number="A12345678",
                max_results=1,
            )
        ]
        urls = requests_of(m)
    assert got == [AID, "acme-second"]
    first = urls[0].query
    assert first["paginate"] == "true" and first["maxResults"] == "1"
    assert sorted(first.getall("currencyCode")) == ["EUR", "USD"]
    assert first["status"] == "ACTIVE" and first["minBalance"] == "-10.5"
    assert first["maxBalance"] == "1000"
    assert first["minDateCreatedAt"] == "2024-01-01T00:00:00.000Z"
    assert first["maxDateCreatedAt"] == "2024-12-31T23:59:59.999Z"
    assert first["contactEmail"] == "ops@acme.example"
    assert first["fundingNotificationEmail"] == "ops@acme.example"
    assert first["displayName"] == "Acme main" and first["accountNumber"] == "A12345678"
    assert "nextCursor" not in first and urls[1].query["nextCursor"] == "cursor-2"


async def test_a_plain_array_answer_is_the_whole_list(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(LIST, payload=[ACCOUNT, {**ACCOUNT, "accountIdentifier": "other-1"}])
        listing = mocked_client.accounts.list()
        pages = [p async for p in listing.pages()]
        assert len(requests_of(m)) == 1
    assert [len(p.items) for p in pages] == [2]
    assert not pages[0].has_next


async def test_a_cursor_loop_ends_the_walk(mocked_client: ta.TangoClient) -> None:
    page = {"items": [ACCOUNT], "nextCursor": "same", "nextPageAvailable": True}
    with aioresponses() as m:
        m.get(LIST, payload=page, repeat=True)
        got = [a async for a in mocked_client.accounts.list()]
    assert len(got) == 2  # the first page, then the page at "same" names "same" again


async def test_list_is_lazy(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        listing = mocked_client.accounts.list(status="FROZEN")
        assert not m.requests
        assert "status" in repr(listing)


async def test_unknown_fields_and_statuses_decode(mocked_client: ta.TangoClient) -> None:
    odd = {
        **ACCOUNT,
        "status": "SUSPENDED_FOR_REVIEW",
        "brandNewField": {"nested": [1, 2, 3]},
        "fundingNotification": True,  # the older pages' boolean
        "contactEmail": None,
        "accountNumber": None,
    }
    with aioresponses() as m:
        m.get(A_URL, payload=odd)
        account = await mocked_client.accounts.get(AID)
    assert account.status == "SUSPENDED_FOR_REVIEW"
    assert account.funding_notification is True and account.funding_notification_emails == []
    assert account.contact_email is None and account.account_number is None


HOSTILE = [
    "\x1b[31mred\x1b[0m",
    "\u202eevil\u202c",
    "a\x00b",
    "<script>alert(1)</script>",
    "'; DROP TABLE accounts; --",
    '=HYPERLINK("http://x")',
    "\U0001f600" * 50,
    "x" * 10_000,
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_text_decodes_as_text_and_reprs_escaped(
    mocked_client: ta.TangoClient, text: str
) -> None:
    with aioresponses() as m:
        m.get(A_URL, payload={**ACCOUNT, "displayName": text, "contactEmail": text})
        account = await mocked_client.accounts.get(AID)
    assert account.display_name == text
    shown = repr(account)
    assert "\x1b" not in shown and "\x00" not in shown


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"0", Decimal("0")),
        (b"-25.75", Decimal("-25.75")),  # overdrawn: reported as is
        (b"999999999999999.99", Decimal("999999999999999.99")),
        (b"0.1", Decimal("0.1")),  # exact, not the float 0.1
        (b'"1234.50"', Decimal("1234.50")),  # a string number
        (b"1E+3", Decimal("1E+3")),
        (b"null", None),
    ],
)
async def test_balances_decode_exactly(
    mocked_client: ta.TangoClient, raw: bytes, expected: Decimal | None
) -> None:
    body = json.dumps({**ACCOUNT, "currentBalance": "@"}).replace('"@"', raw.decode())
    with aioresponses() as m:
        m.get(A_URL, body=body, content_type="application/json")
        account = await mocked_client.accounts.get(AID)
    assert account.current_balance == expected
    if expected is not None:
        assert str(account.current_balance) == str(expected)


@pytest.mark.parametrize(
    "raw",
    [b"1e400", b'"1e400"', b"-1e400", b'"NaN"', b'"Infinity"', b'"-Infinity"', b"NaN",
     b"1000000000000000000", b'"ten"', b"true", b"[1]"],
)  # fmt: skip
async def test_impossible_balances_are_a_typed_decode_error(
    mocked_client: ta.TangoClient, raw: bytes
) -> None:
    body = json.dumps({**ACCOUNT, "currentBalance": "@"}).replace('"@"', raw.decode())
    with aioresponses() as m:
        m.get(A_URL, body=body, content_type="application/json")
        with pytest.raises(ta.APIResponseValidationError) as info:
            await mocked_client.accounts.get(AID)
        assert len(requests_of(m)) == 1  # a decode error is not retried
    assert info.value.status_code == 200 and info.value.path


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        ("abcd", "account_identifier"),  # shorter than 5
        ("a" * 101, "account_identifier"),
        ("acme_main", "account_identifier"),  # underscore
        ("acme/../x", "account_identifier"),
        ("..", "account_identifier"),
        ("%2e%2e%2fx", "account_identifier"),
        ("acme main", "account_identifier"),
        ("acme\u0660\u0661\u0662", "account_identifier"),  # non-ASCII digits
        ("", "account_identifier"),
        (None, "account_identifier"),
        (12345, "account_identifier"),
    ],
)
async def test_a_bad_identifier_sends_nothing(
    mocked_client: ta.TangoClient, ref: Any, field: str
) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        await mocked_client.accounts.get(ref)
    assert info.value.field == field and not m.requests


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": "active"}, "status"),
        ({"status": "OPEN"}, "status"),
        ({"currency_code": "usd"}, "currency_code[0]"),
        ({"currency_code": ["USD", "US"]}, "currency_code[1]"),
        ({"currency_code": []}, "currency_code"),
        ({"min_balance": float("nan")}, "min_balance"),
        ({"min_balance": "10"}, "min_balance"),
        ({"max_balance": Decimal("1.001")}, "max_balance"),
        ({"max_balance": Decimal("1e16")}, "max_balance"),
        ({"min_balance": 10, "max_balance": 5}, "min_balance"),
        ({"min_date_created_at": datetime(2024, 1, 1)}, "min_date_created_at"),  # naive
        ({"min_date_created_at": "yesterday"}, "min_date_created_at"),
        (
            {"min_date_created_at": date(2024, 2, 1), "max_date_created_at": date(2024, 1, 1)},
            "min_date_created_at",
        ),
        ({"contact_email": "nope"}, "contact_email"),
        ({"contact_email": "a@b.co" + "x" * 255}, "contact_email"),
        ({"funding_notification_email": ["a@b.co", "A@B.CO"]}, "funding_notification_email[1]"),
        ({"display_name": "a\nb"}, "display_name"),
        ({"account_number": 5}, "account_number"),
        ({"max_results": 0}, "max_results"),
        ({"max_results": 201}, "max_results"),
        ({"max_results": True}, "max_results"),
    ],
)
async def test_bad_filters_are_refused_when_list_is_called(
    mocked_client: ta.TangoClient, kwargs: dict[str, Any], field: str
) -> None:
    with aioresponses() as m, pytest.raises(ta.ValidationError) as info:
        mocked_client.accounts.list(**kwargs)
    assert info.value.field == field and not m.requests


def test_path_and_keyword_rules() -> None:
    client = ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST_RETRY)
    with pytest.raises(TypeError):
        client.accounts.get(account_identifier=AID)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.accounts.list("ACTIVE")  # type: ignore[misc]


ACCOUNT_CALLS = ("account_get", "account_list")


async def _answer(ex: hs.Exchange) -> None:
    target = A_URL if ex.call == "account_get" else LIST
    async with ta.TangoClient(
        NAME, KEY, base_url=BASE, retry=FAST_RETRY, pacing=NO_ADAPTIVE
    ) as client:
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
                if ex.call == "account_get":
                    assert isinstance(await client.accounts.get(AID), ta.Account)
                else:
                    got = [a async for a in client.accounts.list()]
                    assert all(isinstance(a, ta.Account) for a in got)
            except ta.TangoError:
                pass


@settings(max_examples=150, derandomize=True, deadline=None)
@given(ex=hs.exchanges(calls=ACCOUNT_CALLS))
def test_any_answer_is_an_account_or_a_typed_error(ex: hs.Exchange) -> None:
    """Whatever a server, a proxy or the network answers (hs.bodies: valid, mutated,
    truncated, HTML, deep, huge...), the call returns accounts or raises a TangoError:
    never another exception."""
    asyncio.run(_answer(ex))
