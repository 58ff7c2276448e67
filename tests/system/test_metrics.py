"""`/metrics` after a real game: the counters and histograms an operator graphs move, with bounded labels only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from quizroom.rooms.actors.telemetry import Telemetry
from quizroom.server.metrics import Metrics
from tests.gameclient import Host, quiz

# Labels that would grow with players or rooms; none may appear on any series.
UNBOUNDED_LABELS = {"pin", "room", "room_id", "player", "player_id", "nickname", "token"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not UNBOUNDED_LABELS & set(sample.labels), sample
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_a_game_moves_the_counters_and_histograms(start_server: Any, sqlite_url: str) -> None:
    server = start_server(sqlite_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(2))
        ann, bob = await host.join("Ann"), await host.join("Bob")
        await ann.connect()
        await bob.connect()
        await host.command("start")
        await ann.expect("question")
        await bob.expect("question")
        await ann.answer(0, 0)
        assert (await ann.expect("answer_ack"))["accepted"]
        await ann.answer(0, 0)  # a repeat: acked as a duplicate
        assert (await ann.expect("answer_ack"))["duplicate"]
        await bob.answer(1, 0)  # not the open question
        assert (await bob.expect("error"))["code"] == "wrong_question"
        await bob.answer(0, 1)
        await bob.expect("answer_ack")

        state = await host.state()
        assert state["stats"]["sockets_connected"] == 2
        assert state["stats"]["answers_accepted"] == 2

        found = await scrape(http)
        assert value(found, "quizroom_answers_total", outcome="accepted") == 2
        assert value(found, "quizroom_answers_total", outcome="duplicate") == 1
        assert value(found, "quizroom_answers_total", outcome="refused") == 1
        assert value(found, "quizroom_errors_total", code="wrong_question") == 1
        assert value(found, "quizroom_joins_total") == 2
        assert value(found, "quizroom_sockets_accepted_total") >= 2
        assert value(found, "quizroom_sockets_open") == 2
        assert value(found, "quizroom_players_connected") == 2
        assert value(found, "quizroom_sockets_direct_intake_total") == 2  # both took the fast intake
        assert value(found, "quizroom_sockets_lean_handshake_total") >= 2  # and the lean handshake (server/upgrade.py)
        assert value(found, "quizroom_rooms") == 1
        assert value(found, "quizroom_shards") == 1
        assert value(found, "quizroom_gc_frozen_objects") > 0  # the collector policy runs (server/collector.py)
        assert value(found, "quizroom_commit_failures_total") == 0
        assert value(found, "quizroom_storage_healthy") == 1
        assert value(found, "quizroom_answer_ack_seconds_count") == 2
        assert value(found, "quizroom_question_broadcast_seconds_count") == 1
        assert value(found, "quizroom_broadcast_recipients_total") == 2
        assert value(found, "quizroom_commit_seconds_count") >= 3  # room, players, answers
        assert value(found, "quizroom_commit_batch_rows_count") == value(found, "quizroom_commit_seconds_count")
        assert ("quizroom_slow_consumer_drops_total", ()) in found
        assert ("process_resident_memory_bytes", ()) in found

        deadline = time.monotonic() + 10  # the lag monitor reports every half second
        while value(found, "quizroom_event_loop_lag_seconds_count") == 0:
            assert time.monotonic() < deadline, "no event-loop lag observation"
            await asyncio.sleep(0.1)
            found = await scrape(http)

        await ann.close()
        await bob.close()


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(process=False), Metrics(process=False)
    first.answer("accepted")
    assert first.registry.get_sample_value("quizroom_answers_total", {"outcome": "accepted"}) == 1
    assert second.registry.get_sample_value("quizroom_answers_total", {"outcome": "accepted"}) == 0


def test_label_values_stay_in_their_closed_sets() -> None:
    metrics: Telemetry = Metrics(process=False)
    metrics.answer("something new")
    metrics.error("no_such_code")
    metrics.error("bad_choice")
    registry = metrics.registry  # type: ignore[attr-defined]
    assert registry.get_sample_value("quizroom_answers_total", {"outcome": "other"}) == 1
    assert registry.get_sample_value("quizroom_errors_total", {"code": "other"}) == 1
    assert registry.get_sample_value("quizroom_errors_total", {"code": "bad_choice"}) == 1
    assert registry.get_sample_value("quizroom_errors_total", {"code": "no_such_code"}) is None
