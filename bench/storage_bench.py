"""Storage alone: how many answer rows per second each backend absorbs, and what one group commit costs.

    python -m quizroom.bench.storage_bench [--sizes 50,500,1500] [--pg-url postgresql://…/postgres] [--no-pg]

Each (store, batch size) runs on a fresh database: `--commits` sequential commits of `batch` new answers each
(after a few warm-up commits), exactly what `GroupCommitWriter` sends during a burst. Stores:

* `sqlite`           — SQLiteStorage (WAL, synchronous=FULL), `executemany` INSERT OR IGNORE.
* `pg-executemany`   — PostgresStorage with answers sent by `executemany` (the baseline we did not keep).
* `pg-unnest`        — one `INSERT … SELECT FROM unnest($1::text[], …) ON CONFLICT DO NOTHING` (small batches).
* `pg-copy`          — binary COPY into a per-connection temp table (ON COMMIT DELETE ROWS), then one
                       `INSERT … SELECT … ON CONFLICT DO NOTHING`.
* `pg-copy-drop`     — the same with a temp table created per commit (`ON COMMIT DROP`), the variant we dropped.

PostgresStorage switches from unnest to COPY at `COPY_THRESHOLD` rows; this bench is where that number comes from.
Prints a Markdown table and writes JSON (default bench/results/storage.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from quizroom.storage.base import Storage
from quizroom.storage.postgres import ANSWER_COLUMNS, COPY_THRESHOLD, PostgresStorage
from quizroom.storage.records import AnswerRow, Batch, QuizRow, RoomRow, RoomStateRow, encode_choices
from quizroom.storage.sqlite import SQLiteStorage

T0 = 1_700_000_000_000
ROOMS = 20
DEFAULT_PG = os.environ.get("QUIZROOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class ExecutemanyPostgres(PostgresStorage):
    """PostgresStorage with the answers of a batch sent by `executemany`, for comparison only."""

    async def _insert_answers(self, conn: Any, answers: list[AnswerRow], *, refill: bool) -> tuple[int, bool]:
        await conn.executemany(
            "INSERT INTO answers (room_id, question, player_id, choices, correct, points, response_ms, received_at_ms)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            _records(answers),
        )
        return len(answers), False


class CopyDropPostgres(PostgresStorage):
    """PostgresStorage with a temp table created (and dropped) by every COPY commit, for comparison only."""

    async def _insert_answers(self, conn: Any, answers: list[AnswerRow], *, refill: bool) -> tuple[int, bool]:
        columns = ", ".join(ANSWER_COLUMNS)
        await conn.execute("CREATE TEMP TABLE answers_drop (LIKE answers) ON COMMIT DROP")
        await conn.copy_records_to_table("answers_drop", records=_records(answers), columns=ANSWER_COLUMNS)
        await conn.execute(f"INSERT INTO answers ({columns}) SELECT {columns} FROM answers_drop ON CONFLICT DO NOTHING")
        return len(answers), False


def _records(answers: list[AnswerRow]) -> list[tuple[Any, ...]]:
    """The stored columns only: these comparison stores are unfenced (the answers' question is never checked)."""
    return [
        (a.room_id, a.question, a.player_id, encode_choices(a.choices), a.correct, a.points, a.response_ms,
         a.received_at_ms)
        for a in answers
    ]  # fmt: skip


@dataclass(slots=True)
class Result:
    store: str
    batch: int
    commits: int
    rows_per_s: float
    commit_p50_ms: float
    commit_p99_ms: float


def summarise(store: str, batch: int, runs: list[list[float]]) -> Result:
    """Rows/s: the median over repeated runs (each on a fresh database); latency percentiles over all commits."""
    latencies = sorted(t for run in runs for t in run)
    return Result(
        store=store,
        batch=batch,
        commits=len(latencies),
        rows_per_s=round(statistics.median(batch * len(run) / sum(run) for run in runs)),
        commit_p50_ms=round(statistics.median(latencies) * 1000, 2),
        commit_p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
    )


def make_store(store: str, url: str) -> Storage:
    if store == "sqlite":
        return SQLiteStorage(url)
    if store == "pg-executemany":
        return ExecutemanyPostgres(url, max_size=2)
    if store == "pg-unnest":
        return PostgresStorage(url, max_size=2, copy_threshold=10**9)
    if store == "pg-copy":
        return PostgresStorage(url, max_size=2, copy_threshold=0)
    if store == "pg-copy-drop":
        return CopyDropPostgres(url, max_size=2)
    raise ValueError(store)


def batches(batch: int, count: int, start: int) -> list[Batch]:
    """`count` batches of `batch` distinct answers each (numbered from `start`), spread over 20 rooms, each with its
    own question open and its shard 0 placed under epoch 1, so PostgreSQL runs the fenced insert a cluster runs."""
    out = []
    for b in range(count):
        rows = []
        for k in range(batch):
            n = start + b * batch + k
            room, question, player = f"r{n % ROOMS}", n % ROOMS, f"player-{n // ROOMS:08d}"
            rows.append(AnswerRow(room, question, player, (n % 4,), n % 3 == 0, 700, 1500, T0 + n, shard=0, epoch=1))
        out.append(Batch.of(answers=rows))
    return out


async def measure(store: str, url: str, batch: int, commits: int, warmup: int = 3) -> list[float]:
    """Seconds per commit, for `commits` commits of `batch` new answers."""
    storage = make_store(store, url)
    await storage.open()
    try:
        await storage.create_quiz(QuizRow("q1", "bench", "{}", T0))
        opened = {}
        for r in range(ROOMS):
            await storage.create_room(RoomRow(f"r{r}", str(100_000 + r), "q1", "h", T0))
            opened[f"r{r}"] = RoomStateRow(f"r{r}", "question", r, T0, False, 1)
        await storage.commit(Batch(rooms=opened))
        if store != "sqlite":  # each room's shard 0 placed under epoch 1: the answers' placement checks pass
            conn = await asyncpg.connect(url)
            try:
                await conn.executemany(
                    "INSERT INTO shards (room_id, shard, worker_id, epoch) VALUES ($1, 0, 'bench', 1)",
                    [(room_id,) for room_id in opened],
                )
            finally:
                await conn.close()
        work = batches(batch, warmup + commits, 0)
        for b in work[:warmup]:
            await storage.commit(b)
        latencies = []
        for b in work[warmup:]:
            started = time.perf_counter()
            await storage.commit(b)
            latencies.append(time.perf_counter() - started)
        stored = sum([len(await storage.load_answers(f"r{r}")) for r in range(ROOMS)])
        assert stored == batch * (warmup + commits), f"{store}: {stored} rows stored"
    finally:
        await storage.close()
    return latencies


async def fresh_pg(admin_url: str) -> str:
    name = f"quizroom_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_pg(admin_url: str, url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def run(
    sizes: list[int], pg_url: str | None, rows_per_cell: int, repeat: int
) -> tuple[list[Result], dict[str, Any]]:
    stores = ["sqlite"] + (["pg-executemany", "pg-unnest", "pg-copy", "pg-copy-drop"] if pg_url else [])
    runs: dict[tuple[str, int], list[list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="quizroom-bench-") as tmp:
        # Interleaved repetitions, so a noisy moment on the machine does not land on one store only.
        for rep in range(repeat):
            for size in sizes:
                commits = max(30, rows_per_cell // size)
                for store in stores:
                    if store == "sqlite":
                        url = f"sqlite:///{Path(tmp) / f'bench-{size}-{rep}.db'}"
                        latencies = await measure(store, url, size, commits)
                    else:
                        assert pg_url is not None
                        url = await fresh_pg(pg_url)
                        try:
                            latencies = await measure(store, url, size, commits)
                        finally:
                            await drop_pg(pg_url, url)
                    runs.setdefault((store, size), []).append(latencies)
                    print(f"  run {rep + 1}/{repeat} {store} @ {size}: {size * commits / sum(latencies):,.0f} rows/s")
    results = [summarise(store, size, runs[(store, size)]) for size in sizes for store in stores]
    machine: dict[str, Any] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "copy_threshold": COPY_THRESHOLD,
        "repeat": repeat,
    }
    if pg_url:
        conn = await asyncpg.connect(pg_url)
        try:
            machine["postgresql"] = await conn.fetchval("SHOW server_version")
            machine["pg_synchronous_commit"] = await conn.fetchval("SHOW synchronous_commit")
            machine["pg_fsync"] = await conn.fetchval("SHOW fsync")
        finally:
            await conn.close()
    return results, machine


def table(results: list[Result]) -> str:
    lines = [
        "| store | batch | commits | rows/s | commit p50 ms | commit p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.store} | {r.batch} | {r.commits} | {r.rows_per_s:,} | {r.commit_p50_ms} | {r.commit_p99_ms} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="50,500,1500", help="rows per commit, comma-separated")
    parser.add_argument("--rows", type=int, default=45_000, help="rows per cell (at least 30 commits)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per cell (median rows/s)")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="an admin URL; a scratch database is made per cell")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "storage.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results, machine = asyncio.run(run(sizes, None if args.no_pg else args.pg_url, args.rows, args.repeat))
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": [asdict(r) for r in results]}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
