"""WebSocket conformance (Autobahn|Testsuite) as part of the suite: `conformance/run.sh`, about 25 s.

It needs the Python 2.7 virtualenv that `conformance/setup.sh` builds (about 1 min, once). Locally the test runs
when that virtualenv exists and is skipped otherwise; in CI (`CI` set) it always runs and builds the virtualenv
itself, so a broken py2 toolchain fails CI instead of passing it silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "conformance" / "run.sh"
WSTEST = ROOT / "conformance" / ".venv2" / "bin" / "wstest"


def test_autobahn_fuzzing_client_finds_nothing_outside_the_allowlist() -> None:
    in_ci = os.environ.get("CI", "").lower() not in ("", "0", "false")
    if not RUN.exists():
        pytest.skip("conformance/ is not part of this installation")
    if not WSTEST.exists() and not in_ci:
        pytest.skip("no Autobahn virtualenv: run `make conformance` once (CI builds it)")
    env = {**os.environ, "PY3": sys.executable}
    result = subprocess.run([str(RUN)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
