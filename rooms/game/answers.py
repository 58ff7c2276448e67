"""An answer message's choices, as the rules take them."""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.errors import BadMessage


def parse_choices(message: dict[str, Any]) -> tuple[int, ...]:
    """`choice` (an int) or `choices` (a list of ints) from an answer message."""
    if "choices" in message:
        raw = message["choices"]
        if not isinstance(raw, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in raw):
            raise BadMessage("`choices` must be a list of integers")
        return tuple(raw)
    raw_choice = message.get("choice")
    if not isinstance(raw_choice, int) or isinstance(raw_choice, bool):
        raise BadMessage("an answer needs `choice` (an integer) or `choices` (a list)")
    return (raw_choice,)
