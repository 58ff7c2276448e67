"""A room's options, chosen by the host when the room is created (docs/protocol.md, *Room options*).

They are stored with the room (`rooms.options`, JSON) so that a room resumed after a crash or taken over by another
worker plays the same way. Unknown keys are refused rather than ignored: a typo such as `auto_advanse` would
otherwise leave a classroom waiting for a host who has gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from quizroom.rooms.game.errors import InvalidInput

INTRO_MAX_MS = 10_000


@dataclass(frozen=True, slots=True)
class RoomOptions:
    """`auto_advance`: in a reveal with no host socket for the server's `auto_advance_after_s`, the room moves on
    by itself (to the next question, or to the podium after the last), so a class can finish without its host.
    `intro_ms`: the "get ready" pause before each question; the question (and its timer) opens after it.
    `friendly_names`: players get a generated two-word name instead of the one they type."""

    auto_advance: bool = False
    intro_ms: int = 0
    friendly_names: bool = False

    def to_json(self) -> str:
        return orjson.dumps(
            {"auto_advance": self.auto_advance, "intro_ms": self.intro_ms, "friendly_names": self.friendly_names}
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> RoomOptions:
        """From the stored column; rows from before the column hold `{}`: the defaults."""
        stored = orjson.loads(text or "{}")
        return cls(
            auto_advance=bool(stored.get("auto_advance", False)),
            intro_ms=int(stored.get("intro_ms", 0)),
            friendly_names=bool(stored.get("friendly_names", False)),
        )


def parse_options(body: dict[str, Any], default_intro_ms: int) -> RoomOptions:
    """The options of `POST /api/rooms`: top-level fields beside `quiz` or `quiz_id`, each optional."""
    auto_advance = body.get("auto_advance", False)
    if not isinstance(auto_advance, bool):
        raise InvalidInput("auto_advance", "must be true or false")
    friendly = body.get("friendly_names", False)
    if not isinstance(friendly, bool):
        raise InvalidInput("friendly_names", "must be true or false")
    intro = body.get("intro_ms", default_intro_ms)
    if not isinstance(intro, int) or isinstance(intro, bool) or not 0 <= intro <= INTRO_MAX_MS:
        raise InvalidInput("intro_ms", f"must be an integer from 0 to {INTRO_MAX_MS}")
    return RoomOptions(auto_advance=auto_advance, intro_ms=intro, friendly_names=friendly)
