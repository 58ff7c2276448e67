#!/usr/bin/env bash
# One-time: a Python 2.7 virtualenv with Autobahn|Testsuite's `wstest` (it exists for Python 2 only).
# Uses pyenv's 2.7.18 (or $PY2 if set). Idempotent: does nothing when conformance/.venv2/bin/wstest exists.
set -euo pipefail
cd "$(dirname "$0")"
VENV2=.venv2
if [ -x "$VENV2/bin/wstest" ]; then exit 0; fi
PY2=${PY2:-}
if [ -z "$PY2" ]; then
    # pyenv's 2.7.18 by path: `pyenv versions | grep -q` can die of SIGPIPE under pipefail, and the shims need
    # PYENV_VERSION in every child process.
    PYENV_PY2="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/2.7.18/bin/python"
    if [ -x "$PYENV_PY2" ]; then
        PY2="$PYENV_PY2"
    elif command -v python2.7 >/dev/null; then
        PY2=python2.7
    else
        echo "conformance: no Python 2.7 (install pyenv's 2.7.18 or set PY2)" >&2
        exit 2
    fi
fi
$PY2 -m pip install --quiet 'virtualenv<20.22'
$PY2 -m virtualenv --quiet "$VENV2"
"$VENV2/bin/pip" install --quiet 'autobahntestsuite==25.10.1'
test -x "$VENV2/bin/wstest"
