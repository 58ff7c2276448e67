"""The Python client (`quizroom.clients.client`) against a real server on a free port, plus its message parser.

One server for the module (each test opens its own room); the fixture stops it even when a test fails. Close code
4421 (moved) cannot happen on one process, so its tests run the client against fakes on real sockets: tiny
WebSocket "workers" that greet, refuse or move a socket, and a tiny HTTP server that plays the control API's
resume and room-state calls and records what the client asked.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from quizroom.clients.client import (
    MOVED_CLOSE_CODE,
    ApiError,
    HostedRoom,
    HostSocket,
    PlayerSocket,
    PlayerTicket,
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
    RoomState,
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
    # Every test opens rooms and saves quizzes from one address: more than the default creation burst (20) in all.
    flags = ("--create-burst", "200")
    with LocalServer.start(tmp_path_factory.mktemp("client-server"), extra_args=flags) as running:
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


async def test_the_client_keeps_a_quiz_library_and_imports_a_kahoot_sheet(api: QuizroomAPI) -> None:
    quiz_id = await api.create_quiz({**QUIZ, "title": "Client library quiz"})
    page = await api.list_quizzes("client LIBRARY")
    assert [q["quiz_id"] for q in page["quizzes"]] == [quiz_id]
    changed = await api.update_quiz(quiz_id, {**QUIZ, "title": "Client library quiz, v2"})
    assert changed["version"] == 2 and (await api.get_quiz(quiz_id))["title"] == "Client library quiz, v2"
    copy = await api.copy_quiz(quiz_id)
    assert copy["title"] == "Client library quiz, v2 (copy)" and copy["version"] == 1
    exported = await api.export_quiz(quiz_id)
    assert exported["format"] == "quizroom/quiz" and len(exported["questions"]) == 2
    sheet = "Question,Answer 1,Answer 2,Answer 3,Answer 4,Time limit (sec),Correct answer(s)\n"
    sheet += "Two plus two?,3,4,,,20,2\nNo answers?,,,,,20,1\n"
    imported = await api.import_quiz(sheet.encode(), format="csv", title="Client sheet")
    assert imported["imported"] == 1 and [r["row"] for r in imported["refused"]] == [3]
    await api.delete_quiz(copy["quiz_id"])
    with pytest.raises(ApiError) as caught:
        await api.get_quiz(copy["quiz_id"])
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        await api.import_quiz(b"\x00\x01 not a sheet", format="xlsx")
    assert caught.value.status == 422 and caught.value.code == "bad_file"


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
            while (await host.expect(AnswerCount)).answered < 1:  # counts are coalesced: an earlier 0 may come first
                pass
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


async def test_the_client_answers_typed_slider_and_puzzle_questions(api: QuizroomAPI) -> None:
    quiz = {
        "title": "Types",
        "questions": [
            {"type": "type_answer", "text": "Say hi", "accepted": ["hello"], "typo_tolerance": True},
            {"type": "slider", "text": "Pick 4", "min": 0, "max": 10, "step": 0.5, "value": 4, "tolerance": 1},
            {"type": "puzzle", "text": "Order", "items": ["a", "b", "c"]},
            {"type": "poll", "text": "Like it?", "choices": ["yes", "no"]},
        ],
    }
    room = await api.create_room(quiz=quiz)
    ada_ticket, bob_ticket = await api.join(room.pin, "Ada"), await api.join(room.pin, "Bob")
    async with await PlayerSocket.connect(ada_ticket) as ada, await PlayerSocket.connect(bob_ticket):
        await api.command(room, "start")
        typed = await ada.expect(QuestionOpened)
        assert (typed.question_type, typed.max_length, typed.choices, typed.accepted) == ("type_answer", 80, [], None)
        assert (await ada.answer_and_wait(typed.index, text="Helo")).accepted
        await api.command(room, "close")
        result = await ada.expect(Result)
        assert (result.is_correct, result.your_choice, result.accepted) == (True, "Helo", ["hello"])
        board = await ada.expect(Leaderboard)
        assert board.tally is not None and board.tally["answers"][0]["text"] == "Helo"
        await api.command(room, "next")
        slider = await ada.expect(QuestionOpened)
        assert (slider.question_type, slider.min, slider.max, slider.step) == ("slider", 0, 10, 0.5)
        with pytest.raises(SocketRefusal) as refused:
            await ada.answer_and_wait(slider.index, value=4.25)
        assert refused.value.code == "bad_choice"
        assert (await ada.answer_and_wait(slider.index, value=4.5)).accepted
        await api.command(room, "close")
        result = await ada.expect(Result)
        assert (result.is_correct, result.your_choice, result.value, result.tolerance) == (True, 4.5, 4, 1)
        await api.command(room, "next")
        puzzle = await ada.expect(QuestionOpened)
        order = [puzzle.choices.index(item) for item in ("a", "b", "c")]
        assert (await ada.answer_and_wait(puzzle.index, order)).accepted
        await api.command(room, "close")
        result = await ada.expect(Result)
        assert result.is_correct and result.correct == order and result.your_choice == order
        await api.command(room, "next")
        poll = await ada.expect(QuestionOpened)
        assert (await ada.answer_and_wait(poll.index, 1)).accepted
        await api.command(room, "close")
        result = await ada.expect(Result)
        assert result.is_correct is None and result.points == 0 and result.question_type == "poll"
    with pytest.raises(ValueError, match="exactly one"):
        await ada.answer(0, 1, text="x")


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
    with pytest.raises(ApiError) as barred:
        await api.join(room.pin, "ADA", device="a-device-id")
    assert (barred.value.status, barred.value.code) == (423, "kicked")  # the name stays barred in this room


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


# --- sharding extensions against the real server: resume and host_ws_url --------------------------------------


class CountingAPI(QuizroomAPI):
    """The real API client, counting the lookups a socket makes before it reconnects."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.resumes = 0
        self.states = 0

    async def resume(self, pin: str, token: str) -> PlayerTicket:
        self.resumes += 1
        return await super().resume(pin, token)

    async def state(self, room: HostedRoom) -> RoomState:
        self.states += 1
        return await super().state(room)


