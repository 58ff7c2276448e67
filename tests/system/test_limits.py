"""What one connection may hold, against a real server: bodies bounded while read, a deadline on whole requests,
bounded request heads, and caps on connections per address and in total (docs/operations.md, "Limits and abuse").

Requests are spoken by hand over raw sockets, from chosen loopback addresses (127.0.0.x are all this machine), so
that a test can be "one client" and "another client" at once and see exactly what the server writes and when it
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.gameclient import quiz
from tests.serverproc import ServerProcess

WAIT = 10.0
MiB = 1 << 20


@dataclass
class Raw:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Raw:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self, timeout: float = WAIT) -> tuple[int, dict[str, str], bytes]:
        """The next response: (status, headers, body) — the body by Content-Length."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout) if length else b""
        return int(status_line.split()[1]), headers, body

    async def closed_by_server(self, timeout: float = WAIT) -> bool:
        """True once the server ends the connection (EOF or reset), reading and dropping anything before it."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65_536):
                    pass
        except (ConnectionError, OSError):
            pass
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def client_from(server: ServerProcess, source: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=server.url, timeout=WAIT, transport=transport)


@pytest.fixture
async def small(start_server: Any, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A server with small connection caps and short deadlines, so that the tests can reach them."""
    yield start_server(
        f"sqlite:///{tmp_path / 'limits.db'}",
        "--max-connections",
        "120",
        "--max-connections-per-ip",
        "60",
        "--request-timeout-s",
        "4",
        "--keepalive-timeout-s",
        "0.5",
    )


# --- bodies -------------------------------------------------------------------------------------------------------


async def upload(port: int, declared: bool, total: int) -> int:
    """Send a `total`-byte quiz body (with Content-Length, or chunked) until the server answers; its status."""
    raw = await Raw.open(port)
    framing = f"content-length: {total}" if declared else "transfer-encoding: chunked"
    raw.send(f"POST /api/quizzes HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{framing}\r\n\r\n".encode())
    chunk = b" " * 65_536
    answer = asyncio.ensure_future(raw.response())
    sent = 0
    try:
        while sent < total and not answer.done():
            raw.send(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            await raw.writer.drain()
            await asyncio.sleep(0)  # drain() returns without yielding while the buffer has room: let the answer in
        status, headers, body = await answer
        assert headers.get("connection") == "close" and orjson.loads(body)["error"]["code"] == "too_big"
        assert sent < total // 2, f"the server answered only after {sent} bytes"  # not after reading it whole
        return status
    finally:
        answer.cancel()
        raw.close()


async def test_oversized_bodies_are_refused_413_while_read_and_memory_stays_flat(small: ServerProcess) -> None:
    assert small.proc is not None
    async with httpx.AsyncClient(base_url=small.url, timeout=WAIT) as http:  # warm: the first request allocates
        assert (await http.post("/api/quizzes", json=quiz(1))).status_code == 201
    before = rss_kib(small.proc.pid)
    statuses = await asyncio.gather(*(upload(small.port, declared, 100 * MiB) for declared in (True, False) * 3))
    assert statuses == [413] * 6
    growth_mib = (rss_kib(small.proc.pid, "VmHWM") - before) / 1024
    assert growth_mib < 8, f"six concurrent 100 MB bodies grew the server's peak by {growth_mib:.1f} MiB"
    async with httpx.AsyncClient(base_url=small.url, timeout=WAIT) as http:  # and the server serves on
        assert (await http.get("/healthz")).status_code == 200


async def test_a_body_at_the_limit_is_read_and_one_byte_more_is_not(small: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=small.url, timeout=WAIT) as http:
        body = orjson.dumps(quiz(1))
        padded = body[:-1] + b" " * (MiB - len(body)) + b"}"
        assert len(padded) == MiB
        assert (await http.post("/api/quizzes", content=padded)).status_code == 201
        over = await http.post("/api/quizzes", content=padded + b" ")
        assert over.status_code == 413 and over.json()["error"]["code"] == "too_big"
        join_body = b'{"nickname": "Ann"' + b" " * MiB + b"}"  # every body has the limit, a join's too
        host = (await http.post("/api/rooms", json={"quiz": quiz(1)})).json()
        refused = await http.post(f"/api/rooms/{host['pin']}/players", content=join_body)
        assert refused.status_code == 413


# --- deadlines ----------------------------------------------------------------------------------------------------


async def test_a_slow_body_is_cut_at_the_request_deadline(small: ServerProcess) -> None:
    raw = await Raw.open(small.port)
    raw.send(b"POST /api/quizzes HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n")
    closed = asyncio.ensure_future(raw.closed_by_server(timeout=WAIT))
    sent = 0
    while not closed.done() and sent < 60:  # a byte every 0.1 s: the whole body would take 6 s
        with contextlib.suppress(ConnectionError):
            raw.send(b" ")
        sent += 1
        await asyncio.sleep(0.1)  # the client's own pace, not a wait for the server
    assert closed.done() and await closed, "the server held a slow body past its deadline"
    assert sent < 60


async def test_half_sent_headers_and_idle_keepalives_are_closed(small: ServerProcess) -> None:
    half = await Raw.open(small.port)
    half.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # never finished
    idle = await Raw.open(small.port)
    idle.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    assert (await idle.response())[0] == 200  # then nothing more: an idle keep-alive connection
    assert await half.closed_by_server() and await idle.closed_by_server()


async def test_a_request_head_over_the_limit_is_431(small: ServerProcess) -> None:
    raw = await Raw.open(small.port)
    raw.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 40_000 + b"\r\n\r\n")
    status, _, body = await raw.response()
    assert status == 431 and orjson.loads(body)["error"]["code"] == "too_big"
    raw.close()
    long_url = await Raw.open(small.port)
    long_url.send(b"GET /" + b"a" * 200_000)  # a URL that never ends
    assert (await long_url.response())[0] == 431
    long_url.close()


