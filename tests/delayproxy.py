"""A TCP proxy that adds latency, for tests of a server far from its database (`tc netem` is not available here);
with no delay, the way servers in network namespaces reach the database (`tests.netns`).

Every chunk read on one side is written to the other `delay_s` later, in order, in both directions: a round trip
through the proxy costs 2 × `delay_s` more. Runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class DelayProxy:
    def __init__(self, upstream_host: str, upstream_port: int, delay_s: float, *, host: str = "127.0.0.1") -> None:
        """Listens on `host` (a bridge's address, to be reached from network namespaces), on a free port."""
        self.upstream = (upstream_host, upstream_port)
        self.delay_s = delay_s
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        for task in (self._pump(reader, up_writer), self._pump(up_reader, writer)):
            running = asyncio.create_task(task)
            self._tasks.add(running)
            running.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read as it comes, write each chunk once it is `delay_s` old (a queue keeps the order)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the latency being simulated, not a wait for a condition
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic() + self.delay_s, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.CancelledError):
            sender.cancel()
            with contextlib.suppress(OSError):
                writer.close()
            raise
