"""Everything the transport layer shares for one server process, built at start-up and torn down at shutdown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from quizroom.rooms.actor import ActorLimits
from quizroom.rooms.clock import Clock, SystemClock
from quizroom.rooms.nicknames import load_blocklist
from quizroom.rooms.registry import RoomRegistry
from quizroom.rooms.state import RoomLimits
from quizroom.server.looplag import LoopLagMonitor
from quizroom.server.metrics import Metrics
from quizroom.server.settings import Settings
from quizroom.storage import Storage, open_storage
from quizroom.storage.writer import GroupCommitWriter

log = structlog.get_logger("quizroom.runtime")


@dataclass(slots=True)
class Counters:
    sockets_open: int = 0
    sockets_total: int = 0
    joins: int = 0
    refused_origin: int = 0
    refused_admission: int = 0  # per-address or server-wide limits (429/503 before the upgrade)
    no_sockets: asyncio.Event = field(default_factory=asyncio.Event)

    def socket_opened(self) -> None:
        self.sockets_open += 1
        self.sockets_total += 1
        self.no_sockets.clear()

    def socket_closed(self) -> None:
        self.sockets_open -= 1
        if not self.sockets_open:
            self.no_sockets.set()


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
                blocked_words=load_blocklist(settings.nickname_blocklist_file),
            ),
            rate_per_s=settings.rate_per_second,
            rate_burst=settings.rate_burst,
            abuse_strikes=settings.rate_abuse_strikes,
        )
        registry = RoomRegistry(storage, writer, clock, limits, telemetry=metrics)
        await registry.resume_open_questions()
        registry.start_sweeper()
        log.info("started", database=settings.database_url.split("@")[-1], rooms_resumed=len(registry))
        runtime = cls(settings, storage, writer, registry, clock, metrics=metrics)
        metrics.watch(runtime)
        runtime.lag_monitor = LoopLagMonitor(metrics.loop_lag)
        runtime.lag_monitor.start()
        return runtime

    async def drain(self) -> None:
        """Graceful shutdown, first half: refuse new work, close every socket with 1001, commit what is queued."""
        if self.draining:
            return
        self.draining = True
        await self.registry.close()
        await asyncio.wait_for(self.writer.stop(), timeout=self.settings.shutdown_timeout_s)

    async def stop(self) -> None:
        try:
            await self.drain()
        finally:
            if self.lag_monitor is not None:
                await self.lag_monitor.stop()
            await self.storage.close()
            log.info("stopped")
