"""A quiz with its images as one zip file (docs/protocol.md, *Images*): `quiz.json` and `images/<image_id>.<ext>`.

Writing is plain. Reading takes untrusted zips, so every bound is checked on the central directory before anything
is inflated (entries, the declared size of each and of all), and each entry is read with a cap at its declared
size, so an entry that inflates to more than it declares is refused rather than believed. Only the entries the
quiz names are read at all. The images still go through the upload pipeline (`quizroom.server.imaging`) after
this: an archive's bytes are never served as they came.
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from quizroom.rooms.game.errors import InvalidInput, QuizroomError, TooBig
from quizroom.rooms.game.images import quiz_image_ids
from quizroom.rooms.game.quiz import CHOICES_MAX, QUESTIONS_MAX, Quiz, parse_quiz
from quizroom.storage.records import ImageRow

QUIZ_ENTRY = "quiz.json"
IMAGE_ENTRY = re.compile(r"images/([0-9a-f]{64})\.([a-z0-9]{1,5})")
MAX_ENTRIES = 1 + QUESTIONS_MAX * (1 + CHOICES_MAX) + 64  # every image a quiz can name, and a little junk
EXTENSION = {"image/webp": "webp", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}


class BadArchive(QuizroomError):
    """Not a zip, or a zip that is not a quiz archive (no `quiz.json`, an entry that does not read)."""

    code = "bad_archive"
    status = 422


@dataclass(frozen=True, slots=True)
class ArchivedImage:
    name: str  # the entry's name: its extension is the declared type the pipeline checks
    data: bytes


@dataclass(frozen=True, slots=True)
class Archive:
    quiz: Quiz  # as `quiz.json` says, with the archive's image ids
    images: dict[str, ArchivedImage]  # by the id in the entry's name, for the images the quiz names


def archive_name(image: ImageRow) -> str:
    return f"images/{image.image_id}.{EXTENSION.get(image.content_type, 'bin')}"


def write_archive(quiz: Quiz, images: Iterable[ImageRow]) -> bytes:
    """The zip: `quiz.json` deflated, the images stored as they are (WebP does not deflate)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(QUIZ_ENTRY, orjson.dumps(quiz.to_json(), option=orjson.OPT_INDENT_2), zipfile.ZIP_DEFLATED)
        for image in images:
            archive.writestr(archive_name(image), image.data, zipfile.ZIP_STORED)
    return out.getvalue()


def with_image_ids(quiz: Quiz, renamed: Mapping[str, str]) -> Quiz:
    """The quiz with its image ids replaced through `renamed` (ids it lacks stay): an archive's images get new ids
    when they are re-encoded on import."""

    def rename(image: str | None) -> str | None:
        return None if image is None else renamed.get(image, image)

    questions = tuple(
        dataclasses.replace(q, image=rename(q.image), choice_images=tuple(rename(i) for i in q.choice_images))
        for q in quiz.questions
    )
    return dataclasses.replace(quiz, questions=questions)


def read_archive(body: bytes, *, max_quiz_bytes: int, max_image_bytes: int, max_total_bytes: int) -> Archive:
    """The quiz and the images it names; `BadArchive`, `TooBig` or the quiz's `InvalidInput` otherwise."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise BadArchive("the body is not a zip archive") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise BadArchive(f"an archive may have at most {MAX_ENTRIES} entries")
        if sum(entry.file_size for entry in entries) > max_total_bytes:
            raise TooBig(f"the archive's files must add up to at most {max_total_bytes} bytes")
        by_name = {entry.filename: entry for entry in entries}
        if QUIZ_ENTRY not in by_name:
            raise BadArchive(f"the archive has no {QUIZ_ENTRY}")
        try:
            document = orjson.loads(_read(archive, by_name[QUIZ_ENTRY], max_quiz_bytes))
        except orjson.JSONDecodeError as exc:
            raise InvalidInput("", f"{QUIZ_ENTRY} is not JSON") from exc
        quiz = parse_quiz(document)
        named = {match.group(1): entry for entry in entries if (match := IMAGE_ENTRY.fullmatch(entry.filename))}
        images = {
            image_id: ArchivedImage(named[image_id].filename, _read(archive, named[image_id], max_image_bytes))
            for image_id in quiz_image_ids(quiz)
            if image_id in named
        }
    return Archive(quiz, images)


def _read(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int) -> bytes:
    if entry.file_size > limit:
        raise TooBig(f"{entry.filename} must be at most {limit} bytes")
    try:
        with archive.open(entry) as stream:
            data = stream.read(entry.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, ValueError, OSError, EOFError) as exc:
        raise BadArchive(f"{entry.filename} does not read: {exc}") from exc
    if len(data) > entry.file_size:
        raise BadArchive(f"{entry.filename} inflates to more than the size it declares")
    return data
