"""Hardening: abuse, faults and bad input against a real server — refused early, with nothing lost, no one let in.

Handshakes are spoken by hand here (`RawSocket`) so that the tests see what a browser or a script would: the HTTP
status and headers of a refused upgrade, close codes of the protocol layer, half-sent requests.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from quizroom.rooms.game.errors import BadNickname
from quizroom.rooms.game.nicknames import normalise_nickname, parse_blocklist
from quizroom.server.admission import Admission, client_address, parse_networks
from tests.gameclient import Host, Player, quiz
from tests.serverproc import ServerProcess

WAIT = 10.0
ALLOWED_ORIGIN = "https://allowed.example"
BLOCKED_WORDS = "# words no nickname may contain\nbadword\nsnark\n"
FLAGS = (
    "--allowed-origins",
    ALLOWED_ORIGIN,
    "--max-message-bytes",
    "32768",  # room for a JSON document nested 10,000 deep
    "--send-queue",
    "8",
    "--rate-per-second",
    "100000",  # the slow consumer must be able to ask for far more than it reads
    "--rate-burst",
    "100000",
    "--request-timeout-s",
    "1",
)


# --- a WebSocket client spoken by hand ---------------------------------------------------------------------------


@dataclass
class RawSocket:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def open(
        cls, port: int, path: str, headers: dict[str, str] | None = None, *, rcvbuf: int | None = None
    ) -> RawSocket:
        """Connect and send an upgrade request; `status` and `headers` are the server's answer to it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small receive window, so that a client that stops reading pushes back quickly
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024 if rcvbuf else 1 << 16)
        raw = cls(reader, writer)
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        raw.status = int(status_line.split()[1])
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                raw.headers[name.strip().lower()] = value.strip()
        return raw

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send_text(self, text: str | bytes) -> None:
        self.send_frame(0x1, text if isinstance(text, bytes) else text.encode())

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def close_code(self, timeout: float = WAIT) -> tuple[int, int]:
        """Read until the server's close frame; returns (close code, text frames read before it)."""
        frames = 0
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await self.read_frame()
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005, frames
                frames += opcode == 0x1

    def close(self) -> None:
        self.writer.close()


async def handshake_status(port: int, headers: dict[str, str] | None = None, path: str = "/ws/play/123456") -> int:
    raw = await RawSocket.open(port, path, headers)
    raw.close()
    return raw.status


