"""The classroom's rules in the room protocol, driven by hand like tests/unit/test_protocol.py: the "get ready"
pause, a room that moves on without its host (`auto_advance`), kicks that stick, and a host's welcome that restores
the reveal and the podium."""

from __future__ import annotations

import pytest

from quizroom.rooms.game.effects import (
    Arm,
    Disarm,
    Effect,
    Log,
    Persist,
    Refuse,
    Reply,
    StoreKick,
    StorePlayer,
    Timer,
    ToShards,
)
from quizroom.rooms.game.errors import BadPhase, InvalidInput, Removed
from quizroom.rooms.game.events import CloseQuestion, GetReady, OpenQuestion, RevealQuestion
from quizroom.rooms.game.options import RoomOptions, parse_options
from quizroom.rooms.game.protocol import RoomProtocol, Settings
from quizroom.rooms.game.rules import Phase, Player, RoomLimits, RoomState
from quizroom.rooms.game.seating import Home
from tests.unit.test_protocol import T0, at, one, only, persisted, quiz, reveal, start, to_hosts, viewed


def machine(options: RoomOptions, *, questions: int = 2, alone_s: float = 60.0) -> RoomProtocol:
    state = RoomState(
        room_id="r", pin="123456", quiz=quiz(questions), host_token_hash="h", limits=RoomLimits(), options=options
    )
    settings = Settings(per_shard=1_500, host_coalesce_s=0.1, auto_advance_after_s=alone_s)
    return RoomProtocol(state, settings, homes={0: Home("w0", heard=True)})


def arms(effects: list[Effect], timer: Timer) -> list[Arm]:
    return [e for e in effects if isinstance(e, Arm) and e.timer is timer]


# --- get ready ----------------------------------------------------------------------------------------------------


def test_get_ready_comes_first_and_the_question_opens_when_it_ends() -> None:
    m = machine(RoomOptions(intro_ms=3_000))
    effects = m.command(1, "start", T0)
    assert only(effects, Persist) == [], "the pause stores nothing"
    assert one(effects, ToShards).event == GetReady(0, 3_000)
    ready = to_hosts(effects, "get_ready")[0]
    assert ready["index"] == 0 and ready["text"] == "q0" and ready["opens_at_ms"] == T0.wall_ms + 3_000
    assert "choices" not in ready and "correct" not in ready
    assert arms(effects, Timer.INTRO)[0].delay_s == 3.0
    assert m.state.phase is Phase.LOBBY and m.busy
    assert m.host_welcome(at(1))["get_ready"]["index"] == 0, "a host who reloads during the pause sees it"
    # A command meanwhile waits; the question opens (and is timed) from the end of the pause.
    assert m.command(2, "close", at(1)) == []
    opening = m.timer_due(Timer.INTRO, at(3))
    after = persisted(m, opening, at(3))
    opened, closed = (e.event for e in only(after, ToShards))
    assert isinstance(opened, OpenQuestion) and opened.opened_at_ms == at(3).wall_ms
    assert closed == CloseQuestion(0), "the close that waited runs once the question is open"
    assert m.state.deadline_ms == at(3).wall_ms + 10_000
    assert one([e for e in after if isinstance(e, Reply) and e.request == 1], Reply).value["phase"] == "question"
    assert "get_ready" not in m.host_welcome(at(4))


def test_without_an_intro_a_question_opens_at_once() -> None:
    m = machine(RoomOptions())
    effects = m.command(1, "start", T0)
    assert only(effects, ToShards) == [] and len(only(effects, Persist)) == 1


def test_a_command_out_of_phase_is_refused_before_any_pause() -> None:
    m = machine(RoomOptions(intro_ms=3_000))
    refused = one(m.command(1, "next", T0), Refuse)
    assert isinstance(refused.error, BadPhase)
    assert not m.busy


def test_next_after_the_last_question_goes_to_the_podium_without_a_pause() -> None:
    m = machine(RoomOptions(intro_ms=2_000), questions=1)
    m.command(1, "start", T0)
    persisted(m, m.timer_due(Timer.INTRO, at(2)), at(2))
    reveal(m, m.command(2, "close", at(1)), at(1))
    effects = m.command(3, "next", at(2))
    assert only(effects, ToShards) == [] and m.state.phase is Phase.FINISHED


# --- auto-advance -------------------------------------------------------------------------------------------------


def test_an_auto_advance_room_moves_on_after_its_host_has_been_gone_long_enough() -> None:
    m = machine(RoomOptions(auto_advance=True), alone_s=60)
    m.hosts_changed(1, T0)
    start(m)
    revealed = reveal(m, m.command(2, "close", at(1)), at(1))
    assert arms(revealed, Timer.AUTO_ADVANCE) == [], "a host is there"
    gone = m.hosts_changed(0, at(2))
    assert arms(gone, Timer.AUTO_ADVANCE)[0].delay_s == 60
    back = m.hosts_changed(1, at(3))
    assert Disarm(Timer.AUTO_ADVANCE) in back, "a host who comes back stops the count"
    assert arms(m.hosts_changed(0, at(4)), Timer.AUTO_ADVANCE)
    advanced = m.timer_due(Timer.AUTO_ADVANCE, at(64))
    assert any(isinstance(e, Log) and e.event == "auto_advance" for e in advanced)
    opened = persisted(m, advanced, at(64))
    assert isinstance(one(opened, ToShards).event, OpenQuestion) and m.state.question_index == 1
    assert only(opened, Reply) == [], "nobody asked: only the hosts hear the state"
    assert to_hosts(opened, "state")[0]["question_index"] == 1


