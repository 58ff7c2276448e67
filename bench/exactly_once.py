"""The exactly-once check: what the players were told (acks) against what the server says it stored (results).

The contract (SPEC §5): an answer is acked `accepted: true` only after it is durably stored, and stored at most
once. So, per (player, question):
  * acked → stored exactly once; acked but absent is a lost answer, stored twice is a double — both FAIL;
  * stored but never sent by us (phantom), or stored although its only attempt was explicitly rejected — FAIL;
  * sent, not acked (the socket dropped first, or a timeout) but stored — fine: the ack was lost, not the
    answer; counted as `unacked_stored`.
Timing and score consistency are reported alongside but do not decide the verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from .worker import AnswerRecord

EXAMPLES = 5


def check(results: dict[str, Any], answers: Iterable[AnswerRecord]) -> dict[str, Any]:
    stored: Counter[tuple[str, int]] = Counter()
    stored_ms: dict[tuple[str, int], Any] = {}
    score_mismatch = 0
    for player in results.get("players", []):
        pid = str(player.get("player_id"))
        total = 0
        for answer in player.get("answers", []):
            key = (pid, int(answer.get("question", -1)))
            stored[key] += 1
            stored_ms.setdefault(key, answer.get("response_ms"))
            total += int(answer.get("points") or 0)
        if "score" in player and player["score"] != total:
            score_mismatch += 1

    sent: set[tuple[str, int]] = set()
    acked: dict[tuple[str, int], int | None] = {}
    rejected: set[tuple[str, int]] = set()
    for record in answers:
        key = (record.player_id, record.question)
        if not record.sent:
            continue
        sent.add(key)
        if record.outcome == "ack" and record.accepted:
            acked.setdefault(key, record.response_ms)
        elif record.mode == "normal" and record.outcome.startswith("error:"):
            rejected.add(key)

    missing = sorted(k for k in acked if stored[k] == 0)
    doubled = sorted(k for k, count in stored.items() if count > 1)
    phantom = sorted(k for k in stored if k not in sent)
    stored_rejected = sorted(k for k in rejected if k in stored and k not in acked)
    unacked_stored = sum(1 for k in stored if k in sent and k not in acked)
    timing = sum(1 for k, ms in acked.items() if stored[k] and ms is not None and stored_ms.get(k) != ms)
    ok = not (missing or doubled or phantom or stored_rejected)
    problems = [f"{len(missing)} acked answer(s) missing from results"] if missing else []
    problems += [f"{len(doubled)} answer(s) stored more than once"] if doubled else []
    problems += [f"{len(phantom)} stored answer(s) never sent"] if phantom else []
    problems += [f"{len(stored_rejected)} rejected answer(s) stored anyway"] if stored_rejected else []
    return {
        "ok": ok,
        "verdict": "PASS" if ok else "FAIL",
        "problems": problems,
        "acked": len(acked),
        "stored": sum(stored.values()),
        "sent": len(sent),
        "missing": len(missing),
        "doubled": len(doubled),
        "phantom": len(phantom),
        "stored_though_rejected": len(stored_rejected),
        "unacked_stored": unacked_stored,
        "examples": [list(k) for k in (missing + doubled + phantom + stored_rejected)[:EXAMPLES]],
        "response_ms_mismatch": timing,
        "score_mismatch": score_mismatch,
    }
