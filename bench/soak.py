"""The soak scenario: idle sockets in one room while another room plays question after question, for T minutes.

What it watches is drift, not speed: the server's RSS over time (a leak shows as growth), its event-loop lag while
mostly idle, and that every active room still passes the exactly-once check at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
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
    lag_metrics,
    without_cdf,
)
from .stats import ns_to_ms, summarize
from .worker import AnswerRecord

#: How long the server is watched with only the idle sockets connected, before the active rooms start (at most; a
#: sixth of a short soak).
IDLE_SAMPLE_S = 10.0


async def _idle_cost(monitor: ServerMonitor, sockets: int, seconds: float) -> dict[str, Any] | None:
    """The server's CPU while only idle sockets are connected (their keep-alive pings, the server's timers): ms of
    CPU per second, and per 1,000 sockets. None for a server the bench did not start."""
    monitor.mark("idle_from")
    await asyncio.sleep(seconds)
    monitor.mark("idle_to")
    start, end = monitor.marks.get("idle_from"), monitor.marks.get("idle_to")
    if start is None or end is None:
        return None
    ms_per_s = (end.cpu_s - start.cpu_s) * 1000 / seconds
    return {
        "seconds": seconds,
        "sockets": sockets,
        "cpu_ms_per_s": round(ms_per_s, 1),
        "cpu_ms_per_s_per_1000_sockets": round(ms_per_s * 1000 / sockets, 2) if sockets else None,
    }


async def run_soak(s: Session, name: str, idle: int, active: int, minutes: float, spread_ms: int) -> dict[str, Any]:
    """Idle sockets in one room while another plays question after question; memory and lag over time."""
    prefix = s.begin(f"soak {name} idle={idle} active={active}")
    started = time.monotonic()
    run: dict[str, Any] = {
        "scenario": "soak",
        "target": name,
        "n": idle + active,
        "idle": idle,
        "active": active,
        "minutes": minutes,
    }
    series: list[dict[str, Any]] = []
    async with s.target(name) as target, ServerMonitor(target, s.pool) as monitor:
        control = Control(target.url, target.flavour, connections=4, admin_token=s.opts.admin_token)
        await s.pool.all("configure", base_url=target.url, flavour=target.flavour)
        lobby = await control.create_room(make_quiz(1, 20_000))
        idle_join = await _join_named(s, lobby, idle, prefix + "i", "idle")
        lobby_host = HostSocket(lobby, control, via_http=True)
        await lobby_host.open(s.opts.timeout)
        lobby_host.start_probe()
        monitor.mark("joined")
        run["idle_cost"] = await _idle_cost(monitor, idle, min(IDLE_SAMPLE_S, max(1.0, minutes * 10)))
        deadline = time.monotonic() + minutes * 60
        rooms_played: list[dict[str, Any]] = []

        async def record() -> None:
            while True:
                monitor.mark("now")
                now = monitor.marks.get("now")
                series.append(
                    {
                        "t_s": round(time.monotonic() - started, 1),
                        "rss_kib": now.rss_kib if now else None,
                        "cpu_s": now.cpu_s if now else None,
                    }
                )
                await asyncio.sleep(max(1.0, minutes * 60 / 60))

        recorder = asyncio.create_task(record())
        while time.monotonic() < deadline:
            game = await _soak_room(s, control, active, f"{prefix}a{len(rooms_played)}-", deadline, spread_ms)
            rooms_played.append(game)
        recorder.cancel()
        rtt = lobby_host.stop_probe()
        lobby_host.close()
        await s.pool.all("close", crowd="idle")
        run["join"] = idle_join
        run["rooms"] = rooms_played
        run["series"] = series
        checks = [g["exactly_once"] for g in rooms_played]
        run["exactly_once"] = {
            "ok": all(c["ok"] for c in checks),
            "verdict": "PASS" if all(c["ok"] for c in checks) else "FAIL",
            "problems": [p for c in checks for p in c["problems"]],
            "acked": sum(c["acked"] for c in checks),
            "stored": sum(c["stored"] for c in checks),
        }
        if series and series[0]["rss_kib"] is not None and series[-1]["rss_kib"] is not None:
            run["rss_growth_kib"] = series[-1]["rss_kib"] - series[0]["rss_kib"]
        run["errors"] = await collect_errors(s, [], Counter())
        run["loop_lag"] = {
            "ping_rtt_ms": without_cdf(summarize(ns_to_ms(rtt))),
            "server_metrics": lag_metrics(await control.metrics()),
        }
        await control.aclose()
    run["server"] = monitor.result(idle)
    run["elapsed_s"] = round(time.monotonic() - started, 2)
    return run


async def _join_named(s: Session, room: RoomInfo, n: int, prefix: str, crowd: str) -> dict[str, Any]:
    replies = await s.pool.each(
        "join",
        [
            {
                "crowd": crowd,
                "pin": room.pin,
                "nicknames": [f"{prefix}{i}" for i in part],
                "concurrency": s.opts.concurrency,
                "wait_s": s.opts.timeout,
            }
            for part in s.pool.split(n)
        ],
    )
    return {"ok": sum(r["ok"] for r in replies)}


async def _soak_room(
    s: Session, control: Control, n: int, prefix: str, deadline: float, spread_ms: int
) -> dict[str, Any]:
    """One active room of the soak: questions until the quiz or the time runs out, then the exactly-once check."""
    room = await control.create_room(make_quiz(200, 5_000))
    host = HostSocket(room, control, s.opts.commands == "http")
    await host.open(s.opts.timeout)
    await _join_named(s, room, n, prefix, "active")
    records: list[AnswerRecord] = []
    index = 0
    while index < 200 and time.monotonic() < deadline:
        s.phase = f"soak q{index + 1}"
        await s.pool.each(
            "arm",
            [
                {
                    "crowd": "active",
                    "index": index,
                    "spread_ms": spread_ms,
                    "drop_before": 0,
                    "drop_after": 0,
                    "seed": index * 10 + w,
                    "wait_s": s.opts.timeout,
                }
                for w in range(s.pool.procs)
            ],
        )
        await host.command("start" if index == 0 else "next")
        records += [r for p in await s.pool.all("harvest", index=index, crowd="active") for r in p["answers"]]
        await host.command("close")
        index += 1
    check = exactly_once.check(await control.results(room), records)
    with suppress(Exception):
        await host.command("end", wait_s=10)
    host.close()
    await s.pool.all("close", crowd="active")
    return {
        "pin": room.pin,
        "questions": index,
        "answers": answer_counts(records),
        "ack": without_cdf(ack_summary(records)),
        "exactly_once": check,
    }