async def test_resume_names_the_players_socket_and_a_reconnect_resumes_first(
    server: LocalServer, api: QuizroomAPI, room: HostedRoom
) -> None:
    ticket = await api.join(room.pin, "Ada")
    resumed = await api.resume(room.pin, ticket.token)
    assert (resumed.player_id, resumed.token, resumed.pin) == (ticket.player_id, ticket.token, room.pin)
    assert resumed.ws_url == ticket.ws_url  # one process: the shard never moves

    counting = CountingAPI(server.base_url)
    async with counting, await PlayerSocket.connect(ticket, auto_reconnect=True, api=counting) as ada:
        assert ada._ws is not None
        ada._ws.transport.abort()  # a dead network: no close frame
        welcome = await ada.expect(Welcome, within=10)
        assert welcome.player_id == ticket.player_id
        assert (counting.resumes, ada.reconnects) == (1, 1)
        assert ada.ticket is not None and ada.ticket.ws_url == resumed.ws_url
        await api.command(room, "start")
        assert (await ada.expect(QuestionOpened)).index == 0


async def test_resume_with_an_unknown_token_is_401(api: QuizroomAPI, room: HostedRoom) -> None:
    with pytest.raises(ApiError) as caught:
        await api.resume(room.pin, "not-a-token")
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


async def test_resume_with_a_kicked_players_token_is_403(api: QuizroomAPI, room: HostedRoom) -> None:
    ticket = await api.join(room.pin, "Ada")
    await api.kick(room, ticket.player_id)
    with pytest.raises(ApiError) as caught:
        await api.resume(room.pin, ticket.token)
    assert (caught.value.status, caught.value.code) == (403, "kicked")


