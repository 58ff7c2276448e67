"""Kicks and new joins in one commit batch, against a real server on both backends.

A kick bars the kicked nickname from its room (423 `kicked`, checked here too), while a new player is admitted at
once even though the kick is still being committed, so the kick's row and the new player's row can meet in one
batch. The test makes them meet every time: it holds the database's write lock (as a slow disk or a busy database
would hold the commit), lets one write take the writer (a "plug": its commit now waits for the lock), and then sends
the kicks and the new joins, which queue in the next batch together. Released, that batch commits with each kick
before the join that came after it.

Judged only from what the clients received and what the database holds: every 201 is backed by a stored row (the
kicked one marked kicked, the new one live), every answer acknowledged with `accepted: true` is in the results with
the points its `result` announced, no stored answer belongs to a player without a live row, and after a restart
every new token still resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from quizroom.storage import open_storage
from quizroom.storage.sqlite import sqlite_path
from tests.gameclient import WAIT, Host, Player, quiz
from tests.serverproc import ServerProcess

ROOMS = 40
SEATS = 10  # players per room, each kicked and replaced in one batch: ROOMS × SEATS = 400 races
ROOMS_AT_ONCE = 5  # rooms racing behind one plug (the lock is held for as long as their requests take)


@dataclass(slots=True)
class Room:
    host: Host
    plug: Player  # kicked first, so that its commit holds the writer while the races queue behind it
    kicked: list[Player] = field(default_factory=list)  # every player kicked (each joined with a 201)
    seated: list[Player] = field(default_factory=list)  # the rejoined players, one per seat


@contextlib.asynccontextmanager
async def writes_held(database_url: str) -> AsyncIterator[None]:
    """Hold the database's write lock: the server's commits wait (reads go on) until the block ends."""
    if database_url.startswith("sqlite:"):
        lite = sqlite3.connect(sqlite_path(database_url), timeout=WAIT, isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(lite.execute, "BEGIN IMMEDIATE")
            try:
                yield
            finally:
                lite.execute("ROLLBACK")
        finally:
            lite.close()
        return
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE players IN SHARE MODE")  # no insert, update or delete of a player
            yield
    finally:
        await conn.close()


async def _until_players(host: Host, count: int) -> None:
    """Poll the room until its coordinator counts `count` players (a kick counts at once, before its commit)."""
    deadline = time.monotonic() + WAIT
    while (await host.state())["players"] != count:
        assert time.monotonic() < deadline, f"the room never had {count} players"


async def _rejoin(host: Host, nickname: str) -> asyncio.Future[httpx.Response]:
    """Two joins as `nickname` at once; once one is refused with 409, returns the other, still unanswered.

    The refusal proves that the other join has reached the coordinator and holds the nickname, so its row is queued
    behind the plug: that join answers only once its row is committed.
    """
    url = f"/api/rooms/{host.pin}/players"
    pending = {asyncio.ensure_future(host.http.post(url, json={"nickname": nickname})) for _ in "ab"}
    done, (taken,) = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    (refused,) = done
    body = refused.result().json()
    assert refused.result().status_code == 409 and body["error"]["code"] == "nickname_taken", body
    return taken


async def _kick(host: Host, player: Player) -> None:
    response = await host.http.delete(f"/api/rooms/{host.pin}/players/{player.player_id}", headers=host.headers)
    assert response.status_code == 204, response.text


async def _race(database_url: str, rooms: list[tuple[Room, list[Player]]]) -> None:
    """In each room, kick every player of its list and seat a new one for each: all in the one batch behind a plug."""
    async with writes_held(database_url):
        plugs = asyncio.gather(*(_kick(room.host, room.plug) for room, _ in rooms))
        # Once a plug's kick has run, its batch is the writer's, waiting for the lock: what follows queues behind it.
        await asyncio.gather(*(_until_players(room.host, len(first)) for room, first in rooms))
        kicks = asyncio.gather(*(_kick(room.host, victim) for room, first in rooms for victim in first))
        await asyncio.gather(*(_until_players(room.host, 0) for room, _ in rooms))  # every kick has run
        barred = await asyncio.gather(
            *(room.host.http.post(f"/api/rooms/{room.host.pin}/players", json={"nickname": victim.nickname})
              for room, first in rooms for victim in first[:1])
        )  # fmt: skip
        assert all(r.status_code == 423 and r.json()["error"]["code"] == "kicked" for r in barred)
        joins = await asyncio.gather(
            *(_rejoin(room.host, f"new-{victim.nickname}") for room, first in rooms for victim in first)
        )
        assert not plugs.done() and not kicks.done() and not any(join.done() for join in joins)  # all wait
    await plugs
    await kicks
    answered = iter(joins)
    for room, first in rooms:
        room.kicked += [room.plug, *first]
        for victim in first:
            response = await next(answered)
            assert response.status_code == 201, response.text
            room.seated.append(Player(response.json(), f"new-{victim.nickname}"))


async def _open_room(http: httpx.AsyncClient) -> tuple[Room, list[Player]]:
    host = await Host.open(http, quiz(1, time_limit_ms=120_000))
    plug = await host.join("plug")
    first = list(await asyncio.gather(*(host.join(f"bob{seat:02d}") for seat in range(SEATS))))
    return Room(host, plug), first


async def _play(room: Room) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Everyone seated answers question 0 correctly; returns each player's (answer_ack, result)."""
    await asyncio.gather(*(p.connect() for p in room.seated))
    await room.host.command("start")
    await asyncio.gather(*(p.expect("question") for p in room.seated))
    await asyncio.gather(*(p.answer(0, 0) for p in room.seated))
    acks = await asyncio.gather(*(p.expect("answer_ack") for p in room.seated))
    results = await asyncio.gather(*(p.expect("result") for p in room.seated))  # everyone answered: it closes
    await room.host.command("end")
    return {p.player_id: (ack, result) for p, ack, result in zip(room.seated, acks, results, strict=True)}


