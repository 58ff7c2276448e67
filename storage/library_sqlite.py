"""The quiz library on SQLite (`quizroom.storage.base.Storage`, "The quiz library"): the statements, run by
`quizroom.storage.sqlite.SQLiteStorage` inside its write transaction or on its reader.

The write lock and `BEGIN IMMEDIATE` serialise every write, so `max(edit_seq) + 1` inside the transaction is a
strictly increasing edit order without a sequence.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiosqlite

from quizroom.storage.records import LibraryPage, LibraryRow, QuizRow, title_key

Fetch = Callable[[str, Iterable[Any]], Awaitable[list[sqlite3.Row]]]

_ENTRY = "quiz_id, document_id, title, question_count, version, created_at_ms, updated_at_ms"
_NEXT_EDIT = "(SELECT coalesce(max(edit_seq), 0) + 1 FROM library)"
# A version that neither an entry nor a room names any more is deleted: nothing can reach it.
_DROP_UNUSED = (
    "DELETE FROM quizzes WHERE quiz_id = ?1"
    " AND NOT EXISTS (SELECT 1 FROM library WHERE document_id = ?1)"
    " AND NOT EXISTS (SELECT 1 FROM rooms WHERE quiz_id = ?1)"
)


async def _insert_document(conn: aiosqlite.Connection, document: QuizRow) -> None:
    await conn.execute(
        "INSERT INTO quizzes (quiz_id, title, body, created_at_ms) VALUES (?, ?, ?, ?)",
        (document.quiz_id, document.title, document.body, document.created_at_ms),
    )


async def add(conn: aiosqlite.Connection, document: QuizRow, question_count: int) -> LibraryRow:
    await _insert_document(conn, document)
    row = LibraryRow(
        document.quiz_id,
        document.quiz_id,
        document.title,
        question_count,
        1,
        document.created_at_ms,
        document.created_at_ms,
    )
    await conn.execute(
        "INSERT INTO library (quiz_id, document_id, title, title_key, question_count, version, created_at_ms,"
        f" updated_at_ms, edit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {_NEXT_EDIT})",
        (
            row.quiz_id,
            row.document_id,
            row.title,
            title_key(row.title),
            row.question_count,
            row.version,
            row.created_at_ms,
            row.updated_at_ms,
        ),
    )
    return row


async def replace(
    conn: aiosqlite.Connection, quiz_id: str, document: QuizRow, question_count: int
) -> LibraryRow | None:
    async with conn.execute("SELECT document_id FROM library WHERE quiz_id = ?", (quiz_id,)) as cursor:
        found = await cursor.fetchone()
    if found is None:
        return None
    await _insert_document(conn, document)
    async with conn.execute(
        "UPDATE library SET document_id = ?, title = ?, title_key = ?, question_count = ?, version = version + 1,"
        f" updated_at_ms = ?, edit_seq = {_NEXT_EDIT} WHERE quiz_id = ? RETURNING {_ENTRY}",
        (
            document.quiz_id,
            document.title,
            title_key(document.title),
            question_count,
            document.created_at_ms,
            quiz_id,
        ),
    ) as cursor:
        updated = await cursor.fetchone()
    assert updated is not None  # the row was there, and this transaction holds the write lock
    await conn.execute(_DROP_UNUSED, (found[0],))
    return LibraryRow(*updated)


async def remove(conn: aiosqlite.Connection, quiz_id: str) -> bool:
    async with conn.execute("DELETE FROM library WHERE quiz_id = ? RETURNING document_id", (quiz_id,)) as cursor:
        found = await cursor.fetchone()
    if found is None:
        return False
    await conn.execute(_DROP_UNUSED, (found[0],))
    return True


async def entry(fetch: Fetch, quiz_id: str) -> tuple[LibraryRow, QuizRow] | None:
    rows = await fetch(
        "SELECT l.quiz_id, l.document_id, l.title, l.question_count, l.version, l.created_at_ms, l.updated_at_ms,"
        " q.quiz_id, q.title, q.body, q.created_at_ms"
        " FROM library AS l JOIN quizzes AS q ON q.quiz_id = l.document_id WHERE l.quiz_id = ?",
        [quiz_id],
    )
    if not rows:
        return None
    r = rows[0]
    return LibraryRow(*r[:7]), QuizRow(*r[7:])


async def page(fetch: Fetch, search: str, offset: int, limit: int) -> LibraryPage:
    key = title_key(search)
    total = await fetch("SELECT count(*) FROM library WHERE instr(title_key, ?1) > 0", [key])
    rows = await fetch(
        f"SELECT {_ENTRY} FROM library WHERE instr(title_key, ?1) > 0 ORDER BY edit_seq DESC LIMIT ?2 OFFSET ?3",
        [key, limit, offset],
    )
    return LibraryPage(total[0][0], tuple(LibraryRow(*r) for r in rows))
