"""The teacher's per-player table (rooms/game/report.py), from a results document built by hand."""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.report import player_report, question_summary

DOCUMENT: dict[str, Any] = {
    "questions": [
        {"index": 0, "number": 1, "text": "One?", "choices": ["a", "b"], "correct": [1]},
        {"index": 1, "number": 2, "text": "Two?", "choices": ["x", "y", "z"], "correct": [0, 2]},
    ],
    "players": [
        {
            "nickname": "Ann", "rank": 1, "score": 1900, "correct_count": 2,
            "answers": [
                {"question": 0, "answer": ["b"], "correct": True, "points": 950, "response_ms": 1234},
                {"question": 1, "answer": ["x", "z"], "correct": True, "points": 950, "response_ms": 2000},
            ],
        },
        {"nickname": "Cy", "rank": 2, "score": 0, "correct_count": 0, "answers": []},
    ],
}  # fmt: skip


def test_one_row_per_player_with_every_question_and_blanks_for_no_answer() -> None:
    report = player_report(DOCUMENT)
    assert report.header[:4] == ("rank", "nickname", "score", "correct answers")
    assert report.header[4] == "Q1 One? — answer" and report.header[-1] == "Q2 Two? — time (s)"
    assert report.rows[0] == (1, "Ann", 1900, 2, "b", "yes", 950, 1.234, "x | z", "yes", 950, 2.0)
    assert report.rows[1] == (2, "Cy", 0, 0, "", "", 0, "", "", "", 0, "")
    assert all(len(row) == len(report.header) for row in report.rows)


def test_the_question_summary_counts_answers_and_right_ones() -> None:
    assert question_summary(DOCUMENT) == [(1, "One?", "a | b", "b", 1, 1), (2, "Two?", "x | y | z", "x | z", 1, 1)]
