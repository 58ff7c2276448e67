"""Sharded rooms end to end: real server processes, real sockets, PostgreSQL (docs/scaling.md).

What must hold however a room is cut into shards and spread over workers: every answer stored once, every player's
rank and score, the leaderboard and the podium equal to what the stored answers say, and the game going on when a
worker dies (acked answers kept, the question closing on time, players reconnecting elsewhere).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from quizroom.rooms.game.scoring import competition_ranks
from tests.gameclient import quiz
from tests.serverproc import ServerProcess, free_ports

WAIT = 60.0


class Phone:
    """One player: join over HTTP, a socket to wherever `ws_url` (or the resume call) says, messages by type."""

    def __init__(self, http: httpx.AsyncClient, pin: str, nickname: str) -> None:
        self.http = http
        self.pin = pin
        self.nickname = nickname
        self.player_id = ""
        self.token = ""
        self.ws_url = ""
        self.ws: ClientConnection | None = None
        self.got: dict[str, list[dict[str, Any]]] = {}
        self.seen: list[dict[str, Any]] = []  # every message, in order, across reconnects: for fault checkers
        self.arrived = asyncio.Event()
        self.closed: int | None = None
        self.reader: asyncio.Task[None] | None = None

    async def join(self) -> None:
        response = await self.http.post(f"/api/rooms/{self.pin}/players", json={"nickname": self.nickname})
        assert response.status_code == 201, response.text
        body = response.json()
        self.player_id, self.token, self.ws_url = body["player_id"], body["token"], body["ws_url"]

    async def resume(self, deadline: float) -> None:
        """Ask where the socket goes now, retrying while the cluster fails over (503)."""
        while True:
            response = await self.http.post(
                f"/api/rooms/{self.pin}/resume", headers={"Authorization": f"Bearer {self.token}"}
            )
            if response.status_code == 200:
                self.ws_url = response.json()["ws_url"]
                return
            assert response.status_code == 503, response.text
            assert time.monotonic() < deadline, "resume kept failing"
            await asyncio.sleep(0.1)  # polling a failover, bounded by the deadline

    async def connect(self, deadline: float | None = None) -> dict[str, Any]:
        """Connect and say hello; on 4421 or a dead worker, resume and try again until `deadline`."""
        deadline = deadline or time.monotonic() + WAIT
        while True:
            self.got.clear()
            self.closed = None
            try:
                self.ws = await connect(self.ws_url, open_timeout=10, max_queue=None, ping_interval=None)
            except (OSError, InvalidStatus, TimeoutError):
                await self.resume(deadline)
                continue
            self.reader = asyncio.create_task(self._read(self.ws))
            await self.ws.send(orjson.dumps({"type": "hello", "token": self.token}).decode())
            try:
                return await self.expect("welcome", timeout=10)
            except (ConnectionError, TimeoutError):
                assert self.closed in (4421, 1001, 1006, 1011, 1012), f"{self.nickname} closed with {self.closed}"
                assert time.monotonic() < deadline, "could not reconnect"
                await self.resume(deadline)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                message = orjson.loads(raw)
                self.seen.append(message)
                self.got.setdefault(message["type"], []).append(message)
                self.arrived.set()
        except ConnectionClosed as closed:
            self.closed = closed.rcvd.code if closed.rcvd is not None else 1006
        self.closed = self.closed or (ws.close_code or 1006)
        self.arrived.set()

    async def expect(self, kind: str, timeout: float = WAIT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                if self.got.get(kind):
                    return self.got[kind].pop(0)
                if self.closed is not None:
                    raise ConnectionError(f"closed with {self.closed}")
                self.arrived.clear()
                await self.arrived.wait()

    async def answer(self, question: int, choice: int) -> dict[str, Any]:
        """Send an answer; the ack, or an AssertionError with the error the server sent instead."""
        assert self.ws is not None
        await self.ws.send(orjson.dumps({"type": "answer", "question": question, "choice": choice}).decode())
        async with asyncio.timeout(WAIT):
            while True:
                if self.got.get("error"):
                    raise AssertionError(f"{self.nickname}: {self.got['error'].pop(0)}")
                if self.got.get("answer_ack"):
                    return self.got["answer_ack"].pop(0)
                if self.closed is not None:
                    raise ConnectionError(f"closed with {self.closed}")
                self.arrived.clear()
                await self.arrived.wait()

    async def expect_close(self, timeout: float = WAIT) -> int:
        async with asyncio.timeout(timeout):
            while self.closed is None:
                self.arrived.clear()
                await self.arrived.wait()
        return self.closed

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


async def gather_limited(coros: list[Any], limit: int = 200) -> list[Any]:
    """Run many client calls at once, but not all: thousands of simultaneous handshakes would time out."""
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


async def stored_standings(pg: str, room_id: str) -> dict[str, tuple[int, int]]:
    """player_id → (score, rank), computed here from the stored answers (not through the server's query)."""
    conn = await asyncpg.connect(pg)
    try:
        rows = await conn.fetch(
            "SELECT p.player_id, COALESCE(SUM(a.points), 0) AS score FROM players p"
            " LEFT JOIN answers a ON a.room_id = p.room_id AND a.player_id = p.player_id"
            " WHERE p.room_id = $1 AND NOT p.kicked GROUP BY p.player_id ORDER BY score DESC",
            room_id,
        )
    finally:
        await conn.close()
    ranks = competition_ranks([r["score"] for r in rows])
    return {r["player_id"]: (r["score"], rank) for r, rank in zip(rows, ranks, strict=True)}


async def answer_counts(pg: str, room_id: str) -> Counter[tuple[int, str]]:
    conn = await asyncpg.connect(pg)
    try:
        rows = await conn.fetch("SELECT question, player_id FROM answers WHERE room_id = $1", room_id)
    finally:
        await conn.close()
    return Counter((r["question"], r["player_id"]) for r in rows)


def choice_for(phone: Phone, question: int) -> int:
    return (int(phone.player_id, 16) + question) % 4


async def play_question(phones: list[Phone], index: int) -> dict[str, dict[str, Any]]:
    """Everyone answers at once; returns each player's ack."""
    await gather_limited([p.expect("question") for p in phones], limit=len(phones))
    acks = await gather_limited([p.answer(index, choice_for(p, index)) for p in phones], limit=len(phones))
    return {p.player_id: ack for p, ack in zip(phones, acks, strict=True)}


async def test_three_workers_play_one_room_over_several_shards(tmp_path: Path, pg_url: str) -> None:
    """4,000 players in one room, three worker processes (`--workers 3`), three shards: a full quiz."""
    players, per_shard = 4_000, 1_500
    flags = ("--workers", "3", "--players-per-shard", str(per_shard))
    supervisor = ServerProcess(pg_url, tmp_path, *flags, port=free_ports(4)).start()
    try:
        async with httpx.AsyncClient(base_url=supervisor.url, timeout=30.0) as http:
            body = quiz(3, time_limit_ms=60_000)
            created = (await http.post("/api/rooms", json={"quiz": body})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            phones = [Phone(http, pin, f"p{i:05d}") for i in range(players)]
            await gather_limited([p.join() for p in phones], limit=100)
            workers = Counter(p.ws_url for p in phones)
            assert len(workers) == 3 and max(workers.values()) <= per_shard, workers
            await gather_limited([p.connect() for p in phones], limit=200)
            state = (await http.get(f"/api/rooms/{pin}", headers=headers)).json()
            assert state["players"] == players and state["shards"] == 3

            acked: dict[int, dict[str, dict[str, Any]]] = {}
            for index in range(3):
                command = "start" if index == 0 else "next"
                assert (await http.post(f"/api/rooms/{pin}/{command}", headers=headers)).status_code == 200
                acked[index] = await play_question(phones, index)  # all answered: the question closes itself
                results = await gather_limited([p.expect("result") for p in phones], limit=players)
                boards = await gather_limited([p.expect("leaderboard") for p in phones], limit=players)
                standings = await stored_standings(pg_url, created["room_id"])
                for phone, result in zip(phones, results, strict=True):
                    assert (result["score"], result["rank"]) == standings[phone.player_id]
                assert all(b == boards[0] for b in boards)
                assert boards[0]["answered"] == players and sum(boards[0]["counts"]) == players
                by_rank = sorted(standings.values(), key=lambda sr: sr[1])[:10]
                assert [(e["score"], e["rank"]) for e in boards[0]["top"]] == by_rank
            assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
            finished = await gather_limited([p.expect("finished") for p in phones], limit=players)
            standings = await stored_standings(pg_url, created["room_id"])
            for phone, message in zip(phones, finished, strict=True):
                assert (message["score"], message["rank"]) == standings[phone.player_id]
            stored = await answer_counts(pg_url, created["room_id"])
            assert set(stored.values()) == {1} and len(stored) == 3 * players
            for index, acks in acked.items():
                assert all(ack["accepted"] and not ack["duplicate"] for ack in acks.values())
                assert all(stored[(index, player_id)] == 1 for player_id in acks)
            await gather_limited([p.close() for p in phones], limit=players)
    finally:
        supervisor.kill(signal.SIGTERM)


async def start_workers(pg_url: str, tmp_path: Path, count: int, *flags: str) -> list[ServerProcess]:
    """Independent server processes on one database, as on several hosts."""
    return [ServerProcess(pg_url, tmp_path, *flags).start() for _ in range(count)]


async def wait_until(check: Callable[[], Any], deadline: float, what: str) -> Any:
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling another process's state, bounded by the deadline


@pytest.mark.parametrize("victim", ["shard", "coordinator"])
async def test_kill_a_worker_mid_question(tmp_path: Path, pg_url: str, victim: str) -> None:
    """kill -9 of a worker holding a shard, or of the coordinator's: acked answers stay, the question closes on
    time, players reconnect elsewhere, and the results are consistent."""
    per_shard, players, limit_ms = 20, 60, 15_000
    servers = await start_workers(pg_url, tmp_path, 3, "--players-per-shard", str(per_shard))
    try:
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=30.0) as http:
            created = (await http.post("/api/rooms", json={"quiz": quiz(2, time_limit_ms=limit_ms)})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            phones = [Phone(http, pin, f"k{i:03d}") for i in range(players)]
            await gather_limited([p.join() for p in phones])
            silent = Phone(http, pin, "silent")  # connected, never answers: the deadline must close the question
            await silent.join()
            await gather_limited([p.connect() for p in [*phones, silent]])
            by_server = {s.port: s for s in servers}
            coordinator_port = servers[0].port  # the room was created there and is coordinated there
            shard_ports = Counter(int(p.ws_url.split(":")[2].split("/")[0]) for p in phones)
            assert len(shard_ports) == 3, shard_ports
            if victim == "shard":
                doomed = next(port for port in shard_ports if port != coordinator_port)
            else:
                doomed = coordinator_port
            survivor = next(s for s in servers if s.port != doomed)

            started = (await http.post(f"/api/rooms/{pin}/start", headers=headers)).json()
            deadline_ms = started["deadline_ms"]
            await gather_limited([p.expect("question") for p in phones])
            early = phones[: players // 2]  # half answer before the kill, half after
            acks = await gather_limited([p.answer(0, choice_for(p, 0)) for p in early])
            acked_before = {p.player_id: a for p, a in zip(early, acks, strict=True)}
            assert all(a["accepted"] for a in acked_before.values())

            by_server[doomed].kill(signal.SIGKILL)
            orphans = [p for p in [*phones, silent] if f":{doomed}/" in p.ws_url]
            assert orphans
            http_alive = httpx.AsyncClient(base_url=survivor.url, timeout=30.0)
            for phone in [*phones, silent]:
                phone.http = http_alive
            reconnect_by = time.monotonic() + 20
            await gather_limited([p.connect(reconnect_by) for p in orphans])
            assert all(f":{doomed}/" not in p.ws_url for p in orphans)
            late = [p for p in phones[players // 2 :] if not p.got.get("answer_ack")]
            late_acks = await gather_limited([p.answer(0, choice_for(p, 0)) for p in late])
            assert all(a["accepted"] for a in late_acks)
            # The silent player never answers: the deadline closes the question, on time though a worker died.
            await silent.expect("result", timeout=30)
            closed_at_ms = time.time() * 1000
            assert closed_at_ms <= deadline_ms + 250 + 1_000, "the question closed late"
            results = await gather_limited([p.expect("result", timeout=30) for p in phones])
            standings = await stored_standings(pg_url, created["room_id"])
            for phone, result in zip(phones, results, strict=True):
                assert (result["score"], result["rank"]) == standings[phone.player_id]
            stored = await answer_counts(pg_url, created["room_id"])
            for player_id in acked_before:
                assert stored[(0, player_id)] == 1, "an acknowledged answer was lost"
            assert set(stored.values()) == {1}

            headers_ok = headers
            assert (await http_alive.post(f"/api/rooms/{pin}/next", headers=headers_ok)).status_code == 200
            await play_question(phones, 1)
            assert (await http_alive.post(f"/api/rooms/{pin}/close", headers=headers_ok)).status_code == 200
            await gather_limited([p.expect("result") for p in phones])
            assert (await http_alive.post(f"/api/rooms/{pin}/next", headers=headers_ok)).status_code == 200
            finished = await gather_limited([p.expect("finished") for p in phones])
            standings = await stored_standings(pg_url, created["room_id"])
            for phone, message in zip(phones, finished, strict=True):
                assert (message["score"], message["rank"]) == standings[phone.player_id]
            document = (await http_alive.get(f"/api/rooms/{pin}/results", headers=headers_ok)).json()
            assert document["phase"] == "finished"
            assert sum(len(p["answers"]) for p in document["players"]) == 2 * players
            await gather_limited([p.close() for p in [*phones, silent]])
            await http_alive.aclose()
    finally:
        for server in servers:
            if server.proc is not None:
                server.kill()


async def test_in_one_process_a_big_room_is_split_into_shards(tmp_path: Path, pg_url: str) -> None:
    """The same code path in one process (and on SQLite): shards are actors here, ranks span all of them."""
    for url in (f"sqlite:///{tmp_path / 'one.db'}", pg_url):
        server = ServerProcess(url, tmp_path, "--players-per-shard", "4").start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
                created = (await http.post("/api/rooms", json={"quiz": quiz(2, time_limit_ms=60_000)})).json()
                pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
                phones = [Phone(http, pin, f"s{i:02d}") for i in range(13)]
                await gather_limited([p.join() for p in phones])
                await gather_limited([p.connect() for p in phones])
                state = (await http.get(f"/api/rooms/{pin}", headers=headers)).json()
                assert state["shards"] == 4 and state["connected"] == 13
                await http.post(f"/api/rooms/{pin}/start", headers=headers)
                await play_question(phones, 0)
                results = await gather_limited([p.expect("result") for p in phones])
                board = await phones[0].expect("leaderboard")
                scores = sorted(((r["score"], r["rank"]) for r in results), reverse=True)
                assert [r for _, r in scores] == competition_ranks([s for s, _ in scores])
                assert [(e["score"], e["rank"]) for e in board["top"]] == scores[:10]
                assert board["answered"] == 13 and board["players"] == 13
                await gather_limited([p.close() for p in phones])
        finally:
            server.kill()


async def test_across_workers_kicks_hosts_and_misdirected_sockets(tmp_path: Path, pg_url: str) -> None:
    """The remote paths beside the game: a kick reaches a shard on another worker, a host socket must reach the
    coordinator's worker (4421 elsewhere), a player socket on the wrong worker gets 4421 and resume points right."""
    servers = await start_workers(pg_url, tmp_path, 2, "--players-per-shard", "3")
    try:
        home, other = servers
        async with httpx.AsyncClient(base_url=other.url, timeout=30.0) as http:  # HTTP through the other worker
            created = (await http.post(f"{home.url}/api/rooms", json={"quiz": quiz(1, time_limit_ms=60_000)})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            phones = [Phone(http, pin, f"x{i}") for i in range(6)]
            for phone in phones:  # in order: three to a shard, so two shards, one per worker
                await phone.join()
            await gather_limited([p.connect() for p in phones])
            remote = [p for p in phones if f":{other.port}/" in p.ws_url]
            local = [p for p in phones if f":{home.port}/" in p.ws_url]
            assert len(remote) == 3 and len(local) == 3

            state = (await http.get(f"/api/rooms/{pin}", headers=headers)).json()  # answered by the coordinator
            assert state["players"] == 6 and state["shards"] == 2
            assert state["host_ws_url"] == created["host_ws_url"] and f":{home.port}/" in state["host_ws_url"]
            wrong_host = f"ws://127.0.0.1:{other.port}/ws/host/{pin}"
            async with connect(wrong_host) as ws:
                await ws.send(orjson.dumps({"type": "hello", "token": created["host_token"]}).decode())
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4421
            async with connect(wrong_host) as ws:  # a wrong token is 4401 wherever the room is coordinated
                await ws.send(orjson.dumps({"type": "hello", "token": "not-the-host-token"}).decode())
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            huge = await http.post(f"/api/rooms/{pin}/players", json={"nickname": "x" * 10_000})  # forwarded
            assert huge.status_code == 422 and huge.json()["error"]["code"] == "bad_nickname"

            misdirected = Phone(http, pin, "x0")
            misdirected.token, misdirected.player_id = remote[0].token, remote[0].player_id
            misdirected.ws_url = remote[0].ws_url.replace(f":{other.port}/", f":{home.port}/")
            welcome = await misdirected.connect()  # 4421, resume, the right worker: welcomed there
            assert welcome["player_id"] == remote[0].player_id and misdirected.ws_url == remote[0].ws_url
            assert await remote[0].expect_close() == 4409  # replaced by the newer socket
            await misdirected.close()

            victim = remote[1]
            response = await http.delete(f"/api/rooms/{pin}/players/{victim.player_id}", headers=headers)
            assert response.status_code == 204
            assert await victim.expect_close() == 4403
            resumed = await http.post(f"/api/rooms/{pin}/resume", headers={"Authorization": f"Bearer {victim.token}"})
            assert resumed.status_code == 403
            assert (await http.post(f"/api/rooms/{pin}/lock", headers=headers)).json()["locked"] is True
            refused = await http.post(f"/api/rooms/{pin}/players", json={"nickname": "late"})
            assert refused.status_code == 423
            state = (await http.get(f"/api/rooms/{pin}", headers=headers)).json()
            assert state["players"] == 5
            await gather_limited([p.close() for p in phones])
    finally:
        for server in servers:
            server.kill()


async def test_a_paused_coordinator_steps_down_when_its_lease_was_taken(tmp_path: Path, pg_url: str) -> None:
    """SIGSTOP the coordinator's worker past the TTL: another worker takes the room over; on SIGCONT the old one
    finds its lease gone at its next heartbeat and stops coordinating, so there are never two coordinators; and its
    shard, placed again meanwhile, lets its socket go (4421) so that the player resumes to the new home."""
    flags = ("--cluster-ttl-s", "1", "--cluster-heartbeat-s", "0.25", "--players-per-shard", "1")
    servers = await start_workers(pg_url, tmp_path, 2, *flags)
    first, second = servers
    assert first.proc is not None
    try:
        async with httpx.AsyncClient(timeout=30.0) as http:
            created = (await http.post(f"{first.url}/api/rooms", json={"quiz": quiz(2, time_limit_ms=60_000)})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            via_first = httpx.AsyncClient(base_url=first.url, timeout=30.0)
            phones = [Phone(via_first, pin, name) for name in ("ann", "bob")]
            for phone in phones:
                await phone.join()
            await via_first.aclose()
            for phone in phones:
                phone.http = httpx.AsyncClient(base_url=second.url, timeout=30.0)  # the one that stays up
            await gather_limited([p.connect() for p in phones])
            frozen = next(p for p in phones if f":{first.port}/" in p.ws_url)  # one shard per worker
            first.proc.send_signal(signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 20

                async def taken_over() -> bool:
                    response = await http.get(f"{second.url}/api/rooms/{pin}", headers=headers, timeout=3.0)
                    return response.status_code == 200

                await wait_until(taken_over, deadline, "the second worker to take the room over")
                started = await http.post(f"{second.url}/api/rooms/{pin}/start", headers=headers)
                assert started.status_code == 200 and started.json()["phase"] == "question"
            finally:
                first.proc.send_signal(signal.SIGCONT)

            async def stepped_down() -> bool:
                return "lease_lost" in first.log_path.read_text()

            await wait_until(stepped_down, time.monotonic() + 20, "the paused worker to step down")
            # Its shard was placed on the second worker meanwhile: the stale copy lets its socket go with 4421.
            assert await frozen.expect_close() == 4421
            await frozen.connect()
            assert f":{second.port}/" in frozen.ws_url
            state = (await http.get(f"{first.url}/api/rooms/{pin}", headers=headers)).json()  # forwarded
            assert state["phase"] == "question" and state["players"] == 2
            closed = await http.post(f"{first.url}/api/rooms/{pin}/close", headers=headers)
            assert closed.status_code == 200 and closed.json()["phase"] == "reveal"
            again = await http.post(f"{second.url}/api/rooms/{pin}/close", headers=headers)
            assert again.status_code == 409  # one coordinator: the close happened once
            results = await gather_limited([p.expect("result") for p in phones])
            assert [r["question"] for r in results] == [0, 0]
            for phone in phones:
                await phone.close()
                await phone.http.aclose()
    finally:
        for server in servers:
            server.kill()
