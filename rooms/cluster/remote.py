"""A room whose coordinator lives on another worker, and the request/reply calls that reach it over the cluster.

Any worker answers any HTTP call (docs/scaling.md). A call that changes a room (join, commands, kick) or needs its
live counts (state, resume) is one request message to the coordinator's worker and one reply back; reads of
leaderboards and results are queries, answered here.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from quizroom.rooms.actors.coordinator import JoinResult
from quizroom.rooms.actors.sessions import hash_token
from quizroom.rooms.actors.views import leaderboard_of
from quizroom.rooms.cluster.links import Send
from quizroom.rooms.game.effects import Whereabouts
from quizroom.rooms.game.errors import InvalidInput, Moved, QuizroomError, Unavailable, error_for
from quizroom.rooms.game.nicknames import NICKNAME_INPUT_MAX, normalise_nickname
from quizroom.rooms.game.rules import Phase
from quizroom.storage.base import Storage
from quizroom.storage.records import RoomRow

RPC_TIMEOUT_S = 10.0
ENVELOPE_BYTES = 256  # what the registry and the transport add to a request (sender, epoch, sequence)


class RpcClient:
    """Requests to other workers' coordinators; replies are matched by id."""

    def __init__(self, worker_id: str, send: Send, max_payload: int) -> None:
        """`max_payload`: the transport's largest message; a request near it is refused here (no valid one is)."""
        self.worker_id = worker_id
        self._send = send
        self._max_payload = max_payload
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}

    async def call(self, worker_id: str, pin: str, op: str, **args: Any) -> Any:
        call_id = secrets.token_hex(8)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (worker_id, future)
        try:
            request = {"kind": "rpc", "id": call_id, "pin": pin, "op": op, "args": args}
            if len(orjson.dumps(request)) > self._max_payload - ENVELOPE_BYTES:
                raise InvalidInput("", "the request is too large")
            self._send(worker_id, request)
            async with asyncio.timeout(RPC_TIMEOUT_S):
                return await future
        except TimeoutError:
            raise Unavailable("the room's coordinator did not answer; try again") from None
        finally:
            self._pending.pop(call_id, None)

    def fail_dead(self, live: set[str]) -> None:
        """Calls waiting on a worker that has died will never be answered: fail them now, not at the timeout."""
        for worker_id, future in self._pending.values():
            if worker_id not in live and not future.done():
                future.set_exception(Unavailable("the room's coordinator has gone; try again"))

    def on_reply(self, message: dict[str, Any]) -> None:
        pending = self._pending.get(str(message.get("id")))
        if pending is None or pending[1].done():
            return
        future = pending[1]
        error = message.get("error")
        if isinstance(error, dict):
            future.set_exception(error_for(str(error.get("code")), str(error.get("message")), int(error["status"])))
        else:
            future.set_result(message.get("result"))


class Served(Protocol):
    """What a request from another worker can ask of a coordinator here."""

    async def join(self, raw_nickname: object, device: str = "") -> JoinResult: ...

    async def command(self, name: str) -> dict[str, Any]: ...

    async def kick(self, player_id: str) -> None: ...

    async def snapshot(self) -> dict[str, Any]: ...

    async def resume(self, token: str) -> Whereabouts: ...


async def serve_call(handle: Served, op: str, args: dict[str, Any]) -> Any:
    """Run a request on the local coordinator `handle`; returns what goes back as JSON."""
    if op == "join":
        joined: JoinResult = await handle.join(args.get("nickname"), str(args.get("device") or ""))
        return {
            "player_id": joined.player_id,
            "token": joined.token,
            "nickname": joined.nickname,
            "worker_id": joined.worker_id,
        }
    if op == "command":
        return await handle.command(str(args.get("name")))
    if op == "kick":
        await handle.kick(str(args.get("player_id")))
        return None
    if op == "snapshot":
        return await handle.snapshot()
    if op == "resume":
        where: Whereabouts = await handle.resume(str(args.get("token")))
        return {"player_id": where.player_id, "worker_id": where.worker_id}
    raise Unavailable(f"unknown request {op!r}")


def reply_for(call_id: str, outcome: asyncio.Future[Any]) -> dict[str, Any]:
    exc = outcome.exception()
    if exc is None:
        return {"kind": "rpc_reply", "id": call_id, "result": outcome.result()}
    if not isinstance(exc, QuizroomError):
        exc = Unavailable("the room's coordinator failed; try again")
    return {
        "kind": "rpc_reply",
        "id": call_id,
        "error": {"code": exc.code, "message": exc.message, "status": exc.status},
    }


class RemoteRoom:
    """The HTTP face of a room coordinated elsewhere. `on_failure` lets the registry forget a stale coordinator."""

    def __init__(
        self,
        row: RoomRow,
        worker_id: str,
        rpc: RpcClient,
        storage: Storage,
        results: Callable[[str], Awaitable[dict[str, Any] | None]],
        on_failure: Callable[[RemoteRoom], None],
    ) -> None:
        self.row = row
        self.pin = row.pin
        self.room_id = row.room_id
        self.worker_id = worker_id
        self._rpc = rpc
        self._storage = storage
        self._results = results
        self._on_failure = on_failure

    def is_host(self, token: str) -> bool:
        return secrets.compare_digest(hash_token(token), self.row.host_token_hash)

    async def _call(self, op: str, **args: Any) -> Any:
        try:
            return await self._rpc.call(self.worker_id, self.pin, op, **args)
        except Unavailable:
            self._on_failure(self)
            raise
        except Moved:  # the coordinator moved on meanwhile: the caller's retry finds the new one
            self._on_failure(self)
            raise Unavailable("the room's coordinator moved; try again") from None

    async def join(self, nickname: object, device: str = "") -> JoinResult:
        if isinstance(nickname, str) and len(nickname) > NICKNAME_INPUT_MAX:
            normalise_nickname(nickname)  # raises what the coordinator would, and the text is never forwarded
        reply = await self._call("join", nickname=nickname, device=device)
        return JoinResult(reply["player_id"], reply["token"], reply["nickname"], reply["worker_id"])

    async def command(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("command", name=name)
        return result

    async def kick(self, player_id: str) -> None:
        await self._call("kick", player_id=player_id)

    async def snapshot(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("snapshot")
        return result

    async def resume(self, token: str) -> Whereabouts:
        reply = await self._call("resume", token=token)
        return Whereabouts(reply["player_id"], reply["worker_id"])

    async def leaderboard(self, limit: int) -> list[dict[str, Any]]:
        row = await self._storage.find_room(self.pin) or self.row
        return await leaderboard_of(self._storage, self.room_id, Phase(row.phase), row.question_index, limit)

    async def results(self) -> dict[str, Any] | None:
        return await self._results(self.pin)

    def local_stats(self) -> dict[str, Any]:
        return {"coordinator": self.worker_id}
