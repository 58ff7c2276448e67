"""How a process full of rooms meets CPython's garbage collector: shared by the server's collector policy
(`quizroom.server.collector`) and the bench's baseline server, so both are measured under the same rules."""

from __future__ import annotations

#: CPython's collection thresholds while the policy runs. With the heap frozen four times a second, the young
#: generations are all the collector ever walks; collecting the youngest every 20,000 allocations instead of 700
#: lets most of a request's objects die by reference count before any walk (a 10,000-player join storm: 67 young
#: collections, 0.26 s, instead of 2,259 + 201 + 14 full ones, 1.0 s), and full collections are left to a reclaim.
THRESHOLDS = (20_000, 10, 1_000)
