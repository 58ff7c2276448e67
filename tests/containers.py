"""A private Docker daemon for the container tests, and the images they run.

The tests never touch a Docker daemon the machine may already run: they start their own `dockerd` (its own data
root, exec root, socket and pid file), use it, and stop it at the end. Its data root lives under /var/lib, so the
images it built (the base images made from Debian's packages take minutes; docker/standin-base.sh) are there on the
next run of a machine that keeps its disk; everything else (containers, volumes, networks) is removed at start and
at the end. Docker and Compose come from Debian's packages (`docker.io`, `docker-compose`), installed when missing.

`python -m tests.containers prepare` builds every image the tests use and stops the daemon again: CI runs it as
its own step before the suite (.ci/run), so that the suite's time does not depend on whether the cache was warm.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(os.environ.get("QUIZROOM_TEST_DOCKER_ROOT", "/var/lib/quizroom-test/docker"))
RUN_DIR = Path("/run/quizroom-test-docker")  # short: containerd's socket paths live under the exec root
IMAGE = "quizroom:local"  # the tag deploy/compose.yaml runs
POSTGRES_IMAGE = "quizroom-standin/postgres:15-bookworm"
CADDY_IMAGE = "quizroom-standin/caddy:2.6-bookworm"
PACKAGES = {"dockerd": "docker.io", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}


class ContainerSetupError(RuntimeError):
    """The machine cannot run the container tests (not root, no package, the daemon did not start)."""


def unavailable_reason() -> str | None:
    """Why the container tests cannot run here, or None. (In CI this fails the tests instead of skipping them.)"""
    if sys.platform != "linux":
        return "container tests need Linux"
    if os.geteuid() != 0:
        return "container tests start their own dockerd and need root"
    return None


def docker_cli() -> str:
    """Debian's docker client: it builds with BuildKit by itself (a newer client needs the buildx plugin)."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


def install_missing(*programs: str) -> None:
    missing = [PACKAGES[p] for p in programs if shutil.which(p) is None and not Path(f"/usr/sbin/{p}").exists()]
    if not missing:
        return
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        done = subprocess.run(
            command,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise ContainerSetupError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")


@dataclass
class PrivateDocker:
    """One dockerd of our own. `env` points a docker client at it (DOCKER_HOST)."""

    data_root: Path = DATA_ROOT
    run_dir: Path = RUN_DIR
    process: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "dockerd.pid"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER": docker_cli()}

    def start(self, timeout: float = 60.0) -> PrivateDocker:
        reason = unavailable_reason()
        if reason is not None:
            raise ContainerSetupError(reason)
        install_missing("dockerd", "docker-compose", "debootstrap")  # the base images are made with debootstrap
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        log = (self.run_dir / "dockerd.log").open("ab")
        began = time.monotonic()
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.data_root),
                "--exec-root",
                str(self.run_dir / "exec"),
                "--pidfile",
                str(self.pidfile),
                "--host",
                f"unix://{self.socket}",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while self.docker("info", check=False, timeout=10).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.run_dir / "dockerd.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise ContainerSetupError(f"dockerd did not start:\n{tail}")
            time.sleep(0.2)  # polling the daemon's socket, bounded by the deadline
        self.timings["daemon_start_s"] = time.monotonic() - began
        self.clean()
        return self

    def _stop_leftover(self) -> None:
        """A daemon of an earlier run that was not stopped (a killed test run) holds our data root: stop it."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)  # waiting for that process to exit, bounded by the deadline
        os.kill(pid, signal.SIGKILL)

    def clean(self) -> None:
        """Remove every container, network and volume (the daemon is ours alone); keep the images: the cache."""
        ids = self.docker("ps", "-aq", timeout=30).stdout.split()
        if ids:
            self.docker("rm", "-f", "-v", *ids, timeout=120)
        self.docker("network", "prune", "-f", timeout=60)
        self.docker("volume", "prune", "-f", timeout=60)
        self.docker("image", "prune", "-f", timeout=120)  # dangling layers of earlier builds

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [docker_cli(), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def has_image(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False, timeout=30).returncode == 0

    def build_quizroom(self, log: Path) -> str:
        """`make image` against this daemon (docker/build-image.sh); returns its summary line."""
        began = time.monotonic()
        done = subprocess.run(
            [str(REPOSITORY / "docker" / "build-image.sh")],
            env={**self.env, "IMAGE": IMAGE, "BUILD_LOG": str(log)},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"the image did not build:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        self.timings["image_build_s"] = time.monotonic() - began
        return done.stdout.strip().splitlines()[-1]

    def build_standins(self) -> None:
        """PostgreSQL and Caddy from Debian's packages, for the compose test where no registry has theirs."""
        began = time.monotonic()
        for image, folder in ((POSTGRES_IMAGE, "postgres"), (CADDY_IMAGE, "caddy")):
            if self.has_image(image):
                continue
            base = subprocess.run(
                [str(REPOSITORY / "docker" / "standin-base.sh"), "debian:bookworm-slim"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            if base.returncode != 0:
                raise AssertionError(f"debian:bookworm-slim could not be made:\n{base.stderr[-3000:]}")
            context = REPOSITORY / "docker" / "standins" / folder
            built = subprocess.run(
                [docker_cli(), "build", "-t", image, str(context)],
                env={**self.env, "DOCKER_BUILDKIT": "1"},
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            if built.returncode != 0:
                raise AssertionError(f"{image} did not build:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}")
        self.timings["standins_s"] = time.monotonic() - began

    def image_size_mb(self, name: str) -> int:
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", name).stdout.strip()) // 1_000_000


def prepare() -> int:
    """Build every image the container tests use, then stop the daemon (CI's step before the suite)."""
    daemon = PrivateDocker().start()
    try:
        summary = daemon.build_quizroom(daemon.run_dir / "build.log")
        daemon.build_standins()
        print(summary)
        print(
            "container images ready: "
            + ", ".join(f"{name} {daemon.image_size_mb(name)} MB" for name in (IMAGE, POSTGRES_IMAGE, CADDY_IMAGE))
            + f" (daemon {daemon.timings['daemon_start_s']:.1f} s, stand-ins {daemon.timings['standins_s']:.0f} s)"
        )
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["prepare"]:
        sys.exit("usage: python -m tests.containers prepare")
    sys.exit(prepare())
