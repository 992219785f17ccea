"""Fixtures of the service's tests.

``tango_sandbox`` (a local Tango sandbox) and ``tango_client`` (a TangoClient connected to
it) come from tango-async's pytest plugin, which ``pip install "tango-async[testing]"``
registers; this file only sets the sandbox up and serves the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
import tango_async as ta
from aiohttp.test_utils import TestClient, TestServer
from tango_async.testing import SandboxClock

from signup_service import RewardSettings, create_app

if TYPE_CHECKING:
    from aiohttp import web

    Service = TestClient[web.Request, web.Application]


@pytest.fixture
def tango_sandbox_options() -> dict[str, Any]:
    """The plugin's hook to configure ``tango_sandbox``: no order rate limit, and a frozen
    clock: whenever the client waits (for its next order slot, before a retry), the
    sandbox's clock jumps there at once, so no test sleeps."""
    return {"order_rate": None, "clock": SandboxClock(frozen=True)}


@pytest.fixture
async def service(tango_client: ta.TangoClient) -> AsyncIterator[Service]:
    """The service, ordering through the sandbox's client (the plugin closes it)."""
    app = create_app(tango_client, settings=RewardSettings())
    async with TestClient(TestServer(app)) as client:
        yield client
