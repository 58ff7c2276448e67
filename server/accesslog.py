"""The HTTP access log and request metrics, as a pure ASGI middleware: one `http_request` event per response.

It logs the method, the path without its query string, the status and the duration — never the query string
(join links carry `?pin=`, and a client could put anything there) and never a header (the host and admin tokens
travel in `Authorization`). WebSocket scopes pass straight through: their frames are the hot path, and the room
logs what matters about them. Each response is also counted in the runtime's metrics by route template (never by
the path itself, which carries PINs), method and status.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Probes and scrapes arrive every few seconds; they are logged at debug so they do not drown the rest.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

log = structlog.get_logger("quizroom.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client gets if the app raises before it starts a response

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            raw = scope.get("raw_path")  # still percent-encoded: a `%3F` in a path cannot pose as a query string
            path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))
            seconds = time.perf_counter() - began
            emit = log.debug if path in QUIET_PATHS else log.info
            emit(
                "http_request",
                method=scope.get("method", ""),
                path=path,
                status=status,
                duration_ms=round(seconds * 1000, 2),
            )
            runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
            if runtime is not None:
                route = getattr(scope.get("route"), "path", None)  # the matched template, set by Starlette's router
                runtime.metrics.http_request(str(scope.get("method", "")), route, status, seconds)
