"""The documented error codes, one exception type each.

Every refusal the game can make is raised as one of these and mapped to the wire in exactly one place per transport
(`quizroom.server.errors` for HTTP, the socket handlers for WebSocket `error` messages), so a code never drifts
between the HTTP API and the sockets.
"""

from __future__ import annotations

from quizroom.rooms.game.closes import (
    CLOSE_BAD_TOKEN,
    CLOSE_GOING_AWAY,
    CLOSE_KICKED,
    CLOSE_MOVED,
    CLOSE_POLICY,
    CLOSE_RATE_ABUSE,
    CLOSE_ROOM_GONE,
    CLOSE_TOO_BIG,
)


class QuizroomError(Exception):
    """Base of every documented refusal: `code` is the wire code, `status` the HTTP status when it is one."""

    code: str = "error"
    status: int = 400
    close_code: int = CLOSE_POLICY  # the socket close code when this refusal ends a socket (SPEC §3)
    retry_after_s: int | None = None  # when the client may try again (HTTP `Retry-After`), for refusals that pass

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code.replace("_", " ")

    def retry_after(self, seconds: int) -> QuizroomError:
        self.retry_after_s = seconds
        return self


# --- HTTP control API --------------------------------------------------------------------------------------------


class InvalidInput(QuizroomError):
    """A body that does not fit the contract; `field` is the offending field's path (`questions[2].text`)."""

    code = "invalid"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class BadNickname(InvalidInput):
    code = "bad_nickname"

    def __init__(self, message: str) -> None:
        super().__init__("nickname", message)


class BadFile(InvalidInput):
    """A quiz import whose file cannot be read as the format it claims or seems to be (docs/protocol.md, "Quiz
    import and export"): a broken workbook, no header row, too many rows."""

    code = "bad_file"

    def __init__(self, message: str) -> None:
        super().__init__("file", message)


class NothingImported(InvalidInput):
    """A quiz import in which no row made a question: `refused` says why for each row, `{row, reason}`."""

    code = "nothing_imported"

    def __init__(self, refused: list[dict[str, int | str]]) -> None:
        super().__init__("file", "no row of the file could be imported")
        self.refused = refused


class Unauthorized(QuizroomError):
    code = "unauthorized"
    status = 401
    close_code = CLOSE_BAD_TOKEN


class NotFound(QuizroomError):
    code = "not_found"
    status = 404
    close_code = CLOSE_ROOM_GONE


class MethodNotAllowed(QuizroomError):
    """An HTTP method the path does not take (the `Allow` header lists the ones it does)."""

    code = "method_not_allowed"
    status = 405


class NicknameTaken(QuizroomError):
    code = "nickname_taken"
    status = 409


class RoomLocked(QuizroomError):
    code = "room_locked"
    status = 423


class RoomFull(QuizroomError):
    code = "room_full"
    status = 423


class RoomFinished(QuizroomError):
    code = "room_finished"
    status = 423


class AtCapacity(QuizroomError):
    """This server holds as many live rooms as it may (`max_rooms`): try again later, or elsewhere."""

    code = "at_capacity"
    status = 503


class Unavailable(QuizroomError):
    """Storage could not make a write durable within the configured patience: nothing was acknowledged."""

    code = "unavailable"
    status = 503
    close_code = CLOSE_GOING_AWAY  # a failover or a storage outage: the client reconnects


# --- shared by HTTP commands and sockets ------------------------------------------------------------------------


class BadPhase(QuizroomError):
    code = "bad_phase"
    status = 409


# --- player socket ----------------------------------------------------------------------------------------------


class BadMessage(QuizroomError):
    code = "bad_message"


class UnknownType(QuizroomError):
    code = "unknown_type"


class WrongQuestion(QuizroomError):
    code = "wrong_question"


class TooLate(QuizroomError):
    code = "too_late"


class BadChoice(QuizroomError):
    code = "bad_choice"


class RateLimited(QuizroomError):
    code = "rate_limited"
    status = 429
    close_code = CLOSE_RATE_ABUSE


class TooBig(QuizroomError):
    code = "too_big"
    status = 413
    close_code = CLOSE_TOO_BIG


class Kicked(QuizroomError):
    """A revoked player token said hello again: the socket is closed with 4403."""

    code = "kicked"
    status = 403
    close_code = CLOSE_KICKED


class Removed(QuizroomError):
    """A join from a device or under a nickname (or a look-alike of one) that the host kicked from this room (423):
    a kick sticks, so a reload or a second try shows "removed" again instead of a fresh seat."""

    code = "kicked"
    status = 423


class Moved(QuizroomError):
    """This worker does not hold what was asked for (a room's coordinator, a player's shard): ask again (4421)."""

    code = "moved"
    status = 421
    close_code = CLOSE_MOVED


def error_for(code: str, message: str, status: int) -> QuizroomError:
    """Rebuild a refusal that crossed the cluster (a coordinator's answer to another worker's request)."""
    for kind in _all_kinds(QuizroomError):
        if kind.code == code and kind.status == status:
            rebuilt = kind.__new__(kind)  # not kind(message): InvalidInput's would prefix its field a second time
            QuizroomError.__init__(rebuilt, message)
            if isinstance(rebuilt, InvalidInput):
                rebuilt.field = ""  # already in the message
            return rebuilt
    error = QuizroomError(message)
    error.code = code
    error.status = status
    return error


def _all_kinds(base: type[QuizroomError]) -> list[type[QuizroomError]]:
    kinds: list[type[QuizroomError]] = []
    for sub in base.__subclasses__():
        kinds.append(sub)
        kinds.extend(_all_kinds(sub))
    return kinds
