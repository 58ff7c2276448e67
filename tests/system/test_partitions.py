"""Three servers on three hosts (network namespaces), one PostgreSQL: partitions, pauses and a seeded schedule.

Each server runs in its own namespace and reaches the database through a forwarder on the bridge, so iptables
inside one namespace cuts that server from PostgreSQL while its players can still reach it (`tests.netns`). The
checker (`tests.system.test_fencing_faults.check`) judges only from what clients received and what the database
holds: every ack names a stored row with its timing, no ack after its question's result, `seq` never going back,
one result per question, every shown score the sum of the player's stored answers.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.delayproxy import DelayProxy
from tests.gameclient import quiz
from tests.netns import Hosts
from tests.serverproc import ServerProcess
from tests.system.test_fencing_faults import check, result_of
from tests.system.test_sharding import Phone, choice_for, gather_limited, wait_until

# The servers' own defaults. Half of them (1 s) made a server that seated 3,000 players on a shared 2-core machine
# miss a lease or two before any fault began (its shards moved, its phones waited on a question that went
# elsewhere), so the matrix tested the machine's load instead of its faults.
TTL_S = 2.0
FLAGS = ("--cluster-ttl-s", str(TTL_S), "--cluster-heartbeat-s", str(TTL_S / 4))
PORT = 8000


class Cluster:
    """Three hosts, a forwarder to PostgreSQL on the bridge, a server on each host."""

    def __init__(self, hosts: Hosts, proxy: DelayProxy, servers: list[ServerProcess], per_shard: int) -> None:
        self.per_shard = per_shard
        self.hosts = hosts
        self.proxy = proxy
        self.servers = servers

    def index_of(self, url: str) -> int:
        return next(i for i, s in enumerate(self.servers) if url.startswith(s.ws) or url.startswith(s.url))

    def cut(self, i: int) -> None:
        self.hosts.cut(i, self.proxy.port)

    def heal(self, i: int) -> None:
        self.hosts.heal(i, self.proxy.port)

    def signal(self, i: int, sig: signal.Signals) -> None:
        proc = self.servers[i].proc
        assert proc is not None
        proc.send_signal(sig)

    def log(self, i: int) -> str:
        return self.servers[i].log_path.read_text(errors="replace")


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    assert os.geteuid() == 0, "network namespaces need root (CI runs as root)"
    per_shard = getattr(request, "param", 500)
    hosts = Hosts(3).up()
    proxy = await DelayProxy("127.0.0.1", 5432, 0.0, host=hosts.gateway).start()
    database = pg_url.replace("@127.0.0.1:5432/", f"@{hosts.gateway}:{proxy.port}/")
    servers = [
        ServerProcess(database, tmp_path, *FLAGS, "--players-per-shard", str(per_shard), port=PORT, host=a, netns=n)
        for n, a in zip(hosts.names, hosts.addresses, strict=True)
    ]
    try:
        for server in servers:
            await asyncio.to_thread(server.start, 30.0)  # the forwarder runs in this loop: do not block it
        yield Cluster(hosts, proxy, servers, per_shard)
    finally:
        for server in servers:
            if server.proc is not None:
                server.kill()  # SIGKILL: a stopped process dies too
        await proxy.stop()
        hosts.down()


async def seat(
    cluster: Cluster, players: int, questions: int, time_limit_ms: int
) -> tuple[list[Phone], dict[str, Any]]:
    """A room coordinated by server 0, `players` joined there and connected to their shards' servers."""
    http = httpx.AsyncClient(base_url=cluster.servers[0].url, timeout=30.0)
    created = (await http.post("/api/rooms", json={"quiz": quiz(questions, time_limit_ms=time_limit_ms)})).json()
    phones = [Phone(http, created["pin"], f"n{i:05d}") for i in range(players)]
    for start in range(0, players, cluster.per_shard):  # a shard's worth at a time: placements never race
        await gather_limited([p.join() for p in phones[start : start + cluster.per_shard]], limit=100)
    await gather_limited([p.connect() for p in phones], limit=200)
    spread = Counter(cluster.index_of(p.ws_url) for p in phones)
    assert set(spread) == {0, 1, 2}, f"shards on every server: {spread}"
    return phones, created


def host_client(cluster: Cluster, i: int, created: dict[str, Any]) -> tuple[httpx.AsyncClient, dict[str, str], str]:
    http = httpx.AsyncClient(base_url=cluster.servers[i].url, timeout=30.0)
    return http, {"Authorization": f"Bearer {created['host_token']}"}, created["pin"]


