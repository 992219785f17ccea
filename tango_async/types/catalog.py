"""Catalog models: the platform's catalog (brands and their items), choice products and the
reference lists (brand categories, credential types, reward and mobile countries).

Wire names are the spec's camelCase (``GET /catalogs`` answers ``CatalogViewVerbose``).
Unknown fields are ignored and every status or type stays a plain ``str``, so new values
never break decoding; values (``minValue``, ``maxValue``, ``faceValue``, fees) decode to
exact ``Decimal``s. Lists that Tango may write as ``null`` are always lists once decoded.

:meth:`Catalog.check` holds the catalog's order rules (the item exists and is active, the
amount fits its value rule, the currency matches): it is what ``TangoClient(...,
check_catalog=True)`` and the bulk pre-flight ask before anything is sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec

from .._exceptions import ValidationError
from .._logs import escape
from .orders import _Wire

__all__ = [
    "FIXED_VALUE",
    "INACTIVE_STATUSES",
    "VARIABLE_VALUE",
    "Brand",
    "BrandCategory",
    "BrandRequirements",
    "Catalog",
    "CatalogItem",
    "ChoiceProduct",
    "CostAdjustment",
    "Country",
    "CredentialType",
    "MobileCountry",
    "QuantityConstraints",
]

FIXED_VALUE = "FIXED_VALUE"  # valueType: one face value
VARIABLE_VALUE = "VARIABLE_VALUE"  # valueType: any amount from minValue to maxValue
# Item or brand statuses (compared case-insensitively) that refuse orders. Any other status,
# a new one included, is let through: being stricter than Tango would block valid orders.
INACTIVE_STATUSES = frozenset({"inactive", "deleted", "disabled"})
_SHOWN = 40  # characters of a number or name shown in a rule


def _listed(value: list[Any] | None) -> list[Any]:
    return [] if value is None else value


class QuantityConstraints(_Wire, kw_only=True, gc=False):
    """How many of an item one order may hold."""

    min_quantity: int | None = None
    max_quantity: int | None = None


class CostAdjustment(_Wire, kw_only=True, gc=False):
    """A fee of an item (``CostAdjustmentEntity``): its ``type`` (e.g. a percentage or a
    flat amount, as Tango names it) and its ``value``."""

    type: str | None = None
    value: Decimal | None = None


class BrandRequirements(_Wire, kw_only=True, gc=False):
    """What must be shown with a brand's rewards (display, terms, disclaimer)."""

    display_instructions: str | None = None
    terms_and_conditions_instructions: str | None = None
    disclaimer_instructions: str | None = None
    always_show_disclaimer: bool | None = None


class BrandCategory(_Wire, kw_only=True, gc=False):
    """A brand category (``BrandCategoryView``, and a brand's ``categories``): its UUID and
    description."""

    identifier: str | None = None
    description: str | None = None


class CatalogItem(_Wire, kw_only=True, gc=False):
    """One reward of the catalog (``ItemViewVerbose``), identified by its ``utid``.

    ``value_type`` is FIXED_VALUE (``face_value`` is the one amount it is sold at) or
    VARIABLE_VALUE (any amount from ``min_value`` to ``max_value``), in ``currency_code``;
    ``is_whole_amount_value_required`` asks for amounts without cents. ``status`` is a
    plain string (Tango writes "active"; "inactive" items refuse orders).
    """

    utid: str | None = None
    reward_name: str | None = None
    currency_code: str | None = None
    status: str | None = None
    value_type: str | None = None
    reward_type: str | None = None
    is_expirable: bool | None = None
    quantity_constraints: QuantityConstraints | None = None
    is_whole_amount_value_required: bool | None = None
    exchange_rate_rule: str | None = None
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    face_value: Decimal | None = None
    fee: CostAdjustment | None = None
    created_date: str | None = None  # the spec types both dates as plain strings
    last_update_date: str | None = None
    # Optional on the wire (null or absent); always a list once decoded.
    countries: list[str] | None = msgspec.field(default_factory=list)
    credential_types: list[str] | None = msgspec.field(default_factory=list)
    redemption_instructions: str | None = None
    fulfillment_type: str | None = None  # deprecated by Tango: DIGITAL or PHYSICAL
    attributes: list[str] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        self.countries = _listed(self.countries)
        self.credential_types = _listed(self.credential_types)
        self.attributes = _listed(self.attributes)


