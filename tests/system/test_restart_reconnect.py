"""After a restart, every player who reconnects gets the next question: none is left behind on a stale shard."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import httpx
import pytest

from tests.gameclient import Host, quiz, reconnect
from tests.serverproc import ServerProcess

PLAYERS = 20


@pytest.mark.parametrize(
    ("phase", "how"),
    [("reveal", signal.SIGTERM), ("question", signal.SIGKILL)],
    ids=["sigterm-reveal", "sigkill-question"],
)
async def test_every_reconnected_player_gets_the_next_question_after_a_restart(
    start_server: Callable[..., ServerProcess], database_url: str, phase: str, how: signal.Signals
) -> None:
    """A drained stop between questions, and a crash in the middle of one (tests/actors/test_catch_up.py has the
    cluster's case: a shard whose coordinator's events were lost)."""
    server = start_server(database_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(3, time_limit_ms=60_000))
        players = await asyncio.gather(*(host.join(f"r{i:02d}") for i in range(PLAYERS)))
        await asyncio.gather(*(p.connect() for p in players))
        await host.command("start")
        await asyncio.gather(*(p.expect("question") for p in players))
        if phase == "reveal":
            await host.command("close")
            await asyncio.gather(*(p.expect("result") for p in players))

        server.kill(how)
        for player in players:
            await player.close()
            player.inbox.clear()
        server.start()
        welcomes = await asyncio.gather(*(reconnect(p) for p in players))
        assert {w["phase"] for w in welcomes} == {phase}

        if phase == "question":
            await host.command("close")
            await asyncio.gather(*(p.expect("result") for p in players))
        await host.command("next")
        questions = await asyncio.gather(*(p.expect("question") for p in players), return_exceptions=True)
        missed = [p.nickname for p, q in zip(players, questions, strict=True) if not isinstance(q, dict)]
        assert not missed, f"no question 1 for {missed}: {[p.inbox for p in players if p.nickname in missed]}"
        assert all(isinstance(q, dict) and q["index"] == 1 for q in questions)
