"""What the HTTP API reads from a request before any rule sees it: the body (bounded while it is read), the bearer
token, and the client's address.

A body is refused with 413 as soon as it is known to be too big: at once when `Content-Length` says so, and
otherwise once the bytes read pass the limit — never after buffering all of it. Six concurrent 100 MB bodies used
to take the server from 48 MB to 736 MB; now each costs at most the limit plus one read. Parsing comes only after:
orjson is linear in its input, and the input is bounded.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from quizroom.rooms.game.errors import InvalidInput, TooBig
from quizroom.server.admission import Admission


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or `TooBig` (413) the moment it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooBig(f"the body must be at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooBig(f"the body must be at most {limit} bytes")
    return bytes(body)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON: `TooBig` past `limit`, `InvalidInput` when it is not JSON."""
    return parse_json(await read_body(request, limit))


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("", "the body must be JSON") from exc


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def client_of(request: Request) -> str:
    """The client's address: the peer, or behind trusted proxies the forwarded one (`Admission.client_of`)."""
    admission: Admission = request.app.state.admission
    return admission.client_of(request.scope)
