"""The room protocol machine driven by hand, websockets-style: no event loop, no storage, no sockets, no clock.

Each test feeds inputs and reads the effects back: what must be durable first, what goes to which shard and to
the hosts, which timers are due, and what each caller is answered. Every phase transition is here, and the racing
ones: a command during a transition, a shard's late report, a deadline during a write, a restart mid-reveal.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from quizroom.rooms.game.effects import (
    Arm,
    Disarm,
    Effect,
    Joined,
    Log,
    Persist,
    PlaceShard,
    QueryView,
    Refuse,
    Reply,
    StoreKick,
    StorePlayer,
    Timer,
    ToHosts,
    ToShard,
    ToShards,
    View,
    Whereabouts,
)
from quizroom.rooms.game.errors import (
    BadPhase,
    Kicked,
    NicknameTaken,
    NotFound,
    RoomFull,
    Unauthorized,
    Unavailable,
    UnknownType,
)
from quizroom.rooms.game.events import (
    AddPlayer,
    Announce,
    CloseQuestion,
    FinishRoom,
    KickPlayer,
    Now,
    OpenQuestion,
    RevealQuestion,
    ShardSummary,
)
from quizroom.rooms.game.protocol import RoomProtocol, Settings
from quizroom.rooms.game.quiz import Question, Quiz
from quizroom.rooms.game.rules import Phase, Player, RoomLimits, RoomState
from quizroom.rooms.game.seating import Home

E = TypeVar("E")
T0 = Now(1000.0, 1_700_000_000_000)


def at(seconds: float) -> Now:
    return Now(T0.mono + seconds, T0.wall_ms + round(seconds * 1000))


def quiz(questions: int = 2) -> Quiz:
    return Quiz(
        "Q",
        tuple(
            Question(f"q{i}", ("a", "b", "c"), frozenset({i % 3}), time_limit_ms=10_000, points=1000)
            for i in range(questions)
        ),
    )


def machine(*, questions: int = 2, shards: int = 1, per_shard: int = 1_500, heard: bool = True) -> RoomProtocol:
    state = RoomState(room_id="r", pin="123456", quiz=quiz(questions), host_token_hash="h", limits=RoomLimits())
    homes = {shard: Home(f"w{shard}", heard=heard) for shard in range(shards)}
    return RoomProtocol(state, Settings(per_shard=per_shard, host_coalesce_s=0.1), homes=homes)


def only(effects: list[Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def one(effects: list[Effect], kind: type[E]) -> E:
    found = only(effects, kind)
    assert len(found) == 1, (kind.__name__, effects)
    return found[0]


def to_hosts(effects: list[Effect], kind: str) -> list[dict[str, Any]]:
    return [e.message for e in only(effects, ToHosts) if e.message["type"] == kind]


def persisted(m: RoomProtocol, effects: list[Effect], now: Now = T0, ok: bool = True) -> list[Effect]:
    """Complete the one write among `effects` and return what follows it."""
    return m.done(one(effects, Persist).step, ok, now)


def viewed(m: RoomProtocol, effects: list[Effect], view: View | None = None, now: Now = T0) -> list[Effect]:
    query = one(effects, QueryView)
    return m.view_ready(query.step, view or View(2, 1, (1, 0, 0), ((1000, 1), (0, 1)), ()), now)


def start(m: RoomProtocol, request: int = 1, now: Now = T0) -> list[Effect]:
    effects = m.command(request, "start", now)
    assert effects == [one(effects, Persist)], "nothing leaves before the question is durable"
    return persisted(m, effects, now)


def reveal(m: RoomProtocol, effects: list[Effect], now: Now = T0) -> list[Effect]:
    """From the effects of a close (every shard reporting closed), through the view and its write."""
    for shard in list(m.seating.homes):
        effects = effects + m.shard_closed(shard, m.state.question_index or 0, now)
    after_view = viewed(m, effects, now=now)
    return persisted(m, after_view, now)


# --- phases -------------------------------------------------------------------------------------------------------


def test_start_stores_the_phase_then_opens_the_question_everywhere() -> None:
    m = machine()
    effects = start(m)
    assert m.state.phase is Phase.QUESTION and m.state.seq == 1
    opened = one(effects, ToShards).event
    assert opened == OpenQuestion(0, T0.wall_ms, 1, 0)
    (question,) = to_hosts(effects, "question")
    assert question["correct"] == [0] and question["deadline_ms"] == T0.wall_ms + 10_000  # hosts see the answer
    deadline = next(e for e in effects if isinstance(e, Arm) and e.timer is Timer.DEADLINE)
    assert deadline.delay_s == pytest.approx(10.25)  # the time limit and the network grace
    reply = one(effects, Reply)
    assert reply.request == 1 and reply.value["phase"] == "question"
    assert to_hosts(effects, "state")[0]["phase"] == "question"
    assert not m.busy


def test_every_transition_in_order_from_lobby_to_finished() -> None:
    m = machine(questions=2)
    start(m)
    closed = m.command(2, "close", T0)
    assert closed[:2] == [Disarm(Timer.DEADLINE), ToShards(CloseQuestion(0))]
    assert m.state.phase is Phase.REVEAL and m.busy
    revealed = reveal(m, closed)
    event = one(revealed, ToShards).event
    assert isinstance(event, RevealQuestion) and (event.index, event.result_seq) == (0, 2)
    assert event.board["type"] == "leaderboard" and event.board["seq"] == 3
    assert [e.message["type"] for e in only(revealed, ToHosts)] == ["result", "leaderboard", "state"]
    assert one(revealed, Reply).request == 2 and not m.busy
    opened = persisted(m, m.command(3, "next", at(1)), at(1))
    assert one(opened, ToShards).event == OpenQuestion(1, at(1).wall_ms, 4, 0)
    reveal(m, m.command(4, "close", at(2)), at(2))
    finishing = m.command(5, "next", at(3))  # after the last question: finished
    assert m.state.phase is Phase.FINISHED
    done = persisted(m, viewed(m, finishing, View(2, 0, (), ((1000, 1), (0, 1)), ({"rank": 1},)), at(3)), at(3))
    finish = one(done, ToShards).event
    assert isinstance(finish, FinishRoom) and finish.podium == [{"rank": 1}] and finish.through == 1
    assert to_hosts(done, "finished") == [{"type": "finished", "seq": 7, "podium": [{"rank": 1}]}]
    assert m.finished_at == at(3).mono and one(done, Reply).value["phase"] == "finished"


def test_end_mid_question_reveals_then_finishes_in_one_transition() -> None:
    m = machine()
    start(m)
    ending = m.command(2, "end", T0)
    revealed = reveal(m, ending)
    assert isinstance(one(revealed, ToShards).event, RevealQuestion)
    assert not only(revealed, Reply) and m.busy  # the reply waits for the end, not the reveal
    finished = persisted(m, viewed(m, revealed))
    assert isinstance(one(finished, ToShards).event, FinishRoom)
    assert one(finished, Reply).value["phase"] == "finished" and not m.busy


def test_end_in_the_lobby_finishes_at_once() -> None:
    m = machine()
    finished = persisted(m, viewed(m, m.command(1, "end", T0)))
    assert m.state.phase is Phase.FINISHED and isinstance(one(finished, ToShards).event, FinishRoom)


def test_commands_that_do_not_fit_the_phase_are_refused_and_change_nothing() -> None:
    m = machine()
    for name in ("close", "next"):
        assert isinstance(one(m.command(1, name, T0), Refuse).error, BadPhase)
    assert isinstance(one(m.command(1, "dance", T0), Refuse).error, UnknownType)
    start(m)
    refused = one(m.command(2, "start", T0), Refuse)  # a retried start never starts twice
    assert isinstance(refused.error, BadPhase) and m.state.seq == 1
    persisted(m, viewed(m, reveal(m, m.command(3, "end", T0))))
    assert isinstance(one(m.command(4, "end", T0), Refuse).error, BadPhase)
    assert isinstance(one(m.command(5, "lock", T0), Refuse).error, BadPhase)


def test_lock_is_stored_then_answered() -> None:
    m = machine()
    effects = m.command(1, "lock", T0)
    assert one(effects, Persist).record.locked and m.busy
    assert one(persisted(m, effects), Reply).value["locked"] and not m.busy
    effects = m.command(2, "unlock", T0)
    assert not one(persisted(m, effects), Reply).value["locked"]


def test_a_failed_phase_write_is_logged_and_the_game_goes_on() -> None:
    m = machine()
    effects = persisted(m, m.command(1, "start", T0), ok=False)
    assert one(effects, Log).event == "room_state_not_stored"
    assert isinstance(one(effects, ToShards).event, OpenQuestion)


# --- racing inputs ------------------------------------------------------------------------------------------------


def test_a_command_during_a_transition_runs_after_it_in_order() -> None:
    m = machine()
    started = m.command(1, "start", T0)
    assert m.command(2, "lock", T0) == [] and m.command(3, "close", T0) == []  # both wait
    after = persisted(m, started)
    kinds = [type(e) for e in after]
    assert kinds.index(Reply) < kinds.index(Persist)  # the start is answered, then the lock is written
    lock = one(after, Persist)
    assert lock.record.locked and lock.record.phase == "question"
    after_lock = m.done(lock.step, True, T0)
    assert [r.request for r in only(after_lock, Reply)] == [2]
    assert one(after_lock, ToShards).event == CloseQuestion(0)  # then the close, which was queued behind it


def test_a_shard_report_after_the_close_is_ignored() -> None:
    m = machine(shards=2)
    start(m)
    closing = m.command(2, "close", T0)
    assert one(closing, Arm).timer is Timer.CLOSE_WAIT
    assert m.shard_closed(0, 7, T0) == []  # not the question being closed
    assert m.shard_closed(0, 0, T0) == []  # shard 1 has not reported yet
    revealing = m.shard_closed(1, 0, T0)
    assert only(revealing, Disarm) == [Disarm(Timer.CLOSE_WAIT)] and only(revealing, QueryView)
    assert m.shard_closed(1, 0, T0) == []  # a duplicate report of the same close
    late = m.progress(0, ShardSummary(connected=3, question=0, answered=3, all_answered=True), True, T0)
    assert not only(late, ToShards)  # nothing closes twice
    assert m.timer_due(Timer.CLOSE_WAIT, T0) == []  # and the overdue timer finds nothing to do


def test_a_silent_shard_does_not_hold_the_reveal_past_the_close_wait() -> None:
    m = machine(shards=2)
    start(m)
    m.command(2, "close", T0)
    m.shard_closed(0, 0, T0)
    overdue = m.timer_due(Timer.CLOSE_WAIT, at(3))
    assert one(overdue, Log).fields == {"question": 0, "shards": [1]}
    assert one(overdue, QueryView).question == 0


def test_a_deadline_during_a_write_closes_right_after_it() -> None:
    m = machine()
    start(m)
    locking = m.command(2, "lock", at(5))
    assert m.timer_due(Timer.DEADLINE, at(10.25)) == []  # the lock's write is in flight: the close waits
    after = persisted(m, locking, at(10.3))
    assert one(after, Reply).request == 2
    assert one(after, ToShards).event == CloseQuestion(0) and m.state.phase is Phase.REVEAL


def test_a_deadline_for_a_question_already_closed_does_nothing() -> None:
    m = machine()
    start(m)
    reveal(m, m.command(2, "close", T0))
    assert m.timer_due(Timer.DEADLINE, at(11)) == []
    assert m.state.phase is Phase.REVEAL


def test_the_deadline_closes_the_question_without_a_caller() -> None:
    m = machine()
    start(m)
    closing = m.timer_due(Timer.DEADLINE, at(10.25))
    revealed = reveal(m, closing, at(10.3))
    assert isinstance(one(revealed, ToShards).event, RevealQuestion)
    assert not only(revealed, Reply) and not to_hosts(revealed, "state")


def test_everyone_answered_closes_early_once_every_shard_says_so() -> None:
    m = machine(shards=2)
    start(m)
    all_in = ShardSummary(connected=2, question=0, answered=2, all_answered=True)
    assert not only(m.progress(1, ShardSummary(2, 0, 1, False), False, T0), ToShards)  # one still answering
    assert not only(m.progress(0, all_in, True, T0), ToShards)
    assert not only(m.progress(1, all_in, False, T0), ToShards)  # not a settled answer: no check
    closing = m.progress(1, all_in, True, T0)
    assert one(closing, ToShards).event == CloseQuestion(0)


def test_a_shard_not_heard_from_since_a_takeover_holds_the_early_close() -> None:
    m = machine(shards=2, heard=False)
    start(m)
    all_in = ShardSummary(connected=1, question=0, answered=1, all_answered=True)
    assert not only(m.progress(0, all_in, True, T0), ToShards)  # shard 1 may still have players answering
    assert one(m.progress(1, all_in, True, T0), ToShards).event == CloseQuestion(0)


def test_a_report_during_a_transition_is_acted_on_after_it() -> None:
    m = machine()
    start(m)
    locking = m.command(2, "lock", T0)
    all_in = ShardSummary(connected=1, question=0, answered=1, all_answered=True)
    assert not only(m.progress(0, all_in, True, T0), ToShards)
    assert one(persisted(m, locking), ToShards).event == CloseQuestion(0)


# --- restarts -----------------------------------------------------------------------------------------------------


def restored(phase: Phase, question_index: int | None, opened_at_ms: int, now: Now) -> RoomProtocol:
    m = machine()
    m.state.restore(
        phase=phase,
        question_index=question_index,
        opened_at_ms=opened_at_ms,
        locked=False,
        seq=5,
        players=[],
        answers=[],
        mono=now.mono,
        wall_ms=now.wall_ms,
    )
    return m


def test_a_restart_past_the_deadline_closes_at_once_and_reveals() -> None:
    m = restored(Phase.QUESTION, 0, T0.wall_ms - 60_000, T0)  # crashed before the reveal was stored
    (deadline,) = m.resumed(T0)
    assert deadline == Arm(Timer.DEADLINE, 0.0)
    revealed = reveal(m, m.timer_due(Timer.DEADLINE, T0))
    event = one(revealed, ToShards).event
    assert isinstance(event, RevealQuestion) and event.result_seq == 6  # seq goes on from the stored one


def test_a_restart_mid_question_keeps_the_original_deadline() -> None:
    m = restored(Phase.QUESTION, 0, T0.wall_ms - 4_000, T0)
    deadline = one(m.resumed(T0), Arm)
    assert deadline.delay_s == pytest.approx(6.25)


def test_a_restart_in_a_reveal_sends_the_reveal_again_then_waits_for_the_host() -> None:
    """The reveal was stored but its events may have died with the old coordinator: the same reveal goes out
    again (the stored seq is the leaderboard's, the results' the one before), and a host command waits for it."""
    m = restored(Phase.REVEAL, 0, T0.wall_ms - 60_000, T0)
    query = one(m.resumed(T0), QueryView)
    assert (query.question, query.through) == (0, 0)
    assert m.command(1, "next", T0) == [], "deferred until the reveal is out"
    again = m.view_ready(query.step, View(2, 1, (1, 0, 0), ((1000, 1), (0, 1)), ()), T0)
    event = one(again, ToShards).event
    assert isinstance(event, RevealQuestion) and (event.index, event.result_seq, event.board["seq"]) == (0, 4, 5)
    assert event.histogram == ((1000, 1), (0, 1))
    assert one(persisted(m, again), ToShards).event == OpenQuestion(1, T0.wall_ms, 6, 0), "then the deferred next"


def test_a_restart_after_the_finish_sends_the_podium_again() -> None:
    m = restored(Phase.FINISHED, 1, T0.wall_ms - 60_000, T0)
    query = one(m.resumed(T0), QueryView)
    assert (query.question, query.through, query.top) == (None, 1, 3)
    podium = ({"rank": 1, "nickname": "ann", "score": 1000},)
    again = m.view_ready(query.step, View(2, 0, (), ((1000, 1), (0, 1)), podium), T0)
    assert one(again, ToShards).event == FinishRoom(5, list(podium), ((1000, 1), (0, 1)), 1)
    assert m.finished_at == T0.mono


def test_a_shard_catching_up_later_is_told_how_long_the_question_has_been_open() -> None:
    """The coordinator's monotonic age of the question, not its wall clock: a shard on another host dates the
    question from its own clock, so the hosts' wall clocks need not agree."""
    m = machine(shards=2)
    opened = one(persisted(m, m.command(1, "start", T0)), ToShards).event
    assert isinstance(opened, OpenQuestion) and opened.elapsed_ms == 0
    caught_up = m.moved(1, "w5", at(3.25))
    assert ToShard(1, OpenQuestion(0, T0.wall_ms, 1, 3250)) in caught_up


