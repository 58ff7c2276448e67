"""Production logs: one JSON object per line, every line with the worker id, room lines with the PIN, access lines
without query strings, and no token anywhere — after a whole game with every kind of credential in play."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import structlog

from quizroom.server.logs import configure_logging
from tests.gameclient import Host, quiz


def log_lines(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            record = json.loads(line)  # fails the test on any line that is not JSON
            assert isinstance(record, dict), f"line {number}: {line}"
            records.append(record)
    return records


def wait_for_access(path: Path, wanted_path: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = log_lines(path)
        if any(r.get("event") == "http_request" and r.get("path") == wanted_path for r in records):
            return records
        assert time.monotonic() < deadline, f"no access line for {wanted_path}"
        time.sleep(0.05)  # polling the server's log file, bounded by the deadline


async def test_json_logs_carry_worker_and_pin_and_never_a_token(start_server: Any, sqlite_url: str) -> None:
    server = start_server(sqlite_url, "--log-format", "json", "--log-level", "debug")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(1))
        ann = await host.join("Ann")
        bob = await host.join("Bob")
        await ann.connect()
        await bob.connect()
        secrets = [host.room["host_token"], ann.token, bob.token]
        # Tokens where a careless client might put them: the query string and odd headers.
        await http.get(f"/?pin={host.pin}&token={ann.token}")
        await http.get(f"/api/rooms/{host.pin}/leaderboard?limit=5&token={bob.token}", headers=host.headers)
        await http.get(f"/api/rooms/{host.pin}", headers={"Authorization": f"Bearer {ann.token}"})  # 401
        await host.command("start")
        await ann.expect("question")
        await ann.answer(0, 0)
        await ann.expect("answer_ack")
        await bob.send({"type": "hello", "token": bob.token})  # a second hello: an error, logged or not
        await host.command("end")
        await ann.close()
        await bob.close()
        await http.get("/healthz?probe=1")

    records = wait_for_access(server.log_path, "/healthz")
    text = server.log_path.read_text()
    for secret in secrets:
        assert secret not in text
    assert all(record.get("worker") == records[0]["worker"] for record in records)
    assert isinstance(records[0]["worker"], int)

    access = [r for r in records if r.get("event") == "http_request"]
    assert {r["path"] for r in access} >= {"/", f"/api/rooms/{host.pin}/leaderboard", "/api/rooms", "/healthz"}
    for record in access:
        assert "?" not in json.dumps(record), record
        assert set(record) >= {"method", "path", "status", "duration_ms"}
    assert {(r["path"], r["status"]) for r in access} >= {
        (f"/api/rooms/{host.pin}", 401),
        (f"/api/rooms/{host.pin}/players", 201),
    }

    room_lines = [r for r in records if r.get("event") == "room_created"]
    assert room_lines and all(r["pin"] == host.pin for r in room_lines)


def test_stdlib_records_are_rendered_as_json_with_the_worker(capsys: Any) -> None:
    import logging

    try:
        configure_logging("info", "json")
        logging.getLogger("uvicorn.error").warning("something from %s", "uvicorn")
        structlog.get_logger("quizroom.test").info("an_event", pin="123456")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert lines[0]["event"] == "something from uvicorn" and lines[0]["worker"] == os.getpid()
    assert lines[1]["event"] == "an_event" and lines[1]["pin"] == "123456" and lines[1]["worker"] == os.getpid()


def test_console_lines_read_as_key_value_with_the_traceback_below(capsys: Any) -> None:
    import logging

    try:
        configure_logging("info", "console")
        log = structlog.get_logger("quizroom.test")
        log.info("http_request", method="POST", path="/api/rooms/123456/players", status=201, duration_ms=1.5)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("job_failed", pin="123456")
        logging.getLogger("uvicorn.error").warning("something from %s", "uvicorn")
        lines = capsys.readouterr().err.splitlines()
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    first = lines[0].split()
    assert first[1:4] == ["[info", "]", "http_request"] and first[0].endswith("Z")
    assert first[4:] == [
        "duration_ms=1.5",
        "method=POST",
        "path=/api/rooms/123456/players",
        "status=201",
        f"worker={os.getpid()}",
    ]
    assert "[error    ] job_failed" in lines[1] and "pin=123456" in lines[1]
    assert lines[2] == "Traceback (most recent call last):" and "ValueError: boom" in lines
    assert any("[warning  ] something from uvicorn" in line and "logger=uvicorn.error" in line for line in lines)