class Brand(_Wire, kw_only=True, gc=False):
    """A brand of the catalog (``BrandViewWithItemsVerbose``) and its items. The verbose
    fields (status, texts, requirements, image URLs by size) are None / empty in a
    catalog fetched with ``verbose=False``."""

    brand_key: str | None = None
    brand_name: str | None = None
    disclaimer: str | None = None
    description: str | None = None
    short_description: str | None = None
    terms: str | None = None
    created_date: str | None = None
    last_update_date: str | None = None
    brand_requirements: BrandRequirements | None = None
    # image size (e.g. "200w-326ppi") -> URL; always a dict once decoded
    image_urls: dict[str, str] | None = msgspec.field(default_factory=dict)
    status: str | None = None
    items: list[CatalogItem] | None = msgspec.field(default_factory=list)
    barcode_type: str | None = None
    categories: list[BrandCategory] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.image_urls is None:
            self.image_urls = {}
        self.items = _listed(self.items)
        self.categories = _listed(self.categories)


_Entry = tuple[Brand, CatalogItem]


class Catalog(_Wire, kw_only=True, dict=True):
    """The platform's catalog (``GET /catalogs``, ``CatalogViewVerbose``): its brands, each
    with its items.

    :meth:`find`, :meth:`brand_of` and :meth:`check` look items up by utid
    (case-insensitively; the first of duplicates wins) in an index built on the first
    lookup and kept on the object, so each lookup after it is O(1). The index reflects the
    brands as they were then: treat a Catalog as read-only (one decoded afresh, or
    ``msgspec.structs.replace``-d, builds its own).
    """

    catalog_name: str | None = None
    brands: list[Brand] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        self.brands = _listed(self.brands)

    def _index(self) -> dict[str, _Entry]:
        index: dict[str, _Entry] | None = self.__dict__.get("_utid_index")
        if index is None:
            index = {}
            for brand in self.brands or ():
                for item in brand.items or ():
                    if isinstance(item.utid, str):
                        index.setdefault(item.utid.upper(), (brand, item))
            self.__dict__["_utid_index"] = index
        return index

    def _entry(self, utid: object) -> _Entry | None:
        return self._index().get(utid.upper()) if isinstance(utid, str) else None

    def items(self) -> Iterator[CatalogItem]:
        """Every item of every brand, in the catalog's order."""
        for brand in self.brands or ():
            yield from brand.items or ()

    def find(self, utid: str) -> CatalogItem | None:
        """The item with this utid, or None (O(1) after the first lookup)."""
        entry = self._entry(utid)
        return None if entry is None else entry[1]

    def brand_of(self, utid: str) -> Brand | None:
        """The brand of the item with this utid, or None."""
        entry = self._entry(utid)
        return None if entry is None else entry[0]

    def check(
        self, utid: str, amount: Decimal | int | float, currency_code: str | None = None
    ) -> None:
        """Refuse an order of ``amount`` of ``utid`` that this catalog says Tango refuses:
        ValidationError(field, rule), the rule naming the item's own rule, e.g.
        ``amount: must be between 5 and 500 USD for U123 (Amazon.com Gift Card)``.

        - ``utid``: not in the catalog, or the item or its brand is inactive (a status in
          :data:`INACTIVE_STATUSES`, compared case-insensitively);
        - ``currency_code`` (only when given, and when the item names its currency): not
          the item's currency. An order's amount is in the item's currency (Tango
          charges the account in its own currency at the day's exchange rate), so pass it
          only for an amount known to be in some currency;
        - ``amount`` (a Decimal, int or float; a float is taken at its shortest repr):
          not a finite number; for FIXED_VALUE not the face value; for VARIABLE_VALUE
          below ``min_value`` or above ``max_value``; with
          ``is_whole_amount_value_required``, not a whole amount.

        A rule whose value the item lacks (or holds as NaN or infinity) is not checked,
        nor is the amount of an unknown ``value_type``: the server decides those. O(1)
        after the first lookup; nothing is fetched or sent.
        """
        if not isinstance(utid, str) or not utid:
            raise ValidationError("utid", "must be a non-empty string")
        entry = self._entry(utid)
        if entry is None:
            where = f" {_name(self.catalog_name)}" if self.catalog_name else ""
            raise ValidationError(
                "utid", f"must be an item of the catalog{where} ({_name(utid)} is not in it)"
            )
        brand, item = entry
        label = _label(item)
        for whose, status in (("its", item.status), ("its brand's", brand.status)):
            if isinstance(status, str) and status.strip().lower() in INACTIVE_STATUSES:
                raise ValidationError(
                    "utid", f"must be an active item ({label}: {whose} status is {_name(status)})"
                )
        currency = item.currency_code if isinstance(item.currency_code, str) else None
        if currency_code is not None:
            if not isinstance(currency_code, str):
                raise ValidationError("currency_code", "must be a currency code string")
            if currency and currency_code.strip().upper() != currency.strip().upper():
                raise ValidationError("currency_code", f"must be {_name(currency)} for {label}")
        value = exact_amount(amount)
        unit = f" {_name(currency)}" if currency else ""
        kind = item.value_type.strip().upper() if isinstance(item.value_type, str) else None
        if kind == FIXED_VALUE:
            face = _finite(item.face_value)
            if face is not None and value != face:
                raise ValidationError(
                    "amount", f"must be {_number(face)}{unit} for {label} (a fixed-value item)"
                )
        elif kind == VARIABLE_VALUE:
            low, high = _finite(item.min_value), _finite(item.max_value)
            if (low is not None and value < low) or (high is not None and value > high):
                if high is None:
                    assert low is not None
                    rule = f"must be at least {_number(low)}{unit}"
                elif low is None:
                    rule = f"must be at most {_number(high)}{unit}"
                else:
                    rule = f"must be between {_number(low)} and {_number(high)}{unit}"
                raise ValidationError("amount", f"{rule} for {label}")
        if item.is_whole_amount_value_required is True and value != value.to_integral_value():
            raise ValidationError("amount", f"must be a whole amount (no cents) for {label}")