# --- joins, kicks, resume -----------------------------------------------------------------------------------------


def join(m: RoomProtocol, request: int, name: str, now: Now = T0) -> list[Effect]:
    return m.join(request, name, f"p-{name}", f"t-{name}", now)


def test_a_join_is_answered_once_its_row_is_durable() -> None:
    m = machine()
    effects = join(m, 1, "Ann")
    store = one(effects, StorePlayer)
    assert store.shard == 0 and store.player.nickname == "Ann" and not only(effects, Reply)
    assert isinstance(one(join(m, 2, "ANN"), Refuse).error, NicknameTaken)  # reserved while the row commits
    joined = m.done(store.step, True, T0)
    assert one(joined, Reply).value == Joined("p-Ann", "Ann", "w0")
    added = one(joined, ToShard)
    assert added.shard == 0 and isinstance(added.event, AddPlayer) and added.event.player.player_id == "p-Ann"
    assert "p-Ann" in m.state.players


def test_joins_in_flight_count_against_the_rooms_cap() -> None:
    """A burst of joins faster than their rows commit cannot overshoot `players_per_room` (a 10,000 cap once let
    10,005 in), and a join that fails gives its seat back."""
    limits = RoomLimits(players_per_room=2)
    state = RoomState(room_id="r", pin="123456", quiz=quiz(), host_token_hash="h", limits=limits)
    m = RoomProtocol(state, Settings(per_shard=10, host_coalesce_s=0.1), homes={0: Home("w0", heard=True)})
    first, second = one(join(m, 1, "A"), StorePlayer), one(join(m, 2, "B"), StorePlayer)
    assert isinstance(one(join(m, 3, "C"), Refuse).error, RoomFull)  # two seats, both taken while committing
    m.done(second.step, False, T0)  # B's row failed: its seat is free again
    third = one(join(m, 4, "C"), StorePlayer)
    m.done(first.step, True, T0)
    m.done(third.step, True, T0)
    assert set(m.state.players) == {"p-A", "p-C"}
    assert isinstance(one(join(m, 5, "D"), Refuse).error, RoomFull)


