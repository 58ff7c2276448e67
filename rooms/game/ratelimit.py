"""Token bucket: a steady rate with a burst allowance, clock injected. Per socket in the rooms; per client address in
the server's HTTP and admission limits (`quizroom.server.buckets`)."""

from __future__ import annotations


class TokenBucket:
    """`allow(now)` spends one token if there is one. Tokens refill at `rate` per second up to `burst`."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now

    def allow(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until `allow` would succeed (0 when it would now); spends nothing."""
        self._refill(now)
        if self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) / self.rate if self.rate > 0 else float("inf")

    def full(self, now: float) -> bool:
        """Refilled to the burst: a bucket in this state may be forgotten, a new one would start the same."""
        self._refill(now)
        return self._tokens >= self.burst
