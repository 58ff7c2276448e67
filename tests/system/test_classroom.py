"""The classroom's server side against a real server on both backends (docs/protocol.md, "Room options",
"Moderation", and the welcome's fields): kicks that stick across a restart, a game that finishes without its host,
the "get ready" pause, and welcomes that restore every screen. Judged from what the clients received and what the
HTTP API answers; the browser side of the same is tests/system/test_classroom_browser.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from quizroom.clients.messages import GetReady, Result, Welcome, parse_message
from quizroom.server.qrcodes import join_qr_svg
from tests.gameclient import WAIT, Host, Player, quiz
from tests.serverproc import ServerProcess


async def open_room(http: httpx.AsyncClient, questions: int = 2, **options: Any) -> Host:
    response = await http.post("/api/rooms", json={"quiz": quiz(questions, time_limit_ms=60_000), **options})
    assert response.status_code == 201, response.text
    return Host(http, response.json())


async def join(host: Host, nickname: str, device: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"nickname": nickname}
    if device is not None:
        body["device"] = device
    return await host.http.post(f"/api/rooms/{host.pin}/players", json=body)


async def seated(host: Host, nickname: str, device: str | None = None) -> Player:
    response = await join(host, nickname, device)
    assert response.status_code == 201, response.text
    return Player(response.json(), nickname)


async def kick(host: Host, player: Player) -> None:
    response = await host.http.delete(f"/api/rooms/{host.pin}/players/{player.player_id}", headers=host.headers)
    assert response.status_code == 204, response.text


def refused_as_kicked(response: httpx.Response) -> bool:
    return response.status_code == 423 and response.json()["error"]["code"] == "kicked"


class HostSocket:
    """A host socket with a buffer, like `tests.gameclient.Player`."""

    def __init__(self, server: ServerProcess, host: Host) -> None:
        self.server, self.host = server, host
        self.inbox: list[dict[str, Any]] = []

    async def __aenter__(self) -> HostSocket:
        self.ws = await connect(self.host.room["host_ws_url"], open_timeout=WAIT)
        await self.ws.send(orjson.dumps({"type": "hello", "token": self.host.room["host_token"]}).decode())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def expect(self, kind: str) -> dict[str, Any]:
        for i, held in enumerate(self.inbox):
            if held["type"] == kind:
                return self.inbox.pop(i)
        async with asyncio.timeout(WAIT):
            while True:
                message: dict[str, Any] = orjson.loads(await self.ws.recv())
                if message["type"] == kind:
                    return message
                self.inbox.append(message)


# --- moderation ---------------------------------------------------------------------------------------------------


async def test_a_kick_bars_the_name_its_look_alikes_and_the_device_even_after_a_restart(
    start_server: Any, database_url: str
) -> None:
    server = start_server(database_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await open_room(http)
        coco = await seated(host, "Coco", device="device-of-coco")
        await seated(host, "Ann")
        await kick(host, coco)
        assert refused_as_kicked(await join(host, "coco"))
        assert refused_as_kicked(await join(host, "\u0441\u043e\u0441\u043e"))  # Cyrillic сосо looks like coco
        assert refused_as_kicked(await join(host, "Someone new", device="device-of-coco"))
        assert (await join(host, "Dee", device="device-of-dee")).status_code == 201, "anyone else still joins"
        resumed = await http.post(f"/api/rooms/{host.pin}/resume", headers={"Authorization": f"Bearer {coco.token}"})
        assert resumed.status_code == 403 and resumed.json()["error"]["code"] == "kicked"
    server.kill()
    server.restart()
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host.http = http
        assert refused_as_kicked(await join(host, "COCO")), "the bar is stored, not only in memory"
        assert refused_as_kicked(await join(host, "Another", device="device-of-coco"))
        assert (await join(host, "Eve")).status_code == 201
        assert {p["nickname"] for p in (await host.results())["players"]} == {"Ann", "Dee", "Eve"}


async def test_a_kick_mid_question_takes_the_player_out_of_counts_and_results(
    start_server: Any, database_url: str
) -> None:
    server = start_server(database_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await open_room(http, questions=1)
        players = [await seated(host, name) for name in ("Ann", "Bob", "Cy")]
        await asyncio.gather(*(p.connect() for p in players))
        await host.command("start")
        await asyncio.gather(*(p.expect("question") for p in players))
        ann, bob, cy = players
        await bob.answer(0, 0)
        assert (await bob.expect("answer_ack"))["accepted"]
        await kick(host, bob)
        assert await bob.closed_with() == 4403
        state = await host.state()
        assert state["players"] == 2 and state["answers"] == 0, state
        await ann.answer(0, 0)
        await cy.answer(0, 1)
        result = await ann.expect("result")  # everyone left has answered: it closes
        board = await ann.expect("leaderboard")
        assert board["answered"] == 2 and board["players"] == 2 and sum(board["counts"]) == 2
        assert [e["nickname"] for e in board["top"]] == ["Ann", "Cy"] and result["rank"] == 1
        assert {p["nickname"] for p in (await host.results())["players"]} == {"Ann", "Cy"}


async def test_bad_devices_and_options_are_refused_with_the_field(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host = await open_room(http)
    for device in ("short", "x" * 129, "has space in it", 12345678):
        response = await http.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Ann", "device": device})
        assert response.status_code == 422 and response.json()["error"]["field"] == "device", response.text
    for options, field in (({"auto_advance": "yes"}, "auto_advance"), ({"intro_ms": 60_000}, "intro_ms")):
        response = await http.post("/api/rooms", json={"quiz": quiz(1), **options})
        assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
    assert (await host.state())["players"] == 0, "nothing was seated by the refused joins"


# --- the game without its host ------------------------------------------------------------------------------------


async def test_an_auto_advance_room_finishes_without_its_host_and_another_room_waits(
    start_server: Any, database_url: str
) -> None:
    server = start_server(database_url, "--auto-advance-after-s", "1")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        alone = await open_room(http, questions=2, auto_advance=True)
        waiting = await open_room(http, questions=2)
        assert (await alone.state())["auto_advance"] is True and (await waiting.state())["auto_advance"] is False
        ann, bob = await seated(alone, "Ann"), await seated(waiting, "Bob")
        await ann.connect()
        await bob.connect()
        async with HostSocket(server, alone) as host_socket:
            await host_socket.expect("welcome")
            await alone.command("start")
        # The host's socket is gone: the room goes on after each reveal by itself, to the podium.
        await waiting.command("start")
        await ann.expect("question")
        await bob.expect("question")
        await ann.answer(0, 0)
        await bob.answer(0, 0)
        await ann.expect("result")
        await bob.expect("result")
        second = await ann.expect("question")
        assert second["index"] == 1
        await ann.answer(1, 1)
        await ann.expect("result")
        finished = await ann.expect("finished")
        assert finished["rank"] == 1 and finished["podium"][0]["nickname"] == "Ann"
        assert await ann.closed_with() == 4410
        # The other room (no auto_advance, no host either) is still at its first reveal, however long it took.
        state = await waiting.state()
        assert state["phase"] == "reveal" and state["question_index"] == 0


# --- get ready ----------------------------------------------------------------------------------------------------


async def test_get_ready_comes_before_each_question_and_the_timer_starts_after_it(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host = await open_room(http, questions=2, intro_ms=1_500)
    ann, bob = await seated(host, "Ann"), await seated(host, "Bob")
    await ann.connect()
    await bob.connect()
    async with HostSocket(server, host) as host_socket:
        await host_socket.expect("welcome")
        started = time.monotonic()
        state = await host.command("start")  # answered once the question is open
        assert time.monotonic() - started >= 1.4 and state["phase"] == "question"
        ready = await ann.expect("get_ready")
        typed = parse_message(orjson.dumps(ready))
        assert isinstance(typed, GetReady) and typed.opens_at_ms == ready["opens_at_ms"]
        assert ready["index"] == 0 and ready["text"] == "Question 0?" and ready["intro_ms"] == 1_500
        assert "choices" not in ready and "correct" not in ready
        host_ready = await host_socket.expect("get_ready")
        question = await ann.expect("question")
        assert [m["type"] for m in ann.inbox] == [], "get_ready, then the question, nothing between"
        assert question["deadline_ms"] - ready["opens_at_ms"] == pytest.approx(60_000, abs=300)
        # Each copy is dated where it is built (the coordinator's for hosts, the shard's for its players): the same
        # moment, a millisecond or two apart on a busy machine.
        assert host_ready["opens_at_ms"] == pytest.approx(ready["opens_at_ms"], abs=50)
        await ann.answer(0, 0)
        ack = await ann.expect("answer_ack")
        assert ack["response_ms"] < ready["intro_ms"], "timed from the question, not from the pause"
        # A player who connects during the next pause sees the pause in the welcome.
        await bob.answer(0, 1)
        await ann.expect("result")
        await bob.expect("result")
        await bob.close()
        nexting = asyncio.ensure_future(host.command("next"))
        await ann.expect("get_ready")
        welcome = await bob.connect()
        assert welcome is not None and welcome["get_ready"]["index"] == 1
        await nexting


# --- welcomes that restore the screen -----------------------------------------------------------------------------


async def test_welcomes_carry_the_screen_in_a_question_at_a_reveal_and_at_the_end(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host = await open_room(http, questions=2)
    ann, bob = await seated(host, "Ann"), await seated(host, "Bob")
    await ann.connect()
    await bob.connect()
    await host.command("start")
    await ann.expect("question")
    await ann.answer(0, 0)
    await ann.expect("answer_ack")
    await ann.close()
    welcome = await ann.connect()
    assert welcome is not None and welcome["answered"] is True and welcome["your_choice"] == 0
    welcome = await bob.connect()  # bob's second socket replaces the first
    assert welcome is not None and welcome["your_choice"] is None
    await bob.answer(0, 1)
    result = await ann.expect("result")
    board = await ann.expect("leaderboard")
    assert result["behind"] is None and result["rank"] == 1
    bob_result = await bob.expect("result")
    assert bob_result["behind"] == {"points": result["score"], "nickname": "Ann"}
    await ann.close()
    welcome = await ann.connect()
    assert welcome is not None and welcome["phase"] == "reveal"
    assert welcome["result"] == result and welcome["leaderboard"] == board
    typed = parse_message(orjson.dumps(welcome))  # the Python client reads the same fields
    assert isinstance(typed, Welcome) and typed.result is not None and typed.leaderboard is not None
    assert typed.result.points == result["points"] and typed.leaderboard.counts == board["counts"]
    typed_bob = parse_message(orjson.dumps(bob_result))
    assert isinstance(typed_bob, Result) and typed_bob.behind_nickname == "Ann"
    async with HostSocket(server, host) as host_socket:
        host_welcome = await host_socket.expect("welcome")
        assert host_welcome["result"]["counts"] == board["counts"] == [1, 1, 0, 0]
        assert host_welcome["result"]["correct"] == [0] and host_welcome["leaderboard"] == board
    await host.command("end")
    podium = (await ann.expect("finished"))["podium"]
    async with HostSocket(server, host) as host_socket:
        assert (await host_socket.expect("welcome"))["podium"] == podium


async def test_the_join_qr_code_is_an_svg_of_the_join_link(server: ServerProcess, http: httpx.AsyncClient) -> None:
    host = await open_room(http)
    response = await http.get(f"/api/rooms/{host.pin}/qr.svg")
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    assert response.content == join_qr_svg(host.room["join_url"]), "the code says the join link, nothing else"
    missing = await http.get("/api/rooms/000001/qr.svg")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_a_room_with_friendly_names_gives_each_player_a_generated_name(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host = await open_room(http, friendly_names=True)
    joined = [(await join(host, typed)).json() for typed in ("ShitHead", "Ann", "Ann")]
    names = [j["nickname"] for j in joined]
    assert len(set(names)) == 3 and not {"ShitHead", "Ann"} & set(names), names
    welcome = await Player(joined[0], names[0]).connect()
    assert welcome is not None and welcome["nickname"] == names[0]
    assert {p["nickname"] for p in (await host.results())["players"]} == set(names)


async def test_two_host_screens_see_the_same_game_whoever_sends_the_commands(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """The projector and a second host window (the presenter notes, a co-teacher): commands from either go to both,
    and a command the room has already taken is refused to the other, never applied twice."""
    host = await Host.open(http, quiz(2))
    ann = await host.join("Ann")
    await ann.connect()
    async with HostSocket(server, host) as one, HostSocket(server, host) as two:
        await one.expect("welcome")
        await two.expect("welcome")
        await one.ws.send(orjson.dumps({"type": "start"}).decode())
        states = [await one.expect("state"), await two.expect("state")]
        assert [s["phase"] for s in states] == ["question", "question"]
        questions = [await one.expect("question"), await two.expect("question")]
        assert questions[0] == questions[1] and questions[0]["correct"] == [0]
        await two.ws.send(orjson.dumps({"type": "start"}).decode())
        assert (await two.expect("error"))["code"] == "bad_phase", "the second start is refused, not applied"
        await ann.answer(0, 0)
        await ann.expect("answer_ack")
        results = [await one.expect("result"), await two.expect("result")]  # everyone answered: it closed
        assert results[0] == results[1] and results[0]["counts"][0] == 1
        boards = [await one.expect("leaderboard"), await two.expect("leaderboard")]
        assert boards[0] == boards[1]
        # Both press "next" at once: one takes the room to question 1, the other is refused.
        for socket in (one, two):
            await socket.ws.send(orjson.dumps({"type": "next"}).decode())
        replies = [await one.expect("question"), await two.expect("question")]
        assert replies[0]["index"] == replies[1]["index"] == 1
        assert [(await s.expect("state"))["question_index"] for s in (one, two)] == [1, 1]
        refusals = [asyncio.ensure_future(s.expect("error")) for s in (one, two)]
        done, waiting = await asyncio.wait(refusals, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        for task in waiting:
            task.cancel()
        assert [t.result()["code"] for t in done] == ["bad_phase"], "one next is taken, the other refused"
        assert (await host.state())["question_index"] == 1
