"""The storage contract, on SQLite and PostgreSQL alike (`database_url` is parametrised over both backends)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from quizroom.storage import Storage, StorageError, open_storage
from quizroom.storage.base import PlayersRefused
from quizroom.storage.postgres import COPY_THRESHOLD
from quizroom.storage.records import (
    AnswerRow,
    Batch,
    KickRow,
    Outcome,
    PlayerRow,
    QuizRow,
    RoomRow,
    RoomStateRow,
    RoomView,
    ScoreRow,
    TopRow,
)
from quizroom.storage.sqlite import sqlite_path
from quizroom.storage.writer import GroupCommitWriter

T0 = 1_700_000_000_000


# --- helpers ------------------------------------------------------------------------------------------------------


async def raw_fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the database behind the backend's back (same SQL on both dialects), to check what really landed."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(sqlite_path(url)) as lite:
            return list(lite.execute(sql).fetchall())
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
        assert await raw_fetch(database_url, "SELECT version, name FROM schema_migrations ORDER BY version") == [
            (1, "initial"),
            (2, "shards"),
            (3, "fencing"),
            (4, "classroom"),
            (5, "question_types"),
            (6, "library"),
            (7, "images"),
        ]
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
    await storage.commit(Batch.of(players=[player("b", joined_at_ms=T0 + 2), player("a", joined_at_ms=T0 + 1)]))
    await storage.commit(Batch.of(players=[player("a", joined_at_ms=T0 + 1, nickname="Changed")]))
    players = await storage.load_players("r1")
    assert players == [player("a", joined_at_ms=T0 + 1), player("b", joined_at_ms=T0 + 2)]
    assert await storage.load_players("other-room") == []


async def test_kick_marks_the_player_deletes_their_answers_and_frees_the_nickname(storage: Storage) -> None:
    await storage.commit(Batch.of(players=[player("a"), player("b")], answers=[answer("a"), answer("b")]))
    await storage.commit(Batch.of(answers=[answer("a", 1)], kicks=[KickRow("r1", "a")]))
    players = {p.player_id: p for p in await storage.load_players("r1")}
    assert players["a"].kicked and not players["b"].kicked
    assert [(a.player_id, a.question) for a in await storage.load_answers("r1")] == [("b", 0)]
    # A kicked player's nickname is free again; the kicked row stays (its token stays revoked).
    await storage.commit(Batch.of(players=[player("c", nickname_key=player("a").nickname_key)]))
    assert sorted(p.player_id for p in await storage.load_players("r1")) == ["a", "b", "c"]


def test_a_batch_opens_a_step_for_an_insert_only_after_a_kick_in_its_room() -> None:
    batch = Batch()
    batch.add_player(player("a"))
    batch.add_answer(answer("b"))
    batch.add_kick(KickRow("r1", "b"))
    batch.add_kick(KickRow("r1", "c"))
    batch.add_answer(answer("x", room_id="r2"))  # another room's insert need not wait for r1's kicks
    batch.add_answer(answer("a"))
    batch.add_player(player("d"))
    batch.add_kick(KickRow("r1", "a"))
    assert [(len(s.players), len(s.answers), len(s.kicks)) for s in batch.steps] == [(1, 2, 2), (1, 1, 1)]
    assert len(batch) == 8


async def test_a_kick_frees_the_nickname_for_a_join_later_in_the_same_batch(storage: Storage) -> None:
    await storage.commit(Batch.of(players=[player("a")], answers=[answer("a")]))
    batch = Batch()
    batch.add_answer(answer("a", 1))  # before the kick: deleted with it
    batch.add_kick(KickRow("r1", "a"))
    batch.add_player(player("b", nickname_key=player("a").nickname_key))  # after it: takes the nickname
    batch.add_answer(answer("b", 1))
    await storage.commit(batch)
    assert {p.player_id: p.kicked for p in await storage.load_players("r1")} == {"a": True, "b": False}
    assert [(a.player_id, a.question) for a in await storage.load_answers("r1")] == [("b", 1)]


@pytest.mark.parametrize("clash", ["nickname", "token", "player_id"])
async def test_a_player_row_that_clashes_is_refused_with_nothing_applied(storage: Storage, clash: str) -> None:
    """Never skipped in silence: the batch fails naming the row, and goes in whole without it."""
    await storage.commit(Batch.of(players=[player("a")]))
    held = player("a")
    refused = {
        "nickname": player("c", nickname_key=held.nickname_key),
        "token": player("c", token_hash=held.token_hash),
        "player_id": player("a", token_hash="another token", nickname_key="another nickname"),
    }[clash]
    batch = Batch.of(players=[player("b"), refused], answers=[answer("a")], rooms={"r1": state()})
    with pytest.raises(PlayersRefused) as error:
        await storage.commit(batch)
    assert error.value.players == {("r1", refused.player_id)}
    assert [p.player_id for p in await storage.load_players("r1")] == ["a"]
    assert await storage.load_answers("r1") == []
    assert batch.drop_players(error.value.players) == 1
    await storage.commit(batch)
    await storage.commit(batch)  # again, as a retry after a lost reply: the rows found stored count as stored
    assert sorted((p.player_id, p.token_hash) for p in await storage.load_players("r1")) == [
        ("a", held.token_hash),
        ("b", player("b").token_hash),
    ]
    assert len(await storage.load_answers("r1")) == 1


async def test_scores_and_streaks_update_with_the_last_value_winning(storage: Storage) -> None:
    await storage.commit(Batch.of(players=[player("a"), player("b")]))
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
    await storage.commit(Batch.of(answers=first + again[:2]))
    await storage.commit(Batch.of(answers=again))
    stored = await storage.load_answers("r1")
    assert sorted(stored, key=lambda a: a.player_id) == first


async def test_large_batches_do_not_leak_rows_into_later_ones(storage: Storage) -> None:
    """Nothing of one batch survives into the next: a kicked player's deleted answers stay deleted."""
    await storage.commit(Batch.of(answers=[answer(f"p{i:04d}") for i in range(COPY_THRESHOLD)]))
    await storage.commit(Batch.of(kicks=[KickRow("r1", "p0000")]))
    await storage.commit(Batch.of(answers=[answer(f"p{i:04d}", 1) for i in range(1, COPY_THRESHOLD + 1)]))
    stored = {(a.question, a.player_id) for a in await storage.load_answers("r1")}
    assert (0, "p0000") not in stored and len(stored) == 2 * COPY_THRESHOLD - 1


