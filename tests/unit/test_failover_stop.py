"""A deposed coordinator is stopped even when the heartbeat's handling is cancelled half-way (a shutdown cancels it):
it was uninstalled before its stop began, so nothing else would stop it (`quizroom.rooms.cluster.failover`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from quizroom.rooms.actors.tenure import Tenure
from quizroom.rooms.cluster.failover import Failover
from quizroom.rooms.game.clock import ManualClock
from quizroom.rooms.game.rules import Phase


@dataclass
class Deposed:
    """What the failover reads and calls of a coordinator; its stop takes as long as the test says."""

    room_id: str = "room-1"
    epoch: int = 7
    state: Any = field(default_factory=lambda: type("State", (), {"phase": Phase.QUESTION})())
    silenced: bool = False
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    may_finish: asyncio.Event = field(default_factory=asyncio.Event)
    stopped_with: int | None = None

    def depose(self) -> None:
        self.silenced = True

    async def stop(self, code: int) -> None:
        self.stopping.set()
        await self.may_finish.wait()
        self.stopped_with = code


class Rooms:
    def __init__(self, coordinator: Deposed) -> None:
        self.installed: dict[str, Deposed] = {"123456": coordinator}

    def uninstall(self, pin: str, coordinator: Deposed) -> bool:
        return self.installed.pop(pin, None) is coordinator


class Cluster:
    ttl_s = 2.0
    worker_id = "w1"


async def test_a_beat_cancelled_while_stopping_a_deposed_coordinator_still_stops_it() -> None:
    clock = ManualClock()
    coordinator = Deposed()
    failover = Failover(
        cast(Any, Rooms(coordinator)), cast(Any, Cluster()), cast(Any, None), clock, Tenure(clock, 2.0, 0.5)
    )
    handling = asyncio.ensure_future(failover._beaten(clock.monotonic(), {"123456": cast(Any, coordinator)}, {}))
    await asyncio.wait_for(coordinator.stopping.wait(), 5)  # the lease was lost (no renewal): it is being stopped
    assert coordinator.silenced
    handling.cancel()  # the shutdown
    await asyncio.sleep(0)
    handling.cancel()  # and once more, while the stop is still going
    coordinator.may_finish.set()
    with pytest.raises(asyncio.CancelledError):
        await handling
    assert coordinator.stopped_with is not None  # stopped all the same (4421: its players follow the new owner)
