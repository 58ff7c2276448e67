"""The socket fast path frames text itself: its bytes must parse as the websockets library's own frames."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from quizroom.rooms.actors.sessions import Frame as OutFrame
from quizroom.server.sockets import wire_bytes
from tests.gameclient import Host, quiz


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_wire_bytes_is_a_valid_unmasked_text_frame(size: int) -> None:
    text = ("é" if size % 2 else "x") * (size // 2 if size % 2 else size)
    frame = OutFrame(text)
    data = wire_bytes(frame)
    assert frame.wire is data and wire_bytes(frame) is data  # built once, then cached on the frame

    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
    else:  # pragma: no cover - the parser wanted more bytes than the frame has
        raise AssertionError("incomplete frame")
    assert parsed.opcode is Opcode.TEXT and parsed.fin
    assert bytes(parsed.data).decode() == text


async def test_the_server_declines_compression_so_frames_stay_shared(start_server: Any, sqlite_url: str) -> None:
    """Browsers and the websockets client offer permessage-deflate; accepting it would cost a deflate per recipient
    per broadcast and turn the direct write path off. The server answers without the extension."""
    server = start_server(sqlite_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(1))
        player = await host.join("Ann")
        async with connect(player.joined["ws_url"], compression="deflate") as ws:
            assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
            await ws.send(orjson.dumps({"type": "hello", "token": player.token}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"


async def test_a_reveal_writes_each_result_and_the_leaderboard_together_result_first(
    start_server: Any, sqlite_url: str
) -> None:
    """`SocketConn.send_many`: both frames in one write on the direct path; the client's parser reads two messages."""
    server = start_server(sqlite_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(2))
        player = await host.join("Ann")
        async with connect(player.joined["ws_url"]) as ws:
            await ws.send(orjson.dumps({"type": "hello", "token": player.token}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            await host.command("start")
            assert orjson.loads(await ws.recv())["type"] == "question"
            await ws.send(orjson.dumps({"type": "answer", "question": 0, "choice": 0}).decode())
            assert orjson.loads(await ws.recv())["type"] == "answer_ack"  # everyone answered: the room reveals
            result, board = orjson.loads(await ws.recv()), orjson.loads(await ws.recv())
            assert (result["type"], board["type"]) == ("result", "leaderboard")
            assert result["question"] == board["question"] == 0 and result["points"] > 0
            assert board["top"][0]["nickname"] == "Ann"
