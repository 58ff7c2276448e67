"""Images in the quiz model and on the wire (rooms/game/images.py): validation, documents, and the messages that
carry them (the question, the "get ready" pause that preloads them, the welcome)."""

from __future__ import annotations

from typing import Any

import pytest

from quizroom.rooms.game import messages
from quizroom.rooms.game.errors import InvalidInput
from quizroom.rooms.game.images import (
    IMAGE_INTRO_MS,
    WELCOME_IMAGES,
    image_intro,
    quiz_image_ids,
    upcoming_image_urls,
)
from quizroom.rooms.game.options import RoomOptions
from quizroom.rooms.game.quiz import parse_quiz
from quizroom.rooms.game.rules import Player, RoomLimits, RoomState
from quizroom.server.archives import with_image_ids

A, B, C = "a" * 64, "b" * 64, "c" * 64


def question(**extra: Any) -> dict[str, Any]:
    return {"text": "Which flag?", "choices": ["France", "Italy", "Peru"], "correct": [1], **extra}


def document(*questions: dict[str, Any]) -> dict[str, Any]:
    return {"title": "Flags", "questions": list(questions)}


def test_a_question_carries_an_image_and_image_choices_in_its_document() -> None:
    quiz = parse_quiz(document(question(image=A, choice_images=[B, None, C])))
    q = quiz.questions[0]
    assert q.image == A and q.choice_images == (B, None, C)
    assert q.to_json()["image"] == A and q.to_json()["choice_images"] == [B, None, C]
    assert parse_quiz(quiz.to_json()) == quiz


def test_a_text_only_question_is_as_before() -> None:
    q = parse_quiz(document(question())).questions[0]
    assert q.image is None and q.choice_images == ()
    assert "image" not in q.to_json() and "choice_images" not in q.to_json()
    assert parse_quiz(document(question(image=None, choice_images=[None, None, None]))).questions[0] == q


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"image": "https://example.org/cat.png"}, "questions[0].image"),
        ({"image": A.upper()}, "questions[0].image"),
        ({"image": 12}, "questions[0].image"),
        ({"choice_images": [A, B]}, "questions[0].choice_images"),
        ({"choice_images": A}, "questions[0].choice_images"),
        ({"choice_images": [A, "x", None]}, "questions[0].choice_images[1]"),
    ],
)
def test_a_bad_image_reference_names_its_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_quiz(document(question(**extra)))
    assert refused.value.field == field


def test_ids_in_play_order_without_repeats_and_renamed_on_import() -> None:
    quiz = parse_quiz(document(question(image=A), question(image=B, choice_images=[A, C, None])))
    assert quiz_image_ids(quiz) == [A, B, C]
    renamed = with_image_ids(quiz, {A: C, B: A})
    assert renamed.questions[0].image == C and renamed.questions[1].choice_images == (C, C, None)
    assert renamed.questions[1].image == A and renamed.questions[1].text == quiz.questions[1].text


def room(quiz_doc: dict[str, Any]) -> tuple[RoomState, Player]:
    state = RoomState(room_id="r", pin="123456", quiz=parse_quiz(quiz_doc), host_token_hash="h", limits=RoomLimits())
    player = Player(player_id="p", nickname="Ann", nickname_key="ann", token_hash="t", joined_at_ms=0)
    state.add_player(player)
    return state, player


def test_messages_carry_image_urls_and_the_get_ready_lists_what_to_preload() -> None:
    state, player = room(document(question(image=A, choice_images=[B, None, B]), question()))
    state.start(0.0, 1_000)
    sent = messages.question_message(state, state.quiz.questions[0], 1, 1_000, with_correct=False)
    assert sent["image"] == f"/api/images/{A}"
    assert sent["choice_images"] == [f"/api/images/{B}", None, f"/api/images/{B}"]
    ready = messages.get_ready(state, 0, 3_000, 1_000)
    assert ready["image"] == f"/api/images/{A}"
    assert ready["images"] == [f"/api/images/{A}", f"/api/images/{B}"]
    assert "choices" not in ready
    welcome = messages.welcome_message(state, player, 1_000)
    assert welcome["images"] == [f"/api/images/{A}", f"/api/images/{B}"]
    assert welcome["question"]["image"] == f"/api/images/{A}"
    plain = messages.question_message(state, state.quiz.questions[1], 2, 1_000, with_correct=False)
    assert "image" not in plain and "choice_images" not in plain
    assert "images" not in messages.get_ready(state, 1, 3_000, 1_000)


def test_a_quiz_without_images_sends_nothing_new() -> None:
    state, player = room(document(question()))
    assert "images" not in messages.welcome_message(state, player, 1_000)


def test_a_room_of_a_quiz_with_images_gets_a_get_ready_pause_unless_its_creator_chose() -> None:
    pictured = parse_quiz(document(question(image=A)))
    plain = parse_quiz(document(question()))
    assert image_intro(RoomOptions(), pictured, explicit=False).intro_ms == IMAGE_INTRO_MS
    assert image_intro(RoomOptions(), pictured, explicit=True).intro_ms == 0
    assert image_intro(RoomOptions(intro_ms=5_000), pictured, explicit=False).intro_ms == 5_000
    assert image_intro(RoomOptions(), plain, explicit=False).intro_ms == 0


def test_a_welcome_lists_the_pictures_ahead_and_no_more_than_its_cap() -> None:
    ids = [f"{i:064x}" for i in range(200)]
    many = document(*(question(image=ids[i]) for i in range(60)))
    state, player = room(many)
    listed = messages.welcome_message(state, player, 1_000)["images"]
    assert listed == [f"/api/images/{i}" for i in ids[:WELCOME_IMAGES]]
    state.start(0.0, 1_000)
    state.question_index = 30  # a player who reconnects at question 30 loads from there on
    assert messages.welcome_message(state, player, 1_000)["images"][0] == f"/api/images/{ids[30]}"


def test_the_pictures_ahead_are_computed_once_per_quiz_and_never_mixed_up_between_quizzes() -> None:
    first = parse_quiz(document(question(image=A), question(image=B), question()))
    second = parse_quiz(document(question(image=C), question(image=A)))
    for _ in range(2):  # computed, then from the cache
        assert upcoming_image_urls(first, 0) == [f"/api/images/{A}", f"/api/images/{B}"]
        assert upcoming_image_urls(first, 1) == [f"/api/images/{B}"]
        assert upcoming_image_urls(first, 2) == [] == upcoming_image_urls(first, 3)
        assert upcoming_image_urls(second, 0) == [f"/api/images/{C}", f"/api/images/{A}"]
    listed = upcoming_image_urls(first, 0)
    listed.append("changed by a caller")
    assert upcoming_image_urls(first, 0) == [f"/api/images/{A}", f"/api/images/{B}"], "callers get their own list"
