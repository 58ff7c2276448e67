"""Persistence: one interface (`Storage`), a backend per database, and the group-commit writer."""

from __future__ import annotations

from quizroom.storage.base import Storage, StorageError


def open_storage(url: str) -> Storage:
    """The backend for a database URL (`sqlite:///…` or `postgresql://…`); call `await storage.open()` next."""
    if url.startswith("sqlite:"):
        from quizroom.storage.sqlite import SQLiteStorage

        return SQLiteStorage(url)
    if url.startswith(("postgresql://", "postgres://")):
        from quizroom.storage.postgres import PostgresStorage

        return PostgresStorage(url)
    raise ValueError(f"unsupported database URL (use sqlite:/// or postgresql://): {url}")


__all__ = ["Storage", "StorageError", "open_storage"]
