"""The rules of one room, pure and synchronous (sans-I/O).

`RoomState` knows phases, players, answers, scores, streaks and ranks. It never touches a socket, a database or
the clock: the actor (`quizroom.rooms.actors.shard`) passes the time in and turns what these methods return into frames
and storage writes. That keeps every rule testable without a network, and lets a crashed room be rebuilt from
storage by replaying the same records through `restore`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from quizroom.rooms.game.errors import (
    BadMessage,
    BadNickname,
    BadPhase,
    NicknameTaken,
    RateLimited,
    Removed,
    RoomFinished,
    RoomFull,
    RoomLocked,
    TooLate,
    WrongQuestion,
)
from quizroom.rooms.game.friendly_names import friendly_name
from quizroom.rooms.game.judging import Response, judge
from quizroom.rooms.game.nicknames import TakenNames, normalise_nickname
from quizroom.rooms.game.options import RoomOptions
from quizroom.rooms.game.quiz import Question, Quiz
from quizroom.rooms.game.scoring import Ranking, answer_points, competition_ranks


class Phase(StrEnum):
    LOBBY = "lobby"
    QUESTION = "question"
    REVEAL = "reveal"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class RoomLimits:
    """The per-room limits of SPEC §5 (all configurable through settings)."""

    players_per_room: int = 10_000
    answer_attempts: int = 3
    grace_ms: int = 250
    # How long a player whose socket dropped still counts as playing for the early close ("everyone answered"):
    # a failover, an outage or a flaky network drops sockets that come back within a few seconds.
    reconnect_grace_s: float = 15.0
    blocked_words: frozenset[str] = frozenset()  # nickname block list, as block keys (rooms/game/nicknames.py)


@dataclass(slots=True)
class Answer:
    """One player's answer to one question. `durable` turns true once storage has committed it."""

    player_id: str
    question: int
    choices: tuple[int, ...]
    correct: bool
    points: int
    response_ms: int
    received_at_ms: int
    durable: bool = False
    value: str | None = None  # a typed answer or a slider's number (quizroom.rooms.game.judging); None for choices


@dataclass(slots=True)
class Player:
    player_id: str
    nickname: str
    nickname_key: str
    token_hash: str
    joined_at_ms: int
    score: int = 0
    streak: int = 0
    connected: int = 0  # sockets currently open for this player (0 or 1 after takeover)
    left_at: float | None = None  # monotonic time its socket dropped, or its shard started without it
    attempts: int = 0  # answer attempts on the open question
    answers: dict[int, Answer] = field(default_factory=dict)
    device_hash: str = ""  # a hash of the device id the player's browser keeps ("" when none came)


@dataclass(frozen=True, slots=True)
class Standing:
    rank: int
    player: Player
    score: int  # the score shown: while a question is open, without its unrevealed points


@dataclass(frozen=True, slots=True)
class Submission:
    """What an answer message amounts to: a new answer to store, or a repeat of one already held."""

    answer: Answer
    duplicate: bool


