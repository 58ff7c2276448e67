"""Every error code and close code of SPEC §2–3, each sent for real; the socket or room survives where it should."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.gameclient import Host, Player, quiz
from tests.serverproc import ServerProcess

FLAGS = ("--hello-timeout-s", "0.5", "--rate-abuse-strikes", "8", "--players-per-room", "5")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("errors")
    server = ServerProcess(f"sqlite:///{workdir / 'q.db'}", workdir, *FLAGS).start()
    yield server
    server.stop()


@pytest.fixture
async def web(srv: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=10.0) as client:
        yield client


async def started(web: httpx.AsyncClient, n: int = 2) -> tuple[Host, list[Player]]:
    """A room with `n` connected players and question 0 open."""
    host = await Host.open(web, quiz(2))
    players = [await host.join(f"P{i}") for i in range(n)]
    for player in players:
        await player.connect()
    await host.command("start")
    for player in players:
        await player.expect("question")
    return host, players


async def error_code(player: Player) -> str:
    return str((await player.expect("error"))["code"])


async def still_alive(player: Player) -> None:
    await player.send({"type": "ping", "t": 7})
    pong = await player.expect("pong")
    assert pong["t"] == 7 and isinstance(pong["now_ms"], int)


# --- HTTP ------------------------------------------------------------------------------------------------------


async def test_join_refusals_have_their_codes(web: httpx.AsyncClient) -> None:
    host = await Host.open(web)
    assert (await web.post("/api/rooms/000000/players", json={"nickname": "x"})).status_code == 404
    assert (await web.post("/api/rooms/not-a-pin/players", json={"nickname": "x"})).status_code == 404
    for body in (b"{not json", b"[1, 2]", b'"Ann"'):  # not JSON, not an object
        refused = await web.post(f"/api/rooms/{host.pin}/players", content=body)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid", body[:20]
    too_big = await web.post(f"/api/rooms/{host.pin}/players", content=b" " * (1 << 20) + b"{}")
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_big"
    await host.join("Ann")
    taken = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": " ＡＮＮ "})  # NFKC + case + trim
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "nickname_taken"
    for bad in ["", "   ", "x" * 25, "a\u200bb", "evil\u202e", "tab\there", 42, None]:
        response = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": bad})
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "bad_nickname"
    await host.command("lock")
    locked = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Bob"})
    assert locked.status_code == 423 and locked.json()["error"]["code"] == "room_locked"
    await host.command("unlock")
    for i in range(4):
        await host.join(f"Full{i}")
    full = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Six"})
    assert full.status_code == 423 and full.json()["error"]["code"] == "room_full"
    await host.command("end")
    done = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Late"})
    assert done.status_code == 423 and done.json()["error"]["code"] == "room_finished"


async def test_invalid_quiz_names_the_offending_field(web: httpx.AsyncClient) -> None:
    good = quiz(1)
    cases = {
        "title": {**good, "title": ""},
        "questions": {**good, "questions": []},
        "questions[0].choices": {**good, "questions": [{**good["questions"][0], "choices": ["only one"]}]},
        "questions[0].correct[0]": {**good, "questions": [{**good["questions"][0], "correct": [7]}]},
        "questions[0].time_limit_ms": {**good, "questions": [{**good["questions"][0], "time_limit_ms": 10}]},
        "questions[0].points": {**good, "questions": [{**good["questions"][0], "points": True}]},
    }
    for field, body in cases.items():
        response = await web.post("/api/quizzes", json=body)
        assert response.status_code == 422, field
        assert response.json()["error"]["field"] == field
    wrapped = await web.post("/api/rooms", json={"quiz": cases["title"]})
    assert wrapped.status_code == 422 and wrapped.json()["error"]["field"] == "quiz.title"
    assert (await web.post("/api/quizzes", content=b"{not json")).status_code == 422
    created = await web.post("/api/quizzes", json=good)
    assert created.status_code == 201
    fetched = await web.get(f"/api/quizzes/{created.json()['quiz_id']}")
    assert fetched.status_code == 200 and fetched.json()["title"] == good["title"]
    assert (await web.get("/api/quizzes/nope")).status_code == 404
    room = await web.post("/api/rooms", json={"quiz_id": created.json()["quiz_id"]})
    assert room.status_code == 201 and len(room.json()["pin"]) == 6
    assert (await web.post("/api/rooms", json={"quiz_id": "nope"})).status_code == 404


async def test_host_calls_need_the_host_token_and_fit_the_phase(web: httpx.AsyncClient) -> None:
    host = await Host.open(web)
    other = await Host.open(web)
    for headers in ({}, {"Authorization": "Bearer wrong"}, other.headers):
        response = await web.post(f"/api/rooms/{host.pin}/start", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert (await host.command("close", expect=409))["error"]["code"] == "bad_phase"
    assert (await host.command("next", expect=409))["error"]["code"] == "bad_phase"
    await host.command("start")
    again = await host.command("start", expect=409)  # a retried start never starts twice
    assert again["error"]["code"] == "bad_phase"
    assert (await host.state())["question_index"] == 0
    assert (await host.command("next", expect=409))["error"]["code"] == "bad_phase"
    kick = await web.delete(f"/api/rooms/{host.pin}/players/nobody", headers=host.headers)
    assert kick.status_code == 404
    bad_limit = await web.get(f"/api/rooms/{host.pin}/leaderboard?limit=0", headers=host.headers)
    assert bad_limit.status_code == 422
    await host.command("end")
    assert (await host.command("end", expect=409))["error"]["code"] == "bad_phase"
    assert (await host.command("lock", expect=409))["error"]["code"] == "bad_phase"


async def test_admin_token_guards_creation(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(f"sqlite:///{tmp_path / 'admin.db'}", "--admin-token", "s3cret")
    async with httpx.AsyncClient(base_url=server.url) as client:
        body = {"quiz": quiz(1)}
        assert (await client.post("/api/rooms", json=body)).status_code == 401
        assert (await client.post("/api/quizzes", json=quiz(1))).status_code == 401
        admin = {"Authorization": "Bearer s3cret"}
        created = await client.post("/api/rooms", json=body, headers=admin)
        assert created.status_code == 201
        pin = created.json()["pin"]
        assert (await client.get(f"/api/rooms/{pin}", headers=admin)).status_code == 200  # admin may act as host
        joined = await client.post(f"/api/rooms/{pin}/players", json={"nickname": "Ann"})
        assert joined.status_code == 201  # players never need the admin token


# --- player socket: error messages ------------------------------------------------------------------------------


async def test_malformed_messages_get_bad_message_or_unknown_type_and_the_socket_survives(
    web: httpx.AsyncClient,
) -> None:
    _, (player, _) = await started(web)
    assert player.ws is not None
    for raw in ["{not json", "[1, 2]", '"text"', '{"no": "type"}', '{"type": 5}', "9" * 400]:
        await player.ws.send(raw)
        assert await error_code(player) == "bad_message", raw
    await player.ws.send(b'{"type": "ping", "t": 1}')  # the protocol is JSON text: a binary frame is refused
    assert await error_code(player) == "bad_message"
    await player.send({"type": "dance"})
    assert await error_code(player) == "unknown_type"
    await player.send({"type": "answer", "question": 0})
    assert await error_code(player) == "bad_message"
    await player.send({"type": "answer", "question": "0", "choice": 0})
    assert await error_code(player) == "bad_message"
    await player.send({"type": "answer", "question": 0, "choice": True})
    assert await error_code(player) == "bad_message"
    await player.send({"type": "hello", "token": player.token})
    assert await error_code(player) == "bad_message"
    await still_alive(player)


async def test_answers_out_of_place_get_their_codes(web: httpx.AsyncClient) -> None:
    host = await Host.open(web, quiz(2))
    player, other = await host.join("A"), await host.join("B")
    await player.connect()
    await other.connect()
    await player.answer(0, 0)
    assert await error_code(player) == "bad_phase"  # lobby
    await host.command("start")
    await player.expect("question")
    await player.answer(1, 0)
    assert await error_code(player) == "wrong_question"
    await player.answer(0, 9)
    assert await error_code(player) == "bad_choice"
    await player.answer(0, [0, 1])  # two choices on a single-choice question
    assert await error_code(player) == "bad_choice"
    await player.answer(0, [])
    assert await error_code(player) == "bad_choice"
    await player.answer(0, 1)
    assert await error_code(player) == "rate_limited"  # the fourth attempt at this question
    await other.answer(0, 0)
    await other.expect("answer_ack")
    await host.command("close")
    await other.answer(0, 0)  # a repeat after the close is still acknowledged as the stored answer
    assert (await other.expect("answer_ack"))["duplicate"] is True
    await player.expect("result")
    await player.answer(0, 0)
    assert await error_code(player) == "too_late"
    await still_alive(player)
    document = await host.results()
    assert sum(len(p["answers"]) for p in document["players"]) == 1  # nothing refused was stored


async def test_message_rate_is_limited_then_abuse_closes_4429(web: httpx.AsyncClient) -> None:
    _, (player, _) = await started(web)
    assert player.ws is not None
    await asyncio.gather(*(player.send({"type": "ping", "t": i}) for i in range(45)))
    codes = [await player.recv() for _ in range(45)]
    limited = [m for m in codes if m["type"] == "error"]
    assert limited and all(m["code"] == "rate_limited" for m in limited)
    assert sum(1 for m in codes if m["type"] == "pong") >= 40  # the burst allowance
    await asyncio.gather(*(player.send({"type": "ping"}) for _ in range(20)))
    assert await player.closed_with() == 4429


async def test_too_big_message_gets_too_big_then_1009(web: httpx.AsyncClient) -> None:
    _, (player, other) = await started(web)
    await player.send({"type": "ping", "pad": "x" * 5000})
    assert await error_code(player) == "too_big"
    assert await player.closed_with() == 1009
    await still_alive(other)


async def test_persistent_garbage_closes_1008(web: httpx.AsyncClient) -> None:
    _, (player, other) = await started(web)
    assert player.ws is not None
    for _ in range(21):
        await player.ws.send("garbage")
    assert await player.closed_with() == 1008
    await still_alive(other)


# --- player socket: close codes ---------------------------------------------------------------------------------


async def test_bad_token_missing_hello_and_unknown_room_are_closed(web: httpx.AsyncClient, srv: ServerProcess) -> None:
    host = await Host.open(web)
    player = await host.join("T")
    url = player.joined["ws_url"]
    async with connect(url) as ws:
        await ws.send('{"type": "hello", "token": "forged"}')
        await ws.wait_closed()
        assert ws.close_code == 4401
    async with connect(url) as ws:
        await ws.send('{"type": "ping"}')  # the first message must be hello
        await ws.wait_closed()
        assert ws.close_code == 4401
    async with connect(url) as ws:  # say nothing: dropped after the hello timeout (0.5 s here)
        await ws.wait_closed()
        assert ws.close_code == 4401
    async with connect(f"{srv.ws}/ws/play/999999") as ws:
        await ws.send('{"type": "hello", "token": "x"}')
        await ws.wait_closed()
        assert ws.close_code == 4404


async def test_kicked_player_is_closed_4403_and_cannot_return(web: httpx.AsyncClient) -> None:
    host = await Host.open(web)
    player, other = await host.join("Kick"), await host.join("Stay")
    await player.connect()
    await other.connect()
    response = await web.delete(f"/api/rooms/{host.pin}/players/{player.player_id}", headers=host.headers)
    assert response.status_code == 204
    assert await player.closed_with() == 4403
    async with connect(player.joined["ws_url"]) as ws:
        await ws.send(f'{{"type": "hello", "token": "{player.token}"}}')
        await ws.wait_closed()
        assert ws.close_code == 4403
    state = await host.state()
    assert state["players"] == 1 and state["connected"] == 1
    board = (await web.get(f"/api/rooms/{host.pin}/leaderboard", headers=host.headers)).json()
    assert [e["nickname"] for e in board["entries"]] == ["Stay"]
    rejoin = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Kick"})
    assert rejoin.status_code == 423 and rejoin.json()["error"]["code"] == "kicked"  # the name stays barred
    other_name = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": "Someone"})
    assert other_name.status_code == 201


async def test_finished_room_welcomes_then_closes_4410(web: httpx.AsyncClient) -> None:
    host = await Host.open(web, quiz(1))
    player = await host.join("Fin")
    await host.command("end")
    await player.connect(welcome=False)
    assert await player.closed_with() == 4410
    kinds = [m["type"] for m in player.inbox]
    assert kinds == ["welcome", "finished"]
    assert player.inbox[0]["phase"] == "finished"


async def test_shutdown_closes_sockets_1001_and_a_restart_resumes(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(f"sqlite:///{tmp_path / 'term.db'}")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        host, (player, _) = await started(client)
        await player.answer(0, 2)
        ack = await player.expect("answer_ack")
        assert server.kill(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after draining
        assert await player.closed_with() == 1001
        server.start()
        assert (await host.state())["phase"] == "question"
        welcome = await player.connect()
        assert welcome is not None and welcome["answered"] is True
        await player.answer(0, 2)
        again = await player.expect("answer_ack")
        assert again["duplicate"] and again["response_ms"] == ack["response_ms"]
