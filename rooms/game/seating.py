"""A room's shards as its coordinator keeps them: which shard a joining player sits in, where each shard lives, and
how each stands. Pure bookkeeping: placing a shard on a worker is the caller's I/O (`PlaceShard`, then `placed`).

A shard fills up to `per_shard` players before the next one opens. A join that needs a new shard waits for its
placement, and joins arriving meanwhile take seats in the same shard instead of opening more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quizroom.rooms.game.events import ShardSummary


@dataclass(slots=True)
class Home:
    """Where one shard lives and how it stands, as far as the coordinator knows."""

    worker_id: str
    size: int = 0  # players seated (kicked ones leave)
    summary: ShardSummary = field(default_factory=ShardSummary)
    heard: bool = True  # False until the shard reports to this coordinator (after a takeover)


class Seating:
    def __init__(self, per_shard: int, homes: dict[int, Home] | None = None) -> None:
        self.per_shard = per_shard
        self.homes: dict[int, Home] = homes if homes is not None else {}
        self.placing: set[int] = set()  # shards asked to be placed, not placed yet
        self._pending: dict[int, int] = {}  # seats taken in shards being placed

    def assign(self) -> tuple[int, bool]:
        """Take a seat: the first shard with room for one more player, or a new one past the last full shard.
        Returns (shard, whether it must be placed now: it has no home and nobody asked for one yet)."""
        shard = 0
        while True:
            home = self.homes.get(shard)
            size = home.size if home is not None else self._pending.get(shard, 0)
            if (home is None and shard not in self.placing) or size < self.per_shard:
                break
            shard += 1
        if home is not None:
            home.size += 1
            return shard, False
        self._pending[shard] = self._pending.get(shard, 0) + 1
        if shard in self.placing:
            return shard, False
        self.placing.add(shard)
        return shard, True

    def unassign(self, shard: int) -> None:
        """Give back a seat taken by a join that failed, or by a player kicked out."""
        home = self.homes.get(shard)
        if home is not None:
            home.size -= 1
        elif self._pending.get(shard):
            self._pending[shard] -= 1

    def placed(self, shard: int, worker_id: str) -> Home:
        """A new shard has its home; the seats taken while it was placed are in it."""
        self.placing.discard(shard)
        home = self.homes[shard] = Home(worker_id, size=self._pending.pop(shard, 0))
        return home

    def not_placed(self, shard: int) -> None:
        """Placement failed: the seats waiting for it are given back by their joins (`unassign`); the next join
        asks again."""
        self.placing.discard(shard)

    def moved(self, shard: int, worker_id: str) -> Home:
        """A shard placed again (its worker died): it keeps its seats, and reports afresh."""
        old = self.homes.get(shard)
        home = self.homes[shard] = Home(worker_id, size=old.size if old is not None else 0)
        return home

    def report(self, shard: int, summary: ShardSummary) -> bool:
        """A shard's summary; False for a shard this room does not have."""
        home = self.homes.get(shard)
        if home is None:
            return False
        home.summary = summary
        home.heard = True
        return True

    def opened(self, question: int) -> None:
        """A question opened: every shard's answered count starts again (its connected count stays)."""
        for home in self.homes.values():
            home.summary = ShardSummary(connected=home.summary.connected, question=question)

    def counts(self, question: int | None) -> tuple[int, int]:
        """(connected, answered to `question`), summed over the shards."""
        connected = answered = 0
        for home in self.homes.values():
            connected += home.summary.connected
            if home.summary.question == question:
                answered += home.summary.answered
        return connected, answered

    def everyone_answered(self, question: int | None) -> bool:
        """Every connected player of every shard has a durable answer to `question` (and someone is connected).

        A shard's players whose sockets dropped moments ago (a failover, an outage) count as still answering for
        the reconnect grace (`RoomState.still_answering`), so a shard that lost its sockets does not drop out."""
        anyone = False
        for home in self.homes.values():
            if not home.heard:
                return False  # a shard this coordinator has not heard from yet may have players still answering
            summary = home.summary
            if summary.connected == 0 and summary.all_answered:
                continue  # nobody there, and nobody on the way back
            if summary.question != question or not summary.all_answered:
                return False
            anyone = anyone or summary.connected > 0
        return anyone
