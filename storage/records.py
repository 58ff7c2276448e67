"""Plain records that cross the storage boundary. Storage knows rows, not game rules."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class QuizRow:
    quiz_id: str
    title: str
    body: str  # the quiz document as JSON text, exactly as validated
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class LibraryRow:
    """A saved quiz as the library lists it (docs/protocol.md, "Quiz library"): its stable id, the `quizzes` row of
    its current version (`document_id`; such rows never change, so a room keeps the version it was opened with)
    and what a list shows without reading the document."""

    quiz_id: str
    document_id: str
    title: str
    question_count: int
    version: int  # 1 when saved, one more at each replacement
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class LibraryPage:
    """One page of the library, newest-edited first; `total` counts every entry the search matches."""

    total: int
    rows: tuple[LibraryRow, ...]


def title_key(title: str) -> str:
    """What a library search compares: the casefolded title (and query), so a search ignores case in any script
    whatever the database's collation does."""
    return title.casefold()


@dataclass(frozen=True, slots=True)
class ImageRow:
    """An image of a quiz as served: the upload pipeline's re-encoded bytes, keyed by their SHA-256 (hex)."""

    image_id: str
    content_type: str
    width: int
    height: int
    data: bytes
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
    options: str = "{}"  # the room's options as JSON (quizroom.rooms.game.options), fixed at creation


@dataclass(frozen=True, slots=True)
class RoomStateRow:
    """The part of a room that changes during a game; enough to resume it after a crash."""

    room_id: str
    phase: str
    question_index: int | None
    opened_at_ms: int
    locked: bool
    seq: int
    # The writer's coordinator lease epoch (PostgreSQL): the row is stored only while that lease is the room's
    # current one, and never with a lower seq than the stored one. 0: unfenced (one process alone, SQLite).
    epoch: int = 0


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
    device_hash: str = ""  # a hash of the id the player's browser keeps ("" when none came): a kick bars it too


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
    value: str | None = None  # a typed answer or a slider's number (migration 0005); None: choices alone
    # Not stored: the shard that judged the answer and its placement epoch. On PostgreSQL the insert happens only
    # while that placement is current and the question is the room's open one (epoch 0: unfenced, one process).
    shard: int = field(default=0, compare=False)
    epoch: int = field(default=0, compare=False)

    @property
    def key(self) -> AnswerKey:
        return (self.room_id, self.question, self.player_id)


AnswerKey = tuple[str, int, str]  # (room_id, question, player_id): at most one stored answer each


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a commit did with the rows that may be refused, so each waiter learns its own fate from one result.

    Everything else in the batch was stored. `duplicates` are answers whose key was stored already, with the stored
    row (which may be this very row, when a retry follows a commit whose reply was lost); `closed` answers were not
    stored because their question is no longer open in the database; answers of a `fenced_shards` entry were not
    stored because that placement of the shard is no longer current; `fenced_rooms` are rooms whose state row was
    refused because a newer coordinator holds the room (or the row would have moved its seq back)."""

    duplicates: dict[AnswerKey, AnswerRow] = field(default_factory=dict)
    closed: frozenset[AnswerKey] = frozenset()
    fenced_shards: frozenset[tuple[str, int]] = frozenset()
    fenced_rooms: frozenset[str] = frozenset()

    def merged(self, other: Outcome) -> Outcome:
        return Outcome(
            {**self.duplicates, **other.duplicates},
            self.closed | other.closed,
            self.fenced_shards | other.fenced_shards,
            self.fenced_rooms | other.fenced_rooms,
        )


STORED = Outcome()  # a commit that stored everything


@dataclass(frozen=True, slots=True)
class ScoreRow:
    room_id: str
    player_id: str
    score: int
    streak: int
    epoch: int = field(default=0, compare=False)  # the writing shard's placement epoch (0: unfenced, one process)


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
    the leaderboard by (score desc, nickname_key, player_id). For the question types that answer with a value
    (docs/protocol.md, *Question types*), `values` is (value, correct, answers) for each stored value; `right` is how
    many answers to the question are correct, whatever the type. `values` is sorted, so views compare equal.
    """

    players: int
    answered: int
    counts: tuple[int, ...]
    histogram: tuple[tuple[int, int], ...]
    top: tuple[TopRow, ...]
    right: int = 0
    values: tuple[tuple[str, bool, int], ...] = ()


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
    epoch: int = 0  # the placement's fencing token: answers judged under another epoch are refused


