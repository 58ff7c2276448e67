"""Baseline: the smallest honest server for the bench's subset, on the websockets library's own server.

Why it exists: on a 2-core VM quizroom's absolute figures swing ±30–60 % from run to run, so the bench runs the
same load against this floor in the same run and reports quizroom/baseline ratios. It speaks only what the bench
uses: player and host sockets (`hello` → `welcome`), host commands `start/close/next/end` → `state`, the
`question` broadcast (one pre-serialised frame through `websockets.broadcast`), `answer` → `answer_ack`, `ping`.
HTTP is GET-only because the websockets server parses nothing else: `GET /baseline/rooms?questions=K&time_limit_ms=T`
and `GET /baseline/join?pin=P&nickname=X` stand in for the two POSTs; `GET /api/rooms/{pin}/results` and
`GET /healthz` have quizroom's paths and shapes.

Storage, like quizroom's contract: an answer is acked only after it is durably stored (SQLite WAL,
synchronous=FULL, `INSERT OR IGNORE` on (pin, question, player)). One writer commits everything pending as one
transaction as soon as the previous commit has finished — a group commit without a fixed tick, the floor for any
tick-based writer. `--fault drop-one-answer` acks one answer without storing it and `--fault double-one-answer`
reports one stored answer twice: the negative controls for the bench's exactly-once check.

Garbage collection: like quizroom (`quizroom.server.collector`, with its thresholds), the heap is frozen four times a
second, so CPython's collections never walk the sockets' long-lived objects; otherwise a full collection (~0.5 s at
10,000 sockets) could land in a measurement of either server, and the ratio would compare GC luck, not designs. A
bench run never needs the frozen garbage back.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from quizroom.rooms.actors.heap import THRESHOLDS


@dataclass(slots=True)
class Room:
    pin: str
    questions: int
    time_limit_ms: int
    host_token: str
    phase: str = "lobby"
    index: int = -1
    seq: int = 0
    opened_ns: int = 0
    players: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (player_id, nickname)
    sockets: dict[str, ServerConnection] = field(default_factory=dict)  # player_id -> socket
    hosts: set[ServerConnection] = field(default_factory=set)
    stored: dict[tuple[int, str], int] = field(default_factory=dict)  # (question, player_id) -> response_ms


class Baseline:
    """All rooms, the answer writer and the fault switch; one instance per process."""

    def __init__(self, db_path: str, fault: str | None, public: str) -> None:
        self.rooms: dict[str, Room] = {}
        self.tokens: dict[str, Room] = {}
        self.fault, self.public = fault, public
        self.db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self.db.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS "
            "answers(pin, question, player, choice, response_ms, PRIMARY KEY(pin, question, player))"
        )
        self.pending: dict[tuple[str, int, str], tuple[int, int, list[ServerConnection]]] = {}
        self.wake = asyncio.Event()

    def http(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if url.path == "/healthz":
            return conn.respond(HTTPStatus.OK, "{}")
        if url.path == "/baseline/rooms":
            new = Room(
                f"{len(self.rooms) + 100000}",
                int(q.get("questions", 1)),
                int(q.get("time_limit_ms", 20000)),
                secrets.token_hex(16),
            )
            self.rooms[new.pin] = self.tokens[new.host_token] = new
            return conn.respond(
                HTTPStatus.CREATED,
                orjson.dumps(
                    {
                        "room_id": new.pin,
                        "pin": new.pin,
                        "host_token": new.host_token,
                        "join_url": "",
                        "host_ws_url": f"{self.public}/ws/host",
                    }
                ).decode(),
            )
        room = self.rooms.get(q.get("pin") or (parts[2] if len(parts) > 2 else ""))
        if room is None and url.path.startswith(("/baseline/", "/api/")):
            return conn.respond(HTTPStatus.NOT_FOUND, '{"error":{"code":"not_found","message":""}}')
        if room is not None and url.path == "/baseline/join":
            token, player_id = secrets.token_hex(16), secrets.token_hex(8)
            room.players[token] = (player_id, q.get("nickname", player_id))
            self.tokens[token] = room
            return conn.respond(
                HTTPStatus.CREATED,
                orjson.dumps({"player_id": player_id, "token": token, "ws_url": f"{self.public}/ws/player"}).decode(),
            )
        if room is not None and parts[-1] == "results":
            return conn.respond(HTTPStatus.OK, orjson.dumps(self.results(room)).decode())
        return None if url.path.startswith("/ws/") else conn.respond(HTTPStatus.NOT_FOUND, "{}")

    def results(self, room: Room) -> dict[str, Any]:
        rows = self.db.execute("SELECT player, question, choice, response_ms FROM answers WHERE pin=?", (room.pin,))
        answers: dict[str, list[dict[str, Any]]] = {}
        for player, question, choice, response_ms in rows.fetchall():
            copies = 2 if self.fault == "double-one-answer" and not answers else 1
            answers.setdefault(player, []).extend(
                [{"question": question, "choices": [choice], "correct": False, "points": 0, "response_ms": response_ms}]
                * copies
            )
        return {
            "pin": room.pin,
            "phase": room.phase,
            "players": [
                {"player_id": pid, "nickname": nick, "score": 0, "answers": answers.get(pid, [])}
                for pid, nick in room.players.values()
            ],
        }

    def question(self, room: Room) -> dict[str, Any]:
        return {
            "type": "question",
            "seq": room.seq,
            "index": room.index,
            "text": f"Q{room.index}",
            "choices": ["a", "b", "c", "d"],
            "multi": False,
            "time_limit_ms": room.time_limit_ms,
            "deadline_ms": 0,
            "now_ms": time.time_ns() // 1_000_000,
        }

    def command(self, room: Room, name: str) -> dict[str, Any]:
        ok = {
            "start": room.phase == "lobby",
            "close": room.phase == "question",
            "next": room.phase == "reveal",
            "end": room.phase != "finished",
        }.get(name, False)
        if not ok:
            return {"type": "error", "code": "bad_phase", "message": name}
        room.seq += 1
        if name == "close":
            room.phase = "reveal"
            event = {"type": "leaderboard", "seq": room.seq, "question": room.index, "top": []}
        elif name == "end" or room.index + 1 >= room.questions:
            room.phase = "finished"
            event = {"type": "finished", "seq": room.seq, "podium": []}
        else:
            room.phase, room.index, room.opened_ns = "question", room.index + 1, time.monotonic_ns()
            event = self.question(room)
        broadcast([*room.sockets.values(), *room.hosts], orjson.dumps(event), text=True)
        return {"type": "state", "phase": room.phase, "question_index": room.index}

    def answer(self, room: Room, player_id: str, msg: dict[str, Any], ws: ServerConnection) -> bytes | None:
        now = time.monotonic_ns()
        if room.phase != "question" or msg.get("question") != room.index:
            return orjson.dumps({"type": "error", "code": "bad_phase", "message": ""})
        done = room.stored.get((room.index, player_id))
        if done is not None:
            return orjson.dumps(
                {"type": "answer_ack", "question": room.index, "accepted": True, "duplicate": True, "response_ms": done}
            )
        key = (room.pin, room.index, player_id)
        if key in self.pending:
            self.pending[key][2].append(ws)
        else:
            self.pending[key] = (int(msg.get("choice", 0)), (now - room.opened_ns) // 1_000_000, [ws])
            self.wake.set()
        return None

    async def writer(self) -> None:
        """Group commit: everything pending when the previous commit ends goes into the next transaction."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, {}
            rows = [(*key, choice, ms) for key, (choice, ms, _) in batch.items()]
            if self.fault == "drop-one-answer":
                rows, self.fault = rows[1:], None
            await asyncio.to_thread(self.commit, rows)
            for (pin, question, player_id), (_, ms, waiters) in batch.items():
                self.rooms[pin].stored[(question, player_id)] = ms
                for i, ws in enumerate(waiters):
                    ack = {
                        "type": "answer_ack",
                        "question": question,
                        "accepted": True,
                        "duplicate": i > 0,
                        "response_ms": ms,
                    }
                    broadcast([ws], orjson.dumps(ack), text=True)

    def commit(self, rows: list[tuple[Any, ...]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?)", rows)

    async def socket(self, ws: ServerConnection) -> None:
        try:
            hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        except (TimeoutError, orjson.JSONDecodeError):
            await ws.close(4401)
            return
        room = self.tokens.get(hello.get("token", "")) if isinstance(hello, dict) else None
        if room is None:
            await ws.close(4401)
            return
        is_host = hello["token"] == room.host_token
        player_id, nickname = ("host", "host") if is_host else room.players[hello["token"]]
        welcome: dict[str, Any] = {
            "type": "welcome",
            "player_id": player_id,
            "nickname": nickname,
            "pin": room.pin,
            "phase": room.phase,
            "question_count": room.questions,
            "score": 0,
            "rank": 1,
            "now_ms": time.time_ns() // 1_000_000,
        }
        if room.phase == "question":
            welcome |= {"question": self.question(room), "answered": (room.index, player_id) in room.stored}
        await ws.send(orjson.dumps(welcome), text=True)
        if is_host:
            room.hosts.add(ws)
        else:
            old = room.sockets.get(player_id)
            room.sockets[player_id] = ws
            if old is not None:
                asyncio.create_task(old.close(4409))  # noqa: RUF006 - fire and forget, the old socket is done
        try:
            async for raw in ws:
                msg = orjson.loads(raw)
                kind = msg.get("type")
                reply: bytes | None
                if kind == "answer" and not is_host:
                    reply = self.answer(room, player_id, msg, ws)
                elif kind == "ping":
                    reply = orjson.dumps({"type": "pong", "t": msg.get("t"), "now_ms": time.time_ns() // 1_000_000})
                elif is_host and kind in ("start", "close", "next", "end"):
                    reply = orjson.dumps(self.command(room, kind))
                else:
                    reply = orjson.dumps({"type": "error", "code": "unknown_type", "message": str(kind)})
                if reply is not None:
                    await ws.send(reply, text=True)
        finally:
            room.hosts.discard(ws)
            if room.sockets.get(player_id) is ws:
                del room.sockets[player_id]


async def freeze_heap() -> None:
    gc.set_threshold(*THRESHOLDS)
    while True:
        await asyncio.sleep(0.25)
        gc.freeze()


async def run(host: str, port: int, db_path: str, fault: str | None) -> None:
    app = Baseline(db_path, fault, f"ws://{host}:{port}")
    writer = asyncio.create_task(app.writer())
    freezer = asyncio.create_task(freeze_heap())
    async with serve(app.socket, host, port, process_request=app.http, backlog=4096, max_size=4096) as server:
        print(f"baseline listening on {host}:{port}", flush=True)
        try:
            await server.serve_forever()
        finally:
            writer.cancel()
            freezer.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", default="baseline.db")
    parser.add_argument("--fault", choices=["drop-one-answer", "double-one-answer"])
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(run(args.host, args.port, args.db, args.fault))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
