"""The quiz as the game sees it, and the validation of quiz documents (SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quizroom.rooms.game.errors import InvalidInput
from quizroom.rooms.game.images import images_json, parse_images

TITLE_MAX = 200
QUESTIONS_MAX = 200
TEXT_MAX = 500
CHOICES_MIN, CHOICES_MAX = 2, 6
CHOICE_TEXT_MAX = 120
TIME_LIMIT_MIN, TIME_LIMIT_MAX, TIME_LIMIT_DEFAULT = 5_000, 300_000, 20_000
POINTS_MIN, POINTS_MAX, POINTS_DEFAULT = 0, 2_000, 1_000


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    choices: tuple[str, ...]
    correct: frozenset[int]
    time_limit_ms: int = TIME_LIMIT_DEFAULT
    points: int = POINTS_DEFAULT
    image: str | None = None  # an image id (rooms/game/images.py)
    choice_images: tuple[str | None, ...] = ()  # parallel to `choices` when any choice is an image, else empty

    @property
    def multi(self) -> bool:
        """Several choices are correct: players answer with a set, and only the exact set is right."""
        return len(self.correct) > 1

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "choices": list(self.choices),
            "correct": sorted(self.correct),
            "time_limit_ms": self.time_limit_ms,
            "points": self.points,
            **images_json(self),
        }


@dataclass(frozen=True, slots=True)
class Quiz:
    title: str
    questions: tuple[Question, ...]

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "questions": [q.to_json() for q in self.questions]}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object, field: str, limit: int) -> str:
    """The length is checked first, so that nothing else ever looks at more than `limit` characters."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if len(value) > limit:
        raise InvalidInput(field, f"must be at most {limit} characters")
    if not value.strip():
        raise InvalidInput(field, "must not be empty")
    return value


def _bounded_int(obj: dict[str, Any], key: str, field: str, low: int, high: int, default: int) -> int:
    value = obj.get(key, default)
    if not _is_int(value):
        raise InvalidInput(field, "must be an integer")
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}")
    return int(value)


def parse_question(obj: object, field: str) -> Question:
    if not isinstance(obj, dict):
        raise InvalidInput(field, "must be an object")
    text = _text(obj.get("text"), f"{field}.text", TEXT_MAX)
    raw_choices = obj.get("choices")
    if not isinstance(raw_choices, list):
        raise InvalidInput(f"{field}.choices", "must be a list")
    if not CHOICES_MIN <= len(raw_choices) <= CHOICES_MAX:
        raise InvalidInput(f"{field}.choices", f"must have {CHOICES_MIN} to {CHOICES_MAX} choices")
    choices = tuple(_text(c, f"{field}.choices[{i}]", CHOICE_TEXT_MAX) for i, c in enumerate(raw_choices))
    raw_correct = obj.get("correct")
    if not isinstance(raw_correct, list) or not raw_correct:
        raise InvalidInput(f"{field}.correct", "must be a non-empty list of choice indexes")
    if len(raw_correct) > len(choices):
        raise InvalidInput(f"{field}.correct", f"must have at most {len(choices)} indexes (one per choice)")
    for i, index in enumerate(raw_correct):
        if not _is_int(index) or not 0 <= index < len(choices):
            raise InvalidInput(f"{field}.correct[{i}]", f"must be a choice index from 0 to {len(choices) - 1}")
    if len(set(raw_correct)) != len(raw_correct):
        raise InvalidInput(f"{field}.correct", "must not repeat an index")
    time_limit = _bounded_int(
        obj, "time_limit_ms", f"{field}.time_limit_ms", TIME_LIMIT_MIN, TIME_LIMIT_MAX, TIME_LIMIT_DEFAULT
    )
    points = _bounded_int(obj, "points", f"{field}.points", POINTS_MIN, POINTS_MAX, POINTS_DEFAULT)
    image, choice_images = parse_images(obj, field, len(choices))
    return Question(text, choices, frozenset(raw_correct), time_limit, points, image=image, choice_images=choice_images)


def parse_quiz(obj: object) -> Quiz:
    """Validate a quiz document; raises `InvalidInput` naming the first offending field. Unknown fields are ignored.

    Every list and string is measured against its cap before it is walked, so the work is bounded by the caps
    (at most 200 questions of 6 choices), not by the size of the document.
    """
    if not isinstance(obj, dict):
        raise InvalidInput("", "the quiz must be a JSON object")
    title = _text(obj.get("title"), "title", TITLE_MAX)
    raw_questions = obj.get("questions")
    if not isinstance(raw_questions, list):
        raise InvalidInput("questions", "must be a list")
    if not 1 <= len(raw_questions) <= QUESTIONS_MAX:
        raise InvalidInput("questions", f"must have 1 to {QUESTIONS_MAX} questions")
    questions = tuple(parse_question(q, f"questions[{i}]") for i, q in enumerate(raw_questions))
    return Quiz(title, questions)
