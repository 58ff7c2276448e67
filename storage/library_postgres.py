"""The quiz library on PostgreSQL (`quizroom.storage.base.Storage`, "The quiz library"): the statements, run by
`quizroom.storage.postgres.PostgresStorage` on one of its pooled connections.

Each write is one transaction. A replacement locks its entry (`FOR UPDATE`) before it reads the version it
replaces, so two saves of one quiz take turns and each bumps `version` once; the `library_edits` sequence orders
the list newest-edited first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from quizroom.storage.records import LibraryPage, LibraryRow, QuizRow, title_key

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

_ENTRY = "quiz_id, document_id, title, question_count, version, created_at_ms, updated_at_ms"
# A version that neither an entry nor a room names any more is deleted: nothing can reach it. A room being created
# from it at this moment fails on its foreign key (and the retry finds the quiz gone) rather than lose its quiz.
_DROP_UNUSED = (
    "DELETE FROM quizzes WHERE quiz_id = $1"
    " AND NOT EXISTS (SELECT 1 FROM library WHERE document_id = $1)"
    " AND NOT EXISTS (SELECT 1 FROM rooms WHERE quiz_id = $1)"
)


def _entry(row: Any) -> LibraryRow:
    return LibraryRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


async def _insert_document(conn: Connection, document: QuizRow) -> None:
    await conn.execute(
        "INSERT INTO quizzes (quiz_id, title, body, created_at_ms) VALUES ($1, $2, $3, $4)",
        document.quiz_id,
        document.title,
        document.body,
        document.created_at_ms,
    )


async def add(conn: Connection, document: QuizRow, question_count: int) -> LibraryRow:
    async with conn.transaction():
        await _insert_document(conn, document)
        row = await conn.fetchrow(
            "INSERT INTO library (quiz_id, document_id, title, title_key, question_count, version, created_at_ms,"
            f" updated_at_ms) VALUES ($1, $1, $2, $3, $4, 1, $5, $5) RETURNING {_ENTRY}",
            document.quiz_id,
            document.title,
            title_key(document.title),
            question_count,
            document.created_at_ms,
        )
    return _entry(row)


async def replace(conn: Connection, quiz_id: str, document: QuizRow, question_count: int) -> LibraryRow | None:
    async with conn.transaction():
        old = await conn.fetchval("SELECT document_id FROM library WHERE quiz_id = $1 FOR UPDATE", quiz_id)
        if old is None:
            return None
        await _insert_document(conn, document)
        row = await conn.fetchrow(
            "UPDATE library SET document_id = $2, title = $3, title_key = $4, question_count = $5,"
            " version = version + 1, updated_at_ms = $6, edit_seq = nextval('library_edits')"
            f" WHERE quiz_id = $1 RETURNING {_ENTRY}",
            quiz_id,
            document.quiz_id,
            document.title,
            title_key(document.title),
            question_count,
            document.created_at_ms,
        )
        await conn.execute(_DROP_UNUSED, old)
    return _entry(row)


async def remove(conn: Connection, quiz_id: str) -> bool:
    async with conn.transaction():
        old = await conn.fetchval("DELETE FROM library WHERE quiz_id = $1 RETURNING document_id", quiz_id)
        if old is None:
            return False
        await conn.execute(_DROP_UNUSED, old)
    return True


async def entry(conn: Connection, quiz_id: str) -> tuple[LibraryRow, QuizRow] | None:
    row = await conn.fetchrow(
        "SELECT l.quiz_id, l.document_id, l.title, l.question_count, l.version, l.created_at_ms, l.updated_at_ms,"
        " q.quiz_id, q.title, q.body, q.created_at_ms"
        " FROM library AS l JOIN quizzes AS q ON q.quiz_id = l.document_id WHERE l.quiz_id = $1",
        quiz_id,
    )
    if row is None:
        return None
    return _entry(row), QuizRow(row[7], row[8], row[9], row[10])


async def page(conn: Connection, search: str, offset: int, limit: int) -> LibraryPage:
    key = title_key(search)
    total = await conn.fetchval("SELECT count(*) FROM library WHERE strpos(title_key, $1) > 0", key)
    rows = await conn.fetch(
        f"SELECT {_ENTRY} FROM library WHERE strpos(title_key, $1) > 0 ORDER BY edit_seq DESC LIMIT $2 OFFSET $3",
        key,
        limit,
        offset,
    )
    return LibraryPage(int(total), tuple(_entry(r) for r in rows))
