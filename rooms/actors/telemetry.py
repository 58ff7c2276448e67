"""What a room reports about itself, for metrics. The room calls these; the server decides what they become."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class RoomStats:
    """Per-room figures for the host's `stats` block (process-wide ones go to metrics, never labelled by room)."""

    answers_accepted: int = 0
    answers_duplicate: int = 0
    last_broadcast_s: float | None = None


class Telemetry(Protocol):
    """Observations a room makes on its hot paths. Implementations must be cheap and must never raise."""

    def answer(self, outcome: str) -> None:
        """An answer message was judged: `accepted`, `duplicate`, `late` or `refused`."""

    def error(self, code: str) -> None:
        """An `error` message with this code went to a socket."""

    def rate_limited(self) -> None: ...

    def ack_latency(self, seconds: float) -> None:
        """From an answer's arrival in the room to its acknowledgement being queued (the commit is inside)."""

    def broadcast(self, seconds: float, recipients: int) -> None:
        """Time the room spent encoding and queuing one broadcast."""


class NullTelemetry:
    """Observes nothing: the default, and what the pure tests use."""

    def answer(self, outcome: str) -> None:
        pass

    def error(self, code: str) -> None:
        pass

    def rate_limited(self) -> None:
        pass

    def ack_latency(self, seconds: float) -> None:
        pass

    def broadcast(self, seconds: float, recipients: int) -> None:
        pass
