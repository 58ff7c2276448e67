"""Keeps CPython's full garbage collections away from the moments players are waiting on.

Why: a full collection walks every tracked object, and CPython starts one whenever the heap has grown by a quarter.
A room's objects live as long as its sockets (protocol objects, parsers, buffers, sessions), so a 10,000-player
room is ~900,000 objects and each full collection took ~0.55 s on one core here: a join storm into such a room paid
about a dozen of them (2.8 s of its 11 s, bench/RESULTS.md), and one landing in an answer burst delayed every ack by
half a second.

What this does instead: four times a second, whatever is on the heap is moved out of the collector's sight
(`gc.freeze()`), so CPython's own collections (with larger thresholds, `THRESHOLDS`) only ever walk what was
allocated since. Frozen objects are still freed by reference counting; what reference counting cannot free is a
closed connection's cycles (websockets' and uvicorn's protocol objects refer to themselves: ~50 objects a socket),
and those wait for a *reclaim* — `gc.unfreeze()`, one full collection, freeze again — which runs when enough
connections have closed since the last one and no room of this process has a question open, or regardless once
overdue. A reclaim is itself a full collection (~0.8 s right after a 10,000-player room has finished), but it comes
when nobody is waiting on an answer. Garbage left by anything else is caught by a reclaim when the frozen heap has
grown by a quarter since the last one (CPython's own rule): at a quiet moment, at most once a minute, or after five
minutes regardless, on a server where some question is always open.
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

#: Past this many closed connections per `reclaim_after`, a reclaim runs even while a question is open: the memory
#: held by their cycles is bounded.
OVERDUE_FACTOR = 10
#: A reclaim for garbage that no closed connection accounts for (a game's own cycles: ~1,000 objects a second in a
#: 500-player soak), once the frozen heap has grown by a quarter: at most this often while no question is open ...
IDLE_RECLAIM_S = 60.0
#: ... and, on a server where some question is always open, at most this often anyway: the garbage stays bounded.
BUSY_RECLAIM_S = 300.0


class CollectorPolicy(BackgroundTask):
    """Freezes the heap every `interval_s` and reclaims frozen garbage at quiet moments (see the module docstring).

    `busy()` says whether a pause now would delay players (a question is open here); `closed()` is a running count
    of connections closed in this process. `reclaim_after` closed connections make a reclaim due.
    """

    name = "collector-policy"

    def __init__(
        self,
        busy: Callable[[], bool],
        closed: Callable[[], int],
        *,
        reclaim_after: int,
        interval_s: float = 0.25,
        idle_reclaim_s: float = IDLE_RECLAIM_S,
        busy_reclaim_s: float = BUSY_RECLAIM_S,
        on_reclaim: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__()
        self.busy = busy
        self.closed = closed
        self.reclaim_after = reclaim_after
        self.interval_s = interval_s
        self.idle_reclaim_s = idle_reclaim_s
        self.busy_reclaim_s = busy_reclaim_s
        self.on_reclaim = on_reclaim
        self.reclaims = 0
        self._closed_at_reclaim = closed()
        self._frozen_at_reclaim = 0
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
        closed = self.closed() - self._closed_at_reclaim
        if closed >= self.reclaim_after * OVERDUE_FACTOR:
            return True
        busy = self.busy()
        if not busy and closed >= self.reclaim_after:
            return True
        now = time.monotonic()
        if now < self._growth_check_at or (busy and now - self._reclaimed_at < self.busy_reclaim_s):
            return False
        # Counting the frozen objects walks them all (~5 ms a million): asked at most once per `idle_reclaim_s`.
        self._growth_check_at = now + self.idle_reclaim_s
        return (gc.get_freeze_count() - self._frozen_at_reclaim) * 4 > self._frozen_at_reclaim

    def reclaim(self) -> int:
        """One full collection of everything, frozen or not; returns the number of objects collected."""
        began = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        self._settle()
        took = time.perf_counter() - began
        self.reclaims += 1
        if self.on_reclaim is not None:
            self.on_reclaim(took)
        log.info("gc_reclaim", collected=collected, frozen=self._frozen_at_reclaim, took_ms=round(took * 1000, 1))
        return collected

    def _settle(self) -> None:
        gc.freeze()
        self._frozen_at_reclaim = gc.get_freeze_count()
        self._closed_at_reclaim = self.closed()
        self._reclaimed_at = time.monotonic()
        self._growth_check_at = self._reclaimed_at + self.idle_reclaim_s
