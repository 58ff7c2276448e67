"""Admission control at the WebSocket handshake: who may open a socket at all, decided before the upgrade.

Three limits, each answered with an HTTP status before any WebSocket frame exists, so a refused client costs one
request and never a socket, a task or a queue:

- per client address, the number of sockets open at once (`max_sockets_per_ip`) → 429 with `Retry-After`;
- per client address, the rate of handshakes (`handshakes_per_ip_per_second`, a token bucket holding
  `handshake_burst`) → 429 with `Retry-After` set to when the next token arrives;
- for the whole process, the number of sockets open at once (`max_sockets`) → 503 with `Retry-After`.

Every limit is off at 0, the default: a game hall behind one NAT, our tests and the load generator all open
thousands of sockets from one address. Operators facing the open internet switch them on.

The client address is the TCP peer, except when the peer is one of `trusted_proxies` (addresses or CIDR networks):
then `X-Forwarded-For` is read from the right, skipping trusted hops, and the first untrusted address is the client.
Entries further left were written by the client itself and prove nothing.

The refusal uses the ASGI "WebSocket Denial Response" extension (`websocket.http.response.*`, which uvicorn
provides) so that the status and `Retry-After` reach the client; a server without it gets a plain close before
accept, which uvicorn turns into 403.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from quizroom.server.buckets import AddressBuckets
from quizroom.server.settings import Settings

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SOCKET_RETRY_AFTER_S = 5  # sockets end at their own pace; a few seconds is an honest guess for a retry
PRUNE_AT = 10_000  # handshake buckets kept before idle (full) ones are dropped


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    retry_after_s: int
    reason: str


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`127.0.0.1`, `10.0.0.0/8`, `::1` … → networks; raises `ValueError` on anything else."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_address(peer: str, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str:
    """The client's address: the peer, or — behind trusted proxies — the right-most untrusted forwarded address.

    `forwarded_for` holds every `X-Forwarded-For` header value in order. A malformed entry stops the walk: the hop
    that wrote it is the last one we can vouch for, so that hop is the client.
    """
    current = _address(peer)
    if current is None or not trusted or not _trusted(current, trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return str(current)
        current = address
        if not _trusted(address, trusted):
            return str(address)
    return str(current)  # every hop trusted: the left-most is as far as the chain goes


class Admission:
    """Counts open sockets per address and in total, and meters handshakes per address. One per process."""

    def __init__(
        self,
        *,
        max_sockets: int = 0,
        max_sockets_per_ip: int = 0,
        handshakes_per_s: float = 0.0,
        handshake_burst: float = 20.0,
        trusted_proxies: tuple[Network, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sockets = max_sockets
        self.max_sockets_per_ip = max_sockets_per_ip
        self.handshakes = AddressBuckets(handshakes_per_s, handshake_burst, clock=clock, keep=PRUNE_AT)
        self.trusted_proxies = trusted_proxies
        self.open_total = 0
        self.refused = 0
        self._open: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        return cls(
            max_sockets=settings.max_sockets,
            max_sockets_per_ip=settings.max_sockets_per_ip,
            handshakes_per_s=settings.handshakes_per_ip_per_second,
            handshake_burst=settings.handshake_burst,
            trusted_proxies=parse_networks(settings.trusted_proxies),
        )

    def client_of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not self.trusted_proxies:
            return peer
        forwarded = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-forwarded-for"]
        return client_address(peer, forwarded, self.trusted_proxies)

    def admit(self, client: str) -> Refusal | None:
        """Take a socket slot for `client`, or say why not. Every admitted socket must be `release`d once."""
        wait_s = self.handshakes.spend(client)  # every attempt costs a token, refused ones too: hammering is metered
        if wait_s:
            return self._refuse(Refusal(429, wait_s, "too many connection attempts"))
        if self.max_sockets_per_ip and self._open.get(client, 0) >= self.max_sockets_per_ip:
            return self._refuse(Refusal(429, SOCKET_RETRY_AFTER_S, "too many sockets from your address"))
        if self.max_sockets and self.open_total >= self.max_sockets:
            return self._refuse(Refusal(503, SOCKET_RETRY_AFTER_S, "the server is at capacity"))
        self.open_total += 1
        self._open[client] = self._open.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        self.open_total -= 1
        left = self._open.get(client, 0) - 1
        if left > 0:
            self._open[client] = left
        else:
            self._open.pop(client, None)

    def _refuse(self, refusal: Refusal) -> Refusal:
        self.refused += 1
        return refusal


async def deny(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Answer the handshake with `refusal` (status + Retry-After) instead of upgrading."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = f"{refusal.reason}\n".encode()
        headers = [
            (b"retry-after", str(refusal.retry_after_s).encode()),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1013})  # no denial extension: the server answers 403
