"""A consistent copy of a SQLite database while the server writes to it: SQLite's online backup API.

Copying the file alone is not a backup: recent commits may still be in the `-wal` file beside it. The backup API
copies pages under SQLite's own locking, so the copy is one committed state of the database, whatever the server is
doing meanwhile; it is written next to the destination and renamed into place once checked, so a failed or
interrupted backup never leaves a half-written file under the destination's name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

PAGES_PER_STEP = 1024  # pages copied per step; between steps the server's writer may take the lock


class BackupError(Exception):
    """The backup could not be made; nothing was left at the destination."""


def backup_sqlite(source: Path, destination: Path) -> dict[str, int]:
    """Copy `source` to `destination` (which must not exist). Returns what the copy holds, for the log."""
    if destination.exists():
        raise BackupError(f"{destination} exists already: choose a new name (a backup never overwrites)")
    if not destination.parent.is_dir():
        raise BackupError(f"the directory {destination.parent} does not exist")
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=10)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst, pages=PAGES_PER_STEP)
            dst.execute("PRAGMA journal_mode=DELETE")  # a standalone file: no -wal beside the copy
            (verdict,) = dst.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise BackupError(f"the copy failed its check: {verdict}")
            counts = {
                table: int(dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # fixed names
                for table in ("rooms", "players", "answers")
            }
            (pages,) = dst.execute("PRAGMA page_count").fetchone()
        os.replace(partial, destination)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(str(exc)) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {**counts, "pages": int(pages), "bytes": destination.stat().st_size}
