"""The one storage interface. Backends: `quizroom.storage.sqlite` (default) and `quizroom.storage.postgres`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from quizroom.storage.records import AnswerRow, Batch, ImageRow, Outcome, PlayerRow, QuizRow, RoomRow, RoomView


class StorageError(Exception):
    """Storage could not do what was asked (unreachable, disk full, …). Nothing in the failed call took effect."""


class PlayersRefused(StorageError):
    """`commit` could not store these players: each row clashes with one stored before (most likely its nickname
    is held by a live player of the room). Nothing of the batch took effect; the same batch without them can be
    committed."""

    def __init__(self, players: frozenset[tuple[str, str]]) -> None:
        super().__init__(f"{len(players)} player row(s) clash with stored rows")
        self.players = players  # (room_id, player_id) of each refused row


class Storage(Protocol):
    """What the game needs from a database.

    Guarantees every backend gives: `commit` applies a whole `Batch` in one transaction or nothing of it, its
    steps in the order they happened (a kick frees its player's nickname before the join that came after it);
    a player row is stored or refused, never skipped in silence: one that clashes with a stored row makes `commit`
    raise `PlayersRefused`, while the same row found stored already (same room, player id and token: a retry of a
    commit whose outcome was lost) counts as stored; answers are unique on (room, question, player) and a
    repeated insert is ignored, never an error; `create_room` refuses a PIN already held by a room that has not
    finished. Failures raise `StorageError`.

    So a join can be told "stored" only once its row is, and player rows are never deleted (a kick marks them):
    every token handed out, and every answer taken from its holder, belongs to a stored player.
    """

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StorageError` unless the database answers now (used by /readyz)."""

    async def create_quiz(self, quiz: QuizRow) -> None: ...

    async def get_quiz(self, quiz_id: str) -> QuizRow | None: ...

    async def put_image(self, image: ImageRow) -> None:
        """Store an image; one already stored under its id is left as it is (the id is the bytes' hash)."""

    async def get_image(self, image_id: str) -> ImageRow | None: ...

    async def known_images(self, image_ids: Collection[str]) -> frozenset[str]:
        """Which of these image ids are stored (a quiz may only refer to stored images)."""

    async def create_room(self, room: RoomRow) -> bool:
        """Insert a room; False when its PIN is held by a live room (the caller draws another)."""

    async def find_room(self, pin: str) -> RoomRow | None:
        """The live room with this PIN, or else the most recently created finished one."""

    async def rooms_in_phase(self, phase: str) -> list[str]:
        """PINs of rooms in a phase (used at start to resume open questions, whose deadlines must fire)."""

    async def load_players(self, room_id: str, shard: int | None = None) -> list[PlayerRow]:
        """Every player of a room (or of one shard of it), kicked ones included (their tokens stay revoked), in
        join order. A shard loads only its own players, so a restarted shard does not read the whole room."""

    async def load_answers(self, room_id: str, shard: int | None = None) -> list[AnswerRow]:
        """The stored answers of a room (or of one shard's players), by question then arrival: what a restarted
        room or shard replays to rebuild scores and streaks."""

    async def player_by_token(self, token_hash: str) -> PlayerRow | None:
        """The player holding this token, kicked ones included (so a kicked token is recognised and refused), in
        any room: a resuming client only has its token, and token hashes are unique across rooms."""

    async def room_view(
        self, room_id: str, *, question: int | None, choices: int, through: int | None, top: int
    ) -> RoomView:
        """The merged view of a room over its non-kicked players, read from stored answers in one snapshot.

        Answer counts and `answered` are for `question` (zeros when None); scores are sums of points of answers to
        questions up to `through` (0 for everyone when None). Scores come from the database rather than from any
        process's memory, so a shard that died cannot make the view wrong: every answer it acknowledged is stored.
        """

    async def commit(self, batch: Batch) -> Outcome:
        """Make a batch durable in one transaction, or raise (`PlayersRefused` when only some players clash).

        The outcome names the rows that were refused or found stored already (`Outcome`): answers that were
        duplicates (with the stored row), came after their question closed, or were judged under a stale shard
        placement, and room states written under a stale coordinator lease. Everything else was stored."""
