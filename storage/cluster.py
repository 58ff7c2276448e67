"""The PostgreSQL side of a cluster of workers: membership, coordinator leases, shard placement and messaging.

No broker and no cluster manager: rows with an expiry for membership and ownership, `LISTEN/NOTIFY` for the few
events a room emits per question (docs/scaling.md).

- **One clock.** Every expiry is written and compared with the database's `now()`, never a worker's clock, so
  workers whose clocks disagree still agree on who is live and who holds what.
- **Live** means: the worker's heartbeat is younger than `ttl_s`. A lease **holds** while it is unexpired *and*
  its worker is live; everything that reads or takes leases uses that one definition, so "nobody holds it" and
  "I may take it" never disagree.
- **Compare-and-set.** Taking a lease, placing or moving a shard is one conditional statement on the row;
  PostgreSQL's row locks serialise racing workers, and exactly one of them wins.
- **Messages** are fire-and-forget and ordered per sender (one queue, one task, one statement per burst). They are
  not durable: a message sent while its receiver's listening connection is down is lost, and the receiver is told
  through `on_reconnect` so that it resynchronises from the database.

Every driver, network or server failure surfaces as `StorageError`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson
import structlog
from asyncpg.pool import PoolConnectionProxy

from quizroom.storage.base import StorageError
from quizroom.storage.postgres import _describe, _keep_session
from quizroom.storage.records import ShardRow, WorkerRow

if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

__all__ = ["CHANNEL_PREFIX", "MAX_PAYLOAD_BYTES", "PgCluster", "ShardRow", "WorkerRow"]

log = structlog.get_logger("quizroom.storage.cluster")

CHANNEL_PREFIX = "quizroom_"
MAX_PAYLOAD_BYTES = 7_900
"""PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more; we keep a margin and refuse early, in `send`."""

_BATCH_BYTES = 1 << 20  # one NOTIFY statement carries at most about this many payload bytes

# Worker ids become channel names: a plain identifier, and short enough for NAMEDATALEN (63) with the prefix.
_WORKER_ID = re.compile(r"^[A-Za-z0-9_]{1,54}$")

# Fields every message gains in `send`: who sent it, which incarnation of the sender, and its per-sender number.
FROM_FIELD = "_from"
EPOCH_FIELD = "_epoch"
SEQ_FIELD = "_seq"

_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def _live(ttl_param: str, alias: str = "") -> str:
    """SQL for "the worker is live": its heartbeat is younger than the TTL (a float8 parameter), by the database's
    clock."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}heartbeat_at > now() - make_interval(secs => {ttl_param})"


