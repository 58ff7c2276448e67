"""The image, built by `make image`'s script and run as an operator runs it: a game over HTTP and WebSocket through
the container, as a non-root user, healthy on the port it was told, SQLite on a named volume that outlives the
container, and SIGTERM draining (players get 1001 and resume after the restart). No test code in the image.

A private Docker daemon (tests/containers.py); every address the test talks to is 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidHandshake

from tests.containers import IMAGE, PrivateDocker
from tests.gameclient import Host, Player, quiz
from tests.serverproc import free_port

pytestmark = pytest.mark.timeout(900)  # a cold machine makes the base image from Debian's packages first

NAME = "quizroom-test-single"
VOLUME = "quizroom-test-data"


def run_server(docker: PrivateDocker, port: int, *args: str) -> str:
    """Our own port inside (the healthcheck must follow it), published on loopback only."""
    return docker.docker(
        "run",
        "-d",
        "--name",
        NAME,
        "-p",
        f"127.0.0.1:{port}:9000",
        "-v",
        f"{VOLUME}:/data",
        "--health-interval",
        "1s",  # the Dockerfile's command, probed faster than its 10 s so the test need not wait
        IMAGE,
        "--host",
        "0.0.0.0",
        "--port",
        "9000",
        *args,
    ).stdout.strip()


def inspect(docker: PrivateDocker, what: str) -> Any:
    return json.loads(docker.docker("inspect", "--format", "{{json " + what + "}}", NAME).stdout)


def wait_healthy(docker: PrivateDocker, timeout: float = 60.0) -> float:
    began = time.monotonic()
    while (status := inspect(docker, ".State.Health.Status")) != "healthy":
        assert inspect(docker, ".State.Running"), docker.docker("logs", NAME).stderr[-3000:]
        assert time.monotonic() - began < timeout, f"health stayed {status}: {inspect(docker, '.State.Health')}"
        time.sleep(0.2)  # polling the daemon, bounded by the deadline
    return time.monotonic() - began


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def reconnect(player: Player, deadline: float) -> dict[str, Any]:
    while True:
        try:
            welcome = await player.connect()
            assert welcome is not None
            return welcome
        except (OSError, InvalidHandshake):
            assert time.monotonic() < deadline, "could not reconnect"
            await asyncio.sleep(0.1)  # the container answers /healthz; a refused connect is retried briefly


async def test_the_image_plays_a_game_keeps_it_on_its_volume_and_drains_on_sigterm(
    docker_daemon: PrivateDocker, container_report: list[str], tmp_path: Path
) -> None:
    docker = docker_daemon
    began = time.monotonic()
    port = free_port()
    run_server(docker, port)
    try:
        healthy_after = wait_healthy(docker)
        assert docker.docker("exec", NAME, "id", "-u").stdout.strip() == "10001"  # not root
        assert inspect(docker, ".Config.User") == "quizroom:quizroom"
        no_tests = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('tests', 'quizroom.tests')))"
        assert docker.docker("exec", NAME, "python", "-c", no_tests, check=False).returncode == 0
        found = docker.docker("exec", NAME, "find", "/usr", "-path", "*quizroom*", "-name", "test_*.py").stdout
        assert found.strip() == "", f"test code in the image: {found}"

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
            host = await Host.open(http, quiz(2, time_limit_ms=60_000))
            players = [await host.join(name) for name in ("Ann", "Bob", "Cyd")]
            for player in players:
                await player.connect()
            await host.command("start")
            for index, player in enumerate(players):
                await player.expect("question")
                await player.answer(0, index % 2)  # question 0's answer is A (0): Ann and Cyd are right
                assert (await player.expect("answer_ack"))["accepted"]
            results = [await p.expect("result") for p in players]  # everyone answered: it closes by itself
            assert [r["is_correct"] for r in results] == [True, False, True]
            before = await host.results()

            # A consistent copy while the server runs, with the tool the image has (no sqlite3 program in it).
            backup = docker.docker("exec", NAME, "quizroom", "backup", "/data/backup.db", check=False)
            assert backup.returncode == 0, backup.stderr
            written = json_lines(backup.stderr)[-1]
            assert written["event"] == "backup_written" and written["answers"] == 3

            # SIGTERM: every socket gets 1001, the process exits 0; the same container starts again on its volume.
            stopped = time.monotonic()
            docker.docker("stop", "--time", "30", NAME)
            assert [await p.closed_with() for p in players] == [1001, 1001, 1001]
            assert inspect(docker, ".State.ExitCode") == 0
            assert "stopped" in {line.get("event") for line in json_lines(docker.docker("logs", NAME).stderr)}
            docker.docker("start", NAME)
            wait_healthy(docker)
            deadline = time.monotonic() + 30
            welcomes = [await reconnect(p, deadline) for p in players]
            resumed_after = time.monotonic() - stopped
            assert {w["phase"] for w in welcomes} == {"reveal"}
            assert [w["score"] for w in welcomes] == [r["score"] for r in results]
            assert await host.results() == before

            await host.command("next")
            for player in players:
                assert (await player.expect("question"))["index"] == 1
                await player.answer(1, 1)
                assert (await player.expect("answer_ack"))["accepted"]
            for player in players:
                await player.expect("result")
            await host.command("next")
            for player in players:
                await player.expect("finished")
            final = await host.results()
            assert final["phase"] == "finished"
            assert sorted(len(p["answers"]) for p in final["players"]) == [2, 2, 2]
        logs = docker.docker("logs", NAME).stderr
        assert all(line.startswith("{") for line in logs.splitlines() if line.strip()), "a log line is not JSON"

        # The volume outlives the container: a new container on it serves the same finished game.
        docker.docker("rm", "-f", NAME)
        run_server(docker, port)
        wait_healthy(docker)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
            again = await http.get(f"/api/rooms/{host.pin}/results", headers=host.headers)
            assert again.status_code == 200 and again.json() == final
    finally:
        docker.docker("rm", "-f", NAME, check=False)
        docker.docker("volume", "rm", "-f", VOLUME, check=False)
    container_report.append(
        f"container: game of 3 players played through {IMAGE} as uid 10001, healthy on --port 9000 in "
        f"{healthy_after:.1f} s; docker stop gave every socket 1001, players resumed {resumed_after:.1f} s later "
        f"with scores intact; a new container on the volume served the same results "
        f"({time.monotonic() - began:.0f} s)"
    )


def test_operator_mistakes_in_the_container_are_one_json_line_and_an_exit_code(
    docker_daemon: PrivateDocker, tmp_path: Path
) -> None:
    docker = docker_daemon
    read_only = tmp_path / "root-owned"
    read_only.mkdir()
    read_only.chmod(0o755)  # a host folder owned by root: the image's user cannot write its database there
    cases = [
        (["-v", f"{read_only}:/data", IMAGE], 3, "database_not_writable"),
        ([IMAGE, "--log-level", "loud"], 2, "setting_invalid"),
        (["-e", "QUIZROOM_DATABASE_URL=mysql://db/quiz", IMAGE], 2, "setting_invalid"),
    ]
    for args, code, event in cases:
        done = docker.docker("run", "--rm", *args, check=False, timeout=60)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert json.loads(lines[0])["event"] == event
