"""The cluster's transport on PostgreSQL: messages between workers as `NOTIFY` on each worker's channel.

Messages are fire-and-forget and ordered per sender (one queue, one task, one statement per burst). They are not
durable: a message sent while its receiver's listening connection is down is lost, and the receiver is told
through `on_reconnect` so that it resynchronises from the database. A payload is at most `max_payload` bytes
(PostgreSQL refuses 8,000 or more); senders ask the transport rather than knowing the number.

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
MAX_PAYLOAD_BYTES = 7_900
"""PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more; we keep a margin and refuse early, in `send`."""

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
    ) -> None:
        """`connection` lends a pooled connection (the directory's pool), failing with `StorageError`."""
        self.dsn = dsn
        self.worker_id = worker_id
        self._connection = connection
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.send_retry_s = send_retry_s
        self.keepalive_s = keepalive_s
        self.channel = CHANNEL_PREFIX + worker_id
        self._open = False
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
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop_listener()
        self._open = False

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
        if not WORKER_ID.match(worker_id):
            raise ValueError(f"not a worker id: {worker_id!r}")
        if not self._open or self._closing:
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
        if not self._open:
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
