"""The merged view of a room, read from storage: what the coordinator reveals and any worker's leaderboard shows.

Scores are sums of stored answers, so the view is right whichever shards are alive: an answer a dead shard
acknowledged is stored, and one it did not acknowledge is not (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from quizroom.rooms.game.effects import View
from quizroom.rooms.game.rules import Phase
from quizroom.rooms.game.scoring import ranked
from quizroom.storage.base import Storage, StorageError
from quizroom.storage.records import RoomView

log = structlog.get_logger("quizroom.views")

ATTEMPTS = 3


async def read_view(
    storage: Storage, room_id: str, *, question: int | None, choices: int, through: int | None, top: int, players: int
) -> View:
    """`Storage.room_view`, retried briefly, as the game's `View`. Storage down for good: an empty view, so the
    game goes on."""
    for attempt in range(ATTEMPTS):
        try:
            found = await storage.room_view(room_id, question=question, choices=choices, through=through, top=top)
            head = tuple(top_entries(found))
            return View(found.players, found.answered, found.counts, found.histogram, head, found.right, found.values)
        except StorageError as exc:
            if attempt == ATTEMPTS - 1:
                log.error("room_view_failed", room_id=room_id, error=str(exc))
                break
            await asyncio.sleep(0.2 * (attempt + 1))
    return View(players, 0, (0,) * choices, ((0, players),) if players else (), ())


def top_entries(view: RoomView) -> list[dict[str, Any]]:
    """`{rank, nickname, score}` for the head of the view, ranked against the whole room."""
    return ranked([(t.nickname, t.score) for t in view.top], view.histogram)


async def leaderboard_of(
    storage: Storage, room_id: str, phase: Phase, question_index: int | None, limit: int
) -> list[dict[str, Any]]:
    """The standings players see: while a question is open, without its points (not revealed yet)."""
    through = question_index
    if phase is Phase.QUESTION and question_index is not None:
        through = question_index - 1 if question_index > 0 else None
    view = await storage.room_view(room_id, question=None, choices=0, through=through, top=limit)
    return top_entries(view)
