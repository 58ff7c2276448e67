"""Asyncio shells around the pure game: one task per actor (a room's coordinator, each of its shards), each with an
inbox, doing the I/O (sockets, storage, timers) that the game asks for."""
