-- Fencing tokens (docs/scaling.md, "Fencing"). Every grant of a room's coordination or of a shard to a worker takes
-- a fresh value of one sequence, so an epoch only grows and is never reused (not even after a lease row is deleted
-- and inserted again). Writes made on a room's behalf name the writer's epoch and are refused when it is not the
-- current one: a paused or partitioned ex-owner cannot write, so it cannot ack, roll the room back or move it.
CREATE SEQUENCE fencing_epochs;
ALTER TABLE room_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT nextval('fencing_epochs');
ALTER TABLE shards ADD COLUMN epoch BIGINT NOT NULL DEFAULT nextval('fencing_epochs');
