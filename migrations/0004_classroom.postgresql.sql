-- The classroom: a room's options (auto-advance, the "get ready" intro, generated names) as JSON, and each
-- player's device (a hash of the id the browser keeps), so a kicked device stays out of its room.
ALTER TABLE rooms ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE players ADD COLUMN device_hash TEXT NOT NULL DEFAULT '';
