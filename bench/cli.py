"""`quizroom-bench`: load scenarios against quizroom and, in the same run, against the baseline.

Exit status: 0 when every run passed the exactly-once check, 3 when any failed ("EXACTLY-ONCE: FAIL"), 1 when the
bench itself broke (server would not start, a worker died).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from . import report, rooms, scenarios, soak
from .control import ControlError
from .pool import WorkerFailed
from .scenarios import Options, Session
from .target import plan_cpus, raise_nofile

STANDARD_SIZES = (1000, 1500, 5000, 10000)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target and load")
    g.add_argument("--url", help="load a running quizroom at http://host:port instead of starting one")
    g.add_argument("--baseline-url", help="a running baseline to compare with (with --url)")
    g.add_argument(
        "--targets",
        default="quizroom,baseline",
        help="comma-separated: quizroom, baseline, node (default quizroom,baseline; baseline skipped with --url unless"
        " --baseline-url; node: the Node.js `ws` baseline, bench/node, started by the bench)",
    )
    g.add_argument("--database-url", help="database for the started quizroom (default: SQLite in a temp dir)")
    g.add_argument(
        "--admin-token",
        help="the target's admin token, to create rooms on a server that requires one (with --url; "
        "default: $QUIZROOM_ADMIN_TOKEN)",
    )
    g.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `quizroom serve` (repeatable), e.g. --server-arg=--workers=2",
    )
    g.add_argument("--procs", type=int, default=0, help="load processes (default: max(2, load CPUs))")
    g.add_argument("--no-pin", action="store_true", help="do not pin the server and the load to separate CPUs")
    g.add_argument(
        "--commands",
        choices=["ws", "http"],
        default="ws",
        help="send host commands over the host socket (default) or HTTP",
    )
    g.add_argument("--concurrency", type=int, default=64, help="joins in flight per load process")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for any one step")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="run each quizroom/baseline pair this many times (default: 3 for standard, else 1); "
        "ratios are reported as the median over the pairs",
    )
    g.add_argument(
        "--baseline-fault", choices=["drop-one-answer", "double-one-answer"], help=argparse.SUPPRESS
    )  # negative controls for the exactly-once check (tests)
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=report.HERE / "results", help="directory for JSON and PNG")
    o.add_argument("--no-chart", action="store_true")
    o.add_argument(
        "--keep-server-logs", type=Path, metavar="DIR", help="copy each started server's log here (<target>-<run>.log)"
    )
    o.add_argument("--quiet", action="store_true", help="no live progress line")


def _rooms_options(p: argparse.ArgumentParser, counts: list[int], prefix: str = "") -> None:
    """The rooms scenario's options (`--rooms-…` in `standard`, where `--rooms 0` leaves it out)."""
    g = p.add_argument_group("rooms scenario")
    g.add_argument("--rooms", type=int, nargs="+", default=counts, help="how many rooms at once (one run each)")
    g.add_argument(f"--{prefix}players", dest="room_players", type=int, default=30, help="players per room")
    g.add_argument(f"--{prefix}questions", dest="room_questions", type=int, default=5)
    g.add_argument(
        f"--{prefix}spread-ms",
        dest="room_spread_ms",
        type=int,
        default=4000,
        help="each room's answers arrive uniformly over this window",
    )
    g.add_argument(f"--{prefix}gap-ms", dest="room_gap_ms", type=int, default=1000, help="pause at each room's results")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="quizroom-bench", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("burst", help="N players, one question, everyone answers at once")
    p.add_argument("-n", "--players", type=int, nargs="+", default=[1000])
    p.add_argument(
        "--question-types",
        nargs="+",
        choices=["choice", "type_answer", "slider"],
        default=["choice"],
        help="the burst's question, one run each (docs/protocol.md, *Question types*); the baseline takes any answer",
    )
    p = sub.add_parser("game", help="a full quiz with answers spread over each window and a few reconnects")
    p.add_argument("-n", "--players", type=int, default=1500)
    p.add_argument("--questions", type=int, default=10)
    p.add_argument("--spread-ms", type=int, default=2000, help="answers arrive uniformly over this window")
    p.add_argument("--reconnects", type=int, default=4, help="players per question who drop and come back")
    p = sub.add_parser("join", help="N players joining as fast as possible")
    p.add_argument("-n", "--players", type=int, default=1000)
    p = sub.add_parser("reconnect-storm", help="all sockets dropped at once, back with jitter, then answer")
    p.add_argument("-n", "--players", type=int, default=1000)
    p.add_argument("--jitter-ms", type=int, default=2000)
    p = sub.add_parser("soak", help="idle sockets + an active room for T minutes: memory and loop lag")
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--active", type=int, default=50)
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--spread-ms", type=int, default=1000)
    p = sub.add_parser("rooms", help="R rooms × P players at once, each playing its own game (quizroom only)")
    _rooms_options(p, [300])
    p = sub.add_parser("standard", help="burst at 1000/1500/5000/10000 and a 1500-player game; writes RESULTS.md")
    p.add_argument("--sizes", type=int, nargs="+", default=list(STANDARD_SIZES))
    p.add_argument("--game-players", type=int, default=1500)
    p.add_argument("--questions", type=int, default=10)
    p.add_argument("--spread-ms", type=int, default=2000)
    p.add_argument("--reconnects", type=int, default=4)
    _rooms_options(p, [300], prefix="rooms-")
    p.add_argument("--results-md", type=Path, default=report.HERE / "RESULTS.md")
    p.add_argument("--no-results-md", action="store_true")
    for action in sub.choices.values():
        _common(action)
    return top


