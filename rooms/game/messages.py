"""Every message the server sends to a socket (SPEC §3–4, docs/protocol.md), built from room state in one place.

Pure functions returning JSON-ready dicts; the actors encode them (once per broadcast) and send them. A new field or
message type changes this module and the tests that read it, nothing else.
"""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.effects import View
from quizroom.rooms.game.images import message_images, ready_images, upcoming_image_urls
from quizroom.rooms.game.quiz import TYPED_MAX, Kind, Question, number
from quizroom.rooms.game.rules import Answer, Phase, Player, RoomState
from quizroom.rooms.game.tally import tally

TOP_N = 10
PODIUM_N = 3


def question_message(
    state: RoomState, question: Question, seq: int, now_ms: int, *, with_correct: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "question",
        "seq": seq,
        "index": state.question_index,
        "text": question.text,
        "choices": list(question.choices),
        "multi": question.multi,
        "time_limit_ms": question.time_limit_ms,
        "deadline_ms": state.deadline_ms,
        "now_ms": now_ms,
        **how_answered(question),
        **message_images(question),
    }
    if with_correct:
        message["correct"] = question.solution()
        message.update(solution(question))
    return message


def how_answered(question: Question) -> dict[str, Any]:
    """Extension fields of a `question` (and `get_ready`): its type and what an answer to it looks like. A
    choice question has only `question_type`, so SPEC's fields mean what they always did."""
    fields: dict[str, Any] = {"question_type": str(question.kind)}
    if question.kind is Kind.TYPE_ANSWER:
        fields["max_length"] = TYPED_MAX
    elif question.kind is Kind.SLIDER:
        assert question.slider is not None
        slider = question.slider
        fields.update(min=number(slider.low), max=number(slider.high), step=number(slider.step))
    elif question.kind is Kind.POLL:
        fields["points"] = 0
    return fields


def solution(question: Question) -> dict[str, Any]:
    """Beside SPEC's `correct` (choice indexes; a puzzle's right order), what a host's question and every reveal
    show of the answer of a type without choices: a typed answer's accepted answers, a slider's value and band."""
    if question.kind is Kind.TYPE_ANSWER:
        return {"accepted": list(question.accepted)}
    if question.kind is Kind.SLIDER:
        assert question.slider is not None
        return {"value": number(question.slider.value), "tolerance": number(question.slider.tolerance)}
    return {}


def reveal_counts(question: Question, view: View) -> tuple[list[int], dict[str, Any] | None]:
    """A reveal's SPEC `counts` (per choice; empty for types without choices) and its `tally` (None for types
    answered by choices)."""
    if question.by_choice:
        return list(view.counts), None
    return [], tally(question, view.values, view.right, view.answered)


def get_ready(state: RoomState, index: int, intro_ms: int, now_ms: int) -> dict[str, Any]:
    """The "get ready" pause before question `index`: its number and text (never its choices or answer), and when
    it opens. Not a room event (no `seq`): nothing of it is stored, and a client that misses it misses only the
    pause."""
    question = state.quiz.questions[index]
    return {
        "type": "get_ready",
        "index": index,
        "question_count": len(state.quiz.questions),
        "text": question.text,
        "multi": question.multi,
        "time_limit_ms": question.time_limit_ms,
        "intro_ms": intro_ms,
        "opens_at_ms": now_ms + intro_ms,
        "now_ms": now_ms,
        "question_type": str(question.kind),
        **ready_images(question),
    }


def preload(state: RoomState) -> dict[str, Any]:
    """A welcome's `images`: the image URLs of the quiz from the current question on, in the order it shows them
    (at most `WELCOME_IMAGES`), so a page loads them ahead from the lobby on; absent when there are none."""
    urls = upcoming_image_urls(state.quiz, state.question_index or 0)
    return {"images": urls} if urls else {}


def your_choice(question: Question, answer: Answer | None) -> int | float | str | list[int] | None:
    """A single-choice answer as its index, a multi-choice one as a sorted list, a puzzle's as the order sent, a
    typed answer as its text and a slider's as its number; null when there is none."""
    if answer is None:
        return None
    if question.kind is Kind.TYPE_ANSWER:
        return answer.value
    if question.kind is Kind.SLIDER:
        return None if answer.value is None else number(float(answer.value))
    if question.kind is Kind.PUZZLE:
        return list(answer.choices)
    return sorted(answer.choices) if question.multi else answer.choices[0]


