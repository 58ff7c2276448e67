-- Question types (docs/protocol.md, *Question types*): an answer is now its choices (picked choices, or a puzzle's
-- order) and a value (a typed answer, or a slider's number, as text). This migration is the version of the
-- answer's stored shape: rows from before it have no value, which is what they mean (choices only).
ALTER TABLE answers ADD COLUMN value TEXT;
