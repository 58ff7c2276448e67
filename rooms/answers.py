"""From an answer message to its acknowledgement: judge it, hand it to the writer, acknowledge it once durable.

This is the room's output gate for answers. An `answer_ack` leaves only from a commit's completion; a repeat that
arrives while the original is still committing waits for the same commit; a failed commit turns into `unavailable`
errors and the answers are forgotten, so that a resend is judged afresh. The `AnswerDesk` belongs to one room actor
and runs inside it: everything here is called from the actor's task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import BadMessage, QuizroomError, TooLate, Unavailable
from quizroom.rooms.game.rules import Answer, RoomState
from quizroom.rooms.sessions import Session, encode
from quizroom.rooms.telemetry import RoomStats, Telemetry
from quizroom.storage.records import AnswerRow
from quizroom.storage.writer import GroupCommitWriter

Key = tuple[int, str]  # (question, player_id)


class AnswerDesk:
    def __init__(
        self,
        state: RoomState,
        writer: GroupCommitWriter,
        clock: Clock,
        telemetry: Telemetry,
        stats: RoomStats,
        *,
        post: Callable[[Callable[[], None]], None],
        error: Callable[[Session, QuizroomError], None],
        settled: Callable[[], None],
    ) -> None:
        """`post` runs a job in the actor; `error` sends an error frame; `settled` runs after answers change state."""
        self.state = state
        self.writer = writer
        self.clock = clock
        self.telemetry = telemetry
        self.stats = stats
        self._post = post
        self._error = error
        self._settled = settled
        self._awaiting: dict[asyncio.Future[None], list[Answer]] = {}  # one list per commit batch
        self._waiters: dict[Key, list[Session]] = {}  # the sender first, then repeats that came meanwhile
        self._arrived: dict[Key, float] = {}  # monotonic arrival, for the ack-latency histogram

    def submit(self, session: Session, message: dict[str, Any]) -> None:
        """Judge an answer message; raises the documented refusal, or acks a repeat, or queues a new answer."""
        assert session.player_id is not None
        player = self.state.players.get(session.player_id)
        if player is None:
            return
        choices = parse_choices(message)
        arrived = self.clock.monotonic()
        try:
            submission = self.state.submit(player, message.get("question"), choices, arrived, self.clock.wall_ms())
        except QuizroomError as exc:
            self.telemetry.answer("late" if isinstance(exc, TooLate) else "refused")
            raise
        answer = submission.answer
        key = (answer.question, answer.player_id)
        if submission.duplicate:
            self.telemetry.answer("duplicate")
            self.stats.answers_duplicate += 1
            if answer.durable:
                self._ack(session, answer, duplicate=True, same=frozenset(choices) == frozenset(answer.choices))
                self._settled()  # after a restart, repeats may be all that arrives
            else:
                self._waiters.setdefault(key, []).append(session)
            return
        self._waiters[key] = [session]
        self._arrived[key] = arrived
        row = AnswerRow(
            self.state.room_id,
            answer.question,
            answer.player_id,
            answer.choices,
            answer.correct,
            answer.points,
            answer.response_ms,
            answer.received_at_ms,
        )
        committed = self.writer.add_answer(row)
        batch = self._awaiting.get(committed)
        if batch is None:
            self._awaiting[committed] = batch = []
            committed.add_done_callback(lambda f: self._post(lambda: self._on_committed(f)))
        batch.append(answer)

    def forget_player(self, player_id: str) -> None:
        """A kicked player's pending acknowledgements are never sent."""
        for key in [k for k in self._waiters if k[1] == player_id]:
            del self._waiters[key]
            self._arrived.pop(key, None)

    def _on_committed(self, committed: asyncio.Future[None]) -> None:
        answers = self._awaiting.pop(committed, [])
        failed = committed.exception() is not None
        now = self.clock.monotonic()
        for answer in answers:
            key = (answer.question, answer.player_id)
            waiters = self._waiters.pop(key, [])
            arrived = self._arrived.pop(key, now)
            if failed:
                self.state.drop_pending(answer)
                for session in waiters:
                    self._error(session, Unavailable("your answer could not be stored; send it again"))
                continue
            if not self.state.mark_durable(answer):
                continue  # kicked while the commit ran
            for position, session in enumerate(waiters):
                self._ack(session, answer, duplicate=position > 0, same=True)
            self.telemetry.answer("accepted")
            self.stats.answers_accepted += 1
            self.telemetry.ack_latency(now - arrived)
        self._settled()

    @staticmethod
    def _ack(session: Session, answer: Answer, *, duplicate: bool, same: bool) -> None:
        """`accepted` says the answer the message carried is the one stored; a different repeat is `accepted: false`."""
        if session.open:
            session.conn.send(
                encode(
                    {
                        "type": "answer_ack",
                        "question": answer.question,
                        "accepted": same,
                        "duplicate": duplicate,
                        "response_ms": answer.response_ms,
                    }
                )
            )


def parse_choices(message: dict[str, Any]) -> tuple[int, ...]:
    """`choice` (an int) or `choices` (a list of ints) from an answer message."""
    if "choices" in message:
        raw = message["choices"]
        if not isinstance(raw, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in raw):
            raise BadMessage("`choices` must be a list of integers")
        return tuple(raw)
    raw_choice = message.get("choice")
    if not isinstance(raw_choice, int) or isinstance(raw_choice, bool):
        raise BadMessage("an answer needs `choice` (an integer) or `choices` (a list)")
    return (raw_choice,)
