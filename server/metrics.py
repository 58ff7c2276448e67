"""Prometheus metrics of one server process, in a registry of its own (never the global default).

`Metrics` is the room's `Telemetry` (answers, errors, rate limits, ack latency, broadcasts), the writer's
`on_commit` hook, and the sink of the event-loop lag monitor. Values the process already counts elsewhere (sockets,
rooms, joins, commit failures) are read at scrape time by `RuntimeCollector`, so nothing on a hot path pays twice.
Label values come from closed sets (outcomes, error codes), never from players or rooms: cardinality stays bounded.
"""

from __future__ import annotations

import gc
import platform
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from quizroom.rooms.cluster.registry import RoomRegistry
from quizroom.rooms.game.errors import QuizroomError
from quizroom.server.connections import ConnectionGate
from quizroom.server.counters import Counters
from quizroom.storage.writer import GroupCommitWriter


class Observed(Protocol):
    """What the collector reads of a serving process's runtime (`quizroom.server.runtime.Runtime`) at scrape time."""

    counters: Counters
    writer: GroupCommitWriter
    registry: RoomRegistry
    draining: bool
    gate: ConnectionGate | None


# The text format every Prometheus version reads; `generate_latest` writes it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ANSWER_OUTCOMES = ("accepted", "duplicate", "late", "refused")
OTHER = "other"

