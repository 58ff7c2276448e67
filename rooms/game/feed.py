"""The host's coalesced progress updates (SPEC §4): `players` and `answers`, at most once per interval.

A join storm or an answer burst would otherwise cost every host socket one frame per event. The feed remembers
what changed and says when it is due (`mark` returns the delay, once); `flush` builds the frames, and only those
that say something new: a shard's progress report marks both kinds, but a `players` frame with nobody come or gone
and the same counts as the last one (or an `answers` frame with the same count) is not sent — with hundreds of
rooms those were half of all host frames.
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
        self._sent_players: tuple[int, int] | None = None  # (players, connected) of the last `players` frame
        self._sent_answers: tuple[int, int, int] | None = None  # (question, answered, players) of the last `answers`

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
        if self._players and (self.joined or self.left or self._sent_players != (players, connected)):
            frames.append(messages.players(players, connected, self.joined, self.left))
            self.joined, self.left = [], []
            self._sent_players = (players, connected)
        if self._answers and question is not None and self._sent_answers != (question, answered, players):
            frames.append(messages.answers(question, answered, players))
            self._sent_answers = (question, answered, players)
        self._players = self._answers = False
        return frames