async def test_a_kick_between_two_copy_sized_steps_keeps_their_answers_apart(storage: Storage) -> None:
    """On PostgreSQL both steps go through the temporary table: the first step's rows must not go in twice."""
    batch = Batch()
    for i in range(COPY_THRESHOLD):
        batch.add_answer(answer(f"p{i:04d}"))
    batch.add_kick(KickRow("r1", "p0000"))
    for i in range(COPY_THRESHOLD):
        batch.add_answer(answer(f"p{i:04d}", 1))
    await storage.commit(batch)
    stored = {(a.question, a.player_id) for a in await storage.load_answers("r1")}
    assert (0, "p0000") not in stored and (1, "p0000") in stored and len(stored) == 2 * COPY_THRESHOLD - 1


async def test_answers_round_trip_every_field(storage: Storage) -> None:
    rows = [
        answer("a", 0, choices=(2,), correct=True, points=812, response_ms=4321, received_at_ms=T0 + 9),
        answer("a", 1, choices=(0, 3), correct=False, points=0, response_ms=17, received_at_ms=T0 + 20_000),
        answer("b", 0, choices=(), correct=False, points=0, response_ms=0, received_at_ms=T0 + 1),
        # Question types (migration 0005): a typed answer and a slider's number are the value.
        answer("b", 1, choices=(), correct=True, points=700, value="Lutèce 'et' \"Paris\""),
        answer("b", 2, choices=(), correct=False, points=0, value="-2.5"),
        answer("b", 3, choices=(3, 0, 2, 1), correct=True, points=650),  # a puzzle's order, kept as sent
    ]
    await storage.commit(Batch.of(answers=rows))
    assert await storage.load_answers("r1") == [rows[2], rows[0], rows[3], rows[1], rows[4], rows[5]]
    assert await storage.load_answers("other-room") == []


async def test_copy_sized_batches_keep_answer_values(storage: Storage) -> None:
    """On PostgreSQL a large batch goes through COPY: the value column must come through it as well."""
    rows = [answer(f"p{i:04d}", 0, choices=(), value=f"typed {i}") for i in range(COPY_THRESHOLD + 5)]
    await storage.commit(Batch.of(answers=rows))
    stored = {a.player_id: a.value for a in await storage.load_answers("r1")}
    assert stored == {a.player_id: a.value for a in rows}


