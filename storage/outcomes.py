"""What became of each answer of a commit, from the rows the database holds afterwards.

A batch's answers are inserted with one statement that skips conflicts and, on PostgreSQL, rows whose shard
placement is stale or whose question is no longer open. When the statement's row count says every row went in
(the common case: one round trip, no rows sent back), nothing is left to learn. Otherwise the commit reads the
stored rows for the batch's keys in the same transaction and `classify` sorts each answer:

- stored and equal to ours: ours (this commit, or the earlier attempt of a retried one whose reply was lost);
- stored and different: a duplicate, and the stored row is the one that counts (its timing goes in the ack);
- not stored, its shard's placement stale: fenced (the shard stops; nothing is sent for it);
- not stored otherwise: its question closed in the database before the answer got there (`too_late`).

Both backends share this so the rules cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from quizroom.storage.records import AnswerKey, AnswerRow, Outcome


def first_per_key(rows: Iterable[AnswerRow]) -> list[AnswerRow]:
    """The batch's answers with a repeated key dropped: the first of two equal keys is the one inserted (both
    backends insert in the batch's order), so it alone is sorted. Only on the rare path: a shard never puts one key
    in a batch twice."""
    seen: set[AnswerKey] = set()
    kept = []
    for row in rows:
        if row.key not in seen:
            seen.add(row.key)
            kept.append(row)
    return kept


def classify(
    rows: Iterable[AnswerRow],
    stored: dict[AnswerKey, AnswerRow],
    fenced: Collection[tuple[str, int]] = frozenset(),
) -> Outcome:
    """Sort the answers that the insert's row count says were not all inserted (see the module's docstring)."""
    duplicates: dict[AnswerKey, AnswerRow] = {}
    closed: set[AnswerKey] = set()
    for row in rows:
        held = stored.get(row.key)
        if held is not None:
            if held != row:
                duplicates[row.key] = held
        elif (row.room_id, row.shard) not in fenced:
            closed.add(row.key)
    return Outcome(duplicates, frozenset(closed), frozenset(fenced))
