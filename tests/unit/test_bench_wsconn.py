"""The load generator's client socket cuts server frames itself after the handshake: every split, every frame kind."""

from __future__ import annotations

from typing import Any

import orjson
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from quizroom.bench.wsconn import WSConn


class Wire:
    """Stands in for the transport: what the client writes goes to a sans-I/O server."""

    def __init__(self) -> None:
        self.server = ServerProtocol()
        self.closed = False
        self.received: list[Frame] = []

    def write(self, data: bytes) -> None:
        self.server.receive_data(data)
        for event in self.server.events_received():
            if isinstance(event, Request):
                self.server.send_response(self.server.accept(event))
            else:
                assert isinstance(event, Frame)
                self.received.append(event)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def frames(self) -> list[Frame]:
        frames, self.received = self.received, []
        return frames

    def out(self) -> bytes:
        return b"".join(self.server.data_to_send())


async def opened() -> tuple[WSConn, Wire, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    conn = WSConn("ws://127.0.0.1:1/ws/x", lambda _c, message, _ns: got.append(message))
    wire = Wire()
    conn.connection_made(wire)  # type: ignore[arg-type]
    conn.data_received(wire.out())  # the 101 response
    assert conn.opened.done() and conn.opened.exception() is None
    return conn, wire, got


def text(server: ServerProtocol, message: dict[str, Any]) -> bytes:
    server.send_text(orjson.dumps(message))
    return b"".join(server.data_to_send())


async def test_frames_split_anywhere_and_glued_together_arrive_whole_and_in_order() -> None:
    conn, wire, got = await opened()
    sent = [{"type": "m", "i": i, "pad": "x" * size} for i, size in enumerate((0, 100, 125, 200, 70_000, 3))]
    stream = b"".join(text(wire.server, m) for m in sent)
    for step in (1, 2, 3, 7, 64, 1000, len(stream)):
        got.clear()
        for at in range(0, len(stream), step):
            conn.data_received(stream[at : at + step])
        assert got == sent, f"chunks of {step} bytes"


async def test_fragments_pings_and_the_close_still_go_through_the_protocol() -> None:
    conn, wire, got = await opened()
    wire.server.send_text(b'{"type": "frag', fin=False)
    wire.server.send_continuation(b'mented"}', fin=True)
    wire.server.send_ping(b"hi")
    data = wire.out() + text(wire.server, {"type": "after"})
    conn.data_received(data)
    assert got == [{"type": "fragmented"}, {"type": "after"}]
    pongs = [f for f in wire.frames() if f.opcode is Opcode.PONG]
    assert [bytes(p.data) for p in pongs] == [b"hi"], "the ping was answered"

    wire.server.send_close(4410, "finished")
    conn.data_received(wire.out())
    closes = [f for f in wire.frames() if f.opcode is Opcode.CLOSE]
    assert closes, "the close was answered"


async def test_sent_messages_are_masked_frames_the_server_reads() -> None:
    conn, wire, _ = await opened()
    conn.send({"type": "answer", "question": 0, "choice": 2})
    conn.send({"type": "hello", "token": "t" * 300})  # a 16-bit length
    frames = wire.frames()
    assert [orjson.loads(f.data) for f in frames] == [
        {"type": "answer", "question": 0, "choice": 2},
        {"type": "hello", "token": "t" * 300},
    ]
