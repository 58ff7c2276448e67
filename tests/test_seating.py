"""Pure parts of sharding: ranking against a room's histogram, and seating players in shards."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from quizroom.rooms.game.scoring import Ranking, competition_ranks
from quizroom.rooms.links import ShardSummary
from quizroom.rooms.shards import ShardHome, Shards


@given(st.lists(st.integers(min_value=0, max_value=5_000), max_size=200))
def test_ranking_against_a_histogram_equals_competition_ranks(scores: list[int]) -> None:
    ordered = sorted(scores, reverse=True)
    histogram = sorted(Counter(scores).items(), reverse=True)
    ranking = Ranking(histogram)
    assert [ranking.rank(s) for s in ordered] == competition_ranks(ordered)
    assert ranking.rank(10_000) == 1  # above everyone
    assert ranking.rank(-1) == len(scores) + 1  # below everyone


class FakeLink:
    def __init__(self, shard: int) -> None:
        self.shard = shard
        self.worker_id = "w"


async def test_players_fill_a_shard_before_the_next_opens_and_joins_wait_on_one_placement() -> None:
    placements: list[int] = []
    gates: dict[int, asyncio.Future[ShardHome]] = {}
    jobs: list[Callable[[], None]] = []
    placed: list[ShardHome] = []

    def place(shard: int) -> asyncio.Future[ShardHome]:
        placements.append(shard)
        gates[shard] = asyncio.get_running_loop().create_future()
        return gates[shard]

    shards = Shards(3, place, jobs.append, placed.append, log=None)
    seats = [shards.assign() for _ in range(3)]
    assert seats == [0, 0, 0]
    homes = [shards.home_of(0) for _ in range(3)]
    assert placements == [0] and all(h is homes[0] for h in homes)  # one placement for all three
    gates[0].set_result(ShardHome(FakeLink(0)))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # let the future's callbacks run (they post a job)
    for job in jobs:
        job()
    assert shards.homes[0].size == 3 and placed == [shards.homes[0]]
    assert shards.assign() == 1  # shard 0 is full
    shards.unassign(0)  # a kick frees a seat in shard 0
    assert shards.assign() == 0


def test_a_room_closes_early_only_when_every_shard_heard_from_says_so() -> None:
    shards = Shards(3, lambda s: asyncio.Future(), lambda job: None, lambda home: None, log=None)
    a, b = ShardHome(FakeLink(0)), ShardHome(FakeLink(1))  # type: ignore[arg-type]
    shards.homes.update({0: a, 1: b})
    a.summary = ShardSummary(connected=2, question=0, answered=2, all_answered=True)
    b.summary = ShardSummary(connected=0, question=0)
    assert shards.everyone_answered(0)
    assert not shards.everyone_answered(1)  # a summary of another question says nothing
    b.heard = False  # after a takeover, a shard that has not reported yet may still have players answering
    assert not shards.everyone_answered(0)
    b.heard = True
    b.summary = ShardSummary(connected=1, question=0, answered=0)
    assert not shards.everyone_answered(0)
    assert shards.counts(0) == (3, 2)


def test_refusals_cross_the_cluster_with_their_code_status_and_message() -> None:
    from quizroom.rooms.game.errors import BadNickname, InvalidInput, NicknameTaken, QuizroomError, error_for

    for original in (NicknameTaken("the nickname 'a' is taken"), BadNickname("too long"), InvalidInput("x", "bad")):
        rebuilt = error_for(original.code, original.message, original.status)
        assert isinstance(rebuilt, QuizroomError)
        assert (rebuilt.code, rebuilt.status, rebuilt.message) == (original.code, original.status, original.message)
