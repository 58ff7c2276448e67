"""An echo socket for WebSocket conformance runs (Autobahn|Testsuite), mounted only with `compliance_echo=1`.

It echoes every text and binary message through the same uvicorn protocol stack the game sockets use, so the
fuzzing client tests our server's framing, UTF-8 validation, close handshake and size limits — not a toy server.
No origin check and no hello: it never exists in a production configuration.
"""

from __future__ import annotations

from quizroom.server.sockets import Receive, Scope, Send


class EchoEndpoint:
    """A raw ASGI app (a class, so that Starlette's `WebSocketRoute` hands it scope, receive and send)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