async def test_room_state_names_the_host_socket_and_a_host_reconnect_asks_for_it(
    server: LocalServer, api: QuizroomAPI, room: HostedRoom
) -> None:
    assert (await api.state(room)).host_ws_url == room.host_ws_url
    counting = CountingAPI(server.base_url)
    async with counting, await HostSocket.connect(room, auto_reconnect=True, api=counting) as host:
        assert host._ws is not None
        host._ws.transport.abort()
        assert isinstance(await host.expect(HostWelcome, within=10), HostWelcome)
        assert (counting.states, host.reconnects) == (1, 1)


# --- close code 4421 (moved), against fake workers and a fake control API ---------------------------------------

PIN = "123456"
TOKEN = "player-token"
HOST_TOKEN = "host-token"


def player_welcome(title: str) -> dict[str, Any]:
    return {
        "type": "welcome",
        "player_id": "p1",
        "nickname": "Ada",
        "pin": PIN,
        "title": title,
        "question_count": 1,
        "phase": "lobby",
        "score": 0,
        "rank": None,
        "now_ms": 1,
    }


def host_welcome(title: str) -> dict[str, Any]:
    return {
        "type": "welcome",
        "role": "host",
        "pin": PIN,
        "title": title,
        "phase": "lobby",
        "question_index": None,
        "question_count": 1,
        "players": 0,
        "connected": 0,
        "now_ms": 1,
    }


@dataclass
class FakeWorker:
    """A WebSocket server that reads the hello, then plays `script[n]` on its n-th connection (the last entry
    repeats): `("welcome", close_code)` greets and then closes with close_code (None: stays open), and
    `("close", close_code)` closes without a greeting."""

    script: list[tuple[str, int | None]]
    welcome: Callable[[str], dict[str, Any]]
    title: str
    hellos: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, ws: ServerConnection) -> None:
        hello = orjson.loads(await ws.recv())
        self.hellos.append(hello["token"])
        action, code = self.script[min(len(self.hellos), len(self.script)) - 1]
        if action == "welcome":
            await ws.send(orjson.dumps(self.welcome(f"{self.title} #{len(self.hellos)}")).decode())
        if code is None:
            await ws.wait_closed()
        else:
            await ws.close(code, "test")


@asynccontextmanager
async def fake_worker(
    title: str, *script: tuple[str, int | None], welcome: Callable[[str], dict[str, Any]] = player_welcome
) -> AsyncIterator[FakeWorker]:
    worker = FakeWorker(list(script), welcome, title)
    async with serve(worker.handle, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        worker.url = f"ws://127.0.0.1:{port}/ws/play/{PIN}"
        yield worker


@dataclass
class FakeRequest:
    method: str
    path: str
    authorization: str | None
    body: bytes


@dataclass
class FakeAPI:
    """An HTTP/1.1 server answering `replies[(method, path)]` in order (the last one repeats); records requests."""

    replies: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]
    requests: list[FakeRequest] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head[1:])}
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        self.requests.append(FakeRequest(method, path, headers.get("authorization"), body))
        seen = sum(1 for r in self.requests if (r.method, r.path) == (method, path))
        scripted = self.replies.get((method, path), [(404, {"error": {"code": "not_found", "message": "no"}})])
        status, payload = scripted[min(seen, len(scripted)) - 1]
        data = orjson.dumps(payload)
        writer.write(
            f"HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()


@asynccontextmanager
async def fake_api(replies: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]) -> AsyncIterator[FakeAPI]:
    api = FakeAPI(replies)
    http_server = await asyncio.start_server(api.handle, "127.0.0.1", 0)
    try:
        api.url = f"http://127.0.0.1:{http_server.sockets[0].getsockname()[1]}"
        yield api
    finally:
        http_server.close()
        await http_server.wait_closed()


