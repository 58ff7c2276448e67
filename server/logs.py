"""structlog set-up: readable console lines in development, one JSON object per line in production.

Every line carries `worker` (the process id, so lines of several workers can be told apart) and, from the room
actor's bound logger, `pin`. Standard-library records (uvicorn, asyncio) go through the same renderer, so a JSON log
is JSON on every line. Tokens are never logged: nothing here sees request headers or query strings.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import structlog
from structlog.types import EventDict, Processor, WrappedLogger


def add_worker(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event.setdefault("worker", os.getpid())
    return event


def traceback_out_of_event(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """A record whose message is a whole formatted traceback (Starlette reports a failed start-up that way, and
    uvicorn logs it as the message) keeps the traceback in `exception` and its last line as `event`, so the
    event stays one readable line."""
    text = event.get("event")
    if isinstance(text, str) and text.startswith("Traceback (most recent call last)"):
        lines = [line for line in text.strip().splitlines() if line.strip()]
        event["event"] = "unhandled_error"
        event["error"] = lines[-1].strip() if lines else ""
        event.setdefault("exception", text.rstrip())
    return event


class NoFrameDumps(logging.Filter):
    """Drops the `websockets` library's debug records: they print every frame's payload, and a player's `hello`
    carries its token. uvicorn hands that library its own logger, so the level alone cannot keep them out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG or f"{os.sep}websockets{os.sep}" not in record.pathname


_STDERR_LOCK = threading.RLock()
"""One lock for every line written to stderr: structlog's own events (main thread) and standard-library records
(the SQLite driver logs from its thread) would otherwise interleave two JSON objects on one line."""


class LineLogger:
    """structlog's output: one whole line per event, under the lock the standard-library handler uses too."""

    def __init__(self, *args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        with _STDERR_LOCK:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = failure = err = msg


def console_line(logger: WrappedLogger, method: str, event: EventDict) -> str:
    """The console format: time, level, event, then the other keys sorted as `key=value`, and a traceback (or stack)
    on the lines below.

    Why not structlog's `ConsoleRenderer`: it takes ~20 µs a line (column padding, styles, a repr per value), and the
    server writes one line per HTTP request: in a join storm that was most of the access log's cost. This takes
    ~10 µs and reads the same (strings bare, other values as their repr)."""
    stamp = event.pop("timestamp", "")
    level = event.pop("level", "")
    name = str(event.pop("event", ""))
    tails = [str(event.pop(key)) for key in ("exception", "stack") if event.get(key)]
    pairs = " ".join(
        f"{key}={value}" if isinstance(value, str) else f"{key}={value!r}" for key, value in sorted(event.items())
    )
    line = f"{stamp} [{level:<9}] {name:<30} {pairs}".rstrip()
    return "\n".join([line, *tails])


class LockedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def createLock(self) -> None:
        self.lock = _STDERR_LOCK


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Processor
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else console_line
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_worker,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=LineLogger,
        cache_logger_on_first_use=True,
    )
    handler = LockedStreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                structlog.processors.format_exc_info,
                traceback_out_of_event,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(NoFrameDumps())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
