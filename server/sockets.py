"""The player and host WebSocket endpoints (SPEC §3–4), as raw ASGI apps.

Raw ASGI rather than Starlette's `WebSocket` wrapper: these loops run once per message for thousands of sockets,
and the wrapper's state checks buy nothing here. Each socket has a `SocketConn`: a bounded outbound queue drained
by its own sender task, so the room actor never waits on a slow phone, and a phone that cannot keep up is dropped
(4008) instead of growing memory without bound.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import structlog

from quizroom.rooms.actor import RoomActor
from quizroom.rooms.errors import BadMessage, Kicked, QuizroomError, TooBig, Unauthorized
from quizroom.rooms.sessions import CLOSE_BAD_TOKEN, CLOSE_KICKED, CLOSE_ROOM_GONE, CLOSE_SLOW_CONSUMER, Session
from quizroom.server.runtime import Runtime

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


log = structlog.get_logger("quizroom.sockets")


class SocketConn:
    """The outbound half of one socket; `send` and `close` never block the caller."""

    __slots__ = ("_queue", "_ready", "_send", "closing", "max_queue")

    def __init__(self, send: Send, max_queue: int) -> None:
        self._send = send
        self._queue: deque[str | int] = deque()
        self._ready = asyncio.Event()
        self.closing = False
        self.max_queue = max_queue

    def send(self, frame: str) -> None:
        if self.closing:
            return
        if len(self._queue) >= self.max_queue:
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
            return
        self._queue.append(frame)
        self._ready.set()

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        self._queue.append(code)
        self._ready.set()

    async def run(self) -> None:
        """Send queued frames in order; a queued close code ends the socket after the frames before it."""
        queue, send = self._queue, self._send
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while queue:
                    item = queue.popleft()
                    if isinstance(item, int):
                        await send({"type": "websocket.close", "code": item})
                        return
                    await send({"type": "websocket.send", "text": item})
        except (OSError, RuntimeError):
            return  # the peer went away; the receive loop sees the disconnect


def decode(message: Message, max_bytes: int) -> dict[str, Any] | QuizroomError:
    """One inbound frame → a JSON object, or the documented refusal of it."""
    data = message.get("text")
    if data is None:
        data = message.get("bytes")
        if data is None:
            return BadMessage("empty frame")
    size = len(data) if isinstance(data, bytes) or len(data) * 4 <= max_bytes else len(data.encode("utf-8", "replace"))
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
    async def attach(self, actor: RoomActor, conn: SocketConn, token: str) -> Session:
        """Hand the socket to the room after a hello; raises `Unauthorized` or `Kicked`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        settings = runtime.settings
        if (await receive())["type"] != "websocket.connect":
            return
        if runtime.draining or not origin_allowed(scope, settings.allowed_origins):
            runtime.counters.refused_origin += 1
            await send({"type": "websocket.close", "code": 1008 if runtime.draining else 403})
            return
        await send({"type": "websocket.accept"})
        runtime.counters.socket_opened()
        conn = SocketConn(send, settings.send_queue)
        sender = asyncio.get_running_loop().create_task(conn.run())
        actor: RoomActor | None = None
        session: Session | None = None
        try:
            pin = scope["path_params"]["pin"]
            token = await self._hello(receive, settings.hello_timeout_s, settings.max_message_bytes)
            if token is None:
                conn.close(CLOSE_BAD_TOKEN)
                return
            actor = await runtime.registry.get(pin)
            if actor is None:
                conn.close(CLOSE_ROOM_GONE)
                return
            try:
                session = await self.attach(actor, conn, token)
            except Kicked:
                conn.close(CLOSE_KICKED)
                return
            except Unauthorized:
                conn.close(CLOSE_BAD_TOKEN)
                return
            max_bytes = settings.max_message_bytes
            deliver = actor.deliver
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                deliver(session, decode(message, max_bytes))
        finally:
            runtime.counters.socket_closed()
            if actor is not None and session is not None:
                actor.detach(session)
            conn.close(1000)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(sender, timeout=1.0)

    @staticmethod
    async def _hello(receive: Receive, hello_timeout_s: float, max_bytes: int) -> str | None:
        """The first message must be `{"type": "hello", "token": "…"}` within the timeout; anything else is refused."""
        try:
            message = await asyncio.wait_for(receive(), hello_timeout_s)
        except TimeoutError:
            return None
        if message["type"] != "websocket.receive":
            return None
        hello = decode(message, max_bytes)
        if isinstance(hello, QuizroomError) or hello.get("type") != "hello":
            return None
        token = hello.get("token")
        return token if isinstance(token, str) and token else None


class PlayerEndpoint(_Endpoint):
    async def attach(self, actor: RoomActor, conn: SocketConn, token: str) -> Session:
        return await actor.attach_player(conn, token)


class HostEndpoint(_Endpoint):
    async def attach(self, actor: RoomActor, conn: SocketConn, token: str) -> Session:
        return await actor.attach_host(conn, token)
