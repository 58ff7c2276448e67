"""The results of a room (SPEC §2, `GET /api/rooms/{pin}/results`): the JSON document and the CSV rows, built
from a room's state as restored from storage, so every stored answer appears exactly once.

The document keeps SPEC §2's fields and adds what a teacher's report needs (docs/protocol.md, "Results exports"):
each question's `number` (from 1) and `choices`, each answer's `number` and `answer` (the chosen choices' texts),
each player's `correct_count`; for the question types (docs/protocol.md, *Question types*) each question's `type`
and `correct_answer` (the right answer in words) and each typed or slider answer's `value`. Players who never
answered are in it with no answers. The per-player table built from it is `rooms/game/report.py`."""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.quiz import Kind, Question, number
from quizroom.rooms.game.rules import Answer, RoomState


def answer_fields(question: Question, answer: Answer) -> dict[str, Any]:
    """SPEC's `choices` (sorted; a puzzle's in the order sent) and the answer in words (`answer`: the chosen
    choices' texts, a puzzle's items in the player's order, the typed text or the slider's number)."""
    if question.kind is Kind.PUZZLE:
        return {"choices": list(answer.choices), "answer": [question.choices[c] for c in answer.choices]}
    if answer.value is not None:
        value: str | int | float = answer.value
        if question.kind is Kind.SLIDER:
            value = number(float(answer.value))
        return {"choices": [], "answer": [answer.value], "value": value}
    return {"choices": sorted(answer.choices), "answer": [question.choices[c] for c in sorted(answer.choices)]}


def correct_answer(question: Question) -> list[str]:
    """The right answer in words: the correct choices, a puzzle's items in order, the accepted typed answers, a
    slider's value and band; nothing for a poll."""
    if question.kind is Kind.TYPE_ANSWER:
        return list(question.accepted)
    if question.kind is Kind.SLIDER:
        slider = question.slider
        assert slider is not None
        band = f" (± {number(slider.tolerance)})" if slider.tolerance else ""
        return [f"{number(slider.value)}{band}"]
    return [question.choices[c] for c in question.solution()]


def question_fields(index: int, question: Question) -> dict[str, Any]:
    return {
        "index": index,
        "number": index + 1,
        "text": question.text,
        "choices": list(question.choices),
        "correct": question.solution(),
        "type": str(question.kind),
        "correct_answer": correct_answer(question),
    }


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
                **answer_fields(state.quiz.questions[a.question], a),
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
        "questions": [question_fields(i, q) for i, q in enumerate(state.quiz.questions)],
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
