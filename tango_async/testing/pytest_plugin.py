"""pytest plugin (registered through the ``pytest11`` entry point): sandbox fixtures.

``tango_sandbox`` is a running :class:`Sandbox` for one test; ``tango_client`` a
``TangoClient`` connected to it. Override ``tango_sandbox_options`` (a dict of Sandbox
arguments) to change the sandbox, e.g. ``{"order_rate": None}`` for no rate limit.
Needs pytest-asyncio (the ``testing`` extra brings it).
"""

from __future__ import annotations

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
