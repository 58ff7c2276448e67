"""The quiz library over HTTP (docs/protocol.md, "Quiz library" and "Quiz import and export"): saved quizzes listed,
read, replaced, copied and deleted, and quizzes exported to and imported from files.

Every call here needs the admin token when the server has one (`require_admin`); without one the server is open,
as it is for creating quizzes and rooms, so anyone who can reach it can list the library. A save stores a new
immutable version of the quiz (`quizroom.storage.base.Storage`, "The quiz library"): rooms keep the version they
were opened with. Saves, copies and imports spend the client address's creation tokens, like creating a quiz.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quizroom.rooms.game.errors import BadFile, InvalidInput, NotFound
from quizroom.rooms.game.quiz import TITLE_MAX, Quiz, parse_quiz
from quizroom.server.http_api import Handler, limits_of, metered, now_ms, require_admin, runtime_of
from quizroom.server.imagestore import check_quiz_images
from quizroom.server.paging import LIBRARY_PAGE, LIBRARY_PAGE_MAX, page_window, paging
from quizroom.server.quiz_import import FILENAME_MAX, export_document, import_rows, import_title, quiz_from_json
from quizroom.server.quiz_sheets import csv_rows, detect_format, xlsx_rows
from quizroom.server.requests import parse_json, read_body, read_json
from quizroom.server.responses import json_response
from quizroom.storage.records import LibraryRow, QuizRow

COPY_SUFFIX = " (copy)"


def summary(row: LibraryRow) -> dict[str, Any]:
    """A library entry as the list shows it."""
    return {
        "quiz_id": row.quiz_id,
        "title": row.title,
        "question_count": row.question_count,
        "created_at_ms": row.created_at_ms,
        "updated_at_ms": row.updated_at_ms,
        "version": row.version,
    }


def version_of(quiz: Quiz) -> QuizRow:
    """A new, immutable version of a quiz, ready to store."""
    return QuizRow(uuid.uuid4().hex, quiz.title, orjson.dumps(quiz.to_json()).decode(), now_ms())


async def saved(request: Request) -> tuple[LibraryRow, dict[str, Any]]:
    """The entry named by the path and its current version's document (admin-checked), or 404."""
    require_admin(request)
    found = await runtime_of(request).storage.library_entry(request.path_params["quiz_id"])
    if found is None:
        raise NotFound("no such quiz")
    row, document = found
    body: dict[str, Any] = orjson.loads(document.body)
    return row, body


async def save_new(request: Request, quiz: Quiz) -> LibraryRow:
    """Save a quiz in the library; one that names an image this server does not have is refused (422)."""
    await check_quiz_images(runtime_of(request).storage, quiz)
    return await runtime_of(request).storage.add_to_library(version_of(quiz), len(quiz.questions))


def spend_creation(request: Request) -> None:
    require_admin(request)
    metered(limits_of(request).creations, request, "quizzes and rooms created", "creations")


# --- the library ---------------------------------------------------------------------------------------------


async def list_quizzes(request: Request) -> Response:
    require_admin(request)
    search = request.query_params.get("q", "")
    if len(search) > TITLE_MAX:
        raise InvalidInput("q", f"must be at most {TITLE_MAX} characters")
    offset, limit = page_window(request.query_params, LIBRARY_PAGE, LIBRARY_PAGE_MAX)
    page = await runtime_of(request).storage.list_library(search.strip(), offset, limit)
    return json_response(
        {"quizzes": [summary(row) for row in page.rows], "paging": paging(offset, limit, len(page.rows), page.total)}
    )


async def create_quiz(request: Request) -> Response:
    spend_creation(request)
    quiz = parse_quiz(await read_json(request, runtime_of(request).settings.max_body_bytes))
    return json_response(summary(await save_new(request, quiz)), status=201)


async def get_quiz(request: Request) -> Response:
    row, body = await saved(request)
    meta = summary(row)
    del meta["title"], meta["question_count"]  # the document's own
    return json_response({**body, **meta})


