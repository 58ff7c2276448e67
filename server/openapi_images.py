"""The OpenAPI entries of quiz images (server/image_api.py, docs/protocol.md "Images"), merged into the document by
`quizroom.server.openapi`: the question's image fields, the image record, and the four operations."""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.quiz import CHOICES_MAX, CHOICES_MIN

Schema = dict[str, Any]
JSON = "application/json"
BINARY: Schema = {"type": "string", "format": "binary"}
IMAGE_ID: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "an image's id (POST /api/images)"}
UPLOAD_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


QUESTION_IMAGE_FIELDS: dict[str, Schema] = {
    "image": {**IMAGE_ID, "description": "extension: the question's image (an image id from POST /api/images)"},
    "choice_images": {
        "type": "array",
        "items": {"oneOf": [IMAGE_ID, {"type": "null"}]},
        "minItems": CHOICES_MIN,
        "maxItems": CHOICES_MAX,
        "description": "extension: image answers, one entry per choice (an image id or null); the choices' texts "
        "stay and are the images' alternative text",
    },
}

IMAGE: Schema = {
    "type": "object",
    "properties": {
        "image_id": IMAGE_ID,
        "url": {"type": "string", "description": "where it is served: /api/images/{image_id}"},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "content_type": {"type": "string", "enum": ["image/webp"]},
        "bytes": {"type": "integer", "minimum": 1},
    },
    "required": ["image_id", "url", "width", "height", "content_type", "bytes"],
}

SERVED_HEADERS: Schema = {
    "Cache-Control": {"schema": {"type": "string"}, "description": "public, max-age=31536000, immutable"},
    "ETag": {"schema": {"type": "string"}, "description": 'the image id in quotes: "<image_id>"'},
    "X-Content-Type-Options": {"schema": {"type": "string"}, "description": "nosniff"},
}


def image_paths(admin: list[dict[str, list[str]]]) -> Schema:
    unauthorized = _error("an admin token is configured and was not given")
    unavailable = _error("storage is unavailable; nothing was done, retry")
    quiz_id = {"name": "quiz_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/api/images": {
            "post": {
                "operationId": "upload_image",
                "summary": "Extension: upload an image for a quiz (checked from its bytes, cleaned, re-encoded)",
                "description": "PNG, JPEG, GIF (first frame) or WebP, as multipart/form-data with the file in the "
                "field `image`, or as the body with its image type. EXIF orientation is applied, metadata is "
                "stripped, the longest side is at most 1600 px, and the result is WebP.",
                "tags": ["images"],
                "security": admin,
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {"type": "object", "properties": {"image": BINARY}, "required": ["image"]}
                        },
                        **{media: {"schema": BINARY} for media in UPLOAD_TYPES},
                    },
                },
                "responses": {
                    "201": {"description": "stored", "content": {JSON: {"schema": _ref("Image")}}},
                    "400": _error("`bad_upload`: a multipart body that does not parse, or more than one image"),
                    "401": unauthorized,
                    "415": _error(
                        "`not_an_image` (not PNG, JPEG, GIF or WebP, or it does not decode), or "
                        "`unsupported_media_type` (neither a multipart form nor an image body)"
                    ),
                    "422": _error(
                        "`empty_file`, `too_many_pixels` (over 40 Mpx: a decompression bomb), `type_mismatch` (the "
                        "file name or declared type disagrees with the bytes), or `invalid` with `field: image` "
                        "(no field `image`)"
                    ),
                    "503": unavailable,
                },
            }
        },
        "/api/images/{image_id}": {
            "get": {
                "operationId": "get_image",
                "summary": "Extension: an image, public and immutable (HEAD too)",
                "tags": ["images"],
                "security": [{}],
                "parameters": [
                    {"name": "image_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "an ETag seen before: 304 when it names this image",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the image",
                        "headers": SERVED_HEADERS,
                        "content": {"image/webp": {"schema": BINARY}},
                    },
                    "304": {"description": "not modified (the ETag matches)", "headers": SERVED_HEADERS},
                    "404": _error("no such image"),
                    "503": unavailable,
                },
            }
        },
        "/api/quizzes/{quiz_id}/archive": {
            "get": {
                "operationId": "export_quiz_archive",
                "summary": "Extension: a stored quiz with its images, as a zip (quiz.json, images/<image_id>.webp)",
                "tags": ["quizzes"],
                "security": admin,
                "parameters": [quiz_id],
                "responses": {
                    "200": {"description": "the archive", "content": {"application/zip": {"schema": BINARY}}},
                    "401": unauthorized,
                    "404": _error("no such quiz"),
                    "503": unavailable,
                },
            }
        },
        "/api/quizzes/archive": {
            "post": {
                "operationId": "import_quiz_archive",
                "summary": "Extension: store a quiz from an archive; each image goes through the upload pipeline",
                "tags": ["quizzes"],
                "security": admin,
                "requestBody": {"required": True, "content": {"application/zip": {"schema": BINARY}}},
                "responses": {
                    "201": {
                        "description": "stored",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "quiz_id": {"type": "string"},
                                        "images": {"type": "integer", "minimum": 0},
                                    },
                                    "required": ["quiz_id", "images"],
                                }
                            }
                        },
                    },
                    "401": unauthorized,
                    "415": _error("`not_an_image`: an image of the archive (named in the message)"),
                    "422": _error(
                        "`bad_archive` (not a zip, no quiz.json, too many entries, an entry that does not read), "
                        "`invalid` (quiz.json, with `field`; or an image the quiz names that is neither in the "
                        "archive nor stored), or an image's refusal (`too_many_pixels`, `type_mismatch`, "
                        "`empty_file`)"
                    ),
                    "503": unavailable,
                },
            }
        },
    }