async def _check_stored(database_url: str, rooms: list[Room], played: list[dict[str, Any]]) -> None:
    """What the database holds: a row behind every 201, and no answer without a live player."""
    storage = open_storage(database_url)
    await storage.open()
    try:
        for room, seen in zip(rooms, played, strict=True):
            room_id = room.host.room["room_id"]
            rows = {p.player_id: p for p in await storage.load_players(room_id)}
            missing = [p.nickname for p in room.kicked + room.seated if p.player_id not in rows]
            assert not missing, f"joins answered 201 without a stored row: {missing}"
            assert all(rows[p.player_id].kicked for p in room.kicked)
            assert not any(rows[p.player_id].kicked for p in room.seated)
            assert all(rows[p.player_id].nickname == p.nickname for p in room.kicked + room.seated)
            answers = await storage.load_answers(room_id)
            orphans = [a for a in answers if a.player_id not in rows or rows[a.player_id].kicked]
            assert not orphans, f"stored answers of no live player: {orphans[:3]}"
            stored = {a.player_id for a in answers}
            assert all(player_id in stored for player_id in seen), "an acknowledged answer is not stored"
    finally:
        await storage.close()


async def test_kicks_and_new_joins_in_one_batch_lose_nothing(
    start_server: Callable[..., ServerProcess], database_url: str
) -> None:
    server = start_server(database_url)
    async with contextlib.AsyncExitStack() as clients:  # a client per room: one with hundreds of connections crawls
        opened: list[tuple[Room, list[Player]]] = []
        for _ in range(0, ROOMS, 10):
            http = [await clients.enter_async_context(_client(server)) for _ in range(10)]
            opened += await asyncio.gather(*(_open_room(client) for client in http))
        for at in range(0, ROOMS, ROOMS_AT_ONCE):
            await _race(database_url, opened[at : at + ROOMS_AT_ONCE])
        rooms = [room for room, _ in opened]

        played = list(await asyncio.gather(*(_play(room) for room in rooms)))
        for room, seen in zip(rooms, played, strict=True):
            document = await room.host.results()
            entries = {entry["player_id"]: entry for entry in document["players"]}
            lost = [p.nickname for p in room.seated if p.player_id not in entries]
            assert not lost, f"{len(lost)} of {SEATS} rejoined players are missing from the results"
            assert set(entries) == {p.player_id for p in room.seated}
            for player_id, (ack, result) in seen.items():
                assert ack["accepted"] and not ack["duplicate"]
                assert [(a["question"], a["points"]) for a in entries[player_id]["answers"]] == [
                    (0, result["points"])
                ], "an acknowledged answer is missing from the results"
                assert entries[player_id]["score"] == result["score"] > 0
        await asyncio.gather(*(p.close() for room in rooms for p in room.seated))
        await _check_stored(database_url, rooms, played)

        server.restart()  # a token issued for a player without a row would now be unknown (401, socket 4401)
        seated = [(room.host, p) for room in rooms for p in room.seated]
        kicked = [(room.host, p) for room in rooms for p in room.kicked]
        answers: list[int] = []
        async with _client(server) as fresh:  # the old clients' connections went with the old process
            for at in range(0, len(seated + kicked), 100):
                answers += await asyncio.gather(
                    *(_resume(fresh, host, p) for host, p in (seated + kicked)[at : at + 100])
                )
        assert answers == [200] * len(seated) + [403] * len(kicked)


def _client(server: ServerProcess) -> httpx.AsyncClient:
    # Idle connections are let go well before the server's keep-alive timeout, never reused as it closes them.
    limits = httpx.Limits(max_connections=4 * SEATS, keepalive_expiry=1.0)
    return httpx.AsyncClient(base_url=server.url, timeout=WAIT, limits=limits)


async def _resume(http: httpx.AsyncClient, host: Host, player: Player) -> int:
    response = await http.post(f"/api/rooms/{host.pin}/resume", headers={"Authorization": f"Bearer {player.token}"})
    return response.status_code
