"""The worker's view of the cluster, as the registry needs it: leases, placement and a transport.

`SoloCluster` is one process alone (SQLite, or PostgreSQL without other workers in mind): it holds every lease,
places every shard on itself and never sends. `quizroom.storage.cluster.PgCluster` is the same interface over
PostgreSQL (rows with expiry, `LISTEN/NOTIFY`). See docs/scaling.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from quizroom.storage.pulse import BeatHooks
from quizroom.storage.records import ShardRow, WorkerRow

Handler = Callable[[dict[str, Any]], None]


class Transport(Protocol):
    """Messages between workers: fire and forget, ordered per sender. `max_payload` is the largest encoded message
    it carries (a PostgreSQL NOTIFY: under 8,000 bytes); `send` raises ValueError past it."""

    @property
    def max_payload(self) -> int: ...

    def send(self, worker_id: str, message: dict[str, Any]) -> None: ...

    async def listen(self, callback: Handler, *, on_reconnect: Callable[[], None] | None = None) -> None:
        """Deliver every message for this worker to `callback`; `on_reconnect` after messages may have been lost."""


class Pacer(Protocol):
    """A heartbeat that keeps its own time (`quizroom.storage.pulse.Pulse`)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Cluster(Protocol):
    worker_id: str
    url: str
    ttl_s: float  # a worker silent this long is presumed dead (and its rooms and shards move)

    @property
    def transport(self) -> Transport: ...

    async def join(self, pid: int, hostname: str) -> tuple[int, list[str]]:
        """Become a member (others may place shards here from now on); returns (dead predecessors on this URL
        retired, other hosts registered with this URL — a misconfiguration)."""

    async def leave(self) -> None:
        """A clean stop: leave at once (others take the rooms over now, not after the TTL), then disconnect."""

    async def heartbeat(self, load: int) -> dict[str, int]:
        """Prove this worker alive; returns the coordinator leases it still holds (room_id → epoch)."""

    def pulse(self, interval_s: float, hooks: BeatHooks) -> Pacer | None:
        """`heartbeat` every `interval_s` off the event loop, so a busy loop cannot delay it: `vouch` runs where it
        beats, `beaten` on the event loop (None: this cluster has no such heartbeat; beat with `heartbeat`). A beat
        not answered within the TTL is given up for the next."""

    async def live_workers(self) -> list[WorkerRow]:
        """Live workers, least loaded first."""

    async def worker(self, worker_id: str) -> WorkerRow | None: ...

    async def acquire_lease(self, room_id: str) -> int | None:
        """The lease's epoch (its fencing token) once this worker holds it; None when another worker does."""

    async def lease_holder(self, room_id: str) -> WorkerRow | None: ...

    async def release_lease(self, room_id: str) -> None: ...

    async def orphaned_question_rooms(self) -> list[str]:
        """PINs of rooms with an open question and no live coordinator."""

    async def place_shard(self, room_id: str, shard: int, worker_id: str, *, lease_epoch: int = 0) -> str:
        """Record `worker_id` as the shard's worker unless a live one holds it; returns the holder. With
        `lease_epoch`, only while that is the room's current lease (a deposed coordinator places nothing)."""

    async def shards(self, room_id: str) -> list[ShardRow]: ...

    async def dead_shards(self, room_ids: Sequence[str]) -> dict[str, list[int]]: ...


class SoloTransport:
    """Nobody to talk to."""

    max_payload = 1 << 62

    def send(self, worker_id: str, message: dict[str, Any]) -> None:
        raise RuntimeError("a solo worker has nobody to send to")

    async def listen(self, callback: Handler, *, on_reconnect: Callable[[], None] | None = None) -> None:
        pass


class SoloCluster:
    """One worker, alone: every room and every shard is here."""

    def __init__(self, worker_id: str = "solo", url: str = "") -> None:
        self.worker_id = worker_id
        self.url = url
        self.ttl_s = float("inf")
        self.transport: Transport = SoloTransport()
        self._placed: dict[tuple[str, int], str] = {}

    async def heartbeat(self, load: int) -> dict[str, int]:
        return {}

    def pulse(self, interval_s: float, hooks: BeatHooks) -> Pacer | None:
        return None  # alone, nobody takes anything over: there is nothing to beat for

    async def live_workers(self) -> list[WorkerRow]:
        return [WorkerRow(self.worker_id, self.url, 0)]

    async def worker(self, worker_id: str) -> WorkerRow | None:
        return WorkerRow(self.worker_id, self.url, 0) if worker_id == self.worker_id else None

    async def acquire_lease(self, room_id: str) -> int | None:
        return 0  # unfenced: nobody else can hold it

    async def lease_holder(self, room_id: str) -> WorkerRow | None:
        return None

    async def release_lease(self, room_id: str) -> None:
        pass

    async def orphaned_question_rooms(self) -> list[str]:
        return []

    async def place_shard(self, room_id: str, shard: int, worker_id: str, *, lease_epoch: int = 0) -> str:
        return self.worker_id

    async def shards(self, room_id: str) -> list[ShardRow]:
        return []

    async def dead_shards(self, room_ids: Sequence[str]) -> dict[str, list[int]]:
        return {}

    async def join(self, pid: int, hostname: str) -> tuple[int, list[str]]:
        return 0, []

    async def leave(self) -> None:
        pass
