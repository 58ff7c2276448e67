"""How long a room lives here, and how many may (docs/operations.md, "Limits and abuse").

A lobby room costs ~8 KB and a PIN; an anonymous client once opened 50,000 of them at ~216 a second, which at that
rate empties the 900,000 PINs in about 70 minutes. So live rooms are capped here and per creating address, a lobby
nobody is in (no host socket, no player socket) is ended after `lobby_idle_s` — its PIN returns to the pool — and a
finished room nobody watches leaves memory after `finished_linger_s` (its results stay in storage and are read from
there). `Lifetimes` decides; the registry ends and evicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from quizroom.rooms.game.clock import Clock
from quizroom.rooms.game.errors import AtCapacity, RateLimited
from quizroom.rooms.game.rules import Phase, RoomState


class Held(Protocol):
    @property
    def state(self) -> RoomState: ...


R = TypeVar("R", bound=Held)


@dataclass(frozen=True, slots=True)
class RoomCaps:
    """How many rooms this worker holds, and for how long (docs/operations.md, "Limits and abuse").

    A lobby room costs ~8 KB and a PIN; an anonymous client once opened 50,000 of them at ~216 a second, which at
    that rate empties the 900,000 PINs in about 70 minutes. So live rooms are capped here and per creating address,
    a lobby nobody is in (no host socket, no player socket) is ended after `lobby_idle_s` — its PIN returns to the
    pool — and a finished room nobody watches leaves memory after `finished_linger_s` (its results stay in storage
    and are read from there). 0 lifts a cap.
    """

    max_rooms: int = 0
    max_rooms_per_owner: int = 0
    lobby_idle_s: float = 1_800.0
    finished_linger_s: float = 600.0

    @property
    def sweep_every_s(self) -> float:
        """Often enough that a lifetime is kept within a quarter of itself, and never more than once a minute."""
        return min(60.0, max(0.25, min(self.lobby_idle_s, self.finished_linger_s) / 4))


class Lifetimes:
    def __init__(self, caps: RoomCaps, clock: Clock) -> None:
        self.caps = caps
        self.clock = clock
        self._owners: dict[str, str] = {}  # PIN → the address that created the room here (for `max_rooms_per_owner`)
        self._idle_since: dict[str, float] = {}  # PIN → when its lobby was first seen empty

    def check(self, rooms: Mapping[str, Held], owner: str) -> None:
        """Refuse a new room when `rooms` holds `max_rooms` live ones (503), or `owner` holds its share (429)."""
        caps = self.caps
        if not caps.max_rooms and not caps.max_rooms_per_owner:
            return
        live = [pin for pin, room in rooms.items() if room.state.phase is not Phase.FINISHED]
        if caps.max_rooms and len(live) >= caps.max_rooms:
            raise AtCapacity("this server holds as many rooms as it may; try again later").retry_after(60)
        if caps.max_rooms_per_owner and owner:
            mine = sum(1 for pin in live if self._owners.get(pin) == owner)
            if mine >= caps.max_rooms_per_owner:
                raise RateLimited("your address has opened as many rooms as it may; end one first").retry_after(60)

    def created(self, pin: str, owner: str) -> None:
        if owner:
            self._owners[pin] = owner

    def forget(self, pin: str) -> None:
        self._owners.pop(pin, None)
        self._idle_since.pop(pin, None)

    def idle_lobbies(self, rooms: Mapping[str, R], watched: Callable[[str, R], bool]) -> Iterator[tuple[str, float]]:
        """The lobbies nobody has been in for `lobby_idle_s` (PIN, seconds idle); each is forgotten as it goes."""
        now = self.clock.monotonic()
        for pin, room in list(rooms.items()):
            if room.state.phase is not Phase.LOBBY or watched(pin, room):
                self._idle_since.pop(pin, None)
                continue
            since = self._idle_since.setdefault(pin, now)
            if now - since >= self.caps.lobby_idle_s:
                self._idle_since.pop(pin, None)
                yield pin, now - since

    def lingered(self, finished_at: float | None) -> bool:
        """Finished long enough ago to leave memory."""
        return finished_at is not None and self.clock.monotonic() - finished_at >= self.caps.finished_linger_s
