-- Fencing tokens (docs/scaling.md, "Fencing"). Every grant of a room's coordination or of a shard to a worker takes
-- a fresh value of one sequence, so an epoch only grows and is never reused (not even after a lease row is deleted
-- and inserted again). Writes made on a room's behalf name the writer's epoch and are refused when it is not the
-- current one: a paused or partitioned ex-owner cannot write, so it cannot ack, roll the room back or move it.
CREATE SEQUENCE fencing_epochs;
ALTER TABLE room_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT nextval('fencing_epochs');
ALTER TABLE shards ADD COLUMN epoch BIGINT NOT NULL DEFAULT nextval('fencing_epochs');

-- Messages between workers, durable (docs/scaling.md, "Messages"): each is a row for its recipient, inserted with
-- the NOTIFY that rings the recipient's doorbell (carrying the message itself when it fits). The recipient reads
-- what a lost notification, a listener reconnect or a payload too big for NOTIFY left here, in each sender's order,
-- and deletes what it read; rows nobody read (a recipient that died) are pruned after a minute.
CREATE TABLE cluster_messages (
    id BIGSERIAL PRIMARY KEY,
    worker_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cluster_messages_to ON cluster_messages (worker_id, id);