async def test_room_view_returns_each_value_and_the_correct_count(storage: Storage) -> None:
    await storage.commit(Batch.of(players=[player(p) for p in "abcdek"]))
    await storage.commit(Batch.of(kicks=[KickRow("r1", "k")]))
    await storage.commit(
        Batch.of(
            answers=[
                answer("a", 0, choices=(), correct=True, value="Paris"),
                answer("b", 0, choices=(), correct=True, value="Paris"),
                answer("c", 0, choices=(), correct=True, value="paris"),
                answer("d", 0, choices=(), correct=False, points=0, value="Rome"),
                answer("e", 1, choices=(), correct=True, value="Paris"),  # another question
                answer("k", 0, choices=(), correct=True, value="Paris"),  # kicked after: not counted
                answer("a", 2, choices=(1, 0), correct=False, points=0),  # no value
            ]
        )
    )
    view = await storage.room_view("r1", question=0, choices=0, through=0, top=3)
    assert view.answered == 4 and view.right == 3
    assert view.values == (("Paris", True, 2), ("Rome", False, 1), ("paris", True, 1))
    puzzle = await storage.room_view("r1", question=2, choices=2, through=2, top=3)
    assert puzzle.values == () and puzzle.right == 0 and puzzle.answered == 1


def _failing_batches() -> dict[str, Batch]:
    answers = [answer(f"p{i:04d}") for i in range(COPY_THRESHOLD + 10)]
    return {
        # A player of a room that does not exist: foreign key, fails first.
        "player-fk": Batch.of(players=[player("a"), player("x", room_id="no-such-room")], answers=answers[:5]),
        # A NULL nickname: NOT NULL.
        "player-null": Batch.of(players=[player("a"), player("x", nickname=None)], answers=answers[:5]),
        # A room state with no phase: fails last, after players and a COPY-sized set of answers went in.
        "room-null": Batch.of(
            players=[player("a")],
            answers=answers,
            kicks=[KickRow("r1", "a")],
            rooms={"r1": dataclasses.replace(state(), phase=None)},  # type: ignore[arg-type]
        ),
    }


@pytest.mark.parametrize("case", sorted(_failing_batches()))
async def test_a_failing_batch_leaves_nothing_behind(storage: Storage, case: str) -> None:
    await storage.commit(Batch.of(players=[player("keep")], answers=[answer("keep")]))
    with pytest.raises(StorageError):
        await storage.commit(_failing_batches()[case])
    assert [p.player_id for p in await storage.load_players("r1")] == ["keep"]
    assert [a.player_id for a in await storage.load_answers("r1")] == ["keep"]
    found = await storage.find_room("123456")
    assert found is not None and found.phase == "lobby"
    # The storage is still usable afterwards, on both the small and the COPY path.
    await storage.commit(Batch.of(answers=[answer("later")]))
    await storage.commit(Batch.of(answers=[answer(f"big{i:04d}") for i in range(COPY_THRESHOLD)]))
    assert len(await storage.load_answers("r1")) == 2 + COPY_THRESHOLD


# --- shards, tokens and the merged view ------------------------------------------------------------------------------


async def test_players_keep_their_shard_and_load_by_shard(storage: Storage) -> None:
    rows = [player("a", shard=0), player("b", shard=1, joined_at_ms=T0 + 1), player("c", shard=1, joined_at_ms=T0 + 2)]
    await storage.commit(Batch.of(players=[*rows, player("d", shard=2, joined_at_ms=T0 + 3)]))
    await storage.commit(Batch.of(answers=[answer(p, q) for p in "abcd" for q in (0, 1)]))
    await storage.commit(Batch.of(kicks=[KickRow("r1", "c")]))
    assert [(p.player_id, p.shard) for p in await storage.load_players("r1")] == [
        ("a", 0),
        ("b", 1),
        ("c", 1),
        ("d", 2),
    ]
    # A shard's players, kicked ones included (their tokens stay revoked there too), in join order.
    assert await storage.load_players("r1", 1) == [rows[1], dataclasses.replace(rows[2], kicked=True)]
    assert await storage.load_players("r1", shard=7) == []
    # A shard's answers are its players' answers, in the same order as the whole room's.
    assert [(a.question, a.player_id) for a in await storage.load_answers("r1", shard=1)] == [(0, "b"), (1, "b")]
    assert [(a.question, a.player_id) for a in await storage.load_answers("r1", 2)] == [(0, "d"), (1, "d")]
    assert len(await storage.load_answers("r1")) == 6
    assert await storage.load_answers("r1", shard=7) == []


