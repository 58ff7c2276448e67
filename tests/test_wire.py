"""The socket fast path frames text itself: its bytes must parse as the websockets library's own frames."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from quizroom.rooms.sessions import Frame as OutFrame
from quizroom.server.sockets import wire_bytes


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
    assert parsed.data.decode() == text
