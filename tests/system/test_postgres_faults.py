"""Exactly-once across PostgreSQL restarts and crashes, on a private cluster this module starts and owns.

The invariant (SPEC §5 "Exactly once"): every answer whose write future resolved is stored exactly once afterwards,
and an answer whose future failed can be submitted again and then lands exactly once — with no `open()` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from quizroom.storage import StorageError
from quizroom.storage.postgres import PostgresStorage
from quizroom.storage.records import AnswerRow, Batch, Outcome, QuizRow, RoomRow
from quizroom.storage.writer import GroupCommitWriter

T0 = 1_700_000_000_000


def _pg_bindir() -> Path | None:
    """`QUIZROOM_PG_BIN`, else the newest /usr/lib/postgresql/*/bin, else wherever `initdb` is on PATH."""
    candidates = [os.environ.get("QUIZROOM_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    on_path = shutil.which("initdb")
    candidates += [str(Path(on_path).parent)] if on_path else []
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateCluster:
    """A throwaway PostgreSQL cluster: trust auth on 127.0.0.1, fsync and synchronous_commit on (the crash test is
    only meaningful with real durability). Run as the `postgres` OS user when we are root, since initdb and the
    server refuse to run as root."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self, *, patience_s: float = 20.0) -> None:
        """Start and wait until it accepts connections. Retries, because right after a crash the old processes may
        still hold the shared memory for a moment ("pre-existing shared memory block is still in use")."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on"
        deadline = time.monotonic() + patience_s
        while True:
            result = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "15",
                "-o", options, "start", check=False,
            )  # fmt: skip
            if result.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"postgres did not start: {result.stdout}{result.stderr}\n{self.log_tail()}")
            time.sleep(0.1)  # a subprocess retry in a worker thread, not a test waiting on a condition

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop("fast")
        self.start()

    def crash(self) -> None:
        """SIGKILL the postmaster and then every backend it had: the whole server dies mid-transaction."""
        self.signal_all(signal.SIGKILL)  # the postmaster first: it cannot fork replacements for the others

    def processes(self) -> list[int]:
        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]

    def signal_all(self, signum: signal.Signals) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def crash_and_start(self) -> None:
        self.crash()
        self.start()

    def log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text()[-2000:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bindir = _pg_bindir()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        message = "PostgreSQL server binaries (initdb, pg_ctl) not found; set QUIZROOM_PG_BIN"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="quizroom-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PrivateCluster(bindir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def fault_url(cluster: PrivateCluster) -> AsyncIterator[str]:
    """A fresh database in the private cluster (running, whatever the previous test did to it)."""
    try:
        conn = await asyncpg.connect(cluster.admin_url)
    except (OSError, asyncpg.PostgresError):
        await asyncio.to_thread(cluster.start)
        conn = await asyncpg.connect(cluster.admin_url)
    name = f"faults_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield cluster.admin_url.rsplit("/", 1)[0] + f"/{name}"


async def poll(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def answer(player_id: str, question: int) -> AnswerRow:
    return AnswerRow("r1", question, player_id, (question % 4,), question % 2 == 0, 500 + question, 1000, T0 + 1)


async def burst_through(url: str, fault: Callable[[], None]) -> None:
    """Two writers commit a steady stream of answers while `fault` runs (in a thread, so the loop goes on): a patient
    one (retry_for_s long enough to ride over the fault) and an impatient one (whose batches may fail). Then check
    the exactly-once invariant, resubmitting whatever failed through the same, never-reopened storage."""
    storage = PostgresStorage(url, min_size=1, max_size=4)
    await storage.open()
    await storage.create_quiz(QuizRow("q1", "Faults", "{}", T0))
    assert await storage.create_room(RoomRow("r1", "424242", "q1", "h", T0))
    patient = GroupCommitWriter(storage, retry_for_s=20.0)
    impatient = GroupCommitWriter(storage, retry_for_s=0.2)
    submitted: dict[tuple[int, str], AnswerRow] = {}
    futures: dict[tuple[int, str], asyncio.Future[Outcome]] = {}
    fault_done = asyncio.Event()

    async def produce() -> None:
        waves_after_fault, i = 0, 0
        while waves_after_fault < 40:
            for writer, question in ((patient, 0), (impatient, 1)):
                for _ in range(5):
                    row = answer(f"p{i:06d}", question)
                    i += 1
                    submitted[(question, row.player_id)] = row
                    futures[(question, row.player_id)] = writer.add_answer(row)
            await asyncio.sleep(0.003)  # pacing of the load, not a wait for a condition
            waves_after_fault += fault_done.is_set()

    patient.start()
    impatient.start()
    try:
        producer = asyncio.create_task(produce())
        await poll(lambda: patient.stats.commits >= 5 and impatient.stats.commits >= 5, 10, "commits before the fault")
        await asyncio.to_thread(fault)
        fault_done.set()
        await producer
        async with asyncio.timeout(30):
            outcomes = await asyncio.gather(*futures.values(), return_exceptions=True)
    finally:
        await patient.stop()
        await impatient.stop()
    acked = {key for key, outcome in zip(futures, outcomes, strict=True) if isinstance(outcome, Outcome)}
    failed = {key for key, outcome in zip(futures, outcomes, strict=True) if not isinstance(outcome, Outcome)}
    assert all(isinstance(outcomes[i], StorageError) for i, key in enumerate(futures) if key in failed)
    assert not any(question == 0 for question, _ in failed), "the patient writer must ride over the fault"
    try:
        stored = {(a.question, a.player_id): a for a in await storage.load_answers("r1")}
        assert acked <= stored.keys(), f"{len(acked - stored.keys())} acknowledged answers are missing"
        assert all(stored[key] == submitted[key] for key in stored)
        # Resubmit what failed (some of it may have landed anyway: the commit can succeed with its reply lost).
        await storage.commit(Batch.of(answers=[submitted[key] for key in sorted(failed)]))
        counts = await _counts_per_answer(url)
        assert counts.keys() == submitted.keys() and set(counts.values()) == {1}
        print(f"{len(submitted)} answers, {len(failed)} failed and resubmitted")
    finally:
        await storage.close()


async def _counts_per_answer(url: str) -> dict[tuple[int, str], int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT question, player_id, count(*) FROM answers GROUP BY question, player_id")
    finally:
        await conn.close()
    return {(r[0], r[1]): r[2] for r in rows}


async def test_acknowledged_answers_survive_a_restart_mid_burst_exactly_once(
    cluster: PrivateCluster, fault_url: str
) -> None:
    await burst_through(fault_url, cluster.restart)


async def test_acknowledged_answers_survive_a_postmaster_sigkill_mid_burst_exactly_once(
    cluster: PrivateCluster, fault_url: str
) -> None:
    await burst_through(fault_url, cluster.crash_and_start)


async def test_ping_fails_while_the_server_is_down_and_recovers_without_reopening(
    cluster: PrivateCluster, fault_url: str
) -> None:
    storage = PostgresStorage(fault_url)
    await storage.open()
    try:
        await storage.ping()
        await asyncio.to_thread(cluster.stop, "fast")
        with pytest.raises(StorageError):
            await storage.ping()
        with pytest.raises(StorageError):
            await storage.commit(Batch.of(answers=[answer("p", 0)]))
        await asyncio.to_thread(cluster.start)
        await storage.ping()
        assert await storage.get_quiz("nope") is None
    finally:
        await storage.close()


async def test_ping_gives_up_quickly_on_a_hung_server(cluster: PrivateCluster, fault_url: str) -> None:
    storage = PostgresStorage(fault_url, ping_timeout_s=0.5)
    await storage.open()
    try:
        await storage.ping()
        cluster.signal_all(signal.SIGSTOP)
        try:
            started = time.monotonic()
            async with asyncio.timeout(5):  # a hang would fail here rather than block the suite
                with pytest.raises(StorageError):
                    await storage.ping()
            print(f"ping gave up after {time.monotonic() - started:.2f} s")
        finally:
            cluster.signal_all(signal.SIGCONT)
        await storage.ping()
    finally:
        await storage.close()
