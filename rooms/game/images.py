"""Images in a quiz (docs/protocol.md, *Images*): a question may carry one image and its choices may be images.

In a quiz document an image is its id, the SHA-256 (hex) of the bytes the server serves; the upload pipeline made
them and the server checks that every id a quiz names is stored. On the sockets an image is a URL path on the
server (`/api/images/<id>`), which a page uses as it is. The choices' texts stay required (SPEC §1): for an image
choice they are its alternative text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from quizroom.rooms.game.errors import InvalidInput
from quizroom.rooms.game.options import RoomOptions

IMAGE_ID = re.compile(r"[0-9a-f]{64}")
IMAGE_PATH = "/api/images/"


class Question(Protocol):
    """What this module reads of a question (`quizroom.rooms.game.quiz.Question`, which imports this module)."""

    @property
    def image(self) -> str | None: ...

    @property
    def choice_images(self) -> tuple[str | None, ...]: ...


class Quiz(Protocol):
    @property
    def questions(self) -> Sequence[Question]: ...


def image_url(image_id: str) -> str:
    """Where the server serves an image: a path, resolved against the server's base URL (the page's origin)."""
    return f"{IMAGE_PATH}{image_id}"


def _image_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not IMAGE_ID.fullmatch(value):
        raise InvalidInput(field, "must be an image id (64 hex digits, from POST /api/images)")
    return value


def parse_images(obj: Mapping[str, Any], field: str, choices: int) -> tuple[str | None, tuple[str | None, ...]]:
    """A question's optional `image` (an image id) and `choice_images` (a list parallel to its `choices`, each an
    image id or null). Without images, `(None, ())`; a list of nulls only is the same as none."""
    raw = obj.get("image")
    image = None if raw is None else _image_id(raw, f"{field}.image")
    raw_choices = obj.get("choice_images")
    if raw_choices is None:
        return image, ()
    if not isinstance(raw_choices, list) or len(raw_choices) != choices:
        raise InvalidInput(f"{field}.choice_images", f"must be a list of {choices} image ids or nulls, one per choice")
    choice_images = tuple(
        None if value is None else _image_id(value, f"{field}.choice_images[{i}]")
        for i, value in enumerate(raw_choices)
    )
    return image, choice_images if any(choice_images) else ()


def images_json(question: Question) -> dict[str, Any]:
    """The image fields of a question's document: present only when it has images, so text-only quizzes stay as
    they were."""
    fields: dict[str, Any] = {}
    if question.image is not None:
        fields["image"] = question.image
    if question.choice_images:
        fields["choice_images"] = list(question.choice_images)
    return fields


def question_image_refs(quiz: Quiz) -> Iterator[tuple[str, str]]:
    """(field path, image id) of every image a quiz names, in order: `questions[i].image`,
    `questions[i].choice_images[j]`."""
    for i, question in enumerate(quiz.questions):
        if question.image is not None:
            yield f"questions[{i}].image", question.image
        for j, image in enumerate(question.choice_images):
            if image is not None:
                yield f"questions[{i}].choice_images[{j}]", image


def quiz_image_ids(quiz: Quiz) -> list[str]:
    """Every distinct image id of a quiz, in the order the game shows them."""
    return list(dict.fromkeys(image for _, image in question_image_refs(quiz)))


WELCOME_IMAGES = 48
"""At most this many image URLs in a welcome (about 4 KB): a 200-question quiz of picture answers names 1,400,
which no phone should fetch at once and no welcome to ten thousand players should carry. The pause before each
question lists that question's pictures anyway."""


#: Quizzes whose `upcoming_image_urls` are computed, by `id` (the quiz itself kept beside, so an id reused by
#: another quiz is never mistaken for it); at most `UPCOMING_CACHE`, the oldest dropped first.
_upcoming: dict[int, tuple[Quiz, tuple[tuple[str, ...], ...]]] = {}
UPCOMING_CACHE = 256


def upcoming_image_urls(quiz: Quiz, first: int) -> list[str]:
    """The URLs of the pictures of questions `first` onwards, in play order, without repeats, at most
    `WELCOME_IMAGES`: what a (re)connecting page loads ahead.

    Every welcome asks, so the answer for each question of a quiz is computed once (a walk of the remaining
    questions took 26 µs per welcome for a 50-question quiz; a join storm is made of welcomes)."""
    entry = _upcoming.get(id(quiz))
    if entry is None or entry[0] is not quiz:
        if len(_upcoming) >= UPCOMING_CACHE:
            del _upcoming[next(iter(_upcoming))]
        entry = _upcoming[id(quiz)] = (quiz, tuple(tuple(_walk(quiz, i)) for i in range(len(quiz.questions) + 1)))
    table = entry[1]
    return list(table[min(max(first, 0), len(table) - 1)])


def _walk(quiz: Quiz, first: int) -> list[str]:
    urls: dict[str, None] = {}
    for question in quiz.questions[first:]:
        for url in question_image_urls(question):
            urls.setdefault(url)
            if len(urls) == WELCOME_IMAGES:
                return list(urls)
    return list(urls)


def question_image_urls(question: Question) -> list[str]:
    """The URLs a question shows (its image, then its choices'), without repeats: what a page preloads."""
    ids = [question.image, *question.choice_images]
    return [image_url(i) for i in dict.fromkeys(i for i in ids if i is not None)]


def message_images(question: Question) -> dict[str, Any]:
    """The image fields of a `question` message: `image` (a URL) and `choice_images` (URLs or nulls, parallel to
    `choices`), each only when the question has it."""
    fields: dict[str, Any] = {}
    if question.image is not None:
        fields["image"] = image_url(question.image)
    if question.choice_images:
        fields["choice_images"] = [None if i is None else image_url(i) for i in question.choice_images]
    return fields


def ready_images(question: Question) -> dict[str, Any]:
    """The image fields of a `get_ready`: the question's `image` (shown during the pause) and `images`, every URL
    the question will show, for the page to load and decode before it opens."""
    urls = question_image_urls(question)
    if not urls:
        return {}
    fields: dict[str, Any] = {"images": urls}
    if question.image is not None:
        fields["image"] = image_url(question.image)
    return fields


IMAGE_INTRO_MS = 3_000
"""The "get ready" pause of a room whose quiz has images when its creator gave no `intro_ms`: the pause is when the
phones load the question's images (`get_ready.images`), so that nobody's time runs while a picture loads."""


def image_intro(options: RoomOptions, quiz: Quiz, *, explicit: bool) -> RoomOptions:
    """`options` with at least `IMAGE_INTRO_MS` of pause when the quiz has images and `intro_ms` was not given."""
    if explicit or options.intro_ms >= IMAGE_INTRO_MS or not any(question_image_refs(quiz)):
        return options
    return dataclasses.replace(options, intro_ms=IMAGE_INTRO_MS)
