"""Shared fixtures: databases on both backends, and real servers on free ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

if TYPE_CHECKING:
    from quizroom.rooms.cluster.registry import RoomRegistry
    from tests.actors.test_actor import FailingStorage
    from tests.containers import PrivateDocker

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
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (PostgreSQL only: clusters, workers)."""
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


# --- containers (tests/containers.py) ------------------------------------------------------------------------

CONTAINER_REPORT = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[CONTAINER_REPORT] = []
    config.addinivalue_line("markers", "serial: runs alone, after the rest of the suite (Makefile `test-parallel`)")


# --- the suite's two passes ---------------------------------------------------------------------------------------

#: Modules whose claims are about time under load or faults (leases, pauses, partitions, kill -9, heartbeats, the
#: collector's pauses, the bench's pinned ratios) or that start clusters, several workers, containers or network
#: namespaces. `make test-parallel` runs them one at a time after the rest, which runs two at a time (xdist): on two
#: cores a fault test beside another test measures the machine's load instead of its fault.
SERIAL = frozenset(
    {
        "test_partitions",
        "test_fencing_faults",
        "test_postgres_faults",
        "test_kill_harness",
        "test_sharding",
        "test_workers",
        "test_compose",
        "test_container",
        "test_heartbeat",
        "test_pulse",  # blocks its event loop on purpose, for ten TTLs
        "test_collector",
        "test_bench",  # its cluster-costs run starts two workers and seats players at once: a race under load
        "test_fencing",
        "test_catch_up",
        "test_cluster_storage",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rsplit(".", 1)[-1] in SERIAL:
            item.add_marker(pytest.mark.serial)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """What the container tests proved, in CI's output: the image, the game through it, the compose failover."""
    lines = config.stash.get(CONTAINER_REPORT, [])
    if lines:
        terminalreporter.section("containers")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def container_report(request: pytest.FixtureRequest) -> list[str]:
    return request.config.stash[CONTAINER_REPORT]


@pytest.fixture(scope="session")
def docker_daemon(container_report: list[str]) -> Iterator[PrivateDocker]:
    """A private dockerd with the quizroom image built (`make image`'s script); stopped after the session.

    Off Linux or without root the container tests are skipped, except in CI (CI=true), where that is a failure.
    """
    from tests.containers import ContainerSetupError, PrivateDocker, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"container tests cannot run in CI: {reason}")
        pytest.skip(reason)
    daemon = PrivateDocker()
    try:
        daemon.start()
    except ContainerSetupError as exc:
        pytest.fail(str(exc))
    try:
        summary = daemon.build_quizroom(daemon.run_dir / "build.log")
        container_report.append(f"{summary}; daemon up in {daemon.timings['daemon_start_s']:.1f} s")
        yield daemon
    finally:
        daemon.clean()
        daemon.stop()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[RoomRegistry, FailingStorage]]:
    """A room registry in this process on real SQLite whose commits fail while `storage.down` is set."""
    from quizroom.rooms.actors.limits import ActorLimits
    from quizroom.rooms.cluster.registry import RoomRegistry
    from quizroom.rooms.game.clock import SystemClock
    from quizroom.storage.writer import GroupCommitWriter
    from tests.actors.test_actor import FailingStorage

    storage = FailingStorage(f"sqlite:///{tmp_path / 'actor.db'}")
    await storage.open()
    writer = GroupCommitWriter(storage, retry_for_s=0.2)
    writer.start()
    registry = RoomRegistry(storage, writer, SystemClock(), ActorLimits())
    yield registry, storage
    await registry.close()
    await writer.stop()
    await storage.close()
