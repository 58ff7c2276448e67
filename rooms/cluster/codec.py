"""The events between a coordinator and its shards as messages between workers (JSON objects), and back.

One place for the wire form of `quizroom.rooms.game.events`, so a new event changes this module and its test. What
may not fit a message stays out of it: an `AddPlayer` is not sent (the shard reads a player it does not know from
storage at hello). A reveal's or finish's score histogram travels with it up to `HISTOGRAM_IN_MESSAGE` distinct
scores (about 150 kB: a message is a row, read when too long for a notification), so a remote shard does not run
the room's aggregate query again; a longer one is read from storage by the receiving worker.
"""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.events import (
    AddPlayer,
    Announce,
    CloseQuestion,
    CoordinatorEvent,
    FinishRoom,
    GetReady,
    KickPlayer,
    OpenQuestion,
    RevealQuestion,
    ShardClosed,
    ShardEvent,
    ShardProgress,
    ShardSummary,
)

SHARD_KINDS = ("ready", "open", "close", "reveal", "finish", "kick", "coordinator")
HISTOGRAM_IN_MESSAGE = 10_000  # distinct scores a reveal or finish carries; past it, the receiver reads storage
COORDINATOR_KINDS = ("closed", "progress")


def shard_message(event: ShardEvent) -> dict[str, Any] | None:
    """A coordinator's event as a message's fields (None: it does not travel)."""
    match event:
        case GetReady(index, intro_ms):
            return {"kind": "ready", "index": index, "intro_ms": intro_ms}
        case OpenQuestion(index, opened_at_ms, seq, elapsed_ms):
            return {"kind": "open", "index": index, "opened_at_ms": opened_at_ms, "seq": seq, "elapsed_ms": elapsed_ms}
        case CloseQuestion(index):
            return {"kind": "close", "index": index}
        case RevealQuestion(index, result_seq, board, histogram):
            return {"kind": "reveal", "index": index, "result_seq": result_seq, "board": board, **_carried(histogram)}
        case FinishRoom(seq, podium, histogram, through):
            return {"kind": "finish", "seq": seq, "podium": podium, "through": through, **_carried(histogram)}
        case KickPlayer(player_id):
            return {"kind": "kick", "player_id": player_id}
        case Announce():
            return {"kind": "coordinator"}
        case AddPlayer():
            return None
    raise TypeError(f"not a shard event: {event!r}")


def _carried(histogram: tuple[tuple[int, int], ...] | None) -> dict[str, Any]:
    if histogram is None or len(histogram) > HISTOGRAM_IN_MESSAGE:
        return {}
    return {"histogram": [[score, holders] for score, holders in histogram]}


def carries_histogram(message: dict[str, Any]) -> bool:
    """Whether a reveal or finish brought the room's score histogram (else the receiver reads it from storage)."""
    return isinstance(message.get("histogram"), list)


def shard_event(message: dict[str, Any], histogram: tuple[tuple[int, int], ...] | None = None) -> ShardEvent:
    """A message's shard event; a reveal or a finish takes the histogram it carries, or the `histogram` the
    receiver read from storage."""
    kind = message["kind"]
    if histogram is None and carries_histogram(message):
        histogram = tuple((int(score), int(holders)) for score, holders in message["histogram"])
    if kind == "ready":
        return GetReady(int(message["index"]), int(message["intro_ms"]))
    if kind == "open":
        elapsed = message.get("elapsed_ms")
        return OpenQuestion(
            int(message["index"]),
            int(message["opened_at_ms"]),
            int(message["seq"]),
            None if elapsed is None else int(elapsed),
        )
    if kind == "close":
        return CloseQuestion(int(message["index"]))
    if kind == "reveal":
        return RevealQuestion(int(message["index"]), int(message["result_seq"]), message["board"], histogram)
    if kind == "finish":
        through = message.get("through")
        return FinishRoom(int(message["seq"]), message["podium"], histogram, None if through is None else int(through))
    if kind == "kick":
        return KickPlayer(str(message["player_id"]))
    if kind == "coordinator":
        return Announce()
    raise ValueError(f"not a shard event: {kind!r}")


def coordinator_message(event: CoordinatorEvent) -> dict[str, Any]:
    if isinstance(event, ShardClosed):
        return {"kind": "closed", "shard": event.shard, "index": event.index}
    summary = event.summary
    return {
        "kind": "progress",
        "shard": event.shard,
        "connected": summary.connected,
        "question": summary.question,
        "answered": summary.answered,
        "all_answered": summary.all_answered,
        "check": event.check,
    }


def coordinator_event(message: dict[str, Any]) -> CoordinatorEvent:
    shard = int(message["shard"])
    if message["kind"] == "closed":
        return ShardClosed(shard, int(message["index"]))
    question = message.get("question")
    summary = ShardSummary(
        int(message["connected"]),
        None if question is None else int(question),
        int(message["answered"]),
        bool(message["all_answered"]),
    )
    return ShardProgress(shard, summary, bool(message.get("check")))
