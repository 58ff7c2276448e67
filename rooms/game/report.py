"""The teacher's results table: one row per player, from the results document (`rooms/game/results.py`).

SPEC §2's CSV is one row per stored answer, which a teacher has to pivot before it says anything. This is the table
they want instead (docs/protocol.md, "Results exports"): rank, nickname, score and correct answers, then for each
question — numbered from 1, its text in the header — the answer's text, whether it was right, its points and its
time. A player who never answered has a row with those cells empty and 0 points, so the class list is complete.
Pure: the CSV and XLSX writers (`quizroom.server.http_api`, `quizroom.server.spreadsheet`) only lay it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Cell = str | int | float | None

FIXED_COLUMNS = ("rank", "nickname", "score", "correct answers")
PER_QUESTION = ("answer", "correct", "points", "time (s)")


@dataclass(frozen=True, slots=True)
class Report:
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    questions: list[dict[str, Any]]  # the document's questions, for a sheet of their own


def question_heading(question: dict[str, Any], part: str) -> str:
    """`Q2 What is 2 + 2? — answer`: the number from 1, the text, the column's part."""
    return f"Q{question['number']} {question['text']} — {part}"


def player_report(document: dict[str, Any]) -> Report:
    """Every player of the document (already in rank order, possibly one page of them), one row each."""
    questions: Sequence[dict[str, Any]] = document["questions"]
    header = (*FIXED_COLUMNS, *(question_heading(q, part) for q in questions for part in PER_QUESTION))
    rows: list[tuple[Cell, ...]] = []
    for player in document["players"]:
        by_question = {a["question"]: a for a in player["answers"]}
        cells: list[Cell] = [player["rank"], player["nickname"], player["score"], player["correct_count"]]
        for question in questions:
            answer = by_question.get(question["index"])
            if answer is None:
                cells += ["", "", 0, ""]
            else:
                kind = question.get("type", "choice")
                cells += [
                    (" → " if kind == "puzzle" else " | ").join(answer["answer"]),
                    "" if kind == "poll" else "yes" if answer["correct"] else "no",  # a poll has no right answer
                    answer["points"],
                    round(answer["response_ms"] / 1000, 3),
                ]
        rows.append(tuple(cells))
    return Report(header, rows, list(questions))


def question_summary(document: dict[str, Any]) -> list[tuple[Cell, ...]]:
    """Per question: number, text, choices, correct answers, how many answered, how many got it right."""
    answered = {q["index"]: 0 for q in document["questions"]}
    right = dict(answered)
    for player in document["players"]:
        for answer in player["answers"]:
            answered[answer["question"]] = answered.get(answer["question"], 0) + 1
            right[answer["question"]] = right.get(answer["question"], 0) + int(bool(answer["correct"]))
    return [
        (
            q["number"],
            q["text"],
            " | ".join(q["choices"]),
            " | ".join(q.get("correct_answer", [q["choices"][c] for c in q["correct"]])),
            answered[q["index"]],
            right[q["index"]],
        )
        for q in document["questions"]
    ]


QUESTION_COLUMNS = ("question", "text", "choices", "correct answers", "answered", "right")
