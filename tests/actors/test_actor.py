"""The room actor without a network: real SQLite storage, recording connections, storage that fails on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from quizroom.rooms.actors.coordinator import Coordinator
from quizroom.rooms.actors.limits import ActorLimits
from quizroom.rooms.actors.sessions import Frame
from quizroom.rooms.cluster.registry import RoomRegistry
from quizroom.rooms.game.clock import SystemClock
from quizroom.rooms.game.quiz import parse_quiz
from quizroom.storage.base import StorageError
from quizroom.storage.records import Batch, Outcome
from quizroom.storage.sqlite import SQLiteStorage
from tests.gameclient import quiz


class FailingStorage(SQLiteStorage):
    """Real SQLite whose commits fail while `down` is set, as a disk or network fault would."""

    down = False
    failed = 0

    async def commit(self, batch: Batch) -> Outcome:
        if self.down:
            self.failed += 1
            raise StorageError("injected fault")
        return await super().commit(batch)


class Recorder:
    """A `Connection` that keeps what the room sent it."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: int | None = None
        self.arrived = asyncio.Event()

    def send(self, frame: Frame) -> None:
        self.frames.append(orjson.loads(frame.text))
        self.arrived.set()

    def send_many(self, frames: Sequence[Frame]) -> None:
        for frame in frames:
            self.send(frame)

    def close(self, code: int, reason: str = "") -> None:
        self.closed = code

    async def next(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                for i, frame in enumerate(self.frames):
                    if frame["type"] == kind:
                        return self.frames.pop(i)
                self.arrived.clear()
                await self.arrived.wait()


async def open_room(registry: RoomRegistry) -> Coordinator:
    from quizroom.storage.records import QuizRow

    body = quiz(2)
    await registry.storage.create_quiz(QuizRow("q1", body["title"], orjson.dumps(body).decode(), 0))
    actor, _ = await registry.create("q1", parse_quiz(body))
    return actor


async def test_a_failed_commit_is_an_error_never_an_ack_and_the_retry_lands_once(
    rig: tuple[RoomRegistry, FailingStorage],
) -> None:
    registry, storage = rig
    actor = await open_room(registry)
    joined = [await actor.join(name) for name in ("ann", "bob")]
    conns = [Recorder(), Recorder()]
    shard = await registry.shard_for(actor.pin, joined[0].token)
    sessions = [
        await (await registry.shard_for(actor.pin, j.token)).attach(c, j.token)
        for c, j in zip(conns, joined, strict=True)
    ]
    await actor.command("start")
    await conns[0].next("question")

    storage.down = True
    shard.deliver(sessions[0], {"type": "answer", "question": 0, "choice": 0})
    error = await conns[0].next("error")
    assert error["code"] == "unavailable" and storage.failed >= 1
    assert not [f for f in conns[0].frames if f["type"] == "answer_ack"]
    assert (await actor.snapshot())["answers"] == 0

    storage.down = False
    shard.deliver(sessions[0], {"type": "answer", "question": 0, "choice": 0})
    ack = await conns[0].next("answer_ack")
    assert ack["accepted"] and not ack["duplicate"]
    document = await registry.results(actor.pin)
    assert document is not None
    assert [len(p["answers"]) for p in document["players"] if p["nickname"] == "ann"] == [1]
    assert await storage.load_answers(actor.state.room_id) == [
        a for a in await storage.load_answers(actor.state.room_id) if a.player_id == joined[0].player_id
    ]


async def test_joins_fail_cleanly_while_storage_is_down(rig: tuple[RoomRegistry, FailingStorage]) -> None:
    from quizroom.rooms.game.errors import Unavailable

    registry, storage = rig
    actor = await open_room(registry)
    storage.down = True
    with pytest.raises(Unavailable):
        await actor.join("ann")
    storage.down = False
    assert (await actor.join("ann")).nickname == "ann"  # the nickname was released, not leaked


async def test_a_rejoin_after_a_kick_that_was_never_stored_is_refused_not_lost(
    rig: tuple[RoomRegistry, FailingStorage],
) -> None:
    """The kick's commit failed, so the stored "ann" is still live: a new "ann" is refused (423 `kicked`: the host
    barred the name), not skipped by the database and answered 201 with a token for a player who has no row."""
    from quizroom.rooms.game.errors import Removed, Unavailable

    registry, storage = rig
    actor = await open_room(registry)
    ann = await actor.join("ann")
    storage.down = True
    with pytest.raises(Unavailable):
        await actor.kick(ann.player_id)
    storage.down = False
    with pytest.raises(Removed):
        await actor.join("ann")
    bob = await actor.join("bob")  # the writer goes on; so does the room
    stored = await storage.load_players(actor.state.room_id)
    assert [(p.player_id, p.kicked) for p in stored] == [(ann.player_id, False), (bob.player_id, False)]


async def test_a_room_is_loaded_once_however_many_ask_at_once(rig: tuple[RoomRegistry, FailingStorage]) -> None:
    registry, _ = rig
    actor = await open_room(registry)
    await actor.join("ann")
    pin = actor.state.pin
    await registry.close()  # forget it: a new registry's lookups must load it from storage
    fresh = RoomRegistry(registry.storage, registry.writer, SystemClock(), ActorLimits())
    loaded = await asyncio.gather(*(fresh.get(pin) for _ in range(20)))
    assert len({id(a) for a in loaded}) == 1 and loaded[0] is not None
    assert isinstance(loaded[0], Coordinator)
    assert [p.nickname for p in loaded[0].state.players.values()] == ["ann"]
    await fresh.close()


class Log:
    """One ordered record of what several connections received: (who, type)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def conn(self, who: str) -> Recorder:
        log = self

        class Logged(Recorder):
            def send(self, frame: Frame) -> None:
                log.entries.append((who, orjson.loads(frame.text)["type"]))
                super().send(frame)

        return Logged()


async def test_players_get_the_question_before_the_host_hears_of_it(rig: tuple[RoomRegistry, FailingStorage]) -> None:
    """In one process the coordinator hands the question to its shard, then lets the shard run before the rest
    of its effects: the host's frames (the question, the reply to its command) follow the players'. Without it the
    host's reply overtook the broadcast, and a quick next command queued behind it."""
    registry, _ = rig
    body = quiz(2)
    from quizroom.storage.records import QuizRow

    await registry.storage.create_quiz(QuizRow("q1", body["title"], orjson.dumps(body).decode(), 0))
    actor, host_token = await registry.create("q1", parse_quiz(body))
    log = Log()
    host, player = log.conn("host"), log.conn("player")
    await actor.attach(host, host_token)
    joined = await actor.join("ann")
    await (await registry.shard_for(actor.pin, joined.token)).attach(player, joined.token)
    log.entries.clear()
    await actor.command("start")
    await player.next("question")
    await host.next("state")
    order = [e for e in log.entries if e[1] in ("question", "state")]
    assert order[0] == ("player", "question"), order
    assert order.index(("host", "state")) > order.index(("player", "question"))


async def test_a_coordinator_holds_everything_while_tenure_has_lapsed(rig: tuple[RoomRegistry, FailingStorage]) -> None:
    """No heartbeat for 0.75 × TTL: the coordinator may no longer be the room's owner, so it neither writes nor
    sends; a renewal releases what it held, in order."""
    from quizroom.rooms.actors.tenure import Tenure
    from quizroom.rooms.game.clock import ManualClock
    from quizroom.storage.records import KickRow, QuizRow

    registry, storage = rig
    clock = ManualClock()
    registry.tenure = Tenure(clock, ttl_s=2.0, margin_s=0.5)  # as a worker of a cluster has
    body = quiz(2)
    await registry.storage.create_quiz(QuizRow("q1", body["title"], orjson.dumps(body).decode(), 0))
    actor, _ = await registry.create("q1", parse_quiz(body))
    joined = await actor.join("ann")
    player = Recorder()
    await (await registry.shard_for(actor.pin, joined.token)).attach(player, joined.token)
    clock.advance(1.6)
    started = asyncio.ensure_future(actor.command("start"))
    for _ in range(50):
        await asyncio.sleep(0)  # turns of the loop, so the command reaches the coordinator's inbox
    await registry.writer.add_kick(KickRow(actor.room_id, "nobody"))  # a barrier: earlier writes are in by now
    assert not started.done() and not [f for f in player.frames if f["type"] == "question"]
    row = await storage.find_room(actor.pin)
    assert row is not None and row.phase == "lobby", "nothing was written while tenure had lapsed"
    registry.tenure.renewed(sent_at=clock.monotonic())
    state = await asyncio.wait_for(started, 10)
    assert state["phase"] == "question"
    await player.next("question")
