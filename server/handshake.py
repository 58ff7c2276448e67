"""A bound on unfinished HTTP requests (slowloris), which uvicorn's httptools protocol does not have.

uvicorn arms its keep-alive timer only after a response, so a client that opens TCP and sends half a request —
half a WebSocket handshake included — holds a connection and its buffers forever. `guarded_http_protocol` returns
uvicorn's httptools protocol with one more timer: armed when the connection opens and when a new request begins,
cancelled once the request's headers are complete (for a WebSocket, the upgrade then takes over, and the hello
timeout bounds what follows). When it fires, the connection is closed without a response.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _GuardedHttpToolsProtocol(HttpToolsProtocol):
    headers_timeout_s: float = 10.0
    #: HTTP connections of this process that have ended (not those upgraded to a WebSocket, which end as sockets):
    #: what each leaves in reference cycles is collected at the next reclaim (`quizroom.server.collector`).
    closed: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_timer: asyncio.TimerHandle | None = None

    def _arm_headers_timer(self) -> None:
        if self._headers_timer is None and self.headers_timeout_s > 0:
            self._headers_timer = self.loop.call_later(self.headers_timeout_s, self._headers_timed_out)

    def _cancel_headers_timer(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_timed_out(self) -> None:
        self._headers_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_headers_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_timer()
        _GuardedHttpToolsProtocol.closed += 1
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_headers_timer()

    def on_headers_complete(self) -> None:
        self._cancel_headers_timer()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_headers_timer()
        super().handle_websocket_upgrade()


def http_connections_closed() -> int:
    return _GuardedHttpToolsProtocol.closed


def guarded_http_protocol(headers_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose request headers take longer than the bound."""
    return type("GuardedHttpToolsProtocol", (_GuardedHttpToolsProtocol,), {"headers_timeout_s": headers_timeout_s})
