"""Turning runs into a report: the machine, the tables, quizroom/baseline ratios, JSON, the CDF chart, RESULTS.md.

Only numbers measured by this process go in: RESULTS.md is rewritten from a real `standard` run, never by hand.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .stats import ratio

HERE = Path(__file__).resolve().parent


def machine() -> dict[str, Any]:
    model = "unknown"
    memory_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in ("websockets", "uvicorn", "starlette", "uvloop", "orjson"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "packages": versions,
    }


def _ms(summary: dict[str, Any] | None, keys: Sequence[str] = ("p50", "p95", "p99", "max")) -> str:
    if not summary or not summary.get("count"):
        return "–"
    parts = "/".join(_num(summary.get(k)) for k in keys)
    return f"{parts} ({_num(summary.get('until_last'))})"


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return str(value)


def table(runs: Sequence[dict[str, Any]]) -> str:
    head = (
        "| scenario | target | N | join/s | fan-out ms p50/p95/p99/max (last) | ack ms p50/p95/p99/max (last) "
        "| accepted | errors | exactly-once | RSS MiB | KiB/player | CPU s server/load | loop lag ms max≤ "
        "| ping RTT ms p50/max |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    repeated = any(run.get("rep", 0) for run in runs)
    for run in runs:
        server = run.get("server") or {}
        rss = server.get("rss_peak_kib")
        ping = (run.get("loop_lag") or {}).get("ping_rtt_ms") or {}
        errors = ", ".join(f"{k}×{v}" for k, v in (run.get("errors") or {}).items()) or "0"
        once = (run.get("exactly_once") or {}).get("verdict", "n/a")
        accepted = run.get("success_rate") if run.get("expected_answers") else None
        label = f"{run['scenario']} #{run.get('rep', 0) + 1}" if repeated else run["scenario"]
        lines.append(
            f"| {label} | {run['target']} | {run['n']} | {_num((run.get('join') or {}).get('rate_per_s'))} "
            f"| {_ms(run.get('fanout'))} | {_ms(run.get('ack'))} "
            f"| {'–' if accepted is None else f'{accepted * 100:.2f} %'} | {errors} | {once} "
            f"| {_num(rss / 1024 if rss else None)} | {_num(server.get('kib_per_player'))} "
            f"| {_num(server.get('cpu_s'))}/{_num(server.get('load_cpu_s'))} "
            f"| {_num(_server_lag(run))} | {_num(ping.get('p50'))}/{_num(ping.get('max'))} |"
        )
    return "\n".join(lines)


def _server_lag(run: dict[str, Any]) -> float | None:
    """The server's own peak event-loop lag bound (its lag histogram), when it exposes one."""
    for value in ((run.get("loop_lag") or {}).get("server_metrics") or {}).values():
        if isinstance(value, dict) and value.get("max_le_ms") is not None:
            return float(value["max_le_ms"])
    return None