def test_a_failed_row_frees_the_nickname_and_the_seat() -> None:
    m = machine(per_shard=1)
    store = one(join(m, 1, "Ann"), StorePlayer)
    refused = m.done(store.step, False, T0)
    assert isinstance(one(refused, Refuse).error, Unavailable)
    again = one(join(m, 2, "Ann"), StorePlayer)
    assert again.shard == 0  # the seat is free again


def test_joins_past_a_full_shard_wait_for_one_placement() -> None:
    m = machine(per_shard=1)
    first = one(join(m, 1, "A"), StorePlayer)
    m.done(first.step, True, T0)
    second = join(m, 2, "B")
    assert one(second, StorePlayer).shard == 1 and one(second, PlaceShard).shard == 1
    assert m.done(one(second, StorePlayer).step, True, T0) == []  # stored, but its shard has no home yet
    placed = m.placed(1, "w9", T0)
    assert one(placed, Reply).value == Joined("p-B", "B", "w9")


def test_a_failed_placement_refuses_its_joins_and_voids_stored_rows() -> None:
    m = machine(shards=0)
    first = join(m, 1, "A")
    second = join(m, 2, "B")
    assert len(only(first, PlaceShard)) == 1 and not only(second, PlaceShard)  # one placement for both
    m.done(one(first, StorePlayer).step, True, T0)
    failed = m.placed(0, None, T0)
    assert one(failed, Log).event == "shard_not_placed"
    assert [r.request for r in only(failed, Refuse)] == [1]
    assert one(failed, StoreKick) == StoreKick(None, "p-A")  # stored, then voided: no token without a seat
    late = m.done(one(second, StorePlayer).step, True, T0)
    assert [r.request for r in only(late, Refuse)] == [2] and one(late, StoreKick).player_id == "p-B"
    assert one(join(m, 3, "C"), PlaceShard).shard == 0  # the next join asks again


