"""Fault injection for the sandbox: what each fault does, scripted per route, or at random
with a seed.

Each fault is one entry of ``_BEHAVIOURS``: its description (listed in :data:`FAULTS`),
the coroutine that answers a request instead of (or after) the route's handler, and the
options it needs."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._errors import HTML_502, MESSAGES, ErrorWriter
from ._wire import ENCODER, body_bytes, respond

__all__ = ["CHAOS_DEFAULT", "FAULTS", "Drop", "Exchange", "Fault", "FaultPlan", "apply"]


class Drop(Exception):
    """Close the connection without answering."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """What a fault acts on: the request and its JSON body, the fault's options, the
    route's handler (``process``: the request processed normally), and the sandbox's error
    writer, order rate (for 429.001's message) and externalRefIDs in process."""

    request: web.Request
    body: Any
    opts: dict[str, Any]
    process: Callable[[], Awaitable[web.StreamResponse]]
    errors: ErrorWriter
    order_rate: float | None
    in_process: set[str]


Behave = Callable[[Exchange], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class _Behaviour:
    description: str
    run: Behave
    # option -> what it is, for the error when it is missing: {"delay": "seconds"}
    needs: dict[str, str] = field(default_factory=dict)


def _canned(key: str, *, retry_after: bool = False) -> Behave:
    """Tango's error answer for ``key`` (options ``i18nKey`` and ``message`` override
    them), with ``Retry-After`` (option ``retry_after``, default 1) if ``retry_after``."""

    async def run(x: Exchange) -> web.StreamResponse:
        headers = {"Retry-After": str(x.opts.get("retry_after", 1))} if retry_after else None
        message = x.opts.get("message", MESSAGES[key].format(x.order_rate or 1))
        return x.errors.response(
            x.request.path,
            x.opts.get("i18nKey", key),
            message=message,
            headers=headers,
            status=int(key[:3]),
        )

    return run


async def _html_502(x: Exchange) -> web.StreamResponse:
    return web.Response(status=502, text=HTML_502, content_type="text/html")


async def _empty_500(x: Exchange) -> web.StreamResponse:
    return web.Response(status=500)


async def _truncated_500(x: Exchange) -> web.StreamResponse:
    full = ENCODER.encode(x.errors.body(x.request.path, 500, "500.001", MESSAGES["500.001"]))
    return web.Response(status=500, body=full[: len(full) // 2], content_type="application/json")


async def _malformed_200(x: Exchange) -> web.StreamResponse:
    return web.Response(
        status=200, body=b'{"referenceOrderID": RA<oops', content_type="application/json"
    )


async def _legacy_error_body(x: Exchange) -> web.StreamResponse:
    status = x.opts.get("status", 400)
    body = x.errors.body(
        x.request.path,
        status,
        x.opts.get("i18nKey", f"{status}.001"),
        x.opts.get("message", HTTPStatus(status).phrase),
        legacy=True,
    )
    return respond(body, status)


async def _redirect(x: Exchange) -> web.StreamResponse:
    return web.Response(status=x.opts.get("status", 302), headers={"Location": x.opts["location"]})


async def _drop_before(x: Exchange) -> web.StreamResponse:
    raise Drop


async def _as_usual(x: Exchange) -> web.StreamResponse:
    # repeat-page: the GET /orders route reads the fault from the request's record
    return await x.process()


async def _slow(x: Exchange) -> web.StreamResponse:
    ext = x.body.get("externalRefID") if x.opts.get("hold") and isinstance(x.body, dict) else None
    if ext is not None:
        x.in_process.add(ext)
    try:
        await asyncio.sleep(x.opts["delay"])
    finally:
        if ext is not None:
            x.in_process.discard(ext)
    return await x.process()


def _after_commit(status: int) -> Behave:
    """Processed, then ``status`` with Tango's error body."""

    async def run(x: Exchange) -> web.StreamResponse:
        await x.process()
        return x.errors.response(x.request.path, f"{status}.001")

    return run


async def _drop_after_commit(x: Exchange) -> web.StreamResponse:
    await x.process()
    raise Drop


async def _truncated_200(x: Exchange) -> web.StreamResponse:
    response = await x.process()
    raw = body_bytes(response)
    if not raw:  # nothing to cut: the answer is lost as with 500-after-commit
        return x.errors.response(x.request.path, "500.001")
    return web.Response(
        status=response.status, body=raw[: len(raw) // 2], content_type="application/json"
    )


# name -> what the sandbox does instead of (or after) answering normally
_BEHAVIOURS: dict[str, _Behaviour] = {
    "429": _Behaviour(
        "429 Too Many Requests, i18nKey 429.001, Retry-After (option retry_after, default 1)",
        _canned("429.001", retry_after=True),
    ),
    "401": _Behaviour(
        "401 with Tango's error body, nothing processed (credentials or token refused)",
        _canned("401.001"),
    ),
    "500": _Behaviour("500 with Tango's error body, nothing processed", _canned("500.001")),
    "503": _Behaviour("503 with Tango's error body, nothing processed", _canned("503.001")),
    "502-html": _Behaviour("502 with a proxy's HTML page", _html_502),
    "empty-500": _Behaviour("500 with an empty body", _empty_500),
    "truncated-500": _Behaviour("500 with a JSON error body cut in the middle", _truncated_500),
    "404": _Behaviour("404 with Tango's error body", _canned("404.001")),
    "500-after-commit": _Behaviour(
        "the request is processed (an order is made), then 500", _after_commit(500)
    ),
    "503-after-commit": _Behaviour("the request is processed, then 503", _after_commit(503)),
    "drop-after-commit": _Behaviour(
        "the request is processed, then the connection is closed unanswered", _drop_after_commit
    ),
    "drop-before": _Behaviour(
        "the connection is closed unanswered, nothing processed", _drop_before
    ),
    "slow": _Behaviour(
        "the answer waits `delay` seconds (option hold=True: its externalRefID is 'in "
        "process' meanwhile, so a concurrent retry gets 409.002)",
        _slow,
        {"delay": "seconds"},
    ),
    "409-in-process": _Behaviour(
        "409, i18nKey 409.002: the externalRefID is still in process", _canned("409.002")
    ),
    "legacy-error-body": _Behaviour(
        "an error with Tango's other body shape: top-level i18nKey/message "
        "(options status, i18nKey, message)",
        _legacy_error_body,
    ),
    "redirect": _Behaviour("302 to `location`", _redirect, {"location": "URL"}),
    "malformed-200": _Behaviour("200 with a body that is not JSON", _malformed_200),
    "truncated-200": _Behaviour(
        "the request is processed, then 200 with its JSON cut in the middle", _truncated_200
    ),
    "repeat-page": _Behaviour("GET /orders ignores `page` and answers page 0", _as_usual),
}

# name -> what the sandbox does instead of (or after) answering normally
FAULTS: dict[str, str] = {name: b.description for name, b in _BEHAVIOURS.items()}

# Faults that may be drawn at random by Sandbox.chaos(), by default.
CHAOS_DEFAULT = ("429", "500", "503", "500-after-commit", "drop-after-commit", "slow")


async def apply(name: str, exchange: Exchange) -> web.StreamResponse:
    """The answer of fault ``name`` to ``exchange`` (:class:`Drop`: none)."""
    return await _BEHAVIOURS[name].run(exchange)


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
        behaviour = _BEHAVIOURS.get(name)
        if behaviour is None:
            raise ValueError(f"unknown fault {name!r}; one of: {', '.join(FAULTS)}")
        for option, what in behaviour.needs.items():
            if option not in opts:
                raise ValueError(f"fault {name!r} needs {option}={what}")
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
