"""What every socket message goes through before a room acts on it, player's or host's alike.

Size (1009), rate (the token bucket: `rate_limited`, then 4429 for persistent abuse), well-formedness (`bad_message`
and `unknown_type`, then 1008 for a socket that sends nothing else), and the messages every socket may send (`ping`)
or must not repeat (`hello`). The room handles only what it alone understands (`answer`; a host's commands).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import BadMessage, QuizroomError, RateLimited, TooBig, UnknownType
from quizroom.rooms.sessions import CLOSE_POLICY, CLOSE_RATE_ABUSE, CLOSE_TOO_BIG, Session, encode
from quizroom.rooms.telemetry import Telemetry

Handler = Callable[[Session, str, dict[str, Any]], bool]
"""A room's own message types: True when it handled `kind`, False when the kind is not its own."""


class Screen:
    def __init__(
        self,
        clock: Clock,
        abuse_strikes: int,
        garbage_strikes: int,
        telemetry: Telemetry,
        close: Callable[[Session, int], None],
    ) -> None:
        """`close` closes a socket with a code the way its room does (a shard also forgets the session)."""
        self.clock = clock
        self.abuse_strikes = abuse_strikes
        self.garbage_strikes = garbage_strikes
        self.telemetry = telemetry
        self._close = close

    def handle(self, session: Session, message: dict[str, Any] | QuizroomError, own: Handler) -> None:
        if not session.open:
            return
        if isinstance(message, TooBig):
            self.error(session, message)
            self._close(session, CLOSE_TOO_BIG)
            return
        if not self._admit(session):
            return
        if isinstance(message, QuizroomError):
            self._refuse(session, message)
            return
        kind = message.get("type")
        try:
            if kind == "ping":
                session.conn.send(encode({"type": "pong", "t": message.get("t"), "now_ms": self.clock.wall_ms()}))
            elif kind == "hello":
                raise BadMessage("already said hello")
            elif not isinstance(kind, str):
                raise BadMessage("a message needs a string `type`")
            elif not own(session, kind, message):
                raise UnknownType(f"unknown message type {kind!r}")
        except QuizroomError as exc:
            self._refuse(session, exc)
            return
        session.garbage = 0

    def _admit(self, session: Session) -> bool:
        """The per-socket token bucket; persistent abuse closes the socket with 4429."""
        if session.bucket.allow(self.clock.monotonic()):
            session.strikes = 0
            return True
        session.strikes += 1
        self.telemetry.rate_limited()
        if session.strikes > self.abuse_strikes:
            self._close(session, CLOSE_RATE_ABUSE)
        else:
            self.error(session, RateLimited("slow down: too many messages"))
        return False

    def _refuse(self, session: Session, exc: QuizroomError) -> None:
        """Send the error; a socket that sends nothing but malformed messages is closed with 1008 (policy)."""
        if isinstance(exc, BadMessage | UnknownType):
            session.garbage += 1
            if session.garbage > self.garbage_strikes:
                self._close(session, CLOSE_POLICY)
                return
        self.error(session, exc)

    def error(self, session: Session, exc: QuizroomError) -> None:
        self.telemetry.error(exc.code)
        if session.open:
            session.conn.send(encode({"type": "error", "code": exc.code, "message": exc.message}))
