"""The collector policy: long-lived objects leave the collector's sight; frozen garbage comes back at a reclaim,
which waits while a question is open unless overdue."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from quizroom.rooms.actors.heap import THRESHOLDS
from quizroom.server.collector import OVERDUE_FACTOR, CollectorPolicy
from tests.gameclient import Host, quiz
from tests.test_metrics import scrape, value


class Cycle:
    """An object only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


class World:
    def __init__(self) -> None:
        self.busy = False
        self.closed = 0
        self.pauses: list[float] = []

    def policy(
        self, reclaim_after: int = 10, idle_reclaim_s: float = 3600.0, busy_reclaim_s: float = 3600.0
    ) -> CollectorPolicy:
        return CollectorPolicy(
            lambda: self.busy,
            lambda: self.closed,
            reclaim_after=reclaim_after,
            idle_reclaim_s=idle_reclaim_s,
            busy_reclaim_s=busy_reclaim_s,
            on_reclaim=self.pauses.append,
        )


@pytest.fixture
def world() -> Iterator[World]:
    yield World()
    gc.unfreeze()  # the test process's collector as it was


def frozen_garbage() -> weakref.ref[Cycle]:
    """A cycle that is frozen while alive and dropped afterwards: garbage only a reclaim can free."""
    cycle = Cycle()
    gc.freeze()
    ref = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert ref() is not None, "a frozen cycle is out of the collector's sight"
    return ref


def test_a_tick_freezes_what_is_on_the_heap(world: World) -> None:
    policy = world.policy()
    before = gc.get_freeze_count()
    kept = [Cycle() for _ in range(1000)]
    policy.tick()
    assert gc.get_freeze_count() >= before + len(kept)
    assert policy.reclaims == 0


def test_closed_connections_make_a_reclaim_due_which_frees_frozen_garbage(world: World) -> None:
    policy = world.policy(reclaim_after=10)
    ref = frozen_garbage()
    world.closed = 9
    policy.tick()
    assert ref() is not None and policy.reclaims == 0
    world.closed = 10
    policy.tick()
    assert ref() is None
    assert policy.reclaims == 1 and len(world.pauses) == 1
    assert gc.get_freeze_count() > 0, "what survived the reclaim is frozen again"
    policy.tick()
    assert policy.reclaims == 1, "counted from the last reclaim"


def test_an_open_question_defers_the_reclaim_until_it_is_overdue(world: World) -> None:
    policy = world.policy(reclaim_after=10)
    ref = frozen_garbage()
    world.busy = True
    world.closed = 10 * OVERDUE_FACTOR - 1
    policy.tick()
    assert ref() is not None and policy.reclaims == 0
    world.closed += 1
    policy.tick()
    assert ref() is None and policy.reclaims == 1


def test_the_question_closing_lets_a_deferred_reclaim_run(world: World) -> None:
    policy = world.policy(reclaim_after=10)
    ref = frozen_garbage()
    world.busy, world.closed = True, 50
    policy.tick()
    assert ref() is not None
    world.busy = False
    policy.tick()
    assert ref() is None and policy.reclaims == 1


def test_while_idle_a_heap_grown_by_a_quarter_is_reclaimed_now_and_then(world: World) -> None:
    policy = world.policy(idle_reclaim_s=0.0)
    policy.reclaim()
    ref = frozen_garbage()
    policy.tick()
    assert ref() is not None, "not grown by a quarter yet"
    grown = [Cycle() for _ in range(gc.get_freeze_count())]
    policy.tick()  # freezes the growth
    world.busy = True
    policy.tick()
    assert ref() is not None and policy.reclaims == 1, "not while a question is open"
    world.busy = False
    policy.tick()
    assert ref() is None and policy.reclaims == 2
    del grown


def test_a_server_that_always_has_a_question_open_still_reclaims_a_grown_heap_now_and_then(world: World) -> None:
    world.busy = True
    for busy_reclaim_s, reclaims in ((3600.0, 0), (0.0, 1)):
        policy = world.policy(idle_reclaim_s=0.0, busy_reclaim_s=busy_reclaim_s)
        policy.reclaim()
        ref = frozen_garbage()
        grown = [Cycle() for _ in range(gc.get_freeze_count())]
        policy.tick()  # freezes the growth
        policy.tick()
        assert (ref() is None) is bool(reclaims), busy_reclaim_s
        assert policy.reclaims == 1 + reclaims
        del grown


async def test_start_freezes_and_stop_hands_back_to_cpython(world: World) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    policy = world.policy()
    policy.start()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == THRESHOLDS
    await policy.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


async def test_a_server_reclaims_what_closed_sockets_left_once_no_question_is_open(
    start_server: Any, sqlite_url: str
) -> None:
    """The wiring: sockets closed on the real server count, and the reclaim runs once the question is closed."""
    server = start_server(sqlite_url, "--gc-reclaim-after", "3")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(1))
        players = [await host.join(f"P{i}") for i in range(4)]
        for player in players:
            await player.connect()
        await host.command("start")
        for player in players:
            await player.expect("question")
        for player in players[:3]:
            await player.close()
        await host.command("close")
        deadline = time.monotonic() + 10.0
        while (reclaims := value(await scrape(http), "quizroom_gc_reclaim_seconds_count")) < 1:
            assert time.monotonic() < deadline, "no reclaim after 3 closed sockets and the question closed"
            await asyncio.sleep(0.05)
        assert reclaims >= 1
        assert value(await scrape(http), "quizroom_gc_frozen_objects") > 0, "frozen again after the reclaim"
