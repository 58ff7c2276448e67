"""The WebSocket opening handshake, answered from the request uvicorn has already parsed.

Why: on an upgrade, uvicorn's httptools protocol writes the request it has just parsed back out as bytes, and hands
them to websockets' sans-I/O protocol, which parses them again in pure Python (`Request.parse`), checks them
(`ServerProtocol.accept`) and builds a `Response` object that is serialised once the application accepts. In a join
storm that was about a quarter of the server's time per joining player (py-spy, 10,000 joins; bench/RESULTS.md,
*Joins*). A handshake here is checked by the same rules as `websockets.server.ServerProtocol.process_request`
(RFC 6455 §4.2.1) straight from httptools' headers, and the `101` is written from bytes.

Only the plain case takes this path: `GET` over HTTP/1.1, one `Upgrade: websocket`, a `Connection` with `upgrade`,
one valid 16-byte key, version 13, at most one `Origin`, no subprotocol offered, no body, an ASCII request target,
and no more headers and no longer lines than websockets accepts. Anything else — a malformed or unusual request,
every refusal — goes through websockets as before (`None` here), so its error responses (400, 405, 426, 505, 431)
stay websockets' own.
Extensions offered by the client (browsers offer permessage-deflate) are declined either way: the server
negotiates none (`quizroom.server.serving`).
"""

from __future__ import annotations

import base64
import binascii

from websockets.exceptions import InvalidHeader
from websockets.headers import parse_connection, parse_upgrade
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS
from websockets.utils import accept_key

LEAN = "quizroom.lean_handshake"
"""Key in a socket's ASGI `extensions` when its handshake took this path (counted by the endpoints)."""

MAX_HEADERS = MAX_NUM_HEADERS
"""websockets' own limit on request headers (128 unless its environment says otherwise): more goes the slow way,
where websockets answers 431; a line longer than its `MAX_LINE_LENGTH` too (414 or 431)."""


def plain_handshake(method: str, http_version: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The `Sec-WebSocket-Accept` value when this request is a plain, valid opening handshake; else `None`.

    `headers` are httptools' (names lower-cased, as in an ASGI scope). `None` is not a refusal: it sends the request
    through websockets' parser, which answers anything invalid with its own error.
    """
    if method != "GET" or http_version != "1.1" or len(headers) > MAX_HEADERS or not target.isascii():
        return None
    if len(target) + len("GET  HTTP/1.1") > MAX_LINE_LENGTH:
        return None
    connection: list[str] = []  # parsed by websockets' own header parsers: the same tokens it would accept
    upgrade: list[str] = []
    key: bytes | None = None
    version: bytes | None = None
    keys = versions = origins = 0
    for name, value in headers:
        if len(name) + len(value) + 2 > MAX_LINE_LENGTH:
            return None
        try:
            if name == b"connection":
                connection += parse_connection(value.decode("latin-1"))
            elif name == b"upgrade":
                upgrade += parse_upgrade(value.decode("latin-1"))
        except InvalidHeader:
            return None
        if name == b"sec-websocket-key":
            key, keys = value, keys + 1
        elif name == b"sec-websocket-version":
            version, versions = value, versions + 1
        elif name == b"origin":
            origins += 1
        elif name in (b"sec-websocket-protocol", b"transfer-encoding") or (
            name == b"content-length" and value.strip() != b"0"  # a body: websockets refuses it (400)
        ):
            return None
    if not any(item.lower() == "upgrade" for item in connection) or [item.lower() for item in upgrade] != ["websocket"]:
        return None
    if keys != 1 or versions != 1 or origins > 1 or version != b"13" or key is None:
        return None
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16:
        return None
    return accept_key(key.decode("ascii")).encode("ascii")


def switching_protocols(accept: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole `101` response: the handshake's three headers, then `headers` (uvicorn's date and server, and
    whatever the application's `websocket.accept` added)."""
    head = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
        accept,
        b"\r\n",
    ]
    for name, value in headers:
        head += [name, b": ", value, b"\r\n"]
    head.append(b"\r\n")
    return b"".join(head)
