"""WebSocket handshakes on the real server: the lean path (`quizroom.server.upgrade`) answers plain ones, websockets
answers the rest, and a client cannot tell which: same status, same headers, same socket afterwards."""

from __future__ import annotations

import asyncio
import base64
import os

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.utils import accept_key

from tests.gameclient import WAIT, Host
from tests.serverproc import ServerProcess


async def handshake(port: int, lines: list[str]) -> tuple[int, dict[str, str], str]:
    """Send one upgrade request by hand; the answer's status, headers (lower-cased names) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
        body = b""
        if int(status_line.split()[1]) != 101:
            body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), WAIT)
        return int(status_line.split()[1]), headers, body.decode()
    finally:
        writer.close()


def request(path: str, *extra: str, key: str | None = None, version: str = "13", method: str = "GET") -> list[str]:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version:
        lines.append(f"Sec-WebSocket-Version: {version}")
    return lines + list(extra)


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


@pytest.fixture
def srv(start_server, sqlite_url: str) -> ServerProcess:  # type: ignore[no-untyped-def]
    server: ServerProcess = start_server(sqlite_url)
    return server


async def test_plain_and_declined_handshakes_are_answered_alike(srv: ServerProcess) -> None:
    path = "/ws/play/123456"
    key = new_key()
    status, lean, _ = await handshake(srv.port, request(path, key=key))
    assert status == 101 and lean["sec-websocket-accept"] == accept_key(key)
    assert "sec-websocket-extensions" not in lean and "sec-websocket-protocol" not in lean

    offered = new_key()  # a subprotocol offered: websockets' own path, which picks none either
    status, declined, _ = await handshake(srv.port, request(path, "Sec-WebSocket-Protocol: chat", key=offered))
    assert status == 101 and declined["sec-websocket-accept"] == accept_key(offered)
    assert set(lean) == set(declined) and lean["server"] == declined["server"]

    browser = request(path, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits", key=new_key())
    status, headers, _ = await handshake(srv.port, browser)
    assert status == 101 and "sec-websocket-extensions" not in headers  # compression is declined (serving.py)

    refused = {
        "version 8": (request(path, key=new_key(), version="8"), 400, "Sec-WebSocket-Version"),
        "no version": (request(path, key=new_key(), version=""), 400, "missing Sec-WebSocket-Version"),
        "no key": (request(path), 400, "missing Sec-WebSocket-Key"),
        "two keys": (request(path, f"Sec-WebSocket-Key: {new_key()}", key=new_key()), 400, "multiple values"),
        "short key": (request(path, key=base64.b64encode(os.urandom(15)).decode()), 400, "Sec-WebSocket-Key"),
        "bad key": (request(path, key="not*base64!!"), 400, "Sec-WebSocket-Key"),
        "two origins": (request(path, "Origin: http://a", "Origin: http://b", key=new_key()), 400, "Origin"),
        "POST": (request(path, "Content-Length: 0", key=new_key(), method="POST"), 405, "POST"),
        "a body": (request(path, "Content-Length: 5", key=new_key()), 400, "invalid request"),
    }
    for name, (lines, expected, text) in refused.items():
        status, headers, body = await handshake(srv.port, lines)
        assert (status, text in body) == (expected, True), (name, status, body)
    assert (await handshake(srv.port, request("/ws/nothing", key=new_key())))[0] == 403  # no such socket


async def test_players_on_either_path_play(srv: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=srv.url, timeout=WAIT) as http:
        host = await Host.open(http)
        lean, declined = await host.join("Ann"), await host.join("Bob")
        await lean.connect()
        declined.ws = await connect(declined.joined["ws_url"], open_timeout=WAIT, subprotocols=["chat"])  # type: ignore[list-item]
        await declined.send({"type": "hello", "token": declined.token})
        await declined.expect("welcome")
        metrics = (await http.get("/metrics")).text
        assert "quizroom_sockets_lean_handshake_total 1.0" in metrics  # Ann's; Bob's offered a subprotocol
        assert "quizroom_sockets_accepted_total 2.0" in metrics
        await host.command("start")
        for player in (lean, declined):
            question = await player.expect("question")
            await player.answer(question["index"], 0)
            ack = await player.expect("answer_ack")
            assert ack["accepted"] is True
        await host.command("end")
        for player in (lean, declined):
            await player.close()
