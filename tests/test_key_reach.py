"""Issue 12, point 5: the platform key is out of reach.

For a failing call of every kind (a timeout, a refused connection, a connection dropped
after sending, 4xx, 5xx, cancelled while awaiting the answer or at the write gate, a
closed session, and failures raised by a caller's own ``aiohttp.ClientSession``: its
``raise_for_status``, a trace hook or a middleware raising an aiohttp error whose
``request_info`` holds the header as plain text) the raised exception is rendered the
ways a traceback is shown with values (``traceback.TracebackException(...,
capture_locals=True)``, which also prints the ``__cause__``/``__context__`` chain; rich's
``Traceback(show_locals=True)``), and walked (every exception of its chain, every frame's
locals and their attributes): none holds the key, its Basic token, ``Basic <token>`` or
``name:key``. A TangoError from a failed attempt has neither ``__cause__`` nor
``__context__``. The constructor's own errors do not show the key either, nor does a
sandbox's recorded request. A property (hypothesis) runs any name and key through every
kind of failure aioresponses can script.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import pickle
import socket
import traceback
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from rich.console import Console
from rich.traceback import Traceback
from yarl import URL

import tango_async as ta
from tango_async._auth import Credential, HeaderValue
from tango_async.testing import Sandbox

from . import _hygiene
from .conftest import order_request
from .raw_server import RawServer

NAME = "reach-platform"
KEY = "k3y-out-of-reach-0123456789abcdef"
NO_RETRY = ta.RetryPolicy(max_retries=0)
FAST = ta.RetryPolicy(max_retries=1, initial_delay=0.001, max_delay=0.002)


def secrets_of(name: str, key: str) -> list[str]:
    token = base64.b64encode(f"{name}:{key}".encode()).decode()
    return [key, token, f"Basic {token}", f"{name}:{key}"]


SECRETS = secrets_of(NAME, KEY)


# --- rendering and walking an exception -----------------------------------------------------------


def chain(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        todo += [x.__cause__, x.__context__]


def _frames(tb: TracebackType | None) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _attributes(obj: Any) -> Iterator[Any]:
    names = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    for n in names:
        try:
            yield getattr(obj, n)
        except Exception:
            continue


HARNESS = "tests/_hygiene.py"  # the suite's wrapper of TangoClient.__init__: a caller's frame
LIBRARIES = ("/tango_async/", "/aiohttp/", "/asyncio/", "/multidict/", "/yarl/")


def _without_harness(te: traceback.TracebackException) -> None:
    """The caller's own frames hold what the caller passed: the suite's wrapper of
    TangoClient.__init__ (which passes the key on, as any caller does) is left out."""
    seen: set[int] = set()
    todo: list[traceback.TracebackException | None] = [te]
    while todo:
        t = todo.pop()
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        t.stack = traceback.StackSummary.from_list(
            [f for f in t.stack if not f.filename.endswith(HARNESS)]
        )
        todo += [t.__cause__, t.__context__]


def renderings(e: BaseException) -> Iterator[tuple[str, str]]:
    """(what, text) for each way the exception ``e`` can be shown with its values."""
    te = traceback.TracebackException.from_exception(e, capture_locals=True)
    _without_harness(te)
    yield "traceback capture_locals", "".join(te.format())
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(
        Traceback.from_exception(
            type(e), e, e.__traceback__, show_locals=True,
            locals_max_length=10_000, locals_max_string=100_000, suppress=[_hygiene],
        )
    )  # fmt: skip
    yield "rich show_locals", out.getvalue()
    for x in chain(e):
        yield f"{type(x).__name__} str/repr", f"{x!s} {x!r}"
        for value in _attributes(x):
            yield f"{type(x).__name__} attribute", repr(value)
            for inner in _attributes(value):  # e.g. an aiohttp error's request_info.headers
                yield f"{type(x).__name__} attribute's attribute", repr(inner)
        for frame in _frames(x.__traceback__):
            filename = frame.f_code.co_filename
            if filename.endswith(HARNESS):
                continue
            where = f"{type(x).__name__} frame {frame.f_code.co_name}"
            for name, value in frame.f_locals.items():
                yield f"{where} local {name}", repr(value)
                if any(lib in filename for lib in LIBRARIES):  # the library's frames, deeper
                    for inner in _attributes(value):
                        yield f"{where} local {name} attribute", repr(inner)


def assert_out_of_reach(e: BaseException, secrets: list[str] = SECRETS) -> None:
    for what, text in renderings(e):
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {what}: {text[:2000]}"


def assert_no_chain(e: BaseException) -> None:
    assert e.__cause__ is None and e.__context__ is None, (e.__cause__, e.__context__)


async def caught(awaitable: Any) -> BaseException:
    try:
        await awaitable
    except BaseException as e:  # CancelledError included, on purpose
        return e
    raise AssertionError("the call did not fail")


# --- servers --------------------------------------------------------------------------------------


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(platform_name=NAME, platform_key=KEY, order_rate=None) as sandbox:
        yield sandbox


def sandbox_client(sb: Sandbox, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"retry": NO_RETRY}
    options.update(kw)
    return sb.client(**options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def order() -> ta.CreateOrderRequest:
    return order_request(
        customer_identifier="cust-1", account_identifier="acct-1", send_email=False
    )


# --- the credential -------------------------------------------------------------------------------


def test_the_credential_shows_nothing() -> None:
    credential = Credential.build(NAME, KEY)
    assert isinstance(credential, Credential)
    shown = [
        repr(credential), str(credential), f"{credential}", f"{credential:>40}",
        f"{credential} {credential!r}", repr([credential]), repr(vars_of(credential)),
    ]  # fmt: skip
    for text in shown:
        assert not any(s in text for s in SECRETS), text
    assert "<redacted>" in repr(credential)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(credential, protocol)
    assert copy.copy(credential) is credential and copy.deepcopy(credential) is credential
    # its one way out: the header, a str whose repr is redacted
    header = credential.headers({"Accept": "application/json"})
    assert header["Authorization"] == SECRETS[2] and header["Accept"] == "application/json"
    for text in (repr(header), str(header), repr(CIMultiDict(header))):
        assert not any(s in text for s in SECRETS), text
    with pytest.raises(TypeError):
        pickle.dumps(header)
    assert copy.deepcopy(header)["Authorization"] is header["Authorization"]


def vars_of(obj: Any) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in type(obj).__slots__}


def test_a_header_value_reads_as_its_text() -> None:
    value = HeaderValue("Basic abc")
    assert value == "Basic abc" and str(value) == "Basic abc" and value + "" == "Basic abc"
    assert type(str(value)) is str and repr(value) == "<redacted>"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": -1}, "timeout"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"connector_limit": -5}, "connector_limit"),
    ],
)
def test_a_constructor_error_does_not_show_the_key(
    kwargs: dict[str, Any], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TANGO_PLATFORM_KEY", KEY)  # the test's frame holds no key
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(NAME, **kwargs)
    assert e.value.field == field
    assert_out_of_reach(e.value)


class Hidden:
    """Holds a value for a test, its repr hiding it (the test's own frame shows this)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Hidden()"


BAD_CREDENTIALS = {
    "colon-in-name": (NAME + ":x", Hidden(KEY), "platform_name"),
    "lone-surrogate": (NAME, Hidden(KEY + "\ud800"), "platform_key"),
    "no-name": ("", Hidden(KEY), "platform_name"),
    "not-a-str": (NAME, Hidden(b"bytes-" + KEY.encode()), "platform_key"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_a_bad_credential_is_refused_without_showing_it(case: str) -> None:
    name, key, field = BAD_CREDENTIALS[case]
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(name, key.value)
    assert e.value.field == field
    assert_no_chain(e.value)
    assert_out_of_reach(e.value, [KEY])


async def test_the_client_holds_no_plain_secret(sb: Sandbox) -> None:
    async with sandbox_client(sb) as tango:
        await caught(tango.orders.get("RA-none"))
        seen: set[int] = set()
        todo: list[tuple[Any, int]] = [(tango, 0)]
        while todo:  # every object of ours reachable from the client, four levels deep
            obj, depth = todo.pop()
            if id(obj) in seen or depth > 4:
                continue
            seen.add(id(obj))
            text = repr(obj)
            assert not any(s in text for s in SECRETS), text[:500]
            if type(obj).__module__.startswith("tango_async") or isinstance(
                obj, (dict, list, tuple)
            ):
                children = (
                    list(obj.values()) if isinstance(obj, dict)
                    else list(obj) if isinstance(obj, (list, tuple))
                    else list(_attributes(obj))
                )  # fmt: skip
                todo += [(c, depth + 1) for c in children]


# --- failing calls, every kind --------------------------------------------------------------------


async def test_a_timeout(sb: Sandbox) -> None:
    async with (
        RawServer(answer=None) as silent,
        ta.TangoClient(NAME, KEY, base_url=silent.base_url, retry=NO_RETRY, timeout=0.05) as tango,
    ):
        e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.APITimeoutError), e
    assert_no_chain(e)
    assert_out_of_reach(e)


async def test_a_refused_connection() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/raas/v2"
    async with ta.TangoClient(NAME, KEY, base_url=base_url, retry=NO_RETRY) as tango:
        e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.APIConnectionError) and not e.maybe_sent, e
    # what is useful is kept in the message: aiohttp's exception type, the OS error
    assert "ClientConnectorError: [Errno 111]" in str(e), e
    assert_no_chain(e)
    assert_out_of_reach(e)


@pytest.mark.parametrize("fault", ["drop-before", "drop-after-commit"])
async def test_a_dropped_connection(sb: Sandbox, fault: str) -> None:
    sb.inject("POST /orders", fault)
    async with sandbox_client(sb) as tango:
        e = await caught(tango.orders.create(order()))
    assert isinstance(e, ta.APIConnectionError), e
    assert "ServerDisconnectedError" in str(e)
    assert_no_chain(e)
    assert_out_of_reach(e)


@pytest.mark.parametrize("kind", ["404", "401", "500", "503", "429", "502-html"])
async def test_an_error_status(sb: Sandbox, kind: str) -> None:
    if kind == "401":
        tango = ta.TangoClient(NAME, KEY + "-wrong", base_url=sb.base_url, retry=NO_RETRY)
        secrets = SECRETS + secrets_of(NAME, KEY + "-wrong")
    else:
        tango = sandbox_client(sb)
        secrets = SECRETS
        if kind != "404":
            sb.inject("GET /orders/*", kind)
    async with tango:
        e = await caught(tango.orders.get("RA-none"))
    assert isinstance(e, ta.APIError) and e.status_code == int(kind[:3]), e
    assert_no_chain(e)
    assert_out_of_reach(e, secrets)


async def test_cancelled_while_awaiting_the_answer() -> None:
    async with (
        RawServer(answer=None) as silent,
        ta.TangoClient(NAME, KEY, base_url=silent.base_url, retry=NO_RETRY) as tango,
    ):
        task = asyncio.create_task(caught(tango.orders.create(order())))
        await silent.arrived.wait()  # the request, headers and body, went out
        task.cancel()
        e = await task
    assert isinstance(e, asyncio.CancelledError), e
    # the cancellation propagated through aiohttp's frames: none of their locals shows it
    assert any(f.f_code.co_name == "_request" for f in _frames(e.__traceback__))
    assert_out_of_reach(e)


class BlockedGate:
    """A rate limiter whose write gate never opens: a request waits there, connected,
    its headers about to be written."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def acquire(self) -> None:
        return None

    async def penalize(self, delay: float) -> None:
        return None

    async def before_write(self) -> object:
        self.waiting.set()
        await asyncio.Event().wait()
        return None  # pragma: no cover

    def after_write(self, token: object, *, written: bool) -> None:
        return None


async def test_cancelled_at_the_write_gate(sb: Sandbox) -> None:
    gate = BlockedGate()
    async with sandbox_client(sb, rate_limiter=gate) as tango:
        task = asyncio.create_task(caught(tango.orders.create(order())))
        await gate.waiting.wait()
        task.cancel()
        e = await task
    assert isinstance(e, asyncio.CancelledError), e
    names = {f.f_code.co_name for f in _frames(e.__traceback__)}
    assert "on_headers" in names and "send_request_headers" in names, names
    assert_out_of_reach(e)
    assert len(sb.requests) == 0


async def test_closed_while_at_the_write_gate(sb: Sandbox) -> None:
    gate = BlockedGate()
    tango = sandbox_client(sb, rate_limiter=gate)
    task = asyncio.create_task(caught(tango.orders.create(order())))
    await gate.waiting.wait()
    await tango.close()
    e = await task
    assert isinstance(e, ta.ClientClosedError), e
    assert_out_of_reach(e)


# --- a caller's own session -----------------------------------------------------------------------


async def test_a_callers_session_raise_for_status_and_auto_decompress(sb: Sandbox) -> None:
    sb.inject("GET /orders/*", "500")
    async with (
        aiohttp.ClientSession(raise_for_status=True, auto_decompress=True) as session,
        sandbox_client(sb, session=session) as tango,
    ):
        e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.ServerError), e  # the status is ours to map, not a ClientResponseError
    assert_no_chain(e)
    assert_out_of_reach(e)


def plain_request_info(headers: Any, method: str, url: Any) -> aiohttp.RequestInfo:
    """What a careless component could make: the request's headers copied as plain text."""
    plain = CIMultiDict((k, str(v)) for k, v in headers.items())
    assert any(s in repr(plain) for s in SECRETS)  # the worst case, on purpose
    return aiohttp.RequestInfo(url, method, CIMultiDictProxy(plain), url)


async def test_a_callers_trace_hook_raising_with_the_plain_header(sb: Sandbox) -> None:
    async def on_request_start(session: Any, ctx: Any, params: Any) -> None:
        info = plain_request_info(params.headers, params.method, params.url)
        raise aiohttp.ClientResponseError(info, (), status=400, message="refused by a hook")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        sandbox_client(sb, session=session) as tango,
    ):
        e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.APIConnectionError) and "ClientResponseError" in str(e), e
    assert_no_chain(e)
    assert_out_of_reach(e)


