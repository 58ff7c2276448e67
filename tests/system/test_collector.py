"""The collector policy: long-lived objects leave the collector's sight; a closed connection leaves nothing for it;
frozen garbage comes back at a reclaim, once the frozen heap has grown and no room is busy (or has doubled)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvloop
from websockets.asyncio.client import connect

from quizroom.rooms.actors.heap import THRESHOLDS
from quizroom.server.collector import PER_PLAYER, CollectorPolicy
from quizroom.server.serving import server_for
from quizroom.server.settings import Settings
from tests.gameclient import Host, quiz
from tests.serverproc import free_port
from tests.system.test_metrics import scrape, value


class Cycle:
    """An object only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


class World:
    def __init__(self) -> None:
        self.busy = False
        self.players = 0
        self.pauses: list[float] = []

    def policy(
        self, idle_reclaim_s: float = 3600.0, busy_reclaim_s: float = 3600.0, min_growth: int = 0
    ) -> CollectorPolicy:
        return CollectorPolicy(
            lambda: self.busy,
            population=lambda: self.players,
            idle_reclaim_s=idle_reclaim_s,
            min_growth=min_growth,
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


def test_a_server_where_some_room_is_always_busy_reclaims_only_a_doubled_heap_and_not_too_often(
    world: World,
) -> None:
    world.busy = True
    policy = world.policy(idle_reclaim_s=0.0, busy_reclaim_s=0.0)
    policy.reclaim()
    ref = frozen_garbage()
    quarter = [Cycle() for _ in range(gc.get_freeze_count() // 2)]
    policy.tick()  # freezes the growth
    policy.tick()
    assert ref() is not None and policy.reclaims == 1, "grown by half: enough when idle, not while busy"
    doubled = [Cycle() for _ in range(gc.get_freeze_count())]
    policy.tick()
    policy.tick()
    assert ref() is None and policy.reclaims == 2, "doubled"
    rare = world.policy(idle_reclaim_s=0.0, busy_reclaim_s=3600.0)
    rare.reclaim()
    ref = frozen_garbage()
    again = [Cycle() for _ in range(2 * gc.get_freeze_count())]
    rare.tick()
    rare.tick()
    assert ref() is not None and rare.reclaims == 1, "doubled, but the last reclaim is too recent"
    del quarter, doubled, again


def test_growth_under_the_floor_makes_no_reclaim_due(world: World) -> None:
    policy = world.policy(idle_reclaim_s=0.0)
    policy.reclaim()
    policy.min_growth = 10 * gc.get_freeze_count()
    ref = frozen_garbage()
    grown = [Cycle() for _ in range(gc.get_freeze_count())]  # doubled, yet under the floor
    policy.tick()
    policy.tick()
    assert ref() is not None and policy.reclaims == 1
    del grown


def test_growth_that_the_players_who_arrived_account_for_makes_no_reclaim_due(world: World) -> None:
    policy = world.policy(idle_reclaim_s=0.0)
    policy.reclaim()
    ref = frozen_garbage()
    arrived = [Cycle() for _ in range(gc.get_freeze_count())]  # doubled ...
    world.players = len(arrived) // PER_PLAYER + 1  # ... by what this many players account for
    policy.tick()
    policy.tick()
    assert ref() is not None and policy.reclaims == 1
    world.players = 0  # they left: the growth is no longer theirs
    policy.tick()
    assert ref() is None and policy.reclaims == 2
    del arrived


def test_a_reclaim_that_frees_next_to_nothing_makes_the_next_one_wait_for_twice_the_growth(world: World) -> None:
    policy = world.policy(idle_reclaim_s=0.0)
    policy.reclaim()
    policy.reclaim()  # nothing left to free
    assert policy.patience >= 2.0
    patience = policy.patience
    ref = frozen_garbage()
    third = [Cycle() for _ in range(gc.get_freeze_count() // 3)]  # by a third: enough for patience 1, not 2+
    policy.tick()
    policy.tick()
    assert ref() is not None and policy.reclaims == 2
    garbage = [Cycle() for _ in range(3 * gc.get_freeze_count())]
    policy.tick()  # freezes it
    del garbage
    policy.tick()
    assert ref() is None and policy.reclaims == 3
    assert policy.patience == 1.0 < patience, "a reclaim that freed plenty resets the wait"
    del third


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


#: What the server allocates per connection: none of it may be left in a reference cycle once the connection ends.
SERVER_SIDE = frozenset(
    {
        "quizroom.server.protocols.GuardedHttpToolsProtocol",
        "quizroom.server.protocols.GuardedWebSocketsProtocol",
        "quizroom.server.protocols._CloseAfterResponse",
        "quizroom.server.sockets.SocketConn",
        "quizroom.server.sockets.DirectIntake",
        "quizroom.rooms.actors.sessions.Session",
        "websockets.server.ServerProtocol",
        "uvicorn.protocols.http.httptools_impl.RequestResponseCycle",
        "httptools.parser.parser.HttpRequestParser",
        "uvloop.loop.TCPTransport",
    }
)


def cyclic_garbage() -> Counter[str]:
    """Every object only the cyclic collector could free right now, by type (and freed)."""
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def play_and_leave(url: str) -> None:
    """A host socket and players who join, answer and leave; HTTP calls, some refused; then every socket closes."""
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        host = await Host.open(http, quiz(1))
        async with connect(host.room["host_ws_url"], open_timeout=10) as host_ws:
            await host_ws.send(orjson.dumps({"type": "hello", "token": host.room["host_token"]}).decode())
            assert orjson.loads(await host_ws.recv())["type"] == "welcome"
            players = [await host.join(f"P{i}") for i in range(6)]
            for player in players:
                await player.connect()
            await host.command("start")
            for i, player in enumerate(players):
                await player.expect("question")
                await player.answer(0, i % 4)
                await player.expect("answer_ack")
            await host.command("close", expect=409)  # everyone answered: closed already (a refusal, kept too)
            assert (await http.get("/api/rooms/000000")).status_code == 404
            taken = await http.post(f"/api/rooms/{host.pin}/players", json={"nickname": "P0"})
            assert taken.status_code == 409, taken.text  # a refusal from inside the room's actor
            for player in players:
                await player.close()


def test_closed_sockets_and_requests_leave_no_reference_cycles(tmp_path: Path) -> None:
    """The real server (uvicorn on uvloop, in a thread of this process so its heap can be looked at): after a game's
    sockets and HTTP connections have ended, nothing of theirs waits for the cyclic collector, so closing
    connections makes no full collection necessary (server/collector.py)."""
    settings = Settings(
        host="127.0.0.1", port=free_port(), database_url=f"sqlite:///{tmp_path / 'quizroom.db'}", gc_freeze=0
    )
    server = server_for(settings)
    thread = threading.Thread(target=uvloop.run, args=(server.serve(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20.0
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        cyclic_garbage()  # whatever earlier tests of this process left
        asyncio.run(play_and_leave(f"http://127.0.0.1:{settings.port}"))
        app: Any = server.config.app
        counters = app.state.runtime.counters
        deadline = time.monotonic() + 10.0
        while counters.sockets_open or server.server_state.connections:
            assert time.monotonic() < deadline, "the server still holds connections"
            time.sleep(0.02)
        left = {
            name: count
            for name, count in cyclic_garbage().items()
            if name in SERVER_SIDE or name.startswith("quizroom.")
        }
        assert left == {}, f"connections left reference cycles: {left}"
    finally:
        server.should_exit = True
        thread.join(timeout=20.0)


async def test_a_server_freezes_its_heap(start_server: Any, sqlite_url: str) -> None:
    """The wiring: the policy runs on the real server (its frozen objects show in the metrics)."""
    server = start_server(sqlite_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        deadline = time.monotonic() + 10.0
        while value(await scrape(http), "quizroom_gc_frozen_objects") <= 0:
            assert time.monotonic() < deadline, "nothing frozen"
            await asyncio.sleep(0.05)
