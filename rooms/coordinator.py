"""A room's coordinator: the one actor that decides the room's phase, wherever its shards live.

It owns what must be one for the whole room: the phase and its deadline timer, `seq`, the lock, joins (nickname
uniqueness, capacity, which shard a player goes to), kicks, the host sockets and their feed, and the merged view
(counts, leaderboard, ranks, podium). Players' sockets and answers belong to the shards (`quizroom.rooms.actor`),
reached through links (`quizroom.rooms.links`) that are local in one process and `NOTIFY` messages across workers.

The output gate holds as before sharding: a question, a reveal or the end is stored before any shard hears of it,
and a reveal waits until every live shard reports its answers to the question durable. (A close goes out first, so
that every shard stops taking answers at once; the reveal that follows it is what gets stored.) The merged view is
then a query (`Storage.room_view`): scores are sums of stored answers, so what a dead shard acknowledged is counted
and nothing it did not is. See docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from quizroom.rooms.actor import ActorLimits
from quizroom.rooms.game import messages
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import (
    BadPhase,
    Kicked,
    NotFound,
    QuizroomError,
    Unauthorized,
    Unavailable,
    UnknownType,
)
from quizroom.rooms.game.rules import Phase, Player, RoomState
from quizroom.rooms.hostdesk import HostDesk
from quizroom.rooms.hostfeed import HostFeed
from quizroom.rooms.inbox import Inbox
from quizroom.rooms.links import Finish, Reveal, ShardSummary
from quizroom.rooms.sessions import (
    CLOSE_GOING_AWAY,
    Connection,
    Session,
    hash_token,
)
from quizroom.rooms.shards import Placement, ShardHome, Shards
from quizroom.rooms.telemetry import NullTelemetry, Telemetry
from quizroom.rooms.views import leaderboard_of, read_view, top_entries
from quizroom.storage.base import Storage
from quizroom.storage.records import KickRow, PlayerRow, RoomStateRow, RoomView
from quizroom.storage.writer import GroupCommitWriter

T = TypeVar("T")

CLOSE_WAIT_S = 3.0
"""How long a reveal waits for a shard that neither reports nor is known dead (its acked answers count anyway)."""


@dataclass(frozen=True, slots=True)
class JoinResult:
    player_id: str
    token: str
    nickname: str
    worker_id: str  # the worker holding the player's shard: `ws_url` points there


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """Where a player's socket must go now (the resume call)."""

    player_id: str
    worker_id: str


