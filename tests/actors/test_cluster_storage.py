"""`PgCluster` on a real PostgreSQL database: membership, leases, shard placement and messaging (PostgreSQL only).

Expiry is tested with a short TTL and by polling with a deadline; nothing waits for a condition with a bare sleep.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import orjson
import pytest

from quizroom.storage import StorageError
from quizroom.storage.cluster import MAX_NOTIFY_BYTES, MAX_PAYLOAD_BYTES, PgCluster, WorkerRow
from tests.actors.pgcluster import SHORT_TTL, Database, eventually

# --- lifecycle ----------------------------------------------------------------------------------------------------


async def test_open_fails_with_storage_error_when_postgres_is_unreachable(unused_tcp_port: int) -> None:
    cluster = PgCluster(f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/nowhere", "ab12", "http://x", ttl_s=1)
    with pytest.raises(StorageError):
        await cluster.open()
    await cluster.close()


async def test_calls_fail_with_storage_error_once_closed(db: Database) -> None:
    cluster = await db.cluster()
    await cluster.close()
    with pytest.raises(StorageError):
        await cluster.live_workers()
    with pytest.raises(StorageError):
        cluster.send(cluster.worker_id, {"type": "late"})


def test_worker_ids_must_make_valid_channel_names() -> None:
    with pytest.raises(ValueError):
        PgCluster("postgresql://unused", "not-an-identifier", "http://x")
    with pytest.raises(ValueError):
        PgCluster("postgresql://unused", "a" * 55, "http://x")


# --- membership ---------------------------------------------------------------------------------------------------


async def test_a_worker_is_live_while_it_heartbeats_and_expires_after_the_ttl(db: Database) -> None:
    a = await db.cluster(ttl_s=SHORT_TTL)
    assert await a.worker(a.worker_id) == WorkerRow(a.worker_id, a.url, 0)
    assert await a.worker("feedbeef") is None
    # Heart-beating keeps it live well past the TTL, and records its load.
    started = time.monotonic()
    while time.monotonic() - started < 3 * SHORT_TTL:
        await a.heartbeat(load=42)
        assert await a.worker(a.worker_id) == WorkerRow(a.worker_id, a.url, 42)
        await asyncio.sleep(SHORT_TTL / 4)
    # Silence: the database's clock declares it dead.
    await eventually(lambda: _is_dead(a, a.worker_id), what="worker expiry")
    assert await a.live_workers() == []
    # A heartbeat brings it back.
    await a.heartbeat(load=1)
    assert await a.live_workers() == [WorkerRow(a.worker_id, a.url, 1)]


async def _is_dead(cluster: PgCluster, worker_id: str) -> bool:
    return await cluster.worker(worker_id) is None


async def test_live_workers_are_ordered_by_load_then_id(db: Database) -> None:
    workers = [await db.cluster() for _ in range(4)]
    loads = [5, 1, 5, 0]
    for worker, load in zip(workers, loads, strict=True):
        await worker.heartbeat(load)
    expected = sorted(
        (WorkerRow(w.worker_id, w.url, n) for w, n in zip(workers, loads, strict=True)),
        key=lambda r: (r.load, r.worker_id),
    )
    assert await workers[0].live_workers() == expected


async def test_register_again_updates_the_row_and_heartbeat_needs_registration(db: Database) -> None:
    a = await db.cluster(register=False)
    with pytest.raises(RuntimeError):
        await a.heartbeat(0)
    await a.register(123, "host-a")
    a.url = "http://moved.test:9000"
    await a.register(456, "host-b")
    rows = await _fetch(db.url, "SELECT url, pid, hostname FROM workers WHERE worker_id = $1", a.worker_id)
    assert rows == [("http://moved.test:9000", 456, "host-b")]


async def test_deregister_removes_the_worker_and_frees_its_leases_at_once(db: Database) -> None:
    await db.room("r1")
    a, b = await db.cluster(), await db.cluster()
    assert await a.acquire_lease("r1")
    assert not await b.acquire_lease("r1")
    await a.deregister()
    assert await b.worker(a.worker_id) is None
    assert await b.lease_holder("r1") is None
    assert await b.acquire_lease("r1")  # long TTL: only the deregistration can have freed it
    assert await a.lease_holder("r1") == WorkerRow(b.worker_id, b.url, 0)


# --- leases -------------------------------------------------------------------------------------------------------


async def test_racing_workers_leave_exactly_one_lease_holder(db: Database) -> None:
    rooms = [f"race{i}" for i in range(20)]
    for room_id in rooms:
        await db.room(room_id)
    workers = [await db.cluster(), await db.cluster()]

    async def attempt(worker: PgCluster, room_id: str) -> tuple[str, str, bool]:
        return room_id, worker.worker_id, await worker.acquire_lease(room_id) is not None

    attempts = [attempt(w, room_id) for room_id in rooms for w in workers for _ in range(5)]
    results = await asyncio.gather(*attempts)
    for room_id in rooms:
        winners = {worker_id for r, worker_id, won in results if r == room_id and won}
        assert len(winners) == 1, f"{room_id}: {winners}"
        holder = await workers[0].lease_holder(room_id)
        assert holder is not None and {holder.worker_id} == winners


async def test_an_expired_lease_is_taken_over_and_the_old_holder_learns_it(db: Database) -> None:
    pin = await db.room("r1", phase="question")
    a, b = await db.cluster(ttl_s=SHORT_TTL), await db.cluster(ttl_s=SHORT_TTL)
    assert await b.orphaned_question_rooms() == [pin]
    assert await a.acquire_lease("r1")
    assert await a.acquire_lease("r1")  # ours already: renewed, still True
    assert not await b.acquire_lease("r1")
    assert await b.orphaned_question_rooms() == []
    # a stops heart-beating; b keeps its own heartbeat and polls until it may take the room.

    async def b_takes_over() -> bool:
        await b.heartbeat(0)
        return await b.acquire_lease("r1") is not None

    await eventually(b_takes_over, what="takeover")
    assert await b.lease_holder("r1") == WorkerRow(b.worker_id, b.url, 0)
    assert await b.orphaned_question_rooms() == []
    # a comes back: its heartbeat no longer renews the room, which tells it to drop its coordinator.
    assert await a.heartbeat(0) == {}
    assert not await a.acquire_lease("r1")
    # Releasing only releases one's own lease.
    await a.release_lease("r1")
    assert (await b.lease_holder("r1")) is not None
    await b.release_lease("r1")
    assert await b.lease_holder("r1") is None
    assert await b.orphaned_question_rooms() == [pin]


async def test_heartbeats_renew_leases_past_the_ttl(db: Database) -> None:
    for room_id in ("r1", "r2", "r3"):
        await db.room(room_id)
    a, b = await db.cluster(ttl_s=SHORT_TTL), await db.cluster(ttl_s=SHORT_TTL)
    assert await a.acquire_lease("r1") and await a.acquire_lease("r2") and await b.acquire_lease("r3")
    started = time.monotonic()
    while time.monotonic() - started < 4 * SHORT_TTL:
        assert (await a.heartbeat(3)).keys() == {"r1", "r2"}
        await b.heartbeat(0)
        assert not await b.acquire_lease("r1")
        assert await b.lease_holder("r2") == WorkerRow(a.worker_id, a.url, 3)
        await asyncio.sleep(SHORT_TTL / 4)


async def test_a_lease_whose_worker_is_dead_does_not_hold(db: Database) -> None:
    """A lease outliving its worker's heartbeat (acquired by a worker that then fell silent) does not hold: the
    same condition decides `lease_holder`, `acquire_lease` and `orphaned_question_rooms`."""
    pin = await db.room("r1", phase="question")
    ghost = await db.cluster(register=False)  # never registered: never live
    b = await db.cluster()
    assert await ghost.acquire_lease("r1")
    assert await b.lease_holder("r1") is None
    assert await b.orphaned_question_rooms() == [pin]
    assert await b.acquire_lease("r1")


async def test_a_lease_on_an_unknown_room_is_a_storage_error(db: Database) -> None:
    a = await db.cluster()
    with pytest.raises(StorageError):
        await a.acquire_lease("no-such-room")


# --- shards -------------------------------------------------------------------------------------------------------


async def test_racing_placements_agree_and_dead_workers_lose_their_shards(db: Database) -> None:
    await db.room("r1")
    a, b = await db.cluster(ttl_s=SHORT_TTL), await db.cluster(ttl_s=SHORT_TTL)
    # Both place shards 0–9 at once, each on itself: every call returns the same holder per shard.
    placements = [w.place_shard("r1", shard, w.worker_id) for shard in range(10) for w in (a, b) for _ in range(3)]
    holders = await asyncio.gather(*placements)
    by_shard: dict[int, set[str]] = {}
    for (shard, _), holder in zip(((s, w) for s in range(10) for w in range(6)), holders, strict=True):
        by_shard.setdefault(shard, set()).add(holder)
    assert all(len(h) == 1 for h in by_shard.values()), by_shard
    urls = {a.worker_id: a.url, b.worker_id: b.url}
    placed = await a.shards("r1")
    assert [(r.shard, r.worker_id, r.url, r.alive) for r in placed] == [
        (s, next(iter(by_shard[s])), urls[next(iter(by_shard[s]))], True) for s in range(10)
    ]
    assert len({r.epoch for r in placed}) == 10, "every placement has its own fencing epoch"
    # A live holder keeps its shard.
    live_holder = next(iter(by_shard[0]))
    other = b if live_holder == a.worker_id else a
    assert await other.place_shard("r1", 0, other.worker_id) == live_holder
    # a falls silent: its shards show as dead, and placing them again now succeeds.
    await a.place_shard("r1", 20, a.worker_id)

    async def a_is_dead() -> bool:
        await b.heartbeat(0)
        return not next(s for s in await b.shards("r1") if s.shard == 20).alive

    await eventually(a_is_dead, what="a's expiry")
    before = next(s.epoch for s in await b.shards("r1") if s.shard == 20)
    assert await b.place_shard("r1", 20, b.worker_id) == b.worker_id
    moved = next(s.epoch for s in await b.shards("r1") if s.shard == 20)
    assert moved > before, "a shard that changes worker takes a newer epoch: the old copy's answers are fenced"
    assert await b.place_shard("r1", 20, b.worker_id) == b.worker_id
    assert next(s.epoch for s in await b.shards("r1") if s.shard == 20) == moved, "placed again where it is: same"
    # A shard whose worker row is gone shows an empty url.
    await a.deregister()
    assert await b.place_shard("r1", 21, a.worker_id) == a.worker_id
    assert [(s.shard, s.worker_id, s.url, s.alive) for s in await b.shards("r1") if s.shard == 21] == [
        (21, a.worker_id, "", False)
    ]


async def test_dead_shards_of_many_rooms_come_back_in_one_read(db: Database) -> None:
    for room in ("r1", "r2", "r3"):
        await db.room(room)
    a, b = await db.cluster(ttl_s=SHORT_TTL), await db.cluster(ttl_s=SHORT_TTL)  # b judges liveness by its TTL
    for shard in range(3):
        await a.place_shard("r1", shard, a.worker_id if shard != 1 else b.worker_id)
    await a.place_shard("r2", 0, a.worker_id)
    await b.place_shard("r3", 0, b.worker_id)
    assert await b.dead_shards(["r1", "r2", "r3"]) == {}, "every holder is live"
    assert await b.dead_shards([]) == {}

    async def a_is_dead() -> bool:
        await b.heartbeat(0)
        return bool(await b.dead_shards(["r1"]))

    await eventually(a_is_dead, what="a's expiry")
    assert await b.dead_shards(["r1", "r2", "r3"]) == {"r1": [0, 2], "r2": [0]}
    assert await b.dead_shards(["r2"]) == {"r2": [0]}, "only the rooms asked about"
    await a.deregister()
    assert await b.dead_shards(["r1", "r3"]) == {"r1": [0, 2]}, "a holder whose row is gone is dead too"


# --- messaging ----------------------------------------------------------------------------------------------------


async def test_a_thousand_messages_arrive_in_order_exactly_once(db: Database) -> None:
    sender, receiver = await db.cluster(), await db.cluster()
    received: list[dict[str, Any]] = []
    await receiver.listen(received.append)
    for i in range(1000):
        # Many payloads are identical but for the sequence number: PostgreSQL must not collapse them.
        sender.send(receiver.worker_id, {"type": "event", "i": i, "same": "x"} if i % 2 else {"type": "same"})
    sender.send(receiver.worker_id, {"type": "end"})

    async def ended() -> bool:
        return bool(received) and received[-1].get("type") == "end"

    await eventually(ended, within_s=10.0, what="delivery")
    assert len(received) == 1001
    assert [m.get("i") for m in received[:-1] if "i" in m] == list(range(1, 1000, 2))
    assert [m["_seq"] for m in received] == list(range(1, 1002))
    assert {m["_from"] for m in received} == {sender.worker_id}
    assert received[0] == {"type": "same", "_from": sender.worker_id, "_epoch": received[0]["_epoch"], "_seq": 1}


async def test_messages_from_several_senders_keep_each_senders_order(db: Database) -> None:
    receiver = await db.cluster()
    senders = [await db.cluster() for _ in range(3)]
    received: list[dict[str, Any]] = []
    await receiver.listen(received.append)

    async def burst(sender: PgCluster) -> None:
        for i in range(200):
            sender.send(receiver.worker_id, {"i": i})
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the other senders interleave

    await asyncio.gather(*(burst(s) for s in senders))

    async def all_arrived() -> bool:
        return len(received) >= 600

    await eventually(all_arrived, within_s=10.0, what="delivery")
    for sender in senders:
        assert [m["i"] for m in received if m["_from"] == sender.worker_id] == list(range(200))


async def test_an_oversize_message_is_refused_in_send_and_a_long_one_comes_by_the_table(db: Database) -> None:
    sender, receiver = await db.cluster(), await db.cluster()
    received: list[dict[str, Any]] = []
    await receiver.listen(received.append)
    with pytest.raises(ValueError):
        sender.send(receiver.worker_id, {"blob": "x" * MAX_PAYLOAD_BYTES})
    # The largest message that fits a NOTIFY comes with its notification; a longer one rings the doorbell only and
    # is read from the table (the refused one did not use up a sequence number).
    overhead = len(f'{{"blob":"","_from":"{sender.worker_id}","_epoch":"abcdabcd","_seq":1}}')
    sender.send(receiver.worker_id, {"blob": "y" * (MAX_NOTIFY_BYTES - overhead)})
    sender.send(receiver.worker_id, {"blob": "z" * (MAX_NOTIFY_BYTES * 4)})
    sender.send(receiver.worker_id, {"blob": "after"})

    async def arrived() -> bool:
        return len(received) == 3

    await eventually(arrived, what="delivery")
    assert [m["_seq"] for m in received] == [1, 2, 3], "in the order sent"
    assert len(received[0]["blob"]) == MAX_NOTIFY_BYTES - overhead and len(received[1]["blob"]) == MAX_NOTIFY_BYTES * 4


async def test_a_lost_notification_is_made_good_from_the_table_in_order(db: Database) -> None:
    """A row whose notification never came (lost, or the listener was down): the next message from the same
    sender shows the gap, and the receiver reads the table before applying it."""
    receiver = await db.cluster(drain_every_s=3600.0)  # no polling: only the gap can bring the row in
    received: list[dict[str, Any]] = []
    await receiver.listen(received.append)
    first = orjson.dumps({"n": 1, "_from": "ghost", "_epoch": "e1", "_seq": 1}).decode()
    second = orjson.dumps({"n": 2, "_from": "ghost", "_epoch": "e1", "_seq": 2}).decode()
    await _fetch(db.url, "INSERT INTO cluster_messages (worker_id, body) VALUES ($1, $2)", receiver.worker_id, first)
    await _fetch(
        db.url,
        "WITH r AS (INSERT INTO cluster_messages (worker_id, body) VALUES ($1, $2) RETURNING 1)"
        " SELECT pg_notify($3, $2)",
        receiver.worker_id,
        second,
        f"quizroom_{receiver.worker_id}",
    )
    await eventually(lambda: _has(received, 2), what="delivery")
    assert [m["n"] for m in received] == [1, 2]
    assert receiver.transport.drained == 1
    await eventually(lambda: _empty_table(db.url), what="the rows read to be deleted")


async def test_a_row_without_any_notification_arrives_by_polling(db: Database) -> None:
    receiver = await db.cluster(drain_every_s=0.1)
    received: list[dict[str, Any]] = []
    await receiver.listen(received.append)
    body = orjson.dumps({"n": 7, "_from": "ghost", "_epoch": "e2", "_seq": 1}).decode()
    await _fetch(db.url, "INSERT INTO cluster_messages (worker_id, body) VALUES ($1, $2)", receiver.worker_id, body)
    await eventually(lambda: _has(received, 7), what="delivery by polling")


async def test_what_is_sent_while_the_listener_is_down_arrives_once_it_is_back(db: Database) -> None:
    sender = await db.cluster()
    receiver = await db.cluster(keepalive_s=60.0, drain_every_s=3600.0)
    received: list[dict[str, Any]] = []
    reconnected = asyncio.Event()
    await receiver.listen(received.append, on_reconnect=reconnected.set)
    assert receiver.transport._listener is not None
    receiver.transport._listener.terminate()  # as a network failure would: the notifications sent now are lost
    for n in range(20):
        sender.send(receiver.worker_id, {"n": n})
    await asyncio.wait_for(reconnected.wait(), timeout=10.0)
    await eventually(lambda: _has(received, 19), what="delivery of what was sent meanwhile")
    assert [m["n"] for m in received] == list(range(20))


async def _empty_table(url: str) -> bool:
    return await _fetch(url, "SELECT count(*) FROM cluster_messages") == [(0,)]


async def test_the_listener_reconnects_after_its_connection_is_killed(db: Database) -> None:
    sender, receiver = await db.cluster(), await db.cluster(keepalive_s=60.0)
    received: list[dict[str, Any]] = []
    reconnected = asyncio.Event()
    await receiver.listen(received.append, on_reconnect=reconnected.set)
    sender.send(receiver.worker_id, {"n": 1})
    await eventually(lambda: _has(received, 1), what="first delivery")
    killed = await _fetch(
        db.url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        f"quizroom-listen-{receiver.worker_id}",
    )
    assert killed == [(True,)]
    await asyncio.wait_for(reconnected.wait(), timeout=10.0)
    assert receiver.reconnects == 1
    sender.send(receiver.worker_id, {"n": 2})
    await eventually(lambda: _has(received, 2), what="delivery after the reconnect")


async def test_a_failing_callback_does_not_stop_delivery(db: Database) -> None:
    sender, receiver = await db.cluster(), await db.cluster()
    received: list[dict[str, Any]] = []

    def callback(message: dict[str, Any]) -> None:
        if message["n"] == 1:
            raise RuntimeError("boom")
        received.append(message)

    await receiver.listen(callback)
    sender.send(receiver.worker_id, {"n": 1})
    sender.send(receiver.worker_id, {"n": 2})
    await eventually(lambda: _has(received, 2), what="delivery")
    assert [m["n"] for m in received] == [2]


async def _has(received: list[dict[str, Any]], n: int) -> bool:
    return any(m.get("n") == n for m in received)


async def _fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def test_close_sends_what_is_still_queued(db: Database) -> None:
    sender, receiver = await db.cluster(), await db.cluster()
    received: list[dict[str, Any]] = []
    await receiver.listen(received.append)
    for n in range(50):
        sender.send(receiver.worker_id, {"n": n})
    await sender.close()
    await eventually(lambda: _has(received, 49), what="delivery of the last queued message")
    assert [m["n"] for m in received] == list(range(50))