# Seconds. Broadcasts and acks are expected in the low milliseconds; commits on a slow disk take tens.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def error_codes() -> tuple[str, ...]:
    """Every documented error code: the label values `quizroom_errors_total` may take (plus `other`)."""
    codes: set[str] = set()
    pending: list[type[QuizroomError]] = list(QuizroomError.__subclasses__())
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        code = getattr(kind, "code", "")
        if isinstance(code, str) and code:
            codes.add(code)
    return tuple(sorted(codes))


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def package_version() -> str:
    try:
        return metadata.version("quizroom")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """The process's instruments. Every method is cheap and never raises (the `Telemetry` contract)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin of each counter: half the series
        if process:  # CPU, memory, file descriptors, GC, Python version: what every operator looks at first
            ProcessCollector(registry=r)
            GCCollector(registry=r)
            PlatformCollector(registry=r)
        self.answers = Counter("quizroom_answers", "answer messages judged, by outcome", ["outcome"], registry=r)
        # Children resolved once: `labels()` takes a lock and builds a key on every call, and answers come in bursts.
        self._by_outcome = {outcome: self.answers.labels(outcome) for outcome in (*ANSWER_OUTCOMES, OTHER)}
        self._codes = frozenset(error_codes())
        self.errors = Counter("quizroom_errors", "error messages sent to sockets, by code", ["code"], registry=r)
        self._by_code = {code: self.errors.labels(code) for code in (*self._codes, OTHER)}
        self.rate_limited_messages = Counter(
            "quizroom_rate_limited_messages", "socket messages refused by the rate limit", registry=r
        )
        self.slow_consumer_drops = Counter(
            "quizroom_slow_consumer_drops", "sockets closed with 4008: their send queue overflowed", registry=r
        )
        self.broadcast_seconds = Histogram(
            "quizroom_question_broadcast_seconds",
            "time a room spends encoding and queuing one question to its players",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.broadcast_recipients = Counter(
            "quizroom_broadcast_recipients", "question frames queued to player sockets", registry=r
        )
        self.ack_seconds = Histogram(
            "quizroom_answer_ack_seconds",
            "from an answer's arrival in its room to its acknowledgement (the commit included)",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "quizroom_commit_seconds", "duration of each successful group commit", buckets=ACK_BUCKETS, registry=r
        )
        self.commit_rows = Histogram(
            "quizroom_commit_batch_rows", "rows in each successful group commit", buckets=ROW_BUCKETS, registry=r
        )
        self.loop_lag_seconds = Histogram(
            "quizroom_event_loop_lag_seconds",
            "how late the event loop ran a timer: the delay every socket and room waits behind",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.gc_reclaim = Histogram(
            "quizroom_gc_reclaim_seconds",
            "pause of each full garbage collection the collector policy ran (server/collector.py)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "quizroom_http_requests",
            "HTTP responses, by route template (never the path: it carries PINs), method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "quizroom_http_request_seconds",
            "time to answer an HTTP request, by route template",
            ["route"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self._runtime: RuntimeCollector | None = None

    # --- Telemetry (rooms/actors/telemetry.py) -----------------------------------------------------------------

    def answer(self, outcome: str) -> None:
        (self._by_outcome.get(outcome) or self._by_outcome[OTHER]).inc()

    def error(self, code: str) -> None:
        (self._by_code.get(code) or self._by_code[OTHER]).inc()

    def rate_limited(self) -> None:
        self.rate_limited_messages.inc()

    def ack_latency(self, seconds: float) -> None:
        self.ack_seconds.observe(seconds)

    def broadcast(self, seconds: float, recipients: int) -> None:
        self.broadcast_seconds.observe(seconds)
        self.broadcast_recipients.inc(recipients)

    # --- other hooks --------------------------------------------------------------------------------------------

    def on_commit(self, seconds: float, rows: int) -> None:
        """`GroupCommitWriter(on_commit=…)`."""
        self.commit_seconds.observe(seconds)
        self.commit_rows.observe(rows)

    def http_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """One HTTP response (server/accesslog.py). Labels stay in closed sets: an unmatched path is `unmatched`,
        a method outside the standard ones `other`."""
        template = route or "unmatched"
        self.http_requests.labels(template, method if method in HTTP_METHODS else "other", str(status)).inc()
        self.http_seconds.labels(template).observe(seconds)

    def loop_lag(self, seconds: float) -> None:
        self.loop_lag_seconds.observe(seconds)

    def slow_consumer(self) -> None:
        """A socket was closed with 4008 because it fell behind."""
        self.slow_consumer_drops.inc()

    def watch(self, runtime: Observed) -> None:
        """Export what the runtime already counts (sockets, rooms, joins, the writer's totals) at scrape time."""
        if self._runtime is None:
            self._runtime = RuntimeCollector(runtime)
            self.registry.register(self._runtime)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RuntimeCollector(Collector):
    """Reads the runtime's own counters when Prometheus scrapes, instead of mirroring them on every event."""

    def __init__(self, runtime: Observed) -> None:
        self.runtime = runtime

    def describe(self) -> Iterable[Metric]:
        return []  # values exist only at collect time; describing them would run collect at registration

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        counters = runtime.counters
        stats = runtime.writer.stats
        rooms = runtime.registry.rooms()
        info = InfoMetricFamily("quizroom_build", "version of this server")
        info.add_metric([], {"version": package_version(), "python": platform.python_version()})
        yield info
        yield GaugeMetricFamily("quizroom_rooms", "rooms in memory", value=len(rooms))
        yield GaugeMetricFamily(
            "quizroom_players_connected",
            "player sockets attached to rooms",
            value=sum(len(shard.sessions) for shard in runtime.registry.shard_actors()),
        )
        yield GaugeMetricFamily(
            "quizroom_shards", "room shards held by this worker", value=len(runtime.registry.shard_actors())
        )
        yield GaugeMetricFamily("quizroom_sockets_open", "WebSocket connections open", value=counters.sockets_open)
        yield CounterMetricFamily(
            "quizroom_sockets_accepted", "WebSocket connections accepted", value=counters.sockets_total
        )
        yield CounterMetricFamily(
            "quizroom_sockets_refused",
            "WebSocket connections refused (origin, shutting down)",
            value=counters.refused_origin,
        )
        yield CounterMetricFamily(
            "quizroom_sockets_limited",
            "WebSocket handshakes refused by the per-address or server-wide limits (429/503)",
            value=counters.refused_admission,
        )
        yield CounterMetricFamily(
            "quizroom_sockets_direct_intake",
            "sockets whose messages go from uvicorn's protocol straight to the room (no per-message task switch)",
            value=counters.direct_intake,
        )
        yield CounterMetricFamily(
            "quizroom_sockets_lean_handshake",
            "sockets whose opening handshake was answered from the request as uvicorn parsed it (not parsed twice)",
            value=counters.lean_handshakes,
        )
        yield CounterMetricFamily("quizroom_joins", "players joined", value=counters.joins)
        limited = CounterMetricFamily(
            "quizroom_http_limited",
            "HTTP calls refused by a per-address limit (429), by limit: joins, creations, pin_misses",
            labels=["limit"],
        )
        for limit in ("joins", "creations", "pin_misses"):
            limited.add_metric([limit], counters.http_limited.get(limit, 0))
        yield limited
        gate = runtime.gate
        if gate is not None:
            yield GaugeMetricFamily(
                "quizroom_connections_open", "TCP connections open (HTTP and WebSocket)", value=gate.open_total
            )
            refusals = CounterMetricFamily(
                "quizroom_connections_refused",
                "connections refused by the connection caps: 429 per address, 503 server-wide",
                labels=["status"],
            )
            for status, count in sorted(gate.refused.items()):
                refusals.add_metric([str(status)], count)
            yield refusals
        yield CounterMetricFamily("quizroom_commits", "successful group commits", value=stats.commits)
        yield CounterMetricFamily("quizroom_committed_rows", "rows made durable", value=stats.rows)
        yield CounterMetricFamily(
            "quizroom_commit_failures", "batches that still failed after the retry patience", value=stats.failures
        )
        yield GaugeMetricFamily(
            "quizroom_storage_healthy", "1 while the last commit attempt succeeded", value=int(runtime.writer.healthy)
        )
        yield GaugeMetricFamily(
            "quizroom_gc_frozen_objects",
            "objects out of the garbage collector's sight until the next reclaim (server/collector.py)",
            value=gc.get_freeze_count(),
        )
        yield GaugeMetricFamily("quizroom_draining", "1 while the server is shutting down", value=int(runtime.draining))
