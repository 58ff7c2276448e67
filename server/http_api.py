"""The HTTP control API of SPEC §2: validation, authorisation, and translation into room calls. No rules here."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from quizroom.rooms.cluster.registry import Room
from quizroom.rooms.game import results as room_results
from quizroom.rooms.game.errors import InvalidInput, NotFound, RateLimited, Unauthorized, Unavailable
from quizroom.rooms.game.images import image_intro
from quizroom.rooms.game.options import parse_options
from quizroom.rooms.game.quiz import parse_quiz
from quizroom.rooms.game.report import player_report, question_summary
from quizroom.server.buckets import AddressBuckets, ApiLimits
from quizroom.server.imagestore import check_quiz_images
from quizroom.server.metrics import CONTENT_TYPE, package_version
from quizroom.server.openapi import openapi_document
from quizroom.server.paging import results_page
from quizroom.server.qrcodes import join_qr_svg
from quizroom.server.requests import bearer, client_of, read_json
from quizroom.server.responses import json_response
from quizroom.server.runtime import Runtime
from quizroom.server.spreadsheet import XLSX_MEDIA_TYPE, results_workbook
from quizroom.server.urls import HostPolicy, ws_of
from quizroom.storage import StorageError
from quizroom.storage.records import QuizRow

Handler = Callable[[Request], Awaitable[Response]]


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def limits_of(request: Request) -> ApiLimits:
    limits: ApiLimits = request.app.state.limits
    return limits


def metered(buckets: AddressBuckets, request: Request, what: str, limit: str) -> None:
    """Spend one of the client address's tokens for `what`, or refuse with 429 and when to come back."""
    wait_s = buckets.spend(client_of(request))
    if wait_s:
        refused(request, limit)
        raise RateLimited(f"too many {what} from your address; try again in {wait_s} s").retry_after(wait_s)


def refused(request: Request, limit: str) -> None:
    """Count a refusal by a per-address limit (`quizroom_http_limited_total{limit}`)."""
    counts = runtime_of(request).counters.http_limited
    counts[limit] = counts.get(limit, 0) + 1


def require_admin(request: Request) -> None:
    """With an admin token configured, creating (and reading) quizzes and rooms needs it."""
    admin = runtime_of(request).settings.admin_token
    if admin and not secrets.compare_digest(bearer(request).encode(), admin.encode()):
        raise Unauthorized("an admin token is required")


async def the_room(request: Request) -> Room:
    """The room named by the path. Lookups of PINs that name no room are metered per address: PINs are guessable
    (900,000 of them), so an address that misses too often is refused every lookup for a while (429)."""
    misses = limits_of(request).pin_misses
    client = client_of(request)
    wait_s = misses.wait(client)
    if wait_s:
        refused(request, "pin_misses")
        raise RateLimited(f"too many unknown PINs from your address; try again in {wait_s} s").retry_after(wait_s)
    room = await runtime_of(request).registry.get(request.path_params["pin"])
    if room is None:
        misses.spend(client)
        raise NotFound("no room with this PIN")
    return room


async def host_room(request: Request) -> Room:
    """The room named by the path, if the caller holds its host token (or the admin token)."""
    runtime = runtime_of(request)
    actor = await the_room(request)
    token = bearer(request)
    admin = runtime.settings.admin_token
    if not token or not (actor.is_host(token) or (admin and secrets.compare_digest(token.encode(), admin.encode()))):
        raise Unauthorized("the host token is required")
    return actor


def public_bases(request: Request) -> tuple[str, str]:
    """(http base, ws base) for the URLs we hand out: PUBLIC_URL if configured, else the address the client used
    when it names this server (`quizroom.server.urls`)."""
    base = runtime_of(request).settings.public_url.rstrip("/")
    if not base:
        hosts: HostPolicy = request.app.state.hosts
        base = hosts.base(request)
    return base, ws_of(base)