class PgCluster:
    """One worker's view of the cluster, on a PostgreSQL database shared by every worker.

    Uses its own small pool (1–3 connections) for membership, leases and sending, plus one dedicated connection
    that only listens, so a slow query can never delay the delivery of a message and vice versa.
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
    ) -> None:
        if not _WORKER_ID.match(worker_id):
            raise ValueError(f"worker ids are 1–54 letters, digits or underscores: {worker_id!r}")
        self.dsn = dsn
        self.worker_id = worker_id
        self.url = url
        self.ttl_s = float(ttl_s)
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.send_retry_s = send_retry_s
        self.keepalive_s = keepalive_s
        self.channel = CHANNEL_PREFIX + worker_id
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._registration: tuple[int, str] | None = None  # (pid, hostname), for heartbeats that must re-insert
        # Sending.
        self._epoch = secrets.token_hex(4)
        self._seq = 0
        self._outbox: deque[tuple[str, str]] = deque()
        self._outbox_wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closing = False
        # Listening.
        self._callback: Callable[[dict[str, Any]], None] | None = None
        self._on_reconnect: Callable[[], None] | None = None
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._listen_lost = asyncio.Event()
        self._listen_ready = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._last_seq: dict[tuple[str, str], int] = {}  # (sender, epoch) → last delivered number
        self.reconnects = 0

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
                max_size=3,
                command_timeout=self.command_timeout_s,
                timeout=self.connect_timeout_s,
                server_settings={"application_name": f"quizroom-cluster-{self.worker_id}"},
                reset=_keep_session,
            )
        except _FAILURES as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {_describe(exc)}") from exc
        self._closing = False
        self._sender = asyncio.create_task(self._send_loop(), name=f"cluster-sender-{self.worker_id}")

    async def close(self) -> None:
        """Stop listening and sending, then disconnect. Messages still queued get one short chance to go out
        (a clean stop usually ends with a few last events); after that they are dropped, as any message may be."""
        self._closing = True
        self._outbox_wake.set()
        if self._sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), timeout=min(2.0, self.send_retry_s))
            except TimeoutError:
                self._sender.cancel()
                with suppress(asyncio.CancelledError):
                    await self._sender
            self._sender = None
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop_listener()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=self.command_timeout_s)
            except _FAILURES:
                pool.terminate()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; every failure to reach or use the database becomes `StorageError` (a constraint
        violation too: here it means a room that does not exist)."""
        if self._pool is None:
            raise StorageError("cluster is not open")
        try:
            async with self._pool.acquire(timeout=self.connect_timeout_s) as conn:
                yield conn
        except _FAILURES as exc:
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

    async def heartbeat(self, load: int) -> set[str]:
        """Prove this worker alive and renew every lease it holds, in one transaction, and return the room_ids
        renewed.

        Heartbeat and leases move together, so a worker is never live with lapsed leases nor the other way round.
        The returned set is the truth about which coordinators this worker may keep running: a room it
        coordinates that is missing from the set was taken over (its lease lapsed and another worker took it),
        and it must stop coordinating it. The worker row is re-inserted if it vanished, so a heartbeat after a
        database restore still registers the worker."""
        if self._registration is None:
            raise RuntimeError("register() before heartbeat()")
        pid, hostname = self._registration
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO workers (worker_id, url, pid, hostname, load, started_at, heartbeat_at)"
                " VALUES ($1, $2, $3, $4, $5, now(), now())"
                " ON CONFLICT (worker_id) DO UPDATE SET load = EXCLUDED.load, heartbeat_at = now()",
                self.worker_id,
                self.url,
                pid,
                hostname,
                load,
            )
            rows = await conn.fetch(
                "UPDATE room_leases SET expires_at = now() + make_interval(secs => $2)"
                " WHERE worker_id = $1 RETURNING room_id",
                self.worker_id,
                self.ttl_s,
            )
        return {row[0] for row in rows}

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

    async def acquire_lease(self, room_id: str) -> bool:
        """Become the coordinator of a room: True when this worker holds the lease afterwards.

        One compare-and-set statement: insert the lease, or take the existing one over only if it no longer holds
        (expired, or its worker is dead) or is already ours (then it is renewed). When several workers race, the
        row lock makes them take turns and each later one re-checks the condition against the winner's row, so
        exactly one wins. The room must exist (foreign key), else `StorageError`."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "INSERT INTO room_leases AS l (room_id, worker_id, expires_at)"
                " VALUES ($1, $2, now() + make_interval(secs => $3))"
                " ON CONFLICT (room_id) DO UPDATE SET worker_id = EXCLUDED.worker_id,"
                " expires_at = EXCLUDED.expires_at"
                " WHERE l.worker_id = EXCLUDED.worker_id OR l.expires_at <= now()"
                " OR NOT EXISTS (SELECT 1 FROM workers AS w"
                f" WHERE w.worker_id = l.worker_id AND {_live('$3', 'w')})"
                " RETURNING worker_id",
                room_id,
                self.worker_id,
                self.ttl_s,
            )
        return row is not None

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

    async def place_shard(self, room_id: str, shard: int, worker_id: str) -> str:
        """Place a shard on a worker unless it is already placed on a live one; return the worker that holds it
        afterwards.

        Compare-and-set: the upsert only replaces a dead worker. When two coordinators (an old one and the one
        that took over) place the same shard at once, the loser's upsert does nothing and it reads the winner's
        choice, so both tell their players the same `ws_url`. The read is a separate statement on purpose: a
        statement's snapshot predates the racing commit it waited for, and would not see the winner's row."""
        async with self._connection() as conn:
            placed = await conn.fetchval(
                "INSERT INTO shards AS s (room_id, shard, worker_id) VALUES ($1, $2, $3)"
                " ON CONFLICT (room_id, shard) DO UPDATE SET worker_id = EXCLUDED.worker_id"
                " WHERE s.worker_id = EXCLUDED.worker_id OR NOT EXISTS (SELECT 1 FROM workers AS w"
                f" WHERE w.worker_id = s.worker_id AND {_live('$4', 'w')})"
                " RETURNING worker_id",
                room_id,
                shard,
                worker_id,
                self.ttl_s,
            )
            if placed is None:
                placed = await conn.fetchval(
                    "SELECT worker_id FROM shards WHERE room_id = $1 AND shard = $2", room_id, shard
                )
        if placed is None:  # deleted between our two statements: nothing deletes shards, so this is a bug
            raise StorageError(f"shard {shard} of room {room_id} vanished while being placed")
        return str(placed)

    async def shards(self, room_id: str) -> list[ShardRow]:
        """Where each shard of a room is, by shard number, with whether its worker is live, so the coordinator
        sees in one read which shards need placing again. `url` is "" when the worker's row is gone."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT s.shard, s.worker_id, coalesce(w.url, ''),"
                f" coalesce({_live('$2', 'w')}, FALSE)"
                " FROM shards AS s LEFT JOIN workers AS w USING (worker_id) WHERE s.room_id = $1 ORDER BY s.shard",
                room_id,
                self.ttl_s,
            )
        return [ShardRow(row[0], row[1], row[2], row[3]) for row in rows]

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

    # --- messaging: sending -------------------------------------------------------------------------------------

    def send(self, worker_id: str, message: dict[str, Any]) -> None:
        """Queue a message for a worker's channel and return at once (fire-and-forget).

        Ordered per sender: every message goes through one queue drained by one task, and everything queued is
        sent in one statement, so a burst costs one round trip and arrives in the order it was sent. The message
        is encoded now (later changes to the dict do not leak into it) with `_from`, `_epoch` and `_seq` added:
        the number keeps PostgreSQL from collapsing identical payloads sent in one transaction, and lets the
        receiver drop a copy resent after a failure whose commit had in fact gone through. Raises ValueError when
        the encoded payload exceeds `MAX_PAYLOAD_BYTES` (PostgreSQL would refuse the whole burst), and
        `StorageError` when the cluster is not open. Not durable: see `listen`."""
        if not _WORKER_ID.match(worker_id):
            raise ValueError(f"not a worker id: {worker_id!r}")
        if self._pool is None or self._closing:
            raise StorageError("cluster is not open")
        seq = self._seq + 1
        payload = orjson.dumps({**message, FROM_FIELD: self.worker_id, EPOCH_FIELD: self._epoch, SEQ_FIELD: seq})
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"message of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte NOTIFY limit")
        self._seq = seq
        self._outbox.append((CHANNEL_PREFIX + worker_id, payload.decode()))
        self._outbox_wake.set()

    async def _send_loop(self) -> None:
        while True:
            if not self._outbox:
                if self._closing:
                    return
                self._outbox_wake.clear()
                await self._outbox_wake.wait()
                continue
            channels: list[str] = []
            payloads: list[str] = []
            size = 0
            while self._outbox and size < _BATCH_BYTES:
                channel, payload = self._outbox.popleft()
                channels.append(channel)
                payloads.append(payload)
                size += len(payload)
            try:
                await self._send_batch(channels, payloads)
            except Exception:  # anything unforeseen loses this burst, never the sender
                log.exception("cluster_send_dropped", messages=len(payloads))

    async def _send_batch(self, channels: list[str], payloads: list[str]) -> None:
        """One statement for the whole burst; retried with backoff for `send_retry_s`, then dropped. Later
        messages wait behind it, so the order holds even across retries."""
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                async with self._connection() as conn:
                    # unnest yields the arrays in order and pg_notify queues in call order; a transaction's
                    # notifications are delivered in the order they were queued.
                    await conn.execute(
                        "SELECT pg_notify(m.c, m.p) FROM unnest($1::text[], $2::text[]) AS m(c, p)",
                        channels,
                        payloads,
                    )
                return
            except StorageError as exc:
                elapsed = time.monotonic() - started
                if elapsed >= self.send_retry_s or (self._closing and elapsed >= min(2.0, self.send_retry_s)):
                    log.error("cluster_send_dropped", messages=len(payloads), error=str(exc))
                    return
                log.warning("cluster_send_retry", messages=len(payloads), error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # --- messaging: listening -----------------------------------------------------------------------------------

    async def listen(
        self, callback: Callable[[dict[str, Any]], None], *, on_reconnect: Callable[[], None] | None = None
    ) -> None:
        """Deliver every message sent to this worker's channel to `callback`, in arrival order (per sender: in
        sending order), each once.

        Returns once listening, so anything sent after it returns is delivered. A dedicated connection listens;
        if it drops (database restart, network, `pg_terminate_backend`), it is reconnected with backoff and
        `on_reconnect` is called once listening again. Messages sent while it was down are lost — NOTIFY is not
        durable — so that callback is where the caller resynchronises from the database. A connection that went
        silently dead (no FIN) is found by a periodic probe. A callback that raises is logged, not retried: the
        next message still arrives. Calling it again replaces the callbacks."""
        if self._pool is None:
            raise StorageError("cluster is not open")
        self._callback = callback
        self._on_reconnect = on_reconnect
        if self._supervisor is None:
            self._listen_ready.clear()
            await self._connect_listener()  # the first connection: its failure is the caller's to see
            self._listen_ready.set()
            self._supervisor = asyncio.create_task(self._supervise(), name=f"cluster-listener-{self.worker_id}")

    async def _connect_listener(self) -> None:
        try:
            conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
                self.dsn,
                timeout=self.connect_timeout_s,
                command_timeout=self.command_timeout_s,
                server_settings={"application_name": f"quizroom-listen-{self.worker_id}"},
            )
        except _FAILURES as exc:
            raise StorageError(f"cannot connect the listener: {_describe(exc)}") from exc
        try:
            self._listen_lost.clear()
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(self.channel, self._on_notification)
        except BaseException as exc:  # cancelled included: never leave a half-set-up connection behind
            conn.terminate()
            if isinstance(exc, _FAILURES):
                raise StorageError(f"cannot LISTEN: {_describe(exc)}") from exc
            raise
        self._listener = conn

    def _on_terminated(self, conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> None:
        if conn is self._listener:
            self._listen_lost.set()

    async def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        if not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=1.0)
            except _FAILURES:
                conn.terminate()

    async def _supervise(self) -> None:
        """Keep the listening connection up: wait for it to drop (or probe it every `keepalive_s`), then
        reconnect with backoff and tell the caller."""
        while True:
            try:
                await asyncio.wait_for(self._listen_lost.wait(), timeout=self.keepalive_s)
            except TimeoutError:
                if await self._listener_answers():
                    continue
            log.warning("cluster_listener_lost", worker_id=self.worker_id)
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.terminate()
            delay = 0.05
            while True:
                try:
                    await self._connect_listener()
                    break
                except StorageError as exc:
                    log.warning("cluster_listener_reconnect_failed", error=str(exc), delay_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            self.reconnects += 1
            log.info("cluster_listener_reconnected", worker_id=self.worker_id, reconnects=self.reconnects)
            if self._on_reconnect is not None:
                try:
                    self._on_reconnect()
                except Exception:
                    log.exception("cluster_on_reconnect_failed")

    async def _listener_answers(self) -> bool:
        conn = self._listener
        if conn is None or conn.is_closed():
            return False
        try:
            await conn.fetchval("SELECT 1", timeout=min(self.keepalive_s, 2.0))
        except _FAILURES:
            return False
        return True

    def _on_notification(
        self, _conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any], _pid: int, _channel: str, payload: object
    ) -> None:
        if not isinstance(payload, str):
            return
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.error("cluster_bad_payload", payload=payload[:200])
            return
        if not isinstance(message, dict):
            log.error("cluster_bad_payload", payload=payload[:200])
            return
        sender = (str(message.get(FROM_FIELD, "")), str(message.get(EPOCH_FIELD, "")))
        seq = message.get(SEQ_FIELD)
        if isinstance(seq, int):
            if seq <= self._last_seq.get(sender, 0):
                return  # a copy of a message already delivered, resent after an ambiguous failure
            self._last_seq[sender] = seq
        callback = self._callback
        if callback is None:
            return
        try:
            callback(message)
        except Exception:
            log.exception("cluster_callback_failed")
