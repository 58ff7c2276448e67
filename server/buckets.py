"""Token buckets keyed by client address: how the server meters what one address may do per second.

The HTTP API meters joins, quiz and room creation, and lookups of PINs that name no room (enumeration) with one
`AddressBuckets` each; WebSocket admission meters handshakes the same way. A refusal says when to come back (the
`Retry-After` of a 429). Memory is bounded by activity: once `keep` addresses are known, buckets that have
refilled are forgotten, since a new bucket would start exactly as full.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from quizroom.rooms.game.ratelimit import TokenBucket
from quizroom.server.settings import Settings


class AddressBuckets:
    """One token bucket per client address, created full on first use. `rate` 0 switches the meter off."""

    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic, keep: int = 10_000
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.keep = keep
        self._buckets: dict[str, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, address: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.keep:
                self._prune(now)
            bucket = self._buckets[address] = TokenBucket(self.rate, self.burst, now)
        return bucket

    def spend(self, address: str) -> int:
        """Spend a token of `address`: 0 when there was one, else the whole seconds to wait (nothing spent)."""
        if not self.enabled:
            return 0
        now = self.clock()
        bucket = self._bucket(address, now)
        if bucket.allow(now):
            return 0
        return max(1, math.ceil(bucket.wait_s(now)))

    def wait(self, address: str) -> int:
        """Whole seconds until `address` has a token again (0: it has one now); spends nothing."""
        if not self.enabled:
            return 0
        bucket = self._buckets.get(address)
        if bucket is None:
            return 0
        wait_s = bucket.wait_s(self.clock())
        return max(1, math.ceil(wait_s)) if wait_s > 0 else 0

    def _prune(self, now: float) -> None:
        for address in [a for a, b in self._buckets.items() if b.full(now)]:
            del self._buckets[address]


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """What the HTTP API meters per client address (docs/operations.md, "Limits and abuse")."""

    joins: AddressBuckets
    creations: AddressBuckets  # quizzes and rooms
    pin_misses: AddressBuckets  # lookups of a PIN that names no room: enumeration
    uploads: AddressBuckets  # images uploaded (an editor uploads one per picture, so beside creations)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic) -> ApiLimits:
        return cls(
            AddressBuckets(settings.join_rate_per_ip, settings.join_burst, clock=clock),
            AddressBuckets(settings.create_rate_per_ip, settings.create_burst, clock=clock),
            AddressBuckets(settings.pin_miss_rate_per_ip, settings.pin_miss_burst, clock=clock),
            AddressBuckets(settings.upload_rate_per_ip, settings.upload_burst, clock=clock),
        )
