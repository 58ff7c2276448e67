"""A lean WebSocket client connection for load generation, timestamping every frame on arrival.

Why not `websockets.asyncio.client`: there every connection runs its own reader task and every `recv()` is a
coroutine hop; with 10,000 sockets on one core that overhead would land in the latencies we measure. Here the
sans-I/O `ClientProtocol` of the same library is driven straight from `asyncio.Protocol` callbacks, and each
message is stamped with `time.monotonic_ns()` (CLOCK_MONOTONIC, one clock for every process on the machine) the
moment its bytes are read, before any JSON is parsed.

Once the handshake is done, frames are cut from the stream here rather than by the protocol object: a complete,
unfragmented text frame (every message the server sends in a run) is decoded at once, and only anything else —
control frames, fragments, binary — is fed to the sans-I/O protocol, whole frame by whole frame, so that its parser
always sits at a frame boundary and still answers pings and closes. With 5,000 sockets per load process the
protocol's generator-based parser was a third of the per-message cost, and every microsecond spent on one socket
delays the stamp of the next socket's frame. Sending builds the masked frame directly for the same reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # a websockets build without its C extension
    from websockets.utils import apply_mask

MessageHandler = Callable[["WSConn", dict[str, Any], int], None]
CloseHandler = Callable[["WSConn", "int | None"], None]


class WSConn(asyncio.Protocol):
    """One client socket; `on_message(conn, message, received_ns)` runs for every JSON message received."""

    def __init__(self, uri: str, on_message: MessageHandler, on_close: CloseHandler | None = None) -> None:
        self._proto = ClientProtocol(parse_uri(uri), max_size=2**24)
        self._on_message = on_message
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self._stream: bytes | None = None  # unparsed bytes once frames are cut here (None: the protocol parses)
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self._proto.send_request(self._proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self._stream is not None:
            self._cut(self._stream + data if self._stream else data, now)
            return
        self._feed(data, now)
        if self._proto.state is State.OPEN and not self._proto.reader.buffer:
            self._stream = b""  # the handshake is done and no frame has begun: frames are cut here from now on

    def _feed(self, data: bytes, now: int) -> None:
        self._proto.receive_data(data)
        for event in self._proto.events_received():
            if isinstance(event, Frame):
                self._frame(event, now)
            elif isinstance(event, Response) and not self.opened.done():
                if self._proto.handshake_exc is not None:
                    self.opened.set_exception(self._proto.handshake_exc)
                else:
                    self.opened.set_result(None)
        self._flush()

    def _cut(self, data: bytes, now: int) -> None:
        """Take every complete frame off `data` (server frames are never masked); keep the rest for later."""
        at, end = 0, len(data)
        while end - at >= 2:
            first, size = data[at], data[at + 1]
            if size & 0x80:  # a masked frame from a server is a protocol error: let the protocol say so
                self._stream = None
                self._feed(data[at:], now)
                return
            head = 2
            if size == 126:
                if end - at < 4:
                    break
                size, head = int.from_bytes(data[at + 2 : at + 4], "big"), 4
            elif size == 127:
                if end - at < 10:
                    break
                size, head = int.from_bytes(data[at + 2 : at + 10], "big"), 10
            if end - at < head + size:
                break
            if first == 0x81 and not self._fragments:  # FIN, no RSV bits, text: decode here
                message = orjson.loads(data[at + head : at + head + size])
                if isinstance(message, dict):
                    self._on_message(self, message, now)
            else:
                self._feed(data[at : at + head + size], now)  # control frames, fragments, binary
            at += head + size
        self._stream = data[at:] if at < end else b""

    def _frame(self, frame: Frame, now: int) -> None:
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return  # ping/pong/close: the sans-I/O protocol answers them itself
        self._fragments.append(bytes(frame.data))
        if not frame.fin:
            return
        payload, self._fragments = b"".join(self._fragments), []
        message = orjson.loads(payload)
        if isinstance(message, dict):
            self._on_message(self, message, now)

    def eof_received(self) -> bool | None:
        self._proto.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.close_code = self._proto.close_rcvd.code if self._proto.close_rcvd is not None else None
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        if self._on_close is not None:
            self._on_close(self, self.close_code)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for chunk in self._proto.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # the protocol asks for EOF: the closing handshake is over
                transport.close()
                return

    def send(self, message: dict[str, Any]) -> None:
        """Queue one JSON text message; a no-op on a socket that is already closed."""
        if self.closed or self._transport is None:
            return
        payload = orjson.dumps(message)
        size = len(payload)
        if self._proto.state is not State.OPEN or size > 65_535:
            self._proto.send_text(payload)
            self._flush()
            return
        mask = os.urandom(4)
        header = bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0xFE)) + size.to_bytes(2, "big")
        self._transport.write(header + mask + apply_mask(payload, mask))

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake, like a phone going into a tunnel."""
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Start a clean closing handshake (1000)."""
        if self.closed or self._transport is None:
            return
        try:
            self._proto.send_close(1000)
        except Exception:  # already closing: drop the socket instead
            self._transport.abort()
            return
        self._flush()


async def open_ws(
    uri: str, on_message: MessageHandler, on_close: CloseHandler | None = None, wait_s: float = 30.0
) -> WSConn:
    """Connect and finish the opening handshake; raises on refusal, handshake error or timeout."""
    loop = asyncio.get_running_loop()
    parsed = parse_uri(uri)
    conn = WSConn(uri, on_message, on_close)
    async with asyncio.timeout(wait_s):
        await loop.create_connection(lambda: conn, parsed.host, parsed.port, ssl=parsed.secure or None)
        await conn.opened
    return conn
