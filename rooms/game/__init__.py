"""The game itself, pure: no asyncio, no storage, no sockets. Everything here is driven by its callers and the
time they pass in, and tested without an event loop."""
