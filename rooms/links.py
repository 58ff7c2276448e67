"""How a room's coordinator and its shards talk: the same events whether a shard is in this process or another.

A *local* link posts the event into the other actor's inbox. A *remote* link hands it to the cluster's transport
(PostgreSQL `NOTIFY` on the receiving worker's channel, `quizroom.storage.cluster`), and the receiving worker's
registry posts it into the actor there. Events are idempotent (an `open` of the question already open, a second
`close`, a `reveal` already sent are ignored), so a resend after a failover does no harm. See docs/scaling.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from quizroom.rooms.game.scoring import Ranking

if TYPE_CHECKING:
    from quizroom.rooms.actor import RoomActor
    from quizroom.rooms.coordinator import Coordinator
    from quizroom.rooms.game.rules import Player

Send = Callable[[str, dict[str, Any]], None]
"""The transport: `send(worker_id, message)`, ordered per sender, fire and forget."""

Histogram = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ShardSummary:
    """What a coordinator needs to know of a shard between events: for the host feed and the early close."""

    connected: int = 0
    question: int | None = None  # the question `answered` counts (a late summary of the last one is ignored)
    answered: int = 0  # durable answers to that question
    all_answered: bool = False  # every connected player has a durable answer (false when nobody is connected)


@dataclass(frozen=True, slots=True)
class Reveal:
    index: int
    result_seq: int
    board: dict[str, Any]  # the `leaderboard` message, the same for every player
    histogram: Histogram | None  # None over the wire: the shard reads it from storage (it may not fit a NOTIFY)


@dataclass(frozen=True, slots=True)
class Finish:
    seq: int
    podium: list[dict[str, Any]]
    histogram: Histogram | None
    through: int | None = None  # the last question that counts (over the wire the shard reads the histogram)


def ranked(entries: Sequence[tuple[str, int]], histogram: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """Leaderboard entries `{rank, nickname, score}` from `(nickname, score)` pairs, ranked against the histogram."""
    ranking = Ranking(histogram)
    return [{"rank": ranking.rank(score), "nickname": nickname, "score": score} for nickname, score in entries]


class ShardLink(Protocol):
    """The coordinator's handle on one shard."""

    shard: int
    worker_id: str

    def add_player(self, player: Player) -> None: ...

    def open_question(self, index: int, opened_at_ms: int, seq: int) -> None: ...

    def close_question(self, index: int) -> None: ...

    def reveal(self, event: Reveal) -> None: ...

    def finish(self, event: Finish) -> None: ...

    def kick(self, player_id: str) -> None: ...

    def announce(self, coordinator_worker: str) -> None:
        """Tell the shard where its coordinator lives now (after a takeover)."""


class CoordinatorLink(Protocol):
    """A shard's handle on its room's coordinator."""

    def closed(self, shard: int, index: int) -> None:
        """The shard stopped taking answers to `index` and every one it took is durable."""

    def progress(self, shard: int, summary: ShardSummary, check: bool) -> None:
        """How the shard stands. `check`: an answer settled or a player left, so the question may close early."""


class LocalShardLink:
    def __init__(self, actor: RoomActor, worker_id: str) -> None:
        self.actor = actor
        self.shard = actor.shard
        self.worker_id = worker_id

    def add_player(self, player: Player) -> None:
        self.actor.post(lambda: self.actor.add_player(player))

    def open_question(self, index: int, opened_at_ms: int, seq: int) -> None:
        self.actor.post(lambda: self.actor.open_question(index, opened_at_ms, seq))

    def close_question(self, index: int) -> None:
        self.actor.post(lambda: self.actor.close_question(index))

    def reveal(self, event: Reveal) -> None:
        self.actor.post(lambda: self.actor.reveal(event))

    def finish(self, event: Finish) -> None:
        self.actor.post(lambda: self.actor.finish(event))

    def kick(self, player_id: str) -> None:
        self.actor.post(lambda: self.actor.kick(player_id))

    def announce(self, coordinator_worker: str) -> None:
        self.actor.post(self.actor.report)  # a coordinator that just loaded knows nothing of this shard yet


class LocalCoordinatorLink:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def closed(self, shard: int, index: int) -> None:
        self.coordinator.post(lambda: self.coordinator.on_closed(shard, index))

    def progress(self, shard: int, summary: ShardSummary, check: bool) -> None:
        self.coordinator.post(lambda: self.coordinator.on_progress(shard, summary, check))


class RemoteShardLink:
    """A shard on another worker: each event is one message to that worker, routed there by (room, shard)."""

    def __init__(self, room_id: str, pin: str, shard: int, worker_id: str, send: Send) -> None:
        self.room_id = room_id
        self.pin = pin
        self.shard = shard
        self.worker_id = worker_id
        self._send = send

    def _event(self, kind: str, **fields: Any) -> None:
        self._send(
            self.worker_id, {"kind": kind, "room_id": self.room_id, "pin": self.pin, "shard": self.shard, **fields}
        )

    def add_player(self, player: Player) -> None:
        pass  # the shard reads a player it does not know from storage on hello (the row committed before the reply)

    def open_question(self, index: int, opened_at_ms: int, seq: int) -> None:
        self._event("open", index=index, opened_at_ms=opened_at_ms, seq=seq)

    def close_question(self, index: int) -> None:
        self._event("close", index=index)

    def reveal(self, event: Reveal) -> None:
        self._event("reveal", index=event.index, result_seq=event.result_seq, board=event.board)

    def finish(self, event: Finish) -> None:
        self._event("finish", seq=event.seq, podium=event.podium, through=event.through)

    def kick(self, player_id: str) -> None:
        self._event("kick", player_id=player_id)

    def announce(self, coordinator_worker: str) -> None:
        self._event("coordinator", worker_id=coordinator_worker)


class RemoteCoordinatorLink:
    """The coordinator on another worker. `worker_id` follows takeovers (the new coordinator announces itself)."""

    def __init__(self, room_id: str, worker_id: str, send: Send) -> None:
        self.room_id = room_id
        self.worker_id = worker_id
        self._send = send

    def closed(self, shard: int, index: int) -> None:
        self._send(self.worker_id, {"kind": "closed", "room_id": self.room_id, "shard": shard, "index": index})

    def progress(self, shard: int, summary: ShardSummary, check: bool) -> None:
        self._send(
            self.worker_id,
            {
                "kind": "progress",
                "room_id": self.room_id,
                "shard": shard,
                "connected": summary.connected,
                "question": summary.question,
                "answered": summary.answered,
                "all_answered": summary.all_answered,
                "check": check,
            },
        )
