"""The HTTP API of quiz images (docs/protocol.md, *Images*): upload, serving, and a quiz's archive with its images.

- `POST /api/images`: an upload (multipart field `image`, or a raw `image/*` body), admin token where one is set,
  metered per address; 201 with the image's id and URL.
- `GET /api/images/{image_id}` (and HEAD): public, since players' phones load them; immutable, so a phone fetches
  an image once, and `ETag`/`If-None-Match` answer a revalidation with 304.
- `GET /api/quizzes/{quiz_id}/archive` → a zip of `quiz.json` and `images/<image_id>.webp`;
  `POST /api/quizzes/archive` (the zip as the body) stores the quiz and its images again → 201 `{quiz_id}`.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quizroom.rooms.game.errors import NotFound, QuizroomError, TooBig
from quizroom.rooms.game.images import IMAGE_ID, image_url, quiz_image_ids
from quizroom.rooms.game.quiz import parse_quiz
from quizroom.server.archives import read_archive, with_image_ids, write_archive
from quizroom.server.http_api import limits_of, metered, require_admin, runtime_of
from quizroom.server.imagestore import ImageDesk, check_quiz_images
from quizroom.server.imaging import Declared, ImageRefused
from quizroom.server.library import version_of
from quizroom.server.requests import read_body
from quizroom.server.responses import json_response
from quizroom.server.uploads import read_upload
from quizroom.storage.records import ImageRow

IMMUTABLE = "public, max-age=31536000, immutable"  # an id names one content forever: it never needs asking again
ARCHIVE_TYPE = "application/zip"


def desk_of(request: Request) -> ImageDesk:
    desk: ImageDesk = request.app.state.images
    return desk


def image_json(row: ImageRow) -> dict[str, object]:
    return {
        "image_id": row.image_id,
        "url": image_url(row.image_id),
        "width": row.width,
        "height": row.height,
        "content_type": row.content_type,
        "bytes": len(row.data),
    }


async def upload_image(request: Request) -> Response:
    require_admin(request)
    metered(limits_of(request).uploads, request, "images uploaded", "uploads")
    desk = desk_of(request)
    upload = await read_upload(request, desk.max_bytes)
    row = await desk.store(runtime_of(request).storage, upload.data, upload.declared)
    return json_response(image_json(row), status=201, headers={"location": image_url(row.image_id)})


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: a weak comparison against any of the listed tags, or `*`."""
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)


async def serve_image(request: Request) -> Response:
    image_id = request.path_params["image_id"]
    if not IMAGE_ID.fullmatch(image_id):
        raise NotFound("no such image")
    row = await desk_of(request).fetch(runtime_of(request).storage, image_id)
    if row is None:
        raise NotFound("no such image")
    etag = f'"{image_id}"'
    headers = {"cache-control": IMMUTABLE, "etag": etag, "x-content-type-options": "nosniff"}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return Response(row.data, media_type=row.content_type, headers=headers)


async def export_archive(request: Request) -> Response:
    require_admin(request)
    runtime = runtime_of(request)
    saved = await runtime.storage.library_entry(request.path_params["quiz_id"])
    if saved is None:
        raise NotFound("no such quiz")
    entry, row = saved  # the library's entry and its current version
    quiz = parse_quiz(orjson.loads(row.body))
    desk = desk_of(request)
    images = []
    for image_id in quiz_image_ids(quiz):
        image = await desk.fetch(runtime.storage, image_id)
        if image is not None:  # a stored quiz names stored images; images are never deleted
            images.append(image)
    data = await asyncio.to_thread(write_archive, quiz, images)
    return Response(
        data,
        media_type=ARCHIVE_TYPE,
        headers={"content-disposition": f'attachment; filename="quizroom-quiz-{entry.quiz_id}.zip"'},
    )


async def import_archive(request: Request) -> Response:
    require_admin(request)
    metered(limits_of(request).creations, request, "quizzes and rooms created", "creations")
    runtime = runtime_of(request)
    settings = runtime.settings
    desk = desk_of(request)
    body = await read_body(request, settings.max_archive_bytes)
    archive = await asyncio.to_thread(
        read_archive,
        body,
        max_quiz_bytes=settings.max_body_bytes,
        max_image_bytes=desk.max_bytes,
        max_total_bytes=2 * settings.max_archive_bytes,
    )
    renamed: dict[str, str] = {}
    for old_id, entry in archive.images.items():
        try:
            stored = await desk.store(runtime.storage, entry.data, Declared(filename=entry.name))
        except (ImageRefused, TooBig) as exc:
            raise _about(exc, entry.name) from exc
        renamed[old_id] = stored.image_id
    quiz = with_image_ids(archive.quiz, renamed)
    await check_quiz_images(runtime.storage, quiz)
    saved_row = await runtime.storage.add_to_library(version_of(quiz), len(quiz.questions))  # listed, like an import
    return json_response({"quiz_id": saved_row.quiz_id, "images": len(renamed)}, status=201)


def _about(exc: QuizroomError, name: str) -> QuizroomError:
    """The same refusal, naming the archive's entry it is about."""
    refusal = type(exc)(f"{name}: {exc.message}")
    return refusal


def image_routes() -> list[Route]:
    return [
        Route("/api/images", upload_image, methods=["POST"]),
        Route("/api/images/{image_id}", serve_image, methods=["GET"]),  # HEAD too
        Route("/api/quizzes/archive", import_archive, methods=["POST"]),
        Route("/api/quizzes/{quiz_id}/archive", export_archive, methods=["GET"]),
    ]
