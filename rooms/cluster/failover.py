"""The worker's heartbeat in the cluster, and what follows from it (docs/scaling.md, "Failover").

Every `cluster_heartbeat_s` the worker proves itself alive and renews the leases of the rooms it coordinates, in
one round trip; it stops coordinators whose lease it lost, and renews the worker's tenure (`Tenure`: how long its
coordinators may go on speaking without another heartbeat). On PostgreSQL the heartbeat runs on a thread and a
connection of its own (`quizroom.storage.pulse`): a saturated event loop used to run it seconds late and lose the
worker its rooms with no worker down. The thread extends tenure itself when every lease it expected came back
(`_vouch`); anything else a beat shows is handled on the event loop (`_beaten`). A worker that was presumed dead
meanwhile (a pause, an outage) lets go of the shards that were placed elsewhere in its absence. Apart from the
heartbeat, so that slow queries never delay it, the worker takes over rooms with an open question whose
coordinator died and moves its rooms' shards off dead workers. It reaches the worker's rooms through `Rooms`.
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
from quizroom.storage.pulse import BeatHooks

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
        self.load = 0  # sockets on this worker's shards, as of the last tick (what the heartbeat reports)
        self._last_beat: float | None = None  # when the last heartbeat that reached the database was sent
        self._beating = asyncio.Lock()  # beats are handled one after the other, in the order they were sent
        self._handling: set[asyncio.Task[None]] = set()

    def is_live(self, worker_id: str) -> bool:
        """As of the last heartbeat (true until the first: a worker just started knows nothing yet)."""
        return self.live is None or worker_id in self.live

    async def watch(self, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        hooks = BeatHooks(
            monotonic=self.clock.monotonic,
            load=lambda: self.load,
            snapshot=self.rooms.coordinators,  # a copy of a dict: one step under the GIL, safe from the thread
            vouch=self._vouch,
            beaten=self._on_beat,
        )
        # Each beat is given up after the TTL (`PgCluster.pulse`), not sooner: a slow beat still renews the leases in
        # the database (stamped when it ran), which keeps the rooms here even when it comes back too late to extend
        # this worker's tenure.
        pacer = self.cluster.pulse(interval_s, hooks)
        beating = loop.create_task(self._every(interval_s, self.beat)) if pacer is None else None
        if pacer is not None:
            pacer.start()
        try:
            await self._every(interval_s, self.duties)
        finally:
            if pacer is not None:
                await pacer.stop()
            for task in [beating, *self._handling]:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

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
        self.load = self._load()
        held = self.rooms.coordinators()  # only these can have lost their lease: one installed meanwhile holds it
        sent = self.clock.monotonic()
        renewed = await self.cluster.heartbeat(self.load)
        await self._beaten(sent, held, renewed)

    def _load(self) -> int:
        return sum(len(actor.sessions) for _, _, actor in self.rooms.shards_held())

    def _vouch(self, sent: float, held: dict[str, Coordinator], renewed: dict[str, int]) -> None:
        """On the heartbeat's thread, right after a renewal: when no coordinator here lost its lease, the worker's
        tenure is extended at once, so coordinators on a loop too busy to handle the beat yet go on speaking.
        Otherwise nothing: the event loop stops the deposed ones first, then renews tenure (`_beaten`).

        Coordinators installed after `held` was taken acquired their lease before this renewal was sent, or
        after it (expiring later still): either way it holds until `sent + ttl`."""
        if not any(_lost(coordinator, renewed) for coordinator in held.values()):
            self.tenure.extend(sent)

    def _on_beat(self, sent: float, held: dict[str, Coordinator], renewed: dict[str, int]) -> None:
        """On the event loop: handle a beat the heartbeat's thread made (failures logged as a tick's are)."""
        task = asyncio.get_running_loop().create_task(self._handled(sent, held, renewed))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handled(self, sent: float, held: dict[str, Coordinator], renewed: dict[str, int]) -> None:
        try:
            await self._beaten(sent, held, renewed)
        except StorageError as exc:
            log.warning("cluster_tick_failed", error=str(exc))
        except Exception:
            log.exception("cluster_tick_failed")

    async def _beaten(self, sent: float, held: dict[str, Coordinator], renewed: dict[str, int]) -> None:
        """What a heartbeat sent at `sent` shows, for the coordinators `held` when it was sent."""
        async with self._beating:
            await self._apply_beat(sent, held, renewed)

    async def _apply_beat(self, sent: float, held: dict[str, Coordinator], renewed: dict[str, int]) -> None:
        # Presumed dead meanwhile if the beats that reached the database were sent more than a TTL apart (by when
        # they were sent, not handled: a busy loop handling beats late was never away).
        away = self._last_beat is not None and sent - self._last_beat > self.cluster.ttl_s
        self._last_beat = sent if self._last_beat is None else max(self._last_beat, sent)
        for pin, coordinator in held.items():
            if _lost(coordinator, renewed) and self.rooms.uninstall(pin, coordinator):
                log.warning(
                    "lease_lost", pin=pin, epoch=coordinator.epoch, holder_epoch=renewed.get(coordinator.room_id)
                )
                # Silent at once: its stop waits behind its inbox, and the next beat's thread no longer sees it
                # (uninstalled) and may extend tenure meanwhile.
                coordinator.depose()
                await _stop_through(coordinator.stop(CLOSE_MOVED))
        # Only now: a coordinator holding back its output while tenure lapsed releases it on renewal, and one whose
        # lease was lost must have been stopped first, so that it releases nothing.
        self.tenure.renewed(sent)
        if away:  # presumed dead meanwhile (a pause, a database outage): our shards may live elsewhere now
            await self._release_moved_shards()

    async def duties(self) -> None:
        """Who is live; take over orphaned rooms with an open question; move our rooms' shards off dead workers."""
        self.load = self._load()
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


async def _stop_through(stopping: Awaitable[None]) -> None:
    """Await a deposed coordinator's stop even if the beat's handling is cancelled meanwhile (a shutdown cancels
    it): the coordinator is uninstalled already, so the registry's own shutdown no longer sees it, and an
    interrupted stop would leave its inbox task running until the process exits. The cancellation still ends the
    handling, once the stop is done."""
    stop = asyncio.ensure_future(stopping)
    interrupted = False
    while not stop.done():
        try:
            await asyncio.shield(stop)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        if not stop.cancelled() and stop.exception() is not None:  # retrieved (else asyncio logs it as lost)
            log.warning("deposed_stop_failed", error=repr(stop.exception()))
        raise asyncio.CancelledError
    stop.result()  # its own failure, if any


def _lost(coordinator: Coordinator, renewed: dict[str, int]) -> bool:
    """A heartbeat's renewals show this coordinator's lease gone or under another epoch (finished rooms need none)."""
    return coordinator.state.phase is not Phase.FINISHED and renewed.get(coordinator.room_id) != coordinator.epoch
