"""The one place where game refusals become HTTP responses: `{"error": {"code", "message"}}` (SPEC §2)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from quizroom.rooms.game.errors import InvalidInput, QuizroomError, TooBig
from quizroom.server.responses import json_response


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: QuizroomError) -> Response:
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["field"] = exc.field
    response = json_response(error_body(exc.code, exc.message, **extra), status=exc.status)
    if exc.retry_after_s is not None:
        response.headers["retry-after"] = str(exc.retry_after_s)
    if isinstance(exc, TooBig):  # the rest of the body is never read: the connection cannot carry another request
        response.headers["connection"] = "close"
    return response
