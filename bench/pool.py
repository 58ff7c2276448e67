"""The coordinator's side of the load: a pool of worker processes, and the host's socket.

The coordinator never holds player sockets: it splits the players over the workers, stamps the host's commands
on CLOCK_MONOTONIC and turns the workers' raw timestamps into figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from multiprocessing.connection import Connection
from time import monotonic_ns
from typing import Any

from websockets.exceptions import InvalidHandshake

from .control import Control, ControlError, RoomInfo
from .target import sample_process
from .worker import (
    ACKS,
    ERRORS,
    JOINED,
    QUESTIONS,
    RECONNECT_CODES,
    RECONNECTS,
    SLOTS,
    backoff_s,
    read_pipe,
    worker_main,
)
from .wsconn import WSConn, open_ws


class WorkerFailed(RuntimeError):
    """A worker raised while running a command (its traceback is the message) or died."""


class LoadPool:
    """N spawned worker processes pinned to the load CPUs; `call`/`each` run a command and await the replies."""

    def __init__(self, procs: int, cpus: tuple[int, ...] | None) -> None:
        self.procs, self.cpus = procs, cpus
        self.progress: Any = mp.get_context("spawn").RawArray("q", procs * SLOTS)
        self._pipes: list[Connection] = []
        self._processes: list[Any] = []
        self._pending: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._ids = 0

    async def start(self) -> None:
        ctx = mp.get_context("spawn")
        loop = asyncio.get_running_loop()
        for wid in range(self.procs):
            ours, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=worker_main,
                args=(theirs, wid, self.cpus, self.progress),
                daemon=True,
                name=f"quizroom-bench-load-{wid}",
            )
            proc.start()
            theirs.close()
            self._pipes.append(ours)
            self._processes.append(proc)
            threading.Thread(
                target=read_pipe,
                args=(ours, loop, partial(self._reply, wid)),
                daemon=True,
                name=f"quizroom-bench-pipe-{wid}",
            ).start()

    def _reply(self, wid: int, message: tuple[int, bool, Any] | None) -> None:
        if message is None:  # the worker is gone: fail whatever still waits for it
            for cid, (owner, fut) in list(self._pending.items()):
                if owner == wid and not fut.done():
                    fut.set_exception(WorkerFailed(f"load worker {wid} died"))
                    del self._pending[cid]
            return
        call_id, ok, result = message
        _, fut = self._pending.pop(call_id)
        if fut.done():  # the caller gave up (cancelled run)
            return
        if ok:
            fut.set_result(result)
        else:
            fut.set_exception(WorkerFailed(f"load worker {wid}:\n{result}"))

    def call(self, wid: int, command: str, **kwargs: Any) -> asyncio.Future[Any]:
        self._ids += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = (wid, fut)
        self._pipes[wid].send((self._ids, command, kwargs))
        return fut

    async def each(self, command: str, per_worker: Sequence[dict[str, Any]]) -> list[Any]:
        return list(await asyncio.gather(*(self.call(w, command, **kw) for w, kw in enumerate(per_worker))))

    async def all(self, command: str, **kwargs: Any) -> list[Any]:
        return await self.each(command, [kwargs] * self.procs)

    def split(self, n: int) -> list[range]:
        """Player indexes per worker, as even as possible."""
        base, extra = divmod(n, self.procs)
        out, start = [], 0
        for wid in range(self.procs):
            size = base + (1 if wid < extra else 0)
            out.append(range(start, start + size))
            start += size
        return out

    def totals(self) -> dict[str, int]:
        sums = [sum(self.progress[w * SLOTS + s] for w in range(self.procs)) for s in range(SLOTS)]
        return {
            "joined": sums[JOINED],
            "questions": sums[QUESTIONS],
            "acks": sums[ACKS],
            "errors": sums[ERRORS],
            "reconnects": sums[RECONNECTS],
        }

    async def take_reconnects(self) -> dict[str, int]:
        """Players the workers brought back after the server dropped them (1001, 1006, 4421), by close code."""
        merged: Counter[str] = Counter()
        for reply in await self.all("take_reconnects"):
            merged.update(reply)
        return dict(sorted(merged.items()))

    def cpu_seconds(self) -> float:
        """User+system CPU seconds used so far by the load processes."""
        samples = (sample_process(p.pid) for p in self._processes if p.pid is not None)
        return sum(x.cpu_s for x in samples if x is not None)

    async def stop(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send((0, "exit", {}))
        for proc in self._processes:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.terminate()
                await asyncio.to_thread(proc.join, 5)
        for pipe in self._pipes:
            pipe.close()


class HostSocket:
    """The host's socket: sends commands (stamped just before the write) and waits for `state` or `error`.

    When the server drops it (1001, 1006, 4421 moved: the room's coordinator changed), it reads `host_ws_url` from
    `GET /api/rooms/{pin}` and reconnects with backoff; meanwhile commands go over HTTP, and a command whose
    socket dropped before the answer is asked again over HTTP (one that already ran answers 409 `bad_phase`).
    """

    def __init__(self, room: RoomInfo, control: Control, via_http: bool) -> None:
        self.room, self.control, self.via_http = room, control, via_http
        self.conn: WSConn | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._welcome: asyncio.Future[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._wait_s = 30.0
        self._closing = False
        self.reconnects = 0
        self.rtts: list[int] = []
        self.closed_questions: set[int] = set()

    async def open(self, wait_s: float = 30.0) -> None:
        self._wait_s = wait_s
        self._welcome = asyncio.get_running_loop().create_future()
        self.conn = await open_ws(self.room.host_ws_url, self._on_message, self._on_close, wait_s)
        self.conn.send({"type": "hello", "token": self.room.host_token})
        async with asyncio.timeout(wait_s):
            await self._welcome

    def _on_close(self, conn: WSConn, code: int | None) -> None:
        if conn is not self.conn or self._closing:
            return
        self._replies.put_nowait({"type": "closed", "code": code})
        if self._welcome is not None and not self._welcome.done():
            self._welcome.set_exception(ConnectionError(f"host socket closed {code} before welcome"))
        elif code in RECONNECT_CODES and self._recovery is None:
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        """Ask where the host socket goes now, reconnect; give up on a final refusal or after `wait_s`."""
        deadline = monotonic_ns() + int(self._wait_s * 1e9)
        try:
            attempt = 0
            while monotonic_ns() < deadline:
                await asyncio.sleep(backoff_s(attempt))
                attempt += 1
                try:
                    url = await self.control.host_ws_url(self.room)
                except ControlError as exc:
                    if exc.final:
                        return
                    url = None  # unreachable, or a server without the extension: try the URL we have
                if url is not None:
                    self.room = replace(self.room, host_ws_url=url)
                try:
                    await self.open(self._wait_s)
                except (OSError, TimeoutError, InvalidHandshake):
                    continue
                self.reconnects += 1
                return
        finally:
            self._recovery = None

    def _on_message(self, conn: WSConn, msg: dict[str, Any], now: int) -> None:
        kind = msg.get("type")
        if kind in ("state", "error"):
            self._replies.put_nowait(msg)
        elif kind == "welcome" and self._welcome is not None and not self._welcome.done():
            self._welcome.set_result(None)
        elif kind in ("leaderboard", "result"):
            self.closed_questions.add(int(msg.get("question", -1)))
        elif kind == "pong" and isinstance(msg.get("t"), int):
            self.rtts.append(now - msg["t"])

    def start_probe(self, interval_s: float = 0.1) -> None:
        """Ping every `interval_s` on the host socket: the RTT is an upper bound on the server's event-loop lag.

        Why here and not in a load process: a worker is itself busy during a burst and would stamp the pong late.
        """
        self.rtts = []

        async def loop() -> None:
            while True:  # (skips while the socket is down, goes on after a reconnect)
                if self.conn is not None and not self.conn.closed:
                    self.conn.send({"type": "ping", "t": monotonic_ns()})
                await asyncio.sleep(interval_s)

        if self._probe is None:
            self._probe = asyncio.create_task(loop())

    def stop_probe(self) -> list[int]:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        rtts, self.rtts = self.rtts, []
        return rtts

    async def command(self, name: str, wait_s: float = 60.0) -> tuple[int, dict[str, Any]]:
        """Send one host command; returns (send time ns, the `state` or `error` reply)."""
        if self.via_http or self.conn is None or self.conn.closed:
            return await self._http_command(name)
        while not self._replies.empty():
            self._replies.get_nowait()
        sent_ns = monotonic_ns()
        self.conn.send({"type": name})
        async with asyncio.timeout(wait_s):
            reply = await self._replies.get()
        if reply.get("type") == "closed":  # the socket dropped before the answer: ask again over HTTP
            _, reply = await self._http_command(name)
        return sent_ns, reply

    async def _http_command(self, name: str) -> tuple[int, dict[str, Any]]:
        sent_ns = monotonic_ns()
        try:
            state = await self.control.command(self.room, name)
        except ControlError as exc:
            return sent_ns, {"type": "error", "code": exc.code}
        return sent_ns, {"type": "state", **(state if isinstance(state, dict) else {})}

    def close(self) -> None:
        self._closing = True
        if self._recovery is not None:
            self._recovery.cancel()
        self.stop_probe()
        if self.conn is not None:
            self.conn.close()
