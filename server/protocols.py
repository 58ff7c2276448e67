"""uvicorn's HTTP and WebSocket protocols with the bounds uvicorn does not have: what one connection may hold.

uvicorn's httptools protocol has no deadline on an unfinished request (its keep-alive timer is armed only after a
response, so half a request — or a body sent a byte every few seconds — holds a connection forever), no bound on
the request head (`on_url` concatenates fragments: a long URL is quadratic), and no cap on connections. Here:

- **a whole-request deadline**: armed when a connection opens and when a request begins, cancelled once the request
  is complete — headers *and* body — or upgraded to a WebSocket (the hello timeout bounds what follows). When it
  fires the connection is closed without a response. Idle keep-alive connections stay bounded by uvicorn's own
  keep-alive timeout (5 s);
- **a bound on the request head** (`max_header_bytes`): past it, `431` and the connection is closed;
- **the connection gate** (`quizroom.server.connections`): a connection is counted from accept to close, through
  the upgrade to a WebSocket, and refused (429 or 503, written straight to the socket) before anything is read.

Bodies are bounded by the HTTP API itself, while it reads them (`quizroom.server.http_api.read_json`).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Literal
from urllib.parse import unquote

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State as WsState

from quizroom.server.connections import PROBE_PATHS, RETRY_AFTER_S, ConnectionGate, Refused, Slot
from quizroom.server.upgrade import LEAN, plain_handshake, switching_protocols

LINGER_S = 2.0
"""How long a connection answered before its request was read whole (a refusal, a 413) stays half-closed, its input
discarded, so that the client reads the answer instead of a reset: closing a socket with unread input sends RST, and
a client still sending its body may never see the response. At most `LINGERING` at once; beyond that, closed at once.
"""
LINGERING = 64

REASONS = {429: "Too Many Requests", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}
CODES = {429: "rate_limited", 431: "too_big", 503: "unavailable"}


def refusal_bytes(status: int, message: str, retry_after_s: int | None = None) -> bytes:
    """A complete HTTP/1.1 response with the JSON error body of SPEC §2, ending the connection."""
    body = orjson.dumps({"error": {"code": CODES.get(status, "error"), "message": message}})
    head = [
        f"HTTP/1.1 {status} {REASONS.get(status, '')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after_s is not None:
        head.append(f"retry-after: {retry_after_s}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _GuardedHttpToolsProtocol(HttpToolsProtocol):
    request_timeout_s: float = 15.0
    max_header_bytes: int = 32_768
    gate: ConnectionGate | None = None
    lingering: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._slot: Slot | None = None
        self._refused = False
        self._in_head = True
        self._head_bytes = 0

    # --- the request deadline -----------------------------------------------------------------------------------

    def _arm_deadline(self) -> None:
        if self._deadline is None and self.request_timeout_s > 0:
            self._deadline = self.loop.call_later(self.request_timeout_s, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    # --- refusals -----------------------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        self._cancel_deadline()
        if not self.transport.is_closing():
            self.transport.write(refusal_bytes(status, message, retry_after_s))
            self._linger()

    def _linger(self) -> None:
        """Close after what was written, but read (and drop) what the client still sends for up to `LINGER_S`."""
        self._refused = True  # from now on, input is discarded
        transport = self.transport
        cls = _GuardedHttpToolsProtocol
        if cls.lingering >= LINGERING or not transport.can_write_eof():
            transport.close()
            return
        cls.lingering += 1
        transport.write_eof()
        transport.resume_reading()

        def close() -> None:
            cls.lingering -= 1
            transport.close()

        self.loop.call_later(LINGER_S, close)

    def close_after_response(self) -> None:
        """uvicorn closes the connection after a response it will not keep alive; when the request's body is still
        arriving (a 413 sent on `Content-Length`), linger instead of resetting the client mid-upload."""
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self._refused or self.transport.is_closing():
            self.transport.close()
        else:
            self._cancel_deadline()
            self._linger()

    # --- uvicorn's protocol, guarded ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        gate = self.gate
        if gate is not None:
            admitted = gate.admit(self.client[0] if self.client else "")
            if isinstance(admitted, Refused):
                self._refuse(admitted.status, admitted.reason, RETRY_AFTER_S)
                return
            self._slot = admitted
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._slot is not None and self.gate is not None:
            self.gate.release(self._slot)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # a refused connection's input is discarded until it closes
        counting = self._in_head
        if counting:
            self._head_bytes += len(data)
        super().data_received(data)
        if counting and self._in_head and self._head_bytes > self.max_header_bytes and not self._refused:
            self._refuse(431, f"request heads are limited to {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_deadline()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > self.max_header_bytes:
            self._refuse(431, f"request heads are limited to {self.max_header_bytes} bytes")  # came whole in one read
            return
        if self._slot is not None and self._slot.probe_only:
            path = httptools.parse_url(self.url).path.decode("latin-1")
            if path not in PROBE_PATHS:
                self._refuse(503, "the server is at capacity", RETRY_AFTER_S)
                return
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.transport is self.transport:
            wrapper = _CloseAfterResponse(self)
            self.cycle.transport = wrapper  # type: ignore[assignment]
            self.cycle.on_response = wrapper.responded

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_deadline()
        if not self._refused:
            super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()
        if self._refused:
            return
        lean: type[GuardedWebSocketsProtocol] | None = None
        accept = None
        if isinstance(self.ws_protocol_class, type) and issubclass(self.ws_protocol_class, GuardedWebSocketsProtocol):
            lean = self.ws_protocol_class
        headers = list(self.scope["headers"])
        if lean is not None and not self.config.ws_per_message_deflate:
            accept = plain_handshake(self.scope["method"], self.scope["http_version"], self.url, headers)
        if lean is None or accept is None:
            super().handle_websocket_upgrade()  # websockets parses the request again and answers what is wrong
        else:
            self.connections.discard(self)
            opened = lean(config=self.config, server_state=self.server_state, app_state=self.app_state)
            opened.adopt(self.transport, self.server, self.client, "wss" if self.scheme == "https" else "ws")
            self.transport.set_protocol(opened)
            opened.open_checked(self.url, headers, accept)
        protocol = self.transport.get_protocol()
        if isinstance(protocol, GuardedWebSocketsProtocol):  # the socket's slot goes with it
            protocol.slot, self._slot = self._slot, None
            protocol.gate = self.gate
        # This object is done (the transport feeds the WebSocket protocol now): httptools' parser refers back to it,
        # a cycle only a full collection would free (`quizroom.server.collector`); uvicorn drops it only on close.
        self.parser = None  # type: ignore[assignment]


class _CloseAfterResponse:
    """The transport as one request's response cycle sees it: all of it, except that `close` asks the protocol, and
    that the response's head leaves with the first bytes of its body.

    uvicorn writes the status line and headers when the application starts its response and the body when it sends
    it: two writes, two packets, two system calls per response (most of ours are one small JSON body). The head is
    held here until the next write, the close, or the end of the response (`responded`), whichever comes first;
    an informational `100 Continue` is never held.

    The protocol is held weakly: it holds the cycle, and a strong reference back would make every request a
    reference cycle, freed only by a full collection (`quizroom.server.collector`).
    """

    __slots__ = ("_head", "_protocol", "_started", "_transport")

    def __init__(self, protocol: _GuardedHttpToolsProtocol) -> None:
        self._protocol = weakref.ref(protocol)
        self._transport = protocol.transport
        self._head: bytes | None = None
        self._started = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif not self._started and data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 1"):
            self._started = True
            self._head = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def responded(self) -> None:
        """The cycle's `on_response`: the response is complete (a HEAD's, a 204's or a 304's had no body to carry
        its head), then the protocol's own handling."""
        self.flush()
        protocol = self._protocol()
        if protocol is not None:
            protocol.on_response_complete()

    def close(self) -> None:
        self.flush()
        protocol = self._protocol()
        if protocol is not None:
            protocol.close_after_response()
        else:  # (the connection is gone: nothing to linger for)
            self._transport.close()


class GuardedWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, releasing the connection's slot when the socket ends, and opened from
    the request httptools parsed when it is a plain handshake (`quizroom.server.upgrade`)."""

    slot: Slot | None = None
    gate: ConnectionGate | None = None
    _accept: bytes | None = None  # set by `open_checked` until the application accepts

    def adopt(
        self,
        transport: asyncio.Transport,
        server: tuple[str, int | None] | None,
        client: tuple[str, int] | None,
        scheme: Literal["ws", "wss"],
    ) -> None:
        """`connection_made` for a connection the HTTP protocol hands over: its addresses are known already (asking
        the transport for them again costs two socket calls and two tuples per socket)."""
        self.connections.add(self)
        self.transport, self.server, self.client, self.scheme = transport, server, client, scheme

    def open_checked(self, target: bytes, headers: list[tuple[bytes, bytes]], accept: bytes) -> None:
        """What uvicorn's `handle_connect` does once websockets has parsed and checked a request, for a request
        `plain_handshake` has checked: websockets' protocol starts in its open state (it parses frames from the
        first byte), and the ASGI application gets its scope and its `websocket.connect`."""
        conn = self.conn
        waiting = conn.parser  # suspended before the request line: replaced by the frame parser
        conn.state = WsState.OPEN
        conn.parser = conn.parse()
        next(conn.parser)
        waiting.close()
        self._accept = accept
        self.handshake_initiated = True
        raw_path, _, query = target.partition(b"?")
        path = raw_path.decode("ascii")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + (unquote(path) if "%" in path else path),
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": [],
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}, LEAN: {}},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    async def send(self, message: Any) -> None:
        accept = self._accept
        if accept is None:
            await super().send(message)
            return
        self._accept = None
        if message["type"] != "websocket.accept":  # a refusal: websockets writes it, as for any handshake
            await super().send(message)
            return
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        extra = [(name.lower(), value) for name, value in message.get("headers", [])]
        if message.get("subprotocol"):
            extra.append((b"sec-websocket-protocol", message["subprotocol"].encode("latin-1")))
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.transport.write(switching_protocols(accept, self.default_headers + extra))
            self.start_keepalive()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.slot is not None and self.gate is not None:
            self.gate.release(self.slot)
        super().connection_lost(exc)
        # websockets' parser is a generator whose frame holds the protocol that holds it: a cycle that only a full
        # collection frees. Nothing is parsed after the connection is gone, so the generator is finished here.
        parser = getattr(self.conn, "parser", None)
        if parser is not None and hasattr(parser, "close"):
            parser.close()


def guarded_http_protocol(
    *, request_timeout_s: float, max_header_bytes: int, gate: ConnectionGate | None
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a request deadline, a bound on request heads and the connection gate."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedHttpToolsProtocol,),
        {"request_timeout_s": request_timeout_s, "max_header_bytes": max_header_bytes, "gate": gate},
    )
