"""Kahoot-compatible scoring and ranking (SPEC §5), as plain functions."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any

MAX_STREAK_BONUS_STEPS = 5
STREAK_BONUS = 100


def answer_points(
    *, points: int, time_limit_ms: int, response_ms: int, correct: bool, streak: int, closeness: float = 1.0
) -> int:
    """Points one answer earns.

    `streak` is the player's streak *counting this answer* (so 1 for a first correct answer). A wrong answer earns
    nothing. The speed part is `round(points × (1 − response_ms / time_limit_ms / 2))`, with `response_ms` clamped
    to the time limit so an answer in the network grace period earns no less than half the points. The streak bonus
    `min(streak − 1, 5) × 100` applies from a streak of 2 on, and only to questions that are worth points.
    `closeness` (extension: a slider scored by closeness, docs/protocol.md) scales the speed part; at 1.0 the
    formula is SPEC's exactly.
    """
    if not correct:
        return 0
    clamped = min(max(response_ms, 0), time_limit_ms)
    base = (
        round(points * (1 - clamped / time_limit_ms / 2))
        if closeness == 1.0
        else (round(points * closeness * (1 - clamped / time_limit_ms / 2)))
    )
    bonus = 0
    if points > 0 and streak >= 2:
        bonus = min(streak - 1, MAX_STREAK_BONUS_STEPS) * STREAK_BONUS
    return base + bonus


def competition_ranks(scores: Sequence[int]) -> list[int]:
    """Ranks for scores already sorted descending: equal scores share a rank and the next rank skips (1, 2, 2, 4)."""
    ranks: list[int] = []
    previous: int | None = None
    rank = 0
    for position, score in enumerate(scores, start=1):
        if score != previous:
            rank = position
            previous = score
        ranks.append(rank)
    return ranks


class Ranking:
    """Competition ranks against a score histogram `((score, players), …)` by score descending.

    A shard holds only some of a room's players; the coordinator hands it the room's histogram at every reveal so
    that each player's rank counts everyone, not just the shard.
    """

    def __init__(self, histogram: Sequence[tuple[int, int]]) -> None:
        self._negated = [-score for score, _ in histogram]  # ascending, for bisect
        self._above = [0, *itertools.accumulate(count for _, count in histogram)]

    def rank(self, score: int) -> int:
        return 1 + self._above[bisect.bisect_left(self._negated, -score)]

    def above(self, score: int) -> int | None:
        """The lowest score in the histogram higher than `score` (None when nobody has more)."""
        position = bisect.bisect_left(self._negated, -score)
        return -self._negated[position - 1] if position > 0 else None


def ranked(entries: Sequence[tuple[str, int]], histogram: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """Leaderboard entries `{rank, nickname, score}` from `(nickname, score)` pairs, ranked against the histogram."""
    ranking = Ranking(histogram)
    return [{"rank": ranking.rank(score), "nickname": nickname, "score": score} for nickname, score in entries]
