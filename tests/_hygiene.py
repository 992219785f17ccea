"""Secret hygiene over the whole test suite (a pytest plugin loaded by conftest).

For the whole session every logger runs at DEBUG into an in-memory handler; every
TangoError's message and repr, the repr of every model the client decodes, and the repr of
each sandbox's first 50 recorded requests (when it stops) are recorded; and every secret
the suite makes is registered: each client's platform key and Authorization header, each
sandbox's platform key, and every reward credential value and redemption link that reached
a client. ``tests/test_secret_hygiene.py`` runs last and finds no secret anywhere in what
was recorded.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

import tango_async as ta
import tango_async._oauth as oauth
import tango_async._transport as transport
import tango_async.bulk
import tango_async.redis
from tango_async.testing import _oauth as sandbox_oauth
from tango_async.testing import _sandbox

MIN_SECRET = 8  # shorter values (a 4-digit PIN) would match innocent text
_TOKEN = re.compile(r"[A-Za-z0-9_\-.~+/=:%@#?&]+")
_PIECES = re.compile(r"[=:/?&]+")


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.secrets: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception:  # a record that cannot format is itself worth seeing
            self.texts.append(f"unformattable record {record.msg!r} {record.args!r}")

    def secret(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET:
            self.secrets.add(value)

    def hits(self) -> Iterator[tuple[str, str]]:
        """(secret, text) for every recorded text that holds a secret as a token.

        Texts are cut into URL-ish tokens (and their pieces around '=', ':' and '/'), so a
        secret standing anywhere, bare, quoted, in a URL or after "key=", is found; the
        search is one set lookup per token, fast over the whole suite's output.
        """
        for text in self.texts:
            tokens = set()
            for token in _TOKEN.findall(text):
                tokens.add(token)
                tokens.update(_PIECES.split(token))
                tokens.add(token.removeprefix("Basic"))
            for secret in self.secrets & tokens:
                yield secret, text[:300]


RECORDER = Recorder()


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _wrap_init(cls: type) -> None:
    original = cls.__dict__.get("__init__")
    if original is None:
        return

    @functools.wraps(original)
    def init(self: BaseException, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        RECORDER.texts.append(f"{type(self).__name__}: {self}")
        RECORDER.texts.append(repr(self))

    cls.__init__ = init  # type: ignore[misc]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    root.addHandler(RECORDER)
    root.setLevel(logging.DEBUG)
    logging.getLogger("tango_async").setLevel(logging.DEBUG)
    RECORDER.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    for cls in (ta.TangoError, *_subclasses(ta.TangoError)):
        _wrap_init(cls)

    client_init = ta.TangoClient.__init__

    def tango_client_init(self: ta.TangoClient, *args: Any, **kwargs: Any) -> None:
        client_init(self, *args, **kwargs)
        key = args[1] if len(args) > 1 else kwargs.get("platform_key")
        if key is None:
            import os

            key = os.environ.get("TANGO_PLATFORM_KEY")
        RECORDER.secret(key)
        if key:
            RECORDER.secret(aiohttp.encode_basic_auth(self.platform_name, key))
        RECORDER.texts.append(repr(self))

    ta.TangoClient.__init__ = tango_client_init  # type: ignore[method-assign]

    sandbox_init = _sandbox.Sandbox.__init__

    def sandbox_init_recording(self: _sandbox.Sandbox, *args: Any, **kwargs: Any) -> None:
        sandbox_init(self, *args, **kwargs)
        RECORDER.secret(self.platform_key)
        RECORDER.secret(self._expected_auth)
        RECORDER.secret(self._expected_auth.removeprefix("Basic "))

    _sandbox.Sandbox.__init__ = sandbox_init_recording  # type: ignore[method-assign]

    sandbox_stop = _sandbox.Sandbox.stop

    async def sandbox_stop_recording(self: _sandbox.Sandbox) -> None:
        # the reprs of (the first 50 of) its recorded requests, Authorization header included
        RECORDER.texts.extend(repr(rec) for rec in self.requests[:50])
        await sandbox_stop(self)

    _sandbox.Sandbox.stop = sandbox_stop_recording  # type: ignore[method-assign]

    parse: Callable[..., Any] = transport.Response.parse

    def parse_recording(resp: Any, type_: Any) -> Any:
        result = parse(resp, type_)
        reward = getattr(result, "reward", None)
        if reward is not None:  # the credentials that reached a client are secrets
            for credential in reward.credential_list or ():
                if credential.credential_type != "expirationDate":
                    RECORDER.secret(credential.value)
            if isinstance(reward.credentials, dict):
                for label, value in reward.credentials.items():
                    if label != "expirationDate":
                        RECORDER.secret(value)
        RECORDER.texts.append(repr(result))
        return result

    transport.Response.parse = parse_recording  # type: ignore[method-assign]

    _record_oauth_secrets()


def _record_oauth_secrets() -> None:
    """OAuth (issue 15): every client secret and password given to an OAuth, every token
    a client took, and each sandbox's OAuth client secret, password and issued tokens."""
    oauth_init = ta.OAuth.__init__

    def oauth_init_recording(self: ta.OAuth, *args: Any, **kwargs: Any) -> None:
        oauth_init(self, *args, **kwargs)
        RECORDER.secret(args[1] if len(args) > 1 else kwargs.get("client_secret"))
        RECORDER.secret(kwargs.get("password"))

    ta.OAuth.__init__ = oauth_init_recording  # type: ignore[method-assign]

    build = oauth.AccessToken.build.__func__  # type: ignore[attr-defined]

    def build_recording(cls: type, text: object, **kwargs: Any) -> Any:
        token = build(cls, text, **kwargs)
        if token is not None:
            RECORDER.secret(text)
        return token

    oauth.AccessToken.build = classmethod(build_recording)  # type: ignore[assignment,method-assign]

    new_token = sandbox_oauth.TokenIssuer._new_token

    def new_token_recording(self: sandbox_oauth.TokenIssuer) -> str:
        token = new_token(self)
        RECORDER.secret(token)
        RECORDER.secret(self.client_secret)
        RECORDER.secret(self.password)
        return token

    sandbox_oauth.TokenIssuer._new_token = new_token_recording  # type: ignore[method-assign]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The hygiene check runs after everything else."""
    last = [i for i in items if i.nodeid.startswith("tests/test_secret_hygiene.py")]
    items[:] = [i for i in items if i not in last] + last
