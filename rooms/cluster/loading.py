"""Rooms from storage: a coordinator's state, a shard's state, the results document.

Everything here is a read followed by `RoomState.restore`, the same replay whether the room is resumed after a
crash, taken over from a dead worker, or a shard is placed again. Scores are recomputed from stored answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quizroom.rooms.actors.answers import answer_of
from quizroom.rooms.actors.views import top_entries
from quizroom.rooms.game import messages, results
from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.events import FinishRoom
from quizroom.rooms.game.options import RoomOptions
from quizroom.rooms.game.quiz import Quiz
from quizroom.rooms.game.rules import Answer, Phase, Player, RoomLimits, RoomState
from quizroom.rooms.game.scoring import Ranking
from quizroom.storage.base import Storage
from quizroom.storage.records import PlayerRow, RoomRow


@dataclass(frozen=True, slots=True)
class LoadedShard:
    state: RoomState
    revoked: set[str]  # kicked players' token hashes: their hello gets 4403, not 4401
    final: FinishRoom | None  # the podium, when the room has finished


def player_of(row: PlayerRow) -> Player:
    return Player(
        row.player_id, row.nickname, row.nickname_key, row.token_hash, row.joined_at_ms, device_hash=row.device_hash
    )


def restore(
    row: RoomRow, quiz: Quiz, players: list[Player], answers: list[Answer], limits: RoomLimits, clock: Clock
) -> RoomState:
    state = RoomState(
        room_id=row.room_id,
        pin=row.pin,
        quiz=quiz,
        host_token_hash=row.host_token_hash,
        limits=limits,
        options=RoomOptions.from_json(row.options),
    )
    state.restore(
        phase=Phase(row.phase),
        question_index=row.question_index,
        opened_at_ms=row.opened_at_ms,
        locked=row.locked,
        seq=row.seq,
        players=players,
        answers=answers,
        mono=clock.monotonic(),
        wall_ms=clock.wall_ms(),
    )
    return state


async def load_shard(
    storage: Storage, row: RoomRow, quiz: Quiz, shard: int, limits: RoomLimits, clock: Clock
) -> LoadedShard:
    """A shard's players, their answers, and the whole room's ranking as of the last reveal."""
    player_rows = await storage.load_players(row.room_id, shard)
    answers = [answer_of(a) for a in await storage.load_answers(row.room_id, shard)]
    state = restore(row, quiz, [player_of(p) for p in player_rows if not p.kicked], answers, limits, clock)
    final: FinishRoom | None = None
    phase = Phase(row.phase)
    if row.question_index is not None or phase is Phase.FINISHED:  # (a room can end in its lobby)
        through = row.question_index
        if phase is Phase.QUESTION and through is not None:
            through = through - 1 if through > 0 else None
        top = messages.PODIUM_N if phase is Phase.FINISHED else 0
        view = await storage.room_view(row.room_id, question=None, choices=0, through=through, top=top)
        state.ranking = Ranking(view.histogram)
        if phase is Phase.FINISHED:
            final = FinishRoom(row.seq, top_entries(view), None, row.question_index)
    return LoadedShard(state, {p.token_hash for p in player_rows if p.kicked}, final)


async def results_document(
    storage: Storage, row: RoomRow, quiz: Quiz, limits: RoomLimits, clock: Clock
) -> dict[str, Any]:
    """`GET …/results`: every stored answer exactly once, read from storage (any worker can answer it)."""
    players = [player_of(p) for p in await storage.load_players(row.room_id) if not p.kicked]
    answers = [answer_of(a) for a in await storage.load_answers(row.room_id)]
    return results.results_document(restore(row, quiz, players, answers, limits, clock))
