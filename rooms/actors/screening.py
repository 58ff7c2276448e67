"""What every socket message goes through before a room acts on it, player's or host's alike — as a verdict.

Size (1009), rate (the token bucket: `rate_limited`, then 4429 for persistent abuse), well-formedness (`bad_message`
and `unknown_type`, then 1008 for a socket that sends nothing else), and the messages every socket may send (`ping`)
or must not repeat (`hello`). The screen decides and says so; the actor that owns the socket carries it out (and,
for a close, forgets the session). The room handles only what it alone understands (`answer`; a host's commands).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quizroom.rooms.actors.sessions import Frame, Session, encode
from quizroom.rooms.actors.telemetry import Telemetry
from quizroom.rooms.game import messages
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.closes import CLOSE_POLICY, CLOSE_RATE_ABUSE, CLOSE_TOO_BIG
from quizroom.rooms.game.errors import BadMessage, QuizroomError, RateLimited, TooBig, UnknownType


@dataclass(frozen=True, slots=True)
class Handle:
    """A well-formed message of a type the room must handle itself."""

    kind: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """Send this frame back on the socket (a `pong`, an `error`)."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket with `code`, after `frame` when there is one."""

    code: int
    frame: Frame | None = None


Verdict = Handle | Answer | Close | None
"""None: nothing to do (the socket is closed already)."""


class Screen:
    def __init__(self, clock: Clock, abuse_strikes: int, garbage_strikes: int, telemetry: Telemetry) -> None:
        self.clock = clock
        self.abuse_strikes = abuse_strikes
        self.garbage_strikes = garbage_strikes
        self.telemetry = telemetry

    def check(self, session: Session, message: dict[str, Any] | QuizroomError) -> Verdict:
        if not session.open:
            return None
        if isinstance(message, TooBig):
            return Close(CLOSE_TOO_BIG, self.error(message))
        if not session.bucket.allow(self.clock.monotonic()):
            session.strikes += 1
            self.telemetry.rate_limited()
            if session.strikes > self.abuse_strikes:
                return Close(CLOSE_RATE_ABUSE)
            return Answer(self.error(RateLimited("slow down: too many messages")))
        session.strikes = 0
        if isinstance(message, QuizroomError):
            return self.refuse(session, message)
        kind = message.get("type")
        if kind == "ping":
            session.garbage = 0
            return Answer(encode(messages.pong(message.get("t"), self.clock.wall_ms())))
        if kind == "hello":
            return self.refuse(session, BadMessage("already said hello"))
        if not isinstance(kind, str):
            return self.refuse(session, BadMessage("a message needs a string `type`"))
        return Handle(kind, message)

    def handled(self, session: Session) -> None:
        """The room took the message: the socket is not sending garbage."""
        session.garbage = 0

    def unknown(self, session: Session, kind: str) -> Verdict:
        return self.refuse(session, UnknownType(f"unknown message type {kind!r}"))

    def refuse(self, session: Session, exc: QuizroomError) -> Verdict:
        """The error frame; a socket that sends nothing but malformed messages is closed with 1008 (policy)."""
        if isinstance(exc, BadMessage | UnknownType):
            session.garbage += 1
            if session.garbage > self.garbage_strikes:
                return Close(CLOSE_POLICY)
        return Answer(self.error(exc))

    def error(self, exc: QuizroomError) -> Frame:
        self.telemetry.error(exc.code)
        return encode(messages.error(exc.code, exc.message))


def send_verdict(session: Session, verdict: Verdict) -> int | None:
    """Send the frame a verdict carries; returns the close code its owner must close the socket with, if any
    (the owner closes, so that a shard also forgets the session)."""
    if isinstance(verdict, Answer):
        if session.open:
            session.conn.send(verdict.frame)
    elif isinstance(verdict, Close):
        if verdict.frame is not None and session.open:
            session.conn.send(verdict.frame)
        return verdict.code
    return None
