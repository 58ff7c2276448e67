"""What the actors need of each other and of their worker, as protocols typed on events: a coordinator names no
shard class and a shard no coordinator class, so a link may be a local post or a message to another worker.
"""

from __future__ import annotations

from typing import Protocol

from quizroom.rooms.actors.telemetry import RoomStats
from quizroom.rooms.game.events import CoordinatorEvent, ShardEvent, ShardSummary


class CoordinatorPort(Protocol):
    """A shard's handle on its room's coordinator: here (a post into its inbox) or on another worker.

    `report_every_s` bounds how often the shard's routine summaries go this way (a report that may close the
    question early goes at once): a post is cheap, a message to another worker is a row and a notification."""

    report_every_s: float

    def send(self, event: CoordinatorEvent) -> None: ...


class LocalShard(Protocol):
    """What a coordinator reads of a shard in its own process: fresh counts for a host's screen, and stats."""

    stats: RoomStats

    @property
    def connected(self) -> int: ...

    async def summary(self) -> ShardSummary: ...


class ShardPort(Protocol):
    """A coordinator's handle on one of its shards, wherever it lives."""

    shard: int
    worker_id: str
    local: LocalShard | None  # the shard itself when it is in this process

    def send(self, event: ShardEvent) -> None: ...


class Placement(Protocol):
    """Where a room's new shards go: this process alone, or the least-loaded live worker of the cluster
    (`quizroom.rooms.cluster.registry`). The shard's reports go to `coordinator`, whose lease is `epoch`."""

    worker_id: str

    async def place(
        self, room_id: str, pin: str, shard: int, coordinator: CoordinatorPort, epoch: int
    ) -> ShardPort: ...
