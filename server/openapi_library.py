"""The OpenAPI description of the quiz library and quiz files (docs/protocol.md, "Quiz library", "Quiz import and
export"): the paths under `/api/quizzes` and their schemas, merged into `quizroom.server.openapi`'s document."""

from __future__ import annotations

from quizroom.rooms.game.quiz import TITLE_MAX
from quizroom.server.openapi_parts import ADMIN, COUNT, JSON, Schema, error, json_body, obj, ref
from quizroom.server.paging import LIBRARY_PAGE, LIBRARY_PAGE_MAX
from quizroom.server.quiz_import import FILENAME_MAX, FORMAT, FORMAT_VERSION
from quizroom.server.quiz_sheets import FORMATS
from quizroom.server.spreadsheet import XLSX_MEDIA_TYPE

MS = {"type": "integer", "minimum": 0, "description": "epoch ms"}
SUMMARY_FIELDS: dict[str, Schema] = {
    "quiz_id": {"type": "string", "description": "stable across edits"},
    "title": {"type": "string"},
    "question_count": COUNT,
    "created_at_ms": MS,
    "updated_at_ms": MS,
    "version": {"type": "integer", "minimum": 1, "description": "1 when saved, one more at each replacement"},
}
REFUSED_ROW = obj(
    {
        "row": {"type": "integer", "minimum": 1, "description": "the row's number in the file, from 1"},
        "reason": {"type": "string"},
    }
)

LIBRARY_SCHEMAS: dict[str, Schema] = {
    "QuizSummary": obj(SUMMARY_FIELDS),
    "StoredQuiz": {
        "allOf": [
            ref("Quiz"),
            obj({k: v for k, v in SUMMARY_FIELDS.items() if k not in ("title", "question_count")}),
        ]
    },
    "QuizFile": {
        "allOf": [
            ref("Quiz"),
            obj(
                {
                    "format": {"type": "string", "const": FORMAT},
                    "format_version": {"type": "integer", "minimum": 1, "maximum": FORMAT_VERSION},
                }
            ),
        ],
        "description": "our quiz file: the quiz document, marked (still a valid body for `POST /api/quizzes`)",
    },
    "RefusedRow": REFUSED_ROW,
    "ImportResult": obj(
        {
            **SUMMARY_FIELDS,
            "imported": {**COUNT, "description": "questions imported"},
            "refused": {"type": "array", "items": ref("RefusedRow")},
        }
    ),
}

QUIZ_ID = {"name": "quiz_id", "in": "path", "required": True, "schema": {"type": "string"}}
PAGING = obj(
    {
        "offset": COUNT,
        "limit": {"type": "integer", "minimum": 1},
        "total": {**COUNT, "description": "entries the search matches"},
        "next_offset": {"type": ["integer", "null"], "description": "the next page's offset; null: last page"},
    }
)
QUIZ_BODY = {"required": True, "content": {JSON: {"schema": ref("Quiz")}}}


