"""Messages from other workers, delivered to the actors of this one (docs/scaling.md).

The cluster's transport hands every message here in arrival order. Requests for a coordinator (join, commands, …)
are served and answered; a shard's reports go to its coordinator's inbox; a coordinator's events for a shard are
queued per shard and applied in order, loading the shard from storage first if this worker does not hold it yet
(it was placed here, or this worker restarted). A reveal reads the room's score histogram from storage before it
is posted: it may not fit in a message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from quizroom.rooms.game.errors import NotFound
from quizroom.rooms.links import Finish, RemoteCoordinatorLink, Reveal, ShardSummary
from quizroom.rooms.remote import reply_for, serve_call
from quizroom.rooms.views import read_view
from quizroom.storage.records import RoomView

if TYPE_CHECKING:
    from quizroom.rooms.actor import RoomActor
    from quizroom.rooms.registry import RoomRegistry

log = structlog.get_logger("quizroom.mailroom")

SHARD_EVENTS = ("open", "close", "reveal", "finish", "kick", "coordinator")


class Mailroom:
    def __init__(self, registry: RoomRegistry) -> None:
        self.registry = registry
        self._mail: dict[tuple[str, int], asyncio.Queue[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def deliver(self, message: dict[str, Any]) -> None:
        """The cluster transport's callback: route a message to the actor it is for, in arrival order."""
        kind = message.get("kind")
        if self.registry.closing:
            return  # shutting down: the workers that take over hear from the database, not from here
        if kind == "rpc_reply":
            self.registry.rpc.on_reply(message)
        elif kind == "rpc":
            self._tasks_add(self._serve_rpc(message))
        elif kind in ("closed", "progress"):
            self._to_coordinator(message)
        elif kind in SHARD_EVENTS:
            key = (str(message["pin"]), int(message["shard"]))
            queue = self._mail.get(key)
            if queue is None:
                queue = self._mail[key] = asyncio.Queue()
                self._tasks_add(self._shard_mail(key, queue))
            queue.put_nowait(message)

    def _tasks_add(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_rpc(self, message: dict[str, Any]) -> None:
        pin = str(message.get("pin"))
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            coordinator = self.registry.here(pin) or await self.registry.coordinator(pin)
            if coordinator is None:
                raise NotFound("no such room")
            args = message.get("args")
            outcome.set_result(
                await serve_call(coordinator, str(message.get("op")), args if isinstance(args, dict) else {})
            )
        except Exception as exc:
            outcome.set_exception(exc)
        self.registry.send(str(message.get("from")), reply_for(str(message.get("id")), outcome))

    def _to_coordinator(self, message: dict[str, Any]) -> None:
        room_id = message.get("room_id")
        coordinator = self.registry.coordinating(str(room_id))
        if coordinator is None:
            return
        shard = int(message["shard"])
        if message["kind"] == "closed":
            coordinator.post(lambda: coordinator.on_closed(shard, int(message["index"])))
        else:
            question = message.get("question")
            summary = ShardSummary(
                int(message["connected"]),
                None if question is None else int(question),
                int(message["answered"]),
                bool(message["all_answered"]),
            )
            check = bool(message.get("check"))
            coordinator.post(lambda: coordinator.on_progress(shard, summary, check))

    async def _shard_mail(self, key: tuple[str, int], queue: asyncio.Queue[dict[str, Any]]) -> None:
        """One shard's events from its coordinator, applied in order (a reveal reads the histogram first). Ends
        when none is left: the next event starts a new queue, so idle and finished shards cost nothing here."""
        while not queue.empty():
            message = queue.get_nowait()
            try:
                await self._apply(key, message)
            except Exception:
                log.exception("shard_event_failed", pin=key[0], shard=key[1], kind=message.get("kind"))
        if self._mail.get(key) is queue:
            del self._mail[key]

    async def _apply(self, key: tuple[str, int], message: dict[str, Any]) -> None:
        pin, shard = key
        room_id = str(message["room_id"])
        sender = str(message.get("from", ""))
        actor = self.registry.shard_here(pin, room_id, shard)
        if actor is None:
            fresh = RemoteCoordinatorLink(room_id, sender, self.registry.send)
            actor = await self.registry.hold_shard(pin, room_id, shard, fresh)
        current = actor.coordinator
        if isinstance(current, RemoteCoordinatorLink):
            current.worker_id = sender  # the coordinator may have moved: its events come from where it is now
        elif sender != self.registry.worker_id:  # it was coordinated here until this worker lost the lease
            actor.coordinator = RemoteCoordinatorLink(room_id, sender, self.registry.send)
        kind = message["kind"]
        if kind == "open":
            index, opened_at_ms, seq = int(message["index"]), int(message["opened_at_ms"]), int(message["seq"])
            actor.post(lambda: actor.open_question(index, opened_at_ms, seq))
        elif kind == "close":
            index = int(message["index"])
            actor.post(lambda: actor.close_question(index))
        elif kind == "kick":
            player_id = str(message["player_id"])
            actor.post(lambda: actor.kick(player_id))
        elif kind == "coordinator":
            actor.post(actor.report)  # a new coordinator knows nothing of this shard yet
        elif kind == "reveal":
            index = int(message["index"])
            view = await self._histogram(room_id, index, actor)
            reveal = Reveal(index, int(message["result_seq"]), message["board"], view.histogram)
            actor.post(lambda: actor.reveal(reveal))
        elif kind == "finish":
            through = message.get("through")
            view = await self._histogram(room_id, None if through is None else int(through), actor)
            finish = Finish(int(message["seq"]), message["podium"], view.histogram)
            actor.post(lambda: actor.finish(finish))

    async def _histogram(self, room_id: str, through: int | None, actor: RoomActor) -> RoomView:
        """The room's scores as of `through`, retried like the coordinator's read (a reveal must not be lost)."""
        storage = self.registry.storage
        players = len(actor.state.players)
        return await read_view(storage, room_id, question=None, choices=0, through=through, top=0, players=players)
