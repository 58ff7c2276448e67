"""An operator's mistakes at start: one clear log line and a documented exit code each, never a traceback; waiting
for PostgreSQL while it comes up; `started` only once the port listens; `--version`; `backup`; `health`.

Every case runs the real command line in a subprocess, as an operator types it (docs/operations.md, "Start-up
checks and exit codes").
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from quizroom.server.logs import traceback_out_of_event
from quizroom.server.startup import EXIT_DATABASE, EXIT_DATABASE_UNREACHABLE, EXIT_PORT, EXIT_SETTINGS
from tests.gameclient import Host, quiz
from tests.serverproc import ServerProcess, free_port

COMMAND = [sys.executable, "-m", "quizroom.server.cli"]


def quizroom(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QUIZROOM_")}
    environment |= {"QUIZROOM_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Every line on stderr, each of which must be a JSON object (no traceback, no stray text)."""
    assert "Traceback" not in done.stderr, done.stderr
    return [json.loads(line) for line in done.stderr.splitlines() if line.strip()]


def test_each_invalid_setting_is_one_line_naming_it_and_exit_code_2(tmp_path: Path) -> None:
    """Every mistake at once, each named on its own line (choices, ranges, URLs, networks, files, between two)."""
    flags = ["--log-level", "loud", "--log-format", "xml", "--port", "70000", "--database-url", "mysql://db/quiz"]
    flags += ["--workers", "0", "--nickname-blocklist-file", "/no/such/file"]
    env = {"QUIZROOM_PUBLIC_URL": "quiz.example.org", "QUIZROOM_TRUSTED_PROXIES": "10.0.0.0/8,not-an-ip"}
    done = quizroom("serve", *flags, cwd=tmp_path, env=env)
    assert done.returncode == EXIT_SETTINGS
    found = {line["setting"]: line for line in lines(done)}
    names = ["LOG_LEVEL", "LOG_FORMAT", "PORT", "DATABASE_URL", "WORKERS", "NICKNAME_BLOCKLIST_FILE", "PUBLIC_URL"]
    assert set(found) == {f"QUIZROOM_{name}" for name in [*names, "TRUSTED_PROXIES"]}
    for line in found.values():
        assert line["event"] == "setting_invalid" and line["exit_code"] == 2 and line["problem"]
    assert found["QUIZROOM_LOG_LEVEL"]["flag"] == "--log-level" and found["QUIZROOM_LOG_LEVEL"]["value"] == "loud"
    assert not (tmp_path / "quizroom.db").exists()  # nothing was opened

    between = quizroom("serve", "--cluster-ttl-s", "0.2", cwd=tmp_path)  # at most the heartbeat interval (0.5 s)
    assert between.returncode == EXIT_SETTINGS and lines(between)[0]["setting"] == "QUIZROOM_CLUSTER_TTL_S"
    unreadable = quizroom("serve", cwd=tmp_path, env={"QUIZROOM_PORT": "eighty"})
    assert unreadable.returncode == EXIT_SETTINGS and lines(unreadable)[0]["problem"] == "must be an integer"


def test_a_missing_sqlite_directory_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "deeper"
    done = quizroom("serve", "--database-url", f"sqlite:///{missing / 'q.db'}", cwd=tmp_path)
    assert done.returncode == EXIT_DATABASE
    (line,) = lines(done)
    assert line["event"] == "database_directory_missing" and line["directory"] == str(missing)
    assert not missing.parent.exists()


def test_an_unwritable_database_directory_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    # Root writes through permission bits (the image's own user does not: tests/system/test_container.py); an immutable
    # directory refuses root too.
    lock, unlock = (["chattr", "+i", str(folder)], ["chattr", "-i", str(folder)]) if os.geteuid() == 0 else ([], [])
    if lock:
        subprocess.run(lock, check=True)
    else:
        folder.chmod(0o555)
    try:
        done = quizroom("serve", "--database-url", f"sqlite:///{folder / 'q.db'}", cwd=tmp_path)
    finally:
        if unlock:
            subprocess.run(unlock, check=True)
    assert done.returncode == EXIT_DATABASE
    (line,) = lines(done)
    assert line["event"] == "database_not_writable" and line["path"] == str(folder / "q.db")


def test_a_port_in_use_exits_5_and_never_logs_started(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = quizroom("serve", "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'q.db'}", cwd=tmp_path)
    assert done.returncode == EXIT_PORT
    events = [line["event"] for line in lines(done)]
    assert events == ["port_unavailable"]


def test_started_is_logged_once_listening_on_the_real_port_and_written_to_the_address_file(tmp_path: Path) -> None:
    address = tmp_path / "address"
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'q.db'}", tmp_path, "--log-format", "json", "--address-file", str(address)
    )
    server.start()
    try:
        started = [json.loads(line) for line in server.log().splitlines() if '"started"' in line]
        assert len(started) == 1 and started[0]["ports"] == [server.port]
        assert address.read_text().strip() == server.url
        healthy = quizroom("health", cwd=tmp_path, env={"QUIZROOM_ADDRESS_FILE": str(address), "QUIZROOM_PORT": "1"})
        assert healthy.returncode == 0, healthy.stdout
    finally:
        server.kill()
    down = quizroom("health", cwd=tmp_path, env={"QUIZROOM_ADDRESS_FILE": str(address)})
    assert down.returncode == 1 and "unhealthy" in down.stdout


