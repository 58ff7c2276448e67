"""The host feed sends a frame only when it says something new (rooms/game/feed.py)."""

from __future__ import annotations

from quizroom.rooms.game.feed import HostFeed


def kinds(frames: list[dict[str, object]]) -> list[object]:
    return [frame["type"] for frame in frames]


def test_a_progress_report_that_changes_nothing_sends_no_players_frame() -> None:
    feed = HostFeed(0.1)
    assert feed.mark(0.0, players=True) == 0.0
    assert kinds(feed.flush(0.0, players=30, connected=30, answered=0, question=None)) == ["players"]
    assert feed.mark(1.0, players=True, answers=True) == 0.0  # a shard's report marks both kinds
    assert feed.flush(1.0, players=30, connected=30, answered=0, question=None) == []
    assert feed.mark(2.0, players=True) == 0.0
    assert kinds(feed.flush(2.0, players=30, connected=29, answered=0, question=None)) == ["players"], "one dropped"


def test_someone_who_came_and_went_within_one_interval_is_still_told() -> None:
    feed = HostFeed(0.1)
    feed.mark(0.0, players=True)
    feed.flush(0.0, players=2, connected=2, answered=0, question=None)
    feed.joined.append({"player_id": "p3", "nickname": "Cy"})
    feed.left.append({"player_id": "p3", "nickname": "Cy"})
    feed.mark(1.0, players=True)
    [frame] = feed.flush(1.0, players=2, connected=2, answered=0, question=None)
    assert frame["joined"] == [{"player_id": "p3", "nickname": "Cy"}] and frame["left"] == frame["joined"]


def test_answers_frames_only_when_the_count_moves_and_again_for_the_next_question() -> None:
    feed = HostFeed(0.1)
    feed.mark(0.0, answers=True)
    assert kinds(feed.flush(0.0, players=30, connected=30, answered=3, question=0)) == ["answers"]
    feed.mark(1.0, answers=True)
    assert feed.flush(1.0, players=30, connected=30, answered=3, question=0) == []
    feed.mark(2.0, answers=True)
    [frame] = feed.flush(2.0, players=30, connected=30, answered=4, question=0)
    assert frame["answered"] == 4
    feed.mark(3.0, answers=True)
    [frame] = feed.flush(3.0, players=30, connected=30, answered=4, question=1)
    assert (frame["question"], frame["answered"]) == (1, 4)


def test_frames_still_wait_for_the_interval() -> None:
    feed = HostFeed(0.5)
    feed.mark(0.0, players=True)
    feed.flush(0.0, players=1, connected=1, answered=0, question=None)
    assert feed.mark(0.1, players=True) == 0.4
    assert feed.mark(0.2, players=True) is None, "already due"
