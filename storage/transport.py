"""The cluster's transport on PostgreSQL: messages between workers, durable, with `NOTIFY` as the doorbell.

Each message is a row of `cluster_messages` for its recipient, inserted in the same statement as the `NOTIFY` on
the recipient's channel; the notification carries the message itself when it fits (under 8,000 bytes), so the
usual delivery costs no read. The recipient also reads its rows — at once when a notification shows a gap in a
sender's numbering or carries no payload (a message too big for NOTIFY), after its listening connection comes
back, and every `drain_every_s` in any case — and deletes what it read. So a lost notification, a listener that
was down, or a long payload loses nothing, and per-sender numbers (`_seq`, per recipient) make sure nothing is
applied twice and each sender's messages apply in the order sent. Rows a dead recipient never read are pruned.

Sending is fire-and-forget and ordered per sender (one queue, one task, one statement per burst). A message is at
most `max_payload` bytes; senders ask the transport rather than knowing the number.

Swapping the transport (a durable log, another broker) means another class with the same three members: `send`,
`listen` and `max_payload` (`quizroom.rooms.cluster.directory.Transport`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson
import structlog
from asyncpg.pool import PoolConnectionProxy

from quizroom.storage.base import StorageError
from quizroom.storage.postgres import _describe

if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

log = structlog.get_logger("quizroom.storage.transport")

CHANNEL_PREFIX = "quizroom_"
MAX_NOTIFY_BYTES = 7_900
"""PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more: a longer message rings the doorbell with no payload."""
MAX_PAYLOAD_BYTES = 256 * 1024
"""The largest message (`send` refuses more): a row, read by the recipient; far beyond any event or request."""
PRUNE_AFTER_S = 60.0  # rows older than this were meant for a worker that died: nobody will read them

_BATCH_BYTES = 1 << 20  # one NOTIFY statement carries at most about this many payload bytes

# Worker ids become channel names: a plain identifier, and short enough for NAMEDATALEN (63) with the prefix.
WORKER_ID = re.compile(r"^[A-Za-z0-9_]{1,54}$")

# Fields every message gains in `send`: who sent it, which incarnation of the sender, and its per-sender number.
FROM_FIELD = "_from"
EPOCH_FIELD = "_epoch"
SEQ_FIELD = "_seq"

FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


class PgTransport:
    """One worker's end of the messaging: a sender over pooled connections, and one connection that only listens,
    so a slow query can never delay the delivery of a message and vice versa."""

    max_payload = MAX_PAYLOAD_BYTES

    def __init__(
        self,
        dsn: str,
        worker_id: str,
        connection: Callable[[], AbstractAsyncContextManager[Connection]],
        *,
        command_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        send_retry_s: float = 5.0,
        keepalive_s: float = 5.0,
        drain_every_s: float = 1.0,
    ) -> None:
        """`connection` lends a pooled connection (the directory's pool), failing with `StorageError`."""
        self.dsn = dsn
        self.worker_id = worker_id
        self._connection = connection
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.send_retry_s = send_retry_s
        self.keepalive_s = keepalive_s
        self.drain_every_s = drain_every_s
        self.channel = CHANNEL_PREFIX + worker_id
        self._open = False
        # Sending.
        self._epoch = secrets.token_hex(4)
        self._seq: dict[str, int] = {}  # recipient → last number given: each recipient sees 1, 2, 3… from us
        self._outbox: deque[tuple[str, str, str]] = deque()  # (recipient, notification payload, message)
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
        self._delivered: dict[tuple[str, str], int] = {}  # (sender, epoch) → every number up to this was applied
        self._held: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}  # arrived ahead of a gap, by number
        self._drainer: asyncio.Task[None] | None = None
        self._drain_again = False
        self._poller: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self.reconnects = 0
        self.drained = 0  # messages that came from the table rather than a notification (for tests and metrics)

    def open(self) -> None:
        self._open = True
        self._closing = False
        self._sender = asyncio.create_task(self._send_loop(), name=f"cluster-sender-{self.worker_id}")

    async def close(self) -> None:
        """Stop listening and sending. Messages still queued get one short chance to go out (a clean stop usually
        ends with a few last events); after that they are dropped, as any message may be."""
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
        for task in (self._supervisor, self._poller, self._drainer):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._supervisor = self._poller = self._drainer = None
        await self._drop_listener()
        self._open = False

    # --- messaging: sending -------------------------------------------------------------------------------------

    def send(self, worker_id: str, message: dict[str, Any]) -> None:
        """Queue a message for a worker and return at once (fire-and-forget).

        Ordered per sender: every message goes through one queue drained by one task, and everything queued is
        sent in one statement (the rows and their notifications), so a burst costs one round trip and arrives in
        the order it was sent. The message is encoded now (later changes to the dict do not leak into it) with
        `_from`, `_epoch` and `_seq` added: the number, counted per recipient, keeps PostgreSQL from collapsing
        identical payloads sent in one transaction and lets the recipient put messages in order and drop a copy
        it already applied. Raises ValueError when the encoded message exceeds `MAX_PAYLOAD_BYTES`, and
        `StorageError` when the cluster is not open."""
        if not WORKER_ID.match(worker_id):
            raise ValueError(f"not a worker id: {worker_id!r}")
        if not self._open or self._closing:
            raise StorageError("cluster is not open")
        seq = self._seq.get(worker_id, 0) + 1
        payload = orjson.dumps({**message, FROM_FIELD: self.worker_id, EPOCH_FIELD: self._epoch, SEQ_FIELD: seq})
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"message of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
        self._seq[worker_id] = seq
        text = payload.decode()
        self._outbox.append((worker_id, text if len(payload) <= MAX_NOTIFY_BYTES else "", text))
        self._outbox_wake.set()

    async def _send_loop(self) -> None:
        while True:
            if not self._outbox:
                if self._closing:
                    return
                self._outbox_wake.clear()
                await self._outbox_wake.wait()
                continue
            burst: list[tuple[str, str, str]] = []
            size = 0
            while self._outbox and size < _BATCH_BYTES:
                item = self._outbox.popleft()
                burst.append(item)
                size += len(item[2])
            try:
                await self._send_batch(burst)
            except Exception:  # anything unforeseen loses this burst, never the sender
                log.exception("cluster_send_dropped", messages=len(burst))

    async def _send_batch(self, burst: list[tuple[str, str, str]]) -> None:
        """One statement for the whole burst: the rows, then a notification per message; retried with backoff
        for `send_retry_s`, then dropped. Later messages wait behind it, so the order holds even across retries,
        and a recipient that is notified of a message finds every earlier one of ours already stored."""
        recipients = [r for r, _, _ in burst]
        channels = [CHANNEL_PREFIX + r for r in recipients]
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                async with self._connection() as conn:
                    # unnest yields the arrays in order and pg_notify queues in call order; a transaction's
                    # notifications are delivered, after its commit, in the order they were queued.
                    await conn.execute(
                        "WITH stored AS (INSERT INTO cluster_messages (worker_id, body)"
                        " SELECT * FROM unnest($1::text[], $2::text[]) RETURNING 1)"
                        " SELECT pg_notify(m.c, m.p) FROM unnest($3::text[], $4::text[]) AS m(c, p)",
                        recipients,
                        [m for _, _, m in burst],
                        channels,
                        [n for _, n, _ in burst],
                    )
                return
            except StorageError as exc:
                elapsed = time.monotonic() - started
                if elapsed >= self.send_retry_s or (self._closing and elapsed >= min(2.0, self.send_retry_s)):
                    log.error("cluster_send_dropped", messages=len(burst), error=str(exc))
                    return
                log.warning("cluster_send_retry", messages=len(burst), error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # --- messaging: listening -----------------------------------------------------------------------------------

    async def listen(
        self, callback: Callable[[dict[str, Any]], None], *, on_reconnect: Callable[[], None] | None = None
    ) -> None:
        """Deliver every message sent to this worker's channel to `callback`, in arrival order (per sender: in
        sending order), each once.

        Returns once listening, so anything sent after it returns is delivered. A dedicated connection listens;
        if it drops (database restart, network, `pg_terminate_backend`), it is reconnected with backoff, what was
        sent meanwhile is read from the table, and `on_reconnect` is called. A connection that went silently dead
        (no FIN) is found by a periodic probe, and the table is read every `drain_every_s` whatever happens. A
        callback that raises is logged, not retried: the next message still arrives. Calling it again replaces
        the callbacks."""
        if not self._open:
            raise StorageError("cluster is not open")
        self._callback = callback
        self._on_reconnect = on_reconnect
        if self._supervisor is None:
            self._listen_ready.clear()
            await self._connect_listener()  # the first connection: its failure is the caller's to see
            self._listen_ready.set()
            self._supervisor = asyncio.create_task(self._supervise(), name=f"cluster-listener-{self.worker_id}")
            self._poller = asyncio.create_task(self._poll(), name=f"cluster-drain-{self.worker_id}")

    async def _connect_listener(self) -> None:
        try:
            conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
                self.dsn,
                timeout=self.connect_timeout_s,
                command_timeout=self.command_timeout_s,
                server_settings={"application_name": f"quizroom-listen-{self.worker_id}"},
            )
        except FAILURES as exc:
            raise StorageError(f"cannot connect the listener: {_describe(exc)}") from exc
        try:
            self._listen_lost.clear()
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(self.channel, self._on_notification)
        except BaseException as exc:  # cancelled included: never leave a half-set-up connection behind
            conn.terminate()
            if isinstance(exc, FAILURES):
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
            except FAILURES:
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
            self.drain()  # what was sent while nobody listened is in the table
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
        except FAILURES:
            return False
        return True

    def _on_notification(
        self, _conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any], _pid: int, _channel: str, payload: object
    ) -> None:
        if not isinstance(payload, str):
            return
        if not payload:  # a doorbell: the message was too big to come along
            self.drain()
            return
        message = _decode(payload)
        if message is not None:
            self._arrived(message, from_table=False)

    def _arrived(self, message: dict[str, Any], *, from_table: bool) -> None:
        """Deliver in each sender's order, once: a message ahead of a gap waits for a read of the table (a
        notification of number n means that every earlier message from that sender is stored)."""
        sender = (str(message.get(FROM_FIELD, "")), str(message.get(EPOCH_FIELD, "")))
        seq = message.get(SEQ_FIELD)
        if not isinstance(seq, int):
            self._deliver(message)
            return
        done = self._delivered.get(sender, 0)
        if seq <= done:
            return  # applied already: its row, read later, or a copy resent after an ambiguous failure
        if seq == done + 1:
            self._delivered[sender] = seq
            if from_table:
                self.drained += 1
            self._deliver(message)
            self._release(sender)
            return
        self._held.setdefault(sender, {})[seq] = message
        if not from_table:
            self.drain()

    def _release(self, sender: tuple[str, str]) -> None:
        held = self._held.get(sender)
        while held:
            following = held.pop(self._delivered[sender] + 1, None)
            if following is None:
                return
            self._delivered[sender] += 1
            self._deliver(following)
        self._held.pop(sender, None)

    def _deliver(self, message: dict[str, Any]) -> None:
        callback = self._callback
        if callback is None:
            return
        try:
            callback(message)
        except Exception:
            log.exception("cluster_callback_failed")

    # --- messaging: reading the table ---------------------------------------------------------------------------

    def drain(self) -> None:
        """Read this worker's rows soon (one read at a time; asked again meanwhile, once more afterwards)."""
        if self._drainer is not None and not self._drainer.done():
            self._drain_again = True
            return
        if self._open and not self._closing:
            self._drainer = asyncio.get_running_loop().create_task(self._drain(), name=f"drain-{self.worker_id}")

    async def _drain(self) -> None:
        while True:
            self._drain_again = False
            try:
                await self._read_table()
            except StorageError as exc:
                log.warning("cluster_drain_failed", error=str(exc))
                return  # the next poll tries again
            if not self._drain_again:
                return

    async def _read_table(self) -> None:
        """Everything stored for us, applied in each sender's order (skipping what was applied); then the rows
        read are deleted. A sender's number missing from the table after the read was dropped by its sender (its
        retries ran out): what is held behind it goes out, in order."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT id, body FROM cluster_messages WHERE worker_id = $1 ORDER BY id", self.worker_id
            )
        for row in rows:
            message = _decode(row[1])
            if message is not None:
                self._arrived(message, from_table=True)
        for sender, held in list(self._held.items()):
            for seq in sorted(held):
                if seq > self._delivered.get(sender, 0):
                    log.warning("cluster_message_missing", sender=sender[0], after=self._delivered.get(sender, 0))
                    self._delivered[sender] = seq
                    self._deliver(held[seq])
            self._held.pop(sender, None)
        if not rows:
            return
        async with self._connection() as conn:
            await conn.execute("DELETE FROM cluster_messages WHERE id = ANY($1::bigint[])", [row[0] for row in rows])

    async def _poll(self) -> None:
        """Read the table every `drain_every_s` (a notification can be lost without the listener noticing), and
        now and then prune what dead recipients left."""
        while True:
            await asyncio.sleep(self.drain_every_s)
            self.drain()
            now = time.monotonic()
            if now - self._last_prune >= PRUNE_AFTER_S / 2:
                self._last_prune = now
                try:
                    async with self._connection() as conn:
                        await conn.execute(
                            "DELETE FROM cluster_messages WHERE sent_at < now() - make_interval(secs => $1)",
                            PRUNE_AFTER_S,
                        )
                except StorageError as exc:
                    log.warning("cluster_prune_failed", error=str(exc))


def _decode(payload: str) -> dict[str, Any] | None:
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.error("cluster_bad_payload", payload=payload[:200])
        return None
    if not isinstance(message, dict):
        log.error("cluster_bad_payload", payload=payload[:200])
        return None
    return message
