"""The host's coalesced progress updates: `players` and `answers`, at most once per interval (10 a second)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.rules import Phase, RoomState


class HostFeed:
    """Marks what changed and flushes it later, so a join storm or an answer burst costs the host a few frames."""

    def __init__(
        self,
        state: RoomState,
        clock: Clock,
        interval_s: float,
        post: Callable[[Callable[[], None]], None],
        to_hosts: Callable[[dict[str, Any]], None],
        counts: Callable[[], tuple[int, int, int]],
    ) -> None:
        """`counts` gives (players, connected, answered to the open question), summed over the room's shards."""
        self.state = state
        self.clock = clock
        self.interval_s = interval_s
        self._post = post
        self._to_hosts = to_hosts
        self._counts = counts
        self.joined: list[dict[str, str]] = []
        self.left: list[dict[str, str]] = []
        self._players = False
        self._answers = False
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0

    def mark(self, *, players: bool = False, answers: bool = False) -> None:
        self._players |= players
        self._answers |= answers and self.state.phase is Phase.QUESTION
        if self._timer is not None:
            return
        wait = max(0.0, self._last + self.interval_s - self.clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(wait, lambda: self._post(self.flush))

    def flush(self) -> None:
        self._timer = None
        self._last = self.clock.monotonic()
        state = self.state
        players, connected, answered = self._counts()
        if self._players:
            self._to_hosts(
                {
                    "type": "players",
                    "count": players,
                    "connected": connected,
                    "joined": self.joined,
                    "left": self.left,
                }
            )
            self.joined, self.left = [], []
        if self._answers and state.phase is Phase.QUESTION and state.question_index is not None:
            self._to_hosts(
                {
                    "type": "answers",
                    "question": state.question_index,
                    "answered": answered,
                    "players": players,
                }
            )
        self._players = self._answers = False

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
