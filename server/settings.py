"""One settings object, read once at start from `QUIZROOM_*` environment variables and the command line (SPEC §6)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from quizroom.server.validation import Problem, SettingsError, between, check

PREFIX = "QUIZROOM_"


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the server. Field names are the environment variables without the prefix, lower-cased."""

    host: str = field(default="127.0.0.1", metadata={"help": "interface to listen on"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    database_url: str = field(
        default="sqlite:///quizroom.db",
        metadata={"help": "sqlite:///relative.db, sqlite:////abs/path.db or postgresql://user@host/db"},
    )
    admin_token: str = field(
        default="", metadata={"help": "if set, required to create quizzes and rooms and for every quiz library call"}
    )
    public_url: str = field(default="", metadata={"help": "base URL for join_url/ws_url (default: from the request)"})
    allowed_origins: tuple[str, ...] = field(
        default=(), metadata={"help": "comma-separated browser origins allowed to open sockets (empty: any)"}
    )
    log_level: str = field(default="info", metadata={"help": "debug, info, warning, error"})
    log_format: str = field(default="console", metadata={"help": "console or json"})
    workers: int = field(default=1, metadata={"help": "worker processes (one per core)"})
    worker_url: str = field(
        default="",
        metadata={
            "help": "base URL that reaches this very process (several workers: each worker's own port); "
            "default PUBLIC_URL, else http://HOST:PORT"
        },
    )
    advertise_host: str = field(
        default="",
        metadata={"help": "host name in worker URLs when HOST is 0.0.0.0 or :: (empty: the machine's host name)"},
    )
    cluster_heartbeat_s: float = field(
        default=0.5, metadata={"help": "worker heartbeat and lease renewal interval (PostgreSQL)"}
    )
    cluster_ttl_s: float = field(
        default=2.0,
        metadata={"help": "a worker or a room's coordinator is presumed dead after this long without a heartbeat"},
    )
    max_message_bytes: int = field(default=4096, metadata={"help": "largest inbound WebSocket message"})
    rate_per_second: float = field(default=20.0, metadata={"help": "messages per second per socket"})
    rate_burst: float = field(default=40.0, metadata={"help": "burst allowance per socket"})
    rate_abuse_strikes: int = field(
        default=40, metadata={"help": "consecutive rate-limited messages before closing with 4429"}
    )
    answer_attempts: int = field(default=3, metadata={"help": "answer attempts per player per question"})
    players_per_room: int = field(default=10_000, metadata={"help": "players per room"})
    players_per_shard: int = field(default=1_500, metadata={"help": "players per shard"})
    heartbeat_interval_s: float = field(default=20.0, metadata={"help": "WebSocket ping interval"})
    heartbeat_timeout_s: float = field(default=20.0, metadata={"help": "drop a socket with no pong after this"})
    hello_timeout_s: float = field(default=5.0, metadata={"help": "drop a socket that sends no hello by then"})
    answer_grace_ms: int = field(default=250, metadata={"help": "network grace after a question's deadline"})
    reconnect_grace_s: float = field(
        default=15.0,
        metadata={"help": "a dropped player still counts as playing this long before 'everyone answered' closes early"},
    )
    intro_ms: int = field(
        default=0,
        metadata={"help": "the 'get ready' pause before each question of a room created without `intro_ms` (ms)"},
    )
    auto_advance_after_s: float = field(
        default=60.0,
        metadata={"help": "a reveal of an auto-advance room with no host connected moves on after this long"},
    )
    send_queue: int = field(default=1024, metadata={"help": "frames queued per socket before it is dropped"})
    gc_freeze: int = field(
        default=1,
        metadata={
            "help": "1: keep long-lived objects out of the garbage collector's walks, full collections only when "
            "the heap has grown and no room is busy; 0: CPython's own collector"
        },
    )
    storage_retry_s: float = field(
        default=10.0, metadata={"help": "how long a failing commit is retried before answers get `unavailable`"}
    )
    shutdown_timeout_s: float = field(default=10.0, metadata={"help": "bound on a graceful shutdown"})
    database_wait_s: float = field(
        default=60.0,
        metadata={"help": "at start, how long to wait (retrying with backoff) for a database that does not answer"},
    )
    address_file: str = field(
        default="",
        metadata={"help": "file this server writes its listening URL to once bound (`quizroom health` reads it)"},
    )
    # Hardening (docs/protocol.md "Hardening"). Socket limits are off at 0: one NAT'd hall, our tests and the bench
    # open thousands of sockets from one address.
    max_sockets: int = field(default=0, metadata={"help": "open WebSockets per process, then 503 (0: unlimited)"})
    max_sockets_per_ip: int = field(
        default=0, metadata={"help": "open WebSockets per client address, then 429 (0: unlimited)"}
    )
    handshakes_per_ip_per_second: float = field(
        default=0.0, metadata={"help": "WebSocket handshakes per second per client address, then 429 (0: unlimited)"}
    )
    handshake_burst: float = field(default=20.0, metadata={"help": "burst allowance of the handshake rate"})
    trusted_proxies: tuple[str, ...] = field(
        default=(), metadata={"help": "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed"}
    )
    nickname_blocklist_file: str = field(
        default="", metadata={"help": "file of blocked words, one a line, refused inside nicknames (422)"}
    )
    nickname_filter: int = field(
        default=1,
        metadata={
            "help": "1: also refuse nicknames with English swear words and slurs (glin-profanity's list); "
            "0: only the block list file",
            "check": between(0, 1),
        },
    )
    # Limits and abuse (docs/operations.md): on by default, each sized for a hall of players behind one address.
    request_timeout_s: float = field(
        default=15.0,
        metadata={"help": "close a connection whose HTTP request (headers and body) is not complete by then"},
    )
    keepalive_timeout_s: float = field(
        default=5.0, metadata={"help": "close an idle HTTP keep-alive connection after this long"}
    )
    max_header_bytes: int = field(default=32_768, metadata={"help": "largest HTTP request head, then 431"})
    max_body_bytes: int = field(
        default=1_048_576, metadata={"help": "largest HTTP request body (a whole quiz fits), then 413"}
    )
    max_connections: int = field(
        default=0,
        metadata={"help": "open connections (HTTP and WebSocket) per process, then 503 (0: the fd limit minus 256)"},
    )
    max_connections_per_ip: int = field(
        default=0,
        metadata={"help": "open connections per client address, then 429 (0: half of max_connections)"},
    )
    join_rate_per_ip: float = field(
        default=20.0, metadata={"help": "joins per second per client address, then 429 (0: unlimited)"}
    )
    join_burst: float = field(default=200.0, metadata={"help": "burst allowance of the join rate"})
    create_rate_per_ip: float = field(
        default=0.2, metadata={"help": "quizzes and rooms created per second per client address, then 429 (0: off)"}
    )
    create_burst: float = field(default=20.0, metadata={"help": "burst allowance of the creation rate"})
    pin_miss_rate_per_ip: float = field(
        default=2.0,
        metadata={"help": "lookups of PINs with no room per second per client address, then 429 (0: unlimited)"},
    )
    pin_miss_burst: float = field(default=30.0, metadata={"help": "burst allowance of the PIN-miss rate"})
    max_rooms: int = field(default=5_000, metadata={"help": "live rooms per process, then 503 (0: unlimited)"})
    max_rooms_per_ip: int = field(
        default=50, metadata={"help": "live rooms created by one client address, then 429 (0: unlimited)"}
    )
    lobby_idle_s: float = field(
        default=1_800.0, metadata={"help": "a lobby with no host and no player socket for this long is closed"}
    )
    finished_linger_s: float = field(
        default=120.0, metadata={"help": "a finished room nobody watches leaves memory after this (results stay)"}
    )
    # Images of quizzes (docs/protocol.md, "Images"): uploads are bounded while they stream, decoded in threads.
    max_image_bytes: int = field(
        default=10_485_760,
        metadata={"help": "largest image upload (a phone photo fits), then 413", "check": between(1024)},
    )
    max_archive_bytes: int = field(
        default=67_108_864,
        metadata={"help": "largest quiz archive (zip) to import, then 413", "check": between(1024)},
    )
    image_workers: int = field(
        default=2, metadata={"help": "images decoded and re-encoded at once per process", "check": between(1, 64)}
    )
    image_cache_bytes: int = field(
        default=33_554_432, metadata={"help": "memory per process for the images served most recently (0: none)"}
    )
    upload_rate_per_ip: float = field(
        default=1.0, metadata={"help": "image uploads per second per client address, then 429 (0: off)"}
    )
    upload_burst: float = field(default=60.0, metadata={"help": "burst allowance of the upload rate"})
    allowed_hosts: tuple[str, ...] = field(
        default=(),
        metadata={"help": "comma-separated host names join_url/ws_url may take from the Host header (no PUBLIC_URL)"},
    )
    compliance_echo: int = field(
        default=0, metadata={"help": "1: serve /ws/echo, an echo socket for the Autobahn conformance run only"}
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Environment first, then explicit overrides (the command line); unknown variables are ignored.

        Raises `SettingsError` naming every unusable value (server/validation.py)."""
        values: dict[str, Any] = {}
        unreadable: list[Problem] = []
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is not None and raw != "":
                try:
                    values[f.name] = _parse(f, raw)
                except ValueError as exc:
                    unreadable.append(Problem(f.name, raw, str(exc)))
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        if unreadable:
            raise SettingsError(unreadable)
        settings = dataclasses.replace(cls(), **values)
        problems = check(settings)
        if problems:
            raise SettingsError(problems)
        return settings


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            return _split(raw)
    except ValueError as exc:
        raise ValueError(f"must be {'an integer' if kind == 'int' else 'a number'}") from exc
    return raw
