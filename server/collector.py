"""Keeps CPython's full garbage collections away from the moments players are waiting on.

Why: a full collection walks every tracked object, and CPython starts one whenever the heap has grown by a quarter.
A room's objects live as long as its sockets (protocol objects, parsers, buffers, sessions), so a 10,000-player
room is ~900,000 objects and each full collection took ~0.55 s on one core here: a join storm into such a room paid
about a dozen of them (2.8 s of its 11 s, bench/RESULTS.md), and one landing in an answer burst delayed every ack by
half a second.

What this does instead: four times a second, whatever is on the heap is moved out of the collector's sight
(`gc.freeze()`), so CPython's own collections (with larger thresholds, `THRESHOLDS`) only ever walk what was
allocated since. Frozen objects are still freed by reference counting, and what a closed connection leaves is freed
that way too: the server breaks the reference cycles of uvicorn's and websockets' protocol objects and of its own
socket objects when a connection ends (`quizroom.server.protocols`, `quizroom.server.sockets`; pinned by
tests/system/test_collector.py), and a refusal drops its traceback. Before that, each closed socket left ~100
objects in cycles and a *reclaim* (`gc.unfreeze()`, one full collection, freeze again: 0.7–1.5 s with 9,000 players
in 300 rooms) ran every 2,000 closed connections, landing in other rooms' questions and reveals.

What is left for a reclaim is garbage nobody foresaw (a cycle in a library, a room's objects at eviction). It is
caught by CPython's own rule, applied to the frozen heap: a reclaim once it has grown by a quarter since the last
one, at a moment when no room of this process is busy (`busy`: a question open, a close, reveal or finish under
way), at most once a minute; on a server where some room is always busy, only once it has doubled, at most every
five minutes. Growth is counted only past a floor (`MIN_GROWTH`), and what the players who arrived since the last
reclaim account for (`PER_PLAYER` objects each) is not counted at all: a server filling up from its start-up heap
grows tenfold with no garbage. A reclaim that finds next to nothing (under 5 % of what it walked) doubles the growth
the next one waits for, up to 4× (a real leak is still reclaimed before the heap is a few times its size): a
reclaim is a second or more of pause (3.4 s at 1.15 million objects on a busy core, long enough for a cluster to
take the worker for dead: the heartbeat's thread needs the GIL too), and one that frees nothing is pure loss. A
server whose population is steady never pauses.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import structlog

from quizroom.rooms.actors.heap import THRESHOLDS
from quizroom.server.background import BackgroundTask

log = structlog.get_logger("quizroom.collector")

#: A reclaim once the frozen heap has grown by this share since the last one, while no room is busy (CPython's rule),
#: asked at most this often (counting the frozen objects walks them: ~5 ms a million) ...
IDLE_GROWTH = 0.25
IDLE_RECLAIM_S = 60.0
#: ... and, on a server where some room is always busy, once it has grown by this share, at most this often: the
#: garbage stays bounded (at most the live heap again) and a growing server pauses once per doubling.
BUSY_GROWTH = 1.0
BUSY_RECLAIM_S = 300.0
#: Growth below this many objects never makes a reclaim due (~100 MB if all of it were garbage).
MIN_GROWTH = 1_000_000
#: Objects a player held in memory accounts for (measured: ~70 a seated, playing player, sockets included): growth
#: up to this many per player who arrived since the last reclaim is population, not garbage.
PER_PLAYER = 200
#: A reclaim that collects less than this share of the objects it walked was not worth its pause: the next waits for
#: twice the growth, up to `MAX_PATIENCE` times; one that collects more resets the wait.
FRUITLESS = 0.05
MAX_PATIENCE = 4.0


class CollectorPolicy(BackgroundTask):
    """Freezes the heap every `interval_s` and reclaims frozen garbage at quiet moments (see the module docstring).

    `busy()` says whether a pause now would delay players (some room here is in a question or a transition).
    """

    name = "collector-policy"

    def __init__(
        self,
        busy: Callable[[], bool],
        *,
        interval_s: float = 0.25,
        idle_reclaim_s: float = IDLE_RECLAIM_S,
        busy_reclaim_s: float = BUSY_RECLAIM_S,
        min_growth: int = MIN_GROWTH,
        population: Callable[[], int] = lambda: 0,
        on_reclaim: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__()
        self.busy = busy
        self.population = population  # players held in memory by this process (rooms' shards)
        self.min_growth = min_growth
        self.patience = 1.0  # multiplies the growth a reclaim waits for (see FRUITLESS)
        self.interval_s = interval_s
        self.idle_reclaim_s = idle_reclaim_s
        self.busy_reclaim_s = busy_reclaim_s
        self.on_reclaim = on_reclaim
        self.reclaims = 0
        self._frozen_at_reclaim = 0
        self._population_at_reclaim = 0
        self._reclaimed_at = time.monotonic()
        self._growth_check_at = self._reclaimed_at + idle_reclaim_s
        self._thresholds = gc.get_threshold()

    def start(self) -> None:
        self._thresholds = gc.get_threshold()
        gc.set_threshold(*THRESHOLDS)
        gc.collect()  # start-up garbage goes now; what survives (modules, the app) is permanent
        self._settle()
        super().start()

    async def stop(self) -> None:
        await super().stop()
        gc.unfreeze()  # back to CPython's collector as it was (tests run several servers in one process)
        gc.set_threshold(*self._thresholds)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.tick()
            except Exception:  # a policy must never take the server down
                log.exception("collector_tick_failed")

    def tick(self) -> None:
        """Reclaim if due, else freeze what is on the heap now."""
        if self._reclaim_due():
            self.reclaim()
        else:
            gc.freeze()

    def _reclaim_due(self) -> bool:
        now = time.monotonic()
        if now < self._growth_check_at:
            return False
        busy = self.busy()
        if busy and now - self._reclaimed_at < self.busy_reclaim_s:
            return False
        # Counting the frozen objects walks them all (~5 ms a million): asked at most once per `idle_reclaim_s`.
        self._growth_check_at = now + self.idle_reclaim_s
        arrived = max(0, self.population() - self._population_at_reclaim)
        grown = gc.get_freeze_count() - self._frozen_at_reclaim - PER_PLAYER * arrived
        share = (BUSY_GROWTH if busy else IDLE_GROWTH) * self.patience
        return grown > max(self.min_growth, share * self._frozen_at_reclaim)

    def reclaim(self) -> int:
        """One full collection of everything, frozen or not; returns the number of objects collected."""
        began = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        self._settle()
        walked = collected + self._frozen_at_reclaim  # what was freed and what survived
        self.patience = min(MAX_PATIENCE, self.patience * 2) if collected < FRUITLESS * walked else 1.0
        took = time.perf_counter() - began
        self.reclaims += 1
        if self.on_reclaim is not None:
            self.on_reclaim(took)
        log.info(
            "gc_reclaim",
            collected=collected,
            frozen=self._frozen_at_reclaim,
            took_ms=round(took * 1000, 1),
            patience=self.patience,
        )
        return collected

    def _settle(self) -> None:
        gc.freeze()
        self._frozen_at_reclaim = gc.get_freeze_count()
        self._population_at_reclaim = self.population()
        self._reclaimed_at = time.monotonic()
        self._growth_check_at = self._reclaimed_at + self.idle_reclaim_s
