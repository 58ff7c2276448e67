"""The OpenAPI 3.1 description of the HTTP control API (SPEC §2 and docs/protocol.md), served at `/openapi.json`.

Written by hand from the contract rather than derived from the handlers: it states what clients may rely on, and
tests/system/test_openapi.py checks the running server against it with generated requests (schemathesis), so the two
cannot drift apart silently. WebSockets are out of OpenAPI's reach; docs/protocol.md describes them.
"""

from __future__ import annotations

from functools import cache

from quizroom.rooms.game import quiz as limits
from quizroom.server.metrics import error_codes
from quizroom.server.openapi_images import IMAGE, QUESTION_IMAGE_FIELDS, image_paths
from quizroom.server.openapi_library import LIBRARY_SCHEMAS, library_paths
from quizroom.server.openapi_parts import ADMIN, COUNT, INT, JSON, Schema, error, json_body, obj, ref, text

PIN = {
    "name": "pin",
    "in": "path",
    "required": True,
    "description": "the room's 6-digit PIN",
    "schema": {"type": "string"},
}
PLAYER_ID = {"name": "player_id", "in": "path", "required": True, "schema": {"type": "string"}}

TIME_LIMIT = {
    "type": "integer",
    "minimum": limits.TIME_LIMIT_MIN,
    "maximum": limits.TIME_LIMIT_MAX,
    "default": limits.TIME_LIMIT_DEFAULT,
}
POINTS = {
    "type": "integer",
    "minimum": limits.POINTS_MIN,
    "maximum": limits.POINTS_MAX,
    "default": limits.POINTS_DEFAULT,
}
CHOICE_TEXTS = {
    "type": "array",
    "items": text(limits.CHOICE_TEXT_MAX),
    "minItems": limits.CHOICES_MIN,
    "maxItems": limits.CHOICES_MAX,
}
SLIDER_NUMBER = {"type": "number", "minimum": -limits.SLIDER_BOUND, "maximum": limits.SLIDER_BOUND}


def kind(name: str, description: str) -> Schema:
    return {"type": "string", "enum": [name], "description": description}


CHOICE_QUESTION = obj(
    {
        "type": {**kind("choice", "SPEC §1's multiple choice; the default when `type` is absent")},
        "text": text(limits.TEXT_MAX),
        "choices": CHOICE_TEXTS,
        "correct": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": limits.CHOICES_MAX - 1},
            "minItems": 1,
            "maxItems": limits.CHOICES_MAX,
            "uniqueItems": True,
            "description": "indexes into `choices`; more than one makes a multi-correct question",
        },
        "time_limit_ms": TIME_LIMIT,
        "points": POINTS,
        **QUESTION_IMAGE_FIELDS,
    },
    ["text", "choices", "correct"],
)
TRUE_FALSE_QUESTION = obj(
    {
        "type": kind("true_false", "extension: two choices, `True` and `False` unless `choices` relabels them"),
        "text": text(limits.TEXT_MAX),
        "choices": {**CHOICE_TEXTS, "minItems": 2, "maxItems": 2, "description": "the labels of true, then false"},
        "correct": {"type": "boolean"},
        "time_limit_ms": TIME_LIMIT,
        "points": POINTS,
        **QUESTION_IMAGE_FIELDS,
    },
    ["type", "text", "correct"],
)
POLL_QUESTION = obj(
    {
        "type": kind("poll", "extension: no correct answer, no points; the reveal shows the counts"),
        "text": text(limits.TEXT_MAX),
        "choices": CHOICE_TEXTS,
        "time_limit_ms": TIME_LIMIT,
        **QUESTION_IMAGE_FIELDS,
    },
    ["type", "text", "choices"],
)
TYPE_ANSWER_QUESTION = obj(
    {
        "type": kind("type_answer", "extension: a typed answer, compared after NFKC, case folding and trimming"),
        "text": text(limits.TEXT_MAX),
        "accepted": {
            "type": "array",
            "items": text(limits.TYPED_MAX),
            "minItems": 1,
            "maxItems": limits.ACCEPTED_MAX,
        },
        "typo_tolerance": {"type": "boolean", "default": False, "description": "forgive one typo (4+ characters)"},
        "time_limit_ms": TIME_LIMIT,
        "points": POINTS,
        "image": QUESTION_IMAGE_FIELDS["image"],
    },
    ["type", "text", "accepted"],
)
SLIDER_QUESTION = obj(
    {
        "type": kind("slider", "extension: a number from `min` to `max` in steps of `step`"),
        "text": text(limits.TEXT_MAX),
        "min": SLIDER_NUMBER,
        "max": SLIDER_NUMBER,
        "step": {"type": "number", "exclusiveMinimum": 0, "default": 1},
        "value": {**SLIDER_NUMBER, "description": "the correct value, on a step"},
        "tolerance": {"type": "number", "minimum": 0, "default": 0, "description": "the band around it that is right"},
        "scoring": {"type": "string", "enum": ["closeness", "all_or_nothing"], "default": "closeness"},
        "time_limit_ms": TIME_LIMIT,
        "points": POINTS,
        "image": QUESTION_IMAGE_FIELDS["image"],
    },
    ["type", "text", "min", "max", "value"],
)
PUZZLE_QUESTION = obj(
    {
        "type": kind("puzzle", "extension: put the items in order; only the exact order is right"),
        "text": text(limits.TEXT_MAX),
        "items": {**CHOICE_TEXTS, "uniqueItems": True, "description": "in their right order; shown shuffled"},
        "time_limit_ms": TIME_LIMIT,
        "points": POINTS,
        "image": QUESTION_IMAGE_FIELDS["image"],
    },
    ["type", "text", "items"],
)
QUESTION = {
    "oneOf": [
        CHOICE_QUESTION,
        TRUE_FALSE_QUESTION,
        POLL_QUESTION,
        TYPE_ANSWER_QUESTION,
        SLIDER_QUESTION,
        PUZZLE_QUESTION,
    ],
    "description": "A question of one type (docs/protocol.md, *Question types*); without `type`, SPEC §1's choice.",
}

