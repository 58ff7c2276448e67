"""The rooms of this worker: coordinators by PIN, shards by (PIN, shard), and the way to any room elsewhere.

Rooms not in memory are loaded from storage on first use (recovery). In one process every room's coordinator and
shards are here. With several workers (docs/scaling.md) the registry also places shards (it is the coordinators'
`Placement`) and routes the messages other workers send here (it is the mailroom's `Router`); the heartbeat that
takes over rooms and moves shards is `quizroom.rooms.cluster.failover`. Rooms have a lifetime (`RoomCaps`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from quizroom.rooms.actors.coordinator import Coordinator
from quizroom.rooms.actors.limits import ActorLimits
from quizroom.rooms.actors.links import LocalShardLink
from quizroom.rooms.actors.ports import CoordinatorPort, ShardPort
from quizroom.rooms.actors.sessions import hash_token
from quizroom.rooms.actors.shard import Shard
from quizroom.rooms.actors.telemetry import NullTelemetry, Telemetry
from quizroom.rooms.actors.tenure import Tenure
from quizroom.rooms.cluster.directory import Cluster, SoloCluster
from quizroom.rooms.cluster.failover import Failover
from quizroom.rooms.cluster.lifetimes import Lifetimes, RoomCaps
from quizroom.rooms.cluster.links import RemoteCoordinatorLink, RemoteShardLink
from quizroom.rooms.cluster.loading import load_shard, player_of, restore, results_document
from quizroom.rooms.cluster.mailroom import Mailroom, ShardMailbox
from quizroom.rooms.cluster.remote import RemoteRoom, RpcClient, Served
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import (
    BadPhase,
    Kicked,
    Moved,
    NotFound,
    Unauthorized,
    Unavailable,
)
from quizroom.rooms.game.events import AddPlayer, CoordinatorEvent
from quizroom.rooms.game.options import RoomOptions
from quizroom.rooms.game.protocol import RoomProtocol, Settings
from quizroom.rooms.game.quiz import Quiz, parse_quiz
from quizroom.rooms.game.rules import Phase, Player, RoomState
from quizroom.rooms.game.seating import Home
from quizroom.storage.base import Storage, StorageError
from quizroom.storage.records import RoomRow
from quizroom.storage.writer import GroupCommitWriter

log = structlog.get_logger("quizroom.registry")

PIN_ATTEMPTS = 100
TENURE_MARGIN = 0.25  # of the TTL: a coordinator stops speaking this long before its lease can lapse
QUIZ_CACHE = 256  # parsed quizzes kept for loading rooms and shards

Room = Coordinator | RemoteRoom


def is_pin(text: str) -> bool:
    return len(text) == 6 and text.isdigit()


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
        self.lifetimes = Lifetimes(caps or RoomCaps(), clock)
        # How long this worker may speak for its rooms without a heartbeat (renewed by `failover`): a margin of a
        # quarter of the TTL before the lease can lapse in the database. A server alone never lapses.
        margin = self.cluster.ttl_s * TENURE_MARGIN if not self.solo else 0.0
        self.tenure = Tenure(clock, self.cluster.ttl_s, margin)
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self._rooms: dict[str, Coordinator] = {}
        self._by_room_id: dict[str, Coordinator] = {}  # the same, by room_id: each report from elsewhere looks here
        self._shards: dict[str, dict[int, Shard]] = {}
        self._remote: dict[str, RemoteRoom] = {}
        self._loading: dict[str, asyncio.Task[Room | None]] = {}
        self._shard_loading: dict[tuple[str, int], asyncio.Task[Shard]] = {}
        self._quizzes: dict[str, Quiz] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.closing = False  # shutting down: load nothing more, answer no more messages
        self.rpc = RpcClient(self.worker_id, self.send, self.cluster.transport.max_payload)
        self.mailroom = Mailroom(self, storage, self.send, self.rpc.on_reply)
        self.failover = Failover(self, self.cluster, self.rpc, clock, self.tenure)

    def __len__(self) -> int:
        return len(self._rooms)

    def rooms(self) -> list[Coordinator]:
        return list(self._rooms.values())

    def shard_actors(self) -> list[Shard]:
        return [actor for shards in self._shards.values() for actor in shards.values()]

    def busy(self) -> bool:
        """Whether a pause now would keep players waiting: some room or shard here has a question open (answers
        waiting for acks), or a room is in a transition (a close, a reveal, a finish under way)."""
        return any(c.state.phase is Phase.QUESTION or c.machine.busy for c in self._rooms.values()) or any(
            actor.state.phase is Phase.QUESTION for shards in self._shards.values() for actor in shards.values()
        )

    def players_held(self) -> int:
        """Players whose state this worker holds in memory (its shards'), finished rooms' included until evicted."""
        return sum(len(actor.state.players) for shards in self._shards.values() for actor in shards.values())

    def is_live(self, worker_id: str) -> bool:
        """As of the last heartbeat (true until the first: a worker just started knows nothing yet)."""
        return self.failover.is_live(worker_id)

    def here(self, pin: str) -> Coordinator | None:
        """The room's coordinator if this worker holds it (no loading, no takeover)."""
        coordinator = self._rooms.get(pin)
        if coordinator is not None and coordinator.fenced:  # a newer coordinator holds the room elsewhere
            self._uninstall(pin, coordinator)
            return None
        return coordinator

    def shard_here(self, pin: str, room_id: str, shard: int) -> Shard | None:
        actor = self._shards.get(pin, {}).get(shard)
        return actor if actor is not None and actor.state.room_id == room_id and not actor.fenced else None

    # --- what the heartbeat needs (`quizroom.rooms.cluster.failover.Rooms`) -----------------------------------------

    def coordinators(self) -> dict[str, Coordinator]:
        return dict(self._rooms)

    def shards_held(self) -> list[tuple[str, int, Shard]]:
        return [(pin, shard, actor) for pin, held in self._shards.items() for shard, actor in held.items()]

    async def take_over(self, pin: str) -> None:
        self._remote.pop(pin, None)
        await self.get(pin)

    async def release(self, pin: str, shard: int, actor: Shard, code: int) -> None:
        held = self._shards.get(pin, {})
        if held.get(shard) is actor:
            del held[shard]
        await actor.stop(code)

    # --- the mailroom's router ----------------------------------------------------------------------------------

    def reporting_to(self, room_id: str) -> Callable[[CoordinatorEvent], None] | None:
        coordinator = self._by_room_id.get(room_id)
        return None if coordinator is None else coordinator.receive

    async def serving(self, pin: str) -> Served | None:
        return self.here(pin) or await self.coordinator(pin)

    async def shard_mail(self, pin: str, room_id: str, shard: int, sender: str, epoch: int) -> ShardMailbox | None:
        """The shard that takes `sender`'s events, if `sender` coordinates under the newest lease epoch the shard
        has heard of; its reports follow that coordinator to wherever it is now. A deposed coordinator (one that
        was paused or cut off while another took the room over) is not listened to: None."""
        actor = self.shard_here(pin, room_id, shard)
        if actor is None:
            link = RemoteCoordinatorLink(room_id, sender, self.send)
            return await self.hold_shard(pin, room_id, shard, link, epoch)
        if epoch < actor.coordinator_epoch:
            return None
        actor.coordinator_epoch = epoch
        current = actor.coordinator
        if isinstance(current, RemoteCoordinatorLink):
            current.worker_id = sender  # the coordinator may have moved: its events come from where it is now
        elif sender != self.worker_id:  # it was coordinated here until this worker lost the lease
            actor.coordinator = RemoteCoordinatorLink(room_id, sender, self.send)
        return actor

    def on_message(self, message: dict[str, Any]) -> None:
        """The cluster transport's callback (`quizroom.rooms.cluster.mailroom`)."""
        self.mailroom.deliver(message)

    def send(self, worker_id: str, message: dict[str, Any]) -> None:
        if worker_id:
            self.cluster.transport.send(worker_id, {**message, "from": self.worker_id})

    # --- creating and finding rooms ---------------------------------------------------------------------------

    def check_capacity(self, owner: str = "") -> None:
        """Refuse a new room when this worker holds `max_rooms` live rooms (503), or `owner` its share (429)."""
        self.lifetimes.check(self._rooms, owner)

    async def create(
        self, quiz_id: str, quiz: Quiz, *, owner: str = "", options: RoomOptions | None = None
    ) -> tuple[Coordinator, str]:
        """Open a room for a stored quiz; returns its coordinator and the host token (shown once, stored hashed).

        `owner` is the creating client's address; `check_capacity` refuses it once it holds its share of rooms."""
        self.check_capacity(owner)
        options = options or RoomOptions()
        host_token = secrets.token_urlsafe(32)
        room_id = uuid.uuid4().hex
        for _ in range(PIN_ATTEMPTS):
            pin = str(100_000 + secrets.randbelow(900_000))
            held = self._rooms.get(pin)
            if held is not None and held.state.phase is not Phase.FINISHED:
                continue
            created = self.clock.wall_ms()
            row = RoomRow(room_id, pin, quiz_id, hash_token(host_token), created, options=options.to_json())
            if await self.storage.create_room(row):
                break
        else:
            raise RuntimeError("no free PIN found")
        epoch = await self.cluster.acquire_lease(room_id)
        if epoch is None:  # a fresh room nobody else has heard of: only a bug can make this happen
            raise Unavailable("could not take this room's lease; try again")
        self._quizzes[quiz_id] = quiz
        state = RoomState(
            room_id=room_id,
            pin=pin,
            quiz=quiz,
            host_token_hash=row.host_token_hash,
            limits=self.limits.room,
            options=options,
        )
        coordinator = self._coordinator(RoomProtocol(state, self._protocol_settings()), epoch)
        self._install(coordinator)
        self.lifetimes.created(pin, owner)
        log.info("room_created", pin=pin, room_id=room_id, questions=len(quiz.questions))
        return coordinator, host_token

    def _protocol_settings(self) -> Settings:
        return Settings(
            per_shard=self.limits.players_per_shard,
            host_coalesce_s=self.limits.host_coalesce_s,
            auto_advance_after_s=self.limits.auto_advance_after_s,
        )

    def _coordinator(self, machine: RoomProtocol, epoch: int) -> Coordinator:
        return Coordinator(
            machine,
            {},
            writer=self.writer,
            storage=self.storage,
            clock=self.clock,
            limits=self.limits,
            placement=self,
            telemetry=self.telemetry,
            epoch=epoch,
            tenure=self.tenure,
        )

    def _install(self, coordinator: Coordinator) -> None:
        pin = coordinator.state.pin
        old = self._rooms.get(pin)
        if old is not None:
            self._uninstall(pin, old)
            asyncio.get_running_loop().create_task(old.stop())
            self._drop_shards(pin)
        self._remote.pop(pin, None)
        self._rooms[pin] = coordinator
        self._by_room_id[coordinator.room_id] = coordinator
        coordinator.start()

    def uninstall(self, pin: str, coordinator: Coordinator) -> bool:
        """Forget the coordinator if it is still the one installed (its lease was lost, it was evicted)."""
        if self._rooms.get(pin) is not coordinator:
            return False
        self._uninstall(pin, coordinator)
        return True

    def _uninstall(self, pin: str, coordinator: Coordinator) -> None:
        del self._rooms[pin]
        if self._by_room_id.get(coordinator.room_id) is coordinator:
            del self._by_room_id[coordinator.room_id]

    def _drop_shards(self, pin: str) -> None:
        for actor in self._shards.pop(pin, {}).values():
            asyncio.get_running_loop().create_task(actor.stop())

    async def get(self, pin: str) -> Room | None:
        """The room with this PIN: its coordinator here (loaded or taken over when needed), or a handle on it."""
        coordinator = self.here(pin)
        if coordinator is not None:
            return coordinator
        if self.closing:
            raise Unavailable("this server is shutting down")
        remote = self._remote.get(pin)
        if remote is not None and not self.failover.is_live(remote.worker_id):
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
        epoch = 0
        if not self.solo and row.phase != str(Phase.FINISHED):
            holder = await self.cluster.lease_holder(row.room_id)
            if holder is not None and holder.worker_id != self.worker_id:
                return self._remote_room(row, holder.worker_id)
            taken = await self.cluster.acquire_lease(row.room_id)
            if taken is None:
                holder = await self.cluster.lease_holder(row.room_id)
                return None if holder is None else self._remote_room(row, holder.worker_id)
            epoch = taken
        try:
            loaded = await self._coordinate(pin, row, epoch)
        except BaseException:
            loaded = None
            raise
        finally:
            if loaded is None and not self.solo and row.phase != str(Phase.FINISHED):
                await self.cluster.release_lease(row.room_id)  # nobody coordinates it here: let another try
        return loaded

    async def _coordinate(self, pin: str, row: RoomRow, epoch: int) -> Room | None:
        """Load a room to coordinate here (its lease is held): its players, and its shards wherever they live."""
        quiz = await self._quiz(row.quiz_id)
        if quiz is None:
            log.error("room_without_quiz", pin=pin, quiz_id=row.quiz_id)
            return None
        player_rows = await self.storage.load_players(row.room_id)
        live = [p for p in player_rows if not p.kicked]
        state = self._restore(row, quiz, [player_of(p) for p in live])
        for kicked in player_rows:
            if kicked.kicked:
                state.bar(player_of(kicked))
        sizes = Counter(p.shard for p in live)
        placed = {} if self.solo else {s.shard: s for s in await self.cluster.shards(row.room_id)}
        machine = RoomProtocol(
            state,
            self._protocol_settings(),
            shard_of={p.player_id: p.shard for p in live},
            revoked={p.token_hash for p in player_rows if p.kicked},
        )
        coordinator = self._coordinator(machine, epoch)
        for shard in sorted(set(sizes) | set(placed)):
            home_row = placed.get(shard)
            worker = (
                home_row.worker_id
                if home_row is not None and home_row.alive
                else await self._choose(row.room_id, shard, epoch)
            )
            link = await self._link(row.room_id, pin, shard, worker, coordinator.port, epoch)
            coordinator.links[shard] = link
            # Unheard until it reports to this coordinator: its summary is unknown (even a local one's).
            machine.seating.homes[shard] = Home(worker, size=sizes.get(shard, 0), heard=False)
        current = self.here(pin)
        if current is not None:  # created meanwhile: this one never started, so there is nothing to stop
            return current
        self._install(coordinator)
        coordinator.announce_all()  # each shard hears who coordinates it, and catches up with the phase
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

    async def place(self, room_id: str, pin: str, shard: int, coordinator: CoordinatorPort, epoch: int) -> ShardPort:
        """A new shard of a room this worker coordinates goes to the live worker with the fewest of its shards."""
        worker = await self._choose(room_id, shard, epoch)
        return await self._link(room_id, pin, shard, worker, coordinator, epoch)

    async def _choose(self, room_id: str, shard: int, epoch: int) -> str:
        if self.solo:
            return self.worker_id
        workers = await self.cluster.live_workers()
        if not workers:
            return await self.cluster.place_shard(room_id, shard, self.worker_id, lease_epoch=epoch)
        held = Counter(s.worker_id for s in await self.cluster.shards(room_id) if s.alive)
        best = min(workers, key=lambda w: (held[w.worker_id], w.load, w.worker_id))
        return await self.cluster.place_shard(room_id, shard, best.worker_id, lease_epoch=epoch)

    async def _link(
        self, room_id: str, pin: str, shard: int, worker_id: str, coordinator: CoordinatorPort, epoch: int
    ) -> ShardPort:
        """The coordinator's link to a shard on `worker_id`: here, the shard itself (loaded if need be)."""
        if worker_id == self.worker_id:
            return LocalShardLink(await self.hold_shard(pin, room_id, shard, coordinator, epoch), worker_id)
        return RemoteShardLink(room_id, pin, shard, worker_id, self.send, epoch)

    async def link_for(self, coordinator: Coordinator, shard: int) -> ShardPort:
        """A link to the shard placed afresh (its worker died): `quizroom.rooms.cluster.failover`."""
        worker = await self._choose(coordinator.room_id, shard, coordinator.epoch)
        return await self._link(
            coordinator.room_id, coordinator.pin, shard, worker, coordinator.port, coordinator.epoch
        )

    async def hold_shard(self, pin: str, room_id: str, shard: int, link: CoordinatorPort, epoch: int) -> Shard:
        """The shard here (loaded if need be), reporting to `link` unless it heard from a newer coordinator."""
        actor = self.shard_here(pin, room_id, shard)
        if actor is not None:
            actor.follow(link, epoch)
            return actor
        key = (pin, shard)
        loading = self._shard_loading.get(key)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._load_shard(pin, room_id, shard, link))
            self._shard_loading[key] = loading
            loading.add_done_callback(lambda _: self._shard_loading.pop(key, None))
        actor = await asyncio.shield(loading)
        actor.follow(link, epoch)  # a second caller while it loaded may know a newer coordinator
        return actor

    async def _load_shard(self, pin: str, room_id: str, shard: int, link: CoordinatorPort) -> Shard:
        """A shard from storage: its players, their answers, and the room's ranking as of the last reveal."""
        row = await self.storage.find_room(pin)
        if row is None or row.room_id != room_id:
            raise NotFound("no such room")
        quiz = await self._quiz(row.quiz_id)
        if quiz is None:
            raise NotFound("no such quiz")
        epoch = 0
        if not self.solo:  # the placement's epoch fences this copy's answers once the shard moves elsewhere
            placed = {s.shard: s for s in await self.cluster.shards(room_id)}.get(shard)
            if placed is None or placed.worker_id != self.worker_id:
                raise Moved("this shard is placed on another worker")
            epoch = placed.epoch
        loaded = await load_shard(self.storage, row, quiz, shard, self.limits.room, self.clock)
        state = loaded.state
        actor = Shard(
            state,
            self.writer,
            self.clock,
            self.limits,
            shard=shard,
            coordinator=link,
            revoked_tokens=loaded.revoked,
            telemetry=self.telemetry,
            final=loaded.final,
            epoch=epoch,
        )
        current = self._shards.get(pin, {}).get(shard)
        if current is not None and current.state.room_id == room_id and not current.fenced:
            return current
        if current is not None:
            await current.stop()
        actor.start()
        self._shards.setdefault(pin, {})[shard] = actor
        log.info("shard_loaded", pin=pin, shard=shard, players=len(state.players), phase=row.phase)
        return actor

    async def shard_for(self, pin: str, token: str) -> Shard:
        """The shard here that holds this token's player; `Moved` when another worker holds it."""
        token_hash = hash_token(token)
        for actor in self._shards.get(pin, {}).values():
            if actor.knows(token_hash) and not actor.fenced:
                return actor
        room = await self.get(pin)  # after a restart: loads the room and, in one process, its shards
        if room is None:
            raise NotFound("no such room")
        for actor in self._shards.get(pin, {}).values():
            if actor.knows(token_hash) and not actor.fenced:
                return actor
        row = await self.storage.player_by_token(token_hash)
        room_id = room.state.room_id if isinstance(room, Coordinator) else room.room_id
        if row is None or row.room_id != room_id:
            raise Unauthorized()
        if row.kicked:
            raise Kicked("you were removed from this game")
        shard = self.shard_here(pin, room_id, row.shard)
        if shard is None:
            shard = await self._adopt_shard(pin, room_id, row.shard, room)
        if not shard.knows(token_hash):
            shard.receive(AddPlayer(player_of(row)))
        return shard

    async def _adopt_shard(self, pin: str, room_id: str, shard: int, room: Room) -> Shard:
        """Load a shard placed on this worker but not in memory (after a restart, or placed by another worker)."""
        if isinstance(room, Coordinator):
            link = room.links.get(shard)
            if link is not None and link.worker_id != self.worker_id:
                raise Moved("your shard is on another worker")
            return await self.hold_shard(pin, room_id, shard, room.port, room.epoch)
        placed = {s.shard: s for s in await self.cluster.shards(room_id)}
        home_row = placed.get(shard)
        if home_row is None or home_row.worker_id != self.worker_id:
            raise Moved("your shard is on another worker")
        remote = RemoteCoordinatorLink(room_id, room.worker_id, self.send)
        return await self.hold_shard(pin, room_id, shard, remote, 0)  # the coordinator's next event says its epoch

    # --- eviction and shutdown --------------------------------------------------------------------------------

    def start_cluster(self, interval_s: float) -> None:
        if not self.solo:
            self._tasks.append(asyncio.get_running_loop().create_task(self.failover.watch(interval_s)))

    async def tick(self) -> None:
        await self.failover.tick()

    def resync(self) -> None:
        """After the listening connection was lost (messages meanwhile are gone): each side says where it stands."""
        for coordinator in self._rooms.values():
            coordinator.announce_all()
        for actor in self.shard_actors():
            actor.post(actor.report)

    def start_sweeper(self, interval_s: float | None = None) -> None:
        every = self.lifetimes.caps.sweep_every_s if interval_s is None else interval_s
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
        """End lobbies nobody has been in for `lobby_idle_s`: their PINs return to the pool."""
        ended = 0
        for pin, idle_s in self.lifetimes.idle_lobbies(self._rooms, self._watched):
            try:
                await self._rooms[pin].command("end")
            except (BadPhase, Unavailable, KeyError):  # started or ended meanwhile; or storage is down: next sweep
                continue
            log.info("lobby_idle_ended", pin=pin, idle_s=round(idle_s, 1))
            ended += 1
        return ended

    async def evict_finished(self) -> int:
        """Drop finished rooms nobody watches after the linger time; their results stay in storage."""
        evicted = 0
        for pin, coordinator in list(self._rooms.items()):
            if self.lifetimes.lingered(coordinator.finished_at) and not self._watched(pin, coordinator):
                self._uninstall(pin, coordinator)
                self.lifetimes.forget(pin)
                await coordinator.stop()
                await self.cluster.release_lease(coordinator.state.room_id)
                evicted += 1
        for pin, shards in list(self._shards.items()):
            for shard, actor in list(shards.items()):
                if self.lifetimes.lingered(actor.finished_at) and not actor.sessions and pin not in self._rooms:
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
        self._by_room_id.clear()
        self._shards.clear()
