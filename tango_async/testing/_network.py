"""Network conditions for the sandbox: a TCP proxy that makes new connections slow."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from .._exceptions import ValidationError
from .._repr import tolerant_repr
from .._validation import check_str, finite_number

__all__ = ["DelayingProxy"]

_MAX_DELAY = 3_600.0  # an hour: far past any client's connect timeout


@tolerant_repr
class DelayingProxy:
    """A loopback TCP proxy that holds every new connection ``connect_delay`` seconds
    before it pipes bytes both ways to ``target_host:target_port``.

    It stands for the set-up cost of a connection to a distant server (TCP and TLS
    handshakes): the client's connect, and its TLS handshake, which passes through the
    proxy untouched, end no sooner than ``connect_delay`` after the proxy accepted the
    connection. Bytes on a connection already piped go through at once, so a reused
    keep-alive connection pays nothing. Closing either side closes the other (the server
    closing an idle keep-alive connection reaches the client), and a slow reader on one
    side pauses reading on the other.

    ``on_accept`` is called once for every connection accepted; :attr:`accepted` counts
    them too.

    ValidationError (a ValueError) unless the hosts are strings, the ports ints from 0
    to 65535 (the target's from 1), ``connect_delay`` a finite number of seconds from 0
    to 3600 (not a bool) and ``on_accept`` None or a callable.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_delay: float = 0.0,
        on_accept: Callable[[], None] | None = None,
    ) -> None:
        for field, value in (("target_host", target_host), ("host", host)):
            check_str(value, field, required=True)
        for field, number, lo in (("target_port", target_port, 1), ("port", port, 0)):
            if isinstance(number, bool) or not isinstance(number, int) or not lo <= number <= 65535:
                raise ValidationError(field, f"must be an int from {lo} to 65535")
        if not finite_number(connect_delay, lo=0.0, hi=_MAX_DELAY):
            raise ValidationError(
                "connect_delay", "must be a finite number of seconds from 0 to 3600"
            )
        if on_accept is not None and not callable(on_accept):
            raise ValidationError("on_accept", "must be None or a callable")
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port
        self.connect_delay = connect_delay
        self.accepted = 0
        self._on_accept = on_accept
        self._server: asyncio.Server | None = None
        self._links: set[_Downstream] = set()

    def __repr__(self) -> str:
        return (
            f"DelayingProxy({self.host}:{self.port} -> {self.target_host}:{self.target_port}, "
            f"connect_delay={self.connect_delay})"
        )

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the proxy listens on; set once :meth:`start` returns."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the proxy is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> DelayingProxy:
        """Listen on ``host:port`` (port 0: a free one, then stored in :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Downstream(self), self.host, self.port, backlog=128
        )
        self.port = self.address[1]
        return self

    def close_listener(self) -> None:
        """Accept no more connections; those already open go on."""
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        """Stop listening and cut every connection, piped or still waiting."""
        self.close_listener()
        for link in list(self._links):
            link.abort()
        if self._links:
            await asyncio.sleep(0)  # let the transports report their connection_lost
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def __aenter__(self) -> DelayingProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- one connection -------------------------------------------------------------------

    def _accepted(self, link: _Downstream) -> None:
        self.accepted += 1
        self._links.add(link)
        if self._on_accept is not None:
            self._on_accept()


class _Side(asyncio.Protocol):
    """One side of a proxied connection: its transport, and the calls both sides share."""

    transport: asyncio.Transport | None
    closed: bool

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()


class _Downstream(_Side):
    """The client's side of one proxied connection."""

    def __init__(self, proxy: DelayingProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.peer: _Upstream | None = None
        self.closed = False
        self._connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()  # nothing is read until the upstream connection is open
        self.proxy._accepted(self)
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        proxy = self.proxy
        try:
            if proxy.connect_delay > 0:
                await asyncio.sleep(proxy.connect_delay)
            loop = asyncio.get_running_loop()
            _, peer = await loop.create_connection(
                lambda: _Upstream(self), proxy.target_host, proxy.target_port
            )
        except OSError:
            self.transport.close()
            return
        if self.closed:
            peer.close()
            return
        self.peer = peer
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.write(data)

    def eof_received(self) -> bool | None:
        return None  # close: HTTP has no use for half-closed connections

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy._links.discard(self)
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self.peer is not None:
            self.peer.close()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self.peer is not None:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self.peer is not None:
            self.peer.abort()
        if self.transport is not None:
            self.transport.abort()


class _Upstream(_Side):
    """The server's side of one proxied connection."""

    def __init__(self, down: _Downstream) -> None:
        self.down = down
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.down.write(data)

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.down.pause_reading()

    def resume_writing(self) -> None:
        self.down.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.down.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)
