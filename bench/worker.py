"""A load-generator process: holds a share of the players' sockets and runs the coordinator's commands.

Why processes: one Python event loop saturates one core long before a server does, so the players are spread
over several processes pinned to the load CPUs, each on uvloop. A worker talks to the coordinator over a pipe —
request `(id, command, kwargs)`, reply `(id, ok, result)` — and replies with raw CLOCK_MONOTONIC nanosecond
timestamps; the coordinator, which stamped the host's command on the same clock, computes every statistic.

Players reconnect like real clients: every reconnect first asks `POST /api/rooms/{pin}/resume` where the socket must
go (sharding: a player's worker can change), and a socket the server closes during a run with 1001 (shutting
down), 4421 (moved: wrong worker) or without a close frame (1006) is resumed and reconnected with capped
exponential backoff and jitter; its unacked answers are sent again (a stored one comes back as a duplicate ack,
so the exactly-once check still holds).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from websockets.exceptions import InvalidHandshake

from .control import Control, ControlError, Credentials
from .target import raise_nofile
from .wsconn import WSConn, open_ws

JOINED, QUESTIONS, ACKS, ERRORS, RECONNECTS = range(5)  # progress slots per worker
SLOTS = 5

#: Close codes (SPEC §3) after which a player comes back by itself: 1001 the server is shutting down, 1006 (or no
#: code: no close frame) a dead network, 4421 (sharding extension) moved: the socket reached a worker that does not
#: hold the player's shard. Any other code ends the player's session.
RECONNECT_CODES = frozenset({None, 1001, 1006, 4421})
MOVED = 4421
#: A reconnect keeps trying for the run's `wait_s` (a failover takes `cluster_ttl_s` plus a reload, a restart
#: longer); a socket dropped again right after its welcome goes round at most this many times.
RECONNECT_ROUNDS = 6
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.1, 5.0


def backoff_s(attempt: int) -> float:
    """Capped exponential backoff with full jitter, so a crowd dropped at once does not come back at once."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


class SocketClosed(ConnectionError):
    """The socket closed before its `welcome`; `code` is the close code (None: no close frame)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed {code} before welcome")
        self.code = code


class AnswerRecord(NamedTuple):
    """What happened to one player's answer to one question, as the player saw it."""

    player_id: str
    question: int
    mode: str  # normal | drop_before | drop_after (answer sent, socket dropped before the ack, resent)
    sent: bool  # False: never sent (question closed first, socket gone)
    outcome: str  # ack | error:<code> (refused) | closed:<code> (socket gone for good, no ack) | timeout | missed
    accepted: bool
    duplicate: bool
    response_ms: int | None
    sent_ns: int
    done_ns: int


