"""No single client or room may hurt anyone else, against a real server with the production limits on: joins, room
creation and PIN guessing metered per address, rooms capped and given a lifetime, exports that a spreadsheet cannot
be tricked by, URLs never taken from a forged Host, frames and readiness as documented (docs/operations.md,
"Limits and abuse"). Each test is one finding of the attack that prompted it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.gameclient import Host, quiz
from tests.serverproc import ServerProcess
from tests.test_limits import Raw, client_from, rss_kib

WAIT = 10.0


async def poll(check: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)  # polling, bounded by the deadline


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


# --- rate limits per address --------------------------------------------------------------------------------------


async def test_joins_are_metered_per_address_with_retry_after(start_server: Any, tmp_path: Path) -> None:
    server = start_server(
        f"sqlite:///{tmp_path / 'joins.db'}", "--join-rate-per-ip", "1", "--join-burst", "5", relaxed=False
    )
    async with await client_from(server, "127.0.0.1") as bot, await client_from(server, "127.0.0.2") as student:
        host = await Host.open(bot)
        statuses = [(await bot.post(f"/api/rooms/{host.pin}/players", json={"nickname": f"bot{i}"})) for i in range(8)]
        assert [r.status_code for r in statuses] == [201] * 5 + [429] * 3
        refused = statuses[-1]
        assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
        real = await student.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Ann"})
        assert real.status_code == 201  # another address is not held up by the bot's
        assert (await host.state())["players"] == 6  # nothing refused was seated
        assert 'quizroom_http_limited_total{limit="joins"} 3.0' in (await student.get("/metrics")).text


async def test_room_creation_is_metered_per_address(start_server: Any, tmp_path: Path) -> None:
    server = start_server(
        f"sqlite:///{tmp_path / 'create.db'}", "--create-rate-per-ip", "0.5", "--create-burst", "3", relaxed=False
    )
    async with await client_from(server, "127.0.0.1") as one, await client_from(server, "127.0.0.2") as two:
        codes = [(await one.post("/api/rooms", json={"quiz": quiz(1)})).status_code for _ in range(4)]
        assert codes == [201, 201, 201, 429]
        assert (await one.post("/api/quizzes", json=quiz(1))).status_code == 429  # quizzes share the meter
        assert (await two.post("/api/rooms", json={"quiz": quiz(1)})).status_code == 201


async def test_pin_guessing_is_refused_after_a_few_misses_and_sockets_too(start_server: Any, tmp_path: Path) -> None:
    server = start_server(
        f"sqlite:///{tmp_path / 'pins.db'}", "--pin-miss-rate-per-ip", "0.5", "--pin-miss-burst", "5", relaxed=False
    )
    async with await client_from(server, "127.0.0.1") as guesser, await client_from(server, "127.0.0.2") as player:
        host = await Host.open(player)
        misses = [
            (await guesser.post(f"/api/rooms/{100_000 + i}/players", json={"nickname": "x"})).status_code
            for i in range(7)
        ]
        assert misses[:5] == [404] * 5 and misses[5:] == [429, 429]
        # Out of guesses, the guesser is refused even a PIN that exists: a 429 tells nothing about the PIN.
        hit = await guesser.post(f"/api/rooms/{host.pin}/players", json={"nickname": "x"})
        assert hit.status_code == 429 and hit.headers.get("retry-after")
        assert (await player.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Ann"})).status_code == 201
    from websockets.asyncio.client import connect

    async with connect(f"{server.ws}/ws/play/999999") as ws:  # sockets are refused too, from the same address
        await ws.send('{"type": "hello", "token": "x"}')
        await ws.wait_closed()
        assert ws.close_code == 4429


# --- rooms: caps and lifetimes ------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_fifty_thousand_room_creations_are_refused_past_the_cap_with_memory_flat(
    start_server: Any, tmp_path: Path
) -> None:
    server = start_server(
        f"sqlite:///{tmp_path / 'rooms.db'}",
        "--max-rooms",
        "200",
        "--max-rooms-per-ip",
        "100",
        "--create-rate-per-ip",
        "0",  # the caps are what this test reaches, not the meter
        relaxed=False,
    )
    assert server.proc is not None
    body = {"quiz": quiz(1)}
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with (
        await client_from(server, "127.0.0.1") as one,
        httpx.AsyncClient(
            base_url=server.url, timeout=WAIT, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"),
            limits=limits,
        ) as many,
    ):  # fmt: skip
        first = [(await one.post("/api/rooms", json=body)).status_code for _ in range(101)]
        assert first == [201] * 100 + [429]  # one address holds its share of the rooms, no more
        assert (await many.post("/api/rooms", json=body)).status_code == 201
        warm = [(await many.post("/api/rooms", json=body)).status_code for _ in range(120)]
        assert warm.count(201) == 99 and set(warm[99:]) == {503}  # the server holds its 200 rooms, no more
        before = rss_kib(server.proc.pid)
        codes: dict[int, int] = {}
        request = orjson.dumps(body)
        wire = (
            b"POST /api/rooms HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(request), request)
        )

        async def burst(source: str, count: int, batch: int = 250) -> None:
            """Pipelined requests on one connection: httpx alone would take minutes for 50,000."""
            raw = await Raw.open(server.port, source)
            try:
                for _ in range(count // batch):
                    raw.send(wire * batch)
                    for _ in range(batch):
                        status = (await raw.response())[0]
                        codes[status] = codes.get(status, 0) + 1
            finally:
                raw.close()

        await asyncio.gather(*(burst(f"127.0.0.{10 + i}", 50_000 // 8) for i in range(8)))
        assert codes == {503: 50_000}
        full = await many.post("/api/rooms", json=body)
        assert full.json()["error"]["code"] == "at_capacity" and full.headers.get("retry-after")
        growth_mib = (rss_kib(server.proc.pid) - before) / 1024
        assert growth_mib < 8, f"50,000 refused creations grew the server by {growth_mib:.1f} MiB"
        stored = int(metric((await many.get("/metrics")).text, "quizroom_rooms"))
        assert stored == 200


async def test_an_empty_lobby_is_ended_and_its_room_frees_a_place(start_server: Any, tmp_path: Path) -> None:
    server = start_server(
        f"sqlite:///{tmp_path / 'idle.db'}",
        "--max-rooms",
        "2",
        "--lobby-idle-s",
        "1",
        "--finished-linger-s",
        "1",
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        watched = await Host.open(http)  # a host socket is open on this one: it stays
        from websockets.asyncio.client import connect

        async with connect(f"{server.ws}/ws/host/{watched.pin}") as host_ws:
            await host_ws.send(f'{{"type": "hello", "token": "{watched.room["host_token"]}"}}')
            await host_ws.recv()
            empty = await Host.open(http)
            assert (await http.post("/api/rooms", json={"quiz": quiz(1)})).status_code == 503

            async def ended() -> bool:
                return bool((await empty.state())["phase"] == "finished")

            await poll(ended, "an empty lobby was not ended")
            assert (await watched.state())["phase"] == "lobby"

            async def place() -> bool:
                return (await http.post("/api/rooms", json={"quiz": quiz(1)})).status_code == 201

            await poll(place, "the ended lobby's place was not freed")

            async def evicted() -> bool:  # the ended room leaves memory; its state is still read from storage
                return metric((await http.get("/metrics")).text, "quizroom_rooms") == 2

            await poll(evicted, "the ended room stayed in memory")
            assert (await empty.state())["phase"] == "finished"


async def test_a_finished_room_leaves_memory_and_its_results_stay(start_server: Any, tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'done.db'}", "--finished-linger-s", "0.5")
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        host = await Host.open(http, quiz(1))
        ann = await host.join("Ann")
        await ann.connect()
        await host.command("start")
        await ann.expect("question")
        await ann.answer(0, 0)
        await ann.expect("answer_ack")
        await host.command("end")
        assert await ann.closed_with() == 4410

        async def evicted() -> bool:
            return metric((await http.get("/metrics")).text, "quizroom_rooms") == 0

        await poll(evicted, "the finished room stayed in memory")
        results = await host.results()
        assert results["phase"] == "finished" and results["players"][0]["score"] > 0


# --- what the server hands out ------------------------------------------------------------------------------------


async def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(start_server: Any, tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'csv.db'}")
    names = ['=HYPERLINK("//e.vil")', "+1+1", "@SUM(1+1)", "-2+3", "Plain"]
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        host = await Host.open(http, quiz(1))
        players = [await host.join(name) for name in names]
        for player in players:
            await player.connect()
        await host.command("start")
        for player in players:
            await player.expect("question")
            await player.answer(0, 0)
            await player.expect("answer_ack")
        await host.command("end")
        response = await http.get(f"/api/rooms/{host.pin}/results", headers={**host.headers, "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    shown = {row["nickname"] for row in rows}
    assert shown == {"'" + name for name in names[:4]} | {"Plain"}
    assert all(row["points"].isdigit() for row in rows)  # numbers stay numbers


async def test_urls_come_from_public_url_or_allowed_hosts_never_from_a_forged_host(
    start_server: Any, tmp_path: Path
) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'hosts.db'}", "--allowed-hosts", "quiz.example")
    own = f"127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        for host_header, expected in [
            ("evil.example", own),  # forged: the address the connection came in on instead
            (f"evil.example:{server.port}", own),
            (own, own),
            (f"localhost:{server.port}", f"localhost:{server.port}"),
            ("quiz.example:8443", "quiz.example:8443"),
        ]:
            room = (await http.post("/api/rooms", json={"quiz": quiz(1)}, headers={"Host": host_header})).json()
            assert room["join_url"].startswith(f"http://{expected}/"), (host_header, room["join_url"])
            assert room["host_ws_url"].startswith(f"ws://{expected}/"), (host_header, room["host_ws_url"])
            joined = await http.post(
                f"/api/rooms/{room['pin']}/players", json={"nickname": "A"}, headers={"Host": host_header}
            )
            assert joined.json()["ws_url"].startswith(f"ws://{expected}/")
    assert "host_not_allowed" in server.log()
    public = start_server(f"sqlite:///{tmp_path / 'public.db'}", "--public-url", "https://quiz.example.org")
    async with httpx.AsyncClient(base_url=public.url, timeout=WAIT) as http:
        room = (await http.post("/api/rooms", json={"quiz": quiz(1)}, headers={"Host": "evil.example"})).json()
        assert room["join_url"].startswith("https://quiz.example.org/")
        assert room["host_ws_url"].startswith("wss://quiz.example.org/")


async def test_a_binary_frame_is_refused_and_an_answer_in_one_is_never_acked(start_server: Any, tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'binary.db'}")
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        host = await Host.open(http, quiz(1))
        ann = await host.join("Ann")
        await ann.connect()
        await host.command("start")
        await ann.expect("question")
        assert ann.ws is not None
        await ann.ws.send(b'{"type": "answer", "question": 0, "choice": 0}')
        error = await ann.expect("error")
        assert error["code"] == "bad_message" and "binary" in error["message"]
        await ann.answer(0, 1)  # the same answer as text is taken, and is the first one
        ack = await ann.expect("answer_ack")
        assert ack["accepted"] and not ack["duplicate"]
        await host.command("end")
        (player,) = (await host.results())["players"]
        assert [a["choices"] for a in player["answers"]] == [[1]]


async def test_readyz_comes_back_with_the_database_on_an_idle_server(start_server: Any) -> None:
    url = await create_pg_database()
    try:
        server: ServerProcess = start_server(url, "--storage-retry-s", "0.5")
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            host = await Host.open(http, quiz(1))
            await drop_pg_database(url)  # every connection cut, every table gone
            failed = await http.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Ann"})
            assert failed.status_code == 503  # the player's row could not be committed: the writer is unhealthy
            assert (await http.get("/readyz")).status_code == 503
            await recreate(url)

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await poll(ready, "readyz stayed 503 with the database back and nothing written", timeout=5.0)
    finally:
        await drop_pg_database(url)


async def recreate(url: str) -> None:
    import asyncpg

    from tests.conftest import PG_ADMIN_URL

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    finally:
        await conn.close()
