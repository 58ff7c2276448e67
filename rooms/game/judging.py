"""How an answer message is read and judged, for every question type (docs/protocol.md, *Question types*).

`parse_response` reads what a player sent without knowing the question (the shard does it before the rules look);
`judge` checks it against the question and says what is stored: the choices (an index list: picked choices, or a
puzzle's order), the value (a typed answer or a slider's number, as text) and whether it is right. Pure functions:
the rules call them with the question open, the tests call them with nothing at all.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from dataclasses import dataclass
from typing import Any

from quizroom.rooms.game.errors import BadChoice, BadMessage
from quizroom.rooms.game.quiz import TYPED_MAX, Kind, Question, number, on_grid

TYPO_MIN_LENGTH = 4  # one typo is forgiven only in accepted answers at least this long ("cat" is not "car")


@dataclass(frozen=True, slots=True)
class Response:
    """An answer message's payload: exactly one of picked choices, a typed text or a number."""

    choices: tuple[int, ...] | None = None
    text: str | None = None
    number: float | None = None


@dataclass(frozen=True, slots=True)
class Judged:
    """What is stored of an answer and how it scores. `closeness` scales a slider's points (1.0 otherwise)."""

    choices: tuple[int, ...]
    value: str | None
    correct: bool
    closeness: float = 1.0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_response(message: dict[str, Any]) -> Response:
    """`choice` (an int), `choices` (a list of ints), `text` (a string) or `value` (a number)."""
    if "choices" in message:
        raw = message["choices"]
        if not isinstance(raw, list) or not all(_is_int(c) for c in raw):
            raise BadMessage("`choices` must be a list of integers")
        return Response(choices=tuple(raw))  # list[Any]: every item was checked to be an int
    if "choice" in message:
        raw_choice = message["choice"]
        if not _is_int(raw_choice):
            raise BadMessage("`choice` must be an integer")
        return Response(choices=(raw_choice,))
    if "text" in message:
        raw_text = message["text"]
        if not isinstance(raw_text, str):
            raise BadMessage("`text` must be a string")
        return Response(text=raw_text)
    if "value" in message:
        raw_value = message["value"]
        if not isinstance(raw_value, int | float) or isinstance(raw_value, bool) or not math.isfinite(raw_value):
            raise BadMessage("`value` must be a finite number")
        return Response(number=float(raw_value))
    raise BadMessage("an answer needs `choice` (an integer), `choices` (a list), `text` or `value`")


def tidy(text: str) -> str:
    """A typed answer as stored and shown: NFKC, control characters dropped, runs of white space made one space,
    trimmed. Case is kept (a teacher reads what was typed); `answer_key` folds it for comparing."""
    normal = unicodedata.normalize("NFKC", text)
    visible = "".join(ch for ch in normal if unicodedata.category(ch) != "Cc" or ch.isspace())
    return " ".join(visible.split())


@functools.lru_cache(maxsize=4096)
def answer_key(text: str) -> str:
    """What typed answers are compared by: the tidied text, case-folded (`Paris`, ` paris ` and `PARIS` are one).
    Cached: a burst of 10,000 answers to one question compares against the same few accepted answers."""
    return tidy(text).casefold()


