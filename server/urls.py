"""The URLs the HTTP API hands out (`join_url`, `ws_url`, `host_ws_url`), and where they may come from.

`QUIZROOM_PUBLIC_URL`, when set, is the base of every URL. Without it the server uses the address the client
reached it by — but never an arbitrary `Host` header: a request's Host is believed only when it names this server,
that is the very address the connection was accepted on (a LAN address a phone typed, `127.0.0.1`), `localhost`,
this machine's own name, or one of `QUIZROOM_ALLOWED_HOSTS`. Anything else (a forged or misrouted Host) gets URLs
on the accepted address itself, which reaches this server from where the client stands, and is logged once per
host name so an operator behind a proxy learns to set `PUBLIC_URL` or `ALLOWED_HOSTS`.
"""

from __future__ import annotations

import contextlib
import socket
from functools import lru_cache

import structlog
from starlette.requests import Request

from quizroom.server.settings import Settings

log = structlog.get_logger("quizroom.urls")

_REFUSED_LOGGED = 256  # host names logged as refused, at most (a client can invent any number)
_BASES_KEPT = 1024  # (scheme, Host, accepted address) → base URL, remembered


def url_host(host: str, advertise_host: str = "") -> str:
    """The host part of a URL that reaches a socket bound on `host` (a wildcard is replaced by a real name)."""
    if host in ("", "0.0.0.0", "::"):
        host = advertise_host or socket.gethostname()
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        return f"[{host}]"
    return host


def worker_url(settings: Settings, port: int) -> str:
    """Base URL of the process listening on `port` of this host, e.g. http://127.0.0.1:8001."""
    return f"http://{url_host(settings.host, settings.advertise_host)}:{port}"


def ws_of(base: str) -> str:
    return "wss" + base[len("https") :] if base.startswith("https") else "ws" + base[len("http") :]


@lru_cache(maxsize=1)
def own_names() -> frozenset[str]:
    """Names this machine answers to without configuration."""
    names = {"localhost", socket.gethostname().lower()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower())
    return frozenset(names)


def split_host(header: str) -> tuple[str, str]:
    """`Host` → (host name or address, ":port" or ""). IPv6 literals keep their brackets out of the name."""
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return "", ""
        return header[1:end].lower(), header[end + 1 :]
    name, colon, port = header.rpartition(":")
    if not colon or not port.isdigit():
        return header.lower(), ""
    return name.lower(), f":{port}"


def _authority(host: str, port: int | None, scheme: str) -> str:
    literal = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return literal if port in (None, default) else f"{literal}:{port}"


class HostPolicy:
    """Which `Host` headers name this server (see the module docstring)."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = frozenset(name.strip().lower() for name in allowed if name.strip())
        self._logged: set[str] = set()
        self._bases: dict[tuple[str, str, object], str] = {}  # every join asks; a room's players ask the same

    def base(self, request: Request) -> str:
        """The http(s) base URL for this request, from its Host when that names this server."""
        scheme = str(request.scope.get("scheme", "http"))
        header = request.headers.get("host", "")
        server = tuple(request.scope.get("server") or ("127.0.0.1", None))  # hashable, whatever the server gave
        key = (scheme, header, server)
        base = self._bases.get(key)
        if base is None:
            if len(self._bases) >= _BASES_KEPT:  # a client can send any Host: the cache stays bounded
                self._bases.clear()
            base = self._bases[key] = self._base(scheme, header, server)
        return base

    def _base(self, scheme: str, header: str, server: tuple[object, ...]) -> str:
        name, _port = split_host(header)
        accepted = str(server[0]).lower()
        if name and (name == accepted or name in self.allowed or name in own_names()):
            return f"{scheme}://{header}"
        if name and name not in self._logged and len(self._logged) < _REFUSED_LOGGED:
            self._logged.add(name)
            log.warning("host_not_allowed", host=name, fix="set QUIZROOM_PUBLIC_URL or QUIZROOM_ALLOWED_HOSTS")
        port = server[1] if len(server) > 1 and isinstance(server[1], int) else None
        return f"{scheme}://{_authority(accepted, port, scheme)}"
