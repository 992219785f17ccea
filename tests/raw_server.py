"""A loopback HTTP server that answers with raw bytes, for what aiohttp-based servers
cannot send (bombs, lying headers) or for never answering at all; and the peak memory of
a call against it."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable
from typing import Any


class RawServer:
    """Answers every request with ``answer`` (the bytes of a whole HTTP response, written in
    64 KiB pieces), or never (``answer`` None). Records each request's head and body;
    ``arrived`` is set once a request's head has been read. Use ``async with`` or
    ``start()``/``close()``."""

    def __init__(self, answer: bytes | None = b"") -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.arrived = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.base_url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/raas/v2"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> RawServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        self.bodies.append(await reader.readexactly(int(line.split(b":")[1])))
                self.arrived.set()
                if self.answer is None:
                    await asyncio.Event().wait()  # never answers
                answer = self.answer
                for i in range(0, len(answer), 64 * 1024):
                    writer.write(answer[i : i + 64 * 1024])
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def peak_of(call: Callable[[], Any]) -> tuple[int, Any]:
    """The peak of traced memory while ``call()`` runs, and its result or exception."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            outcome: Any = await call()
        except Exception as e:
            outcome = e
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, outcome
