"""`quizroom serve --workers N`: a supervisor and N real worker processes, one shared port and one port per worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from quizroom.server.settings import Settings
from quizroom.server.urls import url_host, worker_url
from quizroom.server.workers import check_settings, next_restart_delay
from tests.conftest import create_pg_database, drop_pg_database
from tests.serverproc import free_ports

QUIZROOM = Path(sys.executable).parent / "quizroom"  # the installed console script, as an operator runs it
SHUTDOWN_TIMEOUT_S = 2.0
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `probe` until it returns something other than None, bounded by a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)  # polling real processes, bounded by the deadline


def health_pid(port: int) -> int | None:
    """The pid of the process that answered /healthz on `port`, or None when nothing answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body = response.json()
    assert body["status"] == "ok"
    pid: int = body["pid"]
    return pid


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited too
    except (OSError, IndexError):
        return True


def log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = asyncio.run(create_pg_database())
    try:
        yield url
    finally:
        asyncio.run(drop_pg_database(url))


@pytest.fixture
def supervisor(pg_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`quizroom serve --workers 2` on ports P (shared), P+1 and P+2 (the workers'); stopped after the test."""
    port = free_ports(3)
    log_path = tmp_path / "supervisor.log"
    cmd = [str(QUIZROOM), "serve", "--workers", "2", "--port", str(port), "--database-url", pg_url]
    cmd += ["--log-format", "json", "--shutdown-timeout-s", str(SHUTDOWN_TIMEOUT_S)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, port, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=SHUTDOWN_TIMEOUT_S + 10)
            except subprocess.TimeoutExpired:
                proc.kill()  # its workers get SIGTERM from the kernel (parent-death signal)
                proc.wait(timeout=10)


@pytest.mark.timeout(90)
def test_workers_share_a_port_restart_when_killed_and_stop_on_sigterm(
    supervisor: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    proc, port, log_path = supervisor

    def answering(p: int) -> int | None:
        assert proc.poll() is None, f"supervisor exited with {proc.returncode}:\n{log_path.read_text()}"
        return health_pid(p)

    shared_pid = wait_for(lambda: answering(port), 30, "the shared port")
    first = wait_for(lambda: answering(port + 1), 30, "worker 0's port")
    second = wait_for(lambda: answering(port + 2), 30, "worker 1's port")
    assert first != second and proc.pid not in (first, second)
    assert shared_pid in (first, second)
    for index, pid in enumerate((first, second)):
        assert Path(f"/proc/{pid}/comm").read_text().strip() == f"quizroom-w{index}"
        assert f"QUIZROOM_WORKER_INDEX={index}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")

    # kill -9 worker 0: the shared port goes on answering (worker 1), worker 0's port comes back with a new process
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: answering(port), 10, "the shared port after the kill")

    def restarted() -> int | None:
        pid = answering(port + 1)
        return pid if pid != first else None

    replacement = wait_for(restarted, 20, "worker 0's restart")
    assert replacement not in (first, second, proc.pid)
    assert health_pid(port + 2) == second  # the other worker was left alone
    events = log_events(log_path)
    assert any(e["event"] == "worker_died" and e["index"] == 0 and e["exit"] == "SIGKILL" for e in events)
    assert any(e["event"] == "worker_restarted" and e["index"] == 0 and e["pid"] == replacement for e in events)
    started = {e["index"]: e["url"] for e in events if e["event"] == "worker_started"}
    assert started == {0: f"http://127.0.0.1:{port + 1}", 1: f"http://127.0.0.1:{port + 2}"}

    # SIGTERM to the supervisor: every worker drains and exits 0, then the supervisor exits 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=SHUTDOWN_TIMEOUT_S + 15) == 0, log_path.read_text()
    wait_for(lambda: (gone(replacement) and gone(second)) or None, 10, "the workers to exit")
    stopped = {e["pid"]: e["exitcode"] for e in log_events(log_path) if e["event"] == "worker_stopped"}
    assert stopped == {replacement: 0, second: 0}, log_path.read_text()
    for p in (port, port + 1, port + 2):
        assert health_pid(p) is None


@pytest.mark.timeout(60)
def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    port = free_ports(3)
    cmd = [str(QUIZROOM), "serve", "--workers", "2", "--port", str(port)]
    cmd += ["--database-url", f"sqlite:///{tmp_path / 'quizroom.db'}"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr and "postgresql://" in result.stderr and "--workers" in result.stderr
    assert health_pid(port) is None


def test_worker_urls() -> None:
    local = Settings(host="127.0.0.1", port=8000)
    assert worker_url(local, 8001) == "http://127.0.0.1:8001"
    assert worker_url(Settings(host="0.0.0.0", advertise_host="node-3.internal"), 8002) == "http://node-3.internal:8002"
    assert worker_url(Settings(host="::"), 8001) == f"http://{url_host(socket.gethostname())}:8001"
    assert worker_url(Settings(host="::1"), 8001) == "http://[::1]:8001"
    assert worker_url(Settings(host="::", advertise_host="fd00::7"), 8001) == "http://[fd00::7]:8001"


def test_restart_backoff_doubles_to_five_seconds_and_resets_after_a_stable_run() -> None:
    delays = [0.0]
    for _ in range(6):
        delays.append(next_restart_delay(delays[-1], lifetime_s=1.0))
    assert delays[1:] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert next_restart_delay(5.0, lifetime_s=30.0) == 0.5


def test_settings_that_cannot_run_workers() -> None:
    pg = "postgresql://postgres@127.0.0.1/quizroom"
    assert check_settings(Settings(workers=4, database_url=pg)) is None
    assert "postgresql://" in (check_settings(Settings(workers=2)) or "")  # the default is SQLite
    assert "at least 1" in (check_settings(Settings(workers=0, database_url=pg)) or "")
    assert "fixed --port" in (check_settings(Settings(workers=2, port=0, database_url=pg)) or "")
    assert "PORT + 1" in (check_settings(Settings(workers=2, port=65_534, database_url=pg)) or "")
