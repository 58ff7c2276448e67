"""The wire form of the events between a coordinator and its shards on other workers (`rooms/cluster/codec.py`)."""

from __future__ import annotations

import orjson
import pytest

from quizroom.rooms.cluster.codec import (
    HISTOGRAM_IN_MESSAGE,
    carries_histogram,
    coordinator_event,
    coordinator_message,
    shard_event,
    shard_message,
)
from quizroom.rooms.game.events import (
    Announce,
    CloseQuestion,
    FinishRoom,
    KickPlayer,
    OpenQuestion,
    RevealQuestion,
    ShardClosed,
    ShardEvent,
    ShardProgress,
    ShardSummary,
)
from quizroom.storage.transport import MAX_PAYLOAD_BYTES

HISTOGRAM = ((1900, 3), (950, 10), (0, 2))
BOARD = {"type": "leaderboard", "seq": 7, "question": 1, "top": [], "counts": [1, 2], "answered": 3, "players": 15}


@pytest.mark.parametrize(
    "event",
    [
        OpenQuestion(2, 1_700_000_000_000, 5),
        OpenQuestion(2, 1_700_000_000_000, 5, 1_234),
        CloseQuestion(2),
        RevealQuestion(2, 6, BOARD, HISTOGRAM),
        FinishRoom(9, [{"rank": 1, "nickname": "ann", "score": 1900}], HISTOGRAM, 2),
        FinishRoom(9, [], None, None),
        KickPlayer("p1"),
        Announce(),
    ],
)
def test_shard_events_cross_as_json_unchanged(event: ShardEvent) -> None:
    message = shard_message(event)
    assert message is not None
    assert shard_event(orjson.loads(orjson.dumps(message))) == event


def test_a_long_histogram_stays_behind_and_the_receiver_reads_it() -> None:
    long = tuple((score, 1) for score in range(HISTOGRAM_IN_MESSAGE + 1, 0, -1))
    message = shard_message(RevealQuestion(0, 1, BOARD, long))
    assert message is not None and not carries_histogram(message)
    read_from_storage = ((5, 1),)
    assert shard_event(message, read_from_storage) == RevealQuestion(0, 1, BOARD, read_from_storage)
    longest = tuple((score * 1000, 10_000) for score in range(HISTOGRAM_IN_MESSAGE, 0, -1))
    carried = shard_message(RevealQuestion(0, 1, BOARD, longest))
    assert carried is not None and carries_histogram(carried)
    assert len(orjson.dumps(carried)) < MAX_PAYLOAD_BYTES - 1_000, "the longest carried histogram fits a message"


@pytest.mark.parametrize(
    "event",
    [ShardClosed(1, 3), ShardProgress(2, ShardSummary(10, 3, 4, False), True), ShardProgress(0, ShardSummary(), False)],
)
def test_reports_cross_as_json_unchanged(event: ShardClosed | ShardProgress) -> None:
    assert coordinator_event(orjson.loads(orjson.dumps(coordinator_message(event)))) == event
