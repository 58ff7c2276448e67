"""Every question type (docs/protocol.md, *Question types*) played over real sockets, on SQLite and PostgreSQL:
bursts of duplicates for each type, the reveal's counts and tallies, the results export, and SIGKILL mid-question
of each type with every acknowledged answer kept exactly once."""

from __future__ import annotations

import asyncio
import csv
import io
import signal
from collections.abc import Callable
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from tests.gameclient import Host, Player, reconnect
from tests.serverproc import ServerProcess

ITEMS = ["one", "two", "three", "four"]
QUIZ: dict[str, Any] = {
    "title": "Every type",
    "questions": [
        {"type": "true_false", "text": "Water is wet", "choices": ["Vrai", "Faux"], "correct": True},
        {"type": "poll", "text": "Favourite season?", "choices": ["Spring", "Summer", "Autumn", "Winter"]},
        {"type": "type_answer", "text": "Capital of Italy?", "accepted": ["Rome", "Roma"], "typo_tolerance": True},
        {"type": "slider", "text": "Legs on a spider", "min": 0, "max": 20, "step": 1, "value": 8, "tolerance": 2},
        {"type": "puzzle", "text": "Count up", "items": ITEMS},
        {"text": "2 + 2", "choices": ["3", "4", "5"], "correct": [1]},
    ],
}
TYPES = ["true_false", "poll", "type_answer", "slider", "puzzle", "choice"]


def puzzle_order(question: dict[str, Any], right: bool) -> list[int]:
    """The displayed indexes of the items in their right order (or, if not `right`, in reverse)."""
    order = [question["choices"].index(item) for item in ITEMS]
    return order if right else order[::-1]


def payload(question: dict[str, Any], player: int) -> dict[str, Any]:
    """Player `player`'s answer to `question`: players 0 and 1 right (player 1 by a typo or at the band's edge),
    player 2 wrong, player 3 silent."""
    kind = question["question_type"]
    if kind == "type_answer":
        return {"text": ["rome", " Rone ", "Paris"][player]}
    if kind == "slider":
        return {"value": [8, 10, 3][player]}
    if kind == "puzzle":
        return {"choices": puzzle_order(question, right=player < 2)}
    if kind == "poll":
        return {"choice": [1, 1, 3][player]}
    if kind == "true_false":
        return {"choice": [0, 0, 1][player]}
    return {"choice": [1, 1, 0][player]}


