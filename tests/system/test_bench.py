"""quizroom-bench: it runs end to end on small N, reports what it promises, and its exactly-once check bites.

The bench is run as users run it (its CLI in a subprocess: it starts the servers and its own load processes).
The negative controls use the baseline's fault switches: a server that acks an answer without storing it, and
one whose results list an answer twice — the check must say FAIL and exit non-zero. No timing thresholds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from quizroom.bench import exactly_once
from quizroom.bench.rooms import merge_checks
from quizroom.bench.stats import percentile, summarize
from quizroom.bench.target import node_baseline_missing
from quizroom.bench.worker import AnswerRecord

RUN_LIMIT_S = 120


async def bench(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    """Run `quizroom-bench ARGS` to completion; returns (exit status, stdout, the JSON report)."""
    out = tmp_path / "results"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quizroom.bench.cli",
        *args,
        "--out",
        str(out),
        "--quiet",
        "--no-chart",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), RUN_LIMIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    reports = sorted(out.glob("*.json"))
    assert reports, f"no JSON report; stderr:\n{stderr.decode()[-3000:]}"
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), json.loads(reports[-1].read_text())


def assert_latency(summary: dict[str, Any], count: int) -> None:
    assert summary["count"] == count
    for key in ("p50", "p95", "p99", "max", "until_last"):
        assert summary[key] is not None and summary[key] >= 0
    assert summary["p50"] <= summary["p95"] <= summary["p99"] <= summary["max"]
    assert len(summary["cdf"]) == 101


async def test_burst_reports_every_figure_and_exactly_once_passes_against_quizroom_and_baseline(tmp_path: Path) -> None:
    n = 30
    status, stdout, report = await bench(tmp_path, "burst", "-n", str(n))
    assert status == 0, stdout
    assert "EXACTLY-ONCE: FAIL" not in stdout
    assert stdout.count("EXACTLY-ONCE: PASS") == 2
    assert report["exactly_once_ok"] is True
    assert {"nproc", "cpu_model", "kernel", "python"} <= set(report["machine"])
    assert [(r["target"], r["n"]) for r in report["runs"]] == [("quizroom", n), ("baseline", n)]
    for run in report["runs"]:
        assert run["join"]["ok"] == n and run["join"]["rate_per_s"] > 0
        assert_latency(run["fanout"], n)
        assert_latency(run["ack"], n)
        assert run["success_rate"] == 1.0
        assert run["errors"] == {}
        assert run["exactly_once"]["ok"] and run["exactly_once"]["acked"] == n == run["exactly_once"]["stored"]
        assert run["server"]["rss_peak_kib"] > 0 and run["server"]["cpu_s"] >= 0
        assert run["server"]["load_cpu_s"] >= 0  # in clock ticks (10 ms): a 30-player run can read 0
        assert run["loop_lag"]["ping_rtt_ms"]["count"] >= 1
    (ratios,) = report["ratios"]
    assert ratios["n"] == n and ratios["fanout_p50"] is not None and ratios["ack_p99"] is not None


async def test_the_node_baseline_is_loaded_by_the_same_client_and_passes_exactly_once(tmp_path: Path) -> None:
    """The Node.js `ws` baseline (bench/node) beside quizroom and the Python baseline, in one run: the same load
    client, the same checks, and the first-to-last spread of a question's copies for all three."""
    missing = node_baseline_missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Node baseline cannot run in CI: {missing}")
        pytest.skip(missing)
    n = 30
    status, stdout, report = await bench(tmp_path, "burst", "-n", str(n), "--targets", "quizroom,baseline,node")
    assert status == 0, stdout
    assert stdout.count("EXACTLY-ONCE: PASS") == 3
    assert [r["target"] for r in report["runs"]] == ["quizroom", "baseline", "node"]
    node = report["runs"][2]
    assert node["join"]["ok"] == n and node["errors"] == {} and node["success_rate"] == 1.0
    assert_latency(node["fanout"], n)
    assert_latency(node["ack"], n)
    for run in report["runs"]:
        fan = run["fanout"]
        assert 0 <= fan["spread"] <= fan["max"]
        assert fan["per_recipient_us"] == pytest.approx(fan["spread"] * 1000 / (n - 1), abs=0.05)
    (versus_node,) = report["ratios_node"]
    assert versus_node["n"] == n and versus_node["fanout_until_last"] is not None
    assert "quizroom / node" in stdout and "µs per recipient" in stdout


async def test_a_burst_of_typed_and_slider_answers_is_stored_exactly_once(tmp_path: Path) -> None:
    n = 30
    status, stdout, report = await bench(tmp_path, "burst", "-n", str(n), "--question-types", "type_answer", "slider")
    assert status == 0, stdout
    assert stdout.count("EXACTLY-ONCE: PASS") == 4 and report["exactly_once_ok"] is True
    assert [(r["scenario"], r["target"]) for r in report["runs"]] == [
        ("burst:type_answer", "quizroom"),
        ("burst:type_answer", "baseline"),
        ("burst:slider", "quizroom"),
        ("burst:slider", "baseline"),
    ]
    for run in report["runs"]:
        assert run["errors"] == {} and run["success_rate"] == 1.0
        assert run["exactly_once"]["acked"] == n == run["exactly_once"]["stored"]
    assert sorted(r["scenario"] for r in report["ratios"]) == ["burst:slider", "burst:type_answer"]


