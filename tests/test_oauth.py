"""OAuth 2.0 bearer tokens (issue 15, point 5) with aioresponses: the arguments, every answer
of the token endpoint, single flight, the cache protocol, refresh ahead of expiry, the
401 renewal, and order creation under OAuth."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import tango_async as ta
from tango_async._oauth import (
    PRODUCTION_TOKEN_URL,
    SANDBOX_TOKEN_URL,
    AccessToken,
    BearerAuth,
    wall_time,
)

from .conftest import BASE, FAST_RETRY, order_request

TOKEN_URL = "https://auth.test.invalid/oauth/token"
ORDER = {
    "referenceOrderID": "RA230101-1234-56",
    "referenceLineItemID": "U1234",
    "externalRefID": "ref-1",
    "amountCharged": {"value": 10.00, "currencyCode": "USD", "total": 10.00},
    "status": "COMPLETE",
    "createdAt": "2023-10-11T23:10:55.284Z",
}
ORDER_URL = f"{BASE}/orders/RA230101-1234-56"
SECRET = "cl1ent-s3cret-for-the-tests"


def token_answer(token: str = "tok-1", expires_in: Any = 86400, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": token,
        "scope": "raas.all",
        "expires_in": expires_in,
        "token_type": "Bearer",
    }
    body.update(extra)
    return body


def oauth(**kw: Any) -> ta.OAuth:
    options: dict[str, Any] = {"token_url": TOKEN_URL}
    options.update(kw)
    return ta.OAuth("client-1", SECRET, **options)


def client(auth: ta.OAuth | None = None, **kw: Any) -> ta.TangoClient:
    options: dict[str, Any] = {"base_url": BASE, "retry": FAST_RETRY, "order_rate": 1000.0}
    options.update(kw)
    return ta.TangoClient(auth=auth or oauth(), **options)


def token_calls(m: aioresponses) -> list[Any]:
    return m.requests.get(("POST", URL(TOKEN_URL)), [])


def api_calls(m: aioresponses, method: str = "GET", url: str = ORDER_URL) -> list[Any]:
    return m.requests.get((method, URL(url)), [])


def form_of(call: Any) -> dict[str, str]:
    return dict(parse_qsl(bytes(call.kwargs["data"]).decode()))


class ManualClock:
    """A client clock with a wall time set by hand (and sleeps that take no time)."""

    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.now_s = wall
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def wall(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += max(0.0, seconds)
        await asyncio.sleep(0)


# --- arguments -------------------------------------------------------------------------------


def test_repr_shows_the_identity_only() -> None:
    auth = ta.OAuth(
        "client-1", SECRET, username="svc", password="pa55-w0rd-secret", grant_type="password"
    )
    text = repr(auth)
    assert text == (
        "OAuth(client_id='client-1', grant_type='password', "
        "audience='https://api.tangocard.com/', token_url=None)"
    )
    assert SECRET not in str(auth) and "pa55" not in text and "svc" not in text


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("", SECRET), {}, "client_id"),
        ((None, SECRET), {}, "client_id"),
        (("id", ""), {}, "client_secret"),
        (("id", None), {}, "client_secret"),
        (("id", "a\nb"), {}, "client_secret"),
        (("id", SECRET), {"grant_type": "implicit"}, "grant_type"),
        (("id", SECRET), {"grant_type": "password"}, "username"),
        (("id", SECRET), {"grant_type": "password", "username": "u"}, "password"),
        (("id", SECRET), {"grant_type": "password", "password": "p"}, "username"),
        (("id", SECRET), {"username": "u", "password": "p"}, "grant_type"),
        (("id", SECRET), {"audience": ""}, "audience"),
        (("id", SECRET), {"audience": "a\r\nb"}, "audience"),
        (("id", SECRET), {"token_url": "http://auth.example.com/oauth/token"}, "token_url"),
        (("id", SECRET), {"token_url": "ftp://x/oauth/token"}, "token_url"),
        (("id", SECRET), {"token_url": "https://u:p@x/oauth/token"}, "token_url"),
        (("id", SECRET), {"token_cache": object()}, "token_cache"),
        (("id", SECRET), {"refresh_margin": -1}, "refresh_margin"),
        (("id", SECRET), {"refresh_margin": float("nan")}, "refresh_margin"),
    ],
)
def test_bad_arguments_are_validation_errors(
    args: tuple[Any, ...], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ta.ValidationError) as e:
        ta.OAuth(*args, **kwargs)
    assert e.value.field == field
    assert SECRET not in str(e.value)


def test_any_audience_and_loopback_http() -> None:
    auth = ta.OAuth("id", SECRET, audience="custom", token_url="http://127.0.0.1:9/oauth/token")
    assert auth.audience == "custom"
    assert ta.OAuth("id", SECRET, audience="tango-api.bhn.com/fiveminute").audience.endswith("e")


def test_token_url_defaults_follow_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TANGO_BASE_URL", raising=False)
    auth = ta.OAuth("id", SECRET)
    sandbox = ta.TangoClient(auth=auth)
    assert sandbox._transport._oauth is not None
    assert sandbox._transport._oauth.token_url == SANDBOX_TOKEN_URL
    production = ta.TangoClient(auth=auth, base_url=ta.PRODUCTION_URL)
    assert production._transport._oauth is not None
    assert production._transport._oauth.token_url == PRODUCTION_TOKEN_URL
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(auth=auth, base_url=BASE)
    assert e.value.field == "token_url"


def test_client_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANGO_PLATFORM_KEY", "an-env-key-that-is-ignored")
    monkeypatch.delenv("TANGO_PLATFORM_NAME", raising=False)
    tango = client()
    assert tango.platform_name == "client-1"  # the key of shared stores
    assert tango._transport._credential is None
    assert client(platform_name="my-platform").platform_name == "my-platform"
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient("p", "key", auth=oauth(), base_url=BASE)
    assert e.value.field == "auth" and "not both" in e.value.rule
    with pytest.raises(ta.ValidationError) as e:
        ta.TangoClient(auth="a token", base_url=BASE)  # type: ignore[arg-type]
    assert e.value.field == "auth"


def test_the_oauth_object_cannot_be_pickled_and_copies_are_itself() -> None:
    import copy
    import pickle

    auth = oauth()
    with pytest.raises(TypeError):
        pickle.dumps(auth)
    assert copy.copy(auth) is auth and copy.deepcopy(auth) is auth


def test_wall_time_reads_the_clock() -> None:
    assert wall_time(ManualClock(123.0)) == 123.0
    assert abs(wall_time(ta.SystemClock()) - __import__("time").time()) < 5


# --- the token request ------------------------------------------------------------------------


async def test_the_token_request_and_the_bearer_header() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-abc"))
        m.get(ORDER_URL, payload=ORDER)
        async with client() as tango:
            order = await tango.orders.get("RA230101-1234-56")
        assert order.reference_order_id == "RA230101-1234-56"
        (call,) = token_calls(m)
        assert form_of(call) == {
            "client_id": "client-1",
            "client_secret": SECRET,
            "scope": "raas.all",
            "audience": "https://api.tangocard.com/",
            "grant_type": "client_credentials",
        }
        assert call.kwargs["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
        assert call.kwargs["allow_redirects"] is False
        assert SECRET not in repr(call.kwargs["data"])
        (api,) = api_calls(m)
        assert str(api.kwargs["headers"]["Authorization"]) == "Bearer tok-abc"
        assert repr(api.kwargs["headers"]["Authorization"]) == "<redacted>"


async def test_the_password_grant_sends_username_and_password() -> None:
    auth = oauth(grant_type="password", username="svc-user", password="pw-secret-123")
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer())
        m.get(ORDER_URL, payload=ORDER)
        async with client(auth) as tango:
            await tango.orders.get("RA230101-1234-56")
        form = form_of(token_calls(m)[0])
        assert form["grant_type"] == "password"
        assert form["username"] == "svc-user" and form["password"] == "pw-secret-123"


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (86400, 86400.0),
        ("86400", 86400.0),
        (" 300 ", 300.0),
        (299.5, 299.5),
        (10**12, 366 * 86400.0),
    ],
)
async def test_expires_in_as_int_float_or_numeric_string(expires_in: Any, lifetime: float) -> None:
    clock = ManualClock()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer(expires_in=expires_in))
        m.get(ORDER_URL, payload=ORDER)
        async with client(clock=clock) as tango:
            await tango.orders.get("RA230101-1234-56")
            bearer = tango._transport._oauth
            assert bearer is not None
            token = await bearer.oauth.token_cache.get(bearer.key)
    assert token is not None and token.lifetime == lifetime
    assert token.expires_at == clock.wall() + lifetime


@pytest.mark.parametrize(
    ("audience", "lifetime"),
    [
        ("https://api.tangocard.com/", 86400.0),
        ("tango-api.bhn.com/fiveminute", 300.0),
        ("x", 300.0),
    ],
)
async def test_a_missing_expires_in_takes_the_audiences_lifetime(
    audience: str, lifetime: float
) -> None:
    body = token_answer()
    del body["expires_in"]
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=body)
        m.get(ORDER_URL, payload=ORDER)
        async with client(oauth(audience=audience)) as tango:
            await tango.orders.get("RA230101-1234-56")
            bearer = tango._transport._oauth
            assert bearer is not None
            token = await bearer.oauth.token_cache.get(bearer.key)
    assert token is not None and token.lifetime == lifetime


ODD_ANSWERS: dict[str, Any] = {
    "expires_in negative": token_answer(expires_in=-5),
    "expires_in zero": token_answer(expires_in=0),
    "expires_in text": token_answer(expires_in="soon"),
    "expires_in bool": token_answer(expires_in=True),
    "expires_in list": token_answer(expires_in=[1]),
    "no access_token": {"token_type": "Bearer", "expires_in": 60},
    "empty access_token": token_answer(""),
    "CRLF in access_token": token_answer("tok\r\nX-Injected: 1"),
    "LF in access_token": token_answer("tok\nx"),
    "space in access_token": token_answer("tok en"),
    "non-ASCII access_token": token_answer("tök"),
    "NUL in access_token": token_answer("tok\x00"),
    "access_token a number": token_answer(12345),  # type: ignore[arg-type]
    "huge access_token": token_answer("t" * 20_000),
    "not bearer": token_answer(token_type="mac"),
    "a list": [token_answer()],
}


@pytest.mark.parametrize("case", sorted(ODD_ANSWERS))
async def test_an_odd_answer_is_an_oauth_error_and_nothing_is_sent(case: str) -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=ODD_ANSWERS[case], repeat=True)
        m.get(ORDER_URL, payload=ORDER)
        async with client() as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == 1  # a 200 is not retried
        assert api_calls(m) == []
    assert e.value.status_code == 200
    assert isinstance(e.value, ta.AuthenticationError)
    assert "\n" not in str(e.value) and "X-Injected" not in str(e.value)


async def test_malformed_json_and_a_text_answer() -> None:
    for body in (b'{"access_token": "tok', b"<html>ok</html>", b""):
        with aioresponses() as m:
            m.post(TOKEN_URL, body=body, content_type="application/json")
            async with client() as tango:
                with pytest.raises(ta.OAuthError) as e:
                    await tango.orders.get("RA230101-1234-56")
        assert "not JSON" in str(e.value)


async def test_an_answer_over_the_bound_is_refused() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, body=b'{"x": "' + b"a" * 100_000 + b'"}')
        async with client() as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
    assert "bytes" in str(e.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_a_refusal_is_not_retried(status: int) -> None:
    with aioresponses() as m:
        m.post(
            TOKEN_URL,
            status=status,
            payload={"error": "invalid_client", "error_description": "Unauthorized"},
            repeat=True,
        )
        async with client() as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == 1 and api_calls(m) == []
    assert e.value.status_code == status and e.value.error == "invalid_client"
    assert e.value.error_description == "Unauthorized"
    assert not isinstance(e.value, ta.TokenRateLimitError)
    assert f"HTTP {status}: invalid_client Unauthorized" in str(e.value)


async def test_a_text_400_keeps_its_text_bounded() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, status=400, body="bad\x1b[31m request " * 100, content_type="text/plain")
        async with client() as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
    assert "\x1b" not in str(e.value) and len(str(e.value)) < 600


@pytest.mark.parametrize(
    "description",
    [
        "You have exceeded the daily rate limit",
        "Rate limit for new tokens reached",
        "quota EXCEEDED",
    ],
)
async def test_the_daily_rate_limit_is_a_token_rate_limit_error(description: str) -> None:
    with aioresponses() as m:
        m.post(
            TOKEN_URL,
            status=400,
            payload={"error": "invalid_request", "error_description": description},
            repeat=True,
        )
        async with client() as tango:
            with pytest.raises(ta.TokenRateLimitError) as e:
                await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == 1
    assert isinstance(e.value, ta.OAuthError) and e.value.status_code == 400
    assert "RedisTokenCache" in str(e.value) and "near its expiry" in str(e.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_a_transient_status_is_retried(status: int) -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, status=status, payload={"error": "temporarily_unavailable"})
        m.post(TOKEN_URL, status=status, body="down")
        m.post(TOKEN_URL, payload=token_answer())
        m.get(ORDER_URL, payload=ORDER)
        async with client() as tango:
            await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == 3 and len(api_calls(m)) == 1


async def test_retries_are_bounded_by_the_clients_budget() -> None:
    clock = ManualClock()
    with aioresponses() as m:
        m.post(TOKEN_URL, status=503, payload={"error": "x"}, repeat=True)
        async with client(clock=clock, retry=FAST_RETRY.with_options(max_retries=2)) as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == 3 and api_calls(m) == []
    assert e.value.status_code == 503
    assert len(clock.slept) == 2  # the back-offs ran on the client's clock


async def test_a_long_retry_after_is_not_waited_for() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, status=429, headers={"Retry-After": "3600"}, payload={"error": "x"})
        async with client() as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
    assert e.value.status_code == 429


@pytest.mark.parametrize(
    "exception",
    [
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
        OSError("network down"),
    ],
)
async def test_connection_errors_are_retried_then_an_oauth_error(exception: Exception) -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, exception=exception)
        m.post(TOKEN_URL, payload=token_answer())
        m.get(ORDER_URL, payload=ORDER)
        async with client() as tango:
            await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == 2
    with aioresponses() as m:
        m.post(TOKEN_URL, exception=exception, repeat=True)
        async with client() as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == FAST_RETRY.max_retries + 1
    assert e.value.status_code == 0 and "no token" in str(e.value)
    assert e.value.__cause__ is None and e.value.__context__ is None


async def test_a_server_echoing_the_secret_is_scrubbed() -> None:
    auth = oauth(grant_type="password", username="u", password="pw-echoed-secret")
    with aioresponses() as m:
        m.post(
            TOKEN_URL,
            status=401,
            payload={
                "error": "invalid_client",
                "error_description": f"bad {SECRET} / pw-echoed-secret",
            },
        )
        async with client(auth) as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.get("RA230101-1234-56")
    for text in (
        str(e.value),
        repr(e.value),
        e.value.body.decode(),
        str(e.value.error_description),
    ):
        assert SECRET not in text and "pw-echoed-secret" not in text
    assert "<redacted>" in str(e.value)


# --- single flight, the cache ----------------------------------------------------------------


async def test_fifty_concurrent_calls_make_one_token_request() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer(), repeat=True)
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        async with client() as tango:
            await asyncio.gather(*(tango.orders.get("RA230101-1234-56") for _ in range(50)))
        assert len(token_calls(m)) == 1 and len(api_calls(m)) == 50


async def test_four_clients_sharing_one_memory_cache_make_one_token_request() -> None:
    cache = ta.MemoryTokenCache()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer(), repeat=True)
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        clients = [client(oauth(token_cache=cache)) for _ in range(4)]
        await asyncio.gather(
            *(c.orders.get("RA230101-1234-56") for _ in range(13) for c in clients)
        )
        for c in clients:
            await c.close()
        assert len(token_calls(m)) == 1


async def test_clients_sharing_one_oauth_share_its_token() -> None:
    auth = oauth()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer(), repeat=True)
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        async with client(auth) as a, client(auth) as b:
            await asyncio.gather(a.orders.get("RA230101-1234-56"), b.orders.get("RA230101-1234-56"))
        assert len(token_calls(m)) == 1


async def test_different_identities_do_not_share_a_token() -> None:
    cache = ta.MemoryTokenCache()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer(), repeat=True)
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        first = client(oauth(token_cache=cache))
        five = client(oauth(token_cache=cache, audience="tango-api.bhn.com/fiveminute"))
        other = client(ta.OAuth("client-2", SECRET, token_url=TOKEN_URL, token_cache=cache))
        for c in (first, five, other):
            await c.orders.get("RA230101-1234-56")
            await c.close()
        assert len(token_calls(m)) == 3


async def test_the_cache_key_holds_no_secret() -> None:
    auth = oauth()
    key = auth.cache_key(TOKEN_URL)
    assert len(key) == 64 and SECRET not in key
    assert key != oauth(audience="other").cache_key(TOKEN_URL)
    assert key != auth.cache_key(TOKEN_URL + "2")


async def test_a_failed_leader_lets_the_next_caller_fetch() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, status=401, payload={"error": "invalid_client"})
        m.post(TOKEN_URL, payload=token_answer())
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        async with client() as tango:
            results = await asyncio.gather(
                *(tango.orders.get("RA230101-1234-56") for _ in range(5)), return_exceptions=True
            )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], ta.OAuthError)
        assert len(token_calls(m)) == 2


# --- expiry ------------------------------------------------------------------------------------


async def test_refresh_ahead_of_expiry_by_the_margin() -> None:
    clock = ManualClock()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-1"))
        m.post(TOKEN_URL, payload=token_answer("tok-2"))
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        async with client(oauth(refresh_margin=600), clock=clock) as tango:
            await tango.orders.get("RA230101-1234-56")
            clock.now_s += 86400 - 601  # 601 s left: still fresh
            await tango.orders.get("RA230101-1234-56")
            assert len(token_calls(m)) == 1
            clock.now_s += 2  # 599 s left: renewed before it expires
            await tango.orders.get("RA230101-1234-56")
            assert len(token_calls(m)) == 2
        headers = [str(c.kwargs["headers"]["Authorization"]) for c in api_calls(m)]
        assert headers == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_a_short_token_is_renewed_a_tenth_of_its_life_ahead() -> None:
    clock = ManualClock()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-1", expires_in=300), repeat=True)
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        async with client(oauth(audience="tango-api.bhn.com/fiveminute"), clock=clock) as tango:
            await tango.orders.get("RA230101-1234-56")
            clock.now_s += 265  # 35 s left: the default 300 s margin is capped at 30 s
            await tango.orders.get("RA230101-1234-56")
            assert len(token_calls(m)) == 1
            clock.now_s += 10
            await tango.orders.get("RA230101-1234-56")
            assert len(token_calls(m)) == 2


async def test_a_failed_renewal_keeps_using_the_unexpired_token() -> None:
    clock = ManualClock()
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-1"))
        m.post(TOKEN_URL, status=400, payload={"error": "x", "error_description": "exceeded"})
        m.get(ORDER_URL, payload=ORDER, repeat=True)
        async with client(clock=clock) as tango:
            await tango.orders.get("RA230101-1234-56")
            clock.now_s += 86400 - 10  # within the margin, not expired
            await tango.orders.get("RA230101-1234-56")
        assert len(token_calls(m)) == 2
        assert str(api_calls(m)[-1].kwargs["headers"]["Authorization"]) == "Bearer tok-1"


# --- a 401 from the API ------------------------------------------------------------------------


def tango_401() -> dict[str, Any]:
    return {"errors": [{"i18nKey": "401.001", "message": "Full authentication is required"}]}


async def test_a_401_renews_the_token_once_and_retries_once() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-old"))
        m.post(TOKEN_URL, payload=token_answer("tok-new"))
        m.get(ORDER_URL, status=401, payload=tango_401())
        m.get(ORDER_URL, payload=ORDER)
        async with client() as tango:
            order = await tango.orders.get("RA230101-1234-56")
        assert order.reference_order_id == "RA230101-1234-56"
        assert len(token_calls(m)) == 2
        headers = [str(c.kwargs["headers"]["Authorization"]) for c in api_calls(m)]
        assert headers == ["Bearer tok-old", "Bearer tok-new"]


async def test_a_second_401_is_an_authentication_error() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-1"))
        m.post(TOKEN_URL, payload=token_answer("tok-2"))
        m.get(ORDER_URL, status=401, payload=tango_401(), repeat=True)
        async with client() as tango:
            with pytest.raises(ta.AuthenticationError) as e:
                await tango.orders.get("RA230101-1234-56")
        assert not isinstance(e.value, ta.OAuthError)  # the API's own 401
        assert len(token_calls(m)) == 2 and len(api_calls(m)) == 2


async def test_concurrent_401s_cause_one_renewal() -> None:
    from aioresponses import CallbackResult

    def answer(url: Any, **kwargs: Any) -> CallbackResult:
        if str(kwargs["headers"]["Authorization"]) == "Bearer tok-old":
            return CallbackResult(status=401, payload=tango_401())
        return CallbackResult(payload=ORDER)

    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-old"))
        m.post(TOKEN_URL, payload=token_answer("tok-new"))
        m.post(TOKEN_URL, payload=token_answer("tok-third"))
        m.get(ORDER_URL, callback=answer, repeat=True)
        async with client() as tango:
            await asyncio.gather(*(tango.orders.get("RA230101-1234-56") for _ in range(10)))
        assert len(token_calls(m)) == 2  # however many calls got the 401
        assert str(api_calls(m)[-1].kwargs["headers"]["Authorization"]) == "Bearer tok-new"


async def test_basic_auth_401_is_not_retried(mocked_client: ta.TangoClient) -> None:
    with aioresponses() as m:
        m.get(ORDER_URL, status=401, payload=tango_401(), repeat=True)
        with pytest.raises(ta.AuthenticationError):
            await mocked_client.orders.get("RA230101-1234-56")
        assert len(api_calls(m)) == 1


async def test_an_order_create_is_retried_once_after_a_401_with_its_external_ref_id() -> None:
    created = {**{k: v for k, v in ORDER.items() if k != "externalRefID"}}
    with aioresponses() as m:
        m.post(TOKEN_URL, payload=token_answer("tok-old"))
        m.post(TOKEN_URL, payload=token_answer("tok-new"))
        m.post(f"{BASE}/orders", status=401, payload=tango_401())
        m.post(f"{BASE}/orders", status=201, payload=created)
        async with client() as tango:
            order = await tango.orders.create(order_request(external_ref_id="ref-401"))
        assert order.reference_order_id == "RA230101-1234-56"
        calls = api_calls(m, "POST", f"{BASE}/orders")
        assert len(calls) == 2
        refs = {json.loads(c.kwargs["data"])["externalRefID"] for c in calls}
        assert refs == {"ref-401"}  # the same order, asked twice: one order at most


async def test_a_token_failure_on_create_sent_nothing() -> None:
    with aioresponses() as m:
        m.post(TOKEN_URL, status=401, payload={"error": "invalid_client"})
        async with client() as tango:
            with pytest.raises(ta.OAuthError) as e:
                await tango.orders.create(order_request())
            assert await tango.orders.unresolved() == []
        assert api_calls(m, "POST", f"{BASE}/orders") == []
    assert e.value.outcome_unknown is False and e.value.external_ref_id is not None


# --- the token object, the memory cache -------------------------------------------------------


def test_the_access_token_hides_its_text() -> None:
    import copy
    import pickle

    token = AccessToken.build("tok-hidden-123", expires_at=100.0, lifetime=50.0)
    assert token is not None
    assert "tok-hidden" not in repr(token) and "tok-hidden" not in str(token)
    assert "tok-hidden" not in repr(token.__slots__) and token.reveal() == "tok-hidden-123"
    with pytest.raises(TypeError):
        pickle.dumps(token)
    assert copy.deepcopy(token) is token
    assert token.headers({"A": "b"})["Authorization"] == "Bearer tok-hidden-123"
    assert AccessToken.build("a b", expires_at=1.0, lifetime=1.0) is None
    assert AccessToken.build("ok", expires_at=float("inf"), lifetime=1.0) is None


async def test_the_memory_cache_protocol() -> None:
    cache = ta.MemoryTokenCache()
    assert isinstance(cache, ta.TokenCache)
    one = AccessToken.build("tok-1", expires_at=100.0, lifetime=100.0)
    two = AccessToken.build("tok-2", expires_at=100.0, lifetime=100.0)
    assert one is not None and two is not None
    await cache.set("k", one)
    await cache.invalidate("k", two)  # not the current one: kept
    assert await cache.get("k") is one
    await cache.invalidate("k", one)
    assert await cache.get("k") is None
    handle = await cache.lock("k", 10)
    assert handle is not None and await cache.lock("k", 10) is None
    await cache.unlock("k", object())  # not ours: still held
    assert await cache.lock("k", 10) is None
    await cache.unlock("k", handle)
    assert await cache.lock("k", 10) is not None


async def test_bearer_auth_repr_shows_no_secret() -> None:
    tango = client()
    bearer = tango._transport._oauth
    assert isinstance(bearer, BearerAuth) and SECRET not in repr(bearer)
    await tango.close()
