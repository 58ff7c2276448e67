"""The pure rules (SPEC §5) as plain unit tests: no network, no storage, time from a manual clock."""

from __future__ import annotations

import pytest

from quizroom.rooms.game.clock import ManualClock
from quizroom.rooms.game.errors import (
    BadChoice,
    BadNickname,
    BadPhase,
    NicknameTaken,
    RateLimited,
    RoomFull,
    RoomLocked,
    TooLate,
    WrongQuestion,
)
from quizroom.rooms.game.nicknames import normalise_nickname
from quizroom.rooms.game.quiz import Question, Quiz
from quizroom.rooms.game.ratelimit import TokenBucket
from quizroom.rooms.game.rules import Answer, Phase, Player, RoomLimits, RoomState
from quizroom.rooms.game.scoring import answer_points, competition_ranks


@pytest.mark.parametrize(
    ("points", "limit", "response", "expected"),
    [
        (1000, 20_000, 0, 1000),
        (1000, 20_000, 10_000, 750),
        (1000, 20_000, 20_000, 500),
        (1000, 20_000, 25_000, 500),  # in the grace period: clamped to the limit
        (1000, 20_000, 3_333, 917),  # round(916.675)
        (2000, 5_000, 1_250, 1750),
        (0, 20_000, 0, 0),
    ],
)
def test_speed_formula(points: int, limit: int, response: int, expected: int) -> None:
    assert answer_points(points=points, time_limit_ms=limit, response_ms=response, correct=True, streak=1) == expected


def test_wrong_answer_scores_nothing_whatever_the_streak() -> None:
    assert answer_points(points=1000, time_limit_ms=20_000, response_ms=0, correct=False, streak=9) == 0


@pytest.mark.parametrize(("streak", "bonus"), [(1, 0), (2, 100), (3, 200), (6, 500), (7, 500), (30, 500)])
def test_streak_bonus_grows_to_500(streak: int, bonus: int) -> None:
    assert answer_points(points=1000, time_limit_ms=20_000, response_ms=0, correct=True, streak=streak) == 1000 + bonus


def test_no_streak_bonus_on_a_zero_point_question() -> None:
    assert answer_points(points=0, time_limit_ms=20_000, response_ms=0, correct=True, streak=5) == 0


def test_equal_scores_share_a_rank_and_the_next_one_skips() -> None:
    assert competition_ranks([900, 800, 800, 700]) == [1, 2, 2, 4]
    assert competition_ranks([5, 5, 5]) == [1, 1, 1]
    assert competition_ranks([]) == []


def test_nicknames_are_normalised_and_keyed_case_insensitively() -> None:
    assert normalise_nickname("  Ann  ") == ("Ann", "ann")
    assert normalise_nickname("ＡＮＮ")[1] == "ann"  # NFKC folds full-width letters
    assert normalise_nickname("a   b") == ("a b", "a b")
    assert normalise_nickname("x" * 24)[0] == "x" * 24
    for bad in ["", "  ", "x" * 25, "a\u200bb", "\u202eevil", "bell\x07", "\u3164", None, 5]:
        with pytest.raises(BadNickname):
            normalise_nickname(bad)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=20, burst=40, now=0.0)
    assert sum(bucket.allow(0.0) for _ in range(50)) == 40
    assert not bucket.allow(0.0)
    assert bucket.allow(0.05)  # one token back after 1/20 s
    assert not bucket.allow(0.05)
    assert sum(bucket.allow(100.0) for _ in range(50)) == 40  # refills to the burst, no more


# --- RoomState ----------------------------------------------------------------------------------------------------


def room(*, questions: int = 3, limits: RoomLimits | None = None) -> RoomState:
    quiz = Quiz(
        "Q",
        tuple(
            Question(f"q{i}", ("a", "b", "c"), frozenset({i % 3}), time_limit_ms=10_000, points=1000)
            for i in range(questions)
        )
        + (Question("multi", ("a", "b", "c"), frozenset({0, 2}), time_limit_ms=10_000),),
    )
    return RoomState(room_id="r", pin="123456", quiz=quiz, host_token_hash="h", limits=limits or RoomLimits())


def add(state: RoomState, name: str) -> Player:
    nickname, key = state.check_join(name)
    player = Player(name, nickname, key, f"t-{name}", 0, connected=1)
    state.add_player(player)
    return player


def answer(state: RoomState, player: Player, choices: tuple[int, ...], clock: ManualClock) -> Answer:
    submission = state.submit(player, state.question_index, choices, clock.monotonic(), clock.wall_ms())
    assert not submission.duplicate
    assert state.mark_durable(submission.answer)
    return submission.answer