QUIZ = obj(
    {
        "title": text(limits.TITLE_MAX),
        "questions": {
            "type": "array",
            "items": ref("Question"),
            "minItems": 1,
            "maxItems": limits.QUESTIONS_MAX,
        },
    },
    description="Unknown fields are ignored.",
)

ROOM_STATE_FIELDS: dict[str, Schema] = {
    "pin": {"type": "string"},
    "room_id": {"type": "string"},
    "phase": {"type": "string", "enum": ["lobby", "question", "reveal", "finished"]},
    "question_index": {"type": ["integer", "null"], "minimum": 0, "description": "null in the lobby"},
    "question_count": COUNT,
    "players": COUNT,
    "connected": COUNT,
    "answers": {**COUNT, "description": "answers stored for the current question"},
    "locked": {"type": "boolean"},
    "deadline_ms": {"type": ["integer", "null"], "description": "epoch ms; null outside a question"},
}

SHARDS = {**COUNT, "description": "extension: the room's shards, wherever they are (0 before the first join)"}

ROOM_OPTIONS: dict[str, Schema] = {
    "auto_advance": {
        "type": "boolean",
        "description": "a reveal with no host socket for `auto_advance_after_s` moves on by itself (default false)",
    },
    "intro_ms": {
        "type": "integer",
        "minimum": 0,
        "maximum": 10_000,
        "description": "the 'get ready' pause before each question (default: the server's `intro_ms`, 0)",
    },
    "friendly_names": {
        "type": "boolean",
        "description": "players get generated two-word names instead of typed ones (default false)",
    },
}

ROOM_STATE = obj({**ROOM_STATE_FIELDS, "shards": SHARDS, **ROOM_OPTIONS}, list(ROOM_STATE_FIELDS))

LOCAL_STATS = {
    "sockets_connected": {**COUNT, "description": "player sockets on this worker's shards of the room"},
    "hosts_connected": {**COUNT, "description": "host sockets"},
    "answers_accepted": {**COUNT, "description": "answers accepted by this worker's shards since they were loaded"},
    "answers_duplicate": {"type": ["integer", "null"], "minimum": 0},
    "last_broadcast_ms": {"type": ["number", "null"], "minimum": 0},
}

ROOM_STATS = obj(
    {
        **LOCAL_STATS,
        "shards": SHARDS,
        "shards_here": {**COUNT, "description": "the room's shards held by this worker"},
    },
    list(LOCAL_STATS),
    description="Extension: the room's sockets and answers as the worker that coordinates it counts them "
    "(no per-player data). With one process every shard is here.",
)

REMOTE_ROOM_STATS = obj(
    {"coordinator": {"type": "string", "description": "the id of the worker that coordinates the room"}},
    description="Extension (several workers): the worker that answered does not coordinate the room.",
)

ENTRY = obj({"rank": {"type": "integer", "minimum": 1}, "nickname": {"type": "string"}, "score": COUNT})

