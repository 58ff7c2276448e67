"""Paged results (`GET /api/rooms/{pin}/results?offset=&limit=`): a slice of the ranked players, with their answers.

A finished room of 10,000 players is a document of several megabytes; a client that shows it a page at a time asks
for `limit` players from `offset` on, in rank order, and follows `next_offset` until it is null. Without either
parameter the whole document comes in one call, as before (the full export, JSON or CSV).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quizroom.rooms.game.errors import InvalidInput

MAX_PAGE = 10_000


def _parameter(query: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(name, f"must be an integer from {low} to {high}")
    return int(raw)


def results_page(document: dict[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """The document with `players` cut to the page asked for, and `paging` saying where it stands."""
    if "offset" not in query and "limit" not in query:
        return document
    players: list[Any] = document["players"]
    offset = _parameter(query, "offset", 0, 1 << 31, 0)
    limit = _parameter(query, "limit", 1, MAX_PAGE, 100)
    page = players[offset : offset + limit]
    following = offset + len(page)
    return {
        **document,
        "players": page,
        "paging": {
            "offset": offset,
            "limit": limit,
            "total": len(players),
            "next_offset": following if following < len(players) else None,
        },
    }