def test_version_is_the_packages(tmp_path: Path) -> None:
    from quizroom.server.metrics import package_version

    done = quizroom("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"quizroom {package_version()}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_postgresql_down_at_start_is_waited_for_until_it_answers(tmp_path: Path, pg_url: str) -> None:
    """The server starts before its database: it logs `database_waiting` and serves once PostgreSQL answers (here a
    forwarder to the real server, opened only after the first retry was logged)."""
    port = free_port()
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    log_path = tmp_path / "server.log"
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIZROOM_")} | {"QUIZROOM_LOG_FORMAT": "json"}
    log = log_path.open("wb")
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve",
        "--port",
        str(http_port),
        "--database-url",
        url,
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=log,
    )
    log.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 5432)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    try:
        deadline = time.monotonic() + 30
        while "database_waiting" not in log_path.read_text():
            assert proc.returncode is None and time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.05)  # polling the child's log, bounded by the deadline
        forwarder = await asyncio.start_server(forward, "127.0.0.1", port)
        async with forwarder, httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:
            while True:
                assert proc.returncode is None and time.monotonic() < deadline, log_path.read_text()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)  # polling the child's readiness, bounded by the deadline
            events = [json.loads(line)["event"] for line in log_path.read_text().splitlines()]
            assert events.index("database_waiting") < events.index("database_answered") < events.index("started")
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 20) in (0, -15)  # uvicorn re-raises SIGTERM once drained
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_postgresql_that_never_answers_exits_4_after_the_wait(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/quizroom"
    done = quizroom("serve", "--database-url", url, "--database-wait-s", "1.5", cwd=tmp_path)
    assert done.returncode == EXIT_DATABASE_UNREACHABLE
    events = [line["event"] for line in lines(done)]
    assert events[-1] == "database_unreachable" and set(events[:-1]) == {"database_waiting"} and len(events) >= 2


def test_migrate_against_a_missing_database_exits_3_at_once(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/quizroom_no_such_database"
    done = quizroom("migrate", "--database-url", url, cwd=tmp_path)
    assert done.returncode == EXIT_DATABASE
    (line,) = lines(done)
    assert line["event"] == "database_refused" and "does not exist" in line["error"]


async def test_backup_copies_a_live_sqlite_database_consistently(tmp_path: Path) -> None:
    database = tmp_path / "live.db"
    server = ServerProcess(f"sqlite:///{database}", tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
            host = await Host.open(http, quiz(1))
            players = [await host.join(name) for name in ("Ann", "Bob")]
            for player in players:
                await player.connect()
            await host.command("start")
            for player in players:
                await player.expect("question")
                await player.answer(0, 0)
                await player.expect("answer_ack")
            copy = tmp_path / "copy.db"
            done = quizroom("backup", str(copy), "--database-url", f"sqlite:///{database}", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            (line,) = lines(done)
            assert line["event"] == "backup_written" and line["answers"] == 2 and line["players"] == 2
            with sqlite3.connect(copy) as restored:
                assert restored.execute("SELECT count(*) FROM answers").fetchone() == (2,)
                assert restored.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            assert not [name for name in os.listdir(tmp_path) if ".partial-" in name]
            again = quizroom("backup", str(copy), "--database-url", f"sqlite:///{database}", cwd=tmp_path)
            assert again.returncode == EXIT_DATABASE and lines(again)[0]["event"] == "backup_failed"
    finally:
        server.kill()


def test_backup_of_postgresql_says_how_and_does_nothing(tmp_path: Path) -> None:
    done = quizroom(
        "backup", str(tmp_path / "x.db"), "--database-url", "postgresql://quiz:secret@db/quizroom", cwd=tmp_path
    )
    assert done.returncode == EXIT_SETTINGS
    assert "pg_dump --format=custom" in done.stdout and "secret" not in done.stdout
    assert not (tmp_path / "x.db").exists()


def test_a_traceback_logged_as_a_message_becomes_one_readable_event() -> None:
    text = 'Traceback (most recent call last):\n  File "x.py", line 1\nOSError: [Errno 30] Read-only file system\n'
    event = traceback_out_of_event(None, "error", {"event": text, "level": "error"})
    assert event["event"] == "unhandled_error"
    assert event["error"] == "OSError: [Errno 30] Read-only file system"
    assert event["exception"].startswith("Traceback")
