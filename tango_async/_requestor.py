"""What a resource needs of its client: the transport, the policies and settings, the
shared stores. Resources take a :class:`Requestor`, never the client (stripe-python's
requestor-fed services), so a resource module imports nothing above this layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ._cache import ReferenceCache
from ._clock import Clock
from ._cooldown import CooldownStore, ResendLinks
from ._retry import RetryPolicy
from ._transport import Transport
from ._unresolved import UnresolvedStore

__all__ = ["CreateState", "Requestor"]


@dataclass(slots=True, eq=False)
class CreateState:
    """The order creations of one client, shared by its views (``with_options``,
    ``with_raw_response``): the externalRefIDs of creates in flight, and those settled (never
    reused, even if the unresolved store kept them). One per client, so that a view never
    sends a create its client has in flight."""

    in_flight: set[str] = field(default_factory=set)
    settled: dict[str, None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class Requestor:
    """One client's means of calling the API, shared by all its resources.

    ``transport`` sends (retries, pacing, bounded reads); ``resend_links`` pairs the orders
    and line items seen (a resend of one starts the cooldown of both); the rest are the
    client's settings as checked by its constructor."""

    transport: Transport
    clock: Clock
    platform_name: str
    max_amount: Decimal
    result_window: int
    resend_cooldown: float
    cooldown_store: CooldownStore
    unresolved_store: UnresolvedStore
    resend_links: ResendLinks
    # issue 15 (catalog): the client's reference-data cache (catalog, exchange rates,
    # reference lists), how long the catalog is kept, and whether orders.create checks
    # each order against the cached catalog before sending
    cache: ReferenceCache = field(default_factory=ReferenceCache)
    catalog_ttl: float = 12 * 3600.0
    check_catalog: bool = False
    creates: CreateState = field(default_factory=CreateState)

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force (the transport's)."""
        return self.transport.retry
