"""Server → client messages of SPEC §3–4, built from room state. Pure functions returning JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from quizroom.rooms.quiz import Question
from quizroom.rooms.state import Answer, Phase, Player, RoomState

TOP_N = 10
PODIUM_N = 3


def question_message(
    state: RoomState, question: Question, seq: int, now_ms: int, *, with_correct: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "question",
        "seq": seq,
        "index": state.question_index,
        "text": question.text,
        "choices": list(question.choices),
        "multi": question.multi,
        "time_limit_ms": question.time_limit_ms,
        "deadline_ms": state.deadline_ms,
        "now_ms": now_ms,
    }
    if with_correct:
        message["correct"] = sorted(question.correct)
    return message


def your_choice(question: Question, answer: Answer | None) -> int | list[int] | None:
    """A single-choice answer as its index, a multi-choice one as a sorted list; null when there is none."""
    if answer is None:
        return None
    return sorted(answer.choices) if question.multi else answer.choices[0]


def result_message(state: RoomState, player: Player, rank: int, seq: int, index: int) -> dict[str, Any]:
    question = state.quiz.questions[index]
    answer = player.answers.get(index)
    return {
        "type": "result",
        "seq": seq,
        "question": index,
        "correct": sorted(question.correct),
        "your_choice": your_choice(question, answer),
        "is_correct": bool(answer is not None and answer.correct),
        "points": answer.points if answer is not None else 0,
        "score": player.score,
        "rank": rank,
        "streak": player.streak,
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
                "choices": sorted(a.choices),
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
                "answers": answers,
            }
        )
    return {
        "pin": state.pin,
        "title": state.quiz.title,
        "phase": str(state.phase),
        "questions": [
            {"index": i, "text": q.text, "correct": sorted(q.correct)} for i, q in enumerate(state.quiz.questions)
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


def welcome_message(state: RoomState, player: Player, now_ms: int) -> dict[str, Any]:
    """A player's view on (re)connect: enough to restore any screen, without unrevealed points."""
    message: dict[str, Any] = {
        "type": "welcome",
        "player_id": player.player_id,
        "nickname": player.nickname,
        "pin": state.pin,
        "title": state.quiz.title,
        "question_count": len(state.quiz.questions),
        "phase": str(state.phase),
        "score": state.visible_score(player),
        "rank": state.rank_of(player),
        "streak": player.streak,
        "seq": state.seq,
        "now_ms": now_ms,
    }
    question = state.current_question
    if state.phase is Phase.QUESTION and question is not None and state.question_index is not None:
        message["question"] = question_message(state, question, state.seq, now_ms, with_correct=False)
        message["answered"] = state.question_index in player.answers
    return message


def host_welcome_message(state: RoomState, now_ms: int, snapshot: dict[str, Any]) -> dict[str, Any]:
    """`snapshot` is the coordinator's (counts summed over the shards, which alone know who is connected)."""
    message: dict[str, Any] = {
        "type": "welcome",
        "role": "host",
        "title": state.quiz.title,
        "now_ms": now_ms,
        "player_list": [{"player_id": p.player_id, "nickname": p.nickname} for p in state.players.values()],
        **snapshot,
    }
    question = state.current_question
    if state.phase is Phase.QUESTION and question is not None:
        message["question"] = question_message(state, question, state.seq, now_ms, with_correct=True)
    return message
