"""The host's coalesced progress updates (SPEC §4): `players` and `answers`, at most once per interval.

A join storm or an answer burst would otherwise cost every host socket one frame per event. The feed remembers
what changed and says when it is due (`mark` returns the delay, once); `flush` builds the frames.
"""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game import messages


class HostFeed:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.joined: list[dict[str, str]] = []
        self.left: list[dict[str, str]] = []
        self._players = False
        self._answers = False
        self._due = False
        self._last = float("-inf")

    def mark(self, now: float, *, players: bool = False, answers: bool = False) -> float | None:
        """Note a change; the delay until `flush` is due, when a flush is not already due (else None)."""
        self._players |= players
        self._answers |= answers
        if self._due or not (self._players or self._answers):
            return None
        self._due = True
        return max(0.0, self._last + self.interval_s - now)

    def flush(
        self, now: float, *, players: int, connected: int, answered: int, question: int | None
    ) -> list[dict[str, Any]]:
        """The frames that are due: `players` if anyone came or went, `answers` while `question` is open."""
        self._due = False
        self._last = now
        frames: list[dict[str, Any]] = []
        if self._players:
            frames.append(messages.players(players, connected, self.joined, self.left))
            self.joined, self.left = [], []
        if self._answers and question is not None:
            frames.append(messages.answers(question, answered, players))
        self._players = self._answers = False
        return frames
