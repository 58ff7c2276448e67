"""What the room protocol (`quizroom.rooms.game.protocol`) asks its caller to do: plain data, carried out in order.

A `step` names a continuation inside the protocol: the caller does the I/O and hands the step back (`done`,
`view_ready`), so a question goes out only after its phase is durable without the protocol ever awaiting. A
`request` names a caller's pending call (an HTTP command, a host socket's message) that `Reply` or `Refuse` ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from quizroom.rooms.game.errors import QuizroomError
from quizroom.rooms.game.events import Histogram, ShardEvent
from quizroom.rooms.game.rules import Player


class Written(StrEnum):
    """How a write the machine asked for came back."""

    DURABLE = "durable"
    FAILED = "failed"  # storage failed past the writer's patience: nothing of it took effect
    REFUSED = "refused"  # a player row clashes with a stored one (its nickname is held by a stored live player)


class Timer(StrEnum):
    DEADLINE = "deadline"  # the open question's deadline (plus the network grace)
    CLOSE_WAIT = "close_wait"  # how long a reveal waits for shards that neither report nor are known dead
    FEED = "feed"  # the host feed's next flush
    INTRO = "intro"  # the end of a question's "get ready" pause (room option `intro_ms`)
    AUTO_ADVANCE = "auto_advance"  # a reveal with no host for `auto_advance_after_s` (room option `auto_advance`)


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    """What of a room must be durable before the room's clients hear of it: enough to resume it after a crash."""

    phase: str
    question_index: int | None
    opened_at_ms: int
    locked: bool
    seq: int


@dataclass(frozen=True, slots=True)
class View:
    """The merged view of a room from its stored answers (`Storage.room_view`): counts, a score histogram and the
    head of the leaderboard as `{rank, nickname, score}` entries ranked against the whole room."""

    players: int
    answered: int
    counts: tuple[int, ...]
    histogram: Histogram
    top: tuple[dict[str, Any], ...]
    right: int = 0  # answers to the question that are correct
    values: tuple[tuple[str, bool, int], ...] = ()  # (value, correct, answers): typed answers, slider values


# --- effects ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Persist:
    """Make the room's phase durable, then call `done(step, written)`."""

    step: int
    record: PhaseRecord


@dataclass(frozen=True, slots=True)
class StorePlayer:
    """Make a joining player's row durable (seated in `shard`), then call `done(step, written)`."""

    step: int
    player: Player
    shard: int


@dataclass(frozen=True, slots=True)
class StoreKick:
    """Mark a player kicked (durably), then call `done(step, written)`; `step` None: nobody waits (a void row)."""

    step: int | None
    player_id: str


@dataclass(frozen=True, slots=True)
class PlaceShard:
    """Give a new shard a home on some worker, then call `placed(shard, worker_id)` (None when it failed)."""

    shard: int


@dataclass(frozen=True, slots=True)
class QueryView:
    """Read the merged view, then call `view_ready(step, view)`."""

    step: int
    question: int | None
    choices: int
    through: int | None
    top: int


@dataclass(frozen=True, slots=True)
class ToShard:
    shard: int
    event: ShardEvent


@dataclass(frozen=True, slots=True)
class ToShards:
    """The same event to every shard the room has when the effect is carried out."""

    event: ShardEvent


@dataclass(frozen=True, slots=True)
class ToHosts:
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Arm:
    """Call `timer_due(timer)` after `delay_s` (replacing that timer if it is armed)."""

    timer: Timer
    delay_s: float


@dataclass(frozen=True, slots=True)
class Disarm:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Reply:
    request: int
    value: Any


@dataclass(frozen=True, slots=True)
class Refuse:
    request: int
    error: QuizroomError


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # "info", "warning", "error"
    event: str
    fields: dict[str, Any]


Effect = (
    Persist
    | StorePlayer
    | StoreKick
    | PlaceShard
    | QueryView
    | ToShard
    | ToShards
    | ToHosts
    | Arm
    | Disarm
    | Reply
    | Refuse
    | Log
)


# --- what replies carry -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Joined:
    player_id: str
    nickname: str
    worker_id: str  # the worker holding the player's shard: `ws_url` points there


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """Where a player's socket must go now (the resume call): the worker holding the player's shard."""

    player_id: str
    worker_id: str
