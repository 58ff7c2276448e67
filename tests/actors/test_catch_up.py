"""A shard whose coordinator's events were lost catches up when it is placed again or its room is taken over.

After a restart or a failover, the coordinator's events for a shard can go to the shard's old home (a dead worker's
channel) and be lost, while the players reconnect to the shard's new home, loaded from storage or kept in memory
before the question opened. The coordinator then re-applies its phase to the shard (open, close and reveal,
finish): before this, those players never saw the next question and their next message was `finished`.
In one process with a link that drops everything standing for the dead worker's channel; real SQLite (the
`rig` fixture of tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

from quizroom.rooms.actors.coordinator import Coordinator
from quizroom.rooms.actors.links import LocalShardLink
from quizroom.rooms.actors.ports import LocalShard
from quizroom.rooms.cluster.registry import RoomRegistry
from quizroom.rooms.game.events import ShardEvent
from tests.actors.test_actor import FailingStorage, Recorder, open_room


class LostLink:
    """The link to a shard's old home on a worker that died: every event sent through it is lost."""

    def __init__(self, shard: int) -> None:
        self.shard = shard
        self.worker_id = "dead-worker"
        self.local: LocalShard | None = None
        self.lost: list[str] = []

    def send(self, event: ShardEvent) -> None:
        self.lost.append(type(event).__name__)


async def seated(registry: RoomRegistry, room: Coordinator) -> tuple[Any, list[Recorder]]:
    """Two players on the room's one shard, each with a recording socket."""
    joined = [await room.join(name) for name in ("ann", "bob")]
    shard = await registry.shard_for(room.pin, joined[0].token)
    conns = [Recorder(), Recorder()]
    for conn, player in zip(conns, joined, strict=True):
        await shard.attach(conn, player.token)
    return shard, conns


async def to_the_first_reveal(room: Coordinator, conns: list[Recorder], *, close: bool = True) -> None:
    """Question 0 opens (and closes, with `close`), every player seeing it."""
    await room.command("start")
    for conn in conns:
        await conn.next("question")
    if close:
        await room.command("close")
        for conn in conns:
            await conn.next("result")


def cut_off(room: Coordinator) -> LostLink:
    """The shard's worker "dies" for the coordinator: its home now points to a channel nobody reads."""
    lost = LostLink(0)
    room.links[0] = lost
    return lost


async def test_a_shard_placed_again_gets_the_question_that_opened_while_its_events_were_lost(
    rig: tuple[RoomRegistry, FailingStorage],
) -> None:
    registry, _ = rig
    room = await open_room(registry)
    shard, conns = await seated(registry, room)
    await to_the_first_reveal(room, conns)

    lost = cut_off(room)
    await room.command("next")  # question 1 opens; its event is lost with the old home
    assert "OpenQuestion" in lost.lost
    assert not [f for c in conns for f in c.frames if f["type"] == "question"]

    room.moved(LocalShardLink(shard, registry.worker_id))  # placed again
    for conn in conns:
        assert (await conn.next("question"))["index"] == 1


async def test_a_shard_placed_again_after_a_reveal_it_missed_gets_the_results(
    rig: tuple[RoomRegistry, FailingStorage],
) -> None:
    registry, _ = rig
    room = await open_room(registry)
    shard, conns = await seated(registry, room)
    await to_the_first_reveal(room, conns, close=False)
    lost = cut_off(room)
    await room.command("close")  # the close and the reveal go nowhere (the reveal goes ahead without the shard)
    assert {"CloseQuestion", "RevealQuestion"} <= set(lost.lost)

    room.moved(LocalShardLink(shard, registry.worker_id))
    results = [await conn.next("result") for conn in conns]
    assert {r["question"] for r in results} == {0} and all(r["your_choice"] is None for r in results)
    await room.command("next")
    for conn in conns:
        assert (await conn.next("question"))["index"] == 1


async def test_a_room_taken_over_brings_a_shard_kept_in_memory_up_to_its_phase(
    rig: tuple[RoomRegistry, FailingStorage],
) -> None:
    """The coordinator dies right after storing question 1, before its shard heard of it; the worker that takes
    the room over loads it from storage (phase: question 1) and finds the shard still in memory, one phase behind."""
    registry, _ = rig
    room = await open_room(registry)
    shard, conns = await seated(registry, room)
    await to_the_first_reveal(room, conns)
    cut_off(room)
    await room.command("next")  # stored as question 1, never told to the shard
    assert shard.state.question_index == 0

    del registry._rooms[room.pin]  # the coordinator is gone; its shard lives on
    await room.stop()
    taken_over = await registry.get(room.pin)
    assert isinstance(taken_over, Coordinator) and taken_over is not room
    assert taken_over.links[0].local is shard  # the shard in memory, not a fresh copy from storage
    for conn in conns:
        assert (await conn.next("question"))["index"] == 1
