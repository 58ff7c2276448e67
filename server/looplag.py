"""Event-loop lag: how late the loop runs a timer. Every socket, room and commit of the process waits that long."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class LoopLagMonitor:
    """Sleeps `interval_s` over and over and reports how much later than asked each wake-up came.

    One timer every half second costs nothing measurable; a lag that grows means the loop is saturated (a slow
    callback, a huge broadcast, blocking I/O by mistake), which shows up here before it shows up as timeouts.
    """

    def __init__(self, observe: Callable[[float], None], interval_s: float = 0.5) -> None:
        self.observe = observe
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.interval_s)
            self.observe(max(0.0, loop.time() - began - self.interval_s))
