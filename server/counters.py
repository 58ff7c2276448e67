"""What a serving process counts as it goes (sockets, joins, refusals): plain integers bumped on the hot paths and
read by the metrics collector at scrape time (`quizroom.server.metrics`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(slots=True)
class Counters:
    sockets_open: int = 0
    sockets_total: int = 0
    joins: int = 0
    refused_origin: int = 0
    refused_admission: int = 0  # per-address or server-wide limits (429/503 before the upgrade)
    direct_intake: int = 0  # sockets whose messages go straight from uvicorn's protocol to the room
    lean_handshakes: int = 0  # sockets opened from httptools' parse of the request (`quizroom.server.upgrade`)
    http_limited: dict[str, int] = field(default_factory=dict)  # HTTP calls refused by a per-address limit, by limit
    no_sockets: asyncio.Event = field(default_factory=asyncio.Event)

    def socket_opened(self) -> None:
        self.sockets_open += 1
        self.sockets_total += 1
        self.no_sockets.clear()

    def socket_closed(self) -> None:
        self.sockets_open -= 1
        if not self.sockets_open:
            self.no_sockets.set()
