"""The rooms scenario: R classrooms of P players each, all playing at once (`quizroom-bench rooms`).

Why its own scenario: the common deployment is not one keynote room but hundreds of classrooms of 20–40 players
at the same time (a school, a district, a conference with parallel sessions). What grows there is the number of
rooms, and with it every per-room cost — timers, feeds, heartbeat queries, reveals — which one big room never
shows.

How it plays: every room gets its own host socket (in this process) and its own crowd of players, held whole by
one load process (room i by worker i mod procs). The hosts start within `start_spread_ms` of each other; each room
then runs its own game: for each question, its players answer at random moments over `spread_ms`, the room closes
by itself once everyone has answered (SPEC §4), the host pauses `gap_ms` at the results and moves on; after the last
question it finishes the game. Measured per room: fan-out (host command sent → each player's `question`), answer →
ack, and the reveal (the room's last ack → its last player's `result`: once the last answer is stored, how long
until the whole class sees where it stands). The exactly-once check runs on every room's results.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from . import exactly_once
from .control import Control, RoomInfo, make_quiz
from .pool import HostSocket
from .scenarios import (
    ServerMonitor,
    Session,
    ack_summary,
    answer_counts,
    collect_errors,
    join_figures,
    lag_metrics,
    without_cdf,
)
from .stats import ns_to_ms, summarize
from .worker import AnswerRecord

#: Rooms set up (created, host socket opened, crowd joined) at once, per load process: enough to keep the server
#: busy, few enough that one room's joins do not wait behind hundreds of others.
SETUP_IN_FLIGHT = 8
JOIN_CONCURRENCY = 16  # joins in flight within one room


def crowd_of(room: int) -> str:
    return f"room{room}"


def merge_checks(checks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Many rooms' exactly-once checks as one: PASS only if every room passed; counts summed."""
    ok = all(c["ok"] for c in checks)
    merged: dict[str, Any] = {"ok": ok, "verdict": "PASS" if ok else "FAIL", "rooms": len(checks)}
    for key in (
        "acked",
        "stored",
        "sent",
        "missing",
        "doubled",
        "phantom",
        "stored_though_rejected",
        "unacked_stored",
        "response_ms_mismatch",
        "score_mismatch",
    ):
        merged[key] = sum(int(c.get(key) or 0) for c in checks)
    merged["problems"] = [f"room {i}: {p}" for i, c in enumerate(checks) for p in c["problems"]][:20]
    merged["examples"] = [e for c in checks for e in c.get("examples", [])][: exactly_once.EXAMPLES]
    merged["rooms_failed"] = sum(1 for c in checks if not c["ok"])
    return merged


class RoomPlay:
    """One room of the run: its host socket, its load process, and what it measured."""

    def __init__(self, index: int, info: RoomInfo, host: HostSocket, worker: int) -> None:
        self.index, self.info, self.host, self.worker = index, info, host, worker
        self.fanout_ms: list[float] = []
        self.fanout_last_ms: list[float] = []  # per question: command sent → the last player's copy
        self.reveal_ms: list[float] = []  # per question: the last ack → the last player's `result`
        self.records: list[AnswerRecord] = []
        self.no_question = 0
        self.no_result = 0
        self.finished = False
        self.errors: Counter[str] = Counter()


async def run_rooms(
    s: Session,
    name: str,
    rooms: int,
    players: int,
    questions: int,
    spread_ms: int,
    gap_ms: int,
    start_spread_ms: int = 1000,
) -> dict[str, Any]:
    """R rooms × P players, five questions each by default, all at once (see the module docstring)."""
    prefix = s.begin(f"rooms {name} R={rooms} P={players}")
    started = time.monotonic()
    n = rooms * players
    run: dict[str, Any] = {
        "scenario": "rooms",
        "target": name,
        "n": n,
        "rooms": rooms,
        "players_per_room": players,
        "questions": questions,
        "expected_answers": n * questions,
        "spread_ms": spread_ms,
        "gap_ms": gap_ms,
    }
    # A question that loses an answer waits for its deadline: long enough never to cut the window short.
    quiz = make_quiz(questions, spread_ms + 10_000, title="quizroom-bench rooms")
    async with s.target(name) as target, ServerMonitor(target, s.pool) as monitor:
        control = Control(target.url, target.flavour, connections=16, admin_token=s.opts.admin_token)
        await s.pool.all("configure", base_url=target.url, flavour=target.flavour)
        plays: list[RoomPlay] = []
        try:
            s.phase = "joining"
            join = await _set_up(s, control, quiz, rooms, players, prefix, plays)
            run["join"] = join
            monitor.mark("joined")
            probe = plays[0].host if plays else None
            if probe is not None:
                probe.start_probe()  # one host's ping RTT: an upper bound on the server's loop lag
            s.phase = "playing"
            rng = random.Random(s.opts.seed)
            began = time.monotonic()
            await asyncio.gather(
                *(
                    _play(s, play, questions, spread_ms, gap_ms, rng.uniform(0, start_spread_ms) / 1000, began)
                    for play in plays
                )
            )
            run["play_s"] = round(time.monotonic() - began, 2)
            run["answers_per_s"] = round(run["expected_answers"] / run["play_s"], 1) if run["play_s"] else None
            rtt = probe.stop_probe() if probe is not None else []
            s.phase = "checking"
            await _measure(s, run, control, plays, rtt)
        finally:
            for play in plays:
                play.host.close()
            for room in range(rooms):
                with suppress(Exception):
                    await s.pool.call(room % s.pool.procs, "close", crowd=crowd_of(room))
            await control.aclose()
    run["server"] = monitor.result(run.get("join", {}).get("ok", 0))
    run["elapsed_s"] = round(time.monotonic() - started, 2)
    return run


