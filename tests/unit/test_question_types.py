"""The question types (docs/protocol.md, *Question types*) in the pure core: parsing, judging, scoring, streaks.

Every rule is checked without a network or a clock of its own; the property test at the end plays random answers
to a quiz of every type and checks each answer's points against the SPEC §5 formula written out again here.
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from quizroom.rooms.game.clock import ManualClock
from quizroom.rooms.game.effects import View
from quizroom.rooms.game.errors import BadChoice, BadMessage, InvalidInput
from quizroom.rooms.game.judging import Response, answer_key, judge, parse_response, same, within_one_edit
from quizroom.rooms.game.messages import how_answered, reveal_counts, solution
from quizroom.rooms.game.quiz import Kind, Question, Quiz, parse_question, parse_quiz
from quizroom.rooms.game.rules import Player, RoomLimits, RoomState

TRUE_FALSE = {"type": "true_false", "text": "The sun is a star", "correct": True}
POLL = {"type": "poll", "text": "Pizza or pasta?", "choices": ["Pizza", "Pasta", "Both"]}
TYPED = {"type": "type_answer", "text": "Capital of France?", "accepted": ["Paris", "Lutèce"], "typo_tolerance": True}
SLIDER = {"type": "slider", "text": "Degrees in a right angle", "min": 0, "max": 180, "step": 5, "value": 90}
BAND = {**SLIDER, "tolerance": 10}
PUZZLE = {"type": "puzzle", "text": "Smallest first", "items": ["ant", "cat", "horse", "whale"]}
CHOICE = {"text": "2 + 2", "choices": ["3", "4"], "correct": [1]}


def q(document: dict[str, Any]) -> Question:
    return parse_question(document, "questions[0]")


def refused(document: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as caught:
        q(document)
    return str(caught.value.field)


# --- parsing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [CHOICE, TRUE_FALSE, POLL, TYPED, SLIDER, BAND, PUZZLE])
def test_every_type_round_trips_through_its_document(document: dict[str, Any]) -> None:
    question = q(document)
    again = q(question.to_json())
    assert again == question
    assert question.to_json().get("type", "choice") == document.get("type", "choice")


def test_a_choice_question_keeps_spec_s_document_exactly() -> None:
    assert q(CHOICE).to_json() == {**CHOICE, "time_limit_ms": 20_000, "points": 1000}
    assert q(CHOICE).kind is Kind.CHOICE and "type" not in q(CHOICE).to_json()


def test_true_false_has_two_localisable_labels_and_one_answer() -> None:
    assert q(TRUE_FALSE).choices == ("True", "False") and q(TRUE_FALSE).correct == {0}
    french = q({**TRUE_FALSE, "choices": ["Vrai", "Faux"], "correct": False})
    assert french.choices == ("Vrai", "Faux") and french.correct == {1}
    assert q({**TRUE_FALSE, "correct": [1]}).correct == {1}
    assert refused({**TRUE_FALSE, "correct": [0, 1]}) == "questions[0].correct"
    assert refused({**TRUE_FALSE, "choices": ["a", "b", "c"]}) == "questions[0].choices"


def test_a_poll_has_no_correct_answer_and_no_points() -> None:
    poll = q(POLL)
    assert poll.points == 0 and not poll.scored and poll.correct == frozenset()
    assert refused({**POLL, "correct": [0]}) == "questions[0].correct"
    assert refused({**POLL, "points": 500}) == "questions[0].points"


def test_type_answer_refusals_name_their_field() -> None:
    assert refused({**TYPED, "accepted": []}) == "questions[0].accepted"
    assert refused({**TYPED, "accepted": ["x"] * 11}) == "questions[0].accepted"
    assert refused({**TYPED, "accepted": ["x" * 81]}) == "questions[0].accepted[0]"
    assert refused({**TYPED, "accepted": ["ok", "  "]}) == "questions[0].accepted[1]"
    assert refused({**TYPED, "typo_tolerance": "yes"}) == "questions[0].typo_tolerance"


def test_slider_refusals_name_their_field() -> None:
    assert refused({**SLIDER, "max": 0}) == "questions[0].max"
    assert refused({**SLIDER, "step": 0}) == "questions[0].step"
    assert refused({**SLIDER, "step": 7}) == "questions[0].step", "180 is not a whole number of 7s"
    assert refused({**SLIDER, "min": 0, "max": 1_000_000, "step": 1}) == "questions[0].step", "too many steps"
    assert refused({**SLIDER, "value": 92}) == "questions[0].value", "off the grid"
    assert refused({**SLIDER, "value": 200}) == "questions[0].value"
    assert refused({**SLIDER, "value": True}) == "questions[0].value"
    assert refused({**SLIDER, "min": float("nan")}) == "questions[0].min"
    assert refused({**SLIDER, "tolerance": -1}) == "questions[0].tolerance"
    assert refused({**SLIDER, "scoring": "fuzzy"}) == "questions[0].scoring"
    decimal = q({**SLIDER, "min": 0, "max": 1, "step": 0.1, "value": 0.3})
    assert decimal.slider is not None and decimal.slider.value == pytest.approx(0.3)


def test_puzzle_is_shown_shuffled_the_same_way_every_time_and_never_in_order() -> None:
    puzzle = q(PUZZLE)
    assert sorted(puzzle.choices) == sorted(PUZZLE["items"]) and list(puzzle.choices) != PUZZLE["items"]
    assert q(PUZZLE).choices == puzzle.choices, "every shard and restart shows the same order"
    assert [puzzle.choices[i] for i in puzzle.order] == PUZZLE["items"]
    two = q({**PUZZLE, "items": ["a", "b"]})
    assert two.choices == ("b", "a")
    assert refused({**PUZZLE, "items": ["a"]}) == "questions[0].items"
    assert refused({**PUZZLE, "items": ["a", "a"]}) == "questions[0].items"


def test_an_unknown_type_is_refused_with_the_types() -> None:
    with pytest.raises(InvalidInput, match="choice, true_false, poll, type_answer, slider, puzzle"):
        q({**CHOICE, "type": "essay"})
    assert refused({**CHOICE, "type": ["choice"]}) == "questions[0].type"


# --- judging ------------------------------------------------------------------------------------------------------


def test_responses_are_read_by_their_field() -> None:
    assert parse_response({"choice": 2}) == Response(choices=(2,))
    assert parse_response({"choices": [2, 0]}) == Response(choices=(2, 0))
    assert parse_response({"text": " Paris "}) == Response(text=" Paris ")
    assert parse_response({"value": 45}) == Response(number=45.0)
    for bad in ({}, {"text": 5}, {"value": "45"}, {"value": True}, {"value": float("inf")}, {"choice": 1.5}):
        with pytest.raises(BadMessage):
            parse_response(bad)


@pytest.mark.parametrize(
    ("typed", "correct"),
    [
        ("Paris", True),
        ("  paris  ", True),
        ("PARIS", True),
        ("Ｐａｒｉｓ", True),  # NFKC: full-width letters
        ("lutèce", True),
        ("Pariss", True),  # one extra letter
        ("Pari", True),  # one missing
        ("Parus", True),  # one wrong
        ("Pairs", True),  # two neighbours swapped
        ("Bariz", False),  # two typos
        ("London", False),
        ("Paris France", False),
    ],
)
def test_typed_answers_compare_after_normalising_with_one_typo_forgiven(typed: str, correct: bool) -> None:
    assert judge(q(TYPED), Response(text=typed)).correct is correct


def test_without_typo_tolerance_only_the_normalised_answer_is_right() -> None:
    strict = q({**TYPED, "typo_tolerance": False})
    assert judge(strict, Response(text=" PARIS ")).correct
    assert not judge(strict, Response(text="Pariss")).correct


def test_a_short_accepted_answer_forgives_no_typo() -> None:
    cat = q({**TYPED, "accepted": ["cat"]})
    assert judge(cat, Response(text="Cat")).correct and not judge(cat, Response(text="car")).correct


def test_a_typed_answer_is_stored_tidied_with_its_case() -> None:
    judged = judge(q(TYPED), Response(text="  New\t\tYork \x07"))
    assert judged.value == "New York" and judged.choices == ()
    with pytest.raises(BadChoice):
        judge(q(TYPED), Response(text="   "))
    with pytest.raises(BadChoice):
        judge(q(TYPED), Response(text="x" * 81))
    with pytest.raises(BadChoice):
        judge(q(TYPED), Response(choices=(0,)))


def test_within_one_edit() -> None:
    assert within_one_edit("abcd", "abcd") and within_one_edit("abcd", "abd") and within_one_edit("abcd", "abdc")
    assert not within_one_edit("abcd", "badc") and not within_one_edit("abcd", "ab")


def test_slider_band_and_grid() -> None:
    exact, band = q(SLIDER), q(BAND)
    assert judge(exact, Response(number=90)).correct and not judge(exact, Response(number=95)).correct
    assert judge(band, Response(number=100)).correct and not judge(band, Response(number=105)).correct
    assert judge(band, Response(number=90)).closeness == 1.0
    assert judge(band, Response(number=95)).closeness == 0.75
    assert judge(band, Response(number=100)).closeness == 0.5
    flat = q({**BAND, "scoring": "all_or_nothing"})
    assert judge(flat, Response(number=100)).closeness == 1.0
    assert judge(band, Response(number=95)).value == "95"
    for bad in (Response(number=92), Response(number=-5), Response(number=185), Response(text="90")):
        with pytest.raises(BadChoice):
            judge(band, bad)
    decimal = q({**SLIDER, "min": 0, "max": 1, "step": 0.1, "value": 0.3})
    assert judge(decimal, Response(number=0.1 + 0.2)).correct, "0.30000000000000004 is the step 0.3"
    assert judge(decimal, Response(number=0.1 + 0.2)).value == "0.3"


def test_puzzle_takes_every_item_once_and_only_the_exact_order_is_right() -> None:
    puzzle = q(PUZZLE)
    assert judge(puzzle, Response(choices=puzzle.order)).correct
    almost = (puzzle.order[1], puzzle.order[0], *puzzle.order[2:])
    assert not judge(puzzle, Response(choices=almost)).correct
    for bad in ((0, 1, 2), (0, 1, 2, 2), (0, 1, 2, 4), ()):
        with pytest.raises(BadChoice):
            judge(puzzle, Response(choices=bad))


def test_a_poll_answer_is_never_correct_and_takes_one_choice() -> None:
    assert not judge(q(POLL), Response(choices=(1,))).correct
    with pytest.raises(BadChoice):
        judge(q(POLL), Response(choices=(0, 1)))


def test_a_repeat_carries_the_held_answer_by_its_type() -> None:
    typed, puzzle, band = q(TYPED), q(PUZZLE), q(BAND)
    assert same(typed, Response(text=" paris"), (), "Paris") and not same(typed, Response(text="Rome"), (), "Paris")
    assert same(band, Response(number=95.0), (), "95") and not same(band, Response(number=90), (), "95")
    assert same(puzzle, Response(choices=puzzle.order), puzzle.order, None)
    assert not same(puzzle, Response(choices=tuple(reversed(puzzle.order))), puzzle.order, None)
    assert not same(band, Response(number=93), (), "95"), "a bad repeat is not the held answer"
    assert answer_key("Ｐａｒｉｓ ") == "paris"


# --- rules: scoring and streaks -----------------------------------------------------------------------------------


def room_of(*documents: dict[str, Any]) -> RoomState:
    quiz = Quiz("types", tuple(q({**d, "time_limit_ms": 10_000}) for d in documents))
    return RoomState(room_id="r", pin="123456", quiz=quiz, host_token_hash="h", limits=RoomLimits())


def play(state: RoomState, clock: ManualClock, player: Player, response: Response) -> int:
    submission = state.submit(player, state.question_index, response, clock.monotonic(), clock.wall_ms())
    assert state.mark_durable(submission.answer)
    return submission.answer.points


def seated(state: RoomState) -> Player:
    player = Player("p1", "Ann", "ann", "t", 0, connected=1)
    state.add_player(player)
    return player


def test_a_poll_neither_scores_nor_breaks_a_streak() -> None:
    clock, state = ManualClock(), room_of(TYPED, POLL, SLIDER, POLL, PUZZLE)
    ann = seated(state)
    state.start(clock.monotonic(), clock.wall_ms())
    assert play(state, clock, ann, Response(text="paris")) == 1000
    state.close()
    assert ann.streak == 1
    state.advance(clock.monotonic(), clock.wall_ms())
    assert play(state, clock, ann, Response(choices=(0,))) == 0
    state.close()
    assert ann.streak == 1, "the poll left the streak alone"
    state.advance(clock.monotonic(), clock.wall_ms())
    assert play(state, clock, ann, Response(number=90)) == 1000 + 100, "streak 2 across the poll"
    state.close()
    state.advance(clock.monotonic(), clock.wall_ms())
    state.close()  # nobody answers the second poll: still no break
    assert ann.streak == 2
    state.advance(clock.monotonic(), clock.wall_ms())
    puzzle = state.quiz.questions[4]
    assert play(state, clock, ann, Response(choices=puzzle.order)) == 1000 + 200
    state.close()
    assert ann.streak == 3 and ann.score == 3300


def test_a_wrong_typed_slider_or_puzzle_answer_scores_nothing_and_resets_the_streak() -> None:
    clock, state = ManualClock(), room_of(TYPED, BAND, PUZZLE)
    ann = seated(state)
    state.start(clock.monotonic(), clock.wall_ms())
    play(state, clock, ann, Response(text="Paris"))
    state.close()
    state.advance(clock.monotonic(), clock.wall_ms())
    assert play(state, clock, ann, Response(number=150)) == 0
    state.close()
    assert ann.streak == 0
    state.advance(clock.monotonic(), clock.wall_ms())
    puzzle = state.quiz.questions[2]
    assert play(state, clock, ann, Response(choices=tuple(reversed(puzzle.order)))) == 0


def test_a_slider_scores_by_closeness_and_speed() -> None:
    clock, state = ManualClock(), room_of(BAND)
    ann = seated(state)
    state.start(clock.monotonic(), clock.wall_ms())
    clock.advance(5)  # half the time: 750 for an exact answer, and 3/4 of that 5 away from 90
    assert play(state, clock, ann, Response(number=95)) == round(1000 * 0.75 * 0.75)


def test_reveals_tally_each_type() -> None:
    typed = q(TYPED)
    view = View(5, 4, (), ((0, 5),), (), 3, (("Paris", True, 2), ("paris", True, 1), ("Rome", False, 1)))
    counts, tally = reveal_counts(typed, view)
    assert counts == [] and tally is not None
    assert tally["answers"] == [
        {"text": "Paris", "count": 3, "correct": True},
        {"text": "Rome", "count": 1, "correct": False},
    ]
    assert tally["correct"] == 3 and tally["distinct"] == 2
    band = q(BAND)
    _, slider = reveal_counts(band, View(3, 3, (), (), (), 2, (("90", True, 1), ("95", True, 1), ("180", False, 1))))
    assert slider is not None and sum(b["count"] for b in slider["bins"]) == 3 and len(slider["bins"]) <= 20
    assert slider["bins"][0]["from"] == 0 and slider["bins"][-1]["to"] == 180
    assert slider["mean"] == pytest.approx(365 / 3, abs=1e-6) and slider["correct"] == 2
    _, puzzle = reveal_counts(q(PUZZLE), View(3, 3, (), (), (), 1))
    assert puzzle == {"correct": 1, "wrong": 2}
    assert reveal_counts(q(POLL), View(3, 3, (2, 1, 0), (), ())) == ([2, 1, 0], None)


def test_messages_say_how_to_answer_and_never_the_answer() -> None:
    assert how_answered(q(TYPED)) == {"question_type": "type_answer", "max_length": 80}
    assert how_answered(q(SLIDER)) == {"question_type": "slider", "min": 0, "max": 180, "step": 5}
    for document in (TYPED, SLIDER, PUZZLE, POLL, TRUE_FALSE):
        shown = how_answered(q(document))
        assert not {"accepted", "value", "correct", "order", "items"} & set(shown)
    assert solution(q(TYPED)) == {"accepted": ["Paris", "Lutèce"]}
    assert solution(q(BAND)) == {"value": 90, "tolerance": 10}


# --- property: every scored answer's points are SPEC §5's -----------------------------------------------------------


def spec_points(points: int, limit: int, response_ms: int, correct: bool, streak: int, closeness: float) -> int:
    """SPEC §5 written out once more: the speed part (scaled by a slider's closeness), then the streak bonus."""
    if not correct:
        return 0
    part = points * closeness * (1 - min(response_ms, limit) / limit / 2)
    return round(part) + (min(streak - 1, 5) * 100 if points > 0 and streak >= 2 else 0)


QUIZ_OF_EVERY_TYPE = parse_quiz(
    {"title": "all", "questions": [{**d, "time_limit_ms": 10_000} for d in (CHOICE, TYPED, BAND, PUZZLE, POLL)] * 2}
)


def response_for(question: Question, pick: int) -> Response:
    if question.kind is Kind.TYPE_ANSWER:
        return Response(text=["Paris", "paris ", "Pairs", "Rome", "Lutece"][pick % 5])
    if question.kind is Kind.SLIDER:
        return Response(number=[90, 95, 100, 105, 0][pick % 5])
    if question.kind is Kind.PUZZLE:
        return Response(choices=question.order if pick % 2 else tuple(reversed(question.order)))
    return Response(choices=(pick % len(question.choices),))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10_250), st.booleans()), min_size=10, max_size=10))
