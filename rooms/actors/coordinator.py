"""A room's coordinator: the asyncio task that runs the room protocol's effects.

Every decision — phases, deadlines, seats, the early close, the output gate — is the protocol machine's
(`quizroom.rooms.game.protocol`). This shell feeds it the time and its inputs (host calls, the shards' reports,
completions of the writes and reads it asked for, due timers), one at a time in its inbox, and carries out what
it returns: writes through the group-commit writer, reads of the merged view, events to shard links, frames to
host sockets, timers, and the answers to callers. Shards are reached through ports (`quizroom.rooms.actors.ports`)
that are local posts in one process and messages across workers.

Fencing (docs/scaling.md, "Fencing"): the coordinator writes the room's state under its lease's epoch, and a write
refused because a newer coordinator holds the room ends this one at once: it sends nothing more, closes its host
sockets with 4421 and refuses its callers. And while its worker's tenure has lapsed (`quizroom.rooms.actors.tenure`:
no heartbeat lately, so the lease may be someone else's by now) it holds back everything it would send or write,
in order, until a heartbeat renews tenure or shows that the lease was lost.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from quizroom.rooms.actors.hosts import Command, HostDesk
from quizroom.rooms.actors.inbox import Inbox
from quizroom.rooms.actors.limits import ActorLimits
from quizroom.rooms.actors.links import LocalCoordinatorLink
from quizroom.rooms.actors.ports import Placement, ShardPort
from quizroom.rooms.actors.sessions import Connection, Session, hash_token
from quizroom.rooms.actors.telemetry import NullTelemetry, Telemetry
from quizroom.rooms.actors.tenure import Tenure
from quizroom.rooms.actors.views import leaderboard_of, read_view
from quizroom.rooms.game import messages
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.closes import CLOSE_GOING_AWAY, CLOSE_MOVED
from quizroom.rooms.game.effects import (
    Arm,
    Disarm,
    Effect,
    Joined,
    Log,
    Persist,
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
    Whereabouts,
    Written,
)
from quizroom.rooms.game.errors import QuizroomError, Unauthorized, Unavailable
from quizroom.rooms.game.events import CoordinatorEvent, Now, ShardClosed, ShardProgress, ShardSummary
from quizroom.rooms.game.protocol import RoomProtocol
from quizroom.rooms.game.rules import RoomState
from quizroom.storage.base import PlayersRefused, Storage
from quizroom.storage.records import KickRow, Outcome, PlayerRow, RoomStateRow
from quizroom.storage.writer import GroupCommitWriter

__all__ = ["Coordinator", "JoinResult", "Whereabouts"]


@dataclass(frozen=True, slots=True)
class JoinResult:
    player_id: str
    token: str
    nickname: str
    worker_id: str  # the worker holding the player's shard: `ws_url` points there


@dataclass(frozen=True, slots=True)
class HostCaller:
    """A command that came over a host socket: refusals go back to that socket; a kick is answered with `state`."""

    session: Session
    kick: bool


Caller = asyncio.Future[Any] | HostCaller


class Coordinator:
    def __init__(
        self,
        machine: RoomProtocol,
        links: dict[int, ShardPort],
        *,
        writer: GroupCommitWriter,
        storage: Storage,
        clock: Clock,
        limits: ActorLimits,
        placement: Placement,
        telemetry: Telemetry | None = None,
        epoch: int = 0,
        tenure: Tenure | None = None,
    ) -> None:
        self.machine = machine
        self.epoch = epoch  # the coordinator lease's fencing token (0: a server alone)
        self.tenure = tenure or Tenure(clock)
        self.fenced = False  # a newer coordinator holds the room: this one says and writes nothing more
        self._held: list[Effect] = []  # effects waiting their turn (a local shard's, or renewed tenure), in order
        self._yielding = False  # a local shard runs first (see `_run`)
        self._waiting_tenure = False
        self.state: RoomState = machine.state
        self.links = links
        self.writer = writer
        self.storage = storage
        self.clock = clock
        self.placement = placement
        self.log = structlog.get_logger("quizroom.room").bind(pin=self.pin, room_id=self.room_id, role="coordinator")
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self._inbox = Inbox(f"room-{self.pin}", self.log)
        self.post = self._inbox.post
        self.desk = HostDesk(clock, limits, self.telemetry)
        self.port = LocalCoordinatorLink(self.receive)  # how shards in this process report here
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._callers: dict[int, Caller] = {}
        self._work: set[asyncio.Future[None]] = set()  # placements and reads under way
        self._requests = 0

    @property
    def pin(self) -> str:
        return self.state.pin

    @property
    def room_id(self) -> str:
        return self.state.room_id

    @property
    def worker_id(self) -> str:
        return self.placement.worker_id

    @property
    def finished_at(self) -> float | None:
        return self.machine.finished_at

    @property
    def hosts(self) -> set[Session]:
        return self.desk.hosts

    def connected(self) -> int:
        """Player sockets open on the room's shards, as they last reported (read outside the actor: a number)."""
        return self.machine.counts()[1]

    def now(self) -> Now:
        return Now(self.clock.monotonic(), self.clock.wall_ms())

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._inbox.start()
        self.post(lambda: self._run(self.machine.resumed(self.now())))

    async def stop(self, close_code: int = CLOSE_GOING_AWAY) -> None:
        """Close the host sockets and end the task. The shards are the registry's to stop."""

        def shutdown(future: asyncio.Future[None]) -> None:
            self._end(close_code)
            future.set_result(None)

        if self._inbox.running:
            await self._inbox.ask(shutdown)
        await self._inbox.close()

    def depose(self) -> None:
        """The heartbeat found this room's lease lost: say and write nothing from this instant (`_run` returns at
        once), before the stop that follows is queued behind whatever waits in the inbox. One flag, set from the
        event loop between jobs; `stop` then closes the host sockets and drops the rest."""
        self.fenced = True

    def _end(self, close_code: int) -> None:
        """Say nothing more: close the host sockets, drop the timers, and whatever was held back."""
        self.fenced = True
        self._held.clear()
        self.desk.close_all(close_code)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        callers, self._callers = self._callers, {}
        for caller in callers.values():
            if isinstance(caller, asyncio.Future) and not caller.done():
                caller.set_exception(Unavailable("this room's coordinator moved; try again"))

    def _fence(self) -> None:
        """A write was refused: a newer coordinator holds the room (`quizroom.storage.records.Outcome`)."""
        if self.fenced:
            return
        self.log.warning("coordinator_fenced", epoch=self.epoch)
        self._end(CLOSE_MOVED)

    def moved(self, link: ShardPort) -> None:
        """A shard placed again on another worker (its own died) joins the room there."""

        def job() -> None:
            self.links[link.shard] = link
            self._run(self.machine.moved(link.shard, link.worker_id, self.now()))

        self.post(job)

    def announce_all(self) -> None:
        """Every shard hears who coordinates it and the open question again (events may have been lost)."""
        self.post(lambda: self._run(self.machine.announce_all(self.now())))

    def receive(self, event: CoordinatorEvent) -> None:
        """A shard's report enters the coordinator (posted by a local link or by the mailroom)."""
        self.post(lambda: self._run(self._report(event)))

    def _report(self, event: CoordinatorEvent) -> list[Effect]:
        now = self.now()
        if isinstance(event, ShardClosed):
            return self.machine.shard_closed(event.shard, event.index, now)
        assert isinstance(event, ShardProgress)
        return self.machine.progress(event.shard, event.summary, event.check, now)

    # --- calls (each runs in the coordinator's task) --------------------------------------------------------------

    def is_host(self, token: str) -> bool:
        return secrets.compare_digest(hash_token(token), self.state.host_token_hash)

    async def _call(self, start: Callable[[int, Now], list[Effect]]) -> Any:
        """Start a call in the machine; its `Reply` or `Refuse` settles the awaited result."""

        def job(future: asyncio.Future[Any]) -> None:
            self._run(start(self._caller(future), self.now()))

        return await self._inbox.ask(job)

    def _caller(self, caller: Caller) -> int:
        self._requests += 1
        self._callers[self._requests] = caller
        return self._requests

    async def join(self, raw_nickname: object, device: str = "") -> JoinResult:
        """`device`: the id the player's browser keeps (validated by the caller), stored hashed: a kick bars it."""
        token = secrets.token_urlsafe(32)
        player_id, token_hash = secrets.token_hex(8), hash_token(token)
        device_hash = hash_token(device) if device else ""
        joined: Joined = await self._call(
            lambda request, now: self.machine.join(request, raw_nickname, player_id, token_hash, now, device_hash)
        )
        return JoinResult(joined.player_id, token, joined.nickname, joined.worker_id)

    async def resume(self, token: str) -> Whereabouts:
        token_hash = hash_token(token)
        where: Whereabouts = await self._call(lambda request, now: self.machine.resume(request, token_hash))
        return where

    async def command(self, name: str) -> dict[str, Any]:
        """Host commands: start, close, next, end, lock, unlock. Replies with the room's state once it took effect."""
        state: dict[str, Any] = await self._call(lambda request, now: self.machine.command(request, name, now))
        return state

    async def kick(self, player_id: str) -> None:
        await self._call(lambda request, now: self.machine.kick(request, player_id, now))

    async def snapshot(self) -> dict[str, Any]:
        fresh = await self._fetch_local()

        def job(future: asyncio.Future[dict[str, Any]]) -> None:
            self.machine.summaries(fresh)
            future.set_result(self.machine.snapshot())

        return await self._inbox.ask(job)

    async def leaderboard(self, limit: int) -> list[dict[str, Any]]:  # a query: any worker answers it
        state = self.state
        return await leaderboard_of(self.storage, state.room_id, state.phase, state.question_index, limit)

    def local_stats(self) -> dict[str, Any]:
        """The `stats` block of `GET /api/rooms/{pin}`: sockets and answers as this worker's shards counted them."""
        shards = [link.local for link in self.links.values() if link.local is not None]
        broadcasts = [s.stats.last_broadcast_s for s in shards if s.stats.last_broadcast_s is not None]
        return {
            "sockets_connected": sum(s.connected for s in shards),
            "hosts_connected": len(self.hosts),
            "answers_accepted": sum(s.stats.answers_accepted for s in shards),
            "answers_duplicate": sum(s.stats.answers_duplicate for s in shards),
            "last_broadcast_ms": round(max(broadcasts) * 1000, 3) if broadcasts else None,
            "shards": len(self.links),
            "shards_here": len(shards),
        }

    async def _fetch_local(self) -> dict[int, ShardSummary]:
        """Fresh summaries of the shards in this process (each an `ask` of that shard); remote ones report on
        their own."""
        return {shard: await link.local.summary() for shard, link in list(self.links.items()) if link.local}

    # --- host sockets -------------------------------------------------------------------------------------------

    async def attach(self, conn: Connection, token: str) -> Session:
        if not self.is_host(token):
            raise Unauthorized()
        fresh = await self._fetch_local()

        def job(future: asyncio.Future[Session]) -> None:
            self.machine.summaries(fresh)
            future.set_result(self.desk.add(conn, self.machine.host_welcome(self.now())))
            self._run(self.machine.hosts_changed(len(self.desk.hosts), self.now()))

        return await self._inbox.ask(job)

    def detach(self, session: Session) -> None:
        def job() -> None:
            self.desk.remove(session)
            self._run(self.machine.hosts_changed(len(self.desk.hosts), self.now()))

        self.post(job)

    def deliver(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        self.post(lambda: self._host_message(session, message))

    def _host_message(self, session: Session, message: dict[str, Any] | QuizroomError) -> None:
        command = self.desk.check(session, message)
        if command is None:
            return
        request = self._caller(HostCaller(session, kick=command.player_id is not None))
        self._run(self._host_command(request, command))

    def _host_command(self, request: int, command: Command) -> list[Effect]:
        if command.player_id is not None:
            return self.machine.kick(request, command.player_id, self.now())
        return self.machine.command(request, command.name, self.now())

    # --- effects ------------------------------------------------------------------------------------------------

    def _run(self, effects: list[Effect]) -> None:
        """Carry out the machine's effects, in order.

        Two things make the rest of a list wait, still in order. An event handed to a shard in this process only
        runs once this job ends, so what follows it (the host's frames, replies, writes) waits one turn of the loop:
        the players' frames go out before the host's, and a host's next command cannot queue behind a broadcast
        it was answered ahead of. And while the worker's tenure has lapsed, everything but local timers and logs
        is held until a heartbeat renews it (`quizroom.rooms.actors.tenure`)."""
        if self.fenced:
            return
        if self._held or self._yielding or self._waiting_tenure or not self.tenure.holds():
            self._hold(effects)
            return
        for position, effect in enumerate(effects):
            match effect:
                case ToShards(event):
                    for link in list(self.links.values()):
                        link.send(event)
                    if self._yield_after(effects, position, self.links.values()):
                        return
                case ToShard(shard, event):
                    target = self.links.get(shard)
                    if target is not None:
                        target.send(event)
                        if self._yield_after(effects, position, (target,)):
                            return
                case ToHosts(message):
                    self.desk.broadcast(message)
                case Persist(step, record):
                    phase_row = RoomStateRow(
                        self.room_id, record.phase, record.question_index, record.opened_at_ms, record.locked,
                        record.seq, self.epoch,
                    )  # fmt: skip
                    self._then(self.writer.save_room(phase_row), step)
                case StorePlayer(step, player, shard):
                    row = PlayerRow(
                        self.room_id, player.player_id, player.nickname, player.nickname_key, player.token_hash,
                        player.joined_at_ms, shard=shard, device_hash=player.device_hash,
                    )  # fmt: skip
                    self._then(self.writer.add_player(row), step)
                case StoreKick(step, player_id):
                    committed = self.writer.add_kick(KickRow(self.room_id, player_id))
                    if step is not None:
                        self._then(committed, step)
                case PlaceShard(shard):
                    self._spawn(self._place(shard))
                case QueryView():
                    self._spawn(self._query(effect))
                case Arm() | Disarm() | Log():
                    self._run_local(effect)
                case Reply(request, value):
                    self._answer(request, value, None)
                case Refuse(request, error):
                    self._answer(request, None, error)

    def _yield_after(self, effects: list[Effect], position: int, links: Iterable[ShardPort]) -> bool:
        """A shard here was just handed an event: let it run before the rest of `effects` (see `_run`)."""
        rest = effects[position + 1 :]
        if not rest or not any(link.local is not None for link in links):
            return False
        self._held = list(rest)
        self._yielding = True
        asyncio.get_running_loop().call_soon(self.post, self._resume)  # behind the shard's wake-up
        return True

    def _hold(self, effects: list[Effect]) -> None:
        if not self.tenure.holds() and not self._waiting_tenure:
            self._waiting_tenure = True
            self.log.warning("tenure_lapsed_holding")
            self.tenure.when_renewed(lambda: self.post(self._tenure_renewed))
        for effect in effects:
            if isinstance(effect, Arm | Disarm | Log):
                self._run_local(effect)
            else:
                self._held.append(effect)

    def _resume(self) -> None:
        self._yielding = False
        self._flush()

    def _tenure_renewed(self) -> None:
        """Tenure was renewed: what was held back goes out, in order (unless a heartbeat ended this coordinator)."""
        self._waiting_tenure = False
        if self._held and not self.fenced:
            self.log.info("tenure_renewed_releasing", effects=len(self._held))
        self._flush()

    def _flush(self) -> None:
        if self._yielding or self._waiting_tenure or self.fenced:
            return
        held, self._held = self._held, []
        if held:
            self._run(held)

    def _run_local(self, effect: Arm | Disarm | Log) -> None:
        match effect:
            case Arm(timer, delay_s):
                self._arm(timer, delay_s)
            case Disarm(timer):
                handle = self._timers.pop(timer, None)
                if handle is not None:
                    handle.cancel()
            case Log(level, event, fields):
                getattr(self.log, level)(event, **fields)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    def _then(self, committed: asyncio.Future[Outcome] | asyncio.Future[None], step: int) -> None:
        def done(future: asyncio.Future[Outcome] | asyncio.Future[None]) -> None:
            error = future.exception()
            if (
                error is None
                and isinstance(outcome := future.result(), Outcome)
                and self.room_id in outcome.fenced_rooms
            ):
                self.post(self._fence)
                return
            written = Written.DURABLE if error is None else Written.FAILED
            if isinstance(error, PlayersRefused):
                written = Written.REFUSED
            self.post(lambda: self._run(self.machine.done(step, written, self.now())))

        committed.add_done_callback(done)

    async def _place(self, shard: int) -> None:
        try:
            link = await self.placement.place(self.room_id, self.pin, shard, self.port, self.epoch)
        except Exception as exc:
            self.log.error("shard_not_placed", shard=shard, error=str(exc))
            self.post(lambda: self._run(self.machine.placed(shard, None, self.now())))
            return

        def job() -> None:
            self.links[shard] = link
            self._run(self.machine.placed(shard, link.worker_id, self.now()))

        self.post(job)

    async def _query(self, query: QueryView) -> None:
        """The merged view (`quizroom.rooms.actors.views`), then back into the machine."""
        view = await read_view(
            self.storage,
            self.room_id,
            question=query.question,
            choices=query.choices,
            through=query.through,
            top=query.top,
            players=len(self.state.players),
        )
        self.post(lambda: self._run(self.machine.view_ready(query.step, view, self.now())))

    def _arm(self, timer: Timer, delay_s: float) -> None:
        old = self._timers.pop(timer, None)
        if old is not None:
            old.cancel()

        def due() -> None:
            self._timers.pop(timer, None)
            self._run(self.machine.timer_due(timer, self.now()))

        self._timers[timer] = asyncio.get_running_loop().call_later(delay_s, lambda: self.post(due))

    def _answer(self, request: int, value: Any, error: QuizroomError | None) -> None:
        caller = self._callers.pop(request, None)
        if isinstance(caller, HostCaller):
            if error is not None:
                self.desk.refuse(caller.session, error)
            elif caller.kick:
                self.desk.tell(caller.session, messages.state(self.machine.snapshot()))
        elif caller is not None and not caller.done():
            if error is not None:
                caller.set_exception(error)
            else:
                caller.set_result(value)
