"""The Starlette application: routes, static pages, and the runtime's life cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from quizroom.rooms.clock import Clock
from quizroom.server.http_api import api_routes
from quizroom.server.runtime import Runtime
from quizroom.server.settings import Settings
from quizroom.server.sockets import HostEndpoint, PlayerEndpoint


def web_dir() -> Path:
    return Path(str(resources.files("quizroom.clients"))) / "web"


def page(name: str) -> Route:
    async def serve(request: Request) -> Response:
        path = web_dir() / name
        if not path.is_file():
            return PlainTextResponse(f"{name} is missing from this installation", status_code=404)
        return FileResponse(path, headers={"cache-control": "no-cache"})

    return Route("/" if name == "index.html" else f"/{name.removesuffix('.html')}", serve, methods=["GET"])


def create_app(settings: Settings, clock: Clock | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, clock)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    web = web_dir()
    routes = [
        *api_routes(),
        WebSocketRoute("/ws/play/{pin}", PlayerEndpoint()),
        WebSocketRoute("/ws/host/{pin}", HostEndpoint()),
        page("index.html"),
        page("host.html"),
        Mount("/static", app=StaticFiles(directory=web, check_dir=False), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
