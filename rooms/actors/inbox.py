"""The mailbox of a single-task actor (a room's shard, a room's coordinator).

Everything that touches an actor is posted here as a closure and run one at a time, in order, by the actor's own
task (the *input gate*): no locks, no interleaving inside a rule. `ask` is the same with a reply: the job settles a
future now, or later (after a commit), and the caller awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from quizroom.rooms.game.errors import QuizroomError, Unavailable

T = TypeVar("T")


class Inbox:
    def __init__(self, name: str, log: Any) -> None:
        self.name = name
        self.log = log
        self._jobs: deque[Callable[[], None]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._asked: set[asyncio.Future[Any]] = set()
        self.closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    @property
    def running(self) -> bool:
        """Started and not closing: an `ask` will be answered."""
        return self._task is not None and not self.closed

    async def close(self) -> None:
        """End the task. Jobs posted from now on are dropped, and every caller still waiting on an answer gets
        `Unavailable` (the room moved or the server is stopping: a retry finds where it is now)."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._jobs.clear()
        for future in list(self._asked):
            if not future.done():
                future.set_exception(Unavailable("this room moved or the server is stopping; try again"))

    async def _run(self) -> None:
        jobs = self._jobs
        while True:
            await self._wake.wait()
            self._wake.clear()
            while jobs:
                job = jobs.popleft()
                try:
                    job()
                except Exception:
                    self.log.exception("actor_job_failed", actor=self.name)

    def post(self, job: Callable[[], None]) -> None:
        if self.closed:
            return
        self._jobs.append(job)
        self._wake.set()

    def _idle(self) -> bool:
        """The actor's task is waiting for work: nothing is queued, and it has not been woken for anything."""
        return self.running and not self._jobs and not self._wake.is_set()

    async def ask(self, job: Callable[[asyncio.Future[T]], None]) -> T:
        """Run `job` in the actor; it settles the future now or later. A `QuizroomError` it raises is the answer.

        An idle actor runs the job at once, on the caller's turn of the loop: jobs are synchronous and nothing is
        queued before it, so it runs one at a time and in order exactly as it would on the actor's task, without
        the two task switches of waking that task and being woken by it (a join storm asks twice per player). A
        closed actor refuses at once, as `close` refuses those already waiting (its job would never run)."""
        if self.closed:
            raise Unavailable("this room moved or the server is stopping; try again")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._asked.add(future)
        future.add_done_callback(self._asked.discard)

        def run(future: asyncio.Future[T] = future) -> None:  # (an argument, not a cell: see below)
            try:
                job(future)
            except QuizroomError as exc:
                if not future.done():
                    future.set_exception(exc)

        if self._idle():
            try:
                run()
            except Exception:
                self.log.exception("actor_job_failed", actor=self.name)
        else:
            self.post(run)
        try:
            return await future
        finally:
            # A refusal raised from here holds this frame in its traceback, and the frame the future that holds the
            # refusal: a reference cycle per refused call (a taken nickname, a bad token) unless it is let go.
            del future, run