async def test_a_callers_middleware_raising_with_the_plain_header(sb: Sandbox) -> None:
    if not hasattr(aiohttp, "ClientHandlerType"):
        pytest.skip("client middlewares need aiohttp 3.12")

    async def middleware(request: Any, handler: Any) -> Any:
        info = plain_request_info(request.headers, request.method, request.url)
        raise aiohttp.ClientConnectionError(f"no: {info.method}") from (
            aiohttp.ClientResponseError(info, (), status=0)
        )

    async with (
        aiohttp.ClientSession(middlewares=(middleware,)) as session,
        sandbox_client(sb, session=session) as tango,
    ):
        e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.APIConnectionError), e
    assert_no_chain(e)
    assert_out_of_reach(e)


async def test_a_callers_closed_session(sb: Sandbox) -> None:
    session = aiohttp.ClientSession()
    tango = sandbox_client(sb, session=session)
    await session.close()
    e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.ClientClosedError), e
    assert_out_of_reach(e)
    await tango.close()


# --- the sandbox's records ------------------------------------------------------------------------


async def test_recorded_requests_show_no_credential(sb: Sandbox) -> None:
    async with sandbox_client(sb) as tango:
        await tango.orders.create(order())
        await caught(tango.orders.get("RA-none"))
    assert len(sb.requests) == 2
    for rec in sb.requests:
        for text in (repr(rec), str(rec), repr(rec.headers), repr(sb.requests)):
            assert not any(s in text for s in SECRETS), text
        assert rec.headers["Authorization"] == SECRETS[2]  # still reads as what came