@dataclass(slots=True)
class Step:
    """A stretch of a batch in which no room had a kick before an insert: its players, then its answers, then its
    kicks.

    Inserts commute with one another (no two write the same row, and an answer only ever follows its player's
    stored join), so a step's inserts go in as one bulk statement per table, whatever order they came in; so do
    changes to different rooms. A kick does not commute with an insert into its room that came after it: it frees
    the kicked player's nickname for a new player, and it deletes the answers stored before it, not those after.
    So such an insert opens the next step, and a busy server's batch splits only where a room's own order needs it.
    """

    players: list[PlayerRow] = field(default_factory=list)
    answers: list[AnswerRow] = field(default_factory=list)
    kicks: list[KickRow] = field(default_factory=list)
    kicked_rooms: set[str] = field(default_factory=set)  # the room_id of every kick in this step


@dataclass(slots=True)
class Batch:
    """Everything one group commit makes durable, in one transaction: its steps in the order they happened, then
    the room states and scores. Those are absolute values (the last one per room or player wins) for rows stored
    before them (a room's, a seated player's), so after every step is their place."""

    steps: list[Step] = field(default_factory=list)
    rooms: dict[str, RoomStateRow] = field(default_factory=dict)  # last state per room wins
    scores: dict[tuple[str, str], ScoreRow] = field(default_factory=dict)  # last score per player wins

    @classmethod
    def of(
        cls,
        *,
        players: Iterable[PlayerRow] = (),
        answers: Iterable[AnswerRow] = (),
        kicks: Iterable[KickRow] = (),
        rooms: dict[str, RoomStateRow] | None = None,
    ) -> Batch:
        """A batch of one step: these players and answers, then these kicks."""
        kicked = list(kicks)
        return cls([Step(list(players), list(answers), kicked, {k.room_id for k in kicked})], rooms or {})

    def add_player(self, row: PlayerRow) -> None:
        self._inserting(row.room_id).players.append(row)

    def add_answer(self, row: AnswerRow) -> None:
        self._inserting(row.room_id).answers.append(row)

    def add_kick(self, row: KickRow) -> None:
        if not self.steps:
            self.steps.append(Step())
        step = self.steps[-1]
        step.kicks.append(row)
        step.kicked_rooms.add(row.room_id)

    def _inserting(self, room_id: str) -> Step:
        """The step an insert joins: the last one, unless its room had a kick there."""
        if not self.steps or room_id in self.steps[-1].kicked_rooms:
            self.steps.append(Step())
        return self.steps[-1]

    def drop_players(self, keys: Collection[tuple[str, str]]) -> int:
        """Take the players with these (room_id, player_id) out of the batch; returns how many were taken out."""
        dropped = 0
        for step in self.steps:
            kept = [p for p in step.players if (p.room_id, p.player_id) not in keys]
            dropped += len(step.players) - len(kept)
            step.players = kept
        return dropped

    def __len__(self) -> int:
        steps = sum(len(s.players) + len(s.answers) + len(s.kicks) for s in self.steps)
        return steps + len(self.rooms) + len(self.scores)


def encode_choices(choices: tuple[int, ...]) -> str:
    """Choices as stored: comma-separated indexes (a JSON list would do too; this sorts and compares trivially)."""
    return ",".join(str(c) for c in choices)


def decode_choices(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text.split(",")) if text else ()
