"""What a reveal shows of the answers to a question of each type (docs/protocol.md, *Question types*).

Choice questions (and true/false, polls) show SPEC's per-choice `counts`. The other types have a `tally`, built here
from the stored answers' values that the merged view returns (`RoomView.values`, one row per distinct value):
the most common typed answers, the distribution of slider values, how many put a puzzle in the right order.
Pure: the coordinator calls it with the view it read at the reveal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from quizroom.rooms.game.judging import answer_key
from quizroom.rooms.game.quiz import Kind, Question, number

TYPED_SHOWN = 10  # the most common typed answers a reveal lists
SLIDER_BINS = 20  # a slider's distribution: at most this many bars


def typed_tally(question: Question, values: Sequence[tuple[str, bool, int]], right: int) -> dict[str, Any]:
    """Typed answers grouped as they are compared (case and spacing aside), most common first; each group is
    shown as its most common spelling."""
    groups: dict[str, list[Any]] = {}  # key → [answers, correct, best spelling, its answers]
    for value, correct, n in values:
        group = groups.setdefault(answer_key(value), [0, correct, value, 0])
        group[0] += n
        group[1] = group[1] or correct
        if n > group[3]:
            group[2], group[3] = value, n
    ranked = sorted(groups.values(), key=lambda g: (-g[0], g[2]))
    shown = [{"text": g[2], "count": g[0], "correct": g[1]} for g in ranked[:TYPED_SHOWN]]
    return {"answers": shown, "distinct": len(groups), "correct": right, "accepted": list(question.accepted)}


def slider_tally(question: Question, values: Sequence[tuple[str, bool, int]], right: int) -> dict[str, Any]:
    """Slider values in at most `SLIDER_BINS` equal bins over the slider's range (each bin a whole number of
    steps), with how many answers fell in the band and their mean."""
    slider = question.slider
    assert slider is not None
    steps = round((slider.high - slider.low) / slider.step)
    per_bin = max(1, math.ceil((steps + 1) / SLIDER_BINS))
    bins = [0] * math.ceil((steps + 1) / per_bin)
    total = weighted = 0.0
    for value, _, n in values:
        at = float(value)
        index = round((at - slider.low) / slider.step) // per_bin
        bins[min(max(index, 0), len(bins) - 1)] += n
        total += n
        weighted += at * n
    width = per_bin * slider.step
    return {
        "bins": [
            {
                "from": number(round(slider.low + i * width, 9)),
                "to": number(round(min(slider.high, slider.low + (i + 1) * width - slider.step), 9)),
                "count": count,
            }
            for i, count in enumerate(bins)
        ],
        "correct": right,
        "mean": number(round(weighted / total, 6)) if total else None,
        "value": number(slider.value),
        "tolerance": number(slider.tolerance),
    }


def tally(question: Question, values: Sequence[tuple[str, bool, int]], right: int, answered: int) -> dict[str, Any]:
    """The reveal's `tally` of a question that is not answered by picking choices (None for those)."""
    if question.kind is Kind.TYPE_ANSWER:
        return typed_tally(question, values, right)
    if question.kind is Kind.SLIDER:
        return slider_tally(question, values, right)
    if question.kind is Kind.PUZZLE:
        return {"correct": right, "wrong": answered - right}
    raise ValueError(f"{question.kind} questions are counted per choice")
