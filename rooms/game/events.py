"""What a room's coordinator and its shards say to each other: one dataclass per event, the same whether the
shard is in this process (the event is posted into its inbox) or on another worker (it crosses the cluster's
transport, `quizroom.rooms.cluster.codec`).

Events are idempotent where a resend can happen (an `OpenQuestion` of the question already open, a second
`CloseQuestion`, a `RevealQuestion` already applied are ignored by the shard), so a failover may resend them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quizroom.rooms.game.rules import Player

Histogram = tuple[tuple[int, int], ...]
"""(score, players with it), by score descending: what any shard ranks its players against."""


@dataclass(frozen=True, slots=True)
class Now:
    """The time an input happens at, read by the caller: `mono` for durations, `wall_ms` for what clients see."""

    mono: float
    wall_ms: int


@dataclass(frozen=True, slots=True)
class ShardSummary:
    """What a coordinator knows of a shard between events: for the host's counts and the early close."""

    connected: int = 0
    question: int | None = None  # the question `answered` counts (a late summary of the last one is ignored)
    answered: int = 0  # durable answers to that question
    # Nobody connected, or dropped within the reconnect grace, is still to answer (true when nobody is there).
    all_answered: bool = False


# --- coordinator → shard ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddPlayer:
    player: Player  # local shards only: a remote one reads a player it does not know from storage at hello


@dataclass(frozen=True, slots=True)
class OpenQuestion:
    index: int
    opened_at_ms: int
    seq: int
    # How long the question had been open by the coordinator's monotonic clock when the event was made: a shard
    # on another host dates the question from it (its own clock minus this), not from `opened_at_ms`, so the two
    # hosts' wall clocks need not agree. None: date it from `opened_at_ms` (a coordinator's own restore).
    elapsed_ms: int | None = None


@dataclass(frozen=True, slots=True)
class GetReady:
    """The "get ready" pause before question `index` (room option `intro_ms`): shown, never timed, never stored.
    The `OpenQuestion` follows when it ends; an event lost on the way costs the players only the pause."""

    index: int
    intro_ms: int


@dataclass(frozen=True, slots=True)
class CloseQuestion:
    index: int


@dataclass(frozen=True, slots=True)
class RevealQuestion:
    index: int
    result_seq: int
    board: dict[str, Any]  # the `leaderboard` message, the same for every player
    histogram: Histogram | None  # None over the wire: the shard reads it from storage (it may not fit a message)


@dataclass(frozen=True, slots=True)
class FinishRoom:
    seq: int
    podium: list[dict[str, Any]]
    histogram: Histogram | None
    through: int | None = None  # the last question that counts (over the wire the shard reads the histogram)


@dataclass(frozen=True, slots=True)
class KickPlayer:
    player_id: str


@dataclass(frozen=True, slots=True)
class Announce:
    """The coordinator (new after a takeover, or resynchronising) wants to hear how the shard stands."""


ShardEvent = AddPlayer | GetReady | OpenQuestion | CloseQuestion | RevealQuestion | FinishRoom | KickPlayer | Announce


# --- shard → coordinator ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardClosed:
    """The shard stopped taking answers to `index`, and every one it took is durable."""

    shard: int
    index: int


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """How the shard stands. `check`: an answer settled or a player left, so the question may close early."""

    shard: int
    summary: ShardSummary
    check: bool


CoordinatorEvent = ShardClosed | ShardProgress
