"""The storage contract, on SQLite and PostgreSQL alike (`database_url` is parametrised over both backends)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from quizroom.storage import Storage, StorageError, open_storage
from quizroom.storage.postgres import COPY_THRESHOLD
from quizroom.storage.records import (
    AnswerRow,
    Batch,
    KickRow,
    PlayerRow,
    QuizRow,
    RoomRow,
    RoomStateRow,
    ScoreRow,
)
from quizroom.storage.sqlite import sqlite_path
from quizroom.storage.writer import GroupCommitWriter

T0 = 1_700_000_000_000


# --- helpers ------------------------------------------------------------------------------------------------------


async def raw_fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the database behind the backend's back (same SQL on both dialects), to check what really landed."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            return list(conn.execute(sql).fetchall())
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


def quiz(quiz_id: str = "q1") -> QuizRow:
    return QuizRow(quiz_id, "Capitals", '{"title": "Capitals", "questions": []}', T0)


def room(room_id: str = "r1", pin: str = "123456", created_at_ms: int = T0, quiz_id: str = "q1") -> RoomRow:
    return RoomRow(room_id, pin, quiz_id, f"hash-{room_id}", created_at_ms)


def player(player_id: str, room_id: str = "r1", joined_at_ms: int = T0, **changes: Any) -> PlayerRow:
    row = PlayerRow(
        room_id, player_id, f"Nick {player_id}", f"nick {player_id}", f"tok-{room_id}-{player_id}", joined_at_ms
    )
    return dataclasses.replace(row, **changes)


def answer(player_id: str, question: int = 0, room_id: str = "r1", **changes: Any) -> AnswerRow:
    row = AnswerRow(room_id, question, player_id, (1,), True, 900, 1234, T0 + question * 10_000 + 5)
    return dataclasses.replace(row, **changes)


def state(room_id: str = "r1", phase: str = "question", question_index: int | None = 0) -> RoomStateRow:
    return RoomStateRow(room_id, phase, question_index, T0 + 1000, False, 7)


async def open_url(url: str) -> Storage:
    storage = open_storage(url)
    await storage.open()
    return storage


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    """An open storage with one quiz and one lobby room `r1` (PIN 123456)."""
    storage = await open_url(database_url)
    try:
        await storage.create_quiz(quiz())
        assert await storage.create_room(room())
        yield storage
    finally:
        await storage.close()


# --- migrations and lifecycle -------------------------------------------------------------------------------------


async def test_migrations_apply_once_however_often_storage_opens(database_url: str) -> None:
    # Several workers starting at once on an empty database: one migrates, the others wait and find it done.
    workers = [open_storage(database_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in workers))
    await workers[0].create_quiz(quiz())
    for s in workers:
        await s.close()
    # Reopening re-applies nothing and keeps the data.
    again = await open_url(database_url)
    try:
        assert await again.get_quiz("q1") == quiz()
        assert await raw_fetch(database_url, "SELECT version, name FROM schema_migrations") == [(1, "initial")]
    finally:
        await again.close()


async def test_ping_answers_when_open_and_fails_when_closed(database_url: str) -> None:
    storage = await open_url(database_url)
    await storage.ping()
    await storage.close()
    with pytest.raises(StorageError):
        await storage.ping()


async def test_open_fails_with_storage_error_when_postgres_is_unreachable(unused_tcp_port: int) -> None:
    storage = open_storage(f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/nowhere")
    with pytest.raises(StorageError):
        await storage.open()


# --- quizzes and rooms --------------------------------------------------------------------------------------------


async def test_quiz_round_trips_and_unknown_quiz_is_none(database_url: str) -> None:
    storage = await open_url(database_url)
    try:
        await storage.create_quiz(quiz())
        assert await storage.get_quiz("q1") == quiz()
        assert await storage.get_quiz("nope") is None
        with pytest.raises(StorageError):
            await storage.create_quiz(quiz())
    finally:
        await storage.close()


async def test_live_pin_is_unique_until_its_room_finishes(storage: Storage) -> None:
    assert not await storage.create_room(room("r2", created_at_ms=T0 + 1))
    await storage.commit(Batch(rooms={"r1": state("r1", "finished", None)}))
    assert await storage.create_room(room("r2", created_at_ms=T0 + 1))
    found = await storage.find_room("123456")
    assert found is not None and found.room_id == "r2" and found.phase == "lobby"
    assert await storage.find_room("654321") is None


async def test_find_room_prefers_the_live_room_else_the_latest_finished(storage: Storage) -> None:
    # r2 is created before r3, but r1 (created first) is still live: live wins over recency.
    await storage.commit(Batch(rooms={"r1": state("r1", "finished", None)}))
    assert await storage.create_room(room("r2", created_at_ms=T0 + 2))
    await storage.commit(Batch(rooms={"r2": state("r2", "finished", None)}))
    assert await storage.create_room(room("r3", created_at_ms=T0 + 1))
    assert (await storage.find_room("123456")) == room("r3", created_at_ms=T0 + 1)
    await storage.commit(Batch(rooms={"r3": state("r3", "finished", None)}))
    latest = await storage.find_room("123456")
    assert latest is not None and latest.room_id == "r2"


async def test_create_room_errors_are_not_mistaken_for_a_taken_pin(storage: Storage) -> None:
    with pytest.raises(StorageError):
        await storage.create_room(room("r1", pin="999999"))  # duplicate room_id
    with pytest.raises(StorageError):
        await storage.create_room(room("r9", pin="999998", quiz_id="no-such-quiz"))


async def test_room_state_round_trips_and_rooms_in_phase_lists_pins(storage: Storage) -> None:
    assert await storage.create_room(room("r2", pin="222222"))
    assert sorted(await storage.rooms_in_phase("lobby")) == ["123456", "222222"]
    await storage.commit(Batch(rooms={"r1": state("r1", "question", 3)}))
    assert await storage.find_room("123456") == dataclasses.replace(
        room(), phase="question", question_index=3, opened_at_ms=T0 + 1000, locked=False, seq=7
    )
    await storage.commit(Batch(rooms={"r1": RoomStateRow("r1", "reveal", 3, T0 + 1000, True, 9)}))
    found = await storage.find_room("123456")
    assert found is not None and (found.phase, found.locked, found.seq) == ("reveal", True, 9)
    assert await storage.rooms_in_phase("question") == []
    assert await storage.rooms_in_phase("reveal") == ["123456"]


# --- players, kicks, scores -----------------------------------------------------------------------------------------


async def test_players_insert_or_ignore_and_load_in_join_order(storage: Storage) -> None:
    await storage.commit(Batch(players=[player("b", joined_at_ms=T0 + 2), player("a", joined_at_ms=T0 + 1)]))
    await storage.commit(Batch(players=[player("a", joined_at_ms=T0 + 1, nickname="Changed")]))
    players = await storage.load_players("r1")
    assert players == [player("a", joined_at_ms=T0 + 1), player("b", joined_at_ms=T0 + 2)]
    assert await storage.load_players("other-room") == []


async def test_kick_marks_the_player_deletes_their_answers_and_frees_the_nickname(storage: Storage) -> None:
    await storage.commit(Batch(players=[player("a"), player("b")], answers=[answer("a"), answer("b")]))
    await storage.commit(Batch(answers=[answer("a", 1)], kicks=[KickRow("r1", "a")]))
    players = {p.player_id: p for p in await storage.load_players("r1")}
    assert players["a"].kicked and not players["b"].kicked
    assert [(a.player_id, a.question) for a in await storage.load_answers("r1")] == [("b", 0)]
    # A kicked player's nickname is free again; the kicked row stays (its token stays revoked).
    await storage.commit(Batch(players=[player("c", nickname_key=player("a").nickname_key)]))
    assert sorted(p.player_id for p in await storage.load_players("r1")) == ["a", "b", "c"]


async def test_scores_and_streaks_update_with_the_last_value_winning(storage: Storage) -> None:
    await storage.commit(Batch(players=[player("a"), player("b")]))
    batch = Batch()
    for score in (100, 250):
        batch.scores[("r1", "a")] = ScoreRow("r1", "a", score, score // 100)
    batch.scores[("r1", "b")] = ScoreRow("r1", "b", 7, 0)
    await storage.commit(batch)
    assert [(p.player_id, p.score, p.streak) for p in await storage.load_players("r1")] == [
        ("a", 250, 2),
        ("b", 7, 0),
    ]


# --- answers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, COPY_THRESHOLD + 100], ids=["small", "copy-sized"])
async def test_answers_are_insert_or_ignore_first_one_wins(storage: Storage, size: int) -> None:
    """The same answer twice in a batch and again in a later batch is stored once, as first written."""
    first = [answer(f"p{i:04d}", choices=(0, 2), correct=False, points=0) for i in range(size)]
    again = [dataclasses.replace(a, choices=(3,), points=999) for a in first]
    await storage.commit(Batch(answers=first + again[:2]))
    await storage.commit(Batch(answers=again))
    stored = await storage.load_answers("r1")
    assert sorted(stored, key=lambda a: a.player_id) == first


async def test_large_batches_do_not_leak_rows_into_later_ones(storage: Storage) -> None:
    """Nothing of one batch survives into the next: a kicked player's deleted answers stay deleted."""
    await storage.commit(Batch(answers=[answer(f"p{i:04d}") for i in range(COPY_THRESHOLD)]))
    await storage.commit(Batch(kicks=[KickRow("r1", "p0000")]))
    await storage.commit(Batch(answers=[answer(f"p{i:04d}", 1) for i in range(1, COPY_THRESHOLD + 1)]))
    stored = {(a.question, a.player_id) for a in await storage.load_answers("r1")}
    assert (0, "p0000") not in stored and len(stored) == 2 * COPY_THRESHOLD - 1


