"""Crash safety: SIGKILL the real server mid-burst, restart it on the same database, and check every promise."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from tests.gameclient import Host, Player, quiz, reconnect
from tests.serverproc import ServerProcess

PLAYERS = 150


async def _answer_until_cut(player: Player, acked: dict[str, dict[str, Any]], enough: asyncio.Event) -> None:
    try:
        await player.answer(0, int(player.player_id, 16) % 4)
        ack = await player.expect("answer_ack", timeout=20)
        acked[player.player_id] = ack
        enough.set()
    except (ConnectionClosed, OSError, TimeoutError):
        pass


async def test_sigkill_mid_burst_loses_no_acked_answer_and_the_room_resumes(
    start_server: Callable[..., ServerProcess], database_url: str
) -> None:
    # The silent player does not come back after the restart: it counts as answering for the reconnect grace (a
    # dropped player may be on its way back), kept short here so the early close follows soon after it.
    server = start_server(database_url, "--reconnect-grace-s", "2")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(2, time_limit_ms=120_000))
        players = await asyncio.gather(*(host.join(f"c{i:03d}") for i in range(PLAYERS)))
        await asyncio.gather(*(p.connect() for p in players))
        silent = await host.join("silent")  # keeps the question open until the restart
        await silent.connect()
        await host.command("start")
        await asyncio.gather(*(p.expect("question") for p in players))

        acked: dict[str, dict[str, Any]] = {}
        enough = asyncio.Event()
        burst = asyncio.gather(*(_answer_until_cut(p, acked, enough) for p in players))
        await asyncio.wait_for(enough.wait(), 20)
        server.kill(signal.SIGKILL)
        await burst
        acked_before_kill = dict(acked)
        assert acked_before_kill
        print(f"acked before kill: {len(acked_before_kill)} of {PLAYERS}")

        server.start()
        state = await host.state()
        assert state["phase"] == "question" and state["question_index"] == 0  # it resumes where it was
        document = await host.results()
        stored = {p["player_id"]: p["answers"] for p in document["players"]}
        for player_id in acked_before_kill:
            assert len(stored[player_id]) == 1, "an acknowledged answer was lost"
        for entry in document["players"]:
            assert len(entry["answers"]) <= 1
            assert entry["score"] == sum(a["points"] for a in entry["answers"])

        # Everyone reconnects with the same token and sends the answer again: acked ones come back duplicate.
        for player in players:
            player.inbox.clear()
        await asyncio.gather(*(_reconnect(p) for p in players))
        welcomes = [p.inbox.pop(0) for p in players]
        assert all(w["phase"] == "question" for w in welcomes)
        for player, welcome in zip(players, welcomes, strict=True):
            assert welcome["answered"] is (player.player_id in {pid for pid, a in stored.items() if a})
        await asyncio.gather(*(p.answer(0, int(p.player_id, 16) % 4) for p in players))
        acks = await asyncio.gather(*(p.expect("answer_ack") for p in players))
        for player, ack in zip(players, acks, strict=True):
            assert ack["accepted"]
            if player.player_id in acked_before_kill:
                assert ack["duplicate"] and ack["response_ms"] == acked_before_kill[player.player_id]["response_ms"]

        # Every connected player has answered (and the silent one's grace is over), so the question closes by
        # itself; the game goes on to the end.
        results = await asyncio.gather(*(p.expect("result") for p in players))
        assert all(r["question"] == 0 for r in results)
        await host.command("next")
        await asyncio.gather(*(p.expect("question") for p in players))
        await asyncio.gather(*(p.answer(1, 1) for p in players))
        await asyncio.gather(*(p.expect("answer_ack") for p in players))
        await asyncio.gather(*(p.expect("result") for p in players))
        await host.command("next")

        final = await host.results()
        assert final["phase"] == "finished"
        for entry in final["players"]:
            assert sorted(a["question"] for a in entry["answers"]) == ([] if entry["nickname"] == "silent" else [0, 1])
            assert entry["score"] == sum(a["points"] for a in entry["answers"])
        for player_id, ack in acked_before_kill.items():
            first = next(e for e in final["players"] if e["player_id"] == player_id)["answers"][0]
            assert first["response_ms"] == ack["response_ms"]


async def _reconnect(player: Player) -> None:
    player.inbox.insert(0, await reconnect(player, attempts=50))
