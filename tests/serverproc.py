"""A real quizroom server in a child process, on a free port: start, kill (any signal), restart on the same database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPOSITORY = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> int:
    """A port P such that P … P + count - 1 are all free now (`--workers N` also binds P + 1 … P + N)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65_535:
            continue
        probes: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                probes.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in probes:
                sock.close()
    raise RuntimeError(f"no run of {count} free ports")


# Every test client comes from 127.0.0.1, and a test opens rooms and joins players far faster than any class would:
# unless a test is about them (`relaxed=False`), the per-address rate limits and room caps are lifted, as for a
# trusted deployment behind a proxy that does it. Connection caps and every other limit keep their defaults.
RELAXED = {
    "QUIZROOM_JOIN_RATE_PER_IP": "0",
    "QUIZROOM_CREATE_RATE_PER_IP": "0",
    "QUIZROOM_PIN_MISS_RATE_PER_IP": "0",
    "QUIZROOM_MAX_ROOMS_PER_IP": "0",
    "QUIZROOM_UPLOAD_RATE_PER_IP": "0",
}


class ServerProcess:
    """`python -m quizroom.server.cli serve` with the given database and extra flags; logs go to a file."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *extra: str,
        port: int | None = None,
        module: str = "quizroom.server.cli",
        relaxed: bool = True,
        host: str = "127.0.0.1",
        netns: str | None = None,
    ) -> None:
        """`netns`: run inside that network namespace (`ip netns exec`), listening on `host` there."""
        self.database_url = database_url
        self.host = host
        self.netns = netns
        self.module = module  # another entry point with the same CLI (tests/unsafe_server.py)
        self.workdir = workdir
        self.extra = list(extra)
        self.relaxed = relaxed
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {**os.environ, "QUIZROOM_LOG_LEVEL": os.environ.get("QUIZROOM_LOG_LEVEL", "info")}
        if self.relaxed:
            env.update(RELAXED)
        if self.module.startswith("tests."):  # a test entry point: the suite is importable from the repository only
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", self.module, "serve", "--port", str(self.port)]
        cmd += ["--database-url", self.database_url, *self.extra]
        if self.host != "127.0.0.1":
            cmd += ["--host", self.host]
        if self.netns is not None:  # `ip netns exec` execs the server: the child's pid is the server's
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a child process for readiness, bounded by the deadline
        raise TimeoutError(f"server did not become healthy:\n{self.log()}")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def restart(self) -> ServerProcess:
        if self.proc is not None:
            self.kill()
        return self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