async def test_answers_round_trip_every_field(storage: Storage) -> None:
    rows = [
        answer("a", 0, choices=(2,), correct=True, points=812, response_ms=4321, received_at_ms=T0 + 9),
        answer("a", 1, choices=(0, 3), correct=False, points=0, response_ms=17, received_at_ms=T0 + 20_000),
        answer("b", 0, choices=(), correct=False, points=0, response_ms=0, received_at_ms=T0 + 1),
    ]
    await storage.commit(Batch(answers=rows))
    assert await storage.load_answers("r1") == [rows[2], rows[0], rows[1]]
    assert await storage.load_answers("other-room") == []


def _failing_batches() -> dict[str, Batch]:
    answers = [answer(f"p{i:04d}") for i in range(COPY_THRESHOLD + 10)]
    return {
        # A player of a room that does not exist: foreign key, fails first.
        "player-fk": Batch(players=[player("a"), player("x", room_id="no-such-room")], answers=answers[:5]),
        # A NULL nickname: NOT NULL.
        "player-null": Batch(players=[player("a"), player("x", nickname=None)], answers=answers[:5]),
        # A room state with no phase: fails last, after players and a COPY-sized set of answers went in.
        "room-null": Batch(
            players=[player("a")],
            answers=answers,
            kicks=[KickRow("r1", "a")],
            rooms={"r1": dataclasses.replace(state(), phase=None)},  # type: ignore[arg-type]
        ),
    }


