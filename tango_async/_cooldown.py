"""The resend cooldown: at most one resend of an order or line item per cooldown period."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._clock import Clock, checked_clock
from ._exceptions import ValidationError
from ._repr import tolerant_repr

if TYPE_CHECKING:
    from .types.orders import Order

__all__ = ["CooldownStore", "LocalCooldownStore", "ResendLinks"]


@runtime_checkable
class CooldownStore(Protocol):
    """What ``TangoClient(cooldown_store=...)`` takes. Keys are per platform and reference.

    ``claim`` atomically takes the key for ``cooldown`` seconds and returns 0.0, or
    returns the seconds left when it is taken. ``extend`` restarts the cooldown from now
    (the server answered). ``release`` gives the key back (the resend certainly did not
    happen).
    """

    async def claim(self, key: str, cooldown: float) -> float: ...

    async def extend(self, key: str, cooldown: float) -> None: ...

    async def release(self, key: str) -> None: ...


@tolerant_repr
class LocalCooldownStore:
    """An in-process cooldown store on ``clock`` (default: real time; TangoClient passes its
    own clock to the store it makes). ValidationError for a ``clock`` that is not a Clock."""

    _PRUNE_AT = 4096

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = checked_clock(clock)
        self._until: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"LocalCooldownStore(keys={len(self._until)})"

    async def claim(self, key: str, cooldown: float) -> float:
        now = self.clock.monotonic()
        left = self._until.get(key, 0.0) - now
        if left > 0:
            return left
        if len(self._until) >= self._PRUNE_AT:
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[key] = now + cooldown
        return 0.0

    async def extend(self, key: str, cooldown: float) -> None:
        self._until[key] = self.clock.monotonic() + cooldown

    async def release(self, key: str) -> None:
        self._until.pop(key, None)


@tolerant_repr
class ResendLinks:
    """Which line item belongs to which order, as learnt from the orders a client has seen.

    Tango keeps one resend cooldown for an order and its line item: a resend of either
    starts it for both. A bounded LRU of at most ``max_pairs`` (order, line item) pairs,
    looked up both ways; per client, in memory. ValidationError unless ``max_pairs`` is an
    int from 1 to 10**9.
    """

    def __init__(self, max_pairs: int = 10_000) -> None:
        if isinstance(max_pairs, bool) or not isinstance(max_pairs, int):
            raise ValidationError("max_pairs", "must be an int from 1 to 10**9")
        if not 1 <= max_pairs <= 10**9:
            raise ValidationError("max_pairs", "must be an int from 1 to 10**9")
        self.max_pairs = max_pairs
        self._line_item: OrderedDict[str, str] = OrderedDict()  # order -> line item, LRU
        self._order: dict[str, str] = {}  # line item -> order

    def __repr__(self) -> str:
        return f"ResendLinks(pairs={len(self._line_item)}, max_pairs={self.max_pairs})"

    def __len__(self) -> int:
        return len(self._line_item)

    def learn(self, order: Order) -> None:
        """Remember ``order``'s (referenceOrderID, referenceLineItemID) pair, if it has both."""
        self.pair(order.reference_order_id, order.reference_line_item_id)

    def pair(self, oid: str | None, line_item: str | None) -> None:
        """Remember that line item ``line_item`` is order ``oid``'s (both needed)."""
        if not oid or not line_item:
            return
        pairs = self._line_item
        if pairs.get(oid) == line_item:  # known already: the one-lookup path of a listing
            pairs.move_to_end(oid)
            return
        old = pairs.pop(oid, None)
        if old is not None:
            self._order.pop(old, None)
        other = self._order.pop(line_item, None)
        if other is not None:
            pairs.pop(other, None)
        pairs[oid] = line_item
        self._order[line_item] = oid
        while len(pairs) > self.max_pairs:
            _, dropped = pairs.popitem(last=False)
            self._order.pop(dropped, None)

    def line_item_of(self, order_id: str) -> str | None:
        """The line item of order ``order_id``, if known."""
        line_item = self._line_item.get(order_id)
        if line_item is not None:
            self._line_item.move_to_end(order_id)
        return line_item

    def order_of(self, line_item_id: str) -> str | None:
        """The order of line item ``line_item_id``, if known."""
        oid = self._order.get(line_item_id)
        if oid is not None:
            self._line_item.move_to_end(oid)
        return oid