def rooms_table(runs: Sequence[dict[str, Any]]) -> str:
    """The rooms scenario's own figures, per room: fan-out, ack and reveal as p50/p99/max; "" without such runs."""
    rows = [run for run in runs if run["scenario"] == "rooms"]
    if not rows:
        return ""
    head = (
        "| rooms × players | target | answers/s | fan-out ms p50/p99/max | ack ms p50/p99/max "
        "| reveal → last result ms p50/p99/max | rooms finished | players without `finished` | errors | exactly-once "
        "| RSS MiB | CPU s server | loop lag ms max≤ |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    keys = ("p50", "p99", "max")
    for run in rows:
        server = run.get("server") or {}
        rss = server.get("rss_peak_kib")
        errors = ", ".join(f"{k}×{v}" for k, v in (run.get("errors") or {}).items()) or "0"
        lines.append(
            f"| {run['rooms']} × {run['players_per_room']} | {run['target']} | {_num(run.get('answers_per_s'))} "
            f"| {_ms(run.get('fanout'), keys).split(' (')[0]} | {_ms(run.get('ack'), keys).split(' (')[0]} "
            f"| {_ms(run.get('reveal'), keys).split(' (')[0]} | {run.get('rooms_finished')}/{run['rooms']} "
            f"| {run.get('players_unfinished')} | {errors} | {(run.get('exactly_once') or {}).get('verdict', 'n/a')} "
            f"| {_num(rss / 1024 if rss else None)} | {_num(server.get('cpu_s'))} | {_num(_server_lag(run))} |"
        )
    return "\n".join(lines)


def ratios(runs: Sequence[dict[str, Any]], against: str = "baseline") -> list[dict[str, Any]]:
    """quizroom ÷ `against` (the baseline, or the Node baseline) for every (scenario, N) measured against both
    (above 1: quizroom is slower).

    Each repetition pairs one quizroom run with the baseline run next to it; the row holds the median of the
    pairs' ratios, and their min and max, because a single pair on a shared VM can swing by 2× either way.
    """
    index = {(r["scenario"], r["n"], r.get("rep", 0), r["target"]): r for r in runs}
    groups: dict[tuple[str, int], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for (scenario, n, rep, target), run in index.items():
        base = index.get((scenario, n, rep, against))
        if target == "quizroom" and base is not None:
            groups.setdefault((scenario, n), []).append((run, base))
    out = []
    for (scenario, n), pairs in groups.items():
        row: dict[str, Any] = {"scenario": scenario, "n": n, "pairs": len(pairs)}
        for metric in ("fanout", "ack"):
            for key in ("p50", "p99", "until_last"):
                values = [
                    v
                    for q, b in pairs
                    if (v := ratio((q.get(metric) or {}).get(key), (b.get(metric) or {}).get(key))) is not None
                ]
                row[f"{metric}_{key}"] = round(statistics.median(values), 2) if values else None
                row[f"{metric}_{key}_range"] = [min(values), max(values)] if values else None
        if any(row[f"{m}_{k}"] is not None for m in ("fanout", "ack") for k in ("p50", "p99", "until_last")):
            out.append(row)
    return out


def spread_table(runs: Sequence[dict[str, Any]]) -> str:
    """Per scenario, N and target: the median first-to-last spread of a question's copies and what it comes to per
    recipient (`fanout.spread`, `per_recipient_us`); empty when no run has one."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for run in runs:
        fan = run.get("fanout") or {}
        if fan.get("spread") is not None:
            groups.setdefault((run["scenario"], run["n"], run["target"]), []).append(fan)
    if not groups:
        return ""
    lines = ["| scenario | N | target | runs | spread ms (min–max) | µs per recipient |", "|---|---|---|---|---|---|"]
    for (scenario, n, target), fans in groups.items():
        spreads = [f["spread"] for f in fans]
        each = statistics.median(f["per_recipient_us"] for f in fans)
        lines.append(
            f"| {scenario} | {n} | {target} | {len(fans)} | {statistics.median(spreads):.1f} "
            f"({min(spreads):.1f}–{max(spreads):.1f}) | {each:.1f} |"
        )
    return "\n".join(lines)


def ratio_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| scenario | N | pairs | fan-out p50 | fan-out p99 | fan-out last | ack p50 | ack p99 | ack last |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = []
        for key in (f"{m}_{k}" for m in ("fanout", "ack") for k in ("p50", "p99", "until_last")):
            value, spread = row.get(key), row.get(f"{key}_range")
            cell = "–" if value is None else f"{value:.2f}×"
            if value is not None and spread and row["pairs"] > 1:
                cell += f" ({spread[0]:.2f}–{spread[1]:.2f})"
            cells.append(cell)
        lines.append(f"| {row['scenario']} | {row['n']} | {row['pairs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_lines(runs: Sequence[dict[str, Any]]) -> tuple[bool, list[str]]:
    ok, lines = True, []
    for run in runs:
        check = run.get("exactly_once")
        if not check:
            continue
        label = f"{run['scenario']} {run['target']} N={run['n']}"
        if check["ok"]:
            lines.append(
                f"EXACTLY-ONCE: PASS  {label}: {check.get('acked', '?')} acked, {check.get('stored', '?')} stored"
            )
        else:
            ok = False
            lines.append(
                f"EXACTLY-ONCE: FAIL  {label}: {'; '.join(check['problems'])} (examples: {check.get('examples', [])})"
            )
    return ok, lines


def write_json(report: dict[str, Any], out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return path


def chart(runs: Sequence[dict[str, Any]], path: Path) -> str | None:
    """Latency CDFs of fan-out and acks, one line per run; returns None, or why the chart was skipped."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed (pip install 'quizroom[bench]'): chart skipped"
    drawable = [
        r for r in runs if not r.get("rep") and ((r.get("fanout") or {}).get("cdf") or (r.get("ack") or {}).get("cdf"))
    ]
    if not drawable:
        return "nothing to draw"
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    colours = plt.get_cmap("tab10")
    sizes = sorted({(r["scenario"], r["n"]) for r in drawable})
    for ax, metric, title in (
        (axes[0], "fanout", "question fan-out (host command → player)"),
        (axes[1], "ack", "answer → answer_ack"),
    ):
        for run in drawable:
            cdf = (run.get(metric) or {}).get("cdf") or []
            if not cdf:
                continue
            colour = colours(sizes.index((run["scenario"], run["n"])) % 10)
            style = "-" if run["target"] == "quizroom" else "--"
            ax.plot(
                [max(x, 0.01) for x in cdf],
                range(len(cdf)),
                style,
                color=colour,
                label=f"{run['target']} {run['scenario']} N={run['n']}",
            )
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log)")
        ax.set_ylabel("percentile")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        "quizroom-bench — solid: quizroom, dashed: baseline (websockets.broadcast + SQLite group commit)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None


def _rel(path: Path) -> str:
    return os.path.relpath(path, HERE)


def results_markdown(report: dict[str, Any], json_path: Path, png_path: Path | None) -> str:
    m = report["machine"]
    runs = report["runs"]
    ok, verdicts = verdict_lines(runs)
    lines = [
        "# quizroom-bench results",
        "",
        f"Latest `quizroom-bench standard` run, {report['started_at']} (took {report['elapsed_s']:.0f} s). "
        "Written by the bench itself; rerun `make bench` to refresh. Compare the quizroom/baseline ratios, not the "
        "absolute figures: run-to-run noise on this VM is ±30–60 %.",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs: {m['cpu_model']}, {m['memory_gib']} GiB RAM",
        f"- Linux {m['kernel']}, Python {m['python']}",
        "- " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v),
        "",
        "## How it was taken",
        "",
        f"- Command: `{report['command']}`",
        f"- Pinning: {report['pinning']}; {report['procs']} load processes (uvloop, sans-I/O websockets client); "
        f"open-file limit {report['nofile']}.",
        f"- Load average (1/5/15 min) before the run {report['loadavg_before']}, after {report['loadavg_after']}: "
        "whatever else ran on the machine shows here.",
        "- Each run starts a fresh server (`quizroom serve` with SQLite in a temp dir, or the baseline), a fresh "
        "room, then joins N players (HTTP join + socket + hello) with "
        f"{report['options']['concurrency']} joins in flight per load process.",
        "- Fan-out: host command sent on the host socket → each player's `question` (CLOCK_MONOTONIC across "
        "processes); `last` = until the last player has it. Ack: each `answer` sent → its `answer_ack`; `last` = "
        "first answer sent → last ack (per question in a game). Burst: every player answers at once after all "
        "have the question. Game: "
        "answers spread over each question's window, a few players per question drop their socket before "
        "answering or right after sending (and resend on the new socket); every player is waiting for the "
        "question before the host command goes out.",
        "- Baseline (`bench/baseline.py`): the websockets library's own server, `websockets.broadcast` of one "
        "pre-serialised frame, acks after a SQLite (WAL, synchronous=FULL) group commit that starts as soon as "
        "the previous one ends — the floor for a durable design, without quizroom's rules, sharding or HTTP stack; "
        "its heap is frozen four times a second like quizroom's (`quizroom.server.collector`). Load processes "
        "freeze theirs once their players have joined.",
        "- Exactly-once: every accepted ack is checked against `GET /api/rooms/{pin}/results` (no acked answer "
        "missing, none stored twice, none stored that was never sent).",
        "- Loop lag: the server's own `quizroom_event_loop_lag_seconds` histogram from `/metrics` (fresh server per "
        "run): the bucket bound that holds every observation. Ping RTT: the host socket pings every 100 ms from the "
        "coordinating process; its worst RTT also bounds the lag, plus the load core's own delays.",
        "- CPU s: user+system seconds over the whole run (joins included) of the server and of the load processes.",
        "",
        "## Results",
        "",
        "Latencies in ms as p50/p95/p99/max (last).",
        "",
        table(runs),
        "",
        *(
            [
                "Rooms (`quizroom-bench rooms`: R rooms × P players at once, each its own game):",
                "",
                rooms_table(runs),
                "",
            ]
            if rooms_table(runs)
            else []
        ),
        "## quizroom / baseline",
        "",
        "Above 1× quizroom is slower than the baseline. Median over the repetitions (min–max of the pairs).",
        "",
        ratio_table(report["ratios"]),
        "",
        "## Exactly-once",
        "",
        *[f"- {v}" for v in verdicts],
        "",
        f"Overall: {'PASS' if ok else 'FAIL'}.",
        "",
    ]
    if png_path is not None:
        lines += ["## Latency CDFs", "", "First repetition of each run.", "", f"![latency CDFs]({_rel(png_path)})", ""]
    lines += [f"Raw data: `{_rel(json_path)}`.", ""]
    return "\n".join(lines)


KEEP_MARKER = "<!-- kept across standard runs: sections below were measured by other commands -->"


def kept_sections(path: Path) -> str:
    """The part of RESULTS.md after `KEEP_MARKER` (storage and profiling sections, each saying how it was taken)."""
    if not path.exists():
        return ""
    text = path.read_text()
    at = text.find(KEEP_MARKER)
    return "" if at < 0 else "\n" + text[at:]
