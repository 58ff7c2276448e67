"""Group commit: every write the game makes durable goes through one `GroupCommitWriter`.

While a commit runs, new writes queue in the next batch; the moment the commit returns, the whole queue is
committed at once. An idle server therefore commits a lone answer immediately (no fixed window), and a burst of
thousands costs a handful of transactions. Every write of a batch shares one future, resolved when the batch is
durable or failed: that is the output gate the room actor waits on before it acknowledges anything. A durable
batch's future holds its `Outcome`: the rows the database refused or found stored already (fenced writers, answers
past their question's close, duplicates with the stored row), so each waiter learns its own row's fate.

A failing commit is retried with backoff for `retry_for_s` seconds (the database may be restarting); after that
the batch fails with `StorageError` and nothing in it is acknowledged. Retrying is safe because every write is
idempotent (answers and players are insert-or-ignore, and a player row found stored counts as stored; room and
score rows are absolute values).

A batch keeps the order of its writes (`Batch` steps), so a kick and a join that came after it commit in that order
together. A player row the database refuses (`PlayersRefused`: its nickname is held by a stored live player) is
taken out and the rest committed at once: each join has its own future, which fails alone.

`healthy` (what /readyz reports) turns false when a commit fails and true when one succeeds — or, on a server with
nothing to write, when a probe of the database succeeds: while unhealthy and idle the writer pings storage every
`probe_every_s`, so readiness comes back within seconds of the database, not with the next write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from quizroom.storage.base import PlayersRefused, Storage, StorageError
from quizroom.storage.records import STORED, AnswerRow, Batch, KickRow, Outcome, PlayerRow, RoomStateRow, ScoreRow

log = structlog.get_logger("quizroom.storage.writer")

T = TypeVar("T")


@dataclass(slots=True)
class WriterStats:
    commits: int = 0
    rows: int = 0
    failures: int = 0
    last_commit_s: float = 0.0
    last_batch_rows: int = 0
    total_commit_s: float = 0.0


class GroupCommitWriter:
    def __init__(
        self,
        storage: Storage,
        *,
        retry_for_s: float = 10.0,
        on_commit: Callable[[float, int], None] | None = None,
        probe_every_s: float = 1.0,
    ) -> None:
        self.storage = storage
        self.probe_every_s = probe_every_s
        self.on_commit = on_commit  # (seconds, rows) after each successful commit, for metrics
        self.retry_for_s = retry_for_s
        self.stats = WriterStats()
        self.healthy = True
        self._batch = Batch()
        self._future: asyncio.Future[Outcome] | None = None
        self._joins: list[tuple[PlayerRow, asyncio.Future[None]]] = []  # the batch's players, each with its future
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # --- submitting ---------------------------------------------------------------------------------------------

    def _current(self) -> asyncio.Future[Outcome]:
        if self._closing:
            raise StorageError("the writer is shutting down")
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            self._wake.set()
        return self._future

    def add_answer(self, row: AnswerRow) -> asyncio.Future[Outcome]:
        future = self._current()
        self._batch.add_answer(row)
        return future

    def add_player(self, row: PlayerRow) -> asyncio.Future[None]:
        """The player's own future: done once the row is stored; `PlayersRefused` if the database refused it."""
        self._current()
        self._batch.add_player(row)
        future = asyncio.get_running_loop().create_future()
        self._joins.append((row, future))
        return future

    def add_kick(self, row: KickRow) -> asyncio.Future[Outcome]:
        future = self._current()
        self._batch.add_kick(row)
        return future

    def save_room(self, row: RoomStateRow) -> asyncio.Future[Outcome]:
        future = self._current()
        self._batch.rooms[row.room_id] = row
        return future

    def save_scores(self, rows: list[ScoreRow]) -> asyncio.Future[Outcome]:
        future = self._current()
        for row in rows:
            self._batch.scores[(row.room_id, row.player_id)] = row
        return future

    # --- running ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def stop(self) -> None:
        """Commit what is queued (within the retry patience), then stop taking writes."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if self.healthy:
                await self._wake.wait()
            else:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.probe_every_s)
                except TimeoutError:
                    await self._probe()
                    continue
            self._wake.clear()
            future = self._future
            if future is None:
                if self._closing:
                    return
                continue
            batch, self._batch, self._future = self._batch, Batch(), None
            joins, self._joins = self._joins, []
            try:
                outcome, refused = await self._commit(batch)
            except StorageError as exc:
                self.stats.failures += 1
                _settle(future, exc, STORED)
                for _, waiting in joins:
                    _settle(waiting, exc, None)
            else:
                _settle(future, None, outcome)
                for row, waiting in joins:
                    key = (row.room_id, row.player_id)
                    _settle(waiting, PlayersRefused(frozenset([key])) if key in refused else None, None)
            if self._future is not None:
                self._wake.set()

    async def _probe(self) -> None:
        """Idle and unhealthy: is the database back? (A commit that succeeds says so too.)"""
        try:
            await self.storage.ping()
        except StorageError:
            return
        if self._future is None:
            self.healthy = True
            log.info("storage_back")

    async def _commit(self, batch: Batch) -> tuple[Outcome, frozenset[tuple[str, str]]]:
        """Commit `batch`, retrying failures for the writer's patience; returns its outcome and the players it had
        to leave out."""
        started = time.monotonic()
        delay = 0.05
        refused: frozenset[tuple[str, str]] = frozenset()
        while True:
            attempt = time.monotonic()
            try:
                outcome = await self.storage.commit(batch)
            except PlayersRefused as exc:
                if not batch.drop_players(exc.players):
                    raise StorageError(f"refused players that are not in the batch: {exc}") from exc
                log.warning("players_refused", players=len(exc.players), rows=len(batch))
                refused |= exc.players
                continue  # at once: the database answered, and the rest of the batch is sound
            except StorageError as exc:
                self.healthy = False
                if time.monotonic() - started >= self.retry_for_s:
                    log.error("commit_failed", rows=len(batch), error=str(exc))
                    raise
                log.warning("commit_retry", rows=len(batch), error=str(exc), delay_s=delay)
                await asyncio.sleep(min(delay, max(0.0, self.retry_for_s - (time.monotonic() - started))))
                delay = min(delay * 2, 2.0)
                continue
            self.healthy = True
            elapsed = time.monotonic() - attempt
            self.stats.commits += 1
            self.stats.rows += len(batch)
            self.stats.last_commit_s = elapsed
            self.stats.last_batch_rows = len(batch)
            self.stats.total_commit_s += elapsed
            if self.on_commit is not None:
                self.on_commit(elapsed, len(batch))
            return outcome, refused


def _settle(future: asyncio.Future[T], error: StorageError | None, result: T) -> None:
    """Resolve a write's future (a batch's with its outcome, a join's with None), unless its caller gave up on it
    (cancelled it)."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
        future.exception()  # mark retrieved: callers that gave up must not log "never retrieved"
