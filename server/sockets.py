"""The player and host WebSocket endpoints (SPEC §3–4), as raw ASGI apps.

Raw ASGI rather than Starlette's `WebSocket` wrapper: these loops run once per message for thousands of sockets,
and the wrapper's state checks buy nothing here. Each socket has a `SocketConn` that writes frames at once while the
transport takes them and queues them (bounded) behind a drain task when it pushes back, so the room actor never
waits on a slow phone, and a phone that cannot keep up is dropped (4008) instead of growing memory without bound.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, MutableMapping, Sequence
from typing import Any, Protocol, cast

import orjson
import structlog
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State as WsState

from quizroom.rooms.actors.sessions import Connection, Frame, Session
from quizroom.rooms.cluster.registry import RoomRegistry
from quizroom.rooms.game.closes import (
    CLOSE_BAD_TOKEN,
    CLOSE_GOING_AWAY,
    CLOSE_RATE_ABUSE,
    CLOSE_ROOM_GONE,
    CLOSE_SLOW_CONSUMER,
)
from quizroom.rooms.game.errors import (
    BadMessage,
    NotFound,
    QuizroomError,
    TooBig,
    Unauthorized,
)
from quizroom.server.admission import Admission, deny
from quizroom.server.buckets import AddressBuckets
from quizroom.server.runtime import Runtime
from quizroom.server.upgrade import LEAN
from quizroom.storage.base import StorageError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


log = structlog.get_logger("quizroom.sockets")


class _Resume:
    """Await the rest of a coroutine that was started by hand and suspended on the future `waiting`.

    When a Task wakes up after `waiting` completes, sending `None` into the suspended coroutine is exactly what the
    Task would have done had it run the coroutine from the start.
    """

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        yield self.waiting
        return (yield from self.coro.__await__())


def wire_bytes(frame: Frame) -> bytes:
    """An unmasked, unfragmented RFC 6455 text frame for `frame`, built once and cached on it."""
    wire = frame.wire
    if wire is None:
        payload = frame.text.encode()
        size = len(payload)
        if size < 126:
            header = bytes((0x81, size))
        elif size < 65_536:
            header = bytes((0x81, 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x81, 127)) + size.to_bytes(8, "big")
        wire = frame.wire = header + payload
    return wire


def direct_protocol(send: Send) -> WebSocketsSansIOProtocol | None:
    """uvicorn's protocol behind `send`, when frames may be written straight to its transport.

    That is the case for uvicorn's sans-I/O websockets protocol with no extension negotiated: no compression means
    a text frame's bytes are the same for every socket, and the protocol object keeps no per-frame state for data
    it sends. Anything else (another server, permessage-deflate) goes through ASGI `send` as usual.
    """
    protocol = getattr(send, "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    if not all(hasattr(protocol, name) for name in _DIRECT_ATTRIBUTES) or protocol.conn.extensions:
        return None  # another uvicorn layout than the one this was written against: stay on ASGI `send`
    return protocol


# What the direct path reads of uvicorn's protocol object (uvicorn 0.30–0.54).
_DIRECT_ATTRIBUTES = ("writable", "close_sent", "disconnected", "conn", "transport")


class SocketConn:
    """The outbound half of one socket; `send` and `close` never block the caller.

    A frame is written at once while the transport accepts it, so a broadcast to thousands of sockets costs no task
    switch per recipient; on uvicorn's sans-I/O protocol the frame's bytes, built once per broadcast, go straight to
    the transport (see `direct_protocol`). When a transport pushes back, the suspended send and every later frame
    move to a drain task, in order; a socket whose backlog exceeds `max_queue` is closed with 4008 (slow consumer)
    so that it cannot grow memory without bound or slow the room.
    """

    __slots__ = ("_backlog", "_direct", "_drainer", "_on_slow", "_send", "closing", "max_queue")

    def __init__(self, send: Send, max_queue: int, on_slow: Callable[[], None] | None = None) -> None:
        self._send = send
        self._on_slow = on_slow  # told when this socket is dropped as a slow consumer (metrics)
        self._direct = direct_protocol(send)
        self._backlog: deque[Frame | int] | None = None  # set while a send is suspended on backpressure
        self._drainer: asyncio.Task[None] | None = None
        self.closing = False
        self.max_queue = max_queue

    def send(self, frame: Frame) -> None:
        if self.closing:
            return
        backlog = self._backlog
        if backlog is None:
            direct = self._writable()
            if direct is not None:
                direct.transport.write(frame.wire or wire_bytes(frame))
            else:
                self._start({"type": "websocket.send", "text": frame.text})
        elif len(backlog) < self.max_queue:
            backlog.append(frame)
        else:
            backlog.clear()
            self.closing = True
            backlog.append(CLOSE_SLOW_CONSUMER)
            if self._on_slow is not None:
                self._on_slow()

    def send_many(self, frames: Sequence[Frame]) -> None:
        """The frames in one `transport.write` on the direct path (one system call instead of one each: a reveal
        sends each player a result and the leaderboard), else one after the other."""
        direct = self._writable() if not self.closing and self._backlog is None else None
        if direct is not None:
            direct.transport.write(b"".join([frame.wire or wire_bytes(frame) for frame in frames]))
            return
        for frame in frames:
            self.send(frame)

    def _writable(self) -> WebSocketsSansIOProtocol | None:
        """uvicorn's protocol when a frame may be written to its transport right now, else None."""
        direct = self._direct
        if (
            direct is not None
            and direct.writable.is_set()
            and not direct.close_sent
            and not direct.disconnected
            and direct.conn.state is WsState.OPEN
        ):
            return direct
        return None

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        if self._backlog is None:
            self._start({"type": "websocket.close", "code": code, "reason": reason})
        else:
            self._backlog.append(code)

    def _start(self, message: Message) -> None:
        coro = cast(Coroutine[Any, Any, None], self._send(message))  # ASGI servers' send is a coroutine function
        try:
            waiting = coro.send(None)
        except StopIteration:
            return  # written: the common case
        except (OSError, RuntimeError):
            self.closing = True  # the peer went away; the receive loop sees the disconnect
            return
        self._backlog = deque()
        self._drainer = asyncio.get_running_loop().create_task(self._drain(coro, waiting))

    async def _drain(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        send = self._send
        try:
            await _Resume(coro, waiting)
            backlog = self._backlog
            while backlog:
                item = backlog.popleft()
                if isinstance(item, int):
                    await send({"type": "websocket.close", "code": item})
                    return
                await send({"type": "websocket.send", "text": item.text})
        except (OSError, RuntimeError):
            self.closing = True
        finally:
            self._backlog = None

    async def finish(self, timeout_s: float) -> None:
        """Close (if not yet) and give queued frames a bounded time to leave; then let go of the protocol.

        Letting go matters for memory, not for correctness: the session that holds this object is reachable from the
        protocol (through its receive queue), so keeping the protocol here would make every closed socket a
        reference cycle, freed only by a full collection (`quizroom.server.collector`). A closed `SocketConn` sends
        nothing anyway (`closing`).
        """
        self.close(1000)
        if self._drainer is not None and not self._drainer.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drainer, timeout=timeout_s)
        self._direct = None
        self._send = _sent_nothing
        self._on_slow = None


