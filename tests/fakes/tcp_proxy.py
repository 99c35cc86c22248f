"""A TCP proxy in front of a real server (Redis here) that can fail the way networks do, on cue:

- ``drop_reply_after=b"SET"``: the first reply after a request containing those bytes is lost
  with the connection (the request reached the server): the client retries a command that landed.
- ``hold_after=(re.compile(rb"SET\r\n..."), 15)``: once that many matches have gone through, nothing
  more from any client is forwarded (a partition: writes stop at a known point, not at a guessed moment).
- ``before=(b"NX", act)``: the first request containing those bytes waits until ``act()`` has run
  (another client's work lands between two of this client's commands, not at a guessed moment).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable


class TcpProxy:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        drop_reply_after: bytes | None = None,
        hold_after: tuple[re.Pattern[bytes], int] | None = None,
        before: tuple[bytes, Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self.target = (host, port)
        self.before = before
        self.acted = 0
        self.drop_reply_after = drop_reply_after
        self.hold_after = hold_after
        self.dropped = 0
        self.seen = 0  # matches of hold_after's pattern forwarded
        self.holding = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        sent_marked = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.holding.is_set():
                    await asyncio.Event().wait()  # held for good: the test ends the client
                if self.before and self.before[0] in data and not self.acted:
                    self.acted += 1
                    await self.before[1]()
                if self.drop_reply_after and self.drop_reply_after in data:
                    sent_marked.set()
                server_w.write(data)
                await server_w.drain()
                if self.hold_after:
                    self.seen += len(self.hold_after[0].findall(data))
                    if self.seen >= self.hold_after[1]:
                        self.holding.set()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if sent_marked.is_set() and self.dropped == 0:
                    self.dropped += 1
                    break  # the reply is lost with the connection
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for writer in (client_w, server_w):
            writer.close()