def result_message(
    state: RoomState,
    player: Player,
    rank: int,
    seq: int,
    index: int,
    behind: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`behind` (extension): how far the player is from the next score up, `{points, nickname}` (the nickname
    when that player is in the leaderboard's top, else null); null for a player in first place."""
    question = state.quiz.questions[index]
    answer = player.answers.get(index)
    return {
        "type": "result",
        "seq": seq,
        "question": index,
        "correct": question.solution(),
        "your_choice": your_choice(question, answer),
        # A poll has no right answer: null, so that no screen says "wrong" (docs/protocol.md, *Question types*).
        "is_correct": bool(answer is not None and answer.correct) if question.scored else None,
        "points": answer.points if answer is not None else 0,
        "score": player.score,
        "rank": rank,
        "streak": player.streak,
        "behind": behind,
        "question_type": str(question.kind),
        **solution(question),
    }


def behind(score: int, above: int | None, top: list[dict[str, Any]]) -> dict[str, Any] | None:
    """`{points, nickname}` to the next higher score `above` (None: nobody is above); the nickname is the first
    holder of that score in `top`, when one is there."""
    if above is None:
        return None
    nickname = next((entry["nickname"] for entry in top if entry["score"] == above), None)
    return {"points": above - score, "nickname": nickname}


def welcome_message(
    state: RoomState,
    player: Player,
    now_ms: int,
    *,
    reveal: tuple[dict[str, Any], dict[str, Any]] | None = None,
    ready: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A player's view on (re)connect: enough to restore any screen, without unrevealed points. In a question:
    the choice already made (`your_choice`); at a reveal the shard passes its `result` and `leaderboard` again
    (`reveal`); during a "get ready" pause, the pause (`ready`)."""
    message: dict[str, Any] = {
        "type": "welcome",
        "player_id": player.player_id,
        "nickname": player.nickname,
        "pin": state.pin,
        "title": state.quiz.title,
        "question_count": len(state.quiz.questions),
        "phase": str(state.phase),
        "score": state.visible_score(player),
        "rank": state.rank_of(player),
        "streak": player.streak,
        "seq": state.seq,
        "now_ms": now_ms,
        **preload(state),
    }
    question = state.current_question
    if state.phase is Phase.QUESTION and question is not None and state.question_index is not None:
        message["question"] = question_message(state, question, state.seq, now_ms, with_correct=False)
        message["answered"] = state.question_index in player.answers
        message["your_choice"] = your_choice(question, player.answers.get(state.question_index))
    if reveal is not None and state.phase is Phase.REVEAL:
        message["result"], message["leaderboard"] = reveal
    if ready is not None:
        message["get_ready"] = {**ready, "now_ms": now_ms}
    return message


def host_welcome_message(state: RoomState, now_ms: int, snapshot: dict[str, Any]) -> dict[str, Any]:
    """`snapshot` is the coordinator's (counts summed over the shards, which alone know who is connected)."""
    message: dict[str, Any] = {
        "type": "welcome",
        "role": "host",
        "title": state.quiz.title,
        "now_ms": now_ms,
        "player_list": [{"player_id": p.player_id, "nickname": p.nickname} for p in state.players.values()],
        **snapshot,
        **preload(state),
    }
    question = state.current_question
    if state.phase is Phase.QUESTION and question is not None:
        message["question"] = question_message(state, question, state.seq, now_ms, with_correct=True)
    return message


# --- coordinator → hosts ------------------------------------------------------------------------------------------


def state(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The room's state after a command (and to the sender of a host kick)."""
    return {"type": "state", **snapshot}


def players(count: int, connected: int, joined: list[dict[str, str]], left: list[dict[str, str]]) -> dict[str, Any]:
    return {"type": "players", "count": count, "connected": connected, "joined": joined, "left": left}


def answers(question: int, answered: int, players: int) -> dict[str, Any]:
    return {"type": "answers", "question": question, "answered": answered, "players": players}


def host_result(question: Question, index: int, seq: int, board: dict[str, Any]) -> dict[str, Any]:
    """The host's `result`: the correct answer and the reveal's counts (and tally) from its `leaderboard` (players
    get their results one by one)."""
    message = {
        "type": "result",
        "seq": seq,
        "question": index,
        "correct": question.solution(),
        "counts": board["counts"],
        "answered": board["answered"],
        "players": board["players"],
        "question_type": str(question.kind),
        **solution(question),
    }
    if "tally" in board:
        message["tally"] = board["tally"]
    return message


def leaderboard(
    index: int,
    seq: int,
    top: list[dict[str, Any]],
    counts: list[int],
    answered: int,
    players: int,
    tally: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The same for every player and host of the room: sent once per reveal, encoded once. `tally` (extension):
    what a question without choices got (`quizroom.rooms.game.tally`)."""
    message = {
        "type": "leaderboard",
        "seq": seq,
        "question": index,
        "top": top,
        "counts": counts,
        "answered": answered,
        "players": players,
    }
    if tally is not None:
        message["tally"] = tally
    return message


def host_finished(seq: int, podium: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "finished", "seq": seq, "podium": podium}


# --- shard → players ----------------------------------------------------------------------------------------------


def finished(seq: int, podium: list[dict[str, Any]], score: int, rank: int) -> dict[str, Any]:
    return {"type": "finished", "seq": seq, "podium": podium, "score": score, "rank": rank}


def answer_ack(question: int, *, accepted: bool, duplicate: bool, response_ms: int) -> dict[str, Any]:
    return {
        "type": "answer_ack",
        "question": question,
        "accepted": accepted,
        "duplicate": duplicate,
        "response_ms": response_ms,
    }


# --- any socket ---------------------------------------------------------------------------------------------------


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def pong(t: Any, now_ms: int) -> dict[str, Any]:
    return {"type": "pong", "t": t, "now_ms": now_ms}