async def test_game_with_reconnects_keeps_every_acked_answer_exactly_once(tmp_path: Path) -> None:
    n, questions, reconnects = 20, 2, 2
    status, stdout, report = await bench(
        tmp_path,
        "game",
        "-n",
        str(n),
        "--questions",
        str(questions),
        "--spread-ms",
        "300",
        "--reconnects",
        str(reconnects),
        "--targets",
        "quizroom",
    )
    assert status == 0, stdout
    (run,) = report["runs"]
    assert run["exactly_once"]["ok"], run["exactly_once"]
    assert run["reconnect"]["count"] == questions * reconnects
    assert run["fanout"]["count"] == n * questions
    assert len(run["fanout_until_last_per_question_ms"]) == questions
    assert run["answers"]["sent"] == n * questions


async def test_rooms_play_their_own_games_at_once_and_every_room_passes_exactly_once(tmp_path: Path) -> None:
    await rooms_run(tmp_path)


async def test_rooms_on_two_workers_over_postgres_pass_exactly_once_too(tmp_path: Path, pg_url: str) -> None:
    await rooms_run(tmp_path, "--database-url", pg_url, "--server-arg=--workers=2")


async def rooms_run(tmp_path: Path, *extra: str) -> None:
    """6 rooms of 5 players, two questions each, at once: every figure reported, every room finished and checked."""
    rooms, players, questions = 6, 5, 2
    status, stdout, report = await bench(
        tmp_path,
        "rooms",
        "--rooms",
        str(rooms),
        "--players",
        str(players),
        "--questions",
        str(questions),
        "--spread-ms",
        "300",
        "--gap-ms",
        "100",
        *extra,
    )
    assert status == 0, stdout
    assert "rooms, per room:" in stdout and f"| {rooms} × {players} |" in stdout
    (run,) = report["runs"]
    assert (run["scenario"], run["target"], run["rooms"], run["n"]) == ("rooms", "quizroom", rooms, rooms * players)
    assert run["join"]["ok"] == rooms * players
    assert_latency(run["fanout"], rooms * players * questions)
    assert_latency(run["ack"], rooms * players * questions)
    assert run["reveal"]["count"] == rooms * questions and run["reveal"]["p50"] >= 0
    assert run["answers_per_s"] > 0
    assert run["errors"] == {} and run["success_rate"] == 1.0
    assert run["rooms_finished"] == rooms and run["players_finished"] == rooms * players
    check = run["exactly_once"]
    assert check["ok"] and check["rooms"] == rooms and check["acked"] == check["stored"] == rooms * players * questions
    assert run["server"]["cpu_s"] >= 0 and run["server"]["rss_peak_kib"] > 0


def test_many_rooms_pass_exactly_once_only_if_every_room_does() -> None:
    passed = exactly_once.check(_results(("a", 0)), [_record("a", 0)])
    failed = exactly_once.check(_results(), [_record("b", 0)])
    assert passed["ok"] and not failed["ok"]
    merged = merge_checks([passed, failed, passed])
    assert not merged["ok"] and merged["verdict"] == "FAIL" and merged["rooms_failed"] == 1
    assert merged["acked"] == 3 and merged["missing"] == 1 and merged["problems"][0].startswith("room 1: ")
    assert merge_checks([passed, passed])["verdict"] == "PASS"


async def test_reconnect_storm_brings_every_player_back_and_loses_no_answer(tmp_path: Path) -> None:
    n = 20
    status, stdout, report = await bench(
        tmp_path, "reconnect-storm", "-n", str(n), "--jitter-ms", "200", "--targets", "quizroom"
    )
    assert status == 0, stdout
    (run,) = report["runs"]
    assert run["reconnect"]["count"] == n and run["reconnect"]["failed"] == 0
    assert run["exactly_once"]["ok"] and run["exactly_once"]["acked"] == n


async def test_soak_samples_memory_while_idle_and_active_rooms_run(tmp_path: Path) -> None:
    status, stdout, report = await bench(
        tmp_path,
        "soak",
        "--idle",
        "20",
        "--active",
        "5",
        "--minutes",
        "0.05",
        "--spread-ms",
        "200",
        "--targets",
        "quizroom",
    )
    assert status == 0, stdout
    (run,) = report["runs"]
    assert run["join"]["ok"] == 20 and run["series"] and run["series"][0]["rss_kib"] > 0
    assert run["exactly_once"]["ok"] and run["rooms"][0]["questions"] >= 1
    idle = run["idle_cost"]
    assert idle["sockets"] == 20 and idle["seconds"] > 0 and idle["cpu_ms_per_s"] >= 0


