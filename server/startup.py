"""Start-up checks and what an operator's mistake ends with: one log line and a documented exit code.

Before a server binds its port or loads a room it checks what an operator can get wrong and the server cannot fix:
the settings (server/validation.py), the SQLite file's directory, the database answering (PostgreSQL may still be
starting: retried with backoff for `database_wait_s`), the port being free. Each failure is one `error` line naming
what is wrong and how to fix it, then the exit code below (docs/operations.md, "Start-up checks and exit codes");
a traceback is left for bugs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import structlog

from quizroom.server.settings import Settings
from quizroom.storage import StorageError, open_storage

log = structlog.get_logger("quizroom.startup")

EXIT_SETTINGS = 2  # a setting is invalid (also argparse's code for a bad command line)
EXIT_DATABASE = 3  # the database cannot be used: missing directory, unwritable, refused login, missing database
EXIT_DATABASE_UNREACHABLE = 4  # the database did not answer within database_wait_s
EXIT_PORT = 5  # the port cannot be bound (in use, or a privileged port)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


class StartupFailure(Exception):
    """An operator's mistake found at start: `event` and `fields` make the log line, `code` the exit code."""

    def __init__(self, code: int, event: str, **fields: Any) -> None:
        super().__init__(f"{event}: {fields}")
        self.code, self.event, self.fields = code, event, fields


def fail(failure: StartupFailure) -> NoReturn:
    log.error(failure.event, exit_code=failure.code, **failure.fields)
    sys.exit(failure.code)


def redacted(url: str) -> str:
    """A database URL without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def check_sqlite_path(url: str) -> None:
    """The file's directory must exist and be writable by this user: it is never created behind the operator's
    back (as root, `mkdir -p` would make a directory the server's own user cannot write later)."""
    from quizroom.storage.sqlite import sqlite_path

    path = sqlite_path(url)
    if path == ":memory:":
        return
    file = Path(path)
    folder = file.parent if str(file.parent) else Path(".")
    if not folder.is_dir():
        raise StartupFailure(
            EXIT_DATABASE,
            "database_directory_missing",
            path=str(file),
            directory=str(folder),
            fix="create the directory, writable by the user the server runs as",
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (file.exists() and not os.access(file, os.R_OK | os.W_OK)):
        raise StartupFailure(
            EXIT_DATABASE,
            "database_not_writable",
            path=str(file),
            user=os.getuid(),
            fix="make the file and its directory writable by this user (SQLite also writes -wal and -shm files there)",
        )


def _permanent(exc: StorageError) -> bool:
    """A refusal that waiting cannot cure: a wrong password, a missing database, a failed migration, a bad file."""
    if "migration failed" in str(exc):
        return True
    cause = exc.__cause__
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return True
    permanent = (
        asyncpg.InvalidCatalogNameError,
        asyncpg.InvalidPasswordError,
        asyncpg.InvalidAuthorizationSpecificationError,
    )
    if isinstance(cause, permanent):
        return True
    transient = (
        OSError,
        TimeoutError,
        asyncpg.CannotConnectNowError,  # "the database system is starting up"
        asyncpg.TooManyConnectionsError,
        asyncpg.InterfaceError,
    )
    return not isinstance(cause, transient)


async def wait_for_database(settings: Settings, *, now: Any = time.monotonic) -> None:
    """Open the database (which applies migrations) and close it again; retry while it does not answer."""
    url = settings.database_url
    if url.startswith("sqlite:"):
        check_sqlite_path(url)
    deadline = now() + settings.database_wait_s
    delay = RETRY_FIRST_S
    attempt = 0
    while True:
        attempt += 1
        storage = open_storage(url)
        try:
            await storage.open()
        except StorageError as exc:
            if url.startswith("sqlite:") or _permanent(exc):
                raise StartupFailure(EXIT_DATABASE, "database_refused", database=redacted(url), error=str(exc)) from exc
            left = deadline - now()
            if left <= 0:
                raise StartupFailure(
                    EXIT_DATABASE_UNREACHABLE,
                    "database_unreachable",
                    database=redacted(url),
                    error=str(exc),
                    attempts=attempt,
                    waited_s=settings.database_wait_s,
                ) from exc
            wait = min(delay, left)
            log.warning(
                "database_waiting", database=redacted(url), error=str(exc), attempt=attempt, retry_in_s=round(wait, 2)
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        await storage.close()
        if attempt > 1:
            log.info("database_answered", database=redacted(url), attempts=attempt)
        return


def write_address(path: str, url: str) -> None:
    """Where this server listens, for `quizroom health` (the container's healthcheck), written atomically."""
    if not path:
        return
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        temporary.write_text(url + "\n")
        temporary.replace(target)
    except OSError as exc:
        log.warning("address_file_not_written", path=path, error=exc.strerror or str(exc))
