"""Sockets as the room sees them: close codes (SPEC §3), the `Connection` it writes to, one `Session` per socket."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from quizroom.rooms.game.ratelimit import TokenBucket


@dataclass(slots=True)
class Frame:
    """One outbound message: its JSON text, and a slot where the transport may cache its encoded wire bytes.

    A broadcast builds one `Frame` and hands the same object to every socket, so the JSON is encoded once and the
    transport can frame it once, whatever the number of recipients.
    """

    text: str
    wire: bytes | None = None


class Connection(Protocol):
    """What the actor needs of a socket. Both calls return at once: frames queue, slow consumers are the socket's."""

    def send(self, frame: Frame) -> None: ...

    # Frames that go out together (a player's result and the leaderboard): one write where the socket can.
    def send_many(self, frames: Sequence[Frame]) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...


@dataclass(slots=True, eq=False)
class Session:
    """One open socket of a player (player_id set) or of the host (player_id None)."""

    conn: Connection
    bucket: TokenBucket
    player_id: str | None = None
    strikes: int = 0  # consecutive rate-limited messages
    garbage: int = 0  # consecutive malformed messages
    open: bool = True


def hash_token(token: str) -> str:
    """Tokens are stored and compared only as SHA-256 digests (they carry 256 random bits, so no slow hash)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def encode(message: dict[str, Any]) -> Frame:
    """One message as a frame; broadcasts encode once and send the same frame to every socket."""
    return Frame(orjson.dumps(message).decode())
