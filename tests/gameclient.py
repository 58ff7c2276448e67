"""Small test clients: a host over HTTP and players over real WebSockets, with waits that have deadlines."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

WAIT = 10.0


def quiz(
    questions: int = 2, *, time_limit_ms: int = 20_000, points: int = 1000, multi_last: bool = False
) -> dict[str, Any]:
    """A quiz whose question i has choices A–D and correct answer i % 4 (the last one multi if asked)."""
    items: list[dict[str, Any]] = []
    for i in range(questions):
        correct = [i % 4, (i + 1) % 4] if multi_last and i == questions - 1 else [i % 4]
        items.append(
            {
                "text": f"Question {i}?",
                "choices": ["A", "B", "C", "D"],
                "correct": correct,
                "time_limit_ms": time_limit_ms,
                "points": points,
            }
        )
    return {"title": "Test quiz", "questions": items}


class Host:
    def __init__(self, http: httpx.AsyncClient, room: dict[str, Any]) -> None:
        self.http = http
        self.room = room
        self.pin: str = room["pin"]
        self.headers = {"Authorization": f"Bearer {room['host_token']}"}

    @classmethod
    async def open(cls, http: httpx.AsyncClient, body: dict[str, Any] | None = None) -> Host:
        response = await http.post("/api/rooms", json={"quiz": body or quiz()})
        assert response.status_code == 201, response.text
        return cls(http, response.json())

    async def command(self, name: str, expect: int = 200) -> dict[str, Any]:
        response = await self.http.post(f"/api/rooms/{self.pin}/{name}", headers=self.headers)
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    async def state(self) -> dict[str, Any]:
        response = await self.http.get(f"/api/rooms/{self.pin}", headers=self.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def results(self) -> dict[str, Any]:
        response = await self.http.get(f"/api/rooms/{self.pin}/results", headers=self.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def join(self, nickname: str) -> Player:
        response = await self.http.post(f"/api/rooms/{self.pin}/players", json={"nickname": nickname})
        assert response.status_code == 201, response.text
        return Player(response.json(), nickname)


class Player:
    """A player's credentials and, once connected, its socket with a buffer of what arrived."""

    def __init__(self, joined: dict[str, Any], nickname: str) -> None:
        self.joined = joined
        self.nickname = nickname
        self.player_id: str = joined["player_id"]
        self.token: str = joined["token"]
        self.ws: ClientConnection | None = None
        self.inbox: list[dict[str, Any]] = []

    async def connect(self, *, welcome: bool = True) -> dict[str, Any] | None:
        self.ws = await connect(self.joined["ws_url"], open_timeout=WAIT, max_queue=None)
        await self.send({"type": "hello", "token": self.token})
        return await self.expect("welcome") if welcome else None

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(orjson.dumps(message).decode())

    async def answer(self, question: int, choice: int | list[int]) -> None:
        key = "choices" if isinstance(choice, list) else "choice"
        await self.send({"type": "answer", "question": question, key: choice})

    async def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        assert self.ws is not None
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message: dict[str, Any] = orjson.loads(raw)
        return message

    async def expect(self, kind: str, timeout: float = WAIT) -> dict[str, Any]:
        """The next message of type `kind` (earlier ones of other types are kept in `inbox`)."""
        for i, message in enumerate(self.inbox):
            if message["type"] == kind:
                return self.inbox.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if message["type"] == kind:
                    return message
                self.inbox.append(message)

    async def closed_with(self, timeout: float = WAIT) -> int:
        """Wait for the server to close the socket; returns the close code (messages before it are kept)."""
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            try:
                while True:
                    self.inbox.append(orjson.loads(await self.ws.recv()))
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else 1006
                return code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


async def reconnect(player: Player, attempts: int = 100) -> dict[str, Any]:
    """Connect `player` again after a restart and return its welcome. The server already answers /healthz, so a
    refused connect (its listener still starting) is retried briefly."""
    for _ in range(attempts):
        try:
            welcome = await player.connect()
            assert welcome is not None
            return welcome
        except (OSError, InvalidHandshake):
            await asyncio.sleep(0.05)
    raise AssertionError("could not reconnect")
