"""deploy/compose.yaml run end to end with Debian's docker-compose: PostgreSQL, two quizroom servers and Caddy.

A 200-player game through Caddy alone (the players use the project's Python client, as an integrator would), with
shards on both servers; the server that coordinates the room is killed mid-question, and the game finishes on the
other: every acknowledged answer stored exactly once, every player back and through to the end. `/metrics` stays
off the public route. Where no registry can give the official PostgreSQL and Caddy images, stand-ins are built from
Debian's packages (docker/standins/, tests/compose.test.yaml). Every address the test talks to is 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from websockets.exceptions import InvalidHandshake

from quizroom.clients.client import ApiError, PlayerSocket, PlayerTicket, QuizroomAPI, SessionEnded, SocketRefusal
from quizroom.clients.messages import AnswerAck, QuestionOpened, Welcome
from tests.containers import CADDY_IMAGE, POSTGRES_IMAGE, REPOSITORY, PrivateDocker
from tests.serverproc import free_port

pytestmark = pytest.mark.timeout(1200)  # a cold machine builds the stand-in images first

PLAYERS = 200
PROJECT = "qrtest"
T = TypeVar("T")
TRANSIENT = (OSError, InvalidHandshake, TimeoutError, SessionEnded, ApiError, SocketRefusal)


class Compose:
    def __init__(self, docker: PrivateDocker, port: int) -> None:
        self.docker = docker
        self.env = {
            **docker.env,
            "POSTGRES_PASSWORD": "compose-test",
            "QUIZROOM_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "QUIZROOM_PROXY_BIND": f"127.0.0.1:{port}",
            "POSTGRES_IMAGE": POSTGRES_IMAGE,
            "CADDY_IMAGE": CADDY_IMAGE,
        }
        self.env.pop("QUIZROOM_ADMIN_TOKEN", None)

    def __call__(self, *args: str, timeout: float = 300.0) -> str:
        files = [
            "-f",
            str(REPOSITORY / "deploy" / "compose.yaml"),
            "-f",
            str(REPOSITORY / "tests" / "compose.test.yaml"),
        ]
        done = subprocess.run(
            ["docker-compose", "-p", PROJECT, *files, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"docker-compose {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def container(self, service: str) -> str:
        return self("ps", "-q", service).strip()


@pytest.fixture
def compose(docker_daemon: PrivateDocker, tmp_path: Path) -> Iterator[Compose]:
    docker_daemon.build_standins()
    running = Compose(docker_daemon, free_port())
    running("config", "--quiet")  # the file is valid for the standalone docker-compose 1.29 Debian ships
    try:
        yield running
    finally:
        try:
            # Every container's log, kept with the test's temporary files (pytest keeps the last runs').
            (tmp_path / "compose.log").write_text(running("logs", "--no-color", "--timestamps", timeout=60))
        finally:
            running("down", "-v", "--remove-orphans", timeout=300)


async def until(deadline: float, attempt: Callable[[], Awaitable[T]]) -> T:
    """Retry `attempt` through a failover (refused sockets, 503s, dropped connections) until `deadline`."""
    failures: list[str] = []
    while True:
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                return await attempt()
        except TRANSIENT as exc:
            if isinstance(exc, SessionEnded) and exc.code in (4401, 4403, 4404, 4409):
                raise
            if isinstance(exc, ApiError) and exc.status < 500:
                raise
            failures.append(f"{time.monotonic():.1f} {exc!r}")
            assert time.monotonic() < deadline, f"gave up after {len(failures)} tries: {failures[:6]} … {failures[-3:]}"
            await asyncio.sleep(0.2)  # a failover takes seconds (TTL, Caddy's health checks); retried to a deadline


async def question(socket: PlayerSocket, index: int) -> None:
    """Until question `index` is open for this player: its frame, or a (re)connection's welcome carrying it."""
    while True:
        message = await socket.recv()
        if isinstance(message, QuestionOpened) and message.index == index:
            return
        if isinstance(message, Welcome) and message.question is not None and message.question.index == index:
            return


async def answer(socket: PlayerSocket, index: int) -> AnswerAck:
    try:
        return await socket.answer_and_wait(index, index % 2, within=10)
    except (SessionEnded, OSError, InvalidHandshake):
        await socket.reconnect(attempts=3)
        raise