def resume_replies(*replies: tuple[int, dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]:
    return {("POST", f"/api/rooms/{PIN}/resume"): list(replies)}


def ticket_for(worker: FakeWorker, api_url: str | None) -> PlayerTicket:
    return PlayerTicket(PIN, "Ada", "p1", TOKEN, worker.url, api_url)


async def test_4421_after_welcome_resumes_and_reconnects_to_the_url_resume_returns() -> None:
    async with (
        fake_worker("A", ("welcome", MOVED_CLOSE_CODE)) as old,
        fake_worker("B", ("welcome", None)) as new,
        fake_api(resume_replies((200, {"player_id": "p1", "ws_url": new.url}))) as api,
    ):
        async with await PlayerSocket.connect(ticket_for(old, api.url), auto_reconnect=True) as ada:
            assert ada.welcome.title == "A #1"
            welcome = await ada.expect(Welcome, within=10)
            assert welcome.title == "B #1"
            assert (ada.url, ada.reconnects) == (new.url, 1)
            assert ada.ticket is not None and ada.ticket.ws_url == new.url
        assert [(r.method, r.path, r.authorization, r.body) for r in api.requests] == [
            ("POST", f"/api/rooms/{PIN}/resume", f"Bearer {TOKEN}", b"")
        ]
        assert old.hellos == [TOKEN] and new.hellos == [TOKEN]


async def test_4421_at_hello_on_the_first_connection_is_followed_too() -> None:
    async with (
        fake_worker("A", ("close", MOVED_CLOSE_CODE)) as old,
        fake_worker("B", ("welcome", None)) as new,
        fake_api(resume_replies((200, {"player_id": "p1", "ws_url": new.url}))) as api,
    ):
        async with await PlayerSocket.connect(ticket_for(old, api.url), auto_reconnect=True) as ada:
            assert ada.welcome.title == "B #1"
        # Without auto_reconnect the caller sees the code and decides.
        with pytest.raises(SessionEnded) as caught:
            await PlayerSocket.connect(ticket_for(old, api.url))
        assert caught.value.code == MOVED_CLOSE_CODE


async def test_503_during_a_failover_is_retried_until_resume_answers() -> None:
    unavailable = (503, {"error": {"code": "unavailable", "message": "failover"}})
    async with (
        fake_worker("A", ("welcome", 1001)) as old,
        fake_worker("B", ("welcome", None)) as new,
        fake_api(resume_replies(unavailable, unavailable, (200, {"player_id": "p1", "ws_url": new.url}))) as api,
    ):
        async with await PlayerSocket.connect(ticket_for(old, api.url), auto_reconnect=True) as ada:
            assert (await ada.expect(Welcome, within=10)).title == "B #1"
        assert len(api.requests) == 3


async def test_a_resume_that_cannot_reach_the_server_falls_back_to_the_old_url() -> None:
    async with fake_worker("A", ("welcome", 1001), ("welcome", None)) as only:
        async with fake_api({}) as gone:
            unreachable = gone.url  # the server is closed when the block ends: connections are refused
        async with await PlayerSocket.connect(ticket_for(only, unreachable), auto_reconnect=True) as ada:
            assert (await ada.expect(Welcome, within=10)).title == "A #2"
            assert (ada.url, ada.reconnects) == (only.url, 1)


async def test_a_resume_refusal_ends_the_session_with_the_matching_close_code() -> None:
    kicked = (403, {"error": {"code": "kicked", "message": "removed by the host"}})
    async with fake_worker("A", ("welcome", MOVED_CLOSE_CODE)) as old, fake_api(resume_replies(kicked)) as api:
        async with await PlayerSocket.connect(ticket_for(old, api.url), auto_reconnect=True) as ada:
            with pytest.raises(SessionEnded) as caught:
                await ada.expect(Welcome, within=10)
        assert caught.value.code == 4403 and old.hellos == [TOKEN]


async def test_host_4421_refreshes_host_ws_url_from_the_room_state() -> None:
    async with (
        fake_worker("A", ("welcome", MOVED_CLOSE_CODE), welcome=host_welcome) as old,
        fake_worker("B", ("welcome", None), welcome=host_welcome) as new,
    ):
        state = {
            "pin": PIN,
            "phase": "lobby",
            "question_index": None,
            "question_count": 1,
            "players": 0,
            "connected": 0,
            "answers": 0,
            "host_ws_url": new.url,
        }
        async with fake_api({("GET", f"/api/rooms/{PIN}"): [(200, state)]}) as api:
            room = HostedRoom("r1", PIN, HOST_TOKEN, f"{api.url}/?pin={PIN}", old.url, api.url)
            async with await HostSocket.connect(room, auto_reconnect=True) as host:
                assert isinstance(host.greeting, HostWelcome) and host.greeting.title == "A #1"
                assert (await host.expect(HostWelcome, within=10)).title == "B #1"
                assert host.room is not None and host.room.host_ws_url == new.url
            assert [(r.method, r.path, r.authorization) for r in api.requests] == [
                ("GET", f"/api/rooms/{PIN}", f"Bearer {HOST_TOKEN}")
            ]
            assert old.hellos == [HOST_TOKEN] and new.hellos == [HOST_TOKEN]


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


# --- reconnecting on send, and answers lost with a dropped socket ----------------------------------------------


async def test_host_run_after_the_server_restarted_reconnects_instead_of_raising(tmp_path: Any) -> None:
    """SIGTERM closes the host socket with 1001; with auto_reconnect the next command reconnects and goes through
    (it used to raise a bare ConnectionClosedOK: only `recv` reconnected)."""
    import signal

    from tests.serverproc import ServerProcess

    server = ServerProcess(f"sqlite:///{tmp_path / 'q.db'}", tmp_path).start()
    try:
        async with QuizroomAPI(server.url) as api:
            room = await api.create_room(quiz=QUIZ)
            ticket = await api.join(room.pin, "Ada")
            async with await HostSocket.connect(room, auto_reconnect=True) as host:
                server.kill(signal.SIGTERM)
                assert host._ws is not None
                await host._ws.wait_closed()
                assert host.close_code == 1001
                server.start()
                state = await host.run("start")
                assert state.phase == "question" and host.reconnects == 1
                assert isinstance(await host.expect(HostWelcome), HostWelcome)  # the fresh greeting is kept for recv
            async with await PlayerSocket.connect(ticket) as ada:
                assert ada.welcome.phase == "question"
    finally:
        server.kill()


async def test_an_answer_lost_with_a_dropped_socket_is_sent_again_after_the_reconnect() -> None:
    answers: list[dict[str, Any]] = []

    async def handle(ws: ServerConnection) -> None:
        await ws.recv()  # hello
        await ws.send(orjson.dumps(player_welcome("W")).decode())
        answers.append(orjson.loads(await ws.recv()))
        if len(answers) == 1:
            await ws.close(1001, "going away")  # the answer was read, never acknowledged
            return
        ack = {"type": "answer_ack", "question": 0, "accepted": True, "duplicate": False, "response_ms": 5}
        await ws.send(orjson.dumps(ack).decode())
        await ws.wait_closed()

    async with serve(handle, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        ticket = PlayerTicket(PIN, "Ada", "p1", TOKEN, f"ws://127.0.0.1:{port}/ws/play/{PIN}")
        async with await PlayerSocket.connect(ticket, auto_reconnect=True) as ada:
            ack = await ada.answer_and_wait(0, 2, within=10)
            assert ack.accepted and ada.reconnects == 1
            assert answers == [{"type": "answer", "question": 0, "choice": 2}] * 2
            assert isinstance(await ada.expect(Welcome, within=1), Welcome)  # the reconnect's welcome is not lost


def test_the_client_names_its_extra_when_httpx_is_missing() -> None:
    import subprocess
    import sys

    script = "import sys; sys.modules['httpx'] = None\nimport quizroom.clients.client"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "pip install 'quizroom[client]'" in done.stderr