def test_a_shard_placed_mid_question_is_sent_the_open_question() -> None:
    m = machine(per_shard=1)
    m.done(one(join(m, 1, "A"), StorePlayer).step, True, T0)
    start(m)
    second = join(m, 2, "B")
    placed = m.placed(1, "w1", T0)
    assert ToShard(1, OpenQuestion(0, T0.wall_ms, 1, 0)) in placed
    assert m.done(one(second, StorePlayer).step, True, T0)


def test_a_kick_is_stored_then_told_to_the_shard_and_the_token_is_refused() -> None:
    m = machine()
    m.done(one(join(m, 1, "Ann"), StorePlayer).step, True, T0)
    effects = m.kick(2, "p-Ann", T0)
    store = one(effects, StoreKick)
    assert "p-Ann" not in m.state.players
    after = m.done(store.step or 0, True, T0)
    assert ToShard(0, KickPlayer("p-Ann")) in after and one(after, Reply).request == 2
    assert isinstance(one(m.resume(3, "t-Ann"), Refuse).error, Kicked)
    assert isinstance(one(m.kick(4, "p-Ann", T0), Refuse).error, NotFound)
    assert m.seating.homes[0].size == 0


def test_resume_says_where_the_players_shard_lives() -> None:
    m = machine()
    m.done(one(join(m, 1, "Ann"), StorePlayer).step, True, T0)
    assert one(m.resume(2, "t-Ann"), Reply).value == Whereabouts("p-Ann", "w0")
    assert isinstance(one(m.resume(3, "nobody"), Refuse).error, Unauthorized)
    m.moved(0, "w7", T0)
    assert one(m.resume(4, "t-Ann"), Reply).value == Whereabouts("p-Ann", "w7")