async def _runs(s: Session, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every run of the invocation, quizroom and baseline interleaved, each pair `--repeat` times."""
    plan: list[tuple[int, Callable[[], Awaitable[dict[str, Any]]]]] = []
    names = s.targets()
    reps = range(args.repeat or (3 if args.scenario == "standard" else 1))
    if args.scenario in ("burst", "standard"):
        sizes = args.players if args.scenario == "burst" else args.sizes
        kinds = args.question_types if args.scenario == "burst" else ["choice"]
        plan += [
            (r, partial(scenarios.run_burst, s, t, n, None, kind))
            for n in sizes
            for r in reps
            for kind in kinds
            for t in names
        ]
    if args.scenario in ("game", "standard"):
        n = args.players if args.scenario == "game" else args.game_players
        plan += [
            (r, partial(scenarios.run_game, s, t, n, args.questions, args.spread_ms, args.reconnects))
            for r in reps
            for t in names
        ]
    if args.scenario in ("rooms", "standard") and "quizroom" in names:
        plan += [
            (
                r,
                partial(
                    rooms.run_rooms,
                    s,
                    "quizroom",
                    count,
                    args.room_players,
                    args.room_questions,
                    args.room_spread_ms,
                    args.room_gap_ms,
                ),
            )
            for count in args.rooms
            if count > 0
            for r in (reps if args.scenario == "rooms" else range(1))
        ]
    if args.scenario == "join":
        plan += [(r, partial(scenarios.run_join, s, t, args.players)) for r in reps for t in names]
    if args.scenario == "reconnect-storm":
        plan += [(r, partial(scenarios.run_burst, s, t, args.players, args.jitter_ms)) for r in reps for t in names]
    if args.scenario == "soak":
        plan += [
            (r, partial(soak.run_soak, s, t, args.idle, args.active, args.minutes, args.spread_ms))
            for r in reps
            for t in names
        ]
    runs = []
    for rep, step in plan:
        run = {"rep": rep, **await step()}
        runs.append(run)
        _, lines = report.verdict_lines([run])
        if not args.quiet or lines:
            sys.stderr.write("\r\x1b[2K" if sys.stderr.isatty() else "")
            print(
                f"done: {run['scenario']} {run['target']} N={run['n']} #{rep + 1} in {run['elapsed_s']} s",
                file=sys.stderr,
                flush=True,
            )
    return runs


async def run(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM/SIGHUP unwind like Ctrl-C: servers and load processes are stopped
        for signum in (signal.SIGTERM, signal.SIGHUP):
            asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    nofile = raise_nofile()
    plan = plan_cpus(not args.no_pin)
    if plan.load is not None:
        os.sched_setaffinity(0, plan.load)
    procs = args.procs or max(2, len(plan.load or ()))
    wanted = [t for t in ("quizroom", "baseline", "node") if t in args.targets.split(",")]
    opts = Options(
        procs=procs,
        url=args.url,
        baseline_url=args.baseline_url,
        targets=tuple(wanted),
        database_url=args.database_url,
        server_args=list(args.server_arg),
        commands=args.commands,
        concurrency=args.concurrency,
        timeout=args.timeout,
        seed=args.seed,
        fault=args.baseline_fault,
        progress=not args.quiet,
        admin_token=args.admin_token or os.environ.get("QUIZROOM_ADMIN_TOKEN") or None,
        server_logs=args.keep_server_logs,
    )
    started_at = datetime.now(UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.monotonic()
    async with Session(opts, plan) as session:
        runs = await _runs(session, args)
    stem = f"{args.scenario}-{started_at:%Y%m%d-%H%M%S}"
    result: dict[str, Any] = {
        "bench": "quizroom-bench",
        "version": 1,
        "scenario": args.scenario,
        "started_at": started_at.isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - t0, 1),
        "command": "quizroom-bench " + shlex.join(sys.argv[1:]),
        "machine": report.machine(),
        "pinning": plan.describe(),
        "procs": procs,
        "nofile": list(nofile),
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "options": {
            k: getattr(opts, k)
            for k in (
                "concurrency",
                "timeout",
                "seed",
                "commands",
                "server_args",
                "database_url",
                "url",
                "baseline_url",
            )
        },
        "runs": runs,
        "ratios": report.ratios(runs),
        "ratios_node": report.ratios(runs, against="node"),
    }
    ok, verdicts = report.verdict_lines(runs)
    result["exactly_once_ok"] = ok
    png: Path | None = args.out / f"{stem}.png"
    skipped = "--no-chart" if args.no_chart else report.chart(runs, png) if png else None
    if skipped:
        print(f"chart: {skipped}", file=sys.stderr)
        png = None
    result["chart"] = str(png) if png else None
    json_path = report.write_json(result, args.out, stem)
    print(report.table(runs))
    if rooms_rows := report.rooms_table(runs):
        print("\nrooms, per room:\n" + rooms_rows)
    if result["ratios"]:
        print("\nquizroom / baseline (above 1×: quizroom slower)\n" + report.ratio_table(result["ratios"]))
    if result.get("ratios_node"):
        print("\nquizroom / node (above 1×: quizroom slower)\n" + report.ratio_table(result["ratios_node"]))
    if spreads := report.spread_table(runs):
        print("\nfan-out, first copy to last (median over the repetitions)\n" + spreads)
    print("\n" + "\n".join(verdicts) if verdicts else "")
    print(f"\nJSON: {json_path}" + (f"\nchart: {png}" if png else ""))
    if args.scenario == "standard" and not args.no_results_md:
        kept = report.kept_sections(args.results_md)
        args.results_md.write_text(report.results_markdown(result, json_path, png) + kept)
        print(f"report: {args.results_md}")
    return 0 if ok else 3


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        uvloop = None  # type: ignore[assignment]
    try:
        return uvloop.run(run(args)) if uvloop is not None else asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
    except (RuntimeError, WorkerFailed, ControlError, OSError) as exc:  # the bench could not measure
        print(f"quizroom-bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