def within_one_edit(a: str, b: str) -> bool:
    """`a` and `b` differ by at most one typo: a letter missing, extra or wrong, or two neighbours swapped
    (optimal string alignment distance ≤ 1), in time linear in their length."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    start = 0
    while start < min(la, lb) and a[start] == b[start]:
        start += 1
    if la == lb:
        if a[start + 1 :] == b[start + 1 :]:
            return True  # one letter wrong
        swapped = start + 1 < la and a[start] == b[start + 1] and a[start + 1] == b[start]
        return swapped and a[start + 2 :] == b[start + 2 :]
    longer, shorter = (a, b) if la > lb else (b, a)
    return longer[start + 1 :] == shorter[start:]  # one letter extra in the longer


def typed_correct(question: Question, key: str) -> bool:
    for accepted in question.accepted:
        target = answer_key(accepted)
        if key == target or (question.typo and len(target) >= TYPO_MIN_LENGTH and within_one_edit(key, target)):
            return True
    return False


def slider_value(question: Question, value: float) -> float:
    """The slider value a number stands for, on the step grid (decimal steps drift in binary: 0.1 × 3)."""
    slider = question.slider
    assert slider is not None
    steps = round((value - slider.low) / slider.step)
    return round(slider.low + steps * slider.step, 9)


def value_text(value: float) -> str:
    """A slider value as stored: `42`, `2.5`."""
    return repr(number(value))


def _choices(question: Question, choices: tuple[int, ...]) -> tuple[int, ...]:
    n = len(question.choices)
    if question.kind is Kind.PUZZLE:
        if sorted(choices) != list(range(n)):
            raise BadChoice(f"put all {n} items in an order: `choices` lists each index from 0 to {n - 1} once")
        return choices
    if not choices:
        raise BadChoice("choose at least one choice")
    if len(set(choices)) != len(choices):
        raise BadChoice("a choice is repeated")
    for choice in choices:
        if not 0 <= choice < n:
            raise BadChoice(f"choices go from 0 to {n - 1}")
    if not question.multi and len(choices) != 1:
        raise BadChoice("this question takes exactly one choice")
    return choices


def judge(question: Question, response: Response) -> Judged:
    """Check a response against the question; raises `BadChoice` for one that does not fit its type."""
    kind = question.kind
    if kind is Kind.TYPE_ANSWER:
        if response.text is None:
            raise BadChoice("this question takes a typed answer: send `text`")
        if len(response.text) > 4 * TYPED_MAX:  # before any normalising: a bound on the work
            raise BadChoice(f"a typed answer has at most {TYPED_MAX} characters")
        text = tidy(response.text)
        if not text:
            raise BadChoice("the typed answer is empty")
        if len(text) > TYPED_MAX:
            raise BadChoice(f"a typed answer has at most {TYPED_MAX} characters")
        return Judged((), text, typed_correct(question, answer_key(text)))
    if kind is Kind.SLIDER:
        slider = question.slider
        assert slider is not None
        if response.number is None:
            raise BadChoice("this question takes a number: send `value`")
        if not slider.low <= response.number <= slider.high or not on_grid(response.number, slider.low, slider.step):
            low, high, step = number(slider.low), number(slider.high), number(slider.step)
            raise BadChoice(f"the value must be from {low} to {high} in steps of {step}")
        value = slider_value(question, response.number)
        distance = abs(value - slider.value)
        correct = distance <= slider.tolerance + 1e-9
        closeness = 1.0
        if correct and slider.closeness and slider.tolerance > 0:
            closeness = 1 - min(distance, slider.tolerance) / (2 * slider.tolerance)
        return Judged((), value_text(value), correct, closeness)
    if response.choices is None:
        raise BadChoice("this question takes `choice` or `choices`")
    choices = _choices(question, response.choices)
    if kind is Kind.PUZZLE:
        return Judged(choices, None, choices == question.order)
    if kind is Kind.POLL:
        return Judged(choices, None, False)
    return Judged(choices, None, frozenset(choices) == question.correct)


def equivalent(
    question: Question, held: tuple[tuple[int, ...], str | None], other: tuple[tuple[int, ...], str | None]
) -> bool:
    """Two judged answers `(choices, value)` say the same: the same set of choices, the same order of a puzzle,
    the same typed answer (as compared) or the same slider value."""
    if question.kind is Kind.TYPE_ANSWER:
        return answer_key(held[1] or "") == answer_key(other[1] or "")
    if question.kind is Kind.PUZZLE:
        return held[0] == other[0]
    return frozenset(held[0]) == frozenset(other[0]) and held[1] == other[1]


def same(question: Question, response: Response, choices: tuple[int, ...], value: str | None) -> bool:
    """A repeat (not judged: the first answer wins) carries the held answer, for `answer_ack.accepted`."""
    try:
        judged = judge(question, response)
    except BadChoice:
        return False
    return equivalent(question, (choices, value), (judged.choices, judged.value))
