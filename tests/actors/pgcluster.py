"""PostgreSQL clusters for the actor-level tests: a fresh database per test (the `db` fixture, in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quizroom.storage.cluster import PgCluster
from quizroom.storage.postgres import PostgresStorage
from quizroom.storage.records import Batch, RoomRow, RoomStateRow

T0 = 1_700_000_000_000
SHORT_TTL = 0.3
LONG_TTL = 30.0  # longer than any test: a lease or worker that lapses under it lapsed for another reason


# --- helpers ------------------------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], *, within_s: float = 5.0, what: str = "condition") -> None:
    """Poll `check` until it holds; fail after `within_s`."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not hold within {within_s} s")
        await asyncio.sleep(0.02)


class Database:
    """A fresh, migrated PostgreSQL database with one quiz; makes rooms and clusters, closes them afterwards."""

    def __init__(self, url: str, storage: PostgresStorage) -> None:
        self.url = url
        self.storage = storage
        self.clusters: list[PgCluster] = []

    async def room(self, room_id: str, phase: str = "lobby") -> str:
        pin = f"{len(room_id):01d}{abs(hash(room_id)) % 100_000:05d}"
        assert await self.storage.create_room(RoomRow(room_id, pin, "q1", f"hash-{room_id}", T0))
        if phase != "lobby":
            await self.storage.commit(Batch(rooms={room_id: RoomStateRow(room_id, phase, 0, T0, False, 1)}))
        return pin

    async def cluster(self, *, ttl_s: float = LONG_TTL, register: bool = True, **options: Any) -> PgCluster:
        worker_id = secrets.token_hex(8)
        cluster = PgCluster(self.url, worker_id, f"http://{worker_id}.test:8000", ttl_s=ttl_s, **options)
        await cluster.open()
        self.clusters.append(cluster)
        if register:
            await cluster.register(os.getpid(), socket.gethostname())
        return cluster
