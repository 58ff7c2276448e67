"""Tenure: how long a worker may speak for its rooms after the last heartbeat it sent that committed."""

from __future__ import annotations

import math

import pytest

from quizroom.rooms.actors.tenure import Tenure
from quizroom.rooms.game.clock import ManualClock


def test_tenure_ends_a_margin_before_the_lease_can_lapse_and_renewal_wakes_the_waiting() -> None:
    clock = ManualClock()
    tenure = Tenure(clock, ttl_s=2.0, margin_s=0.5)
    assert tenure.holds(), "a fresh worker's leases expire no sooner than now + ttl"
    clock.advance(1.49)
    assert tenure.holds()
    clock.advance(0.02)
    assert not tenure.holds(), "1.5 s: the margin before any lease of ours can lapse"
    woken: list[str] = []
    tenure.when_renewed(lambda: woken.append("a"))
    tenure.renewed(sent_at=clock.monotonic() - 1.6)  # a heartbeat that took long: still lapsed
    assert woken == [] and not tenure.holds()
    sent = clock.monotonic()
    clock.advance(0.3)  # its round trip
    tenure.renewed(sent_at=sent)
    assert woken == ["a"] and tenure.holds()
    tenure.when_renewed(lambda: woken.append("b"))  # holding: at once
    assert woken == ["a", "b"]
    clock.advance(1.21)
    assert not tenure.holds(), "counted from when the heartbeat was sent, not when it came back"


def test_a_server_alone_never_lapses_and_a_margin_must_fit_the_ttl() -> None:
    clock = ManualClock()
    alone = Tenure(clock)
    clock.advance(1e9)
    assert alone.holds() and alone.until == math.inf
    with pytest.raises(ValueError):
        Tenure(clock, ttl_s=2.0, margin_s=2.0)
