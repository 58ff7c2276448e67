"""An asyncio client for quizroom: the HTTP control API and the player and host sockets.

    async with QuizroomAPI("http://127.0.0.1:8000") as api:
        room = await api.create_room(quiz={"title": "T", "questions": [...]})
        ticket = await api.join(room.pin, "ada")
        async with await PlayerSocket.connect(ticket) as player:
            question = await player.expect(QuestionOpened)
            await player.answer(question.index, 0)

What it guarantees: every message a socket yields is a typed dataclass from `quizroom.clients.messages`; a socket
closed for good (kicked, replaced, room gone …) raises `SessionEnded` with the close code, never a bare
`ConnectionClosed`; with `auto_reconnect=True` a socket that drops for any other reason (1001 shutdown, a dead
network, 4421 moved) reconnects with the same token (exponential backoff with jitter) and yields the fresh
`Welcome` so the caller can resynchronise.

Sharding (docs/protocol.md, "Sharding extensions"): the worker that holds a player's socket may change. Tickets and
rooms made by `QuizroomAPI` remember the API's URL, so every reconnect first asks where to go — `resume` for a
player, `GET /api/rooms/{pin}` (`host_ws_url`) for the host — and keeps the old URL when that call cannot reach
the server (or the server predates the extension).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlencode

import orjson

try:
    import httpx
except ImportError as missing:  # pragma: no cover - depends on how quizroom was installed
    raise ImportError("the quizroom Python client needs httpx: pip install 'quizroom[client]'") from missing
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .messages import (
    AnswerAck,
    ErrorMessage,
    Pong,
    RoomState,
    ServerMessage,
    Standing,
    Welcome,
    parse_message,
)

__all__ = [
    "FINAL_CLOSE_CODES",
    "MOVED_CLOSE_CODE",
    "ApiError",
    "HostSocket",
    "HostedRoom",
    "PlayerSocket",
    "PlayerTicket",
    "QuizroomAPI",
    "SessionEnded",
    "SocketRefusal",
    "StoredImage",
]

M = TypeVar("M")

#: Close codes after which reconnecting with the same token cannot help (SPEC §3).
FINAL_CLOSE_CODES = frozenset({1008, 1009, 4401, 4403, 4404, 4409, 4410, 4429})

#: Sharding extension: the socket reached a worker that does not hold the player's shard (or, for the host, does not
#: coordinate the room). Not final: ask where to connect (resume / `host_ws_url`) and reconnect there. Every other
#: close that is not in FINAL_CLOSE_CODES (1001 shutting down, 1006 a dead network, …) reconnects the same way.
MOVED_CLOSE_CODE = 4421

#: A refusal of the lookup before a reconnect that the socket itself would give as this close code: final.
_LOOKUP_REFUSALS = {(401, "unauthorized"): 4401, (403, "kicked"): 4403, (404, "not_found"): 4404}


class ApiError(Exception):
    """A non-2xx answer of the HTTP API: `status`, and the `code`/`message` of its error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class SessionEnded(Exception):
    """The server closed the socket for good; `code` says why (4403 kicked, 4409 replaced, 4410 finished …)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"session ended: {code} {reason}".strip())
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class HostedRoom:
    """What `POST /api/rooms` returns: the host's credential and where players and the host connect.

    `api_url` is the HTTP API the room came from: with it, a host socket's reconnect asks `GET /api/rooms/{pin}`
    for the current `host_ws_url` first."""

    room_id: str
    pin: str
    host_token: str
    join_url: str
    host_ws_url: str
    api_url: str | None = None


@dataclass(frozen=True, slots=True)
class PlayerTicket:
    """What joining (or resuming) returns: `token` is the player's only credential, good for every reconnect.

    `api_url` is the HTTP API the ticket came from: with it, every reconnect of the ticket's socket first calls
    `POST /api/rooms/{pin}/resume` for the current `ws_url`. A ticket without it reconnects to `ws_url` as it is."""

    pin: str
    nickname: str
    player_id: str
    token: str
    ws_url: str
    api_url: str | None = None


@dataclass(frozen=True, slots=True)
class StoredImage:
    """What `POST /api/images` returns: the image's id (for a quiz's `image`/`choice_images`) and where it is."""

    image_id: str
    url: str
    width: int
    height: int
    content_type: str
    bytes: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> StoredImage:
        return cls(
            image_id=str(data["image_id"]),
            url=str(data["url"]),
            width=int(data["width"]),
            height=int(data["height"]),
            content_type=str(data["content_type"]),
            bytes=int(data["bytes"]),
        )


FILE_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class QuizroomAPI:
    """The HTTP control API (SPEC §2). `admin_token`, when the server requires one, authorises creating."""

    def __init__(self, base_url: str, *, admin_token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._admin_token = admin_token
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: object = None,
        accept: str | None = None,
        raw: tuple[bytes, str] | None = None,
    ) -> httpx.Response:
        """`body` goes as JSON; `raw` is (bytes, Content-Type) for the calls that take a file. A refusal raises
        `ApiError`."""
        headers = {"Accept": accept or "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = None if body is None else orjson.dumps(body)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if raw is not None:
            content, headers["Content-Type"] = raw
        response = await self._http.request(method, path, content=content, headers=headers)
        if response.is_success:
            return response
        code, message = "http_error", response.reason_phrase
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error.get("message", ""))
        except (ValueError, KeyError, TypeError):
            pass
        raise ApiError(response.status_code, code, message)

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data = (await self._call(method, path, **kwargs)).json()
        if not isinstance(data, dict):
            raise ApiError(200, "bad_response", f"expected a JSON object from {path}")
        return data

    # --- quizzes and rooms ----------------------------------------------------------------------------------

    async def create_quiz(self, quiz: Mapping[str, Any]) -> str:
        data = await self._json("POST", "/api/quizzes", body=quiz, token=self._admin_token)
        return str(data["quiz_id"])

    async def get_quiz(self, quiz_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/api/quizzes/{quiz_id}", token=self._admin_token)

    # The quiz library (docs/protocol.md, *Quiz library*): every call needs the admin token when the server has one.

    async def list_quizzes(self, query: str = "", *, offset: int = 0, limit: int = 20) -> dict[str, Any]:
        """One page of saved quizzes, newest-edited first: `{quizzes: [summary], paging}`; `query` keeps titles
        that contain it, whatever their case."""
        params = urlencode({"q": query, "offset": offset, "limit": limit})
        return await self._json("GET", f"/api/quizzes?{params}", token=self._admin_token)

    async def update_quiz(self, quiz_id: str, quiz: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a saved quiz; its summary comes back with the next `version`. Rooms already open keep theirs."""
        return await self._json("PUT", f"/api/quizzes/{quiz_id}", body=quiz, token=self._admin_token)

    async def delete_quiz(self, quiz_id: str) -> None:
        await self._call("DELETE", f"/api/quizzes/{quiz_id}", token=self._admin_token)

    async def copy_quiz(self, quiz_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/api/quizzes/{quiz_id}/copy", token=self._admin_token)

    async def export_quiz(self, quiz_id: str) -> dict[str, Any]:
        """Our quiz file (`format: quizroom/quiz`), which `import_quiz` and `create_quiz` take back as it is."""
        return await self._json("GET", f"/api/quizzes/{quiz_id}/export", token=self._admin_token)

    async def import_quiz(
        self, data: bytes, *, format: str, title: str | None = None, filename: str | None = None
    ) -> dict[str, Any]:
        """Import a quiz file (`format`: json, csv or xlsx, as Kahoot's template for the spreadsheets); returns the
        summary with `imported` and the `refused` rows (`[{row, reason}]`)."""
        params = {"format": format}
        params.update({k: v for k, v in (("title", title), ("filename", filename)) if v})
        raw = (data, FILE_TYPES.get(format, "application/octet-stream"))
        return await self._json("POST", f"/api/quizzes/import?{urlencode(params)}", raw=raw, token=self._admin_token)

    async def create_room(
        self,
        *,
        quiz: Mapping[str, Any] | None = None,
        quiz_id: str | None = None,
        **options: bool | int,
    ) -> HostedRoom:
        """Open a room for a stored quiz (`quiz_id`) or an inline one (`quiz`); exactly one must be given.

        `options` are the room's (docs/protocol.md, "Room options"): `auto_advance`, `intro_ms`, `friendly_names`."""
        if (quiz is None) == (quiz_id is None):
            raise ValueError("give exactly one of quiz or quiz_id")
        body: dict[str, Any] = {"quiz": quiz} if quiz is not None else {"quiz_id": quiz_id}
        body.update(options)
        data = await self._json("POST", "/api/rooms", body=body, token=self._admin_token)
        return HostedRoom(
            room_id=str(data["room_id"]),
            pin=str(data["pin"]),
            host_token=str(data["host_token"]),
            join_url=str(data["join_url"]),
            host_ws_url=self._absolute_ws(str(data["host_ws_url"])),
            api_url=self.base_url,
        )

    async def join(self, pin: str, nickname: str, *, device: str | None = None) -> PlayerTicket:
        """Join as `nickname`; `device` (optional) is the id a kick bars from the room. Refused as `ApiError`: 423
        `kicked` when the host removed this device or this name."""
        body: dict[str, Any] = {"nickname": nickname}
        if device is not None:
            body["device"] = device
        data = await self._json("POST", f"/api/rooms/{pin}/players", body=body)
        return PlayerTicket(
            pin=pin,
            nickname=str(data.get("nickname") or nickname),
            player_id=str(data["player_id"]),
            token=str(data["token"]),
            ws_url=self._absolute_ws(str(data["ws_url"])),
            api_url=self.base_url,
        )

    async def resume(self, pin: str, token: str) -> PlayerTicket:
        """Where the player holding `token` must connect now (sharding extension, `POST /api/rooms/{pin}/resume`).

        Raises ApiError: 401 `unauthorized` (unknown token), 403 `kicked`, 404 `not_found` (no room), and 503
        `unavailable` during a failover (retry). `nickname` is empty unless the server names the player.
        """
        data = await self._json("POST", f"/api/rooms/{pin}/resume", token=token)
        return PlayerTicket(
            pin=pin,
            nickname=str(data.get("nickname") or ""),
            player_id=str(data["player_id"]),
            token=token,
            ws_url=self._absolute_ws(str(data["ws_url"])),
            api_url=self.base_url,
        )

    def _absolute_ws(self, url: str) -> str:
        """Socket URLs may be absolute or relative to the server; make them absolute ws(s):// URLs."""
        if url.startswith(("ws://", "wss://")):
            return url
        if url.startswith(("http://", "https://")):
            return "ws" + url[4:]
        return "ws" + self.base_url[4:] + "/" + url.lstrip("/")

    # --- images (docs/protocol.md, "Images") ---------------------------------------------------------------

    async def upload_image(self, data: bytes, content_type: str) -> StoredImage:
        """Upload a PNG, JPEG, GIF or WebP (`content_type` its type, e.g. `image/jpeg`); the server checks, cleans
        and re-encodes it. Refusals are `ApiError`s: 413 `too_big`, 415 `not_an_image`, 422 `too_many_pixels`,
        `type_mismatch`, `empty_file`."""
        response = await self._call("POST", "/api/images", token=self._admin_token, raw=(data, content_type))
        return StoredImage.from_wire(response.json())

    def image_url(self, image: str) -> str:
        """The absolute URL of an image, from its id or from the URL path a message carries."""
        path = image if image.startswith("/") else f"/api/images/{image}"
        return image if image.startswith(("http://", "https://")) else self.base_url + path

    async def image(self, image: str) -> bytes:
        """An image's bytes (WebP), from its id or a message's URL."""
        return (await self._http.get(self.image_url(image))).raise_for_status().content

    async def export_archive(self, quiz_id: str) -> bytes:
        """A stored quiz with its images, as a zip (`quiz.json`, `images/<image_id>.webp`)."""
        return (await self._call("GET", f"/api/quizzes/{quiz_id}/archive", token=self._admin_token)).content

    async def import_archive(self, archive: bytes) -> str:
        """Store a quiz from an archive (its images go through the upload pipeline); returns the new `quiz_id`."""
        response = await self._call(
            "POST", "/api/quizzes/archive", token=self._admin_token, raw=(archive, "application/zip")
        )
        return str(response.json()["quiz_id"])

    # --- host commands --------------------------------------------------------------------------------------

    async def state(self, room: HostedRoom) -> RoomState:
        """The room's state; with sharding it also names where the host socket must connect (`host_ws_url`)."""
        state = RoomState.from_wire(await self._json("GET", f"/api/rooms/{room.pin}", token=room.host_token))
        if state.host_ws_url is not None:
            state = replace(state, host_ws_url=self._absolute_ws(state.host_ws_url))
        return state

    async def command(self, room: HostedRoom, name: str) -> RoomState:
        """Run `start`, `close`, `next`, `end`, `lock` or `unlock`; a command out of phase raises ApiError 409."""
        path = f"/api/rooms/{room.pin}/{name}"
        return RoomState.from_wire(await self._json("POST", path, token=room.host_token))

    async def kick(self, room: HostedRoom, player_id: str) -> None:
        await self._call("DELETE", f"/api/rooms/{room.pin}/players/{player_id}", token=room.host_token)

    async def leaderboard(self, room: HostedRoom, limit: int = 10) -> list[Standing]:
        data = await self._json("GET", f"/api/rooms/{room.pin}/leaderboard?limit={limit}", token=room.host_token)
        return [Standing.from_wire(e) for e in data["entries"]]

    async def results(self, room: HostedRoom) -> dict[str, Any]:
        return await self._json("GET", f"/api/rooms/{room.pin}/results", token=room.host_token)

    async def results_csv(self, room: HostedRoom) -> str:
        response = await self._call("GET", f"/api/rooms/{room.pin}/results", token=room.host_token, accept="text/csv")
        return response.text


class _LookupUnavailable(Exception):
    """The lookup before a reconnect was answered 5xx or 429 (a failover in progress): back off and ask again."""


class _RoomSocket:
    """One authenticated socket (hello → greeting) that can be reopened with the same token.

    Before each reconnect attempt the socket asks the HTTP API where to connect (`_locate`, through `api`, or a
    short-lived client on `api_url`); without either it reconnects to `url` as it is.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        auto_reconnect: bool,
        open_timeout: float,
        api: QuizroomAPI | None = None,
        api_url: str | None = None,
    ) -> None:
        self.url, self._token = url, token
        self.auto_reconnect = auto_reconnect
        self._open_timeout = open_timeout
        self._api, self._api_url = api, api_url
        self._ws: ClientConnection | None = None
        self.greeting: ServerMessage | None = None
        #: Successful reconnects so far (each one a new socket, greeted).
        self.reconnects = 0
        #: Estimated server clock minus local clock, in ms, from the best (lowest round trip) pong so far.
        self.clock_offset_ms: float = 0.0
        self._best_rtt_ms = float("inf")
        self._sent_pings: dict[int, float] = {}
        #: Messages received while waiting for a reply (`run`, `answer_and_wait`), handed out by `recv` first.
        self._backlog: deque[ServerMessage] = deque()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def close_code(self) -> int | None:
        return None if self._ws is None else self._ws.close_code

    async def _open(self) -> ServerMessage:
        """Connect, say hello, and return the server's first message (raise SessionEnded if it refuses)."""
        ws = await connect(self.url, open_timeout=self._open_timeout, max_size=2**22)
        try:
            await ws.send(orjson.dumps({"type": "hello", "token": self._token}).decode())
            greeting = parse_message(await asyncio.wait_for(ws.recv(), self._open_timeout))
        except ConnectionClosed as exc:
            raise SessionEnded(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from exc
        except BaseException:
            await ws.close()
            raise
        if isinstance(greeting, ErrorMessage):
            await ws.close()
            raise SessionEnded(None, f"{greeting.code}: {greeting.message}")
        self._ws, self.greeting = ws, greeting
        return greeting

    async def _locate(self, api: QuizroomAPI) -> str | None:
        """Where this socket must connect now, asked of the HTTP API; None keeps `url`. Subclasses know how."""
        return None

    async def _relocate(self) -> None:
        """Point `url` at where the server says to connect now.

        A lookup that cannot reach the server keeps the old URL (the socket attempt will tell); so does a server
        that does not know the call (no JSON error body: it predates the extension). A refusal the socket would
        also give (unknown token, kicked, no room) raises SessionEnded with that close code; 5xx and 429 raise
        `_LookupUnavailable`, to back off and ask again.
        """
        if self._api is None and self._api_url is None:
            return
        try:
            if self._api is not None:
                url = await self._locate(self._api)
            else:
                assert self._api_url is not None
                async with QuizroomAPI(self._api_url, timeout=self._open_timeout) as api:
                    url = await self._locate(api)
        except (httpx.TransportError, KeyError, ValueError):  # unreachable, or a reply we cannot read
            return
        except ApiError as exc:
            final = _LOOKUP_REFUSALS.get((exc.status, exc.code))
            if final is not None:
                raise SessionEnded(final, exc.code) from exc
            if exc.status >= 500 or exc.status == 429:
                raise _LookupUnavailable(str(exc)) from exc
            return
        if url:
            self.url = url

    async def reconnect(self, *, attempts: int = 8, base_delay: float = 0.1, max_delay: float = 5.0) -> ServerMessage:
        """Open a new socket with the same token (the server closes the old one with 4409) and return the greeting.

        Each attempt first asks where to connect (resume, for a player; `host_ws_url`, for the host) when the
        socket knows the HTTP API. Retries transient failures (network, 1001, 4421 moved, 503 during a failover)
        with exponential backoff and full jitter; a final refusal raises SessionEnded at once.
        """
        await self.close()
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                await self._relocate()
                greeting = await self._open()
            except (OSError, InvalidHandshake, TimeoutError, _LookupUnavailable):
                if last:
                    raise
            except SessionEnded as exc:
                if exc.code in FINAL_CLOSE_CODES or last:
                    raise
            else:
                self.reconnects += 1
                return greeting
            await asyncio.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))
        raise AssertionError("unreachable")

    async def _first_open(self) -> None:
        """The first connection; with `auto_reconnect`, a 4421 (moved) right away is followed like any reconnect."""
        try:
            await self._open()
        except SessionEnded as exc:
            if exc.code != MOVED_CLOSE_CODE or not self.auto_reconnect:
                raise
            await self.reconnect()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one message. A socket found closed reconnects first, as `recv` does (with `auto_reconnect` and a
        close code that is not final), and the fresh greeting is queued for `recv`; else SessionEnded."""
        if self._ws is None:
            raise RuntimeError("socket not connected")
        text = orjson.dumps(message).decode()
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if code in FINAL_CLOSE_CODES or not self.auto_reconnect:
                raise SessionEnded(code, exc.rcvd.reason if exc.rcvd else "") from exc
            self._backlog.append(await self.reconnect())
            assert self._ws is not None
            await self._ws.send(text)  # not sent before: a closed socket takes nothing

    async def ping(self) -> int:
        """Send an application ping; the matching `Pong` updates `clock_offset_ms` when it is received."""
        t = time.time_ns() // 1_000_000
        self._sent_pings[t] = time.time() * 1000
        while len(self._sent_pings) > 32:  # pongs that never came (a dropped socket) must not pile up
            del self._sent_pings[next(iter(self._sent_pings))]
        await self.send({"type": "ping", "t": t})
        return t

    def server_now_ms(self) -> float:
        """The server's wall clock as best estimated from pongs (use it for countdowns to `deadline_ms`)."""
        return time.time() * 1000 + self.clock_offset_ms

    def _observe(self, message: ServerMessage) -> None:
        if isinstance(message, Pong) and isinstance(message.t, int) and message.t in self._sent_pings:
            sent, received = self._sent_pings.pop(message.t), time.time() * 1000
            if received - sent <= self._best_rtt_ms:
                self._best_rtt_ms = received - sent
                self.clock_offset_ms = message.now_ms - (sent + received) / 2

    async def recv(self) -> ServerMessage:
        """The next message. On a transient drop with `auto_reconnect`, reconnects and returns the new greeting.

        Without `auto_reconnect` every close raises SessionEnded; for a code outside FINAL_CLOSE_CODES (4421
        moved, 1001, a dead network's None) the caller may `reconnect()`.

        Bound the wait with `asyncio.timeout(...)` around the call, or use `expect`.
        """
        if self._backlog:
            return self._backlog.popleft()
        if self._ws is None:
            raise RuntimeError("socket not connected")
        try:
            frame = await self._ws.recv()
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if code in FINAL_CLOSE_CODES or not self.auto_reconnect:
                raise SessionEnded(code, exc.rcvd.reason if exc.rcvd else "") from exc
            return await self.reconnect()
        message = parse_message(frame)
        self._observe(message)
        return message

    async def _reply(self, is_reply: Callable[[ServerMessage], bool], within: float) -> ServerMessage:
        """The first message that `is_reply` accepts; the others stay queued, in order, for `recv`."""
        skipped: list[ServerMessage] = []
        try:
            async with asyncio.timeout(within):
                while True:
                    message = await self.recv()
                    if is_reply(message):
                        return message
                    skipped.append(message)
        finally:
            self._backlog.extendleft(reversed(skipped))

    async def expect(self, kind: type[M], *, within: float = 10.0) -> M:
        """Receive until a message of type `kind` arrives, skipping others; TimeoutError after `within` seconds."""
        async with asyncio.timeout(within):
            while True:
                message = await self.recv()
                if isinstance(message, kind):
                    return message