async def _sent_nothing(message: Message) -> None:
    """A finished `SocketConn`'s ASGI send: nothing goes out after the socket's end."""


class DirectIntake:
    """Stands in for uvicorn's per-socket receive queue once the socket belongs to a room.

    uvicorn puts each inbound message on an `asyncio.Queue`, pauses reading, and waits for the app's task to take
    it and resume reading: one task switch and two event-loop registrations per message. During an answer burst
    that is most of what the loop does. Here the message is decoded and handed to the room (a closure posted into
    its inbox) inside `data_received` itself; only the end of the socket still wakes the endpoint's task. Flooding
    is the room's token bucket's to refuse (429, then 4429), as before.
    """

    __slots__ = ("_deliver", "_ended")

    def __init__(self, deliver: Callable[[Message], None]) -> None:
        self._deliver = deliver
        self._ended: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def put_nowait(self, event: Message) -> None:
        if event["type"] == "websocket.receive":
            try:
                self._deliver(event)
            except Exception:  # never into uvicorn's data_received: that would drop the connection uncleanly
                log.exception("intake_failed")
        elif not self._ended.done():
            self._ended.set_result(event)

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    async def get(self) -> Message:
        return await self._ended

    def release(self) -> None:
        """The socket's endpoint is done: drop the room's closure (it holds the session, and so this socket's
        protocol: a reference cycle otherwise). Anything still arriving is dropped."""
        self._deliver = _dropped


def _dropped(message: Message) -> None:
    """What a released `DirectIntake` does with a message that arrives after its socket's endpoint has ended."""


def take_intake(protocol: WebSocketsSansIOProtocol, deliver: Callable[[Message], None]) -> DirectIntake | None:
    """Switch a socket to `DirectIntake`, first handing over what uvicorn queued meanwhile. None: not possible."""
    queue = getattr(protocol, "queue", None)
    if not isinstance(queue, asyncio.Queue) or not hasattr(protocol, "read_paused"):
        return None  # another uvicorn layout than the one this was written against: stay on ASGI `receive`
    intake = DirectIntake(deliver)
    while not queue.empty():
        intake.put_nowait(queue.get_nowait())
    protocol.queue = intake  # type: ignore[assignment]
    if protocol.read_paused:
        protocol.transport.resume_reading()
    protocol.read_paused = True  # uvicorn pauses reading after a message unless this says it already has
    return intake


def decode(message: Message, max_bytes: int) -> dict[str, Any] | QuizroomError:
    """One inbound frame → a JSON object, or the documented refusal of it."""
    data = message.get("text")
    if data is None:
        if message.get("bytes") is not None:  # the protocol is JSON text (SPEC §3); a binary frame is refused
            return BadMessage("binary frames are not accepted: send JSON as text")
        return BadMessage("empty frame")
    size = len(data) if len(data) * 4 <= max_bytes else len(data.encode("utf-8", "replace"))
    if size > max_bytes:
        return TooBig(f"messages are limited to {max_bytes} bytes")
    try:
        parsed = orjson.loads(data)
    except (orjson.JSONDecodeError, RecursionError):
        return BadMessage("not valid JSON")
    if not isinstance(parsed, dict):
        return BadMessage("a message must be a JSON object")
    return parsed


