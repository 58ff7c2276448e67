"""Prometheus text exposition of the process's counters and gauges (no per-player labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quizroom.server.runtime import Runtime


def render_metrics(runtime: Runtime) -> str:
    rooms = runtime.registry.rooms()
    stats = runtime.writer.stats
    samples: list[tuple[str, str, str, float]] = [
        ("quizroom_rooms", "gauge", "rooms in memory", len(rooms)),
        (
            "quizroom_players_connected",
            "gauge",
            "player sockets attached to rooms",
            sum(len(r.sessions) for r in rooms),
        ),
        ("quizroom_sockets_open", "gauge", "WebSocket connections open", runtime.counters.sockets_open),
        ("quizroom_sockets_total", "counter", "WebSocket connections accepted", runtime.counters.sockets_total),
        ("quizroom_joins_total", "counter", "players joined", runtime.counters.joins),
        ("quizroom_commits_total", "counter", "group commits", stats.commits),
        ("quizroom_committed_rows_total", "counter", "rows made durable", stats.rows),
        ("quizroom_commit_failures_total", "counter", "batches that failed after retries", stats.failures),
        ("quizroom_commit_seconds_total", "counter", "time spent committing", stats.total_commit_s),
        ("quizroom_last_commit_seconds", "gauge", "duration of the last commit", stats.last_commit_s),
        ("quizroom_last_batch_rows", "gauge", "rows in the last commit", stats.last_batch_rows),
    ]
    lines: list[str] = []
    for name, kind, help_text, value in samples:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"
