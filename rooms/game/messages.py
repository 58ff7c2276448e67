"""Every message the server sends to a socket (SPEC §3–4, docs/protocol.md), built from room state in one place.

Pure functions returning JSON-ready dicts; the actors encode them (once per broadcast) and send them. A new field or
message type changes this module and the tests that read it, nothing else.
"""

from __future__ import annotations

from typing import Any

from quizroom.rooms.game.images import message_images, ready_images, upcoming_image_urls
from quizroom.rooms.game.quiz import Question
from quizroom.rooms.game.rules import Answer, Phase, Player, RoomState

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
        **message_images(question),
    }
    if with_correct:
        message["correct"] = sorted(question.correct)
    return message


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
        **ready_images(question),
    }


def preload(state: RoomState) -> dict[str, Any]:
    """A welcome's `images`: the image URLs of the quiz from the current question on, in the order it shows them
    (at most `WELCOME_IMAGES`), so a page loads them ahead from the lobby on; absent when there are none."""
    urls = upcoming_image_urls(state.quiz, state.question_index or 0)
    return {"images": urls} if urls else {}


def your_choice(question: Question, answer: Answer | None) -> int | list[int] | None:
    """A single-choice answer as its index, a multi-choice one as a sorted list; null when there is none."""
    if answer is None:
        return None
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
        "correct": sorted(question.correct),
        "your_choice": your_choice(question, answer),
        "is_correct": bool(answer is not None and answer.correct),
        "points": answer.points if answer is not None else 0,
        "score": player.score,
        "rank": rank,
        "streak": player.streak,
        "behind": behind,
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


def host_result(
    index: int, seq: int, correct: list[int], counts: list[int], answered: int, players: int
) -> dict[str, Any]:
    """The host's `result`: the correct choices and every choice's count (players get theirs one by one)."""
    return {
        "type": "result",
        "seq": seq,
        "question": index,
        "correct": correct,
        "counts": counts,
        "answered": answered,
        "players": players,
    }


def leaderboard(
    index: int, seq: int, top: list[dict[str, Any]], counts: list[int], answered: int, players: int
) -> dict[str, Any]:
    """The same for every player and host of the room: sent once per reveal, encoded once."""
    return {
        "type": "leaderboard",
        "seq": seq,
        "question": index,
        "top": top,
        "counts": counts,
        "answered": answered,
        "players": players,
    }


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
