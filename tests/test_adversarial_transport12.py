"""Adversarial review of issue 12's transport side (bounded decoding, the credential, error
mapping): each test reproduces a hole found after the change, and holds once it is fixed.

- An error body that parses into many small objects (``{"errors": [{}, {}, ...]}``): 32 KB
  of gzip on the wire made a 32 MiB body that msgspec turned into ~11 M dicts (RSS 874 MB,
  2.3 s in one step past a 1 s timeout). Bodies with more values than their size warrants
  are no longer parsed.
- An error body nested just below the recursion limit parsed, then ``str()`` of it (one
  frame deeper) raised RecursionError out of ``build_api_error``.
- A server's ``retry-after`` / ``x-request-id`` in lower case (HTTP/2 style, as many
  proxies send them) were not found: the Retry-After was ignored (a 429 asking for an
  hour was retried after 1 s, past ``max_retry_after``), and the request ID lost.
- A Content-Encoding holding a Unicode line separator (``gzip\\u2028``, which ``strip()``
  removes) reached ``str(error)`` raw.
- A caller's session with ``auth=`` (or ``trust_env=True`` and a .netrc entry for the host):
  every request raised aiohttp's untyped ValueError.
"""

from __future__ import annotations

import asyncio
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

import tango_async as ta
from tango_async._constants import DEFAULT_MAX_RESPONSE_BYTES
from tango_async._retry import READ
from tango_async._transport import Response, build_api_error

from .conftest import order_request
from .raw_server import RawServer, peak_of
from .test_key_reach import KEY, NAME, assert_no_chain, assert_out_of_reach

MiB = 1024 * 1024
NO_RETRY = ta.RetryPolicy(max_retries=0)
FAST = ta.RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002, rate_limit_delay=0.001)


