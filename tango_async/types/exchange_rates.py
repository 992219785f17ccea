"""Exchange rate models: ``GET /exchangerates`` (``ExchangeRatesWithDisclaimer``), its rates
(``ExchangeRateView``) and the conversion they allow.

**What baseFx means.** The spec titles it "Base Fixed Exchange Rate" and says no more;
Tango's exchange-rate pages say that ``baseCurrency`` is the account currency an order is
charged in, ``rewardCurrency`` the currency of the reward, and that Tango converts the
reward amount from the reward currency to the base currency at the time of the order,
"using the reward face value and baseFx". So ``baseFx`` is the price of one unit of the
reward currency in the base currency: a 10 EUR reward charged to a USD account costs
``10 * baseFx`` USD, and ``X`` USD buy ``X / baseFx`` EUR. Tango gives the rates for
reference: the rate applied to an order is the one in effect when it is placed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal

import msgspec

from .._exceptions import ValidationError
from .._logs import escape
from .catalog import exact_amount
from .orders import _Wire

__all__ = ["ExchangeRate", "ExchangeRates"]

# Enough digits for any amount the client sends (at most 10**15 with cents) times any rate.
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP)


class ExchangeRate(_Wire, kw_only=True, gc=False):
    """One rate (``ExchangeRateView``): one unit of ``reward_currency`` costs ``base_fx``
    units of ``base_currency`` (see the module docstring). ``base_fx`` decodes from a JSON
    string (as the spec types it) or number to an exact Decimal."""

    last_modified_date: datetime | None = None
    reward_currency: str | None = None
    base_currency: str | None = None
    base_fx: Decimal | None = None

    def usable(self) -> bool:
        """True when the rate can convert: both currencies named, ``base_fx`` finite and
        greater than 0."""
        fx = self.base_fx
        return (
            isinstance(self.reward_currency, str)
            and isinstance(self.base_currency, str)
            and isinstance(fx, Decimal)
            and fx.is_finite()
            and fx > 0
        )


class ExchangeRates(_Wire, kw_only=True, gc=False):
    """Every exchange rate of the platform, with Tango's disclaimer (all pages of
    ``GET /exchangerates`` together when fetched by ``exchange_rates.get()``)."""

    disclaimer: str | None = None
    exchange_rates: list[ExchangeRate] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.exchange_rates is None:
            self.exchange_rates = []

    def rate(self, reward_currency: str, base_currency: str) -> ExchangeRate | None:
        """The usable rate from ``reward_currency`` to ``base_currency`` (codes compared
        case-insensitively; the first of duplicates), or None."""
        reward, base = reward_currency.strip().upper(), base_currency.strip().upper()
        for r in self.exchange_rates or ():
            if (
                r.usable()
                and str(r.reward_currency).strip().upper() == reward
                and str(r.base_currency).strip().upper() == base
            ):
                return r
        return None

    def convert(
        self,
        amount: Decimal | int | float,
        from_currency: str,
        to_currency: str,
        *,
        places: int | None = 2,
    ) -> Decimal:
        """``amount`` in ``from_currency`` expressed in ``to_currency``.

        Equal currencies (case-insensitively): ``amount`` itself, as a Decimal, unrounded.
        Otherwise by the rate that links them, either way round: ``amount * baseFx`` from
        a reward currency to its base currency, ``amount / baseFx`` from a base currency to
        a reward currency; failing a direct rate, through a base currency both are quoted
        in (``from -> base -> to``). The result is rounded half up to ``places`` decimal
        places (default 2, cents; None: unrounded, 60 significant digits): an estimate,
        since Tango applies the rate in effect when the order is placed.

        ValidationError: ``amount`` not a finite number (a float is taken at its shortest
        repr) or too large to convert ("amount"); a currency that is not a string, or no
        usable rate links the two ("currency_code", naming both).
        """
        value = exact_amount(amount)
        if places is not None and (
            isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= 10
        ):
            raise ValidationError("places", "must be None or an int from 0 to 10")
        for name, code in (("from_currency", from_currency), ("to_currency", to_currency)):
            if not isinstance(code, str) or not code.strip():
                raise ValidationError("currency_code", f"{name} must be a currency code string")
        src, dst = from_currency.strip().upper(), to_currency.strip().upper()
        if src == dst:
            return value
        try:
            factor = self._factor(src, dst)
        except ArithmeticError:  # decimal Overflow / DivisionByZero / InvalidOperation
            raise ValidationError("amount", "cannot be converted at that exchange rate") from None
        if factor is None:
            raise ValidationError(
                "currency_code",
                f"no exchange rate links {escape(src[:10])} and {escape(dst[:10])}",
            )
        try:
            out = _CONTEXT.multiply(value, factor)
            if places is not None:
                out = out.quantize(Decimal((0, (1,), -int(places))), context=_CONTEXT)
        except ArithmeticError:  # InvalidOperation, Overflow: beyond what a rate can give
            raise ValidationError("amount", "is too large to convert") from None
        return out

    def _factor(self, src: str, dst: str) -> Decimal | None:
        """What an amount in ``src`` is multiplied by to give ``dst``, or None."""
        direct = self.rate(src, dst)
        if direct is not None:
            assert direct.base_fx is not None
            return direct.base_fx
        inverse = self.rate(dst, src)
        if inverse is not None:
            assert inverse.base_fx is not None
            return _CONTEXT.divide(Decimal(1), inverse.base_fx)
        # through a base currency both are quoted in: src -> base, then base -> dst
        for r in self.exchange_rates or ():
            if not r.usable() or str(r.reward_currency).strip().upper() != src:
                continue
            base = str(r.base_currency).strip().upper()
            other = self.rate(dst, base)
            if other is not None:
                assert r.base_fx is not None and other.base_fx is not None
                return _CONTEXT.divide(r.base_fx, other.base_fx)
        return None