async def replace_quiz(request: Request) -> Response:
    spend_creation(request)
    quiz = parse_quiz(await read_json(request, runtime_of(request).settings.max_body_bytes))
    await check_quiz_images(runtime_of(request).storage, quiz)
    row = await runtime_of(request).storage.replace_in_library(
        request.path_params["quiz_id"], version_of(quiz), len(quiz.questions)
    )
    if row is None:
        raise NotFound("no such quiz")
    return json_response(summary(row))


async def delete_quiz(request: Request) -> Response:
    require_admin(request)
    if not await runtime_of(request).storage.remove_from_library(request.path_params["quiz_id"]):
        raise NotFound("no such quiz")
    return Response(status_code=204)


def copy_title(title: str) -> str:
    """`title (copy)`, the title cut first where both would not fit in SPEC's 200 characters."""
    return title[: TITLE_MAX - len(COPY_SUFFIX)].rstrip() + COPY_SUFFIX


async def copy_quiz(request: Request) -> Response:
    spend_creation(request)
    _, body = await saved(request)
    quiz = parse_quiz({**body, "title": copy_title(str(body.get("title", "")))})
    return json_response(summary(await save_new(request, quiz)), status=201)


# --- files ---------------------------------------------------------------------------------------------------


def attachment(title: str, extension: str) -> str:
    """A `Content-Disposition` for a download named after the quiz: an ASCII name for every client, and the title
    itself (RFC 6266 `filename*`) for those that read it."""
    ascii_name = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").lower()[:60] or "quiz"
    return f"attachment; filename=\"{slug}.{extension}\"; filename*=UTF-8''{quote(title[:100], safe='')}.{extension}"


async def export_quiz(request: Request) -> Response:
    _, body = await saved(request)
    return Response(
        orjson.dumps(export_document(body), option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={"content-disposition": attachment(str(body.get("title", "")), "json")},
    )


def read_quiz_file(fmt: str, body: bytes, title: str | None, filename: str) -> tuple[Quiz, list[dict[str, Any]]]:
    """The quiz in an imported file and the refused rows; CPU-bound for spreadsheets, so it runs in a thread."""
    if fmt == "json":
        try:
            document = parse_json(body)
        except InvalidInput as exc:
            raise BadFile("the file is not valid JSON") from exc
        quiz = quiz_from_json(document)
        return parse_quiz({**quiz.to_json(), "title": import_title(title, quiz.title, "")}), []
    imported = import_rows(csv_rows(body) if fmt == "csv" else xlsx_rows(body))
    quiz = Quiz(import_title(title, imported.title, filename), imported.questions)
    return parse_quiz(quiz.to_json()), [refusal.to_json() for refusal in imported.refused]


async def import_quiz(request: Request) -> Response:
    spend_creation(request)
    params = request.query_params
    filename = params.get("filename", "")
    if len(filename) > FILENAME_MAX:
        raise InvalidInput("filename", f"must be at most {FILENAME_MAX} characters")
    title = params.get("title")
    if title is not None:
        title = import_title(title, "", "")  # a bad ?title= is refused before the file is read
    body = await read_body(request, runtime_of(request).settings.max_body_bytes)
    fmt = detect_format(body, request.headers.get("content-type", ""), filename, params.get("format"))
    quiz, refused = await asyncio.to_thread(read_quiz_file, fmt, body, title, filename)
    row = await save_new(request, quiz)
    return json_response({**summary(row), "imported": len(quiz.questions), "refused": refused}, status=201)


def by_method(**handlers: Handler) -> Handler:
    """One route's handlers by HTTP method, so a method it does not take is one 405 naming all of them."""

    async def dispatch(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    return dispatch


def library_routes() -> list[Route]:
    return [
        Route("/api/quizzes", by_method(GET=list_quizzes, POST=create_quiz), methods=["GET", "POST"]),
        Route("/api/quizzes/import", import_quiz, methods=["POST"]),
        Route(
            "/api/quizzes/{quiz_id}",
            by_method(GET=get_quiz, PUT=replace_quiz, DELETE=delete_quiz),
            methods=["GET", "PUT", "DELETE"],
        ),
        Route("/api/quizzes/{quiz_id}/copy", copy_quiz, methods=["POST"]),
        Route("/api/quizzes/{quiz_id}/export", export_quiz, methods=["GET"]),
    ]
