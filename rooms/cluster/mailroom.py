"""Messages from other workers, delivered to the actors of this one (docs/scaling.md).

The cluster's transport hands every message here in arrival order. Requests for a coordinator (join, commands, …)
are served and answered; a shard's reports go to its coordinator's inbox; a coordinator's events for a shard are
queued per shard and applied in order, loading the shard from storage first if this worker does not hold it yet
(it was placed here, or this worker restarted). A reveal reads the room's score histogram from storage before it
is posted: it may not fit in a message.

The mailroom knows the worker's rooms only through `Router`, four calls wide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from quizroom.rooms.actors.views import read_view
from quizroom.rooms.cluster.codec import (
    COORDINATOR_KINDS,
    SHARD_KINDS,
    carries_histogram,
    coordinator_event,
    shard_event,
)
from quizroom.rooms.cluster.remote import Served, reply_for, serve_call
from quizroom.rooms.game.errors import NotFound
from quizroom.rooms.game.events import CoordinatorEvent, ShardEvent
from quizroom.storage.base import Storage

log = structlog.get_logger("quizroom.mailroom")


class ShardMailbox(Protocol):
    """A shard that takes events, and how many players it holds (the size of the view a reveal reads)."""

    @property
    def players(self) -> int: ...

    def receive(self, event: ShardEvent) -> None: ...


class Router(Protocol):
    """Where messages go on this worker (`quizroom.rooms.cluster.registry`)."""

    closing: bool

    def reporting_to(self, room_id: str) -> Callable[[CoordinatorEvent], None] | None:
        """Where a shard's report for `room_id` goes: the coordinator here, if this worker coordinates the room."""

    async def serving(self, pin: str) -> Served | None:
        """The coordinator here that serves requests for `pin` (loading or taking the room over if need be)."""

    async def shard_mail(self, pin: str, room_id: str, shard: int, sender: str, epoch: int) -> ShardMailbox | None:
        """The shard here that takes events from `sender`, the coordinator under lease `epoch` (loaded if need
        be; its reports then go to `sender`); None when the shard has heard from a newer coordinator."""


class Mailroom:
    def __init__(
        self, router: Router, storage: Storage, send: Callable[[str, dict[str, Any]], None], on_reply: Any
    ) -> None:
        """`send(worker_id, message)` answers requests; `on_reply(message)` takes answers to our own."""
        self.router = router
        self.storage = storage
        self._send = send
        self._on_reply = on_reply
        self._mail: dict[tuple[str, int], asyncio.Queue[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def deliver(self, message: dict[str, Any]) -> None:
        """The cluster transport's callback: route a message to the actor it is for, in arrival order."""
        kind = message.get("kind")
        if self.router.closing:
            return  # shutting down: the workers that take over hear from the database, not from here
        if kind == "rpc_reply":
            self._on_reply(message)
        elif kind == "rpc":
            self._spawn(self._serve_rpc(message))
        elif kind in COORDINATOR_KINDS:
            receive = self.router.reporting_to(str(message.get("room_id")))
            if receive is not None:
                receive(coordinator_event(message))
        elif kind in SHARD_KINDS:
            key = (str(message["pin"]), int(message["shard"]))
            queue = self._mail.get(key)
            if queue is None:
                queue = self._mail[key] = asyncio.Queue()
                self._spawn(self._shard_mail(key, queue))
            queue.put_nowait(message)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_rpc(self, message: dict[str, Any]) -> None:
        pin = str(message.get("pin"))
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            coordinator = await self.router.serving(pin)
            if coordinator is None:
                raise NotFound("no such room")
            args = message.get("args")
            outcome.set_result(
                await serve_call(coordinator, str(message.get("op")), args if isinstance(args, dict) else {})
            )
        except Exception as exc:
            outcome.set_exception(exc)
        self._send(str(message.get("from")), reply_for(str(message.get("id")), outcome))

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
        epoch = int(message.get("epoch", 0))
        mailbox = await self.router.shard_mail(pin, room_id, shard, str(message.get("from", "")), epoch)
        if mailbox is None:
            log.warning("stale_coordinator_event", pin=pin, shard=shard, kind=message.get("kind"), epoch=epoch)
            return
        histogram = None
        if message["kind"] in ("reveal", "finish") and not carries_histogram(message):  # too long to come along
            through = message.get("index") if message["kind"] == "reveal" else message.get("through")
            view = await read_view(
                self.storage,
                room_id,
                question=None,
                choices=0,
                through=None if through is None else int(through),
                top=0,
                players=mailbox.players,
            )
            histogram = view.histogram
        mailbox.receive(shard_event(message, histogram))
