"""What one question costs a cluster as a room's shards grow: messages between workers and PostgreSQL writes.

    python -m quizroom.bench.cluster_costs [--players 1200] [--shards 1,2,4,8] [--questions 5] [--pg-url …]

For each shard count S: a fresh database, `quizroom serve --workers 2` on it with `--players-per-shard` set so the
room has exactly S shards (placed by the usual rule: the worker with the fewest of the room's shards first, so they
alternate between the two), the players joined and connected, then `--questions`
questions: the host opens one, every player answers, it closes early once all have answered, everyone gets the
result. The counts come from PostgreSQL itself, read after the joins and after the last result, so joins do not
count: **messages** from the `cluster_messages` id sequence (every event, report, request and reply between
workers is a row), **writing transactions** from `txid_current()` (every statement or transaction that wrote:
answer commits, room states, messages, heartbeats). Heartbeats and lease renewals tick on whatever the game does,
so the idle rate of both workers is measured for `--idle-s` before the game and subtracted (`writes − idle`).
Prints a Markdown table and writes JSON (default bench/results/cluster-costs.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from quizroom.bench.control import Control, make_quiz
from quizroom.bench.wsconn import WSConn, open_ws

DEFAULT_PG = os.environ.get("QUIZROOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(slots=True)
class Cost:
    shards: int
    players: int
    questions: int
    seconds_per_question: float
    messages_per_question: float
    writes_per_question: float
    idle_writes_per_s: float
    writes_minus_idle_per_question: float


class Player:
    def __init__(self) -> None:
        self.got: dict[str, list[dict[str, Any]]] = {}
        self.arrived = asyncio.Event()
        self.conn: WSConn | None = None

    def on_message(self, _conn: WSConn, message: dict[str, Any], _ns: int) -> None:
        self.got.setdefault(str(message.get("type")), []).append(message)
        self.arrived.set()

    async def wait(self, kind: str, key: str, value: int, timeout_s: float = 60.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                for message in self.got.get(kind, []):
                    if message.get(key) == value:
                        return message
                self.arrived.clear()
                await self.arrived.wait()


async def counters(pg: str) -> tuple[int, int]:
    """(messages ever sent, the transaction id now: one per writing transaction since the database began)."""
    conn = await asyncpg.connect(pg)
    try:
        messages = await conn.fetchval(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM cluster_messages_id_seq"
        )
        xid = await conn.fetchval("SELECT txid_current()")
    finally:
        await conn.close()
    return int(messages), int(xid)


async def measure(pg_admin: str, players: int, shards: int, questions: int, idle_s: float, port: int) -> Cost:
    name = f"quizroom_costs_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    pg = pg_admin.rsplit("/", 1)[0] + f"/{name}"
    per_shard = math.ceil(players / shards)
    exe = Path(sys.executable).with_name("quizroom")
    workdir = Path(tempfile.mkdtemp(prefix="quizroom-costs-"))
    cmd = [str(exe) if exe.exists() else "quizroom", "serve", "--workers", "2", "--port", str(port)]
    cmd += ["--database-url", pg, "--players-per-shard", str(per_shard)]
    env = {**os.environ, "QUIZROOM_JOIN_RATE_PER_IP": "0", "QUIZROOM_CREATE_RATE_PER_IP": "0"}
    server = _start(cmd, env, workdir / "server.log")
    control = Control(f"http://127.0.0.1:{port}", "quizroom", connections=32)
    crowd = [Player() for _ in range(players)]
    try:
        deadline = time.monotonic() + 30
        while not await control.ready():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "server.log").read_text()[-2000:])
            await asyncio.sleep(0.1)  # polling a starting server, bounded by the deadline
        room = await control.create_room(make_quiz(questions, 60_000))
        gate = asyncio.Semaphore(64)

        async def seat(i: int, player: Player) -> None:
            async with gate:
                seat_of = await control.join(room.pin, f"c{i:05d}")
                # The supervisor's port answers once one worker is up; the other worker's own port may still be
                # opening when a shard is placed on it: a refused connect is tried again, bounded by the deadline.
                while True:
                    try:
                        player.conn = await open_ws(seat_of.ws_url, player.on_message)
                        break
                    except ConnectionRefusedError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.1)
                player.conn.send({"type": "hello", "token": seat_of.token})
                await _welcomed(player)

        for start in range(0, players, per_shard):  # a shard's worth at a time: each placement sees the last one
            await asyncio.gather(*(seat(i, crowd[i]) for i in range(start, min(players, start + per_shard))))
        state = await control.room_state(room)
        assert state["shards"] == shards, f"{state['shards']} shards, wanted {shards}"
        before_idle = await counters(pg)
        await asyncio.sleep(idle_s)  # the idle rate is what is measured here, not a wait for a condition
        before = await counters(pg)
        started = time.monotonic()
        for index in range(questions):
            await control.command(room, "start" if index == 0 else "next")
            await asyncio.gather(*(p.wait("question", "index", index) for p in crowd))
            for player in crowd:
                assert player.conn is not None
                player.conn.send({"type": "answer", "question": index, "choice": 0})
            await asyncio.gather(*(p.wait("result", "question", index) for p in crowd))
        elapsed = time.monotonic() - started
        after = await counters(pg)
        await control.command(room, "next")
    finally:
        for player in crowd:
            if player.conn is not None:
                player.conn.close()
        await control.aclose()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        admin = await asyncpg.connect(pg_admin)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    idle_rate = (before[1] - before_idle[1] - 1) / idle_s  # minus our own txid_current()
    writes = (after[1] - before[1] - 1) / questions
    return Cost(
        shards,
        players,
        questions,
        round(elapsed / questions, 3),
        round((after[0] - before[0]) / questions, 1),
        round(writes, 1),
        round(idle_rate, 1),
        round(writes - idle_rate * elapsed / questions, 1),
    )


def _start(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The server, in its own session (the supervisor and its workers go down together); output to a file."""
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


async def _welcomed(player: Player, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not player.got.get("welcome"):
            player.arrived.clear()
            await player.arrived.wait()


def table(costs: list[Cost]) -> str:
    lines = [
        "| shards | players | s/question | messages/question | writing transactions/question | idle writes/s"
        " | writes − idle /question |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in costs:
        lines.append(
            f"| {c.shards} | {c.players} | {c.seconds_per_question} | {c.messages_per_question} | "
            f"{c.writes_per_question} | {c.idle_writes_per_s} | {c.writes_minus_idle_per_question} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[Cost]:
    costs = []
    for shards in [int(s) for s in args.shards.split(",")]:
        cost = await measure(args.pg_url, args.players, shards, args.questions, args.idle_s, args.port)
        print(f"done: {shards} shard(s)", file=sys.stderr)
        costs.append(cost)
    return costs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--players", type=int, default=1200)
    parser.add_argument("--shards", default="1,2,4,8")
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=18400, help="the supervisor's port (it also takes the next two)")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="an admin URL: a database is created per run")
    parser.add_argument("--out", default="bench/results/cluster-costs.json")
    args = parser.parse_args(argv)
    costs = asyncio.run(run(args))
    print(table(costs))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(c) for c in costs], indent=2))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
