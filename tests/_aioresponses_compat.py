"""aioresponses 0.7.9 predates aiohttp 3.14, whose ClientResponse requires ``stream_writer``.

Upstream fix pending (pnuckowski/aioresponses#288, #289); until it is released, give the
mocked responses the Mock writer that fix uses. A no-op on aiohttp < 3.14.
"""

from __future__ import annotations

import inspect
from typing import Any
from unittest.mock import Mock

import aiohttp
import aioresponses.core


def install() -> None:
    if "stream_writer" not in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        return
    if getattr(aioresponses.core.ClientResponse, "_tango_async_compat", False):
        return

    class CompatClientResponse(aiohttp.ClientResponse):
        _tango_async_compat = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", Mock(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = CompatClientResponse  # type: ignore[misc]