def test_every_scored_answer_earns_what_spec_s_formula_gives(plays: list[tuple[int, int, bool]]) -> None:
    clock = ManualClock()
    state = RoomState(room_id="r", pin="1", quiz=QUIZ_OF_EVERY_TYPE, host_token_hash="h", limits=RoomLimits())
    ann = seated(state)
    state.start(clock.monotonic(), clock.wall_ms())
    streak = 0
    for index, (pick, after_ms, answers) in enumerate(plays):
        question = state.quiz.questions[index]
        clock.advance(after_ms / 1000)
        if answers:
            response = response_for(question, pick)
            judged = judge(question, response)
            points = play(state, clock, ann, response)
            expected_streak = streak + 1 if judged.correct else 0
            response_ms = ann.answers[index].response_ms
            assert abs(response_ms - after_ms) <= 1
            assert points == spec_points(
                question.points, question.time_limit_ms, response_ms, judged.correct, streak + 1, judged.closeness
            ), (question.kind, response)
            if question.scored:
                streak = expected_streak
            else:
                assert points == 0
        elif question.scored:
            streak = 0
        state.close()
        assert ann.streak == streak
        assert ann.score == sum(a.points for a in ann.answers.values())
        if index + 1 < len(plays):
            state.advance(clock.monotonic(), clock.wall_ms())


def test_every_type_takes_a_question_image_and_only_choice_types_take_choice_images() -> None:
    image = "a" * 64
    for document in (TYPED, SLIDER, PUZZLE, POLL, TRUE_FALSE, CHOICE):
        question = q({**document, "image": image})
        assert question.image == image and q(question.to_json()) == question
    with_pictures = q({**POLL, "choice_images": [image, None, image]})
    assert with_pictures.choice_images == (image, None, image)
    assert with_pictures.to_json()["choice_images"] == [image, None, image]
    for document in (TYPED, SLIDER, PUZZLE):
        assert refused({**document, "choice_images": [image, image]}) == "questions[0].choice_images"
    assert refused({**TRUE_FALSE, "choice_images": [image]}) == "questions[0].choice_images", "one per label"