def query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def library_paths() -> Schema:
    unauthorized = error("an admin token is configured and was not given")
    unavailable = error("storage is unavailable; nothing was done, retry")
    missing = error("no such quiz in the library")
    invalid = error("`invalid`, with `field` naming the first offending field")
    return {
        "/api/quizzes": {
            "get": {
                "operationId": "list_quizzes",
                "summary": "Extension: the library, newest-edited first",
                "tags": ["quizzes"],
                "security": ADMIN,
                "parameters": [
                    query("q", {"type": "string", "maxLength": TITLE_MAX}, "only titles containing this (any case)"),
                    query("offset", {"type": "integer", "minimum": 0, "maximum": 1 << 31}, "the page's first entry"),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": LIBRARY_PAGE_MAX, "default": LIBRARY_PAGE},
                        "entries per page",
                    ),
                ],
                "responses": {
                    "200": json_body(
                        obj({"quizzes": {"type": "array", "items": ref("QuizSummary")}, "paging": PAGING}),
                        "a page of the library",
                    ),
                    "401": unauthorized,
                    "422": error("`invalid`: `q`, `offset` or `limit` out of range"),
                    "503": unavailable,
                },
            },
            "post": {
                "operationId": "create_quiz",
                "summary": "Store a quiz (in the library)",
                "tags": ["quizzes"],
                "security": ADMIN,
                "requestBody": QUIZ_BODY,
                "responses": {
                    "201": json_body(ref("QuizSummary"), "stored; SPEC's `quiz_id`, and the entry's summary"),
                    "401": unauthorized,
                    "422": invalid,
                    "503": unavailable,
                },
            },
        },
        "/api/quizzes/import": {
            "post": {
                "operationId": "import_quiz",
                "summary": "Extension: a quiz from our JSON file, or from a CSV or XLSX sheet in Kahoot's template",
                "tags": ["quizzes"],
                "security": ADMIN,
                "parameters": [
                    query(
                        "format",
                        {"type": "string", "enum": list(FORMATS)},
                        "the file's format; without it: a zip is XLSX, else the content type, the file name's "
                        "extension, then `{` first is JSON, anything else CSV",
                    ),
                    query(
                        "title",
                        {"type": "string", "minLength": 1, "maxLength": TITLE_MAX, "pattern": r"\S"},
                        "the quiz's title (else the file's title, its name, or 'Imported quiz')",
                    ),
                    query("filename", {"type": "string", "maxLength": FILENAME_MAX}, "the uploaded file's name"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": {"oneOf": [ref("QuizFile"), ref("Quiz")]}},
                        "text/csv": {"schema": {"type": "string"}},
                        XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "201": json_body(ref("ImportResult"), "imported: the questions, and every row refused"),
                    "401": unauthorized,
                    "422": error(
                        "`bad_file` (the file cannot be read), `nothing_imported` (with `refused`: no row made a "
                        "question), or `invalid` with `field` (a JSON quiz's field, `format`, `title`, `filename`)"
                    ),
                    "503": unavailable,
                },
            }
        },
        "/api/quizzes/{quiz_id}": {
            "get": {
                "operationId": "get_quiz",
                "summary": "Read a stored quiz (its current version)",
                "tags": ["quizzes"],
                "security": ADMIN,
                "parameters": [QUIZ_ID],
                "responses": {
                    "200": json_body(ref("StoredQuiz"), "the quiz"),
                    "401": unauthorized,
                    "404": missing,
                    "503": unavailable,
                },
            },
            "put": {
                "operationId": "replace_quiz",
                "summary": "Extension: replace a saved quiz (its next version; rooms keep theirs)",
                "tags": ["quizzes"],
                "security": ADMIN,
                "parameters": [QUIZ_ID],
                "requestBody": QUIZ_BODY,
                "responses": {
                    "200": json_body(ref("QuizSummary"), "replaced"),
                    "401": unauthorized,
                    "404": missing,
                    "422": invalid,
                    "503": unavailable,
                },
            },
            "delete": {
                "operationId": "delete_quiz",
                "summary": "Extension: remove a quiz from the library (rooms opened from it keep working)",
                "tags": ["quizzes"],
                "security": ADMIN,
                "parameters": [QUIZ_ID],
                "responses": {
                    "204": {"description": "removed"},
                    "401": unauthorized,
                    "404": missing,
                    "503": unavailable,
                },
            },
        },
        "/api/quizzes/{quiz_id}/copy": {
            "post": {
                "operationId": "copy_quiz",
                "summary": "Extension: a new saved quiz, a copy titled '… (copy)'",
                "tags": ["quizzes"],
                "security": ADMIN,
                "parameters": [QUIZ_ID],
                "responses": {
                    "201": json_body(ref("QuizSummary"), "the copy"),
                    "401": unauthorized,
                    "404": missing,
                    "503": unavailable,
                },
            }
        },
        "/api/quizzes/{quiz_id}/export": {
            "get": {
                "operationId": "export_quiz",
                "summary": "Extension: a saved quiz as our JSON file (a download)",
                "tags": ["quizzes"],
                "security": ADMIN,
                "parameters": [QUIZ_ID],
                "responses": {
                    "200": {
                        **json_body(ref("QuizFile"), "the file"),
                        "headers": {
                            "Content-Disposition": {
                                "description": "attachment, named after the quiz's title",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "401": unauthorized,
                    "404": missing,
                    "503": unavailable,
                },
            }
        },
    }