async def test_exactly_once_fails_loudly_when_the_server_acks_an_answer_it_did_not_store(tmp_path: Path) -> None:
    status, stdout, report = await bench(
        tmp_path, "burst", "-n", "20", "--targets", "baseline", "--baseline-fault", "drop-one-answer"
    )
    assert status == 3
    assert "EXACTLY-ONCE: FAIL" in stdout
    check = report["runs"][0]["exactly_once"]
    assert not check["ok"] and check["missing"] == 1 and check["doubled"] == 0
    assert report["exactly_once_ok"] is False


async def test_exactly_once_fails_loudly_when_an_answer_is_stored_twice(tmp_path: Path) -> None:
    status, stdout, report = await bench(
        tmp_path, "burst", "-n", "20", "--targets", "baseline", "--baseline-fault", "double-one-answer"
    )
    assert status == 3
    assert "EXACTLY-ONCE: FAIL" in stdout
    check = report["runs"][0]["exactly_once"]
    assert not check["ok"] and check["doubled"] == 1 and check["missing"] == 0


def _record(
    player: str, question: int, outcome: str = "ack", accepted: bool = True, mode: str = "normal"
) -> AnswerRecord:
    return AnswerRecord(player, question, mode, True, outcome, accepted, False, 10, 1, 2)


def _results(*stored: tuple[str, int]) -> dict[str, Any]:
    players: dict[str, list[dict[str, Any]]] = {}
    for player, question in stored:
        players.setdefault(player, []).append({"question": question, "points": 0, "response_ms": 10})
    return {"players": [{"player_id": p, "score": 0, "answers": a} for p, a in players.items()]}


def test_a_stored_answer_whose_ack_was_lost_is_not_a_failure() -> None:
    lost = _record("b", 0, outcome="timeout", accepted=False, mode="drop_after")
    check = exactly_once.check(_results(("a", 0), ("b", 0)), [_record("a", 0), lost])
    assert check["ok"] and check["unacked_stored"] == 1


def test_a_stored_answer_nobody_sent_or_that_was_rejected_fails() -> None:
    phantom = exactly_once.check(_results(("a", 0), ("z", 0)), [_record("a", 0)])
    assert not phantom["ok"] and phantom["phantom"] == 1
    rejected = exactly_once.check(_results(("a", 0)), [_record("a", 0, outcome="error:too_late", accepted=False)])
    assert not rejected["ok"] and rejected["stored_though_rejected"] == 1


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    summary = summarize([3.0, 1.0, 2.0])
    assert (summary["p50"], summary["max"], summary["until_last"]) == (2.0, 3.0, 3.0)


def test_results_md_keeps_the_sections_other_commands_measured(tmp_path: Path) -> None:
    from quizroom.bench.report import KEEP_MARKER, kept_sections

    path = tmp_path / "RESULTS.md"
    assert kept_sections(path) == ""
    path.write_text("# old standard run\n")
    assert kept_sections(path) == ""
    path.write_text(f"# old standard run\n\n{KEEP_MARKER}\n## Storage\n| rows/s |\n")
    assert kept_sections(path) == f"\n{KEEP_MARKER}\n## Storage\n| rows/s |\n"


async def test_the_bench_creates_rooms_on_a_server_that_requires_the_admin_token(
    start_server: Any, sqlite_url: str
) -> None:
    from quizroom.bench.cli import parser
    from quizroom.bench.control import Control, ControlError, make_quiz

    server = start_server(sqlite_url, "--admin-token", "bench-admin")
    anonymous = Control(server.url, "quizroom", connections=1)
    try:
        with pytest.raises(ControlError) as refused:
            await anonymous.create_room(make_quiz(1, 5_000))
        assert refused.value.status == 401
    finally:
        await anonymous.aclose()
    admin = Control(server.url, "quizroom", connections=1, admin_token="bench-admin")
    try:
        room = await admin.create_room(make_quiz(1, 5_000))
        assert len(room.pin) == 6
    finally:
        await admin.aclose()
    args = parser().parse_args(["burst", "--url", server.url, "--admin-token", "bench-admin"])
    assert args.admin_token == "bench-admin"


async def test_cluster_costs_count_messages_and_writes_per_question(tmp_path: Path, pg_url: str) -> None:
    """`python -m quizroom.bench.cluster_costs` on small N: two shards sit on two workers, so one of them is on
    another worker than the coordinator and messages cross every question."""
    from tests.serverproc import free_ports

    out = tmp_path / "costs.json"
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quizroom.bench.cluster_costs", "--players", "40", "--shards", "1,2", "--questions",
        "2", "--idle-s", "0.5", "--port", str(free_ports(3)), "--pg-url", admin, "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), RUN_LIMIT_S)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    one, two = json.loads(out.read_text())
    assert (one["shards"], two["shards"]) == (1, 2)
    # Writing transactions are counted minus the workers' idle rate (heartbeats, renewals), which on a busy machine
    # can be as large as a short question's: the figure is reported, not bounded.
    assert one["messages_per_question"] >= 0 and one["writes_per_question"] >= 0
    # Placement may put both shards on the coordinator's worker (it did in a CI run): then no message crosses.
    assert two["messages_per_question"] >= 0 and two["writes_per_question"] >= 0
    assert "| shards |" in stdout.decode()
