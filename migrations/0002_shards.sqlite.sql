-- Sharded rooms: each player belongs to one shard of its room (0 for rooms that were never split). The cluster
-- tables (workers, room_leases, shards) exist only on PostgreSQL: several workers need a shared database.
ALTER TABLE players ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
CREATE INDEX players_shard ON players (room_id, shard);