async def test_player_by_token_finds_any_room_and_kicked_players(storage: Storage) -> None:
    assert await storage.create_room(room("r2", pin="222222"))
    await storage.commit(Batch.of(players=[player("a", shard=3), player("b"), player("a", room_id="r2")]))
    await storage.commit(Batch.of(kicks=[KickRow("r1", "b")]))
    assert await storage.player_by_token(player("a").token_hash) == player("a", shard=3)
    assert await storage.player_by_token(player("b").token_hash) == player("b", kicked=True)
    assert await storage.player_by_token(player("a", room_id="r2").token_hash) == player("a", room_id="r2")
    assert await storage.player_by_token("no-such-token") is None


async def test_room_view_of_an_empty_room(storage: Storage) -> None:
    view = await storage.room_view("r1", question=0, choices=3, through=0, top=10)
    assert view == RoomView(players=0, answered=0, counts=(0, 0, 0), histogram=(), top=())


async def test_room_view_before_any_question_ranks_everyone_at_zero(storage: Storage) -> None:
    await storage.commit(Batch.of(players=[player("b", nickname_key="zed"), player("a", nickname_key="amy")]))
    view = await storage.room_view("r1", question=None, choices=2, through=None, top=10)
    assert view == RoomView(
        players=2,
        answered=0,
        counts=(0, 0),
        histogram=((0, 2),),
        top=(TopRow("a", "Nick a", "amy", 0), TopRow("b", "Nick b", "zed", 0)),
    )


async def test_room_view_counts_scores_ranks_and_ignores_kicked_players(storage: Storage) -> None:
    assert await storage.create_room(room("r2", pin="222222"))
    names = {"a": "ann", "b": "bob", "c": "cat", "d": "dan", "e": "eve", "k": "kim"}
    await storage.commit(
        Batch.of(
            players=[player(p, nickname_key=key, shard=ord(p) % 2) for p, key in names.items()] + [player("z", "r2")]
        )
    )
    await storage.commit(Batch.of(kicks=[KickRow("r1", "k")]))
    await storage.commit(
        Batch.of(
            answers=[
                # Question 0: points that tie a and c at 700 through question 1.
                answer("a", 0, choices=(0,), points=500),
                answer("b", 0, choices=(1,), points=900),
                answer("c", 0, choices=(0,), points=700),
                # Question 1: multi-choice answers count once in each choice; an empty answer counts in none;
                # a choice past the question's range is not counted.
                answer("a", 1, choices=(0, 2), points=200),
                answer("b", 1, choices=(2,), points=0),
                answer("c", 1, choices=(), points=0),
                answer("d", 1, choices=(1, 2, 5), points=100),
                # Question 2: after the `through` cut-off below.
                answer("e", 2, choices=(0,), points=5000),
                # Another room's answers and a kicked player's (written after the kick) count nowhere.
                answer("z", 1, room_id="r2", choices=(0,), points=9999),
                answer("k", 1, choices=(0, 1, 2), points=9999),
            ]
        )
    )
    view = await storage.room_view("r1", question=1, choices=3, through=1, top=4)
    assert view.players == 5 and view.answered == 4
    assert view.counts == (1, 1, 3)
    # Scores through question 1: b 900, a 700, c 700, d 100, e 0 (its only answer is to question 2).
    assert view.histogram == ((900, 1), (700, 2), (100, 1), (0, 1))
    assert view.top == (
        TopRow("b", "Nick b", "bob", 900),
        TopRow("a", "Nick a", "ann", 700),
        TopRow("c", "Nick c", "cat", 700),
        TopRow("d", "Nick d", "dan", 100),
    )
    # Through question 2, e leads; counts follow the question asked, independently of `through`.
    later = await storage.room_view("r1", question=2, choices=3, through=2, top=1)
    assert later.answered == 1 and later.counts == (1, 0, 0)
    assert later.top == (TopRow("e", "Nick e", "eve", 5000),)
    assert later.histogram[0] == (5000, 1) and sum(n for _, n in later.histogram) == 5
    # Nobody has scored yet, but the question's answers are counted.
    early = await storage.room_view("r1", question=1, choices=3, through=None, top=0)
    assert (early.answered, early.counts, early.histogram, early.top) == (4, (1, 1, 3), ((0, 5),), ())


