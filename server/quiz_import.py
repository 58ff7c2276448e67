"""Quizzes in and out of files (docs/protocol.md, "Quiz import and export"): our JSON format, and the rows of a
spreadsheet in the layout of Kahoot's public quiz template. Pure: text in, a validated quiz and the refused rows
out; `quizroom.server.quiz_sheets` turns the bytes of a CSV or XLSX file into those rows.

Kahoot's template starts with a few rows of title and instructions, then a header — `Question - max 120
characters`, `Answer 1 - max 75 characters` … `Answer 4`, `Time limit (sec) – 5, 10, 20, 30, 60, 90, 120, or 240
secs`, `Correct answer(s) - choose at least one` — then a question per row. The header is found by its cells, not
at a fixed row, and read liberally: any case or spacing, `Answer`/`Choice`/`Option` with a number up to 6, `Time…`,
`Correct…`, and an optional `Points` column of ours (a `Question #` or `Question number` column is not the text).
Every row that cannot become a question is reported with its row number in the file (1-based, as a spreadsheet
shows it) and why; the rest are imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from quizroom.rooms.game import quiz as limits
from quizroom.rooms.game.errors import BadFile, InvalidInput, NothingImported
from quizroom.rooms.game.quiz import Question, Quiz, parse_question, parse_quiz

FORMAT = "quizroom/quiz"
FORMAT_VERSION = 1
HEADER_SEARCH_ROWS = 50  # the header row must be among the first rows of a sheet
DEFAULT_TITLE = "Imported quiz"
FILENAME_MAX = 255  # `?filename=`, the uploaded file's name
TITLE_LABELS = frozenset({"title", "quiz title", "quiz name", "name of the quiz"})

_ANSWER = re.compile(r"(?:answer|choice|option|alternative)\s*#?\s*([1-9])\b")
_SECONDS = re.compile(r"(\d{1,4})(?:\.0*)?\s*(?:s|sec|secs|second|seconds)?")
_NUMBER = re.compile(r"(\d{1,4})(?:\.0*)?")  # `2.0`: how a number cell of a workbook often reaches a CSV
_NOT_THE_TEXT = re.compile(r"question\s*(?:#|no\b|nr\b|number|id\b|type)")  # "Question #" numbers the questions
_CORRECT_SPLIT = re.compile(r"[\s,;/&+]+|\band\b")
_LETTERS = {letter: n for n, letter in enumerate("abcdef", start=1)}  # some sheets name the answers A–F


@dataclass(frozen=True, slots=True)
class Refusal:
    """A row that did not become a question: its 1-based number in the file, and why, in the teacher's words."""

    row: int
    reason: str

    def to_json(self) -> dict[str, int | str]:
        return {"row": self.row, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the header row is (its number) and which column holds what: `answers[n]` is answer n + 1's column."""

    header_row: int
    question: int
    answers: tuple[int, ...]
    correct: int
    time: int | None
    points: int | None
    title: str  # a title cell above the header ("Title: My quiz"), or ""


@dataclass(frozen=True, slots=True)
class Imported:
    """The questions a sheet gave, in order (at most SPEC's 200), with every refused row; `title` is the sheet's
    own title cell or ""."""

    questions: tuple[Question, ...]
    refused: tuple[Refusal, ...]
    title: str


# --- our JSON format -------------------------------------------------------------------------------------------


def export_document(body: dict[str, Any]) -> dict[str, Any]:
    """A stored quiz as our file: the quiz document itself, marked, so that it is still a valid quiz for
    `POST /api/quizzes` (unknown fields are ignored) and an import can tell it from anything else."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **body}


def quiz_from_json(document: object) -> Quiz:
    """A quiz from our file (or a bare quiz document): `BadFile` for another format or a newer version of ours,
    `InvalidInput` naming the offending field otherwise."""
    if isinstance(document, dict) and "format" in document:
        if document["format"] != FORMAT:
            raise BadFile(f"this JSON is not a quizroom quiz (its format is not {FORMAT!r})")
        version = document.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BadFile("`format_version` must be a positive integer")
        if version > FORMAT_VERSION:
            raise BadFile(f"this quiz was exported by a newer quizroom (format_version {version})")
    return parse_quiz(document)


# --- spreadsheets ------------------------------------------------------------------------------------------------


def _key(cell: str) -> str:
    return " ".join(cell.casefold().replace("_", " ").split())


def _role(cell: str) -> str | None:
    key = _key(cell)
    answer = _ANSWER.match(key)
    if answer:
        return f"answer{answer.group(1)}"
    if _NOT_THE_TEXT.match(key):
        return None
    for prefix in ("question", "correct", "time", "points"):
        if key.startswith(prefix):
            return prefix
    return None


def _layout_of(row: Sequence[str], header_row: int, title: str) -> Layout | None:
    roles: dict[str, int] = {}
    for column, cell in enumerate(row):
        role = _role(cell) if cell else None
        if role is not None:
            roles.setdefault(role, column)
    if not {"question", "answer1", "answer2", "correct"} <= roles.keys():
        return None
    answers = []
    for n in range(1, limits.CHOICES_MAX + 1):
        if f"answer{n}" not in roles:
            break
        answers.append(roles[f"answer{n}"])
    return Layout(
        header_row, roles["question"], tuple(answers), roles["correct"], roles.get("time"), roles.get("points"), title
    )


def _title_cell(row: Sequence[str]) -> str:
    filled = [cell.strip() for cell in row if cell.strip()]
    if len(filled) >= 2 and _key(filled[0]).rstrip(":").strip() in TITLE_LABELS:
        return filled[1][: limits.TITLE_MAX].strip()
    return ""


def find_layout(rows: Iterable[Sequence[str]]) -> Layout | None:
    """The header among the first `HEADER_SEARCH_ROWS` rows (and a title cell above it), or None."""
    title = ""
    for number, row in enumerate(rows, start=1):
        if number > HEADER_SEARCH_ROWS:
            return None
        layout = _layout_of(row, number, title)
        if layout is not None:
            return layout
        title = title or _title_cell(row)
    return None


def _cell(row: Sequence[str], column: int | None) -> str:
    return row[column].strip() if column is not None and column < len(row) else ""


def _too_long(what: str, text: str, limit: int) -> str | None:
    return f"{what} is longer than {limit} characters" if len(text) > limit else None


def _whole(text: str, pattern: re.Pattern[str]) -> int | None:
    match = pattern.fullmatch(_key(text))
    return int(match.group(1)) if match else None


def _correct(cell: str, answers: Sequence[str]) -> list[int] | str:
    """The 0-based indexes among the filled answers, or why the cell does not name filled answers."""
    if not cell:
        return "no correct answer is given"
    filled = [n for n, text in enumerate(answers) if text]
    picked: list[int] = []
    for part in _CORRECT_SPLIT.split(_key(cell)):
        if not part:
            continue
        number = _LETTERS.get(part) or _whole(part, _NUMBER)
        if number is None:
            return f"the correct answer {part!r} is not an answer number"
        if not 1 <= number <= len(answers):
            return f"correct answer {number} is out of range (answers 1 to {len(answers)})"
        if not answers[number - 1]:
            return f"correct answer {number} names an empty answer"
        index = filled.index(number - 1)
        if index not in picked:
            picked.append(index)
    return picked or "no correct answer is given"


def _bounded(cell: str, what: str, pattern: re.Pattern[str], low: int, high: int, default: int) -> int | str:
    if not cell:
        return default
    value = _whole(cell, pattern)
    if value is None:
        return f"the {what} {cell[:40]!r} is not a whole number"
    if not low <= value <= high:
        return f"the {what} {value} is not between {low} and {high}"
    return value


def question_of(row: Sequence[str], layout: Layout) -> Question | str:
    """One data row as a question, or the reason it cannot be one."""
    text = _cell(row, layout.question)
    answers = [_cell(row, column) for column in layout.answers]
    if not text:
        return "the question text is missing"
    problem = _too_long("the question", text, limits.TEXT_MAX)
    for n, answer in enumerate(answers, start=1):
        problem = problem or _too_long(f"answer {n}", answer, limits.CHOICE_TEXT_MAX)
    if problem:
        return problem
    choices = [answer for answer in answers if answer]
    if len(choices) < limits.CHOICES_MIN:
        return f"it has fewer than {limits.CHOICES_MIN} answers"
    correct = _correct(_cell(row, layout.correct), answers)
    if isinstance(correct, str):
        return correct
    seconds = _bounded(
        _cell(row, layout.time),
        "time limit (seconds)",
        _SECONDS,
        limits.TIME_LIMIT_MIN // 1000,
        limits.TIME_LIMIT_MAX // 1000,
        limits.TIME_LIMIT_DEFAULT // 1000,
    )
    if isinstance(seconds, str):
        return seconds
    points = _bounded(
        _cell(row, layout.points), "points", _NUMBER, limits.POINTS_MIN, limits.POINTS_MAX, limits.POINTS_DEFAULT
    )
    if isinstance(points, str):
        return points
    document = {"text": text, "choices": choices, "correct": correct, "time_limit_ms": seconds * 1000, "points": points}
    try:  # the game's own rules have the last word, whatever this module checked
        return parse_question(document, "question")
    except InvalidInput as exc:
        return exc.message


def import_rows(rows: Sequence[Sequence[str]]) -> Imported:
    """Every row of a sheet (row i + 1 is `rows[i]`) as questions and refusals. `BadFile` without a header row;
    `NothingImported` when no row makes a question."""
    layout = find_layout(rows)
    if layout is None:
        raise BadFile(
            f"no header row in the first {HEADER_SEARCH_ROWS} rows: it needs columns named Question, Answer 1, "
            "Answer 2 and Correct answer(s) (as in Kahoot's quiz template)"
        )
    questions: list[Question] = []
    refused: list[Refusal] = []
    for number in range(layout.header_row + 1, len(rows) + 1):
        row = rows[number - 1]
        if not any(cell.strip() for cell in row):
            continue  # blank rows between questions are no one's mistake
        made = question_of(row, layout)
        if isinstance(made, str):
            refused.append(Refusal(number, made))
        elif len(questions) >= limits.QUESTIONS_MAX:
            refused.append(Refusal(number, f"the quiz already has {limits.QUESTIONS_MAX} questions"))
        else:
            questions.append(made)
    if not questions:
        raise NothingImported([r.to_json() for r in refused])
    return Imported(tuple(questions), tuple(refused), layout.title)


def import_title(requested: str | None, sheet_title: str, filename: str) -> str:
    """The imported quiz's title: `?title=` (checked like any title), else the sheet's title cell, else the file's
    name without its extension, else "Imported quiz"."""
    if requested is not None:
        if not requested.strip():
            raise InvalidInput("title", "must not be empty")
        if len(requested) > limits.TITLE_MAX:
            raise InvalidInput("title", f"must be at most {limits.TITLE_MAX} characters")
        return requested
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    for candidate in (sheet_title, stem):
        candidate = candidate.strip()[: limits.TITLE_MAX].strip()
        if candidate:
            return candidate
    return DEFAULT_TITLE