# --- property -------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters=":"),
    min_size=8,
    max_size=40,
)
FAILURES = [
    "timeout", "refused", "disconnected", "payload", "plain-request-info", "os-error",
    "400", "401", "404", "409", "429", "500", "503",
]  # fmt: skip


def _failure(kind: str, name: str, key: str) -> dict[str, Any]:
    url = URL("https://api.test.invalid/raas/v2/orders/RA1")
    if kind.isdigit():
        return {"status": int(kind), "payload": {"errors": [{"message": "no"}]}}
    if kind == "plain-request-info":  # an aiohttp error holding the header as plain text
        token = base64.b64encode(f"{name}:{key}".encode()).decode()
        info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict(
            {"Authorization": f"Basic {token}"}
        )), url)  # fmt: skip
        return {"exception": aiohttp.ClientResponseError(info, (), status=500)}
    exception: BaseException = {
        "timeout": TimeoutError(),
        "refused": aiohttp.ClientOSError(111, "Connection refused"),
        "disconnected": aiohttp.ServerDisconnectedError(),
        "payload": aiohttp.ClientPayloadError("cut"),
        "os-error": OSError("an os error"),
    }[kind]
    return {"exception": exception}


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    name=_TEXT, key=_TEXT, kind=st.sampled_from(FAILURES), call=st.sampled_from(["get", "create"])
)
def test_property_no_failure_shows_the_key(name: str, key: str, kind: str, call: str) -> None:
    name, key = "n-" + name, "k-" + key
    assume(key not in name and key not in "https://api.test.invalid/raas/v2/orders/RA1")
    secrets = secrets_of(name, key)

    async def scenario() -> BaseException:
        base = "https://api.test.invalid/raas/v2"
        async with ta.TangoClient(
            name, key, base_url=base, retry=NO_RETRY, order_rate=1000.0
        ) as tango:
            with aioresponses() as m:
                if call == "get":
                    m.get(f"{base}/orders/RA1", **_failure(kind, name, key))
                    return await caught(tango.orders.get("RA1"))
                m.post(f"{base}/orders", **_failure(kind, name, key))
                return await caught(tango.orders.create(order()))

    e = asyncio.run(scenario())
    assert isinstance(e, ta.TangoError), e
    assert_no_chain(e)
    assert_out_of_reach(e, secrets)
