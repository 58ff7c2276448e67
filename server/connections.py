"""The process's bound on open connections, per client address and in total, counted from accept to close.

Every TCP connection holds a file descriptor for as long as it is open: a WebSocket for a whole game, an HTTP
request until its body is in (bounded by the request deadline, `quizroom.server.protocols`), a keep-alive
connection between requests. The process has a hard limit on descriptors (20,000 here, the same on many hosts), and
once it is reached `accept` fails, and so do the database pool, the log file and every health check: one client
with ten thousand slow connections takes the server from everyone. So connections are counted here, HTTP and
WebSocket together, before any byte of a request is read:

- **in total**, at most `max_connections` (by default the descriptor limit minus `FD_RESERVE`, which keeps room for
  the listeners, the database connections, log files and health checks); past it a new connection gets `503`;
- **per client address**, at most `max_per_address` (by default half the total, so that one address, however
  many connections it opens, always leaves the other half to everyone else); past it, `429`;
- a connection past the total may still ask for a health probe: `PROBE_BAND` more connections are admitted for
  `/healthz`, `/readyz` and `/metrics` only, so that an orchestrator sees a full server as full, not as dead.

The client address here is the TCP peer: headers are not read yet. A peer among `trusted_proxies` carries many
clients and is exempt from the per-address cap (it enforces its own; the HTTP limits behind it read
`X-Forwarded-For`). The server raises its soft descriptor limit to the hard limit at start (`raise_fd_limit`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import resource
from dataclasses import dataclass

from quizroom.server.admission import Network

FD_RESERVE = 256
"""Descriptors kept out of the connection cap: listeners, up to 14 database connections per process, SQLite's
WAL files, the event loop's own, log files, and the probe band below."""

PROBE_BAND = 32
"""Connections past the total cap that are admitted for health probes only."""

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

RETRY_AFTER_S = 5
"""Connections end at their own pace (a request deadline, a game's end): a few seconds is an honest guess."""


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft open-file limit to the hard limit (children inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):  # some sandboxes refuse even this: keep the soft limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


@dataclass(slots=True)
class Slot:
    """One admitted connection. `probe_only`: admitted past the total cap, for a health probe and nothing else."""

    address: str
    probe_only: bool = False
    released: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    status: int  # 429 (this address has too many) or 503 (the server is full)
    reason: str


class ConnectionGate:
    """Counts open connections per address and in total; one per serving process, shared by its protocols."""

    def __init__(self, max_total: int, max_per_address: int, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.trusted_proxies = trusted_proxies
        self.open_total = 0
        self.probes = 0
        self.refused = {429: 0, 503: 0}
        self._open: dict[str, int] = {}
        self._exempt: dict[str, bool] = {}

    @classmethod
    def sized(
        cls, max_connections: int, max_per_ip: int, fd_limit: int, trusted_proxies: tuple[Network, ...] = ()
    ) -> ConnectionGate:
        """0 means the default: the descriptor limit minus the reserve, and half of that per address."""
        total = max_connections or max(1, fd_limit - FD_RESERVE)
        return cls(total, max_per_ip or max(1, total // 2), trusted_proxies)

    def _trusted(self, address: str) -> bool:
        exempt = self._exempt.get(address)
        if exempt is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                exempt = False
            else:
                exempt = any(ip in network for network in self.trusted_proxies)
            if len(self._exempt) < 4096:
                self._exempt[address] = exempt
        return exempt

    def admit(self, address: str) -> Slot | Refused:
        """A slot for a new connection from `address`, or the refusal to answer it with. Release every slot."""
        if (
            self.max_per_address
            and self._open.get(address, 0) >= self.max_per_address
            and not (self.trusted_proxies and self._trusted(address))
        ):
            self.refused[429] += 1
            return Refused(429, "too many connections from your address")
        if self.open_total >= self.max_total:
            if self.probes < PROBE_BAND:
                self.probes += 1
                return Slot(address, probe_only=True)
            self.refused[503] += 1
            return Refused(503, "the server is at capacity")
        self.open_total += 1
        self._open[address] = self._open.get(address, 0) + 1
        return Slot(address)

    def release(self, slot: Slot) -> None:
        """Idempotent: the HTTP protocol and the WebSocket protocol that took its connection over may both call."""
        if slot.released:
            return
        slot.released = True
        if slot.probe_only:  # the probe band is not part of the per-address counts
            self.probes -= 1
            return
        self.open_total -= 1
        left = self._open.get(slot.address, 0) - 1
        if left > 0:
            self._open[slot.address] = left
        else:
            self._open.pop(slot.address, None)

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)
