"""`/healthz` says the process is alive; `/readyz` says it can take traffic: storage reachable and not draining."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx

from tests.conftest import PG_ADMIN_URL, create_pg_database, drop_pg_database


async def poll_status(http: httpx.AsyncClient, path: str, status: int, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = await http.get(path)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, f"{path} stayed {response.status_code}: {response.text}"
        await asyncio.sleep(0.05)  # polling, bounded by the deadline


async def test_ready_when_storage_is_reachable(start_server: Any, sqlite_url: str) -> None:
    server = start_server(sqlite_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok" and health["pid"] == server.proc.pid
        assert (await http.get("/readyz")).json() == {"status": "ready"}


async def test_readyz_fails_while_the_database_is_gone_and_recovers(start_server: Any) -> None:
    url = await create_pg_database()
    try:
        server = start_server(url, "--storage-retry-s", "1")
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
            await poll_status(http, "/readyz", 200)
            await drop_pg_database(url)  # WITH (FORCE): the server's connections are cut too
            failing = await poll_status(http, "/readyz", 503)
            body = failing.json()
            assert body["status"] == "unavailable" and any(p.startswith("storage") for p in body["problems"])
            assert (await http.get("/healthz")).status_code == 200  # alive all the same: no restart needed
            metrics = (await http.get("/metrics")).text
            assert "quizroom_storage_healthy" in metrics

            conn = await asyncpg.connect(PG_ADMIN_URL)
            try:
                await conn.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
            finally:
                await conn.close()
            await poll_status(http, "/readyz", 200)
    finally:
        await drop_pg_database(url)