# --- a shared server ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("hardening")
    blocklist = workdir / "blocked.txt"
    blocklist.write_text(BLOCKED_WORDS, encoding="utf-8")
    server = ServerProcess(
        f"sqlite:///{workdir / 'q.db'}", workdir, *FLAGS, "--nickname-blocklist-file", str(blocklist)
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def web(srv: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=WAIT) as client:
        yield client


async def connected(web: httpx.AsyncClient, *names: str) -> tuple[Host, list[Player]]:
    host = await Host.open(web, quiz(2))
    players = [await host.join(name) for name in names]
    for player in players:
        await player.connect()
    return host, players


async def error_code(player: Player) -> str:
    return str((await player.expect("error"))["code"])


async def still_alive(player: Player, t: int = 7) -> None:
    await player.send({"type": "ping", "t": t})
    assert (await player.expect("pong"))["t"] == t


# --- origins ------------------------------------------------------------------------------------------------------


async def test_origin_allowlist_is_an_exact_match_refused_before_the_upgrade(srv: ServerProcess) -> None:
    assert await handshake_status(srv.port, {"Origin": ALLOWED_ORIGIN}) == 101
    assert await handshake_status(srv.port) == 101  # scripts send no Origin; browsers always do
    for origin in [
        "https://evil.example",
        "https://allowed.example.evil",  # suffix trick
        "https://allowed.exampl",  # prefix trick
        "https://xallowed.example",
        "https://evil.example/https://allowed.example",
        "http://allowed.example",  # other scheme
        "https://allowed.example:8443",  # other port
        "null",
        f"{ALLOWED_ORIGIN}, https://evil.example",
    ]:
        assert await handshake_status(srv.port, {"Origin": origin}) == 403, origin


# --- admission ----------------------------------------------------------------------------------------------------


async def test_sockets_per_address_and_in_total_are_limited_with_retry_after(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(
        f"sqlite:///{tmp_path / 'limits.db'}",
        "--max-sockets-per-ip",
        "2",
        "--max-sockets",
        "3",
        "--trusted-proxies",
        "127.0.0.0/8",
    )
    a = {"X-Forwarded-For": "203.0.113.7"}
    # The right-most untrusted hop is the client: what the client wrote further left proves nothing.
    a_spoofing = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 127.0.0.1"}
    held = [await RawSocket.open(server.port, "/ws/play/123456", a) for _ in range(2)]
    assert [s.status for s in held] == [101, 101]
    refused = await RawSocket.open(server.port, "/ws/play/123456", a_spoofing)
    assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1
    refused.close()
    other = await RawSocket.open(server.port, "/ws/play/123456", {"X-Forwarded-For": "203.0.113.8"})
    assert other.status == 101  # another address is not held back by the first one's sockets
    full = await RawSocket.open(server.port, "/ws/play/123456", {"X-Forwarded-For": "203.0.113.9"})
    assert full.status == 503 and int(full.headers["retry-after"]) >= 1  # three open: the server is at capacity
    full.close()
    held.pop().close()
    async with asyncio.timeout(WAIT):  # the slot frees once the server has seen the socket go
        while (status := await handshake_status(server.port, a)) != 101:
            assert status in (429, 503)
            await asyncio.sleep(0.05)
    for raw in [*held, other]:
        raw.close()


async def test_handshake_rate_per_address_is_limited_with_retry_after(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(
        f"sqlite:///{tmp_path / 'rate.db'}", "--handshakes-per-ip-per-second", "0.1", "--handshake-burst", "3"
    )
    assert [await handshake_status(server.port) for _ in range(3)] == [101, 101, 101]
    refused = await RawSocket.open(server.port, "/ws/play/123456")
    assert refused.status == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 10  # one token every 10 s
    refused.close()
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).status_code == 200  # HTTP is not metered by the socket limits
        metrics = (await client.get("/metrics")).text
    assert "quizroom_sockets_limited_total 1.0" in metrics  # the refusal is counted for the operator


def test_client_address_believes_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8", "::1"])
    assert client_address("203.0.113.5", ["198.51.100.1"], trusted) == "203.0.113.5"  # untrusted peer: ignored
    assert client_address("10.1.2.3", ["198.51.100.1"], trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", ["6.6.6.6, 198.51.100.1, 10.9.9.9"], trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", ["6.6.6.6", "198.51.100.1"], trusted) == "198.51.100.1"  # several headers
    assert client_address("10.1.2.3", ["not-an-ip, 10.2.2.2"], trusted) == "10.2.2.2"  # garbage stops the walk
    assert client_address("10.1.2.3", [], trusted) == "10.1.2.3"
    assert client_address("::1", ["2001:db8::1"], trusted) == "2001:db8::1"
    assert client_address("10.1.2.3", ["198.51.100.1"], ()) == "10.1.2.3"  # no trusted proxies: the peer


def test_admission_counts_release_and_refills() -> None:
    now = [0.0]
    gate = Admission(max_sockets_per_ip=1, handshakes_per_s=2.0, handshake_burst=2.0, clock=lambda: now[0])
    assert gate.admit("a") is None
    refusal = gate.admit("a")
    assert refusal is not None and refusal.status == 429
    gate.release("a")
    refusal = gate.admit("a")  # the slot is free, but the burst of two is spent
    assert refusal is not None and refusal.status == 429 and refusal.retry_after_s == 1
    now[0] += 0.5  # one token back at 2 per second
    assert gate.admit("a") is None
    assert gate.admit("b") is None
    assert gate.open_total == 2
    gate.release("a")
    gate.release("b")
    assert gate.open_total == 0


# --- slow consumers -----------------------------------------------------------------------------------------------


async def test_a_socket_that_never_reads_is_closed_4008_and_the_room_carries_on(
    web: httpx.AsyncClient, srv: ServerProcess
) -> None:
    host, (fine,) = await connected(web, "Fine")
    slowpoke = await host.join("Slow")
    slow = await RawSocket.open(srv.port, f"/ws/play/{host.pin}", rcvbuf=4096)
    assert slow.status == 101
    slow.send_text(orjson.dumps({"type": "hello", "token": slowpoke.token}))
    # Each ping asks for a 16 KB pong: 32 MB in all, far beyond the kernel's buffers and the 8-frame send queue.
    ping = orjson.dumps({"type": "ping", "t": "x" * 16_000})
    for _ in range(2_000):
        slow.send_text(ping)
        await slow.writer.drain()
    await still_alive(fine)  # the room answers others while one socket is stuck
    code, pongs = await slow.close_code(timeout=30)
    assert code == 4008
    assert pongs < 2_000
    slow.close()
    await host.command("start")
    question = await fine.expect("question")
    await fine.answer(question["index"], 0)
    assert (await fine.expect("answer_ack"))["accepted"] is True
    state = await host.state()
    assert state["players"] == 2 and state["connected"] == 1


# --- bad input ----------------------------------------------------------------------------------------------------


async def test_invalid_utf8_text_is_closed_1007_by_the_protocol_layer(
    web: httpx.AsyncClient, srv: ServerProcess
) -> None:
    host, (other,) = await connected(web, "Other")
    player = await host.join("Bytes")
    raw = await RawSocket.open(srv.port, f"/ws/play/{host.pin}")
    raw.send_text(orjson.dumps({"type": "hello", "token": player.token}))
    assert (await raw.read_frame())[0] == 0x1  # welcome
    raw.send_text(b'{"type": "ping", "t": "\xff\xfe"}')
    code, _ = await raw.close_code()
    assert code == 1007
    raw.close()
    before_hello = await RawSocket.open(srv.port, f"/ws/play/{host.pin}")
    before_hello.send_text(b"\xc3\x28")
    assert (await before_hello.close_code())[0] == 1007
    before_hello.close()
    await still_alive(other)


async def test_json_nested_10000_deep_is_a_bad_message_and_the_socket_survives(web: httpx.AsyncClient) -> None:
    _, (player,) = await connected(web, "Deep")
    assert player.ws is not None
    for document in ['{"type": "ping", "t": ' + "[" * 10_000 + "]" * 10_000 + "}", "{" + '"a":{' * 5_000]:
        await player.ws.send(document)
        assert await error_code(player) == "bad_message"
    await still_alive(player)


async def test_huge_numbers_wrong_types_and_unknown_fields(web: httpx.AsyncClient) -> None:
    host, (player, other) = await connected(web, "Numbers", "Other")
    await host.command("start")
    await player.expect("question")
    assert player.ws is not None
    huge = str(2**70)
    for raw in [
        f'{{"type": "answer", "question": {huge}, "choice": 0}}',
        f'{{"type": "answer", "question": 0, "choice": {huge}}}',
        f'{{"type": "answer", "question": 0, "choices": [{huge}]}}',
        f'{{"type": "answer", "question": -{huge}, "choice": 0}}',
        '{"type": "answer", "question": 1e400, "choice": 0}',
        '{"type": "answer", "question": 0.0, "choice": 0}',
        '{"type": "answer", "question": 0, "choice": 1.0}',
        '{"type": "answer", "question": 0, "choice": null}',
        '{"type": "answer", "question": 0, "choice": "1"}',
        '{"type": "answer", "question": 0, "choices": "1"}',
        '{"type": "answer", "question": 0, "choices": [true]}',
        '{"type": "answer", "question": 0, "choice": {"0": 1}}',
        '{"type": ["answer"], "question": 0, "choice": 0}',
        '{"type": null}',
    ]:
        await player.ws.send(raw)
        assert await error_code(player) == "bad_message", raw
    await player.ws.send(f'{{"type": "answer", "question": {2**64 - 1}, "choice": 0}}')  # fits 64 bits: judged
    assert await error_code(player) == "wrong_question"
    await player.ws.send('{"type": "ping", "t": 3, "junk": {"deep": [1, 2]}, "__proto__": {"admin": true}}')
    assert (await player.expect("pong"))["t"] == 3
    await player.send({"type": "answer", "question": 0, "choice": 1, "extra": "ignored", "points": 999_999})
    ack = await player.expect("answer_ack")
    assert ack["accepted"] is True and ack["duplicate"] is False
    document = await host.results()
    mine = next(p for p in document["players"] if p["player_id"] == player.player_id)
    assert [a["points"] for a in mine["answers"]] == [0]  # choice 1 is wrong for question 0; "points" was ignored
    await still_alive(other)


async def test_a_half_sent_handshake_is_dropped_within_the_bound(srv: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /ws/play/123456 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # and never finish
    await writer.drain()
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", srv.port)  # and one that says nothing
    assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the server (bound: 1 s here, 10 s default)
    assert await asyncio.wait_for(idle_reader.read(), WAIT) == b""
    writer.close()
    idle_writer.close()
    assert await handshake_status(srv.port) == 101  # whole handshakes still go through


# --- nicknames ----------------------------------------------------------------------------------------------------


async def test_nicknames_with_bidi_invisible_confusable_or_blocked_text_are_refused(web: httpx.AsyncClient) -> None:
    host = await Host.open(web, quiz(1))
    refused = [
        "\u202eevil",  # right-to-left override
        "ab\u2066c\u2069",  # bidi isolate
        "a\u200bb",  # zero-width space
        "Zoe\u200d",  # zero-width joiner
        "\ufeffAnn",  # byte-order mark
        "\u0410nn",  # Cyrillic А + Latin "nn": impersonates "Ann"
        "p\u0430ypal",  # Cyrillic а inside a Latin name
        "\u03bfscar",  # Greek ο + Latin
        "badword",
        "B.a.d W-o-r-d",
        "\uff22\uff21\uff24word",  # fullwidth, NFKC folds it
        "xXsnarkXx",
    ]
    for nickname in refused:
        response = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": nickname})
        assert response.status_code == 422, nickname
        assert response.json()["error"]["code"] == "bad_nickname", nickname
    for nickname in ["Ann", "Zoë", "Дмитрий", "Αλέξης", "Yuki 雪", "R2-D2 🤖"]:
        response = await web.post(f"/api/rooms/{host.pin}/players", json={"nickname": nickname})
        assert response.status_code == 201, nickname


def test_nickname_rules_without_a_server() -> None:
    blocked = parse_blocklist(["# comment", "", "Bad Word", "ＳＮＡＲＫ"])
    assert blocked == {"badword", "snark"}
    for name in ["x bad-word x", "SNARK", "s.n.a.r.k"]:
        with pytest.raises(BadNickname):
            normalise_nickname(name, blocked)
    assert normalise_nickname("Snorkel", blocked) == ("Snorkel", "snorkel")
    assert normalise_nickname("Ⓐnn") == ("Ann", "ann")  # NFKC folds it into one script first
    with pytest.raises(BadNickname):
        normalise_nickname("Ann\u0391")  # Latin + Greek Alpha


async def test_the_compliance_echo_socket_does_not_exist_unless_enabled(srv: ServerProcess) -> None:
    assert await handshake_status(srv.port, path="/ws/echo") == 403
