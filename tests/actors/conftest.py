"""Fixtures of the actor-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from quizroom.storage.postgres import PostgresStorage
from quizroom.storage.records import QuizRow
from tests.actors.pgcluster import T0, Database
from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    """A fresh, migrated PostgreSQL database with one quiz (`q1`), dropped afterwards."""
    url = await create_pg_database()
    storage = PostgresStorage(url)
    database = Database(url, storage)
    try:
        await storage.open()
        await storage.create_quiz(QuizRow("q1", "Quiz", '{"title": "Quiz", "questions": []}', T0))
        yield database
    finally:
        for cluster in database.clusters:
            await cluster.close()
        await storage.close()
        await drop_pg_database(url)
