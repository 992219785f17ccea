"""pytest plugin (registered through the ``pytest11`` entry point): sandbox fixtures.

``tango_sandbox`` is a running :class:`Sandbox` for one test; ``tango_client`` a
``TangoClient`` connected to it. Override ``tango_sandbox_options`` (a dict of Sandbox
arguments) to change the sandbox, e.g. ``{"order_rate": None}`` for no rate limit.
Needs pytest-asyncio (the ``testing`` extra brings it).

The plugin adds no warning to a project: pytest-asyncio warns (a
PytestDeprecationWarning, an error under ``-W error``) when
``asyncio_default_fixture_loop_scope`` is not configured, so when the project leaves it
unset the plugin fills it in before pytest-asyncio reads it, with the value that keeps
pytest-asyncio's behaviour: ``fixture-scope`` (pytest-asyncio 1.5 and later: each async
fixture's loop has the fixture's scope, as when unset), else ``function`` (the default
pytest-asyncio recommends). A value the project sets (ini file, ``-o``) is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .._client import TangoClient
from ._sandbox import Sandbox

try:
    import pytest_asyncio

    _HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - the fixtures then explain what is missing
    _HAVE_PYTEST_ASYNCIO = False


_LOOP_SCOPE = "asyncio_default_fixture_loop_scope"


def _unset_loop_scope() -> str:
    """The loop scope that means what "unset" means to the installed pytest-asyncio."""
    numbers = [int(n) for n in re.findall(r"\d+", getattr(pytest_asyncio, "__version__", ""))]
    return "fixture-scope" if tuple(numbers[:2]) >= (1, 5) else "function"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Set ``asyncio_default_fixture_loop_scope`` when the project has not (see the module
    docstring), before pytest-asyncio's own ``pytest_configure`` warns about it."""
    if not _HAVE_PYTEST_ASYNCIO:  # pragma: no cover
        return
    try:
        current = config.getini(_LOOP_SCOPE)
    except ValueError:  # pragma: no cover - a pytest-asyncio without the option
        return
    if not current:
        # getini() reads this cache first; pytest has no public setter for an ini value
        config._inicache[_LOOP_SCOPE] = _unset_loop_scope()


@pytest.fixture
def tango_sandbox_options() -> dict[str, Any]:
    """Arguments for the ``tango_sandbox`` fixture's Sandbox; override to change them."""
    return {}


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def tango_sandbox(tango_sandbox_options: dict[str, Any]) -> AsyncIterator[Sandbox]:
        """A local Tango sandbox serving on 127.0.0.1 for the duration of one test."""
        async with Sandbox(**tango_sandbox_options) as sandbox:
            yield sandbox

    @pytest_asyncio.fixture
    async def tango_client(tango_sandbox: Sandbox) -> AsyncIterator[TangoClient]:
        """A TangoClient connected to ``tango_sandbox`` (closed after the test)."""
        async with tango_sandbox.client() as client:
            yield client

else:  # pragma: no cover

    @pytest.fixture
    def tango_sandbox() -> None:
        pytest.fail(
            "the tango_sandbox fixture needs pytest-asyncio: pip install 'tango-async[testing]'"
        )

    @pytest.fixture
    def tango_client() -> None:
        pytest.fail(
            "the tango_client fixture needs pytest-asyncio: pip install 'tango-async[testing]'"
        )
