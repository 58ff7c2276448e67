"""A whole game over real sockets against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
import orjson
from websockets.asyncio.client import connect

from quizroom.rooms.game.scoring import answer_points
from tests.gameclient import Host, quiz


async def test_full_game_scores_ranks_podium_and_results(http: httpx.AsyncClient) -> None:
    host = await Host.open(http, quiz(3, multi_last=True))
    nicknames = ["Ann", "Bob", "Cid", "Dee"]
    players = [await host.join(name) for name in nicknames]
    for player in players:
        welcome = await player.connect()
        assert welcome is not None
        assert welcome["phase"] == "lobby" and welcome["score"] == 0 and welcome["question_count"] == 3

    state = await host.command("start")
    assert state["phase"] == "question" and state["question_index"] == 0
    for player in players:
        question = await player.expect("question")
        assert question["index"] == 0 and "correct" not in question and question["multi"] is False
        assert question["deadline_ms"] - question["now_ms"] <= question["time_limit_ms"]

    # Q0 (correct 0): Ann and Bob right, Cid wrong, Dee silent.
    acks = {}
    for player, choice in zip(players[:3], [0, 0, 2], strict=True):
        await player.answer(0, choice)
        acks[player.nickname] = await player.expect("answer_ack")
    assert all(a["accepted"] and not a["duplicate"] for a in acks.values())
    await host.command("close")
    results = {p.nickname: await p.expect("result") for p in players}
    boards = [await p.expect("leaderboard") for p in players]
    assert results["Ann"]["is_correct"] and results["Ann"]["your_choice"] == 0 and results["Ann"]["streak"] == 1
    assert results["Ann"]["points"] == answer_points(
        points=1000, time_limit_ms=20_000, response_ms=acks["Ann"]["response_ms"], correct=True, streak=1
    )
    assert results["Cid"]["points"] == 0 and results["Cid"]["is_correct"] is False and results["Cid"]["streak"] == 0
    assert results["Dee"]["your_choice"] is None and results["Dee"]["score"] == 0
    assert boards[0]["counts"] == [2, 0, 1, 0] and boards[0]["answered"] == 3 and boards[0]["players"] == 4
    assert results["Cid"]["rank"] == results["Dee"]["rank"] == 3  # a tie at zero shares rank 3
    assert results["Ann"]["seq"] < boards[0]["seq"]

    # Q1 (correct 1): everyone answers, so it closes by itself; Ann's streak bonus applies.
    await host.command("next")
    for player in players:
        assert (await player.expect("question"))["index"] == 1
    for player, choice in zip(players, [1, 3, 1, 1], strict=True):
        await player.answer(1, choice)
    for player in players:
        await player.expect("answer_ack")
    results = {p.nickname: await p.expect("result") for p in players}
    assert results["Ann"]["streak"] == 2 and results["Ann"]["points"] >= 600  # ≥ half of 1000, plus 100 bonus
    assert results["Bob"]["streak"] == 0 and results["Cid"]["streak"] == 1

    # Q2 is multi-correct ({2, 3}): only the exact set counts.
    await host.command("next")
    for player in players:
        question = await player.expect("question")
        assert question["multi"] is True
    await players[0].answer(2, [3, 2])
    await players[1].answer(2, [2])
    for player in players[:2]:
        await player.expect("answer_ack")
    await host.command("close")
    ann = await players[0].expect("result")
    bob = await players[1].expect("result")
    assert ann["is_correct"] and ann["your_choice"] == [2, 3] and ann["streak"] == 3
    assert not bob["is_correct"] and bob["points"] == 0

    state = await host.command("next")
    assert state["phase"] == "finished"
    finals = [await p.expect("finished") for p in players]
    assert [e["nickname"] for e in finals[0]["podium"]][0] == "Ann"
    assert len(finals[0]["podium"]) == 3
    for player in players:
        assert await player.closed_with() == 4410

    document = await host.results()
    assert document["phase"] == "finished" and document["title"] == "Test quiz"
    assert [q["correct"] for q in document["questions"]] == [[0], [1], [2, 3]]
    by_name = {p["nickname"]: p for p in document["players"]}
    for entry in document["players"]:
        assert entry["score"] == sum(a["points"] for a in entry["answers"])
        assert all(isinstance(a["choices"], list) for a in entry["answers"])
    assert len(by_name["Ann"]["answers"]) == 3 and len(by_name["Dee"]["answers"]) == 1
    assert by_name["Ann"]["rank"] == 1
    assert [f["score"] for f in finals] == [by_name[n]["score"] for n in nicknames]

    board = (await http.get(f"/api/rooms/{host.pin}/leaderboard?limit=2", headers=host.headers)).json()
    assert [e["nickname"] for e in board["entries"]][0] == "Ann" and len(board["entries"]) == 2

    response = await http.get(f"/api/rooms/{host.pin}/results", headers={**host.headers, "Accept": "text/csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["player_id", "nickname", "question", "choices", "correct", "points", "response_ms"]
    assert len(rows) - 1 == sum(len(p["answers"]) for p in document["players"]) == 3 + 3 + 1 + 2
    assert ["2|3", "true"] == [r[3:5] for r in rows[1:] if r[1] == "Ann" and r[2] == "2"][0]


async def test_equal_scores_share_a_rank(http: httpx.AsyncClient) -> None:
    """Zero-point questions make every score equal: all players share rank 1 (1, 1, 1 — never 1, 2, 3)."""
    host = await Host.open(http, quiz(1, points=0))
    players = [await host.join(f"P{i}") for i in range(3)]
    for player in players:
        await player.connect()
    await host.command("start")
    await asyncio.gather(*(p.expect("question") for p in players))
    await asyncio.gather(*(p.answer(0, 0) for p in players))
    results = [await p.expect("result") for p in players]
    assert {r["rank"] for r in results} == {1}
    board = (await http.get(f"/api/rooms/{host.pin}/leaderboard", headers=host.headers)).json()
    assert [e["rank"] for e in board["entries"]] == [1, 1, 1]


async def test_reconnect_takes_over_and_resumes_state(http: httpx.AsyncClient) -> None:
    host = await Host.open(http)
    player = await host.join("Eve")
    await player.connect()
    other = await host.join("Zed")  # a second, silent player keeps the question open
    await other.connect()
    await host.command("start")
    await player.expect("question")
    await player.answer(0, 0)
    await player.expect("answer_ack")
    old_ws = player.ws
    welcome = await player.connect()
    assert welcome is not None
    assert welcome["phase"] == "question" and welcome["answered"] is True
    assert welcome["question"]["index"] == 0 and "correct" not in welcome["question"]
    assert welcome["score"] == 0  # points stay hidden until the question closes
    assert old_ws is not None
    await old_ws.wait_closed()
    assert old_ws.close_code == 4409
    await player.answer(0, 0)
    ack = await player.expect("answer_ack")
    assert ack["duplicate"] is True and ack["accepted"] is True


async def test_host_socket_gets_coalesced_players_and_runs_commands(http: httpx.AsyncClient) -> None:
    host = await Host.open(http, quiz(1))
    async with connect(host.room["host_ws_url"]) as ws:
        await ws.send(orjson.dumps({"type": "hello", "token": host.room["host_token"]}).decode())
        welcome = orjson.loads(await ws.recv())
        assert welcome["type"] == "welcome" and welcome["role"] == "host" and welcome["phase"] == "lobby"
        players = await asyncio.gather(*(host.join(f"J{i:02d}") for i in range(30)))
        seen: set[str] = set()
        largest = 0
        async with asyncio.timeout(10):
            while len(seen) < 30:
                message = orjson.loads(await ws.recv())
                if message["type"] == "players":
                    largest = max(largest, len(message["joined"]))
                    seen |= {p["nickname"] for p in message["joined"]}
                    assert message["count"] >= len(seen)
        assert largest >= 2  # joins are coalesced into shared updates, not sent as one frame each

        await ws.send(orjson.dumps({"type": "kick", "player_id": players[0].player_id}).decode())
        await ws.send('{"type": "start"}')
        kinds: list[str] = []
        async with asyncio.timeout(10):
            while "question" not in kinds or "state" not in kinds:
                message = orjson.loads(await ws.recv())
                kinds.append(message["type"])
                if message["type"] == "question":
                    assert message["correct"] == [0]  # the host sees the answer
                if message["type"] == "players" and message["left"]:
                    assert message["left"][0]["player_id"] == players[0].player_id
        await ws.send('{"type": "start"}')
        async with asyncio.timeout(10):
            while (message := orjson.loads(await ws.recv()))["type"] != "error":
                pass
        assert message["code"] == "bad_phase"
    state = await host.state()
    assert state["phase"] == "question" and state["players"] == 29