async def ws_base(request: Request, worker_id: str) -> str:
    """Where sockets for `worker_id` go: this process as the client reached it, or another worker's own URL.

    A lone worker hands out the address the client used (so proxies need no configuration). Several workers hand
    out each worker's own URL (`worker_url`): a socket must reach the very process holding its shard.
    """
    runtime = runtime_of(request)
    if worker_id == runtime.cluster.worker_id and not runtime.settings.worker_url:
        return public_bases(request)[1]
    url = await runtime.worker_url(worker_id)
    if url is None:
        raise Unavailable("the worker for this room is being replaced; try again")
    return ws_of(url)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def create_room(request: Request) -> Response:
    require_admin(request)
    runtime = runtime_of(request)
    metered(limits_of(request).creations, request, "quizzes and rooms created", "creations")
    body = await read_json(request, runtime.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidInput("", "the body must be an object with `quiz_id` or `quiz`")
    options = parse_options(body, runtime.settings.intro_ms)
    owner = client_of(request)
    runtime.registry.check_capacity(owner)  # before storing a quiz for a room that could not open
    if "quiz" in body:
        try:
            quiz = parse_quiz(body["quiz"])
            await check_quiz_images(runtime.storage, quiz)
        except InvalidInput as exc:
            raise InvalidInput(f"quiz.{exc.field}" if exc.field else "quiz", str(exc).split(": ", 1)[-1]) from exc
        quiz_id = uuid.uuid4().hex
        await runtime.storage.create_quiz(QuizRow(quiz_id, quiz.title, orjson.dumps(quiz.to_json()).decode(), now_ms()))
    elif isinstance(body.get("quiz_id"), str):
        saved = await runtime.storage.library_entry(body["quiz_id"])
        if saved is None:
            raise NotFound("no such quiz")
        quiz_id = saved[1].quiz_id  # the saved quiz's current version: the room keeps it whatever edits follow
        quiz = parse_quiz(orjson.loads(saved[1].body))
    else:
        raise InvalidInput("quiz_id", "give `quiz_id` (a string) or `quiz` (an object)")
    options = image_intro(options, quiz, explicit="intro_ms" in body)
    actor, host_token = await runtime.registry.create(quiz_id, quiz, owner=owner, options=options)
    base, _ = public_bases(request)
    ws = await ws_base(request, actor.worker_id)
    pin = actor.state.pin
    return json_response(
        {
            "room_id": actor.state.room_id,
            "pin": pin,
            "host_token": host_token,
            "join_url": f"{base}/?pin={pin}",
            "host_ws_url": f"{ws}/ws/host/{pin}",
        },
        status=201,
    )


DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")


def device_of(body: dict[str, Any]) -> str:
    """The optional `device` of a join: the random id the player's browser keeps (docs/protocol.md, *Moderation*).
    Only its hash is stored; a kick bars it from the room. Scripts may leave it out."""
    device = body.get("device")
    if device is None:
        return ""
    if not isinstance(device, str) or not DEVICE_ID.fullmatch(device):
        raise InvalidInput("device", "must be 8 to 128 letters, digits, '-' or '_'")
    return device


async def join_room(request: Request) -> Response:
    runtime = runtime_of(request)
    metered(limits_of(request).joins, request, "joins", "joins")
    room = await the_room(request)
    body = await read_json(request, runtime.settings.max_body_bytes)  # a huge nickname is bad_nickname (422)
    if not isinstance(body, dict):
        raise InvalidInput("nickname", "the body must be an object with `nickname`")
    joined = await room.join(body.get("nickname"), device_of(body))
    runtime.counters.joins += 1
    try:
        ws = await ws_base(request, joined.worker_id)
    except Unavailable:  # the player is stored: hand out this worker, whose 4421 sends the client to resume
        ws = public_bases(request)[1]
    return json_response(
        {
            "player_id": joined.player_id,
            "token": joined.token,
            "nickname": joined.nickname,
            "ws_url": f"{ws}/ws/play/{room.pin}",
        },
        status=201,
    )


async def resume(request: Request) -> Response:
    """Where a player's socket goes now (docs/scaling.md): their shard may have moved to another worker."""
    room = await the_room(request)
    token = bearer(request)
    if not token:
        raise Unauthorized("the player token is required")
    where = await room.resume(token)
    ws = await ws_base(request, where.worker_id)
    return json_response({"player_id": where.player_id, "ws_url": f"{ws}/ws/play/{room.pin}"})


async def room_state(request: Request) -> Response:
    actor = await host_room(request)
    snapshot = await actor.snapshot()
    host_ws = await ws_base(request, actor.worker_id)
    return json_response({**snapshot, "host_ws_url": f"{host_ws}/ws/host/{actor.pin}", "stats": actor.local_stats()})


def command(name: str) -> Handler:
    async def run(request: Request) -> Response:
        actor = await host_room(request)
        return json_response(await actor.command(name))

    return run


async def join_qr(request: Request) -> Response:
    """The room's join link as a QR code (SVG), for the projector's lobby: made here, never by a service elsewhere
    (a classroom's PINs are nobody else's business). Public like the join link itself; PIN misses are metered."""
    room = await the_room(request)
    base, _ = public_bases(request)
    return Response(
        join_qr_svg(f"{base}/?pin={room.pin}"),
        media_type="image/svg+xml",
        headers={"cache-control": "private, max-age=3600"},
    )


async def kick_player(request: Request) -> Response:
    actor = await host_room(request)
    await actor.kick(request.path_params["player_id"])
    return Response(status_code=204)


async def leaderboard(request: Request) -> Response:
    actor = await host_room(request)
    raw = request.query_params.get("limit", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise InvalidInput("limit", "must be an integer from 1 to 10000")
    return json_response({"entries": await actor.leaderboard(int(raw))})


RESULT_FORMATS = ("json", "csv", "xlsx")
RESULT_LAYOUTS = ("answers", "players")


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query_params.get(name, default)
    if value not in allowed:
        raise InvalidInput(name, f"must be one of {', '.join(allowed)}")
    return value


def _results_format(request: Request) -> str:
    """`?format=` wins (a plain link can carry it); else the Accept header: CSV, XLSX, or JSON."""
    accept = request.headers.get("accept", "")
    default = "csv" if "text/csv" in accept else "xlsx" if XLSX_MEDIA_TYPE in accept else "json"
    return _choice(request, "format", RESULT_FORMATS, default)


async def results(request: Request) -> Response:
    """SPEC §2's results, and the teacher's exports (docs/protocol.md, "Results exports"): `layout=players` gives
    one row per player instead of one per answer (CSV), and `format=xlsx` an Excel workbook of that table."""
    actor = await host_room(request)
    fmt = _results_format(request)
    layout = _choice(request, "layout", RESULT_LAYOUTS, "players" if fmt == "xlsx" else "answers")
    document = await runtime_of(request).registry.results(actor.pin)
    if document is None:
        raise NotFound("no room with this PIN")
    summary = question_summary(document)  # over the whole room, whatever page is asked for
    document = results_page(document, request.query_params)  # ?offset=&limit=; without them, everything
    name = f"quizroom-{actor.pin}-results"
    if fmt == "xlsx":
        return Response(
            await asyncio.to_thread(results_workbook, player_report(document), summary),
            media_type=XLSX_MEDIA_TYPE,
            headers={"content-disposition": f'attachment; filename="{name}.xlsx"'},
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if layout == "players":
            report = player_report(document)
            writer.writerow(spreadsheet_safe(report.header))
            writer.writerows([spreadsheet_safe(row) for row in report.rows])
        else:
            writer.writerow(room_results.RESULTS_CSV_HEADER)
            writer.writerows([spreadsheet_safe(row) for row in room_results.results_rows(document)])
            name = f"quizroom-{actor.pin}"
        return PlainTextResponse(
            buffer.getvalue(),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="{name}.csv"'},
        )
    return json_response(document)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """OWASP's rule against CSV injection: a text cell that a spreadsheet would read as a formula (`=`, `+`, `-`,
    `@`, tab, CR first) gets a leading apostrophe, which spreadsheets show as text. Numbers are left alone."""
    return tuple(f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES) else cell for cell in row)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "pid": os.getpid()})  # which worker answered (several workers)


