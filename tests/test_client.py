"""The Python client (`quizroom.clients.client`) against a real server on a free port, plus its message parser.

One server for the module (each test opens its own room); the fixture stops it even when a test fails.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from quizroom.clients.client import (
    ApiError,
    HostedRoom,
    HostSocket,
    PlayerSocket,
    QuizroomAPI,
    SessionEnded,
    SocketRefusal,
)
from quizroom.clients.local_server import LocalServer
from quizroom.clients.messages import (
    AnswerAck,
    AnswerCount,
    Finished,
    HostResult,
    HostWelcome,
    Leaderboard,
    PlayersChanged,
    Pong,
    ProtocolError,
    QuestionOpened,
    Result,
    UnknownMessage,
    Welcome,
    parse_message,
)

QUIZ: dict[str, Any] = {
    "title": "Client quiz",
    "questions": [
        {"text": "Pick a", "choices": ["a", "b", "c"], "correct": [0], "time_limit_ms": 30000},
        {"text": "Pick a and c", "choices": ["a", "b", "c"], "correct": [0, 2], "time_limit_ms": 30000},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path_factory.mktemp("client-server")) as running:
        yield running


@pytest.fixture
async def api(server: LocalServer) -> Any:
    async with QuizroomAPI(server.base_url) as client:
        yield client


@pytest.fixture
async def room(api: QuizroomAPI) -> HostedRoom:
    return await api.create_room(quiz=QUIZ)


# --- HTTP -----------------------------------------------------------------------------------------------------


async def test_create_room_from_a_stored_quiz_returns_pin_and_socket_urls(api: QuizroomAPI) -> None:
    quiz_id = await api.create_quiz(QUIZ)
    assert (await api.get_quiz(quiz_id))["title"] == QUIZ["title"]
    room = await api.create_room(quiz_id=quiz_id)
    assert room.pin.isdigit() and len(room.pin) == 6
    assert room.host_ws_url.startswith("ws://")
    assert room.pin in room.join_url
    state = await api.state(room)
    assert (state.phase, state.question_count, state.players) == ("lobby", 2, 0)


async def test_invalid_quiz_is_refused_with_422_naming_the_field(api: QuizroomAPI) -> None:
    bad = {"title": "x", "questions": [{"text": "q", "choices": ["only one"], "correct": [0]}]}
    with pytest.raises(ApiError) as caught:
        await api.create_room(quiz=bad)
    assert caught.value.status == 422
    assert "choices" in caught.value.message


async def test_join_errors_carry_status_and_code(api: QuizroomAPI, room: HostedRoom) -> None:
    await api.join(room.pin, "Ada")
    cases = [("000000", "Bob", 404), (room.pin, "ADA", 409), (room.pin, "  ", 422), (room.pin, "a\u200bb", 422)]
    for pin, nickname, status in cases:
        with pytest.raises(ApiError) as caught:
            await api.join(pin, nickname)
        assert caught.value.status == status, (pin, nickname)
    await api.command(room, "lock")
    with pytest.raises(ApiError) as caught:
        await api.join(room.pin, "Cy")
    assert caught.value.status == 423


async def test_command_out_of_phase_is_409_bad_phase(api: QuizroomAPI, room: HostedRoom) -> None:
    await api.join(room.pin, "Ada")
    assert (await api.command(room, "start")).phase == "question"
    with pytest.raises(ApiError) as caught:
        await api.command(room, "start")
    assert (caught.value.status, caught.value.code) == (409, "bad_phase")


# --- sockets --------------------------------------------------------------------------------------------------


async def test_full_game_over_sockets_scores_results_and_podium(api: QuizroomAPI, room: HostedRoom) -> None:
    async with await HostSocket.connect(room) as host:
        assert isinstance(host.greeting, HostWelcome) and host.greeting.phase == "lobby"
        ada_ticket, bob_ticket = await api.join(room.pin, "Ada"), await api.join(room.pin, "Bob")
        async with await PlayerSocket.connect(ada_ticket) as ada, await PlayerSocket.connect(bob_ticket) as bob:
            assert ada.welcome.phase == "lobby" and ada.welcome.nickname == "Ada"
            joined = await host.expect(PlayersChanged)
            assert {p.nickname for p in joined.joined} <= {"Ada", "Bob"}

            assert (await host.run("start")).phase == "question"
            with pytest.raises(SocketRefusal) as refused:
                await host.run("start")  # a retried start never starts twice
            assert refused.value.code == "bad_phase"
            host_question = await host.expect(QuestionOpened)
            assert host_question.correct == [0]
            question = await ada.expect(QuestionOpened)
            assert question.correct is None and not question.multi
            await bob.expect(QuestionOpened)

            ack = await ada.answer_and_wait(question.index, 0)
            assert ack.accepted and not ack.duplicate
            assert (await host.expect(AnswerCount)).answered >= 1
            await bob.answer_and_wait(question.index, 1)

            ada_result = await ada.expect(Result)
            assert ada_result.is_correct and ada_result.your_choice == 0 and ada_result.rank == 1
            assert 500 <= ada_result.points <= 1000 and ada_result.score == ada_result.points
            bob_result = await bob.expect(Result)
            assert (bob_result.is_correct, bob_result.points, bob_result.streak) == (False, 0, 0)
            board = await ada.expect(Leaderboard)
            assert [e.nickname for e in board.top] == ["Ada", "Bob"] and board.counts == [1, 1, 0]
            assert (await host.expect(HostResult)).counts == [1, 1, 0]

            await host.command("next")
            multi = await ada.expect(QuestionOpened)
            assert multi.multi and multi.index == 1
            await bob.expect(QuestionOpened)
            assert (await ada.answer_and_wait(1, [2, 0])).accepted
            assert (await bob.answer_and_wait(1, [0])).accepted
            ada_multi = await ada.expect(Result)
            assert ada_multi.is_correct and ada_multi.your_choice == [0, 2] and ada_multi.streak == 2
            assert not (await bob.expect(Result)).is_correct

            await host.command("next")
            finished = await ada.expect(Finished)
            assert [e.nickname for e in finished.podium] == ["Ada", "Bob"]
            assert finished.rank == 1 and finished.score == ada_multi.score

    rows = list(csv.reader(io.StringIO(await api.results_csv(room))))
    assert rows[0] == ["player_id", "nickname", "question", "choices", "correct", "points", "response_ms"]
    assert sorted((r[1], r[2], r[3]) for r in rows[1:]) == [
        ("Ada", "0", "0"),
        ("Ada", "1", "0|2"),
        ("Bob", "0", "1"),
        ("Bob", "1", "0"),
    ]
    results = await api.results(room)
    assert sum(a["points"] for a in results["players"][0]["answers"]) == results["players"][0]["score"]


async def test_repeated_answer_is_acked_as_duplicate_and_scored_once(api: QuizroomAPI, room: HostedRoom) -> None:
    ada_ticket, bob_ticket = await api.join(room.pin, "Ada"), await api.join(room.pin, "Bob")
    # Bob, connected and silent, keeps the question open after Ada answers.
    async with await PlayerSocket.connect(ada_ticket) as ada, await PlayerSocket.connect(bob_ticket):
        await api.command(room, "start")
        question = await ada.expect(QuestionOpened)
        first = await ada.answer_and_wait(question.index, 0)
        again = await ada.answer_and_wait(question.index, 0)
        assert first.accepted and again.accepted and again.duplicate
        assert again.response_ms == first.response_ms
        await api.command(room, "close")
        result = await ada.expect(Result)
        assert result.score == result.points > 0


async def test_reconnect_with_same_token_resumes_and_replaces_the_old_socket(
    api: QuizroomAPI, room: HostedRoom
) -> None:
    ticket, bob_ticket = await api.join(room.pin, "Ada"), await api.join(room.pin, "Bob")
    bob = await PlayerSocket.connect(bob_ticket)  # keeps the question open
    old = await PlayerSocket.connect(ticket)
    await api.command(room, "start")
    question = await old.expect(QuestionOpened)
    await old.answer_and_wait(question.index, 0)

    async with await PlayerSocket.connect(ticket) as new:
        welcome = new.welcome
        assert welcome.phase == "question" and welcome.answered
        assert welcome.question is not None and welcome.question.index == question.index
        with pytest.raises(SessionEnded) as caught:
            await old.expect(Welcome, within=5)
        assert caught.value.code == 4409
    await bob.close()


async def test_auto_reconnect_yields_a_fresh_welcome_after_a_dropped_connection(
    api: QuizroomAPI, room: HostedRoom
) -> None:
    ticket = await api.join(room.pin, "Ada")
    async with await PlayerSocket.connect(ticket, auto_reconnect=True) as ada:
        assert ada._ws is not None
        ada._ws.transport.abort()  # what a dead network looks like from here: no close frame at all
        welcome = await ada.expect(Welcome, within=10)
        assert welcome.player_id == ticket.player_id and welcome.phase == "lobby"
        await api.command(room, "start")
        assert (await ada.expect(QuestionOpened)).index == 0


async def test_kicked_player_is_closed_with_4403_and_cannot_come_back(api: QuizroomAPI, room: HostedRoom) -> None:
    ticket = await api.join(room.pin, "Ada")
    async with await PlayerSocket.connect(ticket, auto_reconnect=True) as ada:
        await api.kick(room, ticket.player_id)
        with pytest.raises(SessionEnded) as caught:
            await ada.expect(Welcome, within=5)
        assert caught.value.code == 4403
    with pytest.raises(SessionEnded) as refused:
        await PlayerSocket.connect(ticket)
    assert refused.value.code in {4401, 4403}  # a revoked token: "bad token" or, more telling, "kicked"


async def test_ping_echoes_t_and_estimates_the_server_clock(api: QuizroomAPI, room: HostedRoom) -> None:
    ticket = await api.join(room.pin, "Ada")
    async with await PlayerSocket.connect(ticket) as ada:
        t = await ada.ping()
        pong = await ada.expect(Pong)
        assert pong.t == t
        assert abs(ada.clock_offset_ms) < 1000  # same machine
        assert abs(ada.server_now_ms() - pong.now_ms) < 1000


async def test_bad_token_is_refused_with_4401(server: LocalServer, api: QuizroomAPI, room: HostedRoom) -> None:
    ticket = await api.join(room.pin, "Ada")
    forged = type(ticket)(ticket.pin, ticket.nickname, ticket.player_id, "not-the-token", ticket.ws_url)
    with pytest.raises(SessionEnded) as caught:
        await asyncio.wait_for(PlayerSocket.connect(forged), 10)
    assert caught.value.code == 4401


# --- parsing (no network) -------------------------------------------------------------------------------------


def test_unknown_message_types_are_kept_not_rejected() -> None:
    message = parse_message(b'{"type": "confetti", "colour": "gold"}')
    assert isinstance(message, UnknownMessage) and message.data["colour"] == "gold"


def test_missing_or_mistyped_required_fields_raise_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_message('{"type": "answer_ack", "question": 0}')
    with pytest.raises(ProtocolError):
        parse_message('{"type": "pong", "now_ms": "soon"}')
    with pytest.raises(ProtocolError):
        parse_message("[1, 2]")
    with pytest.raises(ProtocolError):
        parse_message("not json")


def test_player_and_host_variants_of_welcome_and_result_are_told_apart() -> None:
    player = parse_message(
        '{"type":"result","seq":3,"question":0,"correct":[1],"your_choice":null,"is_correct":false,'
        '"points":0,"score":0,"rank":2,"streak":0}'
    )
    assert isinstance(player, Result) and player.your_choice is None
    host = parse_message('{"type":"result","seq":3,"question":0,"correct":[1],"counts":[0,2],"answered":2,"players":2}')
    assert isinstance(host, HostResult) and host.counts == [0, 2]
    host_welcome = parse_message(
        '{"type":"welcome","role":"host","pin":"123456","title":"T","phase":"lobby","question_index":null,'
        '"question_count":1,"players":1,"connected":0,"now_ms":1,"player_list":[{"player_id":"p1","nickname":"A"}]}'
    )
    assert isinstance(host_welcome, HostWelcome) and host_welcome.player_list[0].nickname == "A"
    ack = parse_message('{"type":"answer_ack","question":1,"accepted":true,"duplicate":false,"response_ms":12}')
    assert isinstance(ack, AnswerAck) and ack.response_ms == 12
