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
LIBRARY_PAGE, LIBRARY_PAGE_MAX = 20, 100  # `GET /api/quizzes`: entries per page by default, and at most


def _parameter(query: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(name, f"must be an integer from {low} to {high}")
    return int(raw)


def page_window(query: Mapping[str, str], default_limit: int = 100, max_limit: int = MAX_PAGE) -> tuple[int, int]:
    """(offset, limit) from `?offset=&limit=`; 422 `invalid` naming the parameter when one is out of range."""
    return _parameter(query, "offset", 0, 1 << 31, 0), _parameter(query, "limit", 1, max_limit, default_limit)


def paging(offset: int, limit: int, shown: int, total: int) -> dict[str, int | None]:
    """Where a page stands: `next_offset` is the next page's offset, or None after the last one."""
    following = offset + shown
    return {"offset": offset, "limit": limit, "total": total, "next_offset": following if following < total else None}


def results_page(document: dict[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """The document with `players` cut to the page asked for, and `paging` saying where it stands."""
    if "offset" not in query and "limit" not in query:
        return document
    players: list[Any] = document["players"]
    offset, limit = page_window(query)
    page = players[offset : offset + limit]
    return {**document, "players": page, "paging": paging(offset, limit, len(page), len(players))}