@pytest.mark.parametrize("cluster", [200], indirect=True)  # six shards of 200: two on every host
@pytest.mark.parametrize("fault", ["cut", "pause", "kill"])
@pytest.mark.parametrize("victim", ["coordinator", "shard"])
async def test_a_server_cut_off_or_paused_loses_nothing(cluster: Cluster, pg_url: str, victim: str, fault: str) -> None:
    """1,200 players over six shards on three hosts; mid-question one host is cut from PostgreSQL (iptables) or
    frozen (SIGSTOP) for 2.5 × the lease TTL, then healed, or killed (SIGKILL). The others take over what it owned;
    its players get 4421 (or lose their sockets) and resume; nothing it took meanwhile is acked; the question
    closes once; the game plays on to the podium."""
    phones, created = await seat(cluster, 1_200, 2, 120_000)  # the host closes it: the limit is only a bound
    cut = 0 if victim == "coordinator" else 1
    live = 2
    http, headers, pin = host_client(cluster, live, created)
    for phone in phones:
        phone.http = http  # resume through a server that stays connected
    assert (await http.post(f"/api/rooms/{pin}/start", headers=headers)).status_code == 200
    await gather_limited([p.expect("question") for p in phones], limit=len(phones))
    early = phones[::2]
    await gather_limited([p.answer(0, choice_for(p, 0)) for p in early], limit=len(early))

    if fault == "cut":
        cluster.cut(cut)
    else:
        cluster.signal(cut, signal.SIGSTOP if fault == "pause" else signal.SIGKILL)
    try:
        stranded = [p for p in phones[1::2] if cluster.index_of(p.ws_url) == cut]
        for phone in stranded:  # answers to a shard that cannot reach the database, or cannot run
            assert phone.ws is not None
            await phone.ws.send(f'{{"type":"answer","question":0,"choice":{choice_for(phone, 0)}}}')
        moved = "room_resumed" if victim == "coordinator" else "shard_moved"

        async def failed_over() -> bool:
            return any(moved in cluster.log(i) for i in range(3) if i != cut)

        await wait_until(failed_over, time.monotonic() + 20, f"{moved} on a connected server")
        if fault != "kill":
            await asyncio.sleep(TTL_S * 1.5)  # the fault's length (2.5 × TTL in all), not a wait for a condition
    finally:
        if fault == "cut":
            cluster.heal(cut)
        elif fault == "pause":
            cluster.signal(cut, signal.SIGCONT)
    on_cut = [p for p in phones if cluster.index_of(p.ws_url) == cut]
    codes = await gather_limited([p.expect_close(timeout=30) for p in on_cut], limit=len(on_cut))
    assert set(codes) == ({4421} if fault != "kill" else {1006}), Counter(codes)
    assert not any(m["type"] == "answer_ack" for p in stranded for m in p.seen), f"acked during the {fault}"
    await gather_limited([p.connect() for p in on_cut], limit=200)
    rest = phones[1::2]
    acks = await gather_limited([answer_once(p, 0) for p in rest], limit=len(rest))
    assert all(a["accepted"] for a in acks)
    closed = await http.post(f"/api/rooms/{pin}/close", headers=headers)  # or everyone answered: closed already
    assert closed.status_code == 200 or closed.json()["error"]["code"] == "bad_phase", closed.text
    await gather_limited([result_of(p, 0) for p in phones], limit=len(phones))
    # After the fault the room's coordinator may move once more (a lease that lapsed while it caught up): a host
    # command asks again after a 503, as a client of a cluster does.
    await host_command(http, pin, "next", headers, f"{victim}-{fault}: the second question")
    await gather_limited([question_of(p, 1) for p in phones], limit=len(phones))
    await gather_limited([p.answer(1, choice_for(p, 1)) for p in phones], limit=len(phones))
    await gather_limited([result_of(p, 1) for p in phones], limit=len(phones))
    await host_command(http, pin, "next", headers, f"{victim}-{fault}: the end")
    await gather_limited([p.expect("finished") for p in phones], limit=len(phones))
    await check(phones, pg_url, created["room_id"])
    if victim == "coordinator" and fault != "kill":
        assert "lease_lost" in cluster.log(cut) or "coordinator_fenced" in cluster.log(cut)
    await gather_limited([p.close() for p in phones], limit=len(phones))
    await http.aclose()