async def _set_up(
    s: Session,
    control: Control,
    quiz: dict[str, Any],
    rooms: int,
    players: int,
    prefix: str,
    plays: list[RoomPlay],
) -> dict[str, Any]:
    """Create every room, open its host socket and seat its crowd; the join figures over all rooms."""
    gate = asyncio.Semaphore(SETUP_IN_FLIGHT * s.pool.procs)
    replies: list[dict[str, Any]] = []

    async def one(room: int) -> None:
        async with gate:
            info = await control.create_room(quiz)
            host = HostSocket(info, control, s.opts.commands == "http")
            await host.open(s.opts.timeout)
            worker = room % s.pool.procs
            plays.append(RoomPlay(room, info, host, worker))
            reply = await s.pool.call(
                worker,
                "join",
                crowd=crowd_of(room),
                pin=info.pin,
                nicknames=[f"{prefix}{room}-{j}" for j in range(players)],
                concurrency=JOIN_CONCURRENCY,
                wait_s=s.opts.timeout,
            )
            replies.append(reply)

    await asyncio.gather(*(one(room) for room in range(rooms)))
    plays.sort(key=lambda p: p.index)
    return join_figures(replies)


async def _play(
    s: Session, play: RoomPlay, questions: int, spread_ms: int, gap_ms: int, delay_s: float, began: float
) -> None:
    """One room's game, from its host's first `start` to `finished`."""
    await asyncio.sleep(max(0.0, began + delay_s - time.monotonic()))
    crowd, worker, host = crowd_of(play.index), play.worker, play.host
    for index in range(questions):
        await s.pool.call(
            worker,
            "arm",
            crowd=crowd,
            index=index,
            spread_ms=spread_ms,
            drop_before=0,
            drop_after=0,
            seed=s.opts.seed * 100_000 + play.index * 100 + index,
            wait_s=s.opts.timeout,
        )
        command = "start" if index == 0 else "next"
        sent_ns, reply = await host.command(command, wait_s=s.opts.timeout)
        if reply.get("type") == "error":
            play.errors[f"host:{command}:{reply.get('code')}"] += 1
        played = await s.pool.call(worker, "harvest", index=index, crowd=crowd, results_wait_s=s.opts.timeout)
        received = played["recv_ns"]
        play.fanout_ms += [(t - sent_ns) / 1e6 for t in received]
        if received:
            play.fanout_last_ms.append((max(received) - sent_ns) / 1e6)
        answers: list[AnswerRecord] = played["answers"]
        play.records += answers
        play.no_question += sum(1 for a in answers if not a.sent)
        play.no_result += played["no_result"]
        acks = [a.done_ns for a in answers if a.outcome == "ack"]
        if acks and played["result_ns"]:
            play.reveal_ms.append((max(played["result_ns"]) - max(acks)) / 1e6)
        await asyncio.sleep(gap_ms / 1000)  # the class looks at the results
    _, reply = await host.command("next", wait_s=s.opts.timeout)
    play.finished = reply.get("type") == "state" and reply.get("phase") == "finished"
    if not play.finished:
        play.errors[f"host:finish:{reply.get('code') or reply.get('phase')}"] += 1


async def _measure(
    s: Session, run: dict[str, Any], control: Control, plays: Sequence[RoomPlay], rtt_ns: Sequence[int]
) -> None:
    records = [r for p in plays for r in p.records]
    run["fanout"] = summarize([x for p in plays for x in p.fanout_ms], None)
    run["fanout"]["until_last"] = run["fanout"]["max"]
    run["fanout_last_per_question"] = without_cdf(summarize([x for p in plays for x in p.fanout_last_ms]))
    run["ack"] = ack_summary(records)
    run["reveal"] = without_cdf(summarize([x for p in plays for x in p.reveal_ms]))
    run["answers"] = answer_counts(records)
    run["success_rate"] = round(run["answers"]["accepted"] / max(1, run["expected_answers"]), 4)
    extra: Counter[str] = Counter()
    for p in plays:
        extra.update(p.errors)
        extra["no_question"] += p.no_question
        extra["no_result"] += p.no_result
    run["errors"] = await collect_errors(s, records, extra)
    finished = await asyncio.gather(
        *(s.pool.call(p.worker, "finished", crowd=crowd_of(p.index), wait_s=5.0) for p in plays)
    )
    run["rooms_finished"] = sum(p.finished for p in plays)
    run["players_finished"] = sum(f["finished"] for f in finished)
    run["players_unfinished"] = sum(f["unfinished"] for f in finished)
    gate = asyncio.Semaphore(8)

    async def check(play: RoomPlay) -> dict[str, Any]:
        async with gate:
            return exactly_once.check(await control.results(play.info), play.records)

    run["exactly_once"] = merge_checks(await asyncio.gather(*(check(p) for p in plays)))
    run["loop_lag"] = {
        "ping_rtt_ms": without_cdf(summarize(ns_to_ms(rtt_ns))),
        "server_metrics": lag_metrics(await control.metrics()),
    }
