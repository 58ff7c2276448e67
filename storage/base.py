"""The one storage interface. Backends: `quizroom.storage.sqlite` (default) and `quizroom.storage.postgres`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from quizroom.storage.records import (
    AnswerRow,
    Batch,
    ImageRow,
    LibraryPage,
    LibraryRow,
    Outcome,
    PlayerRow,
    QuizRow,
    RoomRow,
    RoomView,
)


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

    # The quiz library (docs/protocol.md, "Quiz library"). A `QuizRow` is one version of a quiz and is never changed
    # once stored; a library entry names the current version of a saved quiz. Rooms name the version they were
    # opened with, so no library call changes a room. A version is deleted once neither an entry nor a room uses it.

    async def add_to_library(self, document: QuizRow, question_count: int) -> LibraryRow:
        """Store a quiz version and a library entry for it, in one transaction: version 1, with the document's id
        and time as the entry's (the newest-edited entry from now on)."""

    async def library_entry(self, quiz_id: str) -> tuple[LibraryRow, QuizRow] | None:
        """The entry and its current version, or None when the library has no such quiz."""

    async def replace_in_library(self, quiz_id: str, document: QuizRow, question_count: int) -> LibraryRow | None:
        """Store `document` as the entry's next version (`version` + 1, `updated_at_ms` the document's time), in one
        transaction; None, with nothing stored, when there is no such entry."""

    async def remove_from_library(self, quiz_id: str) -> bool:
        """Remove the entry (its versions stay as long as rooms use them); False when there was none."""

    async def list_library(self, search: str, offset: int, limit: int) -> LibraryPage:
        """Entries newest-edited first, `limit` of them from `offset` on; with a `search`, only those whose title
        contains it, ignoring case (`title_key`)."""

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
