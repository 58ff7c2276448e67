"""The live rooms of this process, by PIN. Rooms not in memory are loaded from storage on first use (recovery)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid

import orjson
import structlog

from quizroom.rooms.actor import ActorLimits, RoomActor
from quizroom.rooms.clock import Clock
from quizroom.rooms.quiz import Quiz, parse_quiz
from quizroom.rooms.sessions import hash_token
from quizroom.rooms.state import Answer, Phase, Player, RoomState
from quizroom.rooms.telemetry import NullTelemetry, Telemetry
from quizroom.storage.base import Storage
from quizroom.storage.records import RoomRow
from quizroom.storage.writer import GroupCommitWriter

log = structlog.get_logger("quizroom.registry")

PIN_ATTEMPTS = 100


def is_pin(text: str) -> bool:
    return len(text) == 6 and text.isdigit()


class RoomRegistry:
    """Creates rooms, finds them by PIN (loading and resuming them from storage when needed), evicts old ones."""

    def __init__(
        self,
        storage: Storage,
        writer: GroupCommitWriter,
        clock: Clock,
        limits: ActorLimits,
        *,
        finished_linger_s: float = 600.0,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.storage = storage
        self.writer = writer
        self.clock = clock
        self.limits = limits
        self.finished_linger_s = finished_linger_s
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self._rooms: dict[str, RoomActor] = {}
        self._loading: dict[str, asyncio.Task[RoomActor | None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._rooms)

    def rooms(self) -> list[RoomActor]:
        return list(self._rooms.values())

    async def create(self, quiz_id: str, quiz: Quiz) -> tuple[RoomActor, str]:
        """Open a room for a stored quiz; returns the actor and the host token (shown once, stored hashed)."""
        host_token = secrets.token_urlsafe(32)
        room_id = uuid.uuid4().hex
        for _ in range(PIN_ATTEMPTS):
            pin = str(100_000 + secrets.randbelow(900_000))
            held = self._rooms.get(pin)
            if held is not None and held.state.phase is not Phase.FINISHED:
                continue
            row = RoomRow(room_id, pin, quiz_id, hash_token(host_token), self.clock.wall_ms())
            if await self.storage.create_room(row):
                break
        else:
            raise RuntimeError("no free PIN found")
        state = RoomState(
            room_id=room_id, pin=pin, quiz=quiz, host_token_hash=row.host_token_hash, limits=self.limits.room
        )
        actor = RoomActor(state, self.writer, self.clock, self.limits, telemetry=self.telemetry)
        self._install(actor)
        log.info("room_created", pin=pin, room_id=room_id, questions=len(quiz.questions))
        return actor, host_token

    def _install(self, actor: RoomActor) -> None:
        old = self._rooms.get(actor.state.pin)
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())
        self._rooms[actor.state.pin] = actor
        actor.start()

    async def get(self, pin: str) -> RoomActor | None:
        """The room with this PIN: in memory, or loaded from storage (once, however many callers ask at once)."""
        actor = self._rooms.get(pin)
        if actor is not None or not is_pin(pin):
            return actor
        loading = self._loading.get(pin)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._load(pin))
            self._loading[pin] = loading
            loading.add_done_callback(lambda _: self._loading.pop(pin, None))
        return await asyncio.shield(loading)

    async def _load(self, pin: str) -> RoomActor | None:
        row = await self.storage.find_room(pin)
        if row is None:
            return None
        quiz_row = await self.storage.get_quiz(row.quiz_id)
        if quiz_row is None:
            log.error("room_without_quiz", pin=pin, quiz_id=row.quiz_id)
            return None
        quiz = parse_quiz(orjson.loads(quiz_row.body))
        player_rows = await self.storage.load_players(row.room_id)
        answer_rows = await self.storage.load_answers(row.room_id)
        state = RoomState(
            room_id=row.room_id, pin=pin, quiz=quiz, host_token_hash=row.host_token_hash, limits=self.limits.room
        )
        players = [
            Player(p.player_id, p.nickname, p.nickname_key, p.token_hash, p.joined_at_ms)
            for p in player_rows
            if not p.kicked
        ]
        answers = [
            Answer(a.player_id, a.question, a.choices, a.correct, a.points, a.response_ms, a.received_at_ms)
            for a in answer_rows
        ]
        state.restore(
            phase=Phase(row.phase),
            question_index=row.question_index,
            opened_at_ms=row.opened_at_ms,
            locked=row.locked,
            seq=row.seq,
            players=players,
            answers=answers,
            mono=self.clock.monotonic(),
            wall_ms=self.clock.wall_ms(),
        )
        revoked = {p.token_hash for p in player_rows if p.kicked}
        actor = RoomActor(state, self.writer, self.clock, self.limits, revoked_tokens=revoked, telemetry=self.telemetry)
        current = self._rooms.get(pin)
        if current is not None:  # created meanwhile
            await actor.stop()
            return current
        self._install(actor)
        log.info("room_resumed", pin=pin, room_id=row.room_id, phase=row.phase, players=len(players))
        return actor

    async def resume_open_questions(self) -> None:
        """Load rooms whose question was open at the crash, so their deadlines fire even if nobody reconnects."""
        for pin in await self.storage.rooms_in_phase(str(Phase.QUESTION)):
            await self.get(pin)

    def start_sweeper(self, interval_s: float = 60.0) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(interval_s))

    async def _sweep(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.evict_finished()

    async def evict_finished(self) -> int:
        """Drop finished rooms nobody watches after the linger time; their results stay in storage."""
        now = self.clock.monotonic()
        stale = [
            actor
            for actor in self._rooms.values()
            if actor.finished_at is not None
            and now - actor.finished_at >= self.finished_linger_s
            and not actor.sessions
            and not actor.hosts
        ]
        for actor in stale:
            if self._rooms.get(actor.state.pin) is actor:
                del self._rooms[actor.state.pin]
            await actor.stop()
        return len(stale)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for actor in list(self._rooms.values()):
            await actor.stop()
        self._rooms.clear()