@pytest.mark.parametrize("cluster", [15], indirect=True)
async def test_a_seeded_schedule_of_pauses_and_partitions(cluster: Cluster, pg_url: str) -> None:
    """Five questions; before each, a fault drawn from a seeded schedule hits a random server mid-question (a
    SIGSTOP or a cut from the database, for 2.5 × TTL); the checker must pass whatever the schedule. The seed is
    printed, and `QUIZROOM_FAULT_SEED` replays one."""
    seed = int(os.environ.get("QUIZROOM_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))
    print(f"fault schedule seed: {seed} (QUIZROOM_FAULT_SEED={seed} replays it)")
    rng = random.Random(seed)
    phones, created = await seat(cluster, 90, 5, 60_000)
    pin = created["pin"]
    headers = {"Authorization": f"Bearer {created['host_token']}"}
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30.0) for s in cluster.servers]
    try:
        for index in range(5):
            fault, target = rng.choice(["pause", "cut"]), rng.randrange(3)
            spare = next(i for i in range(3) if i != target)
            for phone in phones:
                phone.http = clients[spare]
            command = "start" if index == 0 else "next"
            await host_command(clients[spare], pin, command, headers, f"seed {seed}, question {index}")
            await gather_limited([question_of(p, index) for p in phones], limit=len(phones))
            early = [p for p in phones if rng.random() < 0.5]
            await gather_limited([p.answer(index, choice_for(p, index)) for p in early], limit=len(phones))
            if fault == "pause":
                cluster.signal(target, signal.SIGSTOP)
            else:
                cluster.cut(target)
            try:
                await asyncio.sleep(TTL_S * 2.5)  # the fault's length, not a wait for a condition
            finally:
                if fault == "pause":
                    cluster.signal(target, signal.SIGCONT)
                else:
                    cluster.heal(target)
            for phone in phones:  # whoever lost its socket resumes, then everyone who has not answered answers
                if phone.closed is not None or cluster.index_of(phone.ws_url) == target:
                    await settle(phone)
            late = [p for p in phones if not acked(p, index)]
            await gather_limited([answer_once(p, index) for p in late], limit=len(phones))
            await gather_limited([result_through_moves(p, index) for p in phones], limit=len(phones))
        await host_command(clients[0], pin, "next", headers, f"seed {seed}, the end")
        await gather_limited([p.expect("finished") for p in phones], limit=len(phones))
        try:
            await check(phones, pg_url, created["room_id"])
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from exc
    finally:
        for client in clients:
            await client.aclose()


async def host_command(http: httpx.AsyncClient, pin: str, name: str, headers: dict[str, str], what: str) -> None:
    """A host command as a client of a cluster sends it (docs/protocol.md, HTTP): a 503 `unavailable` while the
    room's coordinator moves is asked again after a backoff; a 409 after a 503 means the first try took effect."""
    before = (await http.get(f"/api/rooms/{pin}", headers=headers)).json().get("question_index")
    deadline, backoff, retried = time.monotonic() + 30.0, 0.1, False
    while True:
        response = await http.post(f"/api/rooms/{pin}/{name}", headers=headers)
        if response.status_code == 200:
            return
        if response.status_code == 409 and retried:
            state = (await http.get(f"/api/rooms/{pin}", headers=headers)).json()
            assert state["phase"] == "finished" or state["question_index"] != before, f"{what}: {state}"
            return
        assert response.status_code == 503 and time.monotonic() < deadline, f"{what}: {response.text}"
        retried = True
        await asyncio.sleep(backoff)  # the retry's backoff, as clients of a cluster do; the deadline bounds it
        backoff = min(2.0, backoff * 2)


async def question_of(phone: Phone, index: int) -> dict[str, Any]:
    """The `question` message for `index` (an earlier one still queued is skipped; after a reconnect the welcome
    has shown it, and the last one seen counts)."""
    while True:
        seen = [m for m in phone.seen if m["type"] == "question" and m["index"] == index]
        if seen:
            return seen[-1]
        message = await phone.expect("question")
        if message["index"] == index:
            return message


def acked(phone: Phone, question: int) -> bool:
    return any(m["type"] == "answer_ack" and m["question"] == question for m in phone.seen)


async def settle(phone: Phone) -> None:
    """After a fault: the socket still works, or it is closed (4421 or dropped) and the player reconnects."""
    if phone.closed is None:
        try:
            await phone.expect_close(timeout=2.0)
        except TimeoutError:
            return  # still connected: the fault did not reach this player's shard
    await phone.connect()


async def result_through_moves(phone: Phone, question: int) -> dict[str, Any]:
    """The player's result for `question`. A socket closed meanwhile (4421: a shard that moved once the fault had
    healed) connects again, as a client does, and the welcome's `result` (docs/protocol.md: a welcome at a reveal
    carries it) stands for the one the closed socket would have had."""
    for _ in range(5):
        try:
            return await result_of(phone, question)
        except ConnectionError:
            welcome = await phone.connect()
            result = welcome.get("result")
            if isinstance(result, dict) and result.get("question") == question:
                return result
    raise AssertionError(f"{phone.nickname}: no result for question {question}")


async def answer_once(phone: Phone, question: int) -> dict[str, Any]:
    """Answer, reconnecting and resending if the socket goes (a fault's aftermath: 4421, a drop) until acked."""
    for _ in range(5):
        try:
            return await phone.answer(question, choice_for(phone, question))
        except (ConnectionError, ConnectionClosed):
            await phone.connect()
    raise AssertionError(f"{phone.nickname} could not answer question {question}")
