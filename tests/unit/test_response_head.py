"""A response's head leaves with its body's first bytes (`server/protocols.py`, `_CloseAfterResponse`): one write
per small response instead of two, and nothing held past the end of the response or the close."""

from __future__ import annotations

from typing import Any

from quizroom.server.protocols import _CloseAfterResponse

HEAD = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n"


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class Protocol:
    def __init__(self) -> None:
        self.transport = Transport()
        self.completed = 0

    def close_after_response(self) -> None:
        self.transport.close()

    def on_response_complete(self) -> None:
        self.completed += 1


def wrapped() -> tuple[Any, Protocol]:
    protocol = Protocol()
    return _CloseAfterResponse(protocol), protocol  # type: ignore[arg-type]


def test_head_and_body_are_one_write() -> None:
    wrapper, protocol = wrapped()
    wrapper.write(HEAD)
    assert protocol.transport.writes == []
    wrapper.write(b"{}")
    wrapper.responded()
    assert protocol.transport.writes == [HEAD + b"{}"] and protocol.completed == 1


def test_a_response_without_body_is_written_when_it_ends() -> None:
    wrapper, protocol = wrapped()
    wrapper.write(b"HTTP/1.1 304 Not Modified\r\n\r\n")
    wrapper.responded()
    assert protocol.transport.writes == [b"HTTP/1.1 304 Not Modified\r\n\r\n"] and protocol.completed == 1


def test_continue_is_never_held_and_a_close_flushes() -> None:
    wrapper, protocol = wrapped()
    wrapper.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert protocol.transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    wrapper.write(HEAD)
    wrapper.close()
    assert protocol.transport.writes[-1] == HEAD and protocol.transport.closed


def test_only_the_head_is_held() -> None:
    wrapper, protocol = wrapped()
    wrapper.write(HEAD)
    wrapper.write(b"HTTP/1.1 200 looks like a head but is body")
    wrapper.write(b"HTTP/1.1 200 and so is this")
    assert protocol.transport.writes == [
        HEAD + b"HTTP/1.1 200 looks like a head but is body",
        b"HTTP/1.1 200 and so is this",
    ]
    assert wrapper.is_closing() is False  # everything else is the transport's
