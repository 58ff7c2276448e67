"""Exactly once under concurrency: hundreds of sockets answering at once, duplicates, and a second socket."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.gameclient import Host, Player, quiz

PLAYERS = 200


async def _acks(player: Player, count: int) -> list[dict[str, Any]]:
    return [await player.expect("answer_ack") for _ in range(count)]


async def test_burst_with_duplicates_stores_one_answer_each_and_scores_once(http: httpx.AsyncClient) -> None:
    host = await Host.open(http, quiz(1))
    players = await asyncio.gather(*(host.join(f"p{i:03d}") for i in range(PLAYERS)))
    await asyncio.gather(*(p.connect() for p in players))
    silent = await host.join("silent")  # connected but never answering: the question stays open for the test
    await silent.connect()
    await host.command("start")
    await asyncio.gather(*(p.expect("question") for p in players))

    repeaters = players[: PLAYERS // 3]
    singles = players[PLAYERS // 3 :]

    async def repeat(player: Player) -> list[dict[str, Any]]:
        """The same answer three times at once on one socket, then once more on a second socket (a reconnect)."""
        choice = int(player.player_id, 16) % 4
        await asyncio.gather(*(player.answer(0, choice) for _ in range(3)))
        first = player.ws
        await player.connect()
        await player.answer(0, choice)
        acks = [await player.expect("answer_ack")]
        assert first is not None
        await first.wait_closed()
        assert first.close_code == 4409
        return acks

    async def single(player: Player) -> list[dict[str, Any]]:
        await player.answer(0, int(player.player_id, 16) % 4)
        return await _acks(player, 1)

    results = await asyncio.gather(*(repeat(p) for p in repeaters), *(single(p) for p in singles))

    for acks in results:
        assert all(a["accepted"] for a in acks)
    for acks in results[len(repeaters) :]:
        assert [a["duplicate"] for a in acks] == [False]
    for acks in results[: len(repeaters)]:
        assert acks[-1]["duplicate"] is True  # the second socket's repeat is acked again, never stored again

    state = await host.state()
    assert state["answers"] == PLAYERS
    document = await host.results()
    stored = Counter(a["question"] for p in document["players"] for a in p["answers"])
    assert stored == {0: PLAYERS}
    for entry in document["players"]:
        assert len(entry["answers"]) <= 1
        assert entry["score"] == sum(a["points"] for a in entry["answers"])
    response_ms = {p["player_id"]: p["answers"][0]["response_ms"] for p in document["players"] if p["answers"]}
    for player, acks in zip(repeaters, results, strict=False):
        assert {a["response_ms"] for a in acks} == {response_ms[player.player_id]}

    await host.command("close")
    scored = {p.player_id: (await p.expect("result"))["score"] for p in players}
    board = await players[0].expect("leaderboard")
    assert len(board["top"]) == 10 and board["answered"] == PLAYERS and sum(board["counts"]) == PLAYERS
    assert scored == {p["player_id"]: p["score"] for p in document["players"] if p["nickname"] != "silent"}


async def test_a_different_repeat_is_not_accepted_and_the_first_answer_wins(http: httpx.AsyncClient) -> None:
    host = await Host.open(http, quiz(1))
    player, other = await host.join("First"), await host.join("Other")
    await player.connect()
    await other.connect()
    await host.command("start")
    await player.expect("question")
    await player.answer(0, 0)
    first = await player.expect("answer_ack")
    await player.answer(0, 1)
    second = await player.expect("answer_ack")
    assert first["accepted"] and not first["duplicate"]
    assert second["duplicate"] and not second["accepted"] and second["response_ms"] == first["response_ms"]
    document = await host.results()
    answers = [a for p in document["players"] for a in p["answers"]]
    assert [a["choices"] for a in answers] == [[0]]