RESULTS = obj(
    {
        "pin": {"type": "string"},
        "title": {"type": "string"},
        "phase": {"type": "string"},
        "questions": {
            "type": "array",
            "items": obj(
                {
                    "index": COUNT,
                    "number": {"type": "integer", "minimum": 1, "description": "extension: the index + 1"},
                    "text": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "string"}, "description": "extension"},
                    "correct": {"type": "array", "items": INT},
                }
            ),
        },
        "players": {
            "type": "array",
            "items": obj(
                {
                    "player_id": {"type": "string"},
                    "nickname": {"type": "string"},
                    "score": COUNT,
                    "rank": {"type": "integer", "minimum": 1},
                    "correct_count": {**COUNT, "description": "extension: answers that were right"},
                    "answers": {
                        "type": "array",
                        "items": obj(
                            {
                                "question": COUNT,
                                "number": {"type": "integer", "minimum": 1, "description": "extension"},
                                "choices": {"type": "array", "items": INT},
                                "answer": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "description": "extension: the chosen choices' texts",
                                },
                                "correct": {"type": "boolean"},
                                "points": COUNT,
                                "response_ms": COUNT,
                            }
                        ),
                    },
                }
            ),
        },
        "paging": obj(
            {
                "offset": COUNT,
                "limit": {"type": "integer", "minimum": 1},
                "total": {**COUNT, "description": "players in the whole document"},
                "next_offset": {"type": ["integer", "null"], "description": "the next page's offset; null: last page"},
            },
            description="extension: present on a page (`offset` or `limit` given)",
        ),
    },
    ["pin", "title", "phase", "questions", "players"],
)


def components() -> Schema:
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "the room's host token; the admin token (when configured) is accepted wherever the "
                "host token is, and is required to create quizzes and rooms and for every call of the quiz library",
            },
            "player": {
                "type": "http",
                "scheme": "bearer",
                "description": "a player's token (from the join)",
            },
        },
        "schemas": {
            "Error": obj(
                {
                    "error": obj(
                        {
                            "code": {"type": "string", "enum": list(error_codes())},
                            "message": {"type": "string"},
                            "field": {"type": "string", "description": "422 `invalid`: the offending field's path"},
                            "refused": {
                                "type": "array",
                                "items": ref("RefusedRow"),
                                "description": "422 `nothing_imported`: why each row of the file was refused",
                            },
                        },
                        ["code", "message"],
                    )
                }
            ),
            "Question": QUESTION,
            "Quiz": QUIZ,
            **LIBRARY_SCHEMAS,
            "RoomState": ROOM_STATE,
            "RoomStateWithStats": obj(
                {
                    **ROOM_STATE["properties"],
                    "host_ws_url": {
                        "type": "string",
                        "description": "extension: where the host socket must connect now",
                    },
                    "stats": {"oneOf": [ref("RoomStats"), ref("RemoteRoomStats")]},
                },
                [*ROOM_STATE["required"], "stats"],
            ),
            "RoomStats": ROOM_STATS,
            "RemoteRoomStats": REMOTE_ROOM_STATS,
            "LeaderboardEntry": ENTRY,
            "Results": RESULTS,
            "Image": IMAGE,
        },
    }


HOST: list[dict[str, list[str]]] = [{"bearer": []}]
PLAYER: list[dict[str, list[str]]] = [{"player": []}]


def host_command(name: str, summary: str) -> Schema:
    return {
        "post": {
            "operationId": f"room_{name}",
            "summary": summary,
            "tags": ["host"],
            "security": HOST,
            "parameters": [PIN],
            "responses": {
                "200": json_body(ref("RoomState"), "the room's new state"),
                "401": error("missing or wrong host token"),
                "404": error("no room with this PIN"),
                "409": error("`bad_phase`: the command does not fit the room's phase"),
                "503": error(
                    "storage could not make the change durable in time (nothing was done), or the room's coordinator "
                    "is being taken over"
                ),
            },
        }
    }


