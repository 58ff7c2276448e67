"""Numbered SQL migrations, one history in two dialects.

`migrations/0001_initial.sqlite.sql` and `migrations/0001_initial.postgresql.sql` are the same step for each
backend; a `schema_migrations` table records what was applied, so `quizroom migrate` and every start are safe to
repeat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sqlite|postgresql)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_for(dialect: str) -> list[Migration]:
    """The migrations of one dialect in order. Raises if a version is missing, so a gap cannot pass unnoticed."""
    found: list[Migration] = []
    for entry in resources.files("quizroom.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match and match.group(3) == dialect:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {expected:04d} for {dialect} is missing")
    return found
