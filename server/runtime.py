"""Everything the transport layer shares for one server process, built at start-up and torn down at shutdown."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass, field

import structlog

from quizroom.rooms.actors.limits import ActorLimits
from quizroom.rooms.cluster.directory import Cluster, SoloCluster
from quizroom.rooms.cluster.lifetimes import RoomCaps
from quizroom.rooms.cluster.registry import RoomRegistry
from quizroom.rooms.game.clock import Clock, SystemClock
from quizroom.rooms.game.nicknames import load_blocklist
from quizroom.rooms.game.rules import RoomLimits
from quizroom.server.collector import CollectorPolicy
from quizroom.server.connections import ConnectionGate
from quizroom.server.counters import Counters
from quizroom.server.looplag import LoopLagMonitor
from quizroom.server.metrics import Metrics
from quizroom.server.settings import Settings
from quizroom.server.urls import worker_url as listening_url
from quizroom.storage import Storage, open_storage
from quizroom.storage.cluster import PgCluster
from quizroom.storage.writer import GroupCommitWriter

log = structlog.get_logger("quizroom.runtime")


@dataclass(slots=True)
class Runtime:
    settings: Settings
    storage: Storage
    writer: GroupCommitWriter
    registry: RoomRegistry
    clock: Clock
    counters: Counters = field(default_factory=Counters)
    draining: bool = False
    metrics: Metrics = field(default_factory=Metrics)
    lag_monitor: LoopLagMonitor | None = None
    collector: CollectorPolicy | None = None
    cluster: Cluster = field(default_factory=SoloCluster)
    gate: ConnectionGate | None = None  # the serving process's connection caps (server/connections.py), if any
    _worker_urls: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        clock = clock or SystemClock()
        storage = open_storage(settings.database_url)
        await storage.open()
        metrics = Metrics()  # a registry per runtime: several apps in one process (tests) never collide
        writer = GroupCommitWriter(storage, retry_for_s=settings.storage_retry_s, on_commit=metrics.on_commit)
        writer.start()
        limits = ActorLimits(
            room=RoomLimits(
                players_per_room=settings.players_per_room,
                answer_attempts=settings.answer_attempts,
                grace_ms=settings.answer_grace_ms,
                reconnect_grace_s=settings.reconnect_grace_s,
                blocked_words=load_blocklist(settings.nickname_blocklist_file, english=settings.nickname_filter == 1),
            ),
            rate_per_s=settings.rate_per_second,
            rate_burst=settings.rate_burst,
            abuse_strikes=settings.rate_abuse_strikes,
            players_per_shard=settings.players_per_shard,
            auto_advance_after_s=settings.auto_advance_after_s,
        )
        cluster = await open_cluster(settings)
        caps = RoomCaps(
            max_rooms=settings.max_rooms,
            max_rooms_per_owner=settings.max_rooms_per_ip,
            lobby_idle_s=settings.lobby_idle_s,
            finished_linger_s=settings.finished_linger_s,
        )
        registry = RoomRegistry(storage, writer, clock, limits, cluster=cluster, caps=caps, telemetry=metrics)
        if not registry.solo:
            await cluster.transport.listen(registry.on_message, on_reconnect=registry.resync)
            await join_cluster(cluster)  # listening first: nothing sent here once others can see it is lost
            await registry.tick()
        await registry.resume_open_questions()
        registry.start_sweeper()
        registry.start_cluster(settings.cluster_heartbeat_s)
        runtime = cls(settings, storage, writer, registry, clock, metrics=metrics, cluster=cluster)
        metrics.watch(runtime)
        runtime.lag_monitor = LoopLagMonitor(metrics.loop_lag)
        runtime.lag_monitor.start()
        if settings.gc_freeze:
            runtime.collector = CollectorPolicy(
                registry.busy, population=registry.players_held, on_reclaim=metrics.gc_reclaim.observe
            )
            runtime.collector.start()
        return runtime

    async def worker_url(self, worker_id: str) -> str | None:
        """The base URL of a live worker; None when it is dead. Cached while the last heartbeat saw it live (a
        worker keeps its URL for life); otherwise asked of the database, which may know a worker newer than that."""
        if worker_id == self.cluster.worker_id:
            return self.cluster.url
        url = self._worker_urls.get(worker_id)
        if url is not None and self.registry.is_live(worker_id):
            return url
        worker = await self.cluster.worker(worker_id)
        if worker is None:
            self._worker_urls.pop(worker_id, None)
            return None
        self._worker_urls[worker_id] = worker.url
        return worker.url

    async def drain(self) -> None:
        """Graceful shutdown, first half: refuse new work, close every socket with 1001, commit what is queued."""
        if self.draining:
            return
        self.draining = True
        await self.registry.close()
        await asyncio.wait_for(self.writer.stop(), timeout=self.settings.shutdown_timeout_s)
        await self.cluster.leave()  # others take the rooms over at once, not after the TTL

    async def stop(self) -> None:
        try:
            await self.drain()
        finally:
            if self.lag_monitor is not None:
                await self.lag_monitor.stop()
            if self.collector is not None:
                await self.collector.stop()
            await self.storage.close()
            log.info("stopped")


def worker_url(settings: Settings) -> str:
    """The base URL that reaches this very process: configured, or the public URL, or where we listen."""
    if settings.worker_url:
        return settings.worker_url.rstrip("/")
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return listening_url(settings, settings.port)


async def open_cluster(settings: Settings) -> Cluster:
    """PostgreSQL: this worker's view of the shared cluster (docs/scaling.md). SQLite: a worker alone."""
    worker_id = uuid.uuid4().hex[:16]
    url = worker_url(settings)
    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        return SoloCluster(worker_id, url)
    cluster = PgCluster(settings.database_url, worker_id, url, ttl_s=settings.cluster_ttl_s)
    await cluster.open()
    return cluster


async def join_cluster(cluster: Cluster) -> None:
    """Register (others may place shards here from now on), retiring a dead predecessor on our URL."""
    retired, twins = await cluster.join(os.getpid(), socket.gethostname())
    if retired:
        log.info("predecessor_retired", url=cluster.url, workers=retired)
    if twins:
        log.error(
            "worker_url_shared", url=cluster.url, other_hosts=twins, fix="give each server its own QUIZROOM_WORKER_URL"
        )