class PlayerSocket(_RoomSocket):
    """A player's socket: `welcome` is the state at the last (re)connection, `ticket` the latest credentials
    (its `ws_url` follows every resume)."""

    ticket: PlayerTicket | None = None

    @classmethod
    async def connect(
        cls,
        ticket: PlayerTicket,
        *,
        auto_reconnect: bool = False,
        open_timeout: float = 10.0,
        api: QuizroomAPI | None = None,
    ) -> PlayerSocket:
        """Connect with a ticket. Reconnects resume through `api` when given, else through `ticket.api_url`."""
        socket = cls(
            ticket.ws_url,
            ticket.token,
            auto_reconnect=auto_reconnect,
            open_timeout=open_timeout,
            api=api,
            api_url=ticket.api_url,
        )
        socket.ticket = ticket
        await socket._first_open()
        return socket

    async def _locate(self, api: QuizroomAPI) -> str | None:
        if self.ticket is None:
            return None
        fresh = await api.resume(self.ticket.pin, self.ticket.token)
        self.ticket = replace(self.ticket, ws_url=fresh.ws_url)
        return fresh.ws_url

    @property
    def welcome(self) -> Welcome:
        if not isinstance(self.greeting, Welcome):
            raise RuntimeError(f"expected a welcome, got {self.greeting!r}")
        return self.greeting

    async def answer(
        self,
        question: int,
        choice: int | list[int] | None = None,
        *,
        text: str | None = None,
        value: float | None = None,
    ) -> None:
        """Answer `question` with one choice index, a list of indexes (a multi-correct question, or a puzzle's items
        in order), a typed `text` (type_answer) or a `value` (slider): exactly one of them."""
        if (choice is None) + (text is None) + (value is None) != 2:
            raise ValueError("answer with exactly one of a choice, a text and a value")
        if text is not None:
            await self.send({"type": "answer", "question": question, "text": text})
        elif value is not None:
            await self.send({"type": "answer", "question": question, "value": value})
        elif isinstance(choice, list):
            await self.send({"type": "answer", "question": question, "choices": choice})
        else:
            await self.send({"type": "answer", "question": question, "choice": choice})

    async def answer_and_wait(
        self,
        question: int,
        choice: int | list[int] | None = None,
        *,
        text: str | None = None,
        value: float | None = None,
        within: float = 10.0,
    ) -> AnswerAck:
        """Answer and return the ack; a refusal (an `error` message) raises `SocketRefusal`.

        With `auto_reconnect`, an answer sent just before the socket dropped may have been lost with it: after each
        reconnect (a fresh `Welcome`) it is sent again. That is always safe: a repeat of a stored answer is acked
        with `duplicate: true` and the original timing, and never scores twice (SPEC §3). The welcomes stay queued
        for `recv`."""
        greetings: list[ServerMessage] = []

        def is_reply(m: ServerMessage) -> bool:
            return isinstance(m, ErrorMessage | Welcome) or (isinstance(m, AnswerAck) and m.question == question)

        await self.answer(question, choice, text=text, value=value)
        try:
            async with asyncio.timeout(within):
                while True:
                    reply = await self._reply(is_reply, within)
                    if isinstance(reply, Welcome):
                        greetings.append(reply)
                        await self.answer(question, choice, text=text, value=value)
                        continue
                    if isinstance(reply, ErrorMessage):
                        raise SocketRefusal(reply.code, reply.message)
                    assert isinstance(reply, AnswerAck)
                    return reply
        finally:
            self._backlog.extendleft(reversed(greetings))