async def readyz(request: Request) -> Response:
    runtime = runtime_of(request)
    problems: list[str] = []
    if runtime.draining:
        problems.append("shutting down")
    try:
        await runtime.storage.ping()
    except StorageError as exc:
        problems.append(f"storage: {exc}")
    if not runtime.writer.healthy:
        problems.append("storage: commits failing")
    if problems:
        return json_response({"status": "unavailable", "problems": problems}, status=503)
    return json_response({"status": "ready"})


async def metrics(request: Request) -> Response:
    return Response(runtime_of(request).metrics.render(), media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    return json_response(openapi_document(package_version()))


def api_routes() -> list[Route]:
    routes = [
        Route("/api/rooms", create_room, methods=["POST"]),
        Route("/api/rooms/{pin}", room_state, methods=["GET"]),
        Route("/api/rooms/{pin}/players", join_room, methods=["POST"]),
        Route("/api/rooms/{pin}/players/{player_id}", kick_player, methods=["DELETE"]),
        Route("/api/rooms/{pin}/qr.svg", join_qr, methods=["GET"]),
        Route("/api/rooms/{pin}/resume", resume, methods=["POST"]),
        Route("/api/rooms/{pin}/leaderboard", leaderboard, methods=["GET"]),
        Route("/api/rooms/{pin}/results", results, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    for name in ("start", "close", "next", "end", "lock", "unlock"):
        routes.append(Route(f"/api/rooms/{{pin}}/{name}", command(name), methods=["POST"]))
    return routes