# --- connection caps ----------------------------------------------------------------------------------------------


async def hold(port: int, source: str, count: int) -> tuple[list[Raw], list[int]]:
    """Open `count` connections from `source` at once, each with half a request; (held ones, refused statuses)."""
    opened = [await Raw.open(port, source) for _ in range(count)]
    for raw in opened:
        raw.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")

    async def answer(raw: Raw) -> int | None:
        try:
            status, headers, _ = await raw.response(timeout=0.5)
        except TimeoutError:  # held: the server waits for the rest of the request
            return None
        assert headers.get("retry-after")
        raw.close()
        return status

    statuses = await asyncio.gather(*(answer(raw) for raw in opened))
    held = [raw for raw, status in zip(opened, statuses, strict=True) if status is None]
    return held, [status for status in statuses if status is not None]


async def test_a_flood_of_slow_connections_from_one_address_leaves_everyone_else_served(small: ServerProcess) -> None:
    flood, refused = await hold(small.port, "127.0.0.1", 90)
    assert len(flood) == 60 and refused == [429] * 30  # one address gets half the server, no more
    async with await client_from(small, "127.0.0.2") as other:
        assert (await other.get("/healthz")).status_code == 200
        room = await other.post("/api/rooms", json={"quiz": quiz(1)})
        assert room.status_code == 201
        joined = await other.post(f"/api/rooms/{room.json()['pin']}/players", json={"nickname": "Ann"})
        assert joined.status_code == 201
    # A third address fills the server (60 more), a fourth takes 10 of the probe band; past the total, health probes
    # still get in and nothing else does.
    rest, rest_refused = await hold(small.port, "127.0.0.3", 60)
    band, band_refused = await hold(small.port, "127.0.0.5", 10)
    assert len(rest) == 60 and len(band) == 10 and not rest_refused and not band_refused
    rest += band
    async with await client_from(small, "127.0.0.4") as probe:
        assert (await probe.get("/healthz")).status_code == 200
        full = await probe.post("/api/rooms", json={"quiz": quiz(1)})  # the same connection: a probe's, only
        assert full.status_code == 503 and full.headers.get("retry-after")
        assert full.json()["error"]["code"] == "unavailable"
    for raw in flood + rest:  # the request deadline ends them all; after that the first address is welcome again
        assert await raw.closed_by_server()
    async with httpx.AsyncClient(base_url=small.url, timeout=WAIT) as again:
        assert (await again.get("/healthz")).status_code == 200
        metrics = (await again.get("/metrics")).text
        assert 'quizroom_connections_refused_total{status="429"} 30.0' in metrics


async def test_websockets_count_against_their_address(small: ServerProcess) -> None:
    """A socket holds its slot for its whole life, through the upgrade: 60 sockets from one address are its all."""
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=small.url, timeout=WAIT) as http:
        pin = (await http.post("/api/rooms", json={"quiz": quiz(1)})).json()["pin"]
    sockets = [await connect(f"{small.ws}/ws/play/{pin}") for _ in range(60)]
    try:
        raw = await Raw.open(small.port)
        raw.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await raw.response())[0] == 429
        raw.close()
    finally:
        for ws in sockets:
            await ws.close()
    deadline = time.monotonic() + WAIT
    while True:  # closed sockets give their slots back
        raw = await Raw.open(small.port)
        raw.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        status = (await raw.response())[0]
        raw.close()
        if status == 200:
            break
        assert time.monotonic() < deadline, "the sockets' slots were not released"
        await asyncio.sleep(0.05)  # polling, bounded by the deadline


async def test_the_server_raises_its_descriptor_limit_and_logs_its_caps(start_server: Any, tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'fd.db'}")
    match = re.search(r"connection_limits\s+(.*)", server.log())
    assert match, server.log()
    fields = dict(re.findall(r"(\w+)=(\S+)", match.group(1)))
    soft, hard = int(fields["fd_soft"]), int(fields["fd_hard"])
    assert soft == hard  # raised to the hard limit
    assert int(fields["max_connections"]) == soft - 256
    assert int(fields["max_connections_per_ip"]) == (soft - 256) // 2
