"""A room's shard: one asyncio task that owns up to `players_per_shard` players' sockets and answers.

Everything that touches a shard — socket messages, its coordinator's events, commit completions — is posted into
its inbox (`quizroom.rooms.actors.inbox`) and run one at a time by its task: no locks, no interleaving inside a
rule. Nothing that depends on a write leaves the shard before that write has committed (the *output gate*): an
`answer_ack` is sent only from the commit's completion, and the phase events it applies were stored first.

A shard never decides a phase. Its coordinator opens, closes, reveals and finishes (`quizroom.rooms.game.events`);
the shard applies each event to its players: the question frame, `too_late` after the close (and after the
deadline, by its own clock, even if the coordinator is unreachable), each player's result ranked against the whole
room. The rules live in `RoomState` (pure), holding this shard's players only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from quizroom.rooms.actors.answers import AnswerDesk, Sends
from quizroom.rooms.actors.inbox import Inbox
from quizroom.rooms.actors.limits import ActorLimits
from quizroom.rooms.actors.ports import CoordinatorPort
from quizroom.rooms.actors.screening import Handle, Screen, Verdict, send_verdict
from quizroom.rooms.actors.sessions import Connection, Session, encode, hash_token
from quizroom.rooms.actors.telemetry import NullTelemetry, RoomStats, Telemetry
from quizroom.rooms.game import messages
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.closes import CLOSE_FINISHED, CLOSE_GOING_AWAY, CLOSE_KICKED, CLOSE_MOVED, CLOSE_REPLACED
from quizroom.rooms.game.errors import Kicked, Moved, QuizroomError, Unauthorized
from quizroom.rooms.game.events import (
    AddPlayer,
    Announce,
    CloseQuestion,
    FinishRoom,
    GetReady,
    KickPlayer,
    OpenQuestion,
    RevealQuestion,
    ShardClosed,
    ShardEvent,
    ShardProgress,
    ShardSummary,
)
from quizroom.rooms.game.ratelimit import TokenBucket
from quizroom.rooms.game.rules import Phase, Player, RoomState
from quizroom.rooms.game.scoring import Ranking
from quizroom.storage.records import Outcome, ScoreRow
from quizroom.storage.writer import GroupCommitWriter


class Shard:
    """One shard of a room (a room of up to `players_per_shard` players is one shard)."""

    def __init__(
        self,
        state: RoomState,
        writer: GroupCommitWriter,
        clock: Clock,
        limits: ActorLimits,
        *,
        shard: int = 0,
        coordinator: CoordinatorPort | None = None,
        revoked_tokens: set[str] | None = None,
        telemetry: Telemetry | None = None,
        final: FinishRoom | None = None,
        epoch: int = 0,
    ) -> None:
        self.state = state
        self.shard = shard
        self.writer = writer
        self.clock = clock
        self.limits = limits
        self.coordinator = coordinator  # where reports go; the registry repoints it when the room moves
        self.coordinator_epoch = 0  # the newest coordinator lease heard from: older coordinators are ignored
        self.log = structlog.get_logger("quizroom.room").bind(pin=state.pin, room_id=state.room_id, shard=shard)
        self.sessions: dict[str, Session] = {}
        self.finished_at: float | None = None
        self._revoked = revoked_tokens or set()
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self.stats = RoomStats()
        self._inbox = Inbox(f"room-{state.pin}-shard-{shard}", self.log)
        self.post = self._inbox.post
        self._after_pending: list[int] = []  # questions whose close waits for their pending answers
        self._revealed: int | None = None  # the question whose results went out
        self._last_reveal: RevealQuestion | None = None  # its leaderboard, for a welcome at the reveal
        self._ready: dict[str, Any] | None = None  # the "get ready" pause in progress, for a welcome during it
        self._final = final  # the podium and ranking, once finished
        self._progress_timer: asyncio.TimerHandle | None = None
        self._grace_timer: asyncio.TimerHandle | None = None  # when the last dropped player stops counting
        self._last_progress = 0.0
        self._reported: ShardSummary | None = None
        self._check = False  # the next progress report asks the coordinator to check for an early close
        self.screen = Screen(clock, limits.abuse_strikes, limits.garbage_strikes, self.telemetry)
        self.answers = AnswerDesk(state, writer, clock, self.telemetry, self.stats, shard=shard, epoch=epoch)

    def follow(self, coordinator: CoordinatorPort, epoch: int) -> bool:
        """Report to `coordinator` from now on, unless this shard has heard from a newer lease epoch already."""
        if epoch < self.coordinator_epoch:
            return False
        self.coordinator, self.coordinator_epoch = coordinator, epoch
        return True

    @property
    def fenced(self) -> bool:
        """Another copy of this shard owns its players now (a commit said so): this one has let go of everything
        and must not be used again; the registry loads a fresh copy if this worker is given the shard back."""
        return self.answers.fenced

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._inbox.start()
        if self.state.phase is Phase.FINISHED:
            self.finished_at = self.clock.monotonic()
            return
        # None of its players' sockets is here yet, and any of them may be on its way (a failover, a restart):
        # they count as playing for the reconnect grace, so the early close does not leave them out.
        now = self.clock.monotonic()
        for player in self.state.players.values():
            player.left_at = now
        if self.state.players:
            self._grace_after_departure()

    def _grace_after_departure(self) -> None:
        """A player dropped: once the grace is over, look again whether everyone still here has answered."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        delay = self.state.limits.reconnect_grace_s + 0.01
        self._grace_timer = asyncio.get_running_loop().call_later(
            delay, lambda: self.post(lambda: self._progress(check=True))
        )

    async def stop(self, close_code: int = CLOSE_GOING_AWAY) -> None:
        """Close every socket with `close_code` (1001 on shutdown: clients reconnect) and end the task."""

        def shutdown(future: asyncio.Future[None]) -> None:
            for session in list(self.sessions.values()):
                self._close_session(session, close_code)
            for timer in (self._progress_timer, self._grace_timer):
                if timer is not None:
                    timer.cancel()
            future.set_result(None)

        if self._inbox.running:
            await self._inbox.ask(shutdown)
        await self._inbox.close()

    # --- the coordinator's events (each runs in the shard's task; each is idempotent) -----------------------------

    def receive(self, event: ShardEvent) -> None:
        """An event from the coordinator enters the shard."""
        self.post(lambda: self.apply(event))

    def apply(self, event: ShardEvent) -> None:
        if self.fenced:
            return
        match event:
            case AddPlayer(player):
                if player.player_id not in self.state.players:
                    self.state.add_player(player)
            case GetReady(index, intro_ms):
                self._get_ready(index, intro_ms)
            case OpenQuestion(index, opened_at_ms, seq, elapsed_ms):
                self._open(index, opened_at_ms, seq, elapsed_ms)
            case CloseQuestion(index):
                self._close(index)
            case RevealQuestion():
                self._reveal(event)
            case FinishRoom():
                self._finish(event)
            case KickPlayer(player_id):
                self._kick(player_id)
            case Announce():
                self.report()

    def _get_ready(self, index: int, intro_ms: int) -> None:
        if self.state.phase is Phase.FINISHED:
            return
        self._ready = messages.get_ready(self.state, index, intro_ms, self.clock.wall_ms())
        frame = encode(self._ready)
        for session in self.sessions.values():
            session.conn.send(frame)

    def _open(self, index: int, opened_at_ms: int, seq: int, elapsed_ms: int | None = None) -> None:
        state = self.state
        if state.phase is Phase.FINISHED or (state.phase is Phase.QUESTION and state.question_index == index):
            return
        self._ready = None
        question = state.open_at(index, opened_at_ms, self.clock.monotonic(), self.clock.wall_ms(), elapsed_ms)
        state.seq = max(state.seq, seq)
        began = self.clock.monotonic()
        frame = encode(messages.question_message(state, question, seq, self.clock.wall_ms(), with_correct=False))
        for session in self.sessions.values():
            session.conn.send(frame)
        self.stats.last_broadcast_s = self.clock.monotonic() - began
        self.telemetry.broadcast(self.stats.last_broadcast_s, len(self.sessions))
        self._progress()

    def _close(self, index: int) -> None:
        """Stop taking answers to `index`; report `closed` once every answer already taken is durable."""
        state = self.state
        if state.phase is Phase.QUESTION and state.question_index == index:
            state.close()
        if state.pending_for(index):
            self._after_pending.append(index)
        else:
            self._report_closed(index)

    def _report_closed(self, index: int) -> None:
        if self.coordinator is not None:
            self.coordinator.send(ShardClosed(self.shard, index))

    def _reveal(self, event: RevealQuestion) -> None:
        state = self.state
        index = event.index
        if self._revealed == index or state.phase is Phase.FINISHED:
            return
        if state.phase is Phase.QUESTION and state.question_index == index:
            state.close()  # a shard loaded after the close heard of it only now
        self._revealed = index
        self._last_reveal = event
        if event.histogram is not None:
            state.ranking = Ranking(event.histogram)
        state.seq = max(state.seq, int(event.board["seq"]))
        # No score rows here: the game reads scores only as sums of stored answers, and a write of every
        # player's row at each reveal was the commit in flight that the host's next `next` queued behind.
        board = encode(event.board)
        for player_id, session in self.sessions.items():
            player = state.players.get(player_id)
            if player is None:
                session.conn.send(board)
                continue
            result = encode(self._result(player, event))
            session.conn.send_many((result, board))  # one write per socket, the result first

    def _result(self, player: Player, event: RevealQuestion) -> dict[str, Any]:
        state = self.state
        behind = messages.behind(state.visible_score(player), state.score_above(player), event.board["top"])
        return messages.result_message(state, player, state.rank_of(player), event.result_seq, event.index, behind)

    def _welcome(self, player: Player) -> dict[str, Any]:
        """What a (re)connecting player's screen needs: at a reveal their result and the leaderboard again."""
        state = self.state
        event = self._last_reveal
        reveal = None
        if state.phase is Phase.REVEAL and event is not None and event.index == state.question_index:
            reveal = (self._result(player, event), event.board)
        ready = self._ready
        if ready is not None and ready["opens_at_ms"] <= self.clock.wall_ms():
            ready = None
        return messages.welcome_message(state, player, self.clock.wall_ms(), reveal=reveal, ready=ready)

    def _finish(self, event: FinishRoom) -> None:
        state = self.state
        if state.phase is Phase.FINISHED and self._final is not None:
            return
        if state.phase is not Phase.FINISHED:
            state.finish()
        if event.histogram is not None:
            state.ranking = Ranking(event.histogram)
        state.seq = max(state.seq, event.seq)
        self._final = event
        self.finished_at = self.clock.monotonic()
        # The final totals, denormalised into `players` for whoever reads the database; nothing reads them back.
        self.writer.save_scores(
            [
                ScoreRow(state.room_id, p.player_id, p.score, p.streak, self.answers.epoch)
                for p in state.players.values()
            ]
        )
        for player_id, session in list(self.sessions.items()):
            player = state.players.get(player_id)
            if player is not None:
                session.conn.send(encode(self._finished_message(player)))
            self._close_session(session, CLOSE_FINISHED)
        self.sessions.clear()

    def _finished_message(self, player: Player) -> dict[str, Any]:
        assert self._final is not None
        final = self._final
        return messages.finished(final.seq, final.podium, player.score, self.state.rank_of(player))

    def _kick(self, player_id: str) -> None:
        player = self.state.players.get(player_id)
        if player is None:
            return
        self.state.remove_player(player_id)
        self._revoked.add(player.token_hash)
        self.answers.forget_player(player_id)
        session = self.sessions.pop(player_id, None)
        if session is not None:
            self._close_session(session, CLOSE_KICKED)
        self._progress(check=True)

    # --- how the shard stands -------------------------------------------------------------------------------------

    @property
    def connected(self) -> int:
        return len(self.sessions)

    @property
    def players(self) -> int:
        return len(self.state.players)

    async def summary(self) -> ShardSummary:
        return await self._inbox.ask(lambda f: f.set_result(self._summary()))

    def _summary(self) -> ShardSummary:
        state = self.state
        index = state.question_index
        answered = len(state.answers_to(index)) if index is not None else 0
        return ShardSummary(state.connected_count, index, answered, not state.still_answering(self.clock.monotonic()))

    def _progress(self, *, check: bool = False) -> None:
        """Tell the coordinator how the shard stands: at once when it may close early, else at most 10 a second
        (twice a second to a coordinator on another worker: `report_every_s`).

        Cheap on purpose: it runs on every attach, detach and commit, and a summary is a pass over the shard's
        players. Only an answer settling or a player leaving (`check`) looks at once whether everyone answered;
        otherwise the summary is taken when the timer fires.
        """
        if self.coordinator is None:
            return
        self._check |= check
        if check and self.state.everyone_answered(self.clock.monotonic()):
            self._send_progress()
            return
        if self._progress_timer is not None:
            return
        every = max(self.limits.progress_interval_s, self.coordinator.report_every_s)
        wait = max(0.0, self._last_progress + every - self.clock.monotonic())
        loop = asyncio.get_running_loop()
        self._progress_timer = loop.call_later(wait, lambda: self.post(self._send_progress))

    def report(self) -> None:
        """Send the summary now, changed or not (a coordinator that just took over asks for it)."""
        self._reported = None
        self._send_progress()

    def _send_progress(self) -> None:
        if self._progress_timer is not None:
            self._progress_timer.cancel()
            self._progress_timer = None
        self._last_progress = self.clock.monotonic()
        summary = self._summary()
        if (summary != self._reported or self._check) and self.coordinator is not None:
            self._reported = summary
            self.coordinator.send(ShardProgress(self.shard, summary, self._check))
            self._check = False

    # --- sockets ------------------------------------------------------------------------------------------------

    def knows(self, token_hash: str) -> bool:
        return self.state.player_by_token(token_hash) is not None or token_hash in self._revoked

    async def attach(self, conn: Connection, token: str) -> Session:
        token_hash = hash_token(token)

        def job(future: asyncio.Future[Session]) -> None:
            if self.fenced:
                raise Moved("your shard is on another worker")
            player = self.state.player_by_token(token_hash)
            if player is None:
                raise Kicked("you were removed from this game") if token_hash in self._revoked else Unauthorized()
            old = self.sessions.get(player.player_id)
            if old is not None:
                self._close_session(old, CLOSE_REPLACED)
            now = self.clock.monotonic()
            session = Session(conn, TokenBucket(self.limits.rate_per_s, self.limits.rate_burst, now), player.player_id)
            conn.send(encode(self._welcome(player)))
            if self.state.phase is Phase.FINISHED:
                if self._final is not None:
                    conn.send(encode(self._finished_message(player)))
                session.open = False
                conn.close(CLOSE_FINISHED)
                future.set_result(session)
                return
            self.sessions[player.player_id] = session
            player.connected = 1
            self._progress()
            future.set_result(session)

        return await self._inbox.ask(job)

    def detach(self, session: Session) -> None:
        def job() -> None:
            session.open = False
            if session.player_id is not None and self.sessions.get(session.player_id) is session:
                del self.sessions[session.player_id]
                player = self.state.players.get(session.player_id)
                if player is not None:
                    self._departed(player)
                self._progress(check=True)

        self.post(job)

    def _close_session(self, session: Session, code: int) -> None:
        if session.open:
            session.open = False
            session.conn.close(code)
        if session.player_id is not None:
            if self.sessions.get(session.player_id) is session:
                del self.sessions[session.player_id]
            player = self.state.players.get(session.player_id)
            if player is not None and session.player_id not in self.sessions:
                self._departed(player)

    def _departed(self, player: Player) -> None:
        player.connected = 0
        player.left_at = self.clock.monotonic()
        if self.state.phase is Phase.QUESTION:
            self._grace_after_departure()

    def deliver(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        """A message from a socket (or the transport's refusal of it) enters the shard."""
        self.post(lambda: self._on_message(session, message))

    def _on_message(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        if self.fenced:
            self._close_session(session, CLOSE_MOVED)
            return
        verdict = self.screen.check(session, message)
        if isinstance(verdict, Handle):
            verdict = self._handle(session, verdict)
        self._carry_out(session, verdict)

    def _handle(self, session: Session, message: Handle) -> Verdict:
        if message.kind != "answer":
            return self.screen.unknown(session, message.kind)
        try:
            taken = self.answers.submit(session, message.message)
        except QuizroomError as exc:
            return self.screen.refuse(session, exc)
        self.screen.handled(session)
        self._send(taken.sends)
        if taken.watch is not None:
            batch = taken.watch
            batch.add_done_callback(lambda _: self.post(lambda: self._committed(batch)))
        if taken.settled:
            self._answers_settled()
        return None

    def _carry_out(self, session: Session, verdict: Verdict) -> None:
        code = send_verdict(session, verdict)
        if code is not None:
            self._close_session(session, code)

    @staticmethod
    def _send(sends: Sends) -> None:
        for session, frame in sends:
            if session.open:
                session.conn.send(frame)

    # --- answers ------------------------------------------------------------------------------------------------

    def _committed(self, batch: asyncio.Future[Outcome]) -> None:
        self._send(self.answers.committed(batch))
        if self.answers.fenced:
            self._let_go()
            return
        self._answers_settled()

    def _let_go(self) -> None:
        """Fenced: send nothing more, to anyone. Every socket is closed with 4421, so its client asks where the
        shard is now and resends its answer there; the coordinator hears nothing more from this copy."""
        if self.coordinator is None and not self.sessions:
            return
        self.log.warning("shard_fenced", epoch=self.answers.epoch, sockets=len(self.sessions))
        self.coordinator = None
        if self._progress_timer is not None:
            self._progress_timer.cancel()
            self._progress_timer = None
        for session in list(self.sessions.values()):
            self._close_session(session, CLOSE_MOVED)

    def _answers_settled(self) -> None:
        """After a commit (or a durable repeat): finish a close that waited, tell the coordinator."""
        index = self.state.question_index
        if self._after_pending and (index is None or not self.state.pending_for(index)):
            waited, self._after_pending = self._after_pending, []
            for closed in waited:
                self._report_closed(closed)
        self._progress(check=True)
