"""How long this worker may still speak for the rooms it coordinates, by its own monotonic clock.

A coordinator's lease expires in PostgreSQL `ttl_s` after the heartbeat that renewed it, by the database's clock;
then another worker may take the room over. The worker cannot read that clock, but it knows when it *sent* the
heartbeat: the database stamped the renewal after that, so the lease holds at least until `sent + ttl_s`. Tenure
ends `margin_s` before that, so a worker that was paused, partitioned or slow stops speaking for its rooms
before anyone else can have started to (clock rates differ by far less than the margin over a few seconds).

While tenure has lapsed, coordinators hold back everything they would send or write (`Coordinator._run`), and
release it in order once a heartbeat renews tenure — or drop it when that heartbeat shows the lease was lost.
A server alone (SQLite, `SoloCluster`) has nobody to hand its rooms to: its tenure never lapses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from quizroom.rooms.game.clock import Clock


class Tenure:
    def __init__(self, clock: Clock, ttl_s: float = math.inf, margin_s: float = 0.0) -> None:
        if margin_s < 0 or (math.isfinite(ttl_s) and margin_s >= ttl_s):
            raise ValueError(f"the tenure margin must be in [0, ttl): {margin_s} of {ttl_s}")
        self.clock = clock
        self.ttl_s = ttl_s
        self.margin_s = margin_s
        # A fresh worker holds no lease yet, and any it takes from now on expires no sooner than now + ttl.
        self.until = clock.monotonic() + ttl_s - margin_s
        self._waiting: list[Callable[[], None]] = []

    def holds(self) -> bool:
        return self.clock.monotonic() < self.until

    def renewed(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (monotonic) was committed: the leases it renewed hold past then."""
        self.until = max(self.until, sent_at + self.ttl_s - self.margin_s)
        if self.holds():
            waiting, self._waiting = self._waiting, []
            for callback in waiting:
                callback()

    def extend(self, sent_at: float) -> None:
        """As `renewed`, from another thread (the heartbeat's, `quizroom.storage.pulse`): only moves the end of
        tenure (one attribute store; racing `renewed`, either later bound may win, and both are true). Coordinators
        waiting for a renewal are released by `renewed` on the event loop."""
        self.until = max(self.until, sent_at + self.ttl_s - self.margin_s)

    def when_renewed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once tenure holds again (at once if it does)."""
        if self.holds():
            callback()
        else:
            self._waiting.append(callback)
