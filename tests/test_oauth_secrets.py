"""Issue 15, point 5: the OAuth secrets (client secret, password, the token) are out of reach,
as the platform key is (tests/test_key_reach.py): never in a log, an error, a repr, str(),
a pickle or the locals of a traceback, for every kind of failure of the token endpoint and
of the API under OAuth."""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tango_async as ta
from tango_async.testing import Sandbox, SandboxClock

from .raw_server import RawServer
from .test_key_reach import (
    Hidden,
    _attributes,
    assert_no_chain,
    assert_out_of_reach,
    caught,
    free_port,
)

CLIENT_SECRET = "oauth-cl1ent-s3cret-0123456789"
PASSWORD = "oauth-pa55word-abcdef-987654"
NO_RETRY = ta.RetryPolicy(max_retries=0)
BASE = "https://api.test.invalid/raas/v2"
TOKEN_URL = "https://auth.test.invalid/oauth/token"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(
        order_rate=None,
        clock=SandboxClock(frozen=True),
        oauth_client_secret=CLIENT_SECRET,
        oauth_password=PASSWORD,
    ) as sandbox:
        yield sandbox


def tokens_of(sb: Sandbox) -> list[str]:
    issued = list(sb._oauth._tokens)
    return [*issued, *(f"Bearer {t}" for t in issued)]


def secrets_of(sb: Sandbox) -> list[str]:
    return [CLIENT_SECRET, PASSWORD, *tokens_of(sb)]


def password_client(sb: Sandbox, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"retry": NO_RETRY}
    options.update(kw)
    return sb.client(oauth={"grant_type": "password"}, **options)


def mocked_oauth(**kw: Any) -> ta.OAuth:
    return ta.OAuth(
        "client-1",
        Hidden(CLIENT_SECRET).value,
        username="svc",
        password=Hidden(PASSWORD).value,
        grant_type="password",
        token_url=TOKEN_URL,
        **kw,
    )


# --- the objects ------------------------------------------------------------------------------


def test_the_oauth_object_shows_nothing() -> None:
    auth = mocked_oauth()
    shown = [repr(auth), str(auth), f"{auth}", f"{auth!r:>50}", repr([auth])]
    shown += [repr(v) for v in _attributes(auth)]
    shown += [repr(vars(auth))]
    for text in shown:
        assert CLIENT_SECRET not in text and PASSWORD not in text, text
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(auth, protocol)
        with pytest.raises(TypeError):
            pickle.dumps(auth._secret, protocol)
        with pytest.raises(TypeError):
            pickle.dumps(auth._form(), protocol)
    assert copy.deepcopy(auth._secret) is auth._secret
    assert CLIENT_SECRET not in repr(auth._form()) and CLIENT_SECRET not in str(auth._form())


