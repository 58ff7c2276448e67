-- Sharded rooms: each player belongs to one shard of its room (0 for rooms that were never split).
ALTER TABLE players ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
CREATE INDEX players_shard ON players (room_id, shard);

-- Cluster membership: a worker is live while heartbeat_at is younger than the cluster TTL (the database's clock).
CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    load INTEGER NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The coordinator of a room: valid while expires_at is in the future and its worker is live.
CREATE TABLE room_leases (
    room_id TEXT PRIMARY KEY REFERENCES rooms (room_id),
    worker_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX room_leases_worker ON room_leases (worker_id);

-- Which worker holds shard n of a room.
CREATE TABLE shards (
    room_id TEXT REFERENCES rooms (room_id),
    shard INTEGER,
    worker_id TEXT NOT NULL,
    PRIMARY KEY (room_id, shard)
);

-- Rooms with an open question, looked for by every worker in search of orphaned coordinators.
CREATE INDEX rooms_open_question ON rooms (room_id) WHERE phase = 'question';
