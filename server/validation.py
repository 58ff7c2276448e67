"""What a setting may be: choices, ranges, URLs, files. Checked once at start, before anything opens.

An operator's mistake (`--log-level loud`, `--port 70000`, a `mysql://` URL) must stop the server with one clear
line naming the setting and what it accepts, never a traceback or a silent surprise. The rules live here, keyed by
setting name, so `Settings` stays a plain list of knobs; a setting without a rule of its own gets the rule of its
type (numbers: not negative). A field may also carry its own rule as `metadata={"check": Rule}`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

PREFIX = "QUIZROOM_"

Rule = Callable[[Any], str | None]
"""A value → what is wrong with it (one phrase, read after the setting's name), or None when it is fine."""


@dataclass(frozen=True, slots=True)
class Problem:
    setting: str  # the field name, e.g. `log_level`
    value: Any
    problem: str  # e.g. "must be one of debug, info, warning, error"

    @property
    def flag(self) -> str:
        return "--" + self.setting.replace("_", "-")

    @property
    def variable(self) -> str:
        return PREFIX + self.setting.upper()

    def __str__(self) -> str:
        return f"{self.flag} ({self.variable}) {self.problem} (got {self.value!r})"


class SettingsError(ValueError):
    """One or more settings are unusable; `problems` says which and why (exit code 2, docs/operations.md)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


def one_of(*choices: str) -> Rule:
    def rule(value: Any) -> str | None:
        return None if str(value).lower() in choices else f"must be one of {', '.join(choices)}"

    return rule


def between(low: float, high: float | None = None, *, above: bool = False) -> Rule:
    """low ≤ value ≤ high (low < value with `above`)."""

    def rule(value: Any) -> str | None:
        if above and value <= low:
            return f"must be more than {low:g}"
        if value < low or (high is not None and value > high):
            return f"must be from {low:g} to {high:g}" if high is not None else f"must be at least {low:g}"
        return None

    return rule


def database_url(value: Any) -> str | None:
    text = str(value)
    if text.startswith("sqlite:"):
        from quizroom.storage.sqlite import sqlite_path

        return None if sqlite_path(text) else "names no file: use sqlite:///relative.db or sqlite:////abs/path.db"
    if text.startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError as exc:
            return f"is not a valid PostgreSQL URL ({exc})"
        return None
    scheme = text.split(":", 1)[0] if ":" in text else text
    return f"must be sqlite:///… or postgresql://… (the {scheme!r} scheme is not supported)"


def http_url(*, optional: bool = True) -> Rule:
    def rule(value: Any) -> str | None:
        text = str(value)
        if not text and optional:
            return None
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            return "must be an http:// or https:// URL"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "must be an http:// or https:// URL with a host, e.g. https://quiz.example.org"
        if parts.query or parts.fragment:
            return "must have no query or fragment"
        return None

    return rule


def origins(value: Any) -> str | None:
    for origin in value:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            return f"must be origins such as https://quiz.example.org (not {origin!r})"
    return None


def networks(value: Any) -> str | None:
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"must be IP addresses or CIDR ranges (not {entry!r})"
    return None


def readable_file(value: Any) -> str | None:
    if not value:
        return None
    if not os.path.isfile(value):
        return "names a file that does not exist"
    if not os.access(value, os.R_OK):
        return "names a file this user cannot read"
    return None


POSITIVE = between(0, above=True)
AT_LEAST_ONE = between(1)
NOT_NEGATIVE = between(0)

RULES: dict[str, Rule] = {
    "port": between(0, 65_535),
    "database_url": database_url,
    "public_url": http_url(),
    "worker_url": http_url(),
    "allowed_origins": origins,
    "log_level": one_of("debug", "info", "warning", "error"),
    "log_format": one_of("console", "json"),
    "workers": between(1, 512),
    "cluster_heartbeat_s": POSITIVE,
    "cluster_ttl_s": POSITIVE,
    "max_message_bytes": between(128),
    "rate_per_second": POSITIVE,
    "rate_burst": AT_LEAST_ONE,
    "rate_abuse_strikes": AT_LEAST_ONE,
    "answer_attempts": AT_LEAST_ONE,
    "players_per_room": AT_LEAST_ONE,
    "players_per_shard": AT_LEAST_ONE,
    "heartbeat_interval_s": POSITIVE,
    "heartbeat_timeout_s": POSITIVE,
    "hello_timeout_s": POSITIVE,
    "send_queue": AT_LEAST_ONE,
    "handshake_burst": AT_LEAST_ONE,
    "trusted_proxies": networks,
    "handshake_timeout_s": POSITIVE,
    "nickname_blocklist_file": readable_file,
    "compliance_echo": between(0, 1),
}


def _by_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return NOT_NEGATIVE(value)
    return None


def check(settings: Any) -> list[Problem]:
    """Every problem of these settings (a `quizroom.server.settings.Settings`: this module sits below it, so it
    takes the dataclass as it comes), each setting on its own, then the ones between settings."""
    problems: list[Problem] = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        rule: Rule = f.metadata.get("check") or RULES.get(f.name) or _by_type
        problem = rule(value)
        if problem is not None:
            problems.append(Problem(f.name, value, problem))
    if not problems and settings.cluster_ttl_s <= settings.cluster_heartbeat_s:
        problems.append(
            Problem(
                "cluster_ttl_s",
                settings.cluster_ttl_s,
                f"must be more than the heartbeat interval ({settings.cluster_heartbeat_s:g} s), or every worker "
                "would be presumed dead between two of its own heartbeats",
            )
        )
    return problems