def paths() -> Schema:
    unauthorized = error("an admin token is configured and was not given")
    unavailable = error("storage is unavailable; nothing was done, retry")
    taken_over = error("storage is unavailable, or the room's coordinator is being taken over; retry")
    not_found = error("no room with this PIN")
    host_errors = {"401": error("missing or wrong host token"), "404": not_found}
    result: Schema = {
        "/api/rooms": {
            "post": {
                "operationId": "create_room",
                "summary": "Open a room for a stored quiz or a quiz given inline",
                "tags": ["rooms"],
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "oneOf": [
                                    obj({"quiz_id": {"type": "string"}, **ROOM_OPTIONS}),
                                    obj({"quiz": ref("Quiz"), **ROOM_OPTIONS}),
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "201": json_body(
                        obj(
                            {
                                "room_id": {"type": "string"},
                                "pin": {"type": "string", "pattern": "^[0-9]{6}$"},
                                "host_token": {"type": "string"},
                                "join_url": {"type": "string"},
                                "host_ws_url": {"type": "string"},
                            }
                        ),
                        "the room; `host_token` is shown only here",
                    ),
                    "401": unauthorized,
                    "404": error("no such quiz"),
                    "422": error(
                        "`invalid`: neither `quiz_id` nor a valid `quiz` (`field` is `quiz.…`), or a bad option"
                    ),
                    "503": {
                        **error(
                            "storage is unavailable (retry), or `at_capacity`: this server holds as many rooms as "
                            "it may (see `Retry-After`)"
                        ),
                        "headers": RETRY_AFTER,
                    },
                },
            }
        },
        "/api/rooms/{pin}": {
            "get": {
                "operationId": "room_state",
                "summary": "The room's state, with its `stats`",
                "tags": ["host"],
                "security": HOST,
                "parameters": [PIN],
                "responses": {
                    "200": json_body(ref("RoomStateWithStats"), "the state"),
                    **host_errors,
                    "503": taken_over,
                },
            }
        },
        "/api/rooms/{pin}/players": {
            "post": {
                "operationId": "join_room",
                "summary": "Join a room as a player (no credentials)",
                "tags": ["players"],
                "security": [{}],
                "parameters": [PIN],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": obj(
                                {
                                    "nickname": {
                                        "type": "string",
                                        "description": "1–24 characters once NFKC-normalised and trimmed; no "
                                        "control or invisible characters; unique in the room ignoring case "
                                        "and look-alikes (docs/protocol.md, Hardening)",
                                    },
                                    "device": {
                                        "type": "string",
                                        "pattern": "^[A-Za-z0-9_-]{8,128}$",
                                        "description": "extension: the random id the browser keeps; a kick bars "
                                        "it from the room (docs/protocol.md, Moderation)",
                                    },
                                }
                            )
                        }
                    },
                },
                "responses": {
                    "201": json_body(
                        obj(
                            {
                                "player_id": {"type": "string"},
                                "token": {"type": "string", "description": "the player's only credential"},
                                "nickname": {"type": "string", "description": "the normalised nickname"},
                                "ws_url": {"type": "string"},
                            }
                        ),
                        "joined: open `ws_url` and say hello with `token`",
                    ),
                    "404": not_found,
                    "409": error("`nickname_taken`"),
                    "422": error("`bad_nickname`, or `invalid` with `field: device`"),
                    "423": error(
                        "`room_locked`, `room_full`, `room_finished`, or `kicked` (this device or this name was "
                        "removed from the room)"
                    ),
                    "503": taken_over,
                },
            }
        },
        "/api/rooms/{pin}/qr.svg": {
            "get": {
                "operationId": "join_qr",
                "summary": "Extension: the room's join link as a QR code, for the lobby",
                "tags": ["players"],
                "security": [{}],
                "parameters": [PIN],
                "responses": {
                    "200": {
                        "description": "an SVG QR code of the join link",
                        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                    },
                    "404": not_found,
                    "503": taken_over,
                },
            }
        },
        "/api/rooms/{pin}/players/{player_id}": {
            "delete": {
                "operationId": "kick_player",
                "summary": "Kick a player: socket closed with 4403, token revoked",
                "tags": ["host"],
                "security": HOST,
                "parameters": [PIN, PLAYER_ID],
                "responses": {
                    "204": {"description": "kicked"},
                    "401": host_errors["401"],
                    "404": error("no such room or player"),
                    "503": taken_over,
                },
            }
        },
        "/api/rooms/{pin}/resume": {
            "post": {
                "operationId": "resume",
                "summary": "Extension: where a player's socket must connect now (their shard may have moved)",
                "tags": ["players"],
                "security": PLAYER,
                "parameters": [PIN],
                "responses": {
                    "200": json_body(
                        obj({"player_id": {"type": "string"}, "ws_url": {"type": "string"}}),
                        "connect to `ws_url` and say hello with the same token",
                    ),
                    "401": error("`unauthorized`: missing or unknown player token"),
                    "403": error("`kicked`: the player was kicked"),
                    "404": not_found,
                    "503": error(
                        "a failover is in progress (the player's shard or the room's coordinator is being "
                        "taken over), or storage is unavailable; retry with backoff"
                    ),
                },
            }
        },
        "/api/rooms/{pin}/leaderboard": {
            "get": {
                "operationId": "leaderboard",
                "summary": "Ranked scores; ties share a rank",
                "tags": ["host"],
                "security": HOST,
                "parameters": [
                    PIN,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 10},
                    },
                ],
                "responses": {
                    "200": json_body(obj({"entries": {"type": "array", "items": ref("LeaderboardEntry")}}), "ranked"),
                    **host_errors,
                    "422": error("`invalid`: `limit` is not an integer from 1 to 10000"),
                    "503": unavailable,
                },
            }
        },
        "/api/rooms/{pin}/results": {
            "get": {
                "operationId": "results",
                "summary": "Every stored answer exactly once (JSON, or CSV with `Accept: text/csv`); extension: the "
                "teacher's per-player CSV and XLSX",
                "tags": ["host"],
                "security": HOST,
                "parameters": [
                    PIN,
                    {
                        "name": "offset",
                        "in": "query",
                        "required": False,
                        "description": "extension: the first player (in rank order) of a page; paged only with "
                        "`offset` or `limit`, else the whole document",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 1 << 31},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "extension: players per page (default 100 when paged)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                    },
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "extension: json, csv or xlsx; wins over `Accept` (without it: text/csv, the "
                        "XLSX type, else JSON)",
                        "schema": {"type": "string", "enum": ["json", "csv", "xlsx"]},
                    },
                    {
                        "name": "layout",
                        "in": "query",
                        "required": False,
                        "description": "extension, shapes the CSV only: `answers` (SPEC's CSV: a row per stored "
                        "answer, the default) or `players` (a row per player, every question's answer; XLSX is always "
                        "this table, JSON always the document)",
                        "schema": {"type": "string", "enum": ["answers", "players"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the results (a page of its players, with `paging`, when asked for one)",
                        "content": {
                            JSON: {"schema": ref("Results")},
                            "text/csv": {
                                "schema": {
                                    "type": "string",
                                    "description": "player_id,nickname,question,choices,correct,points,response_ms; "
                                    "with `layout=players`: rank,nickname,score,correct answers, then four columns "
                                    "per question",
                                }
                            },
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    **host_errors,
                    "422": error("`invalid`: `offset`, `limit`, `format` or `layout` out of range"),
                    "503": unavailable,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process is alive",
                "tags": ["operations"],
                "responses": {
                    "200": json_body(
                        obj(
                            {
                                "status": {"type": "string", "enum": ["ok"]},
                                "pid": {**INT, "description": "extension: the process that answered (a worker)"},
                            },
                            ["status"],
                        ),
                        "alive",
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Ready for traffic: storage reachable, commits succeeding, not shutting down",
                "tags": ["operations"],
                "responses": {
                    "200": json_body(obj({"status": {"type": "string", "enum": ["ready"]}}), "ready"),
                    "503": json_body(
                        obj(
                            {
                                "status": {"type": "string", "enum": ["unavailable"]},
                                "problems": {"type": "array", "items": {"type": "string"}},
                            }
                        ),
                        "not ready; `problems` says why",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text format 0.0.4)",
                "tags": ["operations"],
                "responses": {
                    "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
    }
    for name, summary in [
        ("start", "lobby → question 0"),
        ("close", "question → reveal, early"),
        ("next", "reveal → the next question, or → finished after the last"),
        ("end", "any phase → finished"),
        ("lock", "refuse new joins (423)"),
        ("unlock", "accept joins again"),
    ]:
        result[f"/api/rooms/{{pin}}/{name}"] = host_command(name, summary)
    result.update(library_paths())
    result.update(image_paths(ADMIN))
    for operations in result.values():
        for operation in operations.values():
            add_limit_responses(operation)
    return result


RETRY_AFTER = {"Retry-After": {"description": "seconds until a retry may succeed", "schema": {"type": "integer"}}}


def add_limit_responses(operation: Schema) -> None:
    """The refusals of docs/operations.md, "Limits and abuse", where they can happen: 429 on every call (too many
    connections, joins, creations or unknown PINs from one address), 413 where there is a body."""
    responses = operation["responses"]
    responses.setdefault(
        "429",
        {
            **error("`rate_limited`: too many requests of this kind from your address; see `Retry-After`"),
            "headers": RETRY_AFTER,
        },
    )
    if "requestBody" in operation:
        responses.setdefault("413", error("`too_big`: the body is over the limit (refused before it is read whole)"))


@cache
def openapi_document(version: str) -> Schema:
    """The whole document (built once per process; it depends only on the code)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "quizroom",
            "version": version,
            "description": "HTTP control API of the quizroom real-time quiz server. Errors are "
            '`{"error": {"code", "message"}}`. The player and host WebSockets are described in docs/protocol.md.',
        },
        "paths": paths(),
        "components": components(),
    }
