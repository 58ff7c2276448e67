"""Dead peers are dropped: a client that never answers the server's pings loses its socket, a live one keeps it."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from pathlib import Path

import httpx

from tests.gameclient import Host


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


async def silent_client(port: int, path: str, hello: str) -> asyncio.StreamWriter:
    """A raw WebSocket client that says hello and then never reads again, so it never answers a ping."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    assert b"101" in await reader.readuntil(b"\r\n\r\n")
    writer.write(masked_text_frame(hello))
    await writer.drain()
    return writer


async def test_a_peer_that_never_pongs_is_dropped(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(
        f"sqlite:///{tmp_path / 'hb.db'}", "--heartbeat-interval-s", "0.3", "--heartbeat-timeout-s", "0.3"
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http)
        live, dead = await host.join("Live"), await host.join("Dead")
        await live.connect()
        writer = await silent_client(server.port, f"/ws/play/{host.pin}", f'{{"type":"hello","token":"{dead.token}"}}')
        deadline = time.monotonic() + 10
        seen_both = False
        while time.monotonic() < deadline:
            connected = (await host.state())["connected"]
            seen_both |= connected == 2
            if seen_both and connected == 1:
                break
            await asyncio.sleep(0.05)  # polling the server's view, bounded by the deadline
        assert seen_both and (await host.state())["connected"] == 1
        await live.send({"type": "ping", "t": 1})
        assert (await live.expect("pong"))["t"] == 1  # the live socket answered every ping and is still here
        writer.close()