def test_an_auto_advance_room_finishes_after_the_last_reveal_with_no_host() -> None:
    m = machine(RoomOptions(auto_advance=True), questions=1, alone_s=5)
    start(m)
    revealed = reveal(m, m.command(2, "close", at(1)), at(1))
    assert arms(revealed, Timer.AUTO_ADVANCE), "nobody was ever there: the reveal starts the count"
    finishing = m.timer_due(Timer.AUTO_ADVANCE, at(6))
    assert m.state.phase is Phase.FINISHED
    assert only(finishing, Persist) == []  # the podium is read first, then stored


def test_a_room_without_auto_advance_waits_for_its_host() -> None:
    m = machine(RoomOptions(auto_advance=False), alone_s=1)
    start(m)
    revealed = reveal(m, m.command(2, "close", at(1)), at(1))
    assert arms(revealed, Timer.AUTO_ADVANCE) == [] and arms(m.hosts_changed(0, at(2)), Timer.AUTO_ADVANCE) == []
    assert m.timer_due(Timer.AUTO_ADVANCE, at(90)) == [] and m.state.phase is Phase.REVEAL


def test_a_late_auto_advance_timer_does_nothing_once_a_host_is_back() -> None:
    m = machine(RoomOptions(auto_advance=True), alone_s=5)
    start(m)
    reveal(m, m.command(2, "close", at(1)), at(1))
    m.hosts_changed(1, at(5.9))
    assert m.timer_due(Timer.AUTO_ADVANCE, at(6)) == [] and m.state.phase is Phase.REVEAL


# --- kicks that stick ---------------------------------------------------------------------------------------------


def join(m: RoomProtocol, nickname: str, device: str = "", request: int = 10) -> Player:
    effects = m.join(request, nickname, f"p-{nickname}", f"t-{nickname}", T0, device)
    stored = one(effects, StorePlayer)
    m.done(stored.step, True, T0)
    return m.state.players[f"p-{nickname}"]


def test_a_kicked_name_its_look_alikes_and_its_device_cannot_join_again() -> None:
    m = machine(RoomOptions())
    coco = join(m, "Coco", device="dev-coco")
    kicked = one(m.kick(1, coco.player_id, T0), StoreKick)
    assert kicked.step is not None
    m.done(kicked.step, True, T0)
    # The same name in other case, an all-Cyrillic look-alike, and the kicked device under a new name.
    for nickname, device in (("Coco", ""), ("COCO", ""), ("\u0441\u043e\u0441\u043e", ""), ("Cocoa", "dev-coco")):
        refused = one(m.join(20, nickname, "p-x", "t-x", T0, device), Refuse)
        assert isinstance(refused.error, Removed), nickname
        assert refused.error.status == 423 and refused.error.code == "kicked"
    assert join(m, "Bob", device="dev-bob").nickname == "Bob", "anyone else still joins"


# --- the host's welcome -------------------------------------------------------------------------------------------


def test_a_host_welcome_at_a_reveal_carries_the_counts_and_the_leaderboard_and_at_the_end_the_podium() -> None:
    m = machine(RoomOptions(), questions=1)
    start(m)
    revealed = reveal(m, m.command(2, "close", at(1)), at(1))
    event = one(revealed, ToShards).event
    assert isinstance(event, RevealQuestion)
    welcome = m.host_welcome(at(2))
    assert welcome["result"]["counts"] == list(event.board["counts"]) and welcome["result"]["correct"] == [0]
    assert welcome["leaderboard"] == event.board
    finishing = m.command(3, "next", at(3))
    persisted(m, viewed(m, finishing, now=at(3)), at(3))
    assert "podium" in m.host_welcome(at(4)) and "result" not in m.host_welcome(at(4))


# --- options ------------------------------------------------------------------------------------------------------


def test_room_options_parse_and_round_trip() -> None:
    options = parse_options({"auto_advance": True, "intro_ms": 2500}, default_intro_ms=0)
    assert options == RoomOptions(auto_advance=True, intro_ms=2500)
    assert RoomOptions.from_json(options.to_json()) == options
    assert RoomOptions.from_json("{}") == RoomOptions()
    assert parse_options({}, default_intro_ms=3000).intro_ms == 3000
    for body, where in (
        ({"auto_advance": "yes"}, "auto_advance"),
        ({"intro_ms": -1}, "intro_ms"),
        ({"intro_ms": 10_001}, "intro_ms"),
        ({"intro_ms": True}, "intro_ms"),
        ({"friendly_names": 1}, "friendly_names"),
    ):
        with pytest.raises(InvalidInput) as caught:
            parse_options(body, default_intro_ms=0)
        assert caught.value.field == where


def test_a_room_with_friendly_names_names_its_players_and_never_twice() -> None:
    import random

    state = RoomState(
        room_id="r",
        pin="123456",
        quiz=quiz(1),
        host_token_hash="h",
        limits=RoomLimits(),
        options=RoomOptions(friendly_names=True),
    )
    m = RoomProtocol(state, Settings(), homes={0: Home("w0", heard=True)}, rng=random.Random(7))
    names = {join(m, f"typed{i}", request=100 + i).nickname for i in range(200)}
    assert len(names) == 200 and not any(name.startswith("typed") for name in names)
    assert all(len(name.split()) >= 2 for name in names)
