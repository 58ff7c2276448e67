"""The limits an actor applies (SPEC §5, all settings): the room's rules and the sockets' rate limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from quizroom.rooms.game.rules import RoomLimits


@dataclass(frozen=True, slots=True)
class ActorLimits:
    room: RoomLimits = field(default_factory=RoomLimits)
    rate_per_s: float = 20.0
    rate_burst: float = 40.0
    abuse_strikes: int = 40  # consecutive rate-limited messages before the socket is closed with 4429
    garbage_strikes: int = 20  # consecutive malformed messages before the socket is closed with 1008
    host_coalesce_s: float = 0.25  # host `players`/`answers` updates: at most 4 a second
    players_per_shard: int = 1_500
    auto_advance_after_s: float = 60.0  # a reveal with no host moves on after this long (room option auto_advance)
    progress_interval_s: float = 0.25  # shard → coordinator summaries: at most 4 a second (an early close: at once)