async def ready(http: httpx.AsyncClient, deadline: float) -> None:
    while True:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the deployment did not become ready through Caddy"
        await asyncio.sleep(0.5)  # containers starting; polled to a deadline


async def test_a_200_player_game_through_caddy_survives_killing_a_server_mid_question(
    compose: Compose, container_report: list[str]
) -> None:
    began = time.monotonic()
    compose("up", "-d", "--no-build")
    base = compose.env["QUIZROOM_PUBLIC_URL"]
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http, QuizroomAPI(base, timeout=30.0) as api:
        await ready(http, time.monotonic() + 180)
        up_after = time.monotonic() - began
        for path in ("/metrics", "/s1/metrics", "/s2/metrics"):
            assert (await http.get(path)).status_code == 404, f"{path} is public"
        quiz = {
            "title": "Compose",
            "questions": [
                {"text": f"Q{i}", "choices": ["a", "b"], "correct": [0], "time_limit_ms": 90_000} for i in range(2)
            ],
        }
        room = await api.create_room(quiz=quiz)
        gate = asyncio.Semaphore(50)

        async def join(i: int) -> tuple[PlayerTicket, PlayerSocket]:
            async with gate:
                ticket = await api.join(room.pin, f"c{i:03d}")
                return ticket, await PlayerSocket.connect(ticket, auto_reconnect=True)

        crowd = await asyncio.gather(*(join(i) for i in range(PLAYERS)))
        sockets = [s for _, s in crowd]
        servers = Counter(t.ws_url.split("/ws/")[0].rsplit("/", 1)[-1] for t, _ in crowd)
        assert set(servers) == {"s1", "s2"}, servers  # shards of 100: both servers hold players

        await api.command(room, "start")
        await asyncio.gather(*(question(s, 0) for s in sockets))
        early, late = sockets[: PLAYERS // 2], sockets[PLAYERS // 2 :]
        acked = {id(s): await answer(s, 0) for s in early}

        killed_at = time.monotonic()
        compose.docker.docker("kill", compose.container("quizroom-1"))  # it coordinates the room (Caddy: `first`)
        deadline = killed_at + 120
        late_acks = await asyncio.gather(*(until(deadline, partial(answer, s, 0)) for s in late))
        acked |= {id(s): a for s, a in zip(late, late_acks, strict=True)}
        assert all(a.accepted for a in acked.values())
        recovered_after = time.monotonic() - killed_at

        async def command(name: str) -> None:
            try:
                await api.command(room, name)
            except ApiError as exc:
                if exc.code != "bad_phase":  # `close`: it may have closed by itself (everyone answered)
                    raise

        await until(deadline, lambda: command("close"))
        await until(deadline, lambda: command("next"))
        await asyncio.gather(*(until(deadline, partial(question, s, 1)) for s in sockets))
        second = await asyncio.gather(*(until(deadline, partial(answer, s, 1)) for s in sockets))
        assert all(a.accepted for a in second)
        await until(deadline, lambda: command("close"))
        await until(deadline, lambda: command("next"))
        document = await until(deadline, lambda: api.results(room))
        assert document["phase"] == "finished"
        answers = Counter((p["player_id"], a["question"]) for p in document["players"] for a in p["answers"])
        assert len(document["players"]) == PLAYERS
        assert len(answers) == 2 * PLAYERS and set(answers.values()) == {1}, "an answer lost or stored twice"
        for entry in document["players"]:
            assert entry["score"] == sum(a["points"] for a in entry["answers"])
        await asyncio.gather(*(s.close() for s in sockets))
    container_report.append(
        f"compose: PostgreSQL ({POSTGRES_IMAGE}), 2 servers and Caddy ({CADDY_IMAGE}) up in {up_after:.0f} s; "
        f"{PLAYERS} players through Caddy on {dict(sorted(servers.items()))}; quizroom-1 killed mid-question, "
        f"every late answer acked {recovered_after:.1f} s later, the game finished on quizroom-2 with "
        f"{2 * PLAYERS} answers each stored once; /metrics 404 through Caddy ({time.monotonic() - began:.0f} s)"
    )
