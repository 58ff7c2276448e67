"""Pure parts of sharding: ranking against a room's histogram, seating players in shards, refusals that cross."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from quizroom.rooms.game.events import ShardSummary
from quizroom.rooms.game.scoring import Ranking, competition_ranks
from quizroom.rooms.game.seating import Home, Seating


@given(st.lists(st.integers(min_value=0, max_value=5_000), max_size=200))
def test_ranking_against_a_histogram_equals_competition_ranks(scores: list[int]) -> None:
    ordered = sorted(scores, reverse=True)
    histogram = sorted(Counter(scores).items(), reverse=True)
    ranking = Ranking(histogram)
    assert [ranking.rank(s) for s in ordered] == competition_ranks(ordered)
    assert ranking.rank(10_000) == 1  # above everyone
    assert ranking.rank(-1) == len(scores) + 1  # below everyone


def test_players_fill_a_shard_before_the_next_opens_and_joins_wait_on_one_placement() -> None:
    seating = Seating(3)
    seats = [seating.assign() for _ in range(3)]
    assert seats == [(0, True), (0, False), (0, False)]  # one placement for all three
    home = seating.placed(0, "w")
    assert home.size == 3 and seating.homes == {0: home}
    assert seating.assign() == (1, True)  # shard 0 is full
    seating.unassign(0)  # a kick frees a seat in shard 0
    assert seating.assign() == (0, False)


def test_a_failed_placement_is_asked_for_again() -> None:
    seating = Seating(3)
    assert seating.assign() == (0, True)
    seating.not_placed(0)
    seating.unassign(0)
    assert seating.assign() == (0, True)


@given(st.lists(st.sampled_from(["join", "leave"]), max_size=200), st.integers(min_value=1, max_value=5))
def test_no_shard_ever_holds_more_than_its_seats(moves: list[str], per_shard: int) -> None:
    seating = Seating(per_shard)
    seated: list[int] = []
    for move in moves:
        if move == "join":
            shard, place = seating.assign()
            if place:
                seating.placed(shard, "w")
            seated.append(shard)
        elif seated:
            seating.unassign(seated.pop(0))
        assert all(0 <= home.size <= per_shard for home in seating.homes.values())
    assert sum(home.size for home in seating.homes.values()) == len(seated)


def test_a_room_closes_early_only_when_every_shard_heard_from_says_so() -> None:
    a, b = Home("w0"), Home("w1")
    seating = Seating(3, {0: a, 1: b})
    a.summary = ShardSummary(connected=2, question=0, answered=2, all_answered=True)
    b.summary = ShardSummary(connected=0, question=0, all_answered=True)  # nobody there, nobody on the way back
    assert seating.everyone_answered(0)
    assert not seating.everyone_answered(1)  # a summary of another question says nothing
    b.summary = ShardSummary(connected=0, question=0, all_answered=False)  # its sockets just dropped (a failover)
    assert not seating.everyone_answered(0), "players on their way back count as still answering"
    b.summary = ShardSummary(connected=0, question=0, all_answered=True)
    b.heard = False  # after a takeover, a shard that has not reported yet may still have players answering
    assert not seating.everyone_answered(0)
    b.heard = True
    b.summary = ShardSummary(connected=1, question=0, answered=0)
    assert not seating.everyone_answered(0)
    assert seating.counts(0) == (3, 2)


def test_refusals_cross_the_cluster_with_their_code_status_and_message() -> None:
    from quizroom.rooms.game.errors import BadNickname, InvalidInput, NicknameTaken, QuizroomError, error_for

    for original in (NicknameTaken("the nickname 'a' is taken"), BadNickname("too long"), InvalidInput("x", "bad")):
        rebuilt = error_for(original.code, original.message, original.status)
        assert isinstance(rebuilt, QuizroomError)
        assert (rebuilt.code, rebuilt.status, rebuilt.message) == (original.code, original.status, original.message)