async def test_room_view_matches_a_reference_computed_in_python(storage: Storage) -> None:
    """Random rooms against the definition, computed from what `load_players` and `load_answers` return."""
    rng = random.Random(20240611)
    players = [player(f"p{i:03d}", nickname_key=f"key{rng.randrange(1000):03d}-{i}") for i in range(120)]
    await storage.commit(Batch.of(players=players))
    answers = [
        answer(
            p.player_id,
            q,
            choices=tuple(sorted(rng.sample(range(4), rng.randrange(3)))),
            points=rng.choice([0, 0, 100, 250, 500, 1000]),
            correct=rng.random() < 0.5,
            value=rng.choice(["x", "y", "Zed", None]) if q == 3 else None,
        )
        for p in players
        for q in range(5)
        if rng.random() < 0.8
    ]
    await storage.commit(Batch.of(answers=answers))
    await storage.commit(Batch.of(kicks=[KickRow("r1", p.player_id) for p in rng.sample(players, 15)]))
    live = [p for p in await storage.load_players("r1") if not p.kicked]
    stored = await storage.load_answers("r1")
    for question, through in [(0, 0), (2, 1), (4, 4), (3, None), (None, 2)]:
        scores = {p.player_id: 0 for p in live}
        counts = [0, 0, 0, 0]
        answered = right = 0
        values: dict[tuple[str, bool], int] = {}
        for a in stored:
            if through is not None and a.question <= through:
                scores[a.player_id] += a.points
            if a.question == question:
                answered += 1
                right += a.correct
                if a.value is not None:
                    values[(a.value, a.correct)] = values.get((a.value, a.correct), 0) + 1
                for c in a.choices:
                    counts[c] += 1
        ranked = sorted(live, key=lambda p: (-scores[p.player_id], p.nickname_key, p.player_id))
        histogram: dict[int, int] = {}
        for score in scores.values():
            histogram[score] = histogram.get(score, 0) + 1
        expected = RoomView(
            players=len(live),
            answered=answered,
            counts=tuple(counts),
            histogram=tuple(sorted(histogram.items(), reverse=True)),
            top=tuple(TopRow(p.player_id, p.nickname, p.nickname_key, scores[p.player_id]) for p in ranked[:10]),
            right=right,
            values=tuple(sorted((value, correct, n) for (value, correct), n in values.items())),
        )
        assert await storage.room_view("r1", question=question, choices=4, through=through, top=10) == expected


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

    async def commit(self, batch: Batch) -> Outcome:
        self.attempts += 1
        if self.down:
            raise StorageError("database is down (injected)")
        if self.fail_before > 0:
            self.fail_before -= 1
            raise StorageError("connection refused (injected)")
        outcome = await self.inner.commit(batch)
        if self.fail_after > 0:
            self.fail_after -= 1
            raise StorageError("connection lost after commit (injected)")
        return outcome


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
        futures: list[asyncio.Future[Any]] = [writer.add_answer(answer(f"p{i}")) for i in range(20)]
        futures.append(writer.add_player(player("a")))
        outcomes = await asyncio.gather(*futures)
        assert writer.healthy
        # The retry after the lost reply found its own rows stored: they are ours, not duplicates.
        assert outcomes[0] == Outcome()
    finally:
        await writer.stop()
    assert flaky.attempts == 4
    assert len(await storage.load_answers("r1")) == 20
    assert [p.player_id for p in await storage.load_players("r1")] == ["a"]


async def test_writer_refuses_a_clashing_player_alone_and_commits_the_rest(storage: Storage) -> None:
    await storage.commit(Batch.of(players=[player("a")]))
    writer = GroupCommitWriter(storage)
    writer.start()
    try:
        answers = [writer.add_answer(answer("a", question)) for question in range(3)]
        clash = writer.add_player(player("c", nickname_key=player("a").nickname_key))
        fine = writer.add_player(player("b"))
        await asyncio.gather(*answers, fine)
        with pytest.raises(PlayersRefused):
            await clash
        assert writer.healthy and writer.stats.failures == 0
    finally:
        await writer.stop()
    assert [p.player_id for p in await storage.load_players("r1")] == ["a", "b"]
    assert len(await storage.load_answers("r1")) == 3


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
