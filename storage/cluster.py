"""The PostgreSQL side of a cluster of workers: the directory (membership, coordinator leases, shard placement),
with the transport for messages beside it (`quizroom.storage.transport`).

No broker and no cluster manager: rows with an expiry for membership and ownership, `LISTEN/NOTIFY` for the few
events a room emits per question (docs/scaling.md).

- **One clock.** Every expiry is written and compared with the database's `now()`, never a worker's clock, so
  workers whose clocks disagree still agree on who is live and who holds what.
- **Live** means: the worker's heartbeat is younger than `ttl_s`. A lease **holds** while it is unexpired *and*
  its worker is live; everything that reads or takes leases uses that one definition, so "nobody holds it" and
  "I may take it" never disagree.
- **Compare-and-set.** Taking a lease, placing or moving a shard is one conditional statement on the row;
  PostgreSQL's row locks serialise racing workers, and exactly one of them wins.
- **Messages** go by `PgTransport` (fire-and-forget, ordered per sender, durable rows with `NOTIFY` as the
  doorbell), on this directory's pool.

Every driver, network or server failure surfaces as `StorageError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from quizroom.storage.base import StorageError
from quizroom.storage.postgres import _describe, _keep_session
from quizroom.storage.pulse import HEARTBEAT_SQL, BeatHooks, Pulse
from quizroom.storage.records import ShardRow, WorkerRow
from quizroom.storage.transport import FAILURES, MAX_NOTIFY_BYTES, MAX_PAYLOAD_BYTES, WORKER_ID, PgTransport

if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

__all__ = ["MAX_NOTIFY_BYTES", "MAX_PAYLOAD_BYTES", "PgCluster", "ShardRow", "WorkerRow"]

log = structlog.get_logger("quizroom.storage.cluster")


def _live(ttl_param: str, alias: str = "") -> str:
    """SQL for "the worker is live": its heartbeat is younger than the TTL (a float8 parameter), by the database's
    clock."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}heartbeat_at > now() - make_interval(secs => {ttl_param})"