def gzip(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def answer(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", *headers]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def client(base_url: str, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"retry": NO_RETRY, "order_rate": 1000.0}
    options.update(kw)
    return ta.TangoClient(NAME, KEY, base_url=base_url, **options)


def tiny_values(size: int, item: bytes = b"{}") -> bytes:
    """A JSON error body of about ``size`` bytes: an errors[] of empty objects."""
    n = (size - 20) // (len(item) + 1)
    return b'{"errors":[' + (item + b",") * n + item + b"]}"


# --- error bodies that parse into many objects ----------------------------------------------------


@pytest.mark.parametrize("item", [b"{}", b"[]", b'"ab"', b"1.5"])
async def test_an_error_body_of_tiny_values_stays_within_a_small_multiple_of_the_bound(
    item: bytes,
) -> None:
    body = tiny_values(MiB, item)
    assert len(body) <= MiB
    async with (
        RawServer(answer=answer(400, gzip(body), "Content-Encoding: gzip")) as srv,
        client(srv.base_url, max_response_bytes=MiB) as tango,
    ):
        peak, outcome = await peak_of(lambda: tango.orders.get("RA1"))
    assert isinstance(outcome, ta.BadRequestError), outcome
    assert outcome.status_code == 400 and len(outcome.body) == 4096 and outcome.body_truncated
    assert "too many values" in str(outcome) and len(str(outcome)) < 300
    assert peak < 3 * MiB, f"peak {peak / MiB:.1f} MiB for a 1 MiB bound"  # was 25 MiB


async def test_regression_32_kb_of_gzip_on_a_400_parsed_into_11_million_dicts() -> None:
    """The reproduction: 32 KB on the wire, the default bound (32 MiB): RSS 874 MB and
    2.3 s of parsing in one step, past the 1 s timeout. Now not parsed: the peak stays
    within 3 x the bound."""
    wire = gzip(tiny_values(DEFAULT_MAX_RESPONSE_BYTES))
    assert len(wire) < 40_000
    async with (
        RawServer(answer=answer(400, wire, "Content-Encoding: gzip")) as srv,
        client(srv.base_url, timeout=1.0) as tango,
    ):
        peak, outcome = await peak_of(lambda: tango.orders.get("RA1"))
    assert isinstance(outcome, ta.BadRequestError), outcome
    assert peak < 3 * DEFAULT_MAX_RESPONSE_BYTES, f"peak {peak / MiB:.0f} MiB"


def test_a_real_error_body_is_still_parsed() -> None:
    items = [{"i18nKey": f"400.{i:03}", "message": f"m{i}", "invalidValue": [i, {"x": i}]}
             for i in range(60)]  # fmt: skip
    body = msgspec.json.encode({"requestId": "r1", "errors": items})
    err = build_api_error(Response(400, {}, body, "POST", "/orders"))
    assert len(err.errors) == 50 and err.request_id == "r1"
    assert err.errors[3].invalid_value == [3, {"x": 3}]  # small values kept as they came
    assert "400.000 m0; 400.001 m1" in str(err)


def test_empty_error_items_say_no_error_details() -> None:
    err = build_api_error(Response(400, {}, b'{"errors": [{}, {}, {}]}', "GET", "/x"))
    assert str(err) == "GET /x: HTTP 400: no error details"  # was "; ; "


# --- error bodies nested near the recursion limit -------------------------------------------------


def _deeper(frames: int, call: Callable[[], Any]) -> Any:
    return call() if frames == 0 else _deeper(frames - 1, call)


@pytest.mark.parametrize(
    "template",
    [b'{"errors": [{"invalidValue": %s}]}', b'{"errors": [%s]}', b'{"message": %s}'],
    ids=["invalidValue", "item", "message"],
)
def test_an_error_body_at_any_depth_gives_an_api_error(template: bytes) -> None:
    """Every depth up to past the recursion limit: an APIError (the body parsed or not),
    whose details render from a frame deeper still. Before: RecursionError out of
    build_api_error for the two or three depths msgspec parses and str() cannot show."""
    for depth in range(1, sys.getrecursionlimit() + 20):
        body = template % (b"[" * depth + b"]" * depth)
        err = build_api_error(Response(400, {}, body, "GET", "/x"))
        assert isinstance(err, ta.BadRequestError), depth
        rendered = _deeper(40, lambda e=err: repr(e.errors) + str(e))  # type: ignore[misc]
        assert len(rendered) < 5000, depth


# --- header names in any case ---------------------------------------------------------------------


async def test_a_lower_case_retry_after_is_honoured() -> None:
    """A 429 asking for an hour (``retry-after``, lower case): longer than max_retry_after
    (60 s), so not retried, the hint on the error. Before: retried after rate_limit_delay,
    ``retry_after`` None."""
    body = b'{"httpCode": 429, "message": "Too Many Requests"}'
    reply = answer(429, body, "retry-after: 3600", "x-request-id: req-lower")
    async with RawServer(answer=reply) as srv, client(srv.base_url, retry=FAST) as tango:
        with pytest.raises(ta.RateLimitError) as e:
            await tango.orders.get("RA1")
    assert len(srv.heads) == 1  # was 4
    assert e.value.retry_after == 3600
    assert e.value.request_id == "req-lower" and "(requestId=req-lower)" in str(e.value)


def test_a_lower_case_retry_after_is_the_floor_of_a_5xx_backoff() -> None:
    tango = ta.TangoClient(NAME, KEY, retry=FAST)
    err = build_api_error(Response(503, {"retry-after": "7", "content-type": "text/html"},
                                   b"<html>", "GET", "/x"))  # fmt: skip
    assert "text/html" in str(err)
    option = READ.decide(err, 0, tango._transport.retry)
    assert option.retry and option.delay >= 7


# --- a hostile Content-Encoding in an error's text ------------------------------------------------


@pytest.mark.parametrize("junk", ["\u2028", "\u2029", "\x85", "\x1c"])
async def test_a_content_encoding_with_a_line_separator_is_escaped(junk: str) -> None:
    head = f"HTTP/1.1 200 X\r\nContent-Encoding: gzip{junk}\r\nContent-Length: 5\r\n\r\n"
    async with RawServer(answer=head.encode() + b"xxxxx") as srv, client(srv.base_url) as tango:
        with pytest.raises(ta.APIResponseValidationError, match="does not decode") as e:
            await tango.orders.get("RA1")
    assert str(e.value).isprintable(), str(e.value)


# --- a caller's session that adds its own Authorization -------------------------------------------


def test_a_session_with_auth_is_refused_at_construction() -> None:
    async def build() -> None:
        with pytest.warns(DeprecationWarning):
            session = aiohttp.ClientSession(auth=aiohttp.BasicAuth("u", "p"))
        try:
            with pytest.raises(ta.ValidationError) as e:
                ta.TangoClient(NAME, KEY, session=session)
            assert e.value.field == "session"
            assert_out_of_reach(e.value)
        finally:
            await session.close()

    asyncio.run(build())


@pytest.fixture
def netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "netrc"
    path.write_text("machine 127.0.0.1 login someone password elsewhere\n")
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)


@pytest.mark.usefixtures("netrc")
async def test_a_netrc_entry_under_trust_env_is_a_typed_error_nothing_sent() -> None:
    """aiohttp takes the .netrc entry as auth and refuses it beside our header: before, its
    ValueError escaped (an order creation left remembered as unknown)."""
    async with RawServer(answer=answer(200, b"{}")) as srv:
        async with (
            aiohttp.ClientSession(trust_env=True) as session,
            client(srv.base_url, session=session, retry=FAST) as tango,
        ):
            with pytest.raises(ta.ValidationError) as got:
                await tango.orders.get("RA1")
            assert got.value.field == "session" and "nothing was sent" in str(got.value)
            assert_no_chain(got.value)
            assert_out_of_reach(got.value)
            with pytest.raises(ta.ValidationError) as created:
                await tango.orders.create(order_request())
            assert created.value.external_ref_id and not created.value.outcome_unknown
            assert await tango.orders.unresolved() == []
        assert srv.heads == []  # no retry, nothing sent
