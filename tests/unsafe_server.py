"""A deliberately broken server, for the kill -9 harness's negative control only: it acknowledges before committing.

`python -m tests.unsafe_server serve …` takes the same flags as `quizroom serve`. Two patches:

- `AnswerDesk.submit` sends `answer_ack` the moment an answer is judged, before the writer has committed it
  (the output gate removed), and takes the sender off the waiters so the commit does not ack a second time;
- every group commit first sleeps `UNSAFE_COMMIT_DELAY_S` (default 1 s), so a SIGKILL after an ack lands inside
  the window in which the acknowledged answer exists only in memory.

If the harness does not report lost answers against this server, the harness is not able to see loss, and its
passing verdict on the real server would mean nothing.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from quizroom.rooms.actors.answers import AnswerDesk, Taken, ack
from quizroom.rooms.actors.sessions import Session
from quizroom.server import cli
from quizroom.storage.records import Batch, Outcome
from quizroom.storage.writer import GroupCommitWriter

COMMIT_DELAY_S = float(os.environ.get("UNSAFE_COMMIT_DELAY_S", "1.0"))

_submit = AnswerDesk.submit
_commit = GroupCommitWriter._commit


def _ack_before_commit(self: AnswerDesk, session: Session, message: dict[str, Any]) -> Taken:
    taken = _submit(self, session, message)
    key = (message.get("question"), session.player_id)
    waiters = self._waiters.get(key)  # type: ignore[arg-type]
    if waiters and waiters[0][0] is session:
        player = self.state.players[session.player_id or ""]
        answer = player.answers[key[0]]  # type: ignore[index]
        if not answer.durable:
            waiters.pop(0)
            taken.sends.append((session, ack(answer, duplicate=False, same=True)))
    return taken


async def _slow_commit(self: GroupCommitWriter, batch: Batch) -> tuple[Outcome, frozenset[tuple[str, str]]]:
    await asyncio.sleep(COMMIT_DELAY_S)
    return await _commit(self, batch)


def main() -> None:
    AnswerDesk.submit = _ack_before_commit  # type: ignore[method-assign]
    GroupCommitWriter._commit = _slow_commit  # type: ignore[method-assign]
    cli.main()


if __name__ == "__main__":
    main()