class Player:
    """One player: its credentials, its current socket and what it has received, keyed by question index."""

    __slots__ = (
        "acks",
        "answered",
        "choices",
        "closed_q",
        "conn",
        "creds",
        "direct",
        "ended",
        "finished",
        "nickname",
        "questions",
        "recovery",
        "results",
        "wait_s",
        "welcome",
        "worker",
    )

    def __init__(self, nickname: str, creds: Credentials, worker: Worker, wait_s: float) -> None:
        self.nickname, self.creds, self.worker, self.wait_s = nickname, creds, worker, wait_s
        self.conn: WSConn | None = None
        self.welcome: asyncio.Future[int] | None = None
        self.questions: dict[int, asyncio.Future[int]] = {}  # index -> receive ns (-1: socket closed first)
        self.direct: dict[int, int] = {}  # index -> receive ns of the `question` message itself
        self.acks: dict[int, asyncio.Future[tuple[int, dict[str, Any]]]] = {}
        self.choices: dict[int, int] = {}  # index -> the choice sent, to send again after a reconnect
        self.answered: set[int] = set()
        self.closed_q: set[int] = set()
        self.results: dict[int, asyncio.Future[int]] = {}  # index -> receive ns of its `result` (-1: socket closed)
        self.finished = False
        self.ended = asyncio.get_running_loop().create_future()  # done on `finished`, or once the socket is gone
        self.recovery: asyncio.Task[None] | None = None  # resume + reconnect after the server dropped us

    def question_future(self, index: int) -> asyncio.Future[int]:
        fut = self.questions.get(index)
        if fut is None:
            fut = self.questions[index] = asyncio.get_running_loop().create_future()
        return fut

    def result_future(self, index: int) -> asyncio.Future[int]:
        fut = self.results.get(index)
        if fut is None:
            fut = self.results[index] = asyncio.get_running_loop().create_future()
        return fut

    def on_message(self, conn: WSConn, msg: dict[str, Any], now: int) -> None:
        if conn is not self.conn:
            return
        kind = msg.get("type")
        if kind == "question":
            index = msg.get("index")
            if isinstance(index, int) and index not in self.direct:
                self.direct[index] = now
                self.worker.bump(QUESTIONS)
                _resolve(self.question_future(index), now)
        elif kind == "answer_ack":
            fut = self.acks.get(msg.get("question", -1))
            if fut is not None and not fut.done():
                fut.set_result((now, msg))
                self.worker.bump(ACKS)
        elif kind == "error":
            pending = [f for f in self.acks.values() if not f.done()]
            if pending:
                pending[0].set_result((now, msg))
            else:
                self.worker.count(f"ws_error:{msg.get('code')}")
        elif kind == "welcome":
            question = msg.get("question")
            if msg.get("phase") == "question" and isinstance(question, dict):
                _resolve(self.question_future(int(question.get("index", -1))), now)
                if msg.get("answered"):
                    self.answered.add(int(question.get("index", -1)))
            if self.welcome is not None and not self.welcome.done():
                self.welcome.set_result(now)
        elif kind in ("result", "leaderboard"):
            index = int(msg.get("question", -1))
            self.closed_q.add(index)
            if kind == "result":
                _resolve(self.result_future(index), now)
        elif kind == "finished":
            self.finished = True
            if not self.ended.done():
                self.ended.set_result(None)

    def on_close(self, conn: WSConn, code: int | None) -> None:
        if conn is not self.conn or (self.finished and code == 4410):
            return  # a socket we dropped or replaced on purpose, or the room finished and closed (4410)
        self.worker.count(f"closed:{code if code is not None else 1006}")
        if self.welcome is not None and not self.welcome.done():
            self.welcome.set_exception(SocketClosed(code))  # `connect` raises; its caller decides
            return
        if code in RECONNECT_CODES:
            if self.recovery is None:  # (one in progress sees this socket gone and goes round again)
                self.recovery = asyncio.create_task(self._recover(code))
            return
        self._abandon(code)

    def _abandon(self, code: int | None) -> None:
        """The socket is gone for good: nothing more will arrive on it."""
        for fut in (*self.questions.values(), *self.results.values()):
            _resolve(fut, -1)
        if not self.ended.done():
            self.ended.set_result(None)
        for ack in self.acks.values():
            if not ack.done():
                ack.set_result((time.monotonic_ns(), {"type": "closed", "code": code}))

    async def _recover(self, code: int | None) -> None:
        """The server dropped an established socket (1001, 1006, 4421): resume, reconnect, resend unacked answers."""
        try:
            for _ in range(RECONNECT_ROUNDS):
                await self.reopen(self.wait_s)
                if self.connected:  # not dropped again between the welcome and here
                    break
            else:
                raise SocketClosed(code)
        except Exception as exc:
            self.worker.count(f"reconnect_failed:{getattr(exc, 'code', None) or type(exc).__name__}")
            self._abandon(code)
        else:
            self.worker.reconnected(code)
            for index, ack in self.acks.items():
                if not ack.done() and index in self.choices and self.conn is not None:
                    self.conn.send(answer_message(self.worker.answer_kind, index, self.choices[index]))
        finally:
            self.recovery = None

    async def settled(self) -> None:
        """Wait for a reconnect in progress, if any (never cancels it)."""
        if self.recovery is not None:
            await asyncio.shield(self.recovery)

    async def connect(self, wait_s: float) -> int:
        """Open a socket, say hello and wait for `welcome`; returns its receive time (ns)."""
        self.welcome = asyncio.get_running_loop().create_future()
        conn = await open_ws(self.creds.ws_url, self.on_message, self.on_close, wait_s)
        self.conn = conn
        conn.send({"type": "hello", "token": self.creds.token})
        async with asyncio.timeout(wait_s):
            return await self.welcome

    async def reopen(self, wait_s: float, *, resume: bool = True) -> int:
        """Reconnect as a client does: ask resume where to go (`resume=False` skips it on the first attempt), then
        connect; transient failures (network, handshake refused, 1001, 4421, a 503 from resume) are retried with
        backoff for up to `wait_s`. Returns the welcome's receive time (ns); on giving up, resolves the player's
        futures and raises."""
        deadline = time.monotonic() + wait_s
        code: int | None = None
        attempt = 0
        while True:
            if attempt:
                await asyncio.sleep(backoff_s(attempt - 1))
            self.drop()
            try:
                if resume or attempt:
                    await self._resume()
                return await self.connect(wait_s)
            except ControlError as exc:
                if exc.final or time.monotonic() >= deadline:
                    self._abandon(code)
                    raise
            except SocketClosed as exc:
                code = exc.code
                if exc.code not in RECONNECT_CODES or time.monotonic() >= deadline:
                    self._abandon(code)
                    raise
            except (OSError, TimeoutError, InvalidHandshake):
                if time.monotonic() >= deadline:
                    self._abandon(code)
                    raise
            attempt += 1
            self.worker.count("reconnect_retry")

    async def _resume(self) -> None:
        """Point the credentials at the socket URL resume names. Keeps the old URL when the call cannot reach the
        server or the server does not know it; raises ControlError when it is final or worth asking again."""
        control = self.worker.control
        if control is None:
            return
        try:
            url = await control.resume(self.creds.pin, self.creds.token)
        except ControlError as exc:
            self.worker.count(f"resume:{exc.code}")
            if exc.final or exc.transient:
                raise
            return
        if url is not None and url != self.creds.ws_url:
            self.creds = replace(self.creds, ws_url=url)

    def drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort()

    def stop(self) -> None:
        """Leave for good: no reconnect, a clean close."""
        if self.recovery is not None:
            self.recovery.cancel()
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closed

    @property
    def present(self) -> bool:
        """Connected, or on the way back: an answer sent now goes out once the reconnect's welcome arrives."""
        return self.connected or self.recovery is not None

    def send_answer(self, index: int, choice: int) -> asyncio.Future[tuple[int, dict[str, Any]]]:
        fut = self.acks.get(index)
        if fut is None or fut.done():
            fut = self.acks[index] = asyncio.get_running_loop().create_future()
        self.choices[index] = choice
        if self.conn is not None:
            self.conn.send(answer_message(self.worker.answer_kind, index, choice))
        return fut


