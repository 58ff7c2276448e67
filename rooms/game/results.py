"""The results of a room (SPEC §2, `GET /api/rooms/{pin}/results`): the JSON document and the CSV rows, built
from a room's state as restored from storage, so every stored answer appears exactly once.

The document keeps SPEC §2's fields and adds what a teacher's report needs (docs/protocol.md, "Results exports"):
each question's `number` (from 1) and `choices`, each answer's `number` and `answer` (the chosen choices' texts),
each player's `correct_count`. Players who never answered are in it with no answers. The per-player table built
from it is `rooms/game/report.py`."""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.rules import RoomState


def results_document(state: RoomState) -> dict[str, Any]:
    """`GET /api/rooms/{pin}/results`: every durable answer exactly once, players ranked by total score."""
    standings = sorted(state.players.values(), key=lambda p: (-p.score, p.nickname_key, p.player_id))
    players: list[dict[str, Any]] = []
    rank, previous = 0, None
    for position, player in enumerate(standings, start=1):
        if player.score != previous:
            rank, previous = position, player.score
        answers = [
            {
                "question": a.question,
                "number": a.question + 1,
                "choices": sorted(a.choices),
                "answer": [state.quiz.questions[a.question].choices[c] for c in sorted(a.choices)],
                "correct": a.correct,
                "points": a.points,
                "response_ms": a.response_ms,
            }
            for _, a in sorted(player.answers.items())
            if a.durable
        ]
        players.append(
            {
                "player_id": player.player_id,
                "nickname": player.nickname,
                "score": player.score,
                "rank": rank,
                "correct_count": sum(1 for a in answers if a["correct"]),
                "answers": answers,
            }
        )
    return {
        "pin": state.pin,
        "title": state.quiz.title,
        "phase": str(state.phase),
        "questions": [
            {"index": i, "number": i + 1, "text": q.text, "choices": list(q.choices), "correct": sorted(q.correct)}
            for i, q in enumerate(state.quiz.questions)
        ],
        "players": players,
    }


RESULTS_CSV_HEADER = ("player_id", "nickname", "question", "choices", "correct", "points", "response_ms")


def results_rows(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One row per stored answer for the CSV export (choices joined with `|`)."""
    rows: list[tuple[Any, ...]] = []
    for player in document["players"]:
        for answer in player["answers"]:
            rows.append(
                (
                    player["player_id"],
                    player["nickname"],
                    answer["question"],
                    "|".join(str(c) for c in answer["choices"]),
                    str(answer["correct"]).lower(),
                    answer["points"],
                    answer["response_ms"],
                )
            )
    return rows
