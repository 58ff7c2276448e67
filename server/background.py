"""A process-wide chore that runs as one asyncio task from start-up to shutdown (loop-lag probe, collector policy)."""

from __future__ import annotations

import abc
import asyncio
import contextlib


class BackgroundTask(abc.ABC):
    """`start()` runs `run()` as a named task on the running loop; `stop()` cancels it and waits for it to end."""

    name = "background-task"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @abc.abstractmethod
    async def run(self) -> None:
        """The chore itself; runs until cancelled."""
