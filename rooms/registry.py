"""The rooms of this worker: coordinators by PIN, shards by (PIN, shard), and the way to any room elsewhere.

Rooms not in memory are loaded from storage on first use (recovery). In one process every room's coordinator and
shards are here. With several workers (docs/scaling.md) this registry also holds the worker's part of the cluster:
it places shards, takes over rooms whose coordinator died, moves shards off dead workers, and routes the messages
other workers send here to the right actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from quizroom.rooms.actor import ActorLimits, RoomActor
from quizroom.rooms.cluster import Cluster, SoloCluster
from quizroom.rooms.coordinator import Coordinator
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import (
    AtCapacity,
    BadPhase,
    Kicked,
    Moved,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from quizroom.rooms.game.quiz import Quiz, parse_quiz
from quizroom.rooms.game.rules import Phase, Player, RoomState
from quizroom.rooms.links import (
    CoordinatorLink,
    LocalCoordinatorLink,
    LocalShardLink,
    RemoteCoordinatorLink,
    RemoteShardLink,
)
from quizroom.rooms.loading import load_shard, player_of, restore, results_document
from quizroom.rooms.mailroom import Mailroom
from quizroom.rooms.remote import RemoteRoom, RpcClient
from quizroom.rooms.sessions import CLOSE_MOVED, hash_token
from quizroom.rooms.shards import ShardHome
from quizroom.rooms.telemetry import NullTelemetry, Telemetry
from quizroom.storage.base import Storage, StorageError
from quizroom.storage.records import RoomRow
from quizroom.storage.writer import GroupCommitWriter

log = structlog.get_logger("quizroom.registry")

PIN_ATTEMPTS = 100
QUIZ_CACHE = 256  # parsed quizzes kept for loading rooms and shards

Room = Coordinator | RemoteRoom


def is_pin(text: str) -> bool:
    return len(text) == 6 and text.isdigit()


@dataclass(frozen=True, slots=True)
class RoomCaps:
    """How many rooms this worker holds, and for how long (docs/operations.md, "Limits and abuse").

    A lobby room costs ~8 KB and a PIN; an anonymous client once opened 50,000 of them at ~216 a second, which at
    that rate empties the 900,000 PINs in about 70 minutes. So live rooms are capped here and per creating address,
    a lobby nobody is in (no host socket, no player socket) is ended after `lobby_idle_s` — its PIN returns to the
    pool — and a finished room nobody watches leaves memory after `finished_linger_s` (its results stay in storage
    and are read from there). 0 lifts a cap.
    """

    max_rooms: int = 0
    max_rooms_per_owner: int = 0
    lobby_idle_s: float = 1_800.0
    finished_linger_s: float = 600.0

    @property
    def sweep_every_s(self) -> float:
        """Often enough that a lifetime is kept within a quarter of itself, and never more than once a minute."""
        return min(60.0, max(0.25, min(self.lobby_idle_s, self.finished_linger_s) / 4))


class RoomRegistry:
    """Creates rooms, finds them by PIN (loading, resuming or taking them over when needed), evicts old ones."""

    def __init__(
        self,
        storage: Storage,
        writer: GroupCommitWriter,
        clock: Clock,
        limits: ActorLimits,
        *,
        cluster: Cluster | None = None,
        caps: RoomCaps | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.storage = storage
        self.writer = writer
        self.clock = clock
        self.limits = limits
        self.cluster: Cluster = cluster or SoloCluster()
        self.solo = isinstance(self.cluster, SoloCluster)
        self.worker_id = self.cluster.worker_id
        self.caps = caps or RoomCaps()
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self._rooms: dict[str, Coordinator] = {}
        self._shards: dict[str, dict[int, RoomActor]] = {}
        self._remote: dict[str, RemoteRoom] = {}
        self._loading: dict[str, asyncio.Task[Room | None]] = {}
        self._shard_loading: dict[tuple[str, int], asyncio.Task[RoomActor]] = {}
        self._quizzes: dict[str, Quiz] = {}
        self._owners: dict[str, str] = {}  # PIN → the address that created the room here (for `max_rooms_per_owner`)
        self._idle_since: dict[str, float] = {}  # PIN → when its lobby was first seen empty
        self.mailroom = Mailroom(self)
        self._tasks: list[asyncio.Task[None]] = []
        self.closing = False  # shutting down: load nothing more, answer no more messages
        self._live: set[str] | None = None  # live workers as of the last tick (None: not known yet)
        self._last_beat: float | None = None  # monotonic time of the last heartbeat that reached the database
        self.rpc = RpcClient(self.worker_id, self.send)

    def __len__(self) -> int:
        return len(self._rooms)

    def rooms(self) -> list[Coordinator]:
        return list(self._rooms.values())

    def shard_actors(self) -> list[RoomActor]:
        return [actor for shards in self._shards.values() for actor in shards.values()]

    def question_open(self) -> bool:
        """Whether any room or shard here has a question open: players are answering and waiting for acks."""
        return any(c.state.phase is Phase.QUESTION for c in self._rooms.values()) or any(
            actor.state.phase is Phase.QUESTION for shards in self._shards.values() for actor in shards.values()
        )

    def is_live(self, worker_id: str) -> bool:
        """As of the last heartbeat (true until the first: a worker just started knows nothing yet)."""
        return self._live is None or worker_id in self._live

    def here(self, pin: str) -> Coordinator | None:
        """The room's coordinator if this worker holds it (no loading, no takeover)."""
        return self._rooms.get(pin)

    def coordinating(self, room_id: str) -> Coordinator | None:
        return next((c for c in self._rooms.values() if c.state.room_id == room_id), None)

    def shard_here(self, pin: str, room_id: str, shard: int) -> RoomActor | None:
        actor = self._shards.get(pin, {}).get(shard)
        return actor if actor is not None and actor.state.room_id == room_id else None

    def on_message(self, message: dict[str, Any]) -> None:
        """The cluster transport's callback (`quizroom.rooms.mailroom`)."""
        self.mailroom.deliver(message)

    def send(self, worker_id: str, message: dict[str, Any]) -> None:
        if worker_id:
            self.cluster.send(worker_id, {**message, "from": self.worker_id})

    # --- creating and finding rooms ---------------------------------------------------------------------------

    def check_capacity(self, owner: str = "") -> None:
        """Refuse a new room when this worker holds `max_rooms` live rooms (503), or `owner` holds its share (429)."""
        caps = self.caps
        if not caps.max_rooms and not caps.max_rooms_per_owner:
            return
        live = [pin for pin, c in self._rooms.items() if c.state.phase is not Phase.FINISHED]
        if caps.max_rooms and len(live) >= caps.max_rooms:
            raise AtCapacity("this server holds as many rooms as it may; try again later").retry_after(60)
        if caps.max_rooms_per_owner and owner:
            mine = sum(1 for pin in live if self._owners.get(pin) == owner)
            if mine >= caps.max_rooms_per_owner:
                raise RateLimited("your address has opened as many rooms as it may; end one first").retry_after(60)

    async def create(self, quiz_id: str, quiz: Quiz, *, owner: str = "") -> tuple[Coordinator, str]:
        """Open a room for a stored quiz; returns its coordinator and the host token (shown once, stored hashed).

        `owner` is the creating client's address; `check_capacity` refuses it once it holds its share of rooms."""
        self.check_capacity(owner)
        host_token = secrets.token_urlsafe(32)
        room_id = uuid.uuid4().hex
        for _ in range(PIN_ATTEMPTS):
            pin = str(100_000 + secrets.randbelow(900_000))
            held = self._rooms.get(pin)
            if held is not None and held.state.phase is not Phase.FINISHED:
                continue
            row = RoomRow(room_id, pin, quiz_id, hash_token(host_token), self.clock.wall_ms())
            if await self.storage.create_room(row):
                break
        else:
            raise RuntimeError("no free PIN found")
        await self.cluster.acquire_lease(room_id)
        self._quizzes[quiz_id] = quiz
        state = RoomState(
            room_id=room_id, pin=pin, quiz=quiz, host_token_hash=row.host_token_hash, limits=self.limits.room
        )
        coordinator = self._coordinator(state)
        self._install(coordinator)
        if owner:
            self._owners[pin] = owner
        log.info("room_created", pin=pin, room_id=room_id, questions=len(quiz.questions))
        return coordinator, host_token

    def _coordinator(self, state: RoomState, **kwargs: Any) -> Coordinator:
        return Coordinator(
            state, self.writer, self.storage, self.clock, self.limits, self, telemetry=self.telemetry, **kwargs
        )

    def _install(self, coordinator: Coordinator) -> None:
        pin = coordinator.state.pin
        old = self._rooms.get(pin)
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())
            self._drop_shards(pin)
        self._remote.pop(pin, None)
        self._rooms[pin] = coordinator
        coordinator.start()

    def _drop_shards(self, pin: str) -> None:
        for actor in self._shards.pop(pin, {}).values():
            asyncio.get_running_loop().create_task(actor.stop())

    async def get(self, pin: str) -> Room | None:
        """The room with this PIN: its coordinator here (loaded or taken over when needed), or a handle on it."""
        coordinator = self._rooms.get(pin)
        if coordinator is not None:
            return coordinator
        if self.closing:
            raise Unavailable("this server is shutting down")
        remote = self._remote.get(pin)
        if remote is not None and self._live is not None and remote.worker_id not in self._live:
            self._remote.pop(pin, None)  # its coordinator died: find (or become) the new one
            remote = None
        if remote is not None or not is_pin(pin):
            return remote
        loading = self._loading.get(pin)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._load(pin))
            self._loading[pin] = loading
            loading.add_done_callback(lambda _: self._loading.pop(pin, None))
        return await asyncio.shield(loading)

    async def coordinator(self, pin: str) -> Coordinator | None:
        """The room's coordinator, which must be here (host sockets); `Moved` when another worker holds it."""
        room = await self.get(pin)
        if isinstance(room, RemoteRoom):
            raise Moved("this room is coordinated by another worker")
        return room

    def _forget_remote(self, remote: RemoteRoom) -> None:
        if self._remote.get(remote.pin) is remote:
            del self._remote[remote.pin]

    async def _quiz(self, quiz_id: str) -> Quiz | None:
        quiz = self._quizzes.get(quiz_id)
        if quiz is None:
            quiz_row = await self.storage.get_quiz(quiz_id)
            if quiz_row is None:
                return None
            if len(self._quizzes) >= QUIZ_CACHE:
                self._quizzes.pop(next(iter(self._quizzes)))  # the oldest: quizzes are reread at most per load
            quiz = self._quizzes[quiz_id] = parse_quiz(orjson.loads(quiz_row.body))
        return quiz

    async def _load(self, pin: str) -> Room | None:
        row = await self.storage.find_room(pin)
        if row is None:
            return None
        if not self.solo and row.phase != str(Phase.FINISHED):
            holder = await self.cluster.lease_holder(row.room_id)
            if holder is not None and holder.worker_id != self.worker_id:
                return self._remote_room(row, holder.worker_id)
            if not await self.cluster.acquire_lease(row.room_id):
                holder = await self.cluster.lease_holder(row.room_id)
                return None if holder is None else self._remote_room(row, holder.worker_id)
        try:
            loaded = await self._coordinate(pin, row)
        except BaseException:
            loaded = None
            raise
        finally:
            if loaded is None and not self.solo and row.phase != str(Phase.FINISHED):
                await self.cluster.release_lease(row.room_id)  # nobody coordinates it here: let another try
        return loaded

    async def _coordinate(self, pin: str, row: RoomRow) -> Room | None:
        """Load a room to coordinate here (its lease is held): its players, and its shards wherever they live."""
        quiz = await self._quiz(row.quiz_id)
        if quiz is None:
            log.error("room_without_quiz", pin=pin, quiz_id=row.quiz_id)
            return None
        player_rows = await self.storage.load_players(row.room_id)
        live = [p for p in player_rows if not p.kicked]
        state = self._restore(row, quiz, [player_of(p) for p in live])
        coordinator = self._coordinator(
            state,
            shard_of={p.player_id: p.shard for p in live},
            revoked_tokens={p.token_hash for p in player_rows if p.kicked},
        )
        sizes = Counter(p.shard for p in live)
        placed = {} if self.solo else {s.shard: s for s in await self.cluster.shards(row.room_id)}
        for shard in sorted(set(sizes) | set(placed)):
            home_row = placed.get(shard)
            worker = (
                home_row.worker_id
                if home_row is not None and home_row.alive
                else await self._choose(row.room_id, shard)
            )
            home = await self._home(coordinator, shard, worker)
            home.size = sizes.get(shard, 0)
            home.heard = False  # until it reports to this coordinator: its summary is unknown (even a local one)
            coordinator.homes[shard] = home
        current = self._rooms.get(pin)
        if current is not None:  # created meanwhile: this one never started, so there is nothing to stop
            return current
        self._install(coordinator)
        coordinator.post(coordinator.announce_all)  # each shard hears who coordinates it, and catches up
        log.info("room_resumed", pin=pin, room_id=row.room_id, phase=row.phase, players=len(live), shards=len(sizes))
        return coordinator

    def _remote_room(self, row: RoomRow, worker_id: str) -> RemoteRoom:
        remote = RemoteRoom(row, worker_id, self.rpc, self.storage, self.results, self._forget_remote)
        self._remote[row.pin] = remote
        return remote

    def _restore(self, row: RoomRow, quiz: Quiz, players: list[Player]) -> RoomState:
        return restore(row, quiz, players, [], self.limits.room, self.clock)

    async def resume_open_questions(self) -> None:
        """Load rooms whose question was open at the crash, so their deadlines fire even if nobody reconnects."""
        if self.solo:
            pins = await self.storage.rooms_in_phase(str(Phase.QUESTION))
        else:
            pins = await self.cluster.orphaned_question_rooms()
        for pin in pins:
            await self.get(pin)

    async def results(self, pin: str) -> dict[str, Any] | None:
        """`GET …/results`, from storage: any worker can answer it."""
        row = await self.storage.find_room(pin)
        quiz = None if row is None else await self._quiz(row.quiz_id)
        if row is None or quiz is None:
            return None
        return await results_document(self.storage, row, quiz, self.limits.room, self.clock)

    # --- shards -----------------------------------------------------------------------------------------------

    async def place(self, coordinator: Coordinator, shard: int) -> ShardHome:
        """A new shard of a room this worker coordinates goes to the live worker with the fewest of its shards."""
        worker = await self._choose(coordinator.state.room_id, shard)
        return await self._home(coordinator, shard, worker)

    async def _choose(self, room_id: str, shard: int) -> str:
        if self.solo:
            return self.worker_id
        workers = await self.cluster.live_workers()
        if not workers:
            return await self.cluster.place_shard(room_id, shard, self.worker_id)
        held = Counter(s.worker_id for s in await self.cluster.shards(room_id) if s.alive)
        best = min(workers, key=lambda w: (held[w.worker_id], w.load, w.worker_id))
        return await self.cluster.place_shard(room_id, shard, best.worker_id)

    async def _home(self, coordinator: Coordinator, shard: int, worker_id: str) -> ShardHome:
        state = coordinator.state
        if worker_id == self.worker_id:
            actor = await self.hold_shard(state.pin, state.room_id, shard, LocalCoordinatorLink(coordinator))
            return ShardHome(LocalShardLink(actor, worker_id), local=actor)
        return ShardHome(RemoteShardLink(state.room_id, state.pin, shard, worker_id, self.send))

    async def hold_shard(self, pin: str, room_id: str, shard: int, link: CoordinatorLink) -> RoomActor:
        actor = self._shards.get(pin, {}).get(shard)
        if actor is not None and actor.state.room_id == room_id:
            actor.coordinator = link
            return actor
        key = (pin, shard)
        loading = self._shard_loading.get(key)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._load_shard(pin, room_id, shard, link))
            self._shard_loading[key] = loading
            loading.add_done_callback(lambda _: self._shard_loading.pop(key, None))
        actor = await asyncio.shield(loading)
        actor.coordinator = link  # a second caller while it loaded knows better where the coordinator is now
        return actor

    async def _load_shard(self, pin: str, room_id: str, shard: int, link: CoordinatorLink) -> RoomActor:
        """A shard from storage: its players, their answers, and the room's ranking as of the last reveal."""
        row = await self.storage.find_room(pin)
        if row is None or row.room_id != room_id:
            raise NotFound("no such room")
        quiz = await self._quiz(row.quiz_id)
        if quiz is None:
            raise NotFound("no such quiz")
        loaded = await load_shard(self.storage, row, quiz, shard, self.limits.room, self.clock)
        state = loaded.state
        actor = RoomActor(
            state,
            self.writer,
            self.clock,
            self.limits,
            shard=shard,
            coordinator=link,
            revoked_tokens=loaded.revoked,
            telemetry=self.telemetry,
            final=loaded.final,
        )
        current = self._shards.get(pin, {}).get(shard)
        if current is not None and current.state.room_id == room_id:
            return current
        if current is not None:
            await current.stop()
        actor.start()
        self._shards.setdefault(pin, {})[shard] = actor
        log.info("shard_loaded", pin=pin, shard=shard, players=len(state.players), phase=row.phase)
        return actor

    async def shard_for(self, pin: str, token: str) -> RoomActor:
        """The shard here that holds this token's player; `Moved` when another worker holds it."""
        token_hash = hash_token(token)
        for actor in self._shards.get(pin, {}).values():
            if actor.knows(token_hash):
                return actor
        room = await self.get(pin)  # after a restart: loads the room and, in one process, its shards
        if room is None:
            raise NotFound("no such room")
        for actor in self._shards.get(pin, {}).values():
            if actor.knows(token_hash):
                return actor
        row = await self.storage.player_by_token(token_hash)
        room_id = room.state.room_id if isinstance(room, Coordinator) else room.room_id
        if row is None or row.room_id != room_id:
            raise Unauthorized()
        if row.kicked:
            raise Kicked("you were removed from this game")
        held = self._shards.get(pin, {}).get(row.shard)
        shard = held if held is not None and held.state.room_id == room_id else None
        if shard is None:
            shard = await self._adopt_shard(pin, room_id, row.shard, room)
        if not shard.knows(token_hash):
            player = player_of(row)
            shard.post(lambda: shard.add_player(player))
        return shard

    async def _adopt_shard(self, pin: str, room_id: str, shard: int, room: Room) -> RoomActor:
        """Load a shard placed on this worker but not in memory (after a restart, or placed by another worker)."""
        if isinstance(room, Coordinator):
            home = room.homes.get(shard)
            if home is not None and home.local is not None:
                return home.local
            if home is not None and home.link.worker_id != self.worker_id:
                raise Moved("your shard is on another worker")
            return await self.hold_shard(pin, room_id, shard, LocalCoordinatorLink(room))
        placed = {s.shard: s for s in await self.cluster.shards(room_id)}
        home_row = placed.get(shard)
        if home_row is None or home_row.worker_id != self.worker_id:
            raise Moved("your shard is on another worker")
        link = RemoteCoordinatorLink(room_id, room.worker_id, self.send)
        return await self.hold_shard(pin, room_id, shard, link)

    # --- the cluster's heartbeat ------------------------------------------------------------------------------

    def start_cluster(self, interval_s: float) -> None:
        if not self.solo:
            self._tasks.append(asyncio.get_running_loop().create_task(self._watch(interval_s)))

    async def _watch(self, interval_s: float) -> None:
        while True:
            try:
                await self.tick()
            except StorageError as exc:
                log.warning("cluster_tick_failed", error=str(exc))
            except Exception:
                log.exception("cluster_tick_failed")
            await asyncio.sleep(interval_s)

    async def tick(self) -> None:
        """Heartbeat; drop coordinators whose lease was lost; take over orphaned rooms; move shards off dead workers."""
        if self.solo:
            return
        load = sum(len(actor.sessions) for actor in self.shard_actors())
        held = dict(self._rooms)  # only these can have lost their lease: one installed during the awaits below holds it
        renewed = await self.cluster.heartbeat(load)
        now = self.clock.monotonic()
        away = self._last_beat is not None and now - self._last_beat > self.cluster.ttl_s
        self._last_beat = now
        if away:  # presumed dead meanwhile (a pause, a database outage): our shards may live elsewhere now
            await self._release_moved_shards()
        self._live = {w.worker_id for w in await self.cluster.live_workers()}
        self.rpc.fail_dead(self._live)
        for pin, coordinator in held.items():
            lost = coordinator.state.phase is not Phase.FINISHED and coordinator.state.room_id not in renewed
            if lost and self._rooms.get(pin) is coordinator:
                log.warning("lease_lost", pin=pin)
                del self._rooms[pin]
                await coordinator.stop()
        for pin in await self.cluster.orphaned_question_rooms():
            if pin not in self._rooms:
                self._remote.pop(pin, None)
                try:
                    await self.get(pin)
                except (StorageError, NotFound) as exc:  # one room's failure must not stop the others' takeover
                    log.warning("takeover_failed", pin=pin, error=str(exc))
        playing = [c for c in self._rooms.values() if c.state.phase is not Phase.FINISHED]
        try:
            dead = await self.cluster.dead_shards([c.state.room_id for c in playing]) if playing else {}
        except StorageError as exc:  # the next heartbeat asks again
            log.warning("shard_move_failed", error=str(exc))
            dead = {}
        for coordinator in playing:
            shards = dead.get(coordinator.state.room_id)
            if shards and self._rooms.get(coordinator.state.pin) is coordinator:
                try:
                    await self._move_dead_shards(coordinator, shards)
                except (StorageError, NotFound) as exc:
                    log.warning("shard_move_failed", pin=coordinator.state.pin, error=str(exc))

    async def _move_dead_shards(self, coordinator: Coordinator, shards: list[int]) -> None:
        for shard in shards:
            worker = await self._choose(coordinator.state.room_id, shard)
            home = await self._home(coordinator, shard, worker)
            old = coordinator.homes.get(shard)
            home.size = old.size if old is not None else 0
            log.warning("shard_moved", pin=coordinator.state.pin, shard=shard, to=worker)
            coordinator.adopt(home)

    async def _release_moved_shards(self) -> None:
        """Stop shards here that were placed on another worker while this one was presumed dead; their sockets
        get 4421 and their clients resume to the shard's new home. Two live copies of a shard would each take
        answers and only one would hear the coordinator."""
        for pin, held in list(self._shards.items()):
            for shard, actor in list(held.items()):
                room_id = actor.state.room_id
                placed = {s.shard: s.worker_id for s in await self.cluster.shards(room_id)}
                holder = placed.get(shard)
                if holder is not None and holder != self.worker_id and actor.state.phase is not Phase.FINISHED:
                    log.warning("shard_released", pin=pin, shard=shard, holder=holder)
                    del held[shard]
                    await actor.stop(CLOSE_MOVED)

    def resync(self) -> None:
        """After the listening connection was lost (messages meanwhile are gone): each side says where it stands."""
        for coordinator in self._rooms.values():
            coordinator.post(coordinator.announce_all)
        for actor in self.shard_actors():
            actor.post(actor.report)

    # --- eviction and shutdown --------------------------------------------------------------------------------

    def start_sweeper(self, interval_s: float | None = None) -> None:
        every = self.caps.sweep_every_s if interval_s is None else interval_s
        self._tasks.append(asyncio.get_running_loop().create_task(self._sweep(every)))

    async def _sweep(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.end_idle_lobbies()
                await self.evict_finished()
            except StorageError as exc:  # the next sweep tries again
                log.warning("sweep_failed", error=str(exc))

    def _watched(self, pin: str, coordinator: Coordinator) -> bool:
        """A host socket, or a player socket on any of its shards, is open. Remote shards count as they last
        reported — until the room finishes: finishing closes every player socket (4410), and says so to nobody."""
        if coordinator.hosts or any(a.sessions for a in self._shards.get(pin, {}).values()):
            return True
        return coordinator.state.phase is not Phase.FINISHED and coordinator.connected() > 0

    async def end_idle_lobbies(self) -> int:
        """End lobbies nobody has been in for `lobby_idle_s`: their PINs return to the pool (`RoomCaps`)."""
        now = self.clock.monotonic()
        ended = 0
        for pin, coordinator in list(self._rooms.items()):
            if coordinator.state.phase is not Phase.LOBBY or self._watched(pin, coordinator):
                self._idle_since.pop(pin, None)
                continue
            since = self._idle_since.setdefault(pin, now)
            if now - since < self.caps.lobby_idle_s:
                continue
            self._idle_since.pop(pin, None)
            try:
                await coordinator.command("end")
            except (BadPhase, Unavailable):  # started or ended meanwhile; or storage is down: next sweep
                continue
            log.info("lobby_idle_ended", pin=pin, idle_s=round(now - since, 1))
            ended += 1
        return ended

    async def evict_finished(self) -> int:
        """Drop finished rooms nobody watches after the linger time; their results stay in storage."""
        now = self.clock.monotonic()

        def stale(finished_at: float | None) -> bool:
            return finished_at is not None and now - finished_at >= self.caps.finished_linger_s

        evicted = 0
        for pin, coordinator in list(self._rooms.items()):
            if stale(coordinator.finished_at) and not self._watched(pin, coordinator):
                del self._rooms[pin]
                self._owners.pop(pin, None)
                self._idle_since.pop(pin, None)
                await coordinator.stop()
                await self.cluster.release_lease(coordinator.state.room_id)
                evicted += 1
        for pin, shards in list(self._shards.items()):
            for shard, actor in list(shards.items()):
                if stale(actor.finished_at) and not actor.sessions and pin not in self._rooms:
                    del shards[shard]
                    await actor.stop()
            if not shards:
                del self._shards[pin]
        return evicted

    async def close(self) -> None:
        self.closing = True
        await self.mailroom.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for actor in self.shard_actors():
            await actor.stop()
        for coordinator in list(self._rooms.values()):
            await coordinator.stop()
        self._rooms.clear()
        self._shards.clear()
