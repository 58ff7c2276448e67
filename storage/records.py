"""Plain records that cross the storage boundary. Storage knows rows, not game rules."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class QuizRow:
    quiz_id: str
    title: str
    body: str  # the quiz document as JSON text, exactly as validated
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class RoomRow:
    room_id: str
    pin: str
    quiz_id: str
    host_token_hash: str
    created_at_ms: int
    phase: str = "lobby"
    question_index: int | None = None
    opened_at_ms: int = 0
    locked: bool = False
    seq: int = 0


@dataclass(frozen=True, slots=True)
class RoomStateRow:
    """The part of a room that changes during a game; enough to resume it after a crash."""

    room_id: str
    phase: str
    question_index: int | None
    opened_at_ms: int
    locked: bool
    seq: int


@dataclass(frozen=True, slots=True)
class PlayerRow:
    room_id: str
    player_id: str
    nickname: str
    nickname_key: str
    token_hash: str
    joined_at_ms: int
    kicked: bool = False
    score: int = 0
    streak: int = 0
    shard: int = 0  # the shard of its room that owns the player's socket (0 in an unsharded room)


@dataclass(frozen=True, slots=True)
class AnswerRow:
    room_id: str
    question: int
    player_id: str
    choices: tuple[int, ...]
    correct: bool
    points: int
    response_ms: int
    received_at_ms: int


@dataclass(frozen=True, slots=True)
class ScoreRow:
    room_id: str
    player_id: str
    score: int
    streak: int


@dataclass(frozen=True, slots=True)
class KickRow:
    room_id: str
    player_id: str


@dataclass(frozen=True, slots=True)
class TopRow:
    """One player of a room's leaderboard head, as `Storage.room_view` ranks it."""

    player_id: str
    nickname: str
    nickname_key: str
    score: int


@dataclass(frozen=True, slots=True)
class RoomView:
    """The merged view of a room at a reveal, computed from stored answers over its non-kicked players.

    `counts[i]` is how many answers to the question include choice i; `histogram` is (score, players with that
    score) by score descending, so any shard can rank its own players against the whole room; `top` is the head of
    the leaderboard by (score desc, nickname_key, player_id).
    """

    players: int
    answered: int
    counts: tuple[int, ...]
    histogram: tuple[tuple[int, int], ...]
    top: tuple[TopRow, ...]


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A live worker of the cluster (`quizroom.storage.cluster`): where it serves and how loaded it is."""

    worker_id: str
    url: str
    load: int


@dataclass(frozen=True, slots=True)
class ShardRow:
    """Where shard `shard` of a room is placed; `alive` is False when its worker's heartbeat has expired."""

    shard: int
    worker_id: str
    url: str  # "" when the worker's row is gone
    alive: bool


@dataclass(slots=True)
class Batch:
    """Everything one group commit makes durable, in one transaction, applied in this order."""

    players: list[PlayerRow] = field(default_factory=list)
    answers: list[AnswerRow] = field(default_factory=list)
    kicks: list[KickRow] = field(default_factory=list)
    rooms: dict[str, RoomStateRow] = field(default_factory=dict)  # last state per room wins
    scores: dict[tuple[str, str], ScoreRow] = field(default_factory=dict)  # last score per player wins

    def __len__(self) -> int:
        return len(self.players) + len(self.answers) + len(self.kicks) + len(self.rooms) + len(self.scores)


def encode_choices(choices: tuple[int, ...]) -> str:
    """Choices as stored: comma-separated indexes (a JSON list would do too; this sorts and compares trivially)."""
    return ",".join(str(c) for c in choices)


def decode_choices(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text.split(",")) if text else ()