class SocketRefusal(Exception):
    """An `error` message in answer to a client message: `code` is one of SPEC §3's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class HostSocket(_RoomSocket):
    """The host's socket: every room event with the correct answers, plus `players` and `answers` counts."""

    room: HostedRoom | None = None

    @classmethod
    async def connect(
        cls,
        room: HostedRoom,
        *,
        auto_reconnect: bool = False,
        open_timeout: float = 10.0,
        api: QuizroomAPI | None = None,
    ) -> HostSocket:
        """Connect as the host. Reconnects refresh `host_ws_url` through `api` when given, else `room.api_url`."""
        socket = cls(
            room.host_ws_url,
            room.host_token,
            auto_reconnect=auto_reconnect,
            open_timeout=open_timeout,
            api=api,
            api_url=room.api_url,
        )
        socket.room = room
        await socket._first_open()
        return socket

    async def _locate(self, api: QuizroomAPI) -> str | None:
        if self.room is None:
            return None
        url = (await api.state(self.room)).host_ws_url
        if url is not None:
            self.room = replace(self.room, host_ws_url=url)
        return url

    async def command(self, name: str, **fields: Any) -> None:
        """Send `start`, `close`, `next`, `end`, `lock`, `unlock` or `kick` (with `player_id`); the answer is a
        `state` or `error` message on this socket."""
        await self.send({"type": name, **fields})

    async def run(self, name: str, *, within: float = 10.0, **fields: Any) -> RoomState:
        """Send a command and return the room `state` it answers with; an `error` raises `SocketRefusal`."""
        await self.command(name, **fields)
        reply = await self._reply(lambda m: isinstance(m, RoomState | ErrorMessage), within)
        if isinstance(reply, ErrorMessage):
            raise SocketRefusal(reply.code, reply.message)
        assert isinstance(reply, RoomState)
        return reply