class Coordinator:
    def __init__(
        self,
        state: RoomState,
        writer: GroupCommitWriter,
        storage: Storage,
        clock: Clock,
        limits: ActorLimits,
        placement: Placement,
        *,
        shard_of: dict[str, int] | None = None,
        revoked_tokens: set[str] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.state = state
        self.writer = writer
        self.storage = storage
        self.clock = clock
        self.limits = limits
        self.placement = placement
        self.log = structlog.get_logger("quizroom.room").bind(pin=state.pin, room_id=state.room_id, role="coordinator")
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self.finished_at: float | None = None
        self._shard_of = shard_of or {}
        self._revoked = revoked_tokens or set()
        self._inbox = Inbox(f"room-{state.pin}", self.log)
        self.post = self._inbox.post
        self.shards = Shards(
            limits.players_per_shard,
            lambda shard: asyncio.ensure_future(placement.place(self, shard)),
            self.post,
            self._apply_phase,
            self.log,
        )
        self.homes = self.shards.homes
        self._timer: asyncio.TimerHandle | None = None
        self._in_transition = False
        self._deferred: list[Callable[[], None]] = []
        self._closing: tuple[int, set[int], Callable[[], None]] | None = None
        self._last_reveal: Reveal | None = None  # resent to a shard that catches up (`_apply_phase`)
        self._last_finish: Finish | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.desk = HostDesk(
            clock, limits, self.telemetry, post=self.post, command=self.command, kick=self.kick, state=self._snapshot
        )
        self.feed = HostFeed(state, clock, limits.host_coalesce_s, self.post, self.desk.broadcast, self._counts)

    @property
    def pin(self) -> str:
        return self.state.pin

    @property
    def room_id(self) -> str:
        return self.state.room_id

    @property
    def worker_id(self) -> str:
        return self.placement.worker_id

    def local_stats(self) -> dict[str, Any]:
        """The `stats` block of `GET /api/rooms/{pin}`: sockets and answers as this worker's shards counted them."""
        shards = [home.local for home in self.homes.values() if home.local is not None]
        broadcasts = [a.stats.last_broadcast_s for a in shards if a.stats.last_broadcast_s is not None]
        return {
            "sockets_connected": sum(len(a.sessions) for a in shards),
            "hosts_connected": len(self.hosts),
            "answers_accepted": sum(a.stats.answers_accepted for a in shards),
            "answers_duplicate": sum(a.stats.answers_duplicate for a in shards),
            "last_broadcast_ms": round(max(broadcasts) * 1000, 3) if broadcasts else None,
            "shards": len(self.homes),
            "shards_here": len(shards),
        }

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._inbox.start()
        if self.state.phase is Phase.QUESTION:
            self.post(self._arm_deadline)
        if self.state.phase is Phase.FINISHED:
            self.finished_at = self.clock.monotonic()

    async def stop(self, close_code: int = CLOSE_GOING_AWAY) -> None:
        """Close the host sockets and end the task. The shards are the registry's to stop."""

        def shutdown(future: asyncio.Future[None]) -> None:
            self.desk.close_all(close_code)
            self._cancel_timer()
            if self._close_timer is not None:
                self._close_timer.cancel()
            self.feed.cancel()
            future.set_result(None)

        if self._inbox.running:
            await self._inbox.ask(shutdown)
        await self._inbox.close()

    def adopt(self, home: ShardHome) -> None:
        """A shard placed again (its worker died) joins the room: it hears who coordinates it, and a close in
        flight. It was loaded from storage, which holds the phase it must be in."""

        def job() -> None:
            shard = home.link.shard
            self.shards.replace(home)
            home.link.announce(self.placement.worker_id)
            self._apply_phase(home)  # what was sent to its old home meanwhile is lost
            if self._closing is not None and shard in self._closing[1]:
                home.link.close_question(self._closing[0])

        self.post(job)

    def announce_all(self) -> None:
        """Every shard hears who coordinates it and the open question again (events may have been lost)."""
        for home in self.homes.values():
            home.link.announce(self.placement.worker_id)
            self._apply_phase(home)

    def _gated(self, job: Callable[[], None]) -> None:
        """Run a command now, or after the transition in flight (a close waiting on shards, a broadcast)."""
        if self._in_transition:
            self._deferred.append(job)
        else:
            job()

    def _end_transition(self) -> None:
        self._in_transition = False
        while self._deferred and not self._in_transition:
            self._deferred.pop(0)()
        self._maybe_everyone_answered()  # a shard's report that came during the transition was not acted on

    # --- HTTP-facing calls --------------------------------------------------------------------------------------

    def is_host(self, token: str) -> bool:
        return secrets.compare_digest(hash_token(token), self.state.host_token_hash)

    async def join(self, raw_nickname: object) -> JoinResult:
        def job(future: asyncio.Future[JoinResult]) -> None:
            state = self.state
            nickname, key = state.check_join(raw_nickname)
            shard = self.shards.assign()
            state.reserve_nickname(nickname)
            token = secrets.token_urlsafe(32)
            player = Player(secrets.token_hex(8), nickname, key, hash_token(token), self.clock.wall_ms())
            row = PlayerRow(
                state.room_id, player.player_id, nickname, key, player.token_hash, player.joined_at_ms, shard=shard
            )
            committed = self.writer.add_player(row)
            placed = self.shards.home_of(shard)

            def on_commit() -> None:
                if committed.exception() is not None or placed.exception() is not None:
                    self.shards.unassign(shard)
                    if committed.exception() is None:  # stored, but its shard has no home: void the row
                        self.writer.add_kick(KickRow(state.room_id, player.player_id))  # (the nickname stays held)
                    else:
                        state.release_nickname(nickname)
                    future.set_exception(Unavailable("could not store the player; try again"))
                    return
                home = placed.result()
                state.add_player(player)
                self._shard_of[player.player_id] = shard
                home.link.add_player(Player(player.player_id, nickname, key, player.token_hash, player.joined_at_ms))
                self.feed.joined.append({"player_id": player.player_id, "nickname": nickname})
                self.feed.mark(players=True)
                future.set_result(JoinResult(player.player_id, token, nickname, home.link.worker_id))

            if placed.done():  # the common case: no gather (a join storm makes thousands of these)
                committed.add_done_callback(lambda _: self.post(on_commit))
            else:
                both = asyncio.gather(committed, placed, return_exceptions=True)
                both.add_done_callback(lambda _: self.post(on_commit))

        return await self._inbox.ask(job)

    def _apply_phase(self, home: ShardHome) -> None:
        """A shard placed, moved or found after a takeover catches up with the room's phase.

        Events sent to a shard's old home (a dead worker's channel) are lost, and a shard loaded from storage or
        kept in memory on a live worker may be older than this coordinator: without this its players would never
        see the question that opened meanwhile (only the `finished` that follows, once the link is right again).
        Every event is idempotent, so a shard already up to date ignores them.
        """
        state = self.state
        index = state.question_index
        if state.phase is Phase.QUESTION and index is not None:
            home.link.open_question(index, state.opened_at_ms, state.seq)
        elif state.phase is Phase.REVEAL and index is not None:
            home.link.close_question(index)
            if self._last_reveal is not None and self._last_reveal.index == index:
                home.link.reveal(self._last_reveal)
        elif state.phase is Phase.FINISHED and self._last_finish is not None:
            home.link.finish(self._last_finish)

    async def resume(self, token: str) -> Whereabouts:
        token_hash = hash_token(token)

        def job(future: asyncio.Future[Whereabouts]) -> None:
            player = self.state.player_by_token(token_hash)
            if player is None:
                raise Kicked("you were removed from this game") if token_hash in self._revoked else Unauthorized()
            home = self.homes.get(self._shard_of.get(player.player_id, 0))
            if home is None:
                raise Unavailable("your shard is being placed again; try again")
            future.set_result(Whereabouts(player.player_id, home.link.worker_id))

        return await self._inbox.ask(job)

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
        # No fresh summaries first (a round trip through every local shard): a question must not wait for them.
        return await self._inbox.ask(lambda future: self._gated(lambda: self._guard(handler, future)))

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
            shard = self._shard_of.pop(player_id, 0)
            self.shards.unassign(shard)
            self.feed.left.append({"player_id": player_id, "nickname": player.nickname})
            committed = self.writer.add_kick(KickRow(self.state.room_id, player_id))

            def after() -> None:
                home = self.homes.get(shard)  # now: the shard may have moved while the kick was committed
                if home is not None:
                    home.link.kick(player_id)
                self.feed.mark(players=True, answers=True)
                if committed.exception() is not None:
                    future.set_exception(Unavailable("storage is unavailable; try again"))
                else:
                    future.set_result(None)

            committed.add_done_callback(lambda _: self.post(after))

        await self._inbox.ask(lambda future: self._gated(lambda: self._guard(handler, future)))

    async def snapshot(self) -> dict[str, Any]:
        fresh = await self.shards.fetch_local()

        def job(future: asyncio.Future[dict[str, Any]]) -> None:
            self.shards.apply(fresh)
            future.set_result(self._snapshot())

        return await self._inbox.ask(job)

    def connected(self) -> int:
        """Player sockets open on the room's shards, as they last reported (read outside the actor: a number)."""
        return self.shards.counts(None)[0]

    def _counts(self) -> tuple[int, int, int]:
        """(players, connected, answered to the open question), summed over the shards."""
        connected, answered = self.shards.counts(self.state.question_index)
        return len(self.state.players), connected, answered

    def _snapshot(self) -> dict[str, Any]:
        state = self.state
        players, connected, answered = self._counts()
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
            "shards": len(self.homes),
        }

    async def leaderboard(self, limit: int) -> list[dict[str, Any]]:  # a query: any worker answers it
        state = self.state
        return await leaderboard_of(self.storage, state.room_id, state.phase, state.question_index, limit)

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
        index = state.question_index
        assert question is not None and index is not None
        seq = state.next_seq()
        self._in_transition = True

        def broadcast() -> None:
            for home in self.homes.values():
                home.summary = ShardSummary(connected=home.summary.connected, question=index)
                home.link.open_question(index, state.opened_at_ms, seq)
            self.desk.broadcast(
                messages.question_message(state, question, seq, self.clock.wall_ms(), with_correct=True)
            )
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
        self._timer = loop.call_later(delay, lambda: self.post(lambda: self._on_deadline(index)))

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
        """question → reveal: every shard stops taking answers now; reveal once each reports them durable."""
        if self.state.phase is not Phase.QUESTION:
            return
        self._cancel_timer()
        self.state.close()
        self._in_transition = True
        index = self.state.question_index
        assert index is not None

        def reveal() -> None:
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self._closing = None
            self._reveal(index, future, then_finish=then_finish)

        waiting = set(self.homes)
        self._closing = (index, waiting, reveal)
        for home in list(self.homes.values()):
            home.link.close_question(index)
        if not waiting:
            reveal()
            return
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(CLOSE_WAIT_S, lambda: self.post(lambda: self._close_overdue(index)))

    def on_closed(self, shard: int, index: int) -> None:
        closing = self._closing
        if closing is None or closing[0] != index:
            return
        closing[1].discard(shard)
        if not closing[1]:
            closing[2]()

    def _close_overdue(self, index: int) -> None:
        closing = self._closing
        if closing is not None and closing[0] == index:
            self.log.warning("reveal_without_shards", question=index, shards=sorted(closing[1]))
            closing[1].clear()
            closing[2]()

    def _reveal(self, index: int, future: asyncio.Future[dict[str, Any]] | None, *, then_finish: bool) -> None:
        state = self.state
        question = state.quiz.questions[index]

        def got(view: RoomView) -> None:
            result_seq = state.next_seq()
            board_seq = state.next_seq()
            counts = list(view.counts)
            board = {
                "type": "leaderboard",
                "seq": board_seq,
                "question": index,
                "top": top_entries(view),
                "counts": counts,
                "answered": view.answered,
                "players": view.players,
            }
            host_result = {
                "type": "result",
                "seq": result_seq,
                "question": index,
                "correct": sorted(question.correct),
                "counts": counts,
                "answered": view.answered,
                "players": view.players,
            }

            def broadcast() -> None:
                event = self._last_reveal = Reveal(index, result_seq, board, view.histogram)
                for home in self.homes.values():
                    home.link.reveal(event)
                self.desk.broadcast(host_result)
                self.desk.broadcast(board)
                if then_finish:
                    state.finish()
                    self._broadcast_finished(future)
                    return
                if future is not None:
                    self._reply_state(future)
                self._end_transition()

            self._persist(broadcast)

        self._query_view(got, question=index, choices=len(question.choices), through=index, top=messages.TOP_N)

    def _query_view(
        self, then: Callable[[RoomView], None], *, question: int | None, choices: int, through: int | None, top: int
    ) -> None:
        """Read the merged view (`quizroom.rooms.views`), then run `then` in the actor."""
        read = read_view(
            self.storage,
            self.state.room_id,
            question=question,
            choices=choices,
            through=through,
            top=top,
            players=len(self.state.players),
        )
        asyncio.ensure_future(read).add_done_callback(lambda f: self.post(lambda: then(f.result())))

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

        def got(view: RoomView) -> None:
            podium = top_entries(view)

            def broadcast() -> None:
                self.finished_at = self.clock.monotonic()
                event = self._last_finish = Finish(seq, podium, view.histogram, state.question_index)
                for home in self.homes.values():
                    home.link.finish(event)
                self.desk.broadcast({"type": "finished", "seq": seq, "podium": podium})
                if future is not None:
                    self._reply_state(future)
                self._end_transition()

            self._persist(broadcast)

        self._query_view(got, question=None, choices=0, through=state.question_index, top=messages.PODIUM_N)

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
            self.post(then)

        committed.add_done_callback(done)

    def _reply_state(self, future: asyncio.Future[dict[str, Any]]) -> None:
        snapshot = self._snapshot()
        if not future.done():
            future.set_result(snapshot)
        self.desk.broadcast({"type": "state", **snapshot})

    # --- from the shards ----------------------------------------------------------------------------------------

    def on_progress(self, shard: int, summary: ShardSummary, check: bool) -> None:
        home = self.homes.get(shard)
        if home is None:
            return
        home.summary = summary
        home.heard = True
        self.feed.mark(players=True, answers=True)
        if check:  # as in one room: an answer settled or a player left, never merely a player arriving
            self._maybe_everyone_answered()

    def _maybe_everyone_answered(self) -> None:
        state = self.state
        if self._in_transition or state.phase is not Phase.QUESTION:
            return
        if self.shards.everyone_answered(state.question_index):
            self._close_question(None)

    # --- host sockets -------------------------------------------------------------------------------------------

    async def attach_host(self, conn: Connection, token: str) -> Session:
        if not self.is_host(token):
            raise Unauthorized()
        fresh = await self.shards.fetch_local()

        def job(future: asyncio.Future[Session]) -> None:
            self.shards.apply(fresh)
            welcome = messages.host_welcome_message(self.state, self.clock.wall_ms(), self._snapshot())
            future.set_result(self.desk.add(conn, welcome))

        return await self._inbox.ask(job)

    attach = attach_host

    def detach(self, session: Session) -> None:
        self.post(lambda: self.desk.remove(session))

    def deliver(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        self.post(lambda: self.desk.on_message(session, message))

    @property
    def hosts(self) -> set[Session]:
        return self.desk.hosts
