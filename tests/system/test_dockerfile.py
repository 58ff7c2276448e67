"""The container recipe, checked for structure (tests/system/test_container.py builds and runs it), and the wheel it
installs, built for real: it must carry the migrations and the web pages, or the image could neither migrate nor
serve pages, and no tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        found[-1].append((keyword, rest))
    return found


def test_base_images_are_pinned_to_a_full_python_slim_tag() -> None:
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert len(bases) == 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


def test_multi_stage_builds_a_wheel_and_installs_only_the_wheel() -> None:
    builder, runtime = stages()
    assert builder[0][1].endswith("AS builder")
    assert any(k == "RUN" and "pip wheel" in r for k, r in builder)
    assert any(k == "COPY" and r.startswith("--from=builder") for k, r in runtime)
    assert any(
        k == "RUN" and re.search(r"pip install --no-index --find-links=/wheels /wheels/quizroom-\S*\.whl", r)
        for k, r in runtime
    )
    assert not any(k == "COPY" and not r.startswith("--from=") for k, r in runtime), "sources copied into runtime"
    # The CA bundle for an intercepting network is a BuildKit secret of the builder's pip calls, never a layer.
    assert all("--mount=type=secret,id=ca_bundle" in r for k, r in builder if k == "RUN" and "pip " in r)
    assert not any("ca_bundle" in r for _, r in runtime)


def test_runtime_runs_as_non_root_with_health_check_and_entrypoint() -> None:
    runtime = stages()[-1]
    users = [r for k, r in runtime if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    health = [r for k, r in runtime if k == "HEALTHCHECK"]
    assert health and health[0].endswith('CMD ["quizroom", "health"]')  # it reads the address file `serve` writes
    assert ("ENTRYPOINT", '["quizroom", "serve"]') in runtime
    assert any(k == "CMD" and "0.0.0.0" in r for k, r in runtime)
    env = " ".join(r for k, r in runtime if k == "ENV")
    assert "QUIZROOM_DATABASE_URL=sqlite:////data/quizroom.db" in env and "QUIZROOM_HOST=0.0.0.0" in env
    assert "QUIZROOM_ADDRESS_FILE=/tmp/quizroom.address" in env
    assert ("EXPOSE", "8000") in runtime
    assert any(k == "VOLUME" and "/data" in r for k, r in runtime)


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "**/*.db", "tests"} <= ignored


def test_compose_runs_both_servers_each_reachable_at_its_own_url() -> None:
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    caddy = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "quizroom-1:" in compose and "quizroom-2:" in compose and "postgres:" in compose
    assert "profiles:" not in compose  # both active: rooms are shared through leases (docs/scaling.md)
    assert "/s1" in compose and "/s2" in compose and compose.count("QUIZROOM_WORKER_URL") == 2
    assert "handle_path /s1/*" in caddy and "handle_path /s2/*" in caddy  # a shard's ws_url reaches its server
    assert "lb_policy first" in caddy and "health_uri /readyz" in caddy
    assert "stream_timeout" not in caddy.replace("Do not add a stream_timeout", "")
    assert "\tstream_close_delay" not in caddy  # Caddy 2.6 (Debian's, what CI runs) refuses it
    assert "@metrics path /metrics" in caddy and 'respond "not found" 404' in caddy
    assert not re.search(r"^name:", compose, re.MULTILINE)  # docker-compose 1.29 refuses a top-level name


@pytest.mark.timeout(180)
def test_the_wheel_carries_migrations_and_web_pages(tmp_path: Path) -> None:
    """Built from a copy of the sources, so the build leaves nothing in the work tree."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("server", "rooms", "storage", "migrations", "clients", "bench", "tests"):  # tests: left out?
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "results"))
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("quizroom-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {path.name for path in (ROOT / "migrations").glob("*.sql")}
    assert migrations and {f"quizroom/migrations/{name}" for name in migrations} <= names
    pages = {path.name for path in (ROOT / "clients" / "web").iterdir() if path.is_file()}
    assert {"index.html", "host.html"} <= pages
    assert {f"quizroom/clients/web/{name}" for name in pages} <= names
    assert "quizroom/server/cli.py" in names
    assert not any(name.startswith(("quizroom/tests/", "tests/")) for name in names), "the wheel ships the tests"
    packages = ("server", "rooms", "storage", "migrations", "clients", "bench")
    assert {f"quizroom/{package}/py.typed" for package in packages} <= names  # typed for those who import us
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata and "Provides-Extra: client" in metadata
    assert re.search(r"Requires-Dist: httpx\S*; extra == .client.", metadata)  # pip install 'quizroom[client]'
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "quizroom = quizroom.server.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
