"""The worker's heartbeat on a thread of its own, so that a busy event loop cannot cost the worker its leases.

Why a thread: the heartbeat is what keeps a worker live and its rooms its own (`PgCluster.heartbeat`: one statement
renewing every lease). On the event loop it waits behind whatever else is ready, and a loop saturated by a thousand
rooms ran it seconds late: measured with 1,000 rooms × 30 players on two workers, each took the other for dead
and moved its shards (1,140 sockets closed 4421, 318 players never saw their game end) with no worker down.
Here it runs on its own loop and its own connection, every `interval_s` by the thread's clock, and needs the GIL
for a few hundred microseconds a beat: a saturated main loop still holds its leases.

What the thread does with a renewal (`vouch`) is up to its owner (`quizroom.rooms.cluster.failover`): extend the
worker's tenure at once when every lease it expected came back, and hand the rest — stopping coordinators whose
lease was lost, releasing shards that moved — to the main loop (`beaten`, through `call_soon_threadsafe`). A
paused process (SIGSTOP) pauses this thread too, and a worker cut from the database cannot renew from here either:
the liveness this gives is honest.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from quizroom.storage.postgres import _describe
from quizroom.storage.transport import FAILURES

log = structlog.get_logger("quizroom.storage.pulse")

#: Proves the worker alive and renews every lease it holds, in one statement (`PgCluster.heartbeat`).
HEARTBEAT_SQL = (
    "WITH beat AS (INSERT INTO workers (worker_id, url, pid, hostname, load, started_at, heartbeat_at)"
    " VALUES ($1, $2, $3, $4, $5, now(), now())"
    " ON CONFLICT (worker_id) DO UPDATE SET load = EXCLUDED.load, heartbeat_at = now() RETURNING 1)"
    " UPDATE room_leases SET expires_at = now() + make_interval(secs => $6)"
    " WHERE worker_id = $1 RETURNING room_id, epoch"
)

#: What a beat hands over: the monotonic time it was sent, what the caller's `snapshot` returned just before, and
#: the leases renewed (room_id → epoch).
Beaten = Callable[[float, Any, dict[str, int]], None]


@dataclass(frozen=True, slots=True)
class BeatHooks:
    """What a heartbeat off the event loop asks of its owner.

    `load()` and `snapshot()` are called on the heartbeat's thread (keep them to atomic reads of plain values),
    `monotonic()` stamps each beat as it is sent; `vouch(sent, snapshot, renewed)` runs on the thread right after
    each renewal; `beaten(sent, snapshot, renewed)` is then scheduled on the event loop.
    """

    monotonic: Callable[[], float]
    load: Callable[[], int]
    snapshot: Callable[[], Any]
    vouch: Beaten
    beaten: Beaten


class Pulse:
    """Beats every `interval_s` on a daemon thread until `stop()`, calling `hooks` (`BeatHooks`); `beaten` runs on
    `loop`."""

    def __init__(
        self,
        dsn: str,
        params: tuple[str, str, int, str, float],
        interval_s: float,
        hooks: BeatHooks,
        *,
        loop: asyncio.AbstractEventLoop,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.params = params  # worker_id, url, pid, hostname, ttl_s
        self.interval_s = interval_s
        self.hooks = hooks
        self.loop = loop
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.beats = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None  # the thread's, once it runs
        self._wake: asyncio.Event | None = None  # set (on the thread's loop) to cut its sleep short

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="quizroom-pulse", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop beating and wait for the thread: a beat landing after the worker deregistered would bring its row
        and its leases back. A beat in flight is bounded by the connection's timeouts."""
        self._stopping.set()
        own, wake = self._own_loop, self._wake
        if own is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # its loop has closed already
                own.call_soon_threadsafe(wake.set)
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self.connect_timeout_s + self.command_timeout_s + 1.0)
            if thread.is_alive():
                log.error("heartbeat_thread_stuck")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException:  # a beat never raises this far (see `_beat`); if it does, say so: liveness is lost
            log.exception("heartbeat_thread_died")
            raise

    async def _run(self) -> None:
        conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._wake = wake = asyncio.Event()
        self._own_loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                began = time.monotonic()
                conn = await self._beat(conn)
                with contextlib.suppress(TimeoutError):  # `stop` sets `wake`: no waiting out the interval
                    await asyncio.wait_for(wake.wait(), max(0.0, self.interval_s - (time.monotonic() - began)))
        finally:
            if conn is not None:
                conn.terminate()

    async def _beat(self, conn: asyncpg.Connection[asyncpg.Record] | None) -> asyncpg.Connection[asyncpg.Record] | None:
        """One heartbeat; returns the connection to use next time (None: reconnect)."""
        worker_id, url, pid, hostname, ttl_s = self.params
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(
                    self.dsn,
                    timeout=self.connect_timeout_s,
                    command_timeout=self.command_timeout_s,
                    server_settings={"application_name": f"quizroom-pulse-{worker_id}"},
                )
            hooks = self.hooks
            snapshot = hooks.snapshot()
            sent = hooks.monotonic()
            rows = await conn.fetch(HEARTBEAT_SQL, worker_id, url, pid, hostname, hooks.load(), ttl_s)
        except FAILURES as exc:
            log.warning("heartbeat_failed", error=_describe(exc))
            if conn is not None:
                conn.terminate()
            return None
        except Exception:  # a bug in a hook: the next beat tries again rather than the thread dying silently
            log.exception("heartbeat_failed")
            return conn
        renewed = {row[0]: row[1] for row in rows}
        self.beats += 1
        try:
            hooks.vouch(sent, snapshot, renewed)
        except Exception:  # the main loop still gets the beat
            log.exception("heartbeat_vouch_failed")
        try:
            self.loop.call_soon_threadsafe(hooks.beaten, sent, snapshot, renewed)
        except RuntimeError:  # the main loop has closed: the worker is stopping
            self._stopping.set()
        return conn