@pytest.mark.parametrize("case", sorted(_failing_batches()))
async def test_a_failing_batch_leaves_nothing_behind(storage: Storage, case: str) -> None:
    await storage.commit(Batch(players=[player("keep")], answers=[answer("keep")]))
    with pytest.raises(StorageError):
        await storage.commit(_failing_batches()[case])
    assert [p.player_id for p in await storage.load_players("r1")] == ["keep"]
    assert [a.player_id for a in await storage.load_answers("r1")] == ["keep"]
    found = await storage.find_room("123456")
    assert found is not None and found.phase == "lobby"
    # The storage is still usable afterwards, on both the small and the COPY path.
    await storage.commit(Batch(answers=[answer("later")]))
    await storage.commit(Batch(answers=[answer(f"big{i:04d}") for i in range(COPY_THRESHOLD)]))
    assert len(await storage.load_answers("r1")) == 2 + COPY_THRESHOLD


# --- the group-commit writer ----------------------------------------------------------------------------------------


class FlakyStorage:
    """A real backend behind a switch: the next `fail_before` commits fail before reaching the database, and the
    next `fail_after` commits reach it and *then* fail, like a connection lost while COMMIT's reply was in flight."""

    def __init__(self, inner: Storage, *, fail_before: int = 0, fail_after: int = 0, down: bool = False) -> None:
        self.inner = inner
        self.fail_before = fail_before
        self.fail_after = fail_after
        self.down = down
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def commit(self, batch: Batch) -> None:
        self.attempts += 1
        if self.down:
            raise StorageError("database is down (injected)")
        if self.fail_before > 0:
            self.fail_before -= 1
            raise StorageError("connection refused (injected)")
        await self.inner.commit(batch)
        if self.fail_after > 0:
            self.fail_after -= 1
            raise StorageError("connection lost after commit (injected)")


async def test_writer_commits_a_burst_of_concurrent_answers_in_few_transactions(storage: Storage) -> None:
    writer = GroupCommitWriter(storage)
    writer.start()
    try:

        async def submit(i: int) -> None:
            await writer.add_answer(answer(f"p{i:04d}"))

        await asyncio.gather(*(submit(i) for i in range(500)))
    finally:
        await writer.stop()
    assert len(await storage.load_answers("r1")) == 500
    assert 1 <= writer.stats.commits <= 3
    assert writer.stats.rows == 500 and writer.stats.failures == 0


async def test_writer_rides_over_failures_and_stores_each_answer_once(storage: Storage) -> None:
    flaky = FlakyStorage(storage, fail_before=2, fail_after=1)
    writer = GroupCommitWriter(flaky, retry_for_s=30.0)
    writer.start()
    try:
        futures = [writer.add_answer(answer(f"p{i}")) for i in range(20)]
        futures.append(writer.add_player(player("a")))
        await asyncio.gather(*futures)
        assert writer.healthy
    finally:
        await writer.stop()
    assert flaky.attempts == 4
    assert len(await storage.load_answers("r1")) == 20
    assert [p.player_id for p in await storage.load_players("r1")] == ["a"]


async def test_writer_fails_the_batch_when_storage_stays_down_then_recovers(storage: Storage) -> None:
    flaky = FlakyStorage(storage, down=True)
    writer = GroupCommitWriter(flaky, retry_for_s=0.2)
    writer.start()
    try:
        lost = writer.add_answer(answer("a"))
        with pytest.raises(StorageError):
            await lost
        assert not writer.healthy and writer.stats.failures == 1
        assert await storage.load_answers("r1") == []
        # The caller resubmits once the database is back; the writer itself kept running.
        flaky.down = False
        await writer.add_answer(answer("a"))
        assert writer.healthy
    finally:
        await writer.stop()
    assert [a.player_id for a in await storage.load_answers("r1")] == ["a"]