def test_a_moved_shard_hears_who_coordinates_it_and_the_close_in_flight() -> None:
    m = machine(shards=2)
    start(m)
    m.command(2, "close", T0)
    m.shard_closed(0, 0, T0)
    moved = m.moved(1, "w5", T0)
    assert moved == [ToShard(1, Announce()), ToShard(1, CloseQuestion(0))]
    # Shard 0 had closed, but its new home is loaded from storage, where the question is still open (a close is
    # stored only with its reveal): it is closed again, or it would take answers the room no longer counts.
    assert m.moved(0, "w6", T0) == [ToShard(0, Announce()), ToShard(0, CloseQuestion(0))]


def test_a_moved_or_resynced_shard_catches_up_with_a_question_it_missed() -> None:
    """Events sent to a shard's old home are lost: its new home gets the question that opened meanwhile."""
    m = machine(shards=2)
    start(m)
    assert m.moved(1, "w5", T0) == [ToShard(1, Announce()), ToShard(1, OpenQuestion(0, T0.wall_ms, 1, 0))]


def test_a_resync_announces_and_resends_the_open_question() -> None:
    m = machine(shards=2)
    start(m)
    effects = m.announce_all(T0)
    assert ToShard(0, Announce()) in effects and ToShard(1, OpenQuestion(0, T0.wall_ms, 1, 0)) in effects