def _resolve(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


TYPED = ("alpha", "bravo", "charlie", "delta")  # `make_quiz`'s choices: "alpha" is the accepted typed answer


def answer_message(kind: str, index: int, choice: int) -> dict[str, Any]:
    """Choice `choice` (0 is right) as the answer message of a question of type `kind` (`control.make_quiz`):
    the choice itself, its text typed, or the slider value `choice`."""
    if kind == "type_answer":
        return {"type": "answer", "question": index, "text": TYPED[choice]}
    if kind == "slider":
        return {"type": "answer", "question": index, "value": choice}
    return {"type": "answer", "question": index, "choice": choice}


def _choice(rng: random.Random) -> int:
    return 0 if rng.random() < 0.6 else rng.randrange(1, 4)


def _record(
    p: Player, index: int, mode: str, sent_ns: int, result: tuple[int, dict[str, Any]] | None, sent: bool = True
) -> AnswerRecord:
    pid = p.creds.player_id
    if not sent:
        return AnswerRecord(pid, index, mode, False, "missed", False, False, None, 0, 0)
    if result is None:
        return AnswerRecord(pid, index, mode, True, "timeout", False, False, None, sent_ns, 0)
    done_ns, msg = result
    if msg.get("type") == "closed":  # no ack and no refusal: stored or not, the check accepts either
        code = msg.get("code")
        return AnswerRecord(
            pid, index, mode, True, f"closed:{code if code is not None else 1006}", False, False, None, sent_ns, done_ns
        )
    if msg.get("type") == "answer_ack":
        return AnswerRecord(
            pid,
            index,
            mode,
            True,
            "ack",
            bool(msg.get("accepted")),
            bool(msg.get("duplicate")),
            msg.get("response_ms"),
            sent_ns,
            done_ns,
        )
    return AnswerRecord(pid, index, mode, True, f"error:{msg.get('code')}", False, False, None, sent_ns, done_ns)


class Play(NamedTuple):
    """One question of one crowd being played in game mode (`Worker.arm` → `Worker.harvest`)."""

    players: list[Player]
    answers: asyncio.Future[list[AnswerRecord]]
    reconnect_ns: list[int]


class Worker:
    """The commands a coordinator can run in this process; each returns picklable plain data."""

    def __init__(self, wid: int, progress: Any) -> None:
        self.wid, self.progress = wid, progress
        self.control: Control | None = None
        self.crowds: dict[str, list[Player]] = {}
        self.errors: Counter[str] = Counter()
        self.reconnects: Counter[str] = Counter()  # players back after the server dropped them, by close code
        self.plays: dict[tuple[str, int], Play] = {}  # (crowd, question index) -> the question being played
        self.answer_kind = "choice"  # the open question's type: how an answer is sent (`answer_message`)

    def bump(self, slot: int, by: int = 1) -> None:
        self.progress[self.wid * SLOTS + slot] += by

    def count(self, code: str) -> None:
        self.errors[code] += 1
        self.bump(ERRORS)

    def reconnected(self, code: int | None) -> None:
        self.reconnects[str(code if code is not None else 1006)] += 1
        self.bump(RECONNECTS)

    async def configure(self, base_url: str, flavour: str) -> None:
        if self.control is not None:
            await self.control.aclose()
        self.control = Control(base_url, flavour)
        self.errors.clear()

    async def join(
        self, crowd: str, pin: str, nicknames: Sequence[str], concurrency: int, wait_s: float
    ) -> dict[str, Any]:
        assert self.control is not None
        control, players = self.control, self.crowds.setdefault(crowd, [])
        gate = asyncio.Semaphore(concurrency)
        starts: list[int] = []
        http_ns: list[int] = []
        welcome_ns: list[int] = []

        async def one(nickname: str) -> None:
            async with gate:
                t0 = time.monotonic_ns()
                try:
                    creds = await control.join(pin, nickname)
                except ControlError as exc:
                    self.count(f"join:{exc.code}")
                    return
                t1 = time.monotonic_ns()
                player = Player(nickname, creds, self, wait_s)
                try:
                    try:
                        t2 = await player.connect(wait_s)
                    except SocketClosed as exc:
                        if exc.code != MOVED:
                            raise
                        t2 = await player.reopen(wait_s)  # placed on another worker meanwhile: ask where
                except Exception as exc:
                    self.count(f"connect:{type(exc).__name__}")
                    player.drop()
                    return
                players.append(player)
                starts.append(t0)
                http_ns.append(t1 - t0)
                welcome_ns.append(t2 - t1)
                self.bump(JOINED)

        await asyncio.gather(*(one(n) for n in nicknames))
        # The players live until the run ends: out of the collector's sight, so that a full collection of this
        # process's heap (a third of a second at 5,000 sockets) cannot land in a measurement and delay its stamps.
        gc.collect()
        gc.freeze()
        return {
            "ok": len(starts),
            "first_ns": min(starts, default=0),
            "http_ns": http_ns,
            "welcome_ns": welcome_ns,
            "last_ns": time.monotonic_ns(),
        }

    async def await_questions(self, crowd: str, index: int, wait_s: float) -> dict[str, Any]:
        """Wait (up to `wait_s`) until every connected player has question `index`; receive times in ns."""
        players = [p for p in self.crowds.get(crowd, []) if p.present]
        futures = [p.question_future(index) for p in players]
        if futures:
            await asyncio.wait(futures, timeout=wait_s)
        received = [p.direct[index] for p in players if index in p.direct]
        return {"recv_ns": received, "missing": len(players) - len(received)}

    async def burst(
        self, crowd: str, index: int, chunk: int, wait_s: float, seed: int, kind: str = "choice"
    ) -> dict[str, Any]:
        """Every connected player answers now; sends in small chunks so acks are stamped while we still send.
        `kind`: the question's type, which shapes the answer message (`answer_message`)."""
        self.answer_kind = kind
        rng = random.Random(seed)
        players = [p for p in self.crowds.get(crowd, []) if p.present]
        pending: list[tuple[Player, int, asyncio.Future[tuple[int, dict[str, Any]]]]] = []
        for start in range(0, len(players), chunk):
            for p in players[start : start + chunk]:
                sent_ns = time.monotonic_ns()
                pending.append((p, sent_ns, p.send_answer(index, _choice(rng))))
            await asyncio.sleep(0)
        if pending:
            await asyncio.wait([f for _, _, f in pending], timeout=wait_s)
        answers = [_record(p, index, "normal", sent_ns, f.result() if f.done() else None) for p, sent_ns, f in pending]
        return {"answers": answers}

    async def arm(
        self, crowd: str, index: int, spread_ms: int, drop_before: int, drop_after: int, seed: int, wait_s: float
    ) -> int:
        """Game mode for one question, first half: every player starts waiting for question `index`, to answer at a
        random moment of its window; a few will drop. Returns once all of them wait: setting up hundreds of tasks
        costs this process milliseconds, which must not overlap the question's arrival (the fan-out measured next).
        `harvest` collects what happened."""
        rng = random.Random(seed)
        players = self.crowds.get(crowd, [])
        chosen = rng.sample(range(len(players)), min(len(players), drop_before + drop_after))
        modes = ["normal"] * len(players)
        for k, i in enumerate(chosen):
            modes[i] = "drop_before" if k < drop_before else "drop_after"
        reconnect_ns: list[int] = []

        async def one(p: Player, mode: str, delay: float, choice: int) -> AnswerRecord:
            sent_ns = 0
            try:
                async with asyncio.timeout(wait_s):
                    if await p.question_future(index) < 0:
                        return _record(p, index, mode, 0, None, sent=False)
                    if mode == "drop_before":
                        await asyncio.sleep(delay * 0.3)
                        reconnect_ns.append(await self._reconnect(p, wait_s))
                        delay *= 0.7
                    await asyncio.sleep(delay)
                    await p.settled()
                    if index in p.closed_q or index in p.answered or not p.connected:
                        return _record(p, index, mode, 0, None, sent=False)
                    sent_ns = time.monotonic_ns()
                    fut = p.send_answer(index, choice)
                    if mode == "drop_after":
                        reconnect_ns.append(await self._reconnect(p, wait_s))
                        p.send_answer(index, choice)
                    return _record(p, index, mode, sent_ns, await fut)
            except (TimeoutError, OSError, ConnectionError):
                return _record(p, index, mode, sent_ns, None, sent=sent_ns > 0)

        answers = asyncio.gather(
            *(one(p, m, rng.uniform(0, spread_ms) / 1000, _choice(rng)) for p, m in zip(players, modes, strict=True))
        )
        self.plays[crowd, index] = Play(players, answers, reconnect_ns)
        await asyncio.sleep(0)  # every player's task runs up to its wait for the question before this returns
        return len(players)

    async def harvest(self, index: int, crowd: str = "main", results_wait_s: float | None = None) -> dict[str, Any]:
        """Game mode, second half: the answers of question `index` as the players saw them, and receive times.

        With `results_wait_s`, also waits (that long at most) for every connected player's `result` of the question
        (the room closes by itself once everyone answered) and returns their receive times as `result_ns`."""
        play = self.plays.pop((crowd, index))
        answers = await play.answers
        received = [p.direct[index] for p in play.players if index in p.direct]
        reply: dict[str, Any] = {"answers": answers, "recv_ns": received, "reconnect_ns": play.reconnect_ns}
        if results_wait_s is not None:
            futures = [p.result_future(index) for p in play.players if p.present]
            if futures:
                await asyncio.wait(futures, timeout=results_wait_s)
            got = [f.result() for f in futures if f.done() and f.result() >= 0]
            reply["result_ns"] = got
            reply["no_result"] = len(play.players) - len(got)
        return reply

    async def finished(self, crowd: str, wait_s: float) -> dict[str, int]:
        """How many of the crowd's players got `finished` (the game's end), and how many did not, waiting up to
        `wait_s` for those still connected (the host's reply to its last `next` may overtake the players' copies)."""
        players = self.crowds.get(crowd, [])
        waiting = [p.ended for p in players if p.connected and not p.finished]
        if waiting:
            await asyncio.wait(waiting, timeout=wait_s)
        done = sum(p.finished for p in players)
        return {"finished": done, "unfinished": len(players) - done}

    async def _reconnect(self, p: Player, wait_s: float) -> int:
        """A planned drop and return, as a phone in a tunnel: resume, then reconnect. Returns the time it took."""
        await p.settled()
        p.drop()
        t0 = time.monotonic_ns()
        return await p.reopen(wait_s) - t0

    async def storm(self, crowd: str, jitter_ms: int, seed: int, wait_s: float) -> dict[str, Any]:
        """Drop every socket at once; each comes back after a random delay up to `jitter_ms`."""
        rng = random.Random(seed)
        players = [p for p in self.crowds.get(crowd, []) if p.connected]
        dropped_ns = time.monotonic_ns()
        for p in players:
            p.drop()

        async def back(p: Player, delay: float) -> tuple[int, int] | None:
            await asyncio.sleep(delay)
            t0 = time.monotonic_ns()
            try:
                return t0, await p.reopen(wait_s)
            except Exception as exc:
                self.count(f"reconnect:{type(exc).__name__}")
                return None

        done = await asyncio.gather(*(back(p, rng.uniform(0, jitter_ms) / 1000) for p in players))
        ok = [d for d in done if d is not None]
        return {
            "reconnect_ns": [t1 - t0 for t0, t1 in ok],
            "since_drop_ns": [t1 - dropped_ns for _, t1 in ok],
            "dropped_ns": dropped_ns,
            "failed": len(done) - len(ok),
        }

    async def close(self, crowd: str) -> None:
        for p in self.crowds.pop(crowd, []):
            p.stop()
        gc.unfreeze()  # what the crowd leaves in cycles is collected as usual from here

    async def take_errors(self) -> dict[str, int]:
        errors, self.errors = dict(self.errors), Counter()
        return errors

    async def take_reconnects(self) -> dict[str, int]:
        """Players brought back since the last call after the server dropped them, by close code."""
        reconnects, self.reconnects = dict(self.reconnects), Counter()
        return reconnects

    async def serve(self, pipe: Connection) -> None:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        threading.Thread(
            target=read_pipe,
            args=(pipe, asyncio.get_running_loop(), inbox.put_nowait),
            daemon=True,
            name="quizroom-bench-pipe",
        ).start()
        tasks: set[asyncio.Task[None]] = set()
        while (request := await inbox.get()) is not None:
            call_id, command, kwargs = request
            if command == "exit":
                break
            task = asyncio.create_task(self._run(pipe, call_id, getattr(self, command), kwargs))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for crowd in list(self.crowds):
            await self.close(crowd)
        if self.control is not None:
            await self.control.aclose()

    async def _run(
        self, pipe: Connection, call_id: int, method: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]
    ) -> None:
        try:
            reply: tuple[int, bool, Any] = (call_id, True, await method(**kwargs))
        except Exception:  # shipped to the coordinator, which raises it there
            reply = (call_id, False, traceback.format_exc())
        pipe.send(reply)


def read_pipe(pipe: Connection, loop: asyncio.AbstractEventLoop, deliver: Callable[[Any], None]) -> None:
    """Thread body: hand every message from `pipe` to the loop; None when the other side is gone.

    Why a thread: registering the pipe with the event loop would make its fd non-blocking, and
    `Connection.recv()` cannot resume a half-read message (a 500 kB reply arrives in many pieces).
    """
    while True:
        try:
            message = pipe.recv()
        except (EOFError, OSError):
            loop.call_soon_threadsafe(deliver, None)
            return
        loop.call_soon_threadsafe(deliver, message)


def worker_main(pipe: Connection, wid: int, cpus: tuple[int, ...] | None, progress: Any) -> None:
    """Process entry point (spawned): pin, raise the fd limit, run the command loop on uvloop."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    raise_nofile()
    worker = Worker(wid, progress)
    try:
        import uvloop

        uvloop.run(worker.serve(pipe))
    except ImportError:
        asyncio.run(worker.serve(pipe))
    except KeyboardInterrupt:
        pass
