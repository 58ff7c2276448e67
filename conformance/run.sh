#!/usr/bin/env bash
# WebSocket conformance: Autobahn|Testsuite's fuzzing client against our server's own WebSocket stack.
#
# Starts `quizroom serve --compliance-echo 1` (production settings otherwise: 4 KiB messages, so a 64 KiB frame
# limit, and uvicorn's websockets-sansio protocol), runs every case except 12.* and 13.* (permessage-deflate
# stress: ~15 s per case, about 50 min; see docs/protocol.md "Hardening"), and fails on any FAILED case that
# conformance/allowlist.txt does not explain. Usage: conformance/run.sh [case pattern ...] (default: all).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY3="${PY3:-$ROOT/.venv/bin/python}"
"$HERE/setup.sh"

WORK="$(mktemp -d)"
PORT="$("$PY3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd "$WORK" && exec "$PY3" -m quizroom.server.cli serve --port "$PORT" --database-url "sqlite:///$WORK/c.db" \
    --compliance-echo 1 --log-level warning >"$WORK/server.log" 2>&1) &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$PY3" - "$PORT" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("conformance: the server did not come up")
        time.sleep(0.1)
PY

"$PY3" - "$PORT" "$HERE/reports" "$WORK/spec.json" "$@" <<'PY'
import json, sys
port, outdir, spec, *cases = sys.argv[1:]
json.dump({
    "outdir": outdir,
    "servers": [{"agent": "quizroom", "url": f"ws://127.0.0.1:{port}/ws/echo"}],
    "cases": cases or ["*"],
    "exclude-cases": ["12.*", "13.*"],
    "exclude-agent-cases": {},
}, open(spec, "w"))
PY
rm -rf "$HERE/reports"
started=$(date +%s)
(cd "$WORK" && "$HERE/.venv2/bin/wstest" -m fuzzingclient -s "$WORK/spec.json" >"$WORK/wstest.log" 2>&1) || {
    tail -n 30 "$WORK/wstest.log" >&2
    exit 1
}
echo "conformance: wstest ran in $(($(date +%s) - started)) s"
"$PY3" "$HERE/summarize.py" "$HERE/reports/index.json" "$HERE/allowlist.txt"