# --- the host feed ------------------------------------------------------------------------------------------------


def test_the_host_feed_coalesces_to_one_flush_per_interval() -> None:
    m = machine()
    first = m.done(one(join(m, 1, "A"), StorePlayer).step, True, T0)
    assert one(first, Arm) == Arm(Timer.FEED, 0.0)
    second = m.done(one(join(m, 2, "B"), StorePlayer).step, True, T0)
    assert not only(second, Arm)  # already due
    players = one(m.timer_due(Timer.FEED, T0), ToHosts).message
    assert players["type"] == "players" and [j["nickname"] for j in players["joined"]] == ["A", "B"]
    third = m.done(one(join(m, 3, "C"), StorePlayer).step, True, at(0.02))
    assert one(third, Arm).delay_s == pytest.approx(0.08)  # at most once per interval
    start(m, 9, at(1))
    flushed = m.timer_due(Timer.FEED, at(1))
    assert [e.message["type"] for e in only(flushed, ToHosts)] == ["players", "answers"]


def test_the_snapshot_sums_the_shards() -> None:
    m = machine(shards=2)
    start(m)
    m.progress(0, ShardSummary(3, 0, 2, False), False, T0)
    m.summaries({1: ShardSummary(4, 0, 1, False)})
    snapshot = m.snapshot()
    assert (snapshot["connected"], snapshot["answers"], snapshot["shards"]) == (7, 3, 2)
    assert m.host_welcome(T0)["question"]["correct"] == [0]


def test_players_of_the_machine_are_its_own() -> None:
    """What goes to a shard is a copy: the shard's state and the coordinator's never share a player."""
    m = machine()
    joined = m.done(one(join(m, 1, "Ann"), StorePlayer).step, True, T0)
    added = one(joined, ToShard).event
    assert isinstance(added, AddPlayer) and added.player is not m.state.players["p-Ann"]
    assert isinstance(added.player, Player)
