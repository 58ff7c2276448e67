"""The one place where game refusals become HTTP responses: `{"error": {"code", "message"}}` (SPEC §2)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from quizroom.rooms.game.errors import (
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    NothingImported,
    QuizroomError,
    TooBig,
    Unavailable,
    error_for,
)
from quizroom.server.responses import json_response
from quizroom.storage.base import StorageError


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: QuizroomError, headers: Mapping[str, str] | None = None) -> Response:
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["field"] = exc.field
    if isinstance(exc, NothingImported):
        extra["refused"] = exc.refused
    response = json_response(error_body(exc.code, exc.message, **extra), status=exc.status, headers=headers)
    if exc.status == 401:  # RFC 9110: a 401 names the scheme that would be accepted (RFC 6750: bearer tokens)
        response.headers["www-authenticate"] = 'Bearer realm="quizroom"'
    if exc.retry_after_s is not None:
        response.headers["retry-after"] = str(exc.retry_after_s)
    if isinstance(exc, TooBig):  # the rest of the body is never read: the connection cannot carry another request
        response.headers["connection"] = "close"
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route: 404, a method the route does not take: 405) in our JSON error body,
    keeping the headers it sets (`Allow`)."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    refusal: QuizroomError
    if exc.status_code == 404:
        refusal = NotFound(f"no such resource: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        refusal = MethodNotAllowed(f"{request.method} is not allowed here; allowed: {headers.get('Allow', '')}")
    else:  # nothing in our routes raises another; keep its status, in the documented body
        refusal = error_for("unavailable" if exc.status_code >= 500 else "invalid", str(exc.detail), exc.status_code)
    return error_response(refusal, headers=headers)


async def refusal(request: Request, exc: Exception) -> Response:
    """Every documented refusal a handler raises, to its JSON error (the status and code its class carries)."""
    assert isinstance(exc, QuizroomError)
    return error_response(exc)


async def storage_down(request: Request, exc: Exception) -> Response:
    return error_response(Unavailable("storage is unavailable; try again"))


async def client_gone(request: Request, exc: Exception) -> Response:
    """Gone mid-body (or cut by the request deadline): nobody reads an answer."""
    return Response(status_code=499)  # nginx's "client closed request", for the access log


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    HTTPException: http_error,  # 404 and 405 in the JSON error body too
    QuizroomError: refusal,
    StorageError: storage_down,
    ClientDisconnect: client_gone,
}
"""Starlette's `exception_handlers`: the one mapping from exceptions to HTTP; handlers raise, never build errors."""
