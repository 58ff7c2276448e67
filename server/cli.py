"""`quizroom serve`, `migrate`, `backup` and `health`. Every setting has a flag mirroring its `QUIZROOM_*` variable.

An operator's mistake ends with one log line and a documented exit code (server/startup.py), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import structlog
import uvicorn

from quizroom.server.settings import Settings
from quizroom.server.startup import (
    EXIT_PORT,
    EXIT_SETTINGS,
    StartupFailure,
    fail,
    redacted,
    wait_for_database,
    write_address,
)
from quizroom.server.validation import SettingsError

log = structlog.get_logger("quizroom.server")

# A send loop on uvicorn's sans-I/O websockets protocol (`websockets-sansio`) measured fastest of uvicorn's three for
# fan-out and burst acks on this hardware (shared/notes/physical-limits.md); httptools and uvloop are uvicorn's fast
# paths. `uvicorn_config` passes both protocols as our guarded subclasses (server/protocols.py).


def _add_setting_flags(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        converter: Any = {"int": int, "float": float}.get(kind, str)
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=converter,
            default=None,
            help=f"{f.metadata.get('help', '')} (env QUIZROOM_{f.name.upper()}; default {f.default!r})",
        )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    for f in fields(Settings):  # comma-separated lists (allowed_origins, trusted_proxies) arrive as one string
        value = overrides.get(f.name)
        if isinstance(value, str) and str(f.type).startswith("tuple"):
            overrides[f.name] = tuple(o.strip() for o in value.split(",") if o.strip())
    return Settings.from_env(os.environ, **overrides)


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
    from quizroom.server.admission import parse_networks
    from quizroom.server.app import create_app
    from quizroom.server.connections import ConnectionGate, raise_fd_limit
    from quizroom.server.protocols import GuardedWebSocketsProtocol, guarded_http_protocol

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


def serve(settings: Settings) -> None:
    """Check the database (waiting for it), bind the port, then serve; a mistake exits with its code."""
    try:
        asyncio.run(wait_for_database(settings))
    except StartupFailure as failure:
        fail(failure)
    if settings.workers != 1:
        from quizroom.server.workers import supervise

        supervise(settings)  # a supervisor and `workers` worker processes (server/workers.py)
        return
    from quizroom.server.workers import bind_socket

    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        fail(port_unavailable(settings.host, settings.port, exc))
    QuizroomServer(uvicorn_config(settings)).run(sockets=[sock])


def port_unavailable(host: str, port: int, exc: OSError) -> StartupFailure:
    return StartupFailure(EXIT_PORT, "port_unavailable", host=host, port=port, error=exc.strerror or str(exc))


def migrate(settings: Settings) -> None:
    try:
        asyncio.run(wait_for_database(settings))  # opening the database applies the migrations
    except StartupFailure as failure:
        fail(failure)
    log.info("migrated", database=redacted(settings.database_url).split("@")[-1])


def main(argv: Sequence[str] | None = None) -> None:
    from quizroom.server.commands import add_commands, run_command, usable_log_settings, version
    from quizroom.server.logs import configure_logging

    parser = argparse.ArgumentParser(prog="quizroom", description="Real-time quiz server.")
    parser.add_argument("--version", action="version", version=f"quizroom {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the server")
    _add_setting_flags(serve_parser)
    migrate_parser = commands.add_parser("migrate", help="apply database migrations and exit")
    _add_setting_flags(migrate_parser, only=["database_url", "database_wait_s", "log_level", "log_format"])
    add_commands(commands, _add_setting_flags)
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        configure_logging(*usable_log_settings(args, os.environ))
        for problem in exc.problems:
            log.error(
                "setting_invalid",
                setting=problem.variable,
                flag=problem.flag,
                value=str(problem.value),
                problem=problem.problem,
                exit_code=EXIT_SETTINGS,
            )
        raise SystemExit(EXIT_SETTINGS) from None
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        serve(settings)
    elif args.command == "migrate":
        migrate(settings)
    else:
        raise SystemExit(run_command(args, settings))


if __name__ == "__main__":
    main()
