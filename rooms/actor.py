"""The room actor: one asyncio task that owns a live room.

Everything that touches a room — HTTP commands, socket messages, timers, commit completions — is posted into the
actor's inbox as a closure and run one at a time by the actor's task (the *input gate*): no locks, no interleaving
inside a rule. Nothing that depends on a write leaves the room before that write has committed (the *output gate*):
an `answer_ack` is sent only from the commit's completion, and phase changes are broadcast after the room's new
state is stored, so a crash can never show players something the restarted room does not know.

The rules live in `RoomState` (pure); this module only moves bytes, arms timers and talks to the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from quizroom.rooms import wire
from quizroom.rooms.answers import AnswerDesk
from quizroom.rooms.clock import Clock
from quizroom.rooms.errors import (
    BadMessage,
    BadPhase,
    Kicked,
    NotFound,
    QuizroomError,
    RateLimited,
    TooBig,
    Unauthorized,
    Unavailable,
    UnknownType,
)
from quizroom.rooms.hostfeed import HostFeed
from quizroom.rooms.ratelimit import TokenBucket
from quizroom.rooms.sessions import (
    CLOSE_FINISHED,
    CLOSE_GOING_AWAY,
    CLOSE_KICKED,
    CLOSE_POLICY,
    CLOSE_RATE_ABUSE,
    CLOSE_REPLACED,
    CLOSE_TOO_BIG,
    Connection,
    Session,
    encode,
    hash_token,
)
from quizroom.rooms.state import Phase, Player, RoomLimits, RoomState
from quizroom.rooms.telemetry import NullTelemetry, RoomStats, Telemetry
from quizroom.storage.records import KickRow, PlayerRow, RoomStateRow, ScoreRow
from quizroom.storage.writer import GroupCommitWriter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ActorLimits:
    room: RoomLimits = field(default_factory=RoomLimits)
    rate_per_s: float = 20.0
    rate_burst: float = 40.0
    abuse_strikes: int = 40  # consecutive rate-limited messages before the socket is closed with 4429
    garbage_strikes: int = 20  # consecutive malformed messages before the socket is closed with 1008
    host_coalesce_s: float = 0.1  # host `players`/`answers` updates: at most 10 a second


@dataclass(frozen=True, slots=True)
class JoinResult:
    player_id: str
    token: str
    nickname: str


class RoomActor:
    def __init__(
        self,
        state: RoomState,
        writer: GroupCommitWriter,
        clock: Clock,
        limits: ActorLimits,
        *,
        revoked_tokens: set[str] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.state = state
        self.writer = writer
        self.clock = clock
        self.limits = limits
        self.log = structlog.get_logger("quizroom.room").bind(pin=state.pin, room_id=state.room_id)
        self.sessions: dict[str, Session] = {}
        self.hosts: set[Session] = set()
        self.finished_at: float | None = None
        self._revoked = revoked_tokens or set()
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self.stats = RoomStats()
        self._inbox: deque[Callable[[], None]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_transition = False
        self._deferred: deque[Callable[[], None]] = deque()
        self._after_pending: list[Callable[[], None]] = []
        self.answers = AnswerDesk(
            state,
            writer,
            clock,
            self.telemetry,
            self.stats,
            post=self._post,
            error=self._error,
            settled=self._answers_settled,
        )
        self.feed = HostFeed(state, clock, limits.host_coalesce_s, self._post, self._to_hosts)

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"room-{self.state.pin}")
        if self.state.phase is Phase.QUESTION:
            self._post(self._arm_deadline)
        if self.state.phase is Phase.FINISHED:
            self.finished_at = self.clock.monotonic()

    async def stop(self, close_code: int = CLOSE_GOING_AWAY) -> None:
        """Close every socket with `close_code` (1001 on shutdown: clients reconnect) and end the task."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def shutdown() -> None:
            for session in [*self.sessions.values(), *self.hosts]:
                self._close_session(session, close_code)
            self._cancel_timer()
            self.feed.cancel()
            done.set_result(None)

        self._post(shutdown)
        await done
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        inbox = self._inbox
        while True:
            await self._wake.wait()
            self._wake.clear()
            while inbox:
                job = inbox.popleft()
                try:
                    job()
                except Exception:
                    self.log.exception("room_job_failed")

    def _post(self, job: Callable[[], None]) -> None:
        self._inbox.append(job)
        self._wake.set()

    async def _ask(self, job: Callable[[asyncio.Future[T]], None]) -> T:
        """Run `job` in the actor; it settles the future now or later (after a commit)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def run() -> None:
            try:
                job(future)
            except QuizroomError as exc:
                if not future.done():
                    future.set_exception(exc)

        self._post(run)
        return await future

    def _gated(self, job: Callable[[], None]) -> None:
        """Run a command now, or after the transition in flight (a close waiting on commits, a broadcast)."""
        if self._in_transition:
            self._deferred.append(job)
        else:
            job()

    def _end_transition(self) -> None:
        self._in_transition = False
        while self._deferred and not self._in_transition:
            self._deferred.popleft()()

    # --- HTTP-facing calls ------------------------------------------------------------------------------------------

    def is_host(self, token: str) -> bool:
        return secrets.compare_digest(hash_token(token), self.state.host_token_hash)

    async def join(self, raw_nickname: object) -> JoinResult:
        def job(future: asyncio.Future[JoinResult]) -> None:
            nickname, key = self.state.check_join(raw_nickname)
            token = secrets.token_urlsafe(32)
            player = Player(
                player_id=secrets.token_hex(8),
                nickname=nickname,
                nickname_key=key,
                token_hash=hash_token(token),
                joined_at_ms=self.clock.wall_ms(),
            )
            self.state.reserve_nickname(key)
            row = PlayerRow(self.state.room_id, player.player_id, nickname, key, player.token_hash, player.joined_at_ms)
            committed = self.writer.add_player(row)

            def on_commit(_: asyncio.Future[None]) -> None:
                if committed.exception() is not None:
                    self.state.release_nickname(key)
                    future.set_exception(Unavailable("could not store the player; try again"))
                    return
                self.state.add_player(player)
                self.feed.joined.append({"player_id": player.player_id, "nickname": nickname})
                self.feed.mark(players=True)
                future.set_result(JoinResult(player.player_id, token, nickname))

            committed.add_done_callback(lambda f: self._post(lambda: on_commit(f)))

        return await self._ask(job)

    async def command(self, name: str) -> dict[str, Any]:
        """Host commands: start, close, next, end, lock, unlock. Replies with the room's state once it took effect."""
        handlers: dict[str, Callable[[asyncio.Future[dict[str, Any]]], None]] = {
            "start": self._start,
            "close": self._close_command,
            "next": self._next,
            "end": self._end,
            "lock": lambda f: self._set_locked(f, True),
            "unlock": lambda f: self._set_locked(f, False),
        }
        handler = handlers.get(name)
        if handler is None:
            raise UnknownType(f"unknown command {name!r}")
        return await self._ask(lambda future: self._gated(lambda: self._guard(handler, future)))

    @staticmethod
    def _guard(handler: Callable[[asyncio.Future[T]], None], future: asyncio.Future[T]) -> None:
        try:
            handler(future)
        except QuizroomError as exc:
            if not future.done():
                future.set_exception(exc)

    async def kick(self, player_id: str) -> None:
        def handler(future: asyncio.Future[None]) -> None:
            if player_id not in self.state.players:
                raise NotFound("no such player in this room")
            player = self.state.remove_player(player_id)
            self._revoked.add(player.token_hash)
            self.answers.forget_player(player_id)
            self.feed.left.append({"player_id": player_id, "nickname": player.nickname})
            committed = self.writer.add_kick(KickRow(self.state.room_id, player_id))

            def after() -> None:
                session = self.sessions.pop(player_id, None)
                if session is not None:
                    self._close_session(session, CLOSE_KICKED)
                self.feed.mark(players=True, answers=True)
                self._maybe_everyone_answered()
                self._settle(future, committed, None)

            committed.add_done_callback(lambda _: self._post(after))

        await self._ask(lambda future: self._gated(lambda: self._guard(handler, future)))

    async def snapshot(self) -> dict[str, Any]:
        return await self._ask(lambda f: f.set_result(self.state.snapshot()))

    async def leaderboard(self, limit: int) -> list[dict[str, Any]]:
        return await self._ask(lambda f: f.set_result([wire.entry(s) for s in self.state.standings()[:limit]]))

    async def results(self) -> dict[str, Any]:
        return await self._ask(lambda f: f.set_result(wire.results_document(self.state)))

    # --- phases -------------------------------------------------------------------------------------------------

    def _start(self, future: asyncio.Future[dict[str, Any]]) -> None:
        self.state.start(self.clock.monotonic(), self.clock.wall_ms())
        self._open_question(future)

    def _next(self, future: asyncio.Future[dict[str, Any]]) -> None:
        question = self.state.advance(self.clock.monotonic(), self.clock.wall_ms())
        if question is None:
            self._broadcast_finished(future)
        else:
            self._open_question(future)

    def _open_question(self, future: asyncio.Future[dict[str, Any]]) -> None:
        state = self.state
        question = state.current_question
        assert question is not None
        seq = state.next_seq()
        self._in_transition = True

        def broadcast() -> None:
            began = self.clock.monotonic()
            now_ms = self.clock.wall_ms()
            frame = encode(wire.question_message(state, question, seq, now_ms, with_correct=False))
            for session in self.sessions.values():
                session.conn.send(frame)
            self.stats.last_broadcast_s = self.clock.monotonic() - began
            self.telemetry.broadcast(self.stats.last_broadcast_s, len(self.sessions))
            self._to_hosts(wire.question_message(state, question, seq, now_ms, with_correct=True))
            self._arm_deadline()
            self.feed.mark(answers=True)
            self._reply_state(future)
            self._end_transition()

        self._persist(broadcast)

    def _arm_deadline(self) -> None:
        self._cancel_timer()
        index = self.state.question_index
        delay = max(0.0, self.state.seconds_left(self.clock.monotonic()) + self.limits.room.grace_ms / 1000)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, lambda: self._post(lambda: self._on_deadline(index)))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self, index: int | None) -> None:
        if self.state.phase is Phase.QUESTION and self.state.question_index == index:
            self._gated(lambda: self._close_question(None) if self.state.question_index == index else None)

    def _close_command(self, future: asyncio.Future[dict[str, Any]]) -> None:
        if self.state.phase is not Phase.QUESTION:
            raise BadPhase(f"cannot close in phase {self.state.phase}")
        self._close_question(future)

    def _close_question(self, future: asyncio.Future[dict[str, Any]] | None, *, then_finish: bool = False) -> None:
        """question → reveal: stop taking answers now, reveal once every answer already taken is durable."""
        if self.state.phase is not Phase.QUESTION:
            return
        self._cancel_timer()
        self.state.close()
        self._in_transition = True
        index = self.state.question_index
        assert index is not None

        def reveal() -> None:
            self._reveal(index, future, then_finish=then_finish)

        if self.state.pending_for(index):
            self._after_pending.append(reveal)
        else:
            reveal()

    def _reveal(self, index: int, future: asyncio.Future[dict[str, Any]] | None, *, then_finish: bool) -> None:
        state = self.state
        result_seq = state.next_seq()
        board_seq = state.next_seq()
        standings = state.standings()
        ranks = {s.player.player_id: s.rank for s in standings}
        scores = [ScoreRow(state.room_id, p.player_id, p.score, p.streak) for p in state.players.values()]
        self.writer.save_scores(scores)

        def broadcast() -> None:
            for player_id, session in self.sessions.items():
                player = state.players.get(player_id)
                if player is not None:
                    session.conn.send(encode(wire.result_message(state, player, ranks[player_id], result_seq, index)))
            board = wire.leaderboard_message(state, standings, board_seq, index)
            frame = encode(board)
            for session in self.sessions.values():
                session.conn.send(frame)
            self._to_hosts(wire.host_result_message(state, result_seq, index))
            self._to_hosts(board)
            if then_finish:
                state.finish()
                self._broadcast_finished(future)
                return
            if future is not None:
                self._reply_state(future)
            self._end_transition()

        self._persist(broadcast)

    def _end(self, future: asyncio.Future[dict[str, Any]]) -> None:
        if self.state.phase is Phase.FINISHED:
            raise BadPhase("the game has already finished")
        if self.state.phase is Phase.QUESTION:
            self._close_question(future, then_finish=True)
            return
        self.state.finish()
        self._broadcast_finished(future)

    def _broadcast_finished(self, future: asyncio.Future[dict[str, Any]] | None) -> None:
        state = self.state
        self._cancel_timer()
        self._in_transition = True
        seq = state.next_seq()
        standings = state.standings()
        ranks = {s.player.player_id: s for s in standings}
        podium = wire.podium(standings)
        self.writer.save_scores(
            [ScoreRow(state.room_id, p.player_id, p.score, p.streak) for p in state.players.values()]
        )

        def broadcast() -> None:
            self.finished_at = self.clock.monotonic()
            for player_id, session in list(self.sessions.items()):
                standing = ranks.get(player_id)
                if standing is not None:
                    session.conn.send(encode(wire.finished_message(seq, podium, standing)))
                self._close_session(session, CLOSE_FINISHED)
            self.sessions.clear()
            self._to_hosts({"type": "finished", "seq": seq, "podium": podium})
            if future is not None:
                self._reply_state(future)
            self._end_transition()

        self._persist(broadcast)

    def _set_locked(self, future: asyncio.Future[dict[str, Any]], locked: bool) -> None:
        self.state.set_locked(locked)
        self._in_transition = True

        def reply() -> None:
            self._reply_state(future)
            self._end_transition()

        self._persist(reply)

    def _persist(self, then: Callable[[], None]) -> None:
        """Store the room's phase, then run `then` in the actor (the output gate for phase events).

        If storage stays down past the writer's patience the event goes out anyway: the game must not hang, and
        what a crash could lose then is the phase, which the host can redo — never an acknowledged answer.
        """
        state = self.state
        row = RoomStateRow(
            state.room_id, str(state.phase), state.question_index, state.opened_at_ms, state.locked, state.seq
        )
        committed = self.writer.save_room(row)

        def done(f: asyncio.Future[None]) -> None:
            if f.exception() is not None:
                self.log.error("room_state_not_stored", phase=str(state.phase))
            self._post(then)

        committed.add_done_callback(done)

    def _reply_state(self, future: asyncio.Future[dict[str, Any]]) -> None:
        snapshot = self.state.snapshot()
        if not future.done():
            future.set_result(snapshot)
        self._to_hosts({"type": "state", **snapshot})

    @staticmethod
    def _settle(future: asyncio.Future[None], committed: asyncio.Future[None], value: None) -> None:
        if future.done():
            return
        if committed.exception() is not None:
            future.set_exception(Unavailable("storage is unavailable; try again"))
        else:
            future.set_result(value)

    # --- sockets ------------------------------------------------------------------------------------------------

    async def attach_player(self, conn: Connection, token: str) -> Session:
        token_hash = hash_token(token)

        def job(future: asyncio.Future[Session]) -> None:
            player = self.state.player_by_token(token_hash)
            if player is None:
                raise Kicked("you were removed from this game") if token_hash in self._revoked else Unauthorized()
            old = self.sessions.get(player.player_id)
            if old is not None:
                self._close_session(old, CLOSE_REPLACED)
            now = self.clock.monotonic()
            session = Session(conn, TokenBucket(self.limits.rate_per_s, self.limits.rate_burst, now), player.player_id)
            conn.send(encode(wire.welcome_message(self.state, player, self.clock.wall_ms())))
            if self.state.phase is Phase.FINISHED:
                standing = next(s for s in self.state.standings() if s.player is player)
                conn.send(encode(wire.finished_message(self.state.seq, wire.podium(self.state.standings()), standing)))
                session.open = False
                conn.close(CLOSE_FINISHED)
                future.set_result(session)
                return
            self.sessions[player.player_id] = session
            player.connected = 1
            self.feed.mark(players=True)
            future.set_result(session)

        return await self._ask(job)

    async def attach_host(self, conn: Connection, token: str) -> Session:
        if not self.is_host(token):
            raise Unauthorized()

        def job(future: asyncio.Future[Session]) -> None:
            session = Session(conn, TokenBucket(self.limits.rate_per_s, self.limits.rate_burst, self.clock.monotonic()))
            self.hosts.add(session)
            conn.send(encode(wire.host_welcome_message(self.state, self.clock.wall_ms())))
            future.set_result(session)

        return await self._ask(job)

    def detach(self, session: Session) -> None:
        def job() -> None:
            session.open = False
            if session.player_id is None:
                self.hosts.discard(session)
                return
            if self.sessions.get(session.player_id) is session:
                del self.sessions[session.player_id]
                player = self.state.players.get(session.player_id)
                if player is not None:
                    player.connected = 0
                self.feed.mark(players=True)
                self._maybe_everyone_answered()

        self._post(job)

    def _close_session(self, session: Session, code: int) -> None:
        if session.open:
            session.open = False
            session.conn.close(code)
        if session.player_id is not None:
            if self.sessions.get(session.player_id) is session:
                del self.sessions[session.player_id]
            player = self.state.players.get(session.player_id)
            if player is not None and session.player_id not in self.sessions:
                player.connected = 0

    def deliver(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        """A message from a socket (or the transport's refusal of it) enters the room."""
        self._post(lambda: self._on_message(session, message))

    def _admit(self, session: Session) -> bool:
        """The per-socket token bucket; persistent abuse closes the socket with 4429."""
        if session.bucket.allow(self.clock.monotonic()):
            session.strikes = 0
            return True
        session.strikes += 1
        self.telemetry.rate_limited()
        if session.strikes > self.limits.abuse_strikes:
            self._close_session(session, CLOSE_RATE_ABUSE)
        else:
            self._error(session, RateLimited("slow down: too many messages"))
        return False

    def _on_message(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        if not session.open:
            return
        if isinstance(message, TooBig):
            self._error(session, message)
            self._close_session(session, CLOSE_TOO_BIG)
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
            elif session.player_id is None:
                self._on_host_message(session, kind, message)
            elif kind == "answer":
                self.answers.submit(session, message)
            elif kind == "hello":
                raise BadMessage("already said hello")
            elif not isinstance(kind, str):
                raise BadMessage("a message needs a string `type`")
            else:
                raise UnknownType(f"unknown message type {kind!r}")
        except QuizroomError as exc:
            self._refuse(session, exc)
            return
        session.garbage = 0

    def _refuse(self, session: Session, exc: QuizroomError) -> None:
        """Send the error; a socket that sends nothing but malformed messages is closed with 1008 (policy)."""
        if isinstance(exc, BadMessage | UnknownType):
            session.garbage += 1
            if session.garbage > self.limits.garbage_strikes:
                self._close_session(session, CLOSE_POLICY)
                return
        self._error(session, exc)

    def _on_host_message(self, session: Session, kind: object, message: dict[str, Any]) -> None:
        if kind == "kick":
            player_id = message.get("player_id")
            if not isinstance(player_id, str):
                raise BadMessage("kick needs a `player_id`")
            kicked = asyncio.ensure_future(self.kick(player_id))
            kicked.add_done_callback(lambda t: self._host_reply(session, t))
            return
        if kind in ("start", "close", "next", "end", "lock", "unlock"):
            commanded = asyncio.ensure_future(self.command(str(kind)))
            commanded.add_done_callback(lambda t: self._host_reply(session, t))
            return
        if kind == "hello":
            raise BadMessage("already said hello")
        if not isinstance(kind, str):
            raise BadMessage("a message needs a string `type`")
        raise UnknownType(f"unknown message type {kind!r}")

    def _host_reply(self, session: Session, task: asyncio.Future[Any]) -> None:
        exc = task.exception()
        if isinstance(exc, QuizroomError):
            self._post(lambda: self._error(session, exc))
        elif exc is None and isinstance(task.result(), dict):
            pass  # every command's state already went to all host sockets
        elif exc is None:
            self._post(lambda: session.conn.send(encode({"type": "state", **self.state.snapshot()})))

    def _error(self, session: Session, exc: QuizroomError) -> None:
        self.telemetry.error(exc.code)
        if session.open:
            session.conn.send(encode({"type": "error", "code": exc.code, "message": exc.message}))

    # --- answers ------------------------------------------------------------------------------------------------

    def _answers_settled(self) -> None:
        """After a commit (or a durable repeat): update the host, finish a close that waited, check all-answered."""
        self.feed.mark(answers=True)
        index = self.state.question_index
        if self._after_pending and index is not None and not self.state.pending_for(index):
            pending, self._after_pending = self._after_pending, []
            for job in pending:
                job()
        self._maybe_everyone_answered()

    def _maybe_everyone_answered(self) -> None:
        if not self._in_transition and self.state.everyone_answered():
            self._close_question(None)

    # --- views --------------------------------------------------------------------------------------------------

    def _to_hosts(self, message: dict[str, Any]) -> None:
        if self.hosts:
            frame = encode(message)
            for session in self.hosts:
                session.conn.send(frame)
