"""The ASGI application: player and host sockets, the Starlette app for HTTP, and the runtime's life cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Match, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from quizroom.rooms.game.clock import Clock
from quizroom.server.accesslog import AccessLog
from quizroom.server.admission import Admission
from quizroom.server.buckets import ApiLimits
from quizroom.server.compliance import EchoEndpoint
from quizroom.server.connections import ConnectionGate
from quizroom.server.errors import EXCEPTION_HANDLERS
from quizroom.server.http_api import api_routes
from quizroom.server.image_api import image_routes
from quizroom.server.imagestore import ImageDesk
from quizroom.server.library import library_routes
from quizroom.server.runtime import Runtime
from quizroom.server.settings import Settings
from quizroom.server.sockets import HostEndpoint, PlayerEndpoint, Receive, Scope, Send
from quizroom.server.urls import HostPolicy

log = structlog.get_logger("quizroom.app")


def web_dir() -> Path:
    return Path(str(resources.files("quizroom.clients"))) / "web"


def page(name: str) -> Route:
    async def serve(request: Request) -> Response:
        path = web_dir() / name
        if not path.is_file():
            return PlainTextResponse(f"{name} is missing from this installation", status_code=404)
        return FileResponse(path, headers={"cache-control": "no-cache"})

    return Route("/" if name == "index.html" else f"/{name.removesuffix('.html')}", serve, methods=["GET"])


class DirectRoute:
    """One HTTP route served past Starlette's middleware stack, with the same handler, refusals and access log.

    Why: the join is the call every player makes, thousands in a second at the start of a game, and Starlette's
    layers (the error middleware, the exception middleware, the router, the request/response wrapper) cost as much
    as the join's own work (py-spy, 10,000 joins; bench/RESULTS.md, *Joins*). Here the route's own `matches` picks
    the request (the same path parameters), `EXCEPTION_HANDLERS` turn refusals into the same JSON errors, and
    anything unexpected propagates to uvicorn, which answers 500 as Starlette's error middleware would.
    """

    def __init__(self, http: Starlette, route: Route) -> None:
        self.http, self.route = http, route
        self.served = AccessLog(self._serve)

    def matches(self, scope: Scope) -> bool:
        match, child = self.route.matches(scope)
        if match is not Match.FULL:
            return False
        scope.update(child)
        scope["app"], scope["router"], scope["route"] = self.http, self.http.router, self.route  # as Starlette's router
        return True

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await self.route.endpoint(request)
        except Exception as exc:
            handler = next((EXCEPTION_HANDLERS[kind] for kind in type(exc).__mro__ if kind in EXCEPTION_HANDLERS), None)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


class QuizroomApp:
    """The ASGI entry point. Player and host sockets go straight to their endpoints, and so does the join call
    (`DirectRoute`); everything else to Starlette.

    Why not Starlette's `WebSocketRoute`: its exception middleware wraps `send` in one more coroutine for every
    frame, and a broadcast is thousands of frames. Here the endpoints get uvicorn's own `send`.
    """

    SOCKETS = (("/ws/play/", PlayerEndpoint()), ("/ws/host/", HostEndpoint()))
    DIRECT = ("/api/rooms/{pin}/players",)  # POST: the join

    def __init__(self, http: Starlette) -> None:
        self.http = http
        self.direct = [
            DirectRoute(http, route)
            for route in http.routes
            if isinstance(route, Route) and route.path in self.DIRECT and route.methods == {"POST"}
        ]

    @property
    def state(self) -> State:
        return self.http.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path: str = scope["path"]
            for prefix, endpoint in self.SOCKETS:
                if path.startswith(prefix):
                    pin = path[len(prefix) :]
                    if pin and "/" not in pin:
                        scope["app"] = self.http
                        scope["path_params"] = {"pin": pin}
                        await endpoint(scope, receive, send)
                        return
        elif scope["type"] == "http" and scope["method"] == "POST":
            for direct in self.direct:
                if direct.matches(scope):
                    await direct.served(scope, receive, send)
                    return
        await self.http(scope, receive, send)


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    gate: ConnectionGate | None = None,
    fd_limits: tuple[int, int] | None = None,
) -> QuizroomApp:
    """The app; `gate` is the serving process's connection gate (its protocols count connections into it)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if gate is not None:
            log.info(
                "connection_limits",
                fd_soft=fd_limits[0] if fd_limits else None,
                fd_hard=fd_limits[1] if fd_limits else None,
                max_connections=gate.max_total,
                max_connections_per_ip=gate.max_per_address,
            )
        runtime = await Runtime.start(settings, clock)
        runtime.gate = gate
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    web = web_dir()
    routes = [
        *api_routes(),
        *library_routes(),
        *image_routes(),
        page("index.html"),
        page("host.html"),
        # follow_symlink: the development install is a tree of links (setuptools' strict editable mode), and
        # Starlette refuses a file whose real path lies outside the directory unless told to follow links.
        Mount("/static", app=StaticFiles(directory=web, check_dir=False, follow_symlink=True), name="static"),
    ]
    if settings.compliance_echo:
        routes.insert(0, WebSocketRoute("/ws/echo", EchoEndpoint()))
    http = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(AccessLog)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    http.state.admission = Admission.from_settings(settings)  # every game socket's handshake passes it (429/503)
    http.state.limits = ApiLimits.from_settings(settings)  # joins, creations and PIN misses per address (429)
    http.state.gate = gate
    http.state.images = ImageDesk.from_settings(settings)  # the upload pipeline's threads and the served images' cache
    http.state.hosts = HostPolicy(settings.allowed_hosts)  # which Host headers join_url/ws_url may be built from
    return QuizroomApp(http)
