"""Pauses on real processes (SIGSTOP past the lease TTL): a deposed owner neither acks, nor rolls a room back.

Two server processes on one PostgreSQL database, a room with a shard on each. One worker is frozen mid-question
long enough for the other to take over what it owned, then thawed. The checker judges only from what clients
received and what the database holds (`check`): every `answer_ack` names a stored row with the same timing, no
ack arrives after its question's result, no socket sees `seq` go back or two different results for one question,
and every score a player is shown equals the sum of their stored answers.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from tests.delayproxy import DelayProxy
from tests.gameclient import quiz
from tests.serverproc import ServerProcess
from tests.system.test_sharding import (
    Phone,
    choice_for,
    gather_limited,
    play_question,
    start_workers,
    stored_standings,
    wait_until,
)

TTL = ("--cluster-ttl-s", "1", "--cluster-heartbeat-s", "0.25")
PER_SHARD, PLAYERS = 10, 20


async def stored_answers(pg: str, room_id: str) -> dict[tuple[int, str], int]:
    """(question, player_id) → the stored response_ms."""
    conn = await asyncpg.connect(pg)
    try:
        rows = await conn.fetch("SELECT question, player_id, response_ms FROM answers WHERE room_id = $1", room_id)
    finally:
        await conn.close()
    return {(r["question"], r["player_id"]): r["response_ms"] for r in rows}


async def room_state(pg: str, room_id: str) -> tuple[str, int | None, int]:
    conn = await asyncpg.connect(pg)
    try:
        row = await conn.fetchrow("SELECT phase, question_index, seq FROM rooms WHERE room_id = $1", room_id)
    finally:
        await conn.close()
    assert row is not None
    return row["phase"], row["question_index"], row["seq"]


async def check(phones: list[Phone], pg: str, room_id: str) -> None:
    """The fault checker: only what the clients saw and what the database holds."""
    stored = await stored_answers(pg, room_id)
    standings = await stored_standings(pg, room_id)
    for phone in phones:
        seqs = [m["seq"] for m in phone.seen if "seq" in m]
        assert seqs == sorted(seqs), f"{phone.nickname} saw seq go back: {seqs}"
        results: dict[int, dict[str, Any]] = {}
        for message in phone.seen:
            kind = message["type"]
            if kind == "answer_ack":
                key = (message["question"], phone.player_id)
                assert key in stored, f"{phone.nickname} was acked an answer that is not stored: {message}"
                assert message["response_ms"] == stored[key], f"{phone.nickname}: ack timing differs from the row"
                assert message["question"] not in results, f"{phone.nickname} was acked after the result"
            elif kind == "result":
                earlier = results.setdefault(message["question"], message)
                assert earlier == message, f"{phone.nickname} saw two results for question {message['question']}"
            elif kind == "finished":
                assert message["score"] == standings[phone.player_id][0], f"{phone.nickname}: final score"
        last = max(results) if results else None
        if last is not None and not any(m["type"] == "finished" for m in phone.seen):
            assert results[last]["score"] == standings[phone.player_id][0], f"{phone.nickname}: shown score"


async def join_all(http: httpx.AsyncClient, pin: str) -> list[Phone]:
    phones = [Phone(http, pin, f"f{i:02d}") for i in range(PLAYERS)]
    for phone in phones:  # in order: ten to a shard, so two shards, one per worker
        await phone.join()
    await gather_limited([p.connect() for p in phones])
    return phones


async def finish(http: httpx.AsyncClient, pin: str, headers: dict[str, str], phones: list[Phone]) -> None:
    """Question 1 for everyone (it closes itself once all answered), then the podium."""
    assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
    await play_question(phones, 1)
    await gather_limited([p.expect("result") for p in phones])
    assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
    await gather_limited([p.expect("finished") for p in phones])


async def test_a_paused_shard_acks_nothing_after_the_close(tmp_path: Path, pg_url: str) -> None:
    """The shard's worker is frozen while its players send answers; the coordinator moves the shard and the host
    closes the question. Thawed, the stale copy finds its placement fenced: it stores and acks none of the answers
    that waited in its buffers, lets its sockets go (4421), and its players play on at the shard's new home."""
    servers = await start_workers(pg_url, tmp_path, 2, *TTL, "--players-per-shard", str(PER_SHARD))
    home, paused = servers
    try:
        async with httpx.AsyncClient(base_url=home.url, timeout=30.0) as http:
            created = (await http.post("/api/rooms", json={"quiz": quiz(2, time_limit_ms=60_000)})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            phones = await join_all(http, pin)
            frozen = [p for p in phones if f":{paused.port}/" in p.ws_url]
            assert len(frozen) == PER_SHARD
            assert (await http.post(f"/api/rooms/{pin}/start", headers=headers)).status_code == 200
            await gather_limited([p.expect("question") for p in phones])
            early = [p for p in phones if p not in frozen] + frozen[:3]
            await gather_limited([p.answer(0, choice_for(p, 0)) for p in early])

            pause(paused, signal.SIGSTOP)
            try:
                for phone in frozen[3:]:  # into the frozen worker's socket buffers
                    assert phone.ws is not None
                    await phone.ws.send(orjson.dumps({"type": "answer", "question": 0, "choice": 1}).decode())

                async def moved() -> bool:
                    return "shard_moved" in home.log_path.read_text()

                await wait_until(moved, time.monotonic() + 20, "the shard to move off the frozen worker")
                closed = await http.post(f"/api/rooms/{pin}/close", headers=headers)
                assert closed.status_code == 200 and closed.json()["phase"] == "reveal"
                await gather_limited([p.expect("result") for p in phones if p not in frozen])
            finally:
                pause(paused, signal.SIGCONT)

            for phone in frozen:
                assert await phone.expect_close(timeout=20) == 4421
            assert not any(m["type"] == "answer_ack" for p in frozen[3:] for m in p.seen), "a fenced shard acked"
            await gather_limited([p.connect() for p in frozen])
            assert all(f":{home.port}/" in p.ws_url for p in frozen)
            stored = await stored_answers(pg_url, created["room_id"])
            assert {k for k in stored if k[0] == 0} == {(0, p.player_id) for p in early}
            await finish(http, pin, headers, phones)
            await check(phones, pg_url, created["room_id"])
            await gather_limited([p.close() for p in phones])
    finally:
        for server in servers:
            server.kill()


async def test_a_paused_coordinator_cannot_roll_its_room_back(tmp_path: Path, pg_url: str) -> None:
    """The coordinator's worker is frozen mid-question past its deadline; the other worker takes the room over,
    closes the question on time and the host opens the next. Thawed, the old coordinator's overdue timer fires:
    it must neither write its older phase (seq going back) nor send a second result for the question."""
    servers = await start_workers(pg_url, tmp_path, 2, *TTL, "--players-per-shard", str(PER_SHARD))
    paused, taker = servers
    try:
        async with httpx.AsyncClient(base_url=taker.url, timeout=30.0) as http:
            body = quiz(2, time_limit_ms=60_000)
            body["questions"][0]["time_limit_ms"] = 5_000  # the shortest SPEC allows
            created = (await http.post(f"{paused.url}/api/rooms", json={"quiz": body})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            room_id = created["room_id"]
            phones = await join_all(http, pin)
            frozen = [p for p in phones if f":{paused.port}/" in p.ws_url]
            assert len(frozen) == PER_SHARD
            started = await http.post(f"{paused.url}/api/rooms/{pin}/start", headers=headers)
            deadline_ms = started.json()["deadline_ms"]
            await gather_limited([p.expect("question") for p in phones])
            await gather_limited([p.answer(0, choice_for(p, 0)) for p in phones[::2]])

            pause(paused, signal.SIGSTOP)
            try:

                async def revealed() -> bool:
                    response = await http.get(f"/api/rooms/{pin}", headers=headers, timeout=3.0)
                    return response.status_code == 200 and response.json()["phase"] == "reveal"

                await wait_until(revealed, time.monotonic() + 30, "the taker to close question 0")
                late_s = time.time() - deadline_ms / 1000
                assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
                opened = await room_state(pg_url, room_id)
                assert opened[:2] == ("question", 1)
            finally:
                pause(paused, signal.SIGCONT)

            # The thawed coordinator steps down; meanwhile, and after, the stored room never goes back.
            seen = [opened]

            async def stepped_down() -> bool:
                seen.append(await room_state(pg_url, room_id))
                log = paused.log_path.read_text()
                return "lease_lost" in log or "coordinator_fenced" in log

            await wait_until(stepped_down, time.monotonic() + 20, "the thawed coordinator to step down")
            seen.append(await room_state(pg_url, room_id))
            assert all(state == opened for state in seen), f"the room moved back: {seen}"
            for phone in frozen:
                assert await phone.expect_close(timeout=20) == 4421
            await gather_limited([p.connect() for p in frozen])
            await gather_limited([p.answer(1, choice_for(p, 1)) for p in phones])
            await gather_limited([result_of(p, 1) for p in phones])
            assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
            await gather_limited([p.expect("finished") for p in phones])
            await check(phones, pg_url, room_id)
            print(f"question 0 closed {late_s:.2f} s after its deadline (lease TTL 1 s)")
            assert late_s <= 1.0 + 1.0 + 1.0, "closed later than the deadline plus the lease time plus 1 s"
            await gather_limited([p.close() for p in phones])
    finally:
        for server in servers:
            server.kill()


async def result_of(phone: Phone, question: int) -> dict[str, Any]:
    """The player's result for `question`, skipping earlier ones still queued."""
    while True:
        message = await phone.expect("result")
        if message["question"] == question:
            return message


async def test_ten_seconds_without_notifications_lose_no_event(tmp_path: Path, pg_url: str) -> None:
    """Every worker's listening connection is killed again and again for 10 s while a question is played, closed
    and revealed and the next one opened: every event still reaches every player (read from the message table), in
    order and once."""
    servers = await start_workers(pg_url, tmp_path, 2, *TTL, "--players-per-shard", str(PER_SHARD))
    home = servers[0]
    try:
        async with httpx.AsyncClient(base_url=home.url, timeout=30.0) as http:
            created = (await http.post("/api/rooms", json={"quiz": quiz(3, time_limit_ms=60_000)})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            phones = await join_all(http, pin)
            assert len({p.ws_url.split("/ws/")[0] for p in phones}) == 2, "a shard on each worker"
            chaos = asyncio.create_task(kill_listeners(pg_url, seconds=10.0))
            try:
                assert (await http.post(f"/api/rooms/{pin}/start", headers=headers)).status_code == 200
                await play_question(phones, 0)
                await gather_limited([result_of(p, 0) for p in phones])
                assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
                await play_question(phones, 1)
                await gather_limited([result_of(p, 1) for p in phones])
                killed = await chaos
            finally:
                chaos.cancel()
            assert killed >= 10, f"only {killed} listener connections were killed"
            assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
            await play_question(phones, 2)
            await gather_limited([result_of(p, 2) for p in phones])
            assert (await http.post(f"/api/rooms/{pin}/next", headers=headers)).status_code == 200
            await gather_limited([p.expect("finished") for p in phones])
            await check(phones, pg_url, created["room_id"])
            for phone in phones:
                assert [m["question"] for m in phone.seen if m["type"] == "result"] == [0, 1, 2]
            await gather_limited([p.close() for p in phones])
    finally:
        for server in servers:
            server.kill()


async def kill_listeners(pg: str, *, seconds: float) -> int:
    """Terminate every worker's listening connection, over and over, for `seconds`; how many were killed."""
    killed = 0
    conn = await asyncpg.connect(pg)
    try:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'quizroom-listen-%' AND datname = current_database()"
            )
            killed += sum(1 for row in rows if row[0])
            await asyncio.sleep(0.05)  # the pace of the fault, not a wait for a condition
    finally:
        await conn.close()
    return killed


UNDER_LATENCY_S = 24.0  # twelve lease TTLs: a lease that 200 ms could cost would be lost many times over


async def test_200_ms_to_the_database_costs_no_lease(tmp_path: Path, pg_url: str) -> None:
    """One server reaches PostgreSQL through a proxy adding 100 ms each way (the default lease timings: TTL 2 s,
    heartbeat 0.5 s), and coordinates a room with a shard on each server, for at least 24 s of play (twelve TTLs):
    no lease or shard changes hands, no coordinator holds back its output, and every answer is acked in time."""
    proxy = await DelayProxy("127.0.0.1", 5432, 0.1).start()
    far_url = pg_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    assert far_url != pg_url
    near = ServerProcess(pg_url, tmp_path, "--players-per-shard", str(PER_SHARD)).start()
    far = ServerProcess(far_url, tmp_path, "--players-per-shard", str(PER_SHARD))
    began = time.monotonic()
    try:
        await asyncio.to_thread(far.start, 60.0)  # the proxy runs in this loop: start must not block it
        async with httpx.AsyncClient(base_url=far.url, timeout=30.0) as http:
            created = (await http.post("/api/rooms", json={"quiz": quiz(12, time_limit_ms=20_000)})).json()
            pin, headers = created["pin"], {"Authorization": f"Bearer {created['host_token']}"}
            phones = [Phone(http, pin, f"d{i:02d}") for i in range(PLAYERS)]
            for wave in (phones[:PER_SHARD], phones[PER_SHARD:]):  # a shard's worth at a time: one placement each
                await gather_limited([p.join() for p in wave])
            await gather_limited([p.connect() for p in phones])
            assert len({p.ws_url.split("/ws/")[0] for p in phones}) == 2, "a shard on each server"
            played = 0
            while played < 12 and (played < 2 or time.monotonic() - began < UNDER_LATENCY_S):
                command = "start" if played == 0 else "next"
                assert (await http.post(f"/api/rooms/{pin}/{command}", headers=headers)).status_code == 200
                acks = await play_question(phones, played)
                assert all(a["accepted"] and not a["duplicate"] for a in acks.values())
                await gather_limited([result_of(p, played) for p in phones])
                played += 1
            assert time.monotonic() - began >= UNDER_LATENCY_S, (
                f"only {played} questions in {time.monotonic() - began:.0f} s"
            )
            ended = await http.post(f"/api/rooms/{pin}/end", headers=headers)
            assert ended.status_code == 200, ended.text
            await gather_limited([p.expect("finished") for p in phones])
            await check(phones, pg_url, created["room_id"])
            assert not any(m["type"] == "error" for p in phones for m in p.seen)
            await gather_limited([p.close() for p in phones])
        under_latency_s = time.monotonic() - began
        for server in (near, far):
            log = server.log_path.read_text()
            for event in ("lease_lost", "coordinator_fenced", "shard_moved", "shard_fenced", "tenure_lapsed_holding"):
                assert event not in log, f"{event} on the {'far' if server is far else 'near'} server"
            assert "room_resumed" not in log, "the room was taken over"
        print(f"{played} questions with 200 ms to the database: {under_latency_s:.1f} s, no lease moved")
    finally:
        for server in (near, far):
            if server.proc is not None:
                server.kill()
        await proxy.stop()


def pause(server: ServerProcess, sig: signal.Signals) -> None:
    assert server.proc is not None
    server.proc.send_signal(sig)
