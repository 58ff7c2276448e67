"""The scenarios — burst, game, join, reconnect-storm (soak lives in soak.py) — each run against one target and
returned as a dict.

Every run gets a fresh server when the bench starts it (so RSS per player and CPU seconds belong to that run), a
fresh room, and players spread over the load workers. Fan-out is the host command's send time to each player's
receive time, both on CLOCK_MONOTONIC; ack latency is each answer's send time to its `answer_ack`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import exactly_once
from .control import Control, RoomInfo, make_quiz
from .pool import HostSocket, LoadPool
from .stats import ns_to_ms, summarize
from .target import FLAVOURS, CpuPlan, ProcSample, ServerProcess, sample_process
from .worker import AnswerRecord

CROWD = "main"


@dataclass(slots=True)
class Options:
    procs: int
    url: str | None = None
    baseline_url: str | None = None
    targets: tuple[str, ...] = ("quizroom", "baseline")
    database_url: str | None = None
    server_args: list[str] = field(default_factory=list)
    commands: str = "ws"
    concurrency: int = 64
    timeout: float = 60.0
    seed: int = 1
    fault: str | None = None
    progress: bool = True
    admin_token: str | None = None  # the target's QUIZROOM_ADMIN_TOKEN, to create rooms on it
    server_logs: Path | None = None  # keep each started server's log here (`--keep-server-logs`)


@dataclass(slots=True)
class Target:
    name: str
    url: str
    flavour: str
    server: ServerProcess | None


class Session:
    """One bench invocation: the options, the CPU plan, the load pool and the live progress line."""

    def __init__(self, opts: Options, plan: CpuPlan) -> None:
        self.opts, self.plan = opts, plan
        self.pool = LoadPool(opts.procs, plan.load)
        self.label = self.phase = ""
        self._since: dict[str, int] = {}
        self._started = time.monotonic()
        self._ticker: asyncio.Task[None] | None = None
        self._runs = 0

    async def __aenter__(self) -> Session:
        await self.pool.start()
        if self.opts.progress and sys.stderr.isatty():
            self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            sys.stderr.write("\r\x1b[2K")
        await self.pool.stop()

    def targets(self) -> list[str]:
        names = [t for t in self.opts.targets if t == "quizroom"]
        if "baseline" in self.opts.targets and (self.opts.url is None or self.opts.baseline_url is not None):
            names.append("baseline")
        if "node" in self.opts.targets and self.opts.url is None:  # started by the bench only
            names.append("node")
        return names

    def begin(self, label: str) -> str:
        """Start a run: reset the progress line; returns a nickname prefix unique in this invocation."""
        self._runs += 1
        self.label, self.phase = label, "start"
        self._since, self._started = self.pool.totals(), time.monotonic()
        return f"b{self._runs}-"

    async def _tick(self) -> None:
        while True:
            now = self.pool.totals()
            delta = {k: v - self._since.get(k, 0) for k, v in now.items()}
            sys.stderr.write(
                f"\r\x1b[2K[{self.label}] {self.phase:<12} joined {delta['joined']:>6}  "
                f"questions {delta['questions']:>6}  acks {delta['acks']:>6}  errors "
                f"{delta['errors']:>4}  {time.monotonic() - self._started:5.1f}s"
            )
            sys.stderr.flush()
            await asyncio.sleep(0.25)

    @asynccontextmanager
    async def target(self, name: str) -> AsyncIterator[Target]:
        """A target to load: a freshly started server, or the one at `--url` / `--baseline-url`."""
        url = {"quizroom": self.opts.url, "baseline": self.opts.baseline_url}.get(name)  # node: always started here
        if url is not None:
            yield Target(name, url.rstrip("/"), FLAVOURS[name], None)
            return
        server = ServerProcess(
            name,
            self.plan.server,
            self.opts.database_url,
            list(self.opts.server_args),
            self.opts.fault if name == "baseline" else None,
            self.opts.server_logs / f"{name}-{self._runs}.log" if self.opts.server_logs is not None else None,
        )
        try:
            await server.start()
            yield Target(name, server.url, FLAVOURS[name], server)
        finally:
            await server.stop()


class ServerMonitor:
    """Samples a started server's RSS and CPU every 100 ms (nothing for a server we did not start), and the
    load processes' CPU, to tell a server-bound figure from a client-bound one."""

    def __init__(self, target: Target, pool: LoadPool) -> None:
        self.pool = pool
        self.load_cpu_start = pool.cpu_seconds()
        self.pid = target.server.pid if target.server is not None else None
        self.marks: dict[str, ProcSample] = {}
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def mark(self, name: str) -> None:
        sample = sample_process(self.pid) if self.pid is not None else None
        if sample is not None:
            self.marks[name] = sample
            self.peak = max(self.peak, sample.rss_kib)

    async def __aenter__(self) -> ServerMonitor:
        self.mark("start")
        if self.pid is not None:
            self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.mark("last")

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.mark("end")

    def result(self, players: int) -> dict[str, Any]:
        load = {"load_cpu_s": round(self.pool.cpu_seconds() - self.load_cpu_start, 2)}
        start, end = self.marks.get("start"), self.marks.get("end")
        if start is None or end is None:
            return load
        joined = self.marks.get("joined", end)
        return {
            **load,
            "rss_start_kib": start.rss_kib,
            "rss_joined_kib": joined.rss_kib,
            "rss_end_kib": end.rss_kib,
            "rss_peak_kib": max(self.peak, end.hwm_kib),
            "kib_per_player": round((joined.rss_kib - start.rss_kib) / players, 2) if players else None,
            "cpu_s": round(end.cpu_s - start.cpu_s, 2),
        }