def phase_of(state: RoomState) -> Phase:
    """The phase, read afresh (mypy keeps an attribute narrowed by an assert across calls that change it)."""
    return state.phase


def test_phases_follow_lobby_question_reveal_finished() -> None:
    clock, state = ManualClock(), room(questions=1)
    with pytest.raises(BadPhase):
        state.close()
    state.start(clock.monotonic(), clock.wall_ms())
    assert state.phase is Phase.QUESTION and state.question_index == 0
    with pytest.raises(BadPhase):
        state.start(clock.monotonic(), clock.wall_ms())
    state.close()
    assert state.advance(clock.monotonic(), clock.wall_ms()) is not None  # the multi question
    state.close()
    assert state.advance(clock.monotonic(), clock.wall_ms()) is None
    assert phase_of(state) is Phase.FINISHED
    with pytest.raises(BadPhase):
        state.finish()


def test_streak_counts_consecutive_correct_answers_and_resets_on_a_miss() -> None:
    clock, state = ManualClock(), room(questions=3)
    ann, bob = add(state, "ann"), add(state, "bob")
    state.start(clock.monotonic(), clock.wall_ms())
    answer(state, ann, (0,), clock)
    answer(state, bob, (0,), clock)
    state.close()
    state.advance(clock.monotonic(), clock.wall_ms())
    clock.advance(5)  # half the time: 750 + 100 streak bonus for ann
    second = answer(state, ann, (1,), clock)
    assert second.points == 850 and second.response_ms == 5000
    state.close()  # bob did not answer: his streak resets
    assert (ann.streak, bob.streak) == (2, 0)
    assert ann.score == 1850 and bob.score == 1000


def test_answers_are_judged_in_order_of_the_rules() -> None:
    clock, state = ManualClock(), room(limits=RoomLimits(answer_attempts=3))
    ann = add(state, "ann")
    state.start(clock.monotonic(), clock.wall_ms())
    with pytest.raises(WrongQuestion):
        state.submit(ann, 1, (0,), clock.monotonic(), clock.wall_ms())
    for bad in [(5,), (0, 1), (0, 0)]:
        with pytest.raises(BadChoice):
            state.submit(ann, 0, bad, clock.monotonic(), clock.wall_ms())
    with pytest.raises(RateLimited):
        state.submit(ann, 0, (0,), clock.monotonic(), clock.wall_ms())


def test_late_answers_get_too_late_after_the_grace() -> None:
    clock, state = ManualClock(), room()
    ann, bob = add(state, "ann"), add(state, "bob")
    state.start(clock.monotonic(), clock.wall_ms())
    clock.advance(10.2)  # within the 250 ms grace
    assert answer(state, ann, (0,), clock).points == 500
    clock.advance(0.1)
    with pytest.raises(TooLate):
        state.submit(bob, 0, (0,), clock.monotonic(), clock.wall_ms())


def test_a_repeat_is_a_duplicate_of_the_first_answer() -> None:
    clock, state = ManualClock(), room()
    ann = add(state, "ann")
    state.start(clock.monotonic(), clock.wall_ms())
    first = answer(state, ann, (1,), clock)
    repeat = state.submit(ann, 0, (0,), clock.monotonic(), clock.wall_ms())
    assert repeat.duplicate and repeat.answer is first
    assert ann.score == 0  # the wrong first answer stands


def test_multi_choice_needs_the_exact_set() -> None:
    clock, state = ManualClock(), room(questions=0)
    ann, bob = add(state, "ann"), add(state, "bob")
    state.start(clock.monotonic(), clock.wall_ms())
    assert answer(state, ann, (2, 0), clock).correct
    assert not answer(state, bob, (0,), clock).correct


def test_join_refusals() -> None:
    state = room(limits=RoomLimits(players_per_room=2))
    add(state, "Ann")
    with pytest.raises(NicknameTaken):
        state.check_join("ANN")
    state.locked = True
    with pytest.raises(RoomLocked):
        state.check_join("Bob")
    state.locked = False
    add(state, "Bob")
    with pytest.raises(RoomFull):
        state.check_join("Cid")


def test_a_failed_commit_forgets_the_answer_so_a_retry_is_judged_afresh() -> None:
    clock, state = ManualClock(), room()
    ann = add(state, "ann")
    state.start(clock.monotonic(), clock.wall_ms())
    submission = state.submit(ann, 0, (0,), clock.monotonic(), clock.wall_ms())
    state.drop_pending(submission.answer)
    assert 0 not in ann.answers and ann.score == 0
    assert not state.submit(ann, 0, (0,), clock.monotonic(), clock.wall_ms()).duplicate


