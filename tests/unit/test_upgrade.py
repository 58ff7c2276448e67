"""The lean WebSocket handshake (`quizroom.server.upgrade`): which requests it answers, and that its answer is
websockets' own. Everything it declines goes through websockets' parser, so each declined case is one websockets
refuses or treats specially (tests/system/test_upgrade.py checks the answers on a real server)."""

from __future__ import annotations

import base64

import pytest
from websockets.utils import accept_key

from quizroom.server.upgrade import MAX_HEADERS, plain_handshake, switching_protocols

KEY = base64.b64encode(bytes(range(16)))


def headers(*extra: tuple[bytes, bytes], drop: tuple[bytes, ...] = ()) -> list[tuple[bytes, bytes]]:
    plain = [
        (b"host", b"127.0.0.1:8000"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
    ]
    return [(name, value) for name, value in plain if name not in drop] + list(extra)


def test_a_plain_handshake_gets_websockets_accept_value() -> None:
    assert plain_handshake("GET", "1.1", b"/ws/play/123456", headers()) == accept_key(KEY.decode()).encode()
    rfc = [*headers(drop=(b"sec-websocket-key",)), (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")]
    assert plain_handshake("GET", "1.1", b"/chat", rfc) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3's example


def test_what_browsers_send_is_plain() -> None:
    browser = headers(
        (b"origin", b"http://127.0.0.1:8000"),
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),  # declined either way
        (b"user-agent", b"Mozilla/5.0"),
        drop=(b"connection", b"upgrade"),
    ) + [(b"connection", b"keep-alive, Upgrade"), (b"upgrade", b"WebSocket")]
    assert plain_handshake("GET", "1.1", b"/ws/play/123456?x=1", browser) is not None


@pytest.mark.parametrize(
    ("method", "version", "target", "request_headers"),
    [
        pytest.param("POST", "1.1", b"/ws", headers(), id="not GET: 405 from websockets"),
        pytest.param("GET", "1.0", b"/ws", headers(), id="HTTP/1.0"),
        pytest.param("GET", "1.1", "/ws/é".encode(), headers(), id="a target that is not ASCII"),
        pytest.param("GET", "1.1", b"/ws", headers(drop=(b"sec-websocket-key",)), id="no key"),
        pytest.param("GET", "1.1", b"/ws", headers((b"sec-websocket-key", KEY)), id="two keys"),
        pytest.param(
            "GET", "1.1", b"/ws", [*headers(drop=(b"sec-websocket-key",)), (b"sec-websocket-key", b"x*")], id="bad key"
        ),
        pytest.param(
            "GET",
            "1.1",
            b"/ws",
            [*headers(drop=(b"sec-websocket-key",)), (b"sec-websocket-key", base64.b64encode(b"15 bytes only!!"))],
            id="short key",
        ),
        pytest.param("GET", "1.1", b"/ws", headers(drop=(b"sec-websocket-version",)), id="no version"),
        pytest.param(
            "GET",
            "1.1",
            b"/ws",
            [*headers(drop=(b"sec-websocket-version",)), (b"sec-websocket-version", b"8")],
            id="version 8",
        ),
        pytest.param("GET", "1.1", b"/ws", headers((b"sec-websocket-version", b"13")), id="two versions"),
        pytest.param("GET", "1.1", b"/ws", headers((b"origin", b"a"), (b"origin", b"b")), id="two origins"),
        pytest.param("GET", "1.1", b"/ws", headers((b"sec-websocket-protocol", b"chat")), id="a subprotocol offered"),
        pytest.param("GET", "1.1", b"/ws", headers((b"transfer-encoding", b"chunked")), id="a body"),
        pytest.param("GET", "1.1", b"/ws", headers((b"content-length", b"5")), id="a body of 5 bytes"),
        pytest.param("GET", "1.1", b"/ws", headers((b"x-long", b"x" * 8192)), id="a header line over 8 KiB"),
        pytest.param("GET", "1.1", b"/ws?" + b"x" * 8192, headers(), id="a request line over 8 KiB"),
        pytest.param("GET", "1.1", b"/ws", headers((b"upgrade", b"h2c")), id="two upgrades"),
        pytest.param(
            "GET", "1.1", b"/ws", [*headers(drop=(b"upgrade",)), (b"upgrade", b"websocket/13")], id="versioned upgrade"
        ),
        pytest.param(
            "GET", "1.1", b"/ws", [*headers(drop=(b"connection",)), (b"connection", b"keep-alive")], id="no upgrade"
        ),
        pytest.param(
            "GET", "1.1", b"/ws", [*headers(drop=(b"connection",)), (b"connection", b"up grade")], id="not a token"
        ),
        pytest.param(
            "GET", "1.1", b"/ws", headers(*[(b"x-filler", b"1")] * MAX_HEADERS), id="more headers than websockets takes"
        ),
    ],
)
def test_anything_else_goes_through_websockets(
    method: str, version: str, target: bytes, request_headers: list[tuple[bytes, bytes]]
) -> None:
    assert plain_handshake(method, version, target, request_headers) is None


def test_the_101_carries_the_handshake_headers_then_the_servers() -> None:
    head = switching_protocols(b"ACCEPT=", [(b"date", b"Mon, 07 Dec 2026 23:00:00 GMT"), (b"server", b"uvicorn")])
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: ACCEPT=\r\ndate: Mon, 07 Dec 2026 23:00:00 GMT\r\nserver: uvicorn\r\n\r\n"
    )
