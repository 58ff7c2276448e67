"""Typed views of the messages a quizroom server sends on its sockets (SPEC §3 and §4).

`parse_message` turns one wire frame into one of the dataclasses below. It is tolerant in the ways a client of a
growing protocol must be: unknown fields are ignored, optional fields the host or an older server leaves out get
their documented default, and an unknown message type becomes an `UnknownMessage` rather than an exception. It is
strict about the fields the contract promises: a missing or mistyped required field raises `ProtocolError`, so a
server bug surfaces where it happens instead of as a `None` three calls later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "AnswerAck",
    "AnswerCount",
    "ErrorMessage",
    "Finished",
    "GetReady",
    "HostResult",
    "HostWelcome",
    "Leaderboard",
    "PlayerRef",
    "PlayersChanged",
    "Pong",
    "ProtocolError",
    "QuestionOpened",
    "Result",
    "RoomState",
    "ServerMessage",
    "Standing",
    "UnknownMessage",
    "Welcome",
    "parse_message",
]


class ProtocolError(ValueError):
    """A frame that is not JSON, not an object, or lacks a field the contract promises."""


Wire = Mapping[str, Any]


def _req(data: Wire, key: str) -> Any:
    if key not in data:
        raise ProtocolError(f"{data.get('type', '?')}: missing field {key!r}")
    return data[key]


def _int(data: Wire, key: str) -> int:
    value = _req(data, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected an integer, got {value!r}")
    return value


def _opt_int(data: Wire, key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)


def _opt_number(data: Wire, key: str) -> int | float | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected a number, got {value!r}")
    return value


def _opt_strs(data: Wire, key: str) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected a list of strings, got {value!r}")
    return list(value)


def _opt_object(data: Wire, key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return dict(value) if isinstance(value, Mapping) else None


def _str(data: Wire, key: str) -> str:
    value = _req(data, key)
    if not isinstance(value, str):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected a string, got {value!r}")
    return value


def _bool(data: Wire, key: str, default: bool | None = None) -> bool:
    if default is not None and key not in data:
        return default
    value = _req(data, key)
    if not isinstance(value, bool):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected a boolean, got {value!r}")
    return value


def _ints(data: Wire, key: str, default: list[int] | None = None) -> list[int]:
    if default is not None and data.get(key) is None:
        return list(default)
    value = _req(data, key)
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected a list of integers, got {value!r}")
    return list(value)


def _opt_str(data: Wire, key: str) -> str | None:
    return None if data.get(key) is None else _str(data, key)


def _urls(data: Wire, key: str, *, nulls: bool = False) -> list[str | None]:
    """Extension (docs/protocol.md, "Images"): a list of image URLs (paths on the server), with nulls if allowed."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) or (nulls and v is None) for v in value):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected a list of image URLs, got {value!r}")
    return list(value)


