"""Helpers of the line-item and webhook sandbox tests: raw HTTP calls, the spec's enums,
and a webhook listener on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from tango_async.testing import Sandbox
from tango_async.testing._contract import ContractChecker, load_spec

REFERENCE = Path("/work/shared/reference/tangocard-openapi.json")

ORDER: dict[str, Any] = {
    "customerIdentifier": "customer-1",
    "accountIdentifier": "account-1",
    "utid": "U561593",
    "amount": 10,
    "deliveryMethod": "EMAIL",
    "recipient": {"email": "rita@example.com", "firstName": "Rita", "lastName": "Lee"},
}


def spec() -> dict[str, Any]:
    """The reference spec when present, else the packaged copy."""
    return load_spec(REFERENCE if REFERENCE.exists() else None)


def checker() -> ContractChecker:
    return ContractChecker(spec())


def schema_enum(name: str, prop: str) -> list[str]:
    return list(spec()["components"]["schemas"][name]["properties"][prop]["enum"])


class Answer(NamedTuple):
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


def session(sb: Sandbox) -> aiohttp.ClientSession:
    auth = aiohttp.encode_basic_auth(sb.platform_name, sb.platform_key)
    return aiohttp.ClientSession(headers={"Authorization": auth})


async def call(
    http: aiohttp.ClientSession, sb: Sandbox, method: str, path: str, **kwargs: Any
) -> Answer:
    """``method`` ``path`` (under the sandbox's base URL); the body parsed, Decimals kept."""
    async with http.request(method, sb.base_url + path, allow_redirects=False, **kwargs) as resp:
        raw = await resp.read()
        body = json.loads(raw, parse_float=Decimal) if raw else None
        return Answer(resp.status, body, resp.headers)


def key(answer: Answer) -> str:
    """The i18nKey of an error answer (which must be Tango's error body)."""
    body = answer.body
    assert {"timestamp", "requestId", "path", "httpCode", "httpPhrase"} <= body.keys(), body
    assert body["httpCode"] == answer.status
    return str(body["errors"][0]["i18nKey"])


def paths(answer: Answer) -> set[str]:
    """The paths of a 400.004 answer's problems."""
    assert answer.status == 400, answer
    return {e["path"] for e in answer.body["errors"]}


async def order(http: aiohttp.ClientSession, sb: Sandbox, **change: Any) -> dict[str, Any]:
    """A new order (POST /orders 201) of ORDER with ``change``."""
    answer = await call(http, sb, "POST", "/orders", json=ORDER | change)
    assert answer.status == 201, answer
    return dict(answer.body)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Listener:
    """A webhook listener on loopback: records every request, answers with the next of
    ``statuses`` (200 once they run out)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def answer_with(self, statuses: Iterable[int]) -> None:
        self.statuses = list(statuses)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    def events(self) -> list[dict[str, Any]]:
        return [r.json for r in self.received]


@asynccontextmanager
async def listener(path: str = "/hook") -> AsyncIterator[Listener]:
    """A :class:`Listener` serving ``path`` on 127.0.0.1 (its ``url``)."""
    hook = Listener()
    app = web.Application()
    app.router.add_post(path, hook.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield hook
    finally:
        await runner.cleanup()


async def eventually(predicate: Any, within: float = 5.0) -> None:
    """Wait (real time, briefly) until ``predicate()`` holds: for the background tick."""
    for _ in range(int(within / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {within} s")
