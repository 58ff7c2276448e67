"""From an answer message to its acknowledgement: judge it, hand it to the writer, acknowledge it once durable.

This is the shard's output gate for answers. An `answer_ack` leaves only from a commit's completion, and only for
the row the database holds: the commit's `Outcome` says which answers it refused or found stored already.

- stored: acked (`duplicate: false`), and repeats that came meanwhile acked as duplicates;
- found stored with another judgment (an earlier owner of this shard stored it): the stored row replaces ours in
  memory and every waiter gets `duplicate: true` with the stored row's timing;
- refused because the question had closed in the database: `too_late`, and the answer is forgotten;
- refused because this shard's placement is no longer current (fenced): nothing is sent at all, and `fenced`
  tells the shard to stop, since another copy of it owns these players now;
- a failed commit: `unavailable` errors, and the answers are forgotten, so that a resend is judged afresh.

The desk belongs to one shard and runs in its task; it returns what to send instead of sending, and names the
commit batches the shard must watch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from quizroom.rooms.actors.sessions import Frame, Session, encode
from quizroom.rooms.actors.telemetry import RoomStats, Telemetry
from quizroom.rooms.game import messages
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import QuizroomError, TooLate, Unavailable
from quizroom.rooms.game.judging import Response, equivalent, parse_response, same
from quizroom.rooms.game.rules import Answer, RoomState
from quizroom.storage.records import AnswerRow, Outcome
from quizroom.storage.writer import GroupCommitWriter

Key = tuple[int, str]  # (question, player_id)
Sends = list[tuple[Session, Frame]]


@dataclass(slots=True)
class Taken:
    """What an answer message led to: frames to send now, a commit batch to watch (new to the desk), and whether
    an answer settled (a durable repeat: the coordinator may want to close early)."""

    sends: Sends = field(default_factory=list)
    watch: asyncio.Future[Outcome] | None = None
    settled: bool = False


class AnswerDesk:
    def __init__(
        self,
        state: RoomState,
        writer: GroupCommitWriter,
        clock: Clock,
        telemetry: Telemetry,
        stats: RoomStats,
        *,
        shard: int = 0,
        epoch: int = 0,
    ) -> None:
        self.state = state
        self.writer = writer
        self.clock = clock
        self.telemetry = telemetry
        self.stats = stats
        self.shard = shard
        self.epoch = epoch  # the shard's placement epoch: its answers are stored only while it is current
        self.fenced = False  # a commit said another copy of this shard owns its players now
        self._awaiting: dict[asyncio.Future[Outcome], list[Answer]] = {}  # one list per commit batch
        # The sender first, then repeats that came meanwhile, each with what it carried (its ack says whether that
        # is the answer stored).
        self._waiters: dict[Key, list[tuple[Session, Response]]] = {}
        self._arrived: dict[Key, float] = {}  # monotonic arrival, for the ack-latency histogram

    def submit(self, session: Session, message: dict[str, Any]) -> Taken:
        """Judge an answer message; raises the documented refusal, or acks a repeat, or queues a new answer."""
        assert session.player_id is not None
        player = self.state.players.get(session.player_id)
        if player is None:
            return Taken()
        response = parse_response(message)
        arrived = self.clock.monotonic()
        try:
            submission = self.state.submit(player, message.get("question"), response, arrived, self.clock.wall_ms())
        except QuizroomError as exc:
            self.telemetry.answer("late" if isinstance(exc, TooLate) else "refused")
            raise
        answer = submission.answer
        key = (answer.question, answer.player_id)
        if submission.duplicate:
            self.telemetry.answer("duplicate")
            self.stats.answers_duplicate += 1
            if answer.durable:  # after a restart, repeats may be all that arrives
                question = self.state.quiz.questions[answer.question]
                carried = same(question, response, answer.choices, answer.value)
                return Taken([(session, ack(answer, duplicate=True, same=carried))], settled=True)
            self._waiters.setdefault(key, []).append((session, response))
            return Taken()
        self._waiters[key] = [(session, response)]
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
            answer.value,
            shard=self.shard,
            epoch=self.epoch,
        )
        committed = self.writer.add_answer(row)
        batch = self._awaiting.get(committed)
        if batch is not None:
            batch.append(answer)
            return Taken()
        self._awaiting[committed] = [answer]
        return Taken(watch=committed)

    def forget_player(self, player_id: str) -> None:
        """A kicked player's pending acknowledgements are never sent."""
        for key in [k for k in self._waiters if k[1] == player_id]:
            del self._waiters[key]
            self._arrived.pop(key, None)

    def committed(self, batch: asyncio.Future[Outcome]) -> Sends:
        """A batch the desk watched is durable, with its outcome for each answer, or failed (see the module)."""
        answers = self._awaiting.pop(batch, [])
        outcome = None if batch.exception() is not None else batch.result()
        if outcome is not None and (self.state.room_id, self.shard) in outcome.fenced_shards:
            self.fenced = True
        now = self.clock.monotonic()
        sends: Sends = []
        for answer in answers:
            key = (answer.question, answer.player_id)
            waiters = self._waiters.pop(key, [])
            arrived = self._arrived.pop(key, now)
            if self.fenced:
                self.state.drop_pending(answer)
                continue  # not ours to answer: the shard's current copy will, when the player resends
            if outcome is None:
                self.state.drop_pending(answer)
                sends += self._refuse(waiters, Unavailable("your answer could not be stored; send it again"))
                continue
            row_key = (self.state.room_id, answer.question, answer.player_id)
            if row_key in outcome.closed:
                self.state.drop_pending(answer)
                self.telemetry.answer("late")
                sends += self._refuse(waiters, TooLate("the question has closed"))
                continue
            stored = outcome.duplicates.get(row_key)
            if stored is not None:
                held = answer_of(stored)
                if not self.state.adopt_stored(answer, held):
                    continue  # kicked while the commit ran
                question = self.state.quiz.questions[answer.question]
                carried = equivalent(question, (held.choices, held.value), (answer.choices, answer.value))
                sends += [
                    (
                        s,
                        ack(
                            held,
                            duplicate=True,
                            same=carried if i == 0 else same(question, r, held.choices, held.value),
                        ),
                    )
                    for i, (s, r) in enumerate(waiters)
                ]
                self.telemetry.answer("duplicate")
                self.stats.answers_duplicate += 1
                continue
            if not self.state.mark_durable(answer):
                continue  # kicked while the commit ran
            question = self.state.quiz.questions[answer.question]
            sends += [
                (s, ack(answer, duplicate=i > 0, same=i == 0 or same(question, r, answer.choices, answer.value)))
                for i, (s, r) in enumerate(waiters)
            ]
            self.telemetry.answer("accepted")
            self.stats.answers_accepted += 1
            self.telemetry.ack_latency(now - arrived)
        return sends

    def _refuse(self, waiters: list[tuple[Session, Response]], error: QuizroomError) -> Sends:
        for _ in waiters:
            self.telemetry.error(error.code)
        frame = encode(messages.error(error.code, error.message))
        return [(session, frame) for session, _ in waiters]


def answer_of(row: AnswerRow) -> Answer:
    """A stored answer as the rules hold it (replays after a load, and a duplicate found stored by a commit)."""
    answer = Answer(
        row.player_id, row.question, row.choices, row.correct, row.points, row.response_ms, row.received_at_ms
    )
    answer.value = row.value
    return answer


def ack(answer: Answer, *, duplicate: bool, same: bool) -> Frame:
    """`accepted` says the answer the message carried is the one stored; a different repeat is `accepted: false`."""
    return encode(
        messages.answer_ack(answer.question, accepted=same, duplicate=duplicate, response_ms=answer.response_ms)
    )
