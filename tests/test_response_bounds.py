"""Issue 12, point 1: the decoded body is bounded, not the wire bytes.

A loopback server (raw HTTP/1.1 on asyncio streams, so that every byte is ours: any
Content-Encoding, with Content-Length or chunked) answers with compression bombs: 256 MiB
of zeros gzip- or deflate- (zlib and raw) encoded into ~256 KB, on success and error
statuses, against clients bounded at 1 MiB; and the issue's reproductions (a 1.04 MB gzip
answer inflating to 1 GiB; a ~2 MB one on a 503 inflating to 2 GiB) against the default
bound (32 MiB). The peak of memory allocated while the call runs (tracemalloc, which
counts every Python allocation, aiohttp's and the server's included: deterministic,
unlike RSS) stays under a small multiple of the bound.

Also: bodies under the bound decode whatever their encoding; APIError keeps at most 4 KiB
of a body, marked truncated; an encoding not asked for, a corrupt or cut compressed body,
data after its end; a caller's session with either ``auto_decompress``; the attempt's
deadline checked while decoding. Properties (hypothesis): the inflater, fed any split of
any encoded payload and asked for any step sizes, never returns more than asked and gives
back the payload; and through a client, any encoded body, any status, decodes when it is
within the bound and is refused (APIResponseValidationError) when it is not.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from aioresponses import aioresponses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tango_async as ta
from tango_async._constants import DEFAULT_MAX_RESPONSE_BYTES
from tango_async._exceptions import MAX_ERROR_BODY
from tango_async._transport import ACCEPT_ENCODING, _Inflater

from .conftest import KEY, NAME, order_request
from .raw_server import RawServer, peak_of

MiB = 1024 * 1024
LIMIT = 1 * MiB  # the bounded clients' max_response_bytes
BOMB = 256 * MiB  # what the bombs inflate to
PEAK_FACTOR = 3  # peak memory allowed, in multiples of the bound
NO_RETRY = ta.RetryPolicy(max_retries=0)

ORDER = {
    "referenceOrderID": "RA1",
    "externalRefID": "ref-1",
    "customerIdentifier": "cust-1",
    "accountIdentifier": "acct-1",
    "amountCharged": {"value": 10, "currencyCode": "USD", "total": 10},
    "denomination": {"value": 10, "currencyCode": "USD"},
    "utid": "U561593",
    "rewardName": "Amazon.com Gift Card",
    "sendEmail": False,
    "status": "COMPLETE",
    "createdAt": "2024-01-01T00:00:00.000Z",
}
ERROR_404 = {
    "timestamp": "2024-01-01T00:00:00.000Z",
    "requestId": "req-404",
    "path": "/raas/v2/orders/RA1",
    "httpCode": 404,
    "httpPhrase": "Not Found",
    "i18nKey": "404.002",
    "message": "Order not found",
    "errors": [{"i18nKey": "404.002", "message": "Order not found"}],
}


# --- encodings and bombs --------------------------------------------------------------------------


def encode(data: bytes, encoding: str) -> bytes:
    """``data`` in a Content-Encoding: gzip, deflate (zlib-wrapped), raw-deflate (sent as
    "deflate", as some servers do), identity."""
    if encoding == "identity":
        return data
    wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15}[encoding]
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return c.compress(data) + c.flush()


def header_value(encoding: str) -> str | None:
    return {"identity": None, "raw-deflate": "deflate"}.get(encoding, encoding)


@functools.cache
def _zlib_zeros(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 15)
    block = bytes(MiB)
    return b"".join([*(c.compress(block) for _ in range(size // MiB)), c.flush()])


@functools.cache
def bomb(encoding: str, size: int = BOMB) -> bytes:
    """``size`` zero bytes, compressed as much as deflate goes (~1:1030): one compression,
    rewrapped for the three framings."""
    stream = _zlib_zeros(size)
    raw = stream[2:-4]
    if encoding == "deflate":
        return stream
    if encoding == "raw-deflate":
        return raw
    crc = 0
    block = bytes(MiB)
    for _ in range(size // MiB):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + raw + struct.pack("<II", crc, size & 0xFFFFFFFF)


def gzip_members(member_size: int, count: int) -> bytes:
    """A gzip body of ``count`` members of ``member_size`` zeros each (RFC 1952 allows it)."""
    return bomb("gzip", member_size) * count


# --- a raw loopback HTTP server -------------------------------------------------------------------


def http_response(
    status: int,
    body: bytes,
    *,
    encoding: str | None = None,
    content_length: bool = True,
    content_type: str = "application/json",
) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}"]
    if encoding is not None:
        head.append(f"Content-Encoding: {encoding}")
    if content_length:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    else:
        head.append("Transfer-Encoding: chunked")
        step = 16 * 1024
        payload = (
            b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step])
                for i in range(0, len(body), step)
            )
            + b"0\r\n\r\n"
        )
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    srv = RawServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


def client(base_url: str, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"retry": NO_RETRY, "max_response_bytes": LIMIT}
    options.update(kw)
    return ta.TangoClient(NAME, KEY, base_url=base_url, **options)


ENCODINGS = ["gzip", "deflate", "raw-deflate"]
STATUSES = [200, 404, 429, 503]


# --- bombs against a 1 MiB bound ------------------------------------------------------------------


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_bomb_is_bounded_within_a_small_multiple_of_the_bound(
    server: RawServer, encoding: str, status: int, content_length: bool
) -> None:
    wire = bomb(encoding)
    server.answer = http_response(
        status, wire, encoding=header_value(encoding), content_length=content_length
    )
    async with client(server.base_url) as tango:
        peak, outcome = await peak_of(lambda: tango.orders.get("RA1"))
    if 200 <= status < 300:
        assert isinstance(outcome, ta.APIResponseValidationError), outcome
        assert "larger than 1048576 bytes (decoded)" in str(outcome)
        assert outcome.body == b""
    else:  # an error status keeps its meaning (a 429 is still a 429); its body is cut
        assert isinstance(outcome, ta.APIError), outcome
        assert not isinstance(outcome, ta.APIResponseValidationError)
        assert outcome.body_truncated and len(outcome.body) <= MAX_ERROR_BODY
    assert outcome.status_code == status
    assert outcome.__context__ is None and outcome.__cause__ is None
    assert peak < PEAK_FACTOR * LIMIT, f"peak {peak / MiB:.2f} MiB for a {LIMIT / MiB:g} MiB bound"


@pytest.mark.parametrize("auto_decompress", [True, False])
async def test_a_callers_session_is_bounded_whatever_its_auto_decompress(
    server: RawServer, auto_decompress: bool
) -> None:
    server.answer = http_response(200, bomb("gzip"), encoding="gzip", content_length=False)
    async with (
        aiohttp.ClientSession(auto_decompress=auto_decompress) as session,
        client(server.base_url, session=session) as tango,
    ):
        peak, outcome = await peak_of(lambda: tango.orders.get("RA1"))
    assert isinstance(outcome, ta.APIResponseValidationError), outcome
    assert peak < PEAK_FACTOR * LIMIT, peak
    assert f"Accept-Encoding: {ACCEPT_ENCODING}".encode() in server.heads[-1]


async def test_regression_1_mb_gzip_inflating_to_1_gib(server: RawServer) -> None:
    """The issue's first reproduction, against the default bound (32 MiB): the answer
    inflated to 1 GiB (RSS 1.3 GB). Now it stops at the bound, peak within 3x the bound."""
    wire = gzip_members(BOMB, 4)  # 1 GiB in four members of 256 MiB: 1.04 MB on the wire
    assert 1_000_000 < len(wire) < 1_100_000
    server.answer = http_response(200, wire, encoding="gzip")
    async with ta.TangoClient(NAME, KEY, base_url=server.base_url, retry=NO_RETRY) as tango:
        peak, outcome = await peak_of(lambda: tango.orders.get("RA1"))
    assert isinstance(outcome, ta.APIResponseValidationError), outcome
    assert f"larger than {DEFAULT_MAX_RESPONSE_BYTES} bytes" in str(outcome)
    assert peak < PEAK_FACTOR * DEFAULT_MAX_RESPONSE_BYTES, peak


async def test_regression_2_mb_on_an_error_status_inflating_to_2_gib(server: RawServer) -> None:
    """The issue's second reproduction: a ~2 MB gzip answer on a 503 put a 2 GiB ``.body``
    on a ServerError. Now: read up to the bound and no further, a ServerError still, with
    at most 4 KiB of body kept."""
    server.answer = http_response(503, gzip_members(BOMB, 8), encoding="gzip")
    async with ta.TangoClient(NAME, KEY, base_url=server.base_url, retry=NO_RETRY) as tango:
        peak, outcome = await peak_of(lambda: tango.orders.get("RA1"))
    assert isinstance(outcome, ta.ServerError), outcome
    assert outcome.status_code == 503 and len(outcome.body) <= MAX_ERROR_BODY
    assert outcome.body_truncated
    assert peak < PEAK_FACTOR * DEFAULT_MAX_RESPONSE_BYTES, peak


async def test_a_create_refused_at_the_bound_counts_as_answered(server: RawServer) -> None:
    """An order creation answered with a bomb: the server answered, so the order may exist;
    the client asks again with the same externalRefID (never a second order)."""
    server.answer = http_response(201, bomb("gzip"), encoding="gzip")
    retry = ta.RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
    async with client(server.base_url, order_rate=1000.0, retry=retry) as tango:
        with pytest.raises(ta.APIResponseValidationError) as e:
            await tango.orders.create(order_request(send_email=False))
    assert e.value.outcome_unknown and e.value.external_ref_id
    refs = [msgspec.json.decode(b)["externalRefID"] for b in server.bodies]
    assert len(refs) == 3 and set(refs) == {e.value.external_ref_id}


# --- bodies within the bound ----------------------------------------------------------------------


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("encoding", [*ENCODINGS, "identity"])
async def test_an_encoded_answer_within_the_bound_decodes(
    server: RawServer, encoding: str, content_length: bool
) -> None:
    # padded to ~900 KiB decoded: under the bound, many wire chunks, many decoding steps
    body = msgspec.json.encode({**ORDER, "notes": "n" * (900 * 1024)})
    server.answer = http_response(
        200, encode(body, encoding), encoding=header_value(encoding), content_length=content_length
    )
    async with client(server.base_url) as tango:
        order = await tango.orders.get("RA1")
    assert order.reference_order_id == "RA1"


@pytest.mark.parametrize("encoding", [*ENCODINGS, "identity"])
async def test_an_encoded_error_body_gives_its_typed_error(
    server: RawServer, encoding: str
) -> None:
    server.answer = http_response(
        404, encode(msgspec.json.encode(ERROR_404), encoding), encoding=header_value(encoding)
    )
    async with client(server.base_url) as tango:
        with pytest.raises(ta.NotFoundError) as e:
            await tango.orders.get("RA1")
    assert e.value.i18n_key == "404.002" and e.value.request_id == "req-404"
    assert not e.value.body_truncated and e.value.body == msgspec.json.encode(ERROR_404)


async def test_a_body_of_exactly_the_bound_is_read(server: RawServer) -> None:
    body = msgspec.json.encode({**ORDER, "notes": ""})
    body = body[:-1] + b', "pad": "' + b"p" * (LIMIT - len(body) - 11) + b'"}'
    assert len(body) == LIMIT
    server.answer = http_response(200, encode(body, "gzip"), encoding="gzip")
    async with client(server.base_url) as tango:
        assert (await tango.orders.get("RA1")).reference_order_id == ORDER["referenceOrderID"]
        server.answer = http_response(200, encode(body + b" ", "gzip"), encoding="gzip")
        with pytest.raises(ta.APIResponseValidationError, match="larger than"):
            await tango.orders.get("RA1")


# --- what an exception keeps ----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
async def test_an_error_body_is_kept_truncated_to_4_kib(server: RawServer, encoding: str) -> None:
    body = b"<html>" + b"x" * (500 * 1024) + b"</html>"  # 500 KiB: within the bound
    server.answer = http_response(
        500, encode(body, encoding), encoding=header_value(encoding), content_type="text/html"
    )
    async with client(server.base_url) as tango:
        with pytest.raises(ta.ServerError) as e:
            await tango.orders.get("RA1")
    err = e.value
    assert err.body == body[:MAX_ERROR_BODY] and len(err.body) == 4096
    assert err.body_truncated and err.body_size == len(body)
    assert len(str(err)) < 500 and "non-JSON body (512013 bytes" in str(err)


async def test_error_details_are_kept_small(server: RawServer) -> None:
    """A JSON error body of 100,000 items, each with a long message and a big invalidValue:
    the exception keeps 50 items, each text cut at 1000 characters."""
    item = {"i18nKey": "400.004", "message": "m" * 5000, "invalidValue": ["v" * 100] * 100}
    body = msgspec.json.encode({"httpCode": 400, "errors": [item] * 2000})
    assert len(body) < LIMIT * 30
    server.answer = http_response(400, encode(body, "gzip"), encoding="gzip")
    async with client(server.base_url, max_response_bytes=32 * MiB) as tango:
        with pytest.raises(ta.BadRequestError) as e:
            await tango.orders.get("RA1")
    err = e.value
    assert len(err.errors) == 50 and err.body_truncated and len(err.body) == MAX_ERROR_BODY
    assert all(len(d.message or "") <= 1010 for d in err.errors)
    assert all(len(str(d.invalid_value)) <= 1010 for d in err.errors)
    assert len(str(err)) < 1200


def test_api_error_truncates_any_body_given() -> None:
    err = ta.APIResponseValidationError("x", status_code=200, body=b"y" * (1 << 20))
    assert len(err.body) == MAX_ERROR_BODY and err.body_truncated and err.body_size == 1 << 20
    small = ta.APIError("x", status_code=400, body=b"{}")
    assert small.body == b"{}" and not small.body_truncated and small.body_size == 2


# --- encodings not asked for, broken streams ------------------------------------------------------


async def test_accept_encoding_asks_only_for_what_is_decoded(server: RawServer) -> None:
    server.answer = http_response(200, msgspec.json.encode(ORDER))
    async with client(server.base_url) as tango:
        await tango.orders.get("RA1")
    head = server.heads[-1].decode()
    assert "Accept-Encoding: gzip, deflate\r\n" in head
    assert "br" not in head.split("Accept-Encoding:")[1].split("\r\n")[0]


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
async def test_an_encoding_not_asked_for(server: RawServer, encoding: str) -> None:
    async with client(server.base_url) as tango:
        server.answer = http_response(200, b"\x00" * 100, encoding=encoding)
        with pytest.raises(ta.APIResponseValidationError, match="encoding not asked for"):
            await tango.orders.get("RA1")
        # on an error status the status still counts: kept as it came (bounded), typed
        server.answer = http_response(503, b"\x00" * 100, encoding=encoding)
        with pytest.raises(ta.ServerError) as e:
            await tango.orders.get("RA1")
        assert e.value.body == b"\x00" * 100


BROKEN = {
    "corrupt": encode(msgspec.json.encode(ORDER), "gzip")[:20] + b"\xff" * 64,
    "cut": encode(msgspec.json.encode(ORDER), "gzip")[:-12],
    "trailing": encode(msgspec.json.encode(ORDER), "gzip") + b"garbage",
    "not-gzip": msgspec.json.encode(ORDER),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_a_broken_gzip_body(server: RawServer, case: str) -> None:
    async with client(server.base_url) as tango:
        server.answer = http_response(200, BROKEN[case], encoding="gzip")
        with pytest.raises(ta.APIResponseValidationError, match="does not decode"):
            await tango.orders.get("RA1")
        server.answer = http_response(404, BROKEN[case], encoding="gzip")
        with pytest.raises(ta.NotFoundError) as e:
            await tango.orders.get("RA1")
        assert e.value.body_truncated


async def test_gzip_members_decode_one_after_the_other(server: RawServer) -> None:
    body = msgspec.json.encode(ORDER)
    wire = encode(body[:50], "gzip") + encode(body[50:], "gzip")
    server.answer = http_response(200, wire, encoding="gzip", content_length=False)
    async with client(server.base_url) as tango:
        assert (await tango.orders.get("RA1")).utid == "U561593"


async def test_endless_empty_gzip_members_are_refused(server: RawServer) -> None:
    server.answer = http_response(200, encode(b"", "gzip") * 100_000, encoding="gzip")
    async with client(server.base_url) as tango:
        with pytest.raises(ta.APIResponseValidationError, match="1024 gzip members"):
            await tango.orders.get("RA1")


async def test_the_deadline_covers_decoding(server: RawServer) -> None:
    """Decoding runs between reads, checking the attempt's deadline every MiB: past it,
    TimeoutError (APITimeoutError for the caller), however fast the wire is."""
    server.answer = http_response(200, bomb("gzip"), encoding="gzip")
    async with client(server.base_url, max_response_bytes=64 * MiB) as tango:
        transport = tango._transport
        session = transport.session()
        loop = asyncio.get_running_loop()
        async with session.get(server.base_url + "/orders/x", auto_decompress=False) as resp:
            with pytest.raises(TimeoutError):
                await transport._read(resp, "GET", "/orders/x", loop.time() - 1)


# --- properties -----------------------------------------------------------------------------------

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(
    payload=st.one_of(
        st.binary(max_size=3000),
        st.integers(0, 300_000).map(bytes),  # zeros: compress 1000:1
        st.integers(1, 3000).map(lambda n: b"abc" * n),
    ),
    encoding=st.sampled_from([*ENCODINGS, "identity"]),
    cuts=st.lists(st.integers(0, 400_000), max_size=8),
    sizes=st.lists(st.integers(1, 70_000), min_size=1, max_size=6),
    members=st.integers(1, 3),
)
def test_property_the_inflater_never_returns_more_than_asked(
    payload: bytes, encoding: str, cuts: list[int], sizes: list[int], members: int
) -> None:
    wire = encode(payload, encoding)
    expected = payload
    if encoding == "gzip":
        wire, expected = wire * members, payload * members
    inflater = _Inflater.for_encoding(header_value(encoding) or "")
    assert inflater is not None
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    out = bytearray()
    step = 0
    for a, b in itertools.pairwise(points):
        inflater.feed(wire[a:b])
        while True:
            size = sizes[step % len(sizes)]
            step += 1
            piece = inflater.pull(size)
            if not piece:
                break
            assert encoding == "identity" or len(piece) <= size
            out += piece
    assert inflater.finish() is None
    assert bytes(out) == expected


SMALL = 16 * 1024


@PROPERTY
@given(
    size=st.one_of(st.integers(0, 3 * SMALL), st.integers(SMALL - 3, SMALL + 3)),
    encoding=st.sampled_from([*ENCODINGS, "identity"]),
    status=st.sampled_from([200, 400, 404, 429, 500, 503]),
    content_length=st.booleans(),
    filler=st.sampled_from([b" ", b"x", b"\x00"]),
)
def test_property_any_body_any_status_is_decoded_within_the_bound_refused_past_it(
    size: int, encoding: str, status: int, content_length: bool, filler: bytes
) -> None:
    decoded = (filler * size)[:size]
    wire = encode(decoded, encoding)
    headers = {"Content-Type": "application/octet-stream"}
    if header_value(encoding):
        headers["Content-Encoding"] = header_value(encoding) or ""
    if content_length:
        headers["Content-Length"] = str(len(wire))
    url = "https://api.test.invalid/raas/v2/orders/RA1"

    async def scenario() -> BaseException | None:
        async with ta.TangoClient(
            NAME, KEY, base_url="https://api.test.invalid/raas/v2", retry=NO_RETRY,
            max_response_bytes=SMALL,
        ) as tango:  # fmt: skip
            with aioresponses() as m:
                m.get(url, status=status, body=wire, headers=headers)
                try:
                    await tango.orders.get("RA1")
                except ta.TangoError as e:
                    return e
        return None

    error = asyncio.run(scenario())
    if size > SMALL and status == 200:
        assert isinstance(error, ta.APIResponseValidationError), error
        assert "larger than" in str(error) and error.status_code == status
    elif size > SMALL:  # an error status keeps its meaning; its body is cut at the bound
        assert isinstance(error, ta.APIError) and error.status_code == status, error
        assert not isinstance(error, ta.APIResponseValidationError)
        assert error.body == decoded[:MAX_ERROR_BODY] and error.body_truncated
    elif status == 200:  # within the bound: it decoded, and is not an order
        assert isinstance(error, ta.APIResponseValidationError), error
        assert "does not decode" in str(error) and "larger than" not in str(error)
        assert error.body == decoded[:MAX_ERROR_BODY]
    else:
        assert isinstance(error, ta.APIError) and error.status_code == status, error
        assert not isinstance(error, ta.APIResponseValidationError)
        assert error.body == decoded[:MAX_ERROR_BODY] and error.body_size == size
        assert error.body_truncated == (size > MAX_ERROR_BODY)


async def test_regression_a_429_over_the_bound_is_still_a_429() -> None:
    """Found in the adversarial review: a 429 (or 503) whose body was over the bound became
    an APIResponseValidationError, so a read was not retried and Retry-After was lost.
    Now the status counts: retried after its Retry-After, then the answer is read."""
    url = "https://api.test.invalid/raas/v2/orders/RA1"
    order = {"referenceOrderID": "RA1", "externalRefID": "ref-1"}
    retry = ta.RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
    async with ta.TangoClient(
        NAME, KEY, base_url="https://api.test.invalid/raas/v2", retry=retry,
        max_response_bytes=1000,
    ) as tango:  # fmt: skip
        with aioresponses() as m:
            m.get(url, status=429, body=b"x" * 5000, headers={"retry-after": "0"})
            m.get(url, status=200, payload=order)
            got = await tango.orders.get("RA1")
            sent = sum(len(v) for v in m.requests.values())
    assert got.reference_order_id == "RA1" and sent == 2
