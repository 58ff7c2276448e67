"""Summarise an Autobahn fuzzingclient report; exit 1 on any FAILED case the allowlist does not excuse.

Usage: summarize.py reports/index.json allowlist.txt
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

Rule = tuple[str, dict[str, str], str]


def read_allowlist(path: Path) -> list[Rule]:
    rules: list[Rule] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, reason = line.partition("#")
        parts = text.split()
        if not parts:
            continue
        conditions = dict(part.split("=", 1) for part in parts[1:])
        rules.append((parts[0], conditions, reason.strip()))
    return rules


def excuse(case_id: str, entry: dict[str, Any], rules: list[Rule]) -> Rule | None:
    for rule in rules:
        pattern, conditions, _ = rule
        if fnmatch.fnmatchcase(case_id, pattern) and all(str(entry.get(k)) == v for k, v in conditions.items()):
            return rule
    return None


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split(".") if part.isdigit())


def main(index_path: str, allowlist_path: str) -> int:
    index: dict[str, dict[str, dict[str, Any]]] = json.loads(Path(index_path).read_text())
    rules = read_allowlist(Path(allowlist_path))
    unexpected: list[str] = []
    used: Counter[str] = Counter()
    for agent, cases in index.items():
        behaviours = Counter(entry["behavior"] for entry in cases.values())
        print(f"{agent}: {len(cases)} cases, " + ", ".join(f"{k} {v}" for k, v in sorted(behaviours.items())))
        for case_id in sorted(cases, key=case_key):
            entry = cases[case_id]
            if entry["behavior"] != "FAILED":
                continue
            rule = excuse(case_id, entry, rules)
            if rule is None:
                unexpected.append(f"{agent} {case_id}: {entry}")
            else:
                used[rule[0]] += 1
        if not cases:
            unexpected.append(f"{agent}: no cases ran")
    for pattern, count in sorted(used.items()):
        print(f"  allowlisted {pattern}: {count}")
    if not index:
        unexpected.append("the report lists no agent")
    for line in unexpected:
        print("UNEXPECTED FAILED " + line)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
