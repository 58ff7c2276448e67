"""A minimal HTTP/1.1 client with keep-alive, for the control calls of the load generator.

Why not httpx: its connection pool rescans every connection for every queued request, so with a hundred joins in
flight the *client* spent ~10 ms of CPU per join and capped the measured join rate near 150/s (profiled). Here each
request takes an idle connection (or opens one, up to `connections`), writes one request and reads one response
with a Content-Length (or up to EOF when the server closes). That is all the servers under test send.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode, urlsplit


class HttpError(Exception):
    """Transport-level failure: connection refused or reset, malformed response, timeout."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Http1Client:
    def __init__(self, base_url: str, connections: int, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http:// targets are supported: {base_url}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.authority = parts.netloc
        self.timeout_s = timeout_s
        self._gate = asyncio.Semaphore(connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = None,
        params: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, bytes]:
        """One request; returns (status, body). Retries once on a kept-alive connection the server had closed."""
        target = f"{path}?{urlencode(params)}" if params else path
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}", "Accept: application/json"]
        if token:
            head.append(f"Authorization: Bearer {token}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")
        async with self._gate:
            for attempt in (0, 1):
                reused = attempt == 0 and bool(self._idle)
                writer: asyncio.StreamWriter | None = None
                try:
                    async with asyncio.timeout(timeout_s or self.timeout_s):
                        reader, writer = (
                            self._idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
                        )
                        writer.write(raw)
                        status, content, keep = await self._response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
                    if writer is not None:
                        writer.close()
                    if reused and attempt == 0:
                        continue  # the server closed an idle keep-alive connection: one fresh try
                    raise HttpError(type(exc).__name__, str(exc)) from exc
                if keep:
                    self._idle.append((reader, writer))
                else:
                    writer.close()
                return status, content
        raise HttpError("Unreachable")

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        header = await reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            raise ValueError("chunked responses are not supported by the bench client")
        keep = fields.get("connection", "").lower() != "close"
        if "content-length" in fields:
            return status, await reader.readexactly(int(fields["content-length"])), keep
        return status, await reader.read(), False

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
