"""`quizroom serve --workers N` (N > 1): a supervisor and N worker processes on one host.

The supervisor (the process the operator started; it runs no event loop) binds the shared listening socket on
HOST:PORT once and starts N workers from multiprocessing's spawn context, as uvicorn's own multiprocess supervisor
does, handing the shared socket to each. Worker i also binds a private socket on PORT + 1 + i and serves both with
one uvicorn server, configured exactly as the single process is (its `target`: `serving.server_for`). The kernel
spreads new connections on the shared port over the workers; the private port reaches one given worker, and its
URL is that worker's `worker_url` (where the `ws_url` of a shard it holds points). Workers share rooms through
PostgreSQL (docs/scaling.md), so a SQLite database is refused.

The supervisor restarts a worker that exits while it is not shutting down, on the same ports, after a backoff
(0.5 s, doubling up to 5 s while a worker keeps dying within 10 s of its start). SIGTERM or SIGINT to the supervisor
sends SIGTERM to every worker (each drains as the single process does: sockets closed with 1001, queued answers
committed), waits up to `shutdown_timeout_s` + 5 s, kills stragglers and exits 0. A worker whose supervisor dies
gets SIGTERM from the kernel (Linux), so it never outlives its supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection, resource_tracker
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog
import uvicorn

from quizroom.server.settings import Settings
from quizroom.server.urls import worker_url

log = structlog.get_logger("quizroom.workers")

WORKER_INDEX_ENV = "QUIZROOM_WORKER_INDEX"
RESTART_DELAY_S = 0.5  # first restart of a worker that died
RESTART_DELAY_MAX_S = 5.0  # the backoff doubles up to this while a worker keeps dying soon after its start
STABLE_AFTER_S = 10.0  # a worker that lived this long starts again from the first delay
SHUTDOWN_GRACE_S = 5.0  # on top of shutdown_timeout_s, before stragglers are killed
STARTUP_FAILURE = 3  # uvicorn's exit code for a server that could not start
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def private_port(settings: Settings, index: int) -> int:
    """Worker `index`'s own port: right above the shared one."""
    return settings.port + 1 + index


def next_restart_delay(previous_s: float, lifetime_s: float) -> float:
    """Backoff before restarting a worker that lived `lifetime_s`, after a previous delay (0: never restarted)."""
    if previous_s <= 0 or lifetime_s >= STABLE_AFTER_S:
        return RESTART_DELAY_S
    return min(previous_s * 2, RESTART_DELAY_MAX_S)


def check_settings(settings: Settings) -> str | None:
    """Why these settings cannot run several workers, or None."""
    if settings.workers < 1:
        return f"--workers must be at least 1 (got {settings.workers})"
    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        scheme = settings.database_url.split(":", 1)[0] or "(empty)"
        return (
            f"workers share rooms through PostgreSQL, so --workers {settings.workers} needs a postgresql:// "
            f"database URL (got a {scheme}: URL); run one process on SQLite, or use PostgreSQL"
        )
    if settings.port == 0:
        return "--workers needs a fixed --port: worker i also listens on PORT + 1 + i"
    if settings.port + settings.workers > 65_535:
        return f"--port {settings.port} leaves no room for the workers' own ports PORT + 1 … PORT + {settings.workers}"
    return None


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound as uvicorn binds one (SO_REUSEADDR; IPv6 when the host has a colon), not yet listening."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


Target = Callable[[Settings], uvicorn.Server]
"""What a worker runs: the server of one serving process (`quizroom.server.serving.server_for`), given its
settings; a module-level function, since a spawned worker receives it by name."""


