"""A TCP proxy between a client and the server that cuts or holds the client's connection."""

from __future__ import annotations

import asyncio
import contextlib


class CuttingProxy:
    """Forwards loopback TCP to `upstream_port`; once `cut_after` request bytes went through it
    drops every connection (once), and once `hold_after` went through it stops forwarding
    request bytes (`holding` is set) until `release()`."""

    def __init__(self, upstream_port: int, cut_after: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.hold_after: int | None = None
        self.holding = asyncio.Event()
        self._released = asyncio.Event()
        self.forwarded = 0
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    def release(self) -> None:
        """Forward again after a hold; later connections pass."""
        self.hold_after = None
        self._released.set()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(16384):
                if upstream and self.cut_after is not None:
                    room = self.cut_after - self.forwarded
                    if len(data) >= room:
                        writer.write(data[: max(0, room)])
                        await writer.drain()
                        self.forwarded += max(0, room)
                        self.cut_after = None  # cut once; later connections pass
                        self.cuts += 1
                        raise ConnectionResetError("cut by the test")
                hold = self.hold_after
                if upstream and hold is not None and self.forwarded + len(data) >= hold:
                    self.holding.set()
                    await self._released.wait()
                if upstream:
                    self.forwarded += len(data)
                writer.write(data)
                await writer.drain()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up = asyncio.create_task(self._pipe(client_r, server_w, True))
        down = asyncio.create_task(self._pipe(server_r, client_w, False))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        for w in (client_w, server_w):
            w.transport.abort()  # a reset, not a polite close: the connection is cut

    async def __aenter__(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