def other(question: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A different answer of the same shape: a repeat carrying it is refused (`accepted: false`)."""
    if "text" in answer:
        return {"text": "Milan"}
    if "value" in answer:
        return {"value": 15}
    if question["question_type"] == "puzzle":
        return {"choices": answer["choices"][1:] + answer["choices"][:1]}
    return {"choice": 2 if answer["choice"] != 2 else 0}


async def send(player: Player, index: int, answer: dict[str, Any]) -> None:
    await player.send({"type": "answer", "question": index, **answer})


async def test_a_game_of_every_type_with_bursts_of_duplicates(server: ServerProcess, http: httpx.AsyncClient) -> None:
    host = await Host.open(http, QUIZ)
    players = [await host.join(name) for name in ("Ann", "Bob", "Cy", "Dee")]
    await asyncio.gather(*(p.connect() for p in players))
    await host.command("start")
    for index, kind in enumerate(TYPES):
        questions = await asyncio.gather(*(p.expect("question") for p in players))
        question = questions[0]
        assert question["index"] == index and question["question_type"] == kind
        assert not {"correct", "accepted", "value", "items"} & set(question), "nothing of the answer before the reveal"
        if kind == "puzzle":
            assert question["choices"] != ITEMS and sorted(question["choices"]) == sorted(ITEMS)
        if kind == "slider":
            assert (question["min"], question["max"], question["step"]) == (0, 20, 1)
        if kind == "true_false":
            assert question["choices"] == ["Vrai", "Faux"]
        # A burst per player: the answer three times at once and a different one; exactly one is new.
        for n, player in enumerate(players[:3]):
            answer = payload(question, n)
            for repeat in (answer, answer, other(question, answer)):  # back to back, before any ack
                await send(player, index, repeat)
            acks = [await player.expect("answer_ack") for _ in range(3)]
            assert sum(not a["duplicate"] for a in acks) == 1, (kind, acks)
            assert len({a["response_ms"] for a in acks}) == 1
            assert sorted(a["accepted"] for a in acks) == [False, True, True], (kind, acks)
        # Bad shapes for the type are refused with a code and lose nothing.
        wrong_shape = {"choice": 0} if kind in ("type_answer", "slider") else {"text": "x"}
        await send(players[3], index, wrong_shape)
        assert (await players[3].expect("error"))["code"] == "bad_choice"
        await host.command("close")
        results = [await p.expect("result") for p in players]
        board = await players[0].expect("leaderboard")
        if kind == "poll":
            assert [r["is_correct"] for r in results] == [None] * 4 and [r["points"] for r in results] == [0] * 4
            assert board["counts"] == [0, 2, 0, 1] and "tally" not in board
        else:
            assert [r["is_correct"] for r in results] == [True, True, False, False], kind
            assert results[0]["points"] > 0 and results[2]["points"] == 0
        if kind == "type_answer":
            assert results[0]["accepted"] == ["Rome", "Roma"] and results[1]["your_choice"] == "Rone"
            assert board["counts"] == [] and board["tally"]["correct"] == 2
            texts = {a["text"]: a["count"] for a in board["tally"]["answers"]}
            assert texts == {"rome": 1, "Rone": 1, "Paris": 1}
        if kind == "slider":
            assert results[0]["value"] == 8 and results[1]["your_choice"] == 10
            assert results[1]["points"] < results[0]["points"], "the band's edge scores less than the value"
            assert sum(b["count"] for b in board["tally"]["bins"]) == 3 and board["tally"]["correct"] == 2
        if kind == "puzzle":
            assert results[0]["correct"] == puzzle_order(question, right=True)
            assert board["tally"] == {"correct": 2, "wrong": 1}
        if kind == "true_false":
            assert board["counts"] == [2, 1]
        await host.command("next")
    finished = [await p.expect("finished") for p in players]
    assert finished[0]["rank"] == 1

    document = await host.results()
    by_name = {p["nickname"]: p for p in document["players"]}
    for entry in document["players"]:
        assert entry["score"] == sum(a["points"] for a in entry["answers"])
        assert len({a["question"] for a in entry["answers"]}) == len(entry["answers"])
    assert [q["type"] for q in document["questions"]] == TYPES
    assert document["questions"][2]["correct_answer"] == ["Rome", "Roma"]
    assert document["questions"][3]["correct_answer"] == ["8 (± 2)"]
    assert document["questions"][4]["correct_answer"] == ITEMS
    bob = {a["question"]: a for a in by_name["Bob"]["answers"]}
    assert bob[2]["value"] == "Rone" and bob[2]["answer"] == ["Rone"] and bob[2]["correct"]
    assert bob[3]["value"] == 10 and bob[3]["choices"] == []
    assert bob[4]["answer"] == ITEMS
    assert len(by_name["Dee"]["answers"]) == 0

    response = await http.get(
        f"/api/rooms/{host.pin}/results", params={"layout": "players", "format": "csv"}, headers=host.headers
    )
    rows = {row[1]: row for row in csv.reader(io.StringIO(response.text))}
    header = rows["nickname"]
    column = {name: i for i, name in enumerate(header)}
    assert rows["Bob"][column["Q3 Capital of Italy? — answer"]] == "Rone"
    assert rows["Bob"][column["Q5 Count up — answer"]] == "one → two → three → four"
    assert rows["Bob"][column["Q2 Favourite season? — correct"]] == "", "a poll has no right answer"
    assert rows["Cy"][column["Q4 Legs on a spider — answer"]] == "3"


async def _answer(
    player: Player, index: int, answer: dict[str, Any], acked: dict[str, Any], cut: asyncio.Event
) -> None:
    try:
        await send(player, index, answer)
        acked[player.player_id] = await player.expect("answer_ack", timeout=20)
        cut.set()
    except (ConnectionClosed, OSError, TimeoutError):
        pass


async def test_sigkill_mid_question_of_every_type_keeps_each_acked_answer_once(
    start_server: Callable[..., ServerProcess], database_url: str
) -> None:
    # The default reconnect grace (15 s): players on their way back after the restart keep the question open, so
    # it closes only once all of them have answered again.
    server = start_server(database_url)
    quiz = {"title": QUIZ["title"], "questions": [{**q, "time_limit_ms": 120_000} for q in QUIZ["questions"]]}
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz)
        players = await asyncio.gather(*(host.join(f"p{i:02d}") for i in range(30)))
        await asyncio.gather(*(p.connect() for p in players))
        await host.command("start")
        acked_by_question: list[dict[str, Any]] = []
        for index, kind in enumerate(TYPES):
            questions = await asyncio.gather(*(p.expect("question") for p in players))
            answers = [payload(q, n % 3) for n, q in enumerate(questions)]
            acked: dict[str, Any] = {}
            cut = asyncio.Event()
            # Ten players answer only after the restart: with all thirty in one group commit, the question could
            # close (everyone answered) before the kill landed, and the test would kill a room in its reveal.
            early = zip(players[:20], answers[:20], strict=True)
            burst = asyncio.gather(*(_answer(p, index, a, acked, cut) for p, a in early))
            await asyncio.wait_for(cut.wait(), 20)
            server.kill(signal.SIGKILL)
            await burst
            server.start()
            assert (await host.state())["question_index"] == index, kind
            stored = {p["player_id"]: p["answers"] for p in (await host.results())["players"]}
            for player_id in acked:
                assert [a["question"] for a in stored[player_id]].count(index) == 1, f"{kind}: an acked answer lost"
            # Everyone comes back and sends the answer again: the acked ones are duplicates with their timing.
            for player in players:
                player.inbox.clear()
            welcomes = await asyncio.gather(*(reconnect(p) for p in players))
            seen = [(w["phase"], (w.get("question") or {}).get("question_type")) for w in welcomes]
            assert all(phase == "question" and shown == kind for phase, shown in seen), (kind, seen)
            await asyncio.gather(*(send(p, index, a) for p, a in zip(players, answers, strict=True)))
            acks = await asyncio.gather(*(p.expect("answer_ack") for p in players))
            for player, ack in zip(players, acks, strict=True):
                assert ack["accepted"], (kind, ack)
                if player.player_id in acked:
                    assert ack["duplicate"] and ack["response_ms"] == acked[player.player_id]["response_ms"]
            acked_by_question.append(acked)
            await asyncio.gather(*(p.expect("result") for p in players))  # everyone answered: it closes itself
            await host.command("next")
        final = await host.results()
        assert final["phase"] == "finished"
        for entry in final["players"]:
            assert sorted(a["question"] for a in entry["answers"]) == list(range(len(TYPES)))
            assert entry["score"] == sum(a["points"] for a in entry["answers"])
            for index, acked in enumerate(acked_by_question):
                if entry["player_id"] in acked:
                    first = next(a for a in entry["answers"] if a["question"] == index)
                    assert first["response_ms"] == acked[entry["player_id"]]["response_ms"]