BAD = {
    "bad secret": ({"client_secret": Hidden(CLIENT_SECRET + "\n")}, "client_secret"),
    "bad password": ({"password": Hidden(PASSWORD + "\x00")}, "password"),
    "bad client id": ({"client_id": ""}, "client_id"),
    "bad grant": ({"grant_type": "nope"}, "grant_type"),
    "bad url": ({"token_url": "http://example.com/t"}, "token_url"),
    "no username": ({"username": None}, "username"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_constructor_error_does_not_show_the_secrets(case: str) -> None:
    changes, field = BAD[case]
    args: dict[str, Any] = {
        "client_id": "client-1",
        "client_secret": Hidden(CLIENT_SECRET),
        "username": "svc",
        "password": Hidden(PASSWORD),
        "grant_type": "password",
        "token_url": TOKEN_URL,
    }
    args.update(changes)
    with pytest.raises(ta.ValidationError) as e:
        ta.OAuth(
            args["client_id"],
            args["client_secret"].value,
            username=args["username"],
            password=args["password"].value,
            grant_type=args["grant_type"],
            token_url=args["token_url"],
        )
    assert e.value.field == field
    assert_no_chain(e.value)
    assert_out_of_reach(e.value, [CLIENT_SECRET, PASSWORD])


def test_a_client_constructor_error_does_not_show_the_secrets() -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(auth=mocked_oauth(), base_url=BASE, timeout=-1)
    assert_out_of_reach(e.value, [CLIENT_SECRET, PASSWORD])


async def test_the_client_holds_no_plain_secret(sb: Sandbox) -> None:
    async with password_client(sb) as tango:
        await tango.line_items.reason_codes()
        await caught(tango.orders.get("RA-none"))
        secrets = secrets_of(sb)
        assert len(secrets) == 4
        seen: set[int] = set()
        todo: list[tuple[Any, int]] = [(tango, 0)]
        while todo:  # every object of ours reachable from the client, five levels deep
            obj, depth = todo.pop()
            if id(obj) in seen or depth > 5:
                continue
            seen.add(id(obj))
            text = repr(obj)
            assert not any(s in text for s in secrets), text[:500]
            if type(obj).__module__.startswith("tango_async") or isinstance(
                obj, (dict, list, tuple)
            ):
                children = (
                    list(obj.values()) if isinstance(obj, dict)
                    else list(obj) if isinstance(obj, (list, tuple))
                    else list(_attributes(obj))
                )  # fmt: skip
                todo += [(c, depth + 1) for c in children]


async def test_recorded_requests_and_logs_show_no_secret(
    sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tango_async")
    sb.inject("POST /oauth/token", "503")
    async with password_client(sb, retry=ta.RetryPolicy(initial_delay=0.001)) as tango:
        await tango.line_items.reason_codes()
        sb.revoke_tokens()
        await tango.line_items.reason_codes()
    secrets = [CLIENT_SECRET, PASSWORD, *(str(r.headers.get("Authorization")) for r in sb.requests)]
    secrets = [s for s in secrets if s != "None"]
    assert any(s.startswith("Bearer ") for s in secrets)
    for rec in sb.requests:
        for text in (repr(rec), str(rec), repr(rec.headers)):
            assert not any(s in text for s in secrets), text
    assert [r.json["client_secret"] for r in sb.requests if r.path == "/oauth/token"]
    for text in [caplog.text, *(str(t) for t in sb.token_requests)]:
        for s in secrets:
            assert s not in text and s.removeprefix("Bearer ") not in text


# --- failing calls, every kind --------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "503", "429", "drop-before", "401-secret"])
async def test_a_failing_token_endpoint(sb: Sandbox, fault: str) -> None:
    if fault == "401-secret":
        auth = ta.OAuth(sb.oauth_client_id, CLIENT_SECRET + "-wrong", token_url=sb.oauth_token_url)
        tango = sb.client(auth=auth, retry=NO_RETRY)
    else:
        sb.inject("POST /oauth/token", fault)
        tango = password_client(sb)
    async with tango:
        e = await caught(tango.line_items.reason_codes())
    assert isinstance(e, ta.OAuthError), e
    assert_no_chain(e)
    assert_out_of_reach(e, [*secrets_of(sb), CLIENT_SECRET + "-wrong"])


@pytest.mark.parametrize("kind", ["401-twice", "500", "404", "drop-before"])
async def test_a_failing_api_call_under_oauth(sb: Sandbox, kind: str) -> None:
    if kind == "401-twice":
        sb.inject("GET /lineItems/*", "401", times=2)
    elif kind != "404":  # twice: aiohttp itself retries a GET dropped on a reused connection
        sb.inject("GET /lineItems/*", kind, times=2)
    async with password_client(sb) as tango:
        e = await caught(
            tango.line_items.get("LI-none") if kind == "404" else tango.line_items.reason_codes()
        )
    assert isinstance(e, ta.TangoError), e
    assert_no_chain(e)
    assert tokens_of(sb)
    assert_out_of_reach(e, secrets_of(sb))


async def test_a_token_endpoint_that_times_out() -> None:
    async with (
        RawServer(answer=None) as silent,
        ta.TangoClient(
            auth=ta.OAuth(
                "client-1",
                Hidden(CLIENT_SECRET).value,
                token_url=silent.base_url.replace("/raas/v2", "/oauth/token"),
            ),
            base_url=BASE,
            retry=NO_RETRY,
            timeout=0.05,
        ) as tango,
    ):
        e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.OAuthError), e
    assert_no_chain(e)
    assert_out_of_reach(e, [CLIENT_SECRET])


async def test_a_refused_token_endpoint() -> None:
    url = f"http://127.0.0.1:{free_port()}/oauth/token"
    auth = ta.OAuth("client-1", Hidden(CLIENT_SECRET).value, token_url=url)
    async with ta.TangoClient(auth=auth, base_url=BASE, retry=NO_RETRY) as tango:
        e = await caught(tango.orders.get("RA1"))
    assert isinstance(e, ta.OAuthError) and e.status_code == 0, e
    assert_no_chain(e)
    assert_out_of_reach(e, [CLIENT_SECRET])


async def test_cancelled_while_awaiting_the_token() -> None:
    async with RawServer(answer=None) as silent:
        auth = ta.OAuth(
            "client-1",
            Hidden(CLIENT_SECRET).value,
            token_url=silent.base_url.replace("/raas/v2", "/oauth/token"),
        )
        async with ta.TangoClient(auth=auth, base_url=BASE, retry=NO_RETRY) as tango:
            task = asyncio.create_task(caught(tango.orders.get("RA1")))
            await silent.arrived.wait()  # the form, with the secret, went out
            task.cancel()
            e = await task
    assert isinstance(e, asyncio.CancelledError), e
    assert any(f.f_code.co_name == "_attempt" for f in _frames(e))
    assert_out_of_reach(e, [CLIENT_SECRET])
    assert CLIENT_SECRET.encode() in silent.bodies[0]  # it was sent, and only there


def _frames(e: BaseException) -> list[Any]:
    frames = []
    tb = e.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


async def test_cancelled_while_awaiting_the_api_answer(sb: Sandbox) -> None:
    async with password_client(sb) as tango:
        await tango.line_items.reason_codes()  # a token
        sb.inject("GET /lineItems/*", "slow", delay=30)
        task = asyncio.create_task(caught(tango.line_items.reason_codes()))
        for _ in range(2000):
            if sum(r.path.startswith("/raas/v2/lineItems") for r in sb.requests) == 2:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        e = await task
    assert isinstance(e, asyncio.CancelledError), e
    assert_out_of_reach(e, secrets_of(sb))


# --- property -------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_categories=("Cc", "Cs")),
    min_size=8,
    max_size=40,
)
_TOKEN = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=60
)
FAILURES = [
    "token-400",
    "token-401",
    "token-500",
    "token-timeout",
    "token-refused",
    "api-401",
    "api-500",
]


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(secret=_TEXT, password=_TEXT, token=_TOKEN, kind=st.sampled_from(FAILURES))
def test_property_no_failure_shows_a_secret(
    secret: str, password: str, token: str, kind: str
) -> None:
    secret, password, token = "s-" + secret, "p-" + password, "t-" + token
    assume(len({secret, password, token}) == 3)
    assume(
        all(
            x not in y
            for x in (secret, password, token)
            for y in (secret, password, token)
            if x != y
        )
    )
    assume(all(x not in TOKEN_URL + BASE + "client-1 svc" for x in (secret, password, token)))

    async def scenario() -> BaseException:
        auth = ta.OAuth(
            "client-1", secret, username="svc", password=password, grant_type="password",
            token_url=TOKEN_URL,
        )  # fmt: skip
        async with ta.TangoClient(auth=auth, base_url=BASE, retry=NO_RETRY) as tango:
            with aioresponses() as m:
                answer = {"access_token": token, "expires_in": 86400, "token_type": "Bearer"}
                if kind.startswith("token-"):
                    what = kind.removeprefix("token-")
                    if what == "timeout":
                        m.post(TOKEN_URL, exception=TimeoutError())
                    elif what == "refused":
                        m.post(TOKEN_URL, exception=aiohttp.ClientOSError(111, "refused"))
                    else:
                        m.post(
                            TOKEN_URL,
                            status=int(what),
                            payload={"error": "x", "error_description": f"echo {secret}"},
                        )
                else:
                    m.post(TOKEN_URL, payload=answer, repeat=True)
                    m.get(
                        f"{BASE}/orders/RA1",
                        status=int(kind[-3:]),
                        payload={"errors": [{"message": "no"}]},
                        repeat=True,
                    )
                return await caught(tango.orders.get("RA1"))

    e = asyncio.run(scenario())
    assert isinstance(e, ta.TangoError), e
    assert_no_chain(e)
    assert_out_of_reach(e, [secret, password, token, f"Bearer {token}"])
