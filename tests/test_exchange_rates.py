"""client.exchange_rates and ExchangeRates.convert: paging (aioresponses), conversion both
ways and through a shared base, missing and unusable rates, the cache's daily-change rule
on a frozen wall clock, and the sandbox's rates (changing with its clock's day)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from aioresponses import aioresponses

import tango_async as ta
from tango_async._cache import until_daily_change
from tango_async.testing import Sandbox, SandboxClock

from .conftest import BASE, FAST_RETRY, KEY, NAME

RATES_URL = re.compile(re.escape(f"{BASE}/exchangerates") + r"(\?.*)?$")


def rate(reward: str, fx: Any, base: str = "USD") -> dict[str, Any]:
    return {
        "lastModifiedDate": "2025-06-01T12:31:00.000Z",
        "rewardCurrency": reward,
        "baseCurrency": base,
        "baseFx": fx,
    }


RATES = ta.ExchangeRates(
    disclaimer="for reference",
    exchange_rates=[
        msgspec.convert(rate("EUR", "1.10"), ta.ExchangeRate),
        msgspec.convert(rate("CAD", 0.75), ta.ExchangeRate),
        msgspec.convert(rate("GBP", "NaN"), ta.ExchangeRate),
        msgspec.convert(rate("AUD", "0"), ta.ExchangeRate),
        msgspec.convert(rate("JPY", "-1"), ta.ExchangeRate),
    ],
)


def gets(m: aioresponses) -> list[Any]:
    return [c for (meth, u), cs in m.requests.items() if "exchangerates" in str(u) for c in cs]


def frozen(at: datetime) -> SandboxClock:
    return SandboxClock(frozen=True, start=at)


# --- convert ---------------------------------------------------------------------------------


def test_convert_both_ways_and_through_a_shared_base() -> None:
    assert RATES.convert(10, "EUR", "USD") == Decimal("11.00")  # 10 EUR * 1.10
    assert RATES.convert(Decimal("11"), "usd", "eur") == Decimal("10.00")  # 11 USD / 1.10
    assert RATES.convert(Decimal("100"), "USD", "CAD") == Decimal("133.33")
    assert RATES.convert(10, "EUR", "CAD") == Decimal("14.67")  # 10 * 1.10 / 0.75
    assert RATES.convert(Decimal("1"), "EUR", "USD", places=None) == Decimal("1.10")
    assert RATES.convert(Decimal("0.005"), "EUR", "USD", places=0) == Decimal("0")
    assert RATES.convert(2.5, "CAD", "USD") == Decimal("1.88")  # 1.875, half up
    assert RATES.convert(-10, "EUR", "USD") == Decimal("-11.00")
    rate_ = RATES.rate("eur", "usd")
    assert rate_ is not None and rate_.base_fx == Decimal("1.10")


def test_equal_currencies_are_the_identity() -> None:
    assert RATES.convert(Decimal("3.333"), "USD", "usd") == Decimal("3.333")
    assert ta.ExchangeRates().convert(7, "XYZ", "XYZ") == Decimal(7)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((10, "USD", "GBP"), "currency_code"),  # NaN rate: unusable
        ((10, "AUD", "USD"), "currency_code"),  # zero rate
        ((10, "JPY", "USD"), "currency_code"),  # negative rate
        ((10, "USD", "CHF"), "currency_code"),  # none at all
        ((10, "USD", 3), "currency_code"),
        ((10, "", "USD"), "currency_code"),
        (("10", "EUR", "USD"), "amount"),
        ((float("nan"), "EUR", "USD"), "amount"),
        ((Decimal("Infinity"), "EUR", "USD"), "amount"),
        ((Decimal("1e400"), "EUR", "USD"), "amount"),
    ],
)
def test_missing_rates_and_bad_amounts_are_validation_errors(
    args: tuple[Any, ...], field: str
) -> None:
    with pytest.raises(ta.ValidationError) as err:
        RATES.convert(*args)
    assert err.value.field == field
    if field == "currency_code" and isinstance(args[2], str) and args[1]:
        assert "no exchange rate links" in err.value.rule


def test_places_is_checked() -> None:
    for bad in (-1, 11, 2.0, True):
        with pytest.raises(ta.ValidationError):
            RATES.convert(1, "EUR", "USD", places=bad)  # type: ignore[arg-type]


def test_rates_decode_from_strings_numbers_and_nulls() -> None:
    body = (
        b'{"disclaimer":null,"new":1,"exchangeRates":[{"baseFx":1.5,"rewardCurrency":"EUR",'
        b'"baseCurrency":"USD","lastModifiedDate":"2025-06-01T12:00:00Z","x":true},'
        b'{"baseFx":"1e400","rewardCurrency":null,"baseCurrency":"USD"}]}'
    )
    rates = msgspec.json.decode(body, type=ta.ExchangeRates)
    first, second = rates.exchange_rates or []
    assert first.base_fx == Decimal("1.5") and first.usable() and not second.usable()
    assert (
        msgspec.json.decode(b'{"exchangeRates":null}', type=ta.ExchangeRates).exchange_rates == []
    )


# --- the resource ----------------------------------------------------------------------------


async def test_get_walks_every_page_and_caches(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        first = {"disclaimer": "d", "nextCursor": "p2", "nextPageAvailable": True}
        m.get(RATES_URL, payload=first | {"exchangeRates": [rate("EUR", "1.1")]})
        last = {"nextCursor": None, "nextPageAvailable": False}
        m.get(RATES_URL, payload=last | {"exchangeRates": [rate("CAD", "0.75"), None]})
        got = await mocked_client.exchange_rates.get()
        again = await mocked_client.exchange_rates.get()
        sent = gets(m)
    assert again is got and len(sent) == 2
    assert got.disclaimer == "d"
    assert [r.reward_currency for r in got.exchange_rates or []] == ["EUR", "CAD"]
    assert sent[0].kwargs["params"] == [("paginate", "true"), ("maxResults", "200")]
    assert sent[1].kwargs["params"] == [
        ("paginate", "true"),
        ("maxResults", "200"),
        ("nextCursor", "p2"),
    ]


async def test_filters_bypass_the_cache_and_bad_ones_send_nothing(
    mocked_client: ta.TangoClient,
) -> None:
    with aioresponses() as m:
        m.get(RATES_URL, payload={"exchangeRates": [rate("EUR", "1.1")]}, repeat=True)
        await mocked_client.exchange_rates.get()
        await mocked_client.exchange_rates.get(base_currency="USD", reward_currency=["EUR", "CAD"])
        await mocked_client.exchange_rates.get()
        sent = gets(m)
        assert len(sent) == 2
        assert sent[1].kwargs["params"][:3] == [
            ("baseCurrency", "USD"),
            ("rewardCurrency", "EUR"),
            ("rewardCurrency", "CAD"),
        ]
        await mocked_client.exchange_rates.refresh()
        assert len(gets(m)) == 3
    with aioresponses() as m:
        for bad in ({"base_currency": "usd"}, {"reward_currency": []}, {"refresh": "no"}):
            with pytest.raises(ta.ValidationError):
                await mocked_client.exchange_rates.get(**bad)
        assert not m.requests


@pytest.mark.parametrize(
    ("at", "fresh_for"),
    [
        (datetime(2025, 6, 1, 11, 0, tzinfo=UTC), 3600.0),  # until the window opens
        (datetime(2025, 6, 1, 0, 0, tzinfo=UTC), 12 * 3600.0),
        (datetime(2025, 6, 1, 12, 0, tzinfo=UTC), 600.0),  # inside it: 10 minutes
        (datetime(2025, 6, 1, 12, 30, tzinfo=UTC), 600.0),
        (datetime(2025, 6, 1, 12, 55, tzinfo=UTC), 300.0),  # not past 13:00
        (datetime(2025, 6, 1, 13, 0, tzinfo=UTC), 23 * 3600.0),  # after it: next day 12:00
        (datetime(2025, 6, 1, 18, 30, tzinfo=UTC), 17.5 * 3600),
    ],
)
def test_the_daily_change_rule_on_a_frozen_wall_clock(at: datetime, fresh_for: float) -> None:
    assert until_daily_change()(frozen(at)) == pytest.approx(fresh_for)


async def test_cached_rates_expire_at_the_daily_change() -> None:
    clock = frozen(datetime(2025, 6, 1, 11, 0, tzinfo=UTC))
    async with ta.TangoClient(NAME, KEY, base_url=BASE, retry=FAST_RETRY, clock=clock) as tango:
        with aioresponses() as m:
            m.get(RATES_URL, payload={"exchangeRates": [rate("EUR", "1.1")]}, repeat=True)
            await tango.exchange_rates.get()
            clock.advance(3599)  # 11:59:59
            await tango.exchange_rates.get()
            assert len(gets(m)) == 1
            clock.advance(2)  # 12:00:01: the window opened
            await tango.exchange_rates.get()
            assert len(gets(m)) == 2
            clock.advance(599)
            await tango.exchange_rates.get()
            assert len(gets(m)) == 2
            clock.advance(2)  # 10 minutes on, still in the window
            await tango.exchange_rates.get()
            assert len(gets(m)) == 3
            clock.advance(3600)  # 13:10: kept until 12:00 tomorrow
            await tango.exchange_rates.get()
            clock.advance(22 * 3600)
            await tango.exchange_rates.get()
            assert len(gets(m)) == 4


# --- against the sandbox ---------------------------------------------------------------------


async def test_sandbox_rates_page_change_daily_and_pass_the_contract() -> None:
    clock = frozen(datetime(2025, 6, 1, 12, 0, tzinfo=UTC))
    async with Sandbox(clock=clock, contract=True) as sb, sb.client() as tango:
        before = await tango.exchange_rates.get()
        assert {r.reward_currency for r in before.exchange_rates or []} >= {"EUR", "CAD", "GBP"}
        eur = before.rate("EUR", "USD")
        assert eur is not None and eur.last_modified_date == datetime(
            2025, 5, 31, 12, 30, tzinfo=UTC
        )
        cost = before.convert(Decimal("10"), "EUR", "USD")
        assert Decimal("10.80") < cost < Decimal("10.90")
        clock.advance(31 * 60)  # 12:31: the day's rates are in; ours are cached until 12:10
        after = await tango.exchange_rates.get()
        moved = after.rate("EUR", "USD")
        assert moved is not None and moved.last_modified_date == datetime(
            2025, 6, 1, 12, 30, tzinfo=UTC
        )
        assert moved.base_fx != eur.base_fx
        sb.set_exchange_rate("EUR", "2")
        fixed = await tango.exchange_rates.get(refresh=True)
        assert fixed.convert(10, "EUR", "USD") == Decimal("20.00")
        only = await tango.exchange_rates.get(reward_currency="CAD")
        assert [r.reward_currency for r in only.exchange_rates or []] == ["CAD"]
        gets_ = [r for r in sb.requests if r.path.endswith("/exchangerates")]
        assert len(gets_) == 4 and all(r.query.get("paginate") == "true" for r in gets_)
        assert sb.contract_violations == []
    assert clock.now() - datetime(2025, 6, 1, 12, tzinfo=UTC) < timedelta(hours=1)
