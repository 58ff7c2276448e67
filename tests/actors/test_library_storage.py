"""The quiz library's storage contract (`Storage`, "The quiz library"), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

import quizroom.storage.postgres
import quizroom.storage.sqlite
from quizroom.storage import Storage
from quizroom.storage.migrate import migrations_for
from quizroom.storage.records import LibraryRow, QuizRow
from tests.actors.test_storage import T0, open_url, raw_fetch, room


def version(quiz_id: str, title: str = "Capitals", at: int = T0, questions: int = 2) -> QuizRow:
    return QuizRow(quiz_id, title, json.dumps({"title": title, "questions": [{}] * questions}), at)


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    storage = await open_url(database_url)
    try:
        yield storage
    finally:
        await storage.close()


async def stored_versions(url: str) -> set[str]:
    return {row[0] for row in await raw_fetch(url, "SELECT quiz_id FROM quizzes")}


async def test_a_saved_quiz_is_version_1_of_an_entry_named_after_its_document(storage: Storage) -> None:
    row = await storage.add_to_library(version("a", "Capitals", T0, questions=3), 3)
    assert row == LibraryRow("a", "a", "Capitals", 3, 1, T0, T0)
    found = await storage.library_entry("a")
    assert found == (row, version("a", "Capitals", T0, questions=3))
    assert await storage.library_entry("nope") is None


async def test_the_list_is_newest_edited_first_and_pages_with_a_total(storage: Storage) -> None:
    for n in range(5):
        await storage.add_to_library(version(f"q{n}", f"Quiz {n}", T0), 1)  # the same millisecond: order still holds
    page = await storage.list_library("", 0, 2)
    assert page.total == 5 and [r.quiz_id for r in page.rows] == ["q4", "q3"]
    page = await storage.list_library("", 4, 2)
    assert page.total == 5 and [r.quiz_id for r in page.rows] == ["q0"]
    assert (await storage.list_library("", 10, 2)).rows == ()
    await storage.replace_in_library("q1", version("q1-v2", "Quiz 1 again", T0 + 5), 4)
    assert [r.quiz_id for r in (await storage.list_library("", 0, 3)).rows] == ["q1", "q4", "q3"]


async def test_search_is_a_substring_of_the_title_ignoring_case_in_any_script(storage: Storage) -> None:
    for quiz_id, title in [("a", "Été à Paris"), ("b", "Straße und Wege"), ("c", "Capitals of EUROPE"), ("d", "100%")]:
        await storage.add_to_library(version(quiz_id, title), 1)

    async def found(search: str) -> list[str]:
        page = await storage.list_library(search, 0, 10)
        assert page.total == len(page.rows)
        return sorted(r.quiz_id for r in page.rows)

    assert await found("ÉTÉ") == ["a"]
    assert await found("strasse") == ["b"]
    assert await found("europe") == ["c"]
    assert await found("%") == ["d"]  # no LIKE wildcards
    assert await found("_") == []
    assert await found("") == ["a", "b", "c", "d"]


async def test_a_replacement_is_the_next_version_and_the_old_one_stays_while_a_room_uses_it(
    storage: Storage, database_url: str
) -> None:
    await storage.add_to_library(version("a", "One"), 2)
    assert await storage.create_room(room("r1", "111111", quiz_id="a"))
    replaced = await storage.replace_in_library("a", version("a2", "Two", T0 + 10, questions=5), 5)
    assert replaced == LibraryRow("a", "a2", "Two", 5, 2, T0, T0 + 10)
    assert await storage.library_entry("a") == (replaced, version("a2", "Two", T0 + 10, questions=5))
    assert await storage.get_quiz("a") == version("a", "One")  # room r1's version, unchanged
    # A version no room uses is gone once replaced.
    third = await storage.replace_in_library("a", version("a3", "Three", T0 + 20), 2)
    assert third is not None and third.version == 3
    assert await stored_versions(database_url) == {"a", "a3"}


async def test_replacing_or_removing_an_unknown_quiz_stores_nothing(storage: Storage, database_url: str) -> None:
    assert await storage.replace_in_library("nope", version("v"), 2) is None
    assert await storage.remove_from_library("nope") is False
    assert await stored_versions(database_url) == set()


async def test_a_removed_quiz_leaves_the_library_and_its_rooms_keep_their_version(
    storage: Storage, database_url: str
) -> None:
    await storage.add_to_library(version("a"), 2)
    await storage.add_to_library(version("b"), 2)
    assert await storage.create_room(room("r1", "111111", quiz_id="a"))
    assert await storage.remove_from_library("a") is True
    assert await storage.remove_from_library("b") is True
    assert await storage.library_entry("a") is None
    assert (await storage.list_library("", 0, 10)).total == 0
    assert await storage.get_quiz("a") == version("a")  # the room's
    assert await stored_versions(database_url) == {"a"}  # b's version had no room: deleted
    assert await storage.remove_from_library("a") is False


async def test_a_quiz_a_room_got_inline_is_not_in_the_library(storage: Storage) -> None:
    await storage.create_quiz(version("inline"))
    assert await storage.library_entry("inline") is None
    assert (await storage.list_library("", 0, 10)).total == 0


async def test_quizzes_stored_before_the_library_are_put_in_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database as release 0005 left it: quizzes, one used by a room, and no library.
    for backend in (quizroom.storage.sqlite, quizroom.storage.postgres):
        monkeypatch.setattr(backend, "migrations_for", lambda dialect: migrations_for(dialect)[:5])
    old = await open_url(database_url)
    await old.create_quiz(version("old1", "Ancient history", T0, questions=3))
    await old.create_quiz(QuizRow("old2", "Empty", "{}", T0 + 1))
    assert await old.create_room(room("r1", "111111", quiz_id="old1"))
    await old.close()
    monkeypatch.undo()
    storage = await open_url(database_url)
    try:
        page = await storage.list_library("", 0, 10)
        assert page.rows == (
            LibraryRow("old2", "old2", "Empty", 0, 1, T0 + 1, T0 + 1),
            LibraryRow("old1", "old1", "Ancient history", 3, 1, T0, T0),
        )
        assert [r.quiz_id for r in (await storage.list_library("ancient", 0, 10)).rows] == ["old1"]
        # The edit order goes on from the migrated entries.
        await storage.add_to_library(version("new"), 1)
        await storage.replace_in_library("old1", version("old1-v2"), 1)
        assert [r.quiz_id for r in (await storage.list_library("", 0, 10)).rows] == ["old1", "new", "old2"]
    finally:
        await storage.close()
