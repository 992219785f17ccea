"""Fault injection for the sandbox: scripted per route, or at random with a seed."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULTS", "Fault"]

# name -> what the sandbox does instead of (or after) answering normally
FAULTS: dict[str, str] = {
    "429": "429 Too Many Requests, i18nKey 429.001, Retry-After (option retry_after, default 1)",
    "500": "500 with Tango's error body, nothing processed",
    "503": "503 with Tango's error body, nothing processed",
    "502-html": "502 with a proxy's HTML page",
    "empty-500": "500 with an empty body",
    "truncated-500": "500 with a JSON error body cut in the middle",
    "404": "404 with Tango's error body",
    "500-after-commit": "the request is processed (an order is made), then 500",
    "503-after-commit": "the request is processed, then 503",
    "drop-after-commit": "the request is processed, then the connection is closed unanswered",
    "drop-before": "the connection is closed unanswered, nothing processed",
    "slow": "the answer waits `delay` seconds (option hold=True: its externalRefID is 'in "
    "process' meanwhile, so a concurrent retry gets 409.002)",
    "409-in-process": "409, i18nKey 409.002: the externalRefID is still in process",
    "legacy-error-body": "an error with Tango's other body shape: top-level i18nKey/message "
    "(options status, i18nKey, message)",
    "redirect": "302 to `location`",
    "malformed-200": "200 with a body that is not JSON",
    "truncated-200": "the request is processed, then 200 with its JSON cut in the middle",
    "repeat-page": "GET /orders ignores `page` and answers page 0",
}

# Faults that may be drawn at random by Sandbox.chaos(), by default.
CHAOS_DEFAULT = ("429", "500", "503", "500-after-commit", "drop-after-commit", "slow")


@dataclass
class Fault:
    """One scripted fault: ``name`` for the next ``remaining`` requests matching the route."""

    method: str
    segments: list[str]
    name: str
    remaining: int
    opts: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str, rel: str, body: Any = None) -> bool:
        segs = rel.strip("/").split("/")
        return (
            method == self.method
            and len(segs) == len(self.segments)
            and all(p in ("*", s) for p, s in zip(self.segments, segs, strict=True))
            and _body_matches(self.opts.get("when"), body)
        )


def _body_matches(when: Any, body: Any) -> bool:
    """Option ``when={"recipient.email": "x@example.com"}``: only requests whose JSON body
    has those values (dotted wire paths) draw the fault."""
    if not when:
        return True
    for path, expected in when.items():
        node = body
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != expected:
            return False
    return True


def parse_route(route: str) -> tuple[str, list[str]]:
    """``"POST /orders/*/resends"`` -> ("POST", ["orders", "*", "resends"])."""
    method, _, path = route.strip().partition(" ")
    if not method or not path.startswith("/"):
        raise ValueError(f"route must look like 'POST /orders', not {route!r}")
    if path.startswith("/raas/v2"):
        path = path[len("/raas/v2") :] or "/"
    return method.upper(), path.strip("/").split("/")


class FaultPlan:
    """Scripted faults first (in the order they were added), then random chaos, if set."""

    def __init__(self) -> None:
        self.scripted: list[Fault] = []
        self._rng: random.Random | None = None
        self._rate = 0.0
        self._chaos: list[str] = []
        self._routes: list[tuple[str, list[str]]] = []
        self._opts: dict[str, Any] = {}

    def add(self, route: str, name: str, times: int, opts: dict[str, Any]) -> None:
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; one of: {', '.join(FAULTS)}")
        if name == "slow" and "delay" not in opts:
            raise ValueError("fault 'slow' needs delay=seconds")
        if name == "redirect" and "location" not in opts:
            raise ValueError("fault 'redirect' needs location=URL")
        if times < 1:
            raise ValueError("times must be at least 1")
        method, segments = parse_route(route)
        self.scripted.append(Fault(method, segments, name, times, dict(opts)))

    def chaos(
        self,
        rate: float,
        seed: int,
        faults: Iterable[str],
        routes: Iterable[str],
        opts: dict[str, Any],
    ) -> None:
        names = list(faults)
        unknown = [n for n in names if n not in FAULTS]
        if unknown or not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad chaos settings: rate={rate}, unknown faults {unknown}")
        self._rng = random.Random(seed)
        self._rate = rate
        self._chaos = names
        self._routes = [parse_route(r) for r in routes]
        self._opts = {"delay": 0.05, **opts}

    def clear(self) -> None:
        self.scripted.clear()
        self._rng = None

    def next(self, method: str, rel: str, body: Any = None) -> tuple[str, dict[str, Any]] | None:
        """The fault for this request, if any, consuming one use of it."""
        for fault in self.scripted:
            if fault.matches(method, rel, body):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.scripted.remove(fault)
                return fault.name, fault.opts
        if self._rng is None or not self._chaos:
            return None
        if not any(Fault(m, s, "", 1).matches(method, rel) for m, s in self._routes):
            return None
        if self._rng.random() >= self._rate:
            return None
        return self._rng.choice(self._chaos), self._opts
