"""`quizroom serve`, `migrate`, `backup` and `health`. Every setting has a flag mirroring its `QUIZROOM_*` variable.

An operator's mistake ends with one log line and a documented exit code (server/startup.py), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import structlog

from quizroom.server.serving import server_for
from quizroom.server.settings import Settings
from quizroom.server.startup import (
    EXIT_PORT,
    EXIT_SETTINGS,
    StartupFailure,
    fail,
    redacted,
    wait_for_database,
)
from quizroom.server.validation import SettingsError

log = structlog.get_logger("quizroom.server")


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


def serve(settings: Settings) -> None:
    """Check the database (waiting for it), bind the port, then serve; a mistake exits with its code."""
    try:
        asyncio.run(wait_for_database(settings))
    except StartupFailure as failure:
        fail(failure)
    if settings.workers != 1:
        from quizroom.server.workers import supervise

        supervise(settings, server_for)  # a supervisor and `workers` worker processes (server/workers.py)
        return
    from quizroom.server.workers import bind_socket

    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        fail(port_unavailable(settings.host, settings.port, exc))
    server_for(settings).run(sockets=[sock])


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
