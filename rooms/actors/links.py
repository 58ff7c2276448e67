"""Links inside one process: an event for an actor is posted into its inbox, to run in its task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from quizroom.rooms.actors.ports import LocalShard
from quizroom.rooms.game.events import CoordinatorEvent, ShardEvent


class ShardInbox(LocalShard, Protocol):
    shard: int

    def receive(self, event: ShardEvent) -> None: ...


class LocalShardLink:
    def __init__(self, shard: ShardInbox, worker_id: str) -> None:
        self.local: LocalShard | None = shard
        self.shard = shard.shard
        self.worker_id = worker_id
        self._shard = shard

    def send(self, event: ShardEvent) -> None:
        self._shard.receive(event)


class LocalCoordinatorLink:
    report_every_s = 0.1  # summaries for the host's live counts: at most 10 a second

    def __init__(self, receive: Callable[[CoordinatorEvent], None]) -> None:
        self._receive = receive

    def send(self, event: CoordinatorEvent) -> None:
        self._receive(event)
