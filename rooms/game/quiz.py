"""The quiz as the game sees it, and the validation of quiz documents (SPEC §1 and docs/protocol.md, *Question
types*).

A question without `type` is SPEC §1's multiple choice. The other types are extensions: `true_false` (two
choices), `poll` (no correct answer, no points), `type_answer` (free text against the author's accepted answers),
`slider` (a number in a range) and `puzzle` (items to put in order). Each parses into the same `Question`, so the
rules, the storage and the merged view see one shape; `kind` says how an answer is judged
(`quizroom.rooms.game.judging`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from dataclasses import dataclass
from enum import StrEnum
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
TYPED_MAX = 80  # a typed answer, and each accepted answer of a `type_answer` question
ACCEPTED_MAX = 10
SLIDER_BOUND = 1_000_000_000  # |min|, |max|
SLIDER_STEPS_MAX = 10_000  # (max − min) / step: the values a slider can take, so a reveal's tally stays small
TRUE_FALSE_LABELS = ("True", "False")


class Kind(StrEnum):
    CHOICE = "choice"
    TRUE_FALSE = "true_false"
    POLL = "poll"
    TYPE_ANSWER = "type_answer"
    SLIDER = "slider"
    PUZZLE = "puzzle"


KINDS = frozenset(k.value for k in Kind)


@dataclass(frozen=True, slots=True)
class Slider:
    """A slider's range, its correct value and the band around it that counts as right. With `closeness`, points
    shrink with the distance (all of them at the value, half at the band's edge); without, the band is
    all-or-nothing."""

    low: float
    high: float
    step: float
    value: float
    tolerance: float = 0.0
    closeness: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "min": number(self.low),
            "max": number(self.high),
            "step": number(self.step),
            "value": number(self.value),
            "tolerance": number(self.tolerance),
            "scoring": "closeness" if self.closeness else "all_or_nothing",
        }


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    choices: tuple[str, ...]
    correct: frozenset[int]
    time_limit_ms: int = TIME_LIMIT_DEFAULT
    points: int = POINTS_DEFAULT
    kind: Kind = Kind.CHOICE
    accepted: tuple[str, ...] = ()  # type_answer: the accepted answers as the author wrote them
    typo: bool = False  # type_answer: one typo is forgiven (docs/protocol.md)
    slider: Slider | None = None
    order: tuple[int, ...] = ()  # puzzle: `choices` are shown shuffled; this is the right order, as their indexes
    image: str | None = None  # an image id (rooms/game/images.py)
    choice_images: tuple[str | None, ...] = ()  # parallel to `choices` when any choice is an image, else empty

    @property
    def multi(self) -> bool:
        """Several choices are correct: players answer with a set, and only the exact set is right."""
        return self.kind is Kind.CHOICE and len(self.correct) > 1

    @property
    def scored(self) -> bool:
        """A poll neither scores nor touches a streak; every other type does."""
        return self.kind is not Kind.POLL

    @property
    def by_choice(self) -> bool:
        """Answered by picking choices, so a reveal counts answers per choice."""
        return self.kind in (Kind.CHOICE, Kind.TRUE_FALSE, Kind.POLL)

    def solution(self) -> list[int]:
        """SPEC's `correct` of a `result`: the correct choices; a puzzle's right order; nothing for the rest."""
        if self.kind is Kind.PUZZLE:
            return list(self.order)
        return sorted(self.correct)

    def to_json(self) -> dict[str, Any]:
        """The question as its author wrote it (a puzzle's items in their right order), for storage and export."""
        document: dict[str, Any] = {"text": self.text}
        if self.kind is not Kind.CHOICE:
            document["type"] = str(self.kind)
        if self.kind is Kind.PUZZLE:
            document["items"] = [self.choices[i] for i in self.order]
        elif self.kind is Kind.TYPE_ANSWER:
            document["accepted"] = list(self.accepted)
            document["typo_tolerance"] = self.typo
        elif self.kind is Kind.SLIDER:
            assert self.slider is not None
            document.update(self.slider.to_json())
        else:
            document["choices"] = list(self.choices)
            if self.kind is not Kind.POLL:
                document["correct"] = sorted(self.correct)
        document["time_limit_ms"] = self.time_limit_ms
        document["points"] = self.points
        document.update(images_json(self))
        return document


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


def number(value: float) -> int | float:
    """A slider number for JSON and storage: an integer when it is one (`42`, not `42.0`)."""
    return int(value) if float(value).is_integer() else value


def _number(obj: dict[str, Any], key: str, field: str, default: float | None = None) -> float:
    value = obj.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidInput(field, "must be a number")
    if not math.isfinite(value) or abs(value) > SLIDER_BOUND:
        raise InvalidInput(field, f"must be a finite number between -{SLIDER_BOUND} and {SLIDER_BOUND}")
    return float(value)


def on_grid(value: float, low: float, step: float) -> bool:
    """`value` is `low` plus a whole number of steps (to a millionth of a step: decimal steps are not exact)."""
    steps = (value - low) / step
    return abs(steps - round(steps)) <= 1e-6


def _choice_texts(obj: dict[str, Any], key: str, field: str) -> tuple[str, ...]:
    raw = obj.get(key)
    if not isinstance(raw, list):
        raise InvalidInput(f"{field}.{key}", "must be a list")
    if not CHOICES_MIN <= len(raw) <= CHOICES_MAX:
        raise InvalidInput(f"{field}.{key}", f"must have {CHOICES_MIN} to {CHOICES_MAX} {key}")
    return tuple(_text(c, f"{field}.{key}[{i}]", CHOICE_TEXT_MAX) for i, c in enumerate(raw))


def _timing(obj: dict[str, Any], field: str) -> tuple[int, int]:
    time_limit = _bounded_int(
        obj, "time_limit_ms", f"{field}.time_limit_ms", TIME_LIMIT_MIN, TIME_LIMIT_MAX, TIME_LIMIT_DEFAULT
    )
    points = _bounded_int(obj, "points", f"{field}.points", POINTS_MIN, POINTS_MAX, POINTS_DEFAULT)
    return time_limit, points


def shuffled_order(text: str, items: tuple[str, ...]) -> tuple[int, ...]:
    """How a puzzle's items are shown: shuffled by a seed drawn from the question itself, so that every shard,
    worker and restart shows the same order, and never in the right order (that would give the answer away).
    Returns `display`: `display[k]` is the item shown in place k."""
    seed = hashlib.sha256("\x1f".join((text, *items)).encode()).digest()
    display = list(range(len(items)))
    random.Random(seed).shuffle(display)
    if display == sorted(display):
        display = display[1:] + display[:1]
    return tuple(display)


def _parse_puzzle(obj: dict[str, Any], field: str, text: str) -> Question:
    items = _choice_texts(obj, "items", field)
    if len(set(items)) != len(items):
        raise InvalidInput(f"{field}.items", "must not repeat an item (the order would be ambiguous)")
    display = shuffled_order(text, items)
    shown = tuple(items[k] for k in display)
    order = tuple(display.index(i) for i in range(len(items)))  # item i (in the right order) is shown at order[i]
    time_limit, points = _timing(obj, field)
    return Question(text, shown, frozenset(), time_limit, points, kind=Kind.PUZZLE, order=order)


def _parse_type_answer(obj: dict[str, Any], field: str, text: str) -> Question:
    raw = obj.get("accepted")
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{field}.accepted", "must be a non-empty list of accepted answers")
    if len(raw) > ACCEPTED_MAX:
        raise InvalidInput(f"{field}.accepted", f"must have at most {ACCEPTED_MAX} answers")
    accepted = tuple(_text(a, f"{field}.accepted[{i}]", TYPED_MAX).strip() for i, a in enumerate(raw))
    typo = obj.get("typo_tolerance", False)
    if not isinstance(typo, bool):
        raise InvalidInput(f"{field}.typo_tolerance", "must be true or false")
    time_limit, points = _timing(obj, field)
    return Question(text, (), frozenset(), time_limit, points, kind=Kind.TYPE_ANSWER, accepted=accepted, typo=typo)


def _parse_slider(obj: dict[str, Any], field: str, text: str) -> Question:
    low = _number(obj, "min", f"{field}.min")
    high = _number(obj, "max", f"{field}.max")
    if high <= low:
        raise InvalidInput(f"{field}.max", "must be greater than `min`")
    step = _number(obj, "step", f"{field}.step", 1)
    if step <= 0:
        raise InvalidInput(f"{field}.step", "must be greater than 0")
    if (high - low) / step > SLIDER_STEPS_MAX or not on_grid(high, low, step):
        raise InvalidInput(f"{field}.step", f"must divide max − min into at most {SLIDER_STEPS_MAX} whole steps")
    value = _number(obj, "value", f"{field}.value")
    if not low <= value <= high or not on_grid(value, low, step):
        raise InvalidInput(f"{field}.value", "must be a value the slider can take (between min and max, on a step)")
    tolerance = _number(obj, "tolerance", f"{field}.tolerance", 0)
    if not 0 <= tolerance <= high - low:
        raise InvalidInput(f"{field}.tolerance", "must be between 0 and max − min")
    scoring = obj.get("scoring", "closeness")
    if scoring not in ("closeness", "all_or_nothing"):
        raise InvalidInput(f"{field}.scoring", "must be `closeness` or `all_or_nothing`")
    slider = Slider(low, high, step, value, tolerance, closeness=scoring == "closeness")
    time_limit, points = _timing(obj, field)
    return Question(text, (), frozenset(), time_limit, points, kind=Kind.SLIDER, slider=slider)


def _parse_poll(obj: dict[str, Any], field: str, text: str) -> Question:
    choices = _choice_texts(obj, "choices", field)
    if obj.get("correct") not in (None, []):
        raise InvalidInput(f"{field}.correct", "a poll has no correct answer")
    if obj.get("points", 0) != 0:
        raise InvalidInput(f"{field}.points", "a poll scores no points (leave it out or 0)")
    time_limit, _ = _timing({**obj, "points": 0}, field)
    return Question(text, choices, frozenset(), time_limit, 0, kind=Kind.POLL)


def _parse_true_false(obj: dict[str, Any], field: str, text: str) -> Question:
    choices: tuple[str, ...] = TRUE_FALSE_LABELS
    if "choices" in obj:
        choices = _choice_texts(obj, "choices", field)
        if len(choices) != 2:
            raise InvalidInput(f"{field}.choices", "must have exactly 2 labels (true, then false)")
    raw = obj.get("correct")
    if isinstance(raw, bool):
        correct = 0 if raw else 1
    elif raw in ([0], [1]):
        correct = raw[0]
    else:
        raise InvalidInput(f"{field}.correct", "must be true or false (or [0] for the first label, [1] for the second)")
    time_limit, points = _timing(obj, field)
    return Question(text, choices, frozenset({correct}), time_limit, points, kind=Kind.TRUE_FALSE)


_PARSERS = {
    Kind.TRUE_FALSE: _parse_true_false,
    Kind.POLL: _parse_poll,
    Kind.TYPE_ANSWER: _parse_type_answer,
    Kind.SLIDER: _parse_slider,
    Kind.PUZZLE: _parse_puzzle,
}


def parse_question(obj: object, field: str) -> Question:
    if not isinstance(obj, dict):
        raise InvalidInput(field, "must be an object")
    text = _text(obj.get("text"), f"{field}.text", TEXT_MAX)
    raw_kind = obj.get("type", "choice")
    if not isinstance(raw_kind, str) or raw_kind not in KINDS:
        names = ", ".join(k.value for k in Kind)
        raise InvalidInput(f"{field}.type", f"must be one of {names}")
    question = _PARSERS.get(Kind(raw_kind), _parse_choice)(obj, field, text)
    if "image" not in obj and "choice_images" not in obj:
        return question
    if not question.by_choice and obj.get("choice_images") not in (None, []):
        raise InvalidInput(f"{field}.choice_images", "only a question answered by picking a choice has choice images")
    choices = len(question.choices) if question.by_choice else 0
    image, choice_images = parse_images({**obj, "choice_images": None} if not choices else obj, field, choices)
    return dataclasses.replace(question, image=image, choice_images=choice_images)


def _parse_choice(obj: dict[str, Any], field: str, text: str) -> Question:
    """SPEC §1's multiple choice: 2–6 choices and a non-empty set of correct ones."""
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
    time_limit, points = _timing(obj, field)
    return Question(text, choices, frozenset(raw_correct), time_limit, points)


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
