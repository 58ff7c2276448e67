"""Property-based: random games on the pure room rules, with commits failing and rooms crashing and restoring.

A hypothesis state machine drives `RoomState` the way the actor does — joins, answers (valid, invalid, repeated),
commits that land or fail, sockets coming and going, host commands, time passing — and, at any step, a crash: a
fresh `RoomState` rebuilt through `restore` from only what storage holds (players and durable answers). After every
step the promises hold: at most one answer per (player, question) and the first one wins forever, every score is
the sum of its durable answers' points, sequence numbers never go back, phases move only along legal edges, and
ranks are competition ranks of the visible scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from quizroom.rooms.actors.sessions import hash_token
from quizroom.rooms.game.clock import ManualClock
from quizroom.rooms.game.errors import (
    BadChoice,
    BadNickname,
    BadPhase,
    NicknameTaken,
    RateLimited,
    RoomFinished,
    RoomFull,
    RoomLocked,
    TooLate,
    WrongQuestion,
)
from quizroom.rooms.game.quiz import parse_quiz
from quizroom.rooms.game.rules import Answer, Phase, Player, RoomLimits, RoomState
from tests.gameclient import quiz

QUIZ = parse_quiz(quiz(3, time_limit_ms=10_000, multi_last=True))
LIMITS = RoomLimits(players_per_room=6, answer_attempts=3, grace_ms=250)
NAMES = ["Ann", "ann", " ANN ", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "", "x" * 30]
LEGAL = {
    (Phase.LOBBY, Phase.QUESTION),
    (Phase.QUESTION, Phase.REVEAL),
    (Phase.REVEAL, Phase.QUESTION),
    (Phase.REVEAL, Phase.FINISHED),
    (Phase.LOBBY, Phase.FINISHED),
    (Phase.QUESTION, Phase.FINISHED),
}


@dataclass(frozen=True, slots=True)
class StoredPlayer:
    """A player row as storage holds it."""

    player_id: str
    nickname: str
    nickname_key: str
    token_hash: str
    joined_at_ms: int


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer row as storage holds it (and as its ack promised it)."""

    choices: tuple[int, ...]
    correct: bool
    points: int
    response_ms: int
    received_at_ms: int


class RoomMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.room = RoomState(room_id="r1", pin="123456", quiz=QUIZ, host_token_hash="h", limits=LIMITS)
        self.players: list[StoredPlayer] = []  # storage: every player that joined and was not kicked
        self.durable: dict[tuple[str, int], StoredAnswer] = {}  # storage: committed (hence acked) answers
        self.pending: list[Answer] = []  # answers handed to the writer, not committed yet
        self.last_seq = 0
        self.serial = 0

    # --- helpers -------------------------------------------------------------------------------------------------

    def _player(self, pick: int) -> Player:
        return self.room.players[self.players[pick % len(self.players)].player_id]

    def _transition(self, action: str) -> None:
        """Run a host command as the actor would (sequence numbers included) and check the edge it took."""
        room = self.room
        before, index = room.phase, room.question_index
        try:
            if action == "start":
                room.start(self.clock.monotonic(), self.clock.wall_ms())
                room.next_seq()
            elif action == "close":
                room.close()
                room.next_seq()
                room.next_seq()
            elif action == "next":
                opened = room.advance(self.clock.monotonic(), self.clock.wall_ms())
                room.next_seq()
                if opened is None:
                    assert room.phase is Phase.FINISHED
            else:
                room.finish()
                room.next_seq()
        except BadPhase:
            assert room.phase is before and room.question_index == index
            return
        assert (before, room.phase) in LEGAL, (action, before, room.phase)
        if before is Phase.REVEAL and room.phase is Phase.QUESTION:
            assert index is not None and room.question_index == index + 1
        if before is Phase.LOBBY and room.phase is Phase.QUESTION:
            assert room.question_index == 0

    # --- membership ----------------------------------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES))
    def join(self, name: str) -> None:
        try:
            nickname, key = self.room.check_join(name)
        except (NicknameTaken, RoomLocked, RoomFull, RoomFinished, BadNickname):
            return
        self.serial += 1
        stored = StoredPlayer(f"p{self.serial}", nickname, key, hash_token(f"t{self.serial}"), self.clock.wall_ms())
        self.players.append(stored)
        self.room.add_player(
            Player(stored.player_id, nickname, key, stored.token_hash, stored.joined_at_ms, connected=1)
        )

    @precondition(lambda self: self.players)
    @rule(pick=st.integers(0, 50))
    def kick(self, pick: int) -> None:
        player = self._player(pick)
        self.room.remove_player(player.player_id)
        self.players = [p for p in self.players if p.player_id != player.player_id]
        self.durable = {k: v for k, v in self.durable.items() if k[0] != player.player_id}  # deleted with them
        self.pending = [a for a in self.pending if a.player_id != player.player_id]

    @precondition(lambda self: self.players)
    @rule(pick=st.integers(0, 50), connected=st.booleans())
    def socket(self, pick: int, connected: bool) -> None:
        self._player(pick).connected = int(connected)

    # --- answers -------------------------------------------------------------------------------------------------

    @precondition(lambda self: self.players)
    @rule(pick=st.integers(0, 50), choice=st.integers(0, 3))
    def answer_the_open_question(self, pick: int, choice: int) -> None:
        """A well-formed answer to the current question (most answers are), repeats included by chance."""
        index = self.room.question_index
        question = QUIZ.questions[index] if index is not None else None
        choices = [choice, (choice + 1) % 4] if question is not None and question.multi else [choice]
        self.answer(pick, index if index is not None else 0, choices)

    @precondition(lambda self: self.players)
    @rule(
        pick=st.integers(0, 50),
        question=st.integers(-1, 3),
        choices=st.lists(st.integers(-1, 4), min_size=0, max_size=3),
    )
    def answer(self, pick: int, question: int, choices: list[int]) -> None:
        """Any answer message: other questions, bad choices, repeats, in any phase."""
        player = self._player(pick)
        held = player.answers.get(question)
        try:
            submission = self.room.submit(
                player, question, tuple(choices), self.clock.monotonic(), self.clock.wall_ms()
            )
        except (BadPhase, WrongQuestion, TooLate, RateLimited, BadChoice):
            assert player.answers.get(question) is held  # a refusal changes nothing
            return
        key = (player.player_id, question)
        if submission.duplicate:
            assert submission.answer is held, "a repeat must return the answer already held: the first one wins"
            stored = self.durable.get(key)
            if submission.answer.durable:
                assert stored is not None and stored.response_ms == submission.answer.response_ms
            return
        assert held is None, "a second answer to the same question was taken"
        assert key not in self.durable
        assert self.room.phase is Phase.QUESTION and question == self.room.question_index
        self.pending.append(submission.answer)

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 50))
    def commit(self, pick: int) -> None:
        answer = self.pending.pop(pick % len(self.pending))
        assert self.room.mark_durable(answer)
        key = (answer.player_id, answer.question)
        assert key not in self.durable, "an answer was stored twice"
        self.durable[key] = StoredAnswer(
            answer.choices, answer.correct, answer.points, answer.response_ms, answer.received_at_ms
        )

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 50))
    def commit_fails(self, pick: int) -> None:
        answer = self.pending.pop(pick % len(self.pending))
        self.room.drop_pending(answer)
        owner = self.room.players[answer.player_id]
        assert answer.question not in owner.answers, "a failed answer must be forgotten so a retry is judged afresh"

    # --- phases and time -----------------------------------------------------------------------------------------

    @rule(action=st.sampled_from(["start", "close", "next", "end"]))
    def host(self, action: str) -> None:
        self._transition(action)

    @rule(locked=st.booleans())
    def lock(self, locked: bool) -> None:
        try:
            self.room.set_locked(locked)
        except BadPhase:
            assert self.room.phase is Phase.FINISHED

    @rule(seconds=st.floats(0.0, 12.0, allow_nan=False))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.room.phase is Phase.QUESTION)
    @rule()
    def deadline(self) -> None:
        """The actor's timer: past the deadline plus grace, the question closes."""
        if self.room.seconds_left(self.clock.monotonic()) + LIMITS.grace_ms / 1000 <= 0:
            self._transition("close")

    # --- crash and restore ---------------------------------------------------------------------------------------

    @rule()
    def crash_and_restore(self) -> None:
        """Lose everything in memory; rebuild from the stored room row, players and durable answers only."""
        old = self.room
        scores_before = {p.player_id: p.score for p in old.players.values()}
        self.pending.clear()  # never committed, so never acknowledged: losing them breaks no promise
        fresh = RoomState(room_id="r1", pin="123456", quiz=QUIZ, host_token_hash="h", limits=LIMITS)
        players = [Player(p.player_id, p.nickname, p.nickname_key, p.token_hash, p.joined_at_ms) for p in self.players]
        answers = [
            Answer(pid, q, s.choices, s.correct, s.points, s.response_ms, s.received_at_ms)
            for (pid, q), s in self.durable.items()
        ]
        fresh.restore(
            phase=old.phase,
            question_index=old.question_index,
            opened_at_ms=old.opened_at_ms,
            locked=old.locked,
            seq=old.seq,
            players=players,
            answers=answers,
            mono=self.clock.monotonic(),
            wall_ms=self.clock.wall_ms(),
        )
        self.room = fresh
        assert {p.player_id: p.score for p in fresh.players.values()} == scores_before
        if fresh.phase is Phase.QUESTION:
            assert fresh.deadline_ms == old.deadline_ms, "an open question keeps its original deadline"

    # --- invariants ----------------------------------------------------------------------------------------------

    @invariant()
    def one_answer_each_and_the_stored_one_wins(self) -> None:
        held = {(p.player_id, q): a for p in self.room.players.values() for q, a in p.answers.items() if a.durable}
        assert set(held) == set(self.durable)
        for key, stored in self.durable.items():
            answer = held[key]
            assert (answer.choices, answer.points, answer.response_ms) == (
                stored.choices,
                stored.points,
                stored.response_ms,
            )
        pending = sum(self.room.pending_for(q) for q in range(len(QUIZ.questions)))
        assert pending == len(self.pending)

    @invariant()
    def score_is_the_sum_of_durable_points(self) -> None:
        for player in self.room.players.values():
            assert player.score == sum(a.points for a in player.answers.values() if a.durable)
            assert 0 <= self.room.visible_score(player) <= player.score

    @invariant()
    def seq_never_goes_back(self) -> None:
        assert self.room.seq >= self.last_seq
        self.last_seq = self.room.seq

    @invariant()
    def ranks_are_competition_ranks(self) -> None:
        standings = self.room.standings()
        for i, standing in enumerate(standings):
            higher = sum(1 for s in standings if s.score > standing.score)
            assert standing.rank == higher + 1
            assert self.room.rank_of(standing.player) == standing.rank
            if i:
                previous = standings[i - 1]
                assert previous.score >= standing.score
                assert (previous.rank == standing.rank) == (previous.score == standing.score)


RoomMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_room_rules_hold_through_random_games_commit_failures_and_crashes = RoomMachine.TestCase
