-- Fencing tokens exist only on PostgreSQL (0003_fencing.postgresql.sql): a SQLite file has one process, which is
-- the only possible owner of every room and shard in it. The version is kept in step with PostgreSQL's.
SELECT 1;
