"""Choice product calls of the API: ``GET /choiceProducts`` and its item routes.

A choice product is a reward whose recipient picks among the items of its own catalog.
Every call is a read (retried on 429, 5xx, timeouts and connection errors) and is not
cached: choice products are looked up when a program is set up, not per order.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._retry import READ
from .._validation import catalog_query, check_path_id, choice_product_query, path_segment
from ..types.catalog import Catalog, ChoiceProduct, ChoiceProductListWire
from ._base import Resource
from .catalog import fetch_catalog

__all__ = ["ChoiceProducts"]


class ChoiceProducts(Resource):
    """Choice product calls of the API (``client.choice_products``)."""

    async def list(
        self,
        *,
        reward_name: str | None = None,
        currency_code: str | None = None,
        countries: str | Sequence[str] | None = None,
    ) -> list[ChoiceProduct]:
        """The platform's choice products: ``GET /choiceProducts``, filtered by
        ``reward_name``, ``currency_code`` and ``countries`` (one code or a list) when
        given. ValidationError for a bad filter (nothing sent); APIError /
        APIConnectionError once retries are spent."""
        query = choice_product_query(
            reward_name=reward_name, currency_code=currency_code, countries=countries
        )
        resp = await self._requestor.transport.request(
            "GET", "/choiceProducts", operation=READ, params=query or None
        )
        wire = resp.parse(ChoiceProductListWire)
        return [p for p in wire.choice_products or () if p is not None]

    async def get(self, utid: str, /) -> ChoiceProduct:
        """One choice product: ``GET /choiceProducts/{utid}``. ValidationError for a
        malformed utid (nothing sent); NotFoundError (or the API's 400) for an unknown
        one."""
        ref = check_path_id(utid, "utid")
        resp = await self._requestor.transport.request(
            "GET", f"/choiceProducts/{path_segment(ref)}", operation=READ
        )
        return resp.parse(ChoiceProduct)

    async def catalog(
        self,
        utid: str,
        /,
        *,
        verbose: bool | None = None,
        brand_key: str | None = None,
        brand_name: str | None = None,
        item_utid: str | None = None,
        reward_name: str | None = None,
        status: str | None = None,
        reward_type: str | Sequence[str] | None = None,
        currency_code: str | None = None,
        country: str | None = None,
        fulfillment_type: str | Sequence[str] | None = None,
        item_attribute: str | Sequence[str] | None = None,
        category_ids: str | Sequence[str] | None = None,
    ) -> Catalog:
        """The catalog a choice product's recipient picks from: ``GET
        /choiceProducts/{utid}/catalog``, with the filters of ``catalog.get()``
        (``item_utid`` is its ``utid`` query parameter: one item of that catalog). A
        :class:`~tango_async.Catalog`, so ``find`` and ``check`` work on it. Not cached.
        ValidationError for a malformed utid or filter (nothing sent)."""
        ref = check_path_id(utid, "utid")
        query = catalog_query(
            verbose=verbose,
            brand_key=brand_key,
            brand_name=brand_name,
            utid=item_utid,
            reward_name=reward_name,
            status=status,
            reward_type=reward_type,
            currency_code=currency_code,
            country=country,
            fulfillment_type=fulfillment_type,
            item_attribute=item_attribute,
            category_ids=category_ids,
        )
        return await fetch_catalog(
            self._requestor.transport, f"/choiceProducts/{path_segment(ref)}/catalog", query
        )
