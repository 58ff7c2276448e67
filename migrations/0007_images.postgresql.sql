-- Images of quizzes (questions and image answers), re-encoded by the upload pipeline and keyed by the SHA-256 of
-- those bytes: stored in the database like everything else, so a backup holds the quizzes' pictures too.
-- `data` is stored uncompressed (STORAGE EXTERNAL): WebP does not compress further, so TOAST need not try.
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL
);
ALTER TABLE images ALTER COLUMN data SET STORAGE EXTERNAL;