class PgCluster:
    """One worker's view of the cluster, on a PostgreSQL database shared by every worker.

    Uses its own small pool (1–4 connections) for membership, leases, sending and reading messages, plus one
    dedicated connection that only listens, so a slow query can never delay the delivery of a message and vice
    versa.
    """

    def __init__(
        self,
        dsn: str,
        worker_id: str,
        url: str,
        *,
        ttl_s: float = 2.0,
        command_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        send_retry_s: float = 5.0,
        keepalive_s: float = 5.0,
        drain_every_s: float = 1.0,
    ) -> None:
        if not WORKER_ID.match(worker_id):
            raise ValueError(f"worker ids are 1–54 letters, digits or underscores: {worker_id!r}")
        self.dsn = dsn
        self.worker_id = worker_id
        self.url = url
        self.ttl_s = float(ttl_s)
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.send_retry_s = send_retry_s
        self.keepalive_s = keepalive_s
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._registration: tuple[int, str] | None = None  # (pid, hostname), for heartbeats that must re-insert
        self.transport = PgTransport(
            dsn,
            worker_id,
            self._connection,
            command_timeout_s=command_timeout_s,
            connect_timeout_s=connect_timeout_s,
            send_retry_s=send_retry_s,
            keepalive_s=keepalive_s,
            drain_every_s=drain_every_s,
        )

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the pool and start the sender. Fails with `StorageError` when the database cannot be reached,
        so a worker that cannot join the cluster does not start serving as if it had."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=4,
                command_timeout=self.command_timeout_s,
                timeout=self.connect_timeout_s,
                server_settings={"application_name": f"quizroom-cluster-{self.worker_id}"},
                reset=_keep_session,
            )
        except FAILURES as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {_describe(exc)}") from exc
        self.transport.open()

    async def close(self) -> None:
        """Stop the transport (queued messages get a short chance to go out), then disconnect."""
        await self.transport.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=self.command_timeout_s)
            except FAILURES:
                pool.terminate()

    async def join(self, pid: int, hostname: str) -> tuple[int, list[str]]:
        """Register, then retire dead predecessors on this URL; returns (how many were retired, the other hosts
        that registered this URL too, a misconfiguration)."""
        await self.register(pid, hostname)
        return await self.retire_predecessors(), await self.duplicate_urls()

    async def leave(self) -> None:
        """A clean stop: deregister (others take the rooms over at once, not after the TTL), then close."""
        try:
            await self.deregister()
        finally:
            await self.close()

    # --- messages, by the transport -----------------------------------------------------------------------------

    def send(self, worker_id: str, message: dict[str, Any]) -> None:
        self.transport.send(worker_id, message)

    async def listen(
        self, callback: Callable[[dict[str, Any]], None], *, on_reconnect: Callable[[], None] | None = None
    ) -> None:
        await self.transport.listen(callback, on_reconnect=on_reconnect)

    @property
    def reconnects(self) -> int:
        return self.transport.reconnects

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; every failure to reach or use the database becomes `StorageError` (a constraint
        violation too: here it means a room that does not exist)."""
        if self._pool is None:
            raise StorageError("cluster is not open")
        try:
            async with self._pool.acquire(timeout=self.connect_timeout_s) as conn:
                yield conn
        except FAILURES as exc:
            raise StorageError(_describe(exc)) from exc

    # --- membership ---------------------------------------------------------------------------------------------

    async def register(self, pid: int, hostname: str) -> None:
        """Announce this worker (or refresh it after a restart of the database): upsert its row with a fresh
        heartbeat. Idempotent, so a worker can call it again whenever it is unsure it is still known."""
        self._registration = (pid, hostname)
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO workers (worker_id, url, pid, hostname, load, started_at, heartbeat_at)"
                " VALUES ($1, $2, $3, $4, 0, now(), now())"
                " ON CONFLICT (worker_id) DO UPDATE SET url = EXCLUDED.url, pid = EXCLUDED.pid,"
                " hostname = EXCLUDED.hostname, heartbeat_at = now()",
                self.worker_id,
                self.url,
                pid,
                hostname,
            )

    async def retire_predecessors(self) -> int:
        """Declare dead every other worker registered on this host with this worker's URL; expire its leases now.

        Two live processes on one host cannot serve one host:port, so such a registration is a predecessor that
        died (a crash, kill -9) and is restarting as us. Without this, its rooms would wait out the TTL before
        anyone took them over, and a restarted single server would find its own rooms "held elsewhere" for that
        long. The same URL from another host is a misconfiguration (`duplicate_urls` reports it), never retired.
        Returns how many were retired."""
        if self._registration is None:
            raise RuntimeError("register() before retire_predecessors()")
        hostname = self._registration[1]
        async with self._connection() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM workers WHERE url = $1 AND hostname = $2 AND worker_id <> $3 RETURNING worker_id",
                self.url,
                hostname,
                self.worker_id,
            )
            dead = [row[0] for row in rows]
            if dead:
                await conn.execute(
                    "UPDATE room_leases SET expires_at = '-infinity' WHERE worker_id = ANY($1::text[])", dead
                )
        return len(dead)

    async def duplicate_urls(self) -> list[str]:
        """Live workers on other hosts that registered this worker's URL: sockets meant for one would reach the
        other. Each worker needs its own URL (`QUIZROOM_WORKER_URL`)."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT hostname FROM workers WHERE url = $1 AND worker_id <> $2 AND {_live('$3')}",
                self.url,
                self.worker_id,
                self.ttl_s,
            )
        return [row[0] for row in rows]

    async def heartbeat(self, load: int) -> dict[str, int]:
        """Prove this worker alive and renew every lease it holds, in one statement (one round trip, so latency
        to the database costs a heartbeat as little as it can), and return the leases renewed: room_id → epoch.

        Heartbeat and leases move together, so a worker is never live with lapsed leases nor the other way round.
        The returned map is the truth about which coordinators this worker may keep running: a room it
        coordinates that is missing from it, or under another epoch, was taken over (its lease lapsed and another
        worker took it), and it must stop coordinating it. The worker row is re-inserted if it vanished, so a
        heartbeat after a database restore still registers the worker."""
        if self._registration is None:
            raise RuntimeError("register() before heartbeat()")
        pid, hostname = self._registration
        async with self._connection() as conn:
            rows = await conn.fetch(HEARTBEAT_SQL, self.worker_id, self.url, pid, hostname, load, self.ttl_s)
        return {row[0]: row[1] for row in rows}

    def pulse(self, interval_s: float, hooks: BeatHooks) -> Pulse:
        """The heartbeat of `heartbeat`, on a thread and a connection of its own (`quizroom.storage.pulse`).

        A beat not answered within the TTL is given up and the next one starts on a new connection:
        a renewal that comes back after the TTL renewed nothing still held, and a connection that hangs (a partition
        that drops packets rather than refusing them) would otherwise hold every beat behind it for the whole command
        timeout (5 s, over twice the default TTL). Connecting is bounded by the TTL for the same reason."""
        if self._registration is None:
            raise RuntimeError("register() before pulse()")
        pid, hostname = self._registration
        return Pulse(
            self.dsn,
            (self.worker_id, self.url, pid, hostname, self.ttl_s),
            interval_s,
            hooks,
            loop=asyncio.get_running_loop(),
            connect_timeout_s=min(self.connect_timeout_s, self.ttl_s),
            command_timeout_s=min(self.command_timeout_s, self.ttl_s),
        )

    async def deregister(self) -> None:
        """Leave the cluster on a clean stop: delete the worker row and expire its leases at once, so other
        workers take its rooms over now rather than after a TTL. Its shards stay placed on it; with the worker
        gone they count as dead and are placed again (`place_shard`)."""
        self._registration = None
        async with self._connection() as conn, conn.transaction():
            await conn.execute("UPDATE room_leases SET expires_at = '-infinity' WHERE worker_id = $1", self.worker_id)
            await conn.execute("DELETE FROM workers WHERE worker_id = $1", self.worker_id)

    async def live_workers(self) -> list[WorkerRow]:
        """Workers whose heartbeat is younger than the TTL, least loaded first (ties by worker_id, so every
        worker ranks them the same way and concurrent placements tend to pick the same target)."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT worker_id, url, load FROM workers WHERE {_live('$1')} ORDER BY load, worker_id",
                self.ttl_s,
            )
        return [WorkerRow(row[0], row[1], row[2]) for row in rows]

    async def worker(self, worker_id: str) -> WorkerRow | None:
        """One worker if it is live; None when it is dead or unknown, which callers treat alike (do not send it
        players)."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT worker_id, url, load FROM workers WHERE worker_id = $1 AND {_live('$2')}",
                worker_id,
                self.ttl_s,
            )
        return WorkerRow(row[0], row[1], row[2]) if row is not None else None

    # --- coordinator leases -------------------------------------------------------------------------------------

    async def acquire_lease(self, room_id: str) -> int | None:
        """Become the coordinator of a room: the lease's epoch when this worker holds it afterwards, else None.

        One compare-and-set statement: insert the lease, or take the existing one over only if it no longer holds
        (expired, or its worker is dead) or is already ours (then it is renewed, under the same epoch). A lease
        that changes hands takes a fresh epoch from `fencing_epochs`, so the previous holder's writes are refused
        from then on. When several workers race, the row lock makes them take turns and each later one re-checks
        the condition against the winner's row, so exactly one wins. The room must exist (foreign key), else
        `StorageError`."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "INSERT INTO room_leases AS l (room_id, worker_id, expires_at, epoch)"
                " VALUES ($1, $2, now() + make_interval(secs => $3), nextval('fencing_epochs'))"
                " ON CONFLICT (room_id) DO UPDATE SET worker_id = EXCLUDED.worker_id,"
                " expires_at = EXCLUDED.expires_at,"
                " epoch = CASE WHEN l.worker_id = EXCLUDED.worker_id THEN l.epoch ELSE EXCLUDED.epoch END"
                " WHERE l.worker_id = EXCLUDED.worker_id OR l.expires_at <= now()"
                " OR NOT EXISTS (SELECT 1 FROM workers AS w"
                f" WHERE w.worker_id = l.worker_id AND {_live('$3', 'w')})"
                " RETURNING epoch",
                room_id,
                self.worker_id,
                self.ttl_s,
            )
        return None if row is None else int(row[0])

    async def lease_holder(self, room_id: str) -> WorkerRow | None:
        """The room's coordinator, if its lease holds (unexpired and its worker live). None means the room is up
        for takeover: the same condition under which `acquire_lease` succeeds."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT w.worker_id, w.url, w.load FROM room_leases AS l JOIN workers AS w USING (worker_id)"
                f" WHERE l.room_id = $1 AND l.expires_at > now() AND {_live('$2', 'w')}",
                room_id,
                self.ttl_s,
            )
        return WorkerRow(row[0], row[1], row[2]) if row is not None else None

    async def release_lease(self, room_id: str) -> None:
        """Give up coordinating a room (it finished, or this worker is handing it over). Only our own lease is
        deleted: a lease another worker took over in the meantime is left alone."""
        async with self._connection() as conn:
            await conn.execute("DELETE FROM room_leases WHERE room_id = $1 AND worker_id = $2", room_id, self.worker_id)

    async def orphaned_question_rooms(self) -> list[str]:
        """PINs of rooms with an open question whose lease does not hold (missing, expired, or its worker dead):
        their deadline timer runs nowhere, so some worker must take them over (`acquire_lease`) and close the
        question on time."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT r.pin FROM rooms AS r WHERE r.phase = 'question' AND NOT EXISTS ("
                " SELECT 1 FROM room_leases AS l JOIN workers AS w USING (worker_id)"
                f" WHERE l.room_id = r.room_id AND l.expires_at > now() AND {_live('$1', 'w')})"
                " ORDER BY r.pin",
                self.ttl_s,
            )
        return [row[0] for row in rows]

    # --- shard placement ----------------------------------------------------------------------------------------

    async def place_shard(self, room_id: str, shard: int, worker_id: str, *, lease_epoch: int = 0) -> str:
        """Place a shard on a worker unless it is already placed on a live one; return the worker that holds it
        afterwards.

        Compare-and-set: the upsert only replaces a dead worker, and a shard that changes worker takes a fresh
        epoch, which fences the answers of the copy it left (`quizroom.storage.postgres`). When two coordinators
        (an old one and the one that took over) place the same shard at once, the loser's upsert does nothing and
        it reads the winner's choice, so both tell their players the same `ws_url`. The read is a separate
        statement on purpose: a statement's snapshot predates the racing commit it waited for, and would not see
        the winner's row.

        Fenced: with `lease_epoch`, only the holder of the room's current lease places or moves a shard; a deposed
        coordinator reads where the shard is instead, and one that would open a new shard gets `StorageError`."""
        async with self._connection() as conn:
            placed = await conn.fetchval(
                "INSERT INTO shards AS s (room_id, shard, worker_id) SELECT $1, $2, $3"
                " WHERE $5::bigint = 0 OR EXISTS (SELECT 1 FROM room_leases WHERE room_id = $1 AND epoch = $5)"
                " ON CONFLICT (room_id, shard) DO UPDATE SET worker_id = EXCLUDED.worker_id,"
                " epoch = CASE WHEN s.worker_id = EXCLUDED.worker_id THEN s.epoch ELSE EXCLUDED.epoch END"
                " WHERE s.worker_id = EXCLUDED.worker_id OR NOT EXISTS (SELECT 1 FROM workers AS w"
                f" WHERE w.worker_id = s.worker_id AND {_live('$4', 'w')})"
                " RETURNING worker_id",
                room_id,
                shard,
                worker_id,
                self.ttl_s,
                lease_epoch,
            )
            if placed is None:
                placed = await conn.fetchval(
                    "SELECT worker_id FROM shards WHERE room_id = $1 AND shard = $2", room_id, shard
                )
        if placed is None:  # never placed, and not ours to place (or deleted meanwhile: nothing deletes shards)
            raise StorageError(
                f"shard {shard} of room {room_id} not placed: the room's lease is not epoch {lease_epoch}"
            )
        return str(placed)

    async def shards(self, room_id: str) -> list[ShardRow]:
        """Where each shard of a room is, by shard number, with whether its worker is live, so the coordinator
        sees in one read which shards need placing again. `url` is "" when the worker's row is gone."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT s.shard, s.worker_id, coalesce(w.url, ''),"
                f" coalesce({_live('$2', 'w')}, FALSE), s.epoch"
                " FROM shards AS s LEFT JOIN workers AS w USING (worker_id) WHERE s.room_id = $1 ORDER BY s.shard",
                room_id,
                self.ttl_s,
            )
        return [ShardRow(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    async def dead_shards(self, room_ids: Sequence[str]) -> dict[str, list[int]]:
        """The shards of these rooms whose worker is not live (its row gone or its heartbeat past the TTL), by room:
        one read per heartbeat for every room a worker coordinates, not one per room."""
        if not room_ids:
            return {}
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT s.room_id, s.shard FROM shards AS s LEFT JOIN workers AS w USING (worker_id)"
                f" WHERE s.room_id = ANY($1::text[]) AND NOT coalesce({_live('$2', 'w')}, FALSE)"
                " ORDER BY s.room_id, s.shard",
                list(room_ids),
                self.ttl_s,
            )
        dead: dict[str, list[int]] = {}
        for row in rows:
            dead.setdefault(row[0], []).append(row[1])
        return dead
