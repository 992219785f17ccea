"""The resend cooldown: at most one resend of an order or line item per cooldown period."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["CooldownStore", "LocalCooldownStore"]


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


class LocalCooldownStore:
    """An in-process cooldown store on the monotonic clock."""

    _PRUNE_AT = 4096

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"LocalCooldownStore(keys={len(self._until)})"

    async def claim(self, key: str, cooldown: float) -> float:
        now = time.monotonic()
        left = self._until.get(key, 0.0) - now
        if left > 0:
            return left
        if len(self._until) >= self._PRUNE_AT:
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[key] = now + cooldown
        return 0.0

    async def extend(self, key: str, cooldown: float) -> None:
        self._until[key] = time.monotonic() + cooldown

    async def release(self, key: str) -> None:
        self._until.pop(key, None)
