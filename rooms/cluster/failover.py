"""The worker's heartbeat in the cluster, and what follows from it (docs/scaling.md, "Failover").

Every `cluster_heartbeat_s` the worker proves itself alive and renews the leases of the rooms it coordinates, in
one round trip; it stops coordinators whose lease it lost, and renews the worker's tenure (`Tenure`: how long its
coordinators may go on speaking without another heartbeat). A worker that was presumed dead meanwhile (a pause, an
outage) lets go of the shards that were placed elsewhere in its absence. Apart from the heartbeat, on its own loop
so that slow queries never delay it, the worker takes over rooms with an open question whose coordinator died and
moves its rooms' shards off dead workers. It reaches the worker's rooms through `Rooms`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from quizroom.rooms.actors.coordinator import Coordinator
from quizroom.rooms.actors.ports import ShardPort
from quizroom.rooms.actors.shard import Shard
from quizroom.rooms.actors.tenure import Tenure
from quizroom.rooms.cluster.directory import Cluster
from quizroom.rooms.cluster.remote import RpcClient
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.closes import CLOSE_MOVED
from quizroom.rooms.game.errors import NotFound
from quizroom.rooms.game.rules import Phase
from quizroom.storage.base import StorageError

log = structlog.get_logger("quizroom.failover")


class Rooms(Protocol):
    """What the heartbeat needs of the worker's rooms (`quizroom.rooms.cluster.registry`)."""

    def coordinators(self) -> dict[str, Coordinator]:
        """PIN → the coordinator here, as of now (a copy)."""

    def shards_held(self) -> list[tuple[str, int, Shard]]: ...

    def uninstall(self, pin: str, coordinator: Coordinator) -> bool: ...

    async def take_over(self, pin: str) -> None: ...

    async def link_for(self, coordinator: Coordinator, shard: int) -> ShardPort: ...

    async def release(self, pin: str, shard: int, actor: Shard, code: int) -> None: ...


class Failover:
    def __init__(self, rooms: Rooms, cluster: Cluster, rpc: RpcClient, clock: Clock, tenure: Tenure) -> None:
        self.rooms = rooms
        self.tenure = tenure
        self.clock = clock
        self.cluster = cluster
        self.rpc = rpc
        self.live: set[str] | None = None  # live workers as of the last tick (None: not known yet)
        self._last_beat: float | None = None  # monotonic time of the last heartbeat that reached the database

    def is_live(self, worker_id: str) -> bool:
        """As of the last heartbeat (true until the first: a worker just started knows nothing yet)."""
        return self.live is None or worker_id in self.live

    async def watch(self, interval_s: float) -> None:
        beating = asyncio.get_running_loop().create_task(self._every(interval_s, self.beat))
        try:
            await self._every(interval_s, self.duties)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    @staticmethod
    async def _every(interval_s: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await work()
            except StorageError as exc:
                log.warning("cluster_tick_failed", error=str(exc))
            except Exception:
                log.exception("cluster_tick_failed")
            await asyncio.sleep(interval_s)

    async def tick(self) -> None:
        """One heartbeat, then the duties that follow from what it learnt."""
        await self.beat()
        await self.duties()

    async def beat(self) -> None:
        """Heartbeat (renewing every lease held); stop coordinators whose lease was lost; renew tenure."""
        load = sum(len(actor.sessions) for _, _, actor in self.rooms.shards_held())
        held = self.rooms.coordinators()  # only these can have lost their lease: one installed meanwhile holds it
        sent = self.clock.monotonic()
        renewed = await self.cluster.heartbeat(load)
        now = self.clock.monotonic()
        away = self._last_beat is not None and now - self._last_beat > self.cluster.ttl_s
        self._last_beat = now
        for pin, coordinator in held.items():
            epoch = renewed.get(coordinator.room_id)
            lost = coordinator.state.phase is not Phase.FINISHED and epoch != coordinator.epoch
            if lost and self.rooms.uninstall(pin, coordinator):
                log.warning("lease_lost", pin=pin, epoch=coordinator.epoch, holder_epoch=epoch)
                await coordinator.stop(CLOSE_MOVED)
        # Only now: a coordinator holding back its output while tenure lapsed releases it on renewal, and one whose
        # lease was lost must have been stopped first, so that it releases nothing.
        self.tenure.renewed(sent)
        if away:  # presumed dead meanwhile (a pause, a database outage): our shards may live elsewhere now
            await self._release_moved_shards()

    async def duties(self) -> None:
        """Who is live; take over orphaned rooms with an open question; move our rooms' shards off dead workers."""
        self.live = {w.worker_id for w in await self.cluster.live_workers()}
        self.rpc.fail_dead(self.live)
        for pin in await self.cluster.orphaned_question_rooms():
            if pin not in self.rooms.coordinators():
                try:
                    await self.rooms.take_over(pin)
                except (StorageError, NotFound) as exc:  # one room's failure must not stop the others' takeover
                    log.warning("takeover_failed", pin=pin, error=str(exc))
        playing = [c for c in self.rooms.coordinators().values() if c.state.phase is not Phase.FINISHED]
        try:
            dead = await self.cluster.dead_shards([c.room_id for c in playing]) if playing else {}
        except StorageError as exc:  # the next heartbeat asks again
            log.warning("shard_move_failed", error=str(exc))
            dead = {}
        for coordinator in playing:
            shards = dead.get(coordinator.room_id)
            if shards and self.rooms.coordinators().get(coordinator.pin) is coordinator:
                try:
                    for shard in shards:
                        link = await self.rooms.link_for(coordinator, shard)
                        log.warning("shard_moved", pin=coordinator.pin, shard=shard, to=link.worker_id)
                        coordinator.moved(link)
                except (StorageError, NotFound) as exc:
                    log.warning("shard_move_failed", pin=coordinator.pin, error=str(exc))

    async def _release_moved_shards(self) -> None:
        """Stop shards here that were placed on another worker while this one was presumed dead; their sockets
        get 4421 and their clients resume to the shard's new home. Two live copies of a shard would each take
        answers and only one would hear the coordinator."""
        for pin, shard, actor in self.rooms.shards_held():
            placed = {s.shard: s.worker_id for s in await self.cluster.shards(actor.state.room_id)}
            holder = placed.get(shard)
            if holder is not None and holder != self.cluster.worker_id and actor.state.phase is not Phase.FINISHED:
                log.warning("shard_released", pin=pin, shard=shard, holder=holder)
                await self.rooms.release(pin, shard, actor, CLOSE_MOVED)