def supervise(settings: Settings, target: Target) -> None:
    """Run `settings.workers` workers until SIGTERM or SIGINT; exits with a message when that cannot work."""
    problem = check_settings(settings)
    if problem is not None:
        sys.exit(f"quizroom: {problem}")
    try:
        shared = bind_socket(settings.host, settings.port)
    except OSError as exc:
        sys.exit(f"quizroom: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    for index in range(settings.workers):  # fail now, not in a restart loop, when a worker's port is taken
        port = private_port(settings, index)
        try:
            bind_socket(settings.host, port).close()
        except OSError as exc:
            shared.close()
            sys.exit(
                f"quizroom: worker {index} listens on port {port} (PORT + 1 + i), which is not free: "
                f"{exc.strerror or exc}"
            )
    Supervisor(settings, shared, target).run()


@dataclass
class _Slot:
    """One worker position: index i, port PORT + 1 + i; its process is replaced when it dies."""

    index: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    delay_s: float = 0.0  # the last restart's backoff
    restart_at: float | None = None  # monotonic time of a pending restart
    restarts: int = 0


class Supervisor:
    """Starts, watches and stops the workers. Blocking, single-threaded: waits on the workers' sentinels and on a
    wake-up pipe that the signal handlers write to, so nothing polls."""

    def __init__(self, settings: Settings, shared: socket.socket, target: Target) -> None:
        self.target = target
        self.settings = settings
        self.shared = shared
        self.context = multiprocessing.get_context("spawn")
        self.slots = [_Slot(index) for index in range(settings.workers)]
        self.stop_signal: int | None = None

    def worker_settings(self, index: int) -> Settings:
        port = private_port(self.settings, index)
        return dataclasses.replace(self.settings, worker_url=worker_url(self.settings, port))

    def run(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous_wakeup = signal.set_wakeup_fd(wake_w)
        previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if self.settings.worker_url:
                log.warning("worker_url_ignored", reason="each worker gets the URL of its own port")
            log.info(
                "supervisor_started",
                workers=self.settings.workers,
                host=self.settings.host,
                port=self.settings.port,
                worker_ports=[private_port(self.settings, s.index) for s in self.slots],
            )
            for slot in self.slots:
                self._start(slot)
            while self.stop_signal is None:
                self._wait(wake_r)
                self._reap()
                self._restart_due()
            self._stop()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            self.shared.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # No logging here (a handler may interrupt a log write); the wake-up fd ends the main loop's wait.
        if self.stop_signal is None:
            self.stop_signal = signum

    def _start(self, slot: _Slot) -> None:
        settings = self.worker_settings(slot.index)
        process = self.context.Process(
            target=worker_main,
            args=(self.target, settings, self.shared, slot.index, os.getpid()),
            name=f"quizroom-worker-{slot.index}",
        )
        previous = os.environ.get(WORKER_INDEX_ENV)
        os.environ[WORKER_INDEX_ENV] = str(slot.index)  # in the worker's environment from its exec on
        # The worker inherits this mask: a stop signal sent while it boots waits until its handler is in place.
        # (Starting multiprocessing's resource tracker unblocks these signals, so it must be up before.)
        resource_tracker.ensure_running()
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            process.start()
        except OSError as exc:  # out of processes or memory: try again after the backoff
            log.error("worker_start_failed", index=slot.index, error=str(exc))
            self._schedule_restart(slot, lifetime_s=0.0)
            return
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            if previous is None:
                os.environ.pop(WORKER_INDEX_ENV, None)
            else:
                os.environ[WORKER_INDEX_ENV] = previous
        slot.process = process
        slot.started_at = time.monotonic()
        slot.restart_at = None
        log.info(
            "worker_started" if slot.restarts == 0 else "worker_restarted",
            index=slot.index,
            pid=process.pid,
            url=settings.worker_url,
            restarts=slot.restarts,
        )

    def _schedule_restart(self, slot: _Slot, lifetime_s: float) -> None:
        slot.delay_s = next_restart_delay(slot.delay_s, lifetime_s)
        slot.restart_at = time.monotonic() + slot.delay_s
        slot.restarts += 1

    def _wait(self, wake_r: int) -> None:
        """Until a worker exits, a signal arrives or a restart is due."""
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        sentinels = [slot.process.sentinel for slot in self.slots if slot.process is not None]
        connection.wait([*sentinels, wake_r], timeout)
        try:
            while os.read(wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None or process.exitcode is None:
                continue
            lifetime = time.monotonic() - slot.started_at
            slot.process = None
            self._schedule_restart(slot, lifetime)
            log.warning(
                "worker_died",
                index=slot.index,
                pid=process.pid,
                exit=_describe_exit(process.exitcode),
                lifetime_s=round(lifetime, 3),
                restart_in_s=slot.delay_s,
            )
            process.close()

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if self.stop_signal is None and slot.restart_at is not None and slot.restart_at <= now:
                self._start(slot)

    def _stop(self) -> None:
        assert self.stop_signal is not None
        log.info("supervisor_stopping", signal=signal.Signals(self.stop_signal).name)
        processes = [(slot.index, slot.process) for slot in self.slots if slot.process is not None]
        for _, process in processes:
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # each worker drains: 1001 to sockets, answers commit
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout_s + SHUTDOWN_GRACE_S
        while True:
            running = [process for _, process in processes if process.exitcode is None]
            remaining = deadline - time.monotonic()
            if not running or remaining <= 0:
                break
            connection.wait([process.sentinel for process in running], remaining)
        for index, process in processes:
            if process.exitcode is None:
                log.warning("worker_killed", index=index, pid=process.pid, reason="did not stop in time")
                process.kill()
            process.join()
            log.info("worker_stopped", index=index, pid=process.pid, exitcode=process.exitcode)
            process.close()
        log.info("supervisor_stopped")


def _describe_exit(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"code {exitcode}"


def _prctl(option: int, value: int | bytes) -> bool:
    """Linux prctl(2) through the C library already loaded; False where there is none."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def worker_main(target: Target, settings: Settings, shared: socket.socket, index: int, supervisor_pid: int) -> None:
    """A worker's entry point (in a spawned process): serve the shared socket and its own until SIGTERM."""
    server: uvicorn.Server | None = None
    stop_requested = False

    def stop(signum: int, frame: FrameType | None) -> None:
        # From the start (a worker told to stop while starting exits 0, not killed by the signal), and again when
        # uvicorn re-raises the signal after its own shutdown: a drained worker returns and exits 0.
        nonlocal stop_requested
        stop_requested = True
        if server is not None:
            server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the supervisor while this process booted
    os.environ[WORKER_INDEX_ENV] = str(index)
    if _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) and os.getppid() != supervisor_pid:
        return  # the supervisor is already gone
    _prctl(_PR_SET_NAME, f"quizroom-w{index}".encode()[:15])  # what ps -o comm and top show

    from quizroom.server.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)  # a spawned process starts with nothing configured
    port = private_port(settings, index)
    try:
        own = bind_socket(settings.host, port)
    except OSError as exc:
        log.error("worker_bind_failed", index=index, port=port, error=exc.strerror or str(exc))
        sys.exit(STARTUP_FAILURE)
    server = target(settings)
    if stop_requested:
        own.close()
        return  # told to stop before serving anything: nothing to drain
    log.info("worker_serving", index=index, port=port, url=settings.worker_url)
    server.run(sockets=[shared, own])