class RoomState:
    """Phases, players and answers of one room. Only its actor calls it; nothing here awaits."""

    def __init__(
        self,
        *,
        room_id: str,
        pin: str,
        quiz: Quiz,
        host_token_hash: str,
        limits: RoomLimits,
        options: RoomOptions | None = None,
    ) -> None:
        self.room_id = room_id
        self.options = options or RoomOptions()
        self.pin = pin
        self.quiz = quiz
        self.host_token_hash = host_token_hash
        self.limits = limits
        self.phase = Phase.LOBBY
        self.question_index: int | None = None
        self.opened_at_mono = 0.0
        self.opened_at_ms = 0
        self.deadline_ms = 0
        self.locked = False
        self.seq = 0
        self.players: dict[str, Player] = {}
        self._by_token: dict[str, str] = {}
        self._taken: TakenNames | None = None  # built by the first join check: shards never need it
        # What the host kicked stays out (docs/protocol.md, *Moderation*): the names, by look, and the devices.
        self.kicked_names = TakenNames()
        self.kicked_devices: set[str] = set()
        self._pending: dict[tuple[int, str], Answer] = {}
        self._ranking: list[int] | None = None  # visible scores, ascending; rebuilt lazily after a change
        self.ranking: Ranking | None = None  # the whole room's, when this state holds one shard of it

    # --- sequence numbers ----------------------------------------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # --- membership ----------------------------------------------------------------------------------------------

    def check_join(
        self, raw_nickname: object, device_hash: str = "", rng: random.Random | None = None, joining: int = 0
    ) -> tuple[str, str]:
        """Validate a join; returns `(nickname, key)` or raises the documented refusal. In a room with friendly
        names the typed name is ignored and one is drawn (`rng`) that neither looks like a player's nor a kicked
        one. `joining`: joins accepted but not yet stored, which take their seats in the room's cap too."""
        if device_hash and device_hash in self.kicked_devices:
            raise Removed("you were removed from this game")
        if self.options.friendly_names:
            raw_nickname = friendly_name(rng or random.Random(), self._unusable)
        nickname, key = normalise_nickname(raw_nickname, self.limits.blocked_words)
        if self.kicked_names.clashes(nickname):
            raise Removed(f"the host removed {nickname!r} from this game; pick another name")
        if self.phase is Phase.FINISHED:
            raise RoomFinished("the game has finished")
        if self.locked:
            raise RoomLocked("the room is locked")
        if len(self.players) + joining >= self.limits.players_per_room:
            raise RoomFull("the room is full")
        if self._taken_names().clashes(nickname):
            raise NicknameTaken(f"the nickname {nickname!r} is taken, or looks like one that is")
        return nickname, key

    def _unusable(self, nickname: str) -> bool:
        """A generated name the room cannot give: it looks like a player's or a kicked one, or a block word hits."""
        if self._taken_names().clashes(nickname) or self.kicked_names.clashes(nickname):
            return True
        try:
            normalise_nickname(nickname, self.limits.blocked_words)
        except BadNickname:
            return True
        return False

    def _taken_names(self) -> TakenNames:
        if self._taken is None:
            self._taken = TakenNames(player.nickname for player in self.players.values())
        return self._taken

    def reserve_nickname(self, nickname: str) -> None:
        """Hold a nickname (and its look-alikes) while its player row is committed, so two joins cannot take it."""
        self._taken_names().reserve(nickname)

    def release_nickname(self, nickname: str) -> None:
        self._taken_names().release(nickname)

    def add_player(self, player: Player) -> None:
        if self._ranking is not None:
            # Keep the ranking instead of rebuilding it: a join storm would otherwise sort n scores n times.
            bisect.insort(self._ranking, self.visible_score(player))
        self.players[player.player_id] = player
        self._by_token[player.token_hash] = player.player_id
        if self._taken is not None:
            self._taken.add(player.nickname)

    def player_by_token(self, token_hash: str) -> Player | None:
        player_id = self._by_token.get(token_hash)
        return None if player_id is None else self.players.get(player_id)

    def bar(self, player: Player) -> None:
        """A kicked player's name (and its look-alikes) and device may not join this room again."""
        self.kicked_names.add(player.nickname)
        if player.device_hash:
            self.kicked_devices.add(player.device_hash)

    def remove_player(self, player_id: str) -> Player:
        """Kick: the player leaves counts, leaderboards and podium, and their answers are dropped with them."""
        player = self.players.get(player_id)
        if player is None:
            raise KeyError(player_id)
        if self._ranking is not None:
            del self._ranking[bisect.bisect_left(self._ranking, self.visible_score(player))]
        del self.players[player_id]
        self._by_token.pop(player.token_hash, None)
        if self._taken is not None:
            self._taken.remove(player.nickname)
        for question in list(player.answers):
            self._pending.pop((question, player_id), None)
        return player

    @property
    def connected_count(self) -> int:
        return sum(1 for p in self.players.values() if p.connected)

    # --- phases --------------------------------------------------------------------------------------------------

    @property
    def current_question(self) -> Question | None:
        if self.question_index is None:
            return None
        return self.quiz.questions[self.question_index]

    def start(self, mono: float, wall_ms: int) -> Question:
        if self.phase is not Phase.LOBBY:
            raise BadPhase(f"cannot start in phase {self.phase}")
        return self._open(0, mono, wall_ms)

    def advance(self, mono: float, wall_ms: int) -> Question | None:
        """`next`: open the next question, or finish after the last (returns None then)."""
        if self.phase is not Phase.REVEAL:
            raise BadPhase(f"cannot go to the next question in phase {self.phase}")
        assert self.question_index is not None
        if self.question_index + 1 >= len(self.quiz.questions):
            self.finish()
            return None
        return self._open(self.question_index + 1, mono, wall_ms)

    def open_at(
        self, index: int, opened_at_ms: int, mono: float, wall_ms: int, elapsed_ms: int | None = None
    ) -> Question:
        """A shard opens the question its coordinator opened `elapsed_ms` ago (by the coordinator's monotonic
        clock: the transit only makes it look younger), or else at `opened_at_ms` (wall clock), whatever the
        phase. Dated by `elapsed_ms`, the deadline and the times sent to players are in this host's clock."""
        if self.phase is Phase.QUESTION and self.question_index is not None:
            self.close()
        if elapsed_ms is not None:
            question = self._open(index, mono - elapsed_ms / 1000, wall_ms - elapsed_ms)
        else:
            question = self._open(index, mono - (wall_ms - opened_at_ms) / 1000, opened_at_ms)
        self._ranking = None
        return question

    def _open(self, index: int, mono: float, wall_ms: int) -> Question:
        question = self.quiz.questions[index]
        self.phase = Phase.QUESTION
        self.question_index = index
        self.opened_at_mono = mono
        self.opened_at_ms = wall_ms
        self.deadline_ms = wall_ms + question.time_limit_ms
        for player in self.players.values():
            player.attempts = 0
        return question

    def close(self) -> None:
        """question → reveal. Streaks settle here: a wrong or missing answer resets the streak."""
        if self.phase is not Phase.QUESTION:
            raise BadPhase(f"cannot close in phase {self.phase}")
        assert self.question_index is not None
        self.phase = Phase.REVEAL
        self._ranking = None
        self._settle_streaks(self.question_index)

    def _settle_streaks(self, index: int) -> None:
        if not self.quiz.questions[index].scored:
            return  # a poll neither extends nor breaks a streak
        for player in self.players.values():
            answer = player.answers.get(index)
            player.streak = player.streak + 1 if answer is not None and answer.correct else 0

    def finish(self) -> None:
        if self.phase is Phase.FINISHED:
            raise BadPhase("the game has already finished")
        if self.phase is Phase.QUESTION:
            self.close()
        self.phase = Phase.FINISHED
        self._ranking = None

    def set_locked(self, locked: bool) -> None:
        if self.phase is Phase.FINISHED:
            raise BadPhase("the game has finished")
        self.locked = locked

    def seconds_left(self, mono: float) -> float:
        question = self.current_question
        assert question is not None
        return question.time_limit_ms / 1000 - (mono - self.opened_at_mono)

    # --- answers -------------------------------------------------------------------------------------------------

    def submit(
        self,
        player: Player,
        question_index: object,
        response: Response | tuple[int, ...],
        mono: float,
        wall_ms: int,
    ) -> Submission:
        """Judge an answer message (`response`; a tuple is picked choices). A repeat of a held answer is a duplicate
        whatever it says: the first wins."""
        if not isinstance(question_index, int) or isinstance(question_index, bool):
            raise BadMessage("`question` must be an integer")
        held = player.answers.get(question_index)
        if held is not None:
            return Submission(held, duplicate=True)
        if self.phase in (Phase.LOBBY, Phase.FINISHED):
            raise BadPhase(f"no question is open (phase {self.phase})")
        if question_index != self.question_index:
            raise WrongQuestion(f"question {self.question_index} is the current one")
        if self.phase is Phase.REVEAL:
            raise TooLate("the question has closed")
        player.attempts += 1
        if player.attempts > self.limits.answer_attempts:
            raise RateLimited(f"at most {self.limits.answer_attempts} answer attempts per question")
        question = self.quiz.questions[question_index]
        elapsed_ms = int((mono - self.opened_at_mono) * 1000)
        if elapsed_ms > question.time_limit_ms + self.limits.grace_ms:
            raise TooLate("the time is up")
        judged = judge(question, response if isinstance(response, Response) else Response(choices=response))
        response_ms = max(0, elapsed_ms)
        points = answer_points(
            points=question.points,
            time_limit_ms=question.time_limit_ms,
            response_ms=response_ms,
            correct=judged.correct,
            streak=player.streak + 1,
            closeness=judged.closeness,
        )
        answer = Answer(player.player_id, question_index, judged.choices, judged.correct, points, response_ms, wall_ms)
        answer.value = judged.value
        player.answers[question_index] = answer
        self._pending[(question_index, player.player_id)] = answer
        return Submission(answer, duplicate=False)

    def mark_durable(self, answer: Answer) -> bool:
        """Storage committed the answer: it counts now. False if its player was kicked meanwhile."""
        if self._pending.pop((answer.question, answer.player_id), None) is None:
            return False
        answer.durable = True
        player = self.players[answer.player_id]
        player.score += answer.points
        if self.phase is not Phase.QUESTION:
            self._ranking = None
        return True

    def adopt_stored(self, pending: Answer, stored: Answer) -> bool:
        """Storage held another answer for this player and question already (judged by an earlier owner of the
        shard): that one counts, in place of `pending`. False if the player was kicked meanwhile."""
        if self._pending.pop((pending.question, pending.player_id), None) is None:
            return False
        player = self.players[pending.player_id]
        stored.durable = True
        player.answers[pending.question] = stored
        player.score += stored.points
        if self.phase is not Phase.QUESTION:
            self._ranking = None
            if pending.question == self.question_index and stored.correct != pending.correct:
                player.streak = self._streak_through(player, pending.question)  # settled counting `pending`
        return True

    def _streak_through(self, player: Player, index: int) -> int:
        streak = 0
        while index >= 0:
            if self.quiz.questions[index].scored:
                answer = player.answers.get(index)
                if answer is None or not answer.correct:
                    break
                streak += 1
            index -= 1
        return streak

    def drop_pending(self, answer: Answer) -> None:
        """Storage could not commit the answer: forget it, so that the player's retry is judged afresh."""
        if self._pending.pop((answer.question, answer.player_id), None) is None:
            return
        player = self.players.get(answer.player_id)
        if player is not None and player.answers.get(answer.question) is answer:
            del player.answers[answer.question]
            player.attempts = max(0, player.attempts - 1)
            if self.phase is not Phase.QUESTION and answer.question == self.question_index:
                player.streak = 0  # streaks were settled counting this answer; it never became durable

    def pending_for(self, question_index: int) -> int:
        return sum(1 for (q, _) in self._pending if q == question_index)

    def still_answering(self, mono: float) -> bool:
        """Someone here may yet answer the open question: a connected player without a durable answer to it, or
        one whose socket dropped less than `reconnect_grace_s` ago (it may be on its way back). Outside a
        question, anyone connected or on the way back is "still answering" the question to come."""
        index = self.question_index if self.phase is Phase.QUESTION else None
        grace = self.limits.reconnect_grace_s
        for player in self.players.values():
            if not player.connected and (player.left_at is None or mono - player.left_at >= grace):
                continue
            answer = player.answers.get(index) if index is not None else None
            if answer is None or not answer.durable:
                return True  # early exit: the common case while a question is open
        return False

    def everyone_answered(self, mono: float) -> bool:
        """Every player connected (or just dropped) has a durable answer to the open question, and one is
        connected."""
        # still_answering first: while a question is open it stops at the first player yet to answer.
        return self.phase is Phase.QUESTION and not self.still_answering(mono) and self.connected_count > 0

    def answers_to(self, index: int) -> list[Answer]:
        return [a for p in self.players.values() if (a := p.answers.get(index)) is not None and a.durable]

    # --- views ---------------------------------------------------------------------------------------------------

    def visible_score(self, player: Player) -> int:
        """The score a player may see: while a question is open, its points are not revealed yet."""
        if self.phase is Phase.QUESTION and self.question_index is not None:
            answer = player.answers.get(self.question_index)
            if answer is not None and answer.durable:
                return player.score - answer.points
        return player.score

    def standings(self) -> list[Standing]:
        """Every player by visible score descending (ties by nickname), with competition ranks."""
        scored = sorted(
            ((self.visible_score(p), p) for p in self.players.values()),
            key=lambda sp: (-sp[0], sp[1].nickname_key, sp[1].player_id),
        )
        ranks = competition_ranks([score for score, _ in scored])
        return [Standing(rank, player, score) for rank, (score, player) in zip(ranks, scored, strict=True)]

    def rank_of(self, player: Player) -> int:
        """1 + the number of players with a higher visible score; the sorted scores are cached between changes.

        A shard ranks against the room's histogram from the last reveal (`ranking`): the visible scores while the
        next question is open are exactly those.
        """
        if self.ranking is not None:
            return self.ranking.rank(self.visible_score(player))
        if self._ranking is None:
            self._ranking = sorted(self.visible_score(p) for p in self.players.values())
        return len(self._ranking) - bisect.bisect_right(self._ranking, self.visible_score(player)) + 1

    def score_above(self, player: Player) -> int | None:
        """The next higher visible score in the room (None for a player in first place), for "N points behind"."""
        score = self.visible_score(player)
        if self.ranking is not None:
            return self.ranking.above(score)
        self.rank_of(player)  # builds the sorted scores
        assert self._ranking is not None
        position = bisect.bisect_right(self._ranking, score)
        return self._ranking[position] if position < len(self._ranking) else None

    # --- recovery ------------------------------------------------------------------------------------------------

    def restore(
        self,
        *,
        phase: Phase,
        question_index: int | None,
        opened_at_ms: int,
        locked: bool,
        seq: int,
        players: Iterable[Player],
        answers: Iterable[Answer],
        mono: float,
        wall_ms: int,
    ) -> None:
        """Rebuild the room from storage: scores recomputed from the answers, streaks replayed in order."""
        self.phase = phase
        self.question_index = question_index
        self.locked = locked
        self.seq = seq
        self._ranking = None
        for player in players:
            player.score = 0
            player.streak = 0
            player.answers = {}
            self.add_player(player)
        for answer in answers:
            owner = self.players.get(answer.player_id)
            if owner is None:
                continue
            answer.durable = True
            owner.answers[answer.question] = answer
            owner.score += answer.points
        if question_index is not None:
            settled = question_index if phase is Phase.QUESTION else question_index + 1
            for index in range(settled):
                self._settle_streaks(index)
            if phase is Phase.QUESTION:
                question = self.quiz.questions[question_index]
                self.opened_at_ms = opened_at_ms
                self.deadline_ms = opened_at_ms + question.time_limit_ms
                self.opened_at_mono = mono - (wall_ms - opened_at_ms) / 1000