def origin_allowed(scope: Scope, allowed: tuple[str, ...]) -> bool:
    """Exact match against the allowlist; no list means any origin (and non-browser clients send none)."""
    if not allowed:
        return True
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1") in allowed
    return True


class _Endpoint(abc.ABC):
    """What the two endpoints share: admission, hello, the receive loop, clean-up."""

    @abc.abstractmethod
    async def find(self, registry: RoomRegistry, pin: str, token: str) -> Attachable | None:
        """The actor here that takes this socket; raises `Unauthorized`, `Kicked`, `NotFound` or `Moved`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        settings = runtime.settings
        if (await receive())["type"] != "websocket.connect":
            return
        if runtime.draining or not origin_allowed(scope, settings.allowed_origins):
            runtime.counters.refused_origin += 1
            await send({"type": "websocket.close", "code": 1008 if runtime.draining else 403})
            return
        admission: Admission = scope["app"].state.admission  # per-address and total limits, still before the upgrade
        client = admission.client_of(scope)
        refusal = admission.admit(client)
        if refusal is not None:
            runtime.counters.refused_admission += 1
            await deny(scope, send, refusal)
            return
        try:
            await send({"type": "websocket.accept"})
        except BaseException:
            admission.release(client)
            raise
        runtime.counters.socket_opened()
        if LEAN in scope.get("extensions", ()):
            runtime.counters.lean_handshakes += 1
        conn = SocketConn(send, settings.send_queue, on_slow=runtime.metrics.slow_consumer)
        actor: Attachable | None = None
        session: Session | None = None
        intake: DirectIntake | None = None
        try:
            pin = scope["path_params"]["pin"]
            token = await self._hello(receive, settings.hello_timeout_s, settings.max_message_bytes)
            if token is None:
                conn.close(CLOSE_BAD_TOKEN)
                return
            misses: AddressBuckets = scope["app"].state.limits.pin_misses  # PINs are guessable: misses are metered
            if misses.wait(client):
                conn.close(CLOSE_RATE_ABUSE)
                return
            try:
                actor = await self.find(runtime.registry, pin, token)
                if actor is None:
                    misses.spend(client)
                    conn.close(CLOSE_ROOM_GONE)
                    return
                session = await actor.attach(conn, token)
            except QuizroomError as exc:  # not found, kicked, bad token, moved, unavailable: each has its code
                if isinstance(exc, NotFound):
                    misses.spend(client)
                conn.close(exc.close_code)
                return
            except StorageError:
                conn.close(CLOSE_GOING_AWAY)  # a storage outage: the client reconnects
                return
            max_bytes = settings.max_message_bytes
            deliver = actor.deliver
            attached = session
            protocol = getattr(send, "__self__", None)  # uvicorn's, whatever extensions the socket negotiated
            if isinstance(protocol, WebSocketsSansIOProtocol):
                intake = take_intake(protocol, lambda m: deliver(attached, decode(m, max_bytes)))
                if intake is not None:
                    runtime.counters.direct_intake += 1
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                deliver(session, decode(message, max_bytes))
        finally:
            admission.release(client)
            runtime.counters.socket_closed()
            if actor is not None and session is not None:
                actor.detach(session)
            await conn.finish(timeout_s=1.0)
            if intake is not None:
                intake.release()

    @staticmethod
    async def _hello(receive: Receive, hello_timeout_s: float, max_bytes: int) -> str | None:
        """The first message must be `{"type": "hello", "token": "…"}` within the timeout; anything else is refused."""
        try:
            async with asyncio.timeout(hello_timeout_s):  # no extra task per socket, unlike wait_for
                message = await receive()
        except TimeoutError:
            return None
        if message["type"] != "websocket.receive":
            return None
        hello = decode(message, max_bytes)
        if isinstance(hello, QuizroomError) or hello.get("type") != "hello":
            return None
        token = hello.get("token")
        return token if isinstance(token, str) and token else None


class Attachable(Protocol):
    async def attach(self, conn: Connection, token: str) -> Session: ...

    def deliver(self, session: Session, message: dict[str, Any] | QuizroomError) -> None: ...

    def detach(self, session: Session) -> None: ...


class PlayerEndpoint(_Endpoint):
    async def find(self, registry: RoomRegistry, pin: str, token: str) -> Attachable | None:
        return await registry.shard_for(pin, token)  # the shard holding the player, here or `Moved`


class HostEndpoint(_Endpoint):
    async def find(self, registry: RoomRegistry, pin: str, token: str) -> Attachable | None:
        room = await registry.get(pin)
        if room is not None and not room.is_host(token):
            raise Unauthorized()  # 4401 wherever the room is coordinated, before any 4421
        return await registry.coordinator(pin)
