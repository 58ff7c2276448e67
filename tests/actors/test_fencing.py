"""Fencing on a real PostgreSQL database: a deposed owner's writes are refused, in the statement that writes.

A coordinator writes the room's state under its lease's epoch; a shard's answers go in under its placement's
epoch and only while their question is open in the database. Each test makes an owner stale the way production
does (its lease or placement taken over by another worker) and then tries the write the stale owner would make.
The duplicate rule (a conflicting answer comes back with the stored row) holds on SQLite too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from quizroom.storage.base import Storage, StorageError
from quizroom.storage.cluster import PgCluster
from quizroom.storage.postgres import COPY_THRESHOLD
from quizroom.storage.records import AnswerRow, Batch, Outcome, PlayerRow, QuizRow, RoomRow, RoomStateRow, ScoreRow
from tests.actors.pgcluster import SHORT_TTL, T0, Database, eventually
from tests.actors.test_storage import open_url


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_url(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def state(phase: str, question: int, seq: int, epoch: int) -> RoomStateRow:
    return RoomStateRow("r1", phase, question, T0, False, seq, epoch)


def answer(player: str, question: int = 0, *, epoch: int, response_ms: int = 1500) -> AnswerRow:
    return AnswerRow("r1", question, player, (1,), True, 900, response_ms, T0 + response_ms, shard=0, epoch=epoch)


async def take_over(db: Database, old: PgCluster) -> tuple[PgCluster, int]:
    """A second worker takes the room's lease once `old` has gone silent past the TTL; returns it and its epoch."""
    new = await db.cluster(ttl_s=SHORT_TTL)
    taken: list[int] = []

    async def took() -> bool:
        await new.heartbeat(0)
        epoch = await new.acquire_lease("r1")
        if epoch is not None:
            taken.append(epoch)
        return epoch is not None

    await eventually(took, what="takeover")
    return new, taken[0]


async def test_a_deposed_coordinator_cannot_write_the_room_nor_move_its_seq_back(db: Database) -> None:
    pin = await db.room("r1")
    old = await db.cluster(ttl_s=SHORT_TTL)
    old_epoch = await old.acquire_lease("r1")
    assert old_epoch is not None
    assert await db.storage.commit(Batch(rooms={"r1": state("question", 0, 3, old_epoch)})) == Outcome()
    new, new_epoch = await take_over(db, old)
    assert new_epoch > old_epoch
    assert await db.storage.commit(Batch(rooms={"r1": state("reveal", 0, 4, new_epoch)})) == Outcome()
    assert await db.storage.commit(Batch(rooms={"r1": state("question", 1, 5, new_epoch)})) == Outcome()
    # The old coordinator wakes up (a pause, a partition healed) and writes what its overdue timer decided.
    stale = await db.storage.commit(Batch(rooms={"r1": state("reveal", 0, 4, old_epoch)}))
    assert stale.fenced_rooms == {"r1"}
    # The current holder cannot move seq back either (a bug, or a replay of an old write).
    assert (await db.storage.commit(Batch(rooms={"r1": state("reveal", 0, 4, new_epoch)}))).fenced_rooms == {"r1"}
    row = await db.storage.find_room(pin)
    assert row is not None and (row.phase, row.question_index, row.seq) == ("question", 1, 5)
    # Its renewals say so too: the old worker's heartbeat no longer returns the room.
    assert "r1" not in await old.heartbeat(0)
    assert (await new.heartbeat(0))["r1"] == new_epoch


async def test_a_stale_shard_placement_stores_nothing_and_is_named(db: Database) -> None:
    await db.room("r1")
    a, b = await db.cluster(ttl_s=SHORT_TTL), await db.cluster(ttl_s=SHORT_TTL)
    lease = await b.acquire_lease("r1")
    assert lease is not None
    await db.storage.commit(Batch(rooms={"r1": state("question", 0, 1, lease)}))
    await db.storage.commit(Batch.of(players=[player(p) for p in ("p1", "p2", "p3")]))
    assert await a.place_shard("r1", 0, a.worker_id) == a.worker_id
    first = next(s.epoch for s in await b.shards("r1"))
    assert await db.storage.commit(Batch.of(answers=[answer("p1", epoch=first)])) == Outcome()

    async def a_is_dead() -> bool:
        await b.heartbeat(0)
        return not (await b.shards("r1"))[0].alive

    await eventually(a_is_dead, what="a's expiry")
    assert await b.place_shard("r1", 0, b.worker_id) == b.worker_id
    second = (await b.shards("r1"))[0].epoch
    # The old copy on a, paused meanwhile, commits the answers that waited in its buffers; the new copy its own.
    stale = await db.storage.commit(Batch.of(answers=[answer("p2", epoch=first), answer("p3", epoch=second)]))
    assert stale.fenced_shards == {("r1", 0)} and not stale.closed and not stale.duplicates
    assert {a.player_id for a in await db.storage.load_answers("r1")} == {"p1", "p3"}


