"""The host sockets of a room's coordinator: commands in, every room event (with the answers) out.

Runs inside the coordinator's task. A host's message is screened like a player's (`quizroom.rooms.actors.screening`)
and, when it is a command, handed back as a `Command` for the coordinator to run through the room protocol — the
same path as the command over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quizroom.rooms.actors.limits import ActorLimits
from quizroom.rooms.actors.screening import Handle, Screen, send_verdict
from quizroom.rooms.actors.sessions import Connection, Session, encode
from quizroom.rooms.actors.telemetry import Telemetry
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import BadMessage, QuizroomError
from quizroom.rooms.game.protocol import COMMANDS
from quizroom.rooms.game.ratelimit import TokenBucket


@dataclass(frozen=True, slots=True)
class Command:
    """A host socket asked for a command (`start` … `unlock`) or a kick (`player_id` set)."""

    name: str
    player_id: str | None = None


class HostDesk:
    def __init__(self, clock: Clock, limits: ActorLimits, telemetry: Telemetry) -> None:
        self.clock = clock
        self.limits = limits
        self.hosts: set[Session] = set()
        self.screen = Screen(clock, limits.abuse_strikes, limits.garbage_strikes, telemetry)

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
            self._close(session, code)
        self.hosts.clear()

    def broadcast(self, message: dict[str, Any]) -> None:
        if self.hosts:
            frame = encode(message)
            for session in self.hosts:
                session.conn.send(frame)

    def check(self, session: Session, message: dict[str, Any] | QuizroomError) -> Command | None:
        """Screen a host's message; a command comes back for the coordinator, anything else is dealt with here."""
        verdict = self.screen.check(session, message)
        if isinstance(verdict, Handle):
            try:
                command = self._command(verdict)
            except QuizroomError as exc:
                verdict = self.screen.refuse(session, exc)
            else:
                if command is not None:
                    self.screen.handled(session)
                    return command
                verdict = self.screen.unknown(session, verdict.kind)
        code = send_verdict(session, verdict)
        if code is not None:
            self._close(session, code)
        return None

    @staticmethod
    def _command(message: Handle) -> Command | None:
        if message.kind == "kick":
            player_id = message.message.get("player_id")
            if not isinstance(player_id, str):
                raise BadMessage("kick needs a `player_id`")
            return Command("kick", player_id)
        return Command(message.kind) if message.kind in COMMANDS else None

    def refuse(self, session: Session, exc: QuizroomError) -> None:
        """A command of this socket's was refused: the error goes back to it alone."""
        if session.open:
            session.conn.send(self.screen.error(exc))

    def tell(self, session: Session, message: dict[str, Any]) -> None:
        if session.open:
            session.conn.send(encode(message))

    @staticmethod
    def _close(session: Session, code: int) -> None:
        if session.open:
            session.open = False
            session.conn.close(code)
