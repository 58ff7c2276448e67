"""The host sockets of a room's coordinator: commands in, every room event (with the answers) out.

Runs inside the coordinator's task, like the `AnswerDesk` inside a shard's. The host's commands go through the
coordinator's own `command`/`kick` calls, so a command over the socket and the same command over HTTP are one path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from quizroom.rooms.actor import ActorLimits
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import BadMessage, QuizroomError
from quizroom.rooms.game.ratelimit import TokenBucket
from quizroom.rooms.screening import Screen
from quizroom.rooms.sessions import Connection, Session, encode
from quizroom.rooms.telemetry import Telemetry

COMMANDS = ("start", "close", "next", "end", "lock", "unlock")


class HostDesk:
    def __init__(
        self,
        clock: Clock,
        limits: ActorLimits,
        telemetry: Telemetry,
        *,
        post: Callable[[Callable[[], None]], None],
        command: Callable[[str], Awaitable[dict[str, Any]]],
        kick: Callable[[str], Awaitable[None]],
        state: Callable[[], dict[str, Any]],
    ) -> None:
        """`post` runs a job in the coordinator; `state` is the room's snapshot, as sent after a kick."""
        self.clock = clock
        self.limits = limits
        self.telemetry = telemetry
        self.hosts: set[Session] = set()
        self._post = post
        self._command = command
        self._kick = kick
        self._state = state
        self.screen = Screen(clock, limits.abuse_strikes, limits.garbage_strikes, telemetry, self._close)

    def add(self, conn: Connection, welcome: dict[str, Any]) -> Session:
        session = Session(conn, TokenBucket(self.limits.rate_per_s, self.limits.rate_burst, self.clock.monotonic()))
        self.hosts.add(session)
        conn.send(encode(welcome))
        return session

    def remove(self, session: Session) -> None:
        session.open = False
        self.hosts.discard(session)

    def close_all(self, code: int) -> None:
        for session in list(self.hosts):
            if session.open:
                session.open = False
                session.conn.close(code)
        self.hosts.clear()

    def broadcast(self, message: dict[str, Any]) -> None:
        if self.hosts:
            frame = encode(message)
            for session in self.hosts:
                session.conn.send(frame)

    def on_message(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        self.screen.handle(session, message, self._own)

    def _own(self, session: Session, kind: str, message: dict[str, Any]) -> bool:
        if kind == "kick":
            player_id = message.get("player_id")
            if not isinstance(player_id, str):
                raise BadMessage("kick needs a `player_id`")
            asyncio.ensure_future(self._kick(player_id)).add_done_callback(lambda t: self._reply(session, t))
            return True
        if kind in COMMANDS:
            commanded = asyncio.ensure_future(self._command(kind))
            commanded.add_done_callback(lambda t: self._reply(session, t))
            return True
        return False

    def _reply(self, session: Session, task: asyncio.Future[Any]) -> None:
        """Commands already sent their `state` to every host socket; a kick answers its sender with one."""
        exc = task.exception()
        if isinstance(exc, QuizroomError):
            self._post(lambda: self._error(session, exc))
        elif exc is None and task.result() is None:
            self._post(lambda: session.conn.send(encode({"type": "state", **self._state()})))

    def _error(self, session: Session, exc: QuizroomError) -> None:
        self.screen.error(session, exc)

    @staticmethod
    def _close(session: Session, code: int) -> None:
        if session.open:
            session.open = False
            session.conn.close(code)
