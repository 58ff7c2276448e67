"""The room protocol: every decision of a room's coordinator, as a state machine that does no I/O.

Modelled on python-websockets' protocol objects. Each input is a method call with the time passed in (`Now`),
and returns the effects its caller must carry out, in order (`quizroom.rooms.game.effects`). The machine never
awaits, never reads a clock and never arms a timer: it says when one is due (`Arm`), what must be durable first
(`Persist`, then `done(step, written)`), what to read (`QueryView`, then `view_ready(step, view)`), and what goes to the
shards, the hosts and the callers. The asyncio coordinator (`quizroom.rooms.actors.coordinator`) runs the effects;
tests drive the machine with no event loop at all (tests/unit/test_protocol.py).

What it guarantees, state by state:

- **The output gate.** A question, a reveal and the end go to shards and hosts only after their phase record's
  write completed (`Persist` → `done`). If the write failed past the writer's patience the event goes out anyway,
  logged: the game must not hang, and what a crash could then lose is the phase, never an acknowledged answer.
- **One transition at a time.** From the moment a command changes the phase until its effects are out (a question
  stored and sent; a close waiting on its shards, the view read, the reveal stored and sent), the room is *busy*:
  commands, kicks and a deadline that arrive meanwhile wait, in order, and run when it ends.
- **A reveal counts what is durable.** A close tells every shard to stop taking answers, and the reveal waits
  until each reports its answers durable (`shard_closed`) or `close_wait_s` passes; the view is then read from
  storage, so what a dead shard acknowledged counts and nothing else does.
- **Early close.** A question closes before its deadline when every connected player of every shard has a durable
  answer, and a shard this coordinator has not heard from yet counts as still answering.
- **Joins** are never deferred: a nickname is reserved at once (two joins cannot both take it), and the join is
  answered only when the player's row is durable and its shard has a home.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quizroom.rooms.game import messages
from quizroom.rooms.game.effects import (
    Arm,
    Disarm,
    Effect,
    Joined,
    Log,
    Persist,
    PhaseRecord,
    PlaceShard,
    QueryView,
    Refuse,
    Reply,
    StoreKick,
    StorePlayer,
    Timer,
    ToHosts,
    ToShard,
    ToShards,
    View,
    Whereabouts,
    Written,
)
from quizroom.rooms.game.errors import (
    BadPhase,
    Kicked,
    NicknameTaken,
    NotFound,
    QuizroomError,
    Unauthorized,
    Unavailable,
    UnknownType,
)
from quizroom.rooms.game.events import (
    AddPlayer,
    Announce,
    CloseQuestion,
    FinishRoom,
    GetReady,
    KickPlayer,
    Now,
    OpenQuestion,
    RevealQuestion,
    ShardSummary,
)
from quizroom.rooms.game.feed import HostFeed
from quizroom.rooms.game.rules import Phase, Player, RoomState
from quizroom.rooms.game.seating import Home, Seating

CLOSE_WAIT_S = 3.0
"""How long a reveal waits for a shard that neither reports nor is known dead (its acked answers count anyway)."""

AUTO_ADVANCE_AFTER_S = 60.0
"""How long a reveal of a room with `auto_advance` waits for a host to come back before it moves on alone."""

COMMANDS = ("start", "close", "next", "end", "lock", "unlock")

Job = Callable[[Now], list[Effect]]
AfterWrite = Callable[[Written, Now], list[Effect]]
AfterView = Callable[[View, Now], list[Effect]]


@dataclass(slots=True)
class Closing:
    """A close in flight: the shards not yet done with `index`, and what the reveal then does."""

    index: int
    waiting: set[int]
    request: int | None
    then_finish: bool


@dataclass(slots=True)
class PendingJoin:
    request: int
    player: Player
    shard: int
    stored: bool | None = None  # the row's write: not done yet, durable, failed
    refused: bool = False  # the row clashed with a stored player's: the nickname is taken after all
    unplaced: bool = False  # its shard's placement failed


@dataclass(slots=True)
class Settings:
    per_shard: int = 1_500
    host_coalesce_s: float = 0.1
    close_wait_s: float = CLOSE_WAIT_S
    auto_advance_after_s: float = AUTO_ADVANCE_AFTER_S


class RoomProtocol:
    """One room's coordination. Only its coordinator's task calls it; every input returns the effects to run."""

    def __init__(
        self,
        state: RoomState,
        settings: Settings | None = None,
        *,
        homes: dict[int, Home] | None = None,
        shard_of: dict[str, int] | None = None,
        revoked: set[str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`homes`, `shard_of` and `revoked` come from storage when a room is resumed or taken over; `rng` draws
        friendly names (seeded in tests)."""
        self.state = state
        self.rng = rng or random.Random()
        self.settings = settings or Settings()
        self.seating = Seating(self.settings.per_shard, homes)
        self.feed = HostFeed(self.settings.host_coalesce_s)
        self.shard_of: dict[str, int] = shard_of if shard_of is not None else {}
        self.revoked: set[str] = revoked if revoked is not None else set()
        self.finished_at: float | None = None  # monotonic time the room finished (for eviction)
        self.busy = False
        self._deferred: deque[Job] = deque()
        self._closing: Closing | None = None
        self._last_reveal: RevealQuestion | None = None  # resent to a shard that catches up (`_catch_up`)
        self._last_finish: FinishRoom | None = None
        self._deadline_for: int | None = None  # the question the armed deadline is for
        self._steps = 0
        self._after_write: dict[int, AfterWrite] = {}
        self._after_view: dict[int, AfterView] = {}
        self._placing_joins: dict[int, list[PendingJoin]] = {}
        self._joining = 0  # joins accepted, not yet answered: they count against `players_per_room`
        self.hosts = 0  # host sockets connected (the coordinator says, `hosts_changed`)
        self._alone_armed = False  # the auto-advance timer is armed
        self._intro: tuple[int, Job] | None = None  # a "get ready" pause in flight: its question and what follows

    # --- inputs: life cycle -------------------------------------------------------------------------------------

    def resumed(self, now: Now) -> list[Effect]:
        """Loaded from storage: an open question's deadline is armed again (due at once when it has passed); a
        reveal or the podium is sent to the shards again (`_rebuild_reveal`, `_rebuild_finish`). A "get ready"
        pause is not stored: a room that crashed during one resumes in the phase before it."""
        if self.state.phase is Phase.QUESTION:
            return self._arm_deadline(now)
        if self.state.phase is Phase.REVEAL and self.state.question_index is not None:
            return self._rebuild_reveal() + self._alone(now)
        if self.state.phase is Phase.FINISHED:
            self.finished_at = now.mono
            return self._rebuild_finish()
        return []

    def _rebuild_finish(self) -> list[Effect]:
        """As `_rebuild_reveal`, for the podium: a shard elsewhere that never heard the finish gets it now."""
        state = self.state
        seq = state.seq

        def got(view: View, now: Now) -> list[Effect]:
            self._last_finish = FinishRoom(seq, list(view.top), view.histogram, state.question_index)
            return [ToShards(self._last_finish)]

        return self._query(got, question=None, choices=0, through=state.question_index, top=messages.PODIUM_N)

    def _rebuild_reveal(self) -> list[Effect]:
        """A coordinator that stored a reveal and died before sending it took its shards' results with it: the
        one that takes the room over reads the same view again and sends the same reveal (the stored seq is the
        leaderboard's; the results' is the one before). Shards that had it ignore it; commands wait meanwhile."""
        state = self.state
        index = state.question_index
        assert index is not None
        question = state.quiz.questions[index]
        board_seq = state.seq
        self.busy = True

        def got(view: View, now: Now) -> list[Effect]:
            counts, tally = messages.reveal_counts(question, view)
            board = messages.leaderboard(index, board_seq, list(view.top), counts, view.answered, view.players, tally)
            self._last_reveal = RevealQuestion(index, board_seq - 1, board, view.histogram)
            return [ToShards(self._last_reveal), *self._end_transition(now)]

        return self._query(got, question=index, choices=len(question.choices), through=index, top=messages.TOP_N)

    def done(self, step: int, written: Written | bool, now: Now) -> list[Effect]:
        """A write the machine asked for (`Persist`, `StorePlayer`, `StoreKick`) came back (True: durable)."""
        if isinstance(written, bool):
            written = Written.DURABLE if written else Written.FAILED
        then = self._after_write.pop(step, None)
        return then(written, now) if then is not None else []

    def view_ready(self, step: int, view: View, now: Now) -> list[Effect]:
        then = self._after_view.pop(step, None)
        return then(view, now) if then is not None else []

    def timer_due(self, timer: Timer, now: Now) -> list[Effect]:
        if timer is Timer.DEADLINE:
            return self._deadline_due(now)
        if timer is Timer.CLOSE_WAIT:
            return self._close_overdue(now)
        if timer is Timer.INTRO:
            return self._intro_over(now)
        if timer is Timer.AUTO_ADVANCE:
            return self._alone_due(now)
        return self._flush(now)

    def hosts_changed(self, hosts: int, now: Now) -> list[Effect]:
        """A host socket came or went: with none left in a reveal, an `auto_advance` room starts counting."""
        self.hosts = hosts
        return self._alone(now)

    # --- inputs: the host's calls -------------------------------------------------------------------------------

    def command(self, request: int, name: str, now: Now) -> list[Effect]:
        """start, close, next, end, lock, unlock. Replied with the room's state once the command took effect."""
        handlers: dict[str, Callable[[int, Now], list[Effect]]] = {
            "start": self._start,
            "close": self._close_command,
            "next": self._next,
            "end": self._end,
            "lock": lambda request, now: self._set_locked(request, now, True),
            "unlock": lambda request, now: self._set_locked(request, now, False),
        }
        handler = handlers.get(name)
        if handler is None:
            return [Refuse(request, UnknownType(f"unknown command {name!r}"))]
        return self._gated(lambda now: self._guard(request, handler, now), now)

    def kick(self, request: int, player_id: str, now: Now) -> list[Effect]:
        """The player leaves counts, leaderboards and podium; their token is refused from now on."""

        def handler(request: int, now: Now) -> list[Effect]:
            state = self.state
            if player_id not in state.players:
                raise NotFound("no such player in this room")
            player = state.remove_player(player_id)
            state.bar(player)
            self.revoked.add(player.token_hash)
            shard = self.shard_of.pop(player_id, 0)
            self.seating.unassign(shard)
            self.feed.left.append({"player_id": player_id, "nickname": player.nickname})

            def stored(written: Written, now: Now) -> list[Effect]:
                effects: list[Effect] = [ToShard(shard, KickPlayer(player_id))]
                effects += self._mark(now, players=True, answers=True)
                ok = written is Written.DURABLE
                effects.append(Reply(request, None) if ok else Refuse(request, Unavailable("storage is unavailable")))
                return effects

            return [StoreKick(self._write_step(stored), player_id)]

        return self._gated(lambda now: self._guard(request, handler, now), now)

    def join(
        self, request: int, raw_nickname: object, player_id: str, token_hash: str, now: Now, device_hash: str = ""
    ) -> list[Effect]:
        """A player joins: their row must be durable and their shard placed before the join is answered."""
        state = self.state
        try:
            nickname, key = state.check_join(raw_nickname, device_hash, self.rng, self._joining)
        except QuizroomError as exc:
            return [Refuse(request, exc.with_traceback(None))]  # a kept traceback would be a reference cycle
        self._joining += 1
        shard, place = self.seating.assign()
        state.reserve_nickname(nickname)
        player = Player(player_id, nickname, key, token_hash, now.wall_ms, device_hash=device_hash)
        pending = PendingJoin(request, player, shard)
        step = self._write_step(lambda written, now: self._join_stored(pending, written, now))
        effects: list[Effect] = [StorePlayer(step, pending.player, shard)]
        if shard not in self.seating.homes:
            self._placing_joins.setdefault(shard, []).append(pending)
        if place:
            effects.append(PlaceShard(shard))
        return effects

    def resume(self, request: int, token_hash: str) -> list[Effect]:
        """Where a player's socket goes now: the worker holding their shard."""
        player = self.state.player_by_token(token_hash)
        if player is None:
            error = Kicked("you were removed from this game") if token_hash in self.revoked else Unauthorized()
            return [Refuse(request, error)]
        home = self.seating.homes.get(self.shard_of.get(player.player_id, 0))
        if home is None:
            return [Refuse(request, Unavailable("your shard is being placed again; try again"))]
        return [Reply(request, Whereabouts(player.player_id, home.worker_id))]

    # --- inputs: the shards -------------------------------------------------------------------------------------

    def placed(self, shard: int, worker_id: str | None, now: Now) -> list[Effect]:
        """A shard the machine asked for has its home (or `None`: the placement failed, its joins with it)."""
        effects: list[Effect] = []
        if worker_id is None:
            self.seating.not_placed(shard)
            effects.append(Log("error", "shard_not_placed", {"shard": shard}))
        else:
            self.seating.placed(shard, worker_id)
            effects += self._catch_up(shard, now)
        for pending in self._placing_joins.pop(shard, []):
            pending.unplaced = worker_id is None
            effects += self._settle_join(pending, now)
        return effects

    def moved(self, shard: int, worker_id: str, now: Now) -> list[Effect]:
        """A shard placed again on another worker (its own died): it hears who coordinates it, catches up with the
        phase (what was sent to its old home meanwhile is lost), and hears of a close in flight."""
        self.seating.moved(shard, worker_id)
        effects: list[Effect] = [ToShard(shard, Announce()), *self._catch_up(shard, now)]
        closing = self._closing
        if closing is not None and shard in closing.waiting:
            close = ToShard(shard, CloseQuestion(closing.index))
            if close not in effects:  # the catch-up sent it already: the room's phase is past the question
                effects.append(close)
        return effects

    def announce_all(self, now: Now) -> list[Effect]:
        """Every shard hears who coordinates it and the open question again (events may have been lost)."""
        effects: list[Effect] = []
        for shard in list(self.seating.homes):
            effects.append(ToShard(shard, Announce()))
            effects += self._catch_up(shard, now)
        return effects

    def progress(self, shard: int, summary: ShardSummary, check: bool, now: Now) -> list[Effect]:
        if not self.seating.report(shard, summary):
            return []
        effects = self._mark(now, players=True, answers=True)
        if check:  # an answer settled or a player left, never merely a player arriving
            effects += self._maybe_everyone_answered(now)
        return effects

    def shard_closed(self, shard: int, index: int, now: Now) -> list[Effect]:
        closing = self._closing
        if closing is None or closing.index != index:
            return []  # a late report of an earlier question, or of a close that was overdue
        closing.waiting.discard(shard)
        if closing.waiting:
            return []
        return [Disarm(Timer.CLOSE_WAIT), *self._reveal(now)]

    def summaries(self, fresh: dict[int, ShardSummary]) -> None:
        """Summaries asked of local shards just now (a host's welcome, a state call): fresher than their reports."""
        for shard, summary in fresh.items():
            self.seating.report(shard, summary)

    # --- queries ------------------------------------------------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """(players, connected, answered to the open question), summed over the shards."""
        connected, answered = self.seating.counts(self.state.question_index)
        return len(self.state.players), connected, answered

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        players, connected, answered = self.counts()
        return {
            "pin": state.pin,
            "room_id": state.room_id,
            "phase": str(state.phase),
            "question_index": state.question_index,
            "question_count": len(state.quiz.questions),
            "players": players,
            "connected": connected,
            "answers": answered if state.question_index is not None else 0,
            "locked": state.locked,
            "deadline_ms": state.deadline_ms if state.phase is Phase.QUESTION else None,
            "shards": len(self.seating.homes),
            "auto_advance": state.options.auto_advance,
            "intro_ms": state.options.intro_ms,
            "friendly_names": state.options.friendly_names,
        }

    def host_welcome(self, now: Now) -> dict[str, Any]:
        """Everything a host's screen shows, in every phase: a host that reloads at a reveal gets the counts and
        the leaderboard back, at the end the podium, during a "get ready" pause the pause."""
        message = messages.host_welcome_message(self.state, now.wall_ms, self.snapshot())
        state = self.state
        reveal = self._last_reveal
        if state.phase is Phase.REVEAL and reveal is not None and reveal.index == state.question_index:
            board = reveal.board
            question = state.quiz.questions[reveal.index]
            message["result"] = messages.host_result(question, reveal.index, reveal.result_seq, board)
            message["leaderboard"] = board
        if state.phase is Phase.FINISHED and self._last_finish is not None:
            message["podium"] = self._last_finish.podium
        if self._intro is not None:
            message["get_ready"] = messages.get_ready(state, self._intro[0], state.options.intro_ms, now.wall_ms)
        return message

    # --- transitions --------------------------------------------------------------------------------------------

    def _gated(self, job: Job, now: Now) -> list[Effect]:
        """Run `job` now, or after the transition in flight."""
        if self.busy:
            self._deferred.append(job)
            return []
        return job(now)

    @staticmethod
    def _guard(request: int, handler: Callable[[int, Now], list[Effect]], now: Now) -> list[Effect]:
        try:
            return handler(request, now)
        except QuizroomError as exc:
            return [Refuse(request, exc.with_traceback(None))]  # a kept traceback would be a reference cycle

    def _end_transition(self, now: Now) -> list[Effect]:
        self.busy = False
        effects: list[Effect] = []
        while self._deferred and not self.busy:
            effects += self._deferred.popleft()(now)
        effects += self._maybe_everyone_answered(now)  # a report that came during the transition was not acted on
        return effects + self._alone(now)

    def _write_step(self, then: AfterWrite) -> int:
        self._steps += 1
        self._after_write[self._steps] = then
        return self._steps

    def _persist(self, then: AfterWrite) -> list[Effect]:
        state = self.state
        record = PhaseRecord(str(state.phase), state.question_index, state.opened_at_ms, state.locked, state.seq)

        def logged(written: Written, now: Now) -> list[Effect]:
            ok = written is Written.DURABLE
            effects: list[Effect] = [] if ok else [Log("error", "room_state_not_stored", {"phase": record.phase})]
            return effects + then(written, now)

        return [Persist(self._write_step(logged), record)]

    def _query(
        self, then: AfterView, *, question: int | None, choices: int, through: int | None, top: int
    ) -> list[Effect]:
        self._steps += 1
        self._after_view[self._steps] = then
        return [QueryView(self._steps, question, choices, through, top)]

    def _reply_state(self, request: int | None) -> list[Effect]:
        """The state to the caller (none when the room moved on by itself) and to every host."""
        snapshot = self.snapshot()
        reply: list[Effect] = [] if request is None else [Reply(request, snapshot)]
        return [*reply, ToHosts(messages.state(snapshot))]

    # --- phases -------------------------------------------------------------------------------------------------

    def _start(self, request: int, now: Now) -> list[Effect]:
        if self.state.phase is not Phase.LOBBY:
            raise BadPhase(f"cannot start in phase {self.state.phase}")

        def start(now: Now) -> list[Effect]:
            self.state.start(now.mono, now.wall_ms)
            return self._open_question(request, now)

        return self._get_ready(0, start, now)

    def _next(self, request: int | None, now: Now) -> list[Effect]:
        state = self.state
        if state.phase is not Phase.REVEAL or state.question_index is None:
            raise BadPhase(f"cannot go to the next question in phase {state.phase}")
        if state.question_index + 1 >= len(state.quiz.questions):
            state.advance(now.mono, now.wall_ms)  # finishes the room
            return self._finish(request, now)

        def advance(now: Now) -> list[Effect]:
            state.advance(now.mono, now.wall_ms)
            return self._open_question(request, now)

        return self._get_ready(state.question_index + 1, advance, now)

    def _get_ready(self, index: int, then: Job, now: Now) -> list[Effect]:
        """The room option `intro_ms`: everyone sees "get ready" (and the question's text) for that long, then the
        question opens and its timer starts. Nothing is stored for the pause and the room is busy through it, so
        commands wait; the command itself is answered once the question is open."""
        intro_ms = self.state.options.intro_ms
        if intro_ms <= 0:
            return then(now)
        self.busy = True
        self._intro = (index, then)
        ready = messages.get_ready(self.state, index, intro_ms, now.wall_ms)
        return [
            *self._alone(now),
            ToShards(GetReady(index, intro_ms)),
            ToHosts(ready),
            Arm(Timer.INTRO, intro_ms / 1000),
        ]

    def _intro_over(self, now: Now) -> list[Effect]:
        if self._intro is None:
            return []
        then = self._intro[1]
        self._intro = None
        return then(now)

    def _alone(self, now: Now) -> list[Effect]:
        """Arm the auto-advance timer while an `auto_advance` room sits in a settled reveal with no host; disarm it
        otherwise. A host who comes back, even for a moment, starts the count again when they leave."""
        state = self.state
        wanted = (
            state.options.auto_advance
            and self.hosts == 0
            and state.phase is Phase.REVEAL
            and not self.busy
            and self._intro is None
        )
        if wanted and not self._alone_armed:
            self._alone_armed = True
            return [Arm(Timer.AUTO_ADVANCE, self.settings.auto_advance_after_s)]
        if not wanted and self._alone_armed:
            self._alone_armed = False
            return [Disarm(Timer.AUTO_ADVANCE)]
        return []

    def _alone_due(self, now: Now) -> list[Effect]:
        self._alone_armed = False

        def advance(now: Now) -> list[Effect]:
            state = self.state
            if not (state.options.auto_advance and self.hosts == 0 and state.phase is Phase.REVEAL):
                return self._alone(now)
            log = Log("info", "auto_advance", {"question": state.question_index})
            return [log, *self._next(None, now)]

        return self._gated(advance, now)

    def _open_question(self, request: int | None, now: Now) -> list[Effect]:
        state = self.state
        question = state.current_question
        index = state.question_index
        assert question is not None and index is not None
        seq = state.next_seq()
        self.busy = True

        def stored(written: Written, now: Now) -> list[Effect]:
            self.seating.opened(index)
            effects: list[Effect] = [
                ToShards(OpenQuestion(index, state.opened_at_ms, seq, self._elapsed_ms(now))),
                ToHosts(messages.question_message(state, question, seq, now.wall_ms, with_correct=True)),
                *self._arm_deadline(now),
                *self._mark(now, answers=True),
                *self._reply_state(request),
            ]
            return effects + self._end_transition(now)

        return self._persist(stored)

    def _arm_deadline(self, now: Now) -> list[Effect]:
        state = self.state
        self._deadline_for = state.question_index
        delay = max(0.0, state.seconds_left(now.mono) + state.limits.grace_ms / 1000)
        return [Arm(Timer.DEADLINE, delay)]

    def _deadline_due(self, now: Now) -> list[Effect]:
        index, self._deadline_for = self._deadline_for, None
        state = self.state

        def close(now: Now) -> list[Effect]:
            if state.phase is Phase.QUESTION and state.question_index == index:
                return self._close_question(None, now)
            return []

        if state.phase is not Phase.QUESTION or state.question_index != index:
            return []
        return self._gated(close, now)

    def _close_command(self, request: int, now: Now) -> list[Effect]:
        if self.state.phase is not Phase.QUESTION:
            raise BadPhase(f"cannot close in phase {self.state.phase}")
        return self._close_question(request, now)

    def _close_question(self, request: int | None, now: Now, *, then_finish: bool = False) -> list[Effect]:
        """question → reveal: every shard stops taking answers now; reveal once each reports them durable."""
        state = self.state
        if state.phase is not Phase.QUESTION or state.question_index is None:
            return []
        self._deadline_for = None
        state.close()
        self.busy = True
        index = state.question_index
        waiting = set(self.seating.homes)
        self._closing = Closing(index, waiting, request, then_finish)
        effects: list[Effect] = [Disarm(Timer.DEADLINE), ToShards(CloseQuestion(index))]
        if not waiting:
            return effects + self._reveal(now)
        return [*effects, Arm(Timer.CLOSE_WAIT, self.settings.close_wait_s)]

    def _close_overdue(self, now: Now) -> list[Effect]:
        closing = self._closing
        if closing is None:
            return []
        log = Log("warning", "reveal_without_shards", {"question": closing.index, "shards": sorted(closing.waiting)})
        return [log, *self._reveal(now)]

    def _reveal(self, now: Now) -> list[Effect]:
        closing = self._closing
        assert closing is not None
        self._closing = None
        state = self.state
        index, request = closing.index, closing.request
        question = state.quiz.questions[index]

        def got(view: View, now: Now) -> list[Effect]:
            result_seq = state.next_seq()
            board_seq = state.next_seq()
            counts, tally = messages.reveal_counts(question, view)
            board = messages.leaderboard(index, board_seq, list(view.top), counts, view.answered, view.players, tally)
            result = messages.host_result(question, index, result_seq, board)

            def stored(written: Written, now: Now) -> list[Effect]:
                self._last_reveal = RevealQuestion(index, result_seq, board, view.histogram)
                effects: list[Effect] = [
                    ToShards(self._last_reveal),
                    ToHosts(result),
                    ToHosts(board),
                ]
                if closing.then_finish:
                    state.finish()
                    return effects + self._finish(request, now)
                if request is not None:
                    effects += self._reply_state(request)
                return effects + self._end_transition(now)

            return self._persist(stored)

        return self._query(got, question=index, choices=len(question.choices), through=index, top=messages.TOP_N)

    def _end(self, request: int, now: Now) -> list[Effect]:
        state = self.state
        if state.phase is Phase.FINISHED:
            raise BadPhase("the game has already finished")
        if state.phase is Phase.QUESTION:
            return self._close_question(request, now, then_finish=True)
        state.finish()
        return self._finish(request, now)

    def _finish(self, request: int | None, now: Now) -> list[Effect]:
        """The room has finished (in its state): the podium is read, stored and sent."""
        state = self.state
        self._deadline_for = None
        self.busy = True
        seq = state.next_seq()

        def got(view: View, now: Now) -> list[Effect]:
            podium = list(view.top)

            def stored(written: Written, now: Now) -> list[Effect]:
                self.finished_at = now.mono
                self._last_finish = FinishRoom(seq, podium, view.histogram, state.question_index)
                effects: list[Effect] = [
                    ToShards(self._last_finish),
                    ToHosts(messages.host_finished(seq, podium)),
                ]
                if request is not None:
                    effects += self._reply_state(request)
                return effects + self._end_transition(now)

            return self._persist(stored)

        query = self._query(got, question=None, choices=0, through=state.question_index, top=messages.PODIUM_N)
        return [Disarm(Timer.DEADLINE), *query]

    def _set_locked(self, request: int, now: Now, locked: bool) -> list[Effect]:
        self.state.set_locked(locked)
        self.busy = True

        def stored(written: Written, now: Now) -> list[Effect]:
            return self._reply_state(request) + self._end_transition(now)

        return self._persist(stored)

    def _maybe_everyone_answered(self, now: Now) -> list[Effect]:
        state = self.state
        if self.busy or state.phase is not Phase.QUESTION:
            return []
        if self.seating.everyone_answered(state.question_index):
            return self._close_question(None, now)
        return []

    def _elapsed_ms(self, now: Now) -> int:
        """How long the open question has been open, by this coordinator's monotonic clock."""
        return max(0, round((now.mono - self.state.opened_at_mono) * 1000))

    def _catch_up(self, shard: int, now: Now) -> list[Effect]:
        """A shard placed, moved or found after a takeover catches up with the room's phase.

        Events sent to a shard's old home (a dead worker's channel) are lost, and a shard loaded from storage or
        kept in memory on a live worker may be older than this coordinator: without this its players never see the
        question that opened meanwhile, only the `finished` that follows once the link is right again. Every event
        is idempotent, so a shard already up to date ignores them.
        """
        state = self.state
        index = state.question_index
        if state.phase is Phase.QUESTION and index is not None:
            return [ToShard(shard, OpenQuestion(index, state.opened_at_ms, state.seq, self._elapsed_ms(now)))]
        if state.phase is Phase.REVEAL and index is not None:
            effects: list[Effect] = [ToShard(shard, CloseQuestion(index))]
            if self._last_reveal is not None and self._last_reveal.index == index:
                effects.append(ToShard(shard, self._last_reveal))
            return effects
        if state.phase is Phase.FINISHED and self._last_finish is not None:
            return [ToShard(shard, self._last_finish)]
        return []

    # --- joins --------------------------------------------------------------------------------------------------

    def _join_stored(self, pending: PendingJoin, written: Written, now: Now) -> list[Effect]:
        pending.stored = written is Written.DURABLE
        pending.refused = written is Written.REFUSED
        return self._settle_join(pending, now)

    def _settle_join(self, pending: PendingJoin, now: Now) -> list[Effect]:
        """Answer a join once its row's write and its shard's placement have both come back."""
        state, player, shard = self.state, pending.player, pending.shard
        home = self.seating.homes.get(shard)
        if pending.stored is None or (home is None and not pending.unplaced and pending.stored):
            return []  # waiting for the write, or (stored) for the placement
        waiting = self._placing_joins.get(shard)
        if waiting is not None and pending in waiting:
            waiting.remove(pending)
        self._joining -= 1  # answered now, one way or the other
        if not pending.stored or home is None:
            self.seating.unassign(shard)
            effects: list[Effect] = []
            if pending.stored:  # stored, but its shard has no home: void the row (the nickname stays held)
                effects.append(StoreKick(None, player.player_id))
            else:
                state.release_nickname(player.nickname)
            error: QuizroomError = Unavailable("could not store the player; try again")
            if pending.refused:
                error = NicknameTaken(f"the nickname {player.nickname!r} is taken")
            return [*effects, Refuse(pending.request, error)]
        state.add_player(player)
        self.shard_of[player.player_id] = shard
        copy = Player(
            player.player_id,
            player.nickname,
            player.nickname_key,
            player.token_hash,
            player.joined_at_ms,
            device_hash=player.device_hash,
        )
        self.feed.joined.append({"player_id": player.player_id, "nickname": player.nickname})
        return [
            ToShard(shard, AddPlayer(copy)),
            *self._mark(now, players=True),
            Reply(pending.request, Joined(player.player_id, player.nickname, home.worker_id)),
        ]

    # --- the host feed ------------------------------------------------------------------------------------------

    def _mark(self, now: Now, *, players: bool = False, answers: bool = False) -> list[Effect]:
        answers = answers and self.state.phase is Phase.QUESTION
        delay = self.feed.mark(now.mono, players=players, answers=answers)
        return [] if delay is None else [Arm(Timer.FEED, delay)]

    def _flush(self, now: Now) -> list[Effect]:
        state = self.state
        players, connected, answered = self.counts()
        question = state.question_index if state.phase is Phase.QUESTION else None
        frames = self.feed.flush(now.mono, players=players, connected=connected, answered=answered, question=question)
        return [ToHosts(frame) for frame in frames]


__all__ = ["CLOSE_WAIT_S", "COMMANDS", "Home", "RoomProtocol", "Settings", "field"]