async def test_a_deposed_coordinator_can_neither_place_nor_move_a_shard_and_stale_scores_are_not_written(
    db: Database,
) -> None:
    await db.room("r1")
    old = await db.cluster(ttl_s=SHORT_TTL)
    old_epoch = await old.acquire_lease("r1")
    assert old_epoch is not None
    assert await old.place_shard("r1", 0, old.worker_id, lease_epoch=old_epoch) == old.worker_id
    placed = (await old.shards("r1"))[0].epoch
    await db.storage.commit(Batch.of(players=[player("p1")]))
    new, new_epoch = await take_over(db, old)
    # The deposed coordinator opens a shard, and moves one: refused, and told where the shard is.
    with pytest.raises(StorageError):
        await old.place_shard("r1", 1, old.worker_id, lease_epoch=old_epoch)
    assert await old.place_shard("r1", 0, new.worker_id, lease_epoch=old_epoch) == old.worker_id
    assert await new.place_shard("r1", 0, new.worker_id, lease_epoch=new_epoch) == new.worker_id
    moved = (await new.shards("r1"))[0].epoch
    assert moved > placed
    # The shard's old copy writes its final scores: refused; the current copy's go in.
    await db.storage.commit(Batch(scores={("r1", "p1"): ScoreRow("r1", "p1", 900, 1, placed)}))
    await db.storage.commit(Batch(scores={("r1", "p1"): ScoreRow("r1", "p1", 1900, 2, moved)}))
    await db.storage.commit(Batch(scores={("r1", "p1"): ScoreRow("r1", "p1", 100, 0, placed)}))
    (stored,) = await db.storage.load_players("r1")
    assert (stored.score, stored.streak) == (1900, 2)


@pytest.mark.parametrize("rows", [1, COPY_THRESHOLD + 5], ids=["unnest", "copy"])
async def test_an_answer_that_reaches_the_database_after_the_close_is_refused(db: Database, rows: int) -> None:
    await db.room("r1")
    worker = await db.cluster()
    lease = await worker.acquire_lease("r1")
    assert lease is not None
    await worker.place_shard("r1", 0, worker.worker_id)
    epoch = (await worker.shards("r1"))[0].epoch
    await db.storage.commit(Batch(rooms={"r1": state("question", 0, 1, lease)}))
    early = [answer(f"e{i:05d}", epoch=epoch) for i in range(rows)]
    assert await db.storage.commit(Batch.of(answers=early)) == Outcome()
    await db.storage.commit(Batch(rooms={"r1": state("reveal", 0, 2, lease)}))
    late = [answer(f"l{i:05d}", epoch=epoch) for i in range(rows)]
    outcome = await db.storage.commit(Batch.of(answers=late))
    assert outcome.closed == {a.key for a in late} and not outcome.fenced_shards
    assert len(await db.storage.load_answers("r1")) == rows


async def test_a_conflicting_answer_comes_back_with_the_stored_row(storage: Storage) -> None:
    """Both backends: the first stored judgment wins, and its caller learns its timing (epoch 0: unfenced)."""
    await storage.create_quiz(QuizRow("q1", "Quiz", "{}", T0))
    assert await storage.create_room(RoomRow("r1", "424242", "q1", "h", T0))
    first = AnswerRow("r1", 0, "p1", (1,), True, 900, 1200, T0 + 1200)
    assert await storage.commit(Batch.of(answers=[first])) == Outcome()
    again = AnswerRow("r1", 0, "p1", (2,), False, 0, 4800, T0 + 4800)
    fresh = AnswerRow("r1", 0, "p2", (1,), True, 800, 2000, T0 + 2000)
    outcome = await storage.commit(Batch.of(answers=[again, fresh]))
    assert outcome.duplicates == {again.key: first} and not outcome.closed
    # A retry of a commit whose reply was lost finds its own rows: stored, not duplicates.
    assert await storage.commit(Batch.of(answers=[first, fresh])) == Outcome()


def player(player_id: str) -> PlayerRow:
    return PlayerRow("r1", player_id, player_id, player_id, f"token-{player_id}", T0)
