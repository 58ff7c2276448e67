"""WebSocket close codes (SPEC §3, docs/protocol.md): one name each, for the refusals that carry them
(`quizroom.rooms.game.errors`) and for the actors that close sockets."""

from __future__ import annotations

CLOSE_GOING_AWAY = 1001  # server shutting down: clients reconnect
CLOSE_POLICY = 1008  # persistent malformed messages
CLOSE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 4008  # the socket could not keep up with its outbound queue
CLOSE_BAD_TOKEN = 4401  # bad or missing token, or no hello in time
CLOSE_KICKED = 4403
CLOSE_ROOM_GONE = 4404
CLOSE_REPLACED = 4409  # the same player connected again
CLOSE_FINISHED = 4410
CLOSE_MOVED = 4421  # this worker does not hold the player's shard (or the room's coordinator): resume, reconnect
CLOSE_RATE_ABUSE = 4429
