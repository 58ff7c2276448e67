"""Event-loop lag: how late the loop runs a timer. Every socket, room and commit of the process waits that long."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from quizroom.server.background import BackgroundTask


class LoopLagMonitor(BackgroundTask):
    """Sleeps `interval_s` over and over and reports how much later than asked each wake-up came.

    One timer every half second costs nothing measurable; a lag that grows means the loop is saturated (a slow
    callback, a huge broadcast, blocking I/O by mistake), which shows up here before it shows up as timeouts.
    """

    name = "loop-lag-monitor"

    def __init__(self, observe: Callable[[float], None], interval_s: float = 0.5) -> None:
        super().__init__()
        self.observe = observe
        self.interval_s = interval_s

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.interval_s)
            self.observe(max(0.0, loop.time() - began - self.interval_s))
