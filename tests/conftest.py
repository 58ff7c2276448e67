"""Shared fixtures: databases on both backends, and real servers on free ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

PG_ADMIN_URL = os.environ.get("QUIZROOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


async def create_pg_database() -> str:
    """A fresh PostgreSQL database on the local server; returns its URL. In CI a missing server fails the test."""
    name = f"quizroom_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL on each backend, empty, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quizroom.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'quizroom.db'}"


@pytest.fixture
def start_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: `start_server(database_url, *flags)` → a running `ServerProcess`, killed after the test."""
    from tests.serverproc import ServerProcess

    started: list[ServerProcess] = []

    def start(database_url: str, *extra: str, relaxed: bool = True) -> ServerProcess:
        server = ServerProcess(database_url, tmp_path, *extra, relaxed=relaxed).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def server(start_server, database_url: str):  # type: ignore[no-untyped-def]
    """A real server on a free port, on each backend."""
    return start_server(database_url)


@pytest.fixture
async def http(server) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        yield client
