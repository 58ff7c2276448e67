"""The heartbeat's own thread (storage/pulse.py): a worker whose event loop is blocked keeps its liveness and its
leases; the same block with the heartbeat on the loop loses both (the negative control).

The block is deliberate: `time.sleep` on the event loop is what a loop saturated by a thousand rooms looks like to
a heartbeat waiting for its turn. An observer thread with its own connection watches the database meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from quizroom.storage.cluster import PgCluster
from quizroom.storage.pulse import BeatHooks
from tests.actors.pgcluster import SHORT_TTL, Database, eventually
from tests.delayproxy import DelayProxy

BLOCKED_S = 10 * SHORT_TTL


def block_and_watch(url: str, worker_id: str, room_id: str) -> list[tuple[bool, bool]]:
    """Block the event loop for `BLOCKED_S` while a thread with its own connection looks, every 20 ms, whether the
    worker is live and the room's lease unexpired, by the database's clock."""
    seen: list[tuple[bool, bool]] = []

    async def look() -> None:
        conn = await asyncpg.connect(url)
        try:
            deadline = time.monotonic() + BLOCKED_S
            while time.monotonic() < deadline:
                row = await conn.fetchrow(
                    "SELECT (SELECT heartbeat_at > now() - make_interval(secs => $3) FROM workers"
                    " WHERE worker_id = $1), (SELECT expires_at > now() FROM room_leases WHERE room_id = $2)",
                    worker_id,
                    room_id,
                    SHORT_TTL,
                )
                assert row is not None
                seen.append((bool(row[0]), bool(row[1])))
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    observer = threading.Thread(target=asyncio.run, args=(look(),))
    observer.start()
    time.sleep(BLOCKED_S)  # the event loop is blocked: nothing on it runs
    observer.join()
    return seen


async def test_a_blocked_event_loop_keeps_the_worker_live_and_its_leases_held(db: Database) -> None:
    await db.room("r1")
    worker = await db.cluster(ttl_s=SHORT_TTL)
    epoch = await worker.acquire_lease("r1")
    assert epoch is not None
    vouched: list[tuple[float, Any, dict[str, int]]] = []
    beaten: list[tuple[float, Any, dict[str, int]]] = []
    hooks = BeatHooks(
        monotonic=time.monotonic,
        load=lambda: 7,
        snapshot=lambda: "held",
        vouch=lambda *beat: vouched.append(beat),
        beaten=lambda *beat: beaten.append(beat),
    )
    pulse = worker.pulse(SHORT_TTL / 4, hooks)
    pulse.start()
    try:
        seen = block_and_watch(db.url, worker.worker_id, "r1")
        assert len(seen) > 20 and all(live and held for live, held in seen), seen
        assert len(vouched) >= 5, "the thread beat while the loop was blocked"
        assert beaten == [], "what is for the event loop waits for it"
        await asyncio.sleep(0)  # the loop runs again: every beat is handed over, in order
        assert [b[0] for b in beaten] == [v[0] for v in vouched[: len(beaten)]] and len(beaten) >= len(vouched) - 1
        assert all(snapshot == "held" and renewed == {"r1": epoch} for _, snapshot, renewed in beaten)
    finally:
        await pulse.stop()
    row = await (await db.cluster()).worker(worker.worker_id)
    assert row is not None and row.load == 7


async def test_the_same_block_with_the_heartbeat_on_the_event_loop_loses_the_worker_and_its_lease(
    db: Database,
) -> None:
    await db.room("r1")
    worker = await db.cluster(ttl_s=SHORT_TTL)
    assert await worker.acquire_lease("r1") is not None
    await worker.heartbeat(0)
    seen = block_and_watch(db.url, worker.worker_id, "r1")
    assert seen[0] == (True, True) and (False, False) in seen, seen


async def test_a_beat_on_a_hanging_connection_is_given_up_for_a_new_one(db: Database) -> None:
    """A partition that drops packets leaves the beat's connection hanging, not failing: the beat in flight is given
    up once its renewal could no longer renew anything (after the TTL), and the next one, on a new connection, renews
    as soon as the database is reachable again — not after the 5 s command timeout the other queries have."""
    await db.room("r1")
    parts = urlsplit(db.url)
    proxy = await DelayProxy(parts.hostname or "127.0.0.1", parts.port or 5432, 0.0).start()
    far = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}"))
    worker = PgCluster(far, "w_hanging", "http://w-hanging.test:8000", ttl_s=2.0)
    await worker.open()
    await worker.register(os.getpid(), socket.gethostname())
    epoch = await worker.acquire_lease("r1")
    assert epoch is not None
    renewals: list[tuple[float, dict[str, int]]] = []
    hooks = BeatHooks(
        monotonic=time.monotonic,
        load=lambda: 0,
        snapshot=lambda: None,
        vouch=lambda sent, snapshot, renewed: renewals.append((time.monotonic(), renewed)),
        beaten=lambda *beat: None,
    )
    assert worker.command_timeout_s == 5.0
    pulse = worker.pulse(0.25, hooks)  # as failover asks for it: each beat bounded by the TTL
    pulse.start()
    try:
        await eventually(lambda: _true(len(renewals) >= 2), what="beats before the stall")
        proxy.delay_s = 30.0  # from now on nothing crosses for 30 s on the connections that exist
        stalled = time.monotonic()
        await asyncio.sleep(1.0)  # the stall being simulated
        proxy.delay_s = 0.0  # healed: new connections cross at once (the old one still waits out its 30 s)
        await eventually(
            lambda: _true(any(at > stalled + 1.0 for at, _ in renewals)), within_s=8.0, what="a renewal after the heal"
        )
        first = min(at for at, _ in renewals if at > stalled + 1.0) - stalled
        assert first < worker.command_timeout_s, f"the hanging beat held the next one for {first:.1f} s"
        assert next(renewed for at, renewed in renewals if at > stalled + 1.0) == {"r1": epoch}  # the lease held
    finally:
        await pulse.stop()
        await worker.close()
        await proxy.stop()


async def _true(value: bool) -> bool:
    return value
