"""Where the load goes: a server the bench starts (pinned to its own core) or one already running (`--url`).

Why pin: on a 2-core box the server and the load generator would otherwise fight over both cores and every
latency would include the other side's scheduling. The server gets the first allowed CPU (`taskset -c`), the load
processes the rest (`os.sched_setaffinity`). Server RSS and CPU come from /proc, so they exist only for a server
the bench started itself (plus its child processes, should it run workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .control import Control

CLK_TCK = os.sysconf("SC_CLK_TCK")

NODE_BASELINE = Path(__file__).resolve().parent / "node" / "baseline.mjs"
"""The Node.js baseline (`--targets …,node`): Node's http server and the `ws` library, from `make node-baseline`."""

FLAVOURS = {"quizroom": "quizroom", "baseline": "baseline", "node": "baseline"}
"""What each target speaks to the load client: the Node baseline speaks the Python baseline's subset."""


def node_baseline_missing() -> str | None:
    """Why the Node baseline cannot start here, or None."""
    if shutil.which("node") is None:
        return "the Node baseline needs Node.js (`node` on PATH)"
    if not (NODE_BASELINE.parent / "node_modules" / "ws").is_dir():
        return f"the Node baseline needs its `ws` package: run `make node-baseline` (npm ci in {NODE_BASELINE.parent})"
    return None


# The load comes from one address, as fast as it can: the server's per-address limits (docs/operations.md, "Limits
# and abuse") are lifted for it, as for a trusted deployment behind a proxy that does them. Later flags override.
LOAD_GENERATOR_FLAGS = (
    "--max-connections-per-ip",
    "1000000",
    "--join-rate-per-ip",
    "0",
    "--create-rate-per-ip",
    "0",
    "--pin-miss-rate-per-ip",
    "0",
    "--max-rooms-per-ip",
    "0",
)


@dataclass(slots=True, frozen=True)
class CpuPlan:
    """Which CPUs the server and the load get; `None` means no pinning (one CPU only, or `--no-pin`)."""

    server: tuple[int, ...] | None
    load: tuple[int, ...] | None

    def describe(self) -> str:
        if self.server is None or self.load is None:
            return "not pinned"
        return f"server on CPU {','.join(map(str, self.server))}, load on CPU {','.join(map(str, self.load))}"


def plan_cpus(pin: bool) -> CpuPlan:
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return CpuPlan(None, None)
    return CpuPlan((cpus[0],), tuple(cpus[1:]))


def raise_nofile() -> tuple[int, int]:
    """Raise this process's open-file limit to the hard limit (children inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


SERVER_PORTS = range(20_000, 32_000)
"""Where a started server's ports go: below Linux's ephemeral range (32768–60999), which the load generator's own
connections fill at 50,000 players — a port picked there (and a worker's `PORT + 1 + i` beside it) could be taken by
one of them between the pick and the server's bind."""

SPAN = 17
"""Ports checked free from the base up: the server's and, with `--workers` up to 16, each worker's own
(`PORT + 1 + i`); more workers than that may find theirs taken (the server then says so and exits)."""


def free_port() -> int:
    """A base port with the `SPAN` ports from it free, in `SERVER_PORTS`."""
    rng = random.SystemRandom()
    for _ in range(1000):
        base = rng.randrange(SERVER_PORTS.start, SERVER_PORTS.stop - SPAN)
        if all(_bindable(base + i) for i in range(SPAN)):
            return base
    raise RuntimeError(f"no {SPAN} free ports in a row between {SERVER_PORTS.start} and {SERVER_PORTS.stop}")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(slots=True, frozen=True)
class ProcSample:
    rss_kib: int
    hwm_kib: int
    cpu_s: float


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def sample_process(pid: int) -> ProcSample | None:
    """RSS, peak RSS and user+system CPU seconds of `pid` and its descendants; None when it is gone."""
    rss = hwm = 0
    cpu = 0.0
    todo, seen = [pid], 0
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
        seen += 1
        todo.extend(_children(current))
    return ProcSample(rss, hwm, cpu) if seen else None


try:  # resolved here, not in the forked child, where taking the loader's locks could deadlock
    _PRCTL: Any = ctypes.CDLL(None).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the bench dies, even by SIGKILL (Linux PR_SET_PDEATHSIG), so a
    killed bench never leaves a server behind; the setting survives the exec of taskset and of the server."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(slots=True)
class ServerProcess:
    """A server started by the bench: `quizroom serve` or the baseline, logging to a file in its temp dir."""

    kind: str
    cpus: tuple[int, ...] | None
    database_url: str | None = None
    extra_args: list[str] = field(default_factory=list)
    fault: str | None = None
    keep_log: Path | None = None  # where the server's log is copied when it stops (`--keep-server-logs`)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        assert self.workdir is not None
        if self.kind == "node":
            cmd = ["node", str(NODE_BASELINE), "--port", str(self.port), "--db", str(self.workdir / "answers.log")]
        elif self.kind == "baseline":
            cmd = [
                sys.executable,
                "-m",
                "quizroom.bench.baseline",
                "--port",
                str(self.port),
                "--db",
                str(self.workdir / "baseline.db"),
            ]
            if self.fault:
                cmd += ["--fault", self.fault]
        else:
            exe = Path(sys.executable).with_name("quizroom")
            database = self.database_url or f"sqlite:///{self.workdir / 'quizroom.db'}"
            cmd = [
                str(exe) if exe.exists() else "quizroom",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--database-url",
                database,
                *LOAD_GENERATOR_FLAGS,
                *self.extra_args,
            ]
        if self.cpus is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", ",".join(map(str, self.cpus)), *cmd]
        return cmd

    async def start(self, wait_s: float = 30.0) -> None:
        if self.kind == "node" and (missing := node_baseline_missing()) is not None:
            raise RuntimeError(missing)
        self.proc = self._spawn()
        control = Control(self.url, FLAVOURS[self.kind], connections=1)
        deadline = time.monotonic() + wait_s
        try:
            while not await control.ready():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.kind} server did not become ready:\n{self.log_tail()}")
                await asyncio.sleep(0.05)
        finally:
            await control.aclose()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"quizroom-bench-{self.kind}-"))
        self.port = free_port()
        with open(self.workdir / "server.log", "wb") as log:
            return subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def log_tail(self, lines: int = 30) -> str:
        if self.workdir is None:
            return ""
        try:
            text = (self.workdir / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self.workdir is not None:
            if self.keep_log is not None:
                self.keep_log.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    shutil.copyfile(self.workdir / "server.log", self.keep_log)
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.proc = None
