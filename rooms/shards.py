"""A coordinator's shards: which one a joining player sits in, where each lives, and how each stands.

Runs inside the coordinator's task. A shard fills up to `players_per_shard` before the next one opens; a new shard
is placed by the worker (`Placement`: this process alone, or the least-loaded live worker of the cluster), which is
an await, so joins that arrive meanwhile wait on the same placement instead of opening more shards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from quizroom.rooms.links import ShardLink, ShardSummary

if TYPE_CHECKING:
    from quizroom.rooms.actor import RoomActor
    from quizroom.rooms.coordinator import Coordinator


@dataclass(slots=True)
class ShardHome:
    link: ShardLink
    size: int = 0  # players assigned (kicked ones leave)
    summary: ShardSummary = field(default_factory=ShardSummary)
    local: RoomActor | None = None
    heard: bool = True  # False for a remote shard until it reports to this coordinator (after a takeover)


class Placement(Protocol):
    """What a coordinator needs from its worker: where shards go (`quizroom.rooms.registry`)."""

    worker_id: str

    async def place(self, coordinator: Coordinator, shard: int) -> ShardHome:
        """Put shard `shard` on a live worker (the one with the fewest of the room's shards, then the least loaded;
        this one, in a single process) and record it."""


class Shards:
    def __init__(
        self,
        per_shard: int,
        place: Callable[[int], asyncio.Future[ShardHome]],
        post: Callable[[Callable[[], None]], None],
        placed: Callable[[ShardHome], None],
        log: Any,
    ) -> None:
        """`place` starts a placement; `placed` runs in the coordinator once a new shard has its home."""
        self.per_shard = per_shard
        self.homes: dict[int, ShardHome] = {}
        self._place = place
        self._post = post
        self._on_placed = placed
        self._log = log
        self._placing: dict[int, asyncio.Future[ShardHome]] = {}
        self._pending_sizes: dict[int, int] = {}  # joins waiting for their new shard to be placed

    def assign(self) -> int:
        """The first shard with room for one more player; a new shard past the last full one. Takes the seat."""
        shard = 0
        while True:
            home = self.homes.get(shard)
            size = home.size if home is not None else self._pending_sizes.get(shard, 0)
            if (home is None and shard not in self._placing) or size < self.per_shard:
                break
            shard += 1
        if home is None:
            self._pending_sizes[shard] = self._pending_sizes.get(shard, 0) + 1
        else:
            home.size += 1
        return shard

    def unassign(self, shard: int) -> None:
        """A seat taken by a join that failed, or by a player kicked out."""
        home = self.homes.get(shard)
        if home is not None:
            home.size -= 1
        elif self._pending_sizes.get(shard):
            self._pending_sizes[shard] -= 1

    def home_of(self, shard: int) -> asyncio.Future[ShardHome]:
        """The shard's home, at once when it has one, else once the placement is done."""
        home = self.homes.get(shard)
        if home is not None:
            done: asyncio.Future[ShardHome] = asyncio.get_running_loop().create_future()
            done.set_result(home)
            return done
        placing = self._placing.get(shard)
        if placing is None:
            placing = self._placing[shard] = self._place(shard)

            def settled(f: asyncio.Future[ShardHome]) -> None:
                self._post(lambda: self._settle(shard, f))

            placing.add_done_callback(settled)
        return placing

    def _settle(self, shard: int, placing: asyncio.Future[ShardHome]) -> None:
        self._placing.pop(shard, None)
        pending = self._pending_sizes.pop(shard, 0)
        if placing.exception() is not None:
            self._log.error("shard_not_placed", shard=shard, error=str(placing.exception()))
            return
        home = placing.result()
        home.size += pending
        self.homes[shard] = home
        self._on_placed(home)

    def replace(self, home: ShardHome) -> None:
        """A shard placed again (its worker died) or announced after a takeover: it keeps its seats."""
        old = self.homes.get(home.link.shard)
        if old is not None:
            home.size = max(home.size, old.size)
        self.homes[home.link.shard] = home

    async def fetch_local(self) -> dict[int, ShardSummary]:
        """Fresh summaries of the shards in this process (each an `ask` of that shard); remote ones report on
        their own. Awaited outside the coordinator's task; `apply` them inside it."""
        fresh: dict[int, ShardSummary] = {}
        for shard, home in list(self.homes.items()):
            if home.local is not None:
                fresh[shard] = await home.local.summary()
        return fresh

    def apply(self, fresh: dict[int, ShardSummary]) -> None:
        for shard, summary in fresh.items():
            home = self.homes.get(shard)
            if home is not None and home.local is not None:
                home.summary = summary
                home.heard = True

    def counts(self, question: int | None) -> tuple[int, int]:
        """(connected, answered to `question`), summed over the shards."""
        connected = answered = 0
        for home in self.homes.values():
            connected += home.summary.connected
            if home.summary.question == question:
                answered += home.summary.answered
        return connected, answered

    def everyone_answered(self, question: int | None) -> bool:
        """Every connected player of every shard has a durable answer to `question` (and someone is connected)."""
        anyone = False
        for home in self.homes.values():
            if not home.heard:
                return False  # a shard this coordinator has not heard from yet may have players still answering
            summary = home.summary
            if summary.connected == 0:
                continue
            if summary.question != question or not summary.all_answered:
                return False
            anyone = True
        return anyone