def _objects(data: Wire, key: str) -> list[Wire]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ProtocolError(f"{data.get('type', '?')}.{key}: expected a list of objects, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Standing:
    """One line of a leaderboard or podium: equal scores share a rank."""

    rank: int
    nickname: str
    score: int

    @classmethod
    def from_wire(cls, data: Wire) -> Standing:
        return cls(rank=_int(data, "rank"), nickname=_str(data, "nickname"), score=_int(data, "score"))


@dataclass(frozen=True, slots=True)
class PlayerRef:
    """A player as the host's `players` event names them; `nickname` is empty when the server sent only an id."""

    player_id: str
    nickname: str = ""

    @classmethod
    def from_wire(cls, data: object) -> PlayerRef:
        if isinstance(data, Mapping):
            return cls(player_id=str(_req(data, "player_id")), nickname=str(data.get("nickname", "")))
        if isinstance(data, str | int):
            return cls(player_id=str(data))
        raise ProtocolError(f"players: bad player entry {data!r}")


@dataclass(frozen=True, slots=True)
class QuestionOpened:
    """A question is open until `deadline_ms` (server epoch ms). `correct` is only ever set for the host.

    Extension (docs/protocol.md, *Question types*): `question_type` says how to answer — `choice`, `true_false`,
    `poll` and `puzzle` with choices (a puzzle's `choices` are its items, shuffled: answer with all their indexes
    in order), `type_answer` with `text` (up to `max_length` characters), `slider` with a `value` from `min` to
    `max` in steps of `step`. The host also gets `accepted` (typed answers) or `value` and `tolerance` (a slider).
    """

    index: int
    text: str
    choices: list[str]
    multi: bool
    time_limit_ms: int
    deadline_ms: int
    now_ms: int
    seq: int | None = None
    correct: list[int] | None = None
    question_type: str = "choice"
    max_length: int | None = None
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    accepted: list[str] | None = None
    value: int | float | None = None
    tolerance: int | float | None = None
    # Extension (images): the question's image and its choices' images (parallel to `choices`, None for a text
    # choice), as URL paths on the server; the choices' texts are their alternative text.
    image: str | None = None
    choice_images: list[str | None] = field(default_factory=list)
    type: str = "question"

    @classmethod
    def from_wire(cls, data: Wire) -> QuestionOpened:
        choices = _req(data, "choices")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise ProtocolError(f"question.choices: expected a list of strings, got {choices!r}")
        return cls(
            index=_int(data, "index"),
            text=_str(data, "text"),
            choices=list(choices),
            multi=_bool(data, "multi", default=False),
            time_limit_ms=_int(data, "time_limit_ms"),
            deadline_ms=_int(data, "deadline_ms"),
            now_ms=_int(data, "now_ms"),
            seq=_opt_int(data, "seq"),
            correct=None if data.get("correct") is None else _ints(data, "correct"),
            question_type=str(data.get("question_type") or "choice"),
            max_length=_opt_int(data, "max_length"),
            min=_opt_number(data, "min"),
            max=_opt_number(data, "max"),
            step=_opt_number(data, "step"),
            accepted=_opt_strs(data, "accepted"),
            value=_opt_number(data, "value"),
            tolerance=_opt_number(data, "tolerance"),
            image=_opt_str(data, "image"),
            choice_images=_urls(data, "choice_images", nulls=True),
        )


@dataclass(frozen=True, slots=True)
class GetReady:
    """Extension: the "get ready" pause before question `index`, which opens at `opens_at_ms` (server epoch ms).
    Its text only: the choices come with the question."""

    index: int
    question_count: int
    text: str
    intro_ms: int
    opens_at_ms: int
    now_ms: int
    multi: bool = False
    time_limit_ms: int | None = None
    # Extension (images): the question's image, and every image URL it will show, to load before it opens.
    image: str | None = None
    images: list[str] = field(default_factory=list)
    type: str = "get_ready"

    @classmethod
    def from_wire(cls, data: Wire) -> GetReady:
        return cls(
            index=_int(data, "index"),
            question_count=_int(data, "question_count"),
            text=_str(data, "text"),
            intro_ms=_int(data, "intro_ms"),
            opens_at_ms=_int(data, "opens_at_ms"),
            now_ms=_int(data, "now_ms"),
            multi=_bool(data, "multi", default=False),
            time_limit_ms=_opt_int(data, "time_limit_ms"),
            image=_opt_str(data, "image"),
            images=[url for url in _urls(data, "images") if url is not None],
        )


def _choice(data: Wire, key: str) -> int | float | str | list[int] | None:
    """An answer as sent: a choice index, a list (several choices, a puzzle's order), a typed text, a number."""
    value = data.get(key)
    if value is None or (isinstance(value, int | float | str) and not isinstance(value, bool)):
        return value
    return _ints(data, key)


def _nested(data: Wire, key: str) -> Wire | None:
    value = data.get(key)
    return value if isinstance(value, Mapping) else None


@dataclass(frozen=True, slots=True)
class Welcome:
    """The state of the game at (re)connection; `question` and `answered` matter only in phase `question`."""

    player_id: str
    nickname: str
    pin: str
    title: str
    question_count: int
    phase: str
    score: int
    rank: int | None
    now_ms: int
    question: QuestionOpened | None = None
    answered: bool = False
    streak: int | None = None
    # Extensions that restore the screen: the choice made (in a question), the result and leaderboard (at a
    # reveal), the pause (during a "get ready").
    your_choice: int | float | str | list[int] | None = None
    result: Result | None = None
    leaderboard: Leaderboard | None = None
    get_ready: GetReady | None = None
    images: list[str] = field(default_factory=list)  # extension: the quiz's next image URLs (48 at most), to preload
    type: str = "welcome"

    @classmethod
    def from_wire(cls, data: Wire) -> Welcome:
        question = data.get("question")
        result, board, ready = _nested(data, "result"), _nested(data, "leaderboard"), _nested(data, "get_ready")
        return cls(
            player_id=str(_req(data, "player_id")),
            nickname=_str(data, "nickname"),
            pin=str(_req(data, "pin")),
            title=_str(data, "title"),
            question_count=_int(data, "question_count"),
            phase=_str(data, "phase"),
            score=_int(data, "score"),
            rank=_opt_int(data, "rank"),
            now_ms=_int(data, "now_ms"),
            question=QuestionOpened.from_wire(question) if isinstance(question, Mapping) else None,
            answered=_bool(data, "answered", default=False),
            streak=_opt_int(data, "streak"),
            your_choice=_choice(data, "your_choice"),
            result=Result.from_wire(result) if result is not None else None,
            leaderboard=Leaderboard.from_wire(board) if board is not None else None,
            get_ready=GetReady.from_wire(ready) if ready is not None else None,
            images=[url for url in _urls(data, "images") if url is not None],
        )


@dataclass(frozen=True, slots=True)
class HostWelcome:
    """The host's greeting: the room as `GET /api/rooms/{pin}` shows it, every player, and any open question
    (with its correct answer). An extension of SPEC §4, which leaves the host's first message open."""

    pin: str
    title: str
    phase: str
    question_index: int | None
    question_count: int
    players: int
    connected: int
    now_ms: int
    player_list: list[PlayerRef] = field(default_factory=list)
    locked: bool = False
    question: QuestionOpened | None = None
    # Extensions that restore the host's screen: the reveal's counts and leaderboard, the podium, the pause.
    result: HostResult | None = None
    leaderboard: Leaderboard | None = None
    podium: list[Standing] = field(default_factory=list)
    get_ready: GetReady | None = None
    images: list[str] = field(default_factory=list)  # extension: the quiz's next image URLs (48 at most), to preload
    type: str = "welcome"

    @classmethod
    def from_wire(cls, data: Wire) -> HostWelcome:
        question = data.get("question")
        result, board, ready = _nested(data, "result"), _nested(data, "leaderboard"), _nested(data, "get_ready")
        return cls(
            pin=str(_req(data, "pin")),
            title=str(data.get("title", "")),
            phase=_str(data, "phase"),
            question_index=_opt_int(data, "question_index"),
            question_count=_int(data, "question_count"),
            players=int(data.get("players") or 0),
            connected=int(data.get("connected") or 0),
            now_ms=_int(data, "now_ms"),
            player_list=[PlayerRef.from_wire(p) for p in _objects(data, "player_list")],
            locked=_bool(data, "locked", default=False),
            question=QuestionOpened.from_wire(question) if isinstance(question, Mapping) else None,
            result=HostResult.from_wire(result) if result is not None else None,
            leaderboard=Leaderboard.from_wire(board) if board is not None else None,
            podium=[Standing.from_wire(e) for e in _objects(data, "podium")] if "podium" in data else [],
            get_ready=GetReady.from_wire(ready) if ready is not None else None,
            images=[url for url in _urls(data, "images") if url is not None],
        )


@dataclass(frozen=True, slots=True)
class AnswerAck:
    """`accepted` means durably stored; `duplicate` marks a repeat of an answer that was already accepted."""

    question: int
    accepted: bool
    duplicate: bool
    response_ms: int | None
    type: str = "answer_ack"

    @classmethod
    def from_wire(cls, data: Wire) -> AnswerAck:
        return cls(
            question=_int(data, "question"),
            accepted=_bool(data, "accepted"),
            duplicate=_bool(data, "duplicate", default=False),
            response_ms=_opt_int(data, "response_ms"),
        )


@dataclass(frozen=True, slots=True)
class Result:
    """One player's outcome of a closed question; `your_choice` is an int, a list (multi, a puzzle's order), a
    typed text, a slider's number, or None. `is_correct` is None for a poll (it has no right answer)."""

    seq: int
    question: int
    correct: list[int]
    your_choice: int | float | str | list[int] | None
    is_correct: bool | None
    points: int
    score: int
    rank: int | None
    streak: int
    # Extension: how far the next higher score is, and who holds it when they are in the leaderboard's top.
    behind_points: int | None = None
    behind_nickname: str | None = None
    # Extension: the question's type, and the right answer of a type without choices.
    question_type: str = "choice"
    accepted: list[str] | None = None
    value: int | float | None = None
    tolerance: int | float | None = None
    type: str = "result"

    @classmethod
    def from_wire(cls, data: Wire) -> Result:
        your_choice = _choice(data, "your_choice")
        behind = _nested(data, "behind")
        return cls(
            seq=_int(data, "seq"),
            question=_int(data, "question"),
            correct=_ints(data, "correct"),
            your_choice=your_choice,
            is_correct=None if data.get("is_correct", False) is None else _bool(data, "is_correct"),
            points=_int(data, "points"),
            score=_int(data, "score"),
            rank=_opt_int(data, "rank"),
            streak=_int(data, "streak"),
            behind_points=_opt_int(behind, "points") if behind is not None else None,
            behind_nickname=str(behind["nickname"]) if behind is not None and behind.get("nickname") else None,
            question_type=str(data.get("question_type") or "choice"),
            accepted=_opt_strs(data, "accepted"),
            value=_opt_number(data, "value"),
            tolerance=_opt_number(data, "tolerance"),
        )


@dataclass(frozen=True, slots=True)
class HostResult:
    """The host's copy of `result` when a question closes: the correct answer and the counts per choice."""

    seq: int
    question: int
    correct: list[int]
    counts: list[int]
    answered: int
    players: int
    question_type: str = "choice"
    tally: dict[str, Any] | None = None  # extension: what a question without choices got (docs/protocol.md)
    type: str = "result"

    @classmethod
    def from_wire(cls, data: Wire) -> HostResult:
        return cls(
            seq=_int(data, "seq"),
            question=_int(data, "question"),
            correct=_ints(data, "correct"),
            counts=_ints(data, "counts", default=[]),
            answered=int(data.get("answered") or 0),
            players=int(data.get("players") or 0),
            question_type=str(data.get("question_type") or "choice"),
            tally=_opt_object(data, "tally"),
        )


@dataclass(frozen=True, slots=True)
class Leaderboard:
    """The top 10 after a question, with how many picked each choice."""

    seq: int
    question: int
    top: list[Standing]
    counts: list[int]
    answered: int
    players: int
    # Extension: for a typed answer, a slider or a puzzle, what the room answered (docs/protocol.md).
    tally: dict[str, Any] | None = None
    type: str = "leaderboard"

    @classmethod
    def from_wire(cls, data: Wire) -> Leaderboard:
        return cls(
            seq=_int(data, "seq"),
            question=_int(data, "question"),
            top=[Standing.from_wire(e) for e in _objects(data, "top")],
            counts=_ints(data, "counts", default=[]),
            answered=_int(data, "answered"),
            players=_int(data, "players"),
            tally=_opt_object(data, "tally"),
        )


@dataclass(frozen=True, slots=True)
class Finished:
    """The game is over; `score` and `rank` are the receiving player's (None for the host)."""

    seq: int
    podium: list[Standing]
    score: int | None
    rank: int | None
    type: str = "finished"

    @classmethod
    def from_wire(cls, data: Wire) -> Finished:
        return cls(
            seq=_int(data, "seq"),
            podium=[Standing.from_wire(e) for e in _objects(data, "podium")],
            score=_opt_int(data, "score"),
            rank=_opt_int(data, "rank"),
        )


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """A refusal of one client message; the socket stays open."""

    code: str
    message: str
    type: str = "error"

    @classmethod
    def from_wire(cls, data: Wire) -> ErrorMessage:
        return cls(code=_str(data, "code"), message=str(data.get("message", "")))


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a ping: `t` echoes the client's value, `now_ms` is the server's wall clock."""

    t: int | float | None
    now_ms: int
    type: str = "pong"

    @classmethod
    def from_wire(cls, data: Wire) -> Pong:
        t = data.get("t")
        return cls(t=t if isinstance(t, int | float) and not isinstance(t, bool) else None, now_ms=_int(data, "now_ms"))


@dataclass(frozen=True, slots=True)
class PlayersChanged:
    """Host only: who joined and left since the last such event (coalesced, at most 10 a second)."""

    count: int
    joined: list[PlayerRef]
    left: list[PlayerRef]
    type: str = "players"

    @classmethod
    def from_wire(cls, data: Wire) -> PlayersChanged:
        joined, left = data.get("joined") or [], data.get("left") or []
        if not isinstance(joined, list) or not isinstance(left, list):
            raise ProtocolError(f"players: joined/left must be lists, got {joined!r}, {left!r}")
        return cls(
            count=_int(data, "count"),
            joined=[PlayerRef.from_wire(p) for p in joined],
            left=[PlayerRef.from_wire(p) for p in left],
        )


@dataclass(frozen=True, slots=True)
class AnswerCount:
    """Host only: how many players have answered the open question."""

    question: int
    answered: int
    players: int
    type: str = "answers"

    @classmethod
    def from_wire(cls, data: Wire) -> AnswerCount:
        return cls(question=_int(data, "question"), answered=_int(data, "answered"), players=_int(data, "players"))


@dataclass(frozen=True, slots=True)
class RoomState:
    """The room as the host sees it: the body of `GET /api/rooms/{pin}`, of every command, and of `state`.

    `host_ws_url` (sharding extension) is where the host socket must connect now; only `GET /api/rooms/{pin}`
    carries it, and a server without sharding may leave it out (None)."""

    pin: str
    phase: str
    question_index: int | None
    question_count: int
    players: int
    connected: int
    answers: int
    type: str = "state"
    host_ws_url: str | None = None

    @classmethod
    def from_wire(cls, data: Wire) -> RoomState:
        host_ws_url = data.get("host_ws_url")
        return cls(
            pin=str(_req(data, "pin")),
            phase=_str(data, "phase"),
            question_index=_opt_int(data, "question_index"),
            question_count=_int(data, "question_count"),
            players=_int(data, "players"),
            connected=_int(data, "connected"),
            answers=int(data.get("answers") or 0),
            host_ws_url=host_ws_url if isinstance(host_ws_url, str) and host_ws_url else None,
        )


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message type this client does not know (a newer server's extension); `data` is the whole frame."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)


ServerMessage = (
    Welcome
    | HostWelcome
    | QuestionOpened
    | GetReady
    | AnswerAck
    | Result
    | HostResult
    | Leaderboard
    | Finished
    | ErrorMessage
    | Pong
    | PlayersChanged
    | AnswerCount
    | RoomState
    | UnknownMessage
)

_PARSERS: dict[str, Any] = {
    "welcome": lambda d: HostWelcome.from_wire(d) if d.get("role") == "host" else Welcome.from_wire(d),
    "question": QuestionOpened.from_wire,
    "get_ready": GetReady.from_wire,
    "answer_ack": AnswerAck.from_wire,
    "result": lambda d: Result.from_wire(d) if "is_correct" in d else HostResult.from_wire(d),
    "leaderboard": Leaderboard.from_wire,
    "finished": Finished.from_wire,
    "error": ErrorMessage.from_wire,
    "pong": Pong.from_wire,
    "players": PlayersChanged.from_wire,
    "answers": AnswerCount.from_wire,
    "state": RoomState.from_wire,
}


def parse_message(frame: str | bytes) -> ServerMessage:
    """Decode one WebSocket frame into its typed message; raise `ProtocolError` when it breaks the contract."""
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError(f"not a typed message: {data!r}")
    # A `state` may wrap the room in a `state` field instead of spreading it: accept both.
    if data["type"] == "state" and isinstance(data.get("state"), dict):
        data = {**data["state"], "type": "state"}
    parser = _PARSERS.get(data["type"])
    if parser is None:
        return UnknownMessage(type=data["type"], data=data)
    message: ServerMessage = parser(data)
    return message
