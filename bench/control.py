"""The HTTP side of a target: create a room, join players, send host commands, read results and metrics.

Two flavours, one interface: `quizroom` speaks SPEC.md §2; `baseline` (bench/baseline.py) only parses GET, so
room creation and joins go to its two GET stand-ins while results keep quizroom's path and shape.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import orjson

from .http1 import Http1Client, HttpError

#: Refusals of a "where do I connect" lookup that the socket would give too (4401, 4403, 4404): reconnecting
#: cannot help. Matched on the status *and* the server's error code, so a server without the sharding extension
#: (a bare 404 for an unknown path) is not mistaken for "no room".
FINAL_LOOKUP_REFUSALS = frozenset({(401, "unauthorized"), (403, "kicked"), (404, "not_found")})


class ControlError(Exception):
    """A control call failed; `code` is `http_<status>:<server's error code>`, `http_<status>`, or
    `connection:<exception name>` (status 0) when the server could not be reached."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code

    @property
    def final(self) -> bool:
        """A lookup refusal that reconnecting cannot get past (unknown token, kicked, no room)."""
        return (self.status, self.code.partition(":")[2]) in FINAL_LOOKUP_REFUSALS

    @property
    def transient(self) -> bool:
        """Worth asking again after a pause: 5xx (503 during a failover) or 429."""
        return self.status >= 500 or self.status == 429


@dataclass(slots=True, frozen=True)
class RoomInfo:
    pin: str
    room_id: str
    host_token: str
    host_ws_url: str


@dataclass(slots=True, frozen=True)
class Credentials:
    player_id: str
    token: str
    ws_url: str
    pin: str = ""


def ws_base(http_url: str) -> str:
    """`http://h:p` → `ws://h:p` (relative ws URLs from the server are resolved against it)."""
    return "ws" + http_url.removeprefix("http") if http_url.startswith("http") else http_url


def make_quiz(
    questions: int, time_limit_ms: int, title: str = "quizroom-bench", question_type: str = "choice"
) -> dict[str, Any]:
    """A valid quiz whose right answer is always choice 0 (the bench decides who is right without peeking): for
    `type_answer` the accepted text is choice 0's, for `slider` (0 to 3) the value 0 (bench/worker.py,
    `answer_message`)."""
    choices = ["alpha", "bravo", "charlie", "delta"]
    shapes: dict[str, dict[str, Any]] = {
        "choice": {"choices": choices, "correct": [0]},
        "type_answer": {"type": "type_answer", "accepted": [choices[0]]},
        "slider": {"type": "slider", "min": 0, "max": 3, "step": 1, "value": 0},
    }
    return {
        "title": title,
        "questions": [
            {
                "text": f"Question {i + 1}: which one?",
                **shapes[question_type],
                "time_limit_ms": time_limit_ms,
                "points": 1000,
            }
            for i in range(questions)
        ],
    }


class Control:
    """Control calls for one target; one instance per process (keeps its connections alive)."""

    def __init__(self, base_url: str, flavour: str, connections: int = 64, admin_token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.flavour = flavour
        self.admin_token = admin_token  # a server with QUIZROOM_ADMIN_TOKEN refuses to create rooms without it
        self._http = Http1Client(self.base_url, connections, timeout_s=60.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    def absolute_ws(self, url: str) -> str:
        return url if "://" in url else urljoin(ws_base(self.base_url) + "/", url)

    async def _call(
        self, method: str, path: str, token: str | None = None, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        body = orjson.dumps(json) if json is not None else None
        try:
            status, content = await self._http.request(method, path, body, token=token, params=params)
        except HttpError as exc:
            raise ControlError(0, f"connection:{exc.kind}", str(exc)) from exc
        if status >= 400:
            code = f"http_{status}"
            with contextlib.suppress(ValueError, KeyError, TypeError):
                code = f"{code}:{orjson.loads(content)['error']['code']}"
            raise ControlError(status, code, content[:200].decode(errors="replace"))
        return orjson.loads(content) if content else None

    async def create_room(self, quiz: dict[str, Any]) -> RoomInfo:
        if self.flavour == "baseline":
            limit = str(quiz["questions"][0]["time_limit_ms"])
            body = await self._call(
                "GET", "/baseline/rooms", params={"questions": str(len(quiz["questions"])), "time_limit_ms": limit}
            )
        else:
            body = await self._call("POST", "/api/rooms", json={"quiz": quiz}, token=self.admin_token)
        return RoomInfo(
            str(body["pin"]), str(body["room_id"]), body["host_token"], self.absolute_ws(body["host_ws_url"])
        )

    async def join(self, pin: str, nickname: str) -> Credentials:
        if self.flavour == "baseline":
            body = await self._call("GET", "/baseline/join", params={"pin": pin, "nickname": nickname})
        else:
            body = await self._call("POST", f"/api/rooms/{pin}/players", json={"nickname": nickname})
        return Credentials(str(body["player_id"]), body["token"], self.absolute_ws(body["ws_url"]), pin)

    async def resume(self, pin: str, token: str) -> str | None:
        """Where a player's socket must connect now (sharding extension: `POST /api/rooms/{pin}/resume`); None for
        the baseline, which has one process. Raises ControlError; see its `final` and `transient`."""
        if self.flavour == "baseline":
            return None
        body = await self._call("POST", f"/api/rooms/{pin}/resume", token=token)
        return self.absolute_ws(str(body["ws_url"]))

    async def host_ws_url(self, room: RoomInfo) -> str | None:
        """Where the host's socket must connect now (`host_ws_url` of `GET /api/rooms/{pin}`); None when the
        server does not say (the baseline, or a server without sharding). Raises ControlError."""
        if self.flavour == "baseline":
            return None
        body = await self._call("GET", f"/api/rooms/{room.pin}", token=room.host_token)
        url = body.get("host_ws_url") if isinstance(body, dict) else None
        return self.absolute_ws(url) if isinstance(url, str) and url else None

    async def room_state(self, room: RoomInfo) -> dict[str, Any]:
        """`GET /api/rooms/{pin}` as the host sees it (phase, players, shards, …)."""
        body = await self._call("GET", f"/api/rooms/{room.pin}", token=room.host_token)
        assert isinstance(body, dict)
        return body

    async def command(self, room: RoomInfo, name: str) -> Any:
        """Host command over HTTP (the bench prefers the host socket; this is `--commands http`)."""
        return await self._call("POST", f"/api/rooms/{room.pin}/{name}", token=room.host_token)

    async def results(self, room: RoomInfo) -> dict[str, Any]:
        body = await self._call("GET", f"/api/rooms/{room.pin}/results", token=room.host_token)
        assert isinstance(body, dict)
        return body

    async def ready(self) -> bool:
        try:
            status, _ = await self._http.request("GET", "/healthz", timeout_s=2.0)
        except HttpError:
            return False
        return status == 200

    async def metrics(self) -> str | None:
        """Prometheus text from `/metrics`, or None (the baseline has none)."""
        if self.flavour == "baseline":
            return None
        try:
            status, content = await self._http.request("GET", "/metrics", timeout_s=10.0)
        except HttpError:
            return None
        return content.decode(errors="replace") if status == 200 else None
