"""The operator's small commands beside `serve` and `migrate`: `backup`, `health`, and `--version`.

`health` is the container's healthcheck: it asks `/healthz` where this server really listens (the address file
`serve` writes once bound), so `quizroom serve --port 9000` is healthy too. `backup` makes a consistent copy of a
SQLite database while the server runs (SQLite's online backup API; no `sqlite3` program needed, as in the image);
PostgreSQL is backed up with its own tools, and the command says how.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from quizroom.server.settings import Settings
from quizroom.server.startup import EXIT_DATABASE, EXIT_SETTINGS, check_sqlite_path, redacted
from quizroom.server.validation import RULES

log = structlog.get_logger("quizroom.server")

EXIT_UNHEALTHY = 1  # `quizroom health`: the server did not answer 200 (Docker's code for unhealthy)

AddFlags = Callable[[argparse.ArgumentParser, Sequence[str] | None], None]


def version() -> str:
    from quizroom.server.metrics import package_version

    return package_version()


def add_commands(commands: Any, add_flags: AddFlags) -> None:
    backup = commands.add_parser(
        "backup", help="copy the SQLite database consistently while the server runs (PostgreSQL: use pg_dump)"
    )
    backup.add_argument("destination", help="file to write; must not exist yet")
    add_flags(backup, ["database_url", "log_level", "log_format"])
    health = commands.add_parser("health", help="exit 0 when the server answers /healthz (a container healthcheck)")
    health.add_argument("--url", default=None, help="base URL to ask (default: the address file, else HOST:PORT)")
    health.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    add_flags(health, ["address_file", "host", "port"])


def usable_log_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str]:
    """The log level and format to report invalid settings with: the requested ones where they are valid."""
    chosen = []
    for name, default in (("log_level", "info"), ("log_format", "console")):
        candidates = (getattr(args, name, None), environ.get(f"QUIZROOM_{name.upper()}"), default)
        chosen.append(next(v for v in candidates if v and RULES[name](v) is None))
    return chosen[0], chosen[1]


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "backup":
        return backup(settings, Path(args.destination))
    return health(settings, args.url, args.timeout)


def health_url(settings: Settings, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    if settings.address_file:
        try:
            return Path(settings.address_file).read_text().strip().rstrip("/")
        except OSError:
            pass  # not written yet (still starting) or elsewhere: fall back to the configured port
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def health(settings: Settings, url: str | None, timeout: float) -> int:
    base = health_url(settings, url)
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout) as response:
            body = json.loads(response.read() or b"{}")
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {base}/healthz: {getattr(exc, 'reason', None) or exc}")
        return EXIT_UNHEALTHY
    print(f"healthy: {base} (pid {body.get('pid')})")
    return 0


def backup(settings: Settings, destination: Path) -> int:
    url = settings.database_url
    if not url.startswith("sqlite:"):
        print(
            "quizroom backup copies SQLite databases; back PostgreSQL up with its own tools, online, e.g.\n"
            f"  pg_dump --format=custom --file quizroom.dump '{redacted(url)}'\n"
            "and restore into an empty database with pg_restore (docs/operations.md, Backup and restore)."
        )
        return EXIT_SETTINGS
    from quizroom.server.startup import StartupFailure
    from quizroom.storage.backup import BackupError, backup_sqlite
    from quizroom.storage.sqlite import sqlite_path

    source = Path(sqlite_path(url))
    try:
        check_sqlite_path(url)
        if not source.is_file():
            raise StartupFailure(EXIT_DATABASE, "backup_failed", database=str(source), error="no such database file")
        copied = backup_sqlite(source, destination)
    except StartupFailure as failure:
        log.error(failure.event, exit_code=failure.code, **failure.fields)
        return failure.code
    except BackupError as exc:
        log.error("backup_failed", database=str(source), destination=str(destination), error=str(exc))
        return EXIT_DATABASE
    log.info("backup_written", database=str(source), destination=str(destination), **copied)
    return 0