def exact_amount(amount: object) -> Decimal:
    """``amount`` (a Decimal, int or float, not bool; finite) as an exact Decimal, a float at
    its shortest repr; ValidationError("amount", ...) otherwise."""
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, float)):
        raise ValidationError(
            "amount", f"must be a number (Decimal, int or float), not {type(amount).__name__}"
        )
    if isinstance(amount, float):
        if not math.isfinite(amount):
            raise ValidationError("amount", "must be a finite number")
        return Decimal(float.__repr__(amount))
    value = Decimal(amount)
    if not value.is_finite():
        raise ValidationError("amount", "must be a finite number")
    return value


def _finite(value: Decimal | None) -> Decimal | None:
    """``value`` if it is a finite Decimal, else None (a rule the item does not state)."""
    return value if isinstance(value, Decimal) and value.is_finite() else None


def _number(d: Decimal) -> str:
    """``d`` as a plain decimal without trailing zeros (``5.00`` -> ``5``, ``0.50`` ->
    ``0.5``), exactly, cut to a readable length."""
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    n = len(digits)
    while exp < 0 and n > 1 and digits[n - 1] == 0:
        n -= 1
        exp += 1
    text = format(Decimal((sign, digits[:n], exp)), "f")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _name(text: str) -> str:
    """A server or user string for a rule: one line, escaped, cut to a readable length."""
    cut = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    return escape(cut)


def _label(item: CatalogItem) -> str:
    utid = _name(item.utid or "?")
    return f"{utid} ({_name(item.reward_name)})" if item.reward_name else utid


class ChoiceProduct(_Wire, kw_only=True, gc=False):
    """A choice product (``ChoiceProductDto``): a reward whose recipient picks among the
    items of its own catalog (``choice_products.catalog(utid)``)."""

    utid: str | None = None
    reward_name: str | None = None
    currency_code: str | None = None
    countries: list[str] | None = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        self.countries = _listed(self.countries)


class CredentialType(_Wire, kw_only=True, gc=False):
    """A kind of reward credential (``CredentialTypeView``: e.g. cardNumber, cardPin,
    redemptionUrl) and its description."""

    credential_type: str | None = None
    description: str | None = None


class Country(_Wire, kw_only=True, gc=False):
    """A reward country (``CountryViewSummary``) and its preferred reward currency (reward
    metadata, not an account currency)."""

    two_letter_code: str | None = None
    three_letter_code: str | None = None
    country_name: str | None = None
    preferred_currency: str | None = None


class MobileCountry(_Wire, kw_only=True, gc=False):
    """A country that rewards may be delivered to by phone (``MobileCountryView``)."""

    iso_code: str | None = None
    country_name: str | None = None
    country_code: str | None = None
    language_code: str | None = None


# --- wire shapes of the lists, unwrapped by the resources -----------------------------------


class ChoiceProductListWire(_Wire, kw_only=True, gc=False):
    choice_products: list[ChoiceProduct | None] | None = None


class BrandCategoryListWire(_Wire, kw_only=True, gc=False):
    brand_categories: list[BrandCategory | None] | None = None