def lag_metrics(text: str | None) -> dict[str, Any] | None:
    """Series from `/metrics` whose name mentions the event loop's lag or delay.

    A histogram (quizroom's `quizroom_event_loop_lag_seconds`) becomes count, mean and the bucket bounds that
    hold 99 % and 100 % of the observations — `max_le_ms` is an upper bound on the run's peak lag, since the
    server is fresh for each run. Plain gauges are kept as they are (max over label sets).
    """
    if not text:
        return None
    plain: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    totals: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not match or "loop" not in match[1] or not ("lag" in match[1] or "delay" in match[1]):
            continue
        name, labels = match[1], match[2] or ""
        try:
            value = float(match[3])
        except ValueError:
            continue
        le = re.search(r'le="([^"]+)"', labels)
        if name.endswith("_bucket") and le:
            buckets.setdefault(name.removesuffix("_bucket"), []).append((float(le[1]), value))
        elif name.endswith(("_sum", "_count")):
            base, _, kind = name.rpartition("_")
            totals.setdefault(base, {})[kind] = value
        elif not name.endswith("_created"):
            plain[name] = max(plain.get(name, float("-inf")), value)
    found: dict[str, Any] = dict(plain)
    for base, series in buckets.items():
        series.sort()
        count = totals.get(base, {}).get("count", series[-1][1])
        if count <= 0:
            continue

        def bound(share: float, series: list[tuple[float, float]] = series, count: float = count) -> float | None:
            le = next(le for le, c in series if c >= share * count)
            return None if le == float("inf") else round(le * 1000, 3)

        found[base] = {
            "count": int(count),
            "mean_ms": round(totals[base].get("sum", 0.0) / count * 1000, 3) if base in totals else None,
            "p99_le_ms": bound(0.99),
            "max_le_ms": bound(1.0),
        }
    return found or None


def without_cdf(summary: dict[str, Any]) -> dict[str, Any]:
    summary.pop("cdf", None)
    return summary


