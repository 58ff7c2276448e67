"""One serving process: uvicorn configured as quizroom runs it, with our drain first on shutdown.

The single server (`quizroom serve`) and each worker of `--workers N` (`quizroom.server.workers`, which takes
`server_for` as its target) are the same `QuizroomServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
import uvicorn

from quizroom.server.admission import parse_networks
from quizroom.server.app import create_app
from quizroom.server.connections import ConnectionGate, raise_fd_limit
from quizroom.server.protocols import GuardedWebSocketsProtocol, guarded_http_protocol
from quizroom.server.settings import Settings
from quizroom.server.startup import redacted, write_address

log = structlog.get_logger("quizroom.server")

# A send loop on uvicorn's sans-I/O websockets protocol (`websockets-sansio`) measured fastest of uvicorn's three for
# fan-out and burst acks on this hardware (shared/notes/physical-limits.md); httptools and uvloop are uvicorn's fast
# paths. `uvicorn_config` passes both protocols as our guarded subclasses (server/protocols.py).


class QuizroomServer(uvicorn.Server):
    """uvicorn, with our drain first on shutdown: sockets get 1001 (not uvicorn's 1012) and queued answers commit.

    `started` is logged (and the address file written) only once the port listens, never before a bind that fails.
    """

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        runtime = getattr(getattr(self.config.app, "state", None), "runtime", None)
        if not self.started or runtime is None:
            return
        ports = [sock.getsockname()[1] for server in self.servers for sock in server.sockets or ()]
        settings = runtime.settings
        local = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        url = f"http://{f'[{local}]' if ':' in local else local}:{ports[0]}" if ports else ""
        log.info(
            "started",
            database=redacted(settings.database_url).split("@")[-1],
            rooms_resumed=len(runtime.registry),
            worker_id=runtime.cluster.worker_id,
            worker_url=runtime.cluster.url,
            host=settings.host,
            ports=ports,
        )
        write_address(settings.address_file, url)

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        app = self.config.app
        runtime = getattr(getattr(app, "state", None), "runtime", None)
        if runtime is not None:
            await runtime.drain()
            if runtime.counters.sockets_open:
                with contextlib.suppress(TimeoutError):  # give clients a moment to answer our close frames
                    await asyncio.wait_for(runtime.counters.no_sockets.wait(), 2.0)
        await super().shutdown(sockets)


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """The uvicorn configuration of one serving process: the single server, or each worker of several."""
    fd_soft, fd_hard = raise_fd_limit()
    gate = ConnectionGate.sized(
        settings.max_connections, settings.max_connections_per_ip, fd_soft, parse_networks(settings.trusted_proxies)
    )
    return uvicorn.Config(
        create_app(settings, gate=gate, fd_limits=(fd_soft, fd_hard)),
        host=settings.host,
        port=settings.port,
        ws=GuardedWebSocketsProtocol,  # uvicorn's websockets-sansio protocol, releasing the connection's slot
        # httptools, with a whole-request deadline, a bound on request heads and the connection gate
        http=guarded_http_protocol(
            request_timeout_s=settings.request_timeout_s, max_header_bytes=settings.max_header_bytes, gate=gate
        ),
        loop="uvloop",
        lifespan="on",
        ws_max_size=max(65_536, 16 * settings.max_message_bytes),
        # No permessage-deflate: our frames are a few hundred bytes, compressing them costs a deflate per recipient
        # per broadcast, and an uncompressed frame is the same bytes for everyone (the direct write path needs it).
        ws_per_message_deflate=False,
        ws_ping_interval=settings.heartbeat_interval_s,
        ws_ping_timeout=settings.heartbeat_timeout_s,
        log_level=settings.log_level.lower() if settings.log_level.lower() != "info" else "warning",
        access_log=False,  # ours is server/accesslog.py: no query strings
        log_config=None,  # uvicorn's records go to the root logger, rendered by server/logs.py (JSON in production)
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        timeout_keep_alive=settings.keepalive_timeout_s,  # type: ignore[arg-type]  # uvicorn says int; a float works
    )


def server_for(settings: Settings) -> uvicorn.Server:
    """The server of one serving process (`quizroom serve`, or one worker of several)."""
    return QuizroomServer(uvicorn_config(settings))
