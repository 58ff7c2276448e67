"""Links to actors on other workers: an event becomes one message on the cluster's transport (`Send`), routed
there by room and shard (`quizroom.rooms.cluster.mailroom`). Events are idempotent, so a resend after a failover
does no harm. See docs/scaling.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quizroom.rooms.actors.ports import LocalShard
from quizroom.rooms.cluster.codec import coordinator_message, shard_message
from quizroom.rooms.game.events import CoordinatorEvent, ShardEvent

Send = Callable[[str, dict[str, Any]], None]
"""The transport: `send(worker_id, message)`, ordered per sender, fire and forget."""


class RemoteShardLink:
    """A shard on another worker."""

    local: LocalShard | None = None

    def __init__(self, room_id: str, pin: str, shard: int, worker_id: str, send: Send, epoch: int = 0) -> None:
        self.room_id = room_id
        self.pin = pin
        self.shard = shard
        self.worker_id = worker_id
        self.epoch = epoch  # the coordinator's lease epoch: a shard ignores events from an older coordinator
        self._send = send

    def send(self, event: ShardEvent) -> None:
        message = shard_message(event)
        if message is not None:
            routing = {"room_id": self.room_id, "pin": self.pin, "shard": self.shard, "epoch": self.epoch}
            self._send(self.worker_id, {**message, **routing})


class RemoteCoordinatorLink:
    """The coordinator on another worker. `worker_id` follows takeovers: a shard's coordinator is the sender of
    the newest lease epoch it has heard from (`quizroom.rooms.cluster.registry.shard_mail`). Routine summaries
    go at most twice a second (each is a message between workers); one that may close the question goes at once."""

    report_every_s = 0.5

    def __init__(self, room_id: str, worker_id: str, send: Send) -> None:
        self.room_id = room_id
        self.worker_id = worker_id
        self._send = send

    def send(self, event: CoordinatorEvent) -> None:
        self._send(self.worker_id, {**coordinator_message(event), "room_id": self.room_id})