async def join_crowd(s: Session, room: RoomInfo, n: int, prefix: str) -> dict[str, Any]:
    s.phase = "joining"
    parts = s.pool.split(n)
    replies = await s.pool.each(
        "join",
        [
            {
                "crowd": CROWD,
                "pin": room.pin,
                "nicknames": [f"{prefix}{i}" for i in part],
                "concurrency": s.opts.concurrency,
                "wait_s": s.opts.timeout,
            }
            for part in parts
        ],
    )
    return join_figures(replies)


def join_figures(replies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The load processes' `join` replies as one figure: players seated, the rate, HTTP and welcome latencies."""
    ok = sum(r["ok"] for r in replies)
    first = min((r["first_ns"] for r in replies if r["ok"]), default=0)
    last = max((r["last_ns"] for r in replies if r["ok"]), default=0)
    seconds = (last - first) / 1e9 if ok else 0.0
    return {
        "ok": ok,
        "seconds": round(seconds, 3),
        "rate_per_s": round(ok / seconds, 1) if seconds else None,
        "http_ms": without_cdf(summarize(ns_to_ms([x for r in replies for x in r["http_ns"]]))),
        "welcome_ms": without_cdf(summarize(ns_to_ms([x for r in replies for x in r["welcome_ns"]]))),
    }


def fanout(sent_ns: int, received_ns: Sequence[int]) -> dict[str, Any]:
    """Latencies from the host command to each copy, and the spread from the first copy to the last (what a
    broadcast costs per recipient, whatever the command's own path cost before the first went out)."""
    delays = [(t - sent_ns) / 1e6 for t in received_ns]
    out = summarize(delays, max(delays, default=0.0))
    if len(delays) > 1:
        spread = max(delays) - min(delays)
        out["spread"] = round(spread, 3)
        out["per_recipient_us"] = round(spread * 1000 / (len(delays) - 1), 2)
    return out


def ack_summary(records: Sequence[AnswerRecord]) -> dict[str, Any]:
    """Ack latencies of answers sent once on a steady socket; `until_last` is the longest span, within one
    question, from its first answer sent to its last ack."""
    acked = [r for r in records if r.outcome == "ack" and r.mode == "normal"]
    spans: dict[int, tuple[int, int]] = {}
    for r in acked:
        first, last = spans.get(r.question, (r.sent_ns, r.done_ns))
        spans[r.question] = (min(first, r.sent_ns), max(last, r.done_ns))
    until_last = max(((b - a) / 1e6 for a, b in spans.values()), default=None)
    return summarize([(r.done_ns - r.sent_ns) / 1e6 for r in acked], until_last)


def answer_counts(records: Sequence[AnswerRecord]) -> dict[str, int]:
    return {
        "sent": sum(r.sent for r in records),
        "accepted": sum(r.accepted for r in records),
        "duplicate_acks": sum(r.duplicate for r in records),
        "missed": sum(r.outcome == "missed" for r in records),
        "timeout": sum(r.outcome == "timeout" for r in records),
        "rejected": sum(r.outcome.startswith("error:") for r in records),
    }


async def collect_errors(s: Session, records: Sequence[AnswerRecord], extra: Counter[str]) -> dict[str, int]:
    errors: Counter[str] = Counter({k: v for k, v in extra.items() if v})
    for reply in await s.pool.all("take_errors"):
        errors.update(reply)
    errors.update(r.outcome for r in records if r.outcome not in ("ack", "missed"))
    return dict(sorted(errors.items()))


@asynccontextmanager
async def room_run(
    s: Session, target: Target, quiz: dict[str, Any]
) -> AsyncIterator[tuple[Control, RoomInfo, HostSocket]]:
    """Create the room and the host socket; afterwards end the room and close every socket of the crowd."""
    control = Control(target.url, target.flavour, connections=4, admin_token=s.opts.admin_token)
    await s.pool.all("configure", base_url=target.url, flavour=target.flavour)
    room = await control.create_room(quiz)
    host = HostSocket(room, control, s.opts.commands == "http")
    await host.open(s.opts.timeout)
    host.start_probe()  # for the whole run, joins included
    try:
        yield control, room, host
    finally:
        with suppress(Exception):
            await host.command("end", wait_s=10)
        host.close()
        await s.pool.all("close", crowd=CROWD)
        await control.aclose()


async def finish(
    s: Session,
    run: dict[str, Any],
    control: Control,
    room: RoomInfo,
    records: Sequence[AnswerRecord],
    extra_errors: Counter[str],
    rtt_ns: Sequence[int],
) -> None:
    s.phase = "checking"
    run["answers"] = answer_counts(records)
    run["success_rate"] = round(run["answers"]["accepted"] / max(1, run["expected_answers"]), 4)
    run["errors"] = await collect_errors(s, records, extra_errors)
    if records:
        run["exactly_once"] = exactly_once.check(await control.results(room), records)
    run["loop_lag"] = {
        "ping_rtt_ms": without_cdf(summarize(ns_to_ms(rtt_ns))),
        "server_metrics": lag_metrics(await control.metrics()),
    }


async def run_burst(
    s: Session, name: str, n: int, storm_jitter_ms: int | None = None, question_type: str = "choice"
) -> dict[str, Any]:
    """N players, one question (of `question_type`), everyone answers at once (after an optional reconnect storm)."""
    scenario = "burst" if storm_jitter_ms is None else "reconnect-storm"
    if question_type != "choice":
        scenario += f":{question_type}"  # its own rows in the tables and ratios
    prefix = s.begin(f"{scenario} {name} N={n}")
    started = time.monotonic()
    run: dict[str, Any] = {"scenario": scenario, "target": name, "n": n, "questions": 1, "expected_answers": n}
    run["question_type"] = question_type
    extra: Counter[str] = Counter()
    async with (
        s.target(name) as target,
        ServerMonitor(target, s.pool) as monitor,
        room_run(s, target, make_quiz(1, 300_000, question_type=question_type)) as (control, room, host),
    ):
        run["join"] = await join_crowd(s, room, n, prefix)
        monitor.mark("joined")
        s.phase = "fan-out"
        sent_ns, reply = await host.command("start")
        if reply.get("type") == "error":
            extra[f"host:start:{reply.get('code')}"] += 1
        got = await s.pool.all("await_questions", crowd=CROWD, index=0, wait_s=s.opts.timeout)
        run["fanout"] = fanout(sent_ns, [t for g in got for t in g["recv_ns"]])
        extra["no_question"] += sum(g["missing"] for g in got)
        if storm_jitter_ms is not None:
            s.phase = "storm"
            storm = await s.pool.all(
                "storm", crowd=CROWD, jitter_ms=storm_jitter_ms, seed=s.opts.seed, wait_s=s.opts.timeout
            )
            dropped = min(g["dropped_ns"] for g in storm)
            back = [t for g in storm for t in g["since_drop_ns"]]
            run["reconnect"] = without_cdf(
                summarize(
                    ns_to_ms([t for g in storm for t in g["reconnect_ns"]]),
                    max(back, default=dropped) / 1e6 if back else None,
                )
            )
            run["reconnect"]["failed"] = sum(g["failed"] for g in storm)
            run["storm_jitter_ms"] = storm_jitter_ms
        s.phase = "answers"
        bursts = await s.pool.each(
            "burst",
            [
                {
                    "crowd": CROWD,
                    "index": 0,
                    "chunk": 50,
                    "wait_s": s.opts.timeout,
                    "seed": s.opts.seed + w,
                    "kind": question_type,
                }
                for w in range(s.pool.procs)
            ],
        )
        records = [r for b in bursts for r in b["answers"]]
        run["ack"] = ack_summary(records)
        rtt = host.stop_probe()
        await finish(s, run, control, room, records, extra, rtt)
    run["server"] = monitor.result(run["join"]["ok"])
    run["elapsed_s"] = round(time.monotonic() - started, 2)
    return run


async def run_game(s: Session, name: str, n: int, questions: int, spread_ms: int, reconnects: int) -> dict[str, Any]:
    """A whole quiz: answers spread over each window, `reconnects` players per question drop and come back."""
    prefix = s.begin(f"game {name} N={n}")
    started = time.monotonic()
    run: dict[str, Any] = {
        "scenario": "game",
        "target": name,
        "n": n,
        "questions": questions,
        "expected_answers": n * questions,
        "spread_ms": spread_ms,
        "reconnects_per_question": reconnects,
    }
    extra: Counter[str] = Counter()
    records: list[AnswerRecord] = []
    delays: list[float] = []
    lasts: list[float] = []
    reconnect_ns: list[int] = []
    async with (
        s.target(name) as target,
        ServerMonitor(target, s.pool) as monitor,
        room_run(s, target, make_quiz(questions, max(5_000, spread_ms * 4))) as (control, room, host),
    ):
        run["join"] = await join_crowd(s, room, n, prefix)
        monitor.mark("joined")
        for index in range(questions):
            s.phase = f"question {index + 1}/{questions}"
            await s.pool.each(
                "arm",
                [
                    {
                        "crowd": CROWD,
                        "index": index,
                        "spread_ms": spread_ms,
                        "drop_before": _share(reconnects // 2, w, index, s.pool.procs),
                        "drop_after": _share(reconnects - reconnects // 2, w, index + 1, s.pool.procs),
                        "seed": s.opts.seed * 1000 + index * 10 + w,
                        "wait_s": s.opts.timeout,
                    }
                    for w in range(s.pool.procs)
                ],
            )
            sent_ns, reply = await host.command("start" if index == 0 else "next")
            if reply.get("type") == "error":
                extra[f"host:{'start' if index == 0 else 'next'}:{reply.get('code')}"] += 1
            played = await s.pool.all("harvest", index=index)
            received = [t for p in played for t in p["recv_ns"]]
            delays += [(t - sent_ns) / 1e6 for t in received]
            lasts.append(max((t - sent_ns) / 1e6 for t in received) if received else float("nan"))
            records += [r for p in played for r in p["answers"]]
            reconnect_ns += [t for p in played for t in p["reconnect_ns"]]
            await host.command("close")  # `bad_phase` when the server already closed it early: fine
        await host.command("next")  # → finished
        run["fanout"] = summarize(delays, max(lasts, default=0.0))
        run["fanout_until_last_per_question_ms"] = [round(x, 2) for x in lasts]
        run["ack"] = ack_summary(records)
        run["reconnect"] = without_cdf(summarize(ns_to_ms(reconnect_ns)))
        rtt = host.stop_probe()
        await finish(s, run, control, room, records, extra, rtt)
    run["server"] = monitor.result(run["join"]["ok"])
    run["elapsed_s"] = round(time.monotonic() - started, 2)
    return run


def _share(total: int, wid: int, offset: int, procs: int) -> int:
    """Spread `total` reconnecting players over the workers, rotating who gets the remainder per question."""
    base, extra = divmod(total, procs)
    return base + (1 if (wid - offset) % procs < extra else 0)


async def run_join(s: Session, name: str, n: int) -> dict[str, Any]:
    """N players join (HTTP join + socket + hello/welcome) as fast as the concurrency allows."""
    prefix = s.begin(f"join {name} N={n}")
    started = time.monotonic()
    run: dict[str, Any] = {"scenario": "join", "target": name, "n": n, "questions": 0, "expected_answers": 0}
    async with (
        s.target(name) as target,
        ServerMonitor(target, s.pool) as monitor,
        room_run(s, target, make_quiz(1, 20_000)) as (control, room, _host),
    ):
        run["join"] = await join_crowd(s, room, n, prefix)
        monitor.mark("joined")
        await finish(s, run, control, room, [], Counter(), [])
    run["server"] = monitor.result(run["join"]["ok"])
    run["elapsed_s"] = round(time.monotonic() - started, 2)
    return run
