"""kill -9 harness: SIGKILL mid-burst, again and again; every acknowledged answer must be stored exactly once.

Each round opens a question, starts a burst of answers, SIGKILLs the server at the first acknowledgement (while
the rest of the burst is still in flight), restarts it on the same database, and checks storage against every ack
the clients saw. Then every player reconnects and sends its answer again — so acked answers are resent and must come
back as duplicates with the original timing — and storage is checked once more before the next round.

The harness proves it can see loss: one such round against `tests/unsafe_server.py`, which acknowledges before
committing, must report lost answers. SQLite only (the PostgreSQL crash path is in test_crash.py).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.gameclient import Host, Player, quiz
from tests.serverproc import ServerProcess

PLAYERS = 30
ROUNDS = 3
Key = tuple[str, int]


@dataclass
class Report:
    """What the harness saw: `lost` acked answers missing from storage, `stored_twice`, `bad_timing`, `bad_score`."""

    acked: dict[Key, int] = field(default_factory=dict)  # (player, question) → response_ms of the first ack
    lost: set[Key] = field(default_factory=set)
    stored_twice: set[Key] = field(default_factory=set)
    bad_timing: set[Key] = field(default_factory=set)
    bad_score: set[str] = field(default_factory=set)
    kills: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stored_twice or self.bad_timing or self.bad_score)


def choice_of(player: Player, question: int) -> int:
    return (int(player.player_id, 16) + question) % 4


async def answer_once(player: Player, question: int, report: Report, first: asyncio.Event) -> None:
    """Send the answer and record its ack; a socket cut by the kill just ends the attempt."""
    try:
        await player.answer(question, choice_of(player, question))
        ack = await player.expect("answer_ack", timeout=20)
    except (ConnectionClosed, OSError, TimeoutError):
        return
    if ack["accepted"]:
        report.acked.setdefault((player.player_id, question), ack["response_ms"])
        first.set()


async def reconnect(player: Player) -> None:
    player.inbox.clear()
    for _ in range(100):
        try:
            await player.connect()
            return
        except (OSError, InvalidHandshake, ConnectionClosed):
            await asyncio.sleep(0.05)  # the server answered healthz; a refused connect is retried briefly
    raise AssertionError(f"{player.nickname} could not reconnect")


async def audit(host: Host, report: Report) -> None:
    """Storage against every ack seen so far: each acked answer present once, with the acked timing."""
    document = await host.results()
    stored: Counter[Key] = Counter()
    timing: dict[Key, int] = {}
    for entry in document["players"]:
        for answer in entry["answers"]:
            key = (entry["player_id"], answer["question"])
            stored[key] += 1
            timing[key] = answer["response_ms"]
        if entry["score"] != sum(a["points"] for a in entry["answers"]):
            report.bad_score.add(entry["player_id"])
    report.stored_twice |= {key for key, count in stored.items() if count > 1}
    for key, response_ms in report.acked.items():
        if key not in stored:
            report.lost.add(key)
        elif timing[key] != response_ms:
            report.bad_timing.add(key)


async def run_harness(server: ServerProcess, rounds: int = ROUNDS) -> Report:
    report = Report()
    async with httpx.AsyncClient(base_url=server.url, timeout=20.0) as http:
        host = await Host.open(http, quiz(rounds, time_limit_ms=300_000))
        players = list(await asyncio.gather(*(host.join(f"k{i:02d}") for i in range(PLAYERS))))
        silent = await host.join("silent")  # connected, never answers: questions close only when the host says
        await asyncio.gather(*(p.connect() for p in [*players, silent]))
        await host.command("start")
        for question in range(rounds):
            await asyncio.gather(*(p.expect("question") for p in players))
            first = asyncio.Event()
            burst = asyncio.gather(*(answer_once(p, question, report, first) for p in players))
            await asyncio.wait_for(first.wait(), 20)
            server.kill(signal.SIGKILL)
            report.kills += 1
            await burst
            server.start()
            await audit(host, report)

            # Everyone comes back and sends the answer again: acked ones are resends and must be duplicates.
            await asyncio.gather(*(reconnect(p) for p in [*players, silent]))
            again = asyncio.Event()
            before = dict(report.acked)
            await asyncio.gather(*(answer_once(p, question, report, again) for p in players))
            assert all((p.player_id, question) in report.acked for p in players), "a resend was not acknowledged"
            for key, response_ms in before.items():
                assert report.acked[key] == response_ms
            await audit(host, report)
            await host.command("close")
            await host.command("next")
    return report


async def test_sigkill_mid_burst_never_loses_or_doubles_an_acked_answer(tmp_path: Path) -> None:
    server = ServerProcess(f"sqlite:///{tmp_path / 'kill.db'}", tmp_path)
    try:
        server.start()
        report = await run_harness(server)
    finally:
        server.stop()
    print(f"safe: {report.kills} kills, {len(report.acked)} acks, lost {len(report.lost)}")
    assert report.kills == ROUNDS
    assert len(report.acked) == PLAYERS * ROUNDS
    assert report.clean, report


async def test_harness_detects_loss_when_acks_precede_commits(tmp_path: Path) -> None:
    """Negative control: against a server that acks before it commits, the same harness must report loss."""
    server = ServerProcess(f"sqlite:///{tmp_path / 'unsafe.db'}", tmp_path, module="tests.unsafe_server")
    try:
        server.start()
        report = await run_harness(server, rounds=1)  # every kill after an early ack loses: one round shows it
    finally:
        server.stop()
    print(f"unsafe: {report.kills} kills, {len(report.acked)} acks, lost {len(report.lost)}")
    assert report.kills == 1
    assert report.lost, "the harness did not notice acknowledged answers that were never stored"
