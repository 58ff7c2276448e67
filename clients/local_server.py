"""Run a real `quizroom serve` in a subprocess on a free port, for tests, demos and the load generator.

    with LocalServer.start(tmp_path) as server:
        ... server.base_url ...

Guarantees: `start` returns only once `GET /healthz` answers 200 (polled against a deadline, never a blind sleep)
and raises with the server's log when it exits early or the deadline passes; leaving the block always stops the
process (SIGTERM, then SIGKILL), whether the body failed or not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

__all__ = ["LocalServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; a tiny race with other processes remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _quizroom_command() -> list[str]:
    """The `quizroom` script next to this interpreter (the project's venv), else the module's entry point."""
    script = Path(sys.executable).with_name("quizroom")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from quizroom.server.cli import main; main()"]


@dataclass(slots=True)
class LocalServer:
    """A running server: its URL, its database file and its log, until `stop`."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    database: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        timeout: float = 20.0,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> LocalServer:
        """Start a server with a fresh SQLite file in `workdir` and wait until it is healthy."""
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port(host)
        database = workdir / "quizroom.db"
        log_path = workdir / f"server-{port}.log"
        command = [
            *_quizroom_command(),
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{database.resolve()}",
            *extra_args,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, **(env or {})},
            )
        server = cls(process=process, host=host, port=port, database=database, log_path=log_path)
        try:
            server.wait_healthy(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"quizroom exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling interval against the deadline above, not a wait for the event itself
        raise TimeoutError(f"quizroom not healthy within {timeout} s:\n{self.log()}")

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