def test_visible_score_hides_the_open_questions_points() -> None:
    clock, state = ManualClock(), room()
    ann = add(state, "ann")
    state.start(clock.monotonic(), clock.wall_ms())
    answer(state, ann, (0,), clock)
    assert state.visible_score(ann) == 0 and state.standings()[0].score == 0
    state.close()
    assert state.visible_score(ann) == 1000


def test_restore_rebuilds_scores_and_streaks_from_answers_and_keeps_the_deadline() -> None:
    clock, live = ManualClock(), room()
    ann = add(live, "ann")
    live.start(clock.monotonic(), clock.wall_ms())
    answer(live, ann, (0,), clock)
    live.close()
    live.advance(clock.monotonic(), clock.wall_ms())
    opened_at = live.opened_at_ms
    answer(live, ann, (1,), clock)
    clock.advance(3)

    restored = room()
    restored.restore(
        phase=Phase.QUESTION,
        question_index=1,
        opened_at_ms=opened_at,
        locked=False,
        seq=7,
        players=[Player("ann", "ann", "ann", "t-ann", 0)],
        answers=[
            Answer(a.player_id, a.question, a.choices, a.correct, a.points, a.response_ms, 0)
            for a in ann.answers.values()
        ],
        mono=clock.monotonic() + 500,  # a new process: another monotonic origin
        wall_ms=clock.wall_ms(),
    )
    again = restored.players["ann"]
    assert again.score == ann.score and again.streak == 1  # question 1 is still open: streak as of question 0
    assert restored.deadline_ms == live.deadline_ms
    assert restored.seconds_left(clock.monotonic() + 500) == pytest.approx(7.0)
    assert restored.submit(again, 1, (2,), clock.monotonic() + 500, clock.wall_ms()).duplicate


def test_a_dropped_player_counts_as_answering_for_the_reconnect_grace() -> None:
    """A failover or an outage drops sockets that come back: "everyone answered" must not leave them out."""
    clock, state = ManualClock(), room(limits=RoomLimits(reconnect_grace_s=5.0))
    ann, bob = add(state, "ann"), add(state, "bob")
    state.start(clock.monotonic(), clock.wall_ms())
    answer(state, ann, (0,), clock)
    assert state.still_answering(clock.monotonic()) and not state.everyone_answered(clock.monotonic())
    bob.connected, bob.left_at = 0, clock.monotonic()  # bob's socket dropped, unanswered
    clock.advance(4.9)
    assert not state.everyone_answered(clock.monotonic()), "bob may be on his way back"
    clock.advance(0.2)
    assert state.everyone_answered(clock.monotonic()), "past the grace, bob is gone"
    ann.connected, ann.left_at = 0, clock.monotonic()
    assert not state.still_answering(clock.monotonic()), "ann dropped with her answer in: nobody is waited for"
    assert not state.everyone_answered(clock.monotonic()), "but nobody is connected: no early close"


def test_a_stored_judgment_replaces_the_pending_one_and_settles_the_streak() -> None:
    """An earlier owner of the shard stored another answer for this player: that one counts, once."""
    clock, state = ManualClock(), room()
    ann = add(state, "ann")
    state.start(clock.monotonic(), clock.wall_ms())
    pending = state.submit(ann, 0, (1,), clock.monotonic(), clock.wall_ms()).answer  # wrong (question 0: a)
    state.close()
    assert ann.streak == 0
    stored = Answer("ann", 0, (0,), True, 1000, 900, clock.wall_ms())
    assert state.adopt_stored(pending, stored)
    assert ann.answers[0] is stored and stored.durable and ann.score == 1000 and ann.streak == 1
    assert not state.adopt_stored(pending, stored), "settled once"
    assert state.pending_for(0) == 0


def test_a_shard_dates_a_question_from_its_age_not_from_another_hosts_wall_clock() -> None:
    """The coordinator's host runs 30 s ahead; the question has been open 2 s by its monotonic clock."""
    clock, state = ManualClock(), room()
    add(state, "ann")
    skewed_open_ms = clock.wall_ms() + 30_000 - 2_000
    state.open_at(0, skewed_open_ms, clock.monotonic(), clock.wall_ms(), elapsed_ms=2_000)
    assert state.deadline_ms == clock.wall_ms() - 2_000 + 10_000, "in this host's clock"
    assert state.seconds_left(clock.monotonic()) == pytest.approx(8.0)
    state.open_at(1, skewed_open_ms, clock.monotonic(), clock.wall_ms())  # dated by the wall clock: skewed
    assert state.seconds_left(clock.monotonic()) == pytest.approx(38.0)
